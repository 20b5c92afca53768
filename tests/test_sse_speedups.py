"""The optional C speedup (harness/parse/_sse_speedups.c) against the pure-Python parser: the same events (every field,
arrival times included), the same findings and counts, whatever the stream and however it is cut into reads; real
SSEEvent instances; no reference leaks; and it is built wherever a C compiler is present, so CI notices when the
build silently falls back to pure Python.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness.parse.sse
from harness.parse.sse import SSEParser
from harness.parse.sse_base import SSEEvent
from tests.test_sse_properties import TOKENS, cuts_for

C_SCAN = harness.parse.sse.scan_data_events
needs_speedup = pytest.mark.skipif(C_SCAN is None, reason="the C speedup is not built (or is switched off)")

# Plain data blocks (the C path, LF or CRLF) mixed with everything that must leave it: other fields, lone CRs,
# mixed endings, invalid UTF-8, a data line without the space, a second data line, blank-line runs, a BOM.
PLAIN = [b"data: x\n\n", b"data: \xc3\xa9t\xc3\xa9\n\n", b"data: {\"a\": 1}\n\n", b"data: \n\n", b"data:  two\n\n",
         b"data: [DONE]\n\n", b"data: x\r\n\r\n", b"data: \r\n\r\n", b"data: y\r\n\n", b"data: a\rb\r\n\r\n"]
mixed_streams = st.one_of(
    st.lists(st.sampled_from(PLAIN * 4 + TOKENS), max_size=80).map(b"".join),
    st.lists(st.sampled_from(PLAIN), max_size=30).map(b"".join),
    st.binary(max_size=300),
)


def run(stream: bytes, cuts: list[int], cap: int, scan: object, kinds: str = "b") -> tuple:
    """Every observable result of one parse, with the given scanner (None: pure Python), in order: the events
    (every field), the findings as they stand before close() (a truncated parse stops there), the counts with
    their key order, and the same after close(). ``kinds`` picks each read's type in turn: b bytes,
    a bytearray, e an empty read fed before it."""
    saved = harness.parse.sse.scan_data_events
    harness.parse.sse.scan_data_events = scan
    try:
        parser = SSEParser(max_line_bytes=cap)
    finally:
        harness.parse.sse.scan_data_events = saved
    events = []
    bounds = [0, *cuts, len(stream)]
    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        kind = kinds[i % len(kinds)]
        if kind == "e":
            events += parser.feed(b"", i * 0.5)
        events += parser.feed(bytearray(stream[a:b]) if kind == "a" else stream[a:b], i * 0.5)
    before_close = (list(parser.findings), list(parser.finding_counts.items()))
    events += parser.close()
    assert all(type(e) is SSEEvent for e in events)
    return events, before_close, list(parser.findings), list(parser.finding_counts.items()), parser.retry


@needs_speedup
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_streams, st.data(), st.sampled_from([1 << 20, 4, 7, 8, 9, 16]), st.sampled_from(["b", "bae", "ea"]))
def test_the_speedup_gives_exactly_the_pure_python_result(stream: bytes, data: st.DataObject, cap: int,
                                                          kinds: str) -> None:
    cuts = cuts_for(data, len(stream))
    assert run(stream, cuts, cap, C_SCAN, kinds) == run(stream, cuts, cap, None, kinds)


@needs_speedup
@pytest.mark.parametrize("cuts", [[], [40], [9, 10, 11]])
def test_findings_keep_the_pure_python_order_past_the_listing_cap(cuts: list[int]) -> None:
    """Many invalid UTF-8 sequences and CRLF endings in one read: listed, counted and summarized in one order."""
    stream = b"data: a\r\n\r\n" * 3 + b"data: \xff\xfe\r\n\r\n" * 30 + b": note\r\n" + b"data: b\r\n\r\n" * 3
    assert run(stream, cuts, 1 << 20, C_SCAN) == run(stream, cuts, 1 << 20, None)


@needs_speedup
def test_events_from_the_speedup_are_ordinary_frozen_sse_events() -> None:
    events, *_ = run(b"id: 7\n\ndata: a\n\ndata: b\n\n", [], 1 << 20, C_SCAN)
    ev = events[-1]
    assert ev == SSEEvent("message", "b", "7", None, 0.0, 16)
    assert hash(ev) == hash(SSEEvent("message", "b", "7", None, 0.0, 16))
    assert repr(ev) == "SSEEvent(event='message', data='b', id='7', retry=None, t=0.0, offset=16)"
    with pytest.raises(AttributeError):
        ev.data = "changed"  # type: ignore[misc]


@needs_speedup
def test_the_speedup_leaks_no_references() -> None:
    t = 1234.5  # one object shared by every event of the read, like the last event id
    event_id = "".join(["id-", "x"])
    stream = b"id: " + event_id.encode() + b"\n\n" + b"data: chunk\n\n" * 100
    before_t, before_id = sys.getrefcount(t), sys.getrefcount(event_id)
    for _ in range(50):
        parser = SSEParser()
        parser._id = event_id  # the scanner shares the parser's last-event-id string with each event
        events = parser.feed(stream[stream.index(b"data"):], t)
        assert len(events) == 100 and events[0].t is t and events[0].id is event_id
        del events, parser
    gc.collect()
    assert sys.getrefcount(t) == before_t
    assert sys.getrefcount(event_id) == before_id


@needs_speedup
def test_configure_refuses_a_class_without_the_object_slots() -> None:
    from harness.parse import _sse_speedups

    class NotSlotted:
        event = data = id = retry = t = offset = None

    @dataclass(frozen=True, slots=True)
    class OneFieldMore:
        event: str = "message"
        data: str = ""
        id: str = ""
        retry: int | None = None
        t: float | None = None
        offset: int = 0
        extra: int = 0

    for wrong in (NotSlotted, OneFieldMore, property, int):  # property: a built-in with SSEEvent's size
        with pytest.raises(TypeError):
            _sse_speedups.configure(wrong)
    _sse_speedups.configure(SSEEvent)  # still configured for the real class


def test_the_speedup_is_built_where_a_c_compiler_is_present() -> None:
    """setup.py builds it as optional: without this test a broken build would only show as a slower parser."""
    if os.environ.get("STREAMCONFORM_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("STREAMCONFORM_PURE_PYTHON switches the speedup off")
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here: the pure-Python parser is the expected fallback")
    assert harness.parse.sse._sse_speedups is not None, "harness/parse/_sse_speedups.c was not built: reinstall with a compiler"
    assert C_SCAN is not None


def test_version_says_which_parser_path_runs(tmp_path) -> None:
    # From an empty directory: python -c puts the working directory first on sys.path, and the checkout's
    # harness/ (with only the editable install's extension) must not shadow the package under test (tox's wheel).
    env = dict(os.environ)
    env.pop("STREAMCONFORM_PURE_PYTHON", None)
    cmd = [sys.executable, "-c", "from harness.cli import main; main([\"--version\"])"]
    default = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path).stdout
    pure = subprocess.run(cmd, capture_output=True, text=True, env=dict(env, STREAMCONFORM_PURE_PYTHON="1"),
                          timeout=60, cwd=tmp_path).stdout
    assert "pure-Python SSE parser: STREAMCONFORM_PURE_PYTHON set" in pure or C_SCAN is None
    assert ("C-accelerated SSE parser" in default) == (C_SCAN is not None)
