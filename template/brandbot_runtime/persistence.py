"""Conversations kept in a database through Chainlit's own SQLAlchemy data layer.

At start-up (`prepare`, from app.py's on_app_startup) the database named by DATABASE_URL (default:
the project's SQLite file) is brought to brandbot's schema; only then does `data_layer()`, which
app.py registers with `@cl.data_layer`, hand Chainlit a layer. A database that cannot be migrated
is logged once and the bot answers without persistence: storing is never worth a customer's answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from chainlit.data.base import BaseDataLayer
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.element import Element
from chainlit.logger import logger as chainlit_logger
from chainlit.step import StepDict
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import sessionmaker

from . import schema
from .data_layer_guard import guarded
from .database_url import configured_url, describe, resolve_database_url
from .schema.engine import create_engine, is_sqlite
from .settings import ConfigurationError, Settings

__all__ = ["StoredConversations", "configured_url", "data_layer", "database_url", "prepare"]

log = logging.getLogger("brandbot")

_ready_url: str | None = None  # set once the schema is in place
_SQLITE_POOL = {"pool_size": 3, "max_overflow": 2}
# Statements of the writes nobody waits for that may run at once: SQLite writes one at a time anyway,
# and the rest of the pool stays free for the calls a customer waits for (signing in, resuming).
_BACKGROUND_SLOTS = {"sqlite": 1, "other": 4}
_background: ContextVar[bool] = ContextVar("brandbot_background_write", default=False)


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
    timestamps are UTC whatever the server's time zone (Chainlit writes local time with a 'Z')."""

    def __init__(self, url: str) -> None:
        with _without_storage_warning():
            super().__init__(conninfo=url)
        # Chainlit's engine (not yet connected) is replaced by schema.engine's: SQLite's pragmas, and a
        # small pool there, since SQLite writes one at a time and each connection keeps its own page cache.
        self.engine = create_engine(url, **(_SQLITE_POOL if is_sqlite(url) else {}))
        self.async_session = sessionmaker(bind=self.engine, expire_on_commit=False, class_=AsyncSession)
        self._sqlite = is_sqlite(url)
        self._step_locks: dict[str, tuple[asyncio.Lock, int]] = {}  # step id -> its lock, writes holding or awaiting it
        self._background_slots = asyncio.Semaphore(_BACKGROUND_SLOTS["sqlite" if self._sqlite else "other"])

    async def create_step(self, step_dict: StepDict) -> None:
        """Write a step's versions in the order they were made.

        Chainlit starts each write of a message (send, then every update) as its own task, and the
        writes race: when "Thinking..." landed last, the stored answer stayed "Thinking..." (measured:
        4 of 41 answers on SQLite, 2 of 41 on PostgreSQL). A lock per step id, taken before any other
        await, keeps them in the order the tasks started; update_step goes through here too.
        """
        step_id = str(step_dict.get("id"))
        lock, users = self._step_locks.get(step_id, (asyncio.Lock(), 0))
        self._step_locks[step_id] = (lock, users + 1)
        try:
            async with lock:
                with _in_background():
                    await super().create_step(step_dict)
        finally:
            lock, users = self._step_locks[step_id]
            if users == 1:
                del self._step_locks[step_id]
            else:
                self._step_locks[step_id] = (lock, users - 1)

    async def delete_step(self, step_id: str) -> None:
        with _in_background():
            await super().delete_step(step_id)

    async def create_element(self, element: Element) -> None:
        with _in_background():
            await super().create_element(element)

    async def delete_element(self, element_id: str, thread_id: str | None = None) -> None:
        with _in_background():
            await super().delete_element(element_id, thread_id)

    async def update_thread(self, thread_id: str, name: str | None = None, user_id: str | None = None,
                            metadata: dict | None = None, tags: list[str] | None = None) -> None:
        with _in_background():
            await super().update_thread(thread_id, name=name, user_id=user_id, metadata=metadata, tags=tags)

    async def get_current_timestamp(self) -> str:
        return datetime.now(UTC).replace(tzinfo=None).isoformat() + "Z"

    async def execute_sql(self, query: str, parameters: dict) -> list[dict[str, Any]] | int | None:
        """One statement; those of the writes nobody waits for queue here, a few at a time.

        Chainlit fires every step write as its own task: under load hundreds wait at once, and while
        they all waited for a pooled connection a customer's sign-in (get_user, create_user: awaited,
        bounded to a second by the guard) queued behind them and failed. Queued here instead, the
        awaited calls find a free connection at once."""
        bound = {name: self._bindable(value) for name, value in parameters.items()}
        if not _background.get():
            return await super().execute_sql(query, bound)
        async with self._background_slots:
            return await super().execute_sql(query, bound)

    def _bindable(self, value: object) -> object:
        if isinstance(value, dict) or (self._sqlite and isinstance(value, list)):
            return json.dumps(value)
        return value


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
