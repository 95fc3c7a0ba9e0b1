"""Who is chatting: visitor cookies, customer tokens from the brand's site, and what the middleware
is told. The sign-in end to end (a real browser, a real server) is in brandbot's own tests."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import chainlit as cl
import jwt
import pytest

from brandbot_runtime import identity, identity_cookies
from brandbot_runtime.settings import Settings, current_settings

from .chat_harness import ChatHarness

TOKEN_SECRET = "t" * 64
AUDIENCE = "acme-chat"


@pytest.fixture
def customers(configure, middleware) -> Settings:  # type: ignore[no-untyped-def]
    configure(middleware.url, CUSTOMER_TOKEN_SECRET=TOKEN_SECRET, CUSTOMER_TOKEN_AUDIENCE=AUDIENCE)
    settings = current_settings()
    assert isinstance(settings, Settings)
    return settings


def token(secret: str = TOKEN_SECRET, *, lifetime: int = 300, issued: float | None = None, drop: tuple[str, ...] = (),
          algorithm: str = "HS256", **claims: Any) -> str:
    """A customer token as the brand's site would sign it."""
    now = time.time() if issued is None else issued
    payload = {"sub": "cust-42", "aud": AUDIENCE, "iat": int(now), "exp": int(now) + lifetime, "tier": "gold", **claims}
    for name in drop:
        payload.pop(name)
    return jwt.encode(payload, secret, algorithm=algorithm)


def test_a_valid_token_names_the_customer_and_keeps_only_its_own_claims(customers: Settings) -> None:
    customer = identity.verify_customer_token(token(name="Ada", iss="shop"), customers)
    assert customer == identity.Customer(id="cust-42", verified=True, claims={"tier": "gold", "name": "Ada"})
    assert customer.as_contract() == {"id": "cust-42", "verified": True, "claims": {"tier": "gold", "name": "Ada"}}


@pytest.mark.parametrize(("made", "reason"), [
    (lambda: token(issued=time.time() - 4000), "token expired"),
    (lambda: token("s" * 40), "bad signature"),
    (lambda: token(aud="another-service"), "not for audience 'acme-chat'"),
    (lambda: token(drop=("exp",)), "no 'exp' claim"),
    (lambda: token(drop=("sub",)), "no 'sub' claim"),
    (lambda: token(drop=("aud",)), "no 'aud' claim"),
    (lambda: token(lifetime=7200), "over CUSTOMER_TOKEN_MAX_LIFETIME_SECONDS"),
    (lambda: token(issued=time.time() + 600), "issued in the future"),
    (lambda: token(sub=""), "not a customer id"),
    (lambda: token(sub=42), "invalid token"),
    (lambda: token(algorithm="HS512"), "not signed with HS256"),
    (lambda: token(**{f"claim{n}": n for n in range(30)}), "more than 20 claims"),
    (lambda: jwt.encode({"sub": "cust-42", "aud": AUDIENCE, "iat": int(time.time()), "exp": int(time.time()) + 60},
                        None, algorithm="none"), "not signed with HS256"),
    (lambda: "not.a.token", "invalid token"),
    (lambda: "x" * 9000, "over 8192 bytes"),
])
def test_a_bad_token_is_refused_with_its_reason(customers: Settings, made, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(identity.CustomerTokenRefused, match=reason.replace("(", r"\(")):
        identity.verify_customer_token(made(), customers)


def test_without_a_secret_no_token_is_trusted(configure, middleware) -> None:  # type: ignore[no-untyped-def]
    configure(middleware.url, CUSTOMER_TOKEN_SECRET="")
    settings = current_settings()
    assert isinstance(settings, Settings) and settings.customer_token_secret is None
    with pytest.raises(identity.CustomerTokenRefused, match="CUSTOMER_TOKEN_SECRET is not set"):
        identity.verify_customer_token(token(), settings)


def test_the_audience_defaults_to_the_brands_slug(configure, middleware, brand) -> None:  # type: ignore[no-untyped-def]
    configure(middleware.url)
    settings = current_settings()
    assert isinstance(settings, Settings) and settings.customer_token_audience == brand.brand_slug


def test_a_verified_customer_signs_in_as_themselves(customers: Settings) -> None:
    user = identity.user_for({identity.CUSTOMER_HEADER: token()})
    assert user.identifier == "customer:cust-42"
    assert identity.customer_of(user) == identity.Customer("cust-42", True, {"tier": "gold"})
    cookie = {"cookie": f"{identity.CUSTOMER_COOKIE}={token()}"}
    assert identity.user_for(cookie).identifier == "customer:cust-42"


def test_a_refused_token_leaves_an_anonymous_visitor_and_a_clear_log_line(
        customers: Settings, caplog: pytest.LogCaptureFixture) -> None:
    visitor = identity.new_visitor_cookie()
    headers = {identity.CUSTOMER_HEADER: token(sub="someone-else", aud="another-service"),
               "cookie": f"{identity.VISITOR_COOKIE}={visitor}"}
    with caplog.at_level(logging.WARNING, logger="brandbot.identity"):
        user = identity.user_for(headers)
    assert user.identifier == "visitor:" + visitor.split(".")[0]
    assert identity.customer_of(user) is identity.ANONYMOUS
    assert [record.getMessage() for record in caplog.records] == [
        "customer token refused: token is not for audience 'acme-chat'; chatting as an anonymous visitor"]
    assert "someone-else" not in caplog.text


def test_a_visitor_keeps_their_identity_and_a_forged_cookie_gets_a_new_one(customers: Settings) -> None:
    visitor = identity.new_visitor_cookie()
    same = {identity.user_for({"cookie": f"a=b; {identity.VISITOR_COOKIE}={visitor}"}).identifier for _ in range(3)}
    assert same == {"visitor:" + visitor.split(".")[0]}
    visitor_id, signature = visitor.split(".")
    forged = f"{'0' * 32}.{signature}"
    for value in (forged, visitor_id, f"{visitor_id}.{'0' * 32}", "", "..", "é" * 50):
        assert identity.visitor_from_cookie(value) is None
        assert identity.user_for({"cookie": f"{identity.VISITOR_COOKIE}={value}"}).identifier != "visitor:" + visitor_id


def test_a_claimed_customer_identifier_without_the_customer_prefix_is_anonymous() -> None:
    claimed = cl.User(identifier="visitor:abc", metadata={"customer": {"id": "x"}})
    assert identity.customer_of(claimed) is identity.ANONYMOUS
    assert identity.customer_of(None) is identity.ANONYMOUS


def test_chainlits_secret_is_derived_from_the_backend_secret_unless_set(
        customers: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAINLIT_AUTH_SECRET", raising=False)
    identity.install_auth_secret(customers)
    derived = identity.os.environ["CHAINLIT_AUTH_SECRET"]
    assert len(derived) == 64 and customers.backend_api_secret.get_secret_value() not in derived
    monkeypatch.delenv("CHAINLIT_AUTH_SECRET")
    identity.install_auth_secret(customers)
    assert identity.os.environ["CHAINLIT_AUTH_SECRET"] == derived  # every replica derives the same
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "set-by-the-operator")
    identity.install_auth_secret(customers)
    assert identity.os.environ["CHAINLIT_AUTH_SECRET"] == "set-by-the-operator"


async def test_the_middleware_hears_of_a_verified_customer_and_never_of_a_claimed_one(
        customers: Settings, middleware, session: ChatHarness) -> None:  # type: ignore[no-untyped-def]
    session.session.user = identity.user_for({identity.CUSTOMER_HEADER: token()})
    await session.start()
    await session.say("hello")
    assert middleware.requests[-1].json["customer"] == {"id": "cust-42", "verified": True, "claims": {"tier": "gold"}}
    session.session.user = identity.user_for({identity.CUSTOMER_HEADER: token("forged" * 8)})
    await session.say("hello again")
    assert middleware.requests[-1].json["customer"] == {"id": None, "verified": False, "claims": {}}


# --- the cookies at the edge ------------------------------------------------------------------------------

class Recorder:
    """An inner ASGI app that records the request it got and answers 200."""

    def __init__(self) -> None:
        self.scopes: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, method: str, path: str, query: bytes = b"", cookie: str = "") -> tuple[int, list]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"cookie", cookie.encode())] if cookie else []
    await app({"type": "http", "method": method, "path": path, "query_string": query, "headers": headers},
              receive, send)
    start = sent[0]
    return start["status"], [(name.decode(), value.decode()) for name, value in start["headers"]]


async def test_signing_in_gives_a_browser_without_one_a_signed_visitor_cookie(customers: Settings) -> None:
    inner = Recorder()
    edge = identity_cookies.IdentityCookies(inner)
    status, headers = await call(edge, "POST", "/auth/header", cookie="other=1")
    cookies = [value for name, value in headers if name == "set-cookie"]
    assert status == 200 and len(cookies) == 1
    value = cookies[0].split(";")[0].removeprefix(f"{identity.VISITOR_COOKIE}=")
    assert identity.visitor_from_cookie(value) is not None
    assert "HttpOnly" in cookies[0] and "SameSite=Lax" in cookies[0] and "Max-Age=34560000" in cookies[0]
    seen = dict(inner.scopes[0]["headers"])[b"cookie"].decode()  # the callback sees it on this very request
    assert "other=1" in seen and f"{identity.VISITOR_COOKIE}={value}" in seen
    status, headers = await call(edge, "POST", "/auth/header", cookie=f"{identity.VISITOR_COOKIE}={value}")
    assert status == 200 and not [name for name, _ in headers if name == "set-cookie"]  # kept, not renewed


async def test_a_customer_token_in_a_link_becomes_a_short_cookie_and_leaves_the_address(customers: Settings) -> None:
    inner = Recorder()
    edge = identity_cookies.IdentityCookies(inner)
    signed = token()
    status, headers = await call(edge, "GET", "/", query=f"utm=1&customer_token={signed}".encode())
    assert status == 303 and inner.scopes == []
    found = dict((name, value) for name, value in headers if name != "set-cookie")
    assert found["location"] == "/?utm=1" and found["referrer-policy"] == "no-referrer"
    cookies = [value for name, value in headers if name == "set-cookie"]
    assert cookies[0].startswith(f"{identity.CUSTOMER_COOKIE}={signed}; ") and "Max-Age=300" in cookies[0]
    assert cookies[1].startswith("access_token=; ") and "Max-Age=0" in cookies[1]  # Chainlit signs in again
    status, headers = await call(edge, "GET", "/thread/x", query=b"customer_token=a%3Bb%3Dc")
    assert status == 303 and next(value for name, value in headers if name == "set-cookie").startswith("access_token=")
    assert await call(edge, "GET", "/", query=b"customer_tokens=1") == (200, [])


# --- resume ---------------------------------------------------------------------------------------------

async def test_a_resumed_conversation_sends_exactly_the_history_it_had(configure, middleware) -> None:  # type: ignore[no-untyped-def]
    from .middleware_double import echo, json_reply

    configure(middleware.url, HISTORY_MAX_TURNS="3")
    before, after = ChatHarness(), ChatHarness()
    try:
        await before.start()
        for text in ("one", "two", "three", "four"):
            await before.say(text)
        middleware.behave = lambda request: json_reply({"detail": "down"}, status=500)
        await before.say("five")  # failed: in no history
        middleware.behave = echo
        thread = before.thread()
        await before.say("six")
        expected = middleware.requests[-1].json["history"]
        assert [turn["content"] for turn in expected] == [
            "two", "You said: two", "three", "You said: three", "four", "You said: four", "six"]

        await after.resume(thread)  # another process, the same stored conversation
        await after.say("six")
        assert middleware.requests[-1].json["history"] == expected
    finally:
        before.close()
        after.close()


async def test_resume_pairs_each_answer_with_the_message_it_answered(configure, middleware) -> None:  # type: ignore[no-untyped-def]
    configure(middleware.url)
    resumed = ChatHarness()
    second = "second (sent while the first was answered)"
    steps = [
        {"type": "user_message", "output": "first", "createdAt": "2026-01-01T00:00:01Z"},
        {"type": "user_message", "output": second, "createdAt": "2026-01-01T00:00:02Z"},
        {"type": "assistant_message", "output": "A\\\\", "createdAt": "2026-01-01T00:00:03Z",
         "metadata": {"brandbot": {"text": "A\\", "category": None, "asked": "first"}}},
        {"type": "assistant_message", "output": "B", "createdAt": "2026-01-01T00:00:04Z",
         "metadata": json.dumps({"brandbot": {"text": "B", "category": "x", "asked": second}})},
        {"type": "user_message", "output": "third", "createdAt": "2026-01-01T00:00:05Z"},
        {"type": "assistant_message", "output": "C", "createdAt": "2026-01-01T00:00:06Z",  # stored by 0.5.0: no asked
         "metadata": {"brandbot": {"text": "C", "category": None}}},
        {"type": "assistant_message", "output": "Welcome!", "createdAt": "2026-01-01T00:00:00Z", "metadata": {}},
        {"type": "run", "output": "", "createdAt": "2026-01-01T00:00:07Z", "metadata": "{not json"},
    ]
    try:
        await resumed.resume({"id": "t", "steps": steps, "metadata": {}})
        await resumed.say("fourth")
        assert middleware.requests[-1].json["history"] == [
            {"role": "user", "content": "first"}, {"role": "assistant", "content": "A\\"},
            {"role": "user", "content": second}, {"role": "assistant", "content": "B"},
            {"role": "user", "content": "third"}, {"role": "assistant", "content": "C"},
            {"role": "user", "content": "fourth"}]
    finally:
        resumed.close()


async def test_an_answer_lost_with_its_replica_is_not_thinking_for_ever(configure, middleware, brand) -> None:  # type: ignore[no-untyped-def]
    """A replica that died mid-answer stored the question and "Thinking...", never the answer: the
    replica that resumes the conversation says so in its place and offers "Try again"."""
    from brandbot_runtime import chat
    from brandbot_runtime.display import as_sent, plain

    configure(middleware.url)
    resumed = ChatHarness()
    steps = [
        {"id": "q1", "type": "user_message", "output": "first", "createdAt": "2026-01-01T00:00:01Z"},
        {"id": "a1", "type": "assistant_message", "output": "You said: first", "createdAt": "2026-01-01T00:00:02Z",
         "metadata": {"brandbot": {"text": "You said: first", "category": None, "asked": "first"}}},
        {"id": "q2", "type": "user_message", "output": "where is it?", "createdAt": "2026-01-01T00:00:03Z"},
        {"id": "lost", "type": "assistant_message", "output": plain(brand.texts.thinking), "name": "Maria",
         "createdAt": "2026-01-01T00:00:04Z", "metadata": {}},
    ]
    try:
        await resumed.resume({"id": "t", "steps": steps, "metadata": {}})
        emitter = resumed.emitter
        assert emitter is not None
        assert emitter.messages["lost"].final == plain(brand.texts.error_connection)
        [retry] = [action for action in emitter.actions if action["forId"] == "lost"]
        again = await resumed.click(retry)
        assert [shown.final for shown in again] == [as_sent("You said: where is it?")]
        assert middleware.requests[-1].json["history"][-3:] == [
            {"role": "user", "content": "first"}, {"role": "assistant", "content": "You said: first"},
            {"role": "user", "content": "where is it?"}]

        chat._answering["still-answering"] = asyncio.current_task()  # type: ignore[assignment]  # still answered here: left alone
        other = ChatHarness()
        try:
            await other.resume({"id": "t2", "steps": [dict(steps[3], id="still-answering")], "metadata": {}})
            assert other.emitter is None or "still-answering" not in other.emitter.messages
        finally:
            chat._answering.pop("still-answering", None)
            other.close()
    finally:
        resumed.close()


async def test_a_junk_cookie_from_the_site_does_not_cost_a_visitor_their_identity(customers: Settings) -> None:
    inner = Recorder()
    visitor = identity.new_visitor_cookie()
    status, headers = await call(identity_cookies.IdentityCookies(inner), "POST", "/auth/header",
                                 cookie=f'junk="unbalanced; {identity.VISITOR_COOKIE}={visitor}')
    assert status == 200 and not [name for name, _ in headers if name == "set-cookie"]  # kept, not re-minted
