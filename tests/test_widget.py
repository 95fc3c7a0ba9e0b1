"""The chat on the brand's own website, in Chromium with real processes: a host page on a second
loopback origin carries the one-line tag (`<script src=".../public/embed.js" defer>`), the bot lists
that origin in ALLOWED_ORIGINS and stores conversations; a third origin, not listed, serves the same
page. The widget must look like the brand, chat like the bot's own page, keep the conversation across
the site's pages, name a verified customer, make no request to any other host, pass axe, and do
nothing at all on the unlisted site."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from playwright.sync_api import Page, expect

from brandbot.browser import send as type_and_send
from brandbot.embed_guide import embed_guide
from brandbot.processes import RunningBot, start_bot
from brandbot.validation import validate_answers

from .helpers import EXAMPLES, REPO, StubMiddleware, brandbot, copier_render

RETAIL = next(path for path in EXAMPLES if path.stem == "retail")
TOKEN_SECRET = "the-shop-signs-customer-tokens-with-this"
ARTEFACTS = REPO / "build" / "test-artefacts"


def host_page(title: str, bot: str, extra: str = "") -> tuple[str, bytes]:
    """A page of the brand's site: its own content, and the one line that adds the chat."""
    return ("text/html", f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><header><h1>{title}</h1></header><main><p>Northwind's shop.</p><a href="/second">Our second page</a></main>
<script src="{bot}/public/embed.js" defer{extra}></script></body></html>""".encode())


@pytest.mark.parametrize("origin", ["https://www.acme.example/shop", "https://*.acme.example", "http://www.acme.example",
                                    "www.acme.example", "https://www.acme.example?x=1", ""])
def test_a_website_origin_that_is_not_an_origin_is_refused_by_name(origin: str) -> None:
    problems = [str(problem) for problem in validate_answers({"brand_name": "Acme",
                                                               "website_origins": ["https://acme.example", origin]})]
    assert len(problems) == 1 and problems[0].startswith("website_origins: website_origins[1]: must be an origin")


def test_copier_writes_the_website_origins_where_the_bot_reads_them(tmp_path: Path) -> None:
    out = copier_render(tmp_path / "good", {"brand_name": "Acme", "website_origins": ["https://www.acme.example",
                                                                                      "http://localhost:3000"]})
    assert tomllib.loads((out / "brand.toml").read_text(encoding="utf-8"))["allowed_origins"] == [
        "https://www.acme.example", "http://localhost:3000"]
    with pytest.raises(ValueError, match=r"website_origins\[0\]: must be an origin"):
        copier_render(tmp_path / "bad", {"brand_name": "Acme", "website_origins": ["https://*.acme.example"]})
    guide = embed_guide(out, "https://chat.acme.example")
    assert '<script src="https://chat.acme.example/public/embed.js" defer></script>' in guide
    assert "- https://www.acme.example" in guide and '"aud": "acme"' in guide
    assert "connect-src https://chat.acme.example wss://chat.acme.example" in guide
    done = brandbot("embed", str(out), "--url", "https://chat.acme.example")
    assert done.returncode == 0 and "public/embed.js" in done.stdout
    assert brandbot("embed", str(tmp_path)).returncode == 1


def other_site(server: StubMiddleware) -> str:
    """The same server under another site's name: localhost and 127.0.0.1 are different sites to a
    browser, so the bot's Lax sign-in cookie is a third-party cookie there, as on another domain."""
    return server.origin.replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[StubMiddleware, StubMiddleware]]:
    """The brand's website (listed) and another site (not listed), each a real HTTP server."""
    listed, unlisted = StubMiddleware(), StubMiddleware()
    yield listed, unlisted
    listed.stop()
    unlisted.stop()


@pytest.fixture(scope="module")
def widget_bot(site: tuple[StubMiddleware, StubMiddleware], rendered: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    listed, unlisted = site
    project = rendered(RETAIL)
    logs = tmp_path_factory.mktemp("widget-bot")
    running = start_bot(project, log_dir=logs, app_env={
        "ALLOWED_ORIGINS": f"{listed.origin},{other_site(listed)}", "DATABASE_URL": f"sqlite+aiosqlite:///{logs}/conversations.sqlite3",
        "CUSTOMER_TOKEN_SECRET": TOKEN_SECRET, "TRANSITION_DELAY_SECONDS": "1.0"})
    bot = running.app.base_url
    for server in (listed, unlisted):
        server.pages.update({"/": host_page("Northwind Outfitters", bot),
                             "/second": host_page("Northwind: second page", bot)})
    try:
        yield running
    finally:
        assert running.stop() == 0, "chainlit did not stop cleanly on SIGINT"


@pytest.fixture
def visitor(browser: Any) -> Iterator[tuple[Page, list[str]]]:
    """A fresh browser; the addresses of every request it makes."""
    context = browser.new_context(viewport={"width": 1200, "height": 850}, locale="en-US")
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    yield page, requested
    context.close()


def send(page: Page, text: str) -> None:
    """Type a message into the widget and see it sent. Right after the welcome shows, Chainlit's
    widget may still re-render its composer and drop what was typed (seen about once in three runs
    here); a customer would type it again, and so does this."""
    sent = page.locator('[data-step-type="user_message"]').filter(has_text=text)
    before = sent.count()
    for _ in range(3):
        type_and_send(page, text)
        try:
            expect(sent).to_have_count(before + 1, timeout=3_000)
            return
        except AssertionError:
            page.locator("#chat-input").fill("")
    raise AssertionError(f"the widget never sent {text!r}")


def brand_data(bot: RunningBot) -> dict[str, Any]:
    return tomllib.loads((bot.project / "brand.toml").read_text(encoding="utf-8"))


def open_widget(page: Page, bot: RunningBot) -> None:
    button = page.locator("#chainlit-copilot-button")
    expect(button).to_be_visible(timeout=30_000)
    expect(button).to_have_attribute("aria-label", brand_data(bot)["texts"]["open_chat"])
    button.click()


def test_the_widget_is_the_brands_bot_and_keeps_the_conversation_across_pages(
        visitor: tuple[Page, list[str]], widget_bot: RunningBot, site: tuple[StubMiddleware, StubMiddleware]) -> None:
    page, requested = visitor
    listed, _ = site
    brand = brand_data(widget_bot)
    page.goto(f"{listed.origin}/")
    button = page.locator("#chainlit-copilot-button")
    expect(button).to_be_visible(timeout=30_000)
    colour = button.evaluate("button => getComputedStyle(button).backgroundColor")
    assert colour == "rgb(180, 83, 9)"  # the brand's primary_color, #B45309
    open_widget(page, widget_bot)
    welcome = brand["welcome_message"].splitlines()[0].replace("**", "").strip()
    expect(page.get_by_text(welcome, exact=False).first).to_be_visible(timeout=20_000)

    send(page, "where is my order")
    answers = page.locator('[data-step-type="assistant_message"]')
    expect(answers.last).to_contain_text("warehouse", timeout=20_000)
    category, details = next(iter(brand["categories"].items()))
    send(page, f"simulate category {category}: a question")
    transition = brand["texts"]["specialist_transition"].replace("{label}", details.get("label") or category)
    expect(page.get_by_text(transition, exact=True)).to_be_visible(timeout=10_000)
    expect(page.get_by_text(transition, exact=True)).to_have_count(0, timeout=15_000)

    page.get_by_role("link", name="Our second page").click()  # the site's own navigation: a new page load
    expect(page).to_have_title("Northwind: second page")
    open_widget(page, widget_bot)
    expect(page.get_by_text("where is my order", exact=True)).to_be_visible(timeout=20_000)
    send(page, "simulate whoami")
    expect(answers.last).to_contain_text("anonymous visitor", timeout=20_000)

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "widget-on-the-brands-site.png"))
    foreign = sorted({url.split("/")[2] for url in requested} - {listed.origin.split("/")[2],
                                                                    widget_bot.app.base_url.split("/")[2]})
    assert foreign == [], f"the widget reached other hosts: {foreign}"


def test_a_token_from_the_brands_server_names_the_customer(
        visitor: tuple[Page, list[str]], widget_bot: RunningBot, site: tuple[StubMiddleware, StubMiddleware]) -> None:
    page, _ = visitor
    listed, _ = site
    now = int(time.time())
    token = jwt.encode({"sub": "cust-501", "aud": brand_data(widget_bot)["customer_token_audience"], "iat": now,
                        "exp": now + 300, "tier": "gold"}, TOKEN_SECRET, algorithm="HS256")
    listed.pages["/account"] = host_page("Your account", widget_bot.app.base_url,
                                         f' data-customer-token="{token}" data-open="true" data-position="left"')
    page.goto(f"{listed.origin}/account")
    expect(page.locator("#chat-input")).to_be_visible(timeout=30_000)  # data-open: open at once
    send(page, "simulate whoami")
    expect(page.locator('[data-step-type="assistant_message"]').last).to_contain_text(
        "verified customer cust-501 (tier=gold)", timeout=20_000)
    box = page.locator("#chainlit-copilot-button").bounding_box()
    assert box is not None and box["x"] < 200  # data-position="left"


def test_the_host_page_with_the_widget_open_passes_axe(
        visitor: tuple[Page, list[str]], widget_bot: RunningBot, site: tuple[StubMiddleware, StubMiddleware]) -> None:
    from axe_playwright_python.sync_playwright import Axe

    page, _ = visitor
    listed, _ = site
    page.goto(f"{listed.origin}/")
    open_widget(page, widget_bot)
    send(page, "Hello!")
    expect(page.locator('[data-step-type="assistant_message"]').last).to_contain_text("middleware", timeout=20_000)
    violations = Axe().run(page).response["violations"]
    serious = [(v["id"], v["impact"], [node["target"] for node in v["nodes"]][:3]) for v in violations
               if v["impact"] in {"serious", "critical"}]
    assert serious == [], serious


def test_a_site_that_is_not_listed_gets_no_chat(
        visitor: tuple[Page, list[str]], widget_bot: RunningBot, site: tuple[StubMiddleware, StubMiddleware]) -> None:
    page, requested = visitor
    _, unlisted = site
    warnings: list[str] = []
    page.on("console", lambda message: warnings.append(message.text))
    page.goto(f"{unlisted.origin}/")
    page.wait_for_timeout(3000)
    expect(page.locator("#chainlit-copilot-button")).to_have_count(0)
    # the sign-in's CORS preflight gets the guard's 403: the page cannot even read the refusal
    assert any(text.startswith("brandbot chat widget:") for text in warnings), warnings
    assert not any("/copilot/index.js" in url or "/ws/socket.io" in url for url in requested)
    opened = page.evaluate("""bot => new Promise(resolve => {
        const socket = new WebSocket(bot.replace("http", "ws") + "/ws/socket.io/?EIO=4&transport=websocket");
        socket.onmessage = () => resolve("opened"); socket.onerror = () => resolve("refused");
        socket.onclose = () => resolve("refused"); setTimeout(() => resolve("no answer"), 5000); })""",
                           widget_bot.app.base_url)
    assert opened == "refused"


def test_where_the_browser_keeps_no_cookie_for_the_bot_the_chat_opens_in_a_tab_of_its_own(
        visitor: tuple[Page, list[str]], widget_bot: RunningBot, site: tuple[StubMiddleware, StubMiddleware]) -> None:
    page, requested = visitor
    listed, _ = site
    page.goto(f"{other_site(listed)}/")  # an allowed site on another domain, without CHAINLIT_COOKIE_SAMESITE=none
    link = page.locator("#brandbot-chat-link")
    expect(link).to_be_visible(timeout=30_000)
    expect(link).to_have_text(brand_data(widget_bot)["texts"]["open_chat"])
    assert link.get_attribute("href") == f"{widget_bot.app.base_url}/"
    expect(page.locator("#chainlit-copilot-button")).to_have_count(0)
    assert not any("/copilot/index.js" in url for url in requested)
