"""The reference middleware in-process: secret, contract checks, routing and simulated failures."""

from __future__ import annotations

import httpx
import pytest

from brandbot.reference_middleware import contract_problem, create_app, crossed_session, routing_for, words

from .helpers import REPO

SECRET = "mw-test-secret"


@pytest.fixture
async def client() -> httpx.AsyncClient:
    routing = routing_for(REPO / "examples/retail.yml")
    app = create_app(routing, secret=SECRET, auth_header="x-secret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mw") as http:
        yield http


def body(message: str, history: list | None = None) -> dict:
    return {"message": message, "history": (history or []) + [{"role": "user", "content": message}]}


async def ask(client: httpx.AsyncClient, message: str) -> httpx.Response:
    return await client.post("/chat", json=body(message), headers={"x-secret": SECRET})


@pytest.mark.parametrize("headers", [{}, {"x-secret": "wrong"}, {"x-other": SECRET}])
async def test_a_missing_or_wrong_secret_is_401(client: httpx.AsyncClient, headers: dict) -> None:
    response = await client.post("/chat", json=body("hi"), headers=headers)
    assert response.status_code == 401
    assert SECRET not in response.text


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"message": "hi"}, "body: must contain ['history'] properties"),
        ({"message": "", "history": [{"role": "user", "content": ""}]}, "message: must be longer than or equal to 1"),
        ({"message": "hi", "history": []}, "history: must contain at least 1 items"),
        ({"message": "hi", "history": [{"role": "robot", "content": "hi"}]}, "history/0/role: must be one of"),
        ({"message": "hi", "history": [{"role": "user", "content": "bye"}]}, "last item must be the current message"),
        ({"message": 5, "history": [{"role": "user", "content": "5"}]}, "message: must be string"),
        ({"message": "hi", "history": [{"role": "user", "content": "hi"}], "extra": 1}, "must not contain {'extra'}"),
    ],
)
async def test_a_request_that_breaks_the_contract_is_422_with_the_reason(client: httpx.AsyncClient, payload: dict,
                                                                         reason: str) -> None:
    response = await client.post("/chat", json=payload, headers={"x-secret": SECRET})
    assert response.status_code == 422
    assert reason in response.json()["detail"]


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat", content=b"{nope", headers={"x-secret": SECRET})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("message", "category"),
    [("Where is my parcel?", "OrderTracking"), ("I want a refund", "Returns"), ("Is this jacket in stock?", None),
     ("What sizes does the product come in?", "ProductInquiry"), ("Hello!", "General")],
)
async def test_messages_are_routed_by_keywords(client: httpx.AsyncClient, message: str, category: str | None) -> None:
    response = await ask(client, message)
    assert response.status_code == 200
    if category is not None:
        assert response.json()["category"] == category
    assert response.json()["response"]


async def test_answers_are_deterministic(client: httpx.AsyncClient) -> None:
    first, second = await ask(client, "Where is my parcel?"), await ask(client, "Where is my parcel?")
    assert first.json() == second.json()


async def test_simulations(client: httpx.AsyncClient) -> None:
    assert (await ask(client, "please simulate error")).status_code == 503
    assert (await ask(client, "simulate status 429")).status_code == 429
    bad = await ask(client, "simulate bad answer")
    assert bad.status_code == 200 and bad.headers["content-type"].startswith("text/html")
    forced = await ask(client, "simulate category Returns: anything")
    assert forced.json()["category"] == "Returns"


async def test_stats_count_what_the_middleware_saw(client: httpx.AsyncClient) -> None:
    await ask(client, "hi")
    await client.post("/chat", json=body("hi"))
    stats = (await client.get("/stats")).json()
    assert {key: stats[key] for key in ("requests", "answered", "rejected", "crossed_sessions")} == {
        "requests": 2, "answered": 1, "rejected": 1, "crossed_sessions": 0}
    assert stats["longest_history"] == 1 and stats["largest_request_bytes"] > 40


def test_a_history_from_another_session_is_caught() -> None:
    own = {"message": "[s1] again", "history": [{"role": "user", "content": "[s1] hi"},
                                                 {"role": "assistant", "content": "[s1] hello"},
                                                 {"role": "user", "content": "[s1] again"}]}
    crossed = {**own, "history": [{"role": "user", "content": "[s2] hi"}, *own["history"][1:]]}
    assert not crossed_session(own)
    assert crossed_session(crossed)
    assert not crossed_session(body("untagged"))


async def test_a_crossed_session_is_refused_and_counted(client: httpx.AsyncClient) -> None:
    payload = {"message": "[s1] hi", "history": [{"role": "user", "content": "[s2] x"},
                                                 {"role": "assistant", "content": "[s2] y"},
                                                 {"role": "user", "content": "[s1] hi"}]}
    response = await client.post("/chat", json=payload, headers={"x-secret": SECRET})
    assert response.status_code == 409
    assert (await client.get("/stats")).json()["crossed_sessions"] == 1
    tagged = await ask(client, "[s3] where is my parcel?")
    assert tagged.json()["response"].startswith("[s3] ")


def test_contract_problem_accepts_what_the_app_sends() -> None:
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert contract_problem(body("Where is my order?", history)) is None


def test_routing_reads_a_project_or_its_brand_toml(rendered) -> None:  # type: ignore[no-untyped-def]
    project = rendered(REPO / "examples/telecom.yml")
    for source in (project, project / "brand.toml"):
        routing = routing_for(source)
        assert "NumberPorting" in routing.categories
        assert routing.auth_header == "x-secret"


def test_every_word_of_a_long_category_id_routes() -> None:
    """The bot cuts a long derived label when it shows it; routing must still see every word."""
    assert {"accounts", "fraud"} <= words("OrderTrackingReturnsProductInquiryBillingCardsLoansAccountsFraud")


FEEDBACK = {"thread": "t-1", "message": {"id": "s-1", "text": "Your order left yesterday."}, "value": 0,
            "comment": "Still not here", "category": "OrderTracking"}


async def test_feedback_is_taken_checked_and_listed(client: httpx.AsyncClient) -> None:
    taken = await client.post("/feedback", json=FEEDBACK, headers={"x-secret": SECRET})
    assert taken.status_code == 204
    listed = await client.get("/feedback", headers={"x-secret": SECRET})
    assert listed.json() == [FEEDBACK]
    assert (await client.get("/stats")).json()["feedback"] == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({**FEEDBACK, "value": 5}, "value: must be one of [0, 1]"),
        ({**FEEDBACK, "message": "text"}, "message: must be object"),
        ({key: value for key, value in FEEDBACK.items() if key != "thread"}, "body: must contain"),
        ({**FEEDBACK, "extra": 1}, "must not contain {'extra'}"),
    ],
)
async def test_feedback_that_breaks_the_contract_is_422(client: httpx.AsyncClient, payload: dict, reason: str) -> None:
    response = await client.post("/feedback", json=payload, headers={"x-secret": SECRET})
    assert response.status_code == 422
    assert reason in response.json()["detail"]
    assert (await client.get("/feedback", headers={"x-secret": SECRET})).json() == []


async def test_feedback_needs_the_secret_and_can_simulate_a_failure(client: httpx.AsyncClient) -> None:
    assert (await client.post("/feedback", json=FEEDBACK)).status_code == 401
    assert (await client.get("/feedback")).status_code == 401  # customers' comments: not for anyone
    failing = {**FEEDBACK, "comment": "please simulate status 500"}
    assert (await client.post("/feedback", json=failing, headers={"x-secret": SECRET})).status_code == 500
    assert (await client.get("/stats")).json()["feedback"] == 0



def test_whoami_says_who_the_bot_named() -> None:
    from brandbot.reference_middleware import who_is_writing

    assert who_is_writing({"id": "c-1", "verified": True, "claims": {"tier": "gold", "b": 2}}) == (
        "You are verified customer c-1 (b=2, tier=gold).")
    assert who_is_writing({"id": "c-1", "verified": True, "claims": {}}) == "You are verified customer c-1."
    assert who_is_writing({"id": None, "verified": False, "claims": {}}) == "You are an anonymous visitor."
    assert who_is_writing(None).startswith("You are not named")
