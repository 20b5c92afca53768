"""Properties of SSEParser (hypothesis): no byte string crashes it, every way of cutting a stream into reads gives
the same events and findings, generated valid streams round-trip, it agrees with httpx-sse on valid streams, and a
hostile stream costs bounded findings and memory.
"""

from __future__ import annotations

import codecs
import time
import tracemalloc

from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder
from httpx_sse._decoders import SSELineDecoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.parse.sse import SSEParser
from harness.parse.sse_base import FINDINGS_LISTED_PER_CODE
from tests.test_sse_vectors import feed, summary

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that make parser-relevant structure far likelier than uniform random bytes would.
TOKENS = [b"data", b"event", b"id", b"retry", b":", b" ", b"\r", b"\n", b"\r\n", b"\n\n", b"\x00", b"x", b"7",
          b"\xef\xbb\xbf", b"\xff", b"\xe2\x80", b"\xa6", "\u00e9".encode(), b"data: ", b"\t"]
streams = st.one_of(st.binary(max_size=400), st.lists(st.sampled_from(TOKENS), max_size=120).map(b"".join))


def cuts_for(data: st.DataObject, n: int) -> list[int]:
    if n < 2:
        return []
    return sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=12), label="cuts")))


@FAST
@given(streams, st.data())
def test_no_byte_string_crashes_it_and_every_cut_gives_the_same_result(stream: bytes, data: st.DataObject) -> None:
    whole = summary(*feed(stream, []))
    assert summary(*feed(stream, cuts_for(data, len(stream)))) == whole
    assert summary(*feed(stream, list(range(1, len(stream))))) == whole


@FAST
@given(streams, st.data(), st.integers(1, 12))
def test_a_small_line_cap_gives_the_same_result_however_cut(stream: bytes, data: st.DataObject, cap: int) -> None:
    def without_utf8(result: tuple[list, list, dict]) -> tuple[list, list, dict]:
        # Invalid UTF-8 inside a discarded too-long line may or may not be reported (it is never decoded).
        events, findings, counts = result
        return (events, [f for f in findings if f[0] != "invalid-utf8"],
                {k: v for k, v in counts.items() if k != "invalid-utf8"})

    whole = without_utf8(summary(*feed(stream, [], cap)))
    assert without_utf8(summary(*feed(stream, cuts_for(data, len(stream)), cap))) == whole


# --- generated valid streams ---------------------------------------------------------------------------------
line_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)
id_text = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=6)
blocks = st.lists(st.fixed_dictionaries({
    "data": st.lists(line_text, min_size=1, max_size=3),
    "event": st.one_of(st.none(), line_text),
    "id": st.one_of(st.none(), id_text),
    "retry": st.one_of(st.none(), st.integers(0, 10**6)),
    "comment": st.one_of(st.none(), line_text),
    "fields_after_data": st.booleans(),
}), max_size=8)
styles = st.fixed_dictionaries({"eol": st.sampled_from(["\n", "\r\n", "\r"]), "space": st.booleans()})


def serialize(evs: list[dict], style: dict, bom: bool = False) -> bytes:
    eol = style["eol"]

    def field(name: str, value: str) -> str:
        # Without the optional space, a value that starts with a space needs it (exactly one is stripped).
        sep = ": " if style["space"] or value.startswith(" ") else ":"
        return f"{name}{sep}{value}{eol}"

    out = []
    for ev in evs:
        extra = []
        if ev["event"] is not None:
            extra.append(field("event", ev["event"]))
        if ev["id"] is not None:
            extra.append(field("id", ev["id"]))
        if ev["retry"] is not None:
            extra.append(field("retry", str(ev["retry"])))
        data = [field("data", d) for d in ev["data"]]
        comment = [f":{ev['comment']}{eol}"] if ev["comment"] is not None else []
        lines = comment + (data + extra if ev["fields_after_data"] else extra + data)
        out.append("".join(lines) + eol)
    return ("\ufeff" if bom else "").encode() + "".join(out).encode()


def expected(evs: list[dict]) -> list[tuple]:
    result, last_id = [], ""
    for ev in evs:
        if ev["id"] is not None:
            last_id = ev["id"]
        result.append((ev["event"] or "message", "\n".join(ev["data"]), last_id, ev["retry"]))
    return result


@FAST
@given(blocks, styles, st.booleans(), st.data())
def test_generated_valid_streams_round_trip(evs: list[dict], style: dict, bom: bool, data: st.DataObject) -> None:
    stream = serialize(evs, style, bom)
    events, parser = feed(stream, cuts_for(data, len(stream)))
    assert [(e.event, e.data, e.id, e.retry) for e in events] == expected(evs)
    assert all(stream[e.offset:e.offset + 1] not in (b"", b"\r", b"\n", b":") for e in events)
    codes = {f.code for f in parser.findings}
    allowed = {"comment", "bom", "cr-line-ending", "crlf-line-ending", "no-space-after-colon"}
    assert codes <= allowed, parser.findings


def httpx_sse_events(stream: bytes, cuts: list[int]) -> list[tuple]:
    """httpx-sse's decoding, driven as its iter_sse drives it: text decoder, line decoder, event decoder."""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines, decoder, out = SSELineDecoder(), HttpxSSEDecoder(), []
    bounds = [0, *cuts, len(stream)]
    pieces = [text.decode(stream[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    for piece in [*pieces, text.decode(b"", final=True)]:
        for line in lines.decode(piece) if piece else []:
            sse = decoder.decode(line.rstrip("\n"))
            if sse is not None:
                out.append((sse.event, sse.data, sse.id, sse.retry))
    for line in lines.flush():
        sse = decoder.decode(line)
        if sse is not None:
            out.append((sse.event, sse.data, sse.id, sse.retry))
    return out


@FAST
@given(blocks, styles, st.data())
def test_agrees_with_httpx_sse_on_valid_streams(evs: list[dict], style: dict, data: st.DataObject) -> None:
    stream = serialize(evs, style)
    cuts = cuts_for(data, len(stream))
    events, _ = feed(stream, cuts)
    assert [(e.event, e.data, e.id, e.retry) for e in events] == httpx_sse_events(stream, cuts)


# --- hostile streams --------------------------------------------------------------------------------------------
def test_findings_are_bounded_per_code_and_counted_exactly() -> None:
    parser = SSEParser()
    parser.feed(b": ping\n\n" * 50_000 + b"data:\xff\xff x\n\n" * 10_000 + b"nope\n" * 5_000, 1.0)
    parser.close()
    by_code: dict[str, int] = {}
    for f in parser.findings:
        by_code[f.code] = by_code.get(f.code, 0) + 1
    assert by_code == {"unterminated-final-block": 1, **{c: FINDINGS_LISTED_PER_CODE + 1 for c in
                       ("comment", "invalid-utf8", "no-space-after-colon", "unknown-field")}}
    assert parser.finding_counts == {"comment": 50_000, "invalid-utf8": 20_000, "no-space-after-colon": 10_000,
                                     "unknown-field": 5_000, "unterminated-final-block": 1}
    assert "49980 more" in [f for f in parser.findings if f.code == "comment"][-1].message


def test_invalid_utf8_flood_is_fast_and_bounded() -> None:
    parser = SSEParser()
    t0 = time.perf_counter()
    for _ in range(16):
        parser.feed(b"data: " + b"\xff" * 65536 + b"\n\n")
    parser.close()
    assert time.perf_counter() - t0 < 10  # generous: one C-level pass per read, not a Python loop per byte
    assert parser.finding_counts["invalid-utf8"] == 16 * 65536
    assert len(parser.findings) <= FINDINGS_LISTED_PER_CODE + 1


def test_an_endless_line_costs_bounded_memory() -> None:
    parser = SSEParser(max_line_bytes=1 << 20)
    chunk = b"x" * 65536
    tracemalloc.start()
    try:
        parser.feed(b"data: ok\n\ndata: ", 0.0)
        for i in range(320):  # 20 MiB without a line ending
            parser.feed(chunk, float(i))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * (1 << 20), peak
    assert [f.code for f in parser.findings] == ["line-too-long"]
    assert parser.findings[0].offset == 10
    events = parser.feed(b"\ndata: after\n\n", 999.0)
    assert [e.data for e in events] == ["after"]


def test_a_slow_drip_is_linear_not_quadratic() -> None:
    parser = SSEParser()
    line = b"data: " + b"y" * 300_000 + b"\n\n"
    t0 = time.perf_counter()
    events = []
    for i in range(len(line)):
        events += parser.feed(line[i:i + 1])
    assert time.perf_counter() - t0 < 20  # generous for a shared CPU; quadratic copying would take minutes
    assert len(events) == 1 and len(events[0].data) == 300_000


def test_a_one_byte_drip_is_not_amplified_in_memory() -> None:
    """A partial line arriving a byte per read is held as bytes, not as one object per read."""
    parser = SSEParser(max_line_bytes=64 * 1024)
    parser.feed(b"data: ", 0.0)
    tracemalloc.start()
    try:
        for _ in range(60_000):
            parser.feed(b"z", 1.0)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 256 * 1024, held  # ~60 KB of line; a list of 1-byte objects would hold ~2.5 MB
    assert [e.data for e in parser.feed(b"\n\n", 2.0)] == ["z" * 60_000]


def test_a_line_ending_flood_is_counted_exactly_however_cut() -> None:
    stream = b"data: a\r\r" * 3000 + b"data: b\r\n\r\n" * 3000 + b"\r" * 5000
    rng = __import__("random").Random(7)
    for cuts in ([], sorted(rng.sample(range(1, len(stream)), 500)), list(range(1, 4000))):
        events, parser = feed(stream, cuts)
        assert len(events) == 6000
        assert parser.finding_counts == {"cr-line-ending": 11000, "crlf-line-ending": 6000}
        assert len(parser.findings) == FINDINGS_LISTED_PER_CODE + 1 + 2
