"""The fault matrix against a real HTTP server on loopback: each fault gets its own clear message,
a log line without the secret, a "Try again" button, an unchanged history and a working next message."""

from __future__ import annotations

import logging

import pytest

from brandbot_runtime import chat, metrics
from brandbot_runtime.brand import Brand
from brandbot_runtime.display import as_sent, plain

from .chat_harness import ChatHarness
from .conftest import TEST_SECRET
from .fault_matrix import FAULTS, REFUSED, STREAM_FAULTS, UNRESOLVABLE, Fault
from .middleware_double import MiddlewareDouble, closed_port_url, echo, json_reply


@pytest.mark.parametrize("fault", FAULTS + STREAM_FAULTS, ids=[fault.name for fault in FAULTS + STREAM_FAULTS])
async def test_each_fault_is_survived(configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand,
                                      fault: Fault, caplog: pytest.LogCaptureFixture) -> None:
    configure(middleware.url, REQUEST_TIMEOUT_SECONDS="0.6")
    await session.start()
    await session.say("before")
    if fault.behave == REFUSED or fault.behave == UNRESOLVABLE:
        await chat.shutdown()
        configure(closed_port_url() if fault.behave == REFUSED else "http://middleware.invalid/chat",
                  REQUEST_TIMEOUT_SECONDS="0.6")
    else:
        middleware.behave = fault.behave  # type: ignore[assignment]

    outcome = "cut_off" if fault.kept else fault.text_id  # brandbot_exchanges_total's label for it
    counted = metrics.REGISTRY.get_sample_value("brandbot_exchanges_total", {"outcome": outcome})
    with caplog.at_level(logging.DEBUG):
        failed = await session.say("this one fails")
    assert metrics.REGISTRY.get_sample_value("brandbot_exchanges_total", {"outcome": outcome}) == counted + 1

    expected = brand.texts.render(fault.text_id, fault.values)
    if fault.values.get("seconds") == "120":  # an HTTP date: allow the clock to tick
        wordings = {plain(brand.texts.render(fault.text_id, {"seconds": str(s)})) for s in (119, 120, 121)}
        assert failed.final in wordings
    elif fault.kept:  # a stream broke: what arrived stays on screen (at least `kept`), with the note after it
        assert failed.final.startswith(as_sent(fault.kept))
        assert failed.final.endswith(f"\n\n{plain(brand.texts.answer_cut_off)}")
        assert failed.final.removesuffix(f"\n\n{plain(brand.texts.answer_cut_off)}") in failed.contents[:-1]
    else:
        assert failed.final == plain(expected)
    assert failed.contents[0] == plain(brand.texts.thinking)
    records = [record for record in caplog.records if record.name == "brandbot" and fault.logged in record.getMessage()]
    assert records, f"no log line with {fault.logged!r}: {[r.getMessage() for r in caplog.records]}"
    assert records[0].levelno == fault.level
    assert fault.text_id in records[0].getMessage() or fault.text_id.startswith("error_rate_limited")
    assert TEST_SECRET not in caplog.text
    assert session.emitter is not None
    retry = [action for action in session.emitter.actions if action["forId"] == failed.id]
    assert [action["label"] for action in retry] == [brand.texts.retry]

    # The middleware is back: the session goes on, and the failed exchange left no trace.
    await chat.shutdown()
    middleware.behave = echo
    configure(middleware.url)
    assert (await session.say("after")).final == as_sent("You said: after")
    assert middleware.requests[-1].json["history"] == [
        {"role": "user", "content": "before"}, {"role": "assistant", "content": "You said: before"},
        {"role": "user", "content": "after"},
    ]


async def test_try_again_resends_the_failed_message(configure, middleware: MiddlewareDouble, session: ChatHarness,
                                                    brand: Brand) -> None:
    configure(middleware.url)
    await session.start()
    middleware.behave = lambda request: json_reply({"detail": "down"}, status=503)
    failed = await session.say("Where is my order?")
    assert session.emitter is not None
    retry = next(action for action in session.emitter.actions if action["forId"] == failed.id)
    middleware.behave = echo
    shown = await session.click(retry)
    assert [item.final for item in shown] == [as_sent("You said: Where is my order?")]
    assert middleware.requests[-1].json["message"] == "Where is my order?"
    assert middleware.requests[-1].json["history"] == [{"role": "user", "content": "Where is my order?"}]
    assert await session.click(retry) == []  # a second click on the same button does nothing


async def test_a_stale_or_forged_retry_sends_nothing(configure, middleware: MiddlewareDouble,
                                                     session: ChatHarness) -> None:
    configure(middleware.url)
    await session.start()
    middleware.behave = lambda request: json_reply({"detail": "down"}, status=503)
    first = await session.say("first")
    await session.say("second")
    assert session.emitter is not None
    stale = next(action for action in session.emitter.actions if action["forId"] == first.id)
    sent = len(middleware.requests)
    assert await session.click(stale) == []
    assert await session.click({**stale, "payload": {"id": "forged"}}) == []
    assert len(middleware.requests) == sent


async def test_an_unknown_category_is_answered_with_its_id_in_words(configure, middleware: MiddlewareDouble,
                                                                    session: ChatHarness, brand: Brand) -> None:
    configure(middleware.url)
    await session.start()
    middleware.behave = lambda request: json_reply({"response": "Done.", "category": "BrandNewDesk"})
    shown = await session.say("help")
    assert shown.contents == [plain(brand.texts.thinking), plain(brand.texts.specialist("Brand New Desk")), "Done."]
    assert middleware.requests[-1].json["history"] == [{"role": "user", "content": "help"}]


async def test_an_internal_error_never_shows_its_text(configure, middleware: MiddlewareDouble, session: ChatHarness,
                                                      brand: Brand, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    configure(middleware.url)
    await session.start()
    from brandbot_runtime.log_safety import protect_logs
    from brandbot_runtime.middleware import MiddlewareClient

    async def explode(self, message, history, customer=None):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"internal detail with the secret {TEST_SECRET}")
        yield  # an async generator, as MiddlewareClient.answer is

    monkeypatch.setattr(MiddlewareClient, "answer", explode)
    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    try:
        protect_logs(TEST_SECRET)
        with caplog.at_level(logging.ERROR, logger="brandbot"):
            shown = await session.say("hello")
        formatted = [handler.format(record) for record in caplog.records]
    finally:
        logging.getLogger().removeHandler(handler)
    assert shown.final == plain(brand.texts.error_internal)
    assert TEST_SECRET not in shown.final
    assert any("RuntimeError" in line and "[redacted]" in line for line in formatted), formatted
    assert all(TEST_SECRET not in line for line in formatted)
