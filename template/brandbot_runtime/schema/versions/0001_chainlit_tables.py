"""Chainlit 2.12's tables (users, threads, steps, elements, feedbacks), with every column it writes.

Chainlit's published DDL lacks steps."autoCollapse" (sent by Step.to_dict() since 2.10), so every
on_message run step and the feedback hung on it would be lost; this schema has it, and
tests/test_schema_drift.py derives the columns from Chainlit itself. Ids and times are TEXT on
every database (Chainlit writes them as strings, and a forged id must not be a type error); JSON
columns are JSONB and tags TEXT[] on PostgreSQL, as Chainlit's SQL expects there, and TEXT holding
JSON on SQLite (a column declared JSON would have numeric affinity there). A database made
from Chainlit's own DDL is adopted: existing tables are kept and only missing columns are added.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.Text().with_variant(postgresql.JSONB(), "postgresql")
_TAGS = sa.Text().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")


def _tables() -> list[sa.Table]:
    meta = sa.MetaData()
    cascade = {"ondelete": "CASCADE"}
    return [
        sa.Table(
            "users", meta,
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("identifier", sa.Text, nullable=False, unique=True),
            sa.Column("metadata", _JSON, nullable=False),
            sa.Column("createdAt", sa.Text),
        ),
        sa.Table(
            "threads", meta,
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("createdAt", sa.Text),
            sa.Column("name", sa.Text),
            sa.Column("userId", sa.Text, sa.ForeignKey("users.id", **cascade)),
            sa.Column("userIdentifier", sa.Text),
            sa.Column("tags", _TAGS),
            sa.Column("metadata", _JSON),
        ),
        sa.Table(
            "steps", meta,
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("type", sa.Text, nullable=False),
            sa.Column("threadId", sa.Text, sa.ForeignKey("threads.id", **cascade), nullable=False),
            sa.Column("parentId", sa.Text),
            sa.Column("streaming", sa.Boolean, nullable=False),
            sa.Column("waitForAnswer", sa.Boolean),
            sa.Column("isError", sa.Boolean),
            sa.Column("metadata", _JSON),
            sa.Column("tags", _TAGS),
            sa.Column("input", sa.Text),
            sa.Column("output", sa.Text),
            sa.Column("createdAt", sa.Text),
            sa.Column("command", sa.Text),
            sa.Column("modes", _JSON),
            sa.Column("start", sa.Text),
            sa.Column("end", sa.Text),
            sa.Column("generation", _JSON),
            sa.Column("showInput", sa.Text),
            sa.Column("language", sa.Text),
            sa.Column("indent", sa.Integer),
            sa.Column("defaultOpen", sa.Boolean),
            sa.Column("autoCollapse", sa.Boolean),
            sa.Column("icon", sa.Text),
            sa.Index("steps_thread_created", "threadId", "createdAt"),
        ),
        sa.Table(
            "elements", meta,
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("threadId", sa.Text, sa.ForeignKey("threads.id", **cascade)),
            sa.Column("type", sa.Text),
            sa.Column("url", sa.Text),
            sa.Column("chainlitKey", sa.Text),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("display", sa.Text),
            sa.Column("objectKey", sa.Text),
            sa.Column("size", sa.Text),
            sa.Column("page", sa.Integer),
            sa.Column("language", sa.Text),
            sa.Column("forId", sa.Text),
            sa.Column("mime", sa.Text),
            sa.Column("props", _JSON),
            sa.Column("autoPlay", sa.Boolean),
            sa.Column("playerConfig", _JSON),
            sa.Index("elements_thread", "threadId"),
        ),
        sa.Table(
            "feedbacks", meta,
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("forId", sa.Text, nullable=False),
            sa.Column("threadId", sa.Text, sa.ForeignKey("threads.id", **cascade)),
            sa.Column("value", sa.Integer, nullable=False),
            sa.Column("comment", sa.Text),
            sa.Index("feedbacks_for", "forId"),
        ),
    ]


def upgrade() -> None:
    """Create each missing table; add each missing column to a table that already exists."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for table in _tables():
        if table.name not in existing:
            table.create(bind)
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))


def downgrade() -> None:
    """Drop the tables (and every conversation in them)."""
    for table in reversed(_tables()):
        op.drop_table(table.name)
