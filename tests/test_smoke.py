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
    for row in ["welcome", "general answer", "streamed answer", "specialist ", "HTTP error", "timeout",
                "unexpected answer", "connection refused", "then a normal answer", "secret not sent to browser",
                "secret not in any log"]:
        assert row in result.stdout, row
    assert "checks passed" in result.stdout


@pytest.mark.parametrize(("file", "working", "broken", "failing"), [
    ("chat.py", "self.status.content = plain(self.brand.texts.specialist(label))", "self.status.content = 'oops'",
     "specialist "),
    # a bot that shows a streamed answer only once it is complete
    ("chat.py", "        shown = as_sent(self.streamed.shown())\n", "        return\n", "streamed answer"),
], ids=["wrong specialist text", "answer not streamed"])
def test_a_broken_bot_fails_the_smoke_test(rendered: Callable[[Path], Path], tmp_path: Path, file: str, working: str,
                                           broken: str, failing: str) -> None:
    project = tmp_path / "broken"
    shutil.copytree(rendered(EXAMPLES[0]), project, ignore=skip_local_state)
    path = project / "brandbot_runtime" / file
    source = path.read_text(encoding="utf-8")
    assert working in source
    path.write_text(source.replace(working, broken), encoding="utf-8")
    result = smoke(project)
    assert result.returncode == 1
    assert "checks passed" in result.stdout
    rows = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert rows and all(failing in row for row in rows), result.stdout


def test_smoke_refuses_a_directory_that_is_not_a_project(tmp_path: Path) -> None:
    result = smoke(tmp_path)
    assert result.returncode == 1
    assert "not a rendered brandbot project" in result.stderr
    assert "Traceback" not in result.stderr
