"""SSEParser against hand-written vectors from the WHATWG event-stream rules and the web-platform-tests
``eventsource/format-*`` cases (re-written here from what each case tests, not copied).

Every vector is fed whole, byte by byte, cut in two at every position, and at seeded random cuts: the events
(type, data, id, retry, offset) and the findings (code, offset) must be the same every time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

import harness.parse.sse
from harness.parse.sse import SSEParser
from harness.parse.sse_base import SSEEvent

Ev = tuple  # (event, data, id, retry)


@pytest.fixture(autouse=True, params=["c-speedup", "pure-python"])
def parser_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on both paths: with the C speedup (when built) and on pure Python."""
    if request.param == "pure-python":
        monkeypatch.setattr(harness.parse.sse, "scan_data_events", None)
    elif harness.parse.sse.scan_data_events is None:
        pytest.skip("the C speedup is not built here (or STREAMCONFORM_PURE_PYTHON is set)")
    return request.param


@dataclass
class Vector:
    name: str
    stream: bytes
    events: list[Ev]
    findings: set[str] = field(default_factory=set)  # codes that must be reported (and no others)
    max_line_bytes: int = 1 << 20


def E(data: str, event: str = "message", id: str = "", retry: int | None = None) -> Ev:  # noqa: N802
    return (event, data, id, retry)


LONG_A = b"a" * 2048
LONG_B = b"b" * 2048

VECTORS = [
    # --- dispatch and data ----------------------------------------------------------------------------------
    Vector("one event", b"data: hello\n\n", [E("hello")]),
    Vector("data lines joined with LF", b"data: a\ndata: b\ndata: c\n\n", [E("a\nb\nc")]),
    Vector("only the final LF is removed", b"data: a\ndata:\ndata:\n\n", [E("a\n\n")]),
    Vector("a field with no colon is a name with an empty value", b"data\ndata: x\n\n", [E("\nx")]),
    Vector("an empty data line still dispatches an (empty) event", b"data\n\n", [E("")]),
    Vector("no data field: nothing dispatched", b"event: a\nid: 3\n\ndata: b\n\n", [E("b", id="3")]),
    Vector("value split on the first colon only", b"data: a:b: c\n\n", [E("a:b: c")]),
    Vector("exactly one leading space stripped", b"data:  two\ndata:   three\n\n", [E(" two\n  three")]),
    Vector("a tab is not a space (WPT leading-space)", b"data:\tx\rdata: \ndata:y\n\n", [E("\tx\n\ny")],
           {"no-space-after-colon", "cr-line-ending"}),
    Vector("NUL in data is kept (WPT null-character)", b"data: a\x00b\n\n", [E("a\x00b")]),
    Vector("extra blank lines dispatch nothing", b"\n\n\ndata: a\n\n\n\ndata: b\n\n", [E("a"), E("b")]),
    # --- field names --------------------------------------------------------------------------------------------
    Vector("field names are case-sensitive", b"Data: x\nDATA: y\ndata: z\n\n", [E("z")], {"unknown-field"}),
    Vector("unknown fields and stray text ignored (WPT field-unknown)",
           b"data: one\n data: lead\ndata\nfoo: bar\njusttext\n:remark\ndata: two\n\n", [E("one\n\ntwo")],
           {"unknown-field", "comment"}),
    Vector("field-parsing mix (WPT field-parsing)",
           b"data:\x00\ndata:  z\rDATA:q\ndata\x00:w\ndata:1\r\x00data:2\nd-ata:3\rdata_4\ndata:5\rdata:\r\n"
           b" data:6\ndata:7\n\n",
           [E("\x00\n z\n1\n5\n\n7")], {"no-space-after-colon", "unknown-field", "cr-line-ending",
                                        "crlf-line-ending"}),
    # --- comments -------------------------------------------------------------------------------------------------
    Vector("comments anywhere, long ones too (WPT comments)",
           b"data: 1\r:\x00\n:\r\ndata: 2\n:" + LONG_A + b"\rdata: 3\n:data: no\r:" + LONG_B + b"\ndata: 4\n\n",
           [E("1\n2\n3\n4")], {"comment", "cr-line-ending", "crlf-line-ending"}),
    Vector("a comment-only stream dispatches nothing", b": keep-alive\n\n: again\n\n", [], {"comment"}),
    # --- line endings -----------------------------------------------------------------------------------------------
    Vector("CR, LF and CRLF mixed (WPT newlines)", b"data: a\r\ndata\ndata: b\r\n\r", [E("a\n\nb")],
           {"crlf-line-ending", "cr-line-ending"}),
    Vector("CR-only stream", b"data: a\r\rdata: b\r\r", [E("a"), E("b")], {"cr-line-ending"}),
    Vector("CRLF stream", b"data: a\r\n\r\ndata: b\r\n\r\n", [E("a"), E("b")], {"crlf-line-ending"}),
    Vector("CR CR LF is a line, then an empty line", b"data: a\r\r\ndata: b\n\n", [E("a"), E("b")],
           {"cr-line-ending", "crlf-line-ending"}),
    # --- event type -------------------------------------------------------------------------------------------------
    Vector("event sets the type", b"event: update\ndata: x\n\n", [E("x", "update")]),
    Vector("an empty event type means message (WPT field-event-empty)", b"event: \ndata: x\n\n", [E("x")]),
    Vector("the type resets after each dispatch", b"event: a\ndata: 1\n\ndata: 2\n\n", [E("1", "a"), E("2")]),
    Vector("the type is cleared when the data buffer is empty", b"event: a\n\ndata: 2\n\n", [E("2")]),
    Vector("the last event field wins", b"event: a\nevent: b\ndata: x\n\n", [E("x", "b")]),
    # --- id ---------------------------------------------------------------------------------------------------------
    Vector("id persists across events", b"id: 1\ndata: a\n\ndata: b\n\n", [E("a", id="1"), E("b", id="1")]),
    Vector("an empty id resets it", b"id: 1\ndata: a\n\nid\ndata: b\n\n", [E("a", id="1"), E("b")]),
    Vector("an id from a block without data still applies", b"id: 9\n\ndata: a\n\n", [E("a", id="9")]),
    Vector("an id containing NUL is ignored", b"id: 7\ndata: a\n\nid: x\x00y\ndata: b\n\n",
           [E("a", id="7"), E("b", id="7")], {"nul-in-id"}),
    Vector("non-ASCII id (WPT field-id)", "id: \u2026\ndata: a\n\n".encode(), [E("a", id="\u2026")]),
    # --- retry ----------------------------------------------------------------------------------------------------
    Vector("retry is ASCII digits", b"retry: 1500\ndata: a\n\ndata: b\n\n", [E("a", retry=1500), E("b")]),
    Vector("bogus retry values ignored (WPT field-retry-bogus, -empty)",
           "retry: 15x\ndata: a\n\nretry:\ndata: b\n\nretry: -1\ndata: c\n\nretry: \u0661\u0662\ndata: d\n\n"
           "retry:  5\ndata: e\n\n".encode(),
           [E("a"), E("b"), E("c"), E("d"), E("e")], {"bad-retry"}),
    # --- BOM and UTF-8 ------------------------------------------------------------------------------------------------
    Vector("one leading BOM stripped (WPT bom)", b"\xef\xbb\xbfdata: a\n\n", [E("a")], {"bom"}),
    Vector("a second BOM is part of the first field name (WPT bom-2)",
           b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n", [E("b")], {"bom", "unknown-field"}),
    Vector("a BOM later in the stream is not stripped", b"data: a\n\n\xef\xbb\xbfdata: b\n\n", [E("a")],
           {"unknown-field"}),
    Vector("always UTF-8 (WPT utf-8)", b"data: ok\xe2\x80\xa6\n\n", [E("ok\u2026")]),
    Vector("invalid UTF-8 replaced", b"data: a\xffb\n\n", [E("a\ufffdb")], {"invalid-utf8"}),
    Vector("a truncated sequence before LF is one U+FFFD", b"data: \xe2\x80\n\n", [E("\ufffd")], {"invalid-utf8"}),
    Vector("an overlong encoding is invalid", b"data: \xc0\xaf\n\n", [E("\ufffd\ufffd")], {"invalid-utf8"}),
    Vector("a genuine U+FFFD is not an error", "data: \ufffd\n\n".encode(), [E("\ufffd")]),
    # --- end of stream ---------------------------------------------------------------------------------------------
    Vector("an unterminated final block is discarded (WPT data-before-final-empty-line)",
           b"retry: 10\ndata: 1\n\nid: z\ndata: 2", [E("1", retry=10)], {"unterminated-final-block"}),
    Vector("a final block without its blank line is discarded", b"data: 1\n\ndata: 2\n", [E("1")],
           {"unterminated-final-block"}),
    Vector("a stream of only a BOM prefix", b"\xef\xbb", [], {"unterminated-final-block", "invalid-utf8"}),
    # --- caps -------------------------------------------------------------------------------------------------------
    Vector("a line over the cap is discarded", b"data: " + b"x" * 20 + b"\ndata: ok\n\n", [E("ok")],
           {"line-too-long"}, max_line_bytes=16),
    Vector("a line over the cap ended by CR", b"data: ok\n\ndata: " + b"x" * 20 + b"\rdata: b\r\r",
           [E("ok"), E("b")], {"line-too-long", "cr-line-ending"}, max_line_bytes=16),
    Vector("an unterminated line over the cap", b"data: ok\n\ndata: " + b"x" * 40, [E("ok")],
           {"line-too-long", "unterminated-final-block"}, max_line_bytes=16),
    Vector("a line at the cap is kept", b"data: " + b"x" * 10 + b"\n\n", [E("x" * 10)], max_line_bytes=16),
]


def feed(stream: bytes, cuts: list[int], max_line_bytes: int = 1 << 20) -> tuple[list[SSEEvent], SSEParser]:
    """Feed ``stream`` cut at ``cuts``; each read's t is its index."""
    parser = SSEParser(max_line_bytes=max_line_bytes)
    events: list[SSEEvent] = []
    bounds = [0, *sorted(cuts), len(stream)]
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        events.extend(parser.feed(stream[a:b], float(i)))
    events.extend(parser.close())
    return events, parser


def summary(events: list[SSEEvent], parser: SSEParser) -> tuple[list[tuple], list[tuple], dict[str, int]]:
    """Everything that must not depend on how the stream was cut."""
    evs = [(e.event, e.data, e.id, e.retry, e.offset) for e in events]
    return evs, sorted((f.code, f.offset) for f in parser.findings), dict(sorted(parser.finding_counts.items()))


def cut_patterns(n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    patterns = [[], list(range(1, n))]  # whole, byte by byte
    patterns += [[i] for i in range(1, n)] if n < 600 else [[i] for i in rng.sample(range(1, n), 200)]
    for _ in range(30):
        patterns.append(rng.sample(range(1, n), min(n - 1, rng.randint(1, 8))) if n > 1 else [])
    return patterns


@pytest.mark.parametrize("v", VECTORS, ids=[v.name for v in VECTORS])
def test_vector(v: Vector) -> None:
    events, parser = feed(v.stream, [], v.max_line_bytes)
    assert [(e.event, e.data, e.id, e.retry) for e in events] == v.events
    assert {f.code for f in parser.findings} == v.findings
    assert all(0 <= f.offset <= len(v.stream) for f in parser.findings)
    whole = summary(events, parser)
    for cuts in cut_patterns(len(v.stream), seed=len(v.name)):
        assert summary(*feed(v.stream, cuts, v.max_line_bytes)) == whole, cuts


def test_offsets_point_at_the_first_field_line_of_each_event() -> None:
    stream = b": hi\n\nid: 1\ndata: a\n\n:c\r\ndata: b\r\n\r\nbogus\ndata: c\n\n"
    events, _ = feed(stream, [])
    assert [e.offset for e in events] == [6, 25, 36]  # comments do not start a block; other lines do
    assert stream[6:].startswith(b"id: 1") and stream[25:].startswith(b"data: b")
    assert stream[36:].startswith(b"bogus")
    bom_first, _ = feed(b"\xef\xbb\xbfdata: a\n\n", [])
    assert bom_first[0].offset == 3  # offsets count the stripped BOM: they index the raw body


def test_findings_carry_offsets_into_the_raw_stream() -> None:
    stream = b"data: ok\n\nretry: x\ndata:no\nid: \x00\nwhat: ever\n\n"
    _, parser = feed(stream, [])
    at = {f.code: f.offset for f in parser.findings}
    assert stream[at["bad-retry"]:].startswith(b"retry: x")
    assert stream[at["no-space-after-colon"]:].startswith(b"data:no")
    assert stream[at["nul-in-id"]:].startswith(b"id: \x00")
    assert stream[at["unknown-field"]:].startswith(b"what")
    _, parser = feed(b"data: a\rdata: b\r\n\r\n", [])
    assert [(f.code, f.offset) for f in parser.findings] == [
        ("cr-line-ending", 7), ("crlf-line-ending", 15), ("crlf-line-ending", 17)]  # listed once, then counted
    assert parser.finding_counts["crlf-line-ending"] == 2
    assert "1 more" in parser.findings[-1].message


def test_each_event_carries_the_time_of_the_read_that_completed_it() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n", 0.5) == []
    first = parser.feed(b"\ndata: b\n\ndata: c", 0.75)
    last = parser.feed(b"\n\n", 1.25)
    assert [(e.data, e.t) for e in first + last] == [("a", 0.75), ("b", 0.75), ("c", 1.25)]
    assert parser.close() == []


def test_a_crlf_split_across_reads_is_one_line_ending() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r", 1.0) == []
    assert parser.feed(b"\n", 2.0) == []  # the LF completes the CRLF: not a blank line, no dispatch
    assert [e.data for e in parser.feed(b"\r", 3.0)] == ["a"]  # a CR is a whole line ending: dispatch now
    assert parser.feed(b"\ndata: b\r\n\r\n", 4.0)[0].data == "b"
    parser.close()
    assert {f.code for f in parser.findings} == {"crlf-line-ending"}


def test_a_multibyte_character_split_across_reads_decodes_whole() -> None:
    stream = "data: caf\u00e9 \u2014 \U0001f600\n\n".encode()
    for cut in range(1, len(stream)):
        events, parser = feed(stream, [cut])
        assert events[0].data == "caf\u00e9 \u2014 \U0001f600" and not parser.findings


def test_retry_sets_the_reconnection_time_for_the_stream() -> None:
    parser = SSEParser()
    parser.feed(b"retry: 250\n\ndata: a\n\nretry: x\ndata: b\n\n")
    assert parser.retry == 250


def test_events_are_frozen_slotted_dataclasses() -> None:
    events, _ = feed(b"event: e\ndata: d\nid: i\nretry: 5\n\ndata: fast\n\n", [])
    for ev in events:
        assert type(ev) is SSEEvent
        assert not hasattr(ev, "__dict__")
        with pytest.raises(AttributeError):
            ev.data = "changed"  # type: ignore[misc]
    assert events[0] == SSEEvent("e", "d", "i", 5, 0.0, 0)
    assert events[1] == SSEEvent("message", "fast", "i", None, 0.0, 33)
    assert hash(events[1]) == hash(SSEEvent("message", "fast", "i", None, 0.0, 33))


def test_feed_after_close_is_a_programming_error() -> None:
    parser = SSEParser()
    parser.close()
    with pytest.raises(RuntimeError):
        parser.feed(b"data: a\n\n")
    assert parser.close() == []  # closing twice is harmless


def test_empty_reads_change_nothing() -> None:
    parser = SSEParser()
    for piece in (b"", b"da", b"", b"ta: x\r", b"", b"\n", b"", b"\n"):
        events = parser.feed(piece, 1.0)
    assert [e.data for e in events] == ["x"]


def test_findings_at_close_carry_the_time_of_the_last_read() -> None:
    parser = SSEParser()
    assert [e.t for e in parser.feed(b"data: a\n\n", 1.0)] == [1.0]  # one whole event: the fastest path
    parser.feed(b"data: b", 2.0)
    parser.feed(b"c", 3.0)
    parser.close()
    assert [(f.code, f.offset, f.t) for f in parser.findings] == [("unterminated-final-block", 9, 3.0)]


def test_bytearray_reads_are_accepted() -> None:
    stream = b"data: a\n\nevent: e\ndata: b\n\n" + b"data: x\n\n" * 2000 + b"data: y\n\n"
    cuts = [7, 20, len(stream) - 9]  # ... and the last read is one whole event: the fastest path
    parser = SSEParser()
    bounds = [0, *cuts, len(stream)]
    events = [e for a, b in zip(bounds, bounds[1:], strict=False) for e in parser.feed(bytearray(stream[a:b]), 0.0)]
    events += parser.close()
    assert summary(events, parser) == summary(*feed(stream, cuts))
    assert events[-1].data == "y" and type(events[-1].data) is str
