"""Feedback end to end: the retail bot under a real `chainlit run`, storing in a SQLite file, with
BACKEND_FEEDBACK_URL at the reference middleware's /feedback. A customer asks over Chainlit's socket.io
protocol and gives the answer a thumb through the real `PUT /feedback`, as the browser sends it (the
session's id, the run step's id, the page's Origin and cookies): Chainlit stores it on the run step and
the middleware receives the contract's Feedback with the secret header. With the endpoint answering 500,
or nothing listening, the feedback is still stored, the chat goes on and the log says so once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from brandbot.chat_client import ChainlitChat
from brandbot.processes import RunningBot, free_port, start_bot

from .helpers import EXAMPLES

RETAIL = next(path for path in EXAMPLES if path.stem == "retail")


def start_storing_bot(project: Path, folder: Path, feedback_url: Callable[[int], str]) -> tuple[RunningBot, Path]:
    """The bot on its own SQLite file, BACKEND_FEEDBACK_URL made from the middleware's port; (bot, database)."""
    database = folder / "conversations.sqlite3"
    middleware_port = free_port()
    running = start_bot(project, log_dir=folder / "logs", middleware_port=middleware_port,
                        app_env={"DATABASE_URL": f"sqlite+aiosqlite:///{database}", "MESSAGES_PER_MINUTE": "1000",
                                 "BACKEND_FEEDBACK_URL": feedback_url(middleware_port)})
    return running, database


@pytest.fixture(scope="module")
def forwarding_bot(rendered: Callable[[Path], Path],
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningBot, Path]]:
    """Feedback forwarded to the reference middleware's /feedback."""
    running, database = start_storing_bot(rendered(RETAIL), tmp_path_factory.mktemp("feedback"),
                                          lambda port: f"http://127.0.0.1:{port}/feedback")
    try:
        yield running, database
    finally:
        assert running.stop() == 0, "chainlit did not stop cleanly on SIGINT"


@pytest.fixture(scope="module")
def unreachable_bot(rendered: Callable[[Path], Path],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningBot, Path]]:
    """Feedback forwarded to a loopback port nothing listens on."""
    closed = free_port()
    running, database = start_storing_bot(rendered(RETAIL), tmp_path_factory.mktemp("feedback-closed"),
                                          lambda _port: f"http://127.0.0.1:{closed}/feedback")
    try:
        yield running, database
    finally:
        assert running.stop() == 0, "chainlit did not stop cleanly on SIGINT"


class Answered:
    """One answered question: the chat, the run step the thumbs hang on, the answer and the thread."""

    def __init__(self, chat: ChainlitChat, question_id: str) -> None:
        self.chat = chat
        self.run = next(step for step in chat.steps.values() if step.type == "run" and step.parent_id == question_id)
        self.answer = next(step for step in chat.steps.values()
                           if step.parent_id == self.run.id and step.type == "assistant_message")
        self.thread = next(data["threadId"] for name, data in chat.events
                           if name in ("new_message", "update_message") and data.get("id") == self.run.id)


async def ask(chat: ChainlitChat, text: str) -> Answered:
    question_id = await chat.post(text)
    await chat.answer_to(question_id, time.perf_counter())
    return Answered(chat, question_id)


async def put_feedback(bot: RunningBot, answered: Answered, value: int, comment: str | None) -> httpx.Response:
    """`PUT /feedback` as Chainlit's page sends it: same-origin, with the page's cookies (the sign-in cookie
    when the app signs browsers in) and the socket session's id."""
    cookies: dict[str, str] = getattr(answered.chat, "cookies", {})
    body: dict[str, Any] = {"feedback": {"forId": answered.run.id, "threadId": answered.thread, "value": value,
                                         "comment": comment},
                            "sessionId": answered.chat.session_id}
    async with httpx.AsyncClient(base_url=bot.app.base_url, cookies=cookies, timeout=10) as http:
        return await http.put("/feedback", json=body, headers={"Origin": bot.app.base_url})


def eventually(read: Callable[[], Any], seconds: float = 10) -> Any:
    """What `read` returns once it is truthy, or its last value after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (found := read()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def stored_feedback(database: Path, run_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return connection.execute('SELECT s.type, f."threadId", f.value, f.comment FROM feedbacks f '
                                  'JOIN steps s ON s.id = f."forId" WHERE f."forId" = ?', (run_id,)).fetchall()


def received_feedback(bot: RunningBot) -> list[dict[str, Any]]:
    answer = httpx.get(f"{bot.middleware.base_url}/feedback", headers={"x-secret": bot.secret}, timeout=5)
    answer.raise_for_status()
    return answer.json()


def test_a_thumb_through_put_feedback_is_stored_and_forwarded(forwarding_bot: tuple[RunningBot, Path]) -> None:
    bot, database = forwarding_bot

    async def scenario() -> tuple[Answered, httpx.Response]:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            answered = await ask(chat, "Where is my order? It has not arrived.")
            return answered, await put_feedback(bot, answered, 1, "Quick and clear, thanks! 🚀")

    answered, response = asyncio.run(scenario())
    assert response.status_code == 200 and response.json()["success"] is True
    assert eventually(lambda: stored_feedback(database, answered.run.id)) == [
        ("run", answered.thread, 1, "Quick and clear, thanks! 🚀")]
    [sent] = eventually(lambda: received_feedback(bot))  # taken only with the right secret header
    assert sent["thread"] == answered.thread
    assert sent["message"]["id"] == answered.answer.id
    assert sent["message"]["text"].startswith("Your order left our warehouse")  # as the middleware wrote it
    assert (sent["value"], sent["comment"], sent["category"]) == (1, "Quick and clear, thanks! 🚀", "OrderTracking")
    assert "feedback not forwarded" not in bot.app.log()


def test_an_endpoint_answering_500_costs_the_customer_nothing(forwarding_bot: tuple[RunningBot, Path]) -> None:
    bot, database = forwarding_bot
    before = len(received_feedback(bot))

    async def scenario() -> tuple[Answered, httpx.Response, float, Answered]:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            answered = await ask(chat, "Hello")
            started = time.perf_counter()
            response = await put_feedback(bot, answered, 0, "Rude answer; simulate status 500")
            took = time.perf_counter() - started
            return answered, response, took, await ask(chat, "How do I return an item?")

    answered, response, took, later = asyncio.run(scenario())
    assert response.status_code == 200 and took < 2
    assert "return" in later.answer.outputs[-1].lower()
    assert eventually(lambda: stored_feedback(database, answered.run.id)) == [
        ("run", answered.thread, 0, "Rude answer; simulate status 500")]
    log = eventually(lambda: "feedback not forwarded" in bot.app.log() and bot.app.log())
    assert log.count("feedback not forwarded to 127.0.0.1 (HTTP 500)") == 1, log
    assert "Rude answer" not in log and bot.secret not in log
    assert "on_feedback" not in log  # Chainlit's "Error in user-provided on_feedback callback"
    assert len(received_feedback(bot)) == before


def test_an_endpoint_not_listening_costs_the_customer_nothing(unreachable_bot: tuple[RunningBot, Path]) -> None:
    bot, database = unreachable_bot

    async def scenario() -> tuple[Answered, httpx.Response, Answered]:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            answered = await ask(chat, "Hello")
            response = await put_feedback(bot, answered, 1, None)
            return answered, response, await ask(chat, "Where is my order?")

    answered, response, later = asyncio.run(scenario())
    assert response.status_code == 200
    assert "order" in later.answer.outputs[-1].lower()
    assert eventually(lambda: stored_feedback(database, answered.run.id)) == [("run", answered.thread, 1, None)]
    log = eventually(lambda: "feedback not forwarded" in bot.app.log() and bot.app.log())
    assert log.count("feedback not forwarded to 127.0.0.1 (connection failed") == 1, log
    assert bot.secret not in log and "on_feedback" not in log
