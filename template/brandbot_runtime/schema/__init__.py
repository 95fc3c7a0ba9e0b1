"""brandbot's database schema: Alembic migrations shipped in the project, applied by `upgrade(url)`.

The bot applies them at start-up (brandbot_runtime.persistence); an operator can apply them
beforehand with `python -m brandbot_runtime.schema upgrade` (DATABASE_URL, or the project's SQLite
file). Migrations only ever add: a `copier update` that brings a new one upgrades the data in place.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from ..database_url import sqlite_file

SCHEMA_DIR = Path(__file__).resolve().parent


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCHEMA_DIR))
    config.attributes["url"] = url
    return config


def head() -> str:
    """The newest migration this project ships."""
    revision = ScriptDirectory.from_config(_config("")).get_current_head()
    assert revision is not None
    return revision


def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest schema (idempotent; a SQLite file's folder is created).

    Blocking, with its own event loop: from async code use upgrade_async()."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        if (path := sqlite_file(url)) is not None:
            path.parent.mkdir(parents=True, exist_ok=True)  # the project's .data/ on a first start
        command.upgrade(_config(url), "head")
        return
    raise RuntimeError("schema.upgrade() blocks: call it with asyncio.to_thread from async code")


async def upgrade_async(url: str) -> None:
    """upgrade() from async code, in a worker thread: the server's event loop keeps serving."""
    await asyncio.to_thread(upgrade, url)


def current(url: str) -> str | None:
    """The migration the database at `url` is at (None: brandbot's schema was never applied)."""
    from sqlalchemy import inspect, text

    from .engine import VERSION_TABLE, create_engine

    if (path := sqlite_file(url)) is not None and not path.exists():
        return None  # asking must not create the file
    async def read() -> str | None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
                if VERSION_TABLE not in tables:
                    return None
                return (await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).scalar()
        finally:
            await engine.dispose()

    return asyncio.run(read())
