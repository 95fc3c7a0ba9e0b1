"""The streaming mode: how soon a streamed answer's first token reaches the customer, and at what cost.

The reference middleware streams every answer (SSE) in `deltas` pieces `token_ms` apart after its
latency; the streaming floor streams the same pieces itself with Chainlit's `stream_token`. After a
warm-up, `rounds` full rounds alternate app and floor, then `rounds` one-session rounds do the same
(each of twice the messages). Each figure pools its rounds (see report.StreamFigures).

Both senders say when each answer's first piece left them: the middleware lists when it wrote each
delta of a tagged answer (GET /stream-times), the floor writes when it called its first
`stream_token`, both on `time.monotonic()`. The customer's side records when the first token arrived
on the same clock (load.FirstToken): on Linux `time.monotonic()` and `time.perf_counter()` both read
CLOCK_MONOTONIC, which all processes share, so the difference is the time in between. Each answer is
matched to its sender's record by session tag, sent after the customer's message and before the
first token arrived.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from ..reference_middleware import split_text
from .config import BenchConfig
from .load import FirstToken, Round, Server, load
from .report import StreamFigures, StreamResults
from .run import Report, this_machine
from .servers import StreamServers, started_streamed

#: Each piece's sending time, by session tag, one list per answer (the floor records its first only).
SendTimes = dict[str, list[list[float]]]


def run_stream_bench(config: BenchConfig, report: Report = print) -> StreamResults:
    """Start the streaming middleware, the app and the streaming floor, take every figure, stop them."""
    with (tempfile.TemporaryDirectory(prefix="brandbot-bench-stream-", ignore_cleanup_errors=True) as work,
          started_streamed(config, Path(work)) as servers):
        return asyncio.run(_measure(config, servers, report))


def clocks() -> dict[str, str]:
    """The clocks the times are read on: the customer's perf_counter is converted to monotonic."""
    return {name: time.get_clock_info(name).implementation for name in ("perf_counter", "monotonic")}


@dataclass
class Sample:
    """One streamed answer's times, in ms (see report.StreamFigures)."""

    first_token: float
    added: float
    word_wait: float
    after_piece: float


@dataclass
class Measured:
    """One round as loaded, and its streamed answers set against their senders' records."""

    round: Round
    samples: list[Sample]
    deltas: int  # pieces streamed over the round's answers
    unmatched: int
    middleware_cpu_seconds: float | None  # the app's rounds: the streaming middleware's CPU during the round


class SendRecords:
    """Reads what each sender recorded since the last read: the middleware's GET /stream-times for the
    app, the floor's file for the floor."""

    def __init__(self, servers: StreamServers) -> None:
        self.servers = servers
        self.after = 0  # the middleware's running number of the last answer read
        self.floor_offset = 0  # bytes of the floor's file read

    async def since_last(self, server: Server) -> SendTimes:
        times: SendTimes = {}
        if server.name == "app":
            async with httpx.AsyncClient(timeout=10) as http:
                answered = await http.get(f"{self.servers.middleware.base_url}/stream-times",
                                          params={"after": self.after})
            answered.raise_for_status()
            for answer in answered.json()["answers"]:
                self.after = max(self.after, answer["n"])
                times.setdefault(answer["tag"], []).append(answer["deltas"])
            return times
        with self.servers.floor_times.open("rb") as lines:
            lines.seek(self.floor_offset)
            written = lines.read()
        complete = written[:written.rfind(b"\n") + 1]  # a line being written is read next time
        self.floor_offset += len(complete)
        for line in complete.decode().splitlines():
            tag, at = line.split()
            times.setdefault(tag, []).append([float(at)])
        return times


async def _measure(config: BenchConfig, servers: StreamServers, report: Report) -> StreamResults:
    records = SendRecords(servers)
    for server in servers.under_load:
        await load(server, 5, 2)  # warm-up: imports, first requests, the middleware's pool
        await records.since_last(server)
    full: list[Measured] = []
    for _ in range(config.rounds):
        for server in servers.under_load:
            full.append(await _round(config, servers, records, server, config.sessions, config.messages, report))
    single: list[Measured] = []
    for _ in range(config.rounds):
        for server in servers.under_load:
            single.append(await _round(config, servers, records, server, 1, 2 * config.messages, report))
    return StreamResults(
        config=config, machine=this_machine(), clocks=clocks(),
        rounds=[_figures([measured]) for measured in full], single_rounds=[_figures([measured]) for measured in single],
        loaded={server.name: _figures([measured for measured in full if measured.round.target == server.name])
                for server in servers.under_load},
        single_session={server.name: _figures([measured for measured in single if measured.round.target == server.name])
                        for server in servers.under_load})


async def _round(config: BenchConfig, servers: StreamServers, records: SendRecords, server: Server, sessions: int,
                 messages: int, report: Report) -> Measured:
    middleware = psutil.Process(servers.middleware.process.pid) if server.name == "app" else None
    middleware_cpu = _cpu_seconds(middleware) if middleware else 0.0
    measured = await load(server, sessions, messages)
    middleware_cpu = _cpu_seconds(middleware) - middleware_cpu if middleware else None
    sent = await records.since_last(server)
    if server.name == "app":
        def raw(message: str) -> str:  # the middleware's answer, tagged, as it streams it
            return f"{_tag(message)} {servers.answers.reply(message)}"
    else:
        def raw(message: str) -> str:  # the floor streams the words as the app sends them
            return f"{_tag(message)} {servers.answers.floor_reply}"
    samples, deltas = [], 0
    for token in measured.tally.first_tokens:
        pieces = split_text(raw(token.message), config.deltas)
        deltas += len(pieces)
        sample = _sample(token, sent, pieces, servers.answers.as_sent if server.name == "app" else None)
        if sample is not None:
            samples.append(sample)
    result = Measured(measured, samples, deltas, unmatched=len(measured.tally.latencies) - len(samples),
                      middleware_cpu_seconds=middleware_cpu)
    report(_figures([result]).line())
    return result


def _cpu_seconds(process: psutil.Process) -> float:
    return sum(process.cpu_times()[:2])


def _tag(message: str) -> str:
    return message.split(" ", 1)[0]


def _sample(token: FirstToken, sent: SendTimes, pieces: list[str],
            as_sent: Callable[[str], str] | None) -> Sample | None:
    """The answer's times against the record its sender made of it (None when there is none).

    `as_sent` (the app only): how the bot shows a text, to find the delta that completed the first
    token's text; the floor shows each piece as it is, so its first piece is the one shown."""
    times = next((times for times in reversed(sent.get(token.session, []))
                  if times and token.sent_at <= times[0] <= token.arrived_at), None)
    if times is None:
        return None
    shown_by = 0 if as_sent is None else _completing_delta("".join(pieces), pieces, token.shown, as_sent)
    if shown_by is None or shown_by >= len(times):
        return None
    return Sample(first_token=(token.arrived_at - token.sent_at) * 1000,
                  added=(token.arrived_at - times[0]) * 1000, word_wait=(times[shown_by] - times[0]) * 1000,
                  after_piece=(token.arrived_at - times[shown_by]) * 1000)


def _completing_delta(text: str, pieces: list[str], shown: str, as_sent: Callable[[str], str]) -> int | None:
    """The index of the delta after which the bot could show `shown`: the one that brought the character
    after it (the bot shows a word once the white space after it has come), or the last one."""
    length = next((end for end in range(1, len(text) + 1) if as_sent(text[:end]) == shown), None)
    if length is None:
        return None
    received = 0
    for index, piece in enumerate(pieces):
        received += len(piece)
        if received > length or received == len(text):
            return index
    return None


def _percentile(values: list[float], share: float) -> float:
    """As load.Round.percentile: the value at that share of the ordered values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _figures(measured: list[Measured]) -> StreamFigures:
    """One server's rounds pooled: percentiles of every answer, the median round's throughput, CPU in total."""
    first = measured[0].round
    rounds = [one.round for one in measured]
    samples = [sample for one in measured for sample in one.samples]
    latencies = [seconds * 1000 for one in rounds for seconds in one.tally.latencies]
    tokens = [token.tokens for one in rounds for token in one.tally.first_tokens]
    deltas = sum(one.deltas for one in measured)
    cpu_ms = sum(one.cpu_seconds for one in rounds) * 1000
    middleware_ms = [one.middleware_cpu_seconds * 1000 for one in measured if one.middleware_cpu_seconds is not None]

    def ms(values: list[float], share: float) -> float:
        return round(_percentile(values, share), 1)

    return StreamFigures(
        target=first.target, sessions=first.sessions, messages=first.messages, rounds=len(rounds),
        answers=len(latencies), throughput=round(statistics.median(one.throughput for one in rounds), 1),
        p50_ms=ms(latencies, 0.5), p95_ms=ms(latencies, 0.95),
        first_token_p50_ms=ms([s.first_token for s in samples], 0.5),
        first_token_p95_ms=ms([s.first_token for s in samples], 0.95),
        added_p50_ms=ms([s.added for s in samples], 0.5), added_p95_ms=ms([s.added for s in samples], 0.95),
        word_wait_p50_ms=ms([s.word_wait for s in samples], 0.5),
        word_wait_p95_ms=ms([s.word_wait for s in samples], 0.95),
        after_piece_p50_ms=ms([s.after_piece for s in samples], 0.5),
        after_piece_p95_ms=ms([s.after_piece for s in samples], 0.95),
        tokens_per_answer=round(sum(tokens) / max(1, len(tokens)), 1),
        deltas_per_answer=round(deltas / max(1, len(tokens)), 1),
        cpu_ms_per_delta=round(cpu_ms / max(1, deltas), 3), cpu_ms_per_answer=round(cpu_ms / max(1, len(latencies)), 2),
        middleware_cpu_ms_per_delta=round(sum(middleware_ms) / max(1, deltas), 3) if middleware_ms else None,
        peak_rss_mb=round(max(one.peak_rss_mb for one in rounds), 1),
        errors=sum(one.tally.errors for one in rounds), wrong=sum(one.tally.wrong for one in rounds),
        unmatched=sum(one.unmatched for one in measured),
        problems=[problem for one in rounds for problem in one.tally.problems][:5])
