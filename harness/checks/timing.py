"""timing checks over the primary stream's metrics (harness/metrics.py). Thresholds: the profile's [timing]."""

from __future__ import annotations

from harness.checks import Context, Outcome, check, evidence


def _first_content_evidence(ctx: Context) -> list[dict]:
    m = ctx.primary.metrics
    if m.first_content_index is None:
        return []
    c = ctx.primary.chunks[m.first_content_index]
    return [evidence(c.offset, c.content, c.t)]


def _unreached(ctx: Context) -> Outcome | None:
    cap = ctx.primary.capture
    if cap.status is None:
        return Outcome.failed(f"no HTTP response ({cap.end_reason})", measured=None)
    return None


@check("timing.ttfb", description="time to first byte below the limit")
def ttfb(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    limit = ctx.setting("timing.ttfb_ms", 2401)
    got = ctx.primary.metrics.ttfb_ms
    if got is None:
        return Outcome.failed("no byte of body received", measured=None, threshold=f"< {limit} ms")
    return Outcome.of(got < limit, f"first byte after {got:.0f} ms", measured=round(got, 1),
                      threshold=f"< {limit} ms", evidence=[evidence(0, None, ctx.primary.capture.t_first_byte)])


@check("timing.ttft", description="time to first meaningful content below the limit (placeholders do not count)")
def ttft(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    limit = ctx.setting("timing.ttft_ms", 2401)
    got = ctx.primary.metrics.ttft_ms
    if got is None:
        return Outcome.failed("no content arrived", measured=None, threshold=f"< {limit} ms")
    return Outcome.of(got < limit, f"first content after {got:.0f} ms", measured=round(got, 1),
                      threshold=f"< {limit} ms", evidence=_first_content_evidence(ctx))


@check("timing.tokens_per_s", description="content tokens / (last content time - first content time) above the limit")
def tokens_per_s(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    limit = ctx.setting("timing.tokens_per_s", 29)
    m = ctx.primary.metrics
    threshold = f"> {limit}"
    if m.tokens is None:
        # tiktoken missing is the harness's limitation (skip); a server that reports no usage is the endpoint's.
        if m.token_method == "tiktoken":
            return Outcome.skip(f"cannot count tokens by tiktoken: {m.token_note}", threshold=threshold)
        return Outcome.failed(f"cannot count tokens by {m.token_method}: {m.token_note}", measured=None,
                              threshold=threshold)
    if m.tokens_per_s is None:
        return Outcome.failed(f"{m.chunks} content chunk(s) arriving within 10 ms: no streaming rate to measure",
                              measured=None, threshold=threshold, evidence=_first_content_evidence(ctx))
    return Outcome.of(m.tokens_per_s > limit, f"{m.tokens} tokens ({m.token_method}) at {m.tokens_per_s:.1f} tokens/s",
                      measured=round(m.tokens_per_s, 2), threshold=threshold)


@check("timing.itl", description="gaps between content chunks: p99 and max below the limits")
def itl(ctx: Context) -> Outcome:
    m = ctx.primary.metrics
    p99_limit = ctx.setting("timing.itl_p99_ms", 2000)
    max_limit = ctx.setting("timing.itl_max_ms", 5000)
    threshold = f"p99 <= {p99_limit} ms, max <= {max_limit} ms"
    if not m.gaps_ms:
        return Outcome.skip("fewer than two content chunks: no gaps", threshold=threshold)
    p99, worst = m.itl_ms["p99"], m.itl_ms["max"]
    measured = {k: round(v, 1) for k, v in m.itl_ms.items() if v is not None}
    ok = p99 <= p99_limit and worst <= max_limit
    content = ctx.primary.content_chunks
    i = max(range(len(m.gaps_ms)), key=m.gaps_ms.__getitem__)
    ev = [evidence(content[i + 1].offset, content[i + 1].content, content[i + 1].t, gap_ms=round(m.gaps_ms[i], 1))]
    return Outcome.of(ok, f"inter-chunk gap p50 {m.itl_ms['p50']:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms",
                      measured=measured, threshold=threshold, evidence=ev)


@check("timing.e2e", description="the whole stream completes within the limit")
def e2e(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    limit = ctx.setting("timing.e2e_ms", 60000)
    got = ctx.primary.metrics.e2e_ms
    cap = ctx.primary.capture
    # Only the duration is judged here: how the stream ended is framing.complete's business.
    return Outcome.of(got is not None and got <= limit,
                      f"stream ended ({cap.end_reason}) after {got:.0f} ms", measured=round(got or 0.0, 1),
                      threshold=f"<= {limit} ms", evidence=[evidence(len(cap.body), None, cap.t_end)])


@check("timing.progressive", description="content is streamed progressively, not dumped in one burst after a silence")
def progressive(ctx: Context) -> Outcome:
    m = ctx.primary.metrics
    b = m.burst
    share_limit = ctx.setting("timing.burst_share", 0.9)
    silence_min = ctx.setting("timing.silence_min_ms", 500)
    silence_fraction = ctx.setting("timing.silence_fraction", 0.5)
    threshold = f"burst < {share_limit:.0%} or silence < max({silence_min} ms, {silence_fraction:.0%} of e2e)"
    if b.share is None:
        return Outcome.failed("no content arrived", measured=None, threshold=threshold)
    silence = b.silence_ms or 0.0
    measured = {"burst_share": round(b.share, 3), "silence_ms": round(silence, 1), "e2e_ms": round(m.e2e_ms or 0.0, 1)}
    long_silence = silence >= silence_min and silence >= silence_fraction * (m.e2e_ms or 0.0)
    start = ctx.primary.content_chunks[b.start_index or 0]
    ev = [evidence(start.offset, start.content, start.t)]
    if b.share >= share_limit and long_silence:
        return Outcome.failed(f"{b.share:.0%} of the text arrived within {b.window_ms:.0f} ms after {b.silence_ms:.0f} ms "
                              "of silence: buffered, not streamed", measured=measured, threshold=threshold, evidence=ev)
    return Outcome.passed(f"largest burst {b.share:.0%} of the text in {b.window_ms:.0f} ms", measured=measured,
                          threshold=threshold)
