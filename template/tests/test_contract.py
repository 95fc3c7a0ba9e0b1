"""The client keeps the middleware contract in contract/middleware.schema.json, both ways."""

from __future__ import annotations

import json

import jsonschema
import pytest

from brandbot_runtime.middleware import UnexpectedAnswer, parse_reply

from .conftest import PROJECT_DIR, make_client
from .middleware_double import MiddlewareDouble

SCHEMA = json.loads((PROJECT_DIR / "contract" / "middleware.schema.json").read_text(encoding="utf-8"))


def validator(definition: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{definition}"})


def test_the_schema_is_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


async def test_every_request_the_client_sends_is_a_valid_chat_request(middleware: MiddlewareDouble) -> None:
    client = make_client(middleware.url, max_bytes=100_000)
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
               {"role": "user", "content": "Emoji 🚀 and \"quotes\""}]
    try:
        await client.ask("Emoji 🚀 and \"quotes\"", history)
    finally:
        await client.aclose()
    validator("ChatRequest").validate(middleware.requests[0].json)


RESPONSES = [
    {"response": "Hi"},
    {"response": "Hi", "category": None},
    {"response": "Hi", "category": "OrderTracking"},
    {"response": "", "category": "General", "extra": [1, 2]},
    {"response": 1},
    {"response": None},
    {"category": "General"},
    {"response": "Hi", "category": 3},
    {"response": "Hi", "category": ["a"]},
    [],
    "Hi",
    None,
]


@pytest.mark.parametrize("body", RESPONSES, ids=[json.dumps(body) for body in RESPONSES])
def test_the_client_accepts_exactly_what_the_schema_accepts(body: object) -> None:
    schema_accepts = validator("ChatResponse").is_valid(body)
    try:
        parse_reply(json.dumps(body).encode())
        client_accepts = True
    except UnexpectedAnswer:
        client_accepts = False
    assert client_accepts == schema_accepts
