"""Reading a brand file: the YAML answers that `copier copy --data-file` takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class BrandFileError(Exception):
    """A brand file cannot be read; the message is one sentence a user can act on."""


def load_answers(path: Path) -> dict[str, Any]:
    """The answers in a brand file, parsed exactly as copier parses a data file (YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BrandFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BrandFileError(f"{path}: is a directory, not a brand file") from None
    except UnicodeDecodeError as error:
        raise BrandFileError(f"{path}: is not UTF-8 text (byte {error.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise BrandFileError(f"{path}:{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BrandFileError(f"{path}: must be a YAML mapping of question: answer, not a {type(data).__name__}")
    return {str(key): value for key, value in data.items()}
