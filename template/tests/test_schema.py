"""brandbot's schema: the migrations apply to a fresh SQLite file, again without change, and hold
every column Chainlit 2.12 writes, derived from Chainlit itself rather than from a list kept here."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import chainlit as cl
from chainlit.data import sql_alchemy
from chainlit.element import ElementDict
from chainlit.step import StepDict
from chainlit.types import Feedback, ThreadDict
from chainlit.user import PersistedUser

from brandbot_runtime import schema
from brandbot_runtime.database_url import sqlite_url
from brandbot_runtime.project_paths import PROJECT_DIR
from brandbot_runtime.schema.engine import VERSION_TABLE

from .chat_harness import ChatHarness

TABLES = ("users", "threads", "steps", "elements", "feedbacks")
# Keys of Chainlit's dicts that are read back from joins, never written as columns of their table.
NOT_COLUMNS = {"steps": {"feedback"}, "elements": {"path"}}


def columns(database: Path) -> dict[str, set[str]]:
    with sqlite3.connect(database) as connection:
        return {table: {row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')} for table in TABLES}


def migrated(tmp_path: Path) -> Path:
    database = tmp_path / "data" / "conversations.sqlite3"
    schema.upgrade(sqlite_url(database))
    return database


def inserted_columns() -> dict[str, set[str]]:
    """The columns named in the literal INSERT statements of Chainlit's SQLAlchemy data layer."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(inspect.getsource(sql_alchemy))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for table, names in re.findall(r"INSERT INTO (\w+) \(([^)]*)\)", node.value):
                found.setdefault(table, set()).update(re.findall(r'"(\w+)"', names))
    return found


def update_thread_columns() -> set[str]:
    """The keys of the dict SQLAlchemyDataLayer.update_thread turns into its INSERT's columns."""
    tree = ast.parse(inspect.getsource(sql_alchemy.SQLAlchemyDataLayer.update_thread).lstrip())
    return {key.value for node in ast.walk(tree) if isinstance(node, ast.Dict)
            for key in node.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}


def written_step_keys() -> set[str]:
    """What Chainlit writes for the steps it makes: a run step (Step.to_dict) and a message
    (Message.to_dict). Called inside a running event loop, as Chainlit's context needs."""
    harness = ChatHarness()
    harness._enter()
    try:
        step = cl.Step(name="on_message", type="run")
        message = cl.Message(content="hello", author="User", type="user_message")
        return set(step.to_dict()) | set(message.to_dict())
    finally:
        harness.close()


def test_migrations_create_every_table_in_a_fresh_sqlite_file(tmp_path: Path) -> None:
    database = migrated(tmp_path)
    assert database.is_file()
    found = columns(database)
    assert all(found[table] for table in TABLES), found
    assert "autoCollapse" in found["steps"]  # the column Chainlit's published DDL lacks
    assert schema.current(sqlite_url(database)) == schema.head()


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    database = migrated(tmp_path)
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO users (id, identifier, metadata) VALUES ('u1', 'visitor', '{}')")
        before = connection.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    schema.upgrade(sqlite_url(database))
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == before
        assert connection.execute("SELECT identifier FROM users").fetchall() == [("visitor",)]
        assert connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall() == [(schema.head(),)]


def test_the_sqlite_file_uses_wal(tmp_path: Path) -> None:
    with sqlite3.connect(migrated(tmp_path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


CHAINLIT_PUBLISHED_STEPS = """CREATE TABLE steps ("id" TEXT PRIMARY KEY, "name" TEXT NOT NULL, "type" TEXT NOT NULL,
    "threadId" TEXT NOT NULL, "parentId" TEXT, "streaming" BOOLEAN NOT NULL, "waitForAnswer" BOOLEAN,
    "isError" BOOLEAN, "metadata" TEXT, "tags" TEXT, "input" TEXT, "output" TEXT, "createdAt" TEXT,
    "command" TEXT, "start" TEXT, "end" TEXT, "generation" TEXT, "showInput" TEXT, "language" TEXT,
    "indent" INT, "defaultOpen" BOOLEAN)"""


def test_a_database_made_from_chainlits_published_ddl_is_adopted(tmp_path: Path) -> None:
    """An operator who followed Chainlit's docs keeps their rows and gains the columns Chainlit writes."""
    database = tmp_path / "chainlit.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute(CHAINLIT_PUBLISHED_STEPS)
        connection.execute("""INSERT INTO steps (id, name, type, "threadId", streaming)
                              VALUES ('s1', 'x', 'run', 't', 0)""")
    schema.upgrade(sqlite_url(database))
    assert {"autoCollapse", "modes", "icon"} <= columns(database)["steps"]
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT id FROM steps").fetchall() == [("s1",)]


def missing_columns(database: Path) -> dict[str, list[str]]:
    """Each table's columns that Chainlit writes and the database lacks. Derived from Chainlit: its
    TypedDicts and dataclasses, the dicts a real Step and Message send, and the INSERT statements of
    its SQLAlchemy data layer, so a column a new Chainlit writes shows up here, not in production."""
    have = columns(database)
    written = {
        "steps": set(StepDict.__annotations__) | written_step_keys(),
        "elements": set(ElementDict.__annotations__),
        "feedbacks": {field.name for field in dataclasses.fields(Feedback)},
        "users": {field.name for field in dataclasses.fields(PersistedUser)} - {"display_name"},  # never stored
        "threads": set(ThreadDict.__annotations__) - {"steps", "elements"} | update_thread_columns(),
    }
    for table, names in inserted_columns().items():
        written[table] |= names
    assert written["threads"] >= {"id", "userId", "userIdentifier", "metadata", "tags"}, "INSERT parsing broke"
    assert {"autoCollapse", "defaultOpen", "command"} <= written["steps"]
    return {table: sorted(names - NOT_COLUMNS.get(table, set()) - have[table])
            for table, names in written.items() if names - NOT_COLUMNS.get(table, set()) - have[table]}


async def test_the_schema_has_every_column_chainlit_writes(tmp_path: Path) -> None:
    database = tmp_path / "conversations.sqlite3"
    await schema.upgrade_async(sqlite_url(database))
    assert missing_columns(database) == {}


async def test_the_drift_check_names_a_missing_column(tmp_path: Path) -> None:
    """Chainlit's published DDL without "autoCollapse": the check fails, naming it."""
    database = tmp_path / "conversations.sqlite3"
    await schema.upgrade_async(sqlite_url(database))
    with sqlite3.connect(database) as connection:
        connection.execute('ALTER TABLE steps DROP COLUMN "autoCollapse"')
        connection.execute('ALTER TABLE feedbacks DROP COLUMN "comment"')
    assert missing_columns(database) == {"steps": ["autoCollapse"], "feedbacks": ["comment"]}


def schema_command(*arguments: str, cwd: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "PYTHONPATH": str(PROJECT_DIR)}
    return subprocess.run([sys.executable, "-m", "brandbot_runtime.schema", *arguments], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_the_schema_command_upgrades_and_reports_from_any_directory(tmp_path: Path) -> None:
    database = tmp_path / "db" / "chats.sqlite3"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    url = sqlite_url(database)
    before = schema_command("current", cwd=elsewhere, database_url=url)
    assert before.returncode == 0 and "schema at none" in before.stdout, before.stderr
    assert not database.parent.exists()  # asking created nothing
    for _ in range(2):
        upgraded = schema_command("upgrade", cwd=elsewhere, database_url=url)
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"schema at {schema.head()}" in upgraded.stdout
    assert schema.current(url) == schema.head()
    assert list(elsewhere.iterdir()) == []


def test_the_schema_command_says_in_one_line_why_it_failed(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    failed = schema_command("upgrade", cwd=tmp_path, database_url=sqlite_url(blocker / "chats.sqlite3"))
    assert failed.returncode == 1
    assert "upgrade failed" in failed.stderr and "Traceback" not in failed.stderr
    refused = schema_command("upgrade", cwd=tmp_path, database_url="mysql://bot:hunter22@db/chats")
    assert refused.returncode == 2 and "DATABASE_URL" in refused.stderr and "hunter22" not in refused.stderr
