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
import threading
import tomllib
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import copier

from brandbot.processes import RunningBot, Service, python_env, start
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


def start_reference_middleware(project: Path, *, port: int, secret: str, log_dir: Path, name: str = "middleware",
                               stream: str | None = None, token_ms: float | None = None,
                               deltas: int | None = None) -> Service:
    """`brandbot middleware` for a project's brand.toml as a separate process, streaming its answers
    (`--stream sse|ndjson`, `--token-ms`, `--deltas`) when `stream` says so."""
    command = [*BRANDBOT, "middleware", "--port", str(port), "--brand", str(project / "brand.toml")]
    for option, value in (("--stream", stream), ("--token-ms", token_ms), ("--deltas", deltas)):
        if value is not None:
            command += [option, str(value)]
    return start(name, command, cwd=project, env=python_env({"BACKEND_API_SECRET": secret}), port=port,
                 log_dir=log_dir)


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


class Recording:
    """An ASGI app in front of a middleware app that keeps the JSON body of every POST /chat
    (tests/test_replicas.py, tests/test_streaming_end_to_end.py)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/chat":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        with self.lock:
            self.requests.append(json.loads(body))
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()  # e.g. the client going away mid-stream
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def asked(self) -> Counter[str]:
        """How many times the middleware was asked each message."""
        with self.lock:
            return Counter(request["message"] for request in self.requests)

    def requests_for(self, message: str) -> list[dict[str, Any]]:
        with self.lock:
            return [request for request in self.requests if request["message"] == message]
