"""copier.yml's rules: a missing or bad answer fails with an error naming the question and the rule."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from brandbot.validation import jinja_environment, resolved_answers, validate_answers

from .helpers import REPO, copier_render

GOOD = {"brand_name": "Acme"}

BAD_ANSWERS: list[tuple[str, Any, str]] = [
    ("brand_name", "", "must not be empty"),
    ("brand_name", "   ", "must not be empty"),
    ("brand_name", "Acme\x07Bell", "control characters"),
    ("brand_name", "Two\nLines", "line breaks"),
    ("brand_name", "A" * 101, "at most 100 characters"),
    ("brand_slug", "Acme", "must match ^[a-z][a-z0-9-]*$"),
    ("brand_slug", "1acme", "must match ^[a-z][a-z0-9-]*$"),
    ("brand_slug", "acme_shop", "must match ^[a-z][a-z0-9-]*$"),
    ("bot_name", "", "must not be empty"),
    ("bot_name", "Maria\x7f", "control characters"),
    ("bot_role", "Role\u0085", "control characters"),
    ("welcome_message", "", "must not be empty"),
    ("welcome_message", "Hi\x00there", "control characters"),
    ("welcome_message", "x" * 4001, "at most 4000 characters"),
    ("categories", ["OrderTracking"], "must be a mapping"),
    ("categories", {"Order Tracking": {"label": "x"}}, "must be an identifier"),
    ("categories", {"9Lives": {}}, "must be an identifier"),
    ("categories", {"Returns": "Returns"}, "must be a mapping such as {label: ...}"),
    ("categories", {"Returns": {"label": ""}}, "categories.Returns.label: must not be empty"),
    ("categories", {"Returns": {"labl": "Returns"}}, "unknown key"),
    ("general_categories", "General", "must be a list of category ids"),
    ("general_categories", ["General", "Not valid"], "general_categories[1]"),
    ("general_categories", ["OrderTracking"], "is also a specialist category"),
    ("request_timeout_seconds", 0, "greater than 0 and at most 600"),
    ("request_timeout_seconds", 601, "greater than 0 and at most 600"),
    ("request_timeout_seconds", "nan", "must be a number"),
    ("request_timeout_seconds", float("nan"), "greater than 0 and at most 600"),
    ("request_timeout_seconds", float("inf"), "greater than 0 and at most 600"),
    ("request_timeout_seconds", "soon", "must be a number"),
    ("transition_delay_seconds", True, "must be a number"),
    ("transition_delay_seconds", -1, "between 0 and 10"),
    ("transition_delay_seconds", 10.5, "between 0 and 10"),
    ("auth_header", "x secret", "valid HTTP header name"),
    ("auth_header", "x-secret:", "valid HTTP header name"),
    ("auth_header", "", "valid HTTP header name"),
    ("auth_header", "x" * 65, "valid HTTP header name"),
    ("auth_header", "x-secret\n", "valid HTTP header name"),  # Python's `$` matches before a final newline
    ("brand_slug", "acme\n", "must match"),
    ("primary_color", "#1D4ED8\n", "must be a colour as #RRGGBB"),
    ("categories", {"Returns\n": {}}, "must be an identifier"),
    ("texts", {"thinking": ""}, "texts.thinking: must not be empty"),
    ("texts", {"thinkin": "Hmm..."}, 'unknown text id "thinkin"'),
    ("texts", ["Thinking..."], "must be a mapping of text id to wording"),
    ("language", "xx-YY", "must be one of Chainlit's UI languages"),
    ("language", "EN-us", "must be one of Chainlit's UI languages"),
    ("primary_color", "blue", "must be a colour as #RRGGBB"),
    ("primary_color", "#12345", "must be a colour as #RRGGBB"),
    ("primary_color", "#FACC15", "WCAG AA needs at least 4.5:1"),
    ("primary_color", "#777777", "WCAG AA needs at least 4.5:1"),
    ("logo", "/etc/logo.svg", "inside the brand's folder"),
    ("logo", "../logo.svg", "inside the brand's folder"),
    ("logo", "logo.gif", "must be a .svg or .png file"),
    ("favicon", "icon.jpg", "must be a .svg or .png file"),
    ("custom_css", "style.scss", "must be a .css file"),
    ("starters", [{"label": str(n), "message": "m"} for n in range(5)], "at most 4 starters"),
    ("starters", [{"label": "", "message": "m"}], "starters[0].label: must not be empty"),
    ("starters", [{"label": "Hi"}], "starters[0].message: must be text"),
    ("starters", [{"label": "Hi", "message": "m", "icon": "x"}], 'unknown key "icon"'),
    ("starters", "Track my order", "must be a list"),
]


@pytest.mark.parametrize(("question", "value", "rule"), BAD_ANSWERS,
                         ids=[f"{q}-{i}" for i, (q, _, _) in enumerate(BAD_ANSWERS)])
def test_a_bad_answer_fails_naming_the_question_and_the_rule(tmp_path: Path, question: str, value: Any,
                                                             rule: str) -> None:
    with pytest.raises(Exception) as raised:
        copier_render(tmp_path, {**GOOD, question: value})
    message = str(raised.value)
    assert question in message
    assert rule in message
    assert not (tmp_path / "out" / "brand.toml").exists()
    # brandbot validate reaches the same decision, for the same question and rule.
    problems = validate_answers({**GOOD, question: value})
    assert [problem.question for problem in problems] == [question]
    assert rule in problems[0].message


def test_a_missing_required_answer_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="brand_name"):
        copier_render(tmp_path, {})
    assert [str(problem) for problem in validate_answers({})] == ["brand_name: is required (no default)"]


def test_default_theme_is_light_or_dark(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="default_theme"):
        copier_render(tmp_path, {**GOOD, "default_theme": "sepia"})
    assert [str(problem) for problem in validate_answers({**GOOD, "default_theme": "sepia"})] == [
        "default_theme: must be one of light, dark"]


def test_the_cli_prints_the_question_and_the_rule(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--defaults", "--data", "brand_name=Acme", "--data",
         "auth_header=bad header", str(REPO), str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "auth_header" in result.stderr and "valid HTTP header name" in result.stderr


GOOD_TEXTS = [
    "O'Brien & \"Sons\"", "Back\\slash", "{{ 7*7 }}", "{% raw %}", "${HOME}", "%s %(x)d {0}", "🚀✨",
    "مرحبا بكم", "שלום", "Zoë — naïve café", "a:b Ref:QX-77", "<b>bold</b>",
]


@pytest.mark.parametrize("text", GOOD_TEXTS)
def test_any_printable_text_is_accepted_for_names_and_labels(tmp_path: Path, text: str) -> None:
    answers = {"brand_name": text, "bot_name": text, "bot_role": text, "welcome_message": text,
               "categories": {"Returns": {"label": text}}, "texts": {"thinking": text}}
    copier_render(tmp_path, answers)
    assert (tmp_path / "out" / "brand.toml").is_file()
    assert validate_answers(answers) == []


@pytest.mark.parametrize(("brand_name", "slug"), [
    ("Acme Outdoor", "acme-outdoor"), ("123 Go!", "brand-123-go"), ("¡¡¡", "brand-bot"), ("Zoë Café", "zo-caf"),
    ("--Hi--", "hi"), ("  Spaces  and __under__ ", "spaces-and-under"), ("a" * 70, "a" * 63),
    ("9" * 70, "brand-" + "9" * 57), ("ab-" + "c" * 59 + "-d", "ab-" + "c" * 59),
])
def test_the_default_slug_keeps_the_slug_rule(brand_name: str, slug: str) -> None:
    assert resolved_answers({"brand_name": brand_name})["brand_slug"] == slug
    assert re.search(jinja_environment().get_template("slug.jinja").module.SLUG, slug)


def test_the_header_name_rule_is_the_runtimes() -> None:
    """The runtime cannot read validators.jinja, so brand.py writes the same expression; here the two are one."""
    rules = jinja_environment().get_template("validators.jinja").module
    assert _runtime_auth_header_pattern() == rules.HEADER_NAME


def _runtime_auth_header_pattern() -> str:
    """The `pattern` of brandbot_runtime.brand.Brand's auth_header field (a literal or a module constant)."""
    tree = ast.parse((REPO / "template/brandbot_runtime/brand.py").read_text(encoding="utf-8"))
    constants = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)
                 for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                 if isinstance(target, ast.Name)}
    brand = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Brand")
    field = next(node.value for node in brand.body if isinstance(node, ast.AnnAssign)
                 and isinstance(node.target, ast.Name) and node.target.id == "auth_header")
    assert isinstance(field, ast.Call)
    pattern = next(keyword.value for keyword in field.keywords if keyword.arg == "pattern")
    value = ast.literal_eval(constants[pattern.id] if isinstance(pattern, ast.Name) else pattern)
    assert isinstance(value, str)
    return value


def test_every_language_has_every_built_in_text_and_the_texts_question_lists_them() -> None:
    builtin = jinja_environment().get_template("builtin_texts.jinja").module.BUILTIN_TEXTS
    ids = list(builtin["en"])
    assert all(list(wordings) == ids for wordings in builtin.values())
    help_text = yaml.safe_load((REPO / "copier.yml").read_text(encoding="utf-8"))["texts"]["help"]
    assert jinja_environment().from_string(help_text).render().endswith(f"(ids: {', '.join(ids)})")
