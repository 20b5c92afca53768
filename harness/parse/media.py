"""Pick the parser by Content-Type and run a whole Capture through it, read by read, keeping each read's time.

``parse_capture(capture) -> Parsed``. ``text/event-stream`` is parsed as SSE; the NDJSON / JSON Lines media
types as NDJSON; anything else (or no Content-Type) is kind "unknown" but still parsed as SSE so the checks can
show what came (the http.content_type check is what fails such a stream). One exception to that: when SSE finds
no event at all while the body is two or more lines that are each a JSON object, the NDJSON events are used (with
a "parser-guess" finding), because a JSON-lines body under a wrong Content-Type would otherwise show as an empty
stream. (A single JSON document, such as a non-streamed reply or an error body, is left alone.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.model import Capture, Finding
from harness.parse.ndjson import NDJSONParser
from harness.parse.sse import SSEParser
from harness.parse.sse_base import DEFAULT_MAX_LINE_BYTES, SSEEvent

SSE_TYPES = frozenset({"text/event-stream"})
# One table for both the parser choice and http.content_type's verdict, so what passes is what gets parsed.
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/jsonlines", "application/json-lines",
                          "application/json-seq"})


@dataclass(slots=True)
class Parsed:
    """What the parse stage hands to decode and the checks."""

    kind: str  # "sse" | "ndjson" | "unknown" (decided by the Content-Type)
    events: list[SSEEvent] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    media_type: str = ""  # the Content-Type's media type, lower-cased, without parameters
    parser: str = "sse"  # which parser produced `events`: "sse" | "ndjson"
    finding_counts: dict[str, int] = field(default_factory=dict)
    """Occurrences per finding code. ``findings`` lists at most 20 per code (then one summary finding), so
    counts belong here: a hostile stream cannot make the findings list grow without bound."""


def media_type(content_type: str | None) -> str:
    """``"Text/Event-Stream; charset=utf-8"`` -> ``"text/event-stream"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def kind_for(content_type: str | None) -> str:
    mt = media_type(content_type)
    if mt in SSE_TYPES:
        return "sse"
    if mt in NDJSON_TYPES:
        return "ndjson"
    return "unknown"


# A flood of tiny events (an endless stream filling the byte cap: ~500,000 events in 4 MiB) costs far more to decode
# and check than to receive, and would break the run's deadline and memory bounds. Past this many events the rest of
# the body is not parsed, and a "too-many-events" finding says so. A real answer has far fewer (one per token).
DEFAULT_MAX_EVENTS = 20_000
# The same for lines that make no event (``id:x`` forever, blank lines, a byte per line): each costs the parser a
# Python-level step, so past this many line breaks the rest is not parsed ("too-many-lines"). A real answer has two
# to four per event.
DEFAULT_MAX_LINES = 100_000
# What one evaluation parses over all its streams together (main, second prompt, repeats, robustness streams), so
# its memory and time stay bounded however many of them flood: see ParseAllowance.
EVALUATION_MAX_EVENTS = 50_000
EVALUATION_MAX_LINES = 250_000
# A read is fed in pieces of at most this size, so the caps are checked at least this often (a piece of tiny
# events holds ~2,000 of them: what a cap can be overshot by before the extra ones are dropped).
FEED_BYTES = 16 * 1024


@dataclass(slots=True)
class ParseAllowance:
    """Events and line breaks left for the parses of one evaluation; each parse spends what it used.

    Deterministic (a count, not a clock): the same bundle checked with the same profile parses the same streams in
    the same order, so a re-check gives the same verdicts.
    """

    events: int = EVALUATION_MAX_EVENTS
    lines: int = EVALUATION_MAX_LINES


@dataclass(slots=True)
class _Caps:
    events: int
    lines: int
    note: str  # why these caps: said in the finding when one is reached


def _caps(allowance: ParseAllowance | None) -> _Caps:
    if allowance is None or (allowance.events >= DEFAULT_MAX_EVENTS and allowance.lines >= DEFAULT_MAX_LINES):
        return _Caps(DEFAULT_MAX_EVENTS, DEFAULT_MAX_LINES, "the cap of one stream")
    return _Caps(min(DEFAULT_MAX_EVENTS, allowance.events), min(DEFAULT_MAX_LINES, allowance.lines),
                 f"what was left of one evaluation's allowance ({EVALUATION_MAX_EVENTS} events, "
                 f"{EVALUATION_MAX_LINES} line breaks over all its streams)")


def _line_breaks(data: bytes) -> int:
    """Line breaks in ``data`` (CRLF counts once), with C-level counts: the parser's per-line work."""
    n = data.count(b"\n")
    if 13 in data:
        n += data.count(b"\r") - data.count(b"\r\n")
    return n


def _pieces(capture: Capture):
    """(data, t) of every read, a large read cut into FEED_BYTES pieces (the parser is indifferent to the cuts)."""
    for read in capture.reads:
        data = read.data
        if len(data) <= FEED_BYTES:
            yield data, read.t
        else:
            for i in range(0, len(data), FEED_BYTES):
                yield data[i:i + FEED_BYTES], read.t


def _stop(parser: SSEParser | NDJSONParser, code: str, message: str, offset: int, t: float | None) -> None:
    parser.findings.append(Finding(code, message, offset, t))
    parser.finding_counts[code] = 1
    parser.abandon()  # findings in stream order and summarized, as close() leaves them


def _run(parser: SSEParser | NDJSONParser, capture: Capture, caps: _Caps | None = None
         ) -> tuple[list[SSEEvent], int]:
    """(the events, the line breaks fed) of ``capture``, stopping at the caps with a finding."""
    caps = caps or _caps(None)
    events: list[SSEEvent] = []
    lines = 0
    offset = 0
    for data, t in _pieces(capture):
        if caps.events <= 0:  # nothing left to spend: do not parse a piece only to drop its events
            _stop(parser, "too-many-events", f"no event may be parsed ({caps.note}): the body was not parsed",
                  offset, t)
            return events, lines
        n = _line_breaks(data)
        if lines + n > caps.lines:
            _stop(parser, "too-many-lines", f"more than {caps.lines} line breaks ({caps.note}): the rest of the "
                  f"body, from byte {offset} on, was not parsed", offset, t)
            return events, lines
        lines += n
        offset += len(data)
        events.extend(parser.feed(data, t))
        if len(events) > caps.events:
            del events[caps.events:]
            _stop(parser, "too-many-events", f"more than {caps.events} events ({caps.note}): the rest of the "
                  "body was not parsed", events[-1].offset if events else offset, t)
            return events, lines
    events.extend(parser.close())
    return events, lines


def _spend(allowance: ParseAllowance | None, events: list[SSEEvent], lines: int) -> None:
    if allowance is not None:
        allowance.events = max(0, allowance.events - len(events))
        allowance.lines = max(0, allowance.lines - lines)


def parse_capture(capture: Capture, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                  allowance: ParseAllowance | None = None) -> Parsed:
    """Parse every read of ``capture`` with the parser its Content-Type calls for.

    ``allowance``: what the evaluation this parse belongs to may still parse (it is spent here); None: only the
    per-stream caps apply."""
    content_type = capture.header("content-type")
    kind = kind_for(content_type)
    mt = media_type(content_type)
    if kind == "ndjson":
        nd = NDJSONParser(max_line_bytes, json_seq=mt == "application/json-seq")
        events, lines = _run(nd, capture, _caps(allowance))
        _spend(allowance, events, lines)
        return Parsed("ndjson", events, nd.findings, mt, "ndjson", nd.finding_counts)
    sse = SSEParser(max_line_bytes)
    events, lines = _run(sse, capture, _caps(allowance))
    _spend(allowance, events, lines)
    if kind == "unknown" and not events:
        nd = NDJSONParser(max_line_bytes)
        nd_events, lines = _run(nd, capture, _caps(allowance))
        _spend(allowance, nd_events, lines)
        if len(nd_events) > 1 and all(e.data.lstrip().startswith("{") for e in nd_events):
            findings = list(nd.findings)
            findings.insert(0, Finding("parser-guess", f"Content-Type {mt or '(none)'!r} is neither SSE nor "
                                       "NDJSON and SSE found no event; the body parses as JSON lines",
                                       nd_events[0].offset, nd_events[0].t))
            return Parsed(kind, nd_events, findings, mt, "ndjson", {"parser-guess": 1, **nd.finding_counts})
    return Parsed(kind, events, sse.findings, mt, "sse", sse.finding_counts)
