"""The stream parser reads SSE and NDJSON answers the same way however the network cuts them."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brandbot_runtime.stream_parser import (
    CategoryEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    StreamEvent,
    StreamFormatError,
    StreamParser,
    stream_format,
)

from .conftest import PROJECT_DIR

SCHEMA = json.loads((PROJECT_DIR / "contract" / "middleware.schema.json").read_text(encoding="utf-8"))
STREAM_EVENT = jsonschema.Draft202012Validator({**SCHEMA, "$ref": "#/$defs/StreamEvent"})
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(fmt: str, chunks: list[bytes]) -> list[StreamEvent]:
    parser = StreamParser(fmt)
    events: list[StreamEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


def outcome(fmt: str, chunks: list[bytes]) -> list[StreamEvent] | str:
    """The events, or the error's message."""
    try:
        return parse(fmt, chunks)
    except StreamFormatError as error:
        return f"StreamFormatError: {error}"


def cut(body: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(cuts), len(body)]
    return [body[start:end] for start, end in itertools.pairwise(edges)]


def bytewise(body: bytes) -> list[bytes]:
    return [body[i:i + 1] for i in range(len(body))]


def ndjson(*objects: Any) -> bytes:
    return b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)


def sse(*objects: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(obj).encode() + b"\n\n" for obj in objects)


ENCODE = {"ndjson": ndjson, "sse": sse}


@pytest.mark.parametrize(("content_type", "expected"), [
    ("text/event-stream", "sse"),
    ("Text/Event-Stream; charset=utf-8", "sse"),
    ("application/x-ndjson", "ndjson"),
    (" APPLICATION/X-NDJSON ;charset=UTF-8", "ndjson"),
    ("application/json", None),
    ("application/json; charset=utf-8", None),
    ("text/plain", None),
    ("", None),
    (None, None),
])
def test_stream_format_reads_the_media_type(content_type: str | None, expected: str | None) -> None:
    assert stream_format(content_type) == expected


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stream format"):
        StreamParser("json")


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_a_whole_answer(fmt: str) -> None:
    body = ENCODE[fmt]({"category": "Orders"}, {"delta": "Your order "}, {"delta": "ships today 🚀"},
                       {"done": True})
    parser = StreamParser(fmt)
    assert parser.feed(body) == [CategoryEvent("Orders"), DeltaEvent("Your order "), DeltaEvent("ships today 🚀"),
                                 DoneEvent(None)]
    assert parser.done
    assert parser.close() == []


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_events_come_as_their_chunks_complete(fmt: str) -> None:
    body = ENCODE[fmt]({"delta": "a"}, {"done": True, "category": None})
    middle = body.index(b"}") + 1
    parser = StreamParser(fmt)
    assert parser.feed(body[:middle]) == []
    assert not parser.done
    assert parser.feed(body[middle:]) == [DeltaEvent("a"), DoneEvent(None)]
    assert parser.done


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_the_category_may_come_with_done_instead(fmt: str) -> None:
    assert parse(fmt, [ENCODE[fmt]({"delta": "a"}, {"done": True, "category": "Returns"})]) == [
        DeltaEvent("a"), DoneEvent("Returns")]


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
@pytest.mark.parametrize("done", [{"done": True}, {"done": True, "category": None}, {"done": True, "category": "X"}])
def test_done_may_repeat_the_category_sent_first(fmt: str, done: dict[str, Any]) -> None:
    assert parse(fmt, [ENCODE[fmt]({"category": "X"}, done)]) == [CategoryEvent("X"), DoneEvent(done.get("category"))]


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_unknown_keys_are_ignored(fmt: str) -> None:
    body = ENCODE[fmt]({"category": None, "model": "x"}, {"delta": "a", "index": 0, "meta": {"t": [1]}},
                       {"done": True, "usage": {"tokens": 3}})
    assert parse(fmt, [body]) == [CategoryEvent(None), DeltaEvent("a"), DoneEvent(None)]


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_an_error_ends_the_stream_even_after_deltas(fmt: str) -> None:
    parser = StreamParser(fmt)
    assert parser.feed(ENCODE[fmt]({"delta": "a"}, {"error": "upstream timed out", "code": 7})) == [
        DeltaEvent("a"), ErrorEvent("upstream timed out")]
    assert parser.done


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_everything_after_the_end_is_ignored(fmt: str) -> None:
    trailer = ENCODE[fmt]({"delta": "late"}, {"category": "late"}, {"nonsense": 1}) + b"not json\n\n\xff\xfe"
    for end in ({"done": True}, {"error": "failed"}):
        parser = StreamParser(fmt)
        events = parser.feed(ENCODE[fmt]({"delta": "a"}, end) + trailer)
        assert events == [DeltaEvent("a"), DoneEvent(None) if "done" in end else ErrorEvent("failed")]
        assert parser.feed(trailer) == []
        assert parser.feed(b"\xe2") == []
        assert parser.close() == []


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_a_stream_may_end_without_done(fmt: str) -> None:
    """Whether that is acceptable is the caller's decision: `done` tells it."""
    parser = StreamParser(fmt)
    assert parser.feed(ENCODE[fmt]({"delta": "a"})) == [DeltaEvent("a")]
    assert parser.close() == []
    assert not parser.done


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_lone_surrogates_are_replaced(fmt: str) -> None:
    body = ENCODE[fmt]({"category": "\ud800"}, {"delta": "half an emoji \ud83d"}, {"error": "\udfff!"})
    assert parse(fmt, [body]) == [CategoryEvent("\ufffd"), DeltaEvent("half an emoji \ufffd"), ErrorEvent("\ufffd!")]


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_a_bom_at_the_start_is_dropped_even_when_cut(fmt: str) -> None:
    body = b"\xef\xbb\xbf" + ENCODE[fmt]({"delta": "a"}, {"done": True})
    for chunks in ([body], bytewise(body)):
        assert parse(fmt, chunks) == [DeltaEvent("a"), DoneEvent(None)]


def test_a_bom_later_is_not_dropped() -> None:
    with pytest.raises(StreamFormatError, match="line 2: not JSON"):
        parse("ndjson", [b'{"delta": "a"}\n\xef\xbb\xbf{"done": true}\n'])


def test_ndjson_blank_lines_and_crlf() -> None:
    body = b'\n  \r\n{"delta": "a"}\r\n\t\n\r\n{"delta": "b\\r\\n"}\n{"done": true}'
    assert parse("ndjson", [body]) == [DeltaEvent("a"), DeltaEvent("b\r\n"), DoneEvent(None)]


def test_ndjson_a_last_line_without_newline_counts_at_close() -> None:
    parser = StreamParser("ndjson")
    assert parser.feed(b'{"delta": "a"}\n{"done": true}') == [DeltaEvent("a")]
    assert parser.close() == [DoneEvent(None)]


def test_sse_fields_comments_and_data_lines() -> None:
    body = (
        b": keep-alive\n"
        b"retry: 3000\n"
        b"event: ping\n\n"  # an event with no data is no event
        b"id: 1\nevent: message\nunknown: x\ndata: {\"delta\":\ndata:\"a\"}\n\n"  # data lines joined with \n
        b"data\ndata: {\"delta\": \"b\"}\n\n"  # a field with no colon has an empty value
        b"data:    {\"delta\": \"c\"}   \n\n"  # only one space is the separator's
        b"data:\n\n"  # empty data: nothing to read, like a blank NDJSON line
        b"data: {\"done\": true}\n\n"
    )
    assert parse("sse", [body]) == [DeltaEvent("a"), DeltaEvent("b"), DeltaEvent("c"), DoneEvent(None)]


def test_sse_data_lines_are_joined_with_a_newline() -> None:
    """So a line break inside a JSON token breaks it, as it would in one JSON text."""
    assert parse("sse", [b'data: {"done":\ndata: true}\n\n']) == [DoneEvent(None)]
    with pytest.raises(StreamFormatError, match=r"^event 1: not JSON$"):
        parse("sse", [b'data: {"done": tr\ndata: ue}\n\n'])


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_sse_every_line_ending(ending: bytes) -> None:
    body = ending.join([b"data: {\"delta\":", b"data: \"a\"}", b"", b": c", b"data: {\"done\": true}", b"", b""])
    for chunks in ([body], bytewise(body)):
        assert parse("sse", chunks) == [DeltaEvent("a"), DoneEvent(None)]


def test_sse_a_crlf_cut_between_cr_and_lf_is_one_line_ending() -> None:
    """Counted as two, the LF would be a blank line and dispatch half an object."""
    chunks = [b'data: {"delta":\r', b'\ndata: "a"}\r', b"\n\r", b"\n", b'data: {"done": true}\r', b"\n\r\n"]
    assert parse("sse", chunks) == [DeltaEvent("a"), DoneEvent(None)]


def test_sse_cr_then_cr_is_two_line_endings() -> None:
    assert parse("sse", [b'data: {"delta": "a"}\r', b"\r", b'data: {"done": true}\r\r']) == [
        DeltaEvent("a"), DoneEvent(None)]


@pytest.mark.parametrize("body", [
    b'data: {"delta": "a"}\n\ndata: {"done": true}\n',  # no blank line after the last event
    b'data: {"delta": "a"}\n\ndata: {"done": true}',  # nor a line ending
    b'data: {"delta": "a"}\n\ndata: {"done": true}\r',
])
def test_sse_a_last_event_without_its_blank_line_counts_at_close(body: bytes) -> None:
    parser = StreamParser("sse")
    assert parser.feed(body) == [DeltaEvent("a")]
    assert parser.close() == [DoneEvent(None)]


MARK = "zebra"  # in every bad body below: no error message may repeat it

BAD_STREAMS: list[tuple[list[str], str]] = [
    ([MARK], "1: not JSON"),
    (['{"delta": "a"}', '{"delta": "zebra"'], "2: not JSON"),
    (["[" * 100_000 + MARK], "1: JSON nested too deeply"),
    (['["zebra"]'], "1: a JSON array, not an object"),
    (['"zebra"'], "1: a JSON string, not an object"),
    (["null"], "1: JSON null, not an object"),
    (["12"], "1: a JSON number, not an object"),
    (['{"error": ["zebra"]}'], "1: 'error' is not a string"),
    (['{"error": null}'], "1: 'error' is not a string"),
    (['{"delta": 5, "zebra": 1}'], "1: 'delta' is not a string"),
    (['{"delta": null}'], "1: 'delta' is not a string"),
    (['{"done": false, "zebra": 1}'], "1: a 'done' that is not true"),
    (['{"done": 1}'], "1: a 'done' that is not true"),
    (['{"done": "true"}'], "1: a 'done' that is not true"),
    (['{"done": null}'], "1: a 'done' that is not true"),
    (['{"done": true, "category": ["zebra"]}'], "1: 'category' is not a string"),
    (['{"category": {"zebra": 1}}'], "1: 'category' is not a string"),
    (['{"delta": "zebra"}', '{"category": "x"}'], "2: a category after the answer began"),
    (['{"delta": ""}', '{"category": null}'], "2: a category after the answer began"),
    (['{"category": "zebra"}', '{"category": "zebra"}'], "2: a second category"),
    (['{"category": null}', '{"category": null}'], "2: a second category"),
    (['{"category": "zebra"}', '{"delta": "a"}', '{"done": true, "category": "other"}'],
     "3: a category with done that differs from the one sent first"),
    (['{"category": null}', '{"done": true, "category": "zebra"}'],
     "2: a category with done that differs from the one sent first"),
    (['{"zebra": "x"}'], "1: an object with no delta, done, error or category"),
    (["{}"], "1: an object with no delta, done, error or category"),
    (['{"delta": "zebra", "done": true}'], "1: an object with a delta and a done or category"),
    (['{"delta": "zebra", "category": null}'], "1: an object with a delta and a done or category"),
]


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
@pytest.mark.parametrize(("lines", "problem"), BAD_STREAMS, ids=[problem for _, problem in BAD_STREAMS])
def test_each_broken_rule_is_a_stream_format_error(fmt: str, lines: list[str], problem: str) -> None:
    separator = "\n" if fmt == "ndjson" else "\n\n"
    body = "".join(("" if fmt == "ndjson" else "data: ") + line + separator for line in lines).encode()
    with pytest.raises(StreamFormatError) as raised:
        parse(fmt, [body])
    message = str(raised.value)
    assert message.startswith(("line " if fmt == "ndjson" else "event ") + problem)
    assert MARK not in message


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
@pytest.mark.parametrize("bad", [b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])
def test_bytes_that_are_not_utf8_before_the_end(fmt: str, bad: bytes) -> None:
    body = ENCODE[fmt]({"delta": "zebra"}) + bad + ENCODE[fmt]({"delta": "b"}, {"done": True})
    for chunks in ([body], bytewise(body)):
        with pytest.raises(StreamFormatError, match=r"^the stream is not UTF-8$"):
            parse(fmt, chunks)


@pytest.mark.parametrize("fmt", ["ndjson", "sse"])
def test_a_body_that_ends_inside_a_character(fmt: str) -> None:
    parser = StreamParser(fmt)
    assert parser.feed(ENCODE[fmt]({"delta": "a"}) + "🚀".encode()[:3]) == [DeltaEvent("a")]
    with pytest.raises(StreamFormatError, match=r"^the stream is not UTF-8 \(it ends inside a character\)$"):
        parser.close()


# Random answers: what the middleware may send, with the events the parser must give.

Answer = tuple[list[dict[str, Any]], list[StreamEvent], list[str]]  # objects, their events, lines after the end
Body = tuple[str, bytes, list[StreamEvent]]  # format, bytes, the events they mean

SPECIAL = st.sampled_from(["\r", "\n", '"', "\\", "🚀", "é", "\u2028", "\ufeff", "\x00"])
TEXT = st.text(st.one_of(st.characters(codec="utf-8"), SPECIAL), max_size=12)  # lone surrogates: tested above
EXTRA = st.dictionaries(st.sampled_from(["id", "meta", "usage"]),
                        st.one_of(st.none(), st.integers(), TEXT, st.lists(st.integers(), max_size=3)), max_size=2)
TRAILER = st.lists(st.sampled_from(['{"delta": "late"}', '{"category": "late"}', "not json", "{}", '{"done": 1}']),
                   max_size=2)


@st.composite
def answers(draw: st.DrawFn, ends: tuple[str, ...] = ("done", "error", "none")) -> Answer:
    """The objects of a valid stream, the events they mean, and lines after its end (to be ignored)."""
    objects: list[dict[str, Any]] = []
    events: list[StreamEvent] = []
    first = draw(st.sampled_from(["absent", "null", "text"]))
    category = draw(TEXT) if first == "text" else None
    if first != "absent":
        objects.append({"category": category})
        events.append(CategoryEvent(category))
    for text in draw(st.lists(TEXT, max_size=5)):
        objects.append({"delta": text})
        events.append(DeltaEvent(text))
    end = draw(st.sampled_from(ends))
    if end == "done":
        done_category = draw(st.none() | TEXT) if first == "absent" else draw(st.sampled_from([None, category]))
        done: dict[str, Any] = {"done": True}
        if done_category is not None or draw(st.booleans()):
            done["category"] = done_category
        objects.append(done)
        events.append(DoneEvent(done_category))
    elif end == "error":
        message = draw(TEXT)
        objects.append({"error": message})
        events.append(ErrorEvent(message))
    for obj in objects:
        obj.update(draw(EXTRA))
    return objects, events, draw(TRAILER) if end != "none" else []


def join_lines(draw: st.DrawFn, lines: list[str], endings: list[str], last_may_lack_ending: bool) -> str:
    """Each line with a random ending; a blank line after a CR ends in CR, or its LF would join that CR."""
    out = ""
    for index, line in enumerate(lines):
        choices = endings
        if not line and out.endswith("\r"):
            choices = [ending for ending in endings if not ending.startswith("\n")]
        if last_may_lack_ending and index == len(lines) - 1:
            choices = [*choices, ""]
        out += line + draw(st.sampled_from(choices))
    return out


def bom(draw: st.DrawFn) -> bytes:
    return b"\xef\xbb\xbf" if draw(st.booleans()) else b""


@st.composite
def ndjson_bodies(draw: st.DrawFn, ends: tuple[str, ...] = ("done", "error", "none")) -> Body:
    objects, events, trailer = draw(answers(ends))
    lines: list[str] = []
    for text in [json.dumps(obj, ensure_ascii=draw(st.booleans())) for obj in objects] + trailer:
        lines += draw(st.lists(st.sampled_from(["", "  ", "\t", "\r"]), max_size=2))
        lines.append(text)
    return "ndjson", bom(draw) + join_lines(draw, lines, ["\n", "\r\n"], True).encode(), events


SSE_NOISE = st.sampled_from([":", ": keep-alive", ":{not json", "event: delta", "event", "id: 7", "id",
                             "retry: 1000", "x-unknown: y"])


@st.composite
def sse_bodies(draw: st.DrawFn, ends: tuple[str, ...] = ("done", "error", "none")) -> Body:
    objects, events, trailer = draw(answers(ends))
    texts = [json.dumps(obj, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1, 2])))
             for obj in objects] + trailer
    lines: list[str] = []
    for text in texts:
        if draw(st.booleans()):  # an event without data, or comments on their own
            lines += [*draw(st.lists(SSE_NOISE, min_size=1, max_size=2)), ""]
        lines += draw(st.lists(SSE_NOISE | st.just("data"), max_size=2))  # "data" alone: an empty first data line
        lines += [("data: " if draw(st.booleans()) else "data:") + piece for piece in text.split("\n")]
        lines += draw(st.lists(SSE_NOISE, max_size=1))
        lines.append("")
    if lines and draw(st.booleans()):
        lines.pop()  # the last event without its blank line
    return "sse", bom(draw) + join_lines(draw, lines, ["\n", "\r\n", "\r"], True).encode(), events


def bodies(ends: tuple[str, ...] = ("done", "error", "none")) -> st.SearchStrategy[Body]:
    return ndjson_bodies(ends) | sse_bodies(ends)


@FAST
@given(bodies(), st.data())
def test_any_cut_of_a_valid_stream_gives_its_events(body: Body, data: st.DataObject) -> None:
    fmt, raw, expected = body
    assert parse(fmt, [raw]) == expected
    assert parse(fmt, bytewise(raw)) == expected  # every cut: in characters, between CR and LF
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    assert parse(fmt, cut(raw, cuts)) == expected


INVALID_UTF8 = st.sampled_from([
    b"\xff", b"\xfe", b"\x80", b"\xbf",  # never in UTF-8; a continuation byte alone
    b"\xc0\xaf", b"\xc1\x81",  # overlong
    b"\xed\xa0\x80", b"\xed\xbf\xbf",  # surrogates
    b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",  # above U+10FFFF
    b"\xe2\x82", b"\xf0\x9f\x9a",  # cut short
])


@FAST
@given(bodies(ends=("none",)), INVALID_UTF8, st.data())
def test_bytes_that_are_not_utf8_are_refused_however_cut(body: Body, bad: bytes, data: st.DataObject) -> None:
    fmt, raw, _ = body
    at = data.draw(st.integers(0, len(raw)))
    raw = raw[:at] + bad + raw[at:]
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    for chunks in ([raw], bytewise(raw), cut(raw, cuts)):
        with pytest.raises(StreamFormatError, match=r"^the stream is not UTF-8"):
            parse(fmt, chunks)


@FAST
@given(bodies(ends=("done", "error")), INVALID_UTF8, st.data())
def test_bytes_that_are_not_utf8_anywhere_give_the_same_outcome_however_cut(
        body: Body, bad: bytes, data: st.DataObject) -> None:
    """Before the end they are an error; after it they are ignored, even in the chunk that holds the end."""
    fmt, raw, _ = body
    at = data.draw(st.integers(0, len(raw)))
    raw = raw[:at] + bad + raw[at:]
    whole = outcome(fmt, [raw])
    assert outcome(fmt, bytewise(raw)) == whole
    assert outcome(fmt, cut(raw, data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))) == whole


@FAST
@given(answers())
def test_every_object_of_a_valid_stream_is_a_stream_event(answer: Answer) -> None:
    for obj in answer[0]:
        STREAM_EVENT.validate(obj)


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-1, 2), st.floats(allow_nan=False, allow_infinity=False),
                        TEXT, st.lists(st.integers(), max_size=2), st.dictionaries(TEXT, st.integers(), max_size=2))
OBJECTS = st.dictionaries(st.sampled_from(["error", "delta", "done", "category", "extra"]), JSON_VALUES, max_size=4)


def accepted_alone(obj: object) -> bool:
    try:
        StreamParser("ndjson").feed(json.dumps(obj).encode() + b"\n")
    except StreamFormatError:
        return False
    return True


EXAMPLES = [
    {"category": "Orders"}, {"category": None}, {"category": 1}, {"delta": ""}, {"delta": "a", "extra": 1},
    {"delta": 1}, {"done": True}, {"done": True, "category": "x"}, {"done": True, "category": None},
    {"done": 1}, {"done": 1.0}, {"done": False}, {"error": ""}, {"error": "x", "delta": 5, "done": False},
    {"error": None}, {"delta": "a", "done": True}, {"delta": "a", "category": None}, {}, {"extra": 1},
    [], "delta", None,
]


@pytest.mark.parametrize("obj", EXAMPLES, ids=[json.dumps(obj) for obj in EXAMPLES])
def test_the_parser_accepts_an_object_exactly_when_the_schema_does(obj: object) -> None:
    assert accepted_alone(obj) == STREAM_EVENT.is_valid(obj)


@FAST
@given(OBJECTS)
def test_the_parser_accepts_random_objects_exactly_when_the_schema_does(obj: dict[str, Any]) -> None:
    assert accepted_alone(obj) == STREAM_EVENT.is_valid(obj)


def test_an_empty_chunk_between_a_cr_and_its_lf_does_not_end_the_event() -> None:
    """Hypothesis found it: a CR ending one chunk, then an empty chunk, then the LF: one line ending."""
    body = b'data: {\r\ndata: "category": null\r\ndata: }\r\n\r\n'
    cut = body.index(b"\r") + 1
    parser = StreamParser("sse")
    events = parser.feed(body[:cut]) + parser.feed(b"") + parser.feed(body[cut:]) + parser.close()
    assert events == [CategoryEvent(None)]
