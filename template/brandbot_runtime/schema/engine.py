"""One way to open the database, shared by the migrations and the running bot.

SQLite gets WAL (readers never wait for the writer), a busy timeout (a writer waits for another
instead of failing with "database is locked": 50 sessions write at once) and enforced foreign keys,
so the same schema behaves the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 512  # page cache per connection (SQLite's default is 2 MB): rows are written, rarely read
VERSION_TABLE = "brandbot_schema_version"  # Alembic's record of the applied migration


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_postgresql(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for `url`, with the SQLite settings above applied to every connection."""
    if is_sqlite(url):
        options.setdefault("connect_args", {}).setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    engine = create_async_engine(url, **options)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    finally:
        cursor.close()
