"""Load generation: customers speaking Chainlit's socket.io protocol to one server, and what it cost.

Each exchange is timed by the client (`chat_client`); CPU and peak memory are read from the
server's own process, so the client's share of the machine is not counted against the server.
A streamed answer also records when its first part arrived, on `time.monotonic()`'s clock, which
other processes on the machine share (the streaming mode compares it with the sender's).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ..chat_client import ChainlitChat
from ..processes import Service
from .report import RoundFigures


@dataclass
class Server:
    """A server under test and what its right answer to a message is."""

    name: str
    service: Service
    expected: Callable[[str], str]

    @property
    def process(self) -> psutil.Process:
        return psutil.Process(self.service.process.pid)


@dataclass(frozen=True)
class FirstToken:
    """When a streamed answer's first part reached the customer, and what it showed.

    Times are `time.monotonic()` (the client's perf_counter converted; on Linux both read
    CLOCK_MONOTONIC, which every process shares)."""

    session: str  # the load message's tag without brackets: "s7"
    message: str  # the message answered
    sent_at: float
    arrived_at: float
    shown: str  # the content of the first streamed part (Chainlit's stream_start)
    tokens: int  # stream_start and stream_token events of the answer


@dataclass
class Tally:
    """What the sessions of one round saw, added to as each exchange ends."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    wrong: int = 0
    problems: list[str] = field(default_factory=list)
    first_tokens: list[FirstToken] = field(default_factory=list)  # streamed answers only


@dataclass
class Round:
    """One load round against one server, as measured."""

    target: str
    sessions: int
    messages: int
    seconds: float
    tally: Tally = field(repr=False)
    cpu_seconds: float
    peak_rss_mb: float

    @property
    def throughput(self) -> float:
        return self.sessions * self.messages / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.tally.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    def figures(self, latency_ms: float) -> RoundFigures:
        """The round for reading; `latency_ms`, the middleware's, gives the overhead over it."""
        p50_ms = self.percentile(0.5) * 1000
        return RoundFigures(
            target=self.target, sessions=self.sessions, messages=self.messages,
            throughput=round(self.throughput, 1), p50_ms=round(p50_ms, 1),
            p95_ms=round(self.percentile(0.95) * 1000, 1), p99_ms=round(self.percentile(0.99) * 1000, 1),
            overhead_p50_ms=round(p50_ms - latency_ms, 1),
            cpu_ms_per_message=round(self.cpu_seconds * 1000 / max(1, len(self.tally.latencies)), 2),
            peak_rss_mb=round(self.peak_rss_mb, 1), errors=self.tally.errors, wrong=self.tally.wrong,
            problems=self.tally.problems[:5])


def median_round(rounds: list[Round]) -> Round:
    """The round with the median throughput (rounds alternate with the other server)."""
    ordered = sorted(rounds, key=lambda measured: measured.throughput)
    return ordered[len(ordered) // 2]


#: Something a round awaits at one of its moments (see `load`).
Hook = Callable[[], Awaitable[None]]


async def load(server: Server, sessions: int, messages: int, timeout: float = 120, *,
               prepared: Hook | None = None, answered: Hook | None = None) -> Round:
    """N sessions connect and get their welcome (untimed), then each sends M messages in turn.

    `prepared` is awaited once every session is open, before the clock starts (to let writes
    settle, or take the database down); `answered` after the last answer, before the sessions
    close, with CPU and peak memory still counting (so the writes a round leaves behind are part
    of its cost)."""
    chats = [ChainlitChat(server.service.base_url, timeout=timeout) for _ in range(sessions)]
    await _open(chats)
    if prepared is not None:
        await prepared()
    tally = Tally()
    process = server.process
    _reset_peak_rss(process.pid)
    cpu_before = _cpu_seconds(process)
    started = time.perf_counter()
    await asyncio.gather(*(_converse(server, f"s{index}", chat, messages, tally) for index, chat in enumerate(chats)))
    seconds = time.perf_counter() - started
    if answered is not None:
        await answered()
    cpu = _cpu_seconds(process) - cpu_before
    peak = _peak_rss_mb(process.pid)
    await asyncio.gather(*(chat.close() for chat in chats))
    return Round(server.name, sessions, messages, seconds, tally, cpu, peak)


async def _converse(server: Server, session: str, chat: ChainlitChat, messages: int, tally: Tally) -> None:
    """One session's messages in turn, each answer checked against the server's right one."""
    for number in range(messages):
        text = f"[{session}] message {number}"
        events_before, sent_at = len(chat.events), time.perf_counter()
        try:
            exchange = await chat.send(text)
        except Exception as error:  # noqa: BLE001 - counted, the run goes on
            tally.errors += 1
            tally.problems.append(f"{text!r}: {type(error).__name__}: {error}")
            continue
        tally.latencies.append(exchange.seconds)
        if exchange.first_token_at is not None:
            to_monotonic = time.monotonic() - time.perf_counter()  # 0 where both are CLOCK_MONOTONIC
            shown = next((str(data.get("output", "")) for event, data in chat.events[events_before:]
                          if event == "stream_start"), "")
            tally.first_tokens.append(FirstToken(session, text, sent_at + to_monotonic,
                                                 exchange.first_token_at + to_monotonic, shown, exchange.tokens))
        if exchange.final != server.expected(text):
            tally.wrong += 1
            tally.problems.append(f"{text!r}: expected {server.expected(text)!r}, shown {exchange.messages!r}")


async def memory_per_idle_session(server: Server, sessions: int = 200) -> float:
    """KB of server memory each open, idle session costs (after the welcome)."""
    warm = [ChainlitChat(server.service.base_url) for _ in range(10)]
    await _open(warm)
    await asyncio.sleep(0.5)
    before = server.process.memory_info().rss
    chats = [ChainlitChat(server.service.base_url, timeout=60) for _ in range(sessions)]
    for batch in range(0, sessions, 50):
        await _open(chats[batch:batch + 50])
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


async def _open(chats: list[ChainlitChat]) -> None:
    """Connect every session, then wait for every welcome: opening is never timed."""
    await asyncio.gather(*(chat.connect() for chat in chats))
    await asyncio.gather(*(chat.welcome() for chat in chats))


def _cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU time the process has used so far."""
    return sum(process.cpu_times()[:2])


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
