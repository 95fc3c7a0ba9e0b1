"""Reading a brand file: the YAML answers that `copier copy --data-file` takes.

A brand file may come from anyone, so it is bounded before any work is done on it: its size is
checked before it is read, and the YAML is composed by a loader that refuses aliases (a 560-byte
file of nested aliases expands to 10^8 values), nesting deeper than any question needs and more
keys and values than a brand at every bound has. The per-question bounds (at most 200
categories, text lengths) are copier.yml's validators' job; they hold in plain `copier copy` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from .bounded_read import NotRegularFile, TooLarge, read_regular_file

#: A brand file's largest size: every question at its longest, in 4-byte characters, fits in a quarter of it.
MAX_BRAND_FILE_BYTES = 1_000_000
#: Deepest nesting a brand needs is 4 (the file's mapping, categories, a category, its label).
MAX_DEPTH = 10
#: YAML nodes (keys and values): a brand at every question's bound (200 categories, 200 general
#: categories, every text, 4 starters) has about 1,300. Stopping there keeps a 1 MB file of tiny
#: values from costing seconds of parsing before the validators could count them.
MAX_NODES = 5_000


class BrandFileError(Exception):
    """A brand file cannot be read; the message is one sentence a user can act on."""


class BoundedYAMLError(ValueError):
    """YAML that would cost more to load than any brand needs: the question it was in and the rule."""

    def __init__(self, question: str, rule: str) -> None:
        self.question = question
        self.rule = rule
        super().__init__(f"{question}: {rule}")


def load_answers(path: Path) -> dict[str, Any]:
    """The answers in a brand file, parsed as copier parses a data file (YAML), within bounds."""
    text = _read_bounded(path)
    try:
        data = parse_yaml(text)
    except BoundedYAMLError as error:
        raise BrandFileError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise BrandFileError(f"{path}:{where}: invalid YAML: {problem}") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise BrandFileError(f"{path}: invalid YAML value: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BrandFileError(f"{path}: must be a YAML mapping of question: answer, not a {type(data).__name__}")
    return {str(key): value for key, value in data.items()}


def _read_bounded(path: Path) -> str:
    """The file's text, refused before reading when it is not a regular file or is too large."""
    try:
        data = read_regular_file(path, MAX_BRAND_FILE_BYTES)
    except FileNotFoundError:
        raise BrandFileError(f"{path}: no such file") from None
    except PermissionError:
        raise BrandFileError(f"{path}: permission denied") from None
    except NotRegularFile:
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise BrandFileError(f"{path}: is {kind}, not a brand file") from None
    except TooLarge as error:
        got = f"got {error.size}" if error.size is not None else "it grew while read"
        raise BrandFileError(f"{path}: a brand file is at most {MAX_BRAND_FILE_BYTES} bytes ({got})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BrandFileError(f"{path}: is not UTF-8 text (byte {error.start})") from None


def parse_yaml(text: str, question: str | None = None) -> Any:
    """YAML as yaml.safe_load reads it, but refusing aliases, deep nesting and too many nodes.

    Also used for a `type: yaml` answer given as a string (copier parses it a second time); then
    `question` is that answer's question, which refusals name.
    """
    loader = _BoundedLoader(text, question)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer stops at the first alias or at MAX_DEPTH levels, naming the question."""

    def __init__(self, stream: str, question: str | None) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._answer_of = question
        self._question: list[str] = []

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        question = self._where(parent, index)
        if self.check_event(AliasEvent):
            mark = self.peek_event().start_mark
            raise BoundedYAMLError(question, f"YAML aliases (*name) are not allowed in a brand file "
                                             f"(line {mark.line + 1}); write the value out")
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise BoundedYAMLError(question, f"nested more than {MAX_DEPTH} levels deep; no question needs that")
            if self._nodes > MAX_NODES:
                raise BoundedYAMLError(question, f"a brand file holds at most {MAX_NODES} YAML keys and values; "
                                                 "this one has more")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _where(self, parent: Node | None, index: Any) -> str:
        """The top-level question being read (the brand file's own mapping is at depth 1)."""
        if self._answer_of is not None:
            return self._answer_of
        if self._depth == 1 and isinstance(parent, MappingNode):
            if isinstance(index, ScalarNode):  # a value: its key was just composed
                self._question = [str(index.value)]
            elif index is None:  # a key
                self._question = []
        return self._question[0] if self._question else "brand file"
