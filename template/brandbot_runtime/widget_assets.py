"""Chainlit's website widget script, served without its one request to a third party.

The widget (`/copilot/index.js`, which public/embed.js loads onto the brand's pages) adds a
stylesheet from fonts.googleapis.com whenever the theme names no font of its own: every visitor
of the brand's site would then tell Google they opened the chat. This layer serves the same
script with that address replaced by an empty inline stylesheet (the widget then uses the page's
system font stack), with a UTF-8 charset (Chainlit sends none, so a host page in another encoding
would break the script) and gzip for clients that take it, since the script is 8.6 MB. The
patched bytes are made once per process, off the event loop.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]

GOOGLE_FONTS = b"https://fonts.googleapis.com/css2?family=Inter:wght@400;500;700&display=swap"
EMPTY_STYLESHEET = b"data:text/css,"


def patched(script: bytes) -> bytes:
    """The widget script without its third-party stylesheet (unchanged if Chainlit changes the address)."""
    return script.replace(GOOGLE_FONTS, EMPTY_STYLESHEET)


class WidgetAssets:
    """The ASGI layer described in the module docstring."""

    def __init__(self, app: Any, *, script: Path, prefix: str = "") -> None:
        self.app = app
        self.script = script
        self.path = f"{prefix}/copilot/index.js"
        self._bodies: tuple[bytes, bytes] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        plain, compressed = await self._load()
        accepts = b"gzip" in dict(scope.get("headers", [])).get(b"accept-encoding", b"")
        body = compressed if accepts else plain
        headers = [(b"content-type", b"text/javascript; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"public, max-age=3600"), (b"vary", b"Accept-Encoding")]
        if accepts:
            headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _load(self) -> tuple[bytes, bytes]:
        async with self._lock:
            if self._bodies is None:
                self._bodies = await asyncio.to_thread(self._read)
        return self._bodies

    def _read(self) -> tuple[bytes, bytes]:
        plain = patched(self.script.read_bytes())
        return plain, gzip.compress(plain, compresslevel=6, mtime=0)


def install(app: Any) -> None:
    """Put the layer on Chainlit's app (edge.install), in front of Chainlit's own copilot route."""
    from chainlit.config import config
    from chainlit.server import copilot_build_dir

    app.add_middleware(WidgetAssets, script=Path(copilot_build_dir) / "index.js", prefix=config.run.root_path)
