"""The documents say what the code does: every tested fault is in docs/reliability.md."""

from __future__ import annotations

import json
import logging
import re

import jsonschema

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


def test_the_contract_feedback_section_is_the_schemas_feedback() -> None:
    """docs/middleware-contract.md's Feedback: its example is valid, its bullets name each key in the schema's order."""
    document = (REPO / "docs/middleware-contract.md").read_text(encoding="utf-8")
    section = document.split("\n## Feedback\n", 1)[1].split("\n## ", 1)[0]
    schema = json.loads((REPO / "template/contract/middleware.schema.json").read_text(encoding="utf-8"))
    feedback = schema["$defs"]["Feedback"]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1))
    jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/Feedback"}).validate(example)
    assert re.findall(r"^- `(\w+)` \(", section, re.MULTILINE) == list(feedback["properties"])
    assert feedback["required"] == list(feedback["properties"])  # every key is always sent
    message = section.split("- `message`", 1)[1].split("\n- ", 1)[0]
    assert [name for name in feedback["properties"]["message"]["properties"] if f"`{name}`" not in message] == []
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    generated = (REPO / "template/README.md.jinja").read_text(encoding="utf-8")
    example_env = (REPO / "template/.env.example").read_text(encoding="utf-8")
    assert "| `BACKEND_FEEDBACK_URL` |" in readme and "| `BACKEND_FEEDBACK_URL` |" in generated
    assert "BACKEND_FEEDBACK_URL=" in example_env



def test_the_contract_request_section_is_the_schemas_chat_request() -> None:
    """docs/middleware-contract.md's Request: its example is a valid ChatRequest, its bullets name each key
    in the schema's order, and the Customer bullet names each of the Customer's keys."""
    document = (REPO / "docs/middleware-contract.md").read_text(encoding="utf-8")
    section = document.split("\n## Request\n", 1)[1].split("\n## ", 1)[0]
    schema = json.loads((REPO / "template/contract/middleware.schema.json").read_text(encoding="utf-8"))
    request = schema["$defs"]["ChatRequest"]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1))
    jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/ChatRequest"}).validate(example)
    assert re.findall(r"^- `(\w+)` \(", section, re.MULTILINE) == list(request["properties"])
    customer = section.split("- `customer`", 1)[1].split("\n- Each chat", 1)[0]
    assert [name for name in schema["$defs"]["Customer"]["properties"] if f"`{name}`" not in customer] == []
    anonymous = {"id": None, "verified": False, "claims": {}}
    validator = jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/Customer"})
    validator.validate(anonymous)
    assert not validator.is_valid({"id": "claimed-42", "verified": False, "claims": {}})  # never an unproven id
    assert not validator.is_valid({"id": None, "verified": True, "claims": {}})
