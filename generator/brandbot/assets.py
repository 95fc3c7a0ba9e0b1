"""The brand's own files (logo, favicon, custom CSS): checked, then copied into the project's public/.

copier can only render text from inside the template, so a brand's logo, which lives beside its
brand file, is copied by brandbot after rendering. A plain `copier copy` records the answer and
ships the monogram instead (see the README).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .validation import Problem, validate_answers

MAX_IMAGE_BYTES = 1_000_000
MAX_CSS_BYTES = 200_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def brand_problems(answers: dict[str, Any], base_dir: Path) -> list[Problem]:
    """Everything wrong with a brand: copier.yml's rules, then its own files beside the brand file."""
    return validate_answers(answers) + check_assets(answers, base_dir)


@dataclass(frozen=True)
class Asset:
    """One brand file and where it goes in public/."""

    question: str
    source: Path
    targets: tuple[str, ...]


def brand_assets(answers: dict[str, Any], base_dir: Path) -> list[Asset]:
    """The files the answers name, resolved against the brand file's folder."""
    found = []
    for question, stems in (("logo", ("logo_light", "logo_dark")), ("favicon", ("favicon",))):
        value = answers.get(question)
        if value:
            suffix = Path(value).suffix.lower()
            found.append(Asset(question, base_dir / value, tuple(stem + suffix for stem in stems)))
    if answers.get("custom_css"):
        found.append(Asset("custom_css", base_dir / answers["custom_css"], ("custom.css",)))
    return found


def check_assets(answers: dict[str, Any], base_dir: Path) -> list[Problem]:
    """A problem for each named file that is missing, too large or not what its name says."""
    problems = []
    for asset in brand_assets(answers, base_dir):
        problem = _check(asset)
        if problem:
            problems.append(Problem(asset.question, problem))
    return problems


def _check(asset: Asset) -> str | None:
    if not asset.source.is_file():
        return f"file {asset.source} not found"
    data = asset.source.read_bytes()
    limit = MAX_CSS_BYTES if asset.question == "custom_css" else MAX_IMAGE_BYTES
    if len(data) > limit:
        return f"{asset.source} is {len(data)} bytes; at most {limit} are allowed"
    suffix = asset.source.suffix.lower()
    if suffix == ".png" and not data.startswith(_PNG_SIGNATURE):
        return f"{asset.source} is not a PNG image"
    if suffix in {".svg", ".css"}:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return f"{asset.source} is not UTF-8 text"
        if suffix == ".svg" and "<svg" not in text[:4096]:
            return f"{asset.source} is not an SVG image (no <svg> element at the start)"
        if suffix == ".svg" and "<script" in text.lower():
            return f"{asset.source} contains a <script>; an SVG logo must be a plain image"
    return None


def install_assets(answers: dict[str, Any], base_dir: Path, project: Path) -> list[Path]:
    """Copy the brand's files into public/ (after copier rendered the project)."""
    written = []
    public = project / "public"
    public.mkdir(exist_ok=True)
    for asset in brand_assets(answers, base_dir):
        for target in asset.targets:
            shutil.copyfile(asset.source, public / target)
            written.append(public / target)
    return written
