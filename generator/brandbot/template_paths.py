"""Where the template and its parts live: beside the package in a checkout, or bundled inside a wheel.

(The running bot's own files are found by brandbot_runtime/project_paths.py, inside the project.)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def template_root() -> Path:
    """The directory holding copier.yml (the repository root in a checkout)."""
    for candidate in (_PACKAGE_DIR / "_template", _PACKAGE_DIR.parent.parent):
        if (candidate / "copier.yml").is_file():
            return candidate
    raise FileNotFoundError("brandbot's copier.yml was not found beside the package")


def copier_yml() -> Path:
    """The questionnaire, the one definition of a brand's answers and their rules."""
    return template_root() / "copier.yml"


def project_template() -> Path:
    """The generated project's files (copier's `_subdirectory`)."""
    return template_root() / "template"


def contract_schema() -> Path:
    """The middleware contract's JSON Schema, shipped in every generated project."""
    return project_template() / "contract" / "middleware.schema.json"


def examples_dir() -> Path:
    """The example brand files."""
    return template_root() / "examples"
