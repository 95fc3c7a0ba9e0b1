"""Deployment settings, validated once per process.

Sources, first wins: the environment, `.env` next to app.py, then the brand data, brand.toml
(which supplies the brand's defaults for the bot's name, the timeouts and the image hosts). The
secret is a SecretStr so it never shows in a repr, a log line or an error message.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import Field, HttpUrl, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .database_url import resolve_database_url
from .origins import parse_allowed_origins, parse_image_hosts
from .project_paths import brand_data_file, dotenv_file

_HEADER_VALUE = re.compile(r"[!-~](?:[ -~]*[!-~])?")  # visible ASCII, inner spaces allowed


class Settings(BaseSettings):
    """What an operator sets per deployment; names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    backend_api_url: HttpUrl
    backend_api_secret: SecretStr = Field(min_length=8)
    # Where customers' thumbs and comments on answers are POSTed too, with the same secret header
    # (feedback_forwarding.py); unset or empty: they are only stored.
    backend_feedback_url: HttpUrl | None = None
    bot_name: str = Field(min_length=1, max_length=100)
    # A JSON answer must be complete within it; a streamed one must start within it and may go no longer
    # without a new event (an idle timeout), and no longer than stream_max_seconds in all (middleware.py).
    request_timeout_seconds: float = Field(gt=0, le=600)
    stream_max_seconds: float = Field(default=300, gt=0, le=3600)
    transition_delay_seconds: float = Field(ge=0, le=10)
    history_max_turns: int = Field(default=20, ge=0, le=1000)
    history_max_bytes: int = Field(default=100_000, ge=0, le=50_000_000)
    # Stored conversations last updated longer ago are purged daily (transcripts.py); 0 keeps them forever.
    retention_days: int = Field(default=90, ge=0, le=36_500)
    max_message_chars: int = Field(default=4000, ge=1, le=1_000_000)
    messages_per_minute: int = Field(default=12, ge=1, le=1_000_000)
    max_response_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000)
    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    # `json`: every log line one JSON object (log_safety.JsonLines); the customer's message and the answer
    # are added to each exchange's line only with log_customer_text.
    log_format: Literal["text", "json"] = "text"
    log_customer_text: bool = False
    # Prometheus metrics (metrics.py) on a port of their own, never Chainlit's; unset: not served.
    metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    metrics_host: str = Field(default="0.0.0.0", pattern=r"^[A-Za-z0-9.:_-]{1,253}$")
    # Origins answers' images may load from (the page's CSP img-src). `| str` lets IMAGE_HOSTS be a
    # comma-separated list: pydantic-settings would otherwise insist on JSON for a list.
    image_hosts: tuple[str, ...] | str = ()
    # Other web pages that may open the chat and read its answers (the website widget's hosts),
    # comma-separated; the bot's own pages always may (request_guard). Same `| str` as above.
    allowed_origins: tuple[str, ...] | str = ()
    max_request_bytes: int = Field(default=262_144, ge=16_384, le=100_000_000)
    # Where conversations are kept: empty (or `local`), the project's SQLite file; `off`, nowhere;
    # else a PostgreSQL or SQLite URL (database_url.py). Secret: a URL may carry a password.
    database_url: SecretStr = SecretStr("")
    # Verified customers (identity.py): the brand's site signs short-lived HS256 tokens with this secret
    # for this audience (brand.toml's default is the brand's slug). Unset: every customer is anonymous.
    customer_token_secret: SecretStr | None = Field(default=None, min_length=32)
    customer_token_audience: str = Field(default="brandbot", min_length=1, max_length=200)
    customer_token_max_lifetime_seconds: int = Field(default=3600, ge=10, le=86_400)

    @field_validator("database_url")
    @classmethod
    def _database_url_is_usable(cls, value: SecretStr) -> SecretStr:
        """A URL the bot cannot use is refused at start-up, never at the first customer's message."""
        resolve_database_url(value.get_secret_value())
        return value

    @field_validator("customer_token_secret", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        """CUSTOMER_TOKEN_SECRET= (as in .env.example) means no verified customers, not a too-short secret."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("image_hosts", mode="before")
    @classmethod
    def _image_hosts_are_origins(cls, value: object) -> tuple[str, ...]:
        """https origins only (http on loopback), as in the brand's image_hosts question."""
        return parse_image_hosts(value)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _allowed_origins_are_origins(cls, value: object) -> tuple[str, ...]:
        """Each entry scheme://host[:port], normalized the way browsers write the Origin header."""
        return parse_allowed_origins(value)

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_metrics_port_is_none(cls, value: object) -> object:
        """METRICS_PORT= (as in .env.example) means no metrics server."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_host", mode="before")
    @classmethod
    def _empty_metrics_host_is_default(cls, value: object) -> object:
        return "0.0.0.0" if isinstance(value, str) and not value.strip() else value

    @field_validator("backend_feedback_url", mode="before")
    @classmethod
    def _empty_feedback_url_is_none(cls, value: object) -> object:
        """BACKEND_FEEDBACK_URL= (as in .env.example) means feedback is only stored, not a broken URL."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _a_message_fits_in_a_request(self) -> Settings:
        """socket.io's polling transport sends a message as one HTTP request: the request limit must hold it."""
        needed = socket_frame_bytes(self.max_message_chars)
        if needed > self.max_request_bytes:
            raise ValueError(f"MAX_MESSAGE_CHARS={self.max_message_chars} needs MAX_REQUEST_BYTES of at least {needed}")
        return self

    @field_validator("backend_api_secret")
    @classmethod
    def _secret_fits_a_header(cls, secret: SecretStr) -> SecretStr:
        """Refuse at start-up a secret that could never travel in an HTTP header (it would fail every message)."""
        value = secret.get_secret_value()
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError("must be printable ASCII without line breaks or surrounding spaces "
                             "(it travels in an HTTP header)")
        return secret

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment, then .env, then the brand data's defaults."""
        del dotenv_settings, file_secret_settings
        return (
            init_settings,
            env_settings,
            DotEnvSettingsSource(settings_cls, env_file=dotenv_file(), env_file_encoding="utf-8"),
            TomlConfigSettingsSource(settings_cls, toml_file=brand_data_file()),
        )


def socket_frame_bytes(max_message_chars: int) -> int:
    """The largest socket frame worth parsing: one message as JSON (at most 6 bytes a character, a
    \\uXXXX escape) plus Chainlit's envelope, and never under 64 KB."""
    return max(64 * 1024, 6 * max_message_chars + 8 * 1024)


class ConfigurationError(RuntimeError):
    """The deployment's settings are missing or invalid; `problems` names each variable, never a value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


def validate_settings() -> Settings:
    """Build the settings or raise ConfigurationError listing every wrong variable."""
    try:
        return Settings()  # type: ignore[call-arg]  # every value comes from the sources
    except ValidationError as error:
        raise ConfigurationError(_describe(error)) from None


def _describe(error: ValidationError) -> list[str]:
    """One line per variable, e.g. `BACKEND_API_URL: missing`; input values are never included."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        name = str(item["loc"][0]).upper() if item["loc"] else "SETTINGS"
        reason = "missing" if item["type"] == "missing" else item["msg"]
        problems.append(f"{name}: {reason}")
    return problems


@lru_cache(maxsize=1)
def current_settings() -> Settings | ConfigurationError:
    """The process's settings, or the reason they are unusable (checked once per process)."""
    try:
        return validate_settings()
    except ConfigurationError as error:
        return error
