"""The databases a persistence run stores conversations in, and how each is taken down.

One `Database` per run holds a database per server that stores (the app's, the floor's), so
their writes and rows are counted apart. `SqliteFiles` keeps files in the run's scratch folder;
it is "down" while another connection holds SQLite's write lock (what a stuck backup or a second
process does: root ignores file permissions, so an unwritable file cannot be staged here).
`PostgresCluster` is a throw-away cluster of Debian's server on a loopback port with trust
auth, run as the `postgres` user when we are root (PostgreSQL refuses root); it is "down" from
an immediate shutdown (the server's processes end at once, as in a crash) until it is started again.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import Protocol

from ..processes import free_port, python_env

#: Tables whose rows are counted before and after a round (Chainlit's SQLAlchemy schema).
COUNTED_TABLES = ("users", "threads", "steps", "feedbacks", "elements")
KINDS = ("sqlite", "postgres")


class DatabaseUnavailable(RuntimeError):
    """The database a persistence run asked for cannot be had here (the message says why)."""


class Database(Protocol):
    kind: str

    def create(self, name: str) -> str:
        """A new, empty database for one server; its SQLAlchemy URL."""

    def rows(self, name: str) -> dict[str, int]:
        """Rows per counted table of that database."""

    def down(self) -> AbstractContextManager[None]:
        """A context during which the database takes no writes."""

    def close(self) -> None:
        """Remove everything the database kept."""


def open_database(kind: str, work: Path) -> Database:
    """The database of that kind for one run (SQLite's files under `work`)."""
    if kind == "sqlite":
        return SqliteFiles(work / "sqlite")
    if kind == "postgres":
        # Its own folder in the system's temporary directory: the `postgres` user must reach it, and
        # the run's scratch folder is private to us.
        return PostgresCluster(Path(tempfile.mkdtemp(prefix="brandbot-bench-postgres-")))
    raise DatabaseUnavailable(f"unknown database {kind!r} (choose from {', '.join(KINDS)})")


def migrate(project: Path, url: str) -> None:
    """Bring a database to the project's schema with the project's own command (as a deploy does)."""
    done = subprocess.run([sys.executable, "-m", "brandbot_runtime.schema", "upgrade"], cwd=project,
                          env=python_env({"DATABASE_URL": url}), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise DatabaseUnavailable(f"schema upgrade failed: {done.stderr.strip()[-500:]}")


class SqliteFiles:
    """One SQLite file per server in `folder`."""

    kind = "sqlite"

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._locked: list[Path] = []

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.sqlite3"

    def create(self, name: str) -> str:
        self._locked.append(self.path(name))
        return f"sqlite+aiosqlite:///{self.path(name).resolve()}"

    def rows(self, name: str) -> dict[str, int]:
        with closing(sqlite3.connect(f"file:{self.path(name)}?mode=ro", uri=True, timeout=30)) as db:
            return {table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in COUNTED_TABLES}

    @contextmanager
    def down(self) -> Iterator[None]:
        """Every file's write lock held by this process: the servers' writes wait (busy timeout), reads go on."""
        holders = []
        try:
            for path in self._locked:
                holder = sqlite3.connect(path, timeout=30, isolation_level=None)
                holder.execute("BEGIN EXCLUSIVE")
                holders.append(holder)
            yield
        finally:
            for holder in holders:
                holder.execute("ROLLBACK")
                holder.close()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class PostgresCluster:
    """A throw-away cluster in `folder`: 127.0.0.1 on a free port, trust auth, superuser `bench`."""

    kind = "postgres"
    USER = "bench"

    def __init__(self, folder: Path) -> None:
        self.bin_dir = _postgres_bin_dir()
        self.run_as = "postgres" if os.geteuid() == 0 else None
        if self.run_as is not None and shutil.which("runuser") is None:
            raise DatabaseUnavailable("as root, PostgreSQL must run as `postgres`, which needs runuser (util-linux)")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        if self.run_as is not None:
            try:
                shutil.chown(folder, self.run_as, self.run_as)
            except LookupError:
                raise DatabaseUnavailable("no `postgres` user: install Debian's postgresql package") from None
        try:
            self._as_owner("initdb", "--pgdata", str(self.data), "--username", self.USER, "--auth", "trust",
                           "--encoding", "UTF8", "--locale", "C.UTF-8", "--no-sync")
            with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
                # A server on a throw-away folder: no fsync, as the tests' cluster (the durability
                # of a real deployment's disk is not what the bench compares).
                conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                           f"unix_socket_directories = '{folder}'\nfsync = off\nfull_page_writes = off\n")
            self.start()
        except BaseException:
            self.close()
            raise

    def create(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"', database="postgres")
        return f"postgresql+asyncpg://{self.USER}@127.0.0.1:{self.port}/{name}"

    def rows(self, name: str) -> dict[str, int]:
        query = " UNION ALL ".join(f"SELECT '{table}', count(*) FROM \"{table}\"" for table in COUNTED_TABLES)
        counts = self.psql(query, database=name)
        return {table: int(count) for table, count in (line.split("|") for line in counts.splitlines())}

    @contextmanager
    def down(self) -> Iterator[None]:
        """Stopped at once (immediate shutdown), started again on the way out."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def start(self) -> None:
        self._as_owner("pg_ctl", "--pgdata", str(self.data), "--log", str(self.folder / "server.log"),
                       "--wait", "--timeout", "60", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_owner("pg_ctl", "--pgdata", str(self.data), "--mode", "immediate", "--wait", "stop")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def psql(self, sql: str, *, database: str) -> str:
        """SQL over TCP, as the servers connect; unaligned, tuples-only output."""
        done = subprocess.run([str(self.bin_dir / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, "-d", database, "-c", sql],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
        if done.returncode != 0:
            raise DatabaseUnavailable(f"psql failed: {done.stderr.strip()[-500:]}")
        return done.stdout.strip()

    def _as_owner(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "LC_ALL": "C.UTF-8"})
        if done.returncode != 0:
            raise DatabaseUnavailable(f"{program} failed ({done.returncode}): {(done.stdout + done.stderr)[-800:]}")


def _postgres_bin_dir() -> Path:
    """Debian keeps the server's programs outside PATH, one folder per version: the newest, else PATH's."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0)
    if found:
        return found[-1].parent
    if initdb := shutil.which("initdb"):
        return Path(initdb).resolve().parent
    raise DatabaseUnavailable("PostgreSQL's server is not installed (Debian: apt-get install postgresql)")

