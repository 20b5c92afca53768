"""NDJSONParser: vectors fed whole, byte by byte and at every cut; hypothesis: no crash, cut-invariance, round trip."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.parse.ndjson import NDJSONParser
from harness.parse.sse_base import FINDINGS_LISTED_PER_CODE, SSEEvent

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed(stream: bytes, cuts: list[int], max_line_bytes: int = 1 << 20) -> tuple[list[SSEEvent], NDJSONParser]:
    parser = NDJSONParser(max_line_bytes=max_line_bytes)
    events: list[SSEEvent] = []
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        events.extend(parser.feed(stream[a:b], float(i)))
    events.extend(parser.close())
    return events, parser


def summary(events: list[SSEEvent], parser: NDJSONParser) -> tuple[list, list, dict]:
    return ([(e.data, e.offset) for e in events], sorted((f.code, f.offset) for f in parser.findings),
            dict(sorted(parser.finding_counts.items())))


VECTORS = [
    ("lines", b'{"a":1}\n{"b":2}\n', ['{"a":1}', '{"b":2}'], set()),
    ("CRLF: the CR is stripped", b'{"a":1}\r\n{"b":2}\r\n', ['{"a":1}', '{"b":2}'], {"crlf-line-ending"}),
    ("CR-only endings run lines together", b'{"a":1}\r{"b":2}\r\n', ['{"a":1}\r{"b":2}'],
     {"cr-line-ending", "crlf-line-ending"}),
    ("blank lines skipped", b'\n{"a":1}\n  \t\n\n{"b":2}\n', ['{"a":1}', '{"b":2}'], {"blank-line"}),
    ("final line without newline still delivered", b'{"a":1}\n{"b":2}', ['{"a":1}', '{"b":2}'],
     {"unterminated-final-block"}),
    ("BOM stripped", b'\xef\xbb\xbf{"a":1}\n', ['{"a":1}'], {"bom"}),
    ("invalid UTF-8 replaced", b'{"a":"\xff"}\n', ['{"a":"\ufffd"}'], {"invalid-utf8"}),
    ("multi-byte text", '{"a":"caf\u00e9 \u2014"}\n'.encode(), ['{"a":"caf\u00e9 \u2014"}'], set()),
    ("not JSON is still a line (decode judges JSON)", b"hello\n", ["hello"], set()),
    ("SSE framing seen as NDJSON", b'data: {"a":1}\n\n', ['data: {"a":1}'], {"blank-line"}),
]


@pytest.mark.parametrize(("name", "stream", "datas", "codes"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vector(name: str, stream: bytes, datas: list[str], codes: set[str]) -> None:
    events, parser = feed(stream, [])
    assert [e.data for e in events] == datas
    assert {f.code for f in parser.findings} == codes
    assert all((e.event, e.id, e.retry) == ("message", "", None) for e in events)
    whole = summary(events, parser)
    rng = random.Random(name)
    patterns = [list(range(1, len(stream)))] + [[i] for i in range(1, len(stream))]
    patterns += [rng.sample(range(1, len(stream)), 3) for _ in range(20)]
    for cuts in patterns:
        assert summary(*feed(stream, cuts)) == whole, cuts


def test_offsets_and_times() -> None:
    parser = NDJSONParser()
    first = parser.feed(b'{"a":1}\n{"b"', 0.25)
    second = parser.feed(b':2}\n{"c":3}', 0.5)
    last = parser.close()
    assert [(e.data, e.t, e.offset) for e in first + second + last] == [
        ('{"a":1}', 0.25, 0), ('{"b":2}', 0.5, 8), ('{"c":3}', 0.5, 16)]


def test_a_line_over_the_cap_is_discarded_without_buffering_it() -> None:
    stream = b'{"ok":1}\n{"big":"' + b"x" * 100 + b'"}\n{"ok":2}\n'
    for cuts in ([], list(range(1, len(stream), 7))):
        events, parser = feed(stream, cuts, max_line_bytes=32)
        assert [e.data for e in events] == ['{"ok":1}', '{"ok":2}']
        assert [(f.code, f.offset) for f in parser.findings] == [("line-too-long", 9)]


def test_blank_line_findings_are_bounded() -> None:
    stream = b"\n" * 10_000 + b'{"a":1}\n' + b" \n\n" * 100
    for cuts in ([], list(range(1, len(stream), 97))):
        events, parser = feed(stream, cuts)
        assert [e.data for e in events] == ['{"a":1}']
        assert parser.finding_counts == {"blank-line": 10_200}
        assert len(parser.findings) == FINDINGS_LISTED_PER_CODE + 1


tokens = [b"{", b"}", b'"a"', b":", b"1", b" ", b"\r", b"\n", b"\r\n", b"\xff", b"\xe2\x80", b"\xef\xbb\xbf"]
streams = st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(tokens), max_size=100).map(b"".join))


@FAST
@given(streams, st.lists(st.integers(1, 400), max_size=10), st.integers(1, 64))
def test_no_bytes_crash_it_and_cuts_do_not_matter(stream: bytes, cuts: list[int], cap: int) -> None:
    cuts = [c for c in cuts if c < len(stream)]
    assert summary(*feed(stream, cuts)) == summary(*feed(stream, []))
    capped = summary(*feed(stream, [], cap))
    again = summary(*feed(stream, cuts, cap))
    assert capped[0] == again[0]
    assert [f for f in capped[1] if f[0] != "invalid-utf8"] == [f for f in again[1] if f[0] != "invalid-utf8"]
    assert ({k: v for k, v in capped[2].items() if k != "invalid-utf8"}
            == {k: v for k, v in again[2].items() if k != "invalid-utf8"})


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3), max_leaves=8)


@FAST
@given(st.lists(json_values, max_size=10), st.booleans(), st.lists(st.integers(1, 2000), max_size=8))
def test_json_lines_round_trip(values: list, crlf: bool, cuts: list[int]) -> None:
    eol = "\r\n" if crlf else "\n"
    stream = "".join(json.dumps(v, ensure_ascii=False) + eol for v in values).encode()
    events, parser = feed(stream, [c for c in cuts if c < len(stream)])
    assert [json.loads(e.data) for e in events] == values
    assert {f.code for f in parser.findings} <= {"crlf-line-ending"}


def test_json_seq_records_lose_their_record_separator() -> None:
    stream = b'\x1e{"a":1}\n\x1e{"b":2}\n'
    for cuts in ([], list(range(1, len(stream)))):
        parser = NDJSONParser(json_seq=True)
        bounds = [0, *cuts, len(stream)]
        events = [e for a, b in zip(bounds, bounds[1:], strict=False) for e in parser.feed(stream[a:b], 0.0)]
        events += parser.close()
        assert [(e.data, e.offset) for e in events] == [('{"a":1}', 1), ('{"b":2}', 10)]
        assert parser.findings == []


def test_bytes_like_reads_are_accepted() -> None:
    parser = NDJSONParser()
    events = parser.feed(bytearray(b'{"a":1}\n{"b"'), 0.0) + parser.feed(bytearray(b':2}\n'), 1.0)
    assert [e.data for e in events + parser.close()] == ['{"a":1}', '{"b":2}']
