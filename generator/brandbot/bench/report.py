"""The figures of a bench run, typed, and the three ways they are shown: JSON, a table, a plot.

The JSON's keys and shape are what `docs/performance.json` (`docs/performance-stored.json` for
the persistence mode, `docs/performance-streamed.json` for the streaming mode) and `tests/test_bench.py` read.
"""

from __future__ import annotations

import json
import statistics
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
        return (f"{self.target:>10} {self.sessions:>3}x{self.messages}: "
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


def write_json(results: BenchResults | StoredResults | StreamResults, path: Path) -> None:
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


# ---- the persistence mode (`brandbot bench --persistence ...`) ----

STORED_TARGETS = ("app", "floor-db", "floor-none")
_STORED_HEADERS = ("app", "floor, same data layer", "floor, no database")


@dataclass(frozen=True)
class Writes:
    """What a server wrote to its database, per answered message.

    Statements are those the server's SQLAlchemy engines executed without error (counted by
    `counted_chainlit.py`); rows_written is the row count those INSERT/UPDATE/DELETE statements
    reported; rows_added the growth of each table, read from the database itself."""

    answers: int
    write_statements: float
    inserts: float
    updates: float
    deletes: float
    rows_written: float
    selects: float
    commits: float
    failed: float
    rows_added: dict[str, float]
    drain_ms: float  # from the round's last answer to its last statement (the backlog); median over rounds


@dataclass(frozen=True)
class StoredRound:
    """One round of the persistence mode: the load figures and, for a storing server, its writes.

    `sustained` counts the round until its last write rather than its last answer: Chainlit writes
    from tasks nobody waits for, so a backlog can outlast the answers (msg/s)."""

    figures: RoundFigures
    writes: Writes | None
    sustained: float


@dataclass(frozen=True)
class DatabaseDown:
    """One round with the database down from before the first message to after the last answer."""

    figures: RoundFigures
    writes_while_down: int  # write statements that still succeeded while it was down
    failed_while_down: int  # statements the driver failed while it was down
    seconds_to_store_again: float | None  # after the database is back, until a round's answers were stored
    log_lines: list[str]  # the server's log lines about the database during and after the outage (first 5)


@dataclass(frozen=True)
class StoredDatabase:
    """Every figure of one database kind."""

    kind: str
    rounds: list[StoredRound]
    median: dict[str, RoundFigures]
    writes: dict[str, Writes]  # over all rounds, for the storing servers
    down: dict[str, DatabaseDown]
    database_log_lines: int  # the app's log lines about the database while it was up (0 expected)

    @property
    def ratio_same_database(self) -> float:
        """App over the floor storing through the same data layer: goal >= 0.85."""
        return round(self.median["app"].throughput / self.median["floor-db"].throughput, 3)

    @property
    def ratio_no_database(self) -> float:
        """App (storing) over the floor storing nothing: goal >= 0.75."""
        return round(self.median["app"].throughput / self.median["floor-none"].throughput, 3)

    @property
    def sustained(self) -> dict[str, float]:
        """Each server's median throughput counted until its last write (see StoredRound)."""
        by_target: dict[str, list[float]] = {}
        for row in self.rounds:
            by_target.setdefault(row.figures.target, []).append(row.sustained)
        return {target: round(statistics.median(values), 1) for target, values in by_target.items()}

    @property
    def sustained_ratio_same_database(self) -> float:
        return round(self.sustained["app"] / self.sustained["floor-db"], 3)

    @property
    def sustained_ratio_no_database(self) -> float:
        return round(self.sustained["app"] / self.sustained["floor-none"], 3)

    def round_ratios(self, floor: str) -> list[float]:
        """App over `floor` round by round (each app round beside the floor round after it)."""
        by_target: dict[str, list[RoundFigures]] = {}
        for row in self.rounds:
            by_target.setdefault(row.figures.target, []).append(row.figures)
        return [round(app.throughput / other.throughput, 3)
                for app, other in zip(by_target["app"], by_target[floor], strict=True)]

    def as_json(self) -> dict[str, Any]:
        return {
            "rounds": [{**asdict(row.figures), "sustained": row.sustained,
                        "writes": asdict(row.writes) if row.writes else None} for row in self.rounds],
            "median": {target: asdict(row) for target, row in self.median.items()},
            "ratio_same_database": self.ratio_same_database, "ratio_no_database": self.ratio_no_database,
            "sustained": self.sustained, "sustained_ratio_same_database": self.sustained_ratio_same_database,
            "sustained_ratio_no_database": self.sustained_ratio_no_database,
            "round_ratios": {"same_database": self.round_ratios("floor-db"),
                             "no_database": self.round_ratios("floor-none")},
            "writes_per_answer": {target: asdict(writes) for target, writes in self.writes.items()},
            "database_down": {target: asdict(down) for target, down in self.down.items()},
            "database_log_lines": self.database_log_lines}


@dataclass
class StoredResults:
    """Every figure of a persistence run, one entry per database kind."""

    config: BenchConfig
    machine: Machine
    databases: dict[str, StoredDatabase]

    def as_json(self) -> dict[str, Any]:
        return {"config": self.config.as_json(), "machine": asdict(self.machine),
                "stored_conversations": {kind: figures.as_json() for kind, figures in self.databases.items()}}


#: The table's rows per database: label, and what to show of each server (None: not taken for it).
_STORED_ROWS: tuple[tuple[str, Callable[[StoredDatabase, str], object]], ...] = (
    ("throughput (msg/s, median round)", lambda db, target: db.median[target].throughput),
    ("throughput until the last write (msg/s, median)", lambda db, target: db.sustained[target]),
    ("p50 / p95 latency (ms)", lambda db, target: f"{db.median[target].p50_ms} / {db.median[target].p95_ms}"),
    ("server CPU per message (ms, backlog included)", lambda db, target: db.median[target].cpu_ms_per_message),
    ("server peak RSS (MB)", lambda db, target: db.median[target].peak_rss_mb),
    ("errors / wrong answers (all rounds)", lambda db, target: "{} / {}".format(
        *(sum(getattr(row.figures, key) for row in db.rounds if row.figures.target == target)
          for key in ("errors", "wrong")))),
    ("write statements per answer", lambda db, target: _writes(db, target, "write_statements")),
    ("rows written per answer", lambda db, target: _writes(db, target, "rows_written")),
    ("SELECTs / commits per answer", lambda db, target: _writes(db, target, "selects", "commits")),
    ("steps / threads rows added per answer", lambda db, target: None if target not in db.writes else
     f"{db.writes[target].rows_added.get('steps', 0)} / {db.writes[target].rows_added.get('threads', 0)}"),
    ("write backlog after a round (ms, median)", lambda db, target: _writes(db, target, "drain_ms")),
    ("database down: p50 / p95 latency (ms)", lambda db, target: None if target not in db.down else
     f"{db.down[target].figures.p50_ms} / {db.down[target].figures.p95_ms}"),
    ("database down: errors / wrong answers", lambda db, target: None if target not in db.down else
     f"{db.down[target].figures.errors} / {db.down[target].figures.wrong}"),
    ("database back: stored again after (s)", lambda db, target: None if target not in db.down else
     db.down[target].seconds_to_store_again),
)


def _writes(db: StoredDatabase, target: str, *keys: str) -> str | None:
    if target not in db.writes:
        return None
    return " / ".join(str(getattr(db.writes[target], key)) for key in keys)


def stored_tables(results: StoredResults) -> list[Table]:
    """One table per database: the app beside both floors, under the two throughput ratios."""
    tables = []
    for kind, db in results.databases.items():
        table = Table(title=f"{kind}: app / floor with the same data layer {db.ratio_same_database:.2f} (goal 0.85), "
                            f"app / floor without a database {db.ratio_no_database:.2f} (goal 0.75); "
                            f"until the last write: {db.sustained_ratio_same_database:.2f} and "
                            f"{db.sustained_ratio_no_database:.2f}")
        table.add_column("figure")
        for header in _STORED_HEADERS:
            table.add_column(header, justify="right")
        for label, show in _STORED_ROWS:
            table.add_row(label, *(_cell(show(db, target)) for target in STORED_TARGETS))
        tables.append(table)
    return tables


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


# ---- the streaming mode (`brandbot bench --stream`) ----


@dataclass(frozen=True)
class StreamFigures:
    """Streamed answers from one server, in one round or pooled over several (times in ms).

    Pooled over rounds, the percentiles are of every answer, `throughput` is the median round's
    and CPU the total over the total. `added` runs from the first piece leaving its sender (the
    middleware's first delta for the app, the floor's own first `stream_token` call) to the first token
    reaching the customer's socket; the app shows complete words only, so `word_wait` is the part of
    it spent waiting for the delta that completed the first word shown, and `after_piece` the rest:
    from that delta leaving the middleware to its arrival (for the floor, `after_piece` is `added`)."""

    target: str
    sessions: int
    messages: int
    rounds: int
    answers: int
    throughput: float  # answers per second until the round's last answer
    p50_ms: float  # the customer's send to the complete answer
    p95_ms: float
    first_token_p50_ms: float  # the customer's send to the first token
    first_token_p95_ms: float
    added_p50_ms: float
    added_p95_ms: float
    word_wait_p50_ms: float
    word_wait_p95_ms: float
    after_piece_p50_ms: float
    after_piece_p95_ms: float
    tokens_per_answer: float  # stream_start and stream_token events the customer got per answer
    deltas_per_answer: float  # pieces each answer was streamed in (to the app by the middleware; by the floor)
    cpu_ms_per_delta: float  # the server's CPU over the pieces it streamed
    cpu_ms_per_answer: float
    middleware_cpu_ms_per_delta: float | None  # the app's rounds: what the streaming middleware spent (same machine)
    peak_rss_mb: float
    errors: int
    wrong: int
    unmatched: int  # answers with no first token, or none of the sender's records to set it against
    problems: list[str]

    def line(self) -> str:
        """The progress line printed as the round ends."""
        return (f"{self.target:>6} {self.sessions:>3}x{self.messages}: {self.throughput:6.1f} answers/s  "
                f"p50 {self.p50_ms:6.1f} ms  first token p50 {self.first_token_p50_ms:6.1f}  "
                f"added p50/p95 {self.added_p50_ms:5.1f}/{self.added_p95_ms:5.1f}  "
                f"after the piece {self.after_piece_p50_ms:5.1f}/{self.after_piece_p95_ms:5.1f} ms  "
                f"cpu {self.cpu_ms_per_delta:.3f} ms/delta  {self.tokens_per_answer:.1f} tokens/answer  "
                f"errors {self.errors}  wrong {self.wrong}  unmatched {self.unmatched}")


@dataclass(frozen=True)
class Goal:
    """One goal of the streaming mode and whether this run met it."""

    figure: str
    goal: str
    value: float
    met: bool


@dataclass
class StreamResults:
    """Every figure of a streaming run: full rounds and one-session rounds, alternating app and floor."""

    config: BenchConfig
    machine: Machine
    clocks: dict[str, str]  # the clock each time was read on (the client's perf_counter, the senders' monotonic)
    rounds: list[StreamFigures]
    single_rounds: list[StreamFigures]
    loaded: dict[str, StreamFigures]  # the full rounds pooled, per server
    single_session: dict[str, StreamFigures]  # the one-session rounds pooled, per server

    @property
    def ratio(self) -> float:
        """App over floor answer throughput under load (median rounds): goal >= 0.85."""
        return round(self.loaded["app"].throughput / self.loaded["floor"].throughput, 3)

    @property
    def round_ratios(self) -> list[float]:
        """App over floor round by round (each app round beside the floor round after it)."""
        app = [row for row in self.rounds if row.target == "app"]
        floor = [row for row in self.rounds if row.target == "floor"]
        return [round(mine.throughput / other.throughput, 3) for mine, other in zip(app, floor, strict=True)]

    @property
    def goals(self) -> list[Goal]:
        single, loaded = self.single_session["app"], self.loaded["app"]
        return [
            Goal("1 session: first delta to first token, p50 (ms)", "<= 5", single.added_p50_ms,
                 single.added_p50_ms <= 5),
            Goal(f"{loaded.sessions} sessions: first delta to first token, p95 (ms)", "<= 30", loaded.added_p95_ms,
                 loaded.added_p95_ms <= 30),
            Goal(f"{loaded.sessions} sessions: answers/s, app / streaming floor", ">= 0.85", self.ratio,
                 self.ratio >= 0.85),
        ]

    def as_json(self) -> dict[str, Any]:
        return {"config": self.config.as_json(), "machine": asdict(self.machine), "clocks": dict(self.clocks),
                "streamed_answers": {
                    "loaded": {target: asdict(row) for target, row in self.loaded.items()},
                    "single_session": {target: asdict(row) for target, row in self.single_session.items()},
                    "ratio": self.ratio, "round_ratios": self.round_ratios,
                    "goals": [asdict(goal) for goal in self.goals],
                    "rounds": [asdict(row) for row in self.rounds],
                    "single_rounds": [asdict(row) for row in self.single_rounds]}}


#: The streaming table's rows: label, and what to show of a server's pooled figures.
_STREAM_ROWS: tuple[tuple[str, Callable[[StreamFigures], object]], ...] = (
    ("answers/s (median round)", attrgetter("throughput")),
    ("send to complete answer p50 / p95 (ms)", lambda row: f"{row.p50_ms} / {row.p95_ms}"),
    ("send to first token p50 / p95 (ms)", lambda row: f"{row.first_token_p50_ms} / {row.first_token_p95_ms}"),
    ("first piece sent to first token p50 / p95 (ms)", lambda row: f"{row.added_p50_ms} / {row.added_p95_ms}"),
    ("  of which waiting for a complete word p50 / p95 (ms)",
     lambda row: f"{row.word_wait_p50_ms} / {row.word_wait_p95_ms}"),
    ("  from the piece shown to first token p50 / p95 (ms)",
     lambda row: f"{row.after_piece_p50_ms} / {row.after_piece_p95_ms}"),
    ("tokens / deltas per answer", lambda row: f"{row.tokens_per_answer} / {row.deltas_per_answer}"),
    ("server CPU per delta / per answer (ms)", lambda row: f"{row.cpu_ms_per_delta} / {row.cpu_ms_per_answer}"),
    ("middleware CPU per delta (ms)", lambda row: "-" if row.middleware_cpu_ms_per_delta is None
     else row.middleware_cpu_ms_per_delta),
    ("server peak RSS (MB)", attrgetter("peak_rss_mb")),
    ("answers; errors / wrong / unmatched", lambda row: f"{row.answers}; {row.errors} / {row.wrong} / {row.unmatched}"),
)


def stream_tables(results: StreamResults) -> list[Table]:
    """The goals, then app beside floor at one session and under load."""
    goals = Table(title=f"streamed answers: app / streaming floor {results.ratio:.2f} (rounds "
                        f"{', '.join(f'{ratio:.2f}' for ratio in results.round_ratios)})")
    for column in ("goal", "target", "this run", "met"):
        goals.add_column(column, justify="left" if column == "goal" else "right")
    for goal in results.goals:
        goals.add_row(goal.figure, goal.goal, str(goal.value), "yes" if goal.met else "no")
    figures = Table(title="streamed answers, app beside the streaming floor")
    figures.add_column("figure")
    pooled = {"1 session": results.single_session, f"{results.config.sessions} sessions": results.loaded}
    for load_name in pooled:
        for target in TARGETS:
            figures.add_column(f"{target}, {load_name}", justify="right")
    for label, show in _STREAM_ROWS:
        figures.add_row(label, *(str(show(rows[target])) for rows in pooled.values() for target in TARGETS))
    return [goals, figures]
