"""`chainlit run`, counting every SQL statement the server's SQLAlchemy engines execute.

The persistence mode needs database writes per answer from the bot and from the floor alike, on
SQLite (which keeps no statistics) as on PostgreSQL, without touching the bot's code. So the
server is started as `python counted_chainlit.py COUNTS_FILE run app.py ...`: SQLAlchemy's
engine events count each statement by kind (and the rows it wrote, and each commit) in this
process, a daemon thread rewrites COUNTS_FILE whenever a count changed (at most every 0.1 s),
then Chainlit's own command line takes over.

Nothing imports this file: it runs by path, so it imports nothing of brandbot (the bench
package's module names, `config` or `run`, would shadow others) and puts the working directory
first on sys.path, as `python -m chainlit` does.
"""

import json
import os
import sys
import threading
import time
from typing import Any

KINDS = ("select", "insert", "update", "delete", "other", "commits", "failed", "rows_written")
_counts = dict.fromkeys(KINDS, 0)  # every key exists from the start: the writer thread copies it safely


def _kind(statement: str) -> str:
    verb = statement.lstrip().split(None, 1)[0].lower() if statement.strip() else ""
    return verb if verb in ("select", "insert", "update", "delete") else "other"


def _after_execute(_conn: Any, cursor: Any, statement: str, *_rest: Any) -> None:
    kind = _kind(statement)
    _counts[kind] += 1
    if kind in ("insert", "update", "delete") and (cursor.rowcount or 0) > 0:
        _counts["rows_written"] += cursor.rowcount


def _commit(_conn: Any) -> None:
    _counts["commits"] += 1


def _failed(_context: Any) -> None:
    _counts["failed"] += 1


def _write_counts(path: str) -> None:
    """Rewrite the file (atomically) whenever a count changed."""
    last = None
    while True:
        now = dict(_counts)
        if now != last:
            with open(path + ".tmp", "w", encoding="utf-8") as out:
                json.dump(now, out)
            os.replace(path + ".tmp", path)
            last = now
        time.sleep(0.1)


def main() -> None:
    counts_path, chainlit_args = sys.argv[1], sys.argv[2:]
    sys.path[0] = os.getcwd()
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "after_cursor_execute", _after_execute)
    event.listen(Engine, "commit", _commit)
    event.listen(Engine, "handle_error", _failed)
    threading.Thread(target=_write_counts, args=(counts_path,), name="sql-counts", daemon=True).start()
    from chainlit.cli import cli

    sys.argv = ["chainlit", *chainlit_args]
    cli(prog_name="chainlit")


if __name__ == "__main__":
    main()
