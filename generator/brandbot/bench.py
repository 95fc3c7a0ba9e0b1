"""`brandbot bench`: how close a generated bot comes to the framework's own limit.

Everything runs for real on loopback: the reference middleware with a fixed latency, the
rendered app under `chainlit run`, and N customers speaking Chainlit's socket.io protocol. In
the same run, alternating with the app, the same load goes to the *framework floor*: a bare
Chainlit app that shows a status, waits the same latency and turns the status into the reply
in place, with no HTTP at all. The ratio of the two is the figure that matters; absolute
numbers depend on the machine.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from .chat_client import ChainlitChat
from .processes import Service, chainlit_command, free_port, python_env, start, start_bot
from .project import runtime_module
from .reference_middleware import Router, routing_for

FLOOR_APP = '''"""The framework floor: a status, the same latency, the reply in place. No HTTP, no logic."""
import asyncio
import os

import chainlit as cl

LATENCY = float(os.environ["FLOOR_LATENCY_MS"]) / 1000
REPLY = os.environ["FLOOR_REPLY"]  # the same words the middleware answers, so both send as much


@cl.on_chat_start
async def start() -> None:
    await cl.Message(content="Welcome").send()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    status = cl.Message(content="Thinking...")
    await status.send()
    await asyncio.sleep(LATENCY)
    status.content = message.content.split(" ", 1)[0] + " " + REPLY
    await status.update()
'''


@dataclass
class Round:
    """One load round against one server."""

    target: str
    sessions: int
    messages: int
    seconds: float
    latencies: list[float] = field(repr=False)
    errors: int
    wrong: int
    cpu_seconds: float
    peak_rss_mb: float
    problems: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.sessions * self.messages / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    def summary(self, latency_ms: float) -> dict[str, Any]:
        return {"target": self.target, "sessions": self.sessions, "messages": self.messages,
                "throughput": round(self.throughput, 1), "p50_ms": round(self.percentile(0.5) * 1000, 1),
                "p95_ms": round(self.percentile(0.95) * 1000, 1), "p99_ms": round(self.percentile(0.99) * 1000, 1),
                "overhead_p50_ms": round(self.percentile(0.5) * 1000 - latency_ms, 1),
                "cpu_ms_per_message": round(self.cpu_seconds * 1000 / max(1, len(self.latencies)), 2),
                "peak_rss_mb": round(self.peak_rss_mb, 1), "errors": self.errors, "wrong": self.wrong,
                "problems": self.problems}


@dataclass
class Server:
    """A server under test and what its right answer to a message is."""

    name: str
    service: Service
    expected: Callable[[str], str]

    @property
    def process(self) -> psutil.Process:
        return psutil.Process(self.service.process.pid)


async def load(server: Server, sessions: int, messages: int, timeout: float = 120) -> Round:
    """N sessions connect and get their welcome (untimed), then each sends M messages in turn."""
    chats = [ChainlitChat(server.service.base_url, timeout=timeout) for _ in range(sessions)]
    await asyncio.gather(*(chat.connect() for chat in chats))
    await asyncio.gather(*(chat.welcome() for chat in chats))
    latencies: list[float] = []
    problems = {"errors": 0, "wrong": 0}
    examples: list[str] = []

    async def converse(index: int, chat: ChainlitChat) -> None:
        for number in range(messages):
            text = f"[s{index}] message {number}"
            try:
                exchange = await chat.send(text)
            except Exception as error:  # noqa: BLE001 - counted, the run goes on
                problems["errors"] += 1
                examples.append(f"{text!r}: {type(error).__name__}: {error}")
                continue
            latencies.append(exchange.seconds)
            if exchange.final != server.expected(text):
                problems["wrong"] += 1
                examples.append(f"{text!r}: expected {server.expected(text)!r}, shown {exchange.messages!r}")

    process = server.process
    _reset_peak_rss(process.pid)
    cpu_before = sum(process.cpu_times()[:2])
    started = time.perf_counter()
    await asyncio.gather(*(converse(index, chat) for index, chat in enumerate(chats)))
    seconds = time.perf_counter() - started
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    peak = _peak_rss_mb(process.pid)
    await asyncio.gather(*(chat.close() for chat in chats))
    return Round(server.name, sessions, messages, seconds, latencies, problems["errors"], problems["wrong"], cpu, peak,
                 examples[:5])


async def memory_per_idle_session(server: Server, sessions: int = 200) -> float:
    """KB of server memory each open, idle session costs (after the welcome)."""
    warm = [ChainlitChat(server.service.base_url) for _ in range(10)]
    await asyncio.gather(*(chat.connect() for chat in warm))
    await asyncio.gather(*(chat.welcome() for chat in warm))
    await asyncio.sleep(0.5)
    before = server.process.memory_info().rss
    chats = [ChainlitChat(server.service.base_url, timeout=60) for _ in range(sessions)]
    for batch in range(0, sessions, 50):
        await asyncio.gather(*(chat.connect() for chat in chats[batch:batch + 50]))
        await asyncio.gather(*(chat.welcome() for chat in chats[batch:batch + 50]))
    await asyncio.sleep(1.0)
    after = server.process.memory_info().rss
    await asyncio.gather(*(chat.close() for chat in chats + warm))
    return (after - before) / sessions / 1024


async def long_conversation(base_url: str, messages: int) -> int:
    """Play one session of `messages` exchanges; returns how many were answered."""
    answered = 0
    async with ChainlitChat(base_url, timeout=60) as chat:
        await chat.welcome()
        for number in range(messages):
            exchange = await chat.send(f"[long] message {number}")
            answered += exchange.final.startswith("[long]")
    return answered


def _median_round(rounds: list[Round]) -> Round:
    """The round with the median throughput (rounds alternate with the other server)."""
    ordered = sorted(rounds, key=lambda r: r.throughput)
    return ordered[len(ordered) // 2]


def _reset_peak_rss(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass  # not permitted here: the peak then counts from the process's start


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def floor_project(project: Path, into: Path) -> Path:
    """The floor app beside the same Chainlit config and translations as the project."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copytree(project / ".chainlit", into / ".chainlit", dirs_exist_ok=True)
    (into / "chainlit.md").write_text("", encoding="utf-8")
    (into / "app.py").write_text(FLOOR_APP, encoding="utf-8")
    return into


@dataclass
class BenchConfig:
    project: Path
    sessions: int = 50
    messages: int = 6
    latency_ms: float = 50.0
    rounds: int = 5
    sweep: tuple[int, ...] = ()
    idle_sessions: int = 200
    long_messages: int = 500


def run_bench(config: BenchConfig, report: Callable[[str], None] = print) -> dict[str, Any]:
    """Run everything; returns the figures (also reported line by line as they come)."""
    project = config.project
    work = Path(tempfile.mkdtemp(prefix="brandbot-bench-"))
    display = runtime_module(project, "display")
    router = Router(routing_for(project))
    floor: Service | None = None
    bot = None
    try:
        bot = start_bot(project, log_dir=work, latency_ms=config.latency_ms,
                        app_env={"TRANSITION_DELAY_SECONDS": "0", "REQUEST_TIMEOUT_SECONDS": "60",
                                 "MESSAGES_PER_MINUTE": "100000"})  # the load is not a customer typing
        middleware, app = bot.middleware, bot.app
        def answer(text: str) -> str:
            return router.decide(text).body["response"]  # type: ignore[index]

        def ours(text: str) -> str:
            return display.as_sent(text.split(" ", 1)[0] + " " + answer(text))

        reply = display.as_sent(answer("[s0] message 0"))
        floor_dir = floor_project(project, work / "floor")
        floor_port = free_port()
        floor = start("floor", chainlit_command(floor_port), cwd=floor_dir,
                      env=python_env({"FLOOR_LATENCY_MS": str(config.latency_ms), "FLOOR_REPLY": reply}),
                      port=floor_port, log_dir=work)
        servers = [Server("app", app, ours),
                   Server("floor", floor, lambda text: text.split(" ", 1)[0] + " " + reply)]
        results: dict[str, Any] = {"config": {**asdict(config), "project": str(project)}, "machine": machine()}

        async def main() -> None:
            for server in servers:  # warm both up: imports, first-request paths
                await load(server, 5, 2)
            rounds = []
            for _ in range(config.rounds):
                for server in servers:
                    result = await load(server, config.sessions, config.messages)
                    rounds.append(result)
                    report(_line(result, config.latency_ms))
            results["rounds"] = [r.summary(config.latency_ms) for r in rounds]
            results["median"] = {server.name: _median_round([r for r in rounds if r.target == server.name]).summary(
                config.latency_ms) for server in servers}
            single = {}
            for server in servers:
                best = min([await load(server, 1, 30) for _ in range(2)], key=lambda r: r.percentile(0.5))
                single[server.name] = best.summary(config.latency_ms)
                report(_line(best, config.latency_ms))
            results["single_session"] = single
            sweep = []
            for sessions in config.sweep:
                for server in servers:
                    result = await load(server, sessions, config.messages)
                    sweep.append(result.summary(config.latency_ms))
                    report(_line(result, config.latency_ms))
            results["sweep"] = sweep
            results["idle_session_kb"] = {server.name: round(await memory_per_idle_session(
                server, config.idle_sessions), 1) for server in servers}
            report(f"memory per idle session: {results['idle_session_kb']}")
            if config.long_messages:
                answered = await long_conversation(app.base_url, config.long_messages)
                stats = httpx.get(f"{middleware.base_url}/stats", timeout=5).json()
                results["long_conversation"] = {"messages": config.long_messages, "answered": answered,
                                                "largest_request_bytes": stats["largest_request_bytes"],
                                                "longest_history": stats["longest_history"]}
                report(f"long conversation: {results['long_conversation']}")

        asyncio.run(main())
        median = results["median"]
        results["ratio"] = round(median["app"]["throughput"] / median["floor"]["throughput"], 3)
        results["single_session_overhead_gap_ms"] = round(
            results["single_session"]["app"]["overhead_p50_ms"] - results["single_session"]["floor"]["overhead_p50_ms"],
            1)
        return results
    finally:
        if floor is not None:
            floor.stop()
        if bot is not None:
            bot.stop()
        shutil.rmtree(work, ignore_errors=True)


def generation_times(examples: list[Path]) -> dict[str, Any]:
    """In-process render time per example brand, and one `copier copy` CLI run."""
    from .brand_file import load_answers
    from .render import render_brand

    work = Path(tempfile.mkdtemp(prefix="brandbot-render-"))
    try:
        per_brand = {}
        for brand_file in examples:
            times = []
            for attempt in range(3):
                started = time.perf_counter()
                render_brand(load_answers(brand_file), work / f"{brand_file.stem}-{attempt}",
                             base_dir=brand_file.parent)
                times.append(time.perf_counter() - started)
            per_brand[brand_file.stem] = {"first_ms": round(times[0] * 1000), "best_ms": round(min(times) * 1000)}
        from .paths import template_root

        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "copier", "copy", "--quiet", "--defaults", "--vcs-ref", "HEAD",
                        "--data-file", str(examples[0]), str(template_root()), str(work / "cli")], check=True,
                       capture_output=True)
        cli_ms = round((time.perf_counter() - started) * 1000)
        return {"in_process": per_brand, "copier_cli_ms": cli_ms}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import platform

    import chainlit
    import httpx as httpx_module

    return {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "chainlit": chainlit.__version__ if hasattr(chainlit, "__version__") else "?",
            "httpx": httpx_module.__version__}


def _line(result: Round, latency_ms: float) -> str:
    summary = result.summary(latency_ms)
    return (f"{summary['target']:>5} {summary['sessions']:>3}x{summary['messages']}: "
            f"{summary['throughput']:7.1f} msg/s  p50 {summary['p50_ms']:6.1f}  p95 {summary['p95_ms']:6.1f}  "
            f"p99 {summary['p99_ms']:6.1f} ms  cpu {summary['cpu_ms_per_message']:.2f} ms/msg  "
            f"peak {summary['peak_rss_mb']:.0f} MB  errors {summary['errors']}  wrong {summary['wrong']}")


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def plot(results: dict[str, Any], path: Path) -> Path:
    """Throughput and p95 latency against the number of sessions, app and floor side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for target, style in (("app", "o-"), ("floor", "s--")):
        rows = sorted((row for row in results["sweep"] if row["target"] == target), key=lambda row: row["sessions"])
        sessions = [row["sessions"] for row in rows]
        left.plot(sessions, [row["throughput"] for row in rows], style, label=target)
        right.plot(sessions, [row["p95_ms"] for row in rows], style, label=target)
    latency = results["config"]["latency_ms"]
    left.set(title="throughput", xlabel="concurrent sessions", ylabel="messages / s", xscale="log")
    right.set(title=f"p95 end-to-end latency (middleware {latency:g} ms)", xlabel="concurrent sessions",
              ylabel="ms", xscale="log")
    ticks = sorted({row["sessions"] for row in results["sweep"]})
    for axis in (left, right):
        axis.set_xticks(ticks, [str(tick) for tick in ticks])
        axis.minorticks_off()
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
