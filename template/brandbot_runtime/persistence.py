"""Conversations kept in a database through Chainlit's own SQLAlchemy data layer.

At start-up (`prepare`, from app.py's on_app_startup) the database named by DATABASE_URL (default:
the project's SQLite file) is brought to brandbot's schema; only then does `data_layer()`, which
app.py registers with `@cl.data_layer`, hand Chainlit a layer. A database that cannot be migrated
is logged once and the bot answers without persistence: storing is never worth a customer's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from chainlit.data.base import BaseDataLayer
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.utils import queue_until_user_message
from chainlit.element import Element
from chainlit.logger import logger as chainlit_logger
from chainlit.step import StepDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import sessionmaker

from . import schema
from .data_layer_guard import guarded, inner_warnings
from .database_url import configured_url, describe, resolve_database_url
from .schema.engine import create_engine, is_sqlite
from .settings import ConfigurationError, Settings
from .write_queue import WriteQueue, after_commit, noted, shared_session

__all__ = ["StoredConversations", "configured_url", "data_layer", "database_url", "prepare"]

log = logging.getLogger("brandbot")

_ready_url: str | None = None  # set once the schema is in place
_SQLITE_POOL = {"pool_size": 3, "max_overflow": 2}
# Statements of the writes nobody waits for that may run at once: SQLite writes one at a time anyway,
# and the rest of the pool stays free for the calls a customer waits for (signing in, resuming).
_BACKGROUND_SLOTS = {"sqlite": 1, "other": 4}
_background: ContextVar[bool] = ContextVar("brandbot_background_write", default=False)
# Thread ids this process has seen stored, so a step needs no SELECT to learn that its thread exists;
# oldest forgotten first past the bound (a forgotten thread costs one SELECT again).
KNOWN_THREADS = 10_000
# How long close() lets the writer finish what is queued (the guard's drain has waited for its callers).
WRITER_CLOSE_SECONDS = 5.0

# Chainlit's own writes without their queue_until_user_message wrapper: the write queue's writer runs
# them outside any Chainlit session (create_step and delete_step below have queued them already).
_CHAINLIT_CREATE_STEP = SQLAlchemyDataLayer.create_step.__wrapped__  # type: ignore[attr-defined]
_CHAINLIT_DELETE_STEP = SQLAlchemyDataLayer.delete_step.__wrapped__  # type: ignore[attr-defined]


def database_url(settings: Settings) -> str | None:
    """The SQLAlchemy URL the deployment stores conversations at; None when DATABASE_URL=off."""
    return resolve_database_url(settings.database_url.get_secret_value())


async def prepare(settings: Settings | ConfigurationError) -> str | None:
    """Migrate the database before the first customer; the URL conversations go to, or None (off)."""
    global _ready_url
    _ready_url = None
    if isinstance(settings, ConfigurationError):
        return None  # chat.startup() already said what is wrong; nothing will be answered to store
    url = database_url(settings)
    if url is None:
        log.info("persistence off (DATABASE_URL=off): conversations are not stored")
        return None
    try:
        await schema.upgrade_async(url)
    except Exception as error:  # noqa: BLE001  # whatever the database does, customers still get answers
        log.error("persistence off: could not bring %s to schema %s (%s: %s); conversations are not stored "
                  "until this is fixed and the bot restarted", describe(url), schema.head(),
                  type(error).__name__, _first_line(error))
        return None
    _ready_url = url
    log.info("conversations stored in %s (schema %s)", describe(url), schema.head())
    return url


def data_layer() -> BaseDataLayer | None:
    """What app.py's @cl.data_layer hands Chainlit: a layer on the migrated database, or None."""
    return guarded(StoredConversations(_ready_url), url=_ready_url) if _ready_url is not None else None


class StoredConversations(SQLAlchemyDataLayer):
    """Chainlit's SQLAlchemy data layer with the gaps it leaves on our databases closed:
    SQLite connections get WAL, a busy timeout and a bounded pool (schema.engine); a list or dict value (a thread's
    tags, a message's modes) is bound as JSON where the driver cannot bind it (upstream #2528);
    timestamps are UTC whatever the server's time zone (Chainlit writes local time with a 'Z').

    It also writes less than Chainlit's layer, for the same rows (docs/performance.md: Chainlit ran 14
    statements per answer, each its own transaction, most of a storing server's work): a thread stored
    once is remembered (Chainlit SELECTs it before every step to learn whether it exists), and steps
    are written by one writer, many to a transaction, a step's last queued version only (write_queue.py)."""

    def __init__(self, url: str) -> None:
        with _without_storage_warning():
            super().__init__(conninfo=url)
        # Chainlit's engine (not yet connected) is replaced by schema.engine's: SQLite's pragmas, and a
        # small pool there, since SQLite writes one at a time and each connection keeps its own page cache.
        self.engine = create_engine(url, **(_SQLITE_POOL if is_sqlite(url) else {}))
        self.async_session = sessionmaker(bind=self.engine, expire_on_commit=False, class_=AsyncSession)
        self._sqlite = is_sqlite(url)
        # SQLite has one writer at a time: the write queue's batches and the statements others wait for
        # (a sign-in, feedback) take turns here, instead of those retrying on the busy timeout until the
        # writer's backlog is done (asyncio.Lock serves in arrival order).
        self._write_turn = asyncio.Lock() if self._sqlite else None
        self._writes = WriteQueue(self.async_session, turn=self._turn)
        self._threads: dict[str, None] = {}  # thread ids known to be stored, oldest first (KNOWN_THREADS)
        self._background_slots = asyncio.Semaphore(_BACKGROUND_SLOTS["sqlite" if self._sqlite else "other"])

    @queue_until_user_message()  # as Chainlit's own: no thread is stored for a visitor who never writes
    async def create_step(self, step_dict: StepDict) -> None:
        """Queue a step's version for the writer (write_queue.py), which keeps the order they were made in.

        Chainlit starts each write of a message (send, then every update) as its own task, and the
        writes raced: when "Thinking..." landed last, the stored answer stayed "Thinking..." (measured:
        4 of 41 answers on SQLite, 2 of 41 on PostgreSQL). update_step goes through here too.
        """
        thread_id = str(step_dict.get("threadId"))
        problem = await self._writes.write(str(step_dict.get("id")),
                                           lambda: _CHAINLIT_CREATE_STEP(self, step_dict))
        if problem is not None:
            self._threads.pop(thread_id, None)  # the thread may be gone (erased by another process): look again
            chainlit_logger.warning(problem)  # said in the caller's task, where data_layer_guard judges the call

    @queue_until_user_message()
    async def delete_step(self, step_id: str) -> None:
        """Queued behind the step's versions, so that none of them brings it back."""
        problem = await self._writes.write(step_id, lambda: _CHAINLIT_DELETE_STEP(self, step_id), deletes=True)
        if problem is not None:
            chainlit_logger.warning(problem)

    async def update_thread(self, thread_id: str, name: str | None = None, user_id: str | None = None,
                            metadata: dict | None = None, tags: list[str] | None = None) -> None:
        """Chainlit's upsert; for a thread already stored and nothing to change (create_step's call before
        every step), nothing at all: Chainlit SELECTs the thread to find that out, this remembers it."""
        changes = name is not None or user_id is not None or metadata is not None or tags is not None
        if not changes and (thread_id in self._threads or noted(thread_id)):
            return
        with _in_background(), inner_warnings() as logged:
            await super().update_thread(thread_id, name=name, user_id=user_id, metadata=metadata, tags=tags)
        if logged.problem is not None:  # a statement failed (Chainlit logged it and went on): not stored
            chainlit_logger.warning(logged.problem)  # said again in the caller's task, as create_step does
            return
        after_commit(lambda: self._remember(thread_id), note=thread_id)

    async def close(self) -> None:
        """The writer's queue first (a conversation's last words), for a few seconds, then Chainlit's close."""
        await self._writes.finish(WRITER_CLOSE_SECONDS)
        await super().close()

    async def delete_thread(self, thread_id: str) -> None:
        self._threads.pop(thread_id, None)
        await super().delete_thread(thread_id)

    def _remember(self, thread_id: str) -> None:
        self._threads[thread_id] = None
        if len(self._threads) > KNOWN_THREADS:
            del self._threads[next(iter(self._threads))]

    async def create_element(self, element: Element) -> None:
        with _in_background():
            await super().create_element(element)

    async def delete_element(self, element_id: str, thread_id: str | None = None) -> None:
        with _in_background():
            await super().delete_element(element_id, thread_id)

    async def get_current_timestamp(self) -> str:
        return datetime.now(UTC).replace(tzinfo=None).isoformat() + "Z"

    async def execute_sql(self, query: str, parameters: dict) -> list[dict[str, Any]] | int | None:
        """One statement; those of the writes nobody waits for queue here, a few at a time.

        Chainlit fires every step write as its own task: under load hundreds wait at once, and while
        they all waited for a pooled connection a customer's sign-in (get_user, create_user: awaited,
        bounded to a second by the guard) queued behind them and failed. Queued here instead, the
        awaited calls find a free connection at once."""
        bound = {name: self._bindable(value) for name, value in parameters.items()}
        if (session := shared_session()) is not None:  # a batch of the write queue: its transaction, its errors
            result = await session.execute(text(query), bound)
            if result.returns_rows:
                return self.clean_result([dict(row._mapping) for row in result.fetchall()])  # as Chainlit does
            return result.rowcount
        async with self._turn() if _writes_rows(query) else contextlib.nullcontext():
            if not _background.get():
                result = await super().execute_sql(query, bound)
            else:
                async with self._background_slots:
                    result = await super().execute_sql(query, bound)
        return result

    def _turn(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """SQLite's write turn (see __init__); nothing to wait for elsewhere."""
        return self._write_turn if self._write_turn is not None else contextlib.nullcontext()

    def _bindable(self, value: object) -> object:
        if isinstance(value, dict) or (self._sqlite and isinstance(value, list)):
            return json.dumps(value)
        return value


def _writes_rows(query: str) -> bool:
    """Whether a statement writes (and so needs SQLite's write turn): anything but a SELECT."""
    return not query.lstrip().upper().startswith("SELECT")


@contextmanager
def _in_background() -> Iterator[None]:
    """Marks the statements run inside as part of a write nobody waits for (see execute_sql)."""
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


@contextmanager
def _without_storage_warning():  # type: ignore[no-untyped-def]
    """Chainlit warns on every start that files (elements) are not stored: the bot sends none."""

    def drop(record: logging.LogRecord) -> bool:
        return "storage client is not initialized" not in record.getMessage()

    chainlit_logger.addFilter(drop)
    try:
        yield
    finally:
        chainlit_logger.removeFilter(drop)


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [""])[0][:300]
