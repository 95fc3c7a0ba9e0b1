"""Shared fixtures: rendered brands, a throw-away secret, and the real processes of a running bot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import copier
import pytest

from brandbot.brand_file import load_answers
from brandbot.browser import BrowserMissing, chromium
from brandbot.paths import examples_dir, template_root
from brandbot.processes import RunningBot
from brandbot.project import runtime_module
from brandbot.render import render_brand

from .freeze_release import TEMPLATE_PARTS

REPO = template_root()
DATA = Path(__file__).parent / "data"
EXAMPLES = sorted(examples_dir().glob("*.yml"))
HOSTILE = DATA / "hostile.yml"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
#: Folders of local state (uploads, caches, venvs) that a project's .gitignore lists: not project files.
LOCAL_STATE = tuple(line.rstrip("/") for line in (REPO / "template/.gitignore").read_text(encoding="utf-8").split()
                    if line.endswith("/"))
skip_local_state = shutil.ignore_patterns(*LOCAL_STATE)


def is_local_state(path: Path) -> bool:
    """Whether `path` lies in one of the LOCAL_STATE folders."""
    return not set(LOCAL_STATE).isdisjoint(path.parts)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for this module (Playwright's sync API holds an event loop while it runs, which
    must be gone before other modules use asyncio). A missing browser fails, in CI or not: a skip
    would pass a run that never tested the browser (`make test` installs Chromium)."""
    try:
        with chromium() as launched:
            yield launched
    except BrowserMissing as error:
        pytest.fail(str(error), pytrace=False)


FIGURES: dict[str, list[tuple[int, str]]] = {}


def record_figure(name: str, count: int, detail: str) -> None:
    """Keep a figure (e.g. fuzz examples run) for the summary printed at the end of the run."""
    FIGURES.setdefault(name, []).append((count, detail))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the reliability tests measured, for docs/reliability.md."""
    for name, rows in FIGURES.items():
        terminalreporter.write_line(f"{name}: {sum(count for count, _ in rows)} in all")
        for count, detail in rows:
            terminalreporter.write_line(f"    {count:>5}  {detail}")


def example_id(path: Path) -> str:
    return path.stem


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """Render a brand file once per test session; returns the project directory."""
    cache: dict[Path, Path] = {}

    def render(brand_file: Path) -> Path:
        if brand_file not in cache:
            destination = tmp_path_factory.mktemp(brand_file.stem) / "project"
            cache[brand_file] = render_brand(load_answers(brand_file), destination, base_dir=brand_file.parent)
        return cache[brand_file]

    return render


def git(*args: str, cwd: Path) -> str:
    """Run git with a test identity; its output."""
    return subprocess.run(["git", "-c", "user.name=Owner", "-c", "user.email=owner@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def checkout_template(destination: Path) -> Path:
    """Copy this checkout's template parts (tracked files and new ones not ignored) to `destination`."""
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *TEMPLATE_PARTS, cwd=REPO)
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    return destination


def commit_release(repository: Path, tag: str) -> None:
    """Commit everything in `repository` and tag it as release `tag`."""
    git("add", "-A", cwd=repository)
    git("commit", "-qm", tag, cwd=repository)
    git("tag", tag, cwd=repository)


def copier_render(tmp_path: Path, answers: dict[str, Any]) -> Path:
    """Render `answers` with copier alone (no brandbot checks or assets) into tmp_path/out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # copier warns that a dirty checkout is used
        copier.run_copy(str(REPO), str(tmp_path / "out"), data=answers, defaults=True, quiet=True, vcs_ref="HEAD")
    return tmp_path / "out"


BRANDBOT = [sys.executable, "-m", "brandbot"]


def brandbot(*args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the brandbot command as a user would, in a 100-column terminal."""
    return subprocess.run([*BRANDBOT, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "COLUMNS": "100"})


@pytest.fixture
def scratch_template(tmp_path: Path) -> Callable[[], Path]:
    """A copy of this template outside git, for tests that change it."""

    def make() -> Path:
        copy = tmp_path / "template-copy"
        copy.mkdir()
        return checkout_template(copy)

    return make


@dataclass
class LiveBot:
    """A running bot, with its project's files read the way a test checks them: as plain data,
    independently of the runtime (its display module aside, which says how a text is shown)."""

    running: RunningBot

    def __getattr__(self, name: str) -> Any:
        return getattr(self.running, name)

    @cached_property
    def brand(self) -> dict[str, Any]:
        return tomllib.loads((self.running.project / "brand.toml").read_text(encoding="utf-8"))

    @cached_property
    def theme(self) -> dict[str, Any]:
        return json.loads((self.running.project / "public/theme.json").read_text(encoding="utf-8"))

    @cached_property
    def display(self) -> Any:
        return runtime_module(self.running.project, "display")


def project_files(project: Path) -> dict[str, bytes]:
    """Every file of a project but local state (Chainlit's uploads, caches), by relative path."""
    return {str(path.relative_to(project)): path.read_bytes() for path in sorted(project.rglob("*"))
            if path.is_file() and not is_local_state(path.relative_to(project))}


def rendered_files(project: Path) -> dict[str, str]:
    """Every text file of a rendered project, by relative path."""
    return {name: data.decode("utf-8") for name, data in project_files(project).items()}
