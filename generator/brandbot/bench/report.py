"""The figures of a bench run, typed, and the three ways they are shown: JSON, a table, a plot.

The JSON's keys and shape are what `docs/performance.json` and `tests/test_bench.py` read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from rich.table import Table

from .config import BenchConfig

TARGETS = ("app", "floor")


@dataclass(frozen=True)
class RoundFigures:
    """One load round against one server, rounded for reading (times in ms)."""

    target: str
    sessions: int
    messages: int
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    overhead_p50_ms: float
    cpu_ms_per_message: float
    peak_rss_mb: float
    errors: int
    wrong: int
    problems: list[str]

    def line(self) -> str:
        """The progress line printed as the round ends."""
        return (f"{self.target:>5} {self.sessions:>3}x{self.messages}: "
                f"{self.throughput:7.1f} msg/s  p50 {self.p50_ms:6.1f}  p95 {self.p95_ms:6.1f}  "
                f"p99 {self.p99_ms:6.1f} ms  cpu {self.cpu_ms_per_message:.2f} ms/msg  "
                f"peak {self.peak_rss_mb:.0f} MB  errors {self.errors}  wrong {self.wrong}")


@dataclass(frozen=True)
class LongConversation:
    """One session of many exchanges: whether the history the app sends stays bounded."""

    messages: int
    answered: int
    largest_request_bytes: int
    longest_history: int


@dataclass(frozen=True)
class RenderTimes:
    """Rendering one example brand in-process, three times: the first (cold) and the best."""

    first_ms: int
    best_ms: int


@dataclass(frozen=True)
class GenerationTimes:
    """Render times per example brand, and one `copier copy` CLI run."""

    in_process: dict[str, RenderTimes]
    copier_cli_ms: int


@dataclass(frozen=True)
class Machine:
    """What the figures were measured on: absolute numbers depend on it, the ratio much less."""

    cpus: int
    memory_gb: float
    python: str
    platform: str
    chainlit: str
    httpx: str


@dataclass
class BenchResults:
    """Every figure of a run; `generation` is added by the caller when it times rendering too."""

    config: BenchConfig
    machine: Machine
    rounds: list[RoundFigures]
    median: dict[str, RoundFigures]
    single_session: dict[str, RoundFigures]
    sweep: list[RoundFigures]
    idle_session_kb: dict[str, float]
    long_conversation: LongConversation | None
    generation: GenerationTimes | None = None

    @property
    def ratio(self) -> float:
        """App over floor throughput in the median rounds: the figure that matters."""
        return round(self.median["app"].throughput / self.median["floor"].throughput, 3)

    @property
    def single_session_overhead_gap_ms(self) -> float:
        """What the app adds to one lone customer's wait, beyond what the floor adds."""
        return round(self.single_session["app"].overhead_p50_ms - self.single_session["floor"].overhead_p50_ms, 1)

    def as_json(self) -> dict[str, Any]:
        """The figures as JSON values; a figure that was not taken has no key."""
        figures: dict[str, Any] = {
            "config": self.config.as_json(), "machine": asdict(self.machine),
            "rounds": [asdict(row) for row in self.rounds],
            "median": {target: asdict(row) for target, row in self.median.items()},
            "single_session": {target: asdict(row) for target, row in self.single_session.items()},
            "sweep": [asdict(row) for row in self.sweep], "idle_session_kb": dict(self.idle_session_kb)}
        if self.long_conversation is not None:
            figures["long_conversation"] = asdict(self.long_conversation)
        figures["ratio"] = self.ratio
        figures["single_session_overhead_gap_ms"] = self.single_session_overhead_gap_ms
        if self.generation is not None:
            figures["generation"] = asdict(self.generation)
        return figures


def write_json(results: BenchResults, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results.as_json(), indent=2) + "\n", encoding="utf-8")


#: The table's rows from the median rounds: label, and what to show of a server's round.
_MEDIAN_ROWS: tuple[tuple[str, Callable[[RoundFigures], object]], ...] = (
    ("throughput (msg/s, median round)", attrgetter("throughput")),
    ("p50 latency (ms)", attrgetter("p50_ms")),
    ("p95 latency (ms)", attrgetter("p95_ms")),
    ("p99 latency (ms)", attrgetter("p99_ms")),
    ("server CPU per message (ms)", attrgetter("cpu_ms_per_message")),
    ("server peak RSS (MB)", attrgetter("peak_rss_mb")),
    ("errors / wrong answers", lambda row: f"{row.errors} / {row.wrong}"),
)


def bench_table(results: BenchResults) -> Table:
    """App beside floor, figure by figure, under the throughput ratio."""
    table = Table(title=f"app / floor throughput: {results.ratio:.2f}")
    for column in ("figure", *TARGETS):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for label, show in _MEDIAN_ROWS:
        table.add_row(label, *(str(show(results.median[target])) for target in TARGETS))
    table.add_row("1 session: p50 overhead over the middleware (ms)",
                  *(str(results.single_session[target].overhead_p50_ms) for target in TARGETS))
    table.add_row("memory per idle session (KB)", *(str(results.idle_session_kb[target]) for target in TARGETS))
    for row in results.sweep:
        if row.target == "app":
            floor = next(other for other in results.sweep if other.target == "floor" and other.sessions == row.sessions)
            table.add_row(f"{row.sessions} sessions: msg/s, p95 ms, errors+wrong", _sweep_cell(row), _sweep_cell(floor))
    if results.long_conversation is not None:
        long = results.long_conversation
        table.add_row(f"{long.messages}-message chat: largest request, longest history",
                      f"{long.largest_request_bytes} B, {long.longest_history} turns", "-")
    if results.generation is not None:
        for stem, times in results.generation.in_process.items():
            table.add_row(f"render {stem} in-process (first / best, ms)", f"{times.first_ms} / {times.best_ms}", "-")
        table.add_row("one `copier copy` CLI run (ms)", str(results.generation.copier_cli_ms), "-")
    return table


def _sweep_cell(row: RoundFigures) -> str:
    return f"{row.throughput}, {row.p95_ms}, {row.errors + row.wrong}"


def plot(results: BenchResults, path: Path) -> Path:
    """Throughput and p95 latency against the number of sessions, app and floor side by side."""
    import matplotlib  # a dev extra: imported only when a plot is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for target, style in zip(TARGETS, ("o-", "s--"), strict=True):
        rows = sorted((row for row in results.sweep if row.target == target), key=attrgetter("sessions"))
        sessions = [row.sessions for row in rows]
        left.plot(sessions, [row.throughput for row in rows], style, label=target)
        right.plot(sessions, [row.p95_ms for row in rows], style, label=target)
    left.set(title="throughput", xlabel="concurrent sessions", ylabel="messages / s", xscale="log")
    right.set(title=f"p95 end-to-end latency (middleware {results.config.latency_ms:g} ms)",
              xlabel="concurrent sessions", ylabel="ms", xscale="log")
    ticks = sorted({row.sessions for row in results.sweep})
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
