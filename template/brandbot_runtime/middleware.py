"""The client for the brand's AI middleware: one pooled HTTP client per process.

Contract (docs/middleware-contract.md in brandbot): `POST {"message", "history", "customer"}` with the
shared secret in the brand's auth header; a 200 answers `{"response": str, "category": str|null}`,
or streams the answer as server-sent events or NDJSON (stream_parser.py). Every way this can go
wrong becomes one typed MiddlewareError, so the chat can tell the customer what happened and
carry on.

Time limits: a JSON answer must be complete within REQUEST_TIMEOUT_SECONDS. A streamed answer must
send its headers and each next event within REQUEST_TIMEOUT_SECONDS (an idle timeout: a middleware
may take minutes as long as it keeps sending), and end within STREAM_MAX_SECONDS in all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .history import Turn
from .stream_parser import (
    CategoryEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    StreamEvent,
    StreamFormatError,
    StreamParser,
    stream_format,
)
from .text_safety import clean_text
from .transport import ACCEPT_ENCODING, AiohttpTransport, UndecodableBody, body_decoder


@dataclass(frozen=True, slots=True)
class Reply:
    """A usable answer from the middleware."""

    response: str
    category: str | None


class MiddlewareError(Exception):
    """The middleware gave no usable answer.

    `text_id` names the brand text the customer sees; `values` fill its placeholders; `level`
    is how loudly to log it (ERROR for problems only the operator can fix). The message is for
    the operator's log: it never holds the secret, the customer's words or the middleware's body.
    """

    text_id: str = "error_service_unavailable"
    level: int = logging.WARNING
    values: dict[str, str]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.values = {}


class MiddlewareStatusError(MiddlewareError):
    """The middleware answered with an HTTP status other than 200."""

    def __init__(self, status: int, retry_after: int | None = None) -> None:
        text_id, level, hint = _status_meaning(status)
        super().__init__(f"middleware answered HTTP {status}{hint}")
        self.status = status
        self.text_id = text_id
        self.level = level
        if status == 429 and retry_after is not None:
            self.text_id = "error_rate_limited_retry"
            self.values = {"seconds": str(retry_after)}


# status -> (text the customer sees, log level, what the operator should do)
_REJECTED = ("error_rejected", logging.WARNING, " (the middleware refused this request)")
_WRONG_SECRET = ("error_unavailable", logging.ERROR,
                 ": the middleware refused the secret; check BACKEND_API_SECRET and the brand's auth_header")
_STATUS_MEANING: dict[int, tuple[str, int, str]] = {
    400: _REJECTED,
    401: _WRONG_SECRET,
    403: _WRONG_SECRET,
    404: ("error_unavailable", logging.ERROR, ": no chat endpoint there; check BACKEND_API_URL"),
    422: _REJECTED,
    429: ("error_rate_limited", logging.WARNING, " (rate limited)"),
    500: ("error_service_unavailable", logging.WARNING, ""),
    504: ("error_timeout", logging.WARNING, " (the middleware's own upstream timed out)"),
}


def _status_meaning(status: int) -> tuple[str, int, str]:
    if status in _STATUS_MEANING:
        return _STATUS_MEANING[status]
    if 200 <= status < 300:
        return "error_unexpected_answer", logging.WARNING, ": the contract answers with 200"
    if 300 <= status < 400:
        return "error_unavailable", logging.ERROR, ": a redirect; set BACKEND_API_URL to the final address"
    return _STATUS_MEANING[500 if status >= 500 else 400]


class MiddlewareTimeout(MiddlewareError):
    """No complete answer within the request timeout."""

    text_id = "error_timeout"


class MiddlewareUnreachable(MiddlewareError):
    """The connection could not be made or broke before the answer was complete."""

    text_id = "error_connection"


class UnexpectedAnswer(MiddlewareError):
    """A 200 whose body is not the contract's JSON object with a string `response`, or a stream that
    breaks the contract's order or shapes, or an answer over MAX_RESPONSE_BYTES."""

    text_id = "error_unexpected_answer"


class MiddlewareStreamError(MiddlewareError):
    """The middleware ended its stream with `{"error": ...}`: it failed while answering."""

    text_id = "error_service_unavailable"


#: What the bot accepts: JSON, or the answer streamed (stream_parser.STREAM_MEDIA_TYPES).
ACCEPT = "application/json, text/event-stream, application/x-ndjson"


def retry_after_seconds(value: str | None, now: datetime | None = None) -> int | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), 1 to 3600."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²": str.isdigit accepts digits int() refuses
        seconds = int(value) if len(value) < 10 else 3600  # and no 5,000-digit int
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = math.ceil((when - (now or datetime.now(UTC))).total_seconds())
    return min(max(seconds, 1), 3600)


_JSON_CONTENT = {"Content-Type": "application/json"}


class MiddlewareClient:
    """Sends one message and its history to the middleware and returns a Reply or raises.

    Holds one httpx.AsyncClient for the life of the process, so connections are pooled and
    reused instead of opened per message; its transport is aiohttp's pool (see transport.py).
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        auth_header: str,
        timeout_seconds: float,
        max_response_bytes: int,
        stream_max_seconds: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = httpx.URL(url)
        self._timeout_seconds = timeout_seconds
        self._stream_max_seconds = stream_max_seconds
        self._max_response_bytes = max_response_bytes
        self._http = httpx.AsyncClient(
            headers={auth_header: secret, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport or AiohttpTransport(max_connections=200),
            follow_redirects=False,
        )

    async def ask(self, message: str, history: Sequence[Turn], customer: Mapping[str, Any] | None = None) -> Reply:
        """The whole answer at once, JSON or streamed: see `answer` for the parts as they come."""
        category: str | None = None
        text: list[str] = []
        async with aclosing(self.answer(message, history, customer)) as parts:
            async for batch in parts:
                for event in batch:
                    if isinstance(event, CategoryEvent | DoneEvent) and event.category is not None:
                        category = event.category
                    elif isinstance(event, DeltaEvent):
                        text.append(event.text)
        return Reply(response="".join(text), category=category)

    async def answer(self, message: str, history: Sequence[Turn],
                     customer: Mapping[str, Any] | None = None) -> AsyncIterator[list[StreamEvent]]:
        """POST the message and yield the answer's events as they arrive, a batch per read.

        A JSON answer is one batch: its category, its whole text as one delta, done. A streamed one
        ends with its DoneEvent; every failure, before or during the stream, raises a MiddlewareError
        (an `{"error"}` event too). `customer` is the contract's Customer object (identity.Customer.
        as_contract), sent when given. Use it with contextlib.aclosing, so that leaving early (the
        customer pressed stop) closes the connection at once.
        """
        request_body: dict[str, Any] = {"message": message, "history": list(history)}
        if customer is not None:
            request_body["customer"] = dict(customer)
        content = json.dumps(request_body, ensure_ascii=False).encode()
        request = self._http.build_request("POST", self._url, content=content, headers=_JSON_CONTENT)
        began = asyncio.get_running_loop().time()
        deadline, cap = began + self._timeout_seconds, began + self._stream_max_seconds
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._http.send(request, stream=True)
        except (TimeoutError, httpx.TimeoutException):
            raise MiddlewareTimeout(f"no complete answer within {self._timeout_seconds:g} s") from None
        except httpx.TransportError as error:
            raise MiddlewareUnreachable(f"connection failed: {_describe_transport_error(error)}") from None
        try:
            if response.status_code != 200:
                raise MiddlewareStatusError(response.status_code,
                                            retry_after_seconds(response.headers.get("retry-after")))
            kind = stream_format(response.headers.get("content-type"))
            if kind is None:
                reply = await self._json_answer(response, deadline)
                yield [CategoryEvent(reply.category), DeltaEvent(reply.response), DoneEvent(None)]
                return
            async for batch in self._streamed(response, kind, cap):
                yield batch
        finally:
            await response.aclose()

    async def _json_answer(self, response: httpx.Response, deadline: float) -> Reply:
        """The JSON answer's body, complete by the request's deadline."""
        try:
            async with asyncio.timeout_at(deadline):
                body = await self._read_body(response)
        except (TimeoutError, httpx.TimeoutException):
            raise MiddlewareTimeout(f"no complete answer within {self._timeout_seconds:g} s") from None
        except httpx.TransportError as error:
            raise MiddlewareUnreachable(f"connection failed: {_describe_transport_error(error)}") from None
        return parse_reply(body)

    async def _streamed(self, response: httpx.Response, kind: str, cap: float) -> AsyncIterator[list[StreamEvent]]:
        """Parse a streamed answer as it comes, within the idle timeout, the total cap and the byte limit.

        The idle timeout counts from the moment the next event is awaited: time the caller spends
        between batches (the specialist transition) is not the middleware's delay.
        """
        loop, limit, idle = asyncio.get_running_loop(), self._max_response_bytes, self._timeout_seconds
        parser = StreamParser(kind)
        received = decoded = 0
        seen = False  # any event yet
        assert isinstance(response.stream, httpx.AsyncByteStream)
        chunks = aiter(response.stream)
        try:
            decoder = body_decoder(response.headers.get("content-encoding"))
            while not parser.done:
                waiting_since = loop.time()
                batch: list[StreamEvent] = []
                while not batch:
                    until = min(waiting_since + idle, cap)
                    try:
                        async with asyncio.timeout_at(until):
                            chunk = await anext(chunks, None)
                    except TimeoutError:
                        if until == cap:
                            raise MiddlewareTimeout(f"stream still going after {self._stream_max_seconds:g} s "
                                                    "(STREAM_MAX_SECONDS)") from None
                        raise MiddlewareTimeout(f"no stream event for {idle:g} s") from None
                    if chunk is None:
                        decoder.finish()
                        batch = parser.close()
                        if not parser.done:
                            if not (seen or batch):  # e.g. a JSON body sent as text/event-stream
                                raise UnexpectedAnswer(f"a {kind} stream of {received} bytes without one event")
                            raise MiddlewareUnreachable("the stream ended before its done event")
                        break
                    received += len(chunk)
                    text = decoder.decode(chunk, limit + 1 - decoded) if received <= limit else b""
                    decoded += len(text)
                    if received > limit or decoded > limit:
                        raise UnexpectedAnswer(f"streamed answer is over the {limit}-byte limit")
                    try:
                        batch = parser.feed(text)
                    except StreamFormatError as error:
                        if error.events:
                            yield error.events  # what came before the bad event stays on screen
                        raise
                seen = True
                failure = next((event for event in batch if isinstance(event, ErrorEvent)), None)
                if failure is not None:
                    if arrived := batch[:batch.index(failure)]:
                        yield arrived  # what came before the error is the customer's to keep
                    raise MiddlewareStreamError(f"the middleware ended its stream with an error "
                                                f"({len(failure.message)} characters)")
                yield batch
        except StreamFormatError as error:
            raise UnexpectedAnswer(f"stream breaks the contract: {error}") from None
        except UndecodableBody as error:
            raise UnexpectedAnswer(f"stream cannot be decoded: {error}") from None
        except httpx.TimeoutException:
            raise MiddlewareTimeout(f"no stream event for {idle:g} s") from None
        except httpx.TransportError as error:
            raise MiddlewareUnreachable(f"stream broke: {_describe_transport_error(error)}") from None

    async def _read_body(self, response: httpx.Response) -> bytearray:
        """Read and decode the body, refusing one over the bound on the wire or once decoded.

        httpx would decode a compressed chunk whole, however far it expands; the bounded decoder
        makes at most one byte more than the limit, so a compression bomb costs about the limit.
        The raw bytes come from the response's stream itself, which httpx.MockTransport (in
        tests) has already read once and which can be read again.
        """
        limit = self._max_response_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise UnexpectedAnswer(f"answer of {declared} bytes is over the {limit}-byte limit")
        try:
            decoder = body_decoder(response.headers.get("content-encoding"))
            body = bytearray()
            received = 0
            assert isinstance(response.stream, httpx.AsyncByteStream)
            async for chunk in response.stream:
                received += len(chunk)
                if received <= limit:
                    body += decoder.decode(chunk, limit + 1 - len(body))
                if received > limit or len(body) > limit:
                    raise UnexpectedAnswer(
                        f"answer is over the {limit}-byte limit ({received} bytes received, {len(body)} decoded)")
            decoder.finish()
        except UndecodableBody as error:
            raise UnexpectedAnswer(f"answer cannot be decoded: {error}") from None
        return body

    async def aclose(self) -> None:
        """Close the pooled connections (at application shutdown)."""
        await self._http.aclose()


def _describe_transport_error(error: httpx.TransportError) -> str:
    """The kind of failure, without the URL or any request detail."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return "the middleware's host name could not be resolved (DNS); check BACKEND_API_URL"
        cause = cause.__cause__ or cause.__context__
    return type(error).__name__


def parse_reply(body: bytes | bytearray) -> Reply:
    """Check a 200 body against the contract: a JSON object with a string `response`.

    Any bytes at all give a Reply or an UnexpectedAnswer: nesting deeper than Python's
    recursion limit and integers longer than its digit limit are refused like any bad JSON.
    The texts are cleaned of lone surrogates (a JSON escape such as "\\ud800" makes one),
    so what enters the history and the screen can always be encoded again.
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise UnexpectedAnswer(f"answer is JSON nested too deeply ({len(body)} bytes)") from None
    except (UnicodeDecodeError, ValueError):
        raise UnexpectedAnswer(f"answer is not UTF-8 JSON ({len(body)} bytes)") from None
    if not isinstance(data, dict):
        raise UnexpectedAnswer(f"answer is JSON {type(data).__name__}, not an object")
    response = data.get("response")
    if not isinstance(response, str):
        raise UnexpectedAnswer("answer has no string 'response'")
    category = data.get("category")
    if category is not None and not isinstance(category, str):
        raise UnexpectedAnswer("answer's 'category' is not a string")
    return Reply(response=clean_text(response), category=None if category is None else clean_text(category))
