"""The servers a brandbot command starts end with it, whatever ends it (issue 9, item 17).

`brandbot demo` (like smoke, bench and screenshots) starts the reference middleware and `chainlit
run` as child processes. A terminal closed (SIGHUP), a SIGKILL, or a SIGTERM to `make demo`'s whole
process group (docker stop, a cancelled CI job) used to leave both running, and the next `make demo`
stopped at "port 8000 on 127.0.0.1 is already in use". Each case here starts a real demo on free
ports, sends one signal, and requires both servers gone and both ports free within seconds.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from ptyprocess import PtyProcess

from brandbot.processes import Service, free_port, port_is_free, start_middleware

from .helpers import BRANDBOT, REPO, record_figure

#: Both servers must be gone this soon after the signal (the CLI's clean stop allows 5 s per server
#: before SIGKILL; a clean stop takes well under a second).
DEADLINE_SECONDS = 8.0
#: Exit status of `brandbot demo` per signal: Ctrl-C is the demo's documented way to stop; TERM and
#: HUP end it with the shell's convention, 128 + the signal's number; SIGKILL cannot be caught.
DEMO_EXIT = {signal.SIGINT: 0, signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGHUP: 128 + signal.SIGHUP,
             signal.SIGKILL: -signal.SIGKILL}


def _demo_command(target: str, port: int, middleware_port: int, out: Path) -> list[str]:
    """`brandbot demo` itself, or `make demo` in this checkout with this environment's venv."""
    options = ["--port", str(port), "--middleware-port", str(middleware_port), "--site-port", str(free_port()),
               "--out", str(out)]
    if target == "brandbot":
        return [*BRANDBOT, "demo", *options]
    venv = Path(sys.prefix)  # `-o` keeps make from reinstalling the venv if pyproject.toml is newer
    return ["make", "--no-print-directory", "-C", str(REPO), "-o", str(venv / ".installed"), f"VENV={venv}",
            "DEMO_ARGS=" + " ".join(options), "demo"]


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _servers(launcher: subprocess.Popen[bytes], ports: tuple[int, int], log: Path) -> list[psutil.Process]:
    """Wait until both servers answer, then return them: the launcher's descendants that serve."""
    deadline = time.monotonic() + 90
    while not all(_healthy(port) for port in ports):
        assert launcher.poll() is None, f"the demo exited with {launcher.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"the demo never became healthy:\n{log.read_text()}"
        time.sleep(0.2)
    servers = [child for child in psutil.Process(launcher.pid).children(recursive=True)
               if any(word in child.cmdline() for word in ("chainlit", "middleware"))]
    assert len(servers) == 2, [child.cmdline() for child in servers]
    return servers


def _brandbot_process(launcher: subprocess.Popen[bytes], target: str) -> psutil.Process:
    """The `brandbot demo` process: the launcher itself, or make's child running it."""
    if target == "brandbot":
        return psutil.Process(launcher.pid)
    return next(child for child in psutil.Process(launcher.pid).children(recursive=True)
                if "demo" in child.cmdline() and "make" not in child.name())


@pytest.mark.parametrize("target", ["brandbot", "make-group"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL],
                         ids=lambda signum: signal.Signals(signum).name)
def test_demo_servers_end_with_the_command_whatever_ends_it(tmp_path: Path, signum: signal.Signals,
                                                            target: str) -> None:
    ports = (free_port(), free_port())
    log = tmp_path / "demo.log"
    with log.open("wb") as output:
        launcher = subprocess.Popen(_demo_command(target, *ports, tmp_path / "demo"), stdout=output,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                    env={**os.environ, "COLUMNS": "100"})
    servers: list[psutil.Process] = []
    launched = psutil.Process(launcher.pid)
    try:
        servers = _servers(launcher, ports, log)
        command = _brandbot_process(launcher, target)
        if target == "brandbot":
            os.kill(command.pid, signum)
        else:
            os.killpg(launcher.pid, signum)  # what docker stop or a cancelled CI job does
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE_SECONDS and (
                any(_alive(server) for server in servers) or not all(map(port_is_free, ports))):
            time.sleep(0.02)
        seconds = time.monotonic() - started
        left = [server.cmdline() for server in servers if _alive(server)]
        record_figure("seconds for both demo servers to end", 1,
                      f"{signal.Signals(signum).name} to {target}: {seconds:.2f} s, {len(left)} left")
        assert not left, f"still running {seconds:.1f} s after {signal.Signals(signum).name}: {left}"
        assert all(map(port_is_free, ports)), f"ports {ports} still taken"
        launcher.wait(timeout=15)
        if target == "brandbot":
            assert launcher.returncode == DEMO_EXIT[signum], log.read_text()
    finally:
        for leftover in [*servers, launched]:
            if _alive(leftover):
                leftover.kill()
        launcher.wait(timeout=15)


def _read_until(terminal: PtyProcess, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline, f"{wanted!r} never appeared:\n{seen.decode(errors='replace')}"
        if select.select([terminal.fd], [], [], 0.2)[0]:
            seen += os.read(terminal.fd, 65536)
    return seen


def test_closing_the_terminal_ends_make_demo_and_both_servers(tmp_path: Path) -> None:
    """The real SIGHUP: `make demo` typed into an interactive shell, then the terminal closed (the
    shell, on its hangup, sends SIGHUP to its jobs: make and brandbot)."""
    ports = (free_port(), free_port())
    terminal = PtyProcess.spawn([shutil.which("bash") or "/bin/bash", "--norc", "--noprofile", "-i"],
                                dimensions=(40, 200), env={**os.environ, "PS1": "$ "})
    servers: list[psutil.Process] = []
    try:
        terminal.write(shlex.join(_demo_command("make-group", *ports, tmp_path / "demo")).encode() + b"\n")
        _read_until(terminal, b"Press Ctrl-C to stop", timeout=90)
        servers = [child for child in psutil.Process(terminal.pid).children(recursive=True)
                   if any(word in child.cmdline() for word in ("chainlit", "middleware"))]
        assert len(servers) == 2
        terminal.fileobj.close()  # hang up, as a closed terminal window does; no signal sent by us
        terminal.closed = True
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE_SECONDS and (
                any(map(_alive, servers)) or not all(map(port_is_free, ports))):
            time.sleep(0.02)
        seconds = time.monotonic() - started
        left = [server.cmdline() for server in servers if _alive(server)]
        record_figure("seconds for both demo servers to end", 1, f"terminal closed: {seconds:.2f} s, {len(left)} left")
        assert not left and all(map(port_is_free, ports)), f"still running {seconds:.1f} s after the hangup: {left}"
    finally:
        for leftover in servers:
            if _alive(leftover):
                leftover.kill()
        if terminal.isalive():
            terminal.kill(signal.SIGKILL)
        terminal.wait()


def test_a_server_started_from_a_short_lived_thread_outlives_that_thread(tmp_path: Path) -> None:
    """Linux's parent-death signal fires when the *thread* that forked a child ends; a server started
    from a worker thread (the smoke test restarts its middleware from asyncio.to_thread) must live on."""
    started: list[Service] = []
    worker = threading.Thread(target=lambda: started.append(
        start_middleware(None, port=free_port(), secret="s", log_dir=tmp_path)))
    worker.start()
    worker.join()
    (middleware,) = started
    try:
        time.sleep(0.5)
        assert middleware.process.poll() is None, middleware.log()
        assert httpx.get(f"{middleware.base_url}/health", timeout=2).status_code == 200
    finally:
        middleware.stop()
