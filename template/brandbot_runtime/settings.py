"""Deployment settings, validated once per process.

Sources, first wins: the environment, `.env` next to app.py, then brand.toml (which supplies
the brand's defaults for the persona and the timeouts). The secret is a SecretStr so it never
shows in a repr, a log line or an error message.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, HttpUrl, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .paths import brand_file, dotenv_file


class Settings(BaseSettings):
    """What an operator sets per deployment; names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    backend_api_url: HttpUrl
    backend_api_secret: SecretStr = Field(min_length=8)
    bot_name: str = Field(min_length=1, max_length=100)
    bot_role: str = Field(min_length=1, max_length=100)
    request_timeout_seconds: float = Field(gt=0, le=600)
    transition_delay_seconds: float = Field(ge=0, le=10)
    history_max_turns: int = Field(default=20, ge=0, le=1000)
    max_response_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000)
    log_level: str = Field(default="INFO", pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment, then .env, then the brand file's defaults."""
        del dotenv_settings, file_secret_settings
        return (
            init_settings,
            env_settings,
            DotEnvSettingsSource(settings_cls, env_file=dotenv_file(), env_file_encoding="utf-8"),
            TomlConfigSettingsSource(settings_cls, toml_file=brand_file()),
        )


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
