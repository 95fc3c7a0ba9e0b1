"""Prometheus metrics and JSON logs: the counters move for each way an exchange ends, the metrics are
served on their own port and never on the chat's, and LOG_FORMAT=json writes one JSON object per line
that names the session, the outcome and the latency, never the customer's words (unless asked) or the secret.

Each outcome of the fault matrix is counted in test_fault_matrix.py; these tests cover the others.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest

import app  # noqa: F401 - installs the edge layers on Chainlit's server, as `chainlit run` does
from brandbot_runtime import chat, metrics
from brandbot_runtime.brand import Brand
from brandbot_runtime.data_layer_guard import guarded
from brandbot_runtime.log_safety import REDACTED, JsonLines, protect_logs
from brandbot_runtime.middleware import MiddlewareClient
from brandbot_runtime.settings import Settings, current_settings

from .chat_harness import ChatHarness
from .conftest import TEST_SECRET
from .middleware_double import Hang, MiddlewareDouble, echo, json_reply, streamed
from .test_data_layer_guard import Clock, FakeLayer


def value(name: str, **labels: str) -> float:
    """A sample's current value in the bot's registry (0 when it has none yet)."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def exchanges(outcome: str) -> float:
    return value("brandbot_exchanges_total", outcome=outcome)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def specialist_category(brand: Brand) -> str:
    """A category this brand announces a specialist for."""
    category = next((name for name in brand.categories if brand.specialist_label(name) is not None), "billing_disputes")
    assert brand.specialist_label(category) is not None
    return category


async def test_an_answer_is_counted_and_timed(configure, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    configure(middleware.url)
    await session.start()
    answers, timed, first = (exchanges("answer"), value("brandbot_middleware_seconds_count"),
                             value("brandbot_stream_first_event_seconds_count"))
    await session.say("hello")
    assert exchanges("answer") == answers + 1
    assert value("brandbot_middleware_seconds_count") == timed + 1
    assert value("brandbot_stream_first_event_seconds_count") == first + 1
    assert value("brandbot_exchanges_in_flight") == 0


async def test_a_specialist_answer_is_counted_without_the_transition_pause(
        configure, middleware: MiddlewareDouble, session: ChatHarness, brand: Brand) -> None:
    configure(middleware.url, TRANSITION_DELAY_SECONDS="0.5")
    await session.start()
    category = specialist_category(brand)
    middleware.behave = lambda request: streamed("Let me check that invoice for you.", category=category)
    specialists, answers, spent = exchanges("specialist"), exchanges("answer"), value("brandbot_middleware_seconds_sum")
    await session.say("my invoice is wrong")
    assert exchanges("specialist") == specialists + 1 and exchanges("answer") == answers
    assert value("brandbot_middleware_seconds_sum") - spent < 0.4  # the 0.5 s pause is the bot's, not the middleware's


async def test_a_stopped_exchange_is_in_flight_then_counted_as_stopped(
        configure, middleware: MiddlewareDouble, session: ChatHarness) -> None:
    configure(middleware.url)
    await session.start()
    middleware.behave = lambda request: Hang()
    stopped, in_flight = exchanges("stopped"), value("brandbot_exchanges_in_flight")
    task = asyncio.create_task(session.say("this takes a while"))
    while not middleware.requests:
        await asyncio.sleep(0.01)
    assert value("brandbot_exchanges_in_flight") == in_flight + 1
    task.cancel()  # what Chainlit's stop does to the task running on_message
    with pytest.raises(asyncio.CancelledError):
        await task
    assert exchanges("stopped") == stopped + 1
    assert value("brandbot_exchanges_in_flight") == in_flight


async def test_an_internal_error_is_counted(configure, middleware: MiddlewareDouble, session: ChatHarness,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    configure(middleware.url)
    await session.start()

    async def explode(self, message, history, customer=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")
        yield  # an async generator, as MiddlewareClient.answer is

    monkeypatch.setattr(MiddlewareClient, "answer", explode)
    internal, timed = exchanges("error_internal"), value("brandbot_middleware_seconds_count")
    await session.say("hello")
    assert exchanges("error_internal") == internal + 1
    assert value("brandbot_middleware_seconds_count") == timed  # only complete answers are timed


async def test_a_refused_message_is_counted_by_reason(configure, middleware: MiddlewareDouble,
                                                     session: ChatHarness) -> None:
    configure(middleware.url, MAX_MESSAGE_CHARS="20")
    await session.start()
    refused = value("brandbot_messages_refused_total", reason="error_message_too_long")
    await session.say("x" * 21)
    assert value("brandbot_messages_refused_total", reason="error_message_too_long") == refused + 1
    assert middleware.requests == []


async def test_sessions_open_counts_each_session_once_and_never_goes_below_zero(
        configure, middleware: MiddlewareDouble) -> None:
    configure(middleware.url)
    first, second = ChatHarness(), ChatHarness()
    try:
        opened = value("brandbot_sessions_open")
        await first.start()
        await second.start()
        await second.say("hello")  # speaking again does not count the session twice
        assert value("brandbot_sessions_open") == opened + 2
        await second.end()
        await second.end()  # Chainlit ends a chat at every disconnect
        assert value("brandbot_sessions_open") == opened + 1
        await second.say("back")  # a reconnected session runs no on_chat_start: its message counts it again
        assert value("brandbot_sessions_open") == opened + 2
        await first.end()
        await second.end()
        assert value("brandbot_sessions_open") == opened
        metrics.session_closed("never-opened")
        assert value("brandbot_sessions_open") == opened >= 0
    finally:
        first.close()
        second.close()


async def test_database_errors_are_counted_by_kind(data_layer_errors: list[logging.LogRecord]) -> None:
    inner, clock = FakeLayer(), Clock()
    inner.mode = "refused"
    layer = guarded(inner, clock=clock, timeout_seconds=0.2)
    refused = value("brandbot_database_errors_total", kind="ConnectionRefusedError")
    assert await layer.get_thread("t") is None
    assert value("brandbot_database_errors_total", kind="ConnectionRefusedError") == refused + 1
    data_layer_errors.clear()  # the guard's WARNING was provoked on purpose


@pytest.fixture
def metrics_server() -> Iterator[None]:
    metrics.stop()
    yield
    metrics.stop()


async def test_the_metrics_port_serves_prometheus_text(configure, middleware: MiddlewareDouble, session: ChatHarness,
                                                       metrics_server: None) -> None:
    port = free_port()
    configure(middleware.url, METRICS_PORT=str(port), METRICS_HOST="127.0.0.1")
    settings = current_settings()
    assert isinstance(settings, Settings)
    assert metrics.serve(settings)
    assert metrics.serve(settings)  # once per process: a second call changes nothing
    await session.start()
    await session.say("hello")
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in ("brandbot_exchanges_total{outcome=\"answer\"}", "brandbot_exchanges_total{outcome=\"cut_off\"}",
                 "brandbot_exchanges_total{outcome=\"error_timeout\"}", "brandbot_middleware_seconds_bucket",
                 "brandbot_stream_first_event_seconds_bucket", "brandbot_sessions_open",
                 "brandbot_exchanges_in_flight", "# TYPE brandbot_database_errors_total counter",
                 "process_resident_memory_bytes"):
        assert name in text, name
    assert 'le="0.05"' in text and 'le="60.0"' in text
    assert "hello" not in text and TEST_SECRET not in text and session.session.id not in text


async def test_the_metrics_are_off_by_default_and_never_on_the_chats_port(
        configure, middleware: MiddlewareDouble, metrics_server: None, caplog: pytest.LogCaptureFixture) -> None:
    configure(middleware.url)
    settings = current_settings()
    assert isinstance(settings, Settings) and settings.metrics_port is None
    assert not metrics.serve(settings)
    configure(middleware.url, METRICS_PORT="8000", METRICS_HOST="127.0.0.1")
    with caplog.at_level(logging.ERROR, logger="brandbot"):
        assert not metrics.serve(current_settings(), public_port=8000)
    assert "is the chat's own port" in caplog.text
    from chainlit.server import app as server

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://127.0.0.1:8000") as client:
        response = await client.get("/metrics")
    assert "brandbot_exchanges_total" not in response.text and "# TYPE" not in response.text


async def test_a_busy_metrics_port_is_logged_and_the_bot_answers_all_the_same(
        configure, middleware: MiddlewareDouble, session: ChatHarness, metrics_server: None,
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        configure(middleware.url, METRICS_PORT=str(taken.getsockname()[1]), METRICS_HOST="127.0.0.1")
        with caplog.at_level(logging.ERROR, logger="brandbot"):
            assert not metrics.serve(current_settings())
    assert "metrics not served: cannot listen on 127.0.0.1:" in caplog.text
    await session.start()
    assert (await session.say("hello")).final.endswith("hello")


@pytest.mark.parametrize("variables", [{"METRICS_PORT": "0"}, {"METRICS_PORT": "70000"}, {"METRICS_PORT": "port"},
                                       {"METRICS_HOST": "0.0.0.0/0"}, {"LOG_FORMAT": "xml"},
                                       {"LOG_CUSTOMER_TEXT": "maybe"}])
def test_wrong_metrics_and_log_settings_are_refused(configure, variables: dict[str, str]) -> None:
    configure("https://middleware.example/chat", **variables)
    problems = getattr(current_settings(), "problems", None)
    assert problems and problems[0].startswith(next(iter(variables))), problems


def test_empty_metrics_and_log_settings_mean_their_defaults(configure) -> None:
    configure("https://middleware.example/chat", METRICS_PORT="", METRICS_HOST=" ", LOG_FORMAT="JSON")
    settings = current_settings()
    assert isinstance(settings, Settings)
    assert (settings.metrics_port, settings.metrics_host, settings.log_format, settings.log_customer_text) == (
        None, "0.0.0.0", "json", False)


# ---- LOG_FORMAT=json ----

ASKED = "my card is 4111 1111 and I live at 5 Elm Street"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The root logger's lines in a buffer; every handler's formatter is put back afterwards."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    handlers = [handler for logger in [root, *logging.root.manager.loggerDict.values()]
                if isinstance(logger, logging.Logger) for handler in logger.handlers]
    formatters = {handler: handler.formatter for handler in handlers}
    yield stream
    root.removeHandler(handler)
    for known, formatter in formatters.items():
        known.setFormatter(formatter)


def entries(stream: io.StringIO) -> list[dict]:
    lines = stream.getvalue().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


async def test_json_logs_name_the_session_outcome_and_latency_but_not_the_customers_words(
        configure, middleware: MiddlewareDouble, session: ChatHarness, json_log: io.StringIO) -> None:
    configure(middleware.url, LOG_FORMAT="json")
    chat.startup()  # as app.py's on_app_startup: every line from here on is JSON
    await session.start()
    middleware.behave = lambda request: json_reply({"response": f"Noted: {request.json['message']}",
                                                    "category": None})
    await session.say(ASKED)
    middleware.behave = lambda request: json_reply({"detail": "down"}, status=503)
    await session.say(ASKED)
    logged = entries(json_log)
    exchange_lines = [entry for entry in logged if entry.get("event") == "exchange"]
    assert [(entry["session"], entry["outcome"], entry.get("category")) for entry in exchange_lines] == [
        (session.session.id, "answer", None), (session.session.id, "error_service_unavailable", None)]
    for entry in exchange_lines:
        assert entry["level"] == "INFO" and entry["logger"] == "brandbot.exchange"
        assert isinstance(entry["latency_ms"], float) and entry["latency_ms"] > 0
        assert entry["time"].endswith("Z")
    assert exchange_lines[0]["first_event_ms"] > 0  # the 503 sent no part of an answer
    assert "first_event_ms" not in exchange_lines[1]
    warning = next(entry for entry in logged if entry["level"] == "WARNING")
    assert "HTTP 503" in warning["message"]
    text = json_log.getvalue()
    assert "4111" not in text and "Elm Street" not in text and "Noted" not in text
    assert "customer_text" not in text and "answer_text" not in text
    assert TEST_SECRET not in text


async def test_json_logs_carry_the_texts_only_when_asked_and_never_the_secret(
        configure, middleware: MiddlewareDouble, session: ChatHarness, json_log: io.StringIO) -> None:
    configure(middleware.url, LOG_FORMAT="json", LOG_CUSTOMER_TEXT="true")
    chat.startup()
    await session.start()
    middleware.behave = lambda request: json_reply({"response": f"The key is {TEST_SECRET}\nand more",
                                                    "category": "General"})
    await session.say(f"{ASKED} {TEST_SECRET}")
    [entry] = [entry for entry in entries(json_log) if entry.get("event") == "exchange"]
    assert entry["customer_text"] == f"{ASKED} {REDACTED}"
    assert entry["answer_text"] == f"The key is {REDACTED}\nand more"
    assert entry["category"] == "General" and entry["outcome"] == "answer"
    assert TEST_SECRET not in json_log.getvalue()
    middleware.behave = echo


def test_a_json_line_holds_a_redacted_traceback_on_one_line(json_log: io.StringIO) -> None:
    protect_logs(TEST_SECRET, "INFO", "json")
    log = logging.getLogger("anything.at.all")
    try:
        raise ValueError(f"bad token {TEST_SECRET}\nsecond line \u2028 é")
    except ValueError:
        log.exception("failed with %s", TEST_SECRET, extra={"session": f"s-{TEST_SECRET}", "latency_ms": 1.5})
    [entry] = entries(json_log)
    assert entry["message"] == f"failed with {REDACTED}" and entry["session"] == f"s-{REDACTED}"
    assert entry["latency_ms"] == 1.5 and entry["level"] == "ERROR" and entry["logger"] == "anything.at.all"
    assert "ValueError: bad token [redacted]" in entry["exception"]
    assert TEST_SECRET not in json_log.getvalue()
    assert json_log.getvalue().isascii()  # nothing a log shipper could take for a line break


def test_the_json_formatter_writes_the_known_fields_only() -> None:
    record = logging.LogRecord("brandbot", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.outcome, record.color_message = "answer", "\x1b[32mhello\x1b[0m"  # uvicorn adds color_message
    entry = json.loads(JsonLines().format(record))
    assert entry.pop("time").startswith("20")
    assert entry == {"level": "INFO", "logger": "brandbot", "message": "hello you", "outcome": "answer"}
