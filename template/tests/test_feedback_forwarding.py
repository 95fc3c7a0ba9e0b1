"""Feedback on answers: stored by Chainlit, and POSTed to BACKEND_FEEDBACK_URL as the contract's Feedback
object with the secret header, in the background; a failing endpoint never reaches the customer, the
stored feedback or the log more than once a minute.

The in-process tests call what Chainlit's `PUT /feedback` calls, in its order: the data layer's
upsert_feedback, then app.py's on_feedback in the customer's session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import chainlit as cl
import chainlit.data as chainlit_data
import jsonschema
import pytest
from chainlit.config import config
from chainlit.session import JSONEncoderIgnoreNonSerializable
from chainlit.types import Feedback
from chainlit.user_session import user_sessions

import app
from brandbot_runtime import feedback_forwarding, persistence, settings
from brandbot_runtime.brand import Brand
from brandbot_runtime.database_url import sqlite_url
from brandbot_runtime.feedback_forwarding import Answer, FeedbackForwarder, payload

from .chat_harness import ChatHarness
from .conftest import PROJECT_DIR, TEST_SECRET
from .middleware_double import Action, Hang, MiddlewareDouble, Request, Reset, closed_port_url, echo, json_reply

SCHEMA = json.loads((PROJECT_DIR / "contract" / "middleware.schema.json").read_text(encoding="utf-8"))
FEEDBACK = jsonschema.Draft202012Validator({**SCHEMA, "$ref": "#/$defs/Feedback"})
COMMENT = "the answer ignored my order number 4711"  # customer text: never in a log line


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Endpoint:
    """What the double's /feedback answers (its /chat answers as the default middleware does)."""

    def __init__(self) -> None:
        self.action: Action = json_reply({"ok": True})
        self.chat: Action | None = None  # None: the default middleware's answer

    def __call__(self, request: Request) -> Action:
        if request.path.startswith("/feedback"):
            return self.action
        return self.chat or echo(request)


def feedback_requests(double: MiddlewareDouble) -> list[Request]:
    return [request for request in double.requests if request.path.startswith("/feedback")]


@pytest.fixture(autouse=True)
async def fresh_forwarder() -> AsyncIterator[None]:
    """Each test's event loop gets its own forwarder: close the process-wide one after every test."""
    yield
    await feedback_forwarding.shutdown()


@pytest.fixture
def endpoint(middleware: MiddlewareDouble) -> Endpoint:
    middleware.behave = Endpoint()
    return middleware.behave


@pytest.fixture
async def stored(configure: Callable[..., None], middleware: MiddlewareDouble, endpoint: Endpoint, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    """The bot started as `chainlit run` starts it, storing on a fresh SQLite file and forwarding feedback to the
    double's /feedback; the SQLite file's path."""
    path = tmp_path / "conversations.sqlite3"
    configure(middleware.url, DATABASE_URL=sqlite_url(path), REQUEST_TIMEOUT_SECONDS="0.5",
              BACKEND_FEEDBACK_URL=middleware.url.replace("/chat", "/feedback"))
    monkeypatch.setattr(persistence, "_ready_url", None)
    monkeypatch.setattr(chainlit_data, "_data_layer", None)
    monkeypatch.setattr(chainlit_data, "_data_layer_initialized", False)
    await app.on_app_startup()
    yield path
    await settle()
    layer = chainlit_data.get_data_layer()
    assert layer is not None
    await layer.close()


async def settle() -> None:
    """Wait for the data layer's background writes and the feedback forwards."""
    while writes := [task for task in asyncio.all_tasks() if "DataLayer" in task.get_coro().__qualname__]:
        await asyncio.gather(*writes, return_exceptions=True)
    if feedback_forwarding._forwarder is not None:
        await feedback_forwarding._forwarder.drain()


def rows(database: Path, query: str, *parameters: object) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(query, parameters).fetchall()


async def exchange(session: ChatHarness, database: Path, text: str) -> tuple[str, str]:
    """One exchange as Chainlit's server runs it (on_message inside its "run" step); (run step id, answer id):
    the run step is what Chainlit's UI puts thumbs on."""
    emitter = session._enter()
    before = len(emitter.messages)
    message = cl.Message(content=text, author="User", type="user_message")
    await message._create()
    assert config.code.on_message is not None
    await config.code.on_message(message)
    [answer] = [shown for shown in list(emitter.messages.values())[before:] if shown.type == "assistant_message"]
    await settle()
    [(run,)] = rows(database, 'SELECT "parentId" FROM steps WHERE id = ?', answer.id)
    assert rows(database, "SELECT type FROM steps WHERE id = ?", run) == [("run",)]
    return run, answer.id


async def put_feedback(session: ChatHarness, run_id: str, value: int, comment: str | None = None) -> float:
    """What Chainlit's PUT /feedback does: store, then on_feedback in the session; seconds on_feedback took."""
    session._enter()
    feedback = Feedback(forId=run_id, value=value, threadId=session.session.thread_id, comment=comment)
    layer = chainlit_data.get_data_layer()
    assert layer is not None
    await layer.upsert_feedback(feedback)
    assert config.code.on_feedback is not None
    started = time.perf_counter()
    await config.code.on_feedback(feedback)
    return time.perf_counter() - started


# ---- the Feedback object ---------------------------------------------------------------------------------


def test_the_payload_is_the_contracts_feedback() -> None:
    answer = Answer("step-1", "Your parcel *left* yesterday. 📦", "OrderTracking")
    body = payload("thread-1", answer, 1, "  Great, thanks! 🚀  ", 4000)
    assert body == {"thread": "thread-1", "message": {"id": "step-1", "text": "Your parcel *left* yesterday. 📦"},
                    "value": 1, "comment": "Great, thanks! 🚀", "category": "OrderTracking"}
    FEEDBACK.validate(body)
    FEEDBACK.validate(payload("thread-1", Answer("step-1", "", None), 0, None, 4000))


@pytest.mark.parametrize(("comment", "expected"), [(None, None), ("", None), ("   ", None),
                                                   ("x" * 50, "x" * 10), (" " * 20 + "late words", "late words"),
                                                   ("bad \ud800 half", "bad \ufffd half")])
def test_a_comment_is_cleaned_bounded_or_null(comment: str | None, expected: str | None) -> None:
    body = payload("t", Answer("s", "a", None), 0, comment, 10)
    assert body["comment"] == expected
    FEEDBACK.validate(body)
    json.dumps(body, ensure_ascii=False).encode()  # always sendable


@pytest.mark.parametrize("body", [
    {"thread": "t", "message": {"id": "s", "text": "a"}, "value": 2, "comment": None, "category": None},
    {"thread": "t", "message": {"id": "s", "text": "a"}, "value": True, "comment": None, "category": None},
    {"thread": "t", "message": "a", "value": 1, "comment": None, "category": None},
    {"thread": "t", "message": {"id": "s", "text": "a"}, "value": 1, "comment": "", "category": None},
    {"thread": "t", "message": {"id": "s", "text": "a"}, "value": 1, "category": None},
    {"thread": "t", "message": {"id": "s", "text": "a"}, "value": 1, "comment": None, "category": None, "x": 1},
])
def test_the_schema_refuses_what_the_bot_never_sends(body: dict[str, Any]) -> None:
    assert not FEEDBACK.is_valid(body)


# ---- the setting -----------------------------------------------------------------------------------------


def test_backend_feedback_url_is_optional_and_must_be_a_url(configure: Callable[..., None]) -> None:
    configure("https://middleware.example/chat")
    assert settings.validate_settings().backend_feedback_url is None
    configure("https://middleware.example/chat", BACKEND_FEEDBACK_URL="")
    assert settings.validate_settings().backend_feedback_url is None
    configure("https://middleware.example/chat", BACKEND_FEEDBACK_URL="https://middleware.example/feedback")
    assert str(settings.validate_settings().backend_feedback_url) == "https://middleware.example/feedback"
    configure("https://middleware.example/chat", BACKEND_FEEDBACK_URL="not a url")
    with pytest.raises(settings.ConfigurationError) as refused:
        settings.validate_settings()
    assert [problem.split(":")[0] for problem in refused.value.problems] == ["BACKEND_FEEDBACK_URL"]


# ---- the forwarder alone ---------------------------------------------------------------------------------


async def ready(body: dict[str, Any] | None) -> dict[str, Any] | None:
    return body


BODY = payload("thread-1", Answer("step-1", "An answer", "General"), 0, COMMENT, 4000)


async def test_a_feedback_is_posted_as_json_with_the_secret_header(middleware: MiddlewareDouble,
                                                                   endpoint: Endpoint) -> None:
    sender = FeedbackForwarder(middleware.url.replace("/chat", "/feedback"), secret=TEST_SECRET,
                               auth_header="x-brand-key")
    sender.submit(ready(BODY))
    await sender.drain()
    await sender.aclose()
    [request] = feedback_requests(middleware)
    assert (request.method, request.path) == ("POST", "/feedback")
    assert request.headers["x-brand-key"] == TEST_SECRET
    assert request.headers["content-type"] == "application/json"
    assert request.json == BODY
    FEEDBACK.validate(request.json)


FAILURES: dict[str, Callable[[], Action]] = {
    "HTTP 500": lambda: json_reply({"detail": "down"}, status=500),
    "HTTP 401": lambda: json_reply({"detail": "secret"}, status=401),
    "HTTP 302": lambda: json_reply({}, status=302, headers={"Location": "/elsewhere"}),
    "hangs": lambda: Hang(),
    "resets": lambda: Reset(),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_a_failing_endpoint_is_one_quiet_warning(failure: str, middleware: MiddlewareDouble,
                                                       endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.action = FAILURES[failure]()
    sender = FeedbackForwarder(middleware.url.replace("/chat", "/feedback"), secret=TEST_SECRET,
                               auth_header="x-secret", timeout_seconds=0.3)
    with caplog.at_level(logging.DEBUG, logger="brandbot"):
        started = time.perf_counter()
        sender.submit(ready(BODY))
        assert time.perf_counter() - started < 0.05  # the caller never waits for the endpoint
        await sender.drain()
    await sender.aclose()
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.name for record in warnings] == ["brandbot.feedback"]
    line = warnings[0].getMessage()
    assert "feedback not forwarded to 127.0.0.1" in line
    assert TEST_SECRET not in caplog.text and COMMENT not in caplog.text and "An answer" not in caplog.text


async def test_a_closed_port_is_a_connection_failure(caplog: pytest.LogCaptureFixture) -> None:
    sender = FeedbackForwarder(closed_port_url(), secret=TEST_SECRET, auth_header="x-secret", timeout_seconds=2)
    with caplog.at_level(logging.WARNING, logger="brandbot"):
        sender.submit(ready(BODY))
        await sender.drain()
    await sender.aclose()
    assert "connection failed: ConnectError" in caplog.text
    assert TEST_SECRET not in caplog.text and COMMENT not in caplog.text


async def test_failures_are_reported_once_a_minute_and_recovery_once(
        middleware: MiddlewareDouble, endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    sender = FeedbackForwarder(middleware.url.replace("/chat", "/feedback"), secret=TEST_SECRET,
                               auth_header="x-secret", clock=clock)

    async def send(count: int) -> list[str]:
        caplog.clear()
        for _ in range(count):
            sender.submit(ready(BODY))
        await sender.drain()
        return [f"{record.levelname} {record.getMessage()}" for record in caplog.records
                if record.name == "brandbot.feedback"]

    endpoint.action = json_reply({"detail": "down"}, status=503)
    with caplog.at_level(logging.INFO, logger="brandbot"):
        first = await send(5)
        clock.now += 30
        within_the_minute = await send(5)
        clock.now += 31
        next_minute = await send(1)
        endpoint.action = json_reply({"ok": True}, status=202)
        recovered = await send(3)
    await sender.aclose()
    assert len(first) == 1 and first[0].startswith("WARNING") and "HTTP 503" in first[0]
    assert "1 not forwarded since the last report" in first[0]
    assert within_the_minute == []
    assert len(next_minute) == 1 and "10 not forwarded since the last report" in next_minute[0]
    assert recovered == ["INFO feedback reaches 127.0.0.1 again (0 not forwarded since the last report)"]
    assert len(feedback_requests(middleware)) == 14


async def test_forwards_beyond_the_bound_are_dropped_and_counted(
        middleware: MiddlewareDouble, endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    endpoint.action = Hang()
    sender = FeedbackForwarder(middleware.url.replace("/chat", "/feedback"), secret=TEST_SECRET,
                               auth_header="x-secret", timeout_seconds=0.3, max_in_flight=3)
    with caplog.at_level(logging.WARNING, logger="brandbot"):
        for _ in range(5):
            sender.submit(ready(BODY))
        assert len(sender.pending) == 3
        await sender.drain()
    await sender.aclose()
    assert "3 forwards already waiting; this one dropped" in caplog.text


# ---- through app.py's handlers, with Chainlit's data layer -----------------------------------------------


async def test_feedback_on_an_answer_is_stored_and_forwarded(stored: Path, middleware: MiddlewareDouble,
                                                             session: ChatHarness, brand: Brand) -> None:
    await session.start()
    run, answer = await exchange(session, stored, "Where is my parcel? 📦")
    await put_feedback(session, run, 1, "Great, thanks! 🚀")
    await settle()
    thread = session.session.thread_id
    assert rows(stored, 'SELECT "forId", "threadId", value, comment FROM feedbacks') == [
        (run, thread, 1, "Great, thanks! 🚀")]
    [request] = feedback_requests(middleware)
    assert request.headers[brand.auth_header.lower()] == TEST_SECRET  # the brand's own header
    assert request.json == {"thread": thread, "message": {"id": answer, "text": "You said: Where is my parcel? 📦"},
                            "value": 1, "comment": "Great, thanks! 🚀", "category": "General"}
    FEEDBACK.validate(request.json)


@pytest.mark.parametrize("failure", ["HTTP 500", "hangs"])
async def test_a_failing_endpoint_costs_the_customer_nothing(
        failure: str, stored: Path, middleware: MiddlewareDouble, endpoint: Endpoint, session: ChatHarness,
        caplog: pytest.LogCaptureFixture) -> None:
    endpoint.action = FAILURES[failure]()
    await session.start()
    run, _ = await exchange(session, stored, "First question")
    with caplog.at_level(logging.INFO, logger="brandbot"):
        took = await put_feedback(session, run, 0, COMMENT)
        assert took < 0.1  # Chainlit's PUT /feedback answers without waiting for the endpoint
        later = await session.say("Second question")
        await settle()
    assert later.final == "You said: Second question"
    assert rows(stored, "SELECT value, comment FROM feedbacks") == [(0, COMMENT)]
    assert [record.getMessage()[:30] for record in caplog.records if record.levelno >= logging.WARNING] == [
        "feedback not forwarded to 127."]
    assert COMMENT not in caplog.text and TEST_SECRET not in caplog.text


async def test_a_changed_mind_is_forwarded_again_for_the_same_answer(
        stored: Path, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    await session.start()
    run, answer = await exchange(session, stored, "Hello")
    await put_feedback(session, run, 1)
    await put_feedback(session, run, 0, "on second thought, no")
    await settle()
    sent = [request.json for request in feedback_requests(middleware)]
    assert [(body["message"]["id"], body["value"], body["comment"]) for body in sent] == [
        (answer, 1, None), (answer, 0, "on second thought, no")]


async def test_an_answer_the_session_forgot_is_found_in_the_stored_thread(
        stored: Path, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    """A resumed conversation: the session's memory is gone (Chainlit saved it as JSON, our object as null)."""
    await session.start()
    run, answer = await exchange(session, stored, "Where is my parcel?")
    saved = json.loads(json.dumps(user_sessions[session.session.id], cls=JSONEncoderIgnoreNonSerializable))
    assert saved[feedback_forwarding._ANSWERS_KEY] is None  # no answer text in the thread's metadata
    user_sessions[session.session.id][feedback_forwarding._ANSWERS_KEY] = None
    await put_feedback(session, run, 0)
    await settle()
    [request] = feedback_requests(middleware)
    assert request.json["message"] == {"id": answer, "text": "You said: Where is my parcel?"}


async def test_feedback_on_what_is_not_an_answer_of_this_conversation_is_only_stored(
        stored: Path, middleware: MiddlewareDouble, endpoint: Endpoint, session: ChatHarness) -> None:
    await session.start()
    run, _ = await exchange(session, stored, "Hello")
    endpoint.chat = json_reply({"detail": "down"}, status=500)
    failed, _ = await exchange(session, stored, "This one fails")  # its message is the brand's error wording
    other = ChatHarness()
    try:
        await other.start()
        await exchange(other, stored, "Hello from elsewhere")
        await put_feedback(other, run, 1)  # a forged PUT /feedback: another conversation's answer
    finally:
        other.close()
    await put_feedback(session, failed, 0)
    await settle()
    assert feedback_requests(middleware) == []
    assert sorted(rows(stored, 'SELECT "forId", value FROM feedbacks')) == sorted([(run, 1), (failed, 0)])


async def test_without_backend_feedback_url_nothing_is_sent(
        stored: Path, middleware: MiddlewareDouble, session: ChatHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKEND_FEEDBACK_URL")
    settings.current_settings.cache_clear()
    await session.start()
    run, _ = await exchange(session, stored, "Hello")
    await put_feedback(session, run, 1)
    await settle()
    assert feedback_requests(middleware) == []
    assert rows(stored, "SELECT value FROM feedbacks") == [(1,)]


async def test_a_session_remembers_its_latest_answers_within_a_bound(session: ChatHarness) -> None:
    session._enter()
    for number in range(feedback_forwarding.REMEMBERED_ANSWERS + 10):
        feedback_forwarding.remember(f"run-{number}", Answer(f"answer-{number}", "text", None))
    feedback_forwarding.remember(None, Answer("orphan", "text", None))  # a starter's answer: no run step
    big = "x" * (feedback_forwarding.REMEMBERED_CHARS // 2)
    remembered = user_sessions[session.session.id][feedback_forwarding._ANSWERS_KEY]
    assert next(iter(remembered.answers)) == "run-10"
    assert len(remembered.answers) == feedback_forwarding.REMEMBERED_ANSWERS
    for number in range(3):
        feedback_forwarding.remember(f"big-{number}", Answer(f"big-{number}", big, None))
    assert remembered.chars <= feedback_forwarding.REMEMBERED_CHARS
    assert "big-2" in remembered.answers and "big-0" not in remembered.answers


async def test_the_start_up_log_says_where_feedback_goes(configure: Callable[..., None],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    configure("https://middleware.example/chat", BACKEND_FEEDBACK_URL="https://hooks.example/feedback")
    with caplog.at_level(logging.INFO, logger="brandbot"):
        feedback_forwarding.announce(settings.current_settings(), stored=True)
        feedback_forwarding.announce(settings.current_settings(), stored=False)
    assert "feedback on answers forwarded to hooks.example" in caplog.text
    assert "BACKEND_FEEDBACK_URL is set but conversations are not stored" in caplog.text
