"""Protections brandbot adds around Chainlit's web server, installed once when app.py is imported.

Chainlit 2.12 accepts a socket from any website, sends no security headers, reads a whole
request body before refusing it and parses socket frames of up to 1 MB; its header sign-in cannot
set a cookie, which a stable visitor identity needs (identity_cookies.py). These gaps are closed
here, at the edge, by ASGI layers on Chainlit's own app (`chainlit.server.app`), so every route
(the page, `/project/*`, the socket.io mount, `/public/*`) passes through them, and by a bound on
Chainlit's socket.io server. app.py imports this module before the server starts, which is when
Starlette still accepts middleware.
"""

from __future__ import annotations

_installed = False


def install() -> None:
    """Wrap Chainlit's server in brandbot's protections (idempotent)."""
    global _installed
    if _installed:
        return
    from chainlit.server import app  # each protection below adds itself to this app

    from . import identity, identity_cookies, request_guard, security_headers, widget_assets

    identity.install_auth_secret()  # before Chainlit checks for it, once app.py is imported
    widget_assets.install(app)  # the website widget's script without its third-party font request
    identity_cookies.install(app)  # inner to the guard: only requests it let through get an identity
    request_guard.install(app)  # origins, body limits, socket events; added first, so the headers wrap its refusals
    security_headers.install(app)
    _bound_socket_frames()
    _installed = True


def _bound_socket_frames() -> None:
    """Refuse socket frames far larger than any message the bot would answer, before they are parsed.

    Engine.IO accepts 1 MB frames by default; a message is refused above MAX_MESSAGE_CHARS anyway,
    but only after Chainlit has decoded it into objects (and kept it), and a few hundred such
    messages left the process's heap about 1 GB larger (docs/reliability.md).
    """
    from chainlit.server import sio

    from .settings import ConfigurationError, Settings, current_settings, socket_frame_bytes

    settings = current_settings()
    characters = (Settings.model_fields["max_message_chars"].default if isinstance(settings, ConfigurationError)
                  else settings.max_message_chars)
    sio.eio.max_http_buffer_size = socket_frame_bytes(characters)
