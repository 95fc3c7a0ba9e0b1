"""Reading a streamed answer from the middleware: bytes in, contract events out, whatever the chunking.

A middleware may answer 200 with `text/event-stream` (SSE: each event's data is one JSON object) or
`application/x-ndjson` (one JSON object a line) instead of one JSON body: an optional
`{"category"}` first, `{"delta": text}` pieces, then `{"done": true}`; `{"error": text}` ends it as
a failure. The network cuts that body wherever it likes: inside a UTF-8 character, between the CR
and the LF of one line ending, inside a JSON object. StreamParser is pure and synchronous (no I/O,
no asyncio), so that every such cut can be tested, and gives the same events for any cut.

Everything after the end (a done or an error) is ignored, even bytes that are not UTF-8, so a
middleware that keeps the connection open or adds a trailer still gives its answer. Anything else
that breaks the contract raises StreamFormatError, whose message says what and where (line or
event number) and never holds the body's content. The caller bounds the body's size.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass

from .text_safety import clean_text


@dataclass(frozen=True, slots=True)
class CategoryEvent:
    """The category, sent before the answer (null: none)."""

    category: str | None


@dataclass(frozen=True, slots=True)
class DeltaEvent:
    """The next piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class DoneEvent:
    """The answer is complete; `category` is the one sent with done, if any."""

    category: str | None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The middleware failed; `message` is its own words, for the operator's log."""

    message: str


StreamEvent = CategoryEvent | DeltaEvent | DoneEvent | ErrorEvent


class StreamFormatError(ValueError):
    """The stream breaks the contract. The message says how, never with the body's content.

    `events` are the good events the same chunk completed before the bad one: the part of the
    answer that arrived is the customer's to keep."""

    events: list[StreamEvent]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.events = []


STREAM_MEDIA_TYPES = {"text/event-stream": "sse", "application/x-ndjson": "ndjson"}

_SSE_LINE_END = re.compile(r"\r\n|\r|\n")
_JSON_KINDS = {list: "a JSON array", str: "a JSON string", int: "a JSON number", float: "a JSON number",
               bool: "JSON true or false", type(None): "JSON null"}


def stream_format(content_type: str | None) -> str | None:
    """"sse" or "ndjson" for a streamed answer's Content-Type; None for JSON or anything else."""
    if not content_type:
        return None
    return STREAM_MEDIA_TYPES.get(content_type.split(";", 1)[0].strip().lower())


class StreamParser:
    """Turns a streamed body, fed in chunks as they arrive, into StreamEvents.

    `feed` returns the events each chunk completes; `close` those the end of the body completes.
    Both raise StreamFormatError; after one, the parser must not be fed again.
    """

    def __init__(self, stream_format: str) -> None:
        if stream_format not in ("sse", "ndjson"):
            raise ValueError(f"unknown stream format {stream_format!r}")
        self._sse = stream_format == "sse"
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._started = False  # the first character has been seen (and a BOM dropped)
        self._skip_lf = False  # SSE: the last text ended with CR, so a LF next ends no line
        self._partial: list[str] = []  # the current line so far
        self._data: list[str] | None = None  # SSE: the data lines of the current event
        self._number = 0  # of the last NDJSON line or SSE event, for error messages
        self._category_sent = False
        self._category: str | None = None
        self._answer_began = False
        self._done = False

    @property
    def done(self) -> bool:
        """A DoneEvent or an ErrorEvent has been produced: the rest of the body is ignored."""
        return self._done

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """The events completed by this chunk of the body."""
        if self._done:
            return []
        try:
            text = self._decoder.decode(chunk)
        except UnicodeDecodeError as error:
            # The events before the bad bytes count: a done there ends the stream cleanly.
            events = self._lines(self._text(bytes(error.object[: error.start]).decode("utf-8")))
            if self._done:
                return events
            raise StreamFormatError("the stream is not UTF-8") from None
        return self._lines(self._text(text))

    def close(self) -> list[StreamEvent]:
        """The events completed by the end of the body: a last line or SSE event may lack its ending."""
        if self._done:
            return []
        try:
            text = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise StreamFormatError("the stream is not UTF-8 (it ends inside a character)") from None
        events = self._lines(self._text(text))
        if self._partial and not self._done:
            line, self._partial = "".join(self._partial), []
            events += self._line(line)
        if self._sse and not self._done:
            events += self._line("")  # dispatch an event that lacks its blank line
        return events

    def _text(self, text: str) -> str:
        """Drop a BOM at the start of the body and a LF that completes a CRLF cut after its CR."""
        if text and not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if text and self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        return text

    def _lines(self, text: str) -> list[StreamEvent]:
        if self._sse:
            parts = _SSE_LINE_END.split(text)
            if text:  # an empty chunk leaves a CR at the end of the last one pending
                self._skip_lf = text.endswith("\r")
        else:
            parts = text.split("\n")
        if len(parts) == 1:
            if text:
                self._partial.append(text)
            return []
        self._partial.append(parts[0])
        lines = ["".join(self._partial), *parts[1:-1]]
        self._partial = [parts[-1]] if parts[-1] else []
        events: list[StreamEvent] = []
        for line in lines:
            if self._done:
                break
            try:
                events += self._line(line)
            except StreamFormatError as error:
                error.events = events
                raise
        return events

    def _line(self, line: str) -> list[StreamEvent]:
        if not self._sse:
            self._number += 1
            if line.endswith("\r"):
                line = line[:-1]
            return [self._event(line)] if line.strip() else []
        if line.startswith(":"):
            return []
        if line:
            field, colon, value = line.partition(":")
            if field == "data":
                if colon and value.startswith(" "):
                    value = value[1:]
                if self._data is None:
                    self._data = []
                self._data.append(value)
            return []  # event, id, retry and unknown fields mean nothing here
        data, self._data = self._data, None
        if data is None:
            return []
        self._number += 1
        joined = "\n".join(data)
        return [self._event(joined)] if joined.strip() else []

    def _fail(self, problem: str) -> StreamFormatError:
        return StreamFormatError(f"{'event' if self._sse else 'line'} {self._number}: {problem}")

    def _event(self, text: str) -> StreamEvent:
        try:
            data = json.loads(text)
        except RecursionError:
            raise self._fail("JSON nested too deeply") from None
        except ValueError:
            raise self._fail("not JSON") from None
        if not isinstance(data, dict):
            raise self._fail(f"{_JSON_KINDS.get(type(data), 'JSON')}, not an object")
        if "error" in data:
            message = self._string(data, "error")
            self._done = True
            return ErrorEvent(message)
        if "delta" in data:
            if "done" in data or "category" in data:
                raise self._fail("an object with a delta and a done or category (send them as separate objects)")
            self._answer_began = True
            return DeltaEvent(self._string(data, "delta"))
        if "done" in data:
            if data["done"] is not True:
                raise self._fail("a 'done' that is not true")
            category = self._category_of(data)
            if category is not None and self._category_sent and category != self._category:
                raise self._fail("a category with done that differs from the one sent first")
            self._done = True
            return DoneEvent(category)
        if "category" in data:
            if self._answer_began:
                raise self._fail("a category after the answer began")
            if self._category_sent:
                raise self._fail("a second category")
            self._category_sent, self._category = True, self._category_of(data)
            return CategoryEvent(self._category)
        raise self._fail("an object with no delta, done, error or category")

    def _string(self, data: dict[str, object], key: str) -> str:
        value = data[key]
        if not isinstance(value, str):
            raise self._fail(f"'{key}' is not a string")
        return clean_text(value)

    def _category_of(self, data: dict[str, object]) -> str | None:
        if data.get("category") is None:
            return None
        return self._string(data, "category")
