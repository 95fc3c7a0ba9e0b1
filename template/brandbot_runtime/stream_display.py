"""Which part of a streamed answer can be shown now, so that what is shown never changes meaning later.

A markdown answer that arrives piece by piece cannot be rendered as it stands: half a code span
shows its backtick until the closing one arrives, half of `**bold**` shows two asterisks, a
table's header row is a paragraph until the row of dashes under it arrives, and the first
characters of a code fence show as text. `StreamedText` keeps the streamed text and says how
much of it is settled, line by line and word by word:

- complete lines are shown, but a line with `|` waits until it is known to be a table row
  (the row of dashes under the header has arrived) or the line after it has started;
- inside a fenced code block every line is shown as it grows (code is shown as written, and an
  unclosed fence already renders as code), except one that may be the closing fence;
- outside code, the line being written is shown up to its last complete word, and the letters and
  digits the word being written starts with (more of them change nothing before them; a word that
  may start `http` or `www` waits, as it may become a link); nothing of the line shows while it
  holds only block markers (`-`, `#`, `>`, `1.`: a list, heading or rule not yet known) or a `|`;
- nothing is shown from a code span, emphasis or link that has opened but not closed in the
  current block; at a block's end (a blank line, a new list item or heading) whatever stayed
  unclosed is literal text and shows.

Each piece is scanned once (the inline scan keeps its state between calls), so a long answer
costs time in proportion to its length. The final text is shown whole, through the same
`display.as_sent`, when the stream completes; what was shown before is a prefix of it that
renders the same way (tests/test_stream_display.py checks it on every prefix of sample answers).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_MARKERS_ONLY = re.compile(r"[ \t]*(?:[-*+=_#>|`~]|\d{1,9}[.)]?)*[ \t]*")
_NEW_BLOCK = re.compile(r" {0,3}(?:[-*+][ \t]|\d{1,9}[.)][ \t]|#{1,6}(?:[ \t]|$)|>)")
_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")
_DELIMITER_ROW = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*")
_EMPHASIS = "*_~"
_PLAIN_WORD = re.compile(r"[^\W_]+")  # letters and digits: a word growing by them shows as it grows


class _InlineScan:
    """Code spans, emphasis and links opened and not yet closed in one block, scanned once."""

    def __init__(self, start: int) -> None:
        self.position = start
        self.ticks: tuple[int, int] | None = None  # (position, length) of an open code span's backticks
        self.openers: dict[str, list[int]] = {char: [] for char in _EMPHASIS}
        self.brackets: list[int] = []  # `[` of links not yet closed
        self.destination: int | None = None  # position of a link's `[` while its `(url)` is being written

    def scan(self, text: str, end: int) -> None:
        """Move the scan to `end`, which must be followed by whitespace or be a line's end."""
        index = self.position
        while index < end:
            char = text[index]
            if self.ticks is not None:
                if char == "`":
                    run = _run(text, index, end)
                    if run == self.ticks[1]:
                        self.ticks = None
                    index += run
                else:
                    index += 1
                continue
            if self.destination is not None:
                if char == ")":
                    self.destination = None
                index += 1
                continue
            if char == "\\":
                index += 2
            elif char == "`":
                run = _run(text, index, end)
                self.ticks = (index, run)
                index += run
            elif char in _EMPHASIS:
                run = _run(text, index, end)
                self._emphasis(text, char, index, run)
                index += run
            elif char == "[":
                self.brackets.append(index)
                index += 1
            elif char == "]":
                opened = self.brackets.pop() if self.brackets else None
                if opened is not None and text.startswith("(", index + 1):
                    self.destination = opened
                    index += 2
                else:
                    index += 1
            else:
                index += 1
        self.position = max(index, end)

    def _emphasis(self, text: str, char: str, index: int, run: int) -> None:
        """A run of `*`, `_` or `~`: closes the open one of its kind if it can, else may open one."""
        before = text[index - 1] if index > 0 else " "
        after = text[index + run] if index + run < len(text) else " "
        can_open = not after.isspace()
        can_close = not before.isspace()
        if char == "_":  # intraword underscores (snake_case) are text
            can_open = can_open and not before.isalnum()
            can_close = can_close and not after.isalnum()
        if char == "~" and run < 2:
            return
        stack = self.openers[char]
        if can_close and stack:
            stack.pop()
        elif can_open:
            stack.append(index)

    def first_unclosed(self) -> int | None:
        """Where the earliest construct still open starts (nothing from there on is settled)."""
        found = [opened[0] for opened in self.openers.values() if opened] + self.brackets[:1]
        if self.ticks is not None:
            found.append(self.ticks[0])
        if self.destination is not None:
            found.append(self.destination)
        return min(found) if found else None


def _may_become_a_link(word: str) -> bool:
    """Whether a word's first letters may start a bare link (`http...`, `www...`), which renders otherwise."""
    word = word.lower()
    return any(start.startswith(word) or word.startswith(start) for start in ("http", "www"))


def _run(text: str, index: int, end: int) -> int:
    """The length of the run of `text[index]` starting at `index`, within `end`."""
    char, stop = text[index], index
    while stop < end and text[stop] == char:
        stop += 1
    return stop - index


class StreamedText:
    """The answer received so far and how much of it may be shown."""

    def __init__(self) -> None:
        self.text = ""
        self._lines_end = 0  # where the last complete line ends
        self._fence: str | None = None  # the opening run of the fenced code block the text is in
        self._pipes: list[tuple[int, str]] = []  # the last complete lines holding `|`: (start, line)
        self._after_heading = False
        self._scan = _InlineScan(0)

    def add(self, delta: str) -> None:
        """Append a piece of the answer."""
        self.text += delta
        last_break = max(self.text.rfind("\n"), self.text.rfind("\r"))
        if last_break >= self._lines_end:
            self._complete_lines(last_break + 1)

    def _complete_lines(self, end: int) -> None:
        start = self._lines_end
        for line in self.text[start:end].splitlines(keepends=True):
            self._line(start, line)
            start += len(line)
        self._lines_end = end

    def _line(self, start: int, line: str) -> None:
        """Take one complete line into the block structure."""
        body = line.rstrip("\r\n")
        if self._fence is not None:
            closing = _FENCE.match(body)
            if closing and closing.group(1)[0] == self._fence[0] and len(closing.group(1)) >= len(self._fence) \
                    and not body[closing.end():].strip():
                self._fence = None
                self._new_block(start + len(line))
            return
        opening = _FENCE.match(body)
        if opening and not (opening.group(1)[0] == "`" and "`" in body[opening.end():]):
            self._fence = opening.group(1)
            self._new_block(start + len(line))
            return
        if not body.strip() or self._after_heading or _NEW_BLOCK.match(body):
            self._new_block(start)  # a block ends here: what stayed unclosed is literal text
        self._after_heading = bool(_HEADING.match(body))
        self._pipes = [*self._pipes, (start, body)] if "|" in body else []

    def _new_block(self, start: int) -> None:
        self._scan = _InlineScan(start)
        self._pipes = []
        self._after_heading = False

    def shown(self) -> str:
        """The longest prefix of the text that is settled: it shows now as it will at the end."""
        text, end = self.text, self._lines_end
        partial = text[end:]
        if self._fence is not None:
            if partial and not partial.lstrip(" ").startswith(("`", "~")):
                end = len(text)
            return text[:end]
        if self._pipes and not self._is_table():
            end = self._pipes[-1][0]  # a header row, or prose with a `|`, until the next line tells
        elif partial and "|" not in partial and not _MARKERS_ONLY.fullmatch(partial):
            words = max(partial.rfind(" "), partial.rfind("\t"))
            if words > 0 and not _MARKERS_ONLY.fullmatch(partial[:words]):
                end += words  # not a bare marker: `-` alone under a line is a heading's underline
            letters = _PLAIN_WORD.match(partial, words + 1)
            if letters and not _may_become_a_link(letters.group()):
                words_end, end = end, letters.end() + self._lines_end  # letters and digits change nothing before
                self._scan_to(text, words_end)
        self._scan_to(text, end)
        unclosed = self._scan.first_unclosed()
        if unclosed is not None and unclosed < end:
            end = unclosed
        return text[:end].rstrip(" \t") if end < len(text) else text[:end]

    def _scan_to(self, text: str, end: int) -> None:
        """Move the inline scan forward to `end` (a word's end or a line's), never back."""
        if end > self._scan.position:
            self._scan.scan(text, end)

    def closing(self) -> str:
        """What closes a code block left open in the text shown, so that a note after it is not code."""
        return "" if self._fence is None else f"\n{self._fence}\n"

    def _is_table(self) -> bool:
        """Whether the lines with `|` at the end are a table: a row of dashes follows its header."""
        return any(_DELIMITER_ROW.fullmatch(line) and "-" in line for _, line in self._pipes[1:])
