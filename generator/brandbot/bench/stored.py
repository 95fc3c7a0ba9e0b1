"""The persistence mode: the bot storing conversations, beside a floor storing them too and one storing none.

Per database kind (SQLite, PostgreSQL), after a warm-up: `rounds` full rounds that take turns
app, floor-db, floor-none (the medians give the two ratios); each storing server's writes per
answer (statements counted in the server, rows counted in the database) with the backlog each
round leaves; then, for the app and the storing floor, one round with the database down from
before the first message to after the last answer, and how long after it is back the answers
are stored again.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from .config import BenchConfig
from .load import Round, Server, load, median_round
from .report import DatabaseDown, StoredDatabase, StoredResults, StoredRound, Writes
from .run import Report, this_machine
from .servers import StoredServers, started_stored
from .sql_counts import Statements

#: The database each storing server writes to (see servers.started_stored).
DATABASE_OF = {"app": "app", "floor-db": "floor"}
#: How long after the database is back the bench keeps trying small rounds until they are stored.
STORE_AGAIN_LIMIT_SECONDS = 60.0
_DATABASE_LOGGERS = ("brandbot.persistence", "chainlit.data", "sqlalchemy")


def run_stored_bench(config: BenchConfig, report: Report = print) -> StoredResults:
    """Every database kind in turn, each with its own servers and scratch folder."""
    machine = this_machine()
    databases = {}
    for kind in config.persistence:
        report(f"--- {kind} ---")
        with (tempfile.TemporaryDirectory(prefix=f"brandbot-bench-{kind}-", ignore_cleanup_errors=True) as work,
              started_stored(config, kind, Path(work)) as servers):
            databases[kind] = asyncio.run(_measure(config, kind, servers, report))
    return StoredResults(config=config, machine=machine, databases=databases)


@dataclass
class _Marks:
    """What a counted round read at its moments."""

    before: Statements = field(default_factory=Statements)
    after: Statements = field(default_factory=Statements)
    rows_before: dict[str, int] = field(default_factory=dict)
    rows_after: dict[str, int] = field(default_factory=dict)
    drain: float = 0.0


async def _measure(config: BenchConfig, kind: str, servers: StoredServers, report: Report) -> StoredDatabase:
    for server in servers.under_load:
        await _counted_round(servers, server, 5, 2)  # warm-up: imports, first requests, pools
    rounds: list[tuple[Round, _Marks | None]] = []
    for _ in range(config.rounds):
        for server in servers.under_load:
            measured, marks = await _counted_round(servers, server, config.sessions, config.messages)
            rounds.append((measured, marks))
            report(_line(measured, marks, config))
    log_lines_up = _database_log_lines(servers.app.service.log())
    down = {}
    for server in (servers.app, servers.floor):
        down[server.name] = await _database_down(config, servers, server, report)
    stored_rounds = [StoredRound(measured.figures(config.latency_ms),
                                 _writes([(measured, marks)]) if marks is not None else None,
                                 sustained=_sustained(measured, marks)) for measured, marks in rounds]
    return StoredDatabase(
        kind=kind, rounds=stored_rounds,
        median={server.name: median_round([measured for measured, _ in rounds if measured.target == server.name])
                .figures(config.latency_ms) for server in servers.under_load},
        writes={name: _writes([(measured, marks) for measured, marks in rounds
                               if measured.target == name and marks is not None]) for name in DATABASE_OF},
        down=down, database_log_lines=len(log_lines_up))


async def _counted_round(servers: StoredServers, server: Server, sessions: int,
                         messages: int) -> tuple[Round, _Marks | None]:
    """A round that, for a storing server, starts once earlier writes have settled and ends once its
    own have (CPU counted until then), with the statements and rows in between."""
    if server.name not in DATABASE_OF:
        return await load(server, sessions, messages), None
    log, database, name = servers.statements[server.name], servers.database, DATABASE_OF[server.name]
    marks = _Marks()

    async def prepared() -> None:
        marks.before, _ = await log.settled()
        marks.rows_before = await asyncio.to_thread(database.rows, name)

    async def answered() -> None:
        marks.after, marks.drain = await log.settled()
        marks.rows_after = await asyncio.to_thread(database.rows, name)

    measured = await load(server, sessions, messages, prepared=prepared, answered=answered)
    return measured, marks


def _sustained(measured: Round, marks: _Marks | None) -> float:
    """Answers per second until the round's last write (its last answer for a server storing nothing)."""
    return round(len(measured.tally.latencies) / (measured.seconds + (marks.drain if marks else 0.0)), 1)


def _writes(rounds: list[tuple[Round, _Marks]]) -> Writes:
    """Statements and rows per answered message over these rounds."""
    answers = sum(len(measured.tally.latencies) for measured, _ in rounds)
    total = Statements()
    rows: dict[str, int] = {}
    for _, marks in rounds:
        total += marks.after - marks.before
        for table, count in marks.rows_after.items():
            rows[table] = rows.get(table, 0) + count - marks.rows_before.get(table, 0)

    def per(count: int) -> float:
        return round(count / max(1, answers), 2)

    return Writes(answers=answers, write_statements=per(total.writes), inserts=per(total.insert),
                  updates=per(total.update), deletes=per(total.delete), rows_written=per(total.rows_written),
                  selects=per(total.select), commits=per(total.commits), failed=per(total.failed),
                  rows_added={table: per(count) for table, count in rows.items()},
                  drain_ms=round(statistics.median(marks.drain for _, marks in rounds) * 1000, 1))


async def _database_down(config: BenchConfig, servers: StoredServers, server: Server, report: Report) -> DatabaseDown:
    """One round with the database down from before the first message to after the last answer; then,
    with the database back, small rounds until one's answers are stored (or the limit passes)."""
    log = servers.statements[server.name]
    outage = ExitStack()
    counts: dict[str, Statements] = {}
    log_from = len(server.service.log())

    async def prepared() -> None:
        await log.settled()
        outage.enter_context(servers.database.down())
        counts["down"] = log.read()

    async def answered() -> None:
        counts["answered"] = log.read()

    try:
        measured = await load(server, config.sessions, config.messages, prepared=prepared, answered=answered)
    finally:
        outage.close()
    back = time.perf_counter()
    while_down = counts["answered"] - counts["down"]
    figures = measured.figures(config.latency_ms)
    report(f"database down: {figures.line()}  writes {while_down.writes}  failed {while_down.failed}")
    again = await _stored_again(servers, server, back)
    report(f"{server.name}: database back, answers stored again after "
           f"{'-' if again is None else f'{again:.1f} s'}")
    return DatabaseDown(figures=figures, writes_while_down=while_down.writes, failed_while_down=while_down.failed,
                        seconds_to_store_again=again,
                        log_lines=_database_log_lines(server.service.log()[log_from:])[:5])


async def _stored_again(servers: StoredServers, server: Server, back: float) -> float | None:
    """Seconds from the database's return until a small round's messages all became stored steps."""
    while time.perf_counter() - back < STORE_AGAIN_LIMIT_SECONDS:
        measured, marks = await _counted_round(servers, server, 2, 2)
        assert marks is not None
        if marks.rows_after.get("steps", 0) - marks.rows_before.get("steps", 0) >= 2 * len(measured.tally.latencies):
            return round(time.perf_counter() - back, 1)
        await asyncio.sleep(0.5)
    return None


def _database_log_lines(log: str) -> list[str]:
    """Lines of a server's log about its database: the guard's, Chainlit's data layer's, SQLAlchemy's."""
    return [line for line in log.splitlines() if any(name in line for name in _DATABASE_LOGGERS)
            or "An error occurred" in line]


def _line(measured: Round, marks: _Marks | None, config: BenchConfig) -> str:
    line = measured.figures(config.latency_ms).line()
    if marks is None:
        return line
    spent = marks.after - marks.before
    answers = max(1, len(measured.tally.latencies))
    return f"{line}  writes/answer {spent.writes / answers:.1f}  backlog {marks.drain * 1000:.0f} ms"
