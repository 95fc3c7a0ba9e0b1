"""What the bot measures for Prometheus, and the one log line each exchange leaves.

The metrics live in a registry of their own (REGISTRY, not prometheus_client's global one) and are
served by `serve()` on a port of their own, METRICS_PORT, never on Chainlit's public port: the
public page cannot reach them, and a deployment that does not publish METRICS_PORT keeps them
inside its network. Nothing in them names a customer or holds what anyone wrote.

- `brandbot_exchanges_total{outcome}`: each exchange with the middleware by how it ended: `answer`,
  `specialist` (an answer whose category has a specialist), the failure's brand text id
  (`error_timeout`, `error_connection`, ...: see middleware.MiddlewareError), `cut_off` (the stream
  broke after part of the answer was shown), `stopped` (the customer pressed stop) or
  `error_internal` (a bug in the bot);
- `brandbot_middleware_seconds`: from the request to the complete answer, for answers only; the
  bot's own specialist transition pause (TRANSITION_DELAY_SECONDS) is not counted;
- `brandbot_stream_first_event_seconds`: from the request to the first part of the answer (for a
  JSON answer, the whole of it), whatever followed;
- `brandbot_exchanges_in_flight`, `brandbot_sessions_open`: gauges;
- `brandbot_messages_refused_total{reason}`: messages not forwarded (too long, too many, busy);
- `brandbot_database_errors_total{kind}`: failed data-layer calls, counted by data_layer_guard;
- the process's own `process_*` figures (memory, CPU, open files).

Each exchange also logs one INFO line on `brandbot.exchange` with the session id, the outcome, the
category and the latency as fields (`extra=`), which LOG_FORMAT=json writes as JSON keys; the
customer's message and the answer are added only with LOG_CUSTOMER_TEXT=true.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server

from .settings import ConfigurationError, Settings

log = logging.getLogger("brandbot")
exchange_log = logging.getLogger("brandbot.exchange")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

#: The outcomes every deployment can see, listed at 0 from the start (Prometheus' rate() needs the series).
OUTCOMES = ("answer", "specialist", "error_service_unavailable", "error_timeout", "error_connection",
            "error_unexpected_answer", "error_rejected", "error_unavailable", "error_rate_limited",
            "error_rate_limited_retry", "cut_off", "stopped", "error_internal")
ANSWERED = frozenset({"answer", "specialist"})
#: 50 ms to 60 s: a JSON answer in tenths of a second, a long streamed one in tens of seconds.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 45.0, 60.0)

EXCHANGES = Counter("brandbot_exchanges", "Exchanges with the middleware, by how they ended.", ["outcome"],
                    registry=REGISTRY)
MIDDLEWARE_SECONDS = Histogram("brandbot_middleware_seconds", "From the request to the middleware's complete "
                               "answer (answers only; without the specialist transition pause).",
                               buckets=BUCKETS, registry=REGISTRY)
FIRST_EVENT_SECONDS = Histogram("brandbot_stream_first_event_seconds", "From the request to the first part of "
                                "the answer.", buckets=BUCKETS, registry=REGISTRY)
IN_FLIGHT = Gauge("brandbot_exchanges_in_flight", "Exchanges waiting for or receiving the middleware's answer.",
                  registry=REGISTRY)
SESSIONS_OPEN = Gauge("brandbot_sessions_open", "Chat sessions connected to this process.", registry=REGISTRY)
REFUSED = Counter("brandbot_messages_refused", "Customer messages not forwarded, by the brand text they got.",
                  ["reason"], registry=REGISTRY)
DATABASE_ERRORS = Counter("brandbot_database_errors", "Data-layer calls that failed, by kind (an error class, "
                          "`timeout`, `busy` or `overloaded`).", ["kind"], registry=REGISTRY)

for _outcome in OUTCOMES:
    EXCHANGES.labels(outcome=_outcome)
for _reason in ("error_message_too_long", "error_too_many_messages", "error_busy"):
    REFUSED.labels(reason=_reason)

_sessions: set[str] = set()  # the open ones' ids: a session ended twice (or never started) cannot go below 0
_sessions_lock = threading.Lock()
_server: Any = None  # the metrics HTTP server, once started


class Exchange:
    """One exchange being measured; the chat flow tells it how the exchange went (see `exchange()`)."""

    def __init__(self, session: str, text: str, log_text: bool) -> None:
        self.session = session
        self.asked = text if log_text else None
        self.answer: str | None = None
        self.category: str | None = None
        self.outcome: str | None = None
        self.began = time.perf_counter()
        self.first_event: float | None = None
        self.middleware_seconds: float | None = None

    def arrived(self) -> None:
        """A part of the answer arrived (call it for each one: only the first counts)."""
        if self.first_event is None:
            self.first_event = time.perf_counter() - self.began
            FIRST_EVENT_SECONDS.observe(self.first_event)

    def answered(self, text: str, category: str | None, specialist: bool, paused: float = 0.0) -> None:
        """The answer is complete; `paused`: seconds the bot itself held the stream (the specialist transition)."""
        self.middleware_seconds = max(0.0, time.perf_counter() - self.began - paused)
        self.outcome = "specialist" if specialist else "answer"
        self.category = category
        if self.asked is not None:
            self.answer = text

    def failed(self, text_id: str, cut_off: bool = False) -> None:
        """No complete answer: the brand text the customer got, or `cut_off` if part of the answer was shown."""
        self.outcome = "cut_off" if cut_off else text_id

    def finish(self, outcome: str) -> None:
        """Count the exchange and log its line (exchange() calls it on leaving)."""
        latency = time.perf_counter() - self.began
        EXCHANGES.labels(outcome=outcome).inc()
        if outcome in ANSWERED and self.middleware_seconds is not None:
            MIDDLEWARE_SECONDS.observe(self.middleware_seconds)
        fields: dict[str, Any] = {"event": "exchange", "session": self.session, "outcome": outcome,
                                  "category": self.category, "latency_ms": round(latency * 1000, 1)}
        if self.first_event is not None:
            fields["first_event_ms"] = round(self.first_event * 1000, 1)
        if self.asked is not None:
            fields["customer_text"] = self.asked
            if self.answer is not None:
                fields["answer_text"] = self.answer
        exchange_log.info("chat %s: exchange %s in %.0f ms", self.session, outcome, latency * 1000, extra=fields)


@contextmanager
def exchange(session: str, text: str, settings: Settings) -> Iterator[Exchange]:
    """Measure one exchange: in flight while inside; counted and logged on leaving.

    Leaving with CancelledError counts `stopped`, whatever was told before; leaving with another
    exception, or without an outcome told, counts `error_internal`.
    """
    measured = Exchange(session, text, settings.log_customer_text)
    outcome = "error_internal"
    IN_FLIGHT.inc()
    try:
        yield measured
        outcome = measured.outcome or outcome
    except asyncio.CancelledError:
        outcome = "stopped"
        raise
    finally:
        IN_FLIGHT.dec()
        try:
            measured.finish(outcome)
        except Exception:  # measuring must never fail an exchange
            log.exception("chat %s: could not record the exchange's metrics", session)


def refused(text_id: str) -> None:
    """A customer message was not forwarded; `text_id` names the brand text it got (or would have got)."""
    REFUSED.labels(reason=text_id).inc()


def session_opened(session_id: str) -> None:
    """A chat started, resumed or spoke again (idempotent: a session counts once)."""
    with _sessions_lock:
        _sessions.add(session_id)
        SESSIONS_OPEN.set(len(_sessions))


def session_closed(session_id: str) -> None:
    """A chat's connection ended (idempotent)."""
    with _sessions_lock:
        _sessions.discard(session_id)
        SESSIONS_OPEN.set(len(_sessions))


def database_error(kind: str) -> None:
    """A data-layer call failed (data_layer_guard)."""
    DATABASE_ERRORS.labels(kind=kind).inc()


def serve(settings: Settings | ConfigurationError, public_port: int | None = None) -> bool:
    """Start the metrics server on METRICS_HOST:METRICS_PORT, once per process; whether it is serving.

    Off unless METRICS_PORT is set (and the settings are valid). It runs in a thread of its own
    (prometheus_client's), so a busy event loop does not delay a scrape. A port it cannot bind, or
    the chat's own port (`public_port`, by default the one `chainlit run` was given), is logged as
    an ERROR and the bot answers customers all the same.
    """
    global _server
    if isinstance(settings, ConfigurationError) or settings.metrics_port is None:
        return False
    if _server is not None:
        return True
    if public_port is None:
        from chainlit.config import config

        public_port = config.run.port
    where = f"{settings.metrics_host}:{settings.metrics_port}"
    if settings.metrics_port == public_port:
        log.error("metrics not served: METRICS_PORT=%d is the chat's own port; choose another one, "
                  "not published to the public", settings.metrics_port)
        return False
    try:
        _server, _thread = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=REGISTRY)
    except OSError as error:
        log.error("metrics not served: cannot listen on %s (%s)", where, error.strerror or error)
        return False
    log.info("metrics served at http://%s/metrics (Prometheus); keep this port off the public network", where)
    return True


def stop() -> None:
    """Stop the metrics server (tests; the process's exit stops it otherwise)."""
    global _server
    if _server is not None:
        server, _server = _server, None
        server.shutdown()
        server.server_close()
