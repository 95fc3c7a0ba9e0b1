"""Many customers at once: each session's requests carry only its own history, with no errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from brandbot.chat_client import ChainlitChat
from brandbot.processes import start_bot

from .helpers import REPO, record_figure

SESSIONS = 50
MESSAGES = 4


def test_fifty_concurrent_sessions_keep_their_own_histories(rendered: Callable[[Path], Path], tmp_path: Path) -> None:
    project = rendered(REPO / "examples/retail.yml")
    bot = start_bot(project, log_dir=tmp_path, latency_ms=50, app_env={"TRANSITION_DELAY_SECONDS": "0"})
    try:
        answers = asyncio.run(_converse(bot.app.base_url))
        stats = httpx.get(f"{bot.middleware.base_url}/stats", timeout=5).json()
    finally:
        bot.stop()
    app = bot.app

    assert len(answers) == SESSIONS
    for session, finals in answers.items():
        assert len(finals) == MESSAGES
        assert all(final.startswith(f"[{session}] ") for final in finals), finals
    assert {key: stats[key] for key in ("requests", "answered", "rejected", "crossed_sessions")} == {
        "requests": SESSIONS * MESSAGES, "answered": SESSIONS * MESSAGES, "rejected": 0, "crossed_sessions": 0}
    assert stats["longest_history"] == 2 * (MESSAGES - 1) + 1
    assert "ERROR" not in app.log() and "Traceback" not in app.log()
    record_figure("concurrent sessions held", SESSIONS, f"{SESSIONS} sessions x {MESSAGES} messages, "
                                                         f"{stats['crossed_sessions']} crossed, 0 errors")


async def _converse(base_url: str) -> dict[str, list[str]]:
    async def one(index: int) -> tuple[str, list[str]]:
        session = f"s{index}"
        async with ChainlitChat(base_url, timeout=60) as chat:
            await chat.welcome()
            finals = []
            for number in range(MESSAGES):
                exchange = await chat.send(f"[{session}] question {number} about my order")
                finals.append(exchange.final)
            return session, finals

    results = await asyncio.gather(*(one(index) for index in range(SESSIONS)))
    return dict(results)
