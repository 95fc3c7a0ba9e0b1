"""Fixtures for the bot's own tests: a clean environment, a loopback middleware, a chat session.

Importing chainlit writes into its app root, so the root is pinned to this project before
anything imports it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
os.environ["CHAINLIT_APP_ROOT"] = str(PROJECT_DIR)
sys.path.insert(0, str(PROJECT_DIR))

import httpx  # noqa: E402
import pytest  # noqa: E402

from brandbot_runtime import brand as brand_module  # noqa: E402
from brandbot_runtime import chat, settings  # noqa: E402
from brandbot_runtime.brand import Brand  # noqa: E402
from brandbot_runtime.middleware import MiddlewareClient  # noqa: E402

from .chat_harness import ChatHarness  # noqa: E402
from .middleware_double import MiddlewareDouble  # noqa: E402

TEST_SECRET = "test-secret-3f9c"  # a throw-away value; tests check it never leaks


def make_client(url: str, timeout: float = 2.0, max_bytes: int = 1_000_000,
                transport: httpx.AsyncBaseTransport | None = None) -> MiddlewareClient:
    """A middleware client with the test secret; the caller closes it."""
    return MiddlewareClient(url, secret=TEST_SECRET, auth_header="x-secret", timeout_seconds=timeout,
                            max_response_bytes=max_bytes, transport=transport)


SETTINGS_VARIABLES = [name.upper() for name in settings.Settings.model_fields] + ["BRAND_DATA_FILE", "BRAND_FILE"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No setting leaks in from the developer's shell or .env; caches start empty."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(settings, "dotenv_file", lambda: tmp_path / ".env")
    settings.current_settings.cache_clear()
    brand_module.load_brand.cache_clear()
    yield
    settings.current_settings.cache_clear()
    brand_module.load_brand.cache_clear()


@pytest.fixture(autouse=True)
def data_layer_errors() -> Iterator[list[logging.LogRecord]]:
    """Chainlit's data layer turns a failed SQL statement into a WARNING and carries on, losing the
    row: any such record fails the test (a test that provokes one on purpose clears the list). Behind
    data_layer_guard the same failure is the guard's WARNING on brandbot.persistence."""
    records: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING and ("error occurred" in record.getMessage()
                                                      or record.name == "brandbot.persistence"):
                records.append(record)

    handler = Catch()
    for name in ("chainlit", "brandbot.persistence"):
        logging.getLogger(name).addHandler(handler)
    yield records
    for name in ("chainlit", "brandbot.persistence"):
        logging.getLogger(name).removeHandler(handler)
    assert not records, [record.getMessage() for record in records]


@pytest.fixture(autouse=True)
async def fresh_middleware_client() -> AsyncIterator[None]:
    """Each test's event loop gets its own pooled client: close the process-wide one after every test."""
    yield
    await chat.shutdown()


@pytest.fixture
def brand() -> Brand:
    """This project's brand, as the bot reads it."""
    return brand_module.load_brand()


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the deployment's environment: `configure(url, HISTORY_MAX_TURNS="2", ...)`."""

    def apply(url: str | None, secret: str | None = TEST_SECRET, **variables: str) -> None:
        if url is not None:
            monkeypatch.setenv("BACKEND_API_URL", url)
        if secret is not None:
            monkeypatch.setenv("BACKEND_API_SECRET", secret)
        monkeypatch.setenv("TRANSITION_DELAY_SECONDS", variables.pop("TRANSITION_DELAY_SECONDS", "0.05"))
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        settings.current_settings.cache_clear()

    return apply


@pytest.fixture
async def middleware() -> AsyncIterator[MiddlewareDouble]:
    """A real HTTP middleware on a free loopback port, stopped after the test."""
    double = MiddlewareDouble()
    await double.start()
    yield double
    await double.stop()


@pytest.fixture
async def session() -> AsyncIterator[ChatHarness]:
    """One chat session driven in-process through the real handlers in app.py."""
    harness = ChatHarness()
    yield harness
    harness.close()
