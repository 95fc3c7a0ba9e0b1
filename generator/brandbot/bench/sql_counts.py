"""Reading the SQL statement counts a server under `counted_chainlit.py` keeps in its file.

Chainlit writes steps from tasks nobody waits for, so a round's writes go on after its last
answer. `settled()` waits until no count has moved for a quiet spell: the counts then hold
everything the round wrote, and the wait (less the quiet spell) says how long the backlog took.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Statements:
    """Statements a server's SQLAlchemy engines executed so far (or in a span, as a difference)."""

    select: int = 0
    insert: int = 0
    update: int = 0
    delete: int = 0
    other: int = 0
    commits: int = 0
    failed: int = 0
    rows_written: int = 0

    @property
    def writes(self) -> int:
        """INSERT, UPDATE and DELETE statements (Chainlit's upserts are INSERT ... ON CONFLICT)."""
        return self.insert + self.update + self.delete

    def __sub__(self, earlier: Statements) -> Statements:
        return Statements(**{item.name: getattr(self, item.name) - getattr(earlier, item.name)
                             for item in fields(self)})

    def __add__(self, other: Statements) -> Statements:
        return Statements(**{item.name: getattr(self, item.name) + getattr(other, item.name)
                             for item in fields(self)})


class StatementLog:
    """The counts file of one server (absent until its first statement)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Statements:
        try:
            counts = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Statements()
        return Statements(**{item.name: int(counts.get(item.name, 0)) for item in fields(Statements)})

    async def settled(self, quiet: float = 1.0, limit: float = 180.0) -> tuple[Statements, float]:
        """The counts once none moved for `quiet` seconds, and the seconds until the last one moved
        (the backlog's drain). Gives up after `limit` seconds with the counts as they are."""
        started = time.perf_counter()
        last, changed = self.read(), started
        while time.perf_counter() - changed < quiet and time.perf_counter() - started < limit:
            await asyncio.sleep(0.1)
            now = self.read()
            if now != last:
                last, changed = now, time.perf_counter()
        return last, changed - started
