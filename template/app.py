"""Chainlit event handlers of this brand's customer-service bot.

Only the handlers live here; the flow is in brandbot_runtime.chat, the brand's values in
brand.toml and the deployment's settings in the environment (see .env.example).
"""

import chainlit as cl
from chainlit.data.base import BaseDataLayer
from chainlit.types import Feedback, ThreadDict
from starlette.datastructures import Headers

from brandbot_runtime import chat, edge, feedback_forwarding, identity, metrics, persistence, transcripts
from brandbot_runtime.settings import ConfigurationError, current_settings

edge.install()  # security headers, allowed origins and request limits on Chainlit's server


@cl.on_app_startup
async def on_app_startup() -> None:
    """Check the configuration, protect the logs, serve the metrics on METRICS_PORT (never on this server's
    port) and migrate the database before the first customer arrives; then purge conversations past
    RETENTION_DAYS, now and daily."""
    chat.startup()
    settings = current_settings()
    metrics.serve(settings)
    url = await persistence.prepare(settings)
    if url is not None and not isinstance(settings, ConfigurationError):
        transcripts.start_retention(url, settings.retention_days)
    feedback_forwarding.announce(settings, stored=url is not None)


@cl.data_layer
def data_layer() -> BaseDataLayer | None:
    """Where Chainlit keeps conversations (None: not stored; see brandbot_runtime.persistence)."""
    return persistence.data_layer()


@cl.header_auth_callback
async def sign_in(headers: Headers) -> cl.User | None:
    """Every browser is signed in without a form: as its visitor, or as the verified customer its
    customer token names (see brandbot_runtime.identity)."""
    return identity.user_for(headers)


@cl.on_chat_resume
async def on_chat_resume(thread: ThreadDict) -> None:
    """A stored conversation reopened (a reload, another replica): carry on where it stopped."""
    await chat.resume(thread)


@cl.on_chat_start
async def on_chat_start() -> None:
    """Greet the customer, or explain that the bot is not configured."""
    await chat.start()


@cl.action_callback(chat.STARTER_ACTION)
async def on_starter(action: cl.Action) -> None:
    """A suggested question under the welcome message was clicked."""
    await chat.run_starter(action.payload)


@cl.action_callback(chat.RETRY_ACTION)
async def on_retry(action: cl.Action) -> None:
    """"Try again" under a failed answer was clicked."""
    await chat.run_retry(action.payload)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    """Answer through the brand's AI middleware."""
    await chat.reply(message.content)


@cl.on_feedback
async def on_feedback(feedback: Feedback) -> None:
    """Chainlit has stored a customer's thumbs (and comment) on an answer: forward it to
    BACKEND_FEEDBACK_URL when set, in the background (see brandbot_runtime.feedback_forwarding)."""
    await feedback_forwarding.forward(feedback)


@cl.on_chat_end
def on_chat_end() -> None:
    """The customer's connection ended: free what Chainlit keeps of the chat."""
    chat.end()


@cl.on_app_shutdown
async def on_app_shutdown() -> None:
    """Let the answers under way finish (their customers find them on reconnecting), then close the
    pooled middleware and feedback connections."""
    await chat.finish_answers_in_flight()
    await chat.shutdown()
    await feedback_forwarding.shutdown()
