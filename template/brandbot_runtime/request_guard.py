"""The request edge: which web pages may talk to the bot, and how much any client may send.

One ASGI layer on Chainlit's app (`chainlit.server.app`), so every route passes through it: the
page, `/project/*`, `/public/*` and the socket.io mount (both its websocket and its polling
transport). In order it

1. refuses a browser request from a foreign web page (see `origin_allowed`): a websocket
   handshake is closed before Chainlit's `connect()` runs (the client sees HTTP 403), any other
   request gets 403 without reaching Chainlit, so no CORS header is ever sent to that page;
2. refuses `POST /project/file` while uploads are off (`[features.spontaneous_file_upload]`),
   before a byte is read or a `.files/<session>/` folder is made;
3. caps every request body at MAX_REQUEST_BYTES with Starlette's own body-limit middleware:
   a larger Content-Length gets 413 before the body is read, a chunked body is counted while it
   streams and cut at the limit (FastAPI's body parsing cooperates, so that too is a 413);
4. checks `POST /project/action` before Chainlit does: a body that is not an action, or that
   names a session this process does not have, gets a plain 400 or 404 and one WARNING line
   instead of a 500 with a traceback.

Chainlit's own CORS middleware stays (inside this layer) and only ever sees the bot's own
pages and the ALLOWED_ORIGINS list, which `install` hands to it in place of `allow_origins`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from .origins import DEFAULT_PORTS, normalize_origin

log = logging.getLogger("brandbot.edge")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What Chainlit's Action accepts as keyword arguments; anything else makes it raise (a 500).
_ACTION_KEYS = frozenset({"name", "payload", "label", "tooltip", "icon", "forId", "id"})


def origin_allowed(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """Whether a request carrying this Origin header may reach Chainlit.

    - No Origin header: allowed. Browsers send Origin with every request a foreign page could
      read or that changes something (every CORS request, every POST, every WebSocket handshake),
      so a request without one is the bot's own page loading itself (same-origin GET) or a
      client that is not a browser, such as the project's smoke test. Such a client carries no
      customer's cookies and could write any Origin it liked anyway: the check protects the
      customer's browser, not the server.
    - An Origin in ALLOWED_ORIGINS (normalized): allowed; the website-widget case.
    - Otherwise the bot's own pages only: the Origin's host[:port] must equal the Host header.
      The scheme is not compared, because a TLS-terminating proxy forwards https pages over
      plain http. Only Host is trusted, never X-Forwarded-Host: a browser cannot set Host (a
      forbidden header) but a page can add X-Forwarded-* to a request. A proxy must therefore
      pass the public Host through (nginx: `proxy_set_header Host $host`); one that rewrites it
      to the upstream's address needs the public origin in ALLOWED_ORIGINS.
    - `Origin: null` (sandboxed frames, file: pages, opaque redirects) is refused.
    """
    if origin is None:
        return True
    try:
        normalized = normalize_origin(origin)
    except ValueError:
        return False
    if normalized in allowed:
        return True
    return host is not None and _same_authority(normalized, host)


def _same_authority(origin: str, host: str) -> bool:
    """`origin`'s host and effective port against a Host header (whose scheme is unknown)."""
    scheme, _, authority = origin.partition("://")
    origin_parts = urlsplit(f"//{authority}")
    host_parts = urlsplit(f"//{host.strip().lower()}")
    try:
        host_port = host_parts.port
    except ValueError:
        return False
    if (not host_parts.hostname or host_parts.hostname != origin_parts.hostname or host_parts.path
            or host_parts.username is not None):
        return False
    if host_port is None:  # the client used its scheme's default port: so must the page
        return origin_parts.port is None
    return host_port == (origin_parts.port or DEFAULT_PORTS[scheme])


class RequestGuard:
    """The ASGI layer described in the module docstring; Chainlit specifics come in as callables."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Iterable[str], max_body_bytes: int, prefix: str = "",
                 uploads_enabled: Callable[[], bool], session_exists: Callable[[str], bool]) -> None:
        from starlette.middleware.body_limit import RequestBodyLimitMiddleware

        self.app = app
        self.allowed_origins = frozenset(allowed_origins)
        self.upload_path = f"{prefix}/project/file"
        self.action_path = f"{prefix}/project/action"
        self.uploads_enabled = uploads_enabled
        self.session_exists = session_exists
        self.limited = RequestBodyLimitMiddleware(self._checked, max_body_size=max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        origin = headers.get("origin")
        if not origin_allowed(origin, headers.get("host"), self.allowed_origins):
            log.warning("refused a %s to %.100r from a foreign web page (Origin %.80r)",
                        "socket" if scope["type"] == "websocket" else "request", scope["path"], origin)
            await _refuse(scope, receive, send, 403, "This origin may not use the bot")
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if scope["path"] == self.upload_path and scope["method"] == "POST" and not self.uploads_enabled():
            log.warning("refused an upload: file uploads are off")
            await _refuse(scope, receive, send, 403, "File upload is not enabled")
            return
        await self.limited(scope, receive, send)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Inside the body limit: the action check, then Chainlit."""
        if scope["path"] != self.action_path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        problem, status = _action_problem(body, self.session_exists)
        if problem:
            log.warning("refused an action request: %s", problem)
            await _refuse(scope, receive, send, status, "Session not found" if status == 404 else "Bad request")
            return
        await self.app(scope, _replay(body, receive), send)


def _action_problem(body: bytes, session_exists: Callable[[str], bool]) -> tuple[str, int]:
    """What is wrong with a `/project/action` body ("" when nothing), and the status to answer."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "the body is not JSON", 400
    if not isinstance(request, dict) or not isinstance(request.get("sessionId"), str):
        return "no sessionId", 400
    action = request.get("action")
    if (not isinstance(action, dict) or not isinstance(action.get("name"), str)
            or not isinstance(action.get("payload"), dict) or not _ACTION_KEYS.issuperset(action)):
        return "not an action", 400
    if not session_exists(request["sessionId"]):
        return "unknown session", 404
    return "", 200


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of repeated ones)."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the already-read body once, then the connection's own messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    """A plain refusal: an HTTP status with a JSON detail, or a websocket closed before its handshake."""
    if scope["type"] == "websocket":
        await receive()  # the websocket.connect event
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def install(app: Any) -> None:
    """Put the guard around Chainlit's app and the socket guard on its socket.io server.

    Reads ALLOWED_ORIGINS and MAX_REQUEST_BYTES now, once; with an invalid configuration (the bot
    then only answers with the configuration error) the defaults apply: own origin, default limit.
    """
    from chainlit.config import config
    from chainlit.server import sio
    from chainlit.session import WebsocketSession
    from starlette.middleware.cors import CORSMiddleware

    from . import socket_guard
    from .settings import ConfigurationError, Settings, current_settings

    settings = current_settings()
    if isinstance(settings, ConfigurationError):
        origins, limit = (), Settings.model_fields["max_request_bytes"].default
    else:
        origins, limit = settings.allowed_origins, settings.max_request_bytes
    for middleware in app.user_middleware:
        if middleware.cls is CORSMiddleware:  # answer CORS to the listed sites only, never "*"
            middleware.kwargs["allow_origins"] = list(origins)

    def uploads_enabled() -> bool:
        upload = config.features.spontaneous_file_upload
        return upload is not None and bool(upload.enabled)

    app.add_middleware(RequestGuard, allowed_origins=origins, max_body_bytes=limit, prefix=config.run.root_path,
                       uploads_enabled=uploads_enabled,
                       session_exists=lambda session_id: WebsocketSession.get_by_id(session_id) is not None)
    socket_guard.install(sio)
