"""Plain interactive `copier copy` in a terminal: the questions are asked, defaults accepted."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pexpect
import yaml

from .conftest import REPO

# (part of the question's help text, keys to send); Esc+Enter submits a multi-line answer.
ANSWERS = [
    ("Brand name", "Interactive Inc\r"),
    ("Short machine name", "\r"),
    ("assistant's name", "\r"),
    ("assistant's role", "\r"),
    ("Welcome message", "\x1b\r"),
    ("Specialist categories", "\x1b\r"),
    ("answered directly", "\x1b\r"),
    ("Seconds to wait", "\r"),
    ("Seconds the", "\r"),
    ("HTTP header", "\r"),
    ("Optional overrides", "\x1b\r"),
]


def test_copier_asks_every_question_in_a_terminal(tmp_path: Path) -> None:
    destination = tmp_path / "interactive"
    terminal = {"TERM": "xterm", "PATH": "/usr/bin:/bin", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(sys.executable, ["-m", "copier", "copy", str(REPO), str(destination)], encoding="utf-8",
                          timeout=30, dimensions=(40, 200), env=terminal)
    try:
        for prompt, keys in ANSWERS:
            child.expect(prompt)
            time.sleep(0.2)  # let prompt_toolkit finish drawing before it reads keys
            child.send(keys)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    stored = yaml.safe_load((destination / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert stored["brand_name"] == "Interactive Inc"
    assert stored["brand_slug"] == "interactive-inc"
    assert stored["welcome_message"].startswith("Hello! I'm Maria, your Support Specialist at Interactive Inc.")
    assert "builtin_texts" not in stored
