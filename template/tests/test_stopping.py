"""A stopping bot lets the answers under way finish before it closes its middleware connections.

Chainlit closes every socket as soon as the server is told to stop; the tasks answering go on.
Before, app.py's shutdown closed the middleware client under them and each customer's answer was
stored as a connection error; now it is stored, and found when the page reconnects elsewhere.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

import app
from brandbot_runtime import chat
from brandbot_runtime.display import as_sent

from .chat_harness import ChatHarness
from .middleware_double import MiddlewareDouble, Respond, json_reply


async def test_the_answer_under_way_finishes_before_the_client_closes(
        configure, middleware: MiddlewareDouble, session: ChatHarness, caplog: pytest.LogCaptureFixture) -> None:
    configure(middleware.url)
    await session.start()

    def slow(request):  # type: ignore[no-untyped-def]
        reply: Respond = json_reply({"response": f"late answer to {request.json['message']}"})
        reply.delay = 0.4
        return reply

    middleware.behave = slow
    answering = asyncio.create_task(session.say("are you there?"))
    await asyncio.sleep(0.1)  # the request is at the middleware
    with caplog.at_level(logging.INFO, logger="brandbot"):
        await app.on_app_shutdown()
    shown = await answering
    assert shown.final == as_sent("late answer to are you there?")
    assert any("1 of 1 answers under way finished" in record.getMessage() for record in caplog.records)


async def test_with_nothing_under_way_stopping_waits_for_nothing(configure, middleware: MiddlewareDouble) -> None:
    configure(middleware.url)
    assert await chat.finish_answers_in_flight() == 0
