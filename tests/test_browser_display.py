"""Replies reach the customer's screen exactly as the middleware sent them, in a real browser.

A scripted middleware (a real HTTP server on loopback) answers with chosen texts; the page's
rendered text is compared with what was sent. Markdown keeps working, `word:word` survives,
HTML shows as text and never runs, and the secret never reaches the browser.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import Page, expect

from brandbot.browser import send
from brandbot.processes import Service, free_port, start_app

from .helpers import REPO, StubMiddleware

FUZZ_EXAMPLES = 40


@pytest.fixture(scope="module")
def scripted_bot(rendered: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Service, StubMiddleware]]:
    project = rendered(REPO / "examples/retail.yml")
    middleware = StubMiddleware(secret="display-" + secrets.token_hex(12))
    try:
        app = start_app(project, port=free_port(), middleware_url=middleware.url, secret=middleware.secret,
                        log_dir=tmp_path_factory.mktemp("display-logs"),
                        extra_env={"MESSAGES_PER_MINUTE": "1000"})  # one page shows every curated and fuzzed reply
    except BaseException:
        middleware.stop()
        raise
    yield app, middleware
    app.stop()
    middleware.stop()


@pytest.fixture(scope="module")
def chat_page(browser: Any, scripted_bot: tuple[Service, StubMiddleware]) -> Iterator[Page]:
    app, _ = scripted_bot
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    frames: list[str] = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda payload: frames.append(str(payload))))
    page.frames_received = frames  # type: ignore[attr-defined]
    page.goto(app.base_url)
    expect(page.locator('[data-step-type="assistant_message"]').first).to_be_visible(timeout=20_000)
    yield page
    context.close()


def shown_reply(page: Page, middleware: StubMiddleware, reply: str) -> Any:
    """Queue `reply`, send a message, and return the locator of the bot's rendered answer."""
    answers = page.locator('[data-step-type="assistant_message"]')
    before = answers.count()
    middleware.replies.append(reply)
    send(page, "next")
    expect(answers).to_have_count(before + 1, timeout=10_000)
    content = answers.last.locator(".message-content").first
    expect(content).not_to_have_text("Thinking...", timeout=10_000)
    return content


CURATED = [
    "Your parcel Ref:QX-77 is status:shipped",
    "Meet at 10:30 in room B:12 :smile: a::b :::note",
    "Prices: 10 &amp; 20 &lt;b&gt; &#169;",
    "O'Brien \"Quoted\" \\ {{ 7*7 }} {% raw %} ${HOME} %s {0} 🚀 مرحبا שלום",
    "<b>not bold</b> and <i>not italic</i> and <br> and <!-- not a comment -->",
]


@pytest.mark.parametrize("reply", CURATED)
def test_a_reply_is_shown_exactly_as_sent(chat_page: Page, scripted_bot: tuple, reply: str) -> None:
    content = shown_reply(chat_page, scripted_bot[1], reply)
    assert content.inner_text() == reply


def test_markdown_still_renders(chat_page: Page, scripted_bot: tuple) -> None:
    reply = ("**Order QX-77:** shipped\n\n- item:one\n- item two\n\n"
             "[Track it](https://track.example/parcel:QX-77) or call `0800:123`")
    content = shown_reply(chat_page, scripted_bot[1], reply)
    expect(content.locator(".font-bold")).to_have_text("Order QX-77:")
    expect(content.locator("li")).to_have_text(["item:one", "item two"])
    link = content.locator("a")
    expect(link).to_have_text("Track it")
    assert link.get_attribute("href") == "https://track.example/parcel:QX-77"
    expect(content.locator("code")).to_have_text("0800:123")


@pytest.mark.parametrize(("reply", "shown", "text", "address"), [
    ("Track it at https://shop.example/track<br>Thanks", None, "https://shop.example/track",
     "https://shop.example/track"),
    ("See [tracking](https://shop.example/track)<br>", "See tracking<br>", "tracking", "https://shop.example/track"),
    ("(see https://shop.example/x)<br>", None, "https://shop.example/x", "https://shop.example/x"),
])
def test_a_link_followed_by_html_keeps_its_address(chat_page: Page, scripted_bot: tuple, reply: str,
                                                   shown: str | None, text: str, address: str) -> None:
    content = shown_reply(chat_page, scripted_bot[1], reply)
    assert content.inner_text() == (shown or reply)
    link = content.locator("a")
    expect(link).to_have_text(text)
    assert link.get_attribute("href") == address


def test_code_blocks_show_every_character_and_nothing_more(chat_page: Page, scripted_bot: tuple) -> None:
    reply = ("Settings:\n\n    host:port <default> &amp;\n\n"
             "```\nRef:QX-77 <b>\n```\n\n"
             "1. Open the app\n\n    then pick Orders:Recent\n")
    content = shown_reply(chat_page, scripted_bot[1], reply)
    blocks = content.locator("code")  # Chainlit shows a code block as a card around a <code>
    expect(blocks).to_have_count(2)
    assert [block.strip() for block in blocks.all_inner_texts()] == [
        "host:port <default> &amp;", "Ref:QX-77 <b>"]
    expect(content.locator("li")).to_contain_text("then pick Orders:Recent")


def test_a_table_cell_ends_a_code_span(chat_page: Page, scripted_bot: tuple) -> None:
    reply = "| Ref | Part | Status |\n|---|---|---|\n| `QX | 77:ok` | shipped:today |"
    content = shown_reply(chat_page, scripted_bot[1], reply)
    expect(content.locator("td")).to_have_text(["`QX", "77:ok`", "shipped:today"])


def test_html_in_a_reply_shows_as_text_and_never_runs(chat_page: Page, scripted_bot: tuple) -> None:
    reply = ('<img src="x" onerror="window.__pwned = 1"> <script>window.__pwned = 2</script> '
             '<a href="javascript:window.__pwned=3">click</a>')
    content = shown_reply(chat_page, scripted_bot[1], reply)
    assert content.inner_text() == reply
    assert content.locator("img, script, a").count() == 0
    chat_page.wait_for_timeout(300)
    assert chat_page.evaluate("() => window.__pwned") is None


TEXT = st.text(
    alphabet=st.sampled_from([*"abcXYZ019 :;<>&'\"{}%$!?.,()@/=^", "é", "ß", "🚀", "م", "ש", "中"]),
    min_size=1, max_size=40,
).filter(lambda text: text.strip() == text and not text[0].isdigit() and not text.startswith((">", "=")))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(reply=TEXT)
def test_any_plain_reply_is_shown_exactly_as_sent(chat_page: Page, scripted_bot: tuple, reply: str) -> None:
    content = shown_reply(chat_page, scripted_bot[1], reply)
    assert content.inner_text() == reply


def test_the_secret_never_reaches_the_browser(chat_page: Page, scripted_bot: tuple) -> None:
    app, middleware = scripted_bot
    assert chat_page.frames_received, "no websocket frames were captured"  # type: ignore[attr-defined]
    seen = "\n".join(chat_page.frames_received) + chat_page.content()  # type: ignore[attr-defined]
    for path in ("/", "/project/settings?language=en-US", "/project/translations?language=en-US", "/health"):
        seen += chat_page.request.get(app.base_url + path).text()
    assert middleware.secret not in seen
    assert middleware.secret not in app.log()
