"""A project's load balancer on this machine: Debian's HAProxy with the project's own deploy/haproxy.cfg
(the file `docker compose` uses) pointed at replicas on loopback, for the tests and `brandbot bench`.

The configuration takes every address from the environment (`"${BOT_1-bot-1:8000}"`: compose's service
name unless BOT_1 is set), so nothing is rewritten: BRANDBOT_LISTEN and HAPROXY_STATS_LISTEN become free
loopback ports and BOT_<n> the replicas given. A server slot without a replica points at a closed port
and is DOWN before `start_load_balancer` returns. HAProxy runs in the foreground (`-db`) as a child in
its own process group, killed by Linux if we die (brandbot.processes.spawn); `stop()` ends it.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from .processes import free_port, python_env, spawn, stop_group

#: Where a generated project keeps its load balancer's configuration.
CONFIG_IN_PROJECT = Path("deploy/haproxy.cfg")
#: The backend of the bot's replicas in that configuration.
BACKEND = "bots"
#: A slot without a replica: nothing listens on port 1 of loopback, so its checks fail and it stays DOWN.
UNUSED_SLOT = "127.0.0.1:1"

_SERVER = re.compile(r'^\s*server\s+(?P<name>\S+)\s+"\$\{(?P<variable>[A-Z0-9_]+)-(?P<default>[^}"]+)\}"'
                     r'.*?\bcookie\s+(?P<cookie>\S+)')


class LoadBalancerMissing(RuntimeError):
    """Debian's haproxy is not installed (`make test` installs it: .ci/system-packages)."""


class LoadBalancerError(RuntimeError):
    """HAProxy refused the configuration or did not come up; the message ends with its log."""


@dataclass(frozen=True)
class ServerSlot:
    """One `server` line of the backend: its name, the variable naming its address, compose's default
    address (`bot-1:8000`) and the value of the stickiness cookie that sends a browser to it."""

    name: str
    variable: str
    default: str
    cookie: str

    @property
    def service(self) -> str:
        """The compose service the slot points at by default (`bot-1`)."""
        return self.default.rsplit(":", 1)[0]


def server_slots(config: Path) -> list[ServerSlot]:
    """The replicas' server lines of a haproxy.cfg, in order."""
    return [ServerSlot(match["name"], match["variable"], match["default"], match["cookie"])
            for line in config.read_text(encoding="utf-8").splitlines() if (match := _SERVER.match(line))]


def stickiness_cookie(config: Path) -> str:
    """The name of the cookie that keeps a browser on its replica (`cookie NAME insert ...`)."""
    for line in config.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^\s*cookie\s+(\S+)\s+insert\b", line):
            return match.group(1)
    raise LoadBalancerError(f"{config}: no `cookie NAME insert` line")


def haproxy_path() -> Path:
    """Debian's /usr/sbin/haproxy (not on every user's PATH), or another one on PATH (HAPROXY_PATH overrides)."""
    chosen = os.environ.get("HAPROXY_PATH")
    if chosen:
        if Path(chosen).is_file() and os.access(chosen, os.X_OK):
            return Path(chosen)
        raise LoadBalancerMissing(f"HAPROXY_PATH={chosen} is not an executable file")
    for candidate in (shutil.which("haproxy"), "/usr/sbin/haproxy"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise LoadBalancerMissing("HAProxy is not installed: run .ci/install-system-packages as root "
                              "(apt-get install haproxy)")


@dataclass
class LoadBalancer:
    """A running HAProxy: customers at `base_url`, its stats at `stats_url`; `replicas` maps each server
    slot used to the replica's address."""

    process: subprocess.Popen[bytes]
    config: Path
    port: int
    stats_port: int
    slots: list[ServerSlot]
    replicas: dict[str, str]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/stats;csv"

    @property
    def cookie_name(self) -> str:
        return stickiness_cookie(self.config)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def replica_for_cookie(self, value: str) -> str:
        """The address of the replica a stickiness cookie value sends a browser to."""
        slot = next((slot for slot in self.slots if slot.cookie == value), None)
        if slot is None or slot.name not in self.replicas:
            raise KeyError(f"no replica behind the cookie value {value!r}")
        return self.replicas[slot.name]

    def cookie_for(self, address: str) -> str:
        """The stickiness cookie value of the replica at `address`."""
        return next(slot.cookie for slot in self.slots if self.replicas.get(slot.name) == address)

    def states(self) -> dict[str, str]:
        """Each server's state as HAProxy sees it: UP, DOWN, MAINT, or a transition such as `UP 1/2`."""
        answer = httpx.get(self.stats_url, timeout=2)
        answer.raise_for_status()
        rows = csv.DictReader(io.StringIO(answer.text.lstrip("# ")))
        return {row["svname"]: row["status"] for row in rows
                if row["pxname"] == BACKEND and row["svname"] not in {"FRONTEND", "BACKEND"}}

    def wait_for(self, wanted: Callable[[dict[str, str]], bool], *, timeout: float = 20.0,
                 what: str = "the servers' states") -> dict[str, str]:
        """Poll the stats until `wanted(states)`; LoadBalancerError with the last states after `timeout`."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LoadBalancerError(f"haproxy exited with code {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                states = self.states()
            except httpx.HTTPError:
                states = {}
            if states and wanted(states):
                return states
            time.sleep(0.1)
        raise LoadBalancerError(f"{what} not reached within {timeout:g} s: {states}")

    def wait_until(self, address: str, state: str, *, timeout: float = 20.0) -> None:
        """Wait until the server of the replica at `address` is in `state` (UP, DOWN)."""
        name = next(name for name, replica in self.replicas.items() if replica == address)
        self.wait_for(lambda states: states.get(name) == state, timeout=timeout, what=f"{name} {state}")

    def stop(self, grace_seconds: float = 5.0) -> int | None:
        """SIGTERM (HAProxy's immediate stop), then SIGKILL; its exit code."""
        return stop_group(self.process, signal.SIGTERM, grace_seconds)

    def __enter__(self) -> LoadBalancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def load_balancer_env(slots: Sequence[ServerSlot], replicas: Sequence[str], *, port: int,
                      stats_port: int) -> dict[str, str]:
    """The environment that points the configuration at loopback: listen addresses and BOT_<n>."""
    env = {"BRANDBOT_LISTEN": f"127.0.0.1:{port}", "HAPROXY_STATS_LISTEN": f"127.0.0.1:{stats_port}"}
    for index, slot in enumerate(slots):
        env[slot.variable] = replicas[index] if index < len(replicas) else UNUSED_SLOT
    return env


def start_load_balancer(project: Path, replicas: Sequence[str], *, log_dir: Path, port: int | None = None,
                        config: Path | None = None, timeout: float = 20.0,
                        extra_env: Mapping[str, str] | None = None) -> LoadBalancer:
    """Start HAProxy with the project's deploy/haproxy.cfg (or `config`) in front of `replicas` (host:port,
    at most one per server slot) and wait until every replica is UP behind it and every unused slot DOWN."""
    config = (config or project / CONFIG_IN_PROJECT).resolve()
    slots = server_slots(config)
    if not 1 <= len(replicas) <= len(slots):
        raise ValueError(f"{config} has {len(slots)} replica slots; {len(replicas)} replicas given")
    executable = haproxy_path()
    port = port or free_port()
    stats_port = free_port()
    env = python_env({**load_balancer_env(slots, replicas, port=port, stats_port=stats_port), **(extra_env or {})})
    checked = subprocess.run([str(executable), "-c", "-q", "-f", str(config)], env=env, capture_output=True,
                             text=True, timeout=30)
    if checked.returncode != 0:
        raise LoadBalancerError(f"haproxy refused {config}:\n{checked.stdout}{checked.stderr}")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "haproxy.log"
    with log_path.open("wb") as log_file:
        process = spawn([str(executable), "-db", "-f", str(config)], cwd=config.parent, env=env, stdout=log_file,
                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    used = {slot.name: address for slot, address in zip(slots, replicas, strict=False)}
    balancer = LoadBalancer(process, config, port, stats_port, slots, used, log_path)
    try:
        balancer.wait_for(lambda states: all(states.get(slot.name) == ("UP" if slot.name in used else "DOWN")
                                             for slot in slots),
                          timeout=timeout, what="every replica UP and every unused slot DOWN")
    except BaseException:
        balancer.stop()
        raise
    return balancer
