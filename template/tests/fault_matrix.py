"""Every way a middleware can fail, what the customer must see and what the log must say.

docs/reliability.md in brandbot shows this table; test_fault_matrix.py proves each row against
a real HTTP server on loopback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from .middleware_double import Action, Close, Hang, Request, Reset, Respond, Stream, json_reply, ndjson, sse

REFUSED = "refused"  # the URL points at a port nothing listens on
UNRESOLVABLE = "unresolvable"  # the URL's host name does not resolve


@dataclass(frozen=True)
class Fault:
    """One row: how the middleware misbehaves and what must follow."""

    name: str
    behave: Callable[[Request], Action] | str
    text_id: str
    logged: str
    level: int = logging.WARNING
    values: dict[str, str] = field(default_factory=dict)
    kept: str = ""  # a streamed answer's part the customer keeps, followed by `answer_cut_off`


def status(code: int, **headers: str) -> Callable[[Request], Action]:
    return lambda request: json_reply({"detail": "failure"}, status=code, headers=headers)


def body(raw: bytes, **kwargs: object) -> Callable[[Request], Action]:
    return lambda request: Respond(body=raw, **kwargs)  # type: ignore[arg-type]


def _in_two_minutes() -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)


TEN_MEGABYTES = json.dumps({"response": "x" * 10_000_000}).encode()

FAULTS: list[Fault] = [
    Fault("HTTP 400", status(400), "error_rejected", "HTTP 400 (the middleware refused this request)"),
    Fault("HTTP 401", status(401), "error_unavailable", "HTTP 401: the middleware refused the secret", logging.ERROR),
    Fault("HTTP 403", status(403), "error_unavailable", "HTTP 403: the middleware refused the secret", logging.ERROR),
    Fault("HTTP 404", status(404), "error_unavailable", "HTTP 404: no chat endpoint there", logging.ERROR),
    Fault("HTTP 429 with Retry-After: 30", status(429, **{"Retry-After": "30"}), "error_rate_limited_retry",
          "HTTP 429 (rate limited)", values={"seconds": "30"}),
    Fault("HTTP 429 with a Retry-After date", lambda request: json_reply({}, 429, {"Retry-After": _in_two_minutes()}),
          "error_rate_limited_retry", "HTTP 429 (rate limited)", values={"seconds": "120"}),
    Fault("HTTP 429 without Retry-After", status(429), "error_rate_limited", "HTTP 429 (rate limited)"),
    Fault("HTTP 500", status(500), "error_service_unavailable", "HTTP 500"),
    Fault("HTTP 502", status(502), "error_service_unavailable", "HTTP 502"),
    Fault("HTTP 503", status(503), "error_service_unavailable", "HTTP 503"),
    Fault("HTTP 504", status(504), "error_timeout", "HTTP 504 (the middleware's own upstream timed out)"),
    Fault("HTTP 302 redirect", status(302, Location="https://elsewhere.example/chat"), "error_unavailable",
          "HTTP 302: a redirect", logging.ERROR),
    Fault("HTTP 204, no content", lambda request: Respond(status=204), "error_unexpected_answer", "HTTP 204"),
    Fault("no answer before the timeout", lambda request: Hang(), "error_timeout", "no complete answer within"),
    Fault("a body that trickles past the timeout", body(b'{"response": "slow answer"}', trickle_interval=0.1),
          "error_timeout", "no complete answer within"),
    Fault("connection refused", REFUSED, "error_connection", "connection failed: ConnectError"),
    Fault("connection closed before answering", lambda request: Close(), "error_connection", "connection failed"),
    Fault("connection reset mid-response",
          lambda request: Reset(partial=b"HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\n{\"response\": \"par"),
          "error_connection", "connection failed"),
    Fault("DNS failure", UNRESOLVABLE, "error_connection", "host name could not be resolved (DNS)"),
    Fault("200 with invalid JSON", body(b"<html>Bad gateway</html>"), "error_unexpected_answer",
          "answer is not UTF-8 JSON (24 bytes)"),
    Fault("200 with an empty body", body(b""), "error_unexpected_answer", "answer is not UTF-8 JSON (0 bytes)"),
    Fault("200 with a JSON array", body(b'[{"response": "hi"}]'), "error_unexpected_answer",
          "answer is JSON list, not an object"),
    Fault("200 without 'response'", body(b'{"answer": "hi"}'), "error_unexpected_answer",
          "answer has no string 'response'"),
    Fault("200 with a non-string 'response'", body(b'{"response": ["hi"]}'), "error_unexpected_answer",
          "answer has no string 'response'"),
    Fault("200 with a non-string 'category'", body(b'{"response": "hi", "category": 7}'), "error_unexpected_answer",
          "answer's 'category' is not a string"),
    Fault("200 with a 10 MB body", body(TEN_MEGABYTES), "error_unexpected_answer", "over the 1000000-byte limit"),
    Fault("200 with bytes that are not UTF-8", body(b'{"response": "caf\xe9"}'), "error_unexpected_answer",
          "answer is not UTF-8 JSON"),
]


# ---- streamed answers (REQUEST_TIMEOUT_SECONDS=0.6 in the test) ----

BEGUN = "Your order left our warehouse "  # the deltas that arrive before the stream breaks
KEPT = "Your order left our warehouse"  # what of them is on screen: the complete words
_BEGINNING = [{"category": None}, {"delta": "Your order "}, {"delta": "left our "}, {"delta": "warehouse "}]


def stream(*tail: object, finish: bool = True, pauses: dict[int, float] | None = None,
           pieces: list[bytes] | None = None) -> Callable[[Request], Action]:
    """A streamed answer that begins normally, then goes on with `tail` (objects, or raw bytes)."""
    def behave(request: Request) -> Action:
        body = sse(*_BEGINNING) if pieces is None else list(pieces)
        body += [item if isinstance(item, bytes) else sse(item)[0] for item in tail]
        return Stream(body, finish=finish, pauses=pauses or {})
    return behave


HUGE_DELTA = {"delta": "lorem ipsum " * 8_000}  # 96 KB: eleven of them pass the 1 MB limit

STREAM_FAULTS: list[Fault] = [
    Fault("stream cut before the first delta", stream(pieces=sse({"category": None}), finish=False),
          "error_connection", "stream broke"),
    Fault("stream cut mid-answer", stream(finish=False), "error_connection", "stream broke", kept=KEPT),
    Fault("stream ends with no done event", stream(), "error_connection", "the stream ended before its done event",
          kept=KEPT),
    Fault("an error event mid-stream", stream({"error": "model overloaded"}), "error_service_unavailable",
          "the middleware ended its stream with an error", kept=KEPT),
    Fault("a malformed event mid-stream", stream(b"data: {not json\n\n"), "error_unexpected_answer",
          "stream breaks the contract: event 5", kept=KEPT),
    Fault("a malformed NDJSON line", lambda request: Stream([*ndjson(*_BEGINNING), b"[1, 2]\n"],
                                                           content_type="application/x-ndjson"),
          "error_unexpected_answer", "stream breaks the contract: line 5", kept=KEPT),
    Fault("a gap between events past the timeout", stream({"delta": "late"}, {"done": True}, pauses={4: 1.2}),
          "error_timeout", "no stream event for 0.6 s", kept=KEPT),
    Fault("a streamed answer past MAX_RESPONSE_BYTES", stream(*[HUGE_DELTA] * 11, {"done": True}),
          "error_unexpected_answer", "streamed answer is over the 1000000-byte limit", kept=KEPT),
    Fault("a category after deltas", stream({"category": "Billing"}, {"done": True}), "error_unexpected_answer",
          "a category after the answer began", kept=KEPT),
    Fault("200 text/event-stream with a JSON body",
          lambda request: Stream([b'{"response": "hello", "category": null}']),
          "error_unexpected_answer", "stream of 39 bytes without one event"),
]
