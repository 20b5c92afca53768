"""http checks: the status line and the response headers of the primary stream."""

from __future__ import annotations

from harness.checks import Context, Outcome, check, evidence
from harness.checks.diagnosis import refusal
from harness.parse.media import NDJSON_TYPES, SSE_TYPES, media_type

# Media types accepted per stream format (parameters such as charset are ignored): the parse stage's own tables.
MEDIA_TYPES = {
    "sse": tuple(sorted(SSE_TYPES)),
    "ndjson": ("application/x-ndjson", *sorted(NDJSON_TYPES - {"application/x-ndjson"})),
}


def _header_evidence(ctx: Context, name: str) -> list[dict]:
    cap = ctx.primary.capture
    value = cap.header(name)
    return [evidence(None, f"{name}: {value}" if value is not None else f"(no {name} header)", cap.t_headers)]


def _unreached(ctx: Context) -> Outcome | None:
    cap = ctx.primary.capture
    if cap.status is None:
        return Outcome.failed(f"no HTTP response ({cap.end_reason}): {cap.error or 'nothing received'}",
                              measured=cap.end_reason, evidence=[evidence(None, cap.error, cap.t_end)])
    return None


@check("http.status", description="the stream is answered with HTTP 200")
def status(ctx: Context) -> Outcome:
    cap = ctx.primary.capture
    expected = int(ctx.setting("http.status", 200))
    if (bad := _unreached(ctx)) is not None:
        bad.threshold = expected
        if (refused := refusal(cap, cap.request.dialect)) is not None:
            bad.message = refused.text()
        return bad
    ok = cap.status == expected
    excerpt = cap.body[:200].decode("utf-8", "replace") if not ok else f"HTTP {cap.status}"
    message = f"HTTP {cap.status}" + ("" if ok else f", expected {expected}")
    if (refused := refusal(cap, cap.request.dialect)) is not None:
        message = f"{refused.text()} (expected {expected})"
    return Outcome.of(ok, message, measured=cap.status,
                      threshold=expected, evidence=[evidence(0 if not ok else None, excerpt, cap.t_headers)])


@check("http.content_type", description="Content-Type is text/event-stream (or NDJSON where the profile allows)")
def content_type(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    allowed = [m for fmt in ctx.profile.formats for m in MEDIA_TYPES.get(fmt, ())]
    value = ctx.primary.capture.header("content-type")
    measured = media_type(value)
    ok = measured in allowed
    return Outcome.of(ok, f"Content-Type {value!r}" + ("" if ok else f" is not one of {', '.join(allowed)}"),
                      measured=value, threshold=" | ".join(allowed), evidence=_header_evidence(ctx, "content-type"))


@check("http.content_encoding", description="no Content-Encoding on the stream (compression buffers events)")
def content_encoding(ctx: Context) -> Outcome:
    cap = ctx.primary.capture
    value = cap.header("content-encoding")
    if cap.status is None and cap.end_reason != "encoding_refused":
        return Outcome.skip(f"no HTTP response ({cap.end_reason})")
    ok = value is None or value.strip().lower() in ("", "identity")
    return Outcome.of(ok, "no Content-Encoding" if value is None else
                      f"Content-Encoding {value!r}" + ("" if ok else ": the harness asked for identity, and a "
                                                       "compressed stream is buffered by proxies and clients"),
                      measured=value, threshold="identity/none", evidence=_header_evidence(ctx, "content-encoding"))


@check("http.cache_control", description="Cache-Control: no-cache (or no-store), so proxies do not hold the stream")
def cache_control(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    value = ctx.primary.capture.header("cache-control")
    directives = {d.strip().split("=", 1)[0].lower() for d in (value or "").split(",")}
    ok = bool(directives & {"no-cache", "no-store"})
    return Outcome.of(ok, f"Cache-Control {value!r}" if value else "no Cache-Control header",
                      measured=value, threshold="no-cache", evidence=_header_evidence(ctx, "cache-control"))
