"""An httpx transport on aiohttp: httpx's API, aiohttp's connection pool and C HTTP parser.

Under load, httpx's default transport spends most of its time in httpcore's pure-Python
connection pool, which checks every pooled connection (a system call each) on every request;
measured with py-spy at 50 concurrent chats, that was about half of the bot process's CPU.
aiohttp keeps idle connections in a per-host queue and parses HTTP in C. The library
`httpx-aiohttp` does the same adaptation but maps refused connections to httpx.ConnectTimeout,
which would tell customers "Timeout" for a connection error, so this module maps aiohttp's
errors onto the httpx classes the client's error taxonomy relies on.

The transport hands httpx the body exactly as it came off the wire, compression included, as
every httpx transport does (letting aiohttp decompress too made httpx decode it a second time).
The client decodes it with `body_decoder`, whose decoders stop after a given number of output
bytes: a compression bomb is refused after at most that many bytes, whatever one chunk holds.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Protocol

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

try:  # brotli is optional: without it (or an old one) the bot does not ask for br
    import brotli
except ImportError:  # pragma: no cover - brotli is in requirements.txt
    brotli = None


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
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
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
            # aiohttp keeps a reason's invalid UTF-8 as surrogates: only ASCII goes on
            extensions={"http_version": b"HTTP/1.1",
                        "reason_phrase": (response.reason or "").encode("ascii", "replace")},
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



# Content codings ------------------------------------------------------------------------------

_MAX_GZIP_MEMBERS = 16  # RFC 1952 allows several members; servers send one
# brotli before 1.2 cannot stop its output at a bound, so it is used only from 1.2 on
_BROTLI = brotli is not None and hasattr(brotli.Decompressor, "can_accept_more_data")
ACCEPT_ENCODING = "gzip, deflate, br" if _BROTLI else "gzip, deflate"


class UndecodableBody(ValueError):
    """The body's Content-Encoding is not one the bot asked for, or the body does not decode."""


class BodyDecoder(Protocol):
    """Decodes a body chunk by chunk, never making much more output than it is asked for (or its input)."""

    def decode(self, data: bytes, max_length: int) -> bytes:
        """Decode `data` (after what is left over); stop at about `max_length` bytes of output.

        It returns less than `max_length` only when all the input is used, so a caller that
        asks for one byte more than it accepts knows the body is too large as soon as it has it.
        """

    def finish(self) -> None:
        """Refuse a coded stream that did not end where the body ended."""


class _Identity:
    def decode(self, data: bytes, max_length: int) -> bytes:
        return data

    def finish(self) -> None:
        return None


class _Zlib:
    """gzip (several members allowed) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, *, gzip: bool) -> None:
        self._gzip = gzip
        self._members = 0
        self._pending = b""  # input not yet given to a decompressor
        self._drain = False
        self._inflate = self._next_member() if gzip else None

    def _next_member(self) -> zlib._Decompress:
        self._members += 1
        if self._members > _MAX_GZIP_MEMBERS:
            raise UndecodableBody(f"a gzip body of more than {_MAX_GZIP_MEMBERS} members")
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def decode(self, data: bytes, max_length: int) -> bytes:
        pending, self._pending = self._pending + data, b""
        if self._inflate is None:  # deflate: the first two bytes tell a zlib header from raw deflate
            if len(pending) < 2:
                self._pending = pending
                return b""
            zlib_header = pending[0] & 0x0F == 8 and (pending[0] << 8 | pending[1]) % 31 == 0
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        out = bytearray()
        drain = self._drain  # the last call stopped at its bound: zlib may hold output without input
        try:
            while len(out) < max_length:
                if self._inflate.eof:
                    if not pending:
                        break
                    if not self._gzip:
                        raise UndecodableBody("data after the end of the deflate stream")
                    self._inflate = self._next_member()
                elif not pending and not self._inflate.unconsumed_tail and not drain:
                    break
                wanted = max_length - len(out)
                made = self._inflate.decompress(self._inflate.unconsumed_tail + pending, wanted)
                out += made
                drain = len(made) == wanted
                pending = self._inflate.unused_data if self._inflate.eof else b""
        except zlib.error as error:
            raise UndecodableBody(f"not valid {'gzip' if self._gzip else 'deflate'} data ({error})") from None
        self._pending, self._drain = pending, drain
        return bytes(out)

    def finish(self) -> None:
        if self._inflate is None or not self._inflate.eof or self._pending:
            raise UndecodableBody("the compressed body ended early")


class _Brotli:
    """br, with brotli's own output bound (brotli 1.2 and later; it may pass the bound by up to 32 KiB)."""

    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()
        self._pending = b""
        self._drain = False

    def decode(self, data: bytes, max_length: int) -> bytes:
        pending, self._pending = self._pending + data, b""
        out = bytearray()
        drain = self._drain  # the last call stopped at its bound: more output may wait without input
        try:
            while len(out) < max_length:
                ready = self._decompressor.can_accept_more_data()  # else it wants empty input first
                if pending and ready:
                    chunk, pending = pending, b""
                elif drain or not ready:
                    chunk = b""
                else:
                    break
                wanted = max_length - len(out)
                made = self._decompressor.process(chunk, output_buffer_limit=wanted)
                if not made and not chunk:
                    break
                out += made
                drain = len(made) >= wanted
        except brotli.error as error:
            raise UndecodableBody(f"not valid br data ({error})") from None
        self._pending, self._drain = pending, drain
        return bytes(out)

    def finish(self) -> None:
        if not self._decompressor.is_finished() or self._pending:
            raise UndecodableBody("the compressed body ended early")


def body_decoder(content_encoding: str | None) -> BodyDecoder:
    """The decoder for a response's Content-Encoding, or UndecodableBody for one the bot never asks for."""
    codings = [token for token in (part.strip().lower() for part in (content_encoding or "").split(","))
               if token and token != "identity"]
    if not codings:
        return _Identity()
    if len(codings) > 1:
        raise UndecodableBody("more than one content coding")
    if codings[0] in ("gzip", "x-gzip"):
        return _Zlib(gzip=True)
    if codings[0] == "deflate":
        return _Zlib(gzip=False)
    if codings[0] == "br" and _BROTLI:
        return _Brotli()
    raise UndecodableBody(f"content coding {codings[0][:40]!r}, which the bot does not ask for")
