"""End to end: the rendered app under `chainlit run`, a real middleware on loopback, and Chainlit's
real socket.io protocol, through welcome, general and specialist answers, every failure and recovery."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from brandbot.chat_client import ChainlitChat, transcript

from .helpers import EXAMPLES, HOSTILE, BotRun, LiveBot, example_id, rendered_files

BRANDS = [path for path in EXAMPLES if path.stem == "retail"] + [HOSTILE]
BOT_RUN = BotRun(app_env={"REQUEST_TIMEOUT_SECONDS": "1", "LOG_LEVEL": "DEBUG", "TRANSITION_DELAY_SECONDS": "0.3"})
pytestmark = pytest.mark.parametrize("bot", BRANDS, indirect=True, ids=example_id, scope="module")


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def specialist_text(bot: LiveBot, category: str) -> str:
    label = bot.brand["categories"][category]["label"]
    return bot.display.plain(bot.brand["texts"]["specialist_transition"].replace("{label}", label))


def test_the_welcome_message_arrives_verbatim(bot: LiveBot) -> None:
    async def scenario() -> list[str]:
        async with ChainlitChat(bot.app.base_url) as chat:
            return await chat.welcome()

    assert run(scenario()) == [bot.display.as_sent(bot.brand["welcome_message"])]


def test_general_and_specialist_answers(bot: LiveBot) -> None:
    async def scenario() -> tuple:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            general = await chat.send("Hello there")
            specialist = await chat.send("Where is my order? It has not arrived.")
            return general, specialist

    general, specialist = run(scenario())
    thinking = bot.display.plain(bot.brand["texts"]["thinking"])
    assert general.messages == [[thinking, general.final]]
    assert "reference middleware" in general.final
    assert specialist.shown[:2] == [thinking, specialist_text(bot, "OrderTracking")]
    assert "order" in specialist.final.lower()
    assert specialist.seconds >= 0.3


def test_each_failure_is_explained_and_the_chat_recovers(bot: LiveBot) -> None:
    texts = {key: bot.display.plain(value) for key, value in bot.brand["texts"].items()}

    async def scenario() -> list:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            seen = []
            for failure in ["simulate error", "simulate timeout", "simulate bad answer"]:
                seen.append((await chat.send(failure)).final)
                seen.append((await chat.send("hello again")).final)
            return seen

    seen = run(scenario())
    assert seen[0::2] == [texts["error_service_unavailable"], texts["error_timeout"],
                          texts["error_unexpected_answer"]]
    assert all("reference middleware" in answer for answer in seen[1::2])


def test_a_stopped_middleware_is_a_connection_error_then_the_chat_recovers(bot: LiveBot) -> None:
    async def scenario() -> tuple:
        async with ChainlitChat(bot.app.base_url) as chat:
            await chat.welcome()
            before = await chat.send("hello")
            bot.middleware.stop()
            refused = await chat.send("anyone there?")
            await asyncio.to_thread(bot.restart_middleware)
            after = await chat.send("hello once more")
            return before, refused, after, chat.events

    before, refused, after, events = run(scenario())
    assert refused.final == bot.display.plain(bot.brand["texts"]["error_connection"])
    assert after.final == before.final
    assert bot.secret not in transcript(events)


def test_the_secret_is_in_no_log_file_or_rendered_file(bot: LiveBot) -> None:
    assert "middleware answered HTTP 503" in bot.app.log()
    assert "HTTP Request: POST" in bot.app.log()  # LOG_LEVEL=DEBUG: httpx logged every request
    assert "brandbot_exchanges_total" not in httpx.get(f"{bot.app.base_url}/metrics").text  # METRICS_PORT only
    for log in bot.log_dir.rglob("*.log"):
        assert bot.secret not in log.read_text(encoding="utf-8", errors="replace"), log.name
    for name, text in rendered_files(bot.project).items():
        assert bot.secret not in text, name
