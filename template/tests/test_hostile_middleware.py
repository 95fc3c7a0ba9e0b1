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
from brandbot_runtime.middleware import (
    MiddlewareError,
    MiddlewareStatusError,
    Reply,
    UnexpectedAnswer,
    parse_reply,
)
from brandbot_runtime.transport import body_decoder

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


PLAIN = json.dumps(ANSWER).encode()
MISLABELLED = {  # case -> (Content-Encoding, body)
    "plain-labelled-gzip": ("gzip", PLAIN),
    "gzip-labelled-br": ("br", compress(PLAIN, "gzip")),
    "bad-deflate": ("deflate", b"\x78\x9c" + PLAIN),
    "truncated-gzip": ("gzip", compress(PLAIN, "gzip")[:-20]),
    "gzip-trailing-garbage": ("gzip", compress(PLAIN, "gzip") + b"trailing"),
    "deflate-trailing-garbage": ("deflate", compress(PLAIN, "deflate") + b"trailing"),
    "br-trailing-garbage": ("br", compress(PLAIN, "br") + b"trailing"),
    "truncated-br": ("br", compress(PLAIN, "br")[:-3]),
    "20-gzip-members": ("gzip", compress(PLAIN, "gzip") * 20),
    "two-codings": ("gzip, gzip", compress(compress(PLAIN, "gzip"), "gzip")),
    "zstd-not-offered": ("zstd", b"\x28\xb5\x2f\xfd" + b"\x00" * 20),
    "compress-not-offered": ("compress", b"\x1f\x9d" + b"\x00" * 20),
    "empty-gzip": ("gzip", b""),
}


async def outcomes(middleware: MiddlewareDouble, actions: dict[str, Respond]) -> dict[str, object]:
    """Each case's Reply, or the text_id the customer would see, or the exception that escaped."""
    client = make_client(middleware.url, max_bytes=LIMIT)
    seen: dict[str, object] = {}
    try:
        for name, action in actions.items():
            middleware.behave = lambda request, action=action: action
            try:
                seen[name] = await client.ask("x", [])
            except MiddlewareError as error:
                seen[name] = error.text_id
            except Exception as error:  # noqa: BLE001 - what would become error_internal
                seen[name] = f"escaped: {type(error).__name__}"
    finally:
        await client.aclose()
    return seen


async def test_a_body_its_content_encoding_does_not_describe_is_unexpected(middleware: MiddlewareDouble) -> None:
    actions = {name: Respond(body=body, headers={"Content-Encoding": coding})
               for name, (coding, body) in MISLABELLED.items()}
    assert await outcomes(middleware, actions) == dict.fromkeys(MISLABELLED, "error_unexpected_answer")


async def test_identity_and_two_gzip_members_are_read(middleware: MiddlewareDouble) -> None:
    data = json.dumps(ANSWER).encode()
    middleware.behave = lambda request: Respond(body=data, headers={"Content-Encoding": "identity"})
    assert await ask(middleware) == Reply(**ANSWER)
    halves = compress(data[:100], "gzip") + compress(data[100:], "gzip")
    middleware.behave = lambda request: Respond(body=halves, headers={"Content-Encoding": "GZip"})
    assert await ask(middleware) == Reply(**ANSWER)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "br"])
def test_a_decoder_fed_byte_by_byte_with_a_tiny_bound_makes_the_whole_body(coding: str) -> None:
    data = json.dumps(ANSWER).encode() * 50
    packed = compress(data, coding) + (compress(b"[]", coding) if coding == "gzip" else b"")
    decoder = body_decoder("deflate" if coding == "raw-deflate" else coding)
    out = bytearray()
    for index in range(len(packed)):
        made = decoder.decode(packed[index:index + 1], 7)
        while len(made) >= 7:  # stopped at its bound: the rest comes with no new input
            out += made
            made = decoder.decode(b"", 7)
        out += made
    decoder.finish()
    assert bytes(out) == data + (b"[]" if coding == "gzip" else b"")


@pytest.mark.parametrize(("action", "text_id", "values"), [
    (Respond(status=429, reason="\xed\xa0\x80", headers={"Retry-After": "\xb2"}), "error_rate_limited", {}),
    (Respond(status=429, headers={"Retry-After": "9" * 5000}), "error_rate_limited_retry", {"seconds": "3600"}),
    (Respond(status=503, reason="\xff\xfe"), "error_service_unavailable", {}),
], ids=["surrogate-reason-superscript-retry-after", "5000-digit-retry-after", "latin1-reason"])
async def test_a_hostile_status_line_or_retry_after_is_a_status_error(
    middleware: MiddlewareDouble, action: Respond, text_id: str, values: dict[str, str]
) -> None:
    middleware.behave = lambda request: action
    with pytest.raises(MiddlewareStatusError) as raised:
        await ask(middleware)
    assert (raised.value.text_id, raised.value.values) == (text_id, values)


async def test_a_200_with_an_undecodable_reason_phrase_is_an_answer(middleware: MiddlewareDouble) -> None:
    middleware.behave = lambda request: json_reply({"response": "ok"}, reason="\xed\xa0\x80 \xff")
    assert await ask(middleware) == Reply("ok", None)


def test_lone_surrogates_in_an_answer_become_replacement_characters() -> None:
    cases = {  # body -> the Reply it gives
        b'{"response": "a \\ud800", "category": "Order\\udc00"}': Reply("a \ufffd", "Order\ufffd"),
        b'{"response": "half \\ud83d"}': Reply("half \ufffd", None),  # an emoji cut in half
        b'{"response": "raw \xed\xa0\x80 bytes"}': Reply("raw \ufffd bytes", None),  # UTF-8-encoded surrogate
        b'{"response": "pair \\ud83d\\ude00"}': Reply("pair \U0001f600", None),  # a valid pair stays one emoji
    }
    replies = {body: parse_reply(body) for body in cases}
    assert replies == cases
    for reply in replies.values():
        (reply.response + (reply.category or "")).encode()


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


PARSER_BREAKERS = {
    "nested-array": b"[" * DEPTH + b"]" * DEPTH,
    "nested-response": b'{"response": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "nested-extra": b'{"response": "ok", "extra": ' + b'{"a": ' * DEPTH + b"1" + b"}" * DEPTH + b"}",
    "unclosed-nesting": b"[" * DEPTH,
    "huge-number-response": b'{"response": 1e999999}',
    "nan-response": b'{"response": NaN}',
    "10000-digit-integer": b'{"response": "ok", "n": ' + b"9" * 10_000 + b"}",
    "trailing-data": b'{"response": "ok"} trailing',
    "json-string": b'"just a string"',
}


async def test_a_body_built_to_break_the_parser_is_unexpected(middleware: MiddlewareDouble) -> None:
    started = time.monotonic()
    seen = await outcomes(middleware, {name: Respond(body=body) for name, body in PARSER_BREAKERS.items()})
    assert seen == dict.fromkeys(PARSER_BREAKERS, "error_unexpected_answer")
    assert time.monotonic() - started < 5


async def test_a_strange_but_usable_body_is_an_answer(middleware: MiddlewareDouble) -> None:
    surrogates = (LIMIT - 20) // 6
    cases = {  # case -> (body, the Reply it gives)
        "duplicate-key-last-wins": (b'{"response": "first", "response": "last"}', Reply("last", None)),
        "non-finite-extras": (b'{"response": "ok", "score": NaN, "big": 1e999999, "small": -Infinity}',
                              Reply("ok", None)),
        "response-at-the-limit": (b'{"response": "' + b"x" * (LIMIT - 20) + b'"}', Reply("x" * (LIMIT - 20), None)),
        "limit-full-of-surrogates": (b'{"response": "' + b"\\ud800" * surrogates + b'"}',
                                     Reply("\ufffd" * surrogates, None)),
    }
    seen = await outcomes(middleware, {name: Respond(body=body) for name, (body, _) in cases.items()})
    assert seen == {name: reply for name, (_, reply) in cases.items()}
