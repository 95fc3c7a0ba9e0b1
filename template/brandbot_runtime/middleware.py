"""The client for the brand's AI middleware: one pooled HTTP client per process.

Contract (docs/middleware-contract.md in brandbot): `POST {"message", "history", "customer"}` with the
shared secret in the brand's auth header; a 200 answers `{"response": str, "category": str|null}`.
Every way this can go wrong becomes one typed MiddlewareError, so the chat can tell the
customer what happened and carry on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .history import Turn
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
    """A 200 whose body is not the contract's JSON object with a string `response`."""

    text_id = "error_unexpected_answer"


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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = httpx.URL(url)
        self._timeout_seconds = timeout_seconds
        self._max_response_bytes = max_response_bytes
        self._http = httpx.AsyncClient(
            headers={auth_header: secret, "Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport or AiohttpTransport(max_connections=200),
            follow_redirects=False,
        )

    async def ask(self, message: str, history: Sequence[Turn], customer: Mapping[str, Any] | None = None) -> Reply:
        """POST the message; the whole exchange, body included, must finish within the timeout.

        `customer` is the contract's Customer object (identity.Customer.as_contract), sent when given."""
        request_body: dict[str, Any] = {"message": message, "history": list(history)}
        if customer is not None:
            request_body["customer"] = dict(customer)
        content = json.dumps(request_body, ensure_ascii=False).encode()
        request = self._http.build_request("POST", self._url, content=content, headers=_JSON_CONTENT)
        try:
            async with asyncio.timeout(self._timeout_seconds):
                response = await self._http.send(request, stream=True)
                try:
                    if response.status_code != 200:
                        raise MiddlewareStatusError(
                            response.status_code, retry_after_seconds(response.headers.get("retry-after")))
                    body = await self._read_body(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            raise MiddlewareTimeout(f"no complete answer within {self._timeout_seconds:g} s") from None
        except httpx.TransportError as error:
            raise MiddlewareUnreachable(f"connection failed: {_describe_transport_error(error)}") from None
        return parse_reply(body)

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
