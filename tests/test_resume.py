"""Resume, for real: two `chainlit run` replicas of the retail bot sharing one PostgreSQL (the throw-away
cluster), a recording middleware, Chainlit's socket.io protocol and Chromium. A customer who reloads the
page, or whose connection lands on the other replica, sees the same conversation and continues it with
the history the middleware had before; nobody else can open, list or continue it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from playwright.sync_api import expect

from brandbot.browser import send
from brandbot.chat_client import ChainlitChat, ChatProtocolError
from brandbot.postgres_cluster import PostgresCluster
from brandbot.processes import Service, free_port, start_app

from .helpers import EXAMPLES, StubMiddleware

RETAIL = next(path for path in EXAMPLES if path.stem == "retail")
SECRET = "resume-secret-shared-by-the-replicas"
TOKEN_SECRET = "the-shop-and-the-bot-share-this-token-secret"
AUDIENCE = "northwind-outfitters"  # the retail brand's slug: brand.toml's customer_token_audience


def customer_token(customer: str, *, secret: str = TOKEN_SECRET, audience: str = AUDIENCE, lifetime: int = 300,
                   **claims: Any) -> str:
    """What the brand's site signs for a signed-in customer (HS256)."""
    now = int(time.time())
    return jwt.encode({"sub": customer, "aud": audience, "iat": now, "exp": now + lifetime, **claims},
                      secret, algorithm="HS256")


def numbered(body: dict[str, Any]) -> str:
    """An answer that names the message and how many exchanges the middleware was shown before it."""
    return f"Answer after {(len(body['history']) - 1) // 2} earlier: {body['message']}"


@pytest.fixture(scope="module")
def middleware() -> Iterator[StubMiddleware]:
    stub = StubMiddleware(numbered)
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def database(postgres: PostgresCluster) -> str:
    return postgres.create_database("resume")


@pytest.fixture(scope="module")
def replicas(database: str, middleware: StubMiddleware, rendered: Callable[[Path], Path],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Service]]:
    """Two processes of one deployment: same project, secret and database; nothing else shared."""
    project = rendered(RETAIL)
    started: list[Service] = []
    try:
        for name in ("a", "b"):
            started.append(start_app(project, port=free_port(), middleware_url=middleware.url, secret=SECRET,
                                     log_dir=tmp_path_factory.mktemp(f"replica-{name}"),
                                     extra_env={"DATABASE_URL": database, "MESSAGES_PER_MINUTE": "1000",
                                                "CUSTOMER_TOKEN_SECRET": TOKEN_SECRET}))
        yield started
    finally:
        for service in started:
            assert service.stop() == 0, "chainlit did not stop cleanly on SIGINT"


def stored_answer(postgres: PostgresCluster, text: str, seconds: float = 10) -> None:
    """Wait until the answer to `text` is stored (Chainlit writes steps in background tasks)."""
    deadline = time.monotonic() + seconds
    query = f"""SELECT count(*) FROM steps WHERE metadata::jsonb -> 'brandbot' ->> 'asked' = '{text}'"""
    while postgres.psql(query, database="resume") != "1":
        assert time.monotonic() < deadline, f"the answer to {text!r} was not stored"
        time.sleep(0.1)


def history_of(request: dict[str, Any]) -> list[str]:
    return [turn["content"] for turn in request["history"]]


def test_a_conversation_continues_on_the_other_replica_with_the_same_history(
        replicas: list[Service], middleware: StubMiddleware, postgres: PostgresCluster) -> None:
    first, other = replicas

    async def on_the_first() -> tuple[str, dict[str, str]]:
        async with ChainlitChat(first.base_url) as chat:
            await chat.welcome()
            await chat.send("where is my parcel")
            await chat.send("and my refund")
            return await chat.stored_thread(), chat.cookies

    thread, cookies = asyncio.run(on_the_first())
    stored_answer(postgres, "and my refund")
    expected = ["where is my parcel", "Answer after 0 earlier: where is my parcel",
                "and my refund", "Answer after 1 earlier: and my refund", "thanks"]

    async def on_the_other() -> str:
        async with ChainlitChat(other.base_url, cookies=cookies, thread_id=thread) as chat:
            exchange = await chat.send("thanks")
            assert chat.user == ChainlitChat(first.base_url, cookies=cookies).user  # the same visitor
            return exchange.final

    assert "Answer after 2 earlier: thanks" in asyncio.run(on_the_other())
    assert history_of(middleware.requests[-1]) == expected
    assert middleware.requests[-1]["customer"] == {"id": None, "verified": False, "claims": {}}
    assert "resumed a stored conversation (2 exchanges)" in other.log()


def test_nobody_else_can_open_list_or_continue_a_conversation(
        replicas: list[Service], middleware: StubMiddleware, postgres: PostgresCluster) -> None:
    first, other = replicas

    async def owner() -> tuple[str, dict[str, str]]:
        async with ChainlitChat(first.base_url) as chat:
            await chat.welcome()
            await chat.send("my private order 1234")
            return await chat.stored_thread(), chat.cookies

    thread, cookies = asyncio.run(owner())
    stored_answer(postgres, "my private order 1234")
    stranger = asyncio.run(ChainlitChat(other.base_url).sign_in())
    assert stranger["access_token"] != cookies["access_token"]

    with pytest.raises(ChatProtocolError, match="could not connect"):  # Chainlit checks the thread's owner
        asyncio.run(ChainlitChat(other.base_url, cookies=stranger, thread_id=thread).connect())
    def client(cookie_jar: dict[str, str]) -> httpx.Client:
        return httpx.Client(base_url=other.base_url, timeout=5, cookies=cookie_jar)

    page = {"pagination": {"first": 20}, "filter": {}}
    with client(stranger) as theirs, client(cookies) as mine:
        assert theirs.get(f"/project/thread/{thread}").status_code in (401, 403)
        assert mine.get(f"/project/thread/{thread}").status_code == 200
        listed = theirs.post("/project/threads", json=page)
        assert listed.status_code == 200 and listed.json()["data"] == []
        assert [item["id"] for item in mine.post("/project/threads", json=page).json()["data"]] == [thread]
    async def stranger_writes() -> None:  # a fresh chat of the stranger: their own, empty history
        async with ChainlitChat(other.base_url, cookies=stranger) as chat:
            await chat.welcome()
            await chat.send("what did they order")

    asyncio.run(stranger_writes())
    assert history_of(middleware.requests[-1]) == ["what did they order"]


def test_a_verified_customer_is_named_to_the_middleware_and_finds_their_conversations_on_any_device(
        replicas: list[Service], middleware: StubMiddleware, postgres: PostgresCluster) -> None:
    first, other = replicas

    async def laptop() -> str:
        async with ChainlitChat(first.base_url, customer_token=customer_token("cust-77", tier="gold")) as chat:
            await chat.welcome()
            await chat.send("my order from the laptop")
            assert chat.user == "customer:cust-77"
            return await chat.stored_thread()

    thread = asyncio.run(laptop())
    assert middleware.requests[-1]["customer"] == {"id": "cust-77", "verified": True, "claims": {"tier": "gold"}}
    stored_answer(postgres, "my order from the laptop")

    async def phone() -> str:  # another device: no cookie in common, a fresh token for the same customer
        chat = ChainlitChat(other.base_url, customer_token=customer_token("cust-77"))
        await chat.sign_in()
        with httpx.Client(base_url=other.base_url, timeout=5, cookies=chat.cookies) as http:
            listed = http.post("/project/threads", json={"pagination": {"first": 20}, "filter": {}}).json()["data"]
        assert [item["id"] for item in listed] == [thread]
        async with ChainlitChat(other.base_url, cookies=chat.cookies, thread_id=thread) as resumed:
            return (await resumed.send("and from the phone")).final

    assert "Answer after 1 earlier: and from the phone" in asyncio.run(phone())


@pytest.mark.parametrize("token", [
    pytest.param(lambda: customer_token("cust-77", secret="an-attacker-guessed-this-one-" * 2), id="forged"),
    pytest.param(lambda: customer_token("cust-77", lifetime=-120), id="expired"),
    pytest.param(lambda: customer_token("cust-77", audience="another-shop"), id="wrong-audience"),
])
def test_a_forged_expired_or_foreign_token_chats_anonymously_and_says_why_in_the_log(
        replicas: list[Service], middleware: StubMiddleware, token: Callable[[], str]) -> None:
    first, _ = replicas

    async def chat_with_token() -> tuple[str | None, list[str]]:
        async with ChainlitChat(first.base_url, customer_token=token()) as chat:
            await chat.welcome()
            await chat.send("show me cust-77's orders")
            with httpx.Client(base_url=first.base_url, timeout=5, cookies=chat.cookies) as http:
                listed = http.post("/project/threads", json={"pagination": {"first": 20}, "filter": {}}).json()
            return chat.user, [item["id"] for item in listed["data"]]

    user, threads = asyncio.run(chat_with_token())
    assert user is not None and user.startswith("visitor:")
    assert len(threads) <= 1  # at most the conversation just begun: none of cust-77's
    assert middleware.requests[-1]["customer"] == {"id": None, "verified": False, "claims": {}}
    assert "customer token refused" in first.log()


# --- in Chromium (last: Playwright keeps its event loop until the module ends) ----------------------------

def test_a_reload_in_chromium_shows_the_conversation_and_continues_it(
        browser: Any, replicas: list[Service], middleware: StubMiddleware, postgres: PostgresCluster) -> None:
    first, other = replicas
    context = browser.new_context(viewport={"width": 1100, "height": 800}, locale="en-US")
    try:
        page = context.new_page()
        page.goto(first.base_url)
        expect(page.locator('[data-step-type="assistant_message"]').first).to_be_visible(timeout=20_000)
        send(page, "is the blue jacket in stock")
        expect(page.get_by_text("Answer after 0 earlier: is the blue jacket in stock")).to_be_visible(timeout=15_000)
        stored_answer(postgres, "is the blue jacket in stock")
        expect(page).to_have_url(re.compile(r"/thread/[0-9a-f-]{36}$"), timeout=10_000)
        address = page.url

        page.reload()
        expect(page.get_by_text("Answer after 0 earlier: is the blue jacket in stock")).to_be_visible(timeout=20_000)
        send(page, "in size M")
        expect(page.get_by_text("Answer after 1 earlier: in size M")).to_be_visible(timeout=15_000)
        assert history_of(middleware.requests[-1])[:2] == [
            "is the blue jacket in stock", "Answer after 0 earlier: is the blue jacket in stock"]
        stored_answer(postgres, "in size M")

        page.goto(address.replace(first.base_url, other.base_url))  # the same browser lands on the other replica
        expect(page.get_by_text("Answer after 1 earlier: in size M")).to_be_visible(timeout=20_000)
        send(page, "thank you")
        expect(page.get_by_text("Answer after 2 earlier: thank you")).to_be_visible(timeout=15_000)
    finally:
        context.close()


def test_a_link_from_the_brands_site_signs_the_customer_in_chromium(
        browser: Any, replicas: list[Service], middleware: StubMiddleware) -> None:
    first, _ = replicas
    context = browser.new_context(viewport={"width": 1100, "height": 800}, locale="en-US")
    try:
        page = context.new_page()
        page.goto(f"{first.base_url}/?customer_token={customer_token('cust-88', name='Ada')}")
        expect(page.locator('[data-step-type="assistant_message"]').first).to_be_visible(timeout=20_000)
        assert "customer_token" not in page.url  # the token left the address bar (and the history)
        send(page, "hello as Ada")
        expect(page.get_by_text("Answer after 0 earlier: hello as Ada")).to_be_visible(timeout=15_000)
        assert middleware.requests[-1]["customer"] == {"id": "cust-88", "verified": True, "claims": {"name": "Ada"}}
        names = {cookie["name"]: cookie for cookie in context.cookies()}
        assert names["brandbot_visitor"]["httpOnly"] and names["access_token"]["httpOnly"]
    finally:
        context.close()
