"""Streamed answers end to end: the retail bot under a real `chainlit run`, the reference middleware
streaming (`brandbot middleware --stream sse|ndjson`) as a separate process, and a customer on Chainlit's
real socket.io protocol (brandbot.chat_client, which follows stream_start and stream_token).

The answer grows in place while the middleware is still sending it, every step of it a beginning of
the final text, which is the middleware's JSON answer shown as any answer is; the next message's
history holds the whole streamed answer (a recording middleware in this process: the reference app
behind a wrapper that keeps each request); JSON and streaming middlewares take turns in front of the
same bot; a stream cut half way keeps what arrived plus the brand's `answer_cut_off`, and the chat goes on.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from brandbot.chat_client import ChainlitChat, Exchange
from brandbot.processes import Service, free_port, start_app
from brandbot.reference_middleware import STREAMED_MARKDOWN, create_app
from brandbot.rendered_project import Display, brand_data, project_display

from .helpers import EXAMPLES, Recording, start_reference_middleware

RETAIL = next(path for path in EXAMPLES if path.stem == "retail")
TOKEN_MS = 30
DELTAS = 20  # 19 gaps of 30 ms: every answer takes about 0.57 s to send
GENERAL = "Hello there"  # the greeting, routed to a general category: no specialist transition
CODE = "simulate stream code"  # STREAMED_MARKDOWN: a paragraph, a python code block, a table
SPECIALIST = "Where is my order? It has not arrived."


@dataclass
class StreamingBot:
    """One bot under `chainlit run`, whose middleware port a test fills with the middleware it wants."""

    project: Path
    secret: str
    middleware_port: int
    app: Service
    log_dir: Path
    display: Display
    texts: dict[str, str]
    started: list[Service] = field(default_factory=list)

    @property
    def middleware_url(self) -> str:
        return f"http://127.0.0.1:{self.middleware_port}"

    @contextmanager
    def middleware(self, stream: str | None, *, token_ms: float = TOKEN_MS,
                   deltas: int | None = DELTAS) -> Iterator[Service]:
        """`brandbot middleware` on the bot's middleware port, streaming when `stream` says so."""
        service = start_reference_middleware(self.project, port=self.middleware_port, secret=self.secret,
                                             log_dir=self.log_dir, name=f"middleware-{len(self.started)}",
                                             stream=stream, token_ms=token_ms, deltas=deltas)
        self.started.append(service)
        try:
            yield service
        finally:
            service.stop()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.middleware_url}/stats", timeout=5).json()


@pytest.fixture(scope="module")
def streaming_bot(rendered: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamingBot]:
    project = rendered(RETAIL)
    log_dir = tmp_path_factory.mktemp("streaming-logs")
    secret = "stream-" + secrets.token_urlsafe(18)
    port = free_port()
    app = start_app(project, port=free_port(), middleware_url=f"http://127.0.0.1:{port}/chat", secret=secret,
                    log_dir=log_dir, extra_env={"TRANSITION_DELAY_SECONDS": "0.3", "MESSAGES_PER_MINUTE": "1000",
                                                "REQUEST_TIMEOUT_SECONDS": "5"})
    texts = brand_data(project / "brand.toml").texts.model_dump()
    bot = StreamingBot(project, secret, port, app, log_dir, project_display(project), texts)
    yield bot
    assert app.stop() == 0, "chainlit did not stop cleanly on SIGINT"
    for service in bot.started:
        assert bot.secret not in service.log(), service.name
    assert bot.secret not in app.log()


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


async def json_answer(project: Path, message: str) -> str:
    """What the reference middleware answers `message` as plain JSON (its answers are deterministic)."""
    app = create_app(brand_data(project / "brand.toml"), secret="s")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mw") as http:
        answer = await http.post("/chat", headers={"x-secret": "s", "accept": "application/json"},
                                 json={"message": message, "history": [{"role": "user", "content": message}]})
    assert answer.headers["content-type"] == "application/json"
    return str(answer.json()["response"])


@dataclass
class Timed:
    """An exchange and the moment (perf_counter) its message was sent, a little before `send` started."""

    exchange: Exchange
    sent_at: float

    @property
    def ended_at(self) -> float:  # a little before the real end: the gap checked below is conservative
        return self.sent_at + self.exchange.seconds


async def timed(chat: ChainlitChat, message: str) -> Timed:
    sent_at = time.perf_counter()
    return Timed(await chat.send(message), sent_at)


def growing(bot: StreamingBot, exchange: Exchange) -> list[str]:
    """The contents the answer showed after the status texts ("Thinking...", the specialist transition)."""
    status = {bot.display.plain(bot.texts["thinking"]), bot.display.plain(bot.texts["specialist_transition"])}
    status |= {bot.display.plain(bot.texts["specialist_transition"].replace("{label}", label))
               for label in ("Order Tracking", "Returns", "Product Inquiry")}
    assert len(exchange.messages) == 1, exchange.messages  # one message, growing in place
    return [content for content in exchange.messages[0] if content not in status]


def assert_grew_into(bot: StreamingBot, exchange: Exchange, final: str) -> None:
    """The answer was streamed in steps, each one a beginning of the final text, ending on it."""
    steps = growing(bot, exchange)
    assert exchange.final == final
    assert exchange.tokens >= 5, (exchange.tokens, steps)
    assert len(steps) >= 5, steps
    for step in steps:
        assert final.startswith(step), (step, final)
    assert [len(step) for step in steps] == sorted(len(step) for step in steps)


@pytest.mark.parametrize("form", ["sse", "ndjson"])
def test_a_streamed_answer_grows_while_the_middleware_sends_it(streaming_bot: StreamingBot, form: str) -> None:
    bot = streaming_bot
    expected = {message: bot.display.as_sent(run(json_answer(bot.project, message)))
                for message in (GENERAL, SPECIALIST)}
    expected[CODE] = bot.display.as_sent(STREAMED_MARKDOWN)  # a stream simulation: it streams in any mode

    async def scenario() -> dict[str, Timed]:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            return {message: await timed(chat, message) for message in (GENERAL, CODE, SPECIALIST)}

    with bot.middleware(form):
        seen = run(scenario())
        stats = bot.stats()
    assert stats["streamed"] == 3 and stats["answered"] == 3, stats
    for message in (GENERAL, CODE):
        answer = seen[message]
        assert_grew_into(bot, answer.exchange, expected[message])
        # the middleware sends its last delta about 0.57 s after its first: the first token is on screen long before
        assert answer.exchange.seconds >= 0.4, (message, answer.exchange.seconds)
        assert answer.exchange.first_token_at is not None
        assert answer.ended_at - answer.exchange.first_token_at >= 0.25, (
            message, answer.ended_at - answer.exchange.first_token_at, answer.exchange.seconds)
    specialist = seen[SPECIALIST].exchange
    assert specialist.shown[:2] == [bot.display.plain(bot.texts["thinking"]), bot.display.plain(
        bot.texts["specialist_transition"].replace("{label}", "Order Tracking"))]
    assert_grew_into(bot, specialist, expected[SPECIALIST])
    assert specialist.seconds >= 0.5  # the deltas wait in the buffers during the transition, then show at once


@contextmanager
def recording_middleware(bot: StreamingBot) -> Iterator[Recording]:
    """The reference middleware, streaming SSE, behind Recording, under uvicorn in a thread on the bot's port."""
    app = create_app(brand_data(bot.project / "brand.toml"), secret=bot.secret, stream="sse",
                     token_seconds=TOKEN_MS / 1000, deltas=DELTAS)
    recording = Recording(app)
    server = uvicorn.Server(uvicorn.Config(recording, host="127.0.0.1", port=bot.middleware_port, log_config=None,
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, name="recording-middleware", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the recording middleware did not start"
        time.sleep(0.02)
    try:
        yield recording
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_next_message_carries_the_whole_streamed_answer_in_its_history(streaming_bot: StreamingBot) -> None:
    bot = streaming_bot
    cut = "simulate stream cut: where is my parcel?"
    messages = [CODE, GENERAL, cut, "thanks"]

    async def scenario() -> list[Exchange]:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            return [await chat.send(message) for message in messages]

    with recording_middleware(bot) as recording:
        exchanges = run(scenario())
    greeting = run(json_answer(bot.project, GENERAL))
    assert [request["message"] for request in recording.requests] == messages
    assert exchanges[0].tokens >= 5 and exchanges[1].tokens >= 5  # streamed, not one JSON body
    assert exchanges[0].final == bot.display.as_sent(STREAMED_MARKDOWN)

    def user(text: str) -> dict[str, str]:
        return {"role": "user", "content": text}

    # exactly the text the middleware streamed (not its display escapes), once it was complete
    assert recording.requests[1]["history"] == [
        user(CODE), {"role": "assistant", "content": STREAMED_MARKDOWN}, user(GENERAL)]
    # the cut answer is not in the history: the failed exchange leaves it as it was
    assert recording.requests[3]["history"] == [
        user(CODE), {"role": "assistant", "content": STREAMED_MARKDOWN},
        user(GENERAL), {"role": "assistant", "content": greeting}, user("thanks")]
    assert exchanges[2].final.endswith(bot.display.plain(bot.texts["answer_cut_off"]))
    assert exchanges[3].final == bot.display.as_sent(greeting)


def test_a_json_middleware_then_a_streaming_one_in_front_of_the_same_bot(streaming_bot: StreamingBot) -> None:
    bot = streaming_bot
    expected = bot.display.as_sent(run(json_answer(bot.project, GENERAL)))

    async def ask() -> Exchange:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            return await chat.send(GENERAL)

    with bot.middleware(None):
        plain_answer = run(ask())
        assert bot.stats()["streamed"] == 0
    with bot.middleware("sse"):
        streamed_answer = run(ask())
        assert bot.stats()["streamed"] == 1
    with bot.middleware(None):
        plain_again = run(ask())
    assert plain_answer.final == streamed_answer.final == plain_again.final == expected
    assert plain_answer.tokens == plain_again.tokens == 0
    assert plain_answer.messages == [[bot.display.plain(bot.texts["thinking"]), expected]]
    assert_grew_into(bot, streamed_answer, expected)


def test_a_stream_cut_half_way_keeps_what_arrived_and_the_chat_goes_on(streaming_bot: StreamingBot) -> None:
    bot = streaming_bot
    whole = bot.display.as_sent(run(json_answer(bot.project, GENERAL)))

    async def scenario() -> tuple[Exchange, Exchange, list[tuple[str, Any]]]:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            cut = await chat.send("simulate stream cut")
            after = await chat.send(GENERAL)
            return cut, after, chat.events

    with bot.middleware("ndjson"):
        cut, after, events = run(scenario())
    kept = growing(bot, cut)[-2]  # the last part shown before the note
    assert cut.tokens >= 3
    assert cut.final == f"{kept}\n\n{bot.display.plain(bot.texts['answer_cut_off'])}"
    assert kept and whole.startswith(kept) and len(kept) < len(whole), (kept, whole)
    assert len(kept) >= len(whole) / 3  # about half the deltas arrived
    shown_as = {data["id"] for name, data in events if name == "update_message" and data.get("output") == cut.final}
    assert [(data["forId"], data["label"]) for name, data in events if name == "action" and data.get("name") == "retry"
            ] == [(answer_id, bot.texts["retry"]) for answer_id in shown_as]  # "Try again" under the kept part
    assert after.final == whole and after.tokens >= 5
