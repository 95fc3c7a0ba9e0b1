"""Rendering a brand with copier: the same copier.yml and template `copier copy` uses."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import copier

from .assets import brand_problems, install_assets
from .template_paths import template_root
from .validation import Problem


class InvalidBrand(Exception):
    """The answers break copier.yml's rules; `problems` lists every one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))


def render_brand(answers: dict[str, Any], destination: Path, *, base_dir: Path | None = None,
                 overwrite: bool = False) -> Path:
    """Validate the answers, render the project into `destination`, then copy the brand's files.

    `base_dir` is the brand file's folder, against which logo, favicon and CSS paths resolve.
    The template is read from the working tree as it is, uncommitted edits included, so a
    developer sees their change at once; `copier copy` from a git URL uses the tagged release.
    """
    base_dir = base_dir or Path.cwd()
    problems = brand_problems(answers, base_dir)
    if problems:
        raise InvalidBrand(problems)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier warns that a dirty checkout is used: that is the point
        copier.run_copy(
            str(template_root()),
            str(destination),
            data=answers,
            defaults=True,
            overwrite=overwrite,
            quiet=True,
            unsafe=False,
            vcs_ref="HEAD",
        )
    install_assets(answers, base_dir, destination)
    return destination
