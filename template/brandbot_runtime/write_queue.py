"""One task writes the steps Chainlit fires at the database, many to a transaction.

Chainlit starts every version of every step (sent, then each update) as a task of its own, and its
SQLAlchemy layer gives each statement a session and a transaction of its own. Under load those
writes are most of a storing server's work, on the event loop its customers wait on. Here the
writes queue in the order they were made, and one writer task works through the queue a batch
at a time, one transaction per batch:

- order is kept (a step's answer never lands before its "Thinking..."), and a version with a later
  version of the same step behind it in the batch is not written at all: each version is the whole
  step, so the later one stores all of it;
- a batch a statement spoils (a row the database refuses) is rolled back and its writes done one at
  a time, so only that write is lost; a batch the database cannot take at all (down, locked) fails
  as a whole, each write with the database's own error, once;
- each caller gets back what its write ran into, to report in its own task (data_layer_guard judges
  the call there); the writer logs nothing itself, so no row's text reaches the log from here.

The writer exists only while there is something to write.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exc

from .data_layer_guard import inner_warnings, says_unreachable

__all__ = ["BATCH_SIZE", "WriteQueue", "after_commit", "noted", "shared_session"]

#: Writes per transaction at most: a transaction holds SQLite's one write lock while it lasts (about
#: half a millisecond per statement here), and everyone else's writes wait for it.
BATCH_SIZE = 50


@dataclass
class _Batch:
    """The transaction a batch's statements run in, and what to do once it is committed."""

    session: Any
    committed: list[Callable[[], None]] = field(default_factory=list)
    notes: set[str] = field(default_factory=set)  # what the batch has written so far, for later writes in it


_batch: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar("brandbot_write_batch", default=None)


def shared_session() -> Any | None:
    """The session of the batch being written, which a statement run now must use; None outside one."""
    batch = _batch.get()
    return batch.session if batch is not None else None


def after_commit(action: Callable[[], None], note: str | None = None) -> None:
    """Run `action` once what was just written is committed: at once outside a batch. In a batch,
    `note` tells the batch's later writes what this one wrote (see `noted`)."""
    batch = _batch.get()
    if batch is None:
        action()
        return
    batch.committed.append(action)
    if note is not None:
        batch.notes.add(note)


def noted(note: str) -> bool:
    """Whether a write earlier in the batch being written said `note` (after_commit)."""
    batch = _batch.get()
    return batch is not None and note in batch.notes


@dataclass
class _Write:
    """One queued write: a version of a step (or its deletion), and the caller waiting for it."""

    key: str
    apply: Callable[[], Awaitable[Any]]
    done: asyncio.Future[str | None]
    deletes: bool = False
    replaced: list[_Write] = field(default_factory=list)  # earlier versions this one writes for (same batch)


class WriteQueue:
    """The queue and its writer for one data layer; `open_session()` gives a new database session, and
    `turn()` is held around each batch (so other writers can take turns with the writer)."""

    def __init__(self, open_session: Callable[[], AbstractAsyncContextManager[Any]], *,
                 turn: Callable[[], AbstractAsyncContextManager[Any]] = contextlib.nullcontext,
                 batch_size: int = BATCH_SIZE) -> None:
        self.open_session = open_session
        self.turn = turn  # held while a batch is written (see StoredConversations: SQLite's one writer)
        self.batch_size = batch_size
        self._queue: deque[_Write] = deque()
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed: tests and the benchmark read it

    async def write(self, key: str, apply: Callable[[], Awaitable[Any]], *, deletes: bool = False) -> str | None:
        """Queue a write of step `key` (`apply` runs its statements) and wait for it to be done: None,
        or the problem it ran into, as the data layer would have logged it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str | None] = loop.create_future()
        self._queue.append(_Write(key, apply, done, deletes))
        if self._writer is None or self._writer.done():
            # A context of its own: the writer must not carry the first caller's (a Chainlit session's,
            # the guard's bookkeeping) into every write after it.
            self._writer = loop.create_task(self._write_all(), context=contextvars.Context())
        return await done

    @property
    def waiting(self) -> int:
        """Writes queued and not yet taken into a batch."""
        return len(self._queue)

    async def finish(self, seconds: float) -> bool:
        """Wait up to `seconds` for the writer to write what is queued; whether it did (before the engine goes)."""
        writer = self._writer
        if writer is None or writer.done():
            return True
        done, _ = await asyncio.wait({writer}, timeout=seconds)
        return bool(done)

    async def _write_all(self) -> None:
        batch: list[_Write] = []
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                await self._write_batch(batch)
                batch = []
        except BaseException as stopped:  # cancelled with the loop: nobody may wait for ever
            for write in [*batch, *self._queue]:  # (_settle reaches the versions a write replaced)
                _settle(write, f"An unexpected error occurred: write abandoned ({type(stopped).__name__})")
            self._queue.clear()
            raise
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[_Write]) -> None:
        needed = _latest_versions(batch)
        shared = _Batch(session=None)
        try:
            async with self.turn(), self.open_session() as session:
                shared.session = session
                token = _batch.set(shared)
                try:
                    await session.begin()
                    for write in needed:
                        await write.apply()
                    await session.commit()
                finally:
                    _batch.reset(token)
        except Exception as error:  # noqa: BLE001 - told to each caller
            problem = f"An error occurred: ({type(error).__name__}) {error}"
            await self._one_at_a_time(needed, problem if _connection_lost(error) else None)
            return
        self.batches += 1
        for action in shared.committed:
            action()
        for write in needed:
            _settle(write, None)

    async def _one_at_a_time(self, writes: list[_Write], unreachable: str | None) -> None:
        """After a failed batch: each write alone, so that a statement the database refuses costs only its
        own write; once the database is shown unreachable (`unreachable`: what said so), the writes left
        fail with that, untried."""
        for write in writes:
            if unreachable is not None:
                _settle(write, unreachable)
                continue
            problem, lost = await _alone(write)
            _settle(write, problem)
            if lost:
                unreachable = problem


def _connection_lost(error: BaseException) -> bool:
    """Whether an error says the database cannot be reached at all (down, locked, gone mid-statement),
    rather than that it refused a statement and would take others: decided on the exception itself, so
    that a driver's own names for refusals (asyncpg's ForeignKeyViolationError...) cannot pass for an outage."""
    if isinstance(error, (OSError, TimeoutError)):
        return True
    if isinstance(error, (exc.OperationalError, exc.InterfaceError)) or (
            isinstance(error, exc.DBAPIError) and error.connection_invalidated):
        return says_unreachable(f"({type(error).__name__}) {error}")  # SQLite names a missing column so too
    return False


def _latest_versions(batch: list[_Write]) -> list[_Write]:
    """The writes of a batch worth doing, in order: every deletion, and each step's last version
    before its next deletion (or the batch's end). A version left out is settled with the one that
    replaces it (_settle), so its caller hears what became of the step, not a success in advance."""
    later: dict[str, _Write] = {}
    kept: list[_Write] = []
    for write in reversed(batch):
        if write.deletes:
            later.pop(write.key, None)
            kept.append(write)
        elif (replacing := later.get(write.key)) is not None:
            replacing.replaced.append(write)
        else:
            later[write.key] = write
            kept.append(write)
    kept.reverse()
    return kept


async def _alone(write: _Write) -> tuple[str | None, bool]:
    """Do one write in a transaction of its own (the data layer's usual way): what it logged or raised,
    if anything, and whether that says the database cannot be reached."""
    with inner_warnings() as logged:  # Chainlit logs a failed statement, with its values, and goes on
        try:
            await write.apply()
        except Exception as error:  # noqa: BLE001 - told to the caller
            return f"An unexpected error occurred: ({type(error).__name__}) {error}", _connection_lost(error)
    if logged.problem is None:
        return None, False
    return logged.problem, says_unreachable(logged.problem)


def _settle(write: _Write, problem: str | None) -> None:
    """Tell the write's caller, and the callers of the versions it replaced, how it went."""
    for settled in (write, *write.replaced):
        if not settled.done.done():  # a caller cancelled meanwhile gets nothing; the write was done all the same
            settled.done.set_result(problem)
