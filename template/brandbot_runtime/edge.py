"""Protections brandbot adds around Chainlit's web server, installed once when app.py is imported.

Chainlit 2.12 accepts a socket from any website, sends no security headers, reads a whole
request body before refusing it and parses socket frames of up to 1 MB; its header sign-in cannot
set a cookie, which a stable visitor identity needs (identity_cookies.py). These gaps are closed
here, at the edge, by ASGI layers on Chainlit's own app (`chainlit.server.app`), so every route
(the page, `/project/*`, the socket.io mount, `/public/*`) passes through them, and by a bound on
Chainlit's socket.io server. app.py imports this module before the server starts, which is when
Starlette still accepts middleware. One more gap is not the web server's: Chainlit deletes its
upload folder `.files` at shutdown, which fails where that folder is a mount (a Kubernetes emptyDir
on a read-only root filesystem), so every pod stop ended in a traceback and exit code 143. And every
`Message` and `Step` Chainlit makes sleeps a millisecond, blocking the server's only event loop
(see remove_blocking_sleeps).
"""

from __future__ import annotations

import errno
import importlib
import logging
import shutil
import threading
import time
import types
from datetime import UTC, datetime, timedelta
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
    remove_blocking_sleeps()
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


class _StrictlyLater:
    """Chainlit's utc_now, except that it never gives the same stamp twice: a stamp no later than the
    last one given becomes a microsecond after it. Always with microseconds, so the stamps sort as text
    too (Chainlit's own drops them when they are zero, and "12:00:00Z" sorts after "12:00:00.1Z")."""

    def __init__(self) -> None:
        self._last = datetime.min
        self._lock = threading.Lock()  # a step may be made in a worker thread (cl.make_async)

    def __call__(self) -> str:
        with self._lock:
            now = datetime.now(UTC).replace(tzinfo=None)
            self._last = now if now > self._last else self._last + timedelta(microseconds=1)
            return self._last.isoformat(timespec="microseconds") + "Z"


utc_now = _StrictlyLater()


def remove_blocking_sleeps() -> None:
    """Chainlit 2.12's Message and Step constructors call time.sleep(0.001), so that two made in a row
    get different creation stamps (the page and a resumed thread order steps by them). That sleep
    holds the server's one event loop: three such objects per answer kept every customer waiting
    about 3 ms per answer, most of a loaded server's time (docs/performance.md). The two modules get
    a `time` whose sleep returns at once (they use `time` for nothing else: test_edge checks the
    installed source), and they and the emitter (which stamps the customer's messages) a clock that
    gives each stamp once (utc_now)."""
    for name in ("chainlit.message", "chainlit.step"):  # (chainlit.step, the attribute, is a decorator)
        module = importlib.import_module(name)
        module.time = _module_with(time, sleep=_no_sleep)  # type: ignore[attr-defined]
    for name in ("chainlit.message", "chainlit.step", "chainlit.emitter"):  # the emitter stamps customers' messages
        importlib.import_module(name).utc_now = utc_now  # type: ignore[attr-defined]


def _no_sleep(_seconds: float) -> None:
    """What Chainlit's message and step modules get for time.sleep: the stamps no longer need it."""


def _keep_a_mounted_files_folder() -> None:
    """Give chainlit.server a shutil whose rmtree empties a mounted `.files` instead of failing on it."""
    import chainlit.server

    chainlit.server.shutil = _module_with(shutil, rmtree=remove_tree)  # type: ignore[assignment]  # used for this one call


def _module_with(module: types.ModuleType, **replaced: Any) -> types.SimpleNamespace:
    """A stand-in for `module` in one importer's namespace: the same names, some replaced."""
    names = {name: getattr(module, name) for name in dir(module) if not name.startswith("__")}
    return types.SimpleNamespace(**{**names, **replaced})


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
