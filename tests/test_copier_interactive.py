"""Plain interactive `copier copy` in a terminal: the questions are asked, defaults accepted."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pexpect
import yaml

from brandbot.validation import questions

from .helpers import REPO

# Questions whose answer may span lines: Esc+Enter submits them. Every other one takes Enter.
MULTI_LINE = ("Welcome message", "Specialist categories", "answered directly", "Optional overrides",
              "suggested questions")


def test_copier_asks_every_question_in_a_terminal(tmp_path: Path) -> None:
    destination = tmp_path / "interactive"
    terminal = {"TERM": "xterm", "PATH": "/usr/bin:/bin", "PROMPT_TOOLKIT_NO_CPR": "1"}
    command = ["-m", "copier", "copy", "--vcs-ref", "HEAD", str(REPO), str(destination)]
    child = pexpect.spawn(sys.executable, command, encoding="utf-8", timeout=30, dimensions=(40, 200), env=terminal)
    asked: list[str] = []
    try:
        child.expect("Brand name")
        time.sleep(0.2)  # let prompt_toolkit finish drawing before it reads keys
        child.send("Interactive Inc\r")
        while child.expect(["\U0001f3a4([^\r\n]*)", pexpect.EOF]) == 0:  # copier marks each question with 🎤
            question = child.match.group(1)
            if "Brand name" in question or question in asked:  # a redraw of a question already answered
                continue
            asked.append(question)
            time.sleep(0.2)
            child.send("\x1b\r" if any(part in question for part in MULTI_LINE) else "\r")
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    asked_for = [question.name for question in questions()]
    assert len(asked) == len(asked_for) - 1, asked  # every question after brand_name was asked once
    stored = yaml.safe_load((destination / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert stored["brand_name"] == "Interactive Inc"
    assert stored["brand_slug"] == "interactive-inc"
    assert stored["welcome_message"].startswith("Hello! I'm Maria, your Support Specialist at Interactive Inc.")
    assert "builtin_texts" not in stored
