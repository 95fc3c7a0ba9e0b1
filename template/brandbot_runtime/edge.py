"""Protections brandbot adds around Chainlit's web server, installed once when app.py is imported.

Chainlit 2.12 accepts a socket from any website, sends no security headers, reads a whole
request body before refusing it and parses socket frames of up to 1 MB; its header sign-in cannot
set a cookie, which a stable visitor identity needs (identity_cookies.py). These gaps are closed
here, at the edge, by ASGI layers on Chainlit's own app (`chainlit.server.app`), so every route
(the page, `/project/*`, the socket.io mount, `/public/*`) passes through them, and by a bound on
Chainlit's socket.io server. app.py imports this module before the server starts, which is when
Starlette still accepts middleware. One more gap is not the web server's: Chainlit deletes its
upload folder `.files` at shutdown, which fails where that folder is a mount (a Kubernetes emptyDir
on a read-only root filesystem), so every pod stop ended in a traceback and exit code 143.
"""

from __future__ import annotations

import errno
import logging
import shutil
import types
from pathlib import Path
from typing import Any

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
    _keep_a_mounted_files_folder()
    _installed = True


def remove_tree(path: str | Path, *args: Any, **kwargs: Any) -> None:
    """shutil.rmtree, except that a folder that cannot go itself (a mount point, a read-only parent)
    is left in place once emptied: what Chainlit wants at shutdown is its uploads gone."""
    try:
        shutil.rmtree(path, *args, **kwargs)
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EBUSY) or any(Path(path).iterdir()):
            raise
        logging.getLogger("brandbot").debug("emptied %s; the folder itself stays (a mount)", path)


def _keep_a_mounted_files_folder() -> None:
    """Give chainlit.server a shutil whose rmtree empties a mounted `.files` instead of failing on it."""
    import chainlit.server

    safe = types.SimpleNamespace(**{name: getattr(shutil, name) for name in dir(shutil) if not name.startswith("__")})
    safe.rmtree = remove_tree
    chainlit.server.shutil = safe  # type: ignore[assignment]  # that module uses shutil for this one call


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
