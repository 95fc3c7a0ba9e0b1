"""Socket.io events as the bot accepts them: the shapes Chainlit's web client sends, nothing else.

Chainlit's handlers (chainlit/socket.py) trust their payloads. A missing key or a wrong type
ends in an exception whose text (`'output'`, `badly formed hexadecimal UUID string`) is shown to
the sender as an "Error" message and logged as an ERROR traceback; `edit_message` is acted on
even when the configuration turns editing off, so a forged edit re-asks the middleware with
rewritten text. Every handler on the default namespace is therefore wrapped here: the event is
checked first (argument count, payload shape, the feature it needs being on), and a refused or
failing event costs one WARNING line naming the event and the reason, never a traceback. The
sender gets nothing but `{"error": "refused"}` as the acknowledgement, if it asked for one; a
refused connection gets socket.io's connect_error with the message "refused".
"""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from socketio.exceptions import ConnectionRefusedError as SocketRefused

log = logging.getLogger("brandbot.edge")

REFUSED = {"error": "refused"}
CLIENT_TYPES = frozenset({"webapp", "copilot", "teams", "slack", "discord"})
_MAX_ID = 100  # characters of a session, thread or message id
_MAX_USER_ENV = 64 * 1024

Handler = Callable[..., Awaitable[Any]]


class Refused(ValueError):
    """An event the bot will not hand to Chainlit; the message says why (our words, never the input)."""


def install(sio: Any) -> None:
    """Wrap every event handler Chainlit registered on the default namespace (idempotent)."""
    handlers = sio.handlers["/"]
    for event, handler in list(handlers.items()):
        if not getattr(handler, "brandbot_guarded", False):
            handlers[event] = _guarded(event, handler)


def _guarded(event: str, handler: Handler) -> Handler:
    if event == "connect":
        return _guarded_connect(handler)
    arity = len(inspect.signature(handler).parameters) - 1  # after the sid
    check = _CHECKS.get(event, _no_check)

    async def guarded(sid: str, *args: Any) -> Any:
        if event == "disconnect":  # python-socketio adds a reason Chainlit's handler does not take
            args = ()
        try:
            if len(args) != arity:
                raise Refused(f"{len(args)} arguments instead of {arity}")
            check(*args)
            return await handler(sid, *args)
        except Refused as refusal:
            log.warning("refused socket event %s: %s", event, refusal)
        except Exception as error:  # noqa: BLE001 - Chainlit failing on odd input: no traceback, no input text
            log.warning("refused socket event %s: Chainlit raised %s", event, type(error).__name__)
        return REFUSED

    guarded.brandbot_guarded = True  # type: ignore[attr-defined]
    return guarded


def _guarded_connect(handler: Handler) -> Handler:
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> Any:
        try:
            _check_auth(auth)
            return await handler(sid, environ, auth)
        except SocketRefused:
            raise
        except ConnectionRefusedError:  # Chainlit's own refusals (login, ownership) keep their message
            raise
        except Refused as refusal:
            log.warning("refused a socket connection: %s", refusal)
        except Exception as error:  # noqa: BLE001 - as above
            log.warning("refused a socket connection: Chainlit raised %s", type(error).__name__)
        raise SocketRefused("refused")

    connect.brandbot_guarded = True  # type: ignore[attr-defined]
    return connect


def _check_auth(auth: Any) -> None:
    """The `auth` object Chainlit's client sends when it connects."""
    if not isinstance(auth, dict):
        raise Refused("auth is not an object")
    _require_id(auth.get("sessionId"), "sessionId", uuid_version=None)
    if auth.get("clientType") not in CLIENT_TYPES:
        raise Refused("clientType is not one of Chainlit's")
    user_env = auth.get("userEnv")
    if user_env is not None:
        if not isinstance(user_env, str) or len(user_env) > _MAX_USER_ENV:
            raise Refused("userEnv is not a short text")
        if user_env:
            try:
                parsed = json.loads(user_env)
            except ValueError:
                raise Refused("userEnv is not JSON") from None
            if not isinstance(parsed, dict):
                raise Refused("userEnv is not a JSON object")
    for key in ("threadId", "chatProfile"):
        if not _optional(auth.get(key), str) or len(auth.get(key) or "") > _MAX_ID:
            raise Refused(f"{key} is not a short text")


def _check_message(payload: Any) -> None:
    """A `client_message` as Chainlit's composer and starters send it."""
    if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
        raise Refused("message is not an object")
    message = payload["message"]
    _require_id(message.get("id"), "message.id", uuid_version=4)
    if message.get("type") != "user_message":
        raise Refused("message.type is not user_message")
    for key in ("output", "createdAt"):
        if not isinstance(message.get(key), str):
            raise Refused(f"message.{key} is not a text")
    for key in ("threadId", "parentId", "name", "command", "language"):
        if not _optional(message.get(key), str):
            raise Refused(f"message.{key} is not a text")
    for key in ("metadata", "modes"):
        if not _optional(message.get(key), dict):
            raise Refused(f"message.{key} is not an object")
    references = payload.get("fileReferences")
    if not _optional(references, list) or not all(
            isinstance(reference, dict) and isinstance(reference.get("id"), str) for reference in references or []):
        raise Refused("fileReferences is not a list of file ids")


def _feature(name: str) -> Callable[..., None]:
    """A check that refuses the event while `[features] name` is off in .chainlit/config.toml."""

    def check(*args: Any) -> None:
        del args
        from chainlit.config import config

        value = getattr(config.features, name, None)
        if not (getattr(value, "enabled", False) if name == "audio" else bool(value)):
            raise Refused(f"{name.replace('_', ' ')} is off")

    return check


def _check_edit(payload: Any) -> None:
    """`edit_message`: refused while editing is off (the UI hides it; now the server agrees)."""
    _feature("edit_message")()
    if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
        raise Refused("message is not an object")
    _require_id(payload["message"].get("id"), "message.id", uuid_version=None)
    if not isinstance(payload["message"].get("output"), str):
        raise Refused("message.output is not a text")


def _settings_callback(callback: str) -> Callable[[Any], None]:
    """The chat-settings events: only when the app defines settings, and only as an object."""

    def check(settings: Any) -> None:
        from chainlit.config import config

        if getattr(config.code, callback, None) is None:
            raise Refused("this bot has no chat settings")
        if not isinstance(settings, dict):
            raise Refused("settings is not an object")

    return check


def _no_check(*args: Any) -> None:
    del args


def _require_id(value: Any, name: str, *, uuid_version: int | None) -> None:
    if not isinstance(value, str) or len(value) > _MAX_ID:
        raise Refused(f"{name} is not a uuid")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise Refused(f"{name} is not a uuid") from None
    if uuid_version is not None and parsed.version != uuid_version:
        raise Refused(f"{name} is not a uuid{uuid_version}")


def _optional(value: Any, kind: type) -> bool:
    return value is None or isinstance(value, kind)


_CHECKS: dict[str, Callable[..., None]] = {
    "client_message": _check_message,
    "edit_message": _check_edit,
    "message_favorite": _feature("favorites"),
    "audio_start": _feature("audio"),
    "audio_chunk": _feature("audio"),
    "audio_end": _feature("audio"),
    "chat_settings_change": _settings_callback("on_settings_update"),
    "chat_settings_edit": _settings_callback("on_settings_edit"),
}
