"""Showing texts exactly as they were written, in a chat that renders markdown.

Chainlit 2.12 renders messages with remark-directive, which takes `:name` (a colon before a
letter) as a directive and drops it: "Ref:QX-77" would show as "Ref". Raw HTML is not rendered
(unsafe_allow_html stays off) but disappears instead of showing. `as_sent` escapes exactly
those characters with markdown backslash escapes, outside code, so the customer sees every
character of a markdown text (the middleware's answers, the welcome) while bold, lists and
links still work. `plain` escapes every markdown character, for texts that are not markdown
(labels, the bot's own status and error texts).

Code is shown as written, so nothing inside it is escaped. Which lines are code (fenced or
indented blocks, inside lists or not) is CommonMark's decision, so markdown-it-py, a CommonMark
parser, makes it; it runs only for texts that have a fence or an indented line.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

_BLOCKS = MarkdownIt("commonmark").disable("inline")  # block structure only: where the code is
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")  # lines as CommonMark counts them
_AUTOLINK = re.compile(r"<(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*|[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+)>")
_BARE_URL = re.compile(r"(?:https?://|www\.)[^\s<]*", re.IGNORECASE)
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
    code = _code_lines(markdown)
    return "".join(line if number in code else _escape_inline(line)
                    for number, line in enumerate(_LINE.findall(markdown)))


def _code_lines(markdown: str) -> set[int]:
    """Numbers of the lines that belong to a fenced or indented code block."""
    if not any(mark in markdown for mark in ("```", "~~~", "    ", "\t")):
        return set()  # no fence and no indented line: no code block
    lines: set[int] = set()
    for token in _BLOCKS.parse(markdown):
        if token.type in ("fence", "code_block") and token.map:
            lines.update(range(*token.map))
    return lines


def _escape_inline(line: str) -> str:
    """Escape one line, leaving code spans, autolinks and bare URLs as they are."""
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
            run = len(line[index:]) - len(line[index:].lstrip("`"))
            ticks = line[index:index + run]
            close = line.find(ticks, index + run)
            while close != -1 and line[close + run:close + run + 1] == "`":
                close = line.find(ticks, close + run + 1)
            if close != -1:
                out.append(line[index:close + run])
                index = close + run
                continue
            out.append(ticks)
            index += run
            continue
        if char in "hHwW" and (index == 0 or not line[index - 1].isalnum()):
            url = _BARE_URL.match(line, index)
            if url:
                out.append(url.group(0))
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
