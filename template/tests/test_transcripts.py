"""Transcripts and retention on a real SQLite file migrated with the project's schema, filled the way
Chainlit fills it (its SQLAlchemy data layer's create_user, create_step, update_thread, upsert_feedback
with steps made by cl.Message and cl.Step): export gives the text as written, not as displayed;
purge and erase remove exactly what they say."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import chainlit as cl
import pytest
from chainlit.context import init_http_context
from chainlit.types import Feedback

from brandbot_runtime import schema, transcripts
from brandbot_runtime.database_url import sqlite_url
from brandbot_runtime.display import as_sent, plain
from brandbot_runtime.persistence import StoredConversations
from brandbot_runtime.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)
RAW_ANSWER = "Your parcel **Ref:QX-77 <b>** left today:\n\n- track it [here](https://shop.example/t)"
CUSTOMER_TEXT = "Where is Ref:QX-77 <b>? *urgent*"


class Store:
    """A migrated SQLite file and Chainlit's data layer on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = sqlite_url(path)
        self.layer = StoredConversations(self.url)

    async def conversation(self, thread: str, identifier: str | None, started: datetime,
                           exchanges: list[tuple[str, str, str | None, tuple[int, str | None] | None]]) -> None:
        """A thread as the bot stores it: per exchange the customer's message, the on_message run
        step, "Thinking..." turned into the answer (content escaped for display, raw text and
        category in metadata), and the customer's feedback on the run step."""
        init_http_context(thread_id=thread)
        user = await self.layer.create_user(cl.User(identifier=identifier)) if identifier else None
        at = [started + timedelta(seconds=second) for second in range(100)]
        self.layer.get_current_timestamp = lambda: _async(transcripts.stamp(started))  # type: ignore[method-assign]
        await self.layer.update_thread(thread, user_id=user.id if user else None, name="chat")
        for number, (question, answer, category, feedback) in enumerate(exchanges):
            asked = cl.Message(content=question, author="User", type="user_message")
            asked.created_at = transcripts.stamp(at[3 * number])
            await self.layer.create_step(asked.to_dict())
            run = cl.Step(name="on_message", type="run")
            run.created_at = transcripts.stamp(at[3 * number + 1])
            await self.layer.create_step(run.to_dict())
            status = cl.Message(content=plain("Thinking..."), author="Shop", parent_id=run.id)
            status.created_at = transcripts.stamp(at[3 * number + 2])
            await self.layer.create_step(status.to_dict())
            status.content = as_sent(answer)
            status.metadata = {"brandbot": {"text": answer, "category": category}}
            await self.layer.update_step(status.to_dict())
            if feedback is not None:
                await self.layer.upsert_feedback(Feedback(forId=run.id, threadId=thread, value=feedback[0],
                                                          comment=feedback[1]))
        welcome = cl.Message(content=plain("Welcome!"), author="Shop")  # the bot's own text: no turn
        welcome.created_at = transcripts.stamp(started)
        await self.layer.create_step(welcome.to_dict())

    def count(self, table: str) -> int:
        with sqlite3.connect(self.path) as connection:
            return connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]

    def age(self, thread: str, by: timedelta) -> None:
        """Move a stored conversation back in time, as if it had been written `by` ago."""
        with sqlite3.connect(self.path) as connection:
            for table, column in (("threads", "id"), ("steps", "threadId")):
                rows = connection.execute(f'SELECT id, "createdAt" FROM "{table}" WHERE "{column}" = ?',
                                          (thread,)).fetchall()
                for row_id, created in rows:
                    older = transcripts.stamp(datetime.fromisoformat(created.replace("Z", "+00:00")) - by)
                    connection.execute(f'UPDATE "{table}" SET "createdAt" = ? WHERE id = ?', (older, row_id))

    def ids(self, table: str) -> set[str]:
        with sqlite3.connect(self.path) as connection:
            return {row[0] for row in connection.execute(f'SELECT id FROM "{table}"')}


async def _async(value: str) -> str:
    return value


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    path = tmp_path / "conversations.sqlite3"
    await schema.upgrade_async(sqlite_url(path))
    made = Store(path)
    yield made
    await made.layer.close()


async def fill(store: Store) -> None:
    """An old anonymous visitor's chat, a recent one of verified customer 42, an old one of customer 42."""
    await store.conversation("t-old", "visitor:1", NOW - timedelta(days=100),
                             [("hello", "Hi! How can I help?", "general", None)])
    await store.conversation("t-new", "customer:42", NOW - timedelta(days=2),
                             [(CUSTOMER_TEXT, RAW_ANSWER, "orders", (1, "quick <3")),
                              ("thanks", "You're welcome.", None, (0, None))])
    await store.conversation("t-old-42", "customer:42", NOW - timedelta(days=95),
                             [("refund?", "Refunds take 5 days.", "billing", None)])


async def test_export_gives_each_conversation_with_the_text_as_written_and_its_feedback(store: Store) -> None:
    await fill(store)
    with sqlite3.connect(store.path) as connection:  # the gap: Chainlit stores the displayed text
        stored = connection.execute("SELECT output FROM steps WHERE metadata LIKE '%QX-77%'").fetchone()[0]
    assert stored == as_sent(RAW_ANSWER) != RAW_ANSWER and "Ref\\:QX-77 \\<b>" in stored

    out = io.StringIO()
    assert await transcripts.export(store.url, out, since=NOW - timedelta(days=3)) == 1
    started = NOW - timedelta(days=2)
    assert out.getvalue().splitlines() == [json.dumps({
        "thread": "t-new", "customer": "42", "user": "customer:42",
        "created": transcripts.stamp(started), "updated": transcripts.stamp(started + timedelta(seconds=5)),
        "turns": [
            {"role": "customer", "text": CUSTOMER_TEXT, "category": None, "feedback": None},
            {"role": "assistant", "text": RAW_ANSWER, "category": "orders",
             "feedback": {"value": 1, "comment": "quick <3"}},
            {"role": "customer", "text": "thanks", "category": None, "feedback": None},
            {"role": "assistant", "text": "You're welcome.", "category": None,
             "feedback": {"value": 0, "comment": None}},
        ]}, ensure_ascii=False)]

    everything = io.StringIO()
    assert await transcripts.export(store.url, everything) == 3
    exported = [json.loads(line) for line in everything.getvalue().splitlines()]
    assert [item["thread"] for item in exported] == ["t-old", "t-old-42", "t-new"]  # by creation
    assert (exported[0]["customer"], exported[0]["user"]) == (None, "visitor:1")  # anonymous: no customer id
    assert exported[0]["turns"] == [
        {"role": "customer", "text": "hello", "category": None, "feedback": None},
        {"role": "assistant", "text": "Hi! How can I help?", "category": "general", "feedback": None}]


async def test_purge_removes_conversations_older_than_the_retention_and_keeps_recent_ones(store: Store) -> None:
    await fill(store)
    assert (store.count("threads"), store.count("steps"), store.count("feedbacks")) == (3, 15, 2)

    removed = await transcripts.purge_expired(store.url, days=90)

    assert removed == {"conversations": 2, "steps": 8, "elements": 0, "feedbacks": 0}
    assert store.ids("threads") == {"t-new"}
    assert (store.count("steps"), store.count("feedbacks")) == (7, 2)
    assert store.count("users") == 2  # purging conversations is not erasing people
    assert await transcripts.purge_expired(store.url, days=90) == transcripts._no_counts()
    assert await transcripts.purge_expired(store.url, days=0) == transcripts._no_counts()  # 0: forever
    assert await transcripts.purge_expired(store.url, days=1) == {
        "conversations": 1, "steps": 7, "elements": 0, "feedbacks": 2}
    assert store.count("threads") == store.count("steps") == store.count("feedbacks") == 0


async def test_erase_removes_everything_of_one_customer_and_nothing_else(store: Store) -> None:
    await fill(store)
    with sqlite3.connect(store.path) as connection:  # an element hangs off one of the customer's threads
        connection.execute("""INSERT INTO elements (id, "threadId", name, "forId") VALUES ('e1', 't-new', 'a', NULL)""")

    removed = await transcripts.erase_customer(store.url, "42")  # the id the brand knows its customer by

    assert removed == {"conversations": 2, "steps": 11, "elements": 1, "feedbacks": 2, "users": 1}
    assert store.ids("threads") == {"t-old"}
    assert store.count("steps") == 4 and store.count("elements") == store.count("feedbacks") == 0
    with sqlite3.connect(store.path) as connection:
        assert [row[0] for row in connection.execute("SELECT identifier FROM users")] == ["visitor:1"]
    assert await transcripts.erase_customer(store.url, "customer:42") == {
        "conversations": 0, "steps": 0, "elements": 0, "feedbacks": 0, "users": 0}


async def test_the_running_bot_purges_at_start_and_then_on_schedule(store: Store) -> None:
    await fill(store)
    task = transcripts.start_retention(store.url, 90, every_seconds=0.05)
    assert task is not None and transcripts.start_retention(store.url, 90) is task  # one per process
    try:
        for _ in range(200):
            if store.ids("threads") == {"t-new"}:
                break
            await asyncio.sleep(0.02)
        assert store.ids("threads") == {"t-new"}
        # a conversation written while the task runs, which then falls out of retention (written old,
        # the task could delete its thread between Chainlit's thread upsert and its step insert)
        await store.conversation("t-late", "visitor:9", NOW, [("hi", "Hello.", None, None)])
        store.age("t-late", timedelta(days=200))
        for _ in range(200):  # the next round removes what became expired since
            if store.ids("threads") == {"t-new"}:
                break
            await asyncio.sleep(0.02)
        assert store.ids("threads") == {"t-new"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert transcripts.start_retention(None, 90) is None and transcripts.start_retention(store.url, 0) is None


def test_the_command_exports_purges_and_erases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "conversations.sqlite3"
    schema.upgrade(sqlite_url(path))

    async def filled() -> None:
        made = Store(path)
        await fill(made)
        await made.layer.close()

    asyncio.run(filled())
    monkeypatch.setenv("DATABASE_URL", sqlite_url(path))
    out = tmp_path / "export.jsonl"

    assert transcripts.main(["export", "--since", (NOW - timedelta(days=3)).date().isoformat(), "--out", str(out)]) == 0
    assert [json.loads(line)["thread"] for line in out.read_text(encoding="utf-8").splitlines()] == ["t-new"]
    monkeypatch.setenv("RETENTION_DAYS", "96")
    assert transcripts.main(["purge"]) == 0
    assert "removed 1 conversations, 4 steps, 0 elements, 0 feedbacks" in capsys.readouterr().out
    assert transcripts.main(["erase", "--customer", "42"]) == 0
    assert "removed 2 conversations, 11 steps, 0 elements, 2 feedbacks, 1 users of '42'" in (
        capsys.readouterr().out)
    monkeypatch.setenv("DATABASE_URL", "off")
    assert transcripts.main(["purge"]) == 1


def test_retention_defaults_to_90_days() -> None:
    assert Settings.model_fields["retention_days"].default == 90
    assert transcripts.configured_retention_days() == 90


async def test_erase_of_a_visitor_takes_their_full_identifier(store: Store) -> None:
    await fill(store)
    assert await transcripts.erase_customer(store.url, "1") == {  # a bare id is a verified customer's
        "conversations": 0, "steps": 0, "elements": 0, "feedbacks": 0, "users": 0}
    removed = await transcripts.erase_customer(store.url, "visitor:1")
    assert removed["conversations"] == 1 and removed["users"] == 1
    assert store.ids("threads") == {"t-new", "t-old-42"}
