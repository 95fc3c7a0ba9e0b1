"""Many customers at once: each session's requests carry only its own history, with no errors, and
every exchange is stored (the default: the project's SQLite file) even when the bot stops right after."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from brandbot.chat_client import ChainlitChat
from brandbot.processes import start_bot

from .helpers import REPO, record_figure

SESSIONS = 50
MESSAGES = 4


@dataclass
class Conversation:
    """What one session sent and saw: its stored thread, its sign-in and each message with its final answer."""

    thread: str
    user: str | None
    exchanges: list[tuple[str, str]]


def test_fifty_concurrent_sessions_keep_their_own_histories(rendered: Callable[[Path], Path], tmp_path: Path) -> None:
    project = rendered(REPO / "examples/retail.yml")
    bot = start_bot(project, log_dir=tmp_path, latency_ms=50, app_env={"TRANSITION_DELAY_SECONDS": "0"})
    try:
        conversations = asyncio.run(_converse(bot.app.base_url))
        stats = httpx.get(f"{bot.middleware.base_url}/stats", timeout=5).json()
        # Stopped right after the last answer, with Chainlit's writes still queued: the bot must finish
        # them before it exits (grace beyond the guard's 8 s drain, so a slow drain fails below, not here).
        exit_code = bot.app.stop(grace_seconds=30)
    finally:
        bot.stop()
    app = bot.app

    assert len(conversations) == SESSIONS
    for session, conversation in conversations.items():
        assert len(conversation.exchanges) == MESSAGES
        assert all(final.startswith(f"[{session}] ") for _, final in conversation.exchanges), conversation
    assert {key: stats[key] for key in ("requests", "answered", "rejected", "crossed_sessions")} == {
        "requests": SESSIONS * MESSAGES, "answered": SESSIONS * MESSAGES, "rejected": 0, "crossed_sessions": 0}
    assert stats["longest_history"] == 2 * (MESSAGES - 1) + 1
    assert exit_code == 0
    assert "ERROR" not in app.log() and "Traceback" not in app.log()
    # Behind data_layer_guard a failed, skipped or unfinished write is one of its WARNINGs, never Chainlit's.
    assert not [line for line in app.log().splitlines() if "WARNING - brandbot.persistence" in line]
    assert "error occurred" not in app.log()

    stored = _stored(project / ".data/conversations.sqlite3",
                     [conversation.thread for conversation in conversations.values()])
    assert len(stored) == SESSIONS
    for session, conversation in conversations.items():
        assert conversation.thread in stored, session
        owner, exchanges, welcomed = stored[conversation.thread]
        assert welcomed == 1, session  # Chainlit holds on_chat_start's writes until the first message
        assert owner == conversation.user, session  # the visitor the browser signed in as
        # Each message with the answer under its run step as the customer last saw it (the last write
        # landed last), and the middleware's own text beside it for transcripts.
        assert [(text, shown) for text, shown, _ in exchanges] == conversation.exchanges, session
        assert all(written.startswith(f"[{session}] ") for _, _, written in exchanges), session
    record_figure("concurrent sessions held", SESSIONS, f"{SESSIONS} sessions x {MESSAGES} messages, "
                                                         f"{stats['crossed_sessions']} crossed, 0 errors, "
                                                         f"{SESSIONS * MESSAGES} exchanges stored")


async def _converse(base_url: str) -> dict[str, Conversation]:
    async def one(index: int) -> tuple[str, Conversation]:
        session = f"s{index}"
        async with ChainlitChat(base_url, timeout=60) as chat:
            await chat.welcome()
            exchanges = []
            for number in range(MESSAGES):
                text = f"[{session}] question {number} about my order"
                exchanges.append((text, (await chat.send(text)).final))
            thread = await chat.stored_thread()
            return session, Conversation(thread, chat.user, exchanges)

    results = await asyncio.gather(*(one(index) for index in range(SESSIONS)))
    return dict(results)


Stored = tuple[str | None, list[tuple[str, str, str]], int]


def _stored(database: Path, threads: list[str]) -> dict[str, Stored]:
    """Per thread: whom it belongs to; each customer message with the answer stored under its run step
    (its text, and the middleware's text from its metadata), in order; how many welcome messages."""
    marks = ", ".join("?" * len(threads))
    with sqlite3.connect(database) as connection:
        owners = connection.execute(f"""
            SELECT thread.id, thread."userIdentifier", COUNT(welcome.id) FROM threads thread
            LEFT JOIN steps run ON run."threadId" = thread.id AND run.type = 'run' AND run.name = 'on_chat_start'
            LEFT JOIN steps welcome ON welcome."parentId" = run.id AND welcome.type = 'assistant_message'
            WHERE thread.id IN ({marks}) GROUP BY thread.id
        """, threads).fetchall()
        rows = connection.execute(f"""
            SELECT message."threadId", message.output, answer.output, answer.metadata
            FROM steps message
            JOIN steps run ON run."parentId" = message.id AND run.type = 'run' AND run.name = 'on_message'
            JOIN steps answer ON answer."parentId" = run.id AND answer.type = 'assistant_message'
            WHERE message.type = 'user_message' AND message."threadId" IN ({marks})
            ORDER BY message."createdAt"
        """, threads).fetchall()
    stored: dict[str, Stored] = {thread: (owner, [], welcomes) for thread, owner, welcomes in owners}
    for thread, text, shown, metadata in rows:
        written = json.loads(metadata or "{}").get("brandbot", {}).get("text") or ""
        stored[thread][1].append((text, shown, written))
    return stored
