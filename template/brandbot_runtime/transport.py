"""An httpx transport on aiohttp: httpx's API, aiohttp's connection pool and C HTTP parser.

Under load, httpx's default transport spends most of its time in httpcore's pure-Python
connection pool, which checks every pooled connection (a system call each) on every request;
measured with py-spy at 50 concurrent chats, that was about half of the bot process's CPU.
aiohttp keeps idle connections in a per-host queue and parses HTTP in C. The library
`httpx-aiohttp` does the same adaptation but maps refused connections to httpx.ConnectTimeout,
which would tell customers "Timeout" for a connection error, so this module maps aiohttp's
errors onto the httpx classes the client's error taxonomy relies on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL


class _Body(httpx.AsyncByteStream):
    """The response body, read from aiohttp as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError) as error:
            raise httpx.ReadError(f"{type(error).__name__} while reading the answer") from error

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with one pooled aiohttp session (created in the running loop).

    Idle connections are dropped after `keepalive_seconds`, shorter than common servers' own
    idle timeouts (uvicorn and Node close after 5 s), so the bot does not pick a connection the
    server is closing: a POST is never retried automatically (RFC 9112, section 9.3.1).
    """

    def __init__(self, *, max_connections: int = 200, keepalive_seconds: float = 4.0) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        # The bot sends every request to one URL with one timeout: parse and build those once.
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_connections,
                                             keepalive_timeout=self._keepalive_seconds)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                                  cookie_jar=aiohttp.DummyCookieJar(),
                                                  skip_auto_headers=("User-Agent",))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = CIMultiDict((name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw)
        try:
            response = await self._client_session().request(
                request.method, self._url(request), headers=headers, data=request.content or None,
                allow_redirects=False, timeout=self._timeout(request),
            )
        except aiohttp.ClientConnectorDNSError as error:
            raise httpx.ConnectError(str(error)) from error.os_error
        except aiohttp.ClientConnectorError as error:
            raise httpx.ConnectError(str(error)) from error
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError) as error:
            raise httpx.RemoteProtocolError(f"{type(error).__name__} before the answer") from error
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise httpx.ReadTimeout("no answer in time") from error
        except aiohttp.ClientResponseError as error:
            raise httpx.RemoteProtocolError(f"invalid HTTP answer: {error.message}") from error
        return httpx.Response(
            status_code=response.status,
            headers=[(name, value) for name, value in response.raw_headers],
            stream=_Body(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    def _url(self, request: httpx.Request) -> URL:
        text = str(request.url)
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) > 64:
                self._urls.clear()
            url = self._urls[text] = URL(text, encoded=True)
        return url

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        phases = request.extensions.get("timeout", {})
        key = (phases.get("connect"), phases.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1])
        return timeout

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

