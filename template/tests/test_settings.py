"""Settings: environment over .env over the brand's defaults; errors name variables, never values."""

from __future__ import annotations

from pathlib import Path

import pytest

from brandbot_runtime import settings
from brandbot_runtime.brand import Brand
from brandbot_runtime.settings import ConfigurationError, validate_settings

from .conftest import TEST_SECRET


def test_missing_url_and_secret_are_both_named() -> None:
    with pytest.raises(ConfigurationError) as raised:
        validate_settings()
    assert raised.value.problems == ["BACKEND_API_URL: missing", "BACKEND_API_SECRET: missing"]


def test_invalid_url_is_named_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKEND_API_URL", "not a url at all")
    monkeypatch.setenv("BACKEND_API_SECRET", TEST_SECRET)
    with pytest.raises(ConfigurationError) as raised:
        validate_settings()
    message = str(raised.value)
    assert "BACKEND_API_URL" in message
    assert "not a url at all" not in message
    assert TEST_SECRET not in message


def test_empty_secret_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKEND_API_URL", "https://mw.example/chat")
    monkeypatch.setenv("BACKEND_API_SECRET", "")
    with pytest.raises(ConfigurationError, match="BACKEND_API_SECRET"):
        validate_settings()


def test_secret_never_shows_even_when_another_variable_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKEND_API_URL", "https://mw.example/chat")
    monkeypatch.setenv("BACKEND_API_SECRET", TEST_SECRET)
    monkeypatch.setenv("REQUEST_TIMEOUT_SECONDS", "-1")
    with pytest.raises(ConfigurationError) as raised:
        validate_settings()
    assert raised.value.problems[0].startswith("REQUEST_TIMEOUT_SECONDS:")
    assert TEST_SECRET not in str(raised.value) and TEST_SECRET not in repr(raised.value)


def test_brand_data_supplies_the_defaults(configure, brand: Brand) -> None:  # type: ignore[no-untyped-def]
    configure("https://mw.example/chat", TRANSITION_DELAY_SECONDS="0.5")
    loaded = validate_settings()
    assert loaded.bot_name == brand.bot_name
    assert loaded.history_max_turns == 20
    assert loaded.request_timeout_seconds > 0
    assert loaded.backend_api_secret.get_secret_value() == TEST_SECRET
    assert TEST_SECRET not in repr(loaded) and TEST_SECRET not in str(loaded)


def test_environment_overrides_dotenv_which_overrides_the_brand(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "BACKEND_API_URL=https://from-dotenv.example/chat\nBACKEND_API_SECRET=dotenv-secret\n"
        "BOT_NAME=Dotenv Name\nTRANSITION_DELAY_SECONDS=0.7\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("BOT_NAME", "Env Name")
    loaded = validate_settings()
    assert loaded.bot_name == "Env Name"
    assert loaded.transition_delay_seconds == 0.7  # the brand data says otherwise
    assert str(loaded.backend_api_url) == "https://from-dotenv.example/chat"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REQUEST_TIMEOUT_SECONDS", "0"),
        ("REQUEST_TIMEOUT_SECONDS", "601"),
        ("REQUEST_TIMEOUT_SECONDS", "nan"),
        ("TRANSITION_DELAY_SECONDS", "-0.1"),
        ("TRANSITION_DELAY_SECONDS", "10.5"),
        ("HISTORY_MAX_TURNS", "-1"),
        ("HISTORY_MAX_TURNS", "many"),
        ("BACKEND_API_URL", "ftp://mw.example/chat"),
        ("BOT_NAME", ""),
    ],
)
def test_out_of_range_values_are_named(  # type: ignore[no-untyped-def]
    configure, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    configure("https://mw.example/chat")
    monkeypatch.setenv(variable, value)
    result = settings.current_settings()
    assert isinstance(result, ConfigurationError)
    assert [problem.split(":")[0] for problem in result.problems] == [variable]


@pytest.mark.parametrize("secret", ["line\r\nbreak-secret", "trailing-space ", "geheimnis-schlüssel",
                                    "tab\there-secret"])
def test_a_secret_that_cannot_travel_in_a_header_is_refused_at_start(monkeypatch: pytest.MonkeyPatch,
                                                                      secret: str) -> None:
    monkeypatch.setenv("BACKEND_API_URL", "http://127.0.0.1:9/chat")
    monkeypatch.setenv("BACKEND_API_SECRET", secret)
    with pytest.raises(ConfigurationError) as raised:
        validate_settings()
    assert raised.value.problems == ["BACKEND_API_SECRET: Value error, must be printable ASCII without line "
                                     "breaks or surrounding spaces (it travels in an HTTP header)"]
    assert secret.strip() not in str(raised.value)


@pytest.mark.parametrize(("variable", "value"), [("MAX_MESSAGE_CHARS", "0"), ("MESSAGES_PER_MINUTE", "0"),
                                                 ("HISTORY_MAX_BYTES", "-1")])
def test_session_limits_are_checked(configure, variable: str, value: str) -> None:  # type: ignore[no-untyped-def]
    configure("http://127.0.0.1:9/chat", **{variable: value})
    result = settings.current_settings()
    assert isinstance(result, ConfigurationError)
    assert [problem.split(":")[0] for problem in result.problems] == [variable]


def test_a_message_limit_the_request_limit_cannot_carry_is_refused(configure) -> None:  # type: ignore[no-untyped-def]
    configure("http://127.0.0.1:9/chat", MAX_MESSAGE_CHARS="50000", MAX_REQUEST_BYTES="262144")
    result = settings.current_settings()
    assert isinstance(result, ConfigurationError)
    assert "MAX_MESSAGE_CHARS=50000 needs MAX_REQUEST_BYTES of at least 308192" in str(result)
    configure("http://127.0.0.1:9/chat", MAX_MESSAGE_CHARS="50000", MAX_REQUEST_BYTES="400000")
    assert not isinstance(settings.current_settings(), ConfigurationError)
