"""Logging that cannot leak the middleware secret.

Every handler in the process gets a filter that replaces the secret in the final message, the
traceback and the stack text, whoever logged it (our code, httpx, httpcore, Chainlit, uvicorn),
at every level. `LOG_LEVEL` sets how much the bot itself says; httpx and httpcore stay at
WARNING (and aiohttp too) unless LOG_LEVEL is DEBUG, which also turns on Chainlit's own debug
logging.

LOG_FORMAT=json makes every handler write one JSON object per line (JsonLines): time, level, logger,
message, the exception if any, and the fields a line was given with `extra=` (FIELDS: the session,
an exchange's outcome and latency...). The redactor runs before any formatter and covers those
fields too.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

REDACTED = "[redacted]"
#: What a LogRecord holds of its own: anything else on it came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class SecretRedactor(logging.Filter):
    """Rewrites a record so that no secret survives in it."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self.secrets:
            message = message.replace(secret, REDACTED)
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, REDACTED)
            if record.stack_info:
                record.stack_info = record.stack_info.replace(secret, REDACTED)
            for name, value in list(vars(record).items()):
                if name not in _RECORD_ATTRIBUTES and isinstance(value, str) and secret in value:
                    setattr(record, name, value.replace(secret, REDACTED))
        record.msg, record.args = message, None
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line (non-ASCII escaped, so no character can break a line): `time` (UTC, ISO
    8601), `level`, `logger`, `message`, `exception` and `stack` when there are, and each of FIELDS the
    record was given."""

    FIELDS = ("event", "session", "outcome", "category", "latency_ms", "first_event_ms",
              "customer_text", "answer_text")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def protect_logs(secret: str, level_name: str = "INFO", log_format: str = "text") -> None:
    """Install the redactor on every handler there is (and with `json`, the JSON formatter, adding a
    handler on stdout if there is none), and set the bot's log levels."""
    redactor = SecretRedactor([secret])
    root = logging.getLogger()
    if log_format == "json" and not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stdout))
    loggers = [root, *(logger for logger in logging.root.manager.loggerDict.values()
                       if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(existing, SecretRedactor) for existing in handler.filters):
                handler.addFilter(redactor)
            if log_format == "json" and not isinstance(handler.formatter, JsonLines):
                handler.setFormatter(JsonLines())
    level = logging.getLevelName(level_name.upper())
    level = level if isinstance(level, int) else logging.INFO
    logging.getLogger("brandbot").setLevel(level)
    for noisy in ("httpx", "httpcore", "aiohttp"):
        logging.getLogger(noisy).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    if level <= logging.DEBUG:
        logging.getLogger("chainlit").setLevel(logging.DEBUG)
