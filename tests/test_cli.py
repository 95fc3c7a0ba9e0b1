"""The brandbot command: new, validate, examples, demo and their one-sentence errors."""

from __future__ import annotations

import filecmp
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from brandbot.assets import brand_assets
from brandbot.brand_file import load_answers
from brandbot.processes import free_port

from .helpers import BRANDBOT, EXAMPLES, HOSTILE, REPO, brandbot


def test_new_renders_the_same_project_as_copier_copy(tmp_path: Path) -> None:
    brand_file = REPO / "examples/telecom.yml"
    by_brandbot = brandbot("new", str(brand_file), str(tmp_path / "by-brandbot"))
    assert by_brandbot.returncode == 0, by_brandbot.stderr
    # brandbot renders the checkout it runs from; copier takes the latest tag unless told HEAD.
    by_copier = subprocess.run([sys.executable, "-m", "copier", "copy", "--vcs-ref", "HEAD", "--defaults",
                                "--data-file", str(brand_file), str(REPO), str(tmp_path / "by-copier")],
                               capture_output=True, text=True, timeout=120)
    assert by_copier.returncode == 0, by_copier.stderr
    comparison = filecmp.dircmp(tmp_path / "by-brandbot", tmp_path / "by-copier")
    # The only extra files are the brand's own logo, favicon and CSS, which copier cannot copy.
    own = sorted(target for asset in brand_assets(load_answers(brand_file), brand_file.parent)
                 for target in asset.targets)
    assert own == ["custom.css", "favicon.svg", "logo_dark.svg", "logo_light.svg"]
    assert sorted(_differences(comparison)) == own
    brandbot_answers = yaml.safe_load((tmp_path / "by-brandbot/.copier-answers.yml").read_text(encoding="utf-8"))
    copier_answers = yaml.safe_load((tmp_path / "by-copier/.copier-answers.yml").read_text(encoding="utf-8"))
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    if dirty:  # copier snapshots a dirty checkout in a throw-away commit, whose id differs per run
        brandbot_answers.pop("_commit")
        copier_answers.pop("_commit")
    assert brandbot_answers == copier_answers


def _differences(comparison: filecmp.dircmp) -> list[str]:
    found = [*comparison.left_only, *comparison.right_only]
    found += [name for name in comparison.diff_files if name != ".copier-answers.yml"]
    for sub in comparison.subdirs.values():
        found += _differences(sub)
    return found


def test_new_defaults_to_the_slug_and_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    first = brandbot("new", str(REPO / "examples/minimal.yml"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "minimal-co-bot/brand.toml").is_file()
    (tmp_path / "minimal-co-bot/NOTES.md").write_text("mine", encoding="utf-8")
    again = brandbot("new", str(REPO / "examples/minimal.yml"), cwd=tmp_path)
    assert again.returncode == 1
    assert "not empty" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    forced = brandbot("new", str(REPO / "examples/minimal.yml"), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "minimal-co-bot/NOTES.md").read_text(encoding="utf-8") == "mine"


def test_validate_accepts_every_example_and_the_hostile_brand() -> None:
    result = brandbot("validate", *map(str, EXAMPLES), str(HOSTILE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok") == len(EXAMPLES) + 1


def test_validate_reports_every_problem_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "brand_name: ''\nbot_nmae: Maria\nrequest_timeout_seconds: 0\nauth_header: 'two words'\n"
        "categories: {Returns: {label: ''}}\n", encoding="utf-8")
    good = REPO / "examples/retail.yml"
    result = brandbot("validate", str(good), str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"{bad}: bot_nmae: is not a question of this template (did you mean bot_name?)" in lines
    assert f"{bad}: brand_name: must not be empty" in lines
    assert any(line.startswith(f"{bad}: request_timeout_seconds: must be greater than 0") for line in lines)
    assert any(line.startswith(f"{bad}: auth_header:") for line in lines)
    assert any(line.startswith(f"{bad}: categories: categories.Returns.label: must not be empty") for line in lines)
    assert len(lines) == 5
    assert f"{good}: ok" in result.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("brand_name: Acme\nbot_name: a: b\n", "line 2, column 12: invalid YAML: mapping values are not allowed here"),
        ("- just\n- a list\n", "must be a YAML mapping"),
    ],
    ids=["missing", "bad-yaml", "not-a-mapping"],
)
def test_unreadable_brand_files_get_one_sentence(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "brand.yml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    for command in (["validate", str(path)], ["new", str(path), str(tmp_path / "out")]):
        result = brandbot(*command)
        assert result.returncode == 1
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_examples_regenerates_every_brand_with_a_table(tmp_path: Path) -> None:
    out = tmp_path / "examples"
    (out / "retail").mkdir(parents=True)
    (out / "retail" / "stale.txt").write_text("old", encoding="utf-8")
    result = brandbot("examples", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for example in EXAMPLES:
        assert (out / example.stem / "brand.toml").is_file()
        assert example.stem in result.stdout
    assert not (out / "retail" / "stale.txt").exists()
    assert "render time" in result.stdout and " ms " in result.stdout


def test_middleware_needs_a_secret_and_a_free_port() -> None:
    no_secret = subprocess.run([*BRANDBOT, "middleware", "--port", str(free_port())], capture_output=True, text=True,
                               timeout=60, env={k: v for k, v in os.environ.items() if k != "BACKEND_API_SECRET"})
    assert no_secret.returncode == 1 and "BACKEND_API_SECRET" in no_secret.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([*BRANDBOT, "middleware", "--port", str(port)], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "BACKEND_API_SECRET": "x"})
    assert busy.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in busy.stderr
    assert "Traceback" not in busy.stderr


def test_demo_serves_the_default_brand_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    port, middleware_port, site_port = free_port(), free_port(), free_port()
    process = subprocess.Popen([*BRANDBOT, "demo", "--port", str(port), "--middleware-port", str(middleware_port),
                                "--site-port", str(site_port), "--out", str(tmp_path / "demo")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        healthy = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                pass
            if healthy:
                break
            time.sleep(0.2)
        assert healthy, "the demo app never became healthy"
        assert httpx.get(f"http://127.0.0.1:{middleware_port}/health", timeout=2).status_code == 200
        title = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
        assert "Northwind Outfitters" in title
        for page in ("/", "/help"):  # the brand's demo website, the widget tag on each page
            site = httpx.get(f"http://127.0.0.1:{site_port}{page}", timeout=5).text
            assert f'<script src="http://localhost:{port}/public/embed.js" defer></script>' in site
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, output
    assert f"http://localhost:{port}" in output and f"http://localhost:{site_port}" in output
    assert "simulate error" in output
    assert "Demo stopped." in output
    for wanted in (port, middleware_port, site_port):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{wanted}/health", timeout=1)


def test_demo_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = brandbot("demo", "--port", str(port), "--out", str(tmp_path / "demo"))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use; pick another with --port" in result.stderr
