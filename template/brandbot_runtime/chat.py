"""The conversation flow behind app.py's handlers: welcome, thinking, specialist, answer, failures.

Each session keeps one Conversation (history, "Try again", per-session limits) in Chainlit's user
session, created on the session's first use, so a message that arrives before the welcome is
answered too; the middleware client is shared by the whole process. While the configuration is
invalid every message gets the polite configuration error instead of a crash. Whatever goes
wrong while answering, the customer gets a clear message and a "Try again" button, the history
is left as it was, and nothing said to the customer or the log contains the secret. Customer
text is cleaned at the door (clean_text), so no string can make a later request unsendable.
A streamed answer grows in place as it arrives (only what will not change meaning later: see
stream_display.py); if its stream breaks, what arrived stays with a note and "Try again", and
the history records an answer only once it is complete.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import aclosing
from typing import Any

import chainlit as cl
from chainlit.chat_context import chat_contexts
from chainlit.types import ThreadDict

from . import metrics
from .brand import Brand, load_brand
from .conversation import Conversation
from .display import as_sent, plain
from .feedback_forwarding import Answer, remember
from .identity import ANONYMOUS, Customer, customer_of
from .log_safety import protect_logs
from .middleware import MiddlewareClient, MiddlewareError
from .settings import ConfigurationError, Settings, current_settings
from .stream_display import StreamedText
from .stream_parser import CategoryEvent, DeltaEvent, DoneEvent
from .text_safety import clean_text

log = logging.getLogger("brandbot")

STARTER_ACTION = "starter"
RETRY_ACTION = "retry"
_CONVERSATION_KEY = "brandbot_conversation"
_client: MiddlewareClient | None = None
# The answers this process is getting: each status message's id, and the task answering under it
# (waited for at shutdown; a stored status not in here lost its answer with another process).
_answering: dict[str, asyncio.Task[Any]] = {}
#: At most this long, a stopping bot lets the answers under way finish (within a pod's grace period).
FINISH_SECONDS_AT_MOST = 60.0


def startup() -> None:
    """Check the configuration once at start, so the operator hears about it before a customer."""
    settings = current_settings()
    brand = load_brand()
    if isinstance(settings, ConfigurationError):
        log.error("%s; customers will see the configuration error until this is fixed", settings)
        return
    protect_logs(settings.backend_api_secret.get_secret_value(), settings.log_level, settings.log_format)
    log.info("%s bot ready: middleware at %s, timeout %g s, history %d exchanges", brand.brand_name,
             settings.backend_api_url.host, settings.request_timeout_seconds, settings.history_max_turns)


def middleware_client(settings: Settings, brand: Brand) -> MiddlewareClient:
    """The process's one client, created on first use inside the server's event loop."""
    global _client
    if _client is None:
        protect_logs(settings.backend_api_secret.get_secret_value(), settings.log_level, settings.log_format)
        _client = MiddlewareClient(
            str(settings.backend_api_url),
            secret=settings.backend_api_secret.get_secret_value(),
            auth_header=brand.auth_header,
            timeout_seconds=settings.request_timeout_seconds,
            max_response_bytes=settings.max_response_bytes,
            stream_max_seconds=settings.stream_max_seconds,
        )
    return _client


async def finish_answers_in_flight() -> int:
    """Let the answers under way finish before the client closes; how many did not.

    Chainlit closes every socket the moment the server is told to stop, but the tasks answering go
    on: given the time, each answer is stored, and the customer finds it when their page reconnects
    to another replica. Without this wait the client closed under them and each was stored as a
    connection error. Bounded by the answer's own limits (and FINISH_SECONDS_AT_MOST).
    """
    if not _answering:
        return 0
    settings = current_settings()
    seconds = FINISH_SECONDS_AT_MOST if isinstance(settings, ConfigurationError) else min(
        FINISH_SECONDS_AT_MOST, settings.request_timeout_seconds + settings.transition_delay_seconds + 1)
    began, count = asyncio.get_running_loop().time(), len(_answering)
    _, unfinished = await asyncio.wait(set(_answering.values()), timeout=seconds)
    log.info("stopping: %d of %d answers under way finished in %.1f s", count - len(unfinished), count,
             asyncio.get_running_loop().time() - began)
    return len(unfinished)


async def shutdown() -> None:
    """Close the shared client's connections."""
    global _client
    if _client is not None:
        client, _client = _client, None
        await client.aclose()


async def start() -> None:
    """Check the configuration, then greet the customer with the brand's welcome message."""
    metrics.session_opened(_session_id())
    ready = await _ready()
    if ready is None:
        return
    brand, settings = ready
    _conversation(settings)
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
    ready = await _ready()
    if ready is None:
        return
    message = _conversation(ready[1]).take_retry(payload.get("id"))
    if message is None:
        log.warning("chat %s: ignored a stale or unknown retry", _session_id())
        return
    await reply(message)


async def reply(text: str) -> None:
    """Answer one customer message through the middleware, whatever the middleware does.

    Empty messages are not forwarded (the contract's messages are non-empty); a message over
    the length or rate limit, or one too many while earlier ones wait, gets the brand's text
    for it (once per minute for a flood: see Conversation.admit); the others are answered one at
    a time, in the order they came. Chainlit's own copy of the messages is dropped whatever
    happens: the Conversation holds the bounded history (see end()).
    """
    try:
        await _reply(text)
    finally:
        cl.chat_context.clear()


async def _reply(text: str) -> None:
    ready = await _ready()
    if ready is None:
        return
    brand, settings = ready
    metrics.session_opened(_session_id())  # again after a reconnect, which runs no on_chat_start
    text = clean_text(text)
    if not text.strip():
        log.warning("chat %s: ignored an empty message", _session_id())
        return
    conversation = _conversation(settings)
    refusal = conversation.admit(text)
    if refusal is not None:
        metrics.refused(refusal.text_id)
        if refusal.quiet:
            log.debug("chat %s: dropped a message (%s, already told)", _session_id(), refusal.text_id)
            return
        log.warning("chat %s: refused a message (%s)", _session_id(), refusal.text_id)
        await cl.Message(content=plain(brand.texts.render(refusal.text_id, refusal.values)),
                         author=settings.bot_name).send()
        return
    async with conversation.turn():
        with metrics.exchange(_session_id(), text, settings) as measured:
            await _exchange(brand, settings, conversation, text, measured)


async def resume(thread: ThreadDict) -> None:
    """A stored conversation was reopened: rebuild its history from the answers stored in it.

    Chainlit has already checked that the thread belongs to the signed-in user and shows its
    messages. The history sent with the next message is the one the conversation had: each stored
    answer (its metadata keeps the middleware's text and the message it answered) in order, under
    the same bounds. Failures and refusals stored no answer, so they are not in it, as before.
    """
    metrics.session_opened(_session_id())
    ready = await _ready()
    if ready is None:
        return
    brand, settings = ready
    conversation = _new_conversation(settings)
    asked: str | None = None
    orphans: list[tuple[dict[str, Any], str | None]] = []
    for step in sorted(thread.get("steps") or [], key=lambda step: str(step.get("createdAt") or "")):
        if step.get("type") == "user_message":
            asked = clean_text(str(step.get("output") or ""))
            continue
        answer = _stored_answer(step.get("metadata"))
        if answer is not None:
            question = answer.get("asked") if isinstance(answer.get("asked"), str) else asked
            if question:
                conversation.history.record(clean_text(question), clean_text(answer["text"]))
        elif _is_status(brand, step) and step.get("id") not in _answering:
            orphans.append((dict(step), asked))
    log.info("chat %s: resumed a stored conversation (%d exchanges)", _session_id(), len(conversation.history))
    for number, (step, question) in enumerate(orphans, start=1):
        await _answer_orphan(brand, settings, conversation, step, question if number == len(orphans) else None)


def _is_status(brand: Brand, step: dict[str, Any]) -> bool:
    """Whether a stored bot message is still "Thinking..." or a specialist transition: an answer never came."""
    if step.get("type") != "assistant_message":
        return False
    output = str(step.get("output") or "")
    before, _, after = plain(brand.texts.specialist_transition).partition(plain("{label}"))
    return output == plain(brand.texts.thinking) or (output.startswith(before) and output.endswith(after)
                                                     and len(output) > len(before) + len(after))


async def _answer_orphan(brand: Brand, settings: Settings, conversation: Conversation, step: dict[str, Any],
                         question: str | None) -> None:
    """A status whose answer was lost with the process answering it (a replica that died mid-answer): say
    so in its place, with "Try again" for the last one, instead of "Thinking..." for ever."""
    status = cl.Message.from_dict(step)  # type: ignore[arg-type]
    status.author = settings.bot_name
    status.content = plain(brand.texts.error_connection)
    if question:
        retry_id = conversation.remember_failure(question)
        status.actions = [cl.Action(name=RETRY_ACTION, payload={"id": retry_id}, label=brand.texts.retry)]
    await status.update()
    log.warning("chat %s: a stored answer never came (its process stopped answering); told the customer "
                "error_connection", _session_id())


def _stored_answer(metadata: object) -> dict[str, Any] | None:
    """The `brandbot` part of an answer step's metadata (a dict, or JSON text from some databases)."""
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return None
    answer = metadata.get("brandbot") if isinstance(metadata, dict) else None
    return answer if isinstance(answer, dict) and isinstance(answer.get("text"), str) else None


def end() -> None:
    """The customer left: drop what Chainlit itself keeps of the session's messages.

    Chainlit 2.12 keeps every message of every session in `chainlit.chat_context.chat_contexts`
    and never removes a session's list: without this, each huge message a customer ever sent
    would stay in memory for the life of the process. The bot does not use that list.
    """
    metrics.session_closed(_session_id())
    try:
        chat_contexts.pop(cl.context.session.id, None)
    except Exception:  # noqa: BLE001 - ending a chat must never fail
        log.debug("chat %s: no Chainlit chat context to drop", _session_id())


async def _exchange(brand: Brand, settings: Settings, conversation: Conversation, text: str,
                    measured: metrics.Exchange) -> None:
    """One request to the middleware and what the customer sees of it, told to `measured` (metrics.py)."""
    status = cl.Message(content=plain(brand.texts.thinking), author=settings.bot_name)
    task = asyncio.current_task()
    if task is not None:
        _answering[status.id] = task
    try:
        await status.send()
        await _answer(brand, settings, conversation, text, measured, status)
    finally:
        _answering.pop(status.id, None)


async def _answer(brand: Brand, settings: Settings, conversation: Conversation, text: str,
                  measured: metrics.Exchange, status: cl.Message) -> None:
    """The answer in place of the status: streamed or whole, or the failure's text with "Try again"."""
    history = conversation.history
    answer = _ShownAnswer(status, brand, settings)
    try:
        async with aclosing(middleware_client(settings, brand).answer(
                text, history.request_history(text), customer=_customer().as_contract())) as parts:
            async for batch in parts:
                measured.arrived()
                await answer.take(batch)
        response, category = answer.streamed.text, answer.category
        measured.answered(response, category, brand.specialist_label(category) is not None, paused=answer.paused)
        await answer.announce_late_specialist()
        status.content = as_sent(response)
        # The answer as the middleware wrote it, for transcripts: `content` holds display escapes.
        # `asked` is the message answered, so a resumed conversation rebuilds the history exactly.
        status.metadata = {"brandbot": {"text": response, "category": category, "asked": text}}
        await status.update()
        remember(status.parent_id, Answer(status.id, response, category))  # for its feedback
    except asyncio.CancelledError:
        # The customer pressed stop: what was shown of the answer stays, a "Thinking..." goes.
        await (status.update() if answer.on_screen else status.remove())
        raise
    except MiddlewareError as error:
        log.log(error.level, "chat %s: %s; told the customer %s%s", _session_id(), error, error.text_id,
                " after part of the answer" if answer.on_screen else "")
        measured.failed(error.text_id, cut_off=bool(answer.on_screen))
        await _fail(status, brand, conversation, text, brand.texts.render(error.text_id, error.values),
                    shown=answer.cut_off())
        return
    except Exception:
        log.exception("chat %s: internal error while answering; told the customer error_internal", _session_id())
        measured.failed("error_internal")
        await _fail(status, brand, conversation, text, brand.texts.error_internal, shown=answer.cut_off())
        return
    history.record(text, response)
    conversation.forget_failure()


class _ShownAnswer:
    """The answer as it arrives: the specialist transition once its category is known, then the text
    growing in place, showing only what will not change meaning (stream_display.StreamedText)."""

    #: Past this many characters, the text on screen is refreshed at most every REFRESH_SECONDS:
    #: each refresh escapes the whole text again.
    LONG_ANSWER = 20_000
    REFRESH_SECONDS = 0.25

    def __init__(self, status: cl.Message, brand: Brand, settings: Settings) -> None:
        self.status, self.brand, self.settings = status, brand, settings
        self.streamed = StreamedText()
        self.category: str | None = None
        self.announced = False
        self.on_screen = ""  # the markdown of the answer shown so far ("" while the status shows)
        self.paused = 0.0  # seconds the stream waited for the specialist transition
        self._refreshed_at = 0.0

    async def take(self, batch: list[Any]) -> None:
        """The events of one read: announce a specialist, add the deltas, then show once."""
        done = False
        for event in batch:
            if isinstance(event, CategoryEvent):
                self.category = event.category
                await self._announce()
            elif isinstance(event, DeltaEvent):
                self.streamed.add(event.text)
            elif isinstance(event, DoneEvent):
                done = True
                if event.category is not None:
                    self.category = event.category
        if not done:
            await self._show()

    def cut_off(self) -> str:
        """What stays on screen of an answer whose stream broke ("" if nothing was shown yet)."""
        return self.on_screen + self.streamed.closing() if self.on_screen else ""

    async def announce_late_specialist(self) -> None:
        """A category sent only with `done` still gets its transition, unless the answer is already on screen."""
        if not self.on_screen:
            await self._announce()

    async def _announce(self) -> None:
        label = self.brand.specialist_label(self.category)
        if label is None or self.announced:
            return
        self.announced = True
        self.status.content = plain(self.brand.texts.specialist(label))
        await self.status.update()
        await asyncio.sleep(self.settings.transition_delay_seconds)  # the stream waits in its buffers
        self.paused += self.settings.transition_delay_seconds

    async def _show(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if len(self.streamed.text) > self.LONG_ANSWER and loop_time - self._refreshed_at < self.REFRESH_SECONDS:
            return
        shown = as_sent(self.streamed.shown())
        if not shown.strip() or shown == self.on_screen:
            return
        self._refreshed_at = loop_time
        if self.on_screen and shown.startswith(self.on_screen):
            await self.status.stream_token(shown[len(self.on_screen):])
        else:
            await self.status.stream_token(shown, is_sequence=True)  # the first part replaces the status
        self.on_screen = shown


async def _fail(status: cl.Message, brand: Brand, conversation: Conversation, text: str, wording: str,
                shown: str = "") -> None:
    """Turn the status into the failure's message, with a "Try again" button for the same text.

    When part of a streamed answer is already on screen, it stays, followed by `answer_cut_off`;
    the history does not record it."""
    retry_id = conversation.remember_failure(text)
    status.content = f"{shown}\n\n{plain(brand.texts.answer_cut_off)}" if shown else plain(wording)
    status.actions = [cl.Action(name=RETRY_ACTION, payload={"id": retry_id}, label=brand.texts.retry)]
    await status.update()


async def _ready() -> tuple[Brand, Settings] | None:
    """The brand and valid settings, or None after telling the customer the bot is not configured."""
    brand = load_brand()
    settings = current_settings()
    if isinstance(settings, ConfigurationError):
        log.error("chat %s cannot answer, %s", _session_id(), settings)
        await cl.Message(content=plain(brand.texts.error_configuration), author=brand.bot_name).send()
        return None
    return brand, settings


def _conversation(settings: Settings) -> Conversation:
    """This session's Conversation, created on first use (a message may come before the welcome)."""
    conversation = cl.user_session.get(_CONVERSATION_KEY)
    # Chainlit stores the user session with a thread and gives it back on resume, our object as None
    return conversation if isinstance(conversation, Conversation) else _new_conversation(settings)


def _new_conversation(settings: Settings) -> Conversation:
    conversation = Conversation(
        max_exchanges=settings.history_max_turns,
        max_history_bytes=settings.history_max_bytes,
        max_message_chars=settings.max_message_chars,
        messages_per_minute=settings.messages_per_minute,
    )
    cl.user_session.set(_CONVERSATION_KEY, conversation)
    return conversation


def _customer() -> Customer:
    """Who writes, as the middleware may know it: the verified customer, else anonymous."""
    try:
        session = cl.context.session
    except Exception:  # noqa: BLE001 - no session, no identity
        return ANONYMOUS
    return customer_of(session.user, getattr(session, "token", None))


def _session_id() -> str:
    """The Chainlit session id, to tie log lines to one chat without naming the customer."""
    try:
        return cl.context.session.id
    except Exception:  # noqa: BLE001 - logging must never fail a reply
        return "-"
