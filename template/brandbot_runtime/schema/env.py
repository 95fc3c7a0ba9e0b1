"""Alembic's entry point for brandbot's schema: runs the migrations on the URL schema.upgrade() passes.

The URL travels in the config's attributes, never through alembic.ini's interpolation (a password may
hold '%'). The async drivers the bot uses (aiosqlite, asyncpg) also run the migrations, so no second
driver is needed. On PostgreSQL an advisory lock makes replicas that start together migrate one by one.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.pool import NullPool

from brandbot_runtime.schema.engine import VERSION_TABLE, create_engine, is_postgresql

_LOCK_KEY = 0x6272616E64626F74  # "brandbot"; pg_advisory_xact_lock takes a bigint


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True,
                      transaction_per_migration=False)
    with context.begin_transaction():
        if is_postgresql(connection.engine.url):
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        context.run_migrations()


async def _run(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_run(context.config.attributes["url"]))
