"""The client for the brand's AI middleware: one pooled HTTP client per process.

Contract (docs/middleware-contract.md in brandbot): `POST {"message", "history"}` with the
shared secret in the brand's auth header; a 200 answers `{"response": str, "category": str|null}`.
Every way this can go wrong becomes one typed MiddlewareError, so the chat can tell the
customer what happened and carry on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import httpx

from .history import Turn

# httpx logs every request URL at INFO; the URL is the operator's business, not the log's.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class Reply:
    """A usable answer from the middleware."""

    response: str
    category: str | None


class MiddlewareError(Exception):
    """The middleware gave no usable answer. `text_id` names the brand text to show the customer.

    The message is for the operator's log: it never holds the secret or the customer's words.
    """

    text_id: ClassVar[str] = "error_service_unavailable"


class MiddlewareStatusError(MiddlewareError):
    """The middleware answered with an HTTP error status."""

    text_id = "error_service_unavailable"

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"middleware answered HTTP {status}")


class MiddlewareTimeout(MiddlewareError):
    """No complete answer within the request timeout."""

    text_id = "error_timeout"


class MiddlewareUnreachable(MiddlewareError):
    """The connection could not be made or broke before the answer was complete."""

    text_id = "error_connection"


class UnexpectedAnswer(MiddlewareError):
    """A 200 whose body is not the contract's JSON object with a string `response`."""

    text_id = "error_unexpected_answer"


class MiddlewareClient:
    """Sends one message and its history to the middleware and returns a Reply or raises.

    Holds one httpx.AsyncClient for the life of the process, so connections are pooled and
    reused instead of opened per message.
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
        self._url = url
        self._timeout_seconds = timeout_seconds
        self._max_response_bytes = max_response_bytes
        self._http = httpx.AsyncClient(
            headers={auth_header: secret, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
            transport=transport,
            follow_redirects=False,
        )

    async def ask(self, message: str, history: Sequence[Turn]) -> Reply:
        """POST the message; the whole exchange, body included, must finish within the timeout."""
        payload = {"message": message, "history": list(history)}
        try:
            async with asyncio.timeout(self._timeout_seconds):
                async with self._http.stream("POST", self._url, json=payload) as response:
                    if response.status_code != 200:
                        raise MiddlewareStatusError(response.status_code)
                    body = await self._read_body(response)
        except TimeoutError:
            raise MiddlewareTimeout(f"no complete answer within {self._timeout_seconds:g} s") from None
        except httpx.TimeoutException:
            raise MiddlewareTimeout(f"no complete answer within {self._timeout_seconds:g} s") from None
        except httpx.TransportError as error:
            raise MiddlewareUnreachable(f"connection failed: {type(error).__name__}") from None
        return parse_reply(body)

    async def _read_body(self, response: httpx.Response) -> bytes:
        """Read the body, refusing one larger than the configured bound."""
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max_response_bytes:
            raise UnexpectedAnswer(f"answer of {declared} bytes is over the {self._max_response_bytes}-byte limit")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self._max_response_bytes:
                raise UnexpectedAnswer(f"answer is over the {self._max_response_bytes}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the pooled connections (at application shutdown)."""
        await self._http.aclose()


def parse_reply(body: bytes) -> Reply:
    """Check a 200 body against the contract: a JSON object with a string `response`."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise UnexpectedAnswer(f"answer is not JSON ({len(body)} bytes)") from None
    if not isinstance(data, dict):
        raise UnexpectedAnswer(f"answer is JSON {type(data).__name__}, not an object")
    response = data.get("response")
    if not isinstance(response, str):
        raise UnexpectedAnswer("answer has no string 'response'")
    category = data.get("category")
    if category is not None and not isinstance(category, str):
        raise UnexpectedAnswer("answer's 'category' is not a string")
    return Reply(response=response, category=category)
