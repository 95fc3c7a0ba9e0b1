"""Showing texts exactly as they were written, in a chat that renders markdown.

Chainlit 2.12 renders messages with remark-directive, which takes `:name` (a colon before a
letter) as a directive and drops it: "Ref:QX-77" would show as "Ref". Raw HTML is not rendered
(unsafe_allow_html stays off) but disappears instead of showing. `as_sent` escapes exactly
those characters with markdown backslash escapes, outside code, so the customer sees every
character of a markdown text (the middleware's answers, the welcome) while bold, lists and
links still work. `plain` escapes every markdown character, for texts that are not markdown
(labels, the bot's own status and error texts).

The one change that is not a backslash: a bare URL directly followed by `<` is written as the
autolink `<url>` (it shows the same), so the escape of that `<` cannot end up inside the link.

Code is shown as written, so nothing inside it is escaped. Which lines are code (fenced or
indented blocks, inside lists or not), which lines form one paragraph (a code span may cross
them) and which are table rows (a code span ends at a cell's border) is CommonMark's and GitHub's
decision, so markdown-it-py, a CommonMark parser, makes it; it runs only for texts that could
hold a code block or a code span over several lines.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from markdown_it import MarkdownIt

# Block structure only (where code and paragraphs are), with GitHub's tables as Chainlit has them,
# and HTML read as text, since that is how as_sent shows it (an escaped `<` opens no HTML block).
_BLOCKS = MarkdownIt("commonmark").enable("table").disable(["inline", "html_block"])
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # lines as CommonMark counts them
_AUTOLINK = re.compile(r"<(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*|[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+)>")
_BARE_URL = re.compile(r"(?:https?://|www\.)[^\s<]*", re.IGNORECASE)
_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_TICKS = re.compile(r"`+")
_CELL_BORDER = re.compile(r"(?<!\\)\|")  # a table cell ends at a pipe that is not escaped
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


_ESCAPE_ALL = str.maketrans({char: "\\" + char for char in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"})
_EATEN = re.compile(r"[:<&]")  # the only characters as_sent ever escapes


def plain(text: str) -> str:
    """`text` with every ASCII punctuation character escaped, so markdown shows it as it is."""
    return text.translate(_ESCAPE_ALL)


def as_sent(markdown: str) -> str:
    """`markdown` with directive colons, HTML and entities escaped outside code blocks and spans."""
    if _EATEN.search(markdown) is None:
        return markdown  # most answers: nothing markdown would eat
    lines = _LINE.findall(markdown)
    layout = _layout(markdown)
    out: list[str] = []
    number = 0
    while number < len(lines):
        if number in layout.code:
            out.append(lines[number])
            number += 1
        elif number in layout.table:  # a code span ends at a cell's border
            out.append("|".join(_escape_inline(cell) for cell in _CELL_BORDER.split(lines[number])))
            number += 1
        else:
            end = layout.paragraphs.get(number, number + 1)  # a code span may cross a paragraph's lines
            out.append(_escape_inline("".join(lines[number:end])))
            number = end
    return "".join(out)


class _Layout(NamedTuple):
    """Where a text's code blocks, table rows and paragraphs of several lines are, by line number."""

    code: frozenset[int]
    table: frozenset[int]
    paragraphs: dict[int, int]  # first line -> the line after its last


_ONE_LINE_AT_A_TIME = _Layout(frozenset(), frozenset(), {})


def _layout(markdown: str) -> _Layout:
    """The text's layout, as far as escaping needs it; parsed only when a line alone cannot tell."""
    may_have_code_block = any(mark in markdown for mark in ("```", "~~~", "    ", "\t"))
    may_have_long_code_span = "`" in markdown and ("\n" in markdown or "\r" in markdown)
    if not (may_have_code_block or may_have_long_code_span):
        return _ONE_LINE_AT_A_TIME
    code: set[int] = set()
    table: set[int] = set()
    paragraphs: dict[int, int] = {}
    for token in _BLOCKS.parse(markdown):
        if token.map is None:
            continue
        start, end = token.map
        if token.type in ("fence", "code_block"):
            code.update(range(start, end))
        elif token.type == "table_open":
            table.update(range(start, end))
        elif token.type == "inline" and end - start > 1:
            paragraphs[start] = end
    return _Layout(frozenset(code), frozenset(table), paragraphs)


def _escape_inline(line: str) -> str:
    """Escape one line or paragraph, leaving code spans, autolinks and bare URLs as they are."""
    out: list[str] = []
    index = 0
    length = len(line)
    while index < length:
        char = line[index]
        if char == "\\" and index + 1 < length:
            out.append(line[index:index + 2])  # an escape the author wrote stays as written
            index += 2
            continue
        if char == "`":
            opening = _TICKS.match(line, index).group()  # type: ignore[union-attr]  # a run starts here
            close = next((run.end() for run in _TICKS.finditer(line, index + len(opening))
                          if len(run.group()) == len(opening)), None)  # a code span ends on a run as long
            out.append(line[index:close] if close else opening)
            index = close or index + len(opening)
            continue
        if char in "hHwW" and (index == 0 or not line[index - 1].isalnum()):
            url = _BARE_URL.match(line, index)
            if url:
                out.append(_bare_url(url.group(0), line[url.end():url.end() + 1], line[max(0, index - 2):index]))
                index = url.end()
                continue
        if char == "<":
            link = _AUTOLINK.match(line, index)
            if link:
                out.append(link.group(0))
                index = link.end()
                continue
            out.append("\\<")
        elif char == ":" and index + 1 < length and ((line[index + 1].isascii() and line[index + 1].isalpha())
                                                      or line[index + 1] in ":{["):
            out.append("\\:")
        elif char == "&" and _ENTITY.match(line, index):
            out.append("\\&")
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _bare_url(url: str, after: str, before: str) -> str:
    """A bare URL as written, or, when `<` follows it, as an autolink `<url>` showing the same link.

    GitHub's autolink extension runs a bare URL up to the next space or `<`, and takes a backslash
    in: the usual `\\<` after it would show a stray backslash and end the link in `%5C`. An
    autolink's angle brackets end it exactly, and do not show. Trailing punctuation and an
    unbalanced `)` stay outside, where the extension leaves them. A link's destination
    (`[text](url)`), a URL without a scheme and one holding `>` stay as written.
    """
    if after != "<" or before == "](" or not _SCHEME.match(url) or ">" in url:
        return url
    link = url.rstrip("?!.,:*_~")
    while link.endswith(")") and link.count(")") > link.count("("):
        link = link[:-1].rstrip("?!.,:*_~")
    return f"<{link}>{url[len(link):]}"
