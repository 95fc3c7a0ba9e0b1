"""What a customer sees, in a real browser (Debian's Chromium via Playwright), for every example brand."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from brandbot.browser import send

from .helpers import EXAMPLES, BotRun, LiveBot, example_id

# A latency long enough to see "Thinking...", a transition long enough to see the specialist status.
BOT_RUN = BotRun(latency_ms=700, app_env={"TRANSITION_DELAY_SECONDS": "1.2", "REQUEST_TIMEOUT_SECONDS": "5"})
pytestmark = pytest.mark.parametrize("bot", EXAMPLES, indirect=True, ids=example_id, scope="module")


@pytest.fixture
def page(browser: Any, bot: LiveBot) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 800}, locale="en-US")
    page = context.new_page()
    page.goto(bot.app.base_url)
    expect(page.locator('[data-step-type="assistant_message"]').first).to_be_visible(timeout=20_000)
    yield page
    context.close()


def first_line(markdown: str) -> str:
    """The first line of a markdown text as the page shows it (emphasis markers removed)."""
    return markdown.splitlines()[0].replace("**", "").strip()


def test_title_logo_and_colour_are_the_brands(page: Page, bot: LiveBot) -> None:
    assert page.title() == bot.brand["brand_name"]
    default_theme = tomllib.loads((bot.project / ".chainlit/config.toml").read_text(encoding="utf-8"))["UI"][
        "default_theme"]
    expected = bot.theme["variables"][default_theme]["--primary"]
    assert page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--primary')").strip() == expected
    logo = next((bot.project / "public").glob("logo_light.*"))
    assert httpx.get(f"{bot.app.base_url}/logo?theme=light", timeout=5).content == logo.read_bytes()
    favicon = next((bot.project / "public").glob("favicon.*"))
    avatar = page.locator('img[alt^="Avatar for"]').first
    expect(avatar).to_be_visible()
    assert avatar.evaluate("image => image.complete && image.naturalWidth > 0")
    assert httpx.get(bot.app.base_url + avatar.get_attribute("src"), timeout=5).content == favicon.read_bytes()


def test_welcome_and_starters_are_visible_and_a_starter_sends_its_message(page: Page, bot: LiveBot) -> None:
    expect(page.get_by_text(first_line(bot.brand["welcome_message"]), exact=False).first).to_be_visible()
    for starter in bot.brand["starters"]:
        expect(page.get_by_role("button", name=starter["label"], exact=True)).to_be_visible()
    if not bot.brand["starters"]:
        return
    starter = bot.brand["starters"][0]
    page.get_by_role("button", name=starter["label"], exact=True).click()
    expect(page.locator('[data-step-type="user_message"]').filter(has_text=starter["message"])).to_be_visible()
    answers = page.locator('[data-step-type="assistant_message"]')
    expect(answers).to_have_count(2, timeout=20_000)
    expect(answers.last).not_to_have_text(bot.brand["texts"]["thinking"], timeout=20_000)


def test_thinking_then_the_specialist_then_the_answer(page: Page, bot: LiveBot) -> None:
    texts = bot.brand["texts"]
    category, details = next(iter(bot.brand["categories"].items()))
    label = details.get("label") or category
    send(page, f"simulate category {category}: I need help")
    expect(page.get_by_text(texts["thinking"], exact=True)).to_be_visible(timeout=5_000)
    specialist = texts["specialist_transition"].replace("{label}", label)
    expect(page.get_by_text(specialist, exact=True)).to_be_visible(timeout=5_000)
    last = page.locator('[data-step-type="assistant_message"]').last
    expect(last).not_to_have_text(specialist, timeout=10_000)
    assert last.inner_text().strip() not in texts.values()


def test_a_stopped_middleware_shows_the_connection_error_and_try_again_recovers(page: Page, bot: LiveBot) -> None:
    texts = bot.brand["texts"]
    bot.middleware.stop()
    try:
        send(page, "Hello?")
        expect(page.get_by_text(texts["error_connection"], exact=True)).to_be_visible(timeout=10_000)
    finally:
        bot.restart_middleware()
    page.get_by_role("button", name=texts["retry"], exact=True).click()  # nothing to retype
    answers = page.locator('[data-step-type="assistant_message"]')
    expect(answers).to_have_count(3, timeout=10_000)
    expect(answers.last).to_contain_text("middleware", timeout=10_000)
    expect(page.get_by_text(texts["error_connection"], exact=True)).to_be_visible()  # the failure stays on record
    send(page, "Hello again")
    expect(answers).to_have_count(4, timeout=10_000)
    expect(answers.last).to_contain_text("middleware", timeout=10_000)


def test_no_serious_or_critical_accessibility_violation(page: Page, bot: LiveBot) -> None:
    from axe_playwright_python.sync_playwright import Axe

    send(page, "Hello!")
    expect(page.locator('[data-step-type="assistant_message"]')).to_have_count(2, timeout=10_000)
    expect(page.locator('[data-step-type="assistant_message"]').last).to_contain_text("middleware", timeout=10_000)
    results = Axe().run(page)
    violations = results.response["violations"]
    serious = [(v["id"], v["impact"], [node["target"] for node in v["nodes"]][:3]) for v in violations
               if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious
