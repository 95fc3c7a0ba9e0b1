"""The streaming floor: a status, the same latency, then the reply streamed in the same pieces. No HTTP, no logic.

`servers.py` copies this file as `app.py` into a scratch folder and runs it with `chainlit run`
(`brandbot bench --stream`); nothing imports it (it reads its settings from the environment at import).

It answers as the bot answers the streaming reference middleware: "Thinking...", then after
FLOOR_LATENCY_MS the reply (the session's tag, then FLOOR_REPLY: the middleware's words as the bot
sends them) cut by the middleware's own `split_text` into FLOOR_DELTAS pieces, FLOOR_TOKEN_MS apart,
each with Chainlit's `stream_token` (the first replacing the status, as the bot's does), then the
message updated once complete. Each answer's line in FLOOR_TIMES says when its first `stream_token`
was called: `<tag> <time.monotonic()>`, written after the answer so it costs the answer nothing.
"""

import asyncio
import os
import time

import chainlit as cl

from brandbot.reference_middleware import split_text

LATENCY = float(os.environ["FLOOR_LATENCY_MS"]) / 1000
TOKEN_SECONDS = float(os.environ["FLOOR_TOKEN_MS"]) / 1000
DELTAS = int(os.environ["FLOOR_DELTAS"])
REPLY = os.environ["FLOOR_REPLY"]
TIMES = open(os.environ["FLOOR_TIMES"], "a", buffering=1, encoding="utf-8")  # for the process's life


@cl.on_chat_start
async def start() -> None:
    await cl.Message(content="Welcome").send()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    status = cl.Message(content="Thinking...")
    await status.send()
    await asyncio.sleep(LATENCY)
    tag = message.content.split(" ", 1)[0]
    first = 0.0
    for number, piece in enumerate(split_text(tag + " " + REPLY, DELTAS)):
        if number == 0:
            first = time.monotonic()
        elif TOKEN_SECONDS:
            await asyncio.sleep(TOKEN_SECONDS)
        await status.stream_token(piece, is_sequence=number == 0)
    await status.update()
    TIMES.write(f"{tag.strip('[]')} {first!r}\n")
