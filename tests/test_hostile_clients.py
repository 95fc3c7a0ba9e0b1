"""Hostile clients against the rendered app under a real `chainlit run`: huge request bodies, web
pages on other origins (raw socket.io and Chromium), forged edits and malformed socket events.

The app talks to a recording middleware on loopback, so a test can read exactly what the
middleware was asked. Every figure these tests measure goes to the run's summary (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from playwright.sync_api import expect

from brandbot.browser import send
from brandbot.chat_client import ChainlitChat, transcript
from brandbot.processes import Service, free_port, start_app

from .helpers import EXAMPLES, StubMiddleware, record_figure

MB = 1024 * 1024
REFUSED = {"error": "refused"}
SECRET = "hostile-clients-secret-1234"
WIDGET_PORT = free_port()  # a second loopback origin the bot lists in ALLOWED_ORIGINS
WIDGET_ORIGIN = f"http://127.0.0.1:{WIDGET_PORT}"
CHAINLIT_ERRORS = ("'output'", "badly formed", "Traceback", "KeyError", "TypeError", "AttributeError")


def echo(payload: dict[str, Any]) -> str:
    """The recording middleware's answer, "You said: <message>"; after a second if the message says
    "slowly", so that a test can act while a turn is being answered."""
    if "slowly" in payload["message"]:
        time.sleep(1.0)
    return f"You said: {payload['message']}"


@pytest.fixture(scope="module")
def middleware() -> Iterator[StubMiddleware]:
    server = StubMiddleware(echo)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project(rendered: Callable[[Path], Path]) -> Path:
    return rendered(next(path for path in EXAMPLES if path.stem == "retail"))


@pytest.fixture(scope="module")
def bot(project: Path, middleware: StubMiddleware, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_app(project, port=free_port(), middleware_url=middleware.url, secret=SECRET,
                        log_dir=tmp_path_factory.mktemp("hostile-logs"),
                        extra_env={"ALLOWED_ORIGINS": WIDGET_ORIGIN, "TRANSITION_DELAY_SECONDS": "0"})
    yield service
    service.stop()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def status_before_the_body(base_url: str, head: str, timeout: float = 5.0) -> tuple[int, float]:
    """Send only a request's head (its body announced, never sent): the status and seconds to it."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        started = time.perf_counter()
        connection.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        try:
            status_line = connection.makefile("rb").readline().decode()
        except TimeoutError:
            return 0, time.perf_counter() - started  # the server is waiting for the body: it reads it
        return int(status_line.split()[1]), time.perf_counter() - started


def log_since(service: Service, start: int) -> str:
    return service.log()[start:]


async def chat_session(base_url: str) -> ChainlitChat:
    """A connected, welcomed chat; the caller closes it in the same event loop."""
    chat = ChainlitChat(base_url, timeout=15)
    await chat.connect()
    await chat.welcome()
    return chat


def user_message(text: str, message_id: str | None = None) -> dict[str, Any]:
    return {"message": {"id": message_id or str(uuid.uuid4()), "threadId": "", "name": "User",
                        "type": "user_message", "output": text, "createdAt": datetime.now(UTC).isoformat()},
            "fileReferences": []}


def test_oversized_bodies_are_refused_before_they_are_read(bot: Service, project: Path) -> None:
    base = bot.base_url

    async def upload() -> tuple[int, float, bool]:
        async with ChainlitChat(base, timeout=15) as chat:  # a live session: Chainlit would make its folder
            await chat.welcome()
            status, seconds = await asyncio.to_thread(status_before_the_body, base, (
                f"POST /project/file?session_id={chat.session_id} HTTP/1.1\nHost: {base[7:]}\n"
                f"Content-Type: multipart/form-data; boundary=B\nContent-Length: {200 * MB}\n"))
            return status, seconds, (project / ".files" / chat.session_id).exists()

    status, seconds, folder_made = asyncio.run(upload())
    assert status == 403, "uploads are off: the upload endpoint must refuse without reading"
    assert not folder_made
    record_figure("hostile: seconds to refuse a 200 MB upload (uploads off)", 1, f"{seconds:.3f} s -> {status}")

    status, seconds = status_before_the_body(base, (
        f"POST /project/action HTTP/1.1\nHost: {base[7:]}\nContent-Type: application/json\n"
        f"Content-Length: {200 * MB}\n"))
    assert status == 413
    assert seconds < 1.0
    record_figure("hostile: seconds to refuse a 200 MB Content-Length", 1, f"{seconds:.3f} s -> 413")

    def chunked() -> Iterator[bytes]:
        yield b'{"sessionId": "' + b"x" * MB
        for _ in range(199):
            yield b"x" * MB

    before = rss_mb(bot.process.pid)
    started = time.perf_counter()
    try:
        answer = httpx.post(f"{base}/project/action", content=chunked(), timeout=60,
                            headers={"Content-Type": "application/json"})
        status = answer.status_code
    except httpx.HTTPError:
        status = 0  # the server stopped reading: acceptable only if it never grew (checked below)
    seconds = time.perf_counter() - started
    grown = rss_mb(bot.process.pid) - before
    record_figure("hostile: RSS growth for a 200 MB chunked POST", 1, f"{grown:+.0f} MB -> {status}, {seconds:.2f} s")
    assert status in (413, 0)
    assert grown < 20, f"the process grew {grown:.0f} MB for a refused body"


def _signed_in(base_url: str) -> str:
    """A Cookie header signed in as a visitor, as the bot's own page gets one (POST /auth/header)."""
    cookies = asyncio.run(ChainlitChat(base_url, timeout=5).sign_in())
    assert "access_token" in cookies
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


async def _websocket(base_url: str, origin: str | None) -> str:
    """A full socket.io connection over the websocket transport, as Chainlit's client makes it,
    signed in: the Origin check is what refuses, not the lack of an identity."""
    client = socketio.AsyncClient(reconnection=False)
    cookie = await asyncio.to_thread(_signed_in, base_url)
    try:
        await client.connect(base_url, socketio_path="/ws/socket.io", transports=["websocket"],
                             headers={"Cookie": cookie, **({"Origin": origin} if origin else {})}, wait_timeout=5,
                             auth={"sessionId": str(uuid.uuid4()), "clientType": "webapp", "userEnv": "{}",
                                   "threadId": "", "chatProfile": ""})
    except socketio.exceptions.ConnectionError:
        return "refused"
    await client.disconnect()
    return "accepted"


def _polling(base_url: str, origin: str | None) -> str:
    """The polling transport's handshake (python-socketio's polling client is racy on a refusal)."""
    answer = httpx.get(f"{base_url}/ws/socket.io/?EIO=4&transport=polling", timeout=5,
                       headers={"Origin": origin} if origin else {})
    return "accepted" if answer.status_code == 200 and answer.text.startswith("0{") else "refused"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_socket_from_another_web_page_is_refused(bot: Service, transport: str) -> None:
    own = bot.base_url

    def attempt(origin: str | None) -> str:
        return asyncio.run(_websocket(own, origin)) if transport == "websocket" else _polling(own, origin)

    outcomes = {origin: attempt(origin)
                for origin in (None, own, WIDGET_ORIGIN, "http://127.0.0.1:1", "https://evil.example", "null")}
    assert outcomes == {None: "accepted", own: "accepted", WIDGET_ORIGIN: "accepted",
                        "http://127.0.0.1:1": "refused", "https://evil.example": "refused", "null": "refused"}


def test_cors_answers_only_the_bot_itself_and_listed_sites(bot: Service) -> None:
    url = f"{bot.base_url}/project/settings?language=en-US"
    signed_in = _signed_in(bot.base_url)
    with httpx.Client(timeout=5) as client:
        foreign = client.get(url, headers={"Origin": "https://evil.example", "Cookie": signed_in})
        assert foreign.status_code == 403
        assert "access-control-allow-origin" not in foreign.headers
        preflight = client.options(url, headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in preflight.headers
        listed = client.get(url, headers={"Origin": WIDGET_ORIGIN, "Cookie": signed_in})
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == WIDGET_ORIGIN
        # no Origin: a non-browser client such as the smoke test, signed in like the page
        assert client.get(url, headers={"Cookie": signed_in}).status_code == 200
        assert client.get(url).status_code == 401  # nobody signed in: Chainlit's own answer


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_a_forged_edit_changes_nothing_the_middleware_sees(bot: Service, middleware: StubMiddleware) -> None:
    """The edit arrives while its message is being answered (Chainlit still holds the message then)."""

    async def scenario() -> Any:
        chat = await chat_session(bot.base_url)
        try:
            first_id = str(uuid.uuid4())
            await chat._sio.emit("client_message", user_message("first question, slowly", first_id))
            await _until(lambda: len(middleware.requests) == 1)
            forged = user_message("forged question", first_id)  # what the UI would send, were editing on
            ack = await chat._sio.call("edit_message", forged, timeout=5)
            await _until(lambda: "You said: first question, slowly" in transcript(chat.events))
            await asyncio.sleep(1.5)  # time for a wrongly accepted edit to be answered
            await chat.send("second question")
            return ack
        finally:
            await chat.close()

    middleware.requests.clear()
    ack = asyncio.run(scenario())
    assert [request["message"] for request in middleware.requests] == ["first question, slowly", "second question"]
    assert middleware.requests[-1]["history"] == [
        {"role": "user", "content": "first question, slowly"},
        {"role": "assistant", "content": "You said: first question, slowly"},
        {"role": "user", "content": "second question"},
    ]
    assert ack == REFUSED


MALFORMED: list[tuple[str, tuple[Any, ...]]] = [
    ("client_message", ({},)),
    ("client_message", ("just text",)),
    ("client_message", ({"message": {"id": str(uuid.uuid4()), "type": "user_message",
                                     "createdAt": "2026-01-01T00:00:00Z"}},)),  # no output
    ("client_message", (user_message("x", "not-a-uuid"),)),
    ("client_message", (user_message("x", str(uuid.uuid1())),)),
    ("client_message", ({**user_message("x"), "fileReferences": "nope"},)),
    ("client_message", ({"message": {**user_message("x")["message"], "output": 42}},)),
    ("client_message", ({"message": {**user_message("x")["message"], "type": "assistant_message"}},)),
    ("client_message", ({"message": {**user_message("x")["message"], "metadata": "x"}},)),
    ("client_message", (user_message("x"), "extra")),
    ("edit_message", ({"message": None},)),
    ("message_favorite", ({"message": 1},)),
    ("audio_start", ()),
    ("audio_chunk", ({"isStart": "x"},)),
    ("audio_end", ()),
    ("chat_settings_change", ("not a dict",)),
    ("chat_settings_change", ({"key": "value"},)),
    ("chat_settings_edit", ([1, 2],)),
    ("stop", ("extra",)),
    ("connection_successful", ({"x": 1},)),
    ("clear_session", (1, 2)),
    ("fetch_favorites", ("extra",)),
    ("window_message", ()),
]


def test_malformed_socket_events_get_a_plain_refusal_and_one_warning(bot: Service,
                                                                   middleware: StubMiddleware) -> None:
    async def scenario() -> tuple[list[Any], str, str]:
        chat = await chat_session(bot.base_url)
        try:
            acks = []
            for event, args in MALFORMED:
                data = args[0] if len(args) == 1 else args if args else None
                try:
                    acks.append(await chat._sio.call(event, data, timeout=3))
                except socketio.exceptions.TimeoutError:
                    acks.append("no acknowledgement")  # the handler raised
            await asyncio.sleep(0.5)
            answer = await chat.send("still here?")  # the session survived every refusal
            return acks, transcript(chat.events), answer.final
        finally:
            await chat.close()

    start = len(bot.log())
    acks, seen, answer = asyncio.run(scenario())
    assert [text for text in CHAINLIT_ERRORS if text in seen] == []  # Chainlit's exception texts
    assert answer == "You said: still here?"
    log = log_since(bot, start)
    assert "ERROR" not in log and "Traceback" not in log, log
    assert acks == [REFUSED] * len(MALFORMED)
    refusals = [line for line in log.splitlines() if "refused socket event" in line]
    assert len(refusals) == len(MALFORMED), log
    assert all(" WARNING " in line for line in refusals)


async def _connect_with(base_url: str, auth: Any) -> Any:
    """What the server said when refusing a connection with this `auth` (its connect_error data)."""
    client = socketio.AsyncClient(reconnection=False)
    said: list[Any] = []
    client.on("connect_error", said.append)
    try:
        await client.connect(base_url, socketio_path="/ws/socket.io", transports=["websocket"], auth=auth,
                             wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return said[0] if said else "refused without a reason"
    await client.disconnect()
    return "accepted"


def test_malformed_connections_are_refused_plainly(bot: Service) -> None:
    good = {"sessionId": str(uuid.uuid4()), "clientType": "webapp", "userEnv": "{}", "threadId": "", "chatProfile": ""}
    bad_auths = [{}, {**good, "sessionId": 5}, {**good, "sessionId": "not-a-uuid"}, {**good, "clientType": "robot"},
                 {**good, "userEnv": "{not json"}, {**good, "userEnv": "[]"}, {**good, "threadId": ["x"]}]
    start = len(bot.log())
    outcomes = [asyncio.run(_connect_with(bot.base_url, auth)) for auth in bad_auths]
    assert outcomes == [{"message": "refused"}] * len(bad_auths)
    log = log_since(bot, start)
    assert log.count("refused a socket connection") == len(bad_auths), log
    assert "ERROR" not in log and "Traceback" not in log, log


def test_an_action_for_an_unknown_session_or_a_malformed_one_is_a_plain_4xx(bot: Service) -> None:
    url = f"{bot.base_url}/project/action"
    start = len(bot.log())
    with httpx.Client(timeout=5) as client:
        unknown = client.post(url, json={"sessionId": str(uuid.uuid4()), "action": {"name": "starter", "payload": {}}})
        not_json = client.post(url, content=b"{", headers={"Content-Type": "application/json"})
        not_action = client.post(url, json={"sessionId": str(uuid.uuid4()), "action": {"name": "x", "bogus": 1}})
    assert (unknown.status_code, not_json.status_code, not_action.status_code) == (404, 400, 400)
    assert unknown.json() == {"detail": "Session not found"}
    assert not_action.json() == {"detail": "Bad request"}
    log = log_since(bot, start)
    assert log.count("refused an action request") == 3, log
    assert "ERROR" not in log and "Traceback" not in log, log


PROBE = """async (bot) => {
  const settings = await fetch(bot + "/project/settings?language=en-US", {credentials: "include"})
    .then(answer => "read " + answer.status, () => "failed");
  const polling = await fetch(bot + "/ws/socket.io/?EIO=4&transport=polling", {credentials: "include"})
    .then(answer => "read " + answer.status, () => "failed");
  const websocket = await new Promise(resolve => {
    const socket = new WebSocket(bot.replace("http", "ws") + "/ws/socket.io/?EIO=4&transport=websocket");
    socket.onmessage = event => { resolve("opened " + event.data.slice(0, 1)); socket.close(); };
    socket.onerror = () => resolve("refused");
    socket.onclose = () => resolve("refused");
    setTimeout(() => resolve("no answer"), 5000);
  });
  return {settings, polling, websocket};
}"""


def test_in_chromium_a_page_on_another_origin_cannot_chat_or_read_settings(browser: Any, bot: Service) -> None:
    home = {"/": ("text/html", b"<!doctype html><title>another site</title><p>hello</p>")}
    foreign, widget = StubMiddleware(pages=home), StubMiddleware(pages=home, port=WIDGET_PORT)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{foreign.origin}/")
        assert page.evaluate(PROBE, bot.base_url) == {"settings": "failed", "polling": "failed",
                                                       "websocket": "refused"}
        page.goto(f"{WIDGET_ORIGIN}/")  # the site ALLOWED_ORIGINS lists (the website widget's case)
        # it may read the answers (CORS): here Chainlit's 401, since this page has not signed in yet
        assert page.evaluate(PROBE, bot.base_url) == {"settings": "read 401", "polling": "read 200",
                                                       "websocket": "opened 0"}
        page.goto(bot.base_url)  # the bot's own page still chats
        expect(page.locator('[data-step-type="assistant_message"]').first).to_be_visible(timeout=20_000)
        send(page, "hello from the bot's own page")
        expect(page.get_by_text("You said: hello from the bot's own page")).to_be_visible(timeout=15_000)
    finally:
        context.close()
        foreign.stop()
        widget.stop()
