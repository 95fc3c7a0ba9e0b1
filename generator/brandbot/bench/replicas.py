"""The replicas mode (`brandbot bench --replicas 1,2,3`): the same load through the project's load balancer.

Two phases, each with its own processes on loopback:

1. **Throughput.** The reference middleware (one process), as many `chainlit run` replicas of the app as the
   largest count, and one HAProxy per count (the project's own deploy/haproxy.cfg, `brandbot.load_balancer`)
   in front of the first N replicas; beside them the single-process floor (`floor_app.py`) served directly.
   The replicas store nothing (`DATABASE_URL=off`), as the floor: the ratios measure replicas, not a
   database. Rounds alternate floor, 1 replica, 2 replicas, ... as the other modes alternate; every customer
   first loads the page through HAProxy and keeps its stickiness cookie, so its socket stays on one replica.
   Each round reads every process's CPU (replicas, middleware, HAProxy, this client) and each replica's peak
   RSS (VmHWM, reset before the round).
2. **Failover and rolling restart.** One throw-away PostgreSQL (`brandbot.postgres_cluster`), the largest
   count of replicas storing in it (the same BACKEND_API_SECRET, from which every replica derives the same
   CHAINLIT_AUTH_SECRET), HAProxy in front. `sessions` customers talk with a pause of 0.5 to 1.5 s between
   answers, as people do. One replica is SIGKILLed: its customers' sockets drop, they reconnect through
   HAProxy with their conversation's id after socket.io's delay (0.5 to 1.5 s, as Chainlit's page), read the
   resumed conversation for the message they were waiting on (sent again only if the replica never got it)
   and go on; the figure is each one's seconds from the kill to its next answer. Then every replica in turn
   is stopped with SIGTERM, started again and waited for until HAProxy sends customers to it; every message
   sent meanwhile is counted answered, told a clear error (one of the brand's error texts), or lost. A message
   whose answer died with its replica is stored as its status ("Thinking..."); the bot resuming the
   conversation replaces that status with error_connection, which is what is counted (a clear error).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from ..chat_client import ChainlitChat, ChatProtocolError
from ..load_balancer import LoadBalancer, start_load_balancer
from ..postgres_cluster import PostgresCluster
from ..processes import Service, free_port, start_app, start_middleware
from ..rendered_project import project_brand, project_display
from .config import BenchConfig
from .load import Round, Server, Tally, _converse, _peak_rss_mb, _reset_peak_rss, load
from .report import Machine, RoundFigures
from .run import Report, this_machine
from .servers import APP_ENV, RightAnswers, start_floor

#: The pause between an answer and a customer's next message in the failover and rolling-restart phase.
THINK_SECONDS = (0.5, 1.5)
#: socket.io's delay before reconnecting (Chainlit's page): the browser's, not the benchmark's choice.
RECONNECT_DELAY = (0.5, 1.5)
#: Customers opening their page at once (HAProxy's leastconn sees the sockets already open and spreads them).
OPENING_AT_ONCE = 10


def replica_counts(text: str) -> tuple[int, ...]:
    """`--replicas`: "1,2,3" as given; "N" alone means 1..N (so one replica is always there to compare with)."""
    parts = [int(part) for part in text.split(",") if part.strip()]
    if len(parts) == 1:
        parts = list(range(1, parts[0] + 1))
    counts = tuple(sorted(set(parts)))
    if not counts or counts[0] < 1:
        raise ValueError(text)
    return counts


# --- figures ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplicaRound:
    """One round through the load balancer (or against the floor: `replicas` 0), with every process's CPU."""

    figures: RoundFigures  # cpu_ms_per_message: all replicas together; peak_rss_mb: the largest replica's
    replicas: int
    sessions_per_replica: list[int]
    replica_cpu_cores: list[float]  # CPU seconds per second of the round, per replica
    replica_peak_rss_mb: list[float]
    middleware_cpu_cores: float
    haproxy_cpu_cores: float
    client_cpu_cores: float
    machine_cpu_cores: float  # every process on the machine (psutil.cpu_times), other work included

    @property
    def server_cpu_cores(self) -> float:
        return round(sum(self.replica_cpu_cores), 2)

    def line(self) -> str:
        return (f"{self.figures.line()}  replicas {self.replicas}: sessions {self.sessions_per_replica} "
                f"cpu {self.replica_cpu_cores} cores, middleware {self.middleware_cpu_cores}, haproxy "
                f"{self.haproxy_cpu_cores}, client {self.client_cpu_cores}, machine {self.machine_cpu_cores}")


@dataclass(frozen=True)
class Resilience:
    """The failover and rolling-restart phase."""

    replicas: int
    sessions: int
    victim_customers: int
    failover_seconds: list[float]  # per customer of the killed replica: SIGKILL to its next answer
    failover_median_s: float | None
    failover_max_s: float | None
    never_answered_again: int
    outcomes: dict[str, dict[str, int]]  # by phase (failover, rolling): answered, error, lost, ...
    lost: dict[str, int]
    restarts: list[dict[str, Any]]  # per replica: exit code, seconds to stop, seconds until serving again
    reconnects: int
    sent_again: int
    problems: list[str]


@dataclass
class ReplicasResults:
    config: BenchConfig
    machine: Machine
    counts: list[int]
    rounds: list[ReplicaRound]
    resilience: Resilience | None = None

    def median(self, replicas: int) -> ReplicaRound:
        """The round with the median throughput at `replicas` (0: the floor)."""
        rows = sorted((row for row in self.rounds if row.replicas == replicas), key=lambda row: row.figures.throughput)
        return rows[len(rows) // 2]

    def ratio(self, replicas: int, against: int) -> float:
        return round(self.median(replicas).figures.throughput / self.median(against).figures.throughput, 3)

    def round_ratios(self, replicas: int, against: int) -> list[float]:
        """Round by round, the count beside the other in the same alternation."""
        mine = [row for row in self.rounds if row.replicas == replicas]
        other = [row for row in self.rounds if row.replicas == against]
        return [round(a.figures.throughput / b.figures.throughput, 3) for a, b in zip(mine, other, strict=True)]

    def summary(self) -> dict[str, Any]:
        rows = {}
        for count in [0, *self.counts]:
            median = self.median(count)
            rows["floor" if count == 0 else str(count)] = {
                "throughput": median.figures.throughput, "p50_ms": median.figures.p50_ms,
                "p95_ms": median.figures.p95_ms, "p99_ms": median.figures.p99_ms,
                "errors": sum(row.figures.errors for row in self.rounds if row.replicas == count),
                "wrong": sum(row.figures.wrong for row in self.rounds if row.replicas == count),
                "against_floor": self.ratio(count, 0), "round_ratios_against_floor": self.round_ratios(count, 0),
                "replica_peak_rss_mb": median.replica_peak_rss_mb,
                "replica_cpu_cores": median.replica_cpu_cores, "server_cpu_cores": median.server_cpu_cores,
                "middleware_cpu_cores": median.middleware_cpu_cores, "haproxy_cpu_cores": median.haproxy_cpu_cores,
                "client_cpu_cores": median.client_cpu_cores, "machine_cpu_cores": median.machine_cpu_cores,
                "sessions_per_replica": median.sessions_per_replica}
        return rows

    def ratios(self) -> dict[str, float]:
        """Each count against one replica (`2/1`, `3/1`), when one replica was measured."""
        if 1 not in self.counts:
            return {}
        return {f"{count}/1": self.ratio(count, 1) for count in self.counts if count != 1}

    def as_json(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "config": self.config.as_json(), "machine": asdict(self.machine), "counts": self.counts,
            "summary": self.summary(), "ratios": self.ratios(),
            "round_ratios": {f"{count}/1": self.round_ratios(count, 1) for count in self.counts
                             if count != 1 and 1 in self.counts},
            "rounds": [{**asdict(row), "server_cpu_cores": row.server_cpu_cores} for row in self.rounds]}
        if self.resilience is not None:
            figures["resilience"] = asdict(self.resilience)
        return figures


# --- the throughput phase ---------------------------------------------------------------------------------

@dataclass
class Deployment:
    """Replicas by address behind one load balancer per count; the middleware they share."""

    project: Path
    middleware: Service
    secret: str
    work: Path
    env: dict[str, str]
    replicas: dict[str, Service] = field(default_factory=dict)
    balancers: dict[int, LoadBalancer] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)

    def start_replica(self, address: str) -> Service:
        self.starts[address] += 1
        port = int(address.rsplit(":", 1)[1])
        service = start_app(self.project, port=port, middleware_url=f"{self.middleware.base_url}/chat",
                            secret=self.secret, log_dir=self.work / f"replica-{port}-{self.starts[address]}",
                            extra_env=self.env)
        self.replicas[address] = service
        return service

    def stop(self) -> None:
        for balancer in self.balancers.values():
            balancer.stop()
        for service in self.replicas.values():
            service.stop()


@contextmanager
def deployed(config: BenchConfig, work: Path, count: int, env: dict[str, str], balanced: list[int],
             middleware: Service, secret: str) -> Iterator[Deployment]:
    """`count` replicas (the first one alone first: it may migrate a database), then one load balancer
    per entry of `balanced`, in front of that many of them."""
    deployment = Deployment(config.project, middleware, secret, work, env)
    try:
        addresses = [f"127.0.0.1:{free_port()}" for _ in range(count)]
        deployment.start_replica(addresses[0])
        for address in addresses[1:]:
            deployment.start_replica(address)
        for number in balanced:
            deployment.balancers[number] = start_load_balancer(config.project, addresses[:number],
                                                               log_dir=work / f"haproxy-{number}")
        yield deployment
    finally:
        deployment.stop()


def run_replicas_bench(config: BenchConfig, report: Report = print) -> ReplicasResults:
    """Both phases, each starting and stopping its own processes."""
    counts = list(config.replicas)
    results = ReplicasResults(config, this_machine(), counts, [])
    with tempfile.TemporaryDirectory(prefix="brandbot-bench-replicas-", ignore_cleanup_errors=True) as folder:
        work = Path(folder)
        secret = "bench-" + secrets.token_urlsafe(24)
        answers = RightAnswers.of(config.project)
        with ExitStack() as running:
            middleware = start_middleware(config.project / "brand.toml", port=free_port(), secret=secret,
                                          log_dir=work / "throughput", latency_ms=config.latency_ms)
            running.callback(middleware.stop)
            deployment = running.enter_context(deployed(config, work / "throughput", max(counts), dict(APP_ENV),
                                                        counts, middleware, secret))
            floor = start_floor(config, answers.floor_reply, work / "throughput")
            running.callback(floor.stop)
            results.rounds = asyncio.run(_throughput(config, deployment, Server("floor", floor, answers.floor),
                                                     answers, report))
        if (config.failover or config.rolling) and max(counts) >= 2:
            results.resilience = _resilience(config, work / "resilience", max(counts), secret, report)
        elif config.failover or config.rolling:
            report("failover and rolling restart need 2 replicas or more: skipped")
    return results


async def _throughput(config: BenchConfig, deployment: Deployment, floor: Server, answers: RightAnswers,
                      report: Report) -> list[ReplicaRound]:
    addresses = list(deployment.replicas)
    middleware = psutil.Process(deployment.middleware.process.pid)
    await load(floor, 5, 2)
    for balancer in deployment.balancers.values():  # warm-up, through every load balancer
        await _balanced_round(config, balancer, [], middleware, answers.app, 5, 2)
    rounds = []
    for _ in range(config.rounds):
        measured = await _floor_round(config, floor, middleware)
        report(measured.line())
        rounds.append(measured)
        for count, balancer in deployment.balancers.items():
            replicas = [deployment.replicas[address] for address in addresses[:count]]
            measured = await _balanced_round(config, balancer, replicas, middleware, answers.app, config.sessions,
                                             config.messages)
            report(measured.line())
            rounds.append(measured)
    return rounds


class _Cpu:
    """CPU seconds of some processes, and of the whole machine, since it was made."""

    def __init__(self, processes: list[psutil.Process]) -> None:
        self.processes = processes
        self.before = [self._of(process) for process in processes]
        self.machine = self._machine()
        self.started = time.perf_counter()

    @staticmethod
    def _of(process: psutil.Process) -> float:
        return sum(process.cpu_times()[:2])

    @staticmethod
    def _machine() -> float:
        times = psutil.cpu_times()
        return times.user + times.system + times.nice + getattr(times, "irq", 0) + getattr(times, "softirq", 0)

    def cores(self, seconds: float) -> tuple[list[float], float]:
        """Cores each process used over `seconds`, and the machine's."""
        used = [round((self._of(process) - before) / seconds, 2) for process, before in zip(self.processes,
                                                                                             self.before, strict=True)]
        return used, round((self._machine() - self.machine) / seconds, 2)


async def _floor_round(config: BenchConfig, floor: Server, middleware: psutil.Process) -> ReplicaRound:
    counted: dict[str, Any] = {}

    async def prepared() -> None:  # every session open: the clock starts, as in the replicas' rounds
        counted["cpu"] = _Cpu([middleware, psutil.Process()])

    async def answered() -> None:
        cpu = counted["cpu"]
        counted["cores"] = cpu.cores(time.perf_counter() - cpu.started)

    measured = await load(floor, config.sessions, config.messages, prepared=prepared, answered=answered)
    (middleware_cores, client_cores), machine = counted["cores"]
    return ReplicaRound(measured.figures(config.latency_ms), 0, [config.sessions],
                        [round(measured.cpu_seconds / measured.seconds, 2)], [round(measured.peak_rss_mb, 1)],
                        middleware_cores, 0.0, client_cores, machine)


async def _open_through(balancer: LoadBalancer, sessions: int, timeout: float) -> tuple[list[ChainlitChat], list[str]]:
    """Each customer loads the page through HAProxy (its stickiness cookie names a replica), then opens its
    socket with that cookie and gets its welcome; a few at a time. The chats and the replica of each."""
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    cookie = balancer.cookie_name

    async def one() -> tuple[ChainlitChat, str]:
        async with gate:
            async with httpx.AsyncClient(base_url=balancer.base_url, timeout=timeout) as http:
                page = await http.get("/")
                page.raise_for_status()
            cookies = {item.name: item.value for item in page.cookies.jar if item.value}
            chat = ChainlitChat(balancer.base_url, cookies=cookies, timeout=timeout)
            await chat.connect()
            await chat.welcome()
            return chat, balancer.replica_for_cookie(cookies[cookie])

    opened = await asyncio.gather(*(one() for _ in range(sessions)))
    return [chat for chat, _ in opened], [address for _, address in opened]


async def _balanced_round(config: BenchConfig, balancer: LoadBalancer, replicas: list[Service],
                          middleware: psutil.Process, expected: Callable[[str], str], sessions: int,
                          messages: int) -> ReplicaRound:
    """One round through `balancer`: open (untimed), then every session sends its messages in turn."""
    chats, landed = await _open_through(balancer, sessions, 120)
    processes = [psutil.Process(service.process.pid) for service in replicas]
    for process in processes:
        _reset_peak_rss(process.pid)
    cpu = _Cpu([*processes, middleware, psutil.Process(balancer.process.pid), psutil.Process()])
    tally = Tally()
    server = Server(f"{len(replicas)} replica{'s' if len(replicas) != 1 else ''}", replicas[0] if replicas else None,  # type: ignore[arg-type]
                    expected)
    started = time.perf_counter()
    await asyncio.gather(*(_converse(server, f"s{index}", chat, messages, tally) for index, chat in enumerate(chats)))
    seconds = time.perf_counter() - started
    cores, machine = cpu.cores(seconds)
    peaks = [round(_peak_rss_mb(process.pid), 1) for process in processes]
    await asyncio.gather(*(chat.close() for chat in chats))
    replica_cores = cores[:len(processes)]
    middleware_cores, haproxy_cores, client_cores = cores[len(processes):]
    measured = Round(server.name, sessions, messages, seconds, tally, sum(replica_cores) * seconds,
                     max(peaks, default=float("nan")))
    per_replica = Counter(landed)
    return ReplicaRound(measured.figures(config.latency_ms), len(replicas),
                        [per_replica[service.base_url.removeprefix("http://")] for service in replicas],
                        replica_cores, peaks, middleware_cores, haproxy_cores, client_cores, machine)


# --- failover and rolling restart -------------------------------------------------------------------------

@dataclass
class Turn:
    text: str
    phase: str  # steady, failover or rolling: the phase the turn ended in
    outcome: str = ""  # answered | error | lost (no reply, or the status for ever) | unanswered | other
    shown: str = ""
    sends: int = 0
    answered_at: float = 0.0  # time.monotonic()


class Customer:
    """A browser's worth of customer through the load balancer (as tests/test_replicas.py's): its stickiness
    cookie, one stored conversation; when its socket drops it reconnects with the conversation's id after
    socket.io's delay and reads the resumed conversation for the message it was waiting on."""

    def __init__(self, balancer: LoadBalancer, name: str, settle: Callable[[str, str], str],
                 phase: list[str]) -> None:
        self.balancer = balancer
        self.phase = phase  # the phase now (a turn is counted in the phase it ended in)
        self.name = name
        self.settle = settle
        self.cookies: dict[str, str] = {}
        self.thread_id = ""
        self.chat: ChainlitChat | None = None
        self.resumed: dict[str, Any] | None = None
        self.turns: list[Turn] = []
        self.reconnects = 0

    @property
    def replica(self) -> str:
        return self.balancer.replica_for_cookie(self.cookies[self.balancer.cookie_name])

    async def visit(self) -> None:
        async with httpx.AsyncClient(base_url=self.balancer.base_url, cookies=self.cookies, timeout=20) as http:
            page = await http.get("/auth/config" if self.cookies else "/")
            page.raise_for_status()
        self.cookies.update({cookie.name: cookie.value for cookie in page.cookies.jar if cookie.value})

    async def open(self) -> None:
        self.chat = ChainlitChat(self.balancer.base_url, cookies=self.cookies, thread_id=self.thread_id, timeout=30)
        await self.chat.connect()
        self.cookies = self.chat.cookies
        if self.thread_id:
            self.resumed = await self.chat.resumed()

    async def start(self) -> None:
        await self.visit()
        await self.open()
        assert self.chat is not None
        await self.chat.welcome()

    async def reconnect(self) -> bool:
        for _ in range(60):
            await asyncio.sleep(random.uniform(*RECONNECT_DELAY))
            try:
                await self.visit()
                await self.open()
            except (ChatProtocolError, httpx.HTTPError, OSError, KeyError):
                continue
            self.reconnects += 1
            return True
        return False

    async def ask(self, text: str, phase: str) -> Turn:
        turn = Turn(text, phase)
        self.turns.append(turn)
        while True:
            chat = self.chat
            assert chat is not None
            if chat.dropped.is_set():
                if not await self.reconnect():
                    turn.outcome, turn.phase = "lost", self.phase[0]
                    return turn
                continue
            turn.sends += 1
            started = time.perf_counter()
            try:
                message_id = await chat.post(text)
            except Exception:  # noqa: BLE001 - the socket went while sending: the message never left
                chat.dropped.set()
                continue
            answering = asyncio.ensure_future(chat.answer_to(message_id, started))
            dropping = asyncio.ensure_future(chat.dropped.wait())
            await asyncio.wait({answering, dropping}, return_when=asyncio.FIRST_COMPLETED)
            dropping.cancel()
            if answering.done():
                try:
                    exchange = answering.result()
                except ChatProtocolError:
                    turn.outcome, turn.phase = "unanswered", self.phase[0]
                    return turn
                return self._settled(turn, exchange.final)
            answering.cancel()
            if not await self.reconnect():
                turn.outcome, turn.phase = "lost", self.phase[0]
                return turn
            found = self._reply_in_resumed(text)
            if found is None:  # the replica never got it: sending it again answers it once
                continue
            step_id, reply = found
            if self.settle(text, reply) == "lost" and step_id:
                reply = await self._updated(step_id, reply)
            return self._settled(turn, reply)

    async def _updated(self, step_id: str, shown: str, seconds: float = 5.0) -> str:
        """A status resumed without its answer: the bot replaces it (error_connection) right after resuming,
        as the page shows; what it became within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            step = self.chat.steps.get(step_id) if self.chat is not None else None
            if step is not None and step.outputs and step.outputs[-1] != shown:
                return step.outputs[-1]
            await asyncio.sleep(0.1)
        return shown

    def _reply_in_resumed(self, text: str) -> tuple[str, str] | None:
        steps = (self.resumed or {}).get("steps", [])
        asked = {step["id"] for step in steps if step["type"] == "user_message" and step["output"] == text}
        if not asked:
            return None
        runs = {step["id"] for step in steps if step["type"] == "run" and step.get("parentId") in asked}
        replies = [step for step in steps if step["type"] == "assistant_message" and step.get("parentId") in runs]
        return (replies[-1]["id"], replies[-1]["output"]) if replies else ("", "")

    def _settled(self, turn: Turn, shown: str) -> Turn:
        turn.shown, turn.outcome, turn.answered_at = shown, self.settle(turn.text, shown), time.monotonic()
        turn.phase = self.phase[0]
        return turn

    async def close(self) -> None:
        if self.chat is not None:
            await self.chat.close()


def _settler(project: Path, answers: RightAnswers) -> Callable[[str, str], str]:
    """What a shown reply to a message is: answered, error (a brand error text), lost or other."""
    brand, display = project_brand(project), project_display(project)
    errors = [display.plain(text.split("{")[0]) for name, text in brand.texts.model_dump().items()
              if name.startswith("error_")]
    thinking = display.plain(brand.texts.thinking)

    def settle(text: str, shown: str) -> str:
        if shown == answers.app(text):
            return "answered"
        if any(error and shown.startswith(error) for error in errors):
            return "error"
        if shown in {"", thinking}:
            return "lost"
        return "other"

    return settle


def _resilience(config: BenchConfig, work: Path, count: int, secret: str, report: Report) -> Resilience:
    answers = RightAnswers.of(config.project)
    with ExitStack() as running:
        postgres = running.enter_context(PostgresCluster(None, prefix="brandbot-bench-replicas-"))
        url = postgres.create_database("replicas")
        middleware = start_middleware(config.project / "brand.toml", port=free_port(), secret=secret, log_dir=work,
                                      latency_ms=config.latency_ms)
        running.callback(middleware.stop)
        env = {**APP_ENV, "DATABASE_URL": url}
        deployment = running.enter_context(deployed(config, work, count, env, [count], middleware, secret))
        report(f"failover and rolling restart: {count} replicas storing in PostgreSQL, {config.sessions} customers "
               f"pausing {THINK_SECONDS[0]:g}-{THINK_SECONDS[1]:g} s between answers")
        return asyncio.run(_failover_and_rolling(config, deployment, deployment.balancers[count],
                                                 _settler(config.project, answers), report))


async def _failover_and_rolling(config: BenchConfig, deployment: Deployment, balancer: LoadBalancer,
                                settle: Callable[[str, str], str], report: Report) -> Resilience:
    phase = ["steady"]
    customers = [Customer(balancer, f"c{number}", settle, phase) for number in range(config.sessions)]
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    stop_talking = asyncio.Event()

    async def first_turn(customer: Customer) -> None:
        async with gate:
            await customer.start()
        await customer.ask(f"[{customer.name}] turn 1", "steady")
        assert customer.chat is not None
        customer.thread_id = await customer.chat.stored_thread()

    async def keep_talking(customer: Customer) -> None:
        while not stop_talking.is_set():
            await asyncio.sleep(random.uniform(*THINK_SECONDS))
            await customer.ask(f"[{customer.name}] turn {len(customer.turns) + 1}", phase[0])

    def restart(address: str) -> dict[str, Any]:
        began = time.monotonic()
        process = deployment.replicas[address].process
        os.killpg(process.pid, signal.SIGTERM)
        code = process.wait(60)
        stopped = time.monotonic() - began
        deployment.start_replica(address)
        balancer.wait_until(address, "UP", timeout=60)
        return {"replica": address, "exit": code, "stopped_s": round(stopped, 2),
                "serving_again_s": round(time.monotonic() - began, 2)}

    await asyncio.gather(*(first_turn(customer) for customer in customers))
    talking = [asyncio.ensure_future(keep_talking(customer)) for customer in customers]
    restarts: list[dict[str, Any]] = []
    failover: list[float] = []
    victims: list[Customer] = []
    never = 0
    if config.failover:
        await asyncio.sleep(3)
        by_replica = Counter(customer.replica for customer in customers)
        victim = by_replica.most_common(1)[0][0]
        victims = [customer for customer in customers if customer.replica == victim]
        phase[0] = "failover"
        killed = time.monotonic()
        process = deployment.replicas[victim].process
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        deadline = killed + 60
        while time.monotonic() < deadline and not all(_answered_after(customer, killed) for customer in victims):
            await asyncio.sleep(0.2)
        for customer in victims:
            at = _answered_after(customer, killed)
            if at is None:
                never += 1
            else:
                failover.append(round(at - killed, 2))
        report(f"failover: SIGKILL to {victim} ({len(victims)} customers): answered again after median "
               f"{statistics.median(failover) if failover else float('nan'):.2f} s, max "
               f"{max(failover, default=float('nan')):.2f} s; never: {never}")
        await asyncio.to_thread(deployment.start_replica, victim)
        await asyncio.to_thread(balancer.wait_until, victim, "UP", timeout=60)
    if config.rolling:
        phase[0] = "rolling"
        for address in list(deployment.replicas):
            await asyncio.sleep(1.5)
            restarts.append(await asyncio.to_thread(restart, address))
            report(f"rolling restart: {restarts[-1]}")
        await asyncio.sleep(1.5)
    stop_talking.set()
    await asyncio.gather(*talking)
    for customer in customers:
        await customer.ask(f"[{customer.name}] turn {len(customer.turns) + 1} after", phase[0])
        await customer.close()

    turns = [turn for customer in customers for turn in customer.turns]
    outcomes = {name: dict(Counter(turn.outcome for turn in turns if turn.phase == name))
                for name in ("steady", "failover", "rolling")}
    lost = {name: sum(count for outcome, count in counted.items() if outcome not in {"answered", "error"})
            for name, counted in outcomes.items()}
    problems = [f"{turn.text!r}: {turn.outcome}: {turn.shown[:80]!r}" for turn in turns
                if turn.outcome not in {"answered", "error"}][:10]
    return Resilience(
        replicas=len(deployment.replicas), sessions=config.sessions, victim_customers=len(victims),
        failover_seconds=sorted(failover),
        failover_median_s=round(statistics.median(failover), 2) if failover else None,
        failover_max_s=max(failover, default=None), never_answered_again=never, outcomes=outcomes, lost=lost,
        restarts=restarts, reconnects=sum(customer.reconnects for customer in customers),
        sent_again=sum(turn.sends - 1 for turn in turns if turn.sends), problems=problems)


def _answered_after(customer: Customer, moment: float) -> float | None:
    """When the customer's first answer after `moment` came (time.monotonic()), if it came."""
    return next((turn.answered_at for turn in customer.turns
                 if turn.outcome == "answered" and turn.answered_at > moment), None)


# --- shown ------------------------------------------------------------------------------------------------

def replicas_table(results: ReplicasResults) -> Any:
    from rich.table import Table

    ratios = ", ".join(f"{name}: {value:.2f}" for name, value in results.ratios().items())
    table = Table(title=f"replicas through HAProxy, {results.config.sessions} sessions x {results.config.messages} "
                        f"(median of {results.config.rounds} rounds){'; ' + ratios if ratios else ''}")
    for column in ("figure", "floor", *(str(count) for count in results.counts)):
        table.add_column(column, justify="left" if column == "figure" else "right")
    summary = results.summary()
    keys = ["floor", *(str(count) for count in results.counts)]
    for label, key in (("throughput (msg/s)", "throughput"), ("against the floor", "against_floor"),
                       ("p50 / p95 latency (ms)", None), ("errors / wrong", "errors"),
                       ("sessions per replica", "sessions_per_replica"),
                       ("CPU per replica (cores)", "replica_cpu_cores"),
                       ("middleware / HAProxy / client CPU (cores)", "others"),
                       ("machine CPU (cores)", "machine_cpu_cores"),
                       ("peak RSS per replica (MB)", "replica_peak_rss_mb")):
        cells = []
        for name in keys:
            row = summary[name]
            if key is None:
                cells.append(f"{row['p50_ms']} / {row['p95_ms']}")
            elif key == "errors":
                cells.append(f"{row['errors']} / {row['wrong']}")
            elif key == "others":
                cells.append(f"{row['middleware_cpu_cores']} / {row['haproxy_cpu_cores']} / {row['client_cpu_cores']}")
            else:
                cells.append(str(row[key]))
        table.add_row(label, *cells)
    return table


def resilience_lines(resilience: Resilience) -> list[str]:
    return [f"failover ({resilience.replicas} replicas, {resilience.sessions} customers, {resilience.victim_customers}"
            f" on the killed one): SIGKILL to answered again median {resilience.failover_median_s} s, max "
            f"{resilience.failover_max_s} s, never {resilience.never_answered_again}",
            f"outcomes by phase: {resilience.outcomes}; lost: {resilience.lost}",
            f"reconnects {resilience.reconnects}, messages sent again (never received) {resilience.sent_again}",
            *(f"restart {step}" for step in resilience.restarts), *resilience.problems]


def replicas_plot(results: ReplicasResults, path: Path) -> Path:
    """Throughput and p95 latency against the number of replicas, the floor as a line."""
    import matplotlib  # a dev extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results.summary()
    counts = results.counts
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for axis, key, title, unit in ((left, "throughput", "throughput", "messages / s"),
                                   (right, "p95_ms", "p95 end-to-end latency", "ms")):
        values = [summary[str(count)][key] for count in counts]
        axis.plot(counts, values, "o-", label="replicas through HAProxy")
        for count, value in zip(counts, values, strict=True):
            axis.annotate(f"{value:g}", (count, value), textcoords="offset points", xytext=(0, 6), ha="center")
        axis.axhline(summary["floor"][key], linestyle="--", color="grey", label="single-process floor")
        axis.set(title=f"{title}, {results.config.sessions} sessions", xlabel="replicas", ylabel=unit)
        axis.set_xticks(counts, [str(count) for count in counts])
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend(loc="lower right" if key == "throughput" else "upper right")
    figure.suptitle(f"{results.machine.cpus} CPUs shared by the client, middleware, HAProxy and every replica")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
