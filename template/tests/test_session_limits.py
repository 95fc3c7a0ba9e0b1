"""What one session can make the bot do: one request at a time, bounded messages, rate and history.

Each test drives app.py's real handlers against a real middleware on loopback, as a hostile or
careless customer would: many messages at once, huge messages, a flood, broken text.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chainlit.chat_context import chat_contexts

from brandbot_runtime.brand import Brand
from brandbot_runtime.conversation import MAX_WAITING, Conversation, Refusal
from brandbot_runtime.display import as_sent, plain

from .chat_harness import ChatHarness
from .middleware_double import MiddlewareDouble, Request, Respond, json_reply


def slow_echo(seconds: float) -> Callable[[Request], Respond]:
    """Echo each message after `seconds`, so overlapping requests would be visible."""

    def behave(request: Request) -> Respond:
        return json_reply({"response": f"You said: {request.json['message']}", "category": "General"},
                          delay=seconds)

    return behave


async def test_messages_sent_together_are_answered_one_at_a_time_in_order(
        configure, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    configure(middleware.url)
    middleware.behave = slow_echo(0.2)
    await session.start()
    started = time.monotonic()
    shown = await session.say_together([f"m{number}" for number in range(MAX_WAITING + 1)])
    assert [item.final for item in shown] == [as_sent(f"You said: m{number}") for number in range(MAX_WAITING + 1)]
    assert [request.json["message"] for request in middleware.requests] == [f"m{n}" for n in range(MAX_WAITING + 1)]
    assert middleware.connections == 1  # never two requests at once: one pooled connection served them all
    assert time.monotonic() - started >= 0.2 * (MAX_WAITING + 1)
    # each later request carries the earlier exchanges: they were answered in turn, not side by side
    assert [len(request.json["history"]) for request in middleware.requests] == [1, 3, 5]


async def test_a_flood_of_messages_gets_the_busy_text_beyond_those_waiting(
        configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand) -> None:
    configure(middleware.url, MESSAGES_PER_MINUTE="1000")
    middleware.behave = slow_echo(0.2)
    await session.start()
    shown = await session.say_together([f"m{number}" for number in range(100)])
    busy = [item for item in shown if item.final == plain(brand.texts.error_busy)]
    answered = [item for item in shown if item.final.startswith("You said")]
    assert len(answered) == MAX_WAITING + 1 == len(middleware.requests)
    assert len(busy) == 100 - (MAX_WAITING + 1)
    assert middleware.connections == 1


async def test_a_message_over_the_length_limit_is_refused_with_its_text(
        configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand) -> None:
    configure(middleware.url, MAX_MESSAGE_CHARS="50")
    await session.start()
    refused = await session.say("x" * 51)
    assert refused.final == plain(brand.texts.render("error_message_too_long", {"max": "50"}))
    assert "50" in refused.final
    assert middleware.requests == []
    assert (await session.say("y" * 50)).final == as_sent("You said: " + "y" * 50)


async def test_the_rate_limit_refuses_with_the_wait_and_lets_the_customer_back_later(
        configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand) -> None:
    configure(middleware.url, MESSAGES_PER_MINUTE="3")
    await session.start()
    for number in range(3):
        assert (await session.say(f"m{number}")).final == as_sent(f"You said: m{number}")
    refused = await session.say("one too many")
    assert refused.final == plain(brand.texts.render("error_too_many_messages", {"seconds": "60"}))
    assert len(middleware.requests) == 3
    conversation: Conversation = session.conversation()
    conversation._now = lambda: time.monotonic() + 61  # a minute later
    assert (await session.say("back again")).final == as_sent("You said: back again")


async def test_the_history_sent_to_the_middleware_stays_within_its_byte_budget(
        configure, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    configure(middleware.url, HISTORY_MAX_BYTES="10000", MAX_MESSAGE_CHARS="3000", MESSAGES_PER_MINUTE="100")
    await session.start()
    for number in range(25):
        await session.say(f"{number:02d}" + "x" * 2998)
    sizes = [len(request.body) for request in middleware.requests]
    assert max(sizes) < 10_000 + 2 * 3_100 + 500  # the budget, the current message and JSON framing
    last = middleware.requests[-1].json["history"]
    assert last[-1]["content"].startswith("24")
    assert last[0]["content"].startswith("23")  # the newest exchange that fits is kept


async def test_a_lone_surrogate_from_the_customer_cannot_break_the_session(
        configure, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    configure(middleware.url)
    await session.start()
    first = await session.say("half an emoji \ud83d")
    assert first.final == as_sent("You said: half an emoji \ufffd")
    second = await session.say("still there?")
    assert second.final == as_sent("You said: still there?")
    assert middleware.requests[-1].json["history"][0]["content"] == "half an emoji \ufffd"


async def test_a_message_before_the_welcome_is_answered(configure, middleware: MiddlewareDouble,
                                                        session: ChatHarness) -> None:
    configure(middleware.url)
    shown = await session.say("are you there?")
    assert shown.final == as_sent("You said: are you there?")


async def test_empty_and_blank_messages_are_not_forwarded(configure, middleware: MiddlewareDouble,
                                                          session: ChatHarness) -> None:
    configure(middleware.url)
    await session.start()
    for text in ["", "   ", "\n\t "]:
        assert await session.say_nothing_back(text)
    assert middleware.requests == []
    assert (await session.say("hello")).final == as_sent("You said: hello")


def test_every_message_counts_and_a_flood_is_told_to_wait_once_a_minute() -> None:
    conversation = Conversation(max_exchanges=5, max_history_bytes=1000, max_message_chars=10,
                                messages_per_minute=3)
    clock = [1000.0]
    conversation._now = lambda: clock[0]
    too_long = conversation.admit("x" * 11)
    assert too_long is not None and too_long.text_id == "error_message_too_long" and not too_long.quiet
    assert conversation.admit("a") is None
    assert conversation.admit("b") is None  # three messages in the minute, the refused one included
    told = conversation.admit("c")
    assert told == Refusal("error_too_many_messages", {"seconds": "60"})
    clock[0] += 10
    again = conversation.admit("d")
    assert again is not None and again.quiet  # told once: the flood gets no reply per message
    clock[0] += 51  # a minute after "c", and "d" came 10 s later: two messages remain in the window
    assert conversation.admit("e") is None


async def test_refused_messages_leave_nothing_behind_in_chainlit(
        configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand) -> None:
    configure(middleware.url, MAX_MESSAGE_CHARS="10", MESSAGES_PER_MINUTE="3")
    await session.start()
    shown = [await session.say("far too long for the limit") for _ in range(3)]
    assert [item.final for item in shown] == [plain(brand.texts.render("error_message_too_long", {"max": "10"}))] * 3
    told = await session.say("short")
    assert told.final.startswith(plain(brand.texts.error_too_many_messages.split("{")[0]))
    for _ in range(20):
        assert await session.say_nothing_back("short")
    assert middleware.requests == []
    assert chat_contexts.get(session.session.id, []) == []


def test_a_retry_id_is_taken_once() -> None:
    conversation = Conversation(max_exchanges=5, max_history_bytes=1000, max_message_chars=10,
                                messages_per_minute=2)
    retry_id = conversation.remember_failure("hello")
    assert conversation.take_retry("forged") is None
    assert conversation.take_retry(retry_id) == "hello"
    assert conversation.take_retry(retry_id) is None


async def test_chainlit_keeps_no_copy_of_the_messages_after_an_exchange_or_the_end(
        configure, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    configure(middleware.url, MAX_MESSAGE_CHARS="10")
    await session.start()
    await session.say("a message that is far too long")
    await session.say("short")
    assert chat_contexts.get(session.session.id, []) == []
    await session.end()
    assert session.session.id not in chat_contexts


async def test_an_answer_keeps_the_middlewares_own_text_beside_what_is_shown(
        configure, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    """Transcripts export what the middleware wrote, not the display's escapes."""
    configure(middleware.url)
    middleware.behave = lambda request: json_reply({"response": "Ref:QX-77 <b>", "category": "OrderTracking"})
    await session.start()
    shown = await session.say("where is it?")
    assert shown.final == as_sent("Ref:QX-77 <b>") != "Ref:QX-77 <b>"
    assert session.emitter is not None
    assert session.emitter.metadata[shown.id] == {"brandbot": {"text": "Ref:QX-77 <b>", "category": "OrderTracking",
                                                               "asked": "where is it?"}}
