"""Streamed answers through the real chat flow, against a real HTTP server on loopback that streams.

The fault rows (cuts, error events, malformed events, gaps, oversize, late categories) are in
fault_matrix.py; these tests cover what a working stream shows, records and how its limits count.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from brandbot_runtime import chat
from brandbot_runtime.brand import Brand
from brandbot_runtime.display import as_sent, plain

from .chat_harness import ChatHarness
from .middleware_double import MiddlewareDouble, Stream, echo, sse, streamed

ANSWER = ("Your order **left** our warehouse yesterday.\n\n```python\nprint('tracking')\n```\n\n"
          "| day | where |\n|---|---|\n| Mon | Madrid |\n\nAnything else?")


@pytest.mark.parametrize("form", ["sse", "ndjson"])
async def test_a_streamed_answer_grows_in_place_and_ends_exactly_as_sent(
        configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand, form: str) -> None:
    configure(middleware.url)
    await session.start()
    middleware.behave = lambda request: streamed(ANSWER, pieces=12, form=form, interval=0.01)
    shown = await session.say("Where is my order?")
    assert shown.contents[0] == plain(brand.texts.thinking)
    assert shown.final == as_sent(ANSWER)
    growing = shown.contents[1:-1]
    assert len(growing) >= 5, shown.contents  # it grew in steps
    assert all(as_sent(ANSWER).startswith(step) for step in growing)  # each a beginning of the end
    assert session.emitter is not None
    assert session.emitter.metadata[shown.id]["brandbot"] == {"text": ANSWER, "category": None,
                                                             "asked": "Where is my order?"}
    middleware.behave = echo
    await session.say("thanks")
    assert middleware.requests[-1].json["history"][:2] == [
        {"role": "user", "content": "Where is my order?"}, {"role": "assistant", "content": ANSWER}]


async def test_the_bot_asks_for_json_or_either_stream(configure, middleware: MiddlewareDouble,
                                                      session: ChatHarness) -> None:
    configure(middleware.url)
    await session.start()
    await session.say("hello")
    accept = middleware.requests[-1].headers["accept"]
    assert [kind.strip() for kind in accept.split(",")] == [
        "application/json", "text/event-stream", "application/x-ndjson"]


async def test_a_specialist_category_shows_the_transition_before_the_deltas(
        configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand) -> None:
    configure(middleware.url, TRANSITION_DELAY_SECONDS="0.3")
    await session.start()
    stream = streamed("Your refund is on its way.", category="Billing", pieces=4, interval=0.05)
    middleware.behave = lambda request: stream
    started = asyncio.get_running_loop().time()
    shown = await session.say("refund?")
    label = brand.specialist_label("Billing")
    assert label is not None
    assert shown.contents[:2] == [plain(brand.texts.thinking), plain(brand.texts.specialist(label))]
    assert shown.final == "Your refund is on its way."
    # the deltas were sent during the transition and waited for it, not the other way round
    assert stream.sent_at[-1] - started < 0.3 + 0.25


async def test_a_category_sent_only_with_done_still_shows_its_transition(
        configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand) -> None:
    configure(middleware.url, TRANSITION_DELAY_SECONDS="0")
    await session.start()
    middleware.behave = lambda request: Stream(sse({"delta": "Done."}, {"done": True, "category": "Billing"}))
    shown = await session.say("refund?")
    label = brand.specialist_label("Billing")
    assert label is not None and plain(brand.texts.specialist(label)) in shown.contents
    assert shown.final == "Done."


async def test_the_timeout_is_idle_time_between_events_and_the_cap_is_the_whole_stream(
        configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand,
        caplog: pytest.LogCaptureFixture) -> None:
    configure(middleware.url, REQUEST_TIMEOUT_SECONDS="0.5", STREAM_MAX_SECONDS="1.5")
    await session.start()
    # 1.2 s in all, never 0.5 s without an event: answered, although longer than REQUEST_TIMEOUT_SECONDS
    middleware.behave = lambda request: streamed("a b c d e f g h i j k l", pieces=12, interval=0.1)
    assert (await session.say("slow but steady")).final == "a b c d e f g h i j k l"
    # steady but endless: cut at STREAM_MAX_SECONDS, what came stays
    middleware.behave = lambda request: streamed("word " * 100, pieces=100, interval=0.1)
    with caplog.at_level(logging.WARNING, logger="brandbot"):
        cut = await session.say("endless")
    assert cut.final.startswith("word word") and cut.final.endswith(plain(brand.texts.answer_cut_off))
    assert any("STREAM_MAX_SECONDS" in record.getMessage() and "error_timeout" in record.getMessage()
               for record in caplog.records)
    assert len(middleware.requests[-1].json["history"]) == 3  # the cut answer is not in the history


async def test_stop_mid_stream_keeps_what_arrived_and_records_nothing(
        configure, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    configure(middleware.url)
    await session.start()
    middleware.behave = lambda request: streamed("one two three four five six seven eight", pieces=8, interval=0.1)
    emitter = session._enter()
    before = len(emitter.messages)
    task = asyncio.create_task(session.say("long answer please"))
    await asyncio.sleep(0.45)
    task.cancel()  # what Chainlit's stop does to the task running on_message
    with pytest.raises(asyncio.CancelledError):
        await task
    [stopped] = list(emitter.messages.values())[before:]
    assert stopped.final.startswith("one two") and not stopped.final.endswith("eight")
    middleware.behave = echo
    await session.say("next")
    assert middleware.requests[-1].json["history"] == [{"role": "user", "content": "next"}]
    await chat.shutdown()
