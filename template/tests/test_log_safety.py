"""No log line, at any level and from any library, carries the middleware secret."""

from __future__ import annotations

import io
import logging

import httpx
import pytest

from brandbot_runtime.log_safety import REDACTED, SecretRedactor, protect_logs

from .conftest import TEST_SECRET, make_client
from .middleware_double import MiddlewareDouble


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


def test_the_redactor_covers_message_arguments_and_tracebacks(captured: io.StringIO) -> None:
    protect_logs(TEST_SECRET, "DEBUG")
    log = logging.getLogger("anything.at.all")
    log.debug("header x-secret=%s", TEST_SECRET)
    try:
        raise ValueError(f"bad token {TEST_SECRET}")
    except ValueError:
        log.exception("failed with %r", {"secret": TEST_SECRET})
    text = captured.getvalue()
    assert TEST_SECRET not in text
    assert text.count(REDACTED) >= 3
    assert "ValueError" in text


async def test_http_client_debug_logs_never_show_the_secret(captured: io.StringIO,
                                                            middleware: MiddlewareDouble) -> None:
    protect_logs(TEST_SECRET, "DEBUG")
    for name in ("httpx", "httpcore", "aiohttp", "chainlit"):
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    client = make_client(middleware.url, max_bytes=100_000)
    try:
        await client.ask("hello", [{"role": "user", "content": "hello"}])
    finally:
        await client.aclose()
    text = captured.getvalue()
    assert "httpx HTTP Request: POST" in text  # the request was really logged
    assert TEST_SECRET not in text


def test_a_redactor_ignores_empty_secrets() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain %s", ("text",), None)
    assert SecretRedactor([""]).filter(record) and record.getMessage() == "plain text"


def test_without_debug_httpx_stays_quiet(captured: io.StringIO) -> None:
    protect_logs(TEST_SECRET, "INFO")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("brandbot").isEnabledFor(logging.INFO)
    httpx  # noqa: B018 - imported so its loggers exist
