"""The framework floor: a status, the same latency, the reply in place. No HTTP, no logic.

`servers.py` copies this file as `app.py` into a scratch folder and runs it with `chainlit run`;
nothing imports it (it reads its settings from the environment at import).

With FLOOR_DATABASE_URL set (the persistence mode) it stores conversations as the bot does, so
the comparison is fair: the rendered project's own data layer class (FLOOR_PROJECT is put on
sys.path to import it), on a database migrated to the project's schema, without the bot's guard;
and a header sign-in that names a new visitor each time, as the bot does for a new browser
(Chainlit writes threads only for a signed-in user). FLOOR_GUARDED=1 puts the bot's
data_layer_guard around that layer too, to tell the guard's cost from the rest of the bot's.
FLOOR_NO_SLEEPS=1 removes Chainlit's blocking sleeps the way the bot does (the project's
edge.remove_blocking_sleeps), to tell that fix's share of the bot's figures from the rest.
"""

import asyncio
import os
import sys
import uuid

import chainlit as cl

LATENCY = float(os.environ["FLOOR_LATENCY_MS"]) / 1000
REPLY = os.environ["FLOOR_REPLY"]  # the same words the middleware answers, so both send as much
DATABASE_URL = os.environ.get("FLOOR_DATABASE_URL", "")

if "FLOOR_PROJECT" in os.environ:  # the rendered project, to import its runtime's pieces below
    sys.path.insert(0, os.environ["FLOOR_PROJECT"])

if os.environ.get("FLOOR_NO_SLEEPS") == "1":
    from brandbot_runtime.edge import remove_blocking_sleeps

    remove_blocking_sleeps()


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


if DATABASE_URL:
    from brandbot_runtime.persistence import StoredConversations

    @cl.data_layer
    def data_layer() -> object:
        layer = StoredConversations(DATABASE_URL)
        if os.environ.get("FLOOR_GUARDED") == "1":
            from brandbot_runtime.data_layer_guard import guarded

            return guarded(layer, url=DATABASE_URL)
        return layer

    @cl.header_auth_callback
    async def sign_in(headers: dict) -> cl.User:
        return cl.User(identifier=f"visitor:{uuid.uuid4().hex}")
