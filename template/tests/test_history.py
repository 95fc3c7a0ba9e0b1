"""The history sent to the middleware: earlier exchanges, then the current message; bounded."""

from __future__ import annotations

from brandbot_runtime.history import History


def test_first_message_is_sent_alone() -> None:
    assert History(20).request_history("Hi") == [{"role": "user", "content": "Hi"}]


def test_completed_exchanges_come_before_the_current_message() -> None:
    history = History(20)
    history.record("Hi", "Hello!")
    assert history.request_history("Where is my order?") == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Where is my order?"},
    ]


def test_history_keeps_only_the_latest_exchanges() -> None:
    history = History(2)
    for number in range(500):
        history.record(f"q{number}", f"a{number}")
    sent = history.request_history("now")
    assert len(history) == 2
    assert [turn["content"] for turn in sent] == ["q498", "a498", "q499", "a499", "now"]


def test_zero_turns_sends_only_the_current_message() -> None:
    history = History(0)
    history.record("q", "a")
    assert history.request_history("now") == [{"role": "user", "content": "now"}]
