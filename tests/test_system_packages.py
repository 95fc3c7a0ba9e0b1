"""`make test` runs every test on a fresh machine (issue 9, item 16).

The system packages the tests need (Debian's Chromium today; the list is .ci/system-packages) are
installed by `make test` when it runs as root with apt-get, and otherwise it stops with the one
command to run. A missing browser fails the browser tests: it never skips them, in CI or not.
apt-get is a recording stand-in here: the tests never install anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .helpers import REPO

SCRIPT = REPO / ".ci/install-system-packages"
BASH = shutil.which("bash") or "/bin/bash"


def _run_script(tmp_path: Path, *, root: bool, apt: bool = True,
                extra_env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the script with a PATH holding no chromium, and (if `apt`) an apt-get that only records
    its arguments; as root or as an ordinary user. Returns the run and what apt-get was asked."""
    bin_dir = Path(tempfile.mkdtemp(prefix="brandbot-apt-"))
    bin_dir.chmod(0o777)  # an ordinary user (below) must find apt-get here and write its log
    log = bin_dir / "apt.log"
    if apt:
        (bin_dir / "apt-get").write_text(f'#!{BASH}\necho "$@" >> {log}\n', encoding="utf-8")
        (bin_dir / "apt-get").chmod(0o755)
    prefix: list[str] = []
    if root != (os.geteuid() == 0):
        prefix = (["unshare", "--map-root-user"] if root else
                  ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        prefix[0] = shutil.which(prefix[0]) or prefix[0]
    env = {"PATH": str(bin_dir), "HOME": str(bin_dir), **(extra_env or {})}
    try:
        result = subprocess.run([*prefix, BASH, str(SCRIPT)], capture_output=True, text=True, timeout=30, env=env)
        return result, log.read_text(encoding="utf-8") if log.exists() else ""
    finally:
        shutil.rmtree(bin_dir)


def test_make_test_installs_the_system_packages_before_running_the_tests() -> None:
    plan = subprocess.run(["make", "-n", "-C", str(REPO), "test"], capture_output=True, text=True, timeout=30,
                          check=True).stdout.splitlines()
    install = plan.index(".ci/install-system-packages")
    assert install < next(index for index, line in enumerate(plan) if "-m pytest" in line)
    assert "make test" in (REPO / ".ci/run").read_text(encoding="utf-8")  # CI runs the same step


def test_every_listed_package_is_installed_here() -> None:
    """This machine can run every test: the script has nothing to do (and calls no apt-get)."""
    result = subprocess.run([str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_as_root_with_apt_the_missing_packages_are_installed(tmp_path: Path) -> None:
    result, apt = _run_script(tmp_path, root=True)
    assert result.returncode == 0, result.stderr
    assert apt.splitlines() == ["update -qq", "install -y -qq chromium"]


def test_otherwise_make_test_stops_with_the_one_command_to_run(tmp_path: Path) -> None:
    result, apt = _run_script(tmp_path, root=False)
    assert result.returncode == 1 and apt == ""
    assert result.stderr.strip() == ("error: the tests need chromium; run: "
                                     "sudo sh -c 'apt-get update -qq && apt-get install -y -qq chromium'")


def test_without_apt_get_make_test_stops_and_names_the_packages(tmp_path: Path) -> None:
    result, _ = _run_script(tmp_path, root=True, apt=False)
    assert result.returncode == 1
    assert "the tests need the Debian package(s) chromium" in result.stderr
    assert "apt-get install -y -qq chromium" in result.stderr


def test_chromium_path_stands_in_for_the_package_and_must_name_an_executable(tmp_path: Path) -> None:
    chrome = tmp_path / "chrome"
    chrome.write_text("#!/bin/sh\n", encoding="utf-8")
    chrome.chmod(0o755)
    result, apt = _run_script(tmp_path, root=True, extra_env={"CHROMIUM_PATH": str(chrome)})
    assert (result.returncode, apt) == (0, "")
    wrong, apt = _run_script(tmp_path, root=True, extra_env={"CHROMIUM_PATH": str(tmp_path / "none")})
    assert (wrong.returncode, apt) == (1, "")
    assert f"CHROMIUM_PATH={tmp_path / 'none'} is not an executable file" in wrong.stderr


PROBE = '''
import brandbot.browser
from brandbot.browser import BrowserMissing
from tests.conftest import browser  # noqa: F401 - the fixture under test

if {missing}:
    def _nowhere():
        raise BrowserMissing("Chromium not found (probe)")
    brandbot.browser.chromium_path = _nowhere


def test_uses_the_browser(browser):
    pass
'''


@pytest.mark.parametrize("case", ["not installed", "CHROMIUM_PATH wrong"])
def test_the_browser_fixture_fails_when_chromium_is_missing_outside_ci_too(tmp_path: Path, case: str) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE.format(missing=case == "not installed"), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if key not in {"CI", "CHROMIUM_PATH"}}
    if case == "CHROMIUM_PATH wrong":
        env["CHROMIUM_PATH"] = str(tmp_path / "no-such-chrome")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                             str(tmp_path), str(probe)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120)
    assert "1 error" in result.stdout and "skipped" not in result.stdout, result.stdout
    assert ("Chromium not found" if case == "not installed" else "CHROMIUM_PATH=") in result.stdout
