"""Customers' thumbs and comments on answers, forwarded to the brand's middleware.

Chainlit stores a feedback itself: its `PUT /feedback` hands it to the data layer (`upsert_feedback`,
behind data_layer_guard) and only then calls app.py's `@cl.on_feedback` in the customer's session.
When BACKEND_FEEDBACK_URL is set, `forward` turns it into the contract's Feedback object
(contract/middleware.schema.json) and POSTs it there with the chat's secret header, in a task of its
own: the customer's request never waits for it, and a failing endpoint never reaches the customer or
the stored feedback. Failures are logged at most once a minute, without the secret, the comment or
the answer.

Chainlit hangs the thumbs on the `run` step that wraps on_message, not on the answer. The answer
under that step is found in the session's memory (`remember`, called by the chat flow when an answer
is shown) or, for an answer the session no longer remembers (a resumed conversation), in the stored
thread of the session. Feedback on anything but a middleware answer (a refusal, an error's wording)
or on a step outside the session's conversation is stored by Chainlit but not forwarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import chainlit as cl
import httpx
from chainlit.data import get_data_layer
from chainlit.types import Feedback

from .brand import load_brand
from .settings import ConfigurationError, Settings, current_settings
from .text_safety import clean_text
from .transport import AiohttpTransport

log = logging.getLogger("brandbot.feedback")

TIMEOUT_SECONDS = 10.0  # at most; REQUEST_TIMEOUT_SECONDS when shorter
MAX_IN_FLIGHT = 100  # forwards waiting at once; more are dropped (and counted) rather than piled up
REMEMBERED_ANSWERS = 50  # per session, newest kept
REMEMBERED_CHARS = 200_000  # per session: older answers are looked up in the stored thread instead
_ANSWERS_KEY = "brandbot_answers"


@dataclass(frozen=True, slots=True)
class Answer:
    """A middleware answer the customer saw: its step id, its text as the middleware wrote it, its category."""

    id: str
    text: str
    category: str | None


def payload(thread: str, answer: Answer, value: int, comment: str | None, max_comment_chars: int) -> dict[str, Any]:
    """The contract's Feedback object: `message` is the answer (its id in the stored conversation and its
    text as the middleware wrote it), `value` Chainlit's 1 (thumbs up) or 0 (down), `comment` the
    customer's words (cleaned, at most `max_comment_chars`) or null."""
    words = clean_text(comment or "").strip()[:max_comment_chars].rstrip()
    return {"thread": thread, "message": {"id": answer.id, "text": answer.text}, "value": value,
            "comment": words or None, "category": answer.category}


# ---- which answer a feedback is about --------------------------------------------------------------------


class _Remembered:
    """A session's latest answers by run step id, oldest first. Not a dict: Chainlit saves the user session into
    the thread's metadata as JSON, and the answers' texts are already stored once, in their steps."""

    def __init__(self) -> None:
        self.answers: OrderedDict[str, Answer] = OrderedDict()
        self.chars = 0

    def add(self, run_id: str, answer: Answer) -> None:
        if (previous := self.answers.pop(run_id, None)) is not None:
            self.chars -= len(previous.text)
        self.answers[run_id] = answer
        self.chars += len(answer.text)
        while len(self.answers) > REMEMBERED_ANSWERS or self.chars > REMEMBERED_CHARS:
            self.chars -= len(self.answers.popitem(last=False)[1].text)


def remember(run_id: str | None, answer: Answer) -> None:
    """Keep the answer shown under `run_id` (the step Chainlit hangs thumbs on) in the session's memory."""
    if run_id is None or len(answer.text) > REMEMBERED_CHARS:
        return
    remembered = cl.user_session.get(_ANSWERS_KEY)
    if not isinstance(remembered, _Remembered):  # a resumed session gets Chainlit's saved copy back as None
        remembered = _Remembered()
        cl.user_session.set(_ANSWERS_KEY, remembered)
    remembered.add(run_id, answer)


def _remembered(run_id: str) -> Answer | None:
    remembered = cl.user_session.get(_ANSWERS_KEY)
    return remembered.answers.get(run_id) if isinstance(remembered, _Remembered) else None


async def stored_answer(thread_id: str, run_id: str) -> Answer | None:
    """The answer under `run_id` in the stored thread `thread_id`, if it is there (the data layer is guarded:
    a failing database answers None quickly)."""
    layer = get_data_layer()
    thread = await layer.get_thread(thread_id) if layer is not None else None
    for step in (thread or {}).get("steps", []):
        if step.get("parentId") == run_id and step.get("type") == "assistant_message":
            written = _brandbot_metadata(step.get("metadata"))
            if isinstance(written.get("text"), str):
                category = written.get("category")
                return Answer(str(step["id"]), written["text"], category if isinstance(category, str) else None)
    return None


def _brandbot_metadata(value: object) -> dict[str, Any]:
    """The chat flow's {"text", "category"} from a stored step's metadata (a dict, or JSON text on SQLite)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    written = value.get("brandbot") if isinstance(value, dict) else None
    return written if isinstance(written, dict) else {}


# ---- sending -----------------------------------------------------------------------------------------------


class _Reporter:
    """Says what fails at most once per interval, with how often it failed since; once when it works again."""

    def __init__(self, host: str, interval_seconds: float, clock: Callable[[], float]) -> None:
        self.host = host
        self.interval_seconds = interval_seconds
        self.clock = clock
        self.last_logged: float | None = None
        self.unreported = 0
        self.failing = False

    def failed(self, why: str) -> None:
        self.unreported += 1
        self.failing = True
        now = self.clock()
        if self.last_logged is None or now - self.last_logged >= self.interval_seconds:
            log.warning("feedback not forwarded to %s (%s); %d not forwarded since the last report; "
                        "customers are not affected and the feedback is still stored",
                        self.host, why, self.unreported)
            self.last_logged, self.unreported = now, 0

    def succeeded(self) -> None:
        if self.failing:
            log.info("feedback reaches %s again (%d not forwarded since the last report)", self.host, self.unreported)
            self.failing, self.unreported = False, 0


_STATUS_HINTS = {
    401: ": the endpoint refused the secret; check BACKEND_API_SECRET and the brand's auth_header",
    403: ": the endpoint refused the secret; check BACKEND_API_SECRET and the brand's auth_header",
    404: ": no feedback endpoint there; check BACKEND_FEEDBACK_URL",
}


class FeedbackForwarder:
    """POSTs Feedback objects to one URL with the secret header, each in a background task, never raising.

    One pooled client for the process (aiohttp's pool, as the middleware client's, but its own small one).
    """

    def __init__(self, url: str, *, secret: str, auth_header: str, timeout_seconds: float = TIMEOUT_SECONDS,
                 max_in_flight: int = MAX_IN_FLIGHT, log_interval_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = httpx.URL(url)
        self.timeout_seconds = timeout_seconds
        self.max_in_flight = max_in_flight
        self.reporter = _Reporter(self.url.host or "BACKEND_FEEDBACK_URL", log_interval_seconds, clock)
        self.pending: set[asyncio.Task[None]] = set()
        self._http = httpx.AsyncClient(
            headers={auth_header: secret, "Content-Type": "application/json", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport or AiohttpTransport(max_connections=10),
            follow_redirects=False,
        )

    def submit(self, job: Coroutine[Any, Any, dict[str, Any] | None]) -> None:
        """Run `job` (which makes the Feedback object, or None for nothing to send) and POST its result,
        in the background; beyond max_in_flight it is dropped and counted as a failure."""
        if len(self.pending) >= self.max_in_flight:
            job.close()
            self.reporter.failed(f"{len(self.pending)} forwards already waiting; this one dropped")
            return
        task = asyncio.ensure_future(self._run(job))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _run(self, job: Coroutine[Any, Any, dict[str, Any] | None]) -> None:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                body = await job
                if body is None:
                    return
                problem = await self._post(json.dumps(body, ensure_ascii=False).encode())
        except (TimeoutError, httpx.TimeoutException):
            problem = f"no answer within {self.timeout_seconds:g} s"
        except httpx.TransportError as error:
            problem = f"connection failed: {type(error).__name__}"
        except Exception as error:  # noqa: BLE001 - feedback is never worth an error in the customer's chat
            problem = f"internal error: {type(error).__name__}"
        if problem is None:
            self.reporter.succeeded()
        else:
            self.reporter.failed(problem)

    async def _post(self, content: bytes) -> str | None:
        """POST the body; None when the endpoint took it (any 2xx), else what went wrong. The answer's body is
        never read: nothing in it matters, and it could be large."""
        response = await self._http.send(self._http.build_request("POST", self.url, content=content), stream=True)
        await response.aclose()
        if 200 <= response.status_code < 300:
            return None
        if 300 <= response.status_code < 400:
            return f"HTTP {response.status_code}: a redirect; set BACKEND_FEEDBACK_URL to the final address"
        return f"HTTP {response.status_code}{_STATUS_HINTS.get(response.status_code, '')}"

    async def drain(self) -> None:
        """Wait for every forward under way (tests, shutdown)."""
        while self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)

    async def aclose(self) -> None:
        """Give the forwards under way a moment, then close the pooled connections."""
        if self.pending:
            await asyncio.wait(set(self.pending), timeout=1.0)
            for task in self.pending:
                task.cancel()
        await self._http.aclose()


# ---- the process's forwarder and app.py's hooks ------------------------------------------------------------

_forwarder: FeedbackForwarder | None = None


def announce(settings: Settings | ConfigurationError, stored: bool) -> None:
    """At start-up: where feedback goes, or why BACKEND_FEEDBACK_URL will receive nothing."""
    if isinstance(settings, ConfigurationError) or settings.backend_feedback_url is None:
        return
    if not stored:
        log.warning("BACKEND_FEEDBACK_URL is set but conversations are not stored (DATABASE_URL=off, or the "
                    "database failed): Chainlit shows no feedback buttons, so there is no feedback to forward")
    else:
        log.info("feedback on answers forwarded to %s", settings.backend_feedback_url.host)


def forwarder(settings: Settings) -> FeedbackForwarder | None:
    """The process's forwarder, created on first use inside the server's event loop; None when not configured."""
    global _forwarder
    if settings.backend_feedback_url is None:
        return None
    if _forwarder is None:
        _forwarder = FeedbackForwarder(
            str(settings.backend_feedback_url),
            secret=settings.backend_api_secret.get_secret_value(),
            auth_header=load_brand().auth_header,
            timeout_seconds=min(settings.request_timeout_seconds, TIMEOUT_SECONDS),
        )
    return _forwarder


async def forward(feedback: Feedback) -> None:
    """app.py's @cl.on_feedback, after Chainlit stored the feedback: hand it to the forwarder. Never raises,
    never waits for the endpoint."""
    try:
        settings = current_settings()
        if isinstance(settings, ConfigurationError):
            return
        sender = forwarder(settings)
        if sender is None:
            return
        value = feedback.value
        if isinstance(value, bool) or value not in (0, 1):
            log.warning("feedback with an unknown value ignored (not forwarded)")
            return
        thread, run_id = cl.context.session.thread_id, str(feedback.forId)
        known = _remembered(run_id)
        max_chars = settings.max_message_chars

        async def job() -> dict[str, Any] | None:
            answer = known or await stored_answer(thread, run_id)
            if answer is None:
                log.debug("feedback on a step without a middleware answer in this conversation: not forwarded")
                return None
            return payload(thread, answer, value, feedback.comment, max_chars)

        sender.submit(job())
    except Exception as error:  # noqa: BLE001 - Chainlit would log it at ERROR; the customer must not care
        log.warning("feedback not forwarded: internal error (%s)", type(error).__name__)


async def shutdown() -> None:
    """Close the forwarder's connections (at application shutdown)."""
    global _forwarder
    if _forwarder is not None:
        sender, _forwarder = _forwarder, None
        await sender.aclose()
