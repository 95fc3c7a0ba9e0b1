"""Several replicas for real: the retail bot under `chainlit run` three times, one PostgreSQL (the throw-away
cluster), the reference middleware behind a recorder, and in front Debian's HAProxy with the project's own
deploy/haproxy.cfg (the file `docker compose` uses; brandbot.load_balancer points it at loopback).

Customers come through the load balancer with Chainlit's socket.io protocol (brandbot.chat_client) or in
Chromium, and keep its stickiness cookie as a browser does. When their replica dies or restarts, they
reconnect through the load balancer with their conversation's id, as Chainlit's page does, land on another
replica, see the whole conversation and carry on; the middleware gets exactly the history it had, no message
is answered twice and no turn is lost.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import expect

from brandbot.browser import send
from brandbot.chat_client import ChainlitChat, ChatProtocolError
from brandbot.load_balancer import LoadBalancer, LoadBalancerMissing, start_load_balancer
from brandbot.postgres_cluster import PostgresCluster
from brandbot.processes import Service, free_port, start_app
from brandbot.reference_middleware import Router, create_app
from brandbot.rendered_project import Display, project_brand, project_display

from .helpers import EXAMPLES, Recording, record_figure

if TYPE_CHECKING:
    from brandbot_runtime import Brand

RETAIL = next(path for path in EXAMPLES if path.stem == "retail")
SECRET = "replicas-secret-shared-by-every-replica"
REPLICAS = 3
SESSIONS = 50
LATENCY_SECONDS = 0.1  # the middleware's: answers are in flight when a replica goes
COOKIE = "BRANDBOT_REPLICA"
ANSWER = '[data-step-type="assistant_message"]'


@dataclass
class Deployment:
    """The replicas, the load balancer in front and what they share; replicas go and come back by address."""

    project: Path
    postgres: PostgresCluster
    database: str
    middleware: Recording
    middleware_url: str
    log_dir: Path
    replicas: dict[str, Service] = field(default_factory=dict)  # "127.0.0.1:PORT" -> the process serving it
    balancer: LoadBalancer | None = None
    starts: Counter[str] = field(default_factory=Counter)

    @property
    def lb(self) -> LoadBalancer:
        assert self.balancer is not None
        return self.balancer

    @cached_property
    def display(self) -> Display:
        return project_display(self.project)

    @cached_property
    def brand(self) -> Brand:
        return project_brand(self.project)

    @cached_property
    def router(self) -> Router:
        return Router(self.brand)

    def start_replica(self, address: str) -> Service:
        self.starts[address] += 1
        port = int(address.rsplit(":", 1)[1])
        service = start_app(self.project, port=port, middleware_url=self.middleware_url, secret=SECRET,
                            log_dir=self.log_dir / f"replica-{port}-{self.starts[address]}",
                            extra_env={"DATABASE_URL": self.database, "MESSAGES_PER_MINUTE": "1000"})
        self.replicas[address] = service
        return service

    def kill(self, address: str) -> None:
        """SIGKILL: the replica's process is gone at once, as when its machine dies."""
        process = self.replicas[address].process
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self, address: str, how: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        """A clean stop with `how` (SIGTERM is what `docker compose` sends); the exit code."""
        process = self.replicas[address].process
        os.killpg(process.pid, how)
        return process.wait(timeout)

    def restart(self, address: str) -> None:
        """Start the replica again on its address and wait until the load balancer sends customers to it."""
        self.start_replica(address)
        self.lb.wait_until(address, "UP", timeout=30)

    def serving(self, cookies: dict[str, str]) -> str:
        """The replica a browser with these cookies is sent to."""
        return self.lb.replica_for_cookie(cookies[COOKIE])

    def answer_to(self, message: str) -> str:
        """What the reference middleware answers a tagged message ("[s7] ..."), as it sends it."""
        tag = re.match(r"^\[[A-Za-z0-9_-]+\] ", message)
        assert tag, message
        return tag.group(0) + self.router.route(message).body["response"]  # type: ignore[index]

    @cached_property
    def error_texts(self) -> list[str]:
        """How the brand's error texts show (the part before a placeholder, for those that have one)."""
        texts = self.brand.texts.model_dump()
        return [self.display.plain(text.split("{")[0]) for name, text in texts.items() if name.startswith("error_")]

    def stored_answers(self) -> set[tuple[str, str]]:
        """(thread id, message) of every answer stored in the shared database."""
        rows = self.postgres.psql("""SELECT "threadId" || '|' || (metadata::jsonb -> 'brandbot' ->> 'asked')
                                     FROM steps WHERE metadata::jsonb -> 'brandbot' ->> 'asked' IS NOT NULL""",
                                  database="replicas")
        return {tuple(row.split("|", 1)) for row in rows.splitlines() if row}  # type: ignore[misc]


@pytest.fixture(scope="module")
def deployment(postgres: PostgresCluster, rendered: Callable[[Path], Path],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    project = rendered(RETAIL)
    recording = Recording(create_app(project_brand(project), secret=SECRET, latency_seconds=LATENCY_SECONDS))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(recording, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, name="recording-middleware", daemon=True)
    thread.start()
    deployment = Deployment(project, postgres, postgres.create_database("replicas"), recording,
                            f"http://127.0.0.1:{port}/chat", tmp_path_factory.mktemp("replicas"))
    try:
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(REPLICAS)]
        with ThreadPoolExecutor(REPLICAS) as pool:  # the first one migrates the schema, the others find it done
            list(pool.map(deployment.start_replica, addresses))
        try:
            deployment.balancer = start_load_balancer(project, addresses, log_dir=deployment.log_dir)
        except LoadBalancerMissing as error:
            pytest.fail(str(error), pytrace=False)  # `make test` installs Debian's haproxy: never a skip
        yield deployment
    finally:
        if deployment.balancer is not None:
            deployment.balancer.stop()
        codes = {address: service.stop() for address, service in deployment.replicas.items()}
        server.should_exit = True
        thread.join(10)
    assert set(codes.values()) == {0}, f"a replica did not stop cleanly: {codes}"


# --- a customer through the load balancer -----------------------------------------------------------------

@dataclass
class Turn:
    """One customer message and what became of it."""

    text: str
    outcome: str = ""  # answered | error | lost (no reply shown, or "Thinking..." for ever) | unanswered | other
    shown: str = ""
    via: str = ""  # live: on the socket it was sent on; resumed: in the conversation another replica resumed
    sends: int = 0


class Customer:
    """A browser's worth of customer: the load balancer's cookie, Chainlit's sign-in, one conversation; when
    the socket drops it reconnects through the load balancer with the conversation's id after socket.io's
    delay (0.5 to 1.5 s), as Chainlit's page does, and reads the resumed conversation for the message it was
    waiting on: answered or told an error there, or never received (then it sends it again)."""

    def __init__(self, deployment: Deployment, name: str, *, reconnect_delay: tuple[float, float] = (0.5, 1.5)) -> None:
        self.deployment = deployment
        self.name = name
        self.base_url = deployment.lb.base_url
        self.cookies: dict[str, str] = {}
        self.thread_id = ""
        self.chat: ChainlitChat | None = None
        self.resumed: dict[str, Any] | None = None
        self.turns: list[Turn] = []
        self.reconnect_delay = reconnect_delay
        self.reconnects = 0
        self.replicas_seen: list[str] = []

    @property
    def live(self) -> ChainlitChat:
        assert self.chat is not None
        return self.chat

    async def visit(self) -> None:
        """What loading a page does for the cookies: the load balancer names (or renames) the replica."""
        async with httpx.AsyncClient(base_url=self.base_url, cookies=self.cookies, timeout=20) as http:
            page = await http.get("/auth/config" if self.cookies else "/")
            page.raise_for_status()
        self.cookies.update({cookie.name: cookie.value for cookie in page.cookies.jar if cookie.value})
        if not self.replicas_seen or self.replicas_seen[-1] != self.cookies[COOKIE]:
            self.replicas_seen.append(self.cookies[COOKIE])

    async def open(self) -> None:
        self.chat = ChainlitChat(self.base_url, cookies=self.cookies, thread_id=self.thread_id, timeout=30)
        await self.chat.connect()
        self.cookies = self.chat.cookies
        if self.thread_id:
            self.resumed = await self.chat.resumed()

    async def start(self) -> list[str]:
        await self.visit()
        await self.open()
        return await self.live.welcome()

    async def reconnect(self, *, delay: bool = True) -> None:
        """A new socket through the load balancer, with the same cookies and conversation, until one holds."""
        for attempt in range(30):
            if delay or attempt:
                await asyncio.sleep(random.uniform(*self.reconnect_delay))
            try:
                await self.visit()
                await self.open()
            except (ChatProtocolError, httpx.HTTPError, OSError):
                continue
            self.reconnects += 1
            assert self.live.thread_id == self.thread_id  # the same conversation, not a new one
            return
        raise AssertionError(f"{self.name} could not reconnect through the load balancer")

    async def ask(self, text: str) -> Turn:
        turn = Turn(text)
        self.turns.append(turn)
        while True:
            chat = self.live
            if chat.dropped.is_set():
                await self.reconnect()
                continue
            turn.sends += 1
            started = time.perf_counter()
            try:
                message_id = await chat.post(text)
            except Exception:  # noqa: BLE001 - the socket went while sending: the message never left
                await self.reconnect()
                continue
            answering = asyncio.ensure_future(chat.answer_to(message_id, started))
            dropping = asyncio.ensure_future(chat.dropped.wait())
            await asyncio.wait({answering, dropping}, return_when=asyncio.FIRST_COMPLETED)
            dropping.cancel()
            if answering.done():
                try:
                    exchange = answering.result()
                except ChatProtocolError:
                    turn.outcome = "unanswered"  # the socket stayed open and nothing came: a real loss
                    return turn
                self._settle(turn, exchange.final, "live")
                return turn
            answering.cancel()
            await self.reconnect()
            reply = self.reply_in_resumed(text)
            if reply is None:  # the replica never got it: sending it again answers it once
                continue
            self._settle(turn, reply, "resumed")
            return turn

    def reply_in_resumed(self, text: str) -> str | None:
        """The reply to `text` in the resumed conversation: None if the message is not in it, "" if it has
        no reply."""
        assert self.resumed is not None
        steps = self.resumed["steps"]
        asked = {step["id"] for step in steps if step["type"] == "user_message" and step["output"] == text}
        if not asked:
            return None
        runs = {step["id"] for step in steps if step["type"] == "run" and step.get("parentId") in asked}
        replies = [step for step in steps if step["type"] == "assistant_message" and step.get("parentId") in runs]
        return replies[-1]["output"] if replies else ""

    def _settle(self, turn: Turn, shown: str, via: str) -> None:
        turn.shown, turn.via = shown, via
        display = self.deployment.display
        if shown == display.as_sent(self.deployment.answer_to(turn.text)):
            turn.outcome = "answered"
        elif any(shown.startswith(error) for error in self.deployment.error_texts):
            turn.outcome = "error"
        elif shown in {"", display.plain(self.deployment.brand.texts.thinking)}:
            turn.outcome = "lost"
        else:
            turn.outcome = "other"

    async def close(self) -> None:
        if self.chat is not None:
            await self.chat.close()

    def history_before(self, text: str) -> list[dict[str, str]]:
        """The history the middleware must get with `text`: every earlier answered turn, then `text`."""
        history: list[dict[str, str]] = []
        for turn in self.turns:
            if turn.text == text:
                return [*history, {"role": "user", "content": text}]
            if turn.outcome == "answered":
                history += [{"role": "user", "content": turn.text},
                            {"role": "assistant", "content": self.deployment.answer_to(turn.text)}]
        raise AssertionError(f"{text!r} is not one of {self.name}'s turns")


def wait_for_stored(deployment: Deployment, wanted: set[tuple[str, str]], seconds: float = 30) -> set[tuple[str, str]]:
    """Wait until every (thread, message) in `wanted` has its answer stored; those still missing."""
    deadline = time.monotonic() + seconds
    while missing := wanted - deployment.stored_answers():
        if time.monotonic() > deadline:
            return missing
        time.sleep(0.2)
    return set()


def sticky_polling(balancer: LoadBalancer) -> dict[str, set[str]]:
    """Each socket.io session that used HTTP long-polling (a browser's first transport) and the replicas its
    requests reached, from HAProxy's log."""
    reached: dict[str, set[str]] = {}
    for server, sid in re.findall(r" bots/(\w+) .*\"(?:GET|POST) /ws/socket\.io/\?[^\" ]*\bsid=([\w-]+)",
                                  balancer.log()):
        reached.setdefault(sid, set()).add(server)
    return reached


# --- a replica dies under a conversation ------------------------------------------------------------------

def test_when_the_replica_serving_a_conversation_dies_the_customer_continues_on_another_one(
        deployment: Deployment) -> None:
    lb, middleware = deployment.lb, deployment.middleware
    questions = ["[fo] where do I start", "[fo] and then", "[fo] after the replica died"]

    async def scenario() -> dict[str, Any]:
        customer = Customer(deployment, "fo")
        await customer.start()
        for question in questions[:2]:
            assert (await customer.ask(question)).outcome == "answered"
        customer.thread_id = await customer.live.stored_thread()
        victim = deployment.serving(customer.cookies)
        before = customer.live
        assert f"chat {before.session_id}: exchange answer" in deployment.replicas[victim].log()  # the cookie led there
        stored_after = time.monotonic()
        assert not wait_for_stored(deployment, {(customer.thread_id, question) for question in questions[:2]})
        stored_after = time.monotonic() - stored_after

        killed = time.monotonic()
        deployment.kill(victim)
        await asyncio.wait_for(before.dropped.wait(), 10)
        dropped = time.monotonic() - killed
        await customer.reconnect(delay=False)
        reconnected = time.monotonic() - killed
        third = await customer.ask(questions[2])
        answered = time.monotonic() - killed
        assert customer.reconnects == 1 and third.sends == 1
        return {"customer": customer, "victim": victim, "third": third, "dropped": dropped,
                "reconnected": reconnected, "answered": answered, "stored_after": stored_after}

    result = asyncio.run(scenario())
    customer: Customer = result["customer"]
    victim = result["victim"]
    try:
        landed = deployment.serving(customer.cookies)
        assert landed != victim
        assert f"chat {customer.live.session_id}: resumed a stored conversation (2 exchanges)" in (
            deployment.replicas[landed].log())
        # The whole conversation is shown again: the welcome, both questions and their answers as first shown.
        assert customer.resumed is not None
        shown = [(step["type"], step["output"]) for step in customer.resumed["steps"] if step["type"] != "run"]
        welcome = deployment.display.as_sent(deployment.brand.welcome_message)
        assert shown == [("assistant_message", welcome),
                         *[pair for turn in customer.turns[:2] for pair in
                           (("user_message", turn.text), ("assistant_message", turn.shown))]]
        # The next answer: the exact history at the middleware, and nothing answered twice (or welcomed again).
        assert result["third"].outcome == "answered"
        assert [request["history"] for request in middleware.requests_for(questions[2])] == [
            customer.history_before(questions[2])]
        assert all(middleware.asked()[question] == 1 for question in questions)
        runs = [step for step in customer.live.steps.values() if step.type == "run"]
        assert [step.name for step in runs] == ["on_message"], "the new replica answered or greeted again"
        lb.wait_until(victim, "DOWN", timeout=10)
    finally:
        deployment.restart(victim)
    print(f"\nfailover: socket dropped {result['dropped']:.2f} s after SIGKILL, reconnected through HAProxy to "
          f"another replica at {result['reconnected']:.2f} s, answered again at {result['answered']:.2f} s "
          f"(the answer before the kill was stored {result['stored_after'] * 1000:.0f} ms after it was shown)")
    record_figure("failover seconds (SIGKILL to answered again)", round(result["answered"] * 1000),
                  f"ms: socket.io client reconnecting at once through HAProxy, {REPLICAS} replicas")


# --- a rolling restart under 50 sessions ------------------------------------------------------------------

def test_a_rolling_restart_under_50_sessions_answers_every_message_and_loses_no_turn(deployment: Deployment) -> None:
    middleware = deployment.middleware

    def rolling_restart() -> list[dict[str, Any]]:
        """Each replica in turn: SIGTERM (as `docker compose up --force-recreate` does), wait for it to exit,
        start it again, wait until HAProxy sends customers to it."""
        steps = []
        for address in list(deployment.replicas):
            time.sleep(1.5)  # customers talk to all three for a while between two restarts
            began = time.monotonic()
            code = deployment.stop(address, signal.SIGTERM)
            stopped = time.monotonic() - began
            deployment.restart(address)
            steps.append({"replica": address, "exit": code, "stopped": stopped, "back": time.monotonic() - began})
        return steps

    async def keep_talking(customer: Customer, restarting: asyncio.Future[Any]) -> None:
        while not restarting.done():
            await customer.ask(f"[{customer.name}] turn {len(customer.turns) + 1}")
            await asyncio.sleep(random.uniform(0.5, 1.5))
        await customer.ask(f"[{customer.name}] turn {len(customer.turns) + 1} after the restarts")

    async def scenario() -> tuple[list[Customer], list[dict[str, Any]], float]:
        customers = [Customer(deployment, f"s{number}") for number in range(SESSIONS)]
        gate = asyncio.Semaphore(10)

        async def first_turn(customer: Customer) -> None:
            async with gate:
                await customer.start()
            await customer.ask(f"[{customer.name}] turn 1")
            customer.thread_id = await customer.live.stored_thread()

        await asyncio.gather(*(first_turn(customer) for customer in customers))
        began = time.monotonic()
        restarting = asyncio.ensure_future(asyncio.to_thread(rolling_restart))
        await asyncio.gather(*(keep_talking(customer, restarting) for customer in customers))
        steps = await restarting
        elapsed = time.monotonic() - began
        for customer in customers:
            await customer.close()
        return customers, steps, elapsed

    customers, steps, elapsed = asyncio.run(scenario())
    turns = [turn for customer in customers for turn in customer.turns]
    outcomes = Counter(turn.outcome for turn in turns)
    asked = middleware.asked()
    twice = sorted(text for text, count in asked.items() if count > 1 and text.startswith("[s"))
    wrong_history = [(customer.name, request["message"]) for customer in customers for turn in customer.turns
                     for request in middleware.requests_for(turn.text)
                     if request["history"] != customer.history_before(turn.text)]
    missing = wait_for_stored(deployment, {(customer.thread_id, turn.text) for customer in customers
                                           for turn in customer.turns if turn.outcome == "answered"})
    lost = outcomes["lost"] + outcomes["unanswered"] + outcomes["other"] + len(missing)
    report = (f"rolling restart of {REPLICAS} replicas (SIGTERM, one at a time) in {elapsed:.1f} s under {SESSIONS} "
              f"sessions: {len(turns)} messages, {outcomes['answered']} answered "
              f"({sum(turn.via == 'resumed' and turn.outcome == 'answered' for turn in turns)} seen in the resumed "
              f"conversation), {outcomes['error']} clear errors, {lost} lost, {len(twice)} answered twice; "
              f"{sum(customer.reconnects for customer in customers)} reconnects, "
              f"{sum(turn.sends - 1 for turn in turns)} messages sent again (never received); "
              + "; ".join(f"{step['replica']} exit {step['exit']} after {step['stopped']:.1f} s, serving again "
                          f"after {step['back']:.1f} s" for step in steps))
    print("\n" + report)
    record_figure("rolling restart: messages lost", lost, report)
    assert all(step["exit"] == 0 for step in steps), steps
    assert all(customer.reconnects >= 1 for customer in customers), "every replica restarted: every session moved"
    problems = [(turn.text, turn.outcome, turn.shown[:80]) for turn in turns if turn.outcome not in {"answered",
                                                                                                    "error"}]
    assert not problems, problems
    assert not twice, twice
    assert not wrong_history, wrong_history[:5]
    assert not missing, sorted(missing)[:5]
    assert outcomes["answered"] >= len(turns) * 0.9, outcomes  # errors only where a stop caught an answer


# --- in Chromium (last: Playwright keeps its event loop until the module ends) ----------------------------

def test_in_chromium_through_the_load_balancer_a_reload_lands_on_the_same_conversation(
        browser: Any, deployment: Deployment) -> None:
    lb, middleware = deployment.lb, deployment.middleware
    context = browser.new_context(viewport={"width": 1100, "height": 800}, locale="en-US")
    try:
        page = context.new_page()
        page.goto(lb.base_url)
        expect(page.locator(ANSWER).first).to_be_visible(timeout=20_000)
        send(page, "[br] is the blue jacket in stock")
        expect(page.locator(ANSWER, has_text="[br] ")).to_have_count(1, timeout=15_000)
        expect(page).to_have_url(re.compile(r"/thread/[0-9a-f-]{36}$"), timeout=10_000)
        address = page.url
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        assert cookies[COOKIE]["httpOnly"]
        thread = address.rsplit("/", 1)[1]
        assert not wait_for_stored(deployment, {(thread, "[br] is the blue jacket in stock")})

        page.reload()
        expect(page.locator('[data-step-type="user_message"]', has_text="[br] is the blue jacket")).to_be_visible(
            timeout=20_000)
        expect(page.locator(ANSWER, has_text="[br] ")).to_have_count(1, timeout=10_000)
        assert page.url == address
        send(page, "[br] in size M")
        expect(page.locator(ANSWER, has_text="[br] ")).to_have_count(2, timeout=15_000)
        assert [request["history"] for request in middleware.requests_for("[br] in size M")] == [[
            {"role": "user", "content": "[br] is the blue jacket in stock"},
            {"role": "assistant", "content": deployment.answer_to("[br] is the blue jacket in stock")},
            {"role": "user", "content": "[br] in size M"}]]
    finally:
        context.close()
    polled = sticky_polling(lb)
    assert polled, "Chromium's socket started with long-polling through the load balancer"
    assert all(len(servers) == 1 for servers in polled.values()), polled  # every request of a socket: one replica


def test_in_chromium_the_page_reconnects_by_itself_to_another_replica_when_its_own_dies(
        browser: Any, deployment: Deployment) -> None:
    lb, middleware = deployment.lb, deployment.middleware
    context = browser.new_context(viewport={"width": 1100, "height": 800}, locale="en-US")
    victim = ""
    try:
        page = context.new_page()
        page.goto(lb.base_url)
        expect(page.locator(ANSWER).first).to_be_visible(timeout=20_000)
        send(page, "[bk] hello before")
        expect(page.locator(ANSWER, has_text="[bk] ")).to_have_count(1, timeout=15_000)
        expect(page).to_have_url(re.compile(r"/thread/[0-9a-f-]{36}$"), timeout=10_000)
        thread = page.url.rsplit("/", 1)[1]
        assert not wait_for_stored(deployment, {(thread, "[bk] hello before")})
        victim = deployment.serving({cookie["name"]: cookie["value"] for cookie in context.cookies()})

        killed = time.monotonic()
        deployment.kill(victim)
        page.wait_for_timeout(100)  # socket.io tries again 0.5 to 1.5 s after the drop: the page is offline now
        send(page, "[bk] hello after")  # typed while the page has no socket: it keeps the text, sends nothing
        submit = page.locator("#chat-submit")
        expect(submit).to_be_disabled()
        expect(page.locator("#chat-input")).to_have_value("[bk] hello after")
        expect(submit).to_be_enabled(timeout=20_000)  # socket.io reconnected through HAProxy
        reconnected = time.monotonic() - killed
        assert deployment.serving({cookie["name"]: cookie["value"] for cookie in context.cookies()}) != victim
        page.keyboard.press("Enter")  # at once: the customer presses Enter again as soon as they can
        expect(page.locator(ANSWER, has_text="[bk] ")).to_have_count(2, timeout=20_000)
        expect(page.locator('[data-step-type="user_message"]', has_text="[bk] hello before")).to_be_visible()
        answered = time.monotonic() - killed
        assert [request["history"] for request in middleware.requests_for("[bk] hello after")] == [[
            {"role": "user", "content": "[bk] hello before"},
            {"role": "assistant", "content": deployment.answer_to("[bk] hello before")},
            {"role": "user", "content": "[bk] hello after"}]]
        assert middleware.asked()["[bk] hello before"] == 1
        assert page.url.endswith(thread)
    finally:
        context.close()
        if victim:
            deployment.restart(victim)
    print(f"\nChromium failover: the page reconnected through HAProxy {reconnected:.2f} s after SIGKILL, "
          f"answered again {answered:.2f} s after it (the message typed during the outage, sent as soon as the page "
          f"could)")
    record_figure("failover seconds in Chromium (SIGKILL to answered again)", round(answered * 1000),
                  "ms: Chainlit's page reconnecting by itself (socket.io's 0.5-1.5 s delay), then Enter")
