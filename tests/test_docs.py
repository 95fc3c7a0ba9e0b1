"""The documents say what the code does: every tested fault is in docs/reliability.md."""

from __future__ import annotations

import logging
import re

from .helpers import REPO, template_runtime_module


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


def test_the_contract_status_table_is_what_the_runtime_does() -> None:
    """Each `HTTP ...` row of the contract's error table, checked against the runtime's own status rule."""
    middleware = template_runtime_module("middleware")
    document = (REPO / "docs/middleware-contract.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| HTTP ([^|]+?) \| `(\w+)`[^|]*\| (WARNING|ERROR)", document, re.MULTILINE)
    covered: set[int] = set()
    named = {int(number) for statuses, _, _ in rows for number in re.findall(r"\b\d{3}\b", statuses)}
    for statuses, text_id, level in rows:
        if statuses.startswith("other "):
            hundred = int(statuses[6]) * 100
            members = set(range(hundred, hundred + 100)) - named
        elif statuses.endswith("xx") or "xx other than" in statuses:
            hundred = int(statuses[0]) * 100
            members = set(range(hundred, hundred + 100)) - {200}
        else:
            members = {int(number) for number in re.findall(r"\d{3}", statuses)}
        for status in members:
            meaning = middleware._status_meaning(status)
            assert (meaning[0], logging.getLevelName(meaning[1])) == (text_id, level), (status, statuses)
        covered |= members
    assert covered == set(range(200, 600)) - {200}
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "| 429 |" not in readme and "| 504 |" not in readme  # the README links the table, never copies it
