"""Text that can always be encoded, whatever a middleware or a customer sent.

A Python str may hold lone surrogates (U+D800..U+DFFF): JSON allows the escape `"\\ud800"` and a
JavaScript middleware that cuts an emoji in half produces exactly that. Such a string cannot be
encoded as UTF-8, so once it is in a session's history every later request fails. Every string
that crosses a boundary into the bot goes through `clean_text` first.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Return `text` with every surrogate code point replaced by U+FFFD.

    In a Python str a surrogate is always lone (a valid pair is a single astral code point), so
    each is replaced on its own. Surrogates are the only code points UTF-8 cannot encode, so a
    successful encode proves the text clean: that C-speed check is the fast path; the regex runs
    only for text that needs it.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text)
    return text
