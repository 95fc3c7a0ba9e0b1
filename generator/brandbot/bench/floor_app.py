"""The framework floor: a status, the same latency, the reply in place. No HTTP, no logic.

`servers.py` copies this file as `app.py` into a scratch folder and runs it with `chainlit run`;
nothing imports it (it reads its settings from the environment at import).
"""

import asyncio
import os

import chainlit as cl

LATENCY = float(os.environ["FLOOR_LATENCY_MS"]) / 1000
REPLY = os.environ["FLOOR_REPLY"]  # the same words the middleware answers, so both send as much


@cl.on_chat_start
async def start() -> None:
    await cl.Message(content="Welcome").send()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    status = cl.Message(content="Thinking...")
    await status.send()
    await asyncio.sleep(LATENCY)
    status.content = message.content.split(" ", 1)[0] + " " + REPLY
    await status.update()
