"""Runs app.py's real Chainlit handlers in-process and records what the customer would see."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import chainlit as cl
from chainlit.context import ChainlitContext, context_var
from chainlit.emitter import BaseChainlitEmitter
from chainlit.session import HTTPSession
from chainlit.user_session import user_sessions

import app
from brandbot_runtime import chat


@dataclass
class Shown:
    """One bot message and every content it showed, in order (send, then each update)."""

    id: str
    author: str
    type: str
    contents: list[str] = field(default_factory=list)

    @property
    def final(self) -> str:
        """What the message shows in the end."""
        return self.contents[-1]


def customer_message(text: str) -> cl.Message:
    """A customer's message as Chainlit hands it to on_message, kept in its chat context as Chainlit does."""
    message = cl.Message(content=text, author="User", type="user_message")
    cl.chat_context.add(message)
    return message


class RecordingEmitter(BaseChainlitEmitter):
    """Records the steps Chainlit would emit to the browser."""

    def __init__(self, session: HTTPSession) -> None:
        super().__init__(session)
        self.messages: dict[str, Shown] = {}
        self.events: list[tuple[str, str]] = []
        self.actions: list[dict] = []
        self.metadata: dict[str, dict] = {}  # each step's metadata as last sent
        self.steps: dict[str, dict] = {}  # each step as last sent, in the order first sent (what a thread stores)

    async def emit(self, event, data):  # type: ignore[no-untyped-def]
        if event == "action":
            self.actions.append(dict(data))

    async def send_step(self, step_dict):  # type: ignore[no-untyped-def]
        shown = Shown(id=step_dict["id"], author=step_dict.get("name", ""), type=step_dict.get("type", ""))
        shown.contents.append(step_dict["output"])
        self.messages[shown.id] = shown
        self.steps[shown.id] = dict(step_dict)
        self.events.append(("send", step_dict["output"]))

    async def update_step(self, step_dict):  # type: ignore[no-untyped-def]
        if step_dict["id"] not in self.messages:  # a stored message of a resumed conversation
            self.messages[step_dict["id"]] = Shown(id=step_dict["id"], author=step_dict.get("name", ""),
                                                   type=step_dict.get("type", ""))
        self.messages[step_dict["id"]].contents.append(step_dict["output"])
        self.metadata[step_dict["id"]] = step_dict.get("metadata") or {}
        self.steps[step_dict["id"]] = dict(step_dict)
        self.events.append(("update", step_dict["output"]))

    async def stream_start(self, step_dict):  # type: ignore[no-untyped-def]
        self.messages[step_dict["id"]].contents.append(step_dict["output"])
        self.events.append(("stream_start", step_dict["output"]))

    async def send_token(self, id, token, is_sequence=False, is_input=False):  # type: ignore[no-untyped-def]
        shown = self.messages[id]
        shown.contents.append(token if is_sequence else shown.contents[-1] + token)
        self.events.append(("stream_token", token))

    async def delete_step(self, step_dict):  # type: ignore[no-untyped-def]
        self.messages.pop(step_dict["id"], None)
        self.events.append(("delete", step_dict["id"]))


class ChatHarness:
    """A fresh Chainlit session per instance; `start()` and `say()` call app.py's handlers."""

    def __init__(self) -> None:
        self.session = HTTPSession(id=str(uuid.uuid4()), thread_id=str(uuid.uuid4()), client_type="webapp")
        self.emitter: RecordingEmitter | None = None

    def _enter(self) -> RecordingEmitter:
        if self.emitter is None:
            self.emitter = RecordingEmitter(self.session)
        context_var.set(ChainlitContext(self.session, emitter=self.emitter))
        return self.emitter

    async def _new(self, run: Callable[[], Awaitable[None]]) -> list[Shown]:
        """Run a handler in this session; the bot messages it showed."""
        emitter = self._enter()
        before = len(emitter.messages)
        await run()
        return list(emitter.messages.values())[before:]

    async def start(self) -> Shown:
        """Run on_chat_start; returns the message it showed."""
        return (await self._new(app.on_chat_start))[0]

    async def say(self, text: str) -> Shown:
        """Send one customer message through on_message; returns the bot's message."""
        self._enter().steps[str(uuid.uuid4())] = {"type": "user_message", "output": text}
        new = await self._new(lambda: app.on_message(customer_message(text)))
        assert len(new) == 1, f"expected one bot message, got {[m.contents for m in new]}"
        return new[0]

    async def say_together(self, texts: list[str]) -> list[Shown]:
        """Send several customer messages at once, as a fast or hostile client can; the bot's messages."""
        return await self._new(lambda: asyncio.gather(*(
            app.on_message(customer_message(text)) for text in texts)))

    async def say_nothing_back(self, text: str) -> bool:
        """Send one customer message; whether the bot showed nothing for it."""
        return await self._new(lambda: app.on_message(customer_message(text))) == []

    def thread(self) -> dict:
        """This conversation as Chainlit gives a stored thread back to on_chat_resume, steps in order."""
        emitter = self._enter()
        steps = [dict(step, createdAt=f"2026-01-01T00:00:{number:02d}.000000Z")
                 for number, step in enumerate(emitter.steps.values())]
        return {"id": self.session.thread_id, "steps": steps, "metadata": {}}

    async def resume(self, thread: dict) -> None:
        """Reopen a stored conversation in this session, as Chainlit does after a reload."""
        self._enter()
        await app.on_chat_resume(thread)  # type: ignore[arg-type]

    async def end(self) -> None:
        """The customer leaves: run on_chat_end."""
        self._enter()
        app.on_chat_end()

    def conversation(self) -> chat.Conversation:
        """This session's Conversation (history, retry, limits), as the chat flow keeps it."""
        self._enter()
        return chat._conversation(chat.current_settings())  # type: ignore[arg-type]  # configured by the test

    async def click(self, action: dict) -> list[Shown]:
        """Click an action button (as Chainlit's action callback would); returns the new messages."""
        callback = {chat.STARTER_ACTION: app.on_starter, chat.RETRY_ACTION: app.on_retry}[action["name"]]
        return await self._new(lambda: callback(cl.Action(name=action["name"], payload=action["payload"])))

    async def click_starter(self, payload: dict) -> list[Shown]:
        """Click a starter button with this payload."""
        return await self.click({"name": chat.STARTER_ACTION, "payload": payload})

    def close(self) -> None:
        """Forget the session's user data so tests cannot leak history into each other."""
        user_sessions.pop(self.session.id, None)
