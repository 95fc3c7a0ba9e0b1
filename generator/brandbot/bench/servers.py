"""The servers a run loads: the generated app behind the reference middleware, and the floor.

Both run for real on loopback. Each comes with its right answer to a load message
(`[sN] message M`): the session's tag, then the reply the middleware routes such a message to.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..processes import Service, chainlit_command, free_port, python_env, start, start_bot
from ..reference_middleware import Router, routing_for
from ..rendered_project import project_display
from .config import BenchConfig
from .load import Server

FLOOR_APP = Path(__file__).with_name("floor_app.py")

#: The app's settings under load: no pause between statuses, and a rate limit far above the load
#: (the load is not a customer typing).
APP_ENV = {"TRANSITION_DELAY_SECONDS": "0", "REQUEST_TIMEOUT_SECONDS": "60", "MESSAGES_PER_MINUTE": "100000"}


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


def start_floor(config: BenchConfig, reply: str, work: Path) -> Service:
    """The floor app under `chainlit run`, answering `reply` after the middleware's latency."""
    port = free_port()
    env = python_env({"FLOOR_LATENCY_MS": str(config.latency_ms), "FLOOR_REPLY": reply})
    return start("floor", chainlit_command(port), cwd=floor_project(config.project, work / "floor"), env=env,
                 port=port, log_dir=work)


def floor_project(project: Path, into: Path) -> Path:
    """The floor app beside the same Chainlit config and translations as the project."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copytree(project / ".chainlit", into / ".chainlit", dirs_exist_ok=True)
    (into / "chainlit.md").write_text("", encoding="utf-8")
    shutil.copyfile(FLOOR_APP, into / "app.py")
    return into
