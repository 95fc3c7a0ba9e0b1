"""Conversations stored through Chainlit's own data layer on a real SQLite file: the thread, the
customer's message, the answer and the feedback on it; a database that cannot be migrated costs the
customer nothing; DATABASE_URL's rule."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import chainlit as cl
import chainlit.data as chainlit_data
import pytest
from chainlit.config import config
from chainlit.types import Feedback
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

import app
from brandbot_runtime import persistence
from brandbot_runtime.data_layer_guard import DataLayerGuard
from brandbot_runtime.database_url import DEFAULT_SQLITE_FILE, describe, resolve_database_url, sqlite_url
from brandbot_runtime.project_paths import PROJECT_DIR
from brandbot_runtime.settings import ConfigurationError, validate_settings

from .chat_harness import ChatHarness, Shown
from .conftest import TEST_SECRET
from .middleware_double import MiddlewareDouble


async def settle() -> None:
    """Wait for the data layer's background writes (Chainlit starts them with create_task)."""
    while writes := [task for task in asyncio.all_tasks() if "DataLayer" in task.get_coro().__qualname__]:
        await asyncio.gather(*writes, return_exceptions=True)


def rows(database: Path, query: str, *parameters: object) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query, parameters).fetchall()


async def converse(session: ChatHarness, text: str) -> tuple[cl.Message, Shown]:
    """One exchange the way Chainlit's server runs it: the customer's message is stored (emitter's
    process_message) and on_message runs inside its "run" step (callbacks.on_message)."""
    emitter = session._enter()
    before = len(emitter.messages)
    message = cl.Message(content=text, author="User", type="user_message")
    cl.chat_context.add(message)
    await message._create()
    assert config.code.on_message is not None
    await config.code.on_message(message)
    answers = [shown for shown in list(emitter.messages.values())[before:] if shown.type == "assistant_message"]
    return message, answers[-1]


@pytest.fixture
async def database(configure, middleware: MiddlewareDouble, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    """The bot started on a fresh SQLite file, as `chainlit run` starts it (on_app_startup first)."""
    path = tmp_path / "store" / "conversations.sqlite3"
    configure(middleware.url, DATABASE_URL=sqlite_url(path))
    monkeypatch.setattr(persistence, "_ready_url", None)
    monkeypatch.setattr(chainlit_data, "_data_layer", None)
    monkeypatch.setattr(chainlit_data, "_data_layer_initialized", False)
    await app.on_app_startup()
    layer = chainlit_data.get_data_layer()
    assert isinstance(layer, DataLayerGuard) and isinstance(layer.inner, persistence.StoredConversations)
    yield path
    await settle()
    await layer.close()


async def test_a_conversation_stores_the_thread_the_message_and_the_answer(database: Path,
                                                                             session: ChatHarness) -> None:
    await session.start()
    message, answer = await converse(session, "Where is my parcel?")
    thread = session.session.thread_id
    await settle()
    assert rows(database, "SELECT id FROM threads") == [(thread,)]
    assert rows(database, "SELECT output FROM steps WHERE id = ?", message.id) == [("Where is my parcel?",)]
    assert rows(database, "SELECT output FROM steps WHERE id = ?", answer.id) == [(answer.final,)]
    run = rows(database, 'SELECT "parentId" FROM steps WHERE id = ?', answer.id)[0][0]
    # the step Chainlit's published DDL loses (no "autoCollapse"), and the feedback with it
    assert rows(database, 'SELECT type, "parentId" FROM steps WHERE id = ?', run) == [("run", message.id)]


async def test_feedback_is_stored_on_the_answers_step(database: Path, session: ChatHarness) -> None:
    await session.start()
    _, answer = await converse(session, "Thanks!")
    thread = session.session.thread_id
    await settle()
    run = rows(database, 'SELECT "parentId" FROM steps WHERE id = ?', answer.id)[0][0]
    layer = chainlit_data.get_data_layer()
    assert layer is not None
    feedback_id = await layer.upsert_feedback(Feedback(forId=run, value=0, threadId=thread, comment="too slow"))
    assert rows(database, 'SELECT id, "forId", "threadId", value, comment FROM feedbacks') == [
        (feedback_id, run, thread, 0, "too slow")]
    stored = await layer.get_thread(thread)
    assert stored is not None
    [step] = [step for step in stored["steps"] if step["id"] == run]
    assert step["feedback"] is not None and step["feedback"]["value"] == 0


async def test_chainlits_published_ddl_loses_the_run_step_with_a_warning(
        database: Path, session: ChatHarness, data_layer_errors: list[logging.LogRecord]) -> None:
    """The gap this schema closes: without steps."autoCollapse" the run step's INSERT fails and
    Chainlit only logs a WARNING (the fixture that fails on such warnings sees it)."""
    with sqlite3.connect(database) as connection:
        connection.execute('ALTER TABLE steps DROP COLUMN "autoCollapse"')
    await session.start()
    _, answer = await converse(session, "hello")
    await settle()
    assert rows(database, "SELECT output FROM steps WHERE id = ?", answer.id) == [(answer.final,)]
    assert rows(database, 'SELECT id FROM steps WHERE type = ?', "run") == []
    assert any("autoCollapse" in record.getMessage() for record in data_layer_errors)
    data_layer_errors.clear()  # expected here


async def test_a_database_that_cannot_be_migrated_leaves_the_bot_answering(
        configure, middleware: MiddlewareDouble, session: ChatHarness, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be", encoding="utf-8")
    configure(middleware.url, DATABASE_URL=sqlite_url(blocker / "conversations.sqlite3"))
    monkeypatch.setattr(chainlit_data, "_data_layer", None)
    monkeypatch.setattr(chainlit_data, "_data_layer_initialized", False)
    with caplog.at_level(logging.INFO, logger="brandbot"):
        await app.on_app_startup()
    failures = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(failures) == 1 and "persistence off" in failures[0].getMessage()
    assert chainlit_data.get_data_layer() is None
    await session.start()
    assert (await session.say("still there?")).final.endswith("still there?")


async def test_persistence_off_stores_nothing(configure, middleware: MiddlewareDouble,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    configure(middleware.url, DATABASE_URL="off")
    monkeypatch.setattr(persistence, "_ready_url", "sqlite+aiosqlite:////nowhere")
    assert await persistence.prepare(validate_settings()) is None
    assert persistence.data_layer() is None


def test_by_default_conversations_go_to_the_projects_sqlite_file_and_off_stores_nothing() -> None:
    assert DEFAULT_SQLITE_FILE == PROJECT_DIR / ".data" / "conversations.sqlite3"
    assert resolve_database_url("") == resolve_database_url("  ") == sqlite_url(DEFAULT_SQLITE_FILE)
    assert resolve_database_url("local") == resolve_database_url("LOCAL") == sqlite_url(DEFAULT_SQLITE_FILE)
    assert resolve_database_url("off") is None and resolve_database_url("OFF") is None


@pytest.mark.parametrize(("given", "expected"), [
    ("postgresql+asyncpg://bot:pw@db:5432/chats", "postgresql+asyncpg://bot:pw@db:5432/chats"),
    ("postgresql://bot:pw@db/chats", "postgresql+asyncpg://bot:pw@db/chats"),
    ("postgres://bot:pw@db/chats", "postgresql+asyncpg://bot:pw@db/chats"),
])
def test_postgresql_urls_use_asyncpg(given: str, expected: str) -> None:
    assert resolve_database_url(given) == expected


def test_a_relative_sqlite_file_is_in_the_project_not_the_working_directory() -> None:
    assert resolve_database_url("sqlite+aiosqlite:///state/chats.db") == sqlite_url(PROJECT_DIR / "state/chats.db")
    assert resolve_database_url("sqlite:////srv/chats.db") == "sqlite+aiosqlite:////srv/chats.db"


@pytest.mark.parametrize("given", ["mysql://bot:hunter22@db/chats", "sqlite+aiosqlite:///:memory:",
                                   "sqlite+aiosqlite://", "not a url hunter22"])
def test_an_unusable_database_url_is_refused_at_start_without_its_value(monkeypatch: pytest.MonkeyPatch,
                                                                         given: str) -> None:
    monkeypatch.setenv("BACKEND_API_URL", "https://mw.example/chat")
    monkeypatch.setenv("BACKEND_API_SECRET", TEST_SECRET)
    monkeypatch.setenv("DATABASE_URL", given)
    with pytest.raises(ConfigurationError) as raised:
        validate_settings()
    assert [problem.split(":")[0] for problem in raised.value.problems] == ["DATABASE_URL"]
    assert "hunter22" not in str(raised.value)


def test_a_logged_url_hides_its_password() -> None:
    shown = describe("postgresql+asyncpg://bot:hunter22@db/chats")
    assert "hunter22" not in shown and "db/chats" in shown


async def test_a_steps_writes_land_in_the_order_they_were_made(database: Path, session: ChatHarness) -> None:
    """Chainlit starts each write of a message as its own task; when the first ("Thinking...") is the
    slower one, it must still not land last (it did for about 1 answer in 10)."""
    await session.start()
    await converse(session, "hello")
    await settle()
    layer = chainlit_data.get_data_layer()
    assert isinstance(layer, DataLayerGuard)
    stored: persistence.StoredConversations = layer.inner
    original = stored.update_thread
    delayed: list[str] = []

    async def first_write_slow(thread_id: str, *args: object, **kwargs: object) -> None:
        if not delayed:  # create_step begins with update_thread: hold the first write back
            delayed.append(thread_id)
            await asyncio.sleep(0.3)
        await original(thread_id, *args, **kwargs)

    stored.update_thread = first_write_slow  # type: ignore[method-assign]
    step = cl.Message(content="Thinking...", author="Bot").to_dict()
    first = asyncio.create_task(stored.create_step(dict(step)))
    second = asyncio.create_task(stored.update_step({**step, "output": "Your parcel is on its way."}))
    await asyncio.gather(first, second)
    assert delayed
    assert rows(database, "SELECT output FROM steps WHERE id = ?", step["id"]) == [("Your parcel is on its way.",)]
    assert stored._writes.waiting == 0 and stored._writes._writer is None  # the writer goes when the queue is empty


async def test_a_sign_in_does_not_wait_behind_a_backlog_of_step_writes(database: Path, session: ChatHarness) -> None:
    """Under load hundreds of Chainlit's fire-and-forget step writes wait at once; a customer's sign-in
    (create_user, awaited and bounded to a second by the guard) queued behind them for pooled
    connections and failed (at 50 sessions: up to 22 of 50 conversations stored without their visitor)."""
    await session.start()
    layer = chainlit_data.get_data_layer()
    assert isinstance(layer, DataLayerGuard)
    stored: persistence.StoredConversations = layer.inner
    thread = str(uuid.uuid4())
    await stored.update_thread(thread)
    steps = [{**cl.Message(content=f"answer {index}", author="Bot").to_dict(), "threadId": thread}
             for index in range(300)]
    backlog = [asyncio.create_task(stored.create_step(step)) for step in steps]
    await asyncio.sleep(0)
    user = await stored.create_user(cl.User(identifier="visitor-1"))
    waiting = sum(not write.done() for write in backlog)
    await asyncio.gather(*backlog)
    assert user is not None and user.identifier == "visitor-1"
    assert waiting > 200, f"the sign-in waited for {300 - waiting} of 300 queued writes"
    assert rows(database, 'SELECT COUNT(*) FROM steps WHERE "threadId" = ?', thread) == [(300,)]


class Statements:
    """The SQL statements an engine runs, as written (counted in SQLAlchemy, before the driver)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.seen: list[str] = []
        self.engine = engine
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, _connection: object, _cursor: object, statement: str, *_: object) -> None:
        self.seen.append(" ".join(statement.split()))

    def close(self) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self._record)

    def starting(self, prefix: str) -> list[str]:
        return [statement for statement in self.seen if statement.startswith(prefix)]


async def test_a_stored_threads_steps_are_written_without_asking_whether_it_exists(
        database: Path, session: ChatHarness) -> None:
    """Chainlit SELECTs a step's thread before writing every step (most of the SELECTs a storing server
    runs); once this process has stored the thread, the steps are written alone."""
    await session.start()
    await converse(session, "hello")
    await settle()
    stored = chainlit_data.get_data_layer().inner  # type: ignore[union-attr]
    statements = Statements(stored.engine)
    try:
        await converse(session, "where is my parcel?")
        await settle()
    finally:
        statements.close()
    assert statements.starting("SELECT") == []
    assert len(statements.starting("INSERT INTO steps")) >= 3  # the customer's message, the run step, the answer
    assert statements.starting("INSERT INTO threads") == []
    thread = session.session.thread_id
    assert rows(database, 'SELECT COUNT(*) FROM steps WHERE "threadId" = ? AND output = ?', thread,
                "where is my parcel?") == [(1,)]


async def test_a_new_threads_first_steps_store_it_once(database: Path, session: ChatHarness) -> None:
    """Steps written at once for a thread nobody has stored yet: one of them stores the thread, the others
    find it stored (Chainlit upserted it from each)."""
    await session.start()
    await settle()  # the welcome's writes
    stored: persistence.StoredConversations = chainlit_data.get_data_layer().inner  # type: ignore[union-attr]
    thread = str(uuid.uuid4())
    steps = [{**cl.Message(content=f"step {index}", author="Bot").to_dict(), "threadId": thread} for index in range(5)]
    statements = Statements(stored.engine)
    try:
        await asyncio.gather(*(stored.create_step(step) for step in steps))
    finally:
        statements.close()
    assert len(statements.starting("INSERT INTO threads")) == 1
    assert len(statements.starting('SELECT "metadata" FROM threads')) == 1
    assert rows(database, 'SELECT COUNT(*) FROM steps WHERE "threadId" = ?', thread) == [(5,)]


async def test_a_version_with_a_later_one_waiting_is_left_to_it(database: Path, session: ChatHarness) -> None:
    """Under load "Thinking..." and the answer replacing it both wait for the database: only what is
    stored in the end needs writing. (The writer is held until all three versions are queued.)"""
    await session.start()
    await settle()  # the welcome's writes
    stored: persistence.StoredConversations = chainlit_data.get_data_layer().inner  # type: ignore[union-attr]
    thread = str(uuid.uuid4())
    await stored.update_thread(thread)
    step = {**cl.Message(content="Thinking...", author="Bot").to_dict(), "threadId": thread}
    release = asyncio.Event()
    original = stored.update_thread

    async def held(thread_id: str, *args: object, **kwargs: object) -> None:
        await release.wait()  # Chainlit's create_step begins with update_thread: the writer waits here
        await original(thread_id, *args, **kwargs)

    stored.update_thread = held  # type: ignore[method-assign]
    statements = Statements(stored.engine)
    try:
        versions = [asyncio.create_task(stored.create_step({**step, "output": output}))
                    for output in ("Thinking...", "Connecting you...", "Your parcel is on its way.")]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*versions)
    finally:
        statements.close()
    assert len(statements.starting("INSERT INTO steps")) == 1  # the last only
    assert rows(database, "SELECT output FROM steps WHERE id = ?", step["id"]) == [("Your parcel is on its way.",)]


async def test_a_thread_erased_meanwhile_is_stored_again_from_the_step_after(
        database: Path, session: ChatHarness, data_layer_errors: list[logging.LogRecord]) -> None:
    """Another process (the erase command, another replica) may delete a thread this one remembers: the
    next step is refused (its thread is gone, said once by the guard) and the thread forgotten, so the
    step after stores it again as Chainlit would have."""
    await session.start()
    layer = chainlit_data.get_data_layer()
    assert isinstance(layer, DataLayerGuard)
    thread = str(uuid.uuid4())
    await layer.inner.update_thread(thread)
    rows(database, "DELETE FROM threads WHERE id = ?", thread)

    def step(text: str) -> dict:
        return {**cl.Message(content=text, author="Bot").to_dict(), "threadId": thread}

    await layer.create_step(step("lost"))
    assert [record.name for record in data_layer_errors] == ["brandbot.persistence"]
    assert "IntegrityError" in data_layer_errors[0].getMessage()
    data_layer_errors.clear()
    await layer.create_step(step("kept"))
    assert rows(database, 'SELECT output FROM steps WHERE "threadId" = ?', thread) == [("kept",)]
    assert rows(database, "SELECT COUNT(*) FROM threads WHERE id = ?", thread) == [(1,)]
