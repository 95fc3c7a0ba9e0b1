"""Chainlit's shutdown removes its upload folder; where `.files` is a mount (a Kubernetes emptyDir on a
read-only root), removing the folder itself fails: the bot empties it and stops cleanly instead."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import chainlit.server
import pytest

from brandbot_runtime import edge


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
