"""Property-based tests over every string question: copier and `brandbot validate` agree on any
string, every accepted one renders to files that parse and reaches the app unchanged, and every
rejected one names its question."""

from __future__ import annotations

import html
import shutil
import tomllib
import warnings
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brandbot.rendered_project import brand_data, project_display
from brandbot.validation import validate_answers

from .helpers import REPO, record_figure

EXAMPLES_PER_QUESTION = 40

# Every free-text answer, and how to put a string into it.
QUESTIONS: dict[str, Any] = {
    "brand_name": lambda text: {"brand_name": text},
    "bot_name": lambda text: {"bot_name": text},
    "bot_role": lambda text: {"bot_role": text},
    "welcome_message": lambda text: {"welcome_message": text},
    "categories": lambda text: {"categories": {"Returns": {"label": text}}},
    "starters": lambda text: {"starters": [{"label": text[:60] or "x", "message": text}]},
    "texts": lambda text: {"texts": {"specialist_transition": text}},
    "brand_slug": lambda text: {"brand_slug": text},
    "auth_header": lambda text: {"auth_header": text},
    "primary_color": lambda text: {"primary_color": text},
    "language": lambda text: {"language": text},
    "logo": lambda text: {"logo": text},
}

# Any Unicode, with the troublemakers made likely: controls, surrogates, quotes, braces, RTL, emoji.
NASTY = st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\x85", "\n", "\t", "\r", "\ud800", "\u2028", "\u200f",
                         '"', "'", "\\", "{{", "}}", "{%", "%}", "${X}", "%s", "{0}", "{label}", "<", ">", "&", ":",
                         "🚀", "مرحبا", "שלום", "#", "-", "é"])
NASTY_TEXT = st.lists(st.one_of(st.text(min_size=1, max_size=8), NASTY), min_size=0, max_size=8).map("".join)
PRINTABLE = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=120)
STRINGS = st.one_of(NASTY_TEXT, PRINTABLE)
# Answers with a pattern also get strings near the pattern, so both outcomes are common.
NEAR_PATTERN: dict[str, Any] = {
    "brand_slug": st.from_regex(r"[a-z0-9-][a-z0-9_-]{0,70}", fullmatch=True),
    "auth_header": st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~ :-]{0,70}", fullmatch=True),
    "primary_color": st.from_regex(r"#[0-9A-Fa-f]{5,7}", fullmatch=True),
    "language": st.sampled_from(["en-US", "es", "fr-FR", "de-DE", "ja", "zh-TW", "pt-BR", "EN-us", "xx", ""]),
    "logo": st.from_regex(r"(\.\./|/)?[a-z]{1,8}(/[a-z]{1,8})?\.(svg|png|gif|SVG)", fullmatch=True),
}


@pytest.fixture(scope="module")
def data_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """copier.yml, the Jinja beside it (validators, slug, theme, built-in texts) and the template's rendered
    files, outside git, so that copier renders in milliseconds; the verbatim Python and translations are left
    out because no answer reaches them."""
    root = tmp_path_factory.mktemp("data-template")
    for source in (REPO / "copier.yml", *REPO.glob("*.jinja"), *(REPO / "template").rglob("*.jinja")):
        target = root / source.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return root


def copier_decision(template: Path, destination: Path, answers: dict[str, Any]) -> str | None:
    """None if copier renders the answers, else its error message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copier.run_copy(str(template), str(destination), data=answers, defaults=True, quiet=True)
    except Exception as error:  # noqa: BLE001 - any refusal counts, its text is checked
        return str(error) or type(error).__name__
    return None


@pytest.mark.parametrize("question", list(QUESTIONS))
def test_copier_and_brandbot_validate_agree_on_any_string(question: str, data_template: Path,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    display = project_display(REPO / "template")  # the generated runtime's, from the template as it is
    outcome = {"accepted": 0, "rejected": 0}

    @settings(max_examples=EXAMPLES_PER_QUESTION, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    @given(text=st.one_of(STRINGS, NEAR_PATTERN[question]) if question in NEAR_PATTERN else STRINGS)
    def check(text: str) -> None:
        answers = {"brand_name": "Fuzz Brand", **QUESTIONS[question](text)}
        brandbot_problems = validate_answers(answers)
        destination = tmp_path_factory.mktemp("fuzz") / "out"
        copier_refusal = copier_decision(data_template, destination, answers)
        assert (brandbot_problems == []) == (copier_refusal is None), (text, brandbot_problems, copier_refusal)
        if copier_refusal is not None:
            outcome["rejected"] += 1
            assert question in copier_refusal
            assert {problem.question for problem in brandbot_problems} == {question}
            return
        outcome["accepted"] += 1
        raw_brand_data = tomllib.loads((destination / "brand.toml").read_text(encoding="utf-8"))
        config = tomllib.loads((destination / ".chainlit/config.toml").read_text(encoding="utf-8"))
        stored = yaml.safe_load((destination / ".copier-answers.yml").read_text(encoding="utf-8"))
        brand = brand_data(destination / "brand.toml")  # what the app will show
        assert stored[question] == answers[question]
        if question == "brand_name":
            assert brand.brand_name == text and html.unescape(config["UI"]["name"]) == text
        elif question in ("bot_name", "bot_role", "welcome_message", "brand_slug", "auth_header", "language"):
            assert getattr(brand, question) == text
        elif question == "categories":
            assert brand.specialist_label("Returns") == text
            assert unescape(display.plain(brand.texts.specialist(text))).endswith(text + " Specialist...")
        elif question == "starters":
            assert brand.starters[0].message == text
        elif question == "texts":
            assert brand.texts.specialist_transition == text
        assert raw_brand_data["brand_name"] == "Fuzz Brand" or question == "brand_name"
        shutil.rmtree(destination)

    check()
    total = outcome["accepted"] + outcome["rejected"]
    assert total >= EXAMPLES_PER_QUESTION // 2
    record_figure("brand fuzz examples", total, f"{question}: {outcome['accepted']} accepted, "
                                                 f"{outcome['rejected']} rejected")


def unescape(markdown: str) -> str:
    """Undo display.plain's backslash escapes."""
    out, index = [], 0
    while index < len(markdown):
        if markdown[index] == "\\" and index + 1 < len(markdown):
            index += 1
        out.append(markdown[index])
        index += 1
    return "".join(out)
