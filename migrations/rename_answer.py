"""Carry an answer forward when a question is renamed: used by copier.yml's `_migrations`.

    python rename_answer.py ANSWERS_FILE OLD_NAME NEW_NAME

Runs in the generated project before `copier update` reads the answers, so the old answer is
offered as the new question's answer. Only the standard library and PyYAML (which copier
itself needs) are used. A missing old answer, or a new one already there, leaves the file alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def rename(answers_file: Path, old: str, new: str) -> bool:
    """Rename `old` to `new` in the answers file; True if the file changed."""
    text = answers_file.read_text(encoding="utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    answers = yaml.safe_load(text) or {}
    if old not in answers or new in answers:
        return False
    answers[new] = answers.pop(old)
    body = yaml.safe_dump(answers, allow_unicode=True)  # keys sorted, as copier writes them
    answers_file.write_text(header + body, encoding="utf-8")
    return True


def main(arguments: list[str]) -> int:
    if len(arguments) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    answers_file, old, new = Path(arguments[0]), arguments[1], arguments[2]
    changed = rename(answers_file, old, new)
    print(f"{answers_file}: {'renamed' if changed else 'kept'} {old} -> {new}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
