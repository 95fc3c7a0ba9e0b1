"""Texts reach the customer as written: markdown kept, directive colons, HTML and entities escaped."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from brandbot_runtime.display import as_sent, plain

COMMONMARK = MarkdownIt("commonmark").enable("table")  # with GitHub's tables, as Chainlit reads markdown
HTML_AS_TEXT = MarkdownIt("commonmark").enable("table").disable("html_block")  # a reply whose HTML shows as text
#: Markdown's structure characters, in runs: fences, indentation, lists, quotes, and what is escaped.
MARKDOWN_PIECES = st.lists(st.sampled_from(["\n", "\n\n", " ", "    ", "\t", "```", "~~~", "`", "- ", "1. ", "> ",
                                            ":", "a:b", "<b>", "&amp;", "&", "x", "Ref", "é", "🚀",
                                            "|", "| ", "|---|---|", "\\"]),
                           max_size=30).map("".join)


@pytest.mark.parametrize(
    ("written", "escaped"),
    [
        ("Your parcel Ref:QX-77 is status:shipped", "Your parcel Ref\\:QX-77 is status\\:shipped"),
        ("Open 9:30 to 17:00, Mon-Fri", "Open 9:30 to 17:00, Mon-Fri"),
        ("Note: bring ID", "Note: bring ID"),
        ("**Order:** A1", "**Order:** A1"),
        ("a::b and :::c", "a\\:\\:b and \\:\\:\\:c"),
        ("<b>bold</b> & <script>alert(1)</script>", "\\<b>bold\\</b> & \\<script>alert(1)\\</script>"),
        ("5 < 6 and 7 > 3", "5 \\< 6 and 7 > 3"),
        ("&amp; and &#169; and &copy;", "\\&amp; and \\&#169; and \\&copy;"),
        ("Tom & Jerry", "Tom & Jerry"),
        ("see https://shop.example/order:42 now", "see https://shop.example/order:42 now"),
        ("https://shop.example/a:b or www.shop.example/x:y", "https://shop.example/a:b or www.shop.example/x:y"),
        ("what:ever", "what\\:ever"),
        ("Track it at https://shop.example/track<br>Thanks", "Track it at <https://shop.example/track>\\<br>Thanks"),
        ("see https://x.example/a.<b> or www.x.example<i>", "see <https://x.example/a>.\\<b> or www.x.example\\<i>"),
        ("See [tracking](https://shop.example/track)<br>", "See [tracking](https://shop.example/track)\\<br>"),
        ("![map](https://shop.example/m.png)<br>", "![map](https://shop.example/m.png)\\<br>"),
        ("(see https://shop.example/x)<br>", "(see <https://shop.example/x>)\\<br>"),
        ("https://shop.example/wiki/A_(b)<br>", "<https://shop.example/wiki/A_(b)>\\<br>"),
        ("<https://shop.example/a:b> and <help@shop.example>", "<https://shop.example/a:b> and <help@shop.example>"),
        ("[track](https://t.example/x?id=1)", "[track](https://t.example/x?id=1)"),
        ("`code a:b <i>` and ``x`y:z``", "`code a:b <i>` and ``x`y:z``"),
        ("```\nkey:value <tag>\n```\nafter:it", "```\nkey:value <tag>\n```\nafter\\:it"),
        ("~~~yaml\na:b\n~~~", "~~~yaml\na:b\n~~~"),
        ("Config:\n\n    key:value <tag>\n\nafter:it", "Config:\n\n    key:value <tag>\n\nafter\\:it"),
        ("x\n\n\tcode a:b", "x\n\n\tcode a:b"),
        ("Text a:b\n    more c:d", "Text a\\:b\n    more c\\:d"),  # a paragraph goes on: not code
        ("1. step\n\n    note:this\n", "1. step\n\n    note\\:this\n"),  # the list item goes on: not code
        ("- run:\n  ```\n  a:b\n  ```\n- b:c", "- run:\n  ```\n  a:b\n  ```\n- b\\:c"),
        ("> quote:x\n>\n>     code:y", "> quote\\:x\n>\n>     code:y"),
        ("a:b\r\n```\r\nc:d\r\n```\r\ne:f", "a\\:b\r\n```\r\nc:d\r\n```\r\ne\\:f"),
        ("Use `git\nco:main` now:ok", "Use `git\nco:main` now\\:ok"),  # a code span over two lines
        ("`a\n\nb:c`", "`a\n\nb\\:c`"),  # a blank line ends the paragraph: no code span
        ("- `a\n- b:c`", "- `a\n- b\\:c`"),  # nor does one cross list items
        ("`x ```a:b``` y:z", "`x ```a:b``` y\\:z"),  # a span closes on a run of its own length only
        ("<b>\n```\na:b\n```", "\\<b>\n```\na:b\n```"),  # shown as text, HTML hides no fence
        ("| a | b |\n|---|---|\n| `x | y:z` |", "| a | b |\n|---|---|\n| `x | y\\:z` |"),  # cells end spans
        ("| `a:b` | c:d |\n|---|---|\n| e | f |", "| `a:b` | c\\:d |\n|---|---|\n| e | f |"),
        ("already \\: escaped", "already \\: escaped"),
        ("- one:two\n- three", "- one\\:two\n- three"),
        ("unclosed `tick a:b", "unclosed `tick a\\:b"),
        ("", ""),
    ],
)
def test_as_sent_escapes_only_what_markdown_would_eat(written: str, escaped: str) -> None:
    assert as_sent(written) == escaped


@pytest.mark.parametrize("text", ["Order {{ Tracking }} ${X} %s \"\\\" 📦", "1. not a list", "# not a heading",
                                  "*not* _emphasis_ [no](link)", "a:b <c> &amp;"])
def test_plain_escapes_every_markdown_character(text: str) -> None:
    escaped = plain(text)
    unescaped, index = [], 0
    while index < len(escaped):
        if escaped[index] == "\\":
            index += 1
        unescaped.append(escaped[index])
        index += 1
    assert "".join(unescaped) == text
    assert all(escaped[i - 1] == "\\" for i, char in enumerate(escaped) if char in "*_[]#<&:`" and i > 0)


def only_escapes_added(written: str, shown: str) -> bool:
    """Whether `shown` is `written` with backslashes put before some of its `:`, `<` and `&`."""
    at = 0
    for char in written:
        if shown[at:at + 2] == "\\" + char and char in ":<&":
            at += 1
        if shown[at:at + 1] != char:
            return False
        at += 1
    return at == len(shown)


def code_of(markdown: str, reader: MarkdownIt = COMMONMARK) -> list[tuple[str, str]]:
    """The code blocks and spans `reader` finds in `markdown`, with their contents."""
    blocks = reader.parse(markdown)
    tokens = [*blocks, *(inline for block in blocks for inline in block.children or [])]
    return [(token.type, token.content) for token in tokens if token.type in ("fence", "code_block", "code_inline")]


@settings(max_examples=400, deadline=None)
@given(MARKDOWN_PIECES)
def test_as_sent_only_adds_backslashes_and_never_inside_code(written: str) -> None:
    shown = as_sent(written)
    assert only_escapes_added(written, shown)  # nothing lost, nothing else added
    assert code_of(shown) == code_of(written, HTML_AS_TEXT)  # code keeps its exact contents
    assert as_sent(shown) == shown  # what it wrote is already safe
