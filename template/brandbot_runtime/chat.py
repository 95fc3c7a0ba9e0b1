"""The conversation flow behind app.py's handlers: welcome, thinking, specialist, answer, failures.

Each session keeps its own History in Chainlit's user session; the middleware client is shared
by the whole process. A session whose configuration was invalid at chat start has no History,
and every message in it gets the polite configuration error instead of a crash. Whatever goes
wrong while answering, the customer gets a clear message and a "Try again" button, the history
is left as it was, and nothing said to the customer or the log contains the secret.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import chainlit as cl

from .brand import Brand, load_brand
from .display import as_sent, plain
from .history import History
from .log_safety import protect_logs
from .middleware import MiddlewareClient, MiddlewareError
from .settings import ConfigurationError, Settings, current_settings

log = logging.getLogger("brandbot")

STARTER_ACTION = "starter"
RETRY_ACTION = "retry"
_HISTORY_KEY = "brandbot_history"
_RETRY_KEY = "brandbot_retry"  # (retry id, message) of the last failed exchange
_client: MiddlewareClient | None = None


def startup() -> None:
    """Check the configuration once at start, so the operator hears about it before a customer."""
    settings = current_settings()
    brand = load_brand()
    if isinstance(settings, ConfigurationError):
        log.error("%s; customers will see the configuration error until this is fixed", settings)
        return
    protect_logs(settings.backend_api_secret.get_secret_value(), settings.log_level)
    log.info("%s bot ready: middleware at %s, timeout %g s, history %d exchanges", brand.brand_name,
             settings.backend_api_url.host, settings.request_timeout_seconds, settings.history_max_turns)


def middleware_client(settings: Settings, brand: Brand) -> MiddlewareClient:
    """The process's one client, created on first use inside the server's event loop."""
    global _client
    if _client is None:
        protect_logs(settings.backend_api_secret.get_secret_value(), settings.log_level)
        _client = MiddlewareClient(
            str(settings.backend_api_url),
            secret=settings.backend_api_secret.get_secret_value(),
            auth_header=brand.auth_header,
            timeout_seconds=settings.request_timeout_seconds,
            max_response_bytes=settings.max_response_bytes,
        )
    return _client


async def shutdown() -> None:
    """Close the shared client's connections."""
    global _client
    if _client is not None:
        client, _client = _client, None
        await client.aclose()


async def start() -> None:
    """Check the configuration, then greet the customer with the brand's welcome message."""
    brand = load_brand()
    settings = current_settings()
    if isinstance(settings, ConfigurationError):
        log.error("chat %s cannot start, %s", _session_id(), settings)
        await cl.Message(content=plain(brand.texts.error_configuration), author=brand.bot_name).send()
        return
    cl.user_session.set(_HISTORY_KEY, History(settings.history_max_turns))
    starters = [
        cl.Action(name=STARTER_ACTION, payload={"index": index}, label=starter.label, tooltip=starter.message)
        for index, starter in enumerate(brand.starters)
    ]
    await cl.Message(content=as_sent(brand.welcome_message), author=settings.bot_name, actions=starters).send()


async def run_starter(payload: dict[str, object]) -> None:
    """A starter button was clicked: show its message as the customer's, then answer it.

    The payload only names a starter by position, so a crafted request cannot make the bot
    send text of its choosing.
    """
    starters = load_brand().starters
    index = payload.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(starters):
        log.warning("chat %s: ignored an unknown starter %r", _session_id(), index)
        return
    message = starters[index].message
    await cl.Message(content=message, author="User", type="user_message").send()
    await reply(message)


async def run_retry(payload: dict[str, object]) -> None:
    """"Try again" was clicked: resend the failed message, if it is still the latest failure."""
    pending = cl.user_session.get(_RETRY_KEY)
    if pending is None or payload.get("id") != pending[0]:
        log.warning("chat %s: ignored a stale or unknown retry", _session_id())
        return
    cl.user_session.set(_RETRY_KEY, None)
    await reply(pending[1])


async def reply(text: str) -> None:
    """Answer one customer message through the middleware, whatever the middleware does."""
    brand = load_brand()
    settings = current_settings()
    history: History | None = cl.user_session.get(_HISTORY_KEY)
    if history is None or isinstance(settings, ConfigurationError):
        await cl.Message(content=plain(brand.texts.error_configuration), author=brand.bot_name).send()
        return

    status = cl.Message(content=plain(brand.texts.thinking), author=settings.bot_name)
    await status.send()
    try:
        answer = await middleware_client(settings, brand).ask(text, history.request_history(text))
        label = brand.specialist_label(answer.category)
        if label is not None:
            status.content = plain(brand.texts.specialist(label))
            await status.update()
            await asyncio.sleep(settings.transition_delay_seconds)
        status.content = as_sent(answer.response)
        await status.update()
    except asyncio.CancelledError:
        await status.remove()  # the customer pressed stop: no half-finished status stays behind
        raise
    except MiddlewareError as error:
        log.log(error.level, "chat %s: %s; told the customer %s", _session_id(), error, error.text_id)
        await _fail(status, brand, text, brand.texts.render(error.text_id, error.values))
        return
    except Exception:
        log.exception("chat %s: internal error while answering; told the customer error_internal", _session_id())
        await _fail(status, brand, text, brand.texts.error_internal)
        return
    history.record(text, answer.response)
    cl.user_session.set(_RETRY_KEY, None)


async def _fail(status: cl.Message, brand: Brand, text: str, wording: str) -> None:
    """Turn the status into the failure's message, with a "Try again" button for the same text."""
    retry_id = uuid.uuid4().hex
    cl.user_session.set(_RETRY_KEY, (retry_id, text))
    status.content = plain(wording)
    status.actions = [cl.Action(name=RETRY_ACTION, payload={"id": retry_id}, label=brand.texts.retry)]
    await status.update()


def _session_id() -> str:
    """The Chainlit session id, to tie log lines to one chat without naming the customer."""
    try:
        return cl.context.session.id
    except Exception:  # noqa: BLE001 - logging must never fail a reply
        return "-"
