"""parse_capture on real captures from the reference server (uvicorn on loopback), plus Content-Type selection.

Every valid variant the server offers (crlf, cr, no-space, comments, multiline-data, split-reads, ndjson) must
parse to the same chunks as the plain stream, with only the findings that describe the variant; faults must show
up as the findings that name them, at byte offsets that point at the fault in the raw body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from harness.capture.core import capture_sync
from harness.capture.guard import AddressPolicy
from harness.capture.request import build_request
from harness.model import Capture, Limits, Read, RequestSpec
from harness.parse.media import kind_for, media_type, parse_capture
from reference_server.config import ServerConfig
from reference_server.embedded import EmbeddedServer

LOCAL = AddressPolicy(allow_private=True)
QUICK = Limits(deadline_s=20, idle_timeout_s=10, connect_timeout_s=5)
PROMPT = "Explain server-sent events briefly"


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(ServerConfig(ttft_ms=5, gap_ms=2)) as srv:  # fast pacing: these tests are about bytes
        yield srv


def grab(server: EmbeddedServer, fault: str | None = None, limits: Limits = QUICK) -> Capture:
    headers = {"X-Fault": fault} if fault else {}
    return capture_sync(build_request(server.endpoint, "prompt", PROMPT, headers=headers), limits, policy=LOCAL)


def contents(events: list) -> list[str]:
    out = []
    for e in events:
        if e.data.strip() == "[DONE]":
            continue
        obj = json.loads(e.data)
        for choice in obj.get("choices", []):
            if choice.get("delta", {}).get("content"):
                out.append(choice["delta"]["content"])
    return out


@pytest.fixture(scope="module")
def plain(server: EmbeddedServer) -> Capture:
    return grab(server)


def test_the_plain_stream_parses_cleanly(plain: Capture) -> None:
    parsed = parse_capture(plain)
    assert plain.end_reason == "eof"
    assert (parsed.kind, parsed.parser, parsed.media_type) == ("sse", "sse", "text/event-stream")
    assert parsed.findings == []
    assert parsed.events[-1].data == "[DONE]" and len(contents(parsed.events)) >= 5
    body = plain.body
    read_times = {r.t for r in plain.reads}
    for ev in parsed.events:
        assert body[ev.offset:].startswith(b"data: ")
        assert ev.t in read_times


VARIANT_FINDINGS = {
    "crlf": {"crlf-line-ending"},
    "cr": {"cr-line-ending"},
    "no-space": {"no-space-after-colon"},
    "comments": {"comment"},
    "multiline-data": set(),
    "split-reads": set(),
    "ndjson": set(),
}


@pytest.mark.parametrize("variant", sorted(VARIANT_FINDINGS))
def test_valid_variants_parse_to_the_same_chunks(server: EmbeddedServer, plain: Capture, variant: str) -> None:
    cap = grab(server, variant)
    assert cap.status == 200 and cap.end_reason == "eof", cap.error
    parsed = parse_capture(cap)
    assert parsed.kind == ("ndjson" if variant == "ndjson" else "sse")
    assert {f.code for f in parsed.findings} == VARIANT_FINDINGS[variant]
    if variant == "split-reads":  # its text differs on purpose (multi-byte punctuation to cut through)
        # (The pieces arrive as separate reads, but the capture joins a read without a line break to the next:
        # it cannot complete an event. The parser's split-read handling is held by the vectors fed byte by byte.)
        assert any("\u2014" in c or "\u2019" in c for c in contents(parsed.events))
    else:
        assert contents(parsed.events) == contents(parse_capture(plain).events)


def test_invalid_utf8_is_reported_where_it_is(server: EmbeddedServer) -> None:
    cap = grab(server, "invalid-utf8")
    parsed = parse_capture(cap)
    bad = [f for f in parsed.findings if f.code == "invalid-utf8"]
    assert bad and cap.body[bad[0].offset:bad[0].offset + 2] == b"\xff\xfe"
    assert any("\ufffd" in e.data for e in parsed.events)


def test_a_cut_connection_leaves_an_unterminated_block(server: EmbeddedServer) -> None:
    cap = grab(server, "truncated")
    parsed = parse_capture(cap)
    codes = [f.code for f in parsed.findings]
    assert codes == ["unterminated-final-block"]
    assert cap.body[parsed.findings[0].offset:].startswith(b"data: ")
    assert parsed.events and parsed.events[-1].data != "[DONE]"


def test_wrong_content_type_is_unknown_but_still_parsed_as_sse(server: EmbeddedServer) -> None:
    parsed = parse_capture(grab(server, "wrong-content-type"))
    assert (parsed.kind, parsed.parser, parsed.media_type) == ("unknown", "sse", "text/plain")
    assert parsed.events[-1].data == "[DONE]"


def test_a_huge_line_is_reported_not_buffered(server: EmbeddedServer) -> None:
    cap = grab(server, "huge-line", Limits(deadline_s=20, idle_timeout_s=10, max_line_bytes=256 * 1024))
    parsed = parse_capture(cap, max_line_bytes=256 * 1024)
    assert {f.code for f in parsed.findings} == {"line-too-long", "unterminated-final-block"}
    assert parsed.events == []


def test_a_saved_capture_parses_the_same_offline(plain: Capture) -> None:
    again = Capture.from_json(plain.to_json())
    assert parse_capture(again) == parse_capture(plain)


# --- Content-Type selection (no server needed) ------------------------------------------------------------------
def offline(content_type: str | None, *reads: bytes) -> Capture:
    headers = [("content-type", content_type)] if content_type is not None else []
    return Capture(request=RequestSpec(url="http://127.0.0.1:1/"), status=200, headers=headers,
                   reads=[Read(float(i), r) for i, r in enumerate(reads)])


@pytest.mark.parametrize(("content_type", "kind"), [
    ("text/event-stream", "sse"), ("Text/Event-Stream; charset=utf-8", "sse"), (" text/event-stream ;x=y", "sse"),
    ("application/x-ndjson", "ndjson"), ("application/ndjson", "ndjson"), ("application/jsonl", "ndjson"),
    ("application/json-seq", "ndjson"), ("application/json", "unknown"), ("text/plain", "unknown"),
    ("", "unknown"), (None, "unknown"),
])
def test_kind_follows_the_media_type(content_type: str | None, kind: str) -> None:
    assert kind_for(content_type) == kind
    assert parse_capture(offline(content_type, b"data: x\n\n")).kind == kind


def test_media_type_drops_parameters() -> None:
    assert media_type("Text/Event-Stream ; charset=UTF-8") == "text/event-stream"
    assert media_type(None) == ""


def test_json_lines_under_a_wrong_type_are_recognised() -> None:
    parsed = parse_capture(offline("application/json", b'{"a": 1}\n{"b"', b': 2}\n'))
    assert (parsed.kind, parsed.parser) == ("unknown", "ndjson")
    assert [e.data for e in parsed.events] == ['{"a": 1}', '{"b": 2}']
    assert [e.t for e in parsed.events] == [0.0, 1.0]
    assert parsed.findings[0].code == "parser-guess"


def test_a_single_json_document_is_not_guessed_to_be_a_stream() -> None:
    parsed = parse_capture(offline("application/json", b'{"error": {"message": "bad"}}'))
    assert (parsed.kind, parsed.parser, parsed.events) == ("unknown", "sse", [])
    assert [f.code for f in parsed.findings] == ["unterminated-final-block"]


def test_an_empty_body_parses_to_nothing() -> None:
    parsed = parse_capture(offline("text/event-stream"))
    assert (parsed.events, parsed.findings) == ([], [])


def test_finding_counts_are_exact_when_the_list_is_capped() -> None:
    parsed = parse_capture(offline("text/event-stream", b": ping\n\n" * 500, b"data: x\n\n"))
    assert parsed.finding_counts == {"comment": 500}
    assert len(parsed.findings) == 21 and "480 more" in parsed.findings[-1].message
    assert [e.data for e in parsed.events] == ["x"]


def test_json_seq_is_parsed_as_records() -> None:
    parsed = parse_capture(offline("application/json-seq", b'\x1e{"a": 1}\n\x1e{"b": 2}\n'))
    assert parsed.kind == "ndjson" and [e.data for e in parsed.events] == ['{"a": 1}', '{"b": 2}']
