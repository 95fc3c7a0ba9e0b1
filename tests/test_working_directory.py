"""Nothing brandbot or its tests run writes Chainlit's files into the caller's working directory.

`import chainlit` creates `.chainlit/` and `.files/` in its app root (the working directory unless
CHAINLIT_APP_ROOT says otherwise) and `chainlit run` adds `chainlit.md`. Only a bot's own process,
started in its project, may import Chainlit; everything else reads Chainlit's version and files
without importing it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .helpers import REPO, brandbot

CHAINLIT_FILES = (".chainlit", ".files", "chainlit.md")


def chainlit_files_in(directory: Path) -> list[str]:
    return [name for name in CHAINLIT_FILES if (directory / name).exists()]


def test_the_commands_that_run_a_bot_leave_the_working_directory_alone(rendered: Callable[[Path], Path],
                                                                        tmp_path: Path) -> None:
    caller = tmp_path / "caller"
    caller.mkdir()
    brand_file = REPO / "examples/retail.yml"
    project = rendered(brand_file)
    for command in (["validate", str(brand_file)], ["new", str(brand_file), str(tmp_path / "bot")],
                    ["smoke", str(project)],
                    ["bench", str(project), "--sessions", "1", "--messages", "1", "--rounds", "1", "--idle-sessions",
                     "1", "--long-messages", "2", "--no-generation"]):
        result = brandbot(*command, cwd=caller, timeout=300)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
        assert chainlit_files_in(caller) == [], command


def test_collecting_the_tests_leaves_the_working_directory_alone(tmp_path: Path) -> None:
    """Every test module is imported (a module-level `import chainlit` would write here)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "--rootdir", str(REPO), str(REPO / "tests")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert chainlit_files_in(tmp_path) == []
