"""One bench run, step by step, each step loading the app and then the floor.

The steps: warm both up, alternate full rounds (the median of each side is its figure), one
customer alone, the sweep over session counts, memory per idle session, one long conversation.
"""

from __future__ import annotations

import asyncio
import platform
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import httpx
import psutil

from .config import BenchConfig
from .load import Round, Server, load, long_conversation, median_round, memory_per_idle_session
from .report import BenchResults, LongConversation, Machine, RoundFigures
from .servers import Servers, started

#: Where a run says what it just measured, one line at a time.
Report = Callable[[str], None]


def run_bench(config: BenchConfig, report: Report = print) -> BenchResults:
    """Start the servers, take every figure, stop the servers; rounds are reported as they end."""
    with (tempfile.TemporaryDirectory(prefix="brandbot-bench-", ignore_cleanup_errors=True) as work,
          started(config, Path(work)) as servers):
        return asyncio.run(_measure(config, servers, report))


async def _measure(config: BenchConfig, servers: Servers, report: Report) -> BenchResults:
    machine = this_machine()
    targets = servers.under_load
    await _warm_up(targets)
    rounds = await _alternating_rounds(config, targets, report)
    single_session = await _single_session(config, targets, report)
    sweep = await _sweep(config, targets, report)
    idle_session_kb = await _idle_memory(config, targets, report)
    long = await _long_conversation(config, servers, report) if config.long_messages else None
    return BenchResults(
        config=config, machine=machine, rounds=[measured.figures(config.latency_ms) for measured in rounds],
        median={server.name: median_round([measured for measured in rounds if measured.target == server.name])
                .figures(config.latency_ms) for server in targets},
        single_session=single_session, sweep=sweep, idle_session_kb=idle_session_kb, long_conversation=long)


async def _warm_up(targets: list[Server]) -> None:
    """A few exchanges each, so imports and first-request paths are not measured."""
    for server in targets:
        await load(server, 5, 2)


async def _alternating_rounds(config: BenchConfig, targets: list[Server], report: Report) -> list[Round]:
    """`rounds` full rounds per server, taking turns, so a noisy moment of the machine hits both."""
    rounds = []
    for _ in range(config.rounds):
        for server in targets:
            measured = await load(server, config.sessions, config.messages)
            _reported(measured, config, report)
            rounds.append(measured)
    return rounds


async def _single_session(config: BenchConfig, targets: list[Server], report: Report) -> dict[str, RoundFigures]:
    """One customer alone, best of two: what each server adds to a wait when nothing queues."""
    single = {}
    for server in targets:
        best = min([await load(server, 1, 30) for _ in range(2)], key=lambda measured: measured.percentile(0.5))
        single[server.name] = _reported(best, config, report)
    return single


async def _sweep(config: BenchConfig, targets: list[Server], report: Report) -> list[RoundFigures]:
    """One round per session count and server, for the plot."""
    return [_reported(await load(server, sessions, config.messages), config, report)
            for sessions in config.sweep for server in targets]


async def _idle_memory(config: BenchConfig, targets: list[Server], report: Report) -> dict[str, float]:
    kb = {server.name: round(await memory_per_idle_session(server, config.idle_sessions), 1) for server in targets}
    report(f"memory per idle session: {kb}")
    return kb


async def _long_conversation(config: BenchConfig, servers: Servers, report: Report) -> LongConversation:
    """One session far longer than the history kept; the middleware's stats show what the app sent."""
    answered = await long_conversation(servers.app.service.base_url, config.long_messages)
    stats = httpx.get(f"{servers.middleware.base_url}/stats", timeout=5).json()
    long = LongConversation(messages=config.long_messages, answered=answered,
                            largest_request_bytes=stats["largest_request_bytes"],
                            longest_history=stats["longest_history"])
    report(f"long conversation: {asdict(long)}")
    return long


def _reported(measured: Round, config: BenchConfig, report: Report) -> RoundFigures:
    figures = measured.figures(config.latency_ms)
    report(figures.line())
    return figures


def this_machine() -> Machine:
    """What the figures were measured on (Chainlit's version read without importing it: the import
    writes a `.chainlit/` folder into the working directory)."""
    return Machine(cpus=psutil.cpu_count(), memory_gb=round(psutil.virtual_memory().total / 2**30, 1),
                   python=platform.python_version(), platform=platform.platform(), chainlit=version("chainlit"),
                   httpx=httpx.__version__)
