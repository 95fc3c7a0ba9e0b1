"""Which database keeps the conversations: the DATABASE_URL rule, without touching any database.

Empty (the default) or `local`: the SQLite file `.data/conversations.sqlite3` in the project.
`off`: nothing is stored. Otherwise a PostgreSQL URL (`postgresql+asyncpg://...`; `postgres://` and
`postgresql://` are read as asyncpg) or another SQLite file (`sqlite+aiosqlite:///path`, a relative
path being relative to the project, never to the directory the bot was started in). Errors never
repeat the URL: it may hold a password.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values
from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

from .project_paths import PROJECT_DIR, dotenv_file

OFF = "off"
LOCAL = "local"  # the project's own SQLite file, as an empty value: for a .env that wants to say so
DEFAULT_SQLITE_FILE = PROJECT_DIR / ".data" / "conversations.sqlite3"
_DRIVERS = {
    "postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg", "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite", "sqlite+aiosqlite": "sqlite+aiosqlite",
}


def resolve_database_url(raw: str) -> str | None:
    """The SQLAlchemy URL to store conversations at, or None when persistence is off.

    Raises ValueError (without the URL in the message) for anything else."""
    raw = raw.strip()
    if raw.lower() == OFF:
        return None
    if not raw or raw.lower() == LOCAL:
        return sqlite_url(DEFAULT_SQLITE_FILE)
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError("is not a database URL "
                         "(postgresql+asyncpg://..., sqlite+aiosqlite:///..., local or off)") from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError("must be postgresql+asyncpg://..., sqlite+aiosqlite:///path, local or off")
    url = url.set(drivername=driver)
    if driver == "sqlite+aiosqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            raise ValueError("a SQLite URL needs a file path (sqlite+aiosqlite:///path/to/file.sqlite3)")
        return sqlite_url(PROJECT_DIR / Path(url.database))
    return url.render_as_string(hide_password=False)


def configured_url() -> str | None:
    """resolve_database_url() of DATABASE_URL from the environment, else .env: for commands that run
    without the bot's other settings and must not import Chainlit (it writes into the working directory)."""
    raw = os.environ.get("DATABASE_URL")
    if raw is None and dotenv_file().is_file():
        raw = dotenv_values(dotenv_file()).get("DATABASE_URL")
    return resolve_database_url(raw or "")


def sqlite_url(path: Path) -> str:
    """The aiosqlite URL of a SQLite file (an absolute path)."""
    return URL.create("sqlite+aiosqlite", database=str(path.resolve())).render_as_string()


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL, None for any other database."""
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None


def describe(url: str) -> str:
    """The URL as it may appear in a log line: the password masked."""
    return make_url(url).render_as_string(hide_password=True)
