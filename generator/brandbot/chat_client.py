"""A customer without a browser: drives a running Chainlit app over its real socket.io protocol.

It connects the way Chainlit's web client does, sends messages as `client_message` events and
follows the steps the server emits. An answer is complete when the server finishes the `run`
step that wraps the handler for that message; every content the bot's message showed on the way
(e.g. "Thinking...", then the specialist status, then the answer) is kept in order; a streamed
answer's `stream_start` and each `stream_token` add the content it grew to, with the time it arrived.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import socketio


class ChatProtocolError(RuntimeError):
    """The app did not behave like a Chainlit app (refused, closed, or never finished a step)."""


@dataclass
class Step:
    """One step as the server emitted it, with every output it showed."""

    id: str
    type: str
    name: str
    parent_id: str | None
    outputs: list[str] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    streamed_at: list[float] = field(default_factory=list)  # perf_counter() of stream_start and each token


@dataclass
class Exchange:
    """The bot's messages for one customer message, and how long the whole answer took."""

    messages: list[list[str]]
    seconds: float
    first_token_at: float | None = None  # perf_counter() when the first streamed part arrived, if any
    tokens: int = 0  # stream_start and stream_token events for this answer

    @property
    def shown(self) -> list[str]:
        """Every content the bot showed, in order, across its messages."""
        return [content for outputs in self.messages for content in outputs]

    @property
    def final(self) -> str:
        """What the last bot message shows in the end."""
        return self.messages[-1][-1] if self.messages and self.messages[-1] else ""


class ChainlitChat:
    """One chat session: `async with ChainlitChat(url) as chat: welcome = await chat.welcome()`."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, cookies: dict[str, str] | None = None,
                 customer_token: str | None = None, thread_id: str = "") -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.session_id = str(uuid.uuid4())
        # The browser's cookies: pass a previous chat's to be the same visitor (see sign_in).
        self.cookies: dict[str, str] = dict(cookies or {})
        self.customer_token = customer_token
        self.thread_id = thread_id  # a stored conversation to resume, as the page at /thread/<id> does
        self.steps: dict[str, Step] = {}
        self.events: list[tuple[str, Any]] = []
        self._sio = socketio.AsyncClient(reconnection=False)
        self.dropped = asyncio.Event()  # set when the socket goes away (the server's side, or close())
        self._sio.on("disconnect", self._on_dropped)
        for event in ("new_message", "update_message"):
            self._sio.on(event, self._step_handler(event))
        self._sio.on("stream_start", self._on_stream_start)
        self._sio.on("stream_token", self._on_stream_token)
        self._sio.on("delete_message", self._on_delete)
        self._sio.on("*", self._on_other)
        self._arrived = asyncio.Condition()

    async def __aenter__(self) -> ChainlitChat:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def sign_in(self) -> dict[str, str]:
        """Sign in as the page does when the app asks for it (`POST /auth/header`); the cookies it set.

        The app's identity comes from the cookies sent (a visitor cookie from an earlier sign-in
        makes the same visitor) and the customer token (the `x-customer-token` header); an app
        without sign-in needs none of this, and cookies that hold a sign-in already are used as
        they are (unless a customer token asks for a new one).
        """
        if "access_token" in self.cookies and not self.customer_token:
            return self.cookies  # signed in already: the page signs in only without Chainlit's cookie
        headers = {"x-customer-token": self.customer_token} if self.customer_token else {}
        async with httpx.AsyncClient(base_url=self.base_url, cookies=self.cookies, timeout=self.timeout) as http:
            configuration = await http.get("/auth/config")
            if configuration.status_code != 200 or not configuration.json().get("headerAuth"):
                return self.cookies
            answer = await http.post("/auth/header", json={}, headers=headers)
            if answer.status_code != 200:
                raise ChatProtocolError(f"sign-in refused: HTTP {answer.status_code}")
            self.cookies.update({cookie.name: cookie.value for cookie in answer.cookies.jar if cookie.value})
        return self.cookies

    @property
    def user(self) -> str | None:
        """Who the app signed this chat in as (the identifier in its sign-in cookie), if anyone."""
        token = self.cookies.get("access_token")
        if not token:
            return None
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims.get("identifier")

    async def connect(self) -> None:
        """Sign in if the app asks for it, open the socket and announce the client, which runs the
        app's on_chat_start (or, with a thread id, its on_chat_resume)."""
        await self.sign_in()
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            await self._sio.connect(
                self.base_url, socketio_path="/ws/socket.io", transports=["websocket"],
                headers={"Cookie": cookie} if cookie else {},
                auth={"sessionId": self.session_id, "clientType": "webapp", "userEnv": "{}",
                      "threadId": self.thread_id, "chatProfile": ""},
                wait_timeout=self.timeout,
            )
        except socketio.exceptions.ConnectionError as error:
            raise ChatProtocolError(f"could not connect to {self.base_url}: {error}") from None
        await self._sio.emit("connection_successful")
        if self.thread_id:  # the page waits for the stored conversation before it lets the customer write
            await self.resumed()

    async def stored_thread(self) -> str:
        """The id of the stored conversation this chat became: Chainlit announces it (`first_interaction`)
        from a task of its own once the thread is written, possibly after the first answer."""
        async def announced() -> str:
            async with self._arrived:
                while not self.thread_id:
                    await self._arrived.wait()
            return self.thread_id

        try:
            return await asyncio.wait_for(announced(), self.timeout)
        except TimeoutError:
            raise ChatProtocolError(f"no stored conversation announced within {self.timeout:g} s") from None

    async def resumed(self) -> dict[str, Any]:
        """The stored conversation the app sent back on connecting with a thread id (ChatProtocolError if
        it refused: Chainlit answers `resume_thread_error` for a thread that is not the user's)."""
        async def arrived() -> dict[str, Any]:
            async with self._arrived:
                while True:
                    for event, data in self.events:
                        if event == "resume_thread":
                            return dict(data)
                        if event == "resume_thread_error":
                            raise ChatProtocolError(f"the app did not resume the conversation: {data}")
                    await self._arrived.wait()

        try:
            return await asyncio.wait_for(arrived(), self.timeout)
        except TimeoutError:
            raise ChatProtocolError(f"no resumed conversation within {self.timeout:g} s") from None

    @property
    def connected(self) -> bool:
        """Whether the socket is still open (the server may close it, e.g. on an oversized frame)."""
        return self._sio.connected

    async def close(self) -> None:
        """Disconnect (the server then ends the session)."""
        if self._sio.connected:
            await self._sio.disconnect()

    async def welcome(self) -> list[str]:
        """The final content of each message on_chat_start showed."""
        run = await self._wait_for(lambda step: step.type == "run" and step.name == "on_chat_start")
        await asyncio.wait_for(run.finished.wait(), self.timeout)
        return [outputs[-1] for outputs in self._children_outputs(run.id)]

    async def send(self, text: str) -> Exchange:
        """Send a customer message and wait for the handler to finish answering it."""
        started = time.perf_counter()
        message_id = await self.post(text)
        return await self.answer_to(message_id, started)

    async def send_at_once(self, texts: list[str]) -> list[Exchange]:
        """Send several messages without waiting in between (as a flooding client does), then wait for each."""
        started = time.perf_counter()
        message_ids = [await self.post(text) for text in texts]
        return [await self.answer_to(message_id, started) for message_id in message_ids]

    async def post(self, text: str) -> str:
        """Emit one customer message as the browser does; returns its id."""
        message_id = str(uuid.uuid4())
        await self._sio.emit("client_message", {
            "message": {"id": message_id, "threadId": self.thread_id, "name": "User", "type": "user_message",
                        "output": text, "createdAt": datetime.now(UTC).isoformat()},
            "fileReferences": [],
        })
        return message_id

    async def answer_to(self, message_id: str, started: float) -> Exchange:
        """Wait until the handler for one posted message has finished; what it showed."""
        run = await self._wait_for(lambda step: step.type == "run" and step.parent_id == message_id)
        try:
            await asyncio.wait_for(run.finished.wait(), self.timeout)
        except TimeoutError:
            raise ChatProtocolError(f"no answer to message {message_id} within {self.timeout:g} s") from None
        streamed = [at for step in self.steps.values()
                    if step.parent_id == run.id and step.type.endswith("_message") for at in step.streamed_at]
        return Exchange(self._children_outputs(run.id), time.perf_counter() - started,
                        first_token_at=min(streamed, default=None), tokens=len(streamed))

    def _children_outputs(self, parent_id: str) -> list[list[str]]:
        return [list(step.outputs) for step in self.steps.values()
                if step.parent_id == parent_id and step.type.endswith("_message")]

    async def _wait_for(self, matches: Any) -> Step:
        async def found() -> Step:
            async with self._arrived:
                while True:
                    for step in self.steps.values():
                        if matches(step):
                            return step
                    await self._arrived.wait()

        try:
            return await asyncio.wait_for(found(), self.timeout)
        except TimeoutError:
            raise ChatProtocolError(f"the app sent no expected step within {self.timeout:g} s") from None

    def _step_handler(self, event: str) -> Any:
        async def handle(data: dict[str, Any]) -> None:
            self.events.append((event, data))
            step = self.steps.get(data["id"])
            if step is None:
                step = Step(data["id"], data.get("type", ""), data.get("name", ""), data.get("parentId"))
                self.steps[step.id] = step
            output = data.get("output")
            if step.type != "run" and isinstance(output, str) and output not in step.outputs[-1:]:
                step.outputs.append(output)
            if step.type == "run" and event == "update_message" and data.get("end"):
                step.finished.set()
            async with self._arrived:
                self._arrived.notify_all()

        return handle

    async def _on_stream_start(self, data: dict[str, Any]) -> None:
        """A message starts streaming: Chainlit sends the whole step, its output the first part."""
        arrived = time.perf_counter()
        await self._step_handler("stream_start")(data)
        step = self.steps.get(data["id"])
        if step is not None:
            step.streamed_at.append(arrived)

    async def _on_stream_token(self, data: dict[str, Any]) -> None:
        """One more part: appended to the message's content, or replacing it (`isSequence`)."""
        arrived = time.perf_counter()
        self.events.append(("stream_token", data))
        step = self.steps.get(data.get("id", ""))
        if step is None or data.get("isInput"):
            return
        token = str(data.get("token", ""))
        step.outputs.append(token if data.get("isSequence") or not step.outputs else step.outputs[-1] + token)
        step.streamed_at.append(arrived)
        async with self._arrived:
            self._arrived.notify_all()

    async def _on_dropped(self, *_reason: Any) -> None:
        self.dropped.set()

    async def _on_delete(self, data: dict[str, Any]) -> None:
        self.events.append(("delete_message", data))
        self.steps.pop(data.get("id", ""), None)

    async def _on_other(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))
        if event == "first_interaction" and isinstance(data, dict) and data.get("thread_id"):
            self.thread_id = str(data["thread_id"])  # the stored conversation this chat became
        async with self._arrived:
            self._arrived.notify_all()


def transcript(events: list[tuple[str, Any]]) -> str:
    """Every event the browser would have received, as JSON lines (for leak checks)."""
    return "\n".join(json.dumps([name, data], default=str, ensure_ascii=False) for name, data in events)
