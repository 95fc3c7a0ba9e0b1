"""`brandbot smoke`: prove a rendered bot works, with real processes and the real protocol.

Starts the reference middleware and `chainlit run app.py --headless` for the project on free
loopback ports with a throw-away secret, then plays one customer through every path: welcome,
a general question, a streamed markdown answer (growing in place, ending exactly as sent), each
specialist category, an HTTP error, a timeout, an answer that breaks the contract and a refused
connection, with a recovery after each failure; then who the middleware is told writes: an
anonymous visitor, a verified customer (a customer token signed with a throw-away
CUSTOMER_TOKEN_SECRET, as the brand's site would) and a forged token (anonymous again). The expected
texts are read from the project's own brand data (brand.toml).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jwt

from .chat_client import ChainlitChat, transcript
from .processes import RunningBot, start_bot
from .reference_middleware import STREAMED_MARKDOWN
from .rendered_project import Display, project_brand, project_display

if TYPE_CHECKING:
    from brandbot_runtime import Brand


@dataclass
class Check:
    """One row of the smoke report."""

    name: str
    passed: bool
    seconds: float
    detail: str = ""


def run_smoke(project: Path, *, request_timeout: float = 2.0, log_dir: Path | None = None,
              on_check: Callable[[Check], None] | None = None) -> list[Check]:
    """Run every check; processes are stopped whatever happens (Ctrl-C included)."""
    brand = project_brand(project)
    display = project_display(project)
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="brandbot-smoke-"))
    checks: list[Check] = []
    token_secret = secrets.token_urlsafe(32)
    bot = start_bot(project, log_dir=log_dir, app_env={"REQUEST_TIMEOUT_SECONDS": str(request_timeout),
                                                       "TRANSITION_DELAY_SECONDS": "0.3",
                                                       # one session plays every path: more than a customer types
                                                       "MESSAGES_PER_MINUTE": "1000",
                                                       "CUSTOMER_TOKEN_SECRET": token_secret})
    try:
        asyncio.run(_converse(bot, brand, display, checks, on_check))
        asyncio.run(_identities(bot, brand, token_secret, checks, on_check))
    finally:
        bot.stop()
    logs = "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in log_dir.rglob("*.log"))
    _record(checks, on_check, Check("secret not in any log", bot.secret not in logs, 0.0, "app and middleware logs"))
    return checks


def _record(checks: list[Check], on_check: Callable[[Check], None] | None, check: Check) -> None:
    checks.append(check)
    if on_check is not None:
        on_check(check)


async def _converse(bot: RunningBot, brand: Brand, display: Display, checks: list[Check],
                    on_check: Callable[[Check], None] | None) -> None:
    texts, plain = brand.texts, display.plain
    own_texts = {plain(text) for text in texts.model_dump().values()}

    async with ChainlitChat(bot.app.base_url, timeout=30) as chat:
        async def check(name: str, step: Callable[[], Awaitable[tuple[bool, str]]]) -> None:
            started = time.perf_counter()
            try:
                passed, detail = await step()
            except Exception as error:  # noqa: BLE001 - a smoke test reports, it does not crash
                passed, detail = False, f"{type(error).__name__}: {error}"
            _record(checks, on_check, Check(name, passed, time.perf_counter() - started, detail))

        async def welcome() -> tuple[bool, str]:
            shown = await chat.welcome()
            return shown == [display.as_sent(brand.welcome_message)], _short(shown)

        async def general() -> tuple[bool, str]:
            exchange = await chat.send("Hello!")
            ok = exchange.shown[:1] == [plain(texts.thinking)] and len(exchange.shown) == 2
            return ok and exchange.final not in own_texts, _short(exchange.final)

        async def streamed() -> tuple[bool, str]:
            """The reference middleware streams "simulate stream code" in any mode: STREAMED_MARKDOWN, a word a
            delta. The answer must grow in place, its first part on screen in the first half of the wait."""
            sent_at = time.perf_counter()
            exchange = await chat.send("simulate stream code")
            first = exchange.first_token_at
            if exchange.tokens < 2 or first is None:
                return False, f"not streamed: {exchange.tokens} part(s); {_short(exchange.final)}"
            early = first - sent_at <= exchange.seconds / 2
            detail = f"{exchange.tokens} parts in {exchange.seconds:.2f} s, first {first - sent_at:.2f} s"
            if exchange.final != display.as_sent(STREAMED_MARKDOWN):
                return False, f"{detail}; ended as {_short(exchange.final)}"
            return early, detail

        def specialist(category: str) -> Callable[[], Awaitable[tuple[bool, str]]]:
            async def step() -> tuple[bool, str]:
                label = brand.specialist_label(category)
                exchange = await chat.send(f"simulate category {category}: I have a question about {label}")
                expected = [plain(texts.thinking), plain(texts.specialist(label))]
                return exchange.shown[:2] == expected and len(exchange.shown) == 3, _short(exchange.shown[1:])
            return step

        def failure(message: str, text_id: str) -> Callable[[], Awaitable[tuple[bool, str]]]:
            async def step() -> tuple[bool, str]:
                exchange = await chat.send(message)
                return exchange.final == plain(getattr(texts, text_id)), _short(exchange.final)
            return step

        async def recovered() -> tuple[bool, str]:
            exchange = await chat.send("Hello again!")
            return exchange.final not in own_texts and bool(exchange.final), _short(exchange.final)

        async def refused() -> tuple[bool, str]:
            bot.middleware.stop()
            exchange = await chat.send("Is anyone there?")
            await asyncio.to_thread(bot.restart_middleware)
            return exchange.final == plain(texts.error_connection), _short(exchange.final)

        await check("welcome", welcome)
        await check("general answer", general)
        await check("streamed answer", streamed)
        for category in brand.categories:
            await check(f"specialist {category}", specialist(category))
        for name, message, text_id in [
            ("HTTP error", "simulate error", "error_service_unavailable"),
            ("timeout", "simulate timeout", "error_timeout"),
            ("unexpected answer", "simulate bad answer", "error_unexpected_answer"),
        ]:
            await check(name, failure(message, text_id))
            await check("  then a normal answer", recovered)
        await check("connection refused", refused)
        await check("  then a normal answer", recovered)
        leaked = bot.secret in transcript(chat.events)
        _record(checks, on_check, Check("secret not sent to browser", not leaked, 0.0,
                                        f"{len(chat.events)} socket.io events"))


async def _identities(bot: RunningBot, brand: Brand, token_secret: str, checks: list[Check],
                      on_check: Callable[[Check], None] | None) -> None:
    """Who the middleware hears writes: the reference middleware's `simulate whoami` says it back."""
    now = int(time.time())
    claims = {"sub": "smoke-customer", "aud": brand.brand_slug, "iat": now, "exp": now + 120, "tier": "gold"}
    cases = [
        ("anonymous visitor", None, "You are an anonymous visitor."),
        ("verified customer", jwt.encode(claims, token_secret, algorithm="HS256"),
         "You are verified customer smoke-customer (tier=gold)."),
        ("forged token: anonymous", jwt.encode(claims, secrets.token_urlsafe(32), algorithm="HS256"),
         "You are an anonymous visitor."),
    ]
    for name, token, expected in cases:
        started = time.perf_counter()
        try:
            async with ChainlitChat(bot.app.base_url, timeout=30, customer_token=token) as chat:
                await chat.welcome()
                final = (await chat.send("simulate whoami")).final
            passed, detail = expected.rstrip(".") in final, _short(final)
        except Exception as error:  # noqa: BLE001 - a smoke test reports, it does not crash
            passed, detail = False, f"{type(error).__name__}: {error}"
        _record(checks, on_check, Check(name, passed, time.perf_counter() - started, detail))


def _short(value: object, limit: int = 70) -> str:
    """A one-line excerpt of what was shown, with markdown's backslash escapes taken out."""
    text = value if isinstance(value, str) else " | ".join(map(str, value)) if isinstance(value, list) else str(value)
    text = " ".join(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
