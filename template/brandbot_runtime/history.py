"""One chat session's conversation, as the middleware receives it."""

from __future__ import annotations

from collections import deque
from typing import TypedDict


class Turn(TypedDict):
    """One message of the conversation in the middleware contract's shape."""

    role: str
    content: str


class History:
    """The last `max_exchanges` completed exchanges (a user message and the answer to it).

    Only completed exchanges are kept, so a failed request leaves no orphan user turn, and the
    bound keeps the request payload from growing with the length of the chat.
    """

    __slots__ = ("_exchanges",)

    def __init__(self, max_exchanges: int) -> None:
        self._exchanges: deque[tuple[str, str]] = deque(maxlen=max_exchanges)

    def request_history(self, message: str) -> list[Turn]:
        """The `history` to send with `message`: earlier exchanges, then `message` itself last.

        Ending with the current message keeps wire compatibility with existing middlewares.
        """
        turns: list[Turn] = []
        for question, answer in self._exchanges:
            turns.append({"role": "user", "content": question})
            turns.append({"role": "assistant", "content": answer})
        turns.append({"role": "user", "content": message})
        return turns

    def record(self, message: str, answer: str) -> None:
        """Keep a completed exchange, dropping the oldest beyond the bound."""
        self._exchanges.append((message, answer))

    def __len__(self) -> int:
        """The number of completed exchanges kept."""
        return len(self._exchanges)
