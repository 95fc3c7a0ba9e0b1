"""The middleware client against a real HTTP server on loopback (and respx for the wire format)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
import respx

from brandbot_runtime.middleware import (
    MiddlewareStatusError,
    MiddlewareTimeout,
    MiddlewareUnreachable,
    Reply,
    UnexpectedAnswer,
    retry_after_seconds,
)

from .conftest import TEST_SECRET, make_client
from .middleware_double import Close, Hang, MiddlewareDouble, Reset, Respond, closed_port_url, json_reply

HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
           {"role": "user", "content": "Where is my order?"}]


async def test_a_good_answer_is_returned_and_the_request_follows_the_contract(
    middleware: MiddlewareDouble,
) -> None:
    middleware.behave = lambda request: json_reply({"response": "On its way", "category": "OrderTracking"})
    client = make_client(middleware.url)
    try:
        reply = await client.ask("Where is my order?", HISTORY)
    finally:
        await client.aclose()
    assert reply == Reply(response="On its way", category="OrderTracking")
    request = middleware.requests[0]
    assert (request.method, request.path) == ("POST", "/chat")
    assert request.headers["x-secret"] == TEST_SECRET
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"message": "Where is my order?", "history": HISTORY}


async def test_one_pooled_connection_serves_many_messages(middleware: MiddlewareDouble) -> None:
    client = make_client(middleware.url)
    try:
        for number in range(5):
            reply = await client.ask(f"m{number}", [{"role": "user", "content": f"m{number}"}])
            assert reply.response == f"You said: m{number}"
    finally:
        await client.aclose()
    assert len(middleware.requests) == 5
    assert middleware.connections == 1


async def test_a_missing_category_is_none(middleware: MiddlewareDouble) -> None:
    middleware.behave = lambda request: json_reply({"response": "ok"})
    client = make_client(middleware.url)
    try:
        assert await client.ask("x", []) == Reply(response="ok", category=None)
    finally:
        await client.aclose()


@pytest.mark.parametrize(("status", "text_id"), [
    (400, "error_rejected"), (401, "error_unavailable"), (403, "error_unavailable"), (404, "error_unavailable"),
    (409, "error_rejected"), (422, "error_rejected"), (429, "error_rate_limited"), (500, "error_service_unavailable"),
    (502, "error_service_unavailable"), (503, "error_service_unavailable"), (504, "error_timeout"),
    (599, "error_service_unavailable"), (201, "error_unexpected_answer"), (301, "error_unavailable"),
])
async def test_an_error_status_is_a_status_error(middleware: MiddlewareDouble, status: int, text_id: str) -> None:
    middleware.behave = lambda request: json_reply({"detail": "nope"}, status=status)
    client = make_client(middleware.url)
    try:
        with pytest.raises(MiddlewareStatusError) as raised:
            await client.ask("x", [])
    finally:
        await client.aclose()
    assert raised.value.status == status
    assert raised.value.text_id == text_id


@pytest.mark.parametrize(
    "action",
    [Hang(), Respond(body=b'{"response": "slow"}', trickle_interval=0.1)],
    ids=["no-answer", "trickled-body"],
)
async def test_no_complete_answer_in_time_is_a_timeout(middleware: MiddlewareDouble, action) -> None:  # type: ignore[no-untyped-def]
    middleware.behave = lambda request: action
    client = make_client(middleware.url, timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(MiddlewareTimeout) as raised:
            await client.ask("x", [])
    finally:
        await client.aclose()
    assert 0.4 < time.monotonic() - started < 5  # the 0.5 s deadline fired (room for a busy machine)
    assert raised.value.text_id == "error_timeout"


async def test_a_refused_connection_is_unreachable() -> None:
    client = make_client(closed_port_url())
    try:
        with pytest.raises(MiddlewareUnreachable) as raised:
            await client.ask("x", [])
    finally:
        await client.aclose()
    assert raised.value.text_id == "error_connection"


@pytest.mark.parametrize(
    "action",
    [Close(), Reset(partial=b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"resp")],
    ids=["closed", "reset-mid-answer"],
)
async def test_a_broken_connection_is_unreachable(middleware: MiddlewareDouble, action) -> None:  # type: ignore[no-untyped-def]
    middleware.behave = lambda request: action
    client = make_client(middleware.url)
    try:
        with pytest.raises(MiddlewareUnreachable):
            await client.ask("x", [])
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b"", b"[1, 2]", b'{"answer": "x"}', b'{"response": 42}', b'{"response": null}',
     b'{"response": "x", "category": 7}', b"\xff\xfe\x00garbage"],
    ids=["html", "empty", "array", "no-response", "number-response", "null-response", "number-category",
         "not-utf8"],
)
async def test_a_200_that_breaks_the_contract_is_unexpected(middleware: MiddlewareDouble, body: bytes) -> None:
    middleware.behave = lambda request: Respond(body=body)
    client = make_client(middleware.url)
    try:
        with pytest.raises(UnexpectedAnswer) as raised:
            await client.ask("x", [])
    finally:
        await client.aclose()
    assert raised.value.text_id == "error_unexpected_answer"


async def test_an_answer_over_the_size_limit_is_refused(middleware: MiddlewareDouble) -> None:
    big = json.dumps({"response": "x" * 300_000}).encode()
    middleware.behave = lambda request: Respond(body=big)
    client = make_client(middleware.url, max_bytes=100_000)
    try:
        with pytest.raises(UnexpectedAnswer, match="limit"):
            await client.ask("x", [])
        middleware.behave = lambda request: json_reply({"response": "small again"})
        assert (await client.ask("y", [])).response == "small again"
    finally:
        await client.aclose()


@pytest.mark.parametrize(("header", "seconds"), [
    ("30", 30), ("0", 1), ("99999", 3600), ("soon", None), (None, None), ("", None),
    ("Wed, 26 Nov 2036 10:00:00 GMT", 3600), ("Mon, 01 Jan 2001 00:00:00 GMT", 1),
    ("\xb2", None), ("\u0663", None), ("9" * 5000, 3600),
])
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None, seconds: int | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_retry_after_date_counts_from_now() -> None:
    now = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Thu, 26 Nov 2026 10:01:30 GMT", now=now) == 90


async def test_the_wire_format_with_respx() -> None:
    mock = respx.Router(assert_all_called=True)
    route = mock.post("https://mw.example/chat").respond(json={"response": "hi", "category": None})
    client = make_client("https://mw.example/chat", transport=httpx.MockTransport(mock.async_handler))
    try:
        reply = await client.ask("hello", [{"role": "user", "content": "hello"}])
    finally:
        await client.aclose()
    assert reply == Reply("hi", None)
    sent = route.calls.last.request
    assert sent.headers["x-secret"] == TEST_SECRET
    assert json.loads(sent.content) == {"message": "hello", "history": [{"role": "user", "content": "hello"}]}


async def test_a_connect_timeout_from_httpx_is_a_timeout() -> None:
    mock = respx.Router()
    mock.post("https://mw.example/chat").mock(side_effect=httpx.ConnectTimeout("slow"))
    client = make_client("https://mw.example/chat", transport=httpx.MockTransport(mock.async_handler))
    try:
        with pytest.raises(MiddlewareTimeout):
            await client.ask("x", [])
    finally:
        await client.aclose()


async def test_concurrent_requests_share_the_client(middleware: MiddlewareDouble) -> None:
    client = make_client(middleware.url)
    try:
        replies = await asyncio.gather(*(client.ask(f"m{n}", []) for n in range(20)))
    finally:
        await client.aclose()
    assert [reply.response for reply in replies] == [f"You said: m{n}" for n in range(20)]
