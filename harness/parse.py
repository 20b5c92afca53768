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
from harness.ndjson import NDJSONParser
from harness.sse import DEFAULT_MAX_LINE_BYTES, SSEEvent, SSEParser

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


# A flood of tiny events (an endless stream filling the byte cap: ~600,000 events in 16 MB) costs far more to
# decode and check than to receive, and would break the run's deadline and memory bounds. Past this many events the
# rest of the body is not parsed, and a "too-many-events" finding says so. A real answer has far fewer (one per token).
DEFAULT_MAX_EVENTS = 20_000


def _run(parser: SSEParser | NDJSONParser, capture: Capture, max_events: int = DEFAULT_MAX_EVENTS) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for read in capture.reads:
        events.extend(parser.feed(read.data, read.t))
        if len(events) > max_events:
            del events[max_events:]
            parser.findings.append(Finding("too-many-events", f"more than {max_events} events: the rest of the body "
                                           "was not parsed", events[-1].offset, read.t))
            parser.finding_counts["too-many-events"] = 1
            parser.abandon()  # findings in stream order and summarized, as close() leaves them
            return events
    events.extend(parser.close())
    return events


def parse_capture(capture: Capture, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Parsed:
    """Parse every read of ``capture`` with the parser its Content-Type calls for."""
    content_type = capture.header("content-type")
    kind = kind_for(content_type)
    mt = media_type(content_type)
    if kind == "ndjson":
        nd = NDJSONParser(max_line_bytes, json_seq=mt == "application/json-seq")
        return Parsed("ndjson", _run(nd, capture), nd.findings, mt, "ndjson", nd.finding_counts)
    sse = SSEParser(max_line_bytes)
    events = _run(sse, capture)
    if kind == "unknown" and not events:
        nd = NDJSONParser(max_line_bytes)
        nd_events = _run(nd, capture)
        if len(nd_events) > 1 and all(e.data.lstrip().startswith("{") for e in nd_events):
            findings = list(nd.findings)
            findings.insert(0, Finding("parser-guess", f"Content-Type {mt or '(none)'!r} is neither SSE nor "
                                       "NDJSON and SSE found no event; the body parses as JSON lines",
                                       nd_events[0].offset, nd_events[0].t))
            return Parsed(kind, nd_events, findings, mt, "ndjson", {"parser-guess": 1, **nd.finding_counts})
    return Parsed(kind, events, sse.findings, mt, "sse", sse.finding_counts)
