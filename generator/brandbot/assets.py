"""The brand's own files (logo, favicon, custom CSS): checked, then copied into the project's public/.

copier can only render text from inside the template, so a brand's logo, which lives beside its
brand file, is copied by brandbot after rendering. A plain `copier copy` records the answer and
ships the monogram instead (see the README).

Whatever the bot serves from public/ is served from its own origin, so a brand file may name only
regular files inside its own folder (after symlinks and `..` are resolved: a link to /etc/passwd
must not be published), and their content is held to asset_checks' rules. The bytes copied are
the bytes checked: a file is read once, through one descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .asset_checks import css_problem, png_problem, svg_problem
from .bounded_read import NotRegularFile, TooLarge, read_regular_file
from .validation import Problem

MAX_IMAGE_BYTES = 1_000_000
MAX_CSS_BYTES = 200_000


class AssetError(Exception):
    """A brand file that may not be published; the message is the rule it breaks."""


@dataclass(frozen=True)
class Asset:
    """One brand file and where it goes in public/."""

    question: str
    source: Path
    targets: tuple[str, ...]
    answer: str = ""  # the path as the brand file wrote it


def brand_assets(answers: dict[str, Any], base_dir: Path) -> list[Asset]:
    """The files the answers name, resolved against the brand file's folder."""
    found = []
    for question, stems in (("logo", ("logo_light", "logo_dark")), ("favicon", ("favicon",))):
        value = answers.get(question)
        if value and isinstance(value, str):
            suffix = Path(value).suffix.lower()
            found.append(Asset(question, base_dir / value, tuple(stem + suffix for stem in stems), value))
    if answers.get("custom_css") and isinstance(answers["custom_css"], str):
        found.append(Asset("custom_css", base_dir / answers["custom_css"], ("custom.css",), answers["custom_css"]))
    return found


def check_assets(answers: dict[str, Any], base_dir: Path) -> list[Problem]:
    """A problem for each named file that may not be published, naming the question, file and rule."""
    problems = []
    for asset in brand_assets(answers, base_dir):
        try:
            read_asset(asset, base_dir)
        except AssetError as error:
            problems.append(Problem(asset.question, f"{asset.source}: {error}"))
    return problems


def read_asset(asset: Asset, base_dir: Path) -> bytes:
    """The file's bytes, once it is known to be a regular file inside `base_dir` that keeps every rule."""
    data = _read_inside(asset, base_dir)
    suffix = asset.source.suffix.lower()
    if suffix in {".svg", ".css"}:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise AssetError(f"is not UTF-8 text (byte {error.start})") from None
        problem = svg_problem(data) if suffix == ".svg" else css_problem(text)
    else:
        problem = png_problem(data)
    if problem:
        raise AssetError(problem)
    return data


def _read_inside(asset: Asset, base_dir: Path) -> bytes:
    """Read a regular file that resolves inside `base_dir`; a FIFO or device is never opened."""
    if Path(asset.answer).is_absolute() or asset.answer.startswith("~"):
        raise AssetError("must be a path relative to the brand file, not an absolute one")
    folder = base_dir.resolve()
    try:
        real = asset.source.resolve(strict=True)
    except FileNotFoundError:
        raise AssetError("not found") from None
    except (OSError, RuntimeError) as error:  # a symlink loop
        raise AssetError(f"cannot be resolved ({error})") from None
    if not real.is_relative_to(folder):
        raise AssetError("leads outside the brand file's folder (through a symlink or '..'); "
                         "a brand may publish only files inside its own folder")
    limit = MAX_CSS_BYTES if asset.question == "custom_css" else MAX_IMAGE_BYTES
    try:  # `real` has no symlink left, so one appearing now is a swap: no_follow refuses it
        return read_regular_file(real, limit, no_follow=True)
    except NotRegularFile:
        raise AssetError("is not a regular file (a directory, FIFO or device cannot be published)") from None
    except TooLarge as error:
        size = f"is {error.size} bytes" if error.size is not None else f"is more than {limit} bytes"
        raise AssetError(f"{size}; at most {limit} are allowed") from None
    except OSError as error:
        raise AssetError(f"cannot be opened ({error.strerror})") from None


def install_assets(answers: dict[str, Any], base_dir: Path, project: Path) -> list[Path]:
    """Copy the brand's files into public/ (after copier rendered the project): the bytes checked."""
    written = []
    public = project / "public"
    public.mkdir(exist_ok=True)
    for asset in brand_assets(answers, base_dir):
        data = read_asset(asset, base_dir)
        for target in asset.targets:
            (public / target).write_bytes(data)
            written.append(public / target)
    return written
