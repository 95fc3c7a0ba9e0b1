"""A scriptable AI middleware on loopback: a real TCP server speaking raw HTTP/1.1.

Raw sockets rather than a web framework, so a test can make it do what real middlewares do
when they break: hang, trickle, close or reset mid-answer, send bytes that are not JSON.
Each request is recorded; `behave` decides what happens to the next ones.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import brotli


def closed_port_url() -> str:
    """A chat URL on a loopback port nobody listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/chat"


@dataclass
class Request:
    """One request as the middleware received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Respond:
    """Answer with a status, headers and body, optionally after a delay, trickled out slowly, or chunked.

    `chunked` sends the body with Transfer-Encoding: chunked in pieces of that many bytes, so
    the client learns no length in advance (as behind a compressing proxy). Header values and
    the reason phrase are written as latin-1, so "\xff" puts the byte 0xFF on the wire.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle_interval: float = 0.0
    chunked: int = 0
    reason: str | None = None  # the status line's reason phrase, written as latin-1 bytes


@dataclass
class Hang:
    """Read the request and never answer."""


@dataclass
class Close:
    """Close the connection without answering, optionally after part of an answer."""

    partial: bytes = b""


@dataclass
class Reset:
    """Abort the connection with a TCP reset, optionally after part of an answer."""

    partial: bytes = b""


@dataclass
class Stream:
    """A 200 whose body is sent chunked, piece by piece, `interval` apart (plus `pauses[i]` before piece i).

    `finish=False` closes the connection after the last piece without ending the chunked body, as a
    middleware that dies mid-answer does. `sent_at` records when each piece left (loop time).
    """

    pieces: list[bytes]
    content_type: str = "text/event-stream"
    interval: float = 0.0
    pauses: dict[int, float] = field(default_factory=dict)
    finish: bool = True
    sent_at: list[float] = field(default_factory=list)


def sse(*objects: Any) -> list[bytes]:
    """Server-sent events, one per object, each `data: <json>` and a blank line."""
    return [b"data: " + json.dumps(item, ensure_ascii=False).encode() + b"\n\n" for item in objects]


def ndjson(*objects: Any) -> list[bytes]:
    """One JSON object per line."""
    return [json.dumps(item, ensure_ascii=False).encode() + b"\n" for item in objects]


def streamed(text: str, *, category: str | None = None, pieces: int = 8, form: str = "sse",
             interval: float = 0.0, **kwargs: Any) -> Stream:
    """`text` streamed in `pieces` deltas: the category first, then the deltas, then done."""
    size = max(1, -(-len(text) // pieces))
    objects: list[Any] = [{"category": category}]
    objects += [{"delta": text[start:start + size]} for start in range(0, len(text), size)]
    objects.append({"done": True})
    encode, content_type = (sse, "text/event-stream") if form == "sse" else (ndjson, "application/x-ndjson")
    return Stream(encode(*objects), content_type=content_type, interval=interval, **kwargs)


Action = Respond | Hang | Close | Reset | Stream
Behaviour = Callable[[Request], Action]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def json_reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None, **kwargs: Any) -> Respond:
    """A JSON answer, with any extra headers."""
    return Respond(status=status, body=json.dumps(payload).encode(),
                   headers={"Content-Type": "application/json", **(headers or {})}, **kwargs)


def compress(data: bytes, coding: str) -> bytes:
    """`data` in a content coding as servers send it: gzip, deflate (zlib-wrapped), raw-deflate, br."""
    if coding == "br":
        return brotli.compress(data)
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}[coding]
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


def compressed_reply(payload: Any, coding: str, **kwargs: Any) -> Respond:
    """A JSON answer compressed as a middleware behind nginx or GZipMiddleware sends it."""
    header = "deflate" if coding == "raw-deflate" else coding
    return Respond(body=compress(json.dumps(payload).encode(), coding),
                   headers={"Content-Type": "application/json", "Content-Encoding": header, "Vary": "Accept-Encoding"},
                   **kwargs)


def compression_bomb(coding: str, size: int) -> bytes:
    """A valid gzip, deflate or br body of `size` zero bytes (a multiple of 1 MiB when larger).

    Built a MiB at a time: for gzip and deflate one compressed MiB is repeated (a full flush
    makes every MiB compress alike), so a 1 GiB bomb takes a checksum pass, not a compression.
    """
    step = min(size, 1 << 20)
    assert size % step == 0
    zeros, count = bytes(step), size // step
    if coding == "br":
        packer = brotli.Compressor(quality=1)
        return b"".join(packer.process(zeros) for _ in range(count)) + packer.finish()
    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = (raw.compress(zeros) + raw.flush(zlib.Z_FULL_FLUSH)) * count + raw.flush()
    if coding == "gzip":
        crc = 0
        for _ in range(count):
            crc = zlib.crc32(zeros, crc)
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + stream + struct.pack("<II", crc, size & 0xFFFFFFFF)
    adler = 1
    for _ in range(count):
        adler = zlib.adler32(zeros, adler)
    return b"\x78\xda" + stream + struct.pack(">I", adler)


def echo(request: Request) -> Action:
    """The default behaviour: a general answer that repeats the message."""
    return json_reply({"response": f"You said: {request.json['message']}", "category": "General"})


class MiddlewareDouble:
    """Start with `await start()`, point the client at `url`, stop with `await stop()`."""

    def __init__(self, behave: Behaviour = echo) -> None:
        self.behave = behave
        self.requests: list[Request] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def start(self, port: int = 0) -> str:
        """Listen on loopback (a free port unless `port` is given); returns the chat URL."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/chat"
        return self.url

    async def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader, connection)
                if request is None:
                    return
                self.requests.append(request)
                if not await self._act(self.behave(request), writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _act(self, action: Action, writer: asyncio.StreamWriter) -> bool:
        """Carry out one action; False when the connection is finished."""
        if isinstance(action, Hang):
            await asyncio.Event().wait()
        if isinstance(action, Close | Reset):
            if action.partial:
                writer.write(action.partial)
                await writer.drain()
            if isinstance(action, Reset):
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if isinstance(action, Stream):
            return await _stream(action, writer)
        assert isinstance(action, Respond)
        if action.delay:
            await asyncio.sleep(action.delay)
        framing = "Transfer-Encoding: chunked" if action.chunked else f"Content-Length: {len(action.body)}"
        reason = _REASONS.get(action.status, "Status") if action.reason is None else action.reason
        head = [f"HTTP/1.1 {action.status} {reason}", framing]
        head += [f"{name}: {value}" for name, value in action.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if action.chunked:
            for start in range(0, len(action.body), action.chunked):
                piece = action.body[start:start + action.chunked]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        elif action.trickle_interval:
            for index in range(len(action.body)):
                writer.write(action.body[index:index + 1])
                await writer.drain()
                await asyncio.sleep(action.trickle_interval)
        else:
            writer.write(action.body)
        await writer.drain()
        return True


async def _stream(action: Stream, writer: asyncio.StreamWriter) -> bool:
    head = f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: {action.content_type}\r\n\r\n"
    writer.write(head.encode("latin-1"))
    await writer.drain()
    loop = asyncio.get_running_loop()
    for index, piece in enumerate(action.pieces):
        pause = action.pauses.get(index, 0.0) + (action.interval if index else 0.0)
        if pause:
            await asyncio.sleep(pause)
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
        action.sent_at.append(loop.time())
    if not action.finish:
        return False
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


async def _read_request(reader: asyncio.StreamReader, connection: int) -> Request | None:
    """Read one HTTP/1.1 request with a Content-Length body; None when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method=method, path=path, headers=headers, body=body, connection=connection)
