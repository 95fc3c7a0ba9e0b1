"""`brandbot smoke` on every example (real processes, loopback only), and on a broken bot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import EXAMPLES, HOSTILE, example_id, skip_local_state


def smoke(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brandbot", "smoke", str(project)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "120"})


@pytest.mark.parametrize("brand_file", [*EXAMPLES, HOSTILE], ids=example_id)
def test_every_example_passes_the_smoke_test(rendered: Callable[[Path], Path], brand_file: Path) -> None:
    result = smoke(rendered(brand_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    for row in ["welcome", "general answer", "specialist ", "HTTP error", "timeout", "unexpected answer",
                "connection refused", "then a normal answer", "secret not sent to browser", "secret not in any log"]:
        assert row in result.stdout, row
    assert "checks passed" in result.stdout


def test_a_broken_bot_fails_the_smoke_test(rendered: Callable[[Path], Path], tmp_path: Path) -> None:
    project = tmp_path / "broken"
    shutil.copytree(rendered(EXAMPLES[0]), project, ignore=skip_local_state)
    chat = project / "brandbot_runtime" / "chat.py"
    source = chat.read_text(encoding="utf-8")
    assert "status.content = plain(brand.texts.specialist(label))" in source
    chat.write_text(source.replace("status.content = plain(brand.texts.specialist(label))", "status.content = 'oops'"),
                    encoding="utf-8")
    result = smoke(project)
    assert result.returncode == 1
    assert "FAIL" in result.stdout
    assert "checks passed" in result.stdout


def test_smoke_refuses_a_directory_that_is_not_a_project(tmp_path: Path) -> None:
    result = smoke(tmp_path)
    assert result.returncode == 1
    assert "not a rendered brandbot project" in result.stderr
    assert "Traceback" not in result.stderr
