"""Starting and stopping the real processes: the reference middleware and `chainlit run`.

Every process gets its own process group (so stopping it never signals us) and a log file,
listens on 127.0.0.1 only, and is stopped with SIGINT, then SIGKILL for its whole group if it
lingers. Whatever ends the command that started it (SIGKILL included), Linux ends it too: see
`_parent_death_signal`. The CLI's signal handlers do the clean stop for TERM, INT and HUP.
"""

from __future__ import annotations

import ctypes
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ServiceError(RuntimeError):
    """A process did not start; the message says which and ends with its log's tail."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port (connections in TIME_WAIT do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Service:
    """A started process, its health URL and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, grace_seconds: float = 5.0) -> int | None:
        """SIGINT, then SIGKILL to the whole group; returns the exit code."""
        return stop_group(self.process, signal.SIGINT, grace_seconds)


def stop_group(process: subprocess.Popen[Any], first: signal.Signals, grace_seconds: float = 5.0) -> int | None:
    """Send `first` to a process's group, then SIGKILL after `grace_seconds`; its exit code."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, first)
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=grace_seconds)
        except ProcessLookupError:
            pass
    return process.returncode


def start(name: str, command: list[str], *, cwd: Path, env: dict[str, str], port: int,
          log_dir: Path, health_path: str = "/health", timeout: float = 60.0) -> Service:
    """Start `command` and wait until GET health_path answers 200, or raise ServiceError."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = spawn(command, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL)
    service = Service(name, process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_healthy(service, health_path, timeout)
    except BaseException:
        service.stop()
        raise
    return service


def spawn(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """Popen in a process group of its own, killed by Linux when this process ends.

    The kernel sends the parent-death signal when the *thread* that forked the child ends, not
    the process: a server started from a worker thread (asyncio.to_thread) would die with it. So
    only the main thread, which lives as long as the process, forks directly; other threads hand
    the fork to one spawner thread that also lives until the process exits.
    """
    if threading.current_thread() is threading.main_thread():
        return _popen(command, options)
    return _Spawner.shared().run(command, options)


def _popen(command: list[str], options: dict[str, Any]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, process_group=0, preexec_fn=_parent_death_signal(), **options)


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that makes Linux SIGKILL the child when the forking thread dies (PR_SET_PDEATHSIG).

    SIGKILL, not TERM: it only fires when we died without stopping the child (we were SIGKILLed),
    so nobody is left to escalate a graceful stop that hangs, and these servers keep no state. The
    setting survives exec (Python is not set-user-ID, which would clear it) but not the child's
    own forks: our servers are single processes. Elsewhere than Linux this returns None.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def arm() -> None:  # runs in the child between fork and exec: no imports, no allocation-heavy work
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


class _Spawner:
    """One daemon thread, alive until the process exits, that forks for the other threads."""

    _instance: _Spawner | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[list[str], dict[str, Any], Future[subprocess.Popen[bytes]]]] = (
            queue.SimpleQueue())
        threading.Thread(target=self._serve, name="brandbot-spawner", daemon=True).start()

    @classmethod
    def shared(cls) -> _Spawner:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(self, command: list[str], options: dict[str, Any]) -> subprocess.Popen[bytes]:
        future: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((command, options, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            command, options, future = self._jobs.get()
            try:
                future.set_result(_popen(command, options))
            except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
                future.set_exception(error)


def wait_healthy(service: Service, health_path: str, timeout: float) -> None:
    """Poll until the service answers 200; fail fast if the process exits."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise ServiceError(f"{service.name} exited with code {service.process.returncode}:\n"
                                   f"{_tail(service.log())}")
            try:
                if client.get(service.base_url + health_path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise ServiceError(f"{service.name} was not healthy within {timeout:g} s:\n{_tail(service.log())}")


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


def python_env(extra: dict[str, str]) -> dict[str, str]:
    """The current environment without inherited bot settings, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BACKEND_API_", "CHAINLIT_"))}
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_middleware(brand_file: Path | None, *, port: int, secret: str, log_dir: Path,
                     latency_ms: float = 0.0, auth_header: str | None = None) -> Service:
    """The reference middleware (`brandbot middleware`) as a separate process."""
    command = [sys.executable, "-m", "brandbot", "middleware", "--port", str(port),
               "--latency-ms", str(latency_ms)]
    if brand_file is not None:
        command += ["--brand", str(brand_file)]
    if auth_header is not None:
        command += ["--auth-header", auth_header]
    env = python_env({"BACKEND_API_SECRET": secret})
    return start("middleware", command, cwd=Path.cwd(), env=env, port=port, log_dir=log_dir)


def chainlit_command(port: int) -> list[str]:
    """`chainlit run app.py --headless` on loopback, from this Python environment."""
    return [sys.executable, "-m", "chainlit", "run", "app.py", "--headless", "--host", "127.0.0.1",
            "--port", str(port)]


def start_app(project: Path, *, port: int, middleware_url: str, secret: str, log_dir: Path,
              extra_env: dict[str, str] | None = None) -> Service:
    """The generated project's `chainlit run app.py`, pointed at a middleware."""
    env = python_env({"BACKEND_API_URL": middleware_url, "BACKEND_API_SECRET": secret, **(extra_env or {})})
    return start("app", chainlit_command(port), cwd=project, env=env, port=port, log_dir=log_dir)


@dataclass
class RunningBot:
    """A rendered project served by `chainlit run`, talking to the reference middleware.

    Both run as separate processes on loopback with a throw-away secret; `restart_middleware`
    brings the middleware back on the same port (to show a bot recovering), and `stop` ends both.
    """

    project: Path
    secret: str
    log_dir: Path
    latency_ms: float
    middleware_port: int
    middleware: Service
    app: Service

    def restart_middleware(self) -> None:
        """Start the middleware again on its port, after it was stopped."""
        self.middleware = start_middleware(self.project / "brand.toml", port=self.middleware_port,
                                           secret=self.secret, log_dir=self.log_dir / "restarted",
                                           latency_ms=self.latency_ms)

    def stop(self) -> int | None:
        """Stop the app, then the middleware; returns the app's exit code."""
        code = self.app.stop()
        self.middleware.stop()
        return code


def start_bot(project: Path, *, log_dir: Path, latency_ms: float = 0.0, app_env: dict[str, str] | None = None,
              port: int | None = None, middleware_port: int | None = None) -> RunningBot:
    """Start the reference middleware (routing for the project's brand.toml), then the app."""
    secret = "bot-" + secrets.token_urlsafe(24)
    middleware_port = middleware_port or free_port()
    middleware = start_middleware(project / "brand.toml", port=middleware_port, secret=secret, log_dir=log_dir,
                                  latency_ms=latency_ms)
    try:
        app = start_app(project, port=port or free_port(), middleware_url=f"{middleware.base_url}/chat",
                        secret=secret, log_dir=log_dir, extra_env=app_env)
    except BaseException:
        middleware.stop()
        raise
    return RunningBot(project, secret, log_dir, latency_ms, middleware_port, middleware, app)
