"""`python -m brandbot_runtime.schema upgrade|current|head`: the schema by hand, e.g. before a deploy.

The database is the bot's own: DATABASE_URL from the environment or .env, else the project's
SQLite file (see brandbot_runtime.database_url). Chainlit is not imported: it would write its
files into the working directory.
"""

from __future__ import annotations

import sys

from brandbot_runtime import schema
from brandbot_runtime.database_url import configured_url, describe


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in {"upgrade", "current", "head"}:
        print("usage: python -m brandbot_runtime.schema upgrade|current|head", file=sys.stderr)
        return 2
    if argv[0] == "head":
        print(schema.head())
        return 0
    try:
        url = configured_url()
    except ValueError as error:
        print(f"DATABASE_URL: {error}", file=sys.stderr)
        return 2
    if url is None:
        print("persistence is off (DATABASE_URL=off): nothing to do", file=sys.stderr)
        return 0
    shown = describe(url)
    try:
        if argv[0] == "upgrade":
            schema.upgrade(url)
            print(f"{shown}: schema at {schema.head()}")
        else:
            print(f"{shown}: schema at {schema.current(url) or 'none'} (newest {schema.head()})")
    except Exception as error:  # noqa: BLE001  # one line for the operator, not a traceback
        detail = (str(error).splitlines() or [""])[0][:300]
        print(f"{shown}: {argv[0]} failed ({type(error).__name__}: {detail})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
