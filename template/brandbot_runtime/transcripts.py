"""Transcripts and retention of the stored conversations: export, purge, erase.

    python -m brandbot_runtime.transcripts export [--since DATE] [--out FILE]
    python -m brandbot_runtime.transcripts purge [--days N]
    python -m brandbot_runtime.transcripts erase --customer ID   (or customer:ID, visitor:ID)

They read and delete Chainlit's own tables (threads, steps, elements, feedbacks, users) on the
project's database (DATABASE_URL, else the project's SQLite file) with SQLAlchemy Core.

Export writes one JSON object per conversation and line: `customer` is the verified customer's id
(null for an anonymous visitor), `user` the sign-in it belongs to (identity.py). Its text is what the customer and the
middleware wrote, not what Chainlit stores: an answer's stored `output` carries the display's
markdown escapes (display.as_sent), so an answer's text is read from the step's metadata
`{"brandbot": {"text", "category"}}`, which the chat flow writes; a customer's message has no such
metadata and its stored output, the text as typed, is used. Only answer steps carrying that
metadata are assistant turns: the bot's own texts (welcome, "Thinking...", error wordings) are not.
Feedback is attached to the answer it was given on, directly or through the answer's `run` step
(where Chainlit's UI hangs it). A conversation's last update is its newest step, as Chainlit's
own thread list has it; times are Chainlit's UTC ISO strings, compared as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .identity import CUSTOMER_PREFIX, VISITOR_PREFIX
from .schema.engine import create_engine

log = logging.getLogger("brandbot")

DAY_SECONDS = 86_400
_CHUNK = 400  # ids per statement: twice that stays under SQLite's oldest bound-parameter limit

threads = sa.table("threads", sa.column("id"), sa.column("createdAt"), sa.column("userId"),
                   sa.column("userIdentifier"))
steps = sa.table("steps", sa.column("id"), sa.column("threadId"), sa.column("parentId"), sa.column("type"),
                 sa.column("output"), sa.column("metadata"), sa.column("createdAt"))
elements = sa.table("elements", sa.column("id"), sa.column("threadId"), sa.column("forId"))
feedbacks = sa.table("feedbacks", sa.column("id"), sa.column("forId"), sa.column("threadId"),
                     sa.column("value"), sa.column("comment"))
users = sa.table("users", sa.column("id"), sa.column("identifier"))

Counts = dict[str, int]


def stamp(moment: datetime) -> str:
    """A moment as Chainlit writes times: naive UTC ISO with a 'Z'."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def _conversations(updated_since: str | None = None, updated_before: str | None = None) -> sa.Select:
    """Threads with their last update (newest step, else the thread's creation)."""
    updated = sa.func.coalesce(sa.func.max(steps.c.createdAt), threads.c.createdAt).label("updated")
    query = (sa.select(threads.c.id, threads.c.createdAt, threads.c.userIdentifier, updated)
             .select_from(threads.outerjoin(steps, steps.c.threadId == threads.c.id))
             .group_by(threads.c.id, threads.c.createdAt, threads.c.userIdentifier)
             .order_by(threads.c.createdAt, threads.c.id))
    if updated_since is not None:
        query = query.having(updated >= updated_since)
    if updated_before is not None:
        query = query.having(updated < updated_before)
    return query


# --- export ---------------------------------------------------------------------------------------

async def export(url: str, out: TextIO, since: datetime | None = None) -> int:
    """Write the conversations updated since `since` (all by default) as JSONL; how many were written."""
    engine = create_engine(url)
    written = 0
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(_conversations(stamp(since) if since else None))).all()
            for chunk in _chunks(rows):
                turns = await _turns(connection, [row.id for row in chunk])
                for row in chunk:
                    out.write(json.dumps({"thread": row.id, "customer": verified_customer(row.userIdentifier),
                                          "user": row.userIdentifier,
                                          "created": row.createdAt, "updated": row.updated,
                                          "turns": turns.get(row.id, [])}, ensure_ascii=False) + "\n")
                    written += 1
    finally:
        await engine.dispose()
    return written


async def _turns(connection: AsyncConnection, thread_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each thread's customer and assistant turns in order, with their feedback."""
    found = await connection.execute(
        sa.select(steps.c.id, steps.c.threadId, steps.c.parentId, steps.c.type, steps.c.output, steps.c.metadata)
        .where(steps.c.threadId.in_(thread_ids), steps.c.type.in_(("user_message", "assistant_message")))
        .order_by(steps.c.threadId, steps.c.createdAt, steps.c.id))
    turns: dict[str, list[dict[str, Any]]] = {}
    answer_of: dict[str, dict[str, Any]] = {}  # a step id, or an answer's run step id -> the answer turn
    for step in found:
        raw = _brandbot_metadata(step.metadata)
        if step.type == "user_message":
            turn = {"role": "customer", "text": raw.get("text", step.output or ""), "category": None}
        elif "text" in raw:
            turn = {"role": "assistant", "text": raw["text"], "category": raw.get("category")}
            answer_of[step.id] = turn
            if step.parentId:
                answer_of[step.parentId] = turn
        else:
            continue  # the bot's own text, not a turn
        turn["feedback"] = None
        turns.setdefault(step.threadId, []).append(turn)
    given = await connection.execute(
        sa.select(feedbacks.c.forId, feedbacks.c.value, feedbacks.c.comment)
        .where(feedbacks.c.forId.in_(list(answer_of))))
    for feedback in given:
        answer_of[feedback.forId]["feedback"] = {"value": feedback.value, "comment": feedback.comment}
    return turns


def _brandbot_metadata(value: object) -> dict[str, Any]:
    """The chat flow's {"text", "category"} from a step's metadata (JSON text or a dict), else {}."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    found = value.get("brandbot") if isinstance(value, dict) else None
    return found if isinstance(found, dict) and isinstance(found.get("text", ""), str) else {}


# --- purge and erase ------------------------------------------------------------------------------

async def purge_expired(url: str, days: int) -> Counts:
    """Delete the conversations last updated more than `days` days ago (0 keeps them forever)."""
    if days <= 0:
        return _no_counts()
    cutoff = stamp(datetime.now(UTC) - timedelta(days=days))
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            expired = [row.id for row in await connection.execute(_conversations(updated_before=cutoff))]
        return await _delete_threads(engine, expired)
    finally:
        await engine.dispose()


def verified_customer(identifier: str | None) -> str | None:
    """The customer id of a verified customer's sign-in (identity.py: `customer:<id>`), else None."""
    return identifier.removeprefix(CUSTOMER_PREFIX) if identifier and identifier.startswith(CUSTOMER_PREFIX) else None


def identifiers_of(who: str) -> list[str]:
    """The sign-ins `erase --customer` means: a full identifier (`customer:<id>`, `visitor:<id>`) as
    given; a bare id is the verified customer with that id (and any user stored under exactly it)."""
    if who.startswith((CUSTOMER_PREFIX, VISITOR_PREFIX)):
        return [who]
    return [CUSTOMER_PREFIX + who, who]


async def erase_customer(url: str, who: str) -> Counts:
    """Delete everything of one customer or visitor: their conversations and their user row."""
    identifiers = identifiers_of(who)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            user_ids = [row.id for row in await connection.execute(
                sa.select(users.c.id).where(users.c.identifier.in_(identifiers)))]
            owned = sa.or_(threads.c.userIdentifier.in_(identifiers), threads.c.userId.in_(user_ids))
            thread_ids = [row.id for row in await connection.execute(sa.select(threads.c.id).where(owned))]
        counts = await _delete_threads(engine, thread_ids)
        async with engine.begin() as connection:
            counts["users"] = (await connection.execute(
                sa.delete(users).where(users.c.identifier.in_(identifiers)))).rowcount
        return counts
    finally:
        await engine.dispose()


async def _delete_threads(engine: Any, thread_ids: list[str]) -> Counts:
    """Delete threads and what hangs off them, children first, one transaction per chunk."""
    counts = _no_counts()
    for chunk in _chunks(thread_ids):
        async with engine.begin() as connection:
            their_steps = sa.select(steps.c.id).where(steps.c.threadId.in_(chunk)).scalar_subquery()
            for name, statement in (
                ("feedbacks", sa.delete(feedbacks).where(
                    sa.or_(feedbacks.c.threadId.in_(chunk), feedbacks.c.forId.in_(their_steps)))),
                ("elements", sa.delete(elements).where(
                    sa.or_(elements.c.threadId.in_(chunk), elements.c.forId.in_(their_steps)))),
                ("steps", sa.delete(steps).where(steps.c.threadId.in_(chunk))),
                ("conversations", sa.delete(threads).where(threads.c.id.in_(chunk))),
            ):
                counts[name] += (await connection.execute(statement)).rowcount
    return counts


def _no_counts() -> Counts:
    return {"conversations": 0, "steps": 0, "elements": 0, "feedbacks": 0}


def describe_counts(counts: Counts) -> str:
    return ", ".join(f"{number} {name}" for name, number in counts.items())


# --- in the running bot ---------------------------------------------------------------------------

_retention: asyncio.Task[None] | None = None


def start_retention(url: str | None, days: int, every_seconds: float = DAY_SECONDS) -> asyncio.Task[None] | None:
    """Purge now and then daily in the background for as long as the bot runs (app start-up calls it).

    Nothing to do when persistence is off or RETENTION_DAYS is 0. A failed purge is logged and tried
    again at the next round: it never stops the bot."""
    global _retention
    if url is None or days <= 0:
        return None
    if _retention is None or _retention.done():
        _retention = asyncio.get_running_loop().create_task(_purge_every(url, days, every_seconds))
    return _retention


async def _purge_every(url: str, days: int, every_seconds: float) -> None:
    while True:
        try:
            counts = await purge_expired(url, days)
            log.info("retention: removed %s last updated over %d days ago", describe_counts(counts), days)
        except Exception as error:  # noqa: BLE001  # retention must never take the bot down
            log.warning("retention: purge failed (%s: %s); next try in %g s",
                        type(error).__name__, (str(error).splitlines() or [""])[0][:200], every_seconds)
        await asyncio.sleep(every_seconds)


# --- command --------------------------------------------------------------------------------------

def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def configured_retention_days() -> int:
    """RETENTION_DAYS from the environment, else .env, else the Settings default."""
    from dotenv import dotenv_values

    from .project_paths import dotenv_file
    from .settings import Settings

    raw = os.environ.get("RETENTION_DAYS")
    if raw is None and dotenv_file().is_file():
        raw = dotenv_values(dotenv_file()).get("RETENTION_DAYS")
    if raw is None or not raw.strip():
        return int(Settings.model_fields["retention_days"].default)
    try:
        return _days(raw)
    except ValueError:
        raise ValueError("RETENTION_DAYS must be a whole number of days, 0 (keep forever) or more") from None


def _days(raw: str) -> int:
    days = int(raw)
    if days < 0:
        raise ValueError("days must be 0 (keep forever) or more")
    return days


def _since(raw: str) -> datetime:
    """A date (2026-11-01) or an ISO time; without a time zone, UTC."""
    moment = datetime.fromisoformat(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brandbot_runtime.transcripts", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser("export", help="conversations as JSONL, one per line")
    exporting.add_argument("--since", type=_since, help="only conversations updated since DATE (UTC)")
    exporting.add_argument("--out", help="write to FILE instead of standard output")
    purging = commands.add_parser("purge", help="delete conversations older than RETENTION_DAYS")
    purging.add_argument("--days", type=_days, help="instead of RETENTION_DAYS (0 keeps everything)")
    erasing = commands.add_parser("erase", help="delete everything of one customer or visitor")
    erasing.add_argument("--customer", required=True,
                         help="a verified customer's id, or a full identifier (customer:ID, visitor:ID)")
    arguments = parser.parse_args(list(argv) if argv is not None else None)

    from . import schema
    from .database_url import configured_url  # not persistence: that imports Chainlit, which writes into the cwd

    try:
        url = configured_url()
        days = 0
        if arguments.command == "purge":
            days = arguments.days if arguments.days is not None else configured_retention_days()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if url is None:
        print("persistence is off (DATABASE_URL=off): no conversations are stored", file=sys.stderr)
        return 1
    schema.upgrade(url)  # as the bot does at start-up: the tables exist, at the current schema
    if arguments.command == "export":
        if arguments.out is None:
            written = asyncio.run(export(url, sys.stdout, arguments.since))
        else:
            with open(arguments.out, "w", encoding="utf-8") as out:
                written = asyncio.run(export(url, out, arguments.since))
        print(f"exported {written} conversations", file=sys.stderr)
    elif arguments.command == "purge":
        if days == 0:
            print("RETENTION_DAYS is 0: conversations are kept forever; nothing removed")
            return 0
        print(f"removed {describe_counts(asyncio.run(purge_expired(url, days)))} "
              f"(conversations last updated over {days} days ago)")
    else:
        print(f"removed {describe_counts(asyncio.run(erase_customer(url, arguments.customer)))} "
              f"of {arguments.customer!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
