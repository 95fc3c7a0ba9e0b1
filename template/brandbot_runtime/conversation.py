"""One customer's conversation: its history, its pending retry and the limits that protect everyone else.

A chat session is the unit a hostile or careless customer can abuse: a hundred messages a second
would be a hundred concurrent middleware requests, and a few huge messages repeated in every
request's history would slow every other customer. So each conversation answers one message at a
time (a few more may wait their turn; beyond that the customer is asked to wait), refuses
messages over a length limit, and counts messages in a sliding one-minute window. The history it
keeps is bounded both in exchanges and in bytes.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from .history import History

#: Messages that may wait while one is being answered; a customer sending more is asked to wait.
MAX_WAITING = 2
_WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message is not answered: the brand text to show and the values for its placeholders.

    A quiet refusal shows nothing: the customer was already told to wait within the last minute.
    """

    text_id: str
    values: dict[str, str]
    quiet: bool = False


class Conversation:
    """The per-session state the chat flow needs, created on the session's first use."""

    def __init__(self, *, max_exchanges: int, max_history_bytes: int, max_message_chars: int,
                 messages_per_minute: int) -> None:
        self.history = History(max_exchanges, max_history_bytes)
        self._max_message_chars = max_message_chars
        self._messages_per_minute = messages_per_minute
        self._recent: deque[float] = deque()  # when each message of the last minute came, refused ones too
        self._told_to_wait_at: float | None = None
        self._turn = asyncio.Lock()
        self._waiting = 0
        self._retry: tuple[str, str] | None = None  # (retry id, message) of the last failed exchange
        self._now = time.monotonic  # replaceable in tests

    def admit(self, message: str) -> Refusal | None:
        """Whether `message` may be answered now; every message counts against the rate limit.

        Counting refused messages too means a flood keeps its sender waiting; and once told to
        wait, the sender is not told again within the minute, so a flood costs no reply per message.
        """
        now = self._now()
        while self._recent and now - self._recent[0] >= _WINDOW_SECONDS:
            self._recent.popleft()
        self._recent.append(now)
        if len(self._recent) > self._messages_per_minute:
            wait = max(1, math.ceil(_WINDOW_SECONDS - (now - self._recent[-self._messages_per_minute])))
            quiet = self._told_to_wait_at is not None and now - self._told_to_wait_at < _WINDOW_SECONDS
            if not quiet:
                self._told_to_wait_at = now
            return Refusal("error_too_many_messages", {"seconds": str(wait)}, quiet=quiet)
        if len(message) > self._max_message_chars:
            return Refusal("error_message_too_long", {"max": str(self._max_message_chars)})
        if self._turn.locked() and self._waiting >= MAX_WAITING:
            return Refusal("error_busy", {})
        return None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the conversation's one exchange in flight; later messages wait here in order."""
        self._waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._turn.release()

    def remember_failure(self, message: str) -> str:
        """Keep the failed message for "Try again"; returns the id the button carries."""
        retry_id = uuid.uuid4().hex
        self._retry = (retry_id, message)
        return retry_id

    def take_retry(self, retry_id: object) -> str | None:
        """The failed message a "Try again" click names, once; None if stale or unknown."""
        if self._retry is None or retry_id != self._retry[0]:
            return None
        message, self._retry = self._retry[1], None
        return message

    def forget_failure(self) -> None:
        """An exchange succeeded: an older "Try again" button no longer applies."""
        self._retry = None
