"""The write queue on its own, with a stand-in session: batches and their transactions, order, the
versions left to a later one, and what each caller is told when a batch fails. The real database
side (SQLite, Chainlit's statements) is in test_persistence.py."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import exc

from brandbot_runtime import write_queue
from brandbot_runtime.write_queue import WriteQueue, after_commit, noted

REFUSED = "An error occurred: (sqlite3.IntegrityError) FOREIGN KEY constraint failed"
# What Chainlit logs for a refused row on PostgreSQL: asyncpg's own name, not IntegrityError.
REFUSED_PG = ("An error occurred: (sqlalchemy.dialects.postgresql.asyncpg.ForeignKeyViolationError) "
              "<class 'asyncpg.exceptions.ForeignKeyViolationError'>: insert or update on table \"steps\"")
LOCKED = exc.OperationalError("INSERT INTO steps", {}, Exception("database is locked"))


class IntegrityError(Exception):
    """Named as SQLAlchemy's is: the database refused one statement."""


class Database:
    """Records what is written, transaction by transaction; statements fail as told."""

    def __init__(self) -> None:
        self.committed: list[list[str]] = []
        self.transactions = 0
        self.refuse: set[str] = set()
        self.refusal = REFUSED  # what the data layer logs for a refused row written alone
        self.broken: set[str] = set()  # writes whose own code fails (not the database)
        self.locked = False

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        """A batch's session: its statements are committed together."""
        self.current: list[str] = []
        pending, committed = self.current, self.committed
        database = self

        class Session:
            async def begin(self) -> None:
                database.transactions += 1

            async def commit(self) -> None:
                committed.append(list(pending))

        yield Session()

    def statement(self, text: str) -> Callable[[], Any]:
        """A write's statements: one named `text`, run in the batch's session (or alone)."""

        async def apply() -> None:
            await asyncio.sleep(0)
            if self.locked:
                raise LOCKED
            if text in self.broken:
                raise TypeError("Object of type set is not JSON serializable")
            if text in self.refuse:
                if write_queue.shared_session() is None:  # alone, the data layer logs and goes on
                    logging.getLogger("chainlit").warning(self.refusal)
                    return
                raise IntegrityError("(sqlite3.IntegrityError) FOREIGN KEY constraint failed")
            if write_queue.shared_session() is None:
                self.committed.append([text])
            else:
                self.current.append(text)

        return apply


@pytest.fixture
def database() -> Database:
    return Database()


async def test_writes_queued_together_share_transactions_in_their_order(database: Database) -> None:
    queue = WriteQueue(database.session, batch_size=50)
    results = await asyncio.gather(*(queue.write(f"step-{n}", database.statement(f"step-{n}")) for n in range(120)))
    assert results == [None] * 120
    assert [len(batch) for batch in database.committed] == [50, 50, 20]
    assert [text for batch in database.committed for text in batch] == [f"step-{n}" for n in range(120)]
    assert queue.batches == 3 and queue.waiting == 0 and queue._writer is None


async def test_only_a_steps_last_version_in_a_batch_is_written_and_a_deletion_keeps_its_place(
        database: Database) -> None:
    queue = WriteQueue(database.session)
    writes = [("a", "a: Thinking...", False), ("b", "b: question", False), ("a", "a: Connecting...", False),
              ("a", "a: answer", False), ("c", "c: Thinking...", False), ("c", "c: deleted", True),
              ("c", "c: again", False)]
    results = await asyncio.gather(*(queue.write(key, database.statement(text), deletes=deletes)
                                     for key, text, deletes in writes))
    assert results == [None] * len(writes)  # a version left to a later one is not a failure
    assert database.committed == [["b: question", "a: answer", "c: Thinking...", "c: deleted", "c: again"]]


async def test_a_refused_statement_costs_only_its_own_write(database: Database,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    queue = WriteQueue(database.session)
    database.refuse = {"bad"}
    results = await asyncio.gather(*(queue.write(text, database.statement(text)) for text in ("one", "bad", "two")))
    assert results == [None, REFUSED, None]
    assert database.committed == [["one"], ["two"]]  # the batch rolled back, then each alone
    assert not [record for record in caplog.records if record.name == "chainlit"]  # told to the caller, not logged


async def test_a_database_that_takes_nothing_fails_the_batch_once_untried_one_by_one(database: Database) -> None:
    queue = WriteQueue(database.session)
    database.locked = True
    attempts: list[str] = []

    def attempt(text: str) -> Callable[[], Any]:
        async def apply() -> None:
            attempts.append(text)
            await database.statement(text)()

        return apply

    results = await asyncio.gather(*(queue.write(f"step-{n}", attempt(f"step-{n}")) for n in range(10)))
    assert set(results) == {f"An error occurred: (OperationalError) {LOCKED}"}
    assert attempts == ["step-0"] and database.committed == []  # the batch's first statement, and no more


async def test_a_refusal_named_by_the_postgresql_driver_still_costs_only_its_write(database: Database) -> None:
    queue = WriteQueue(database.session)
    database.refuse, database.refusal = {"bad"}, REFUSED_PG
    results = await asyncio.gather(*(queue.write(text, database.statement(text))
                                     for text in ("one", "bad", "two", "three")))
    assert results == [None, REFUSED_PG, None, None]
    assert database.committed == [["one"], ["two"], ["three"]]


async def test_a_write_whose_own_code_fails_costs_only_that_write(database: Database) -> None:
    queue = WriteQueue(database.session)
    database.broken = {"bad"}
    results = await asyncio.gather(*(queue.write(text, database.statement(text)) for text in ("one", "bad", "two")))
    assert results[0] is None and results[2] is None
    assert results[1] is not None and "(TypeError)" in results[1]
    assert database.committed == [["one"], ["two"]]


async def test_a_version_left_to_a_later_one_hears_how_that_one_went(database: Database) -> None:
    """Not a success in advance: the guard counts a success as the database answering, and closes its
    circuit on it."""
    queue = WriteQueue(database.session)
    database.locked = True
    first = asyncio.ensure_future(queue.write("a", database.statement("a: Thinking...")))
    last = asyncio.ensure_future(queue.write("a", database.statement("a: answer")))
    await asyncio.sleep(0)
    assert not first.done()
    assert await first == await last == f"An error occurred: (OperationalError) {LOCKED}"


async def test_what_a_write_noted_is_seen_by_the_batch_and_kept_only_once_committed(database: Database) -> None:
    queue = WriteQueue(database.session)
    remembered: list[str] = []
    seen: list[bool] = []

    def storing_thread(text: str) -> Callable[[], Any]:
        async def apply() -> None:
            seen.append(noted("thread-1"))
            if not noted("thread-1"):
                after_commit(lambda: remembered.append("thread-1"), note="thread-1")
                assert remembered == []  # not before the commit
            await database.statement(text)()

        return apply

    await asyncio.gather(*(queue.write(text, storing_thread(text)) for text in ("x", "y")))
    assert seen == [False, True] and remembered == ["thread-1"]
    after_commit(lambda: remembered.append("now"))  # outside a batch: at once
    assert remembered == ["thread-1", "now"]


async def test_a_caller_that_stops_waiting_still_has_its_write_done(database: Database) -> None:
    queue = WriteQueue(database.session)
    waiting = asyncio.create_task(queue.write("a", database.statement("a")))
    await asyncio.sleep(0)
    waiting.cancel()
    await queue.write("b", database.statement("b"))
    assert waiting.cancelled()
    assert [text for batch in database.committed for text in batch] == ["a", "b"]


async def test_the_writer_does_not_carry_its_first_callers_context(database: Database) -> None:
    """The writer task starts from the first caller; what that caller had set (a Chainlit session, the
    guard's bookkeeping) must not be seen by every later write."""
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="clean")
    seen: list[str] = []

    async def apply() -> None:
        seen.append(marker.get())

    marker.set("first caller's")
    await WriteQueue(database.session).write("k", apply)
    assert seen == ["clean"]
