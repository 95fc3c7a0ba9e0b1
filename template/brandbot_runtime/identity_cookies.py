"""The cookies behind identity.py, set at the edge because Chainlit's header-auth callback can only
read a request, never answer with a cookie.

- `POST /auth/header` (the page signing in): a browser without a valid visitor cookie gets a new
  one, on the response and, so the callback sees it at once, on the request itself. It is HttpOnly,
  signed and lives VISITOR_COOKIE_DAYS, so the same browser is the same visitor until it clears
  its cookies, and sees its past conversations.
- `GET <any page>?customer_token=...` (a link from the brand's site that names the customer): the
  token is moved into a short-lived HttpOnly cookie and the browser sent to the same address
  without it (303), so the token leaves the address bar, the history and any Referer. Chainlit's own
  sign-in cookie is cleared on the way, so the page signs in again and the callback verifies the
  token (identity.user_for); a refused token leaves an anonymous visitor.

Cookie attributes follow Chainlit's CHAINLIT_COOKIE_SAMESITE (lax by default; none, for a widget on
another site, adds Secure), like its own cookie.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from . import identity

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

VISITOR_COOKIE_DAYS = 400  # the longest lifetime browsers grant a cookie
CUSTOMER_COOKIE_SECONDS = 300  # long enough for the page to load and sign in


def cookie_header(name: str, value: str, max_age: int) -> bytes:
    """One Set-Cookie value with the attributes Chainlit gives its own cookie."""
    samesite = os.environ.get("CHAINLIT_COOKIE_SAMESITE", "lax").lower()
    samesite = samesite if samesite in ("lax", "strict", "none") else "lax"
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", f"SameSite={samesite.capitalize()}"]
    if samesite == "none":
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


class IdentityCookies:
    """The ASGI layer described in the module docstring."""

    def __init__(self, app: Any, *, prefix: str = "") -> None:
        self.app = app
        self.sign_in_path = f"{prefix}/auth/header"

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET" and identity.CUSTOMER_QUERY.encode() in scope.get("query_string", b""):
            if await self._move_token_to_cookie(scope, send):
                return
        if scope["path"] == self.sign_in_path and scope["method"] == "POST":
            await self._sign_in(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _move_token_to_cookie(self, scope: Scope, send: Any) -> bool:
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        tokens = [value for name, value in pairs if name == identity.CUSTOMER_QUERY]
        if not tokens:
            return False
        token = tokens[-1]
        rest = urlencode([(name, value) for name, value in pairs if name != identity.CUSTOMER_QUERY])
        location = scope["path"] + (f"?{rest}" if rest else "")
        headers = [(b"location", location.encode("latin-1", "replace")), (b"referrer-policy", b"no-referrer"),
                   (b"cache-control", b"no-store"), (b"content-length", b"0")]
        if token and len(token) <= identity.MAX_TOKEN_BYTES and _cookie_safe(token):
            headers.append((b"set-cookie", cookie_header(identity.CUSTOMER_COOKIE, token, CUSTOMER_COOKIE_SECONDS)))
        headers.append((b"set-cookie", cookie_header(_chainlit_cookie_name(), "", 0)))  # sign in again
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return True

    async def _sign_in(self, scope: Scope, receive: Any, send: Any) -> None:
        cookies = _request_cookies(scope)
        if identity.visitor_from_cookie(cookies.get(identity.VISITOR_COOKIE)) is not None:
            await self.app(scope, receive, send)
            return
        value = identity.new_visitor_cookie()
        kept = [(name, header) for name, header in scope.get("headers", []) if name.lower() != b"cookie"]
        cookies[identity.VISITOR_COOKIE] = value
        joined = "; ".join(f"{name}={cookie}" for name, cookie in cookies.items())
        scope = dict(scope, headers=[*kept, (b"cookie", joined.encode("latin-1", "replace"))])
        set_cookie = cookie_header(identity.VISITOR_COOKIE, value, VISITOR_COOKIE_DAYS * 86_400)

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), (b"set-cookie", set_cookie)])
            await send(message)

        await self.app(scope, receive, with_cookie)


def _request_cookies(scope: Scope) -> dict[str, str]:
    header = "; ".join(value.decode("latin-1") for name, value in scope.get("headers", []) if name.lower() == b"cookie")
    return identity.parse_cookies(header)


def _cookie_safe(value: str) -> bool:
    """A JWT's alphabet: base64url and dots; nothing that could end the cookie or start another."""
    return all(c.isascii() and (c.isalnum() or c in "-_.") for c in value)


def _chainlit_cookie_name() -> str:
    return os.environ.get("CHAINLIT_AUTH_COOKIE_NAME", "access_token")


def install(app: Any) -> None:
    """Put the layer on Chainlit's app (edge.install)."""
    from chainlit.config import config

    app.add_middleware(IdentityCookies, prefix=config.run.root_path)
