"""`copier update`: an owner's bot, rendered from the previous release and edited the way owners do,
takes the current template without a conflict and without losing an edit; a renamed question's
answer is carried forward by a migration."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

import brandbot
from brandbot.release import TEMPLATE_PARTS

from .helpers import DATA, REPO, checkout_template, commit_release, git

RELEASE_BUNDLE = DATA / "previous-release.bundle"

COPIER = [sys.executable, "-m", "copier"]




def template_with_history(tmp_path: Path) -> tuple[Path, str]:
    """A template repository holding the previous release as it shipped, then this checkout on top.

    The release comes from tests/data/previous-release.bundle, not from this clone's tags: a CI
    clone carries neither tags nor, possibly, history."""
    source = tmp_path / "brandbot"
    git("clone", "-q", str(RELEASE_BUNDLE), str(source), cwd=tmp_path)
    release = git("describe", "--tags", "--abbrev=0", cwd=source).strip()
    git("rm", "-rq", "--ignore-unmatch", "--", *TEMPLATE_PARTS, cwd=source)
    checkout_template(source)
    git("add", "-A", cwd=source)
    git("commit", "-qm", "the template under test", cwd=source)
    return source, release


def test_the_preserved_release_is_the_one_before_this_version(tmp_path: Path) -> None:
    """The bundle must be refreshed at each release (make freeze-release TAG=vX.Y.Z)."""
    version = brandbot.__version__
    released = re.findall(r"^## (\d+\.\d+\.\d+)", (REPO / "CHANGELOG.md").read_text(encoding="utf-8"), re.MULTILINE)
    assert released[0] == version, "CHANGELOG.md's newest entry is not brandbot's version"
    _, release = template_with_history(tmp_path)
    assert release == f"v{released[1]}", f"the preserved release is {release}, the previous one is {released[1]}"


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_an_owners_bot_updates_from_the_previous_release(tmp_path: Path) -> None:
    source, release = template_with_history(tmp_path)
    bot = tmp_path / "acme-bot"
    made = run([*COPIER, "copy", "--vcs-ref", release, "--defaults", "--data-file",
                str(REPO / "examples/retail.yml"), str(source), str(bot)])
    assert made.returncode == 0, made.stderr
    git("init", "-q", "-b", "main", cwd=bot)
    git("add", "-A", cwd=bot)
    git("commit", "-qm", f"bot from brandbot {release}", cwd=bot)

    # The owner's own edits: notes in the README, a test of theirs, a reworded text in the brand file.
    with (bot / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\n## Our runbook\n\nPage the on-call team when the bot shows errors.\n")
    (bot / "tests" / "test_owner.py").write_text("def test_owner_rule() -> None:\n    assert 2 + 2 == 4\n",
                                                 encoding="utf-8")
    brand_toml = (bot / "brand.toml").read_text(encoding="utf-8")
    assert 'thinking = "Thinking..."' in brand_toml
    (bot / "brand.toml").write_text(brand_toml.replace('thinking = "Thinking..."', 'thinking = "One moment..."'),
                                    encoding="utf-8")
    git("add", "-A", cwd=bot)
    git("commit", "-qm", "our edits", cwd=bot)

    updated = run([*COPIER, "update", "--defaults", "--vcs-ref", "HEAD"], cwd=bot)
    assert updated.returncode == 0, updated.stderr

    files = [path for path in bot.rglob("*") if path.is_file() and ".git" not in path.parts]
    assert not [path for path in files if path.suffix == ".rej"], "copier left rejected hunks"
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not re.search(r"^(<<<<<<<|>>>>>>>) ", text, re.MULTILINE), f"conflict markers in {path}"
    # The owner's edits are kept...
    assert "## Our runbook" in (bot / "README.md").read_text(encoding="utf-8")
    assert (bot / "tests" / "test_owner.py").is_file()
    brand_toml = (bot / "brand.toml").read_text(encoding="utf-8")
    assert 'thinking = "One moment..."' in brand_toml
    # ...and the template's changes arrived: the runtime is today's, byte for byte.
    for module in (REPO / "template").rglob("*.py"):
        if "__pycache__" not in module.parts:
            relative = module.relative_to(REPO / "template")
            assert (bot / relative).read_bytes() == module.read_bytes(), relative
    answers = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["_commit"].startswith(f"{release}-1-g") and answers["brand_name"] == "Northwind Outfitters"
    # The updated bot passes its own tests (the owner's among them).
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=bot)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "test_owner" in run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"],
                               cwd=bot).stdout



def test_a_renamed_question_carries_its_answer_forward(tmp_path: Path) -> None:
    """A future release renames bot_role to assistant_role; its migration moves the old answer."""
    template = tmp_path / "template-repo"
    template.mkdir()
    checkout_template(template)
    git("init", "-q", "-b", "main", cwd=template)
    commit_release(template, "v1.0.0")

    config = (template / "copier.yml").read_text(encoding="utf-8")
    config = config.replace("\nbot_role:\n", "\nassistant_role:\n")
    config = config.replace("text('bot_role', bot_role)", "text('assistant_role', assistant_role)")
    config = config.replace("{{ bot_role }}", "{{ assistant_role }}")
    config += ('\n_migrations:\n  - version: v2.0.0\n    when: "{{ _stage == \'before\' }}"\n    command:\n'
               '      - "{{ _copier_python }}"\n'
               '      - "{{ _copier_conf.src_path }}/migrations/rename_answer.py"\n'
               '      - "{{ _copier_conf.answers_file }}"\n      - bot_role\n      - assistant_role\n')
    (template / "copier.yml").write_text(config, encoding="utf-8")
    for rendered in ("template/brand.toml.jinja", "template/README.md.jinja"):
        path = template / rendered
        path.write_text(path.read_text(encoding="utf-8").replace("q(bot_role)", "q(assistant_role)")
                        .replace("{{ bot_role }}", "{{ assistant_role }}"), encoding="utf-8")
    commit_release(template, "v2.0.0")

    bot = tmp_path / "bot"
    made = run([*COPIER, "copy", "--vcs-ref", "v1.0.0", "--defaults", "--data", "brand_name=Acme", "--data",
                "bot_role=Concierge", f"git+file://{template}", str(bot)])
    assert made.returncode == 0, made.stderr
    git("init", "-q", "-b", "main", cwd=bot)
    git("add", "-A", cwd=bot)
    git("commit", "-qm", "bot", cwd=bot)

    refused = run([*COPIER, "update", "--defaults"], cwd=bot)
    assert refused.returncode != 0 and "migrations" in refused.stderr  # copier asks for --trust first
    updated = run([*COPIER, "update", "--defaults", "--trust"], cwd=bot)
    assert updated.returncode == 0, updated.stderr
    answers = yaml.safe_load((bot / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["assistant_role"] == "Concierge" and "bot_role" not in answers
    assert answers["_commit"] == "v2.0.0"
    assert 'bot_role = "Concierge"' in (bot / "brand.toml").read_text(encoding="utf-8")
