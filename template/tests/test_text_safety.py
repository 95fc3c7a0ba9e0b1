"""clean_text makes any str encodable, and leaves clean text as it is."""

from __future__ import annotations

import json

import pytest

from brandbot_runtime.text_safety import REPLACEMENT, clean_text


@pytest.mark.parametrize(("raw", "expected"), [
    ("a \ud800", f"a {REPLACEMENT}"),
    ("\udfff end", f"{REPLACEMENT} end"),
    ("\ud83d\ude00", REPLACEMENT * 2),
    ("half an emoji \ud83d", f"half an emoji {REPLACEMENT}"),
    (json.loads('"x\\ud800y\\udc00z"'), f"x{REPLACEMENT}y{REPLACEMENT}z"),
])
def test_lone_surrogates_become_replacement_characters(raw: str, expected: str) -> None:
    cleaned = clean_text(raw)
    assert cleaned == expected
    cleaned.encode("utf-8")


@pytest.mark.parametrize("clean", ["", "plain", "héllo wörld", "😀 emoji", "\ufffd", "\U0010ffff", "日本語"])
def test_clean_text_is_returned_unchanged(clean: str) -> None:
    assert clean_text(clean) is clean


def test_a_valid_pair_escaped_in_json_stays_one_character() -> None:
    text = json.loads('"\\ud83d\\ude00"')
    assert clean_text(text) == "😀"
