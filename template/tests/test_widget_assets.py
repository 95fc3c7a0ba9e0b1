"""The website widget's script as the bot serves it: Chainlit's own file asks Google for a font on
every page that opens the chat (the gap, proven on the installed Chainlit); the served copy asks
nobody, declares UTF-8 and comes gzipped to clients that take it."""

from __future__ import annotations

import gzip
from pathlib import Path

from chainlit.server import copilot_build_dir

from brandbot_runtime.widget_assets import EMPTY_STYLESHEET, GOOGLE_FONTS, WidgetAssets, patched

SCRIPT = Path(copilot_build_dir) / "index.js"


def test_chainlits_widget_asks_google_for_a_font_and_the_patched_one_asks_nobody() -> None:
    original = SCRIPT.read_bytes()
    assert original.count(GOOGLE_FONTS) == 1  # the gap: if Chainlit moves the address, this test says so
    served = patched(original)
    assert b"fonts.googleapis.com" not in served and b"fonts.gstatic.com" not in served
    assert served.count(EMPTY_STYLESHEET) == original.count(EMPTY_STYLESHEET) + 1
    assert len(served) == len(original) - len(GOOGLE_FONTS) + len(EMPTY_STYLESHEET)


async def call(layer: WidgetAssets, path: str, accept: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"accept-encoding", accept)] if accept else []
    await layer({"type": "http", "method": "GET", "path": path, "headers": headers}, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


async def test_the_layer_serves_the_patched_script_and_passes_everything_else_on() -> None:
    passed: list[str] = []

    async def chainlit(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        passed.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    layer = WidgetAssets(chainlit, script=SCRIPT)
    status, headers, body = await call(layer, "/copilot/index.js", b"gzip, deflate, br")
    assert status == 200 and headers[b"content-encoding"] == b"gzip"
    assert headers[b"content-type"] == b"text/javascript; charset=utf-8"
    assert gzip.decompress(body) == patched(SCRIPT.read_bytes()) and len(body) < len(SCRIPT.read_bytes()) / 2
    status, headers, body = await call(layer, "/copilot/index.js")
    assert b"content-encoding" not in headers and body == patched(SCRIPT.read_bytes())
    assert (await call(layer, "/copilot/assets/other.js"))[0] == 204 and passed == ["/copilot/assets/other.js"]
