"""The data-layer guard: a failing, hanging or locked database never slows or fails the customer.

Unit tests drive the guard with a fake inner layer and an injectable clock; the last tests put a
real SQLAlchemyDataLayer on a SQLite file under the chat flow and lock the file mid-conversation.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import chainlit.data as chainlit_data
import pytest
from chainlit.data.base import BaseDataLayer
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.logger import logger as chainlit_logger
from chainlit.types import Feedback, PaginatedResponse, Pagination, ThreadFilter

from brandbot_runtime.data_layer_guard import DataLayerGuard, guarded, redact, says_unreachable

from .chat_harness import ChatHarness

CUSTOMER_TEXT = "my card number is 4111 and my name is Ann"
PASSWORD = "s3cret-pw-77"
URL = f"postgresql+asyncpg://bot:{PASSWORD}@db.internal:5432/bot"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLayer(BaseDataLayer):
    """A data layer whose database works ("ok"), refuses connections, hangs, logs like Chainlit's SQL layer,
    or works through its calls one at a time ("queued", as SQLite writes)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls: list[str] = []
        self.stored: list[str] = []
        self.release = asyncio.Event()
        self.one_at_a_time = asyncio.Lock()
        self.seconds_per_call = 0.05

    async def _database(self, name: str, stored: str | None = None) -> Any:
        self.calls.append(name)
        if self.mode == "refused":
            raise ConnectionRefusedError(f"[Errno 111] could not connect to {URL}")
        if self.mode == "hang":  # until the test releases it
            await self.release.wait()
        if self.mode == "logs":  # SQLAlchemyDataLayer.execute_sql: the error as a WARNING, then None
            chainlit_logger.warning("An error occurred: (sqlite3.OperationalError) attempt to write a readonly "
                                    f"database\n[SQL: INSERT INTO steps ...]\n[parameters: ('{CUSTOMER_TEXT}',)]")
            return None
        if self.mode == "drift":
            chainlit_logger.warning("An error occurred: (sqlite3.OperationalError) table steps has no column named "
                                    f"autoCollapse\n[parameters: ('{CUSTOMER_TEXT}',)]")
            return None
        if self.mode == "slow":  # a busy database: it answers, late
            await asyncio.sleep(0.3)
        if self.mode == "queued":  # a healthy database with a backlog: each call waits for those before it
            async with self.one_at_a_time:
                await asyncio.sleep(self.seconds_per_call)
        if self.mode == "duplicate":
            chainlit_logger.warning("An error occurred: (sqlite3.IntegrityError) UNIQUE constraint failed: "
                                    f"steps.id\n[parameters: ('{CUSTOMER_TEXT}',)]")
            return None
        if stored is not None:
            self.stored.append(stored)
        return {"id": stored or name}

    async def get_user(self, identifier):  # type: ignore[no-untyped-def]
        return await self._database("get_user")

    async def create_user(self, user):  # type: ignore[no-untyped-def]
        return await self._database("create_user")

    async def delete_feedback(self, feedback_id):  # type: ignore[no-untyped-def]
        await self._database("delete_feedback")
        return True

    async def upsert_feedback(self, feedback):  # type: ignore[no-untyped-def]
        await self._database("upsert_feedback", feedback.forId)
        return "stored-feedback-id"

    async def create_element(self, element):  # type: ignore[no-untyped-def]
        await self._database("create_element")

    async def get_element(self, thread_id, element_id):  # type: ignore[no-untyped-def]
        return await self._database("get_element")

    async def delete_element(self, element_id, thread_id=None):  # type: ignore[no-untyped-def]
        await self._database("delete_element")

    async def create_step(self, step_dict):  # type: ignore[no-untyped-def]
        await self._database("create_step", step_dict["id"])

    async def update_step(self, step_dict):  # type: ignore[no-untyped-def]
        await self._database("update_step", step_dict["id"])

    async def delete_step(self, step_id):  # type: ignore[no-untyped-def]
        await self._database("delete_step")

    async def get_thread_author(self, thread_id):  # type: ignore[no-untyped-def]
        await self._database("get_thread_author")
        return "ann"

    async def delete_thread(self, thread_id):  # type: ignore[no-untyped-def]
        await self._database("delete_thread")

    async def list_threads(self, pagination, filters):  # type: ignore[no-untyped-def]
        return await self._database("list_threads")

    async def get_thread(self, thread_id):  # type: ignore[no-untyped-def]
        return await self._database("get_thread")

    async def update_thread(self, thread_id, name=None, user_id=None, metadata=None, tags=None):  # type: ignore[no-untyped-def]
        await self._database("update_thread", thread_id)

    async def build_debug_url(self):  # type: ignore[no-untyped-def]
        return ""

    async def close(self):  # type: ignore[no-untyped-def]
        await self._database("close")

    async def get_favorite_steps(self, user_id):  # type: ignore[no-untyped-def]
        return await self._database("get_favorite_steps")


@pytest.fixture(autouse=True)
def provoked_on_purpose(data_layer_errors: list[logging.LogRecord]) -> Iterator[None]:
    """These tests make the database fail and assert the guard's lines themselves (caplog); the conftest
    fixture that fails a test on any data-layer warning is told so."""
    yield
    data_layer_errors.clear()


def guard_of(inner: BaseDataLayer, clock: Clock, **options: Any) -> DataLayerGuard:
    bound = options.pop("timeout_seconds", 0.2)
    layer = guarded(inner, clock=clock, timeout_seconds=bound, background_timeout_seconds=bound, **options)
    assert isinstance(layer, DataLayerGuard) and isinstance(layer, BaseDataLayer)
    return layer


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "brandbot.persistence" and record.levelno == level]


async def test_every_call_answers_at_once_with_an_empty_result_of_its_type_while_the_database_refuses(
        caplog: pytest.LogCaptureFixture) -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "refused"
    layer = guard_of(inner, clock)
    feedback = Feedback(forId="step-1", value=1, id="feedback-1")
    started = time.monotonic()
    assert await layer.get_thread("t") is None
    assert await layer.get_user("ann") is None
    assert await layer.get_thread_author("t") == ""
    assert await layer.get_favorite_steps("u") == []
    assert await layer.upsert_feedback(feedback) == "feedback-1"
    assert await layer.delete_feedback("feedback-1") is False
    threads = await layer.list_threads(Pagination(first=10), ThreadFilter())
    assert isinstance(threads, PaginatedResponse) and threads.data == [] and not threads.pageInfo.hasNextPage
    await layer.create_step({"id": "s1", "threadId": "t"})  # type: ignore[typeddict-item]
    assert time.monotonic() - started < 0.5
    assert inner.calls == ["get_thread"]  # the circuit opened after the first failure: nothing else reached it
    assert layer.state.skipped_writes == 3


async def test_a_failing_database_is_reported_once_a_minute_with_the_skipped_writes(
        caplog: pytest.LogCaptureFixture) -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "refused"
    layer = guard_of(inner, clock, open_seconds=5.0)
    caplog.set_level(logging.INFO)
    for _ in range(100):  # 150 simulated seconds of conversation, a write every 1.5 s
        await layer.create_step({"id": str(uuid.uuid4()), "threadId": "t"})  # type: ignore[typeddict-item]
        clock.now += 1.5
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 3, warnings  # at 0 s, about 60 s and about 120 s: not one per message
    assert "ConnectionRefusedError" in warnings[0]
    assert "skipped writes" in warnings[1] and " 0 skipped" not in warnings[1]
    assert 20 <= len(inner.calls) <= 31  # one probe per open period of 5 s, not one call per message


async def test_the_circuit_closes_when_the_database_is_back_and_writes_resume(
        caplog: pytest.LogCaptureFixture) -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "refused"
    layer = guard_of(inner, clock, open_seconds=5.0)
    caplog.set_level(logging.INFO)
    await layer.create_step({"id": "lost-1", "threadId": "t"})  # type: ignore[typeddict-item]
    await layer.create_step({"id": "lost-2", "threadId": "t"})  # type: ignore[typeddict-item]
    inner.mode = "ok"
    clock.now += 2.0
    await layer.create_step({"id": "lost-3", "threadId": "t"})  # type: ignore[typeddict-item]  # still open
    assert inner.stored == []
    clock.now += 3.5
    await layer.create_step({"id": "kept-1", "threadId": "t"})  # type: ignore[typeddict-item]  # the probe
    await layer.update_step({"id": "kept-2", "threadId": "t"})  # type: ignore[typeddict-item]
    assert inner.stored == ["kept-1", "kept-2"]
    back = lines(caplog, logging.INFO)
    assert len(back) == 1 and "database is back after 6 s" in back[0] and "3 writes were skipped" in back[0]
    assert await layer.get_thread("t") == {"id": "get_thread"}
    assert len(lines(caplog, logging.INFO)) == 1


async def test_a_hanging_database_costs_the_timeout_once_then_nothing() -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "hang"
    layer = guard_of(inner, clock, timeout_seconds=0.1)
    started = time.monotonic()
    assert await layer.get_thread("t") is None
    first = time.monotonic() - started
    results = await asyncio.gather(*(layer.get_thread("t") for _ in range(50)))
    assert results == [None] * 50
    assert 0.09 <= first < 0.5 and time.monotonic() - started < 0.6
    assert inner.calls == ["get_thread"] and layer.state.in_flight == 1  # abandoned, the rest never tried
    inner.release.set()
    await asyncio.sleep(0.01)
    assert layer.state.in_flight == 0


async def test_chainlits_own_task_writes_run_inline_with_no_task_of_their_own() -> None:
    """A task and a wait per step write cost the bot 15% of its throughput under load (docs/performance.md):
    the writes Chainlit already runs as tasks of their own now run in those tasks, bounded by a timer."""
    inner, clock = FakeLayer(), Clock()
    ran_in: list[asyncio.Task[Any] | None] = []
    recorded = inner._database

    async def recording(name: str, stored: str | None = None) -> Any:
        ran_in.append(asyncio.current_task())
        return await recorded(name, stored)

    inner._database = recording  # type: ignore[method-assign]
    layer = guard_of(inner, clock)
    write = asyncio.create_task(layer.create_step({"id": "s", "threadId": "t"}))  # type: ignore[typeddict-item]
    await write
    await layer.get_thread("t")  # an awaited call keeps its own task, bounded by a wait
    assert ran_in[0] is write and ran_in[1] is not asyncio.current_task()
    assert inner.stored == ["s"] and layer.state.in_flight == 0 and layer.state.answered == 2


async def test_calls_in_flight_are_bounded_while_the_database_hangs() -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "hang"
    layer = guard_of(inner, clock, timeout_seconds=0.05, open_seconds=0.0, max_in_flight=3)
    writes = []
    for _ in range(4):  # each round, fired and forgotten as Chainlit does: the calls that get through hang
        writes += [asyncio.create_task(layer.create_step({"id": "s", "threadId": "t"}))  # type: ignore[typeddict-item]
                   for _ in range(5)]
        await asyncio.sleep(0.1)
    assert len(inner.calls) == 3 and layer.state.in_flight == 3
    assert layer.state.opened_at is not None  # their timers found a database that answers nobody
    assert sum(write.done() for write in writes) == 17  # the rest returned at once, hanging on nothing
    inner.release.set()
    await asyncio.sleep(0.01)
    assert layer.state.in_flight == 0 and all(write.done() for write in writes)
    inner.mode = "ok"
    await layer.create_step({"id": "after", "threadId": "t"})  # type: ignore[typeddict-item]
    assert inner.stored == ["s", "s", "s", "after"]  # the abandoned writes landed late; no other was tried


async def test_the_inner_layers_warnings_become_one_line_without_customer_text_or_password(
        caplog: pytest.LogCaptureFixture) -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "logs"
    layer = guard_of(inner, clock, url=URL)
    caplog.set_level(logging.INFO)
    for _ in range(20):
        await layer.create_step({"id": "s", "threadId": "t"})  # type: ignore[typeddict-item]
        clock.now += 6  # past the open period: every write reaches the failing database
    inner.mode = "refused"
    clock.now += 60
    await layer.get_thread("t")
    assert [record for record in caplog.records if record.name == "chainlit"] == []
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 3, warnings
    assert "OperationalError" in warnings[0] and "attempt to write a readonly database" in warnings[0]
    assert "ConnectionRefusedError" in warnings[2]
    text = caplog.text
    assert CUSTOMER_TEXT not in text and "4111" not in text and PASSWORD not in text and "INSERT" not in text


async def test_a_refused_statement_is_logged_but_leaves_the_circuit_closed(
        caplog: pytest.LogCaptureFixture) -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "duplicate"
    layer = guard_of(inner, clock)
    await layer.create_step({"id": "s", "threadId": "t"})  # type: ignore[typeddict-item]
    inner.mode = "ok"
    await layer.create_step({"id": "next", "threadId": "t"})  # type: ignore[typeddict-item]
    assert inner.stored == ["next"]
    assert "IntegrityError" in lines(caplog, logging.WARNING)[0]


async def test_a_missing_column_is_a_schema_problem_that_leaves_the_circuit_closed(
        caplog: pytest.LogCaptureFixture) -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "drift"
    layer = guard_of(inner, clock)
    await layer.create_step({"id": "run", "threadId": "t"})  # type: ignore[typeddict-item]
    inner.mode = "ok"
    await layer.create_step({"id": "answer", "threadId": "t"})  # type: ignore[typeddict-item]
    assert inner.stored == ["answer"]
    [warning] = lines(caplog, logging.WARNING)
    assert "database refused a statement" in warning and "has no column named autoCollapse" in warning


async def test_chainlits_background_writes_may_take_longer_than_what_someone_awaits() -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "slow"
    layer = guarded(inner, clock=clock, timeout_seconds=0.1, background_timeout_seconds=2.0)
    await layer.create_step({"id": "late but stored", "threadId": "t"})  # type: ignore[typeddict-item]
    assert inner.stored == ["late but stored"]
    started = time.monotonic()
    assert await layer.get_thread("t") is None  # a reconnecting customer waits 0.1 s at most
    assert time.monotonic() - started < 0.25


async def test_writes_queued_behind_a_busy_database_are_stored_late_and_nothing_is_skipped(
        caplog: pytest.LogCaptureFixture) -> None:
    """Under load SQLite works through a backlog of Chainlit's writes one at a time: the last ones wait
    longer than the bound. They once counted as a failing database: the circuit opened and the writes
    after them were skipped (150 sessions x 4 messages under chainlit run: 27 of 600 messages stored)."""
    inner, clock = FakeLayer(), Clock()
    inner.mode = "queued"
    layer = guard_of(inner, clock, timeout_seconds=0.2)
    caplog.set_level(logging.INFO)
    backlog = [asyncio.create_task(layer.create_step({"id": f"w{index}", "threadId": "t"}))  # type: ignore[typeddict-item]
               for index in range(20)]  # 1 s of work: five times the bound
    await asyncio.gather(*backlog)
    await layer.update_step({"id": "next", "threadId": "t"})  # type: ignore[typeddict-item]
    assert inner.stored == [f"w{index}" for index in range(20)] + ["next"]
    assert layer.state.skipped_writes == 0 and layer.state.opened_at is None
    assert lines(caplog, logging.WARNING) == [] and lines(caplog, logging.INFO) == []


async def test_an_awaited_call_waits_its_turn_behind_a_backlog_while_the_database_answers(
        caplog: pytest.LogCaptureFixture) -> None:
    """A burst of sign-ins (get_user, create_user) once timed out after 1 s although the database was
    answering; Chainlit then kept the visitor out of the conversation it stored."""
    inner, clock = FakeLayer(), Clock()
    inner.mode = "queued"
    layer = guarded(inner, clock=clock, timeout_seconds=0.2, busy_seconds=5.0)
    backlog = [asyncio.create_task(layer.get_user(f"visitor-{index}")) for index in range(20)]  # 1 s of work
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await layer.get_thread("t") == {"id": "get_thread"}
    assert 0.8 < time.monotonic() - started < 2.0
    assert await asyncio.gather(*backlog) == [{"id": "get_user"}] * 20
    assert lines(caplog, logging.WARNING) == [] and layer.state.opened_at is None


async def test_an_awaited_call_stuck_behind_a_backlog_answers_empty_in_the_end_but_opens_no_circuit(
        caplog: pytest.LogCaptureFixture) -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "queued"
    layer = guarded(inner, clock=clock, timeout_seconds=0.2, background_timeout_seconds=10.0, busy_seconds=0.4)
    backlog = [asyncio.create_task(layer.create_step({"id": f"w{index}", "threadId": "t"}))  # type: ignore[typeddict-item]
               for index in range(20)]
    await asyncio.sleep(0)
    started = time.monotonic()
    assert await layer.get_thread("t") is None  # the reconnecting customer is not held for long
    assert 0.35 < time.monotonic() - started < 0.7
    await asyncio.gather(*backlog)
    await layer.create_step({"id": "next", "threadId": "t"})  # type: ignore[typeddict-item]
    assert inner.stored[-1] == "next" and len(inner.stored) == 21
    [warning] = lines(caplog, logging.WARNING)
    assert "database too slow for the load (busy)" in warning and "get_thread" in warning


async def test_stopping_finishes_the_writes_in_flight_before_closing(caplog: pytest.LogCaptureFixture) -> None:
    """Chainlit calls close() as the server stops and exits the process right after: the writes still
    queued then were lost (a bot stopped right after 50 sessions x 4 messages had stored none of the
    200 final answers and none of the 50 welcomes)."""
    inner, clock = FakeLayer(), Clock()
    inner.mode = "queued"
    layer = guard_of(inner, clock, timeout_seconds=0.2)
    caplog.set_level(logging.INFO)
    for index in range(10):  # fire and forget, as Chainlit does
        asyncio.create_task(layer.create_step({"id": f"w{index}", "threadId": "t"}))  # type: ignore[typeddict-item]  # noqa: RUF006
    await asyncio.sleep(0)
    await layer.close()
    assert inner.stored == [f"w{index}" for index in range(10)] and inner.calls[-1] == "close"
    assert layer.state.in_flight == 0
    [finished] = lines(caplog, logging.INFO)
    assert finished.startswith("finished 10 database calls in flight before stopping")


async def test_stopping_waits_for_a_hung_database_no_longer_than_its_bound(caplog: pytest.LogCaptureFixture) -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "hang"
    layer = guarded(inner, clock=clock, timeout_seconds=0.1, background_timeout_seconds=10.0, drain_seconds=0.3)
    for index in range(3):
        asyncio.create_task(layer.create_step({"id": f"w{index}", "threadId": "t"}))  # type: ignore[typeddict-item]  # noqa: RUF006
    await asyncio.sleep(0)
    started = time.monotonic()
    await layer.close()
    assert 0.3 <= time.monotonic() - started < 1.0
    [warning] = [line for line in lines(caplog, logging.WARNING) if "stopping" in line]
    assert warning.startswith("stopping with 3 database calls unfinished")
    inner.release.set()
    await asyncio.sleep(0.01)


async def test_stopping_does_not_wait_while_the_circuit_is_open() -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "hang"
    layer = guard_of(inner, clock, timeout_seconds=0.1, drain_seconds=5.0)
    write = asyncio.create_task(layer.create_step({"id": "w", "threadId": "t"}))  # type: ignore[typeddict-item]
    await asyncio.sleep(0.2)  # its timer rings: the circuit opens
    assert layer.state.opened_at is not None and layer.state.in_flight == 1 and not write.done()
    started = time.monotonic()
    await layer.close()
    assert time.monotonic() - started < 0.2  # the circuit also skips the inner close
    inner.release.set()
    await asyncio.sleep(0.01)


def test_redact_keeps_what_is_wrong_and_drops_values_and_passwords() -> None:
    message = (f"(sqlalchemy.dialects.postgresql.asyncpg.Error) connect to {URL} failed: "
               f"value '{CUSTOMER_TEXT}'\n[SQL: SELECT 1]")
    said = redact(message)
    assert "connect to postgresql+asyncpg://bot:[redacted]@db.internal:5432/bot failed" in said
    assert PASSWORD not in said and CUSTOMER_TEXT not in said and "SELECT" not in said
    assert redact("Authentication failed for " + PASSWORD, [PASSWORD]) == "Authentication failed for [redacted]"


# ---- a real SQLite database under the chat flow ----

STEP_COLUMNS = ["id", "name", "type", "threadId", "parentId", "streaming", "waitForAnswer", "isError", "metadata",
                "tags", "input", "output", "createdAt", "command", "start", "end", "generation", "showInput",
                "language", "indent", "defaultOpen", "autoCollapse", "modes"]


def create_schema(path: Path) -> None:
    """The tables Chainlit's SQL layer reads and writes (SQLite accepts untyped columns)."""
    columns = ", ".join(f'"{name}"' + (" PRIMARY KEY" if name == "id" else "") for name in STEP_COLUMNS)
    with sqlite3.connect(path) as connection:
        connection.executescript(f"""
            CREATE TABLE users ("id" PRIMARY KEY, "identifier" UNIQUE, "metadata", "createdAt");
            CREATE TABLE threads ("id" PRIMARY KEY, "createdAt", "name", "userId", "userIdentifier", "tags",
                                  "metadata");
            CREATE TABLE steps ({columns});
            CREATE TABLE elements ("id" PRIMARY KEY, "threadId", "type", "url", "chainlitKey", "name", "display",
                                   "objectKey", "size", "page", "language", "forId", "mime", "props");
            CREATE TABLE feedbacks ("id" PRIMARY KEY, "forId", "threadId", "value", "comment");
        """)


def stored_ids(path: Path, thread_id: str) -> set[str]:
    """The bot messages stored for a thread (their text is another matter: Chainlit's create and update of
    one message race each other, with or without the guard)."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute('SELECT "id" FROM steps WHERE "threadId" = ? AND "type" = ?',
                                  (thread_id, "assistant_message")).fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "conversations.db"
    create_schema(path)
    return path


@pytest.fixture
async def sqlite_layer(database: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DataLayerGuard]:
    """Chainlit's SQL layer on the file, behind the guard, as the process-wide data layer."""
    layer = guarded(SQLAlchemyDataLayer(conninfo=f"sqlite+aiosqlite:///{database}"), timeout_seconds=0.3,
                    background_timeout_seconds=0.3, open_seconds=0.5)
    assert isinstance(layer, DataLayerGuard)
    monkeypatch.setattr(chainlit_data, "_data_layer", layer)
    monkeypatch.setattr(chainlit_data, "_data_layer_initialized", True)
    yield layer
    await layer.close()


@pytest.fixture
def lock(database: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection that can lock the whole file, as a long migration or backup does."""
    connection = sqlite3.connect(database, isolation_level=None)
    yield connection
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    connection.close()


def layer_skipped(caplog: pytest.LogCaptureFixture) -> int:
    """How many writes the INFO line says were skipped during the outage."""
    back = [line for line in lines(caplog, logging.INFO) if "database is back" in line]
    assert len(back) == 1, back
    return int(back[0].split("; ")[1].split(" writes")[0])


async def settle() -> None:
    """Let Chainlit's fire-and-forget writes finish."""
    for _ in range(20):
        await asyncio.sleep(0.05)


async def test_the_chat_answers_every_message_while_the_sqlite_file_is_locked_and_persists_again_after(
        configure, middleware, session: ChatHarness, database: Path, sqlite_layer: DataLayerGuard,
        lock: sqlite3.Connection, caplog: pytest.LogCaptureFixture) -> None:
    configure(middleware.url, MESSAGES_PER_MINUTE="1000")
    caplog.set_level(logging.INFO)
    thread_id = session.session.thread_id
    await session.start()
    answer = await session.say("before the lock")
    assert answer.final.endswith("before the lock")
    await settle()
    assert answer.id in stored_ids(database, thread_id)

    lock.execute("BEGIN EXCLUSIVE")  # every other connection now waits for SQLite's busy timeout (5 s)
    timings = []
    for index in range(10):
        started = time.monotonic()
        answer = await session.say(f"while locked {index}")
        timings.append(time.monotonic() - started)
        assert answer.final.endswith(f"while locked {index}")
    await settle()
    assert max(timings) < 0.3, timings  # no answer waited for the database
    lock.execute("ROLLBACK")

    # SQLite's connections that were waiting for the lock drain first; then a probe gets through
    deadline, resumed = time.monotonic() + 20, None
    while resumed is None and time.monotonic() < deadline:
        await asyncio.sleep(0.6)  # past the open period: the next write probes the database
        probe = await session.say("is the database back?")
        await settle()
        if probe.id in stored_ids(database, thread_id):
            resumed = time.monotonic()
    assert resumed is not None, "persistence never resumed"
    after = [await session.say("after the lock"), await session.say("and once more")]
    await settle()
    stored = stored_ids(database, thread_id)
    assert {shown.id for shown in after} <= stored
    assert layer_skipped(caplog) > 0
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 1 and "timeout" in warnings[0], warnings
    assert "while locked" not in caplog.text


@pytest.mark.parametrize(("problem", "unreachable"), [
    ("An error occurred: (sqlite3.OperationalError) database is locked", True),
    ("An error occurred: (sqlalchemy.dialects.postgresql.asyncpg.InterfaceError) connection is closed", True),
    ("An unexpected error occurred: [Errno 111] Connect call failed", True),
    ("An error occurred: (sqlite3.IntegrityError) FOREIGN KEY constraint failed", False),
    ("An error occurred: (sqlite3.OperationalError) table steps has no column named autoCollapse", False),
    ("An error occurred: (sqlalchemy.dialects.postgresql.asyncpg.ForeignKeyViolationError) <class "
     "'asyncpg.exceptions.ForeignKeyViolationError'>: insert or update on table \"steps\"", False),
    ("An error occurred: (sqlalchemy.dialects.postgresql.asyncpg.UniqueViolationError) duplicate key", False),
    ("An error occurred: (sqlalchemy.dialects.postgresql.asyncpg.Error) <class "
     "'asyncpg.exceptions.CharacterNotInRepertoireError'>: invalid byte sequence", False),
])
def test_a_refusal_is_told_from_an_outage_whatever_the_driver_calls_it(problem: str, unreachable: bool) -> None:
    """asyncpg names PostgreSQL's refusals itself; taken for an outage, one bad row stopped every write."""
    assert says_unreachable(problem) is unreachable
