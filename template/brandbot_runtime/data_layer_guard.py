"""A data layer that never makes the customer wait for the database.

Chainlit schedules step writes as fire-and-forget tasks but awaits other calls (get_thread on a
reconnect, update_thread, upsert_feedback) on the customer's path, and its SQLAlchemy layer turns
every SQL error into a WARNING per call, with the statement's parameters (customer text) in it.
`guarded(inner)` wraps any data layer so that, whatever the database does:

- the caller waits at most a short timeout, and no call raises (the writes nobody waits for get a
  longer bound, BACKGROUND_WRITES);
- a call that outlasts its bound while the database keeps answering other calls is queued behind
  them, not failing: a write nobody waits for goes on waiting for its turn, an awaited call waits
  up to BUSY_SECONDS in all before it returns its empty answer, and neither opens the circuit (under
  load, SQLite works through a backlog of writes one at a time, and a burst of sign-ins takes its
  turn: counting that as an outage skipped the next writes, and an impatient sign-in left the
  conversation without its visitor);
- after the database fails (an error that says it is unreachable, or a call that gets no answer
  while no other call does either), a circuit stays open for a few seconds: calls return at once
  (reads an empty answer of the right type, writes are skipped and counted), then one call probes again;
- what is wrong is logged at most once a minute per kind, without customer text or the password,
  and one INFO line says when the database is back;
- the calls in flight are bounded, so a hung database cannot pile up tasks;
- `close()` (Chainlit calls it when the server stops) first lets the writes still in flight finish,
  for up to DRAIN_SECONDS: the process exits right after, and a write still queued then is lost.

Skipped writes are lost, not replayed: the conversation goes on, and later writes (which create
the thread row again if needed) persist once the database answers.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from chainlit.context import ChainlitContextException, context
from chainlit.data.base import BaseDataLayer
from chainlit.session import WebsocketSession
from chainlit.types import Feedback, PageInfo, PaginatedResponse, Pagination, ThreadDict, ThreadFilter

try:  # counted for Prometheus when the bot's metrics are there; the guard works alone too (benchmarks, tools)
    from .metrics import database_error
except ImportError:  # pragma: no cover - prometheus-client not installed
    def database_error(kind: str) -> None:
        """Nothing to count into."""

if TYPE_CHECKING:
    from chainlit.element import Element, ElementDict
    from chainlit.step import StepDict
    from chainlit.user import PersistedUser, User

log = logging.getLogger("brandbot.persistence")

T = TypeVar("T")

# Failures where the database answered and refused one statement: logged, but the circuit stays
# closed, so one bad row (which a customer might provoke on purpose) cannot stop everyone's writes.
STATEMENT_ERRORS = frozenset({"IntegrityError", "DataError", "ProgrammingError", "NotSupportedError"})
DRIVER_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg", "pymysql", "aiomysql")
# SQLite reports a schema problem as an OperationalError too; the database answered all the same.
_SCHEMA_PROBLEM = re.compile(r"no such (table|column)|has no column named|syntax error", re.IGNORECASE)
# Writes nobody waits for: Chainlit fires step and element writes as tasks, and awaits update_thread
# only inside its own task (emitter.init_thread) or when the socket goes (persist_user_session).
BACKGROUND_WRITES = frozenset({"create_step", "update_step", "delete_step", "create_element", "delete_element",
                               "update_thread"})
# Of those, the ones Chainlit always runs as a task of their own (asyncio.create_task in step.py, message.py and
# element.py): the guard runs them inline in that task, with a timer instead of a second task and a wait.
# About three writes per message: a task and a wait each cost the bot 15% of its throughput (docs/performance.md).
OWN_TASK_WRITES = frozenset({"create_step", "update_step", "delete_step", "create_element", "delete_element"})
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@\s]*@")
_LOGGED_CLASS = re.compile(r"\(([\w.]+)\)")
# How long close() waits for writes in flight: within the 10 s `docker stop` gives before SIGKILL.
DRAIN_SECONDS = 8.0
# How long in all an awaited call may wait while the database is busy answering others (a hung one
# costs timeout_seconds): a burst of 50 sign-ins on 2 shared cores took up to 1.3 s.
BUSY_SECONDS = 5.0


@dataclass
class _Outcome:
    """What one guarded call saw: a WARNING the inner layer logged instead of raising."""

    problem: str | None = None


_current: contextvars.ContextVar[_Outcome | None] = contextvars.ContextVar("brandbot_data_layer_call", default=None)


class _SwallowInnerWarnings(logging.Filter):
    """Drops WARNING+ records logged inside a guarded call and hands them to that call instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        outcome = _current.get()
        if outcome is None or record.levelno < logging.WARNING:
            return True
        outcome.problem = outcome.problem or record.getMessage()
        return False


_SWALLOW = _SwallowInnerWarnings()


def _swallow_inner_warnings(loggers: Iterable[str]) -> None:
    """Install the filter on the inner layer's loggers (once each)."""
    for name in loggers:
        inner_logger = logging.getLogger(name)
        if _SWALLOW not in inner_logger.filters:
            inner_logger.addFilter(_SWALLOW)


@contextmanager
def inner_warnings(loggers: Iterable[str] = ("chainlit",)) -> Iterator[_Outcome]:
    """What the inner data layer logs at WARNING or above inside, kept from the log: `.problem` is the
    first such message (the capture a guarded call uses, for code that runs the layer itself)."""
    _swallow_inner_warnings(loggers)
    outcome = _Outcome()
    token = _current.set(outcome)
    try:
        yield outcome
    finally:
        _current.reset(token)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """One line saying what is wrong: no SQL, no bound values, no quoted text, no password."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = line.split("[SQL", 1)[0].split("[parameters", 1)[0]
    for secret in secrets:
        if secret:
            line = line.replace(secret, "[redacted]")
    line = _URL_PASSWORD.sub(r"\1[redacted]@", line)
    line = _QUOTED.sub("'…'", line)
    return line.strip()[:200]


def _url_password(url: str | None) -> str | None:
    """The password in a database URL, so that it can be redacted wherever it shows up."""
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _queued_until_first_message(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Chainlit's queue_until_user_message, on the guard's own methods.

    Chainlit queues step and element writes until the customer's first message and replays the raw
    method later; queueing here makes the replay go through the guard too. Unlike Chainlit's, it
    runs the call at once when there is no Chainlit context (scripts, unit tests).
    """

    @functools.wraps(method)
    async def wrapper(self: DataLayerGuard, *args: Any, **kwargs: Any) -> Any:
        try:
            session = context.session
        except ChainlitContextException:
            session = None
        if isinstance(session, WebsocketSession) and not session.has_first_interaction:
            session.thread_queues.setdefault(method.__name__, deque()).append((method, self, args, kwargs))
            return None
        return await method(self, *args, **kwargs)

    return wrapper


@dataclass
class _Inline:
    """One write running inline in Chainlit's own task: what its timer needs to judge it."""

    name: str
    bound: float
    answered: int  # the database's answers so far when the timer was (re)armed
    timer: asyncio.TimerHandle | None = None
    overdue: bool = False  # already reported as a timeout: its late end reports nothing more


@dataclass
class _Trouble:
    """One kind of failure: when it was last logged and how often it happened since."""

    last_logged: float | None = None
    failures: int = 0
    summary: str = ""


@dataclass
class GuardState:
    """What the guard knows about the database; tests read it."""

    opened_at: float | None = None
    probing: bool = False
    outage_started: float | None = None
    skipped_writes: int = 0
    skipped_in_outage: int = 0
    in_flight: int = 0
    answered: int = 0  # calls the database completed without an error: the sign it is alive
    troubles: dict[str, _Trouble] = field(default_factory=dict)


class DataLayerGuard(BaseDataLayer):
    """Delegates every data-layer call to `inner`, bounded in time and never failing the caller.

    max_in_flight is about 4x the backlog a healthy SQLite reached with 50 concurrent sessions
    (1,250-1,500 calls in flight in test_concurrency); a hung database reaches it only before its
    first timeout opens the circuit, or with writes abandoned to a database that never answers.
    """

    def __init__(self, inner: BaseDataLayer, *, timeout_seconds: float = 1.0,
                 background_timeout_seconds: float = 10.0, open_seconds: float = 5.0,
                 log_interval_seconds: float = 60.0, max_in_flight: int = 5000, drain_seconds: float = DRAIN_SECONDS,
                 busy_seconds: float = BUSY_SECONDS, url: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 inner_loggers: Iterable[str] = ("chainlit",)) -> None:
        self.inner = inner
        self.timeout_seconds = timeout_seconds
        self.background_timeout_seconds = background_timeout_seconds
        self.open_seconds = open_seconds
        self.log_interval_seconds = log_interval_seconds
        self.max_in_flight = max_in_flight
        self.drain_seconds = drain_seconds
        self.busy_seconds = busy_seconds
        self.clock = clock
        self._tasks: set[asyncio.Future[Any]] = set()  # the calls in flight, abandoned ones included
        self.secrets = [secret for secret in (_url_password(url), _url_password(_inner_url(inner))) if secret]
        self.state = GuardState()
        _swallow_inner_warnings(inner_loggers)

    def __getattr__(self, name: str) -> Any:
        """Anything else (engine, execute_sql, ...) is the inner layer's own, unguarded."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # ---- the guard ----

    async def _call(self, name: str, write: bool, default: T, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call` within the bounds; `default` whenever the database cannot answer."""
        state, now = self.state, self.clock()
        probe = False
        if state.opened_at is not None:
            if state.probing or now - state.opened_at < self.open_seconds:
                return self._skip(write, default)
            state.probing = probe = True
        if state.in_flight >= self.max_in_flight:
            if probe:
                state.probing = False
            return self._failed(write, default, "overloaded", f"{state.in_flight} database calls in flight",
                                opens=False)
        background = name in BACKGROUND_WRITES
        bound = self.background_timeout_seconds if background else self.timeout_seconds
        if name in OWN_TASK_WRITES and not probe and (task := asyncio.current_task()) is not None:
            return await self._inline(name, write, default, call, task, bound)
        outcome = _Outcome()
        token = _current.set(outcome)
        try:
            task = asyncio.ensure_future(call())
        finally:
            _current.reset(token)
        state.in_flight += 1
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._finished, outcome))
        try:
            done, busy = await self._wait(task, bound, patience=None if background else self.busy_seconds)
        except asyncio.CancelledError:
            if probe:
                state.probing = False
            raise
        if probe:
            state.probing = False
        if not done:
            # Abandoned, not cancelled: cancelling SQLAlchemy mid-statement left SQLite connections
            # holding locks, and persistence took 24 s instead of under a second to resume after a
            # lock (test_data_layer_guard). It finishes on its own, counted against max_in_flight.
            if busy:
                return self._failed(write, default, "busy", f"no answer within {self.busy_seconds:g} s ({name}) "
                                    "while the database answered other calls", opens=False)
            return self._failed(write, default, "timeout", f"no answer within {bound:g} s ({name})",
                                opens=True)
        return self._judge(name, write, default, task.exception(), outcome, task.result)

    def _judge(self, name: str, write: bool, default: T, error: BaseException | None, outcome: _Outcome,
               result: Callable[[], T]) -> T:
        """What a finished call returns: its result, or `default` after counting the failure it shows."""
        if error is not None:
            if name == "get_thread_author" and isinstance(error, ValueError):
                self._healthy()
                return default  # Chainlit's SQL layer says "no such thread" this way
            kind = type(error).__name__
            detail = f"{kind}: {error}"
            return self._failed(write, default, kind, detail, opens=_opens_circuit(error) and not _schema(detail))
        if outcome.problem is not None:
            return self._failed(write, default, _logged_kind(outcome.problem), outcome.problem,
                                opens=says_unreachable(outcome.problem))
        self._healthy()
        return result()

    async def _inline(self, name: str, write: bool, default: T, call: Callable[[], Awaitable[T]],
                      task: asyncio.Task[Any], bound: float) -> T:
        """Run a write in the task Chainlit created for it, which nobody awaits.

        The same bounds as a call in a task of its own, kept by a timer: past `bound` with no other call
        answered meanwhile, the database is failing (reported, circuit opened); if others were answered,
        it is only queued behind them and the timer waits another bound. The write itself is never
        cancelled (see _call) and its late end reports nothing more.
        """
        state, loop = self.state, asyncio.get_running_loop()
        outcome, entry = _Outcome(), _Inline(name, bound, state.answered)
        entry.timer = loop.call_later(bound, self._overdue, entry, write)
        state.in_flight += 1
        self._tasks.add(task)
        token = _current.set(outcome)
        error: BaseException | None = None
        value: Any = None
        try:
            value = await call()
        except asyncio.CancelledError:
            raise
        except Exception as raised:  # noqa: BLE001 - judged below like a task's exception
            error = raised
        finally:
            _current.reset(token)
            entry.timer.cancel()
            state.in_flight -= 1
            self._tasks.discard(task)
        if error is None and outcome.problem is None:
            state.answered += 1
        if entry.overdue:
            return default
        return self._judge(name, write, default, error, outcome, lambda: value)

    def _overdue(self, entry: _Inline, write: bool) -> None:
        """An inline write's timer rang: queued behind others (wait on) or a database that answers nobody."""
        if self.state.answered != entry.answered:
            entry.answered = self.state.answered
            entry.timer = asyncio.get_running_loop().call_later(entry.bound, self._overdue, entry, write)
            return
        entry.overdue = True
        self._failed(write, None, "timeout", f"no answer within {entry.bound:g} s ({entry.name})", opens=True)

    async def _wait(self, task: asyncio.Future[Any], bound: float, patience: float | None) -> tuple[bool, bool]:
        """Wait for `task` up to `bound`, then bound after bound for as long as the database answers other
        calls meanwhile (it is queued behind them), up to `patience` in all (None: no limit, for the
        writes nobody waits for); (done, whether the database was answering others)."""
        waited = 0.0
        while True:
            answered = self.state.answered
            done, _ = await asyncio.wait({task}, timeout=bound)
            waited += bound
            busy = self.state.answered != answered
            if done or not busy or (patience is not None and waited >= patience):
                return bool(done), busy

    def _finished(self, outcome: _Outcome, task: asyncio.Future[Any]) -> None:
        self.state.in_flight -= 1
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is None and outcome.problem is None:
            self.state.answered += 1  # (exception() also marks an error retrieved: no "never retrieved" noise)

    async def drain(self, seconds: float | None = None) -> int:
        """Wait up to `seconds` (drain_seconds) for the calls in flight, and for those they lead to
        (Chainlit replays a session's queued writes one after another); how many are left unfinished.

        Nothing is waited for while the circuit is open: those calls hang on a failing database."""
        began, started = time.monotonic(), len(self._tasks)  # real time: the process is about to exit
        deadline = began + (self.drain_seconds if seconds is None else seconds)
        while self._tasks and self.state.opened_at is None and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left)
            await asyncio.sleep(0)  # let a finished call's caller start its next one
        if self._tasks:
            log.warning("stopping with %d database calls unfinished after %.0f s: what they write is lost",
                        len(self._tasks), time.monotonic() - began)
        elif started:
            log.info("finished %d database calls in flight before stopping (%.1f s)", started,
                     time.monotonic() - began)
        return len(self._tasks)

    def _skip(self, write: bool, default: T) -> T:
        if write:
            self.state.skipped_writes += 1
            if self.state.outage_started is not None:
                self.state.skipped_in_outage += 1
        return default

    def _failed(self, write: bool, default: T, kind: str, detail: str, opens: bool) -> T:
        """Count the failure (and the write it loses), open the circuit if the database is unreachable, maybe log."""
        state, now = self.state, self.clock()
        if opens:
            state.opened_at = now
            if state.outage_started is None:
                state.outage_started, state.skipped_in_outage = now, 0
        self._skip(write, default)
        database_error(kind)
        trouble = state.troubles.setdefault(kind, _Trouble())
        trouble.failures += 1
        trouble.summary = redact(detail, self.secrets)
        if trouble.last_logged is None or now - trouble.last_logged >= self.log_interval_seconds:
            what = ("database failing" if opens else "database too slow for the load" if kind in ("overloaded", "busy")
                    else "database refused a statement")
            log.warning("%s (%s): %s; %d failed calls and %d skipped writes since the last report; "
                        "customers are answered without persistence", what, kind, trouble.summary,
                        trouble.failures, state.skipped_writes)
            trouble.last_logged, trouble.failures, state.skipped_writes = now, 0, 0
        return default

    def _healthy(self) -> None:
        state = self.state
        if state.outage_started is not None:
            log.info("database is back after %.0f s; %d writes were skipped while it failed",
                     self.clock() - state.outage_started, state.skipped_in_outage)
        state.opened_at = state.outage_started = None
        state.skipped_in_outage = 0

    # ---- BaseDataLayer, delegated ----

    async def get_user(self, identifier: str) -> PersistedUser | None:
        return await self._call("get_user", False, None, lambda: self.inner.get_user(identifier))

    async def create_user(self, user: User) -> PersistedUser | None:
        return await self._call("create_user", True, None, lambda: self.inner.create_user(user))

    async def delete_feedback(self, feedback_id: str) -> bool:
        return await self._call("delete_feedback", True, False, lambda: self.inner.delete_feedback(feedback_id))

    async def upsert_feedback(self, feedback: Feedback) -> str:
        return await self._call("upsert_feedback", True, feedback.id or "",
                                lambda: self.inner.upsert_feedback(feedback))

    @_queued_until_first_message
    async def create_element(self, element: Element) -> None:
        await self._call("create_element", True, None, lambda: self.inner.create_element(element))

    async def get_element(self, thread_id: str, element_id: str) -> ElementDict | None:
        return await self._call("get_element", False, None, lambda: self.inner.get_element(thread_id, element_id))

    @_queued_until_first_message
    async def delete_element(self, element_id: str, thread_id: str | None = None) -> None:
        await self._call("delete_element", True, None, lambda: self.inner.delete_element(element_id, thread_id))

    @_queued_until_first_message
    async def create_step(self, step_dict: StepDict) -> None:
        await self._call("create_step", True, None, lambda: self.inner.create_step(step_dict))

    @_queued_until_first_message
    async def update_step(self, step_dict: StepDict) -> None:
        await self._call("update_step", True, None, lambda: self.inner.update_step(step_dict))

    @_queued_until_first_message
    async def delete_step(self, step_id: str) -> None:
        await self._call("delete_step", True, None, lambda: self.inner.delete_step(step_id))

    async def get_thread_author(self, thread_id: str) -> str:
        return await self._call("get_thread_author", False, "", lambda: self.inner.get_thread_author(thread_id))

    async def delete_thread(self, thread_id: str) -> None:
        await self._call("delete_thread", True, None, lambda: self.inner.delete_thread(thread_id))

    async def list_threads(self, pagination: Pagination, filters: ThreadFilter) -> PaginatedResponse[ThreadDict]:
        empty: PaginatedResponse[ThreadDict] = PaginatedResponse(
            pageInfo=PageInfo(hasNextPage=False, startCursor=None, endCursor=None), data=[])
        return await self._call("list_threads", False, empty, lambda: self.inner.list_threads(pagination, filters))

    async def get_thread(self, thread_id: str) -> ThreadDict | None:
        return await self._call("get_thread", False, None, lambda: self.inner.get_thread(thread_id))

    async def update_thread(self, thread_id: str, name: str | None = None, user_id: str | None = None,
                            metadata: dict | None = None, tags: list[str] | None = None) -> None:
        await self._call("update_thread", True, None, lambda: self.inner.update_thread(
            thread_id, name=name, user_id=user_id, metadata=metadata, tags=tags))

    async def build_debug_url(self) -> str:
        return await self._call("build_debug_url", False, "", self.inner.build_debug_url)

    async def close(self) -> None:
        """Chainlit's last call before the process exits: the writes in flight first (drain), then the inner close."""
        await self.drain()
        await self._call("close", False, None, self.inner.close)

    async def get_favorite_steps(self, user_id: str) -> list[StepDict]:
        return await self._call("get_favorite_steps", False, [], lambda: self.inner.get_favorite_steps(user_id))


def _inner_url(inner: BaseDataLayer) -> str | None:
    """The URL Chainlit's SQL layers keep (`_conninfo`, `database_url`), if any."""
    for attribute in ("_conninfo", "database_url"):
        value = getattr(inner, attribute, None)
        if isinstance(value, str):
            return value
    return None


def _opens_circuit(error: BaseException) -> bool:
    """Whether an exception says the database is unreachable, rather than refusing one statement."""
    if type(error).__name__ in STATEMENT_ERRORS:
        return False
    if isinstance(error, (OSError, TimeoutError)):
        return True
    return any(klass.__module__.startswith(DRIVER_MODULES) for klass in type(error).__mro__)


def _schema(detail: str) -> bool:
    """Whether a failure names a schema problem (a missing table or column), not an unreachable database."""
    return bool(_SCHEMA_PROBLEM.search(detail.split("[SQL", 1)[0]))


def says_unreachable(problem: str) -> bool:
    """Whether a failure a data layer logged says the database is unreachable (down, locked, hung),
    rather than that it refused one statement (a bad row, a missing column) and would take others.
    asyncpg names its refusals itself: ForeignKeyViolationError and the other integrity violations,
    and plain Error for every other one the server sends back (data, deadlock, disk full)."""
    kind = _logged_kind(problem)
    refused = kind in STATEMENT_ERRORS or kind.endswith("ViolationError") or kind == "Error"
    return not refused and not _schema(problem)


def _logged_kind(message: str) -> str:
    """The error class a data layer named in its log line, `(sqlite3.OperationalError) ...` -> OperationalError."""
    found = _LOGGED_CLASS.search(message)
    return found.group(1).rsplit(".", 1)[-1] if found else "error"


def guarded(inner: BaseDataLayer, **options: Any) -> BaseDataLayer:
    """`inner` behind the guard: see DataLayerGuard for the options."""
    return DataLayerGuard(inner, **options)
