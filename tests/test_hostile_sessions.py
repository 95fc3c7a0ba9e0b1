"""Hostile sessions against a real `chainlit run` and the reference middleware over socket.io.

The issue's abuse, replayed: one session floods 100 messages at once; 12 sessions send 25 huge
messages each. The middleware must never see two requests of one session at once, requests stay
small, and the bot's memory stays near where it started. Figures go to the end-of-run summary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from brandbot.chat_client import ChainlitChat
from brandbot.processes import start_bot

from .helpers import REPO, record_figure

HUGE = 900_000  # characters in each abusive message
SESSIONS = 12
MESSAGES = 25


def test_a_flood_and_huge_messages_are_held_to_one_request_per_session(rendered: Callable[[Path], Path],
                                                                       tmp_path: Path) -> None:
    project = rendered(REPO / "examples/retail.yml")
    bot = start_bot(project, log_dir=tmp_path, latency_ms=20, app_env={"TRANSITION_DELAY_SECONDS": "0"})
    try:
        process = psutil.Process(bot.app.process.pid)
        rss_before = process.memory_info().rss
        flood = asyncio.run(_flood(bot.app.base_url))
        refused_in_session = asyncio.run(_refused_while_connected(bot.app.base_url))
        rss_connected = process.memory_info().rss
        started = time.perf_counter()
        dropped = asyncio.run(_huge_messages(bot.app.base_url))
        seconds = time.perf_counter() - started
        rss_after = process.memory_info().rss
        just_over, after = asyncio.run(_still_chatting(bot.app.base_url))
        stats = httpx.get(f"{bot.middleware.base_url}/stats", timeout=5).json()
    finally:
        bot.stop()

    assert stats["most_in_flight_per_session"] == 1
    answered = [final for final in flood if final.startswith("[flood] ")]
    told_to_wait = [final for final in flood if final.startswith("You are sending messages faster")]
    busy = [final for final in flood if final.startswith("Our assistant is still answering")]
    assert 1 <= len(answered) <= 12  # the per-minute limit, whatever the timing
    assert len(told_to_wait) == 1  # told once; the rest of the flood costs no reply
    assert len(answered) + len(busy) + len(told_to_wait) + flood.count("") == 100
    assert refused_in_session == ["too long"] * 12 + ["wait"] + ["nothing"] * 187
    assert dropped == SESSIONS * MESSAGES  # every oversized frame closed its connection, unread
    assert just_over.startswith("Your message is too long")  # a long message still gets the polite text
    assert after.startswith("[after] ")
    assert stats["largest_request_bytes"] < 200_000  # the history budget and the length limit
    grown = (rss_after - rss_before) / 2**20
    # Catches unbounded growth (1,122 MB before the edge refused huge frames). The bot stores every
    # message Chainlit receives (the project's SQLite file by default); growth measured on 2 cores
    # with storing on: 41-62 MB, with DATABASE_URL=off: 48-68 MB.
    assert grown < 100, f"the bot grew by {grown:.0f} MB"
    record_figure("hostile sessions", 100, f"flood of 100 messages in one session: {len(answered)} answered, "
                                           f"{stats['most_in_flight_per_session']} request at a time, "
                                           f"told to wait {len(told_to_wait)} time")
    record_figure("hostile sessions", 200, f"200 refused 30 KB messages on one open connection: bot RSS "
                                           f"{rss_before / 2**20:.0f} -> {rss_connected / 2**20:.0f} MB")
    record_figure("hostile sessions", SESSIONS * MESSAGES,
                  f"{SESSIONS} sessions x {MESSAGES} messages of {HUGE // 1000} KB, each frame refused "
                  f"({seconds:.1f} s in all): largest middleware request {stats['largest_request_bytes']} bytes; "
                  f"bot RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MB")


async def _flood(base_url: str) -> list[str]:
    async with ChainlitChat(base_url, timeout=120) as chat:
        await chat.welcome()
        exchanges = await chat.send_at_once([f"[flood] message {number}" for number in range(100)])
    return [exchange.final for exchange in exchanges]


async def _refused_while_connected(base_url: str) -> list[str]:
    """One connection sends 200 messages just under the frame bound but over the length limit."""
    async with ChainlitChat(base_url, timeout=60) as chat:
        await chat.welcome()
        exchanges = [await chat.send("z" * 30_000) for _ in range(200)]
    return [_kind(exchange.final) for exchange in exchanges]


def _kind(final: str) -> str:
    """What a refusal told the customer, in a word."""
    if final.startswith("Your message is too long"):
        return "too long"
    if final.startswith("You are sending messages faster"):
        return "wait"
    return final or "nothing"


async def _huge_messages(base_url: str) -> int:
    """Each session sends its huge messages, reconnecting whenever the bot drops it; the drops."""

    async def one(index: int) -> int:
        dropped = 0
        for number in range(MESSAGES):
            async with ChainlitChat(base_url, timeout=30) as chat:
                await chat.welcome()
                await chat.post(f"[h{index}] {number} " + "x" * HUGE)
                for _ in range(100):
                    if not chat.connected:
                        dropped += 1
                        break
                    await asyncio.sleep(0.05)
        return dropped

    return sum(await asyncio.gather(*(one(index) for index in range(SESSIONS))))


async def _still_chatting(base_url: str) -> tuple[str, str]:
    async with ChainlitChat(base_url, timeout=30) as chat:
        await chat.welcome()
        just_over = (await chat.send("[after] " + "y" * 4001)).final
        after = (await chat.send("[after] where is my order?")).final
    return just_over, after
