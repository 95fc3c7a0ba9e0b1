"""The headers Chainlit's server sends once brandbot's edge is installed (in-process, through the real app).

Chainlit's page gets a policy that allows exactly its own inline scripts and loads nothing from
other hosts; every other response gets a policy under which a document runs nothing; IMAGE_HOSTS
(or brand.toml's image_hosts) is the only way to let answers' images come from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from chainlit.server import get_html_template

import app  # noqa: F401 - installs the edge layers on Chainlit's server, as `chainlit run` does
from brandbot_runtime import security_headers, settings
from brandbot_runtime.origins import ORIGIN_RULE
from brandbot_runtime.origins import parse_image_hosts as parse_origins
from brandbot_runtime.settings import ConfigurationError, validate_settings

from .conftest import PROJECT_DIR, TEST_SECRET

COMMON = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of Chainlit's real app (no lifespan: Chainlit's shutdown hook would end pytest)."""
    from chainlit.server import app as server

    security_headers.current_policy.cache_clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://127.0.0.1:8000") as made:
        yield made
    security_headers.current_policy.cache_clear()


def directives(policy: str) -> dict[str, list[str]]:
    """A CSP header as {directive: [sources]}."""
    parsed = {}
    for part in filter(None, (piece.strip() for piece in policy.split(";"))):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def inline_script_hashes(html: str) -> set[str]:
    scripts = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, flags=re.DOTALL)
    return {"'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in scripts}


async def test_the_page_allows_exactly_its_inline_scripts_and_loads_nothing_from_other_hosts(
        client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"accept-encoding": "identity"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = directives(response.headers["content-security-policy"])
    hashes = inline_script_hashes(response.text)
    assert len(hashes) >= 2  # Chainlit's theme script and its `global` shim
    assert hashes == inline_script_hashes(get_html_template(""))  # exactly the template's, nothing else
    assert policy["script-src"] == ["'self'", *sorted(hashes)]
    assert policy["default-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:", "blob:"]
    assert policy["connect-src"] == ["'self'"] and policy["font-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]  # Chainlit's components set inline styles
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'self'"]
    assert not re.search(r"https?://|//[a-z]", re.sub(r'<meta [^>]*>', "", response.text))  # KaTeX, Google Fonts
    assert int(response.headers["content-length"]) == len(response.content)
    for name, value in COMMON.items():
        assert response.headers[name] == value
    assert "camera=()" in response.headers["permissions-policy"]


async def test_the_page_is_rewritten_when_chainlit_compresses_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert "jsdelivr" not in response.text and "<div id=\"root\">" in response.text
    policy = directives(response.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'", *sorted(inline_script_hashes(response.text))]


@pytest.mark.parametrize("path", ["/logo?theme=light", "/logo?theme=dark", "/favicon", "/public/theme.json",
                                  "/project/translations?language=en-US", "/health"])
async def test_every_other_response_is_inert_as_a_document(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"] and "sandbox" in policy and "script-src" not in policy
    assert policy["frame-ancestors"] == ["'self'"]
    for name, value in COMMON.items():
        assert response.headers[name] == value


async def test_an_svg_in_public_gets_the_inert_policy(client: httpx.AsyncClient) -> None:
    svg = PROJECT_DIR / "public" / "test-hostile.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', encoding="utf-8")
    try:
        response = await client.get("/public/test-hostile.svg")
    finally:
        svg.unlink()
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert directives(response.headers["content-security-policy"])["sandbox"] == []


async def test_scripts_keep_no_policy_of_their_own_but_are_never_sniffed(client: httpx.AsyncClient) -> None:
    response = await client.get("/public/brandbot.js")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers  # a worker would take it as its own
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_image_hosts_from_the_environment_are_the_only_other_image_sources(
        client: httpx.AsyncClient, configure) -> None:  # type: ignore[no-untyped-def]
    configure("https://mw.example/chat", IMAGE_HOSTS="https://CDN.acme.example, http://127.0.0.1:9000")
    response = await client.get("/")
    policy = directives(response.headers["content-security-policy"])
    assert policy["img-src"] == ["'self'", "data:", "blob:", "https://cdn.acme.example", "http://127.0.0.1:9000"]


def test_image_hosts_come_from_the_brand_data_unless_the_environment_says_otherwise(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, configure) -> None:  # type: ignore[no-untyped-def]
    brand = tmp_path / "brand.toml"
    text = (PROJECT_DIR / "brand.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^image_hosts = .*$\n?", "", text)
    brand.write_text('image_hosts = ["https://cdn.brand.example"]\n' + text, encoding="utf-8")
    monkeypatch.setenv("BRAND_DATA_FILE", str(brand))
    configure("https://mw.example/chat")
    assert validate_settings().image_hosts == ("https://cdn.brand.example",)
    monkeypatch.setenv("IMAGE_HOSTS", "")
    assert validate_settings().image_hosts == ()


@pytest.mark.parametrize("value", [
    "http://cdn.acme.example", "https://cdn.acme.example/", "https://cdn.acme.example/images",
    "https://*.acme.example", "https://cdn.acme.example?x=1", "https://user@cdn.acme.example",
    "https://cdn.acme.example:0", "https://cdn.acme.example:65536", "cdn.acme.example", "data:",
    "'unsafe-inline'", "https://a.example; script-src *", "https://a b.example", "javascript:alert(1)",
])
def test_an_image_host_that_is_not_an_https_origin_is_refused_by_name_and_index(
        configure, value: str) -> None:  # type: ignore[no-untyped-def]
    configure("https://mw.example/chat", IMAGE_HOSTS=f"https://ok.example,{value}")
    with pytest.raises(ConfigurationError) as raised:
        validate_settings()
    assert raised.value.problems == [
        f"IMAGE_HOSTS: Value error, image_hosts[1]: {ORIGIN_RULE}"]
    assert TEST_SECRET not in str(raised.value)


@pytest.mark.parametrize(("value", "expected"), [
    ("https://cdn.acme.example", "https://cdn.acme.example"),
    ("https://CDN.Acme.Example:8443", "https://cdn.acme.example:8443"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://localhost", "http://localhost"),
    ("http://[::1]:5000", "http://[::1]:5000"),
    ("https://[2001:db8::1]", "https://[2001:db8::1]"),
])
def test_https_origins_and_loopback_http_origins_are_accepted(value: str, expected: str) -> None:
    assert parse_origins([value]) == (expected,)
    assert parse_origins(f" {value} ,") == (expected,)


def test_a_list_entry_is_taken_as_written() -> None:
    with pytest.raises(ValueError, match=r"image_hosts\[0\]: must be an origin"):
        parse_origins(["https://a.example\n"])  # brand.toml's list is not trimmed like IMAGE_HOSTS


def test_unusable_settings_give_the_strictest_policy() -> None:
    settings.current_settings.cache_clear()
    security_headers.current_policy.cache_clear()
    assert security_headers.current_policy() == security_headers.Policy()


def test_more_frame_ancestors_extend_the_directive() -> None:
    policy = security_headers.Policy(frame_ancestors=("https://shop.acme.example",))
    assert directives(policy.page_csp([]))["frame-ancestors"] == ["'self'", "https://shop.acme.example"]


def test_third_party_links_are_removed_and_the_rest_kept() -> None:
    html = (b'<head>\n    <link rel="preconnect" href="https://fonts.googleapis.com" />\n'
            b'    <link\n      rel="stylesheet"\n      href="https://cdn.jsdelivr.net/npm/katex.min.css"\n    />\n'
            b'    <link rel="icon" href="/favicon" />\n    <link rel="x" href=//evil.example/a>\n</head>')
    kept = b'<head>\n    <link rel="icon" href="/favicon" />\n</head>'
    assert security_headers.without_third_party_links(html) == kept


async def test_a_script_injected_into_a_served_page_is_not_allowed() -> None:
    """The page's CSP comes from Chainlit's template, never from the body being sent."""

    async def page(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<script>known()</script><script>injected()</script>"})

    guarded = security_headers.SecurityHeaders(page, policy=security_headers.Policy,
                                               page_scripts=lambda: frozenset({b"known()"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url="http://bot.test") as client:
        response = await client.get("/")
    script_src = directives(response.headers["content-security-policy"])["script-src"]
    assert script_src == ["'self'", security_headers.script_hash(b"known()")]
