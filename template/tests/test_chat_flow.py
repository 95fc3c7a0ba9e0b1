"""The whole flow through app.py's real handlers, against a real middleware on loopback."""

from __future__ import annotations

import logging
import time

import pytest

from brandbot_runtime.brand import Brand
from brandbot_runtime.display import as_sent, plain

from .chat_harness import ChatHarness
from .conftest import TEST_SECRET
from .middleware_double import MiddlewareDouble, json_reply


async def test_chat_starts_with_the_welcome_message(configure, middleware, session: ChatHarness,
                                                    brand: Brand) -> None:
    configure(middleware.url, BOT_NAME="Override Name")
    welcome = await session.start()
    assert welcome.contents == [as_sent(brand.welcome_message)]
    assert welcome.author == "Override Name"


async def test_each_starter_is_a_button_under_the_welcome(configure, middleware, session: ChatHarness,
                                                           brand: Brand) -> None:
    configure(middleware.url)
    welcome = await session.start()
    assert session.emitter is not None
    buttons = [action for action in session.emitter.actions if action["forId"] == welcome.id]
    assert [(action["label"], action["payload"]) for action in buttons] == [
        (starter.label, {"index": index}) for index, starter in enumerate(brand.starters)]


async def test_clicking_a_starter_sends_its_message_and_answers_it(configure, middleware, session: ChatHarness,
                                                                  brand: Brand) -> None:
    configure(middleware.url)
    await session.start()
    if not brand.starters:  # this brand has none: a click on a first starter does nothing
        assert await session.click_starter({"index": 0}) == []
        return
    message = brand.starters[-1].message
    shown = await session.click_starter({"index": len(brand.starters) - 1})
    assert [(item.type, item.final) for item in shown] == [("user_message", message),
                                                           ("assistant_message", as_sent(f"You said: {message}"))]
    assert middleware.requests[-1].json["message"] == message


@pytest.mark.parametrize("payload", [{}, {"index": -1}, {"index": 99}, {"index": "0"}, {"index": True},
                                     {"message": "send this text instead"}])
async def test_a_forged_starter_click_sends_nothing(configure, middleware, session: ChatHarness,
                                                   payload: dict) -> None:
    configure(middleware.url)
    await session.start()
    assert await session.click_starter(payload) == []
    assert middleware.requests == []


async def test_a_general_answer_replaces_thinking_at_once(configure, middleware, session, brand) -> None:
    configure(middleware.url)
    await session.start()
    general = sorted(brand.general_categories)[0] if brand.general_categories else None
    middleware.behave = lambda request: json_reply({"response": "Happy to help!", "category": general})
    shown = await session.say("Hello")
    assert shown.contents == [plain(brand.texts.thinking), "Happy to help!"]


async def test_a_specialist_answer_announces_the_specialist_first(configure, middleware, session,
                                                                  brand) -> None:
    configure(middleware.url, TRANSITION_DELAY_SECONDS="0.3")
    await session.start()
    category_id, expected = "LateDeliveryClaims", "Late Delivery Claims"
    if brand.categories:
        category_id = next(iter(brand.categories))
        expected = brand.specialist_label(category_id)
    middleware.behave = lambda request: json_reply({"response": "Parcel is on its way.", "category": category_id})
    started = time.monotonic()
    shown = await session.say("Where is my order?")
    assert time.monotonic() - started >= 0.3
    assert shown.contents == [plain(brand.texts.thinking), plain(brand.texts.specialist(expected)),
                              "Parcel is on its way."]



async def test_history_carries_completed_exchanges_and_ends_with_the_message(configure, middleware,
                                                                             session) -> None:
    configure(middleware.url)
    await session.start()
    await session.say("first")
    await session.say("second")
    assert middleware.requests[1].json == {
        "message": "second",
        "history": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "You said: first"},
                    {"role": "user", "content": "second"}],
        "customer": {"id": None, "verified": False, "claims": {}},  # no sign-in: anonymous
    }


async def test_a_refused_connection_is_a_connection_error_and_the_chat_recovers(
    configure, session: ChatHarness, brand: Brand
) -> None:
    down = MiddlewareDouble()
    url = await down.start()
    port = int(url.split(":")[2].split("/")[0])
    await down.stop()
    configure(url)
    await session.start()
    assert (await session.say("anyone there?")).final == plain(brand.texts.error_connection)
    back = MiddlewareDouble()
    await back.start(port)
    try:
        assert (await session.say("now?")).final == as_sent("You said: now?")
    finally:
        await back.stop()
    assert back.requests[0].json["history"] == [{"role": "user", "content": "now?"}]


async def test_history_sent_stays_bounded(configure, middleware, session) -> None:
    configure(middleware.url, HISTORY_MAX_TURNS="3")
    await session.start()
    for number in range(12):
        await session.say(f"m{number}")
    sizes = [len(request.json["history"]) for request in middleware.requests]
    assert sizes == [1, 3, 5, 7] + [7] * 8
    assert middleware.requests[-1].json["history"][0] == {"role": "user", "content": "m8"}


async def test_missing_configuration_is_a_polite_error_and_names_the_variable(
    configure, session: ChatHarness, brand: Brand, caplog: pytest.LogCaptureFixture
) -> None:
    configure(None, secret=TEST_SECRET)
    with caplog.at_level(logging.ERROR, logger="brandbot"):
        started = await session.start()
    assert started.contents == [plain(brand.texts.error_configuration)]
    assert "BACKEND_API_URL" in caplog.text
    assert TEST_SECRET not in caplog.text
    for text in ["Hello?", "Still there?"]:
        assert (await session.say(text)).contents == [plain(brand.texts.error_configuration)]


async def test_sessions_keep_separate_histories(configure, middleware) -> None:
    configure(middleware.url)
    first, second = ChatHarness(), ChatHarness()
    try:
        await first.start()
        await second.start()
        await first.say("I am first")
        await second.say("I am second")
        await first.say("first again")
    finally:
        first.close()
        second.close()
    assert [turn["content"] for turn in middleware.requests[2].json["history"]] == [
        "I am first", "You said: I am first", "first again"]
    assert middleware.requests[1].json["history"] == [{"role": "user", "content": "I am second"}]
