"""A throw-away PostgreSQL cluster of Debian's server, for the tests and the benchmark's persistence mode.

Its own folder under the temporary directory, 127.0.0.1 on a free port, trust auth, its socket in
that folder. PostgreSQL refuses to run as root, so a root run starts it as the `postgres` user
Debian's package creates (the folder is chowned to it); any other user runs it directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .processes import free_port


class PostgresMissing(RuntimeError):
    """Debian's PostgreSQL server (or, as root, its `postgres` user) is not there: `make test` installs it."""


def postgres_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (Debian keeps the server outside PATH), else initdb's on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0)
    if versions:
        return versions[-1].parent
    if initdb := shutil.which("initdb"):
        return Path(initdb).resolve().parent
    raise PostgresMissing("PostgreSQL's server is not installed: run .ci/install-system-packages as root "
                          "(apt-get install postgresql)")


class PostgresCluster:
    """The cluster described in the module docstring (superuser `brandbot`). `stop()` is an immediate shutdown
    (a crash, as far as the data is concerned: what was committed must survive `start()`); `close()` stops it
    and removes the folder. Clients (psql, asyncpg) connect over TCP, as the bot does.
    """

    USER = "brandbot"

    def __init__(self, database: str | None = "brandbot", *, prefix: str = "brandbot-postgres-") -> None:
        """`database`: one to create at once, the default of `url` and `psql` (None: none)."""
        self.bin_dir = postgres_bin_dir()
        self.run_as = "postgres" if os.geteuid() == 0 else None
        if self.run_as is not None and shutil.which("runuser") is None:
            raise PostgresMissing("running as root needs runuser (util-linux) to start PostgreSQL as postgres")
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            if self.run_as is not None:
                try:
                    shutil.chown(self.folder, self.run_as, self.run_as)
                except LookupError as error:
                    raise PostgresMissing("no `postgres` user: install Debian's postgresql package") from error
            self.data = self.folder / "data"
            self.port = free_port()
            self._as_owner("initdb", "--pgdata", str(self.data), "--username", self.USER, "--auth", "trust",
                           "--encoding", "UTF8", "--locale", "C.UTF-8", "--no-sync")
            with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                           f"unix_socket_directories = '{self.folder}'\n"
                           "fsync = off\nfull_page_writes = off\n")  # a crash of the server, not of the OS
            self.start()
            if database is not None:
                self.psql(f'CREATE DATABASE "{database}"', database="postgres")
        except BaseException:
            self.close()
            raise
        self.database = database

    @property
    def url(self) -> str:
        """The database's SQLAlchemy URL, as a bot's DATABASE_URL takes it."""
        assert self.database is not None, "a cluster made without a database"
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database in this cluster (one per test keeps tests apart); its URL."""
        self.psql(f'CREATE DATABASE "{name}"', database="postgres")
        return self.url_for(name)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._as_owner("pg_ctl", "--pgdata", str(self.data), "--log", str(self.folder / "server.log"),
                       "--wait", "--timeout", "60", "start")

    def stop(self) -> None:
        """Immediate shutdown: the server's processes end at once, as when it crashes or its host goes."""
        if (self.data / "postmaster.pid").exists():
            self._as_owner("pg_ctl", "--pgdata", str(self.data), "--mode", "immediate", "--wait", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its folder."""
        try:
            if hasattr(self, "data"):
                self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def psql(self, sql: str, *, database: str | None = None) -> str:
        """Run SQL with psql over TCP (stops at the first error); its unaligned, tuples-only output."""
        done = subprocess.run([str(self.bin_dir / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER,
                               "-d", database or self.database or "postgres", "-c", sql],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
        return done.stdout.strip()

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def _as_owner(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=90,
                              env={**os.environ, "LC_ALL": "C.UTF-8"})
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stdout}{done.stderr}\n{self.log()}")
