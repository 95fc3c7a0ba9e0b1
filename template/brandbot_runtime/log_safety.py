"""Logging that cannot leak the middleware secret.

Every handler in the process gets a filter that replaces the secret in the final message, the
traceback and the stack text, whoever logged it (our code, httpx, httpcore, Chainlit, uvicorn),
at every level. `LOG_LEVEL` sets how much the bot itself says; httpx and httpcore stay at
WARNING (and aiohttp too) unless LOG_LEVEL is DEBUG, which also turns on Chainlit's own debug
logging.
"""

from __future__ import annotations

import logging

REDACTED = "[redacted]"


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
        record.msg, record.args = message, None
        return True


def protect_logs(secret: str, level_name: str = "INFO") -> None:
    """Install the redactor on every handler there is, and set the bot's log levels."""
    redactor = SecretRedactor([secret])
    loggers = [logging.getLogger(), *(logger for logger in logging.root.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(existing, SecretRedactor) for existing in handler.filters):
                handler.addFilter(redactor)
    level = logging.getLevelName(level_name.upper())
    level = level if isinstance(level, int) else logging.INFO
    logging.getLogger("brandbot").setLevel(level)
    for noisy in ("httpx", "httpcore", "aiohttp"):
        logging.getLogger(noisy).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    if level <= logging.DEBUG:
        logging.getLogger("chainlit").setLevel(logging.DEBUG)
