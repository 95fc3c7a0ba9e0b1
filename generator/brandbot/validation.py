"""Checks brand answers against copier.yml's own questions and validators.

copier.yml is the one definition of a brand's answers. Rather than restating its rules, this
module renders the same validator templates with the same Jinja setup copier uses (sandbox,
the Ansible filters copier loads, copier.yml's envops), so `brandbot validate` and
`copier copy` reach the same decisions; a test holds them to it. Unlike copier, which stops at
the first bad answer, it reports every problem at once, and it flags keys that are not
questions (copier would silently ignore a misspelled one).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml
from jinja2 import FileSystemLoader, StrictUndefined, Undefined
from jinja2.sandbox import SandboxedEnvironment

from .brand_file import BoundedYAMLError, parse_yaml
from .template_paths import copier_yml, template_root


@dataclass(frozen=True)
class Question:
    """One copier question, as much of it as validation needs."""

    name: str
    type: str
    default: Any
    validator: str
    choices: tuple[Any, ...] | None


@dataclass(frozen=True)
class Problem:
    """One wrong answer: the question and what is wrong with it."""

    question: str
    message: str

    def __str__(self) -> str:
        return f"{self.question}: {self.message}"


_MISSING = object()


@cache
def questions() -> tuple[Question, ...]:
    """copier.yml's questions in order (settings, the `_` keys, are skipped)."""
    config = yaml.safe_load(copier_yml().read_text(encoding="utf-8"))
    found = []
    for name, details in config.items():
        if name.startswith("_"):
            continue
        details = details if isinstance(details, dict) else {"default": details}
        found.append(
            Question(
                name=name,
                type=details.get("type", "str"),
                default=details.get("default", _MISSING),
                validator=details.get("validator", ""),
                choices=tuple(details["choices"]) if "choices" in details else None,
            )
        )
    return tuple(found)


@cache
def jinja_environment() -> SandboxedEnvironment:
    """The Jinja environment copier builds for this template."""
    config = yaml.safe_load(copier_yml().read_text(encoding="utf-8"))
    envops = dict(config.get("_envops", {}))
    undefined = {"jinja2.StrictUndefined": StrictUndefined, "jinja2.Undefined": Undefined}
    envops["undefined"] = undefined[envops.get("undefined", "jinja2.Undefined")]
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(template_root())),
        extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"],
        **envops,
    )


def check_answers(answers: dict[str, Any]) -> tuple[list[Problem], dict[str, Any]]:
    """Every problem with a brand's answers, and the answers as copier resolves them.

    One pass over the questions in order: each answer is cast to its question's type and checked,
    each missing one takes its default, rendered with the answers before it (as brand_slug's
    comes from brand_name). No problem means copier will accept the answers; the resolved
    answers are then exactly copier's.
    """
    known = {question.name for question in questions()}
    problems = [_unknown_key(key, known) for key in answers if key not in known]
    context: dict[str, Any] = {}
    for question in questions():
        if question.name in answers:
            try:
                value = _cast(answers[question.name], question.type, question.name)
            except BoundedYAMLError as error:  # a string answer that is YAML text of its own
                problems.append(Problem(question.name, error.rule))
                context[question.name] = None
                continue
            except (TypeError, ValueError, yaml.YAMLError):
                problems.append(Problem(question.name, f"must be of type {question.type}"))
                context[question.name] = None
                continue
            context[question.name] = value
            if question.choices is not None and value not in question.choices:
                problems.append(Problem(question.name, f"must be one of {', '.join(map(str, question.choices))}"))
                continue
            message = _render(question.validator, context)
            if message:
                problems.append(Problem(question.name, _strip_name(message, question.name)))
        elif question.default is _MISSING:
            problems.append(Problem(question.name, "is required (no default)"))
            context[question.name] = None
        else:
            context[question.name] = _cast(_render_default(question.default, context), question.type)
    return problems, context


def validate_answers(answers: dict[str, Any]) -> list[Problem]:
    """copier.yml's verdict on the answers alone (no brand files): empty when `copier copy` accepts them."""
    return check_answers(answers)[0]


def resolved_answers(answers: dict[str, Any]) -> dict[str, Any]:
    """Valid answers with every default filled in, as copier computes them."""
    return check_answers(answers)[1]


def _cast(value: Any, type_name: str, name: str | None = None) -> Any:
    """copier's casting of an answer to its question's type."""
    if type_name == "str":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError(type(value).__name__)
        return str(value)
    if type_name == "float":
        if isinstance(value, str | int | float):
            return float(value)
        raise TypeError(type(value).__name__)
    if type_name == "int":
        return int(value)
    if type_name in {"yaml", "json"}:  # copier parses a string answer as YAML; so do we, within bounds
        return parse_yaml(value, name) if isinstance(value, str) else value
    if type_name == "bool":
        return bool(value)
    raise ValueError(f"unsupported question type {type_name}")


def _render(template: str, context: dict[str, Any]) -> str:
    if not template:
        return ""
    try:
        return jinja_environment().from_string(template).render(context).strip()
    except Exception as error:  # noqa: BLE001 - copier turns a failing validator into its message
        return str(error)


def _render_default(default: Any, context: dict[str, Any]) -> Any:
    if isinstance(default, str):
        return jinja_environment().from_string(default).render(context)
    return default


def _strip_name(message: str, name: str) -> str:
    """Validators name their question; Problem names it too, so say it once."""
    prefix = f"{name}: "
    return message[len(prefix):] if message.startswith(prefix) and ";" not in message else message


def _unknown_key(key: str, known: set[str]) -> Problem:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return Problem(key, f"is not a question of this template{hint}")
