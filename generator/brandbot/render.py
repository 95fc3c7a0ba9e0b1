"""Rendering a brand with copier: the same copier.yml and template `copier copy` uses."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import copier

from .assets import install_assets
from .template_paths import template_root


def render_brand(answers: dict[str, Any], destination: Path, *, base_dir: Path | None = None,
                 overwrite: bool = False) -> Path:
    """Render the project into `destination`, then copy the brand's files.

    The answers are trusted: the caller checked them (check_brand; copier's own validators would
    still refuse a bad one). They go to copier as a brand file gives them, so the project is the
    one `copier copy --data-file` renders. `base_dir` is the brand file's folder, against which
    logo, favicon and CSS paths resolve; each file is checked again as it is copied (the bytes
    copied are the bytes checked). The template is read from the working tree as it is,
    uncommitted edits included, so a developer sees their change at once; `copier copy` from a
    git URL uses the tagged release.
    """
    base_dir = base_dir or Path.cwd()
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
