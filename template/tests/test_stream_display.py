"""A streamed answer never shows something that changes meaning later.

For sample answers with the markdown customers meet (emphasis, code spans and blocks, tables,
lists, links, headings, escapes), every prefix is fed to StreamedText as it would arrive, and what
it allows to be shown is rendered the way the chat renders it (`as_sent`, then CommonMark with
GitHub's tables): its visible text must be a beginning of the final answer's visible text, and its
elements a beginning of the final answer's elements. So no backtick, asterisk or fence flickers on
screen, no paragraph turns into a table, and no half code block changes into something else.
"""

from __future__ import annotations

import itertools
import random
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from brandbot_runtime.display import as_sent
from brandbot_runtime.stream_display import StreamedText

_RENDER = MarkdownIt("commonmark").enable(["table", "strikethrough"])

ANSWERS = {
    "prose": "Your order left our warehouse yesterday and should arrive within 2 business days. "
             "The tracking link is in your confirmation email.",
    "inline": "Use **express delivery** for *next-day* parcels, see `order_status` and the "
              "[tracking page](https://example.com/track?id=1) or <https://example.com/help>. "
              "Keep snake_case_names, 5 * 3 = 15 and ~~old~~ prices as written.",
    "code block": "Run this:\n\n```python\nfor item in order.items:\n    print(item.name, \"`*`\")\n```\n\n"
                  "Then restart. ~~~ is not a fence here.",
    "table": "Our plans:\n\n| plan | price | data |\n|:-----|------:|:----:|\n| Basic | 10 € | 5 GB |\n"
             "| Plus | 20 € | **50 GB** |\n\nAll prices include VAT.",
    "lists": "# Returns\n\n1. Open **My orders**\n2. Choose `Return`\n   - print the label\n   - drop the parcel\n\n"
             "> Refunds take 5 days.\n\n---\n\nQuestions? Ref:QX-77 <b>not html</b> &amp; more.",
    "code span across lines": "The code `a very long\ncode span` crosses a line, and this *emphasis\nalso* does.",
    "tilde fence and heading": "## Steps\n~~~\nraw ** text `here\n~~~\nDone: all *good*.",
    "unicode": "Grüße 👋🏽 — ¿Qué tal? Ünïcödé *ok* «fin».",
}


class _Structure(HTMLParser):
    """The visible text and the sequence of elements of rendered HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def structure(markdown: str) -> tuple[str, list[str]]:
    parsed = _Structure()
    parsed.feed(_RENDER.render(as_sent(markdown)))
    return " ".join("".join(parsed.text).split()), parsed.tags


def shown_after_each_piece(answer: str, pieces: list[str]) -> list[str]:
    streamed = StreamedText()
    shown = []
    for piece in pieces:
        streamed.add(piece)
        shown.append(streamed.shown())
    assert "".join(pieces) == answer == streamed.text
    return shown


def random_pieces(answer: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces, index = [], 0
    while index < len(answer):
        size = rng.randint(1, 12)
        pieces.append(answer[index:index + size])
        index += size
    return pieces


@pytest.mark.parametrize("name", list(ANSWERS))
def test_what_is_shown_is_always_a_beginning_of_the_final_rendering(name: str) -> None:
    answer = ANSWERS[name]
    final_text, final_tags = structure(answer)
    for pieces in ([*answer], *(random_pieces(answer, seed) for seed in range(5))):
        for shown in shown_after_each_piece(answer, pieces):
            assert answer.startswith(shown)
            text, tags = structure(shown)
            assert final_text.startswith(text), (shown, text)
            assert final_tags[:len(tags)] == tags, (shown, tags)


@pytest.mark.parametrize("name", list(ANSWERS))
def test_the_answer_shows_progressively_and_never_shrinks(name: str) -> None:
    answer = ANSWERS[name]
    shown = shown_after_each_piece(answer, [*answer])
    assert all(len(later) >= len(earlier) for earlier, later in itertools.pairwise(shown))
    assert len({len(text) for text in shown}) > 5  # it grew in many steps, not only at the end


def test_plain_prose_shows_as_it_grows() -> None:
    """A word of letters and digits shows while it is written: the first token shows at once."""
    streamed = StreamedText()
    streamed.add("Yo")
    assert streamed.shown() == "Yo"
    streamed.add("ur order le")
    assert streamed.shown() == "Your order le"
    streamed.add("ft our ware")
    assert streamed.shown() == "Your order left our ware"


def test_a_word_that_may_become_a_link_or_markup_waits_until_complete() -> None:
    streamed = StreamedText()
    streamed.add("see https")
    assert streamed.shown() == "see"
    streamed.add("://example.com/x and **Re")
    assert streamed.shown() == "see https://example.com/x and"
    streamed.add("f** Ref:QX")
    assert streamed.shown() == "see https://example.com/x and **Ref** Ref"  # the letters before the colon
    streamed.add("-77 ok")
    assert streamed.shown() == "see https://example.com/x and **Ref** Ref:QX-77 ok"


def test_unclosed_markup_waits_and_closed_markup_shows() -> None:
    streamed = StreamedText()
    streamed.add("Use **express deli")
    assert streamed.shown() == "Use"
    streamed.add("very** or `code")
    assert streamed.shown() == "Use **express delivery** or"
    streamed.add("` now ")
    assert streamed.shown() == "Use **express delivery** or `code` now"


def test_a_table_appears_once_its_header_is_known_to_be_one() -> None:
    streamed = StreamedText()
    streamed.add("Plans:\n\n| plan | price |\n")
    assert streamed.shown() == "Plans:\n\n"
    streamed.add("|---|---|\n| Basic | 10")
    assert streamed.shown() == "Plans:\n\n| plan | price |\n|---|---|\n"


def test_a_code_block_grows_line_by_line_but_its_closing_fence_waits() -> None:
    streamed = StreamedText()
    streamed.add("```py")
    assert streamed.shown() == ""
    streamed.add("\nprint(1")
    assert streamed.shown() == "```py\nprint(1"
    streamed.add(")\n``")
    assert streamed.shown() == "```py\nprint(1)\n"
    streamed.add("`\nok")
    assert streamed.shown() == "```py\nprint(1)\n```\nok"


def test_a_long_answer_is_scanned_once() -> None:
    """A 1 MB answer in 4 KB pieces: each piece costs its own length, not the answer's."""
    streamed = StreamedText()
    piece = "lorem *ipsum* dolor `sit` amet " * 130
    for _ in range(256):
        streamed.add(piece)
        streamed.shown()
    assert streamed._scan.position > len(streamed.text) - len(piece)
