"""The documents say what the code does: every tested fault is in docs/reliability.md."""

from __future__ import annotations

import re

from .conftest import REPO


def test_every_fault_in_the_matrix_is_documented() -> None:
    source = (REPO / "template/tests/fault_matrix.py").read_text(encoding="utf-8")
    faults = re.findall(r'Fault\("([^"]+)"', source)
    assert len(faults) >= 25
    document = (REPO / "docs/reliability.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| ([^|]+?) \|", document, re.MULTILINE))
    assert [fault for fault in faults if fault not in rows] == []


def test_the_readme_links_the_documents() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for document in ("docs/reliability.md", "docs/middleware-contract.md", "CHANGELOG.md"):
        assert f"({document})" in readme, document
        assert (REPO / document).is_file()
