"""The servers a run loads: the generated app behind the reference middleware, and the floor.

Both run for real on loopback. Each comes with its right answer to a load message
(`[sN] message M`): the session's tag, then the reply the middleware routes such a message to.

The persistence mode (`started_stored`) runs three: the app storing conversations in a database,
the floor storing them in another database of the same kind through the same data layer, and the
floor with none; all three under `counted_chainlit.py`, which counts the SQL statements each runs.

The streaming mode (`started_streamed`) runs the app behind the reference middleware streaming every
answer as SSE, and the streaming floor (`stream_floor_app.py`), which streams the same pieces itself;
both record when each answer's first piece left them, to set against its arrival at the customer.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..processes import Service, chainlit_command, free_port, python_env, start, start_app, start_bot, start_middleware
from ..reference_middleware import Router, routing_for
from ..rendered_project import project_display
from .config import BenchConfig
from .databases import Database, migrate, open_database
from .load import Server
from .sql_counts import StatementLog

FLOOR_APP = Path(__file__).with_name("floor_app.py")
STREAM_FLOOR_APP = Path(__file__).with_name("stream_floor_app.py")
COUNTED_CHAINLIT = Path(__file__).with_name("counted_chainlit.py")
#: The persistence mode's servers: the app, the floor storing through the same data layer, the floor storing none.
STORED_TARGETS = ("app", "floor-db", "floor-none")

#: The app's settings under load: no pause between statuses, and a rate limit far above the load
#: (the load is not a customer typing). Conversations are not stored unless the mode says so.
APP_ENV = {"TRANSITION_DELAY_SECONDS": "0", "REQUEST_TIMEOUT_SECONDS": "60", "MESSAGES_PER_MINUTE": "100000",
           "DATABASE_URL": "off"}


@dataclass(frozen=True)
class RightAnswers:
    """What each server must show for a load message."""

    router: Router
    as_sent: Callable[[str], str]  # the project's display.as_sent: markdown as the app hands it to Chainlit

    @classmethod
    def of(cls, project: Path) -> RightAnswers:
        return cls(Router(routing_for(project)), project_display(project).as_sent)

    def reply(self, text: str) -> str:
        """The middleware's answer to `text`."""
        return self.router.decide(text).body["response"]  # type: ignore[index]

    @cached_property
    def floor_reply(self) -> str:
        """The words the floor answers every message with: the middleware's, as the app sends them."""
        return self.as_sent(self.reply("[s0] message 0"))

    def app(self, text: str) -> str:
        return self.as_sent(_tag(text) + " " + self.reply(text))

    def floor(self, text: str) -> str:
        return _tag(text) + " " + self.floor_reply


def _tag(text: str) -> str:
    """A load message's session tag, which both servers echo first."""
    return text.split(" ", 1)[0]


@dataclass(frozen=True)
class Servers:
    """The running servers: the app and the floor under load, and the app's middleware."""

    app: Server
    floor: Server
    middleware: Service

    @property
    def under_load(self) -> list[Server]:
        """Both servers, in the order every step loads them."""
        return [self.app, self.floor]


@contextmanager
def started(config: BenchConfig, work: Path) -> Iterator[Servers]:
    """Start the app (after its middleware) and the floor, logging into `work`; stop them all on the way out."""
    answers = RightAnswers.of(config.project)
    with ExitStack() as running:
        bot = start_bot(config.project, log_dir=work, latency_ms=config.latency_ms, app_env=APP_ENV)
        running.callback(bot.stop)
        floor = start_floor(config, answers.floor_reply, work)
        running.callback(floor.stop)
        yield Servers(Server("app", bot.app, answers.app), Server("floor", floor, answers.floor), bot.middleware)


def start_floor(config: BenchConfig, reply: str, work: Path, *, name: str = "floor", database_url: str = "",
                counts: Path | None = None) -> Service:
    """The floor app under `chainlit run`, answering `reply` after the middleware's latency; storing
    conversations at `database_url` when given (behind the bot's guard with `config.guarded_floor`),
    its SQL statements counted into `counts` when given; without Chainlit's blocking sleeps with
    `config.floor_without_sleeps`."""
    port = free_port()
    env = python_env({"FLOOR_LATENCY_MS": str(config.latency_ms), "FLOOR_REPLY": reply})
    env.pop("DATABASE_URL", None)  # else Chainlit would pick its own data layer from it
    if config.floor_without_sleeps:
        env.update({"FLOOR_NO_SLEEPS": "1", "FLOOR_PROJECT": str(config.project.resolve())})
    if database_url:
        env.update({"FLOOR_DATABASE_URL": database_url, "FLOOR_PROJECT": str(config.project.resolve()),
                    "CHAINLIT_AUTH_SECRET": secrets.token_urlsafe(32),
                    "FLOOR_GUARDED": "1" if config.guarded_floor else "0"})
    command = counted_command(counts, port) if counts is not None else chainlit_command(port)
    return start(name, command, cwd=floor_project(config.project, work / name), env=env, port=port, log_dir=work)


def counted_command(counts: Path, port: int) -> list[str]:
    """`chainlit run app.py --headless` on loopback, its SQL statements counted into `counts`."""
    run_arguments = chainlit_command(port)[3:]  # after `python -m chainlit`: run app.py --headless ...
    return [sys.executable, str(COUNTED_CHAINLIT), str(counts), *run_arguments]


def floor_project(project: Path, into: Path, app: Path = FLOOR_APP) -> Path:
    """The floor app (`app`) beside the same Chainlit config and translations as the project."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copytree(project / ".chainlit", into / ".chainlit", dirs_exist_ok=True)
    (into / "chainlit.md").write_text("", encoding="utf-8")
    shutil.copyfile(app, into / "app.py")
    return into


@dataclass(frozen=True)
class StreamServers:
    """The streaming mode's servers, and where each says when an answer's first piece left it."""

    app: Server
    floor: Server
    middleware: Service  # streams every answer to the app; GET /stream-times lists when each delta left
    floor_times: Path  # the streaming floor's lines `<tag> <monotonic time of its first stream_token>`
    answers: RightAnswers  # what each streams: the middleware's words, tagged

    @property
    def under_load(self) -> list[Server]:
        """Both servers, in the order every step loads them."""
        return [self.app, self.floor]


@contextmanager
def started_streamed(config: BenchConfig, work: Path) -> Iterator[StreamServers]:
    """The reference middleware streaming every answer as SSE in `config.deltas` pieces `config.token_ms`
    apart after its latency, the app behind it, and the streaming floor; stopped on the way out."""
    answers = RightAnswers.of(config.project)
    secret = "bench-" + secrets.token_urlsafe(24)
    with ExitStack() as running:
        port = free_port()
        command = [sys.executable, "-m", "brandbot", "middleware", "--port", str(port),
                   "--latency-ms", str(config.latency_ms), "--brand", str(config.project / "brand.toml"),
                   "--stream", "sse", "--token-ms", str(config.token_ms), "--deltas", str(config.deltas)]
        middleware = start("middleware", command, cwd=Path.cwd(), env=python_env({"BACKEND_API_SECRET": secret}),
                           port=port, log_dir=work)
        running.callback(middleware.stop)
        app = start_app(config.project, port=free_port(), middleware_url=f"{middleware.base_url}/chat",
                        secret=secret, log_dir=work, extra_env=APP_ENV)
        running.callback(app.stop)
        times = work / "floor-stream-times.txt"
        times.write_text("", encoding="utf-8")
        env = python_env({"FLOOR_LATENCY_MS": str(config.latency_ms), "FLOOR_REPLY": answers.floor_reply,
                          "FLOOR_TOKEN_MS": str(config.token_ms), "FLOOR_DELTAS": str(config.deltas),
                          "FLOOR_TIMES": str(times)})
        env.pop("DATABASE_URL", None)
        port = free_port()
        cwd = floor_project(config.project, work / "floor", STREAM_FLOOR_APP)
        floor = start("floor", chainlit_command(port), cwd=cwd, env=env, port=port, log_dir=work)
        running.callback(floor.stop)
        yield StreamServers(Server("app", app, answers.app), Server("floor", floor, answers.floor), middleware, times,
                            answers)


@dataclass(frozen=True)
class StoredServers:
    """The persistence mode's servers, the database they store in, and each one's statement counts."""

    app: Server
    floor: Server
    bare: Server
    middleware: Service
    database: Database
    statements: dict[str, StatementLog]  # by server name (the bare floor's stays empty)

    @property
    def under_load(self) -> list[Server]:
        """The three servers, in the order every round loads them."""
        return [self.app, self.floor, self.bare]


@contextmanager
def started_stored(config: BenchConfig, kind: str, work: Path) -> Iterator[StoredServers]:
    """A database of `kind` (one per storing server, both migrated to the project's schema), then the
    middleware, the app storing in its database, the floor storing in its own, and the bare floor."""
    answers = RightAnswers.of(config.project)
    logs = work / f"logs-{kind}"
    with ExitStack() as running:
        database = open_database(kind, work)
        running.callback(database.close)
        urls = {name: database.create(name) for name in ("app", "floor")}
        for url in urls.values():
            migrate(config.project, url)
        counts = {name: work / f"{name}-{kind}-statements.json" for name in STORED_TARGETS}
        secret = "bench-" + secrets.token_urlsafe(24)
        middleware = start_middleware(config.project / "brand.toml", port=free_port(), secret=secret, log_dir=logs,
                                      latency_ms=config.latency_ms)
        running.callback(middleware.stop)
        port = free_port()
        app = start("app", counted_command(counts["app"], port), cwd=config.project, port=port, log_dir=logs,
                    env=python_env({"BACKEND_API_URL": f"{middleware.base_url}/chat", "BACKEND_API_SECRET": secret,
                                    **APP_ENV, "DATABASE_URL": urls["app"]}))
        running.callback(app.stop)
        floor = start_floor(config, answers.floor_reply, logs, name="floor-db", database_url=urls["floor"],
                            counts=counts["floor-db"])
        running.callback(floor.stop)
        bare = start_floor(config, answers.floor_reply, logs, name="floor-none", counts=counts["floor-none"])
        running.callback(bare.stop)
        yield StoredServers(Server("app", app, answers.app), Server("floor-db", floor, answers.floor),
                            Server("floor-none", bare, answers.floor), middleware, database,
                            {name: StatementLog(counts[name]) for name in STORED_TARGETS})
