"""One check of a brand, made once by each command that takes a brand file.

A brand is right when its answers keep copier.yml's rules (validation) and the files it names
beside its brand file may be published (assets). check_brand makes both checks in one go and
hands back what the command needs next: every problem to report, or the answers resolved as
copier resolves them. The renderer trusts answers that passed, so nothing is checked twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .assets import check_assets
from .validation import Problem, check_answers


@dataclass(frozen=True)
class BrandCheck:
    """What check_brand found."""

    answers: dict[str, Any]  # as the brand file gives them: what copier takes as data
    problems: list[Problem]  # every one at once; empty when the brand may be rendered
    resolved: dict[str, Any]  # every question's answer, defaults filled in; empty when there are problems


def check_brand(answers: dict[str, Any], base_dir: Path) -> BrandCheck:
    """Check a brand's answers, then the files they name in `base_dir`, the brand file's folder.

    A file whose answer already broke a rule (such as an absolute path) is not opened.
    """
    problems, resolved = check_answers(answers)
    wrong = {problem.question for problem in problems}
    problems += [problem for problem in check_assets(answers, base_dir) if problem.question not in wrong]
    return BrandCheck(answers=answers, problems=problems, resolved={} if problems else resolved)
