"""What a broken or hostile middleware can send, over real loopback HTTP: compressed answers,
compression bombs, mislabelled codings, lone surrogates and JSON built to break a parser.

Each either works or is refused as error_unexpected_answer; none becomes error_internal, none
costs more memory than the size limit, and none breaks the session for the next message.
"""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from brandbot_runtime.display import as_sent
from brandbot_runtime.middleware import Reply, UnexpectedAnswer, parse_reply

from .chat_harness import ChatHarness
from .conftest import make_client
from .middleware_double import (
    MiddlewareDouble,
    Respond,
    compress,
    compressed_reply,
    compression_bomb,
    json_reply,
)

LIMIT = 1_000_000
ANSWER = {"response": "Your parcel is on its way. " * 40, "category": "OrderTracking"}  # ~1 KB, compressible


async def ask(middleware: MiddlewareDouble, message: str = "x") -> Reply:
    """One message through a fresh pooled client with a 1 MB answer limit."""
    client = make_client(middleware.url, max_bytes=LIMIT)
    try:
        return await client.ask(message, [])
    finally:
        await client.aclose()


@pytest.mark.parametrize("chunked", [0, 256], ids=["content-length", "chunked"])
@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "br"])
async def test_a_compressed_answer_is_read(middleware: MiddlewareDouble, coding: str, chunked: int) -> None:
    middleware.behave = lambda request: compressed_reply(ANSWER, coding, chunked=chunked)
    assert await ask(middleware) == Reply(**ANSWER)


async def test_the_request_offers_exactly_the_codings_the_bot_reads(middleware: MiddlewareDouble) -> None:
    await ask(middleware)
    offered = [token.strip() for token in middleware.requests[0].headers["accept-encoding"].split(",")]
    assert sorted(offered) == ["br", "deflate", "gzip"]
    for coding in offered:
        middleware.behave = lambda request, coding=coding: compressed_reply(ANSWER, coding)
        assert await ask(middleware) == Reply(**ANSWER)


@pytest.mark.parametrize(("coding", "size", "chunked"), [
    ("gzip", 10 << 20, 0), ("gzip", 1 << 30, 16_384), ("deflate", 1 << 30, 16_384), ("br", 1 << 30, 0),
], ids=["gzip-10MB", "gzip-1GB-chunked", "deflate-1GB-chunked", "br-1GB"])
async def test_a_compression_bomb_is_refused_within_the_limit(
    middleware: MiddlewareDouble, coding: str, size: int, chunked: int
) -> None:
    """A 1 GB bomb is about 1 MB on the wire (200 KB in br): chunked, no declared length gives it away."""
    body = compression_bomb(coding, size)
    assert len(body) < size // 1000
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    middleware.behave = lambda request: Respond(body=body, headers=headers, chunked=chunked)
    tracemalloc.start()
    try:
        started = time.monotonic()
        with pytest.raises(UnexpectedAnswer, match="limit") as raised:
            await ask(middleware)
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"{coding} bomb of {size} bytes, {len(body)} on the wire: {raised.value}; "
          f"peak {peak / 1e6:.1f} MB traced, {seconds:.2f} s")
    assert raised.value.text_id == "error_unexpected_answer"
    assert peak < 4 * LIMIT  # the decoded part is bounded by the limit, never by the bomb
    assert seconds < 2
    middleware.behave = lambda request: json_reply({"response": "fine again"})
    assert (await ask(middleware)).response == "fine again"


@pytest.mark.parametrize(("encoding", "body"), [
    ("gzip", json.dumps(ANSWER).encode()),
    ("br", compress(json.dumps(ANSWER).encode(), "gzip")),
    ("deflate", b"\x78\x9c" + json.dumps(ANSWER).encode()),
    ("gzip", compress(json.dumps(ANSWER).encode(), "gzip")[:-20]),
    ("gzip", compress(json.dumps(ANSWER).encode(), "gzip") + b"trailing"),
    ("deflate", compress(json.dumps(ANSWER).encode(), "deflate") + b"trailing"),
    ("gzip", compress(json.dumps(ANSWER).encode(), "gzip") * 20),
    ("gzip, gzip", compress(compress(json.dumps(ANSWER).encode(), "gzip"), "gzip")),
    ("zstd", b"\x28\xb5\x2f\xfd" + b"\x00" * 20),
    ("compress", b"\x1f\x9d" + b"\x00" * 20),
    ("gzip", b""),
], ids=["plain-labelled-gzip", "gzip-labelled-br", "bad-deflate", "truncated-gzip", "gzip-trailing-garbage",
        "deflate-trailing-garbage", "20-gzip-members", "two-codings", "zstd-not-offered", "compress-not-offered",
        "empty-gzip"])
async def test_a_body_its_content_encoding_does_not_describe_is_unexpected(
    middleware: MiddlewareDouble, encoding: str, body: bytes
) -> None:
    middleware.behave = lambda request: Respond(body=body, headers={"Content-Encoding": encoding})
    with pytest.raises(UnexpectedAnswer) as raised:
        await ask(middleware)
    assert raised.value.text_id == "error_unexpected_answer"


async def test_identity_and_two_gzip_members_are_read(middleware: MiddlewareDouble) -> None:
    data = json.dumps(ANSWER).encode()
    middleware.behave = lambda request: Respond(body=data, headers={"Content-Encoding": "identity"})
    assert await ask(middleware) == Reply(**ANSWER)
    halves = compress(data[:100], "gzip") + compress(data[100:], "gzip")
    middleware.behave = lambda request: Respond(body=halves, headers={"Content-Encoding": "GZip"})
    assert await ask(middleware) == Reply(**ANSWER)


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"response": "a \\ud800", "category": "Order\\udc00"}', Reply("a \ufffd", "Order\ufffd")),
    (b'{"response": "half \\ud83d"}', Reply("half \ufffd", None)),
    (b'{"response": "raw \xed\xa0\x80 bytes"}', Reply("raw \ufffd bytes", None)),
    (b'{"response": "pair \\ud83d\\ude00"}', Reply("pair \U0001f600", None)),
], ids=["escaped", "cut-emoji", "utf8-encoded-surrogate", "valid-pair"])
def test_lone_surrogates_in_an_answer_become_replacement_characters(body: bytes, expected: Reply) -> None:
    reply = parse_reply(body)
    assert reply == expected
    reply.response.encode()


async def test_a_lone_surrogate_does_not_break_the_session(configure, middleware: MiddlewareDouble,
                                                           session: ChatHarness) -> None:
    configure(middleware.url)
    await session.start()
    middleware.behave = lambda request: Respond(body=b'{"response": "a \\ud800", "category": null}')
    assert (await session.say("first")).final == as_sent("a \ufffd")
    middleware.behave = lambda request: json_reply({"response": "second answer"})
    assert (await session.say("second")).final == as_sent("second answer")
    assert middleware.requests[1].json["history"] == [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "a \ufffd"},
        {"role": "user", "content": "second"}]


DEPTH = 100_000


@pytest.mark.parametrize("body", [
    b"[" * DEPTH + b"]" * DEPTH,
    b'{"response": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    b'{"response": "ok", "extra": ' + b'{"a": ' * DEPTH + b"1" + b"}" * DEPTH + b"}",
    b"[" * DEPTH,
    b'{"response": 1e999999}',
    b'{"response": NaN}',
    b'{"response": "ok", "n": ' + b"9" * 10_000 + b"}",
    b'{"response": "ok"} trailing',
    b'"just a string"',
], ids=["nested-array", "nested-response", "nested-extra", "unclosed-nesting", "huge-number-response",
        "nan-response", "10000-digit-integer", "trailing-data", "json-string"])
async def test_a_body_built_to_break_the_parser_is_unexpected(middleware: MiddlewareDouble, body: bytes) -> None:
    middleware.behave = lambda request: Respond(body=body)
    started = time.monotonic()
    with pytest.raises(UnexpectedAnswer) as raised:
        await ask(middleware)
    assert raised.value.text_id == "error_unexpected_answer"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"response": "first", "response": "last"}', Reply("last", None)),
    (b'{"response": "ok", "score": NaN, "big": 1e999999, "small": -Infinity}', Reply("ok", None)),
    (b'{"response": "' + b"x" * (LIMIT - 20) + b'"}', Reply("x" * (LIMIT - 20), None)),
    (b'{"response": "' + b"\\ud800" * ((LIMIT - 20) // 6) + b'"}', Reply("\ufffd" * ((LIMIT - 20) // 6), None)),
], ids=["duplicate-key-last-wins", "non-finite-extras", "response-at-the-limit", "limit-full-of-surrogates"])
async def test_a_strange_but_usable_body_is_an_answer(middleware: MiddlewareDouble, body: bytes,
                                                       expected: Reply) -> None:
    middleware.behave = lambda request: Respond(body=body)
    assert await ask(middleware) == expected
