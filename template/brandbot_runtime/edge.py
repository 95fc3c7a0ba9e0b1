"""Protections brandbot adds around Chainlit's web server, installed once when app.py is imported.

Chainlit 2.12 accepts a socket from any website, sends no security headers and reads a whole
request body before refusing it. These gaps are closed here, at the edge, by ASGI layers on
Chainlit's own app (`chainlit.server.app`), so every route (the page, `/project/*`, the
socket.io mount, `/public/*`) passes through them. app.py imports this module before the server
starts, which is when Starlette still accepts middleware.
"""

from __future__ import annotations

_installed = False


def install() -> None:
    """Wrap Chainlit's server in brandbot's protections (idempotent)."""
    global _installed
    if _installed:
        return
    from chainlit.server import app  # each protection below adds itself to this app

    from . import request_guard, security_headers

    request_guard.install(app)  # origins, body limits, socket events; added first, so the headers wrap its refusals
    security_headers.install(app)
    _installed = True
