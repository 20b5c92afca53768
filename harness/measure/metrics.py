"""Stream metrics from one transcript: a pure function, shared by the timing checks, the run result and bench.

Definitions (all times are milliseconds measured from the moment the request was sent):

- ``ttfb_ms``: first response byte (headers excluded when the capture separates them).
- ``ttft_ms``: first *meaningful* content delta. A role-only chunk, an empty ``content: ""`` chunk, and a
  placeholder made only of whitespace and dots (``" "``, ``"..."``, ``"…"``) do not stop the clock: sending one
  early is the classic way to fake a low latency, and no reader sees an answer in it.
- ``e2e_ms``: end of the body (or the moment the capture was cut).
- ``chunks``: events carrying at least one character of content (placeholders included: they were delivered).
- ``chars``: length of the joined content; ``tokens`` by the named ``token_method`` (harness/measure/tokens.py).
- ``tokens_per_s = tokens / (last content time - first meaningful content time)``. With one content chunk, or all
  content within ``MIN_RATE_SPAN_S`` (10 ms: one buffered write split into a few TCP reads), the span says
  nothing about a generation rate, so the rate is undefined: ``None`` (and the timing check fails, since the
  text was not streamed).
- ``itl_ms``: gaps between consecutive content chunks; p50/p90/p99 by linear interpolation between closest
  ranks (numpy's default), and max. ``None`` with fewer than two content chunks.
- ``burst``: how much of the content arrived at once. ``share`` is the largest fraction of content characters
  received within any window of ``window_ms``; ``silence_ms`` is the silence just before that window (since the
  previous content chunk, or since the request was sent). A buffered endpoint shows share ~1.0 after a silence
  as long as the whole run; a streaming one shows a small share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.measure.tokens import DEFAULT_METHOD, token_count
from harness.parse.decode import Chunk

DEFAULT_BURST_WINDOW_MS = 200.0
MIN_RATE_SPAN_S = 0.010
_PLACEHOLDER_CHARS = " \t\r\n.\u2026\u00a0"


def is_meaningful(content: str | None) -> bool:
    """True when a delta carries real text: not empty, whitespace or dots only (see module docstring)."""
    return bool(content) and bool(content.strip(_PLACEHOLDER_CHARS))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


@dataclass(slots=True)
class Burst:
    share: float | None = None  # largest fraction of content chars inside one window
    window_ms: float = DEFAULT_BURST_WINDOW_MS
    silence_ms: float | None = None  # silence right before that window
    start_ms: float | None = None  # when the burst window starts (since request sent)
    start_index: int | None = None  # index, among the content chunks, of the first chunk in that window


@dataclass(slots=True)
class Metrics:
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    chunks: int = 0
    chars: int = 0
    tokens: int | None = None
    token_method: str = DEFAULT_METHOD
    token_note: str | None = None
    tokens_per_s: float | None = None
    itl_ms: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(("p50", "p90", "p99", "max")))
    burst: Burst = field(default_factory=Burst)
    gaps_ms: list[float] = field(default_factory=list)  # every inter-chunk gap, for bench and reports
    first_content_index: int | None = None  # index (in the chunk list) of the chunk that stopped the TTFT clock
    # Time to the first reasoning/thinking delta (reasoning models): reported beside TTFT, which stays the first
    # *answer* text. None when the stream carried no reasoning.
    ttfr_ms: float | None = None
    # Where the times come from (harness/capture/netstream.py): "kernel" receive stamps or "userspace" loop readings, and
    # how far off TTFT can be: with kernel stamps, a read that carried several events gives them all its last
    # segment's stamp, so the first text may have come up to (its read - the read before) earlier; userspace
    # stamps are late by however long the loop was busy, which cannot be known (None).
    clock: str | None = None
    ttft_error_bound_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result JSON's ``metrics`` object (gaps left out: unbounded)."""
        d = asdict(self)
        d.pop("gaps_ms")
        d.pop("first_content_index")
        if d["token_note"] is None:
            d.pop("token_note")
        for key in ("ttfr_ms", "clock", "ttft_error_bound_ms"):
            if d[key] is None:
                d.pop(key)
        return d


def _ms(a: float | None, t0: float) -> float | None:
    return None if a is None else (a - t0) * 1000.0


def burst_of(times: Sequence[float], sizes: Sequence[int], t0: float,
             window_ms: float = DEFAULT_BURST_WINDOW_MS) -> Burst:
    """Largest share of characters arriving within one window (two-pointer sweep, O(n))."""
    total = sum(sizes)
    if not times or total <= 0:
        return Burst(window_ms=window_ms)
    window_s = window_ms / 1000.0
    best, best_start, lo, running = -1, 0, 0, 0
    for hi in range(len(times)):
        running += sizes[hi]
        while times[hi] - times[lo] > window_s:
            running -= sizes[lo]
            lo += 1
        if running > best:
            best, best_start = running, lo
    previous = times[best_start - 1] if best_start > 0 else t0
    return Burst(share=best / total, window_ms=window_ms, silence_ms=(times[best_start] - previous) * 1000.0,
                 start_ms=(times[best_start] - t0) * 1000.0, start_index=best_start)


def compute_metrics(chunks: Sequence[Chunk], *, t_request_sent: float | None = 0.0,
                    t_first_byte: float | None = None, t_end: float | None = None,
                    token_method: str = DEFAULT_METHOD,
                    burst_window_ms: float = DEFAULT_BURST_WINDOW_MS) -> Metrics:
    """Metrics of one stream from its decoded chunks and the capture's times (seconds since request start)."""
    t0 = t_request_sent or 0.0
    content = [c for c in chunks if c.has_text]
    text = "".join(c.content for c in content)  # type: ignore[misc]
    usage = next((c.usage for c in reversed(chunks) if c.usage), None)
    counted = token_count(text, token_method, usage=usage, chunks=len(content))
    m = Metrics(ttfb_ms=_ms(t_first_byte, t0), e2e_ms=_ms(t_end, t0), chunks=len(content), chars=len(text),
                tokens=counted.tokens, token_method=counted.method, token_note=counted.note)
    first = next((i for i, c in enumerate(chunks) if is_meaningful(c.content)), None)
    m.first_content_index = first
    reasoning = next((c for c in chunks if getattr(c, "reasoning", None)), None)
    if reasoning is not None:
        m.ttfr_ms = _ms(reasoning.t, t0)
    if first is not None:
        t_first = chunks[first].t
        m.ttft_ms = _ms(t_first, t0)
        span = content[-1].t - t_first
        if span >= MIN_RATE_SPAN_S and counted.tokens is not None:
            m.tokens_per_s = counted.tokens / span
    times = [c.t for c in content]
    m.gaps_ms = [(b - a) * 1000.0 for a, b in zip(times, times[1:], strict=False)]
    if m.gaps_ms:
        m.itl_ms = {"p50": percentile(m.gaps_ms, 50), "p90": percentile(m.gaps_ms, 90),
                    "p99": percentile(m.gaps_ms, 99), "max": max(m.gaps_ms)}
    m.burst = burst_of(times, [len(c.content or "") for c in content], t0, burst_window_ms)
    return m


def median_pick(values: Sequence[float | None], *, higher_is_better: bool = False) -> int | None:
    """Index of the median among several captures' values of one metric; None for no values.

    A missing value (``None``: never measured, e.g. no content arrived) ranks as the worst. With an even count the
    worse of the two middle values is taken, so the judged number is always one a request actually showed (its
    evidence can be shown) and a sample split down the middle never favours the endpoint. Equal values keep their
    order: the earlier capture (the primary first) is picked.
    """
    def badness(i: int) -> tuple[int, float]:
        v = values[i]
        if v is None:
            return (1, 0.0)
        return (0, -v if higher_is_better else v)

    order = sorted(range(len(values)), key=badness)  # best first
    return order[len(order) // 2] if order else None


def spread_of(values: Sequence[float | None], *, higher_is_better: bool = False) -> dict[str, Any]:
    """One metric over several captures: ``n``, the ``median`` (as ``median_pick`` chooses it), ``min``, ``max``
    and ``missing`` (captures where it could not be measured)."""
    present = [v for v in values if v is not None]
    i = median_pick(values, higher_is_better=higher_is_better)
    return {"n": len(values), "median": None if i is None else values[i], "min": min(present, default=None),
            "max": max(present, default=None), "missing": len(values) - len(present)}


def metrics_from_capture(capture: Any, chunks: Sequence[Chunk], token_method: str = DEFAULT_METHOD,
                         burst_window_ms: float = DEFAULT_BURST_WINDOW_MS) -> Metrics:
    """``compute_metrics`` with the times taken from a Capture, plus its clock and TTFT's error bound."""
    m = compute_metrics(chunks, t_request_sent=capture.t_request_sent, t_first_byte=capture.t_first_byte,
                        t_end=capture.t_end, token_method=token_method, burst_window_ms=burst_window_ms)
    m.clock = getattr(capture, "clock", None)
    if m.clock == "kernel" and m.first_content_index is not None:
        m.ttft_error_bound_ms = _coalescing_bound_ms(capture, chunks, chunks[m.first_content_index].t)
    return m


def _coalescing_bound_ms(capture: Any, chunks: Sequence[Chunk], t: float) -> float:
    """How much earlier than ``t`` the event stamped ``t`` may have arrived: 0 when its read carried it alone,
    else the time since the read before (or since the request was sent)."""
    if sum(1 for c in chunks if c.t == t) <= 1:
        return 0.0
    earlier = [r.t for r in capture.reads if r.t < t]
    before = max(earlier) if earlier else (capture.t_request_sent or 0.0)
    return round(max(0.0, t - before) * 1000.0, 3)
