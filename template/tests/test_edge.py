"""Chainlit's shutdown removes its upload folder; where `.files` is a mount (a Kubernetes emptyDir on a
read-only root), removing the folder itself fails: the bot empties it and stops cleanly instead.
Chainlit's messages and steps sleep a millisecond each on the event loop; the bot's do not, and their
creation stamps still never repeat."""

from __future__ import annotations

import errno
import importlib
import inspect
import os
import re
import time
from datetime import datetime
from pathlib import Path

import chainlit as cl
import chainlit.server
import pytest

from brandbot_runtime import edge

from .chat_harness import ChatHarness

MESSAGE, STEP = importlib.import_module("chainlit.message"), importlib.import_module("chainlit.step")


def test_a_folder_that_cannot_go_is_emptied_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = tmp_path / ".files"
    (files / "session").mkdir(parents=True)
    (files / "session" / "upload.txt").write_text("customer upload")
    real_rmdir = os.rmdir

    def mounted(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(path) == files or (kwargs.get("dir_fd") is not None and str(path) == ".files"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", mounted)
    with pytest.raises(OSError):
        import shutil
        shutil.rmtree(files)  # what Chainlit 2.12 does at shutdown: it fails on the mount
    (files / "again.txt").write_text("x")
    edge.remove_tree(files)
    assert files.is_dir() and list(files.iterdir()) == []


def test_any_other_failure_still_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        edge.remove_tree(tmp_path / "missing")


def test_chainlits_server_uses_it() -> None:
    edge.install()
    assert chainlit.server.shutil.rmtree is edge.remove_tree
    assert chainlit.server.shutil.copyfile is not None  # the rest of shutil is still there


def test_chainlit_sleeps_in_every_message_and_step_and_uses_time_for_nothing_else() -> None:
    """The gap, in the installed Chainlit: each constructor blocks the event loop for a millisecond. The
    fix swaps those modules' `time` for one whose sleep returns at once, which is safe only while they
    use `time` for that sleep alone."""
    for module, constructor in ((MESSAGE, MESSAGE.Message.__init__), (STEP, STEP.Step.__init__)):
        assert "time.sleep(0.001)" in inspect.getsource(constructor)
        assert re.findall(r"\btime\.\w+", inspect.getsource(module)) == ["time.sleep"], module.__name__


async def test_the_bots_messages_and_steps_do_not_sleep(session: ChatHarness,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    edge.install()  # (app.py, imported by conftest, has installed it already)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    await session.start()
    cl.Message(content="Thinking...")
    cl.Step(name="on_message", type="run")
    assert slept == []
    assert MESSAGE.time.monotonic is STEP.time.monotonic is time.monotonic  # the rest of `time` is the real one


async def test_stamps_made_in_a_tight_loop_never_repeat_and_sort_as_text(session: ChatHarness) -> None:
    """Steps are stamped when made, messages when sent (a customer's by the emitter); all by the same clock."""
    await session.start()
    assert MESSAGE.utc_now is STEP.utc_now is importlib.import_module("chainlit.emitter").utc_now is edge.utc_now
    stamps = [cl.Step(name="run", type="run").created_at for _ in range(2000)]
    assert len(set(stamps)) == len(stamps)
    assert stamps == sorted(stamps)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp) for stamp in stamps)


def test_a_clock_that_stands_still_or_goes_back_still_gives_later_stamps(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([datetime(2026, 1, 1, 12, 0, 0), datetime(2026, 1, 1, 12, 0, 0), datetime(2026, 1, 1, 11, 59)])

    class Frozen:
        @staticmethod
        def now(_zone: object) -> datetime:
            return next(readings)

    clock = edge._StrictlyLater()
    monkeypatch.setattr(edge, "datetime", Frozen)
    assert [clock(), clock(), clock()] == ["2026-01-01T12:00:00.000000Z", "2026-01-01T12:00:00.000001Z",
                                          "2026-01-01T12:00:00.000002Z"]
