"""The request edge in-process: origins, body limits, the upload and action checks, socket events.

The ASGI layer is driven directly (with a recording app behind it) where a test must see what
reached the app or how much of a body was read; Chainlit's own app and socket handlers are used
where the test is about how the layer is installed on them (app.py is imported by the harness).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from chainlit.server import app as chainlit_app
from chainlit.server import sio
from socketio.exceptions import ConnectionRefusedError as SocketRefused

from brandbot_runtime.origins import normalize_origin, parse_allowed_origins
from brandbot_runtime.request_guard import RequestGuard, origin_allowed
from brandbot_runtime.settings import ConfigurationError, validate_settings
from brandbot_runtime.socket_guard import REFUSED

LIMIT = 64 * 1024
SESSION = str(uuid.uuid4())


class Recorder:
    """The app behind the guard: reads the whole body, records it, answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        if scope["type"] == "http":
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        self.bodies.append(body)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})


def guard(recorder: Recorder, uploads: bool = False) -> RequestGuard:
    return RequestGuard(recorder, allowed_origins={"https://shop.example"}, max_body_bytes=LIMIT,
                        uploads_enabled=lambda: uploads, session_exists=lambda session_id: session_id == SESSION)


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    recorder = Recorder()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard(recorder)),
                                 base_url="http://bot.example:8000") as http:
        yield http, recorder


@pytest.mark.parametrize(("written", "origin"), [
    ("https://Shop.Example", "https://shop.example"),
    ("https://shop.example:443/", "https://shop.example"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("http://[::1]:80", "http://[::1]"),
])
def test_origins_are_written_the_way_browsers_send_them(written: str, origin: str) -> None:
    assert normalize_origin(written) == origin


@pytest.mark.parametrize("text", ["*", "null", "https://*.shop.example", "https://shop.example/chat",
                                  "ftp://shop.example", "https://user@shop.example", "shop.example",
                                  "https://shop.example:99999", "https://shop.example?x=1"])
def test_what_is_not_an_origin_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"origin|port"):
        normalize_origin(text)


def test_allowed_origins_setting_is_comma_separated_and_errors_hide_the_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_allowed_origins(" https://shop.example , http://127.0.0.1:9000 ") == (
        "https://shop.example", "http://127.0.0.1:9000")
    monkeypatch.setenv("BACKEND_API_URL", "https://mw.example/chat")
    monkeypatch.setenv("BACKEND_API_SECRET", "a-test-secret")
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://shop.example,https://evil.example/steal")
    with pytest.raises(ConfigurationError) as raised:
        validate_settings()
    assert raised.value.problems[0].startswith("ALLOWED_ORIGINS: Value error, entry 2:")
    assert "evil" not in str(raised.value)


@pytest.mark.parametrize(("origin", "host", "allowed"), [
    (None, "bot.example", True),  # not a browser, or the page loading itself
    ("https://bot.example", "bot.example", True),  # TLS ended at a proxy: the scheme is not compared
    ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
    ("https://bot.example", "bot.example:443", True),
    ("https://shop.example", "bot.example", True),  # listed
    ("http://127.0.0.1:8001", "127.0.0.1:8000", False),  # another port is another origin
    ("http://bot.example", "bot.example:443", False),
    ("http://bot.example:8080", "bot.example", False),
    ("https://bot.example.evil", "bot.example", False),
    ("https://evil.example", "bot.example", False),
    ("null", "bot.example", False),
    ("https://bot.example", None, False),
])
def test_only_the_bots_own_pages_and_listed_sites_pass(origin: str | None, host: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, host, frozenset({"https://shop.example"})) is allowed


async def test_a_foreign_page_is_refused_before_the_app(client: tuple[httpx.AsyncClient, Recorder]) -> None:
    http, recorder = client
    refused = await http.get("/project/settings", headers={"Origin": "https://evil.example"})
    forged_forward = await http.get("/project/settings", headers={"Origin": "https://evil.example",
                                                                  "X-Forwarded-Host": "evil.example"})
    assert (refused.status_code, forged_forward.status_code) == (403, 403)
    assert "access-control-allow-origin" not in refused.headers
    assert recorder.bodies == []
    own = await http.get("/project/settings", headers={"Origin": "http://bot.example:8000"})
    listed = await http.get("/project/settings", headers={"Origin": "https://shop.example"})
    assert (own.status_code, listed.status_code) == (200, 200)


async def test_a_foreign_websocket_is_closed_before_the_handshake() -> None:
    recorder = Recorder()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws/socket.io/", "headers": [
        (b"host", b"bot.example"), (b"origin", b"https://evil.example")]}
    await guard(recorder)(scope, receive, send)
    assert [message["type"] for message in sent] == ["websocket.close"]
    assert recorder.bodies == []
    scope["headers"] = [(b"host", b"bot.example"), (b"origin", b"https://bot.example")]
    await guard(recorder)(scope, receive, send)
    assert recorder.bodies == [b""]


async def _drive(app: RequestGuard, path: str, headers: list[tuple[bytes, bytes]],
                 chunks: list[bytes] | None = None) -> tuple[int, int]:
    """One POST through the guard; the status and how many body chunks were read from the client."""
    pending = list(chunks or [])
    read = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        if chunks is None:  # an endless body: the guard must stop reading it
            return {"type": "http.request", "body": b"x" * 16384, "more_body": True}
        return {"type": "http.request", "body": pending.pop(0) if pending else b"", "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"host", b"bot.example"), *headers],
             "query_string": b""}
    await app(scope, receive, send)
    return status, read


async def test_an_announced_oversized_body_is_refused_without_reading_it() -> None:
    recorder = Recorder()
    assert await _drive(guard(recorder), "/project/action", [(b"content-length", b"209715200")]) == (413, 0)
    assert recorder.bodies == []


async def test_a_streamed_body_is_cut_at_the_limit() -> None:
    status, read = await _drive(guard(Recorder()), "/project/element", [(b"transfer-encoding", b"chunked")])
    assert status == 413
    assert read * 16384 <= LIMIT + 16384


async def test_uploads_are_refused_unread_while_they_are_off() -> None:
    recorder = Recorder()
    assert await _drive(guard(recorder), "/project/file", [(b"content-length", b"10")]) == (403, 0)
    assert recorder.bodies == []
    assert await _drive(guard(recorder, uploads=True), "/project/file", [], [b"0123456789"]) == (200, 1)


async def test_an_action_is_checked_then_handed_on_unchanged(client: tuple[httpx.AsyncClient, Recorder],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    http, recorder = client
    action = {"name": "starter", "payload": {"index": 0}, "label": "Track", "id": str(uuid.uuid4())}
    caplog.set_level(logging.WARNING)
    unknown = await http.post("/project/action", json={"sessionId": str(uuid.uuid4()), "action": action})
    malformed = [await http.post("/project/action", content=body) for body in (
        b"{", b"[]", json.dumps({"sessionId": SESSION}).encode(),
        json.dumps({"sessionId": SESSION, "action": {**action, "extra": 1}}).encode(),
        json.dumps({"sessionId": SESSION, "action": {**action, "payload": "x"}}).encode())]
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Session not found"}
    assert [answer.status_code for answer in malformed] == [400] * 5
    assert {answer.text for answer in malformed} == {'{"detail": "Bad request"}'}
    assert recorder.bodies == []
    assert len(caplog.records) == 6 and all(record.exc_info is None for record in caplog.records)
    body = json.dumps({"sessionId": SESSION, "action": action}).encode()
    assert (await http.post("/project/action", content=body)).status_code == 200
    assert recorder.bodies == [body]


async def test_chainlits_app_has_the_guard_installed() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=chainlit_app), base_url="http://bot") as http:
        upload = await http.post(f"/project/file?session_id={uuid.uuid4()}", files={"file": ("a.txt", b"a")})
        action = await http.post("/project/action", json={"sessionId": str(uuid.uuid4()),
                                                          "action": {"name": "starter", "payload": {}}})
        foreign = await http.get("/project/settings", headers={"Origin": "https://evil.example"})
    assert (upload.status_code, action.status_code, foreign.status_code) == (403, 404, 403)


def _message(**changes: Any) -> dict[str, Any]:
    message = {"id": str(uuid.uuid4()), "threadId": "", "name": "User", "type": "user_message",
               "output": "hello", "createdAt": "2026-01-01T00:00:00Z", "metadata": {}}
    return {"message": {**message, **changes}, "fileReferences": []}


@pytest.mark.parametrize(("event", "args"), [
    ("client_message", ({},)),
    ("client_message", ({"message": {"id": str(uuid.uuid4()), "type": "user_message"}},)),
    ("client_message", (_message(id="not-a-uuid"),)),
    ("client_message", (_message(id=str(uuid.uuid1())),)),
    ("client_message", (_message(output=["x"]),)),
    ("client_message", (_message(type="assistant_message"),)),
    ("client_message", ({**_message(), "fileReferences": [1]},)),
    ("client_message", (_message(), "extra")),
    ("client_message", (_message(),)),  # well formed, but no such session
    ("edit_message", (_message(),)),  # editing is off in config.toml
    ("message_favorite", (_message(),)),
    ("audio_chunk", ({"isStart": True},)),
    ("chat_settings_change", ({"a": 1},)),
    ("chat_settings_edit", ("x",)),
    ("window_message", ()),
    ("stop", ("extra",)),
])
async def test_a_bad_socket_event_gets_a_plain_refusal_and_one_warning(event: str, args: tuple[Any, ...],
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert await sio.handlers["/"][event]("no-such-socket", *args) == REFUSED
    assert [(record.levelname, record.exc_info) for record in caplog.records] == [("WARNING", None)]
    assert caplog.records[0].getMessage().startswith(f"refused socket event {event}: ")


@pytest.mark.parametrize("auth", [None, "x", {}, {"sessionId": "1", "clientType": "webapp"},
                                  {"sessionId": str(uuid.uuid4()), "clientType": "webapp", "userEnv": "[1]"}])
async def test_a_bad_connection_is_refused_with_one_warning(auth: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SocketRefused) as refused:
        await sio.handlers["/"]["connect"]("no-such-socket", {}, auth)
    assert refused.value.error_args == {"message": "refused"}
    assert [(record.levelname, record.exc_info) for record in caplog.records] == [("WARNING", None)]
