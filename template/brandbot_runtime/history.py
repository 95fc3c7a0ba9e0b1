"""One chat session's conversation, as the middleware receives it."""

from __future__ import annotations

from collections import deque
from typing import TypedDict


class Turn(TypedDict):
    """One message of the conversation in the middleware contract's shape."""

    role: str
    content: str


class History:
    """The last completed exchanges (a user message and the answer to it), bounded twice.

    Only completed exchanges are kept, so a failed request leaves no orphan user turn. At most
    `max_exchanges` are kept, and at most `max_bytes` of their UTF-8 text: the history is sent
    with every request, so without a byte budget a few huge messages would make every later
    request huge. The oldest exchanges go first; one exchange larger than the whole budget is
    not kept at all.
    """

    __slots__ = ("_bytes", "_exchanges", "_max_bytes", "_max_exchanges")

    def __init__(self, max_exchanges: int, max_bytes: int = 100_000) -> None:
        self._exchanges: deque[tuple[str, str, int]] = deque()
        self._max_exchanges = max_exchanges
        self._max_bytes = max_bytes
        self._bytes = 0

    def request_history(self, message: str) -> list[Turn]:
        """The `history` to send with `message`: earlier exchanges, then `message` itself last.

        Ending with the current message keeps wire compatibility with existing middlewares.
        """
        turns: list[Turn] = []
        for question, answer, _ in self._exchanges:
            turns.append({"role": "user", "content": question})
            turns.append({"role": "assistant", "content": answer})
        turns.append({"role": "user", "content": message})
        return turns

    def record(self, message: str, answer: str) -> None:
        """Keep a completed exchange, dropping the oldest beyond either bound."""
        size = len(message.encode("utf-8")) + len(answer.encode("utf-8"))
        self._exchanges.append((message, answer, size))
        self._bytes += size
        while self._exchanges and (len(self._exchanges) > self._max_exchanges or self._bytes > self._max_bytes):
            self._bytes -= self._exchanges.popleft()[2]

    @property
    def size_bytes(self) -> int:
        """The UTF-8 size of the kept exchanges' texts."""
        return self._bytes

    def __len__(self) -> int:
        """The number of completed exchanges kept."""
        return len(self._exchanges)
