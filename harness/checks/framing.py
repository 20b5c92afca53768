"""framing checks: does the body parse as the event stream it claims to be, byte for byte.

Most of these read the parser's findings (harness/parse/sse.py, harness/parse/ndjson.py: oddities with byte offsets);
line endings and UTF-8 are also checked on the raw body directly, so they hold whatever the parser reports.
"""

from __future__ import annotations

import re

from harness.checks import Context, Outcome, check, evidence

# Findings that break real clients: the stream does not parse as what it claims to be.
PARSE_FAILURES = {"invalid-json-line", "line-too-long"}
# Findings that are legal but surprising: reported as warnings by framing.parse.
PARSE_WARNINGS = {"unknown-field", "bad-retry", "nul-in-id", "bom"}
# Everything else the parser notes (comments, CRLF endings, ...) is informational, or owned by a more specific
# check (invalid-utf8, unterminated-final-block, cr-line-ending, no-space-after-colon), so not repeated here.
_MAX_EVIDENCE = 5
_LONE_CR = re.compile(rb"\r(?!\n)")
_LONE_LF = re.compile(rb"(?<!\r)\n")
_SSE_FIELD_NO_SPACE = re.compile(rb"(?m)^(data|event|id|retry):(?=[^ \r\n])")


def _scan(pattern: re.Pattern[bytes], body: bytes, keep: int = _MAX_EVIDENCE) -> tuple[int, list[int]]:
    """(how many matches, the offsets of the first ``keep``): a scan with bounded state, never a list of every
    match (a flood of ``id:x`` lines has a million; their match objects once cost 150 MB)."""
    count = 0
    first: list[int] = []
    for m in pattern.finditer(body):
        if count < keep:
            first.append(m.start())
        count += 1
    return count, first


def _findings(ctx: Context, codes: set[str] | None = None) -> list:
    return [f for f in ctx.primary.findings if codes is None or f.code in codes]


def _finding_evidence(ctx: Context, findings: list) -> list[dict]:
    return [evidence(f.offset, f"{f.code}: {f.message} | {ctx.primary.body_excerpt(f.offset, 60)!r}", f.t)
            for f in findings[:_MAX_EVIDENCE]]


def _no_body(ctx: Context) -> Outcome | None:
    """Skip byte-level checks when there are no stream bytes to judge (no response, or a compressed body)."""
    cap = ctx.primary.capture
    if cap.status is None:
        return Outcome.skip(f"no HTTP response ({cap.end_reason})")
    if not 200 <= cap.status < 300:
        return Outcome.skip(f"HTTP {cap.status}: the body is an error reply, not a stream (see http.status)")
    if cap.end_reason == "encoding_refused":
        return Outcome.skip(f"the body is {cap.header('content-encoding')}-compressed, not an event stream "
                            "(see http.content_encoding)")
    return None


@check("framing.parse", description="the body parses cleanly as SSE (or NDJSON) into events")
def parse(ctx: Context) -> Outcome:
    if (bad := _no_body(ctx)) is not None:
        return bad
    body = ctx.primary.capture.body
    kind = getattr(ctx.primary.parsed, "kind", "unknown")
    events = getattr(ctx.primary.parsed, "events", [])
    failures = _findings(ctx, PARSE_FAILURES)
    if failures:
        return Outcome.failed(f"{len(failures)} framing error(s), first: {failures[0].message}",
                              measured=len(failures), threshold=0, evidence=_finding_evidence(ctx, failures))
    if body and not events:
        return Outcome.failed(f"{len(body)} bytes received but no event could be parsed (format: {kind})",
                              measured=0, threshold="> 0 events", evidence=[evidence(0, body[:120])])
    warnings = _findings(ctx, PARSE_WARNINGS)
    if warnings:
        codes = sorted({f.code for f in warnings})
        return Outcome.warned(f"parsed {len(events)} {kind} events with oddities: {', '.join(codes)}",
                              measured=len(warnings), threshold=0, evidence=_finding_evidence(ctx, warnings))
    return Outcome.passed(f"parsed {len(events)} {kind} events", measured=len(events))


def first_invalid_utf8(data: bytes) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


@check("framing.utf8", description="the body is valid UTF-8")
def utf8(ctx: Context) -> Outcome:
    if (bad := _no_body(ctx)) is not None:
        return bad
    body = ctx.primary.capture.body
    bad_at = first_invalid_utf8(body)
    findings = _findings(ctx, {"invalid-utf8"})
    if bad_at is None and not findings:
        return Outcome.passed(f"{len(body)} bytes of valid UTF-8", measured=True, threshold=True)
    offset = bad_at if bad_at is not None else findings[0].offset
    excerpt = repr(body[max(0, offset - 20): offset + 20])
    return Outcome.failed(f"invalid UTF-8 at byte {offset} (clients show U+FFFD or drop the event)",
                          measured=False, threshold=True, evidence=[evidence(offset, excerpt, _time_at(ctx, offset))])


def _time_at(ctx: Context, offset: int) -> float | None:
    """Arrival time of the read that contains byte ``offset``."""
    pos = 0
    for read in ctx.primary.capture.reads:
        pos += len(read.data)
        if offset < pos:
            return read.t
    return None


@check("framing.line_endings", description="line endings: LF or CRLF (a lone CR breaks many clients: warn)")
def line_endings(ctx: Context) -> Outcome:
    if (bad := _no_body(ctx)) is not None:
        return bad
    body = ctx.primary.capture.body
    crlf = body.count(b"\r\n")
    cr = body.count(b"\r") - crlf
    lf = body.count(b"\n") - crlf
    measured = {"lf": lf, "crlf": crlf, "cr": cr}
    if cr:
        at = _LONE_CR.search(body).start()  # type: ignore[union-attr]
        return Outcome.warned(f"{cr} lone CR line ending(s): valid SSE, but line splitters that only know LF "
                              "(and some SDKs) see one endless line", measured=measured, threshold="LF or CRLF",
                              evidence=[evidence(at, repr(body[max(0, at - 30): at + 30]), _time_at(ctx, at))])
    if crlf and lf:
        at = _LONE_LF.search(body).start()  # type: ignore[union-attr]
        return Outcome.warned(f"mixed line endings ({crlf} CRLF, {lf} LF)", measured=measured,
                              threshold="one style", evidence=[evidence(at, repr(body[max(0, at - 30): at + 30]))])
    return Outcome.passed("CRLF line endings" if crlf else "LF line endings", measured=measured,
                          threshold="LF or CRLF")


@check("framing.field_spacing", description="'data: value' with one space (no space breaks some clients: warn)")
def field_spacing(ctx: Context) -> Outcome:
    if (bad := _no_body(ctx)) is not None:
        return bad
    if getattr(ctx.primary.parsed, "kind", "sse") != "sse":
        return Outcome.skip("not an SSE stream")
    body = ctx.primary.capture.body
    count, offsets = _scan(_SSE_FIELD_NO_SPACE, body)
    if not count:
        counts = getattr(ctx.primary.parsed, "finding_counts", None) or {}
        findings = _findings(ctx, {"no-space-after-colon"})
        count = counts.get("no-space-after-colon", len(findings))
        offsets = [f.offset for f in findings[:_MAX_EVIDENCE]]
    if not count:
        return Outcome.passed("every field has a space after the colon", measured=0, threshold=0)
    return Outcome.warned(f"{count} field(s) without a space after the colon: valid SSE, but naive parsers "
                          "(e.g. old openai-python) mishandle it", measured=count, threshold=0,
                          evidence=[evidence(o, body[o: o + 60], _time_at(ctx, o)) for o in offsets])


@check("framing.unterminated", description="no unterminated final block (an event without its blank line is lost)")
def unterminated(ctx: Context) -> Outcome:
    if (bad := _no_body(ctx)) is not None:
        return bad
    findings = _findings(ctx, {"unterminated-final-block"})
    if findings:
        return Outcome.failed("the body ends inside an event: clients discard that last block",
                              measured=len(findings), threshold=0, evidence=_finding_evidence(ctx, findings))
    return Outcome.passed("every event is terminated", measured=0, threshold=0)


@check("framing.complete", description="the stream ended by the server closing it, not by a harness cap")
def complete(ctx: Context) -> Outcome:
    cap = ctx.primary.capture
    ok = cap.end_reason == "eof"
    detail = f"{cap.end_reason}" + (f": {cap.error}" if cap.error else "")
    return Outcome.of(ok, "the server closed the stream normally" if ok else f"the capture ended by {detail}",
                      measured=cap.end_reason, threshold="eof",
                      evidence=[] if ok else [evidence(len(cap.body), cap.error or cap.end_reason, cap.t_end)])
