"""Rendering: every example renders with copier and passes its own tests; hostile text stays data."""

from __future__ import annotations

import html
import importlib.metadata
import json
import py_compile
import shutil
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Callable
from pathlib import Path

import copier
import pytest
import yaml
from jinja2.exceptions import UndefinedError

from brandbot.assets import brand_assets
from brandbot.brand_file import load_answers

from .helpers import (
    EXAMPLES,
    HOSTILE,
    REPO,
    checkout_template,
    commit_release,
    example_id,
    git,
    rendered_files,
    skip_local_state,
)

COPIER = [sys.executable, "-m", "copier"]


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_each_example_passes_its_own_test_suite(rendered: Callable[[Path], Path], brand_file: Path) -> None:
    project = rendered(brand_file)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_rendered_project_has_every_part(rendered: Callable[[Path], Path], brand_file: Path) -> None:
    project = rendered(brand_file)
    for part in ["app.py", "brand.toml", ".chainlit/config.toml", "chainlit.md", ".env.example", "requirements.txt",
                 "requirements-dev.txt", "README.md", "Dockerfile", ".gitignore", ".copier-answers.yml",
                 "brandbot_runtime/settings.py", "brandbot_runtime/middleware.py", "brandbot_runtime/history.py",
                 "tests/test_chat_flow.py", "contract/middleware.schema.json", ".chainlit/translations/en-US.json"]:
        assert (project / part).is_file(), part
    config = tomllib.loads((project / ".chainlit/config.toml").read_text(encoding="utf-8"))
    assert html.unescape(config["UI"]["name"]) == load_answers(brand_file)["brand_name"]
    assert config["features"]["unsafe_allow_html"] is False
    assert config["meta"]["generated_by"] == "2.12.0"
    ignored = (project / ".gitignore").read_text(encoding="utf-8").split()
    assert {".env", ".files/", ".venv/"} <= set(ignored)
    dockerfile = (project / "Dockerfile").read_text(encoding="utf-8")
    assert '"--headless", "--host", "0.0.0.0", "--port", "8000"' in dockerfile


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_rendered_files_are_verbatim_copies_or_fully_rendered(rendered: Callable[[Path], Path],
                                                              brand_file: Path) -> None:
    """Files without .jinja (all the Python among them) are copied byte for byte, and so are the
    brand's own logo, favicon and CSS; rendered ones keep no Jinja syntax."""
    source = REPO / "template"
    project = rendered(brand_file)
    files = rendered_files(project)
    assert any(name.endswith(".py") for name in files)
    own = {f"public/{target}": asset.source
           for asset in brand_assets(load_answers(brand_file), brand_file.parent) for target in asset.targets}
    for name, text in files.items():
        verbatim = source / name
        if name in own:
            assert (project / name).read_bytes() == own[name].read_bytes(), name
        elif verbatim.is_file():
            assert (project / name).read_bytes() == verbatim.read_bytes(), name
        else:
            assert name.endswith((".toml", ".md", ".yml", ".yaml", ".json", ".svg")), \
                f"{name} is rendered but not data or docs"
            assert "{{" not in text and "{%" not in text, name


def test_a_hostile_brand_renders_to_files_that_parse(rendered: Callable[[Path], Path]) -> None:
    project = rendered(HOSTILE)
    answers = load_answers(HOSTILE)
    for path in project.rglob("*.py"):
        py_compile.compile(str(path), doraise=True)
    for path in project.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    brand = tomllib.loads((project / "brand.toml").read_text(encoding="utf-8"))
    config = tomllib.loads((project / ".chainlit/config.toml").read_text(encoding="utf-8"))
    stored = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert html.unescape(config["UI"]["name"]) == answers["brand_name"]
    assert "<" not in config["UI"]["name"] and '"' not in config["UI"]["name"]
    for key in ["brand_name", "bot_name", "bot_role", "welcome_message", "auth_header"]:
        assert brand[key] == answers[key], key
        assert stored[key] == answers[key], key
    assert brand["categories"]["OrderTracking"]["label"] == answers["categories"]["OrderTracking"]["label"]
    assert brand["categories"]["Bare.Category-1"] == {}
    assert brand["texts"]["specialist_transition"] == answers["texts"]["specialist_transition"]
    assert brand["texts"]["error_timeout"].startswith("Timeout")
    assert stored["brand_slug"] == "o-brien-quoted-7-7-raw-home-s"


def test_the_copier_cli_renders_a_brand_without_trust(tmp_path: Path) -> None:
    destination = tmp_path / "northwind"
    result = subprocess.run(
        [*COPIER, "copy", "--defaults", "--data-file", str(REPO / "examples/retail.yml"), str(REPO),
         str(destination)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ready in" in result.stdout + result.stderr
    brand = tomllib.loads((destination / "brand.toml").read_text(encoding="utf-8"))
    assert brand["bot_name"] == "Maria S."


def test_copier_copies_from_a_git_url(tmp_path: Path) -> None:
    repository = tmp_path / "brandbot.git"
    repository.mkdir()
    checkout_template(repository)
    git("init", "-q", "-b", "main", cwd=repository)
    commit_release(repository, "v9.9.9")
    destination = tmp_path / "from-git"
    result = subprocess.run([*COPIER, "copy", "--defaults", "--data", "brand_name=Git Brand",
                             f"git+file://{repository}", str(destination)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    stored = yaml.safe_load((destination / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert stored["_commit"] == "v9.9.9"
    assert stored["brand_slug"] == "git-brand"


def test_a_misspelled_template_variable_fails_the_render(scratch_template: Callable[[], Path],
                                                         tmp_path: Path) -> None:
    template = scratch_template()
    (template / "template" / "typo.txt.jinja").write_text("Welcome to {{ brand_nmae }}\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UndefinedError, match="brand_nmae"):
            copier.run_copy(str(template), str(tmp_path / "out"), data={"brand_name": "Acme"}, defaults=True,
                            quiet=True)


def test_the_answers_file_holds_answers_only(rendered: Callable[[Path], Path]) -> None:
    stored = yaml.safe_load((rendered(EXAMPLES[0]) / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert "builtin_texts" not in stored
    assert not any("secret" in key.lower() for key in stored)
    copier_questions = yaml.safe_load((REPO / "copier.yml").read_text(encoding="utf-8"))
    assert not any(isinstance(q, dict) and q.get("secret") for q in copier_questions.values())


def test_a_rendered_project_installs_and_passes_in_a_fresh_environment(rendered: Callable[[Path], Path],
                                                                       tmp_path: Path) -> None:
    """What a brand owner types: a new venv, `pip install -r requirements-dev.txt`, `pytest`."""
    project = tmp_path / "project"
    shutil.copytree(rendered(REPO / "examples/minimal.yml"), project,
                    ignore=skip_local_state)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin/pip"), "install", "-q", "-r", "requirements-dev.txt"], cwd=project,
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    tested = subprocess.run([str(venv / "bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                            capture_output=True, text=True, timeout=600)
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert " passed" in tested.stdout and " failed" not in tested.stdout


def test_a_bot_requires_exactly_the_chainlit_release_brandbot_tests() -> None:
    """The runtime patches Chainlit's gaps at its edge; an untested Chainlit could reopen them."""
    tested = importlib.metadata.version("chainlit")
    generated = (REPO / "template/requirements.txt").read_text(encoding="utf-8").splitlines()
    assert f"chainlit=={tested}" in generated
    brandbot_pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert f"chainlit=={tested}" in brandbot_pyproject["project"]["dependencies"]
