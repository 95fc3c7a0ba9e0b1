"""`python -m brandbot_runtime.schema upgrade|current|head`: the schema by hand, e.g. before a deploy.

The database is the bot's own: DATABASE_URL from the environment or .env, else the project's
SQLite file (see brandbot_runtime.persistence).
"""

from __future__ import annotations

import sys

from brandbot_runtime import persistence, schema


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in {"upgrade", "current", "head"}:
        print("usage: python -m brandbot_runtime.schema upgrade|current|head", file=sys.stderr)
        return 2
    if argv[0] == "head":
        print(schema.head())
        return 0
    try:
        url = persistence.configured_url()
    except ValueError as error:
        print(f"DATABASE_URL: {error}", file=sys.stderr)
        return 2
    if url is None:
        print("persistence is off (DATABASE_URL=off): nothing to do", file=sys.stderr)
        return 0
    shown = persistence.describe(url)
    if argv[0] == "upgrade":
        schema.upgrade(url)
        print(f"{shown}: schema at {schema.head()}")
    else:
        print(f"{shown}: schema at {schema.current(url) or 'none'} (newest {schema.head()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
