"""The reference middleware in-process: secret, contract checks, routing and simulated failures."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from brandbot.reference_middleware import (
    MALFORMED_LINE,
    STREAMED_MARKDOWN,
    contract_problem,
    create_app,
    crossed_session,
    routing_for,
    split_text,
    words,
)

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


# Streaming: the bot accepts a stream, the middleware answers one in SSE or NDJSON.

ACCEPT_STREAMS = "application/json, text/event-stream, application/x-ndjson"
STREAM_TYPES = {"sse": "text/event-stream", "ndjson": "application/x-ndjson"}


def streaming_client(stream: str | None = "sse", *, brand: str = "retail.yml", token_seconds: float = 0.0,
                     deltas: int | None = None) -> httpx.AsyncClient:
    app = create_app(routing_for(REPO / "examples" / brand), secret=SECRET, stream=stream,
                     token_seconds=token_seconds, deltas=deltas)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mw")


async def ask_streamed(http: httpx.AsyncClient, message: str, accept: str | None = ACCEPT_STREAMS) -> httpx.Response:
    headers = {"x-secret": SECRET} | ({"accept": accept} if accept is not None else {})
    return await http.post("/chat", json=body(message), headers=headers)


def frames(response: httpx.Response) -> list[str]:
    """The lines of a streamed body, each checked to be framed as its content type says."""
    text = response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        assert text.endswith("\n\n")
        events = text[:-2].split("\n\n")
        assert all(event.startswith("data: ") and "\n" not in event for event in events), text
        return [event.removeprefix("data: ") for event in events]
    assert response.headers["content-type"] == "application/x-ndjson"
    assert text.endswith("\n") and "\n\n" not in text
    return text[:-1].split("\n")


def events_of(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in frames(response)]


def deltas_of(events: list[dict]) -> list[str]:
    return [event["delta"] for event in events if "delta" in event]


@pytest.mark.parametrize("stream", ["sse", "ndjson"])
@pytest.mark.parametrize("message", ["Where is my parcel?", "[s3] where is my parcel?", "[s4] Hello!",
                                     "simulate category Returns", "simulate whoami", "simulate slow 0.01"])
async def test_a_streamed_answer_is_the_json_answer_in_deltas(stream: str, message: str) -> None:
    async with streaming_client(stream) as http:
        plain = (await ask_streamed(http, message, accept="application/json")).json()
        streamed = await ask_streamed(http, message)
    assert streamed.status_code == 200
    assert streamed.headers["content-type"].split(";")[0] == STREAM_TYPES[stream]
    assert streamed.headers["cache-control"] == "no-cache"
    assert streamed.headers.get("x-accel-buffering") == ("no" if stream == "sse" else None)
    events = events_of(streamed)
    assert events[0] == {"category": plain["category"]} and events[-1] == {"done": True}
    assert all(set(event) == {"delta"} for event in events[1:-1])
    pieces = deltas_of(events)
    assert "".join(pieces) == plain["response"]
    assert len(pieces) == len(plain["response"].split())  # one a word
    if message.startswith("[s"):
        assert pieces[0] == message[:5]  # the session tag, exactly as in the JSON answer


async def test_streamed_text_is_sent_as_utf8_not_escaped() -> None:
    async with streaming_client("ndjson", brand="bank-es.yml") as http:
        streamed = await ask_streamed(http, "Hola")
    assert "¡Hola!" in streamed.text and "\\u00a1" not in streamed.text


@pytest.mark.parametrize("deltas", [1, 3, 7])
async def test_deltas_cut_the_text_into_n_pieces_of_about_equal_length(deltas: int) -> None:
    async with streaming_client("sse", deltas=deltas) as http:
        plain = (await ask_streamed(http, "[s1] where is my parcel?", accept="application/json")).json()
        pieces = deltas_of(events_of(await ask_streamed(http, "[s1] where is my parcel?")))
    assert "".join(pieces) == plain["response"] and len(pieces) == deltas
    content = pieces[1:] if deltas > 1 else pieces  # the session tag is a piece of its own
    assert deltas == 1 or pieces[0] == "[s1] "
    assert max(map(len, content)) - min(map(len, content)) <= 1


def test_split_text_keeps_a_session_tag_whole_as_the_first_piece() -> None:
    pieces = split_text("[s12] Your order left our warehouse yesterday.", 6)
    assert pieces[0] == "[s12] " and len(pieces) == 6
    assert "".join(pieces) == "[s12] Your order left our warehouse yesterday."


def test_split_text_keeps_every_character_whole() -> None:
    assert split_text("  Hi  there, you ") == ["  Hi  ", "there, ", "you "]
    assert split_text("") == [] and split_text(" ") == [" "]
    accented = "cafe\u0301 " * 5  # an e and its combining accent are one character
    for count in range(1, 30):
        pieces = split_text(accented, count)
        assert "".join(pieces) == accented and len(pieces) <= count
        assert not any(piece.startswith("\u0301") for piece in pieces)
    assert split_text("ab", 5) == ["a", "b"]


@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "application/x-ndjson",
                                    "application/json, text/event-stream;q=0"])
async def test_a_client_that_does_not_take_the_stream_gets_json(accept: str | None) -> None:
    async with streaming_client("sse") as http:
        response = await ask_streamed(http, "Where is my parcel?", accept=accept)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["category"] == "OrderTracking"
        assert (await http.get("/stats")).json()["streamed"] == 0


async def test_failures_are_not_streamed() -> None:
    async with streaming_client("sse") as http:
        assert (await ask_streamed(http, "simulate error")).status_code == 503
        assert (await ask_streamed(http, "simulate status 429")).json() == {"detail": "simulated status"}
        assert (await ask_streamed(http, "simulate bad answer")).headers["content-type"].startswith("text/html")
        assert (await http.post("/chat", json=body("hi"), headers={"accept": ACCEPT_STREAMS})).status_code == 401
        assert (await http.get("/stats")).json()["streamed"] == 0


def test_the_stream_options_are_checked() -> None:
    routing = routing_for(None)
    for wrong in ({"stream": "json"}, {"deltas": 0}, {"token_seconds": -1}):
        with pytest.raises(ValueError):
            create_app(routing, secret=SECRET, **wrong)


@pytest.mark.parametrize("stream", [None, "sse", "ndjson"])
async def test_stream_simulations_stream_in_any_mode(stream: str | None) -> None:
    async with streaming_client(stream) as http:
        plain = (await ask_streamed(http, "where is my parcel?", accept="application/json")).json()
        cut = await ask_streamed(http, "simulate stream cut: where is my parcel?", accept="application/json")
        assert cut.headers["content-type"].split(";")[0] == STREAM_TYPES[stream or "sse"]
        events = events_of(cut)
        assert events[0] == {"category": "OrderTracking"} and all("delta" in event for event in events[1:])
        words_sent = len(plain["response"].split())
        assert len(events) - 1 == (words_sent + 1) // 2  # about half the deltas, no done
        assert plain["response"].startswith("".join(deltas_of(events)))
        assert (await http.get("/stats")).json()["streamed"] == 1


async def test_stream_simulations_have_their_shape() -> None:
    async with streaming_client(None) as http:
        greeting = (await ask_streamed(http, "Hello")).json()["response"]

        error = events_of(await ask_streamed(http, "simulate stream error"))
        assert error[0] == {"category": "General"} and error[-1] == {"error": "simulated failure"}
        assert len(deltas_of(error)) == len(error) - 2 > 0 and greeting.startswith("".join(deltas_of(error)))

        malformed = frames(await ask_streamed(http, "simulate stream malformed"))
        assert malformed[-1] == MALFORMED_LINE
        assert all("delta" in json.loads(line) for line in malformed[1:-1]) and len(malformed) > 2
        with pytest.raises(ValueError):
            json.loads(malformed[-1])

        late = events_of(await ask_streamed(http, "[s9] simulate stream late category"))
        assert late[-2:] == [{"category": "General"}, {"done": True}]
        assert "".join(deltas_of(late)) == "[s9] " + greeting and len(late) == len(deltas_of(late)) + 2

        plain = await ask_streamed(http, "simulate stream json")
        assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/event-stream")
        assert plain.json() == {"response": greeting, "category": None}

        code = events_of(await ask_streamed(http, "simulate stream code"))
        assert "".join(deltas_of(code)) == STREAMED_MARKDOWN and code[-1] == {"done": True}
        lines = STREAMED_MARKDOWN.splitlines()
        fence = lines.index("```python")
        assert lines.index("```", fence) - fence - 1 == 3  # a python block of 3 lines
        assert len([line for line in lines if line.startswith("| ")]) == 2 + 3  # header, rule, 3 rows

        huge = events_of(await ask_streamed(http, "simulate stream huge 10000"))
        sizes = [len(piece.encode()) for piece in deltas_of(huge)]
        assert sizes == [4096, 4096, 1808] and huge[-1] == {"done": True}
        assert "".join(deltas_of(huge)) == ("lorem ipsum " * 834)[:10000]

        started = time.perf_counter()
        gap = events_of(await ask_streamed(http, "simulate stream gap 0.3"))
        assert time.perf_counter() - started >= 0.3
        assert "".join(deltas_of(gap)) == greeting and gap[-1] == {"done": True}

        assert (await http.get("/stats")).json()["streamed"] == 6  # not "json": it sends no stream


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """The app behind a real uvicorn on 127.0.0.1, so that what arrives when can be seen."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                                           lifespan="off"))
    running = asyncio.create_task(server.serve())
    while not server.started:
        assert not running.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await running


async def test_deltas_arrive_as_they_are_sent() -> None:
    app = create_app(routing_for(REPO / "examples/retail.yml"), secret=SECRET, stream="ndjson",
                     token_seconds=0.15, deltas=4)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as http:
        arrived = []
        async with http.stream("POST", "/chat", json=body("Where is my parcel?"),
                               headers={"x-secret": SECRET, "accept": ACCEPT_STREAMS}) as response:
            async for line in response.aiter_lines():
                arrived.append((time.perf_counter(), json.loads(line)))
        delta_times = [moment for moment, event in arrived if "delta" in event]
        assert len(delta_times) == 4
        # the server sends the last delta 0.45 s after the first: the first must be here well before
        assert delta_times[-1] - delta_times[0] > 0.3
        stats = (await http.get("/stats")).json()
        assert stats["streamed"] == 1 and stats["most_in_flight"] == 1


async def test_a_stream_cut_early_closes_the_connection_mid_body() -> None:
    app = create_app(routing_for(REPO / "examples/retail.yml"), secret=SECRET)
    async with served(app) as url, httpx.AsyncClient(base_url=url) as http:
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream("POST", "/chat", json=body("simulate stream cut early"),
                                   headers={"x-secret": SECRET, "accept": ACCEPT_STREAMS}) as response:
                async for chunk in response.aiter_raw():
                    received += chunk
        assert received == b'data: {"category": "General"}\n\n'
        assert (await http.get("/health")).text == "ok"  # the server carries on


def test_the_cli_passes_the_stream_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import brandbot.reference_middleware
    from brandbot.cli import app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(brandbot.reference_middleware, "serve", lambda routing, **options: seen.update(options))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ran = CliRunner().invoke(app, ["middleware", "--port", str(port), "--stream", "ndjson", "--token-ms", "5",
                                   "--deltas", "3"], env={"BACKEND_API_SECRET": SECRET})
    assert ran.exit_code == 0, ran.output
    assert (seen["stream"], seen["token_seconds"], seen["deltas"]) == ("ndjson", 0.005, 3)
    assert CliRunner().invoke(app, ["middleware", "--stream", "xml"], env={"BACKEND_API_SECRET": SECRET}).exit_code
