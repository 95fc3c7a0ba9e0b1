"""The databases a persistence run stores conversations in, and how each is taken down.

One `Database` per run holds a database per server that stores (the app's, the floor's), so
their writes and rows are counted apart. `SqliteFiles` keeps files in the run's scratch folder;
it is "down" while another connection holds SQLite's write lock (what a stuck backup or a second
process does: root ignores file permissions, so an unwritable file cannot be staged here).
`PostgresDatabases` live in a throw-away cluster of Debian's server (brandbot.postgres_cluster,
the tests' too); it is "down" from an immediate shutdown (the server's processes end at once, as
in a crash) until it is started again.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import Protocol

from ..postgres_cluster import PostgresCluster, PostgresMissing
from ..processes import python_env

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
        return PostgresDatabases()
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


class PostgresDatabases:
    """Databases in a throw-away cluster (brandbot.postgres_cluster, shared with the tests)."""

    kind = "postgres"

    def __init__(self) -> None:
        try:
            # Its own folder in the system's temporary directory: the `postgres` user must reach it.
            self.cluster = PostgresCluster(database=None, prefix="brandbot-bench-postgres-")
        except (PostgresMissing, RuntimeError) as error:
            raise DatabaseUnavailable(str(error)[-800:]) from None

    def create(self, name: str) -> str:
        return self.cluster.create_database(name)

    def rows(self, name: str) -> dict[str, int]:
        query = " UNION ALL ".join(f"SELECT '{table}', count(*) FROM \"{table}\"" for table in COUNTED_TABLES)
        try:
            counts = self.cluster.psql(query, database=name)
        except subprocess.CalledProcessError as error:
            raise DatabaseUnavailable(f"psql failed: {error.stderr.strip()[-500:]}") from None
        return {table: int(count) for table, count in (line.split("|") for line in counts.splitlines())}

    @contextmanager
    def down(self) -> Iterator[None]:
        """Stopped at once (immediate shutdown), started again on the way out."""
        self.cluster.stop()
        try:
            yield
        finally:
            self.cluster.start()

    def close(self) -> None:
        self.cluster.close()
