"""A real PostgreSQL in the tests: the throw-away cluster (tests/helpers.py PostgresCluster) is a real server
that keeps what was committed across a crash, runs as the user PostgreSQL accepts, listens on loopback only
and leaves nothing behind."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess

import pytest

from .helpers import PostgresCluster


def test_committed_rows_survive_an_immediate_stop_and_restart(postgres: PostgresCluster) -> None:
    """What a bot stored before PostgreSQL went down is there when it comes back; while it is down,
    connections are refused (the stop is real)."""
    postgres.create_database("crash")
    postgres.psql("CREATE TABLE turns (id serial PRIMARY KEY, text text NOT NULL);"
                  "INSERT INTO turns (text) VALUES ('Où est ma commande ? 📦')", database="crash")

    postgres.stop()
    with pytest.raises(subprocess.CalledProcessError):
        postgres.psql("SELECT 1", database="crash")
    postgres.start()

    assert postgres.psql("SELECT text FROM turns", database="crash") == "Où est ma commande ? 📦"
    postgres.restart()
    assert postgres.psql("SELECT count(*) FROM turns", database="crash") == "1"


def test_the_server_runs_as_a_user_postgres_accepts_on_loopback(postgres: PostgresCluster) -> None:
    """As root the cluster belongs to Debian's `postgres` user; otherwise to whoever runs the tests."""
    owner = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert postgres.data.stat().st_uid == owner
    assert postgres.psql("SHOW listen_addresses") == "127.0.0.1"
    assert postgres.url == f"postgresql+asyncpg://brandbot@127.0.0.1:{postgres.port}/brandbot"


def test_closing_a_cluster_stops_it_and_removes_its_folder() -> None:
    cluster = PostgresCluster(database="scratch")
    assert cluster.psql("SELECT current_database()") == "scratch"
    cluster.close()
    assert not cluster.folder.exists()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", cluster.port))
