"""timing checks over stream metrics (harness/measure/metrics.py). Thresholds: the profile's [timing].

The speed checks (ttfb, ttft, tokens_per_s, itl, e2e) judge the median over the primary capture and the robustness
repeats (``robustness.repeats.<n>``, sent after a warm-up by harness/run/robustness.py), so one cold start or one
hiccup does not decide the verdict; the message gives the spread (min, max, n) and the evidence comes from the
capture whose value is the median (its name in the evidence's ``capture``). Without repeats -- turned off in the
profile's [robustness], skipped for lack of time, not answered with a complete 2xx stream, or a run limited to
other categories -- the primary alone decides. ``timing.progressive`` is about the shape of one delivery, not a
speed, and always reads the primary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.checks import Context, Outcome, check, evidence
from harness.checks.catalog import healthy, repeat_captures
from harness.measure.metrics import MIN_RATE_SPAN_S, Metrics, median_pick, spread_of
from harness.measure.transcript import Transcript


@dataclass(frozen=True, slots=True)
class Judged:
    """One metric over the timed captures: the capture whose value is the median, and the spread."""

    label: str  # "primary" or the repeat's probe name
    transcript: Transcript
    value: Any
    spread: dict[str, Any]  # metrics.spread_of over every timed capture
    not_counted: int  # repeats left out: no complete 2xx answer

    @property
    def metrics(self) -> Metrics:
        return self.transcript.metrics

    def note(self, unit: str, digits: int = 0, of: str = "") -> str:
        """The spread in words, for the message ("" when the primary was the only capture); ``of`` names what
        the min and max describe when it is not the judged value itself."""
        s = self.spread
        if s["n"] < 2:
            return ""

        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.{digits}f}"

        text = f" (median of {s['n']} requests: {of}min {fmt(s['min'])}, max {fmt(s['max'])} {unit}"
        if s["missing"]:
            text += f"; not measured in {s['missing']}"
        if self.not_counted:
            text += f"; {self.not_counted} repeat(s) without a complete 2xx answer left out"
        return text + f"; judged on {self.label})"


def timed_transcripts(ctx: Context) -> tuple[list[tuple[str, Transcript]], int]:
    """The primary plus every repeat that got a complete 2xx answer, and how many repeats were left out (their
    failures are robustness.repeats' finding, and a 500 page's timing says nothing about the stream's)."""
    timed, left_out = [("primary", ctx.primary)], 0
    for name, cap in repeat_captures(ctx.probes, ctx.profile):
        if healthy(cap) is None:
            timed.append((name, ctx.transcript(cap)))
        else:
            left_out += 1
    return timed, left_out


def judged(ctx: Context, key: Callable[[Metrics], float | None], *, higher_is_better: bool = False,
           spread_key: Callable[[Metrics], float | None] | None = None) -> Judged:
    """The median capture of ``key`` over the timed captures; ``spread_key`` (default ``key``) is what the
    message's min/max describe."""
    timed, left_out = timed_transcripts(ctx)
    values = [key(tr.metrics) for _, tr in timed]
    i = median_pick(values, higher_is_better=higher_is_better) or 0  # never None: the primary is always there
    shown = values if spread_key is None else [spread_key(tr.metrics) for _, tr in timed]
    spread = spread_of(shown, higher_is_better=higher_is_better)
    return Judged(timed[i][0], timed[i][1], values[i], spread, left_out)


def _first_content_evidence(j: Judged) -> list[dict]:
    index = j.metrics.first_content_index
    if index is None:
        return []
    c = j.transcript.chunks[index]
    return [evidence(c.offset, c.content, c.t, capture=j.label)]


def _rate_evidence(j: Judged) -> list[dict]:
    """The two ends the rate was measured between: the first meaningful content and the last content chunk."""
    items = _first_content_evidence(j)
    last = next((c for c in reversed(j.transcript.chunks) if c.content), None)
    if items and last is not None and last.offset != items[0]["offset"]:
        items.append(evidence(last.offset, last.content, last.t, capture=j.label))
    return items


def _unreached(ctx: Context) -> Outcome | None:
    cap = ctx.primary.capture
    if cap.status is None:
        return Outcome.failed(f"no HTTP response ({cap.end_reason})", measured=None)
    return None


@check("timing.ttfb", description="time to first byte below the limit (median over the primary and the repeats)")
def ttfb(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    limit = ctx.setting("timing.ttfb_ms", 2401)
    j = judged(ctx, lambda m: m.ttfb_ms)
    if j.value is None:
        return Outcome.failed("no byte of body received" + j.note("ms"), measured=None, threshold=f"< {limit} ms")
    return Outcome.of(j.value < limit, f"first byte after {j.value:.0f} ms" + j.note("ms"),
                      measured=round(j.value, 1), threshold=f"< {limit} ms",
                      evidence=[evidence(0, None, j.transcript.capture.t_first_byte, capture=j.label)])


@check("timing.ttft", description="time to first meaningful content below the limit (placeholders do not count; "
                                  "median over the primary and the repeats)")
def ttft(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    limit = ctx.setting("timing.ttft_ms", 2401)
    j = judged(ctx, lambda m: m.ttft_ms)
    if j.value is None:
        return Outcome.failed("no content arrived" + j.note("ms"), measured=None, threshold=f"< {limit} ms")
    return Outcome.of(j.value < limit, f"first content after {j.value:.0f} ms" + j.note("ms"),
                      measured=round(j.value, 1), threshold=f"< {limit} ms", evidence=_first_content_evidence(j))


@check("timing.tokens_per_s", description="content tokens / (last content time - first content time) above the "
                                          "limit (median over the primary and the repeats)")
def tokens_per_s(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    limit = ctx.setting("timing.tokens_per_s", 29)
    j = judged(ctx, lambda m: m.tokens_per_s, higher_is_better=True)
    m, note = j.metrics, j.note("tokens/s", 1)
    threshold = f"> {limit}"
    if m.tokens is None:
        # tiktoken missing is the harness's limitation (skip); a server that reports no usage is the endpoint's.
        if m.token_method == "tiktoken":
            return Outcome.skip(f"cannot count tokens by tiktoken: {m.token_note}", threshold=threshold)
        return Outcome.failed(f"cannot count tokens by {m.token_method}: {m.token_note}"
                              + _usage_hint(j.transcript) + note, measured=None, threshold=threshold)
    if m.tokens_per_s is None:
        return Outcome.failed(_no_rate_reason(m) + ": no streaming rate to measure" + note, measured=None,
                              threshold=threshold, evidence=_first_content_evidence(j))
    return Outcome.of(m.tokens_per_s > limit,
                      f"{m.tokens} tokens ({m.token_method}) at {m.tokens_per_s:.1f} tokens/s" + note,
                      measured=round(m.tokens_per_s, 2), threshold=threshold, evidence=_rate_evidence(j))


def _no_rate_reason(m: Metrics) -> str:
    """Why tokens/s is undefined, in the endpoint's terms."""
    if m.chunks == 0:
        return "no content arrived"
    if m.first_content_index is None:
        return f"{m.chunks} content chunk(s), only placeholders (whitespace or dots)"
    if m.chunks == 1:
        return "all the content arrived in one chunk"
    return f"all {m.chunks} content chunks arrived within {MIN_RATE_SPAN_S * 1000:.0f} ms"


def _usage_hint(transcript: Transcript) -> str:
    """token_method=usage needs a usage report; say how to get one when the request could not have asked."""
    if transcript.metrics.token_method != "usage":
        return ""
    if getattr(transcript.capture.request, "dialect", None) == "prompt":
        return (" (the prompt dialect has no way to ask for usage: use --dialect openai, which sends "
                "stream_options.include_usage, or another token_method)")
    return ""


@check("timing.itl", description="gaps between content chunks: p99 and max below the limits (the median request)")
def itl(ctx: Context) -> Outcome:
    p99_limit = ctx.setting("timing.itl_p99_ms", 2000)
    max_limit = ctx.setting("timing.itl_max_ms", 5000)
    threshold = f"p99 <= {p99_limit} ms, max <= {max_limit} ms"

    def over_limits(m: Metrics) -> float | None:
        """How far the worse of the two figures goes toward its limit (1.0 = at it): the median of this is the
        request whose own verdict is the median verdict."""
        if not m.gaps_ms:
            return None
        if p99_limit > 0 and max_limit > 0:
            return max(m.itl_ms["p99"] / p99_limit, m.itl_ms["max"] / max_limit)
        return m.itl_ms["max"]

    j = judged(ctx, over_limits, spread_key=lambda m: m.itl_ms["max"])
    m = j.metrics
    if not m.gaps_ms:
        return Outcome.skip("fewer than two content chunks: no gaps" + j.note("ms"), threshold=threshold)
    p99, worst = m.itl_ms["p99"], m.itl_ms["max"]
    measured = {k: round(v, 1) for k, v in m.itl_ms.items() if v is not None}
    ok = p99 <= p99_limit and worst <= max_limit
    content = j.transcript.content_chunks
    i = max(range(len(m.gaps_ms)), key=m.gaps_ms.__getitem__)
    ev = [evidence(content[i + 1].offset, content[i + 1].content, content[i + 1].t, gap_ms=round(m.gaps_ms[i], 1),
                   capture=j.label)]
    note = j.note("ms", of="largest gap per request ")
    return Outcome.of(ok, f"inter-chunk gap p50 {m.itl_ms['p50']:.0f} ms, p99 {p99:.0f} ms, max {worst:.0f} ms" + note,
                      measured=measured, threshold=threshold, evidence=ev)


@check("timing.e2e", description="the whole stream completes within the limit (median over the primary and the "
                                 "repeats)")
def e2e(ctx: Context) -> Outcome:
    if (bad := _unreached(ctx)) is not None:
        return bad
    limit = ctx.setting("timing.e2e_ms", 60000)
    j = judged(ctx, lambda m: m.e2e_ms)
    cap = j.transcript.capture
    got = j.value
    # Only the duration is judged here: how the stream ended is framing.complete's business.
    return Outcome.of(got is not None and got <= limit,
                      f"stream ended ({cap.end_reason}) after {got or 0.0:.0f} ms" + j.note("ms"),
                      measured=round(got or 0.0, 1), threshold=f"<= {limit} ms",
                      evidence=[evidence(len(cap.body), None, cap.t_end, capture=j.label)])


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
