"""`make freeze-release TAG=vX.Y.Z`: keep a release's template as a git bundle for the `copier update` test.

The update test must start from the previous release, but a clone need not carry tags (CI clones
the submitted branch only) or even history. So the release's template files travel with the
repository: `python -m brandbot.release vX.Y.Z` (run from a checkout after tagging a release,
before the next one) writes tests/data/previous-release.bundle, one commit tagged with the
release's name. A maintainer's tool: it reads the checkout's git history, so it has no use in an
installed wheel.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .template_paths import template_root

#: What copier reads from the template repository, as git pathspecs: the questionnaire, the Jinja files beside
#: it (whichever a release has), the project's files and the migrations. The rest plays no part in an update.
TEMPLATE_PARTS = ("copier.yml", ":(glob)*.jinja", "template", "migrations")


def bundle_path() -> Path:
    """Where the preserved release lives in the checkout."""
    return template_root() / "tests" / "data" / "previous-release.bundle"


def _git(*args: str, cwd: Path, stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    fixed_date = {"GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}
    return subprocess.run(["git", "-c", "user.name=brandbot", "-c", "user.email=release@brandbot.invalid", *args],
                          cwd=cwd, check=True, stdout=stdout, env={**os.environ, **fixed_date})


def freeze(tag: str, bundle: Path | None = None) -> Path:
    """Write `bundle` (by default the checkout's): the template parts of `tag` as one commit, tagged `tag`."""
    bundle = bundle or bundle_path()
    archive = _git("archive", "--format=tar", tag, *TEMPLATE_PARTS, cwd=template_root(), stdout=subprocess.PIPE).stdout
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(work, filter="data")
        _git("init", "-q", "-b", "main", cwd=work)
        _git("add", "-A", cwd=work)
        _git("commit", "-qm", f"brandbot {tag}: the template as released", cwd=work)
        _git("tag", "-a", tag, "-m", f"brandbot {tag}", cwd=work)
        bundle.parent.mkdir(parents=True, exist_ok=True)
        _git("bundle", "create", "-q", str(bundle), "HEAD", "main", tag, cwd=work)
    return bundle


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1]:
        sys.exit("usage: make freeze-release TAG=vX.Y.Z  (or python -m brandbot.release vX.Y.Z)")
    written = freeze(sys.argv[1])
    print(f"wrote {written.relative_to(template_root())} from {sys.argv[1]}")
