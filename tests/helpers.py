"""Plain helpers for brandbot's tests: the repository's places, git, rendering, running the CLI, the
project files a test compares, a running bot read as plain data, the figures printed at the end, and a
stand-in for a brand's middleware (or any other web origin) on loopback.

Fixtures live in conftest.py; everything here is an ordinary function or class a test imports.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import copier

from brandbot.processes import RunningBot, free_port
from brandbot.release import TEMPLATE_PARTS
from brandbot.rendered_project import Display, _runtime, project_display
from brandbot.template_paths import examples_dir, project_template, template_root

REPO = template_root()
DATA = Path(__file__).parent / "data"
EXAMPLES = sorted(examples_dir().glob("*.yml"))
HOSTILE = DATA / "hostile.yml"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
#: Folders of local state (uploads, caches, venvs) that a project's .gitignore lists: not project files.
LOCAL_STATE = tuple(line.rstrip("/") for line in (REPO / "template/.gitignore").read_text(encoding="utf-8").split()
                    if line.endswith("/"))
skip_local_state = shutil.ignore_patterns(*LOCAL_STATE)


def is_local_state(path: Path) -> bool:
    """Whether `path` lies in one of the LOCAL_STATE folders."""
    return not set(LOCAL_STATE).isdisjoint(path.parts)


def example_id(path: Path) -> str:
    return path.stem


FIGURES: dict[str, list[tuple[int, str]]] = {}


def record_figure(name: str, count: int, detail: str) -> None:
    """Keep a figure (e.g. fuzz examples run) for the summary printed at the end of the run."""
    FIGURES.setdefault(name, []).append((count, detail))


def git(*args: str, cwd: Path) -> str:
    """Run git with a test identity; its output."""
    return subprocess.run(["git", "-c", "user.name=Owner", "-c", "user.email=owner@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def checkout_template(destination: Path) -> Path:
    """Copy this checkout's template parts (tracked files and new ones not ignored) to `destination`."""
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *TEMPLATE_PARTS, cwd=REPO)
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    return destination


def commit_release(repository: Path, tag: str) -> None:
    """Commit everything in `repository` and tag it as release `tag`."""
    git("add", "-A", cwd=repository)
    git("commit", "-qm", tag, cwd=repository)
    git("tag", tag, cwd=repository)


def copier_render(tmp_path: Path, answers: dict[str, Any]) -> Path:
    """Render `answers` with copier alone (no brandbot checks or assets) into tmp_path/out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier warns that a dirty checkout is used
        copier.run_copy(str(REPO), str(tmp_path / "out"), data=answers, defaults=True, quiet=True, vcs_ref="HEAD")
    return tmp_path / "out"


BRANDBOT = [sys.executable, "-m", "brandbot"]


def brandbot(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the brandbot command as a user would, in a 100-column terminal."""
    return subprocess.run([*BRANDBOT, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "COLUMNS": "100"})


def project_files(project: Path) -> dict[str, bytes]:
    """Every file of a project but local state (Chainlit's uploads, caches), by relative path."""
    return {str(path.relative_to(project)): path.read_bytes() for path in sorted(project.rglob("*"))
            if path.is_file() and not is_local_state(path.relative_to(project))}


def rendered_files(project: Path) -> dict[str, str]:
    """Every text file of a project, by relative path."""
    return {name: data.decode("utf-8") for name, data in project_files(project).items()}


def template_runtime_module(name: str) -> ModuleType:
    """A module of the template's runtime, internals included: for tests that hold a document to the code."""
    return importlib.import_module(f"{_runtime(project_template()).__name__}.{name}")


@dataclass(frozen=True)
class BotRun:
    """How a test module runs its live bot: the middleware's latency and the app's settings."""

    latency_ms: float = 0.0
    app_env: dict[str, str] = field(default_factory=dict)


@dataclass
class LiveBot:
    """A running bot, with its project's files read the way a test checks them: as plain data,
    independently of the runtime (its display functions aside, which say how a text is shown)."""

    running: RunningBot

    def __getattr__(self, name: str) -> Any:
        return getattr(self.running, name)

    @cached_property
    def brand(self) -> dict[str, Any]:
        return tomllib.loads((self.running.project / "brand.toml").read_text(encoding="utf-8"))

    @cached_property
    def theme(self) -> dict[str, Any]:
        return json.loads((self.running.project / "public/theme.json").read_text(encoding="utf-8"))

    @cached_property
    def display(self) -> Display:
        return project_display(self.running.project)


#: A file a StubMiddleware serves on GET: its content type and body.
StaticPage = tuple[str, bytes]


class StubMiddleware(ThreadingHTTPServer):
    """A brand's middleware, or another web origin, as a real HTTP server on loopback (in a daemon thread):
    a test scripts what it answers and reads what it was sent, as the bot under `chainlit run` meets it.

    POST answers `{"response": reply(body), "category": null}`; `reply` defaults to the next of the queued
    `replies`. With a `secret`, a POST without it in `secret_header` gets a 401 and is not recorded.
    GET answers `pages[path]` (query ignored) or a 404, and every GET is recorded with its headers.
    """

    def __init__(self, reply: Callable[[dict[str, Any]], str] | None = None, *, secret: str | None = None,
                 secret_header: str = "x-secret", pages: dict[str, StaticPage] | None = None,
                 port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _StubHandler)
        self.reply = reply or self.next_queued
        self.secret = secret
        self.secret_header = secret_header
        self.pages = dict(pages or {})
        self.replies: list[str] = []
        self.requests: list[dict[str, Any]] = []  # the JSON body of every POST answered
        self.fetched: list[tuple[str, dict[str, str]]] = []  # every GET: its path and lower-cased headers
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"
        self.url = f"{self.origin}/chat"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def next_queued(self, _body: dict[str, Any]) -> str:
        return self.replies.pop(0) if self.replies else "(no reply queued)"

    def fetched_paths(self) -> list[str]:
        return [path for path, _ in self.fetched]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _StubHandler(BaseHTTPRequestHandler):
    server: StubMiddleware

    def do_GET(self) -> None:
        self.server.fetched.append((self.path, {key.lower(): value for key, value in self.headers.items()}))
        page = self.server.pages.get(self.path.split("?")[0])
        if page is None:
            self.answer(404, "text/plain", b"not here")
        else:
            self.answer(200, *page)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        stub = self.server
        if stub.secret is not None and self.headers.get(stub.secret_header) != stub.secret:
            self.answer(401, "text/plain", b"wrong secret")
            return
        payload = json.loads(body)
        stub.requests.append(payload)
        self.answer(200, "application/json", json.dumps({"response": stub.reply(payload), "category": None}).encode())

    def answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        del args


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
    """A throw-away PostgreSQL cluster, for tests that need the real database: its own folder under the
    temporary directory, 127.0.0.1 on a free port (trust auth, superuser `brandbot`), its socket in that folder.

    PostgreSQL refuses to run as root, so a root test run starts it as the `postgres` user Debian's package
    creates (the folder is chowned to it); any other user runs it directly. `stop()` is an immediate shutdown
    (a crash, as far as the data is concerned: what was committed must survive `start()`); `close()` stops it
    and removes the folder. Clients (psql, asyncpg) connect over TCP, as the bot does.
    """

    USER = "brandbot"

    def __init__(self, database: str = "brandbot") -> None:
        self.bin_dir = postgres_bin_dir()
        self.run_as = "postgres" if os.geteuid() == 0 else None
        if self.run_as is not None and shutil.which("runuser") is None:
            raise PostgresMissing("running as root needs runuser (util-linux) to start PostgreSQL as postgres")
        self.folder = Path(tempfile.mkdtemp(prefix="brandbot-postgres-"))
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
            self.psql(f'CREATE DATABASE "{database}"', database="postgres")
        except BaseException:
            self.close()
            raise
        self.database = database

    @property
    def url(self) -> str:
        """The database's SQLAlchemy URL, as a bot's DATABASE_URL takes it."""
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
                               "-d", database or self.database, "-c", sql],
                              capture_output=True, text=True, timeout=30, env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
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
