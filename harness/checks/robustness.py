"""robustness: the endpoint under parallel streams, after a dropped stream, and over repeated requests.

The captures come from harness/run/robustness.py (``ctx.probes["robustness.<part>.<n>"]``); each is parsed, decoded and
measured here with the same pipeline as the main capture, so the checks re-run offline from a saved bundle.

"Conforms" for an extra stream means: a 2xx answer, a body that ended normally (eof), parsed as SSE or NDJSON, with
content, no event that is not JSON, no error event -- and no *required* http/framing/schema/stream check failing on
it. A problem the main stream has as well does not count: those checks already report it, and the question here
is only whether the endpoint does worse under these conditions (so an endpoint whose every answer breaks off with
an error fails errors.midstream, not the robustness checks).
"""

from __future__ import annotations

from typing import Any

from harness.checks import Context, Outcome, check, evidence, load_checks
from harness.checks.catalog import numbered_probes, repeat_captures
from harness.measure.metrics import percentile
from harness.measure.transcript import Transcript

_CONFORMANCE_CATEGORIES = ("http", "framing", "schema", "stream")


def numbered(probes: dict[str, Any], prefix: str) -> list[Any]:
    """Captures filed as ``<prefix><n>`` in n order (``robustness.repeats.warmup.0`` is not a repeat)."""
    return [cap for _, cap in numbered_probes(probes, prefix)]


def basic_problems(tr: Transcript) -> list[str]:
    """What makes one extra stream unusable, in words."""
    cap = tr.capture
    if cap.status is None:
        return [f"no HTTP answer ({cap.end_reason}: {cap.error or 'no detail'})"]
    problems = []
    if not 200 <= cap.status < 300:
        problems.append(f"status {cap.status}")
    if cap.end_reason != "eof":
        problems.append(f"ended by {cap.end_reason}" + (f" ({cap.error})" if cap.error else ""))
    if getattr(tr.parsed, "kind", None) == "unknown":
        problems.append("not an SSE or NDJSON stream")
    if not tr.content_chunks:
        problems.append("no content")
    bad_json = [c for c in tr.chunks if c.json_error and not c.done]
    if bad_json:
        problems.append(f"events that are not JSON ({len(bad_json)})")
    if any(c.error is not None for c in tr.chunks):
        problems.append("an error event")
    return problems


def _outcome_of(func: Any, ctx: Context) -> Outcome | None:
    try:
        return func(ctx)
    except Exception:  # noqa: BLE001 - a check that raises is that check's failure, reported by the engine
        return None


def regressions(ctx: Context, tr: Transcript) -> list[str]:
    """Required conformance checks that fail on ``tr`` but not on the main capture."""
    found = []
    rule = getattr(ctx.profile, "rule", None)
    for check_id, spec in load_checks().items():
        if spec.category not in _CONFORMANCE_CATEGORIES:
            continue
        if callable(rule):
            r = rule(check_id)
            if not (r.enabled and r.required):
                continue
        here = _outcome_of(spec.func, Context(profile=ctx.profile, primary=tr))
        if here is None or here.status != "fail":
            continue
        there = _outcome_of(spec.func, Context(profile=ctx.profile, primary=ctx.primary))
        if there is not None and there.status == "fail":
            continue
        found.append(f"{check_id}: {here.message}")
    return found


def _label(problem: str) -> str:
    """A problem without its varying detail, to compare an extra stream's problems with the main stream's."""
    return problem.split(" (", 1)[0]


def stream_problems(ctx: Context, tr: Transcript) -> list[str]:
    """Problems of an extra stream that the main stream does not have (those are other checks' findings)."""
    baseline = {_label(p) for p in basic_problems(ctx.primary)}
    problems = [p for p in basic_problems(tr) if _label(p) not in baseline]
    if tr.capture.status is not None:
        problems += [p for p in regressions(ctx, tr) if p not in problems]
    return problems


def stream_evidence(tr: Transcript, label: str) -> dict[str, Any]:
    cap = tr.capture
    body = cap.body
    excerpt = body[:160].decode("utf-8", "replace") if body else (cap.error or "")
    return evidence(offset=0 if body else None, excerpt=excerpt, t=cap.t_end, stream=label, status=cap.status,
                    end_reason=cap.end_reason)


def _skip_reason(ctx: Context, part: str) -> str:
    info = ctx.extra.get("robustness") or {}
    reason = (info.get("skipped") or {}).get(part)
    if reason:
        return reason
    stage_error = (ctx.extra.get("stage_errors") or {}).get("robustness")
    if stage_error:
        return f"not run: {stage_error}"
    return f"not run (the profile's [robustness] section turns {part} off, or the run was re-checked without it)"


@check("robustness.concurrency", category="robustness",
       description="K parallel streams all conform and their TTFT p90 stays within the threshold")
def concurrency(ctx: Context) -> Outcome:
    caps = numbered(ctx.probes, "robustness.concurrency.")
    if not caps:
        return Outcome.skip(_skip_reason(ctx, "concurrency"))
    limit = ctx.setting("robustness.ttft_p90_ms", ctx.setting("timing.ttft_ms"))
    transcripts = [ctx.transcript(c) for c in caps]
    problems, items = [], []
    for i, tr in enumerate(transcripts):
        found = stream_problems(ctx, tr)
        if found:
            problems.append(f"stream {i + 1}: {'; '.join(found)}")
            items.append(stream_evidence(tr, f"concurrent {i + 1}"))
    ttfts = [tr.metrics.ttft_ms for tr in transcripts if tr.metrics.ttft_ms is not None]
    p90 = percentile(ttfts, 90)
    k = len(caps)
    measured = {"streams": k, "conforming": k - len(problems), "ttft_p90_ms": None if p90 is None else round(p90, 1)}
    threshold = f"all {k} conform" + (f"; TTFT p90 < {limit} ms" if limit is not None else "")
    if problems:
        return Outcome.failed(f"{len(problems)} of {k} parallel streams did not conform: " + " | ".join(problems),
                              measured=measured, threshold=threshold, evidence=items)
    if limit is not None and (p90 is None or p90 >= float(limit)):
        slowest = max(transcripts, key=lambda tr: tr.metrics.ttft_ms or 0.0)
        return Outcome.failed(f"with {k} parallel streams the TTFT p90 is {p90:.0f} ms, not below {limit} ms",
                              measured=measured, threshold=threshold,
                              evidence=[stream_evidence(slowest, "slowest concurrent")])
    p90_text = f"{p90:.0f} ms" if p90 is not None else "n/a"
    return Outcome.passed(f"{k} parallel streams all conform; TTFT p90 {p90_text}", measured=measured,
                          threshold=threshold)


@check("robustness.disconnect", category="robustness",
       description="after the harness drops a stream half-way, the next request is served normally")
def disconnect(ctx: Context) -> Outcome:
    dropped = ctx.probes.get("robustness.disconnect.dropped")
    following = ctx.probes.get("robustness.disconnect.next")
    if dropped is None:
        return Outcome.skip(_skip_reason(ctx, "disconnect"))
    threshold = "the request after a dropped stream conforms"
    if following is None:
        skipped = ((ctx.extra.get("robustness") or {}).get("skipped") or {}).get("disconnect")
        return Outcome.skip(skipped or "the request after the drop was not sent (run deadline)")
    tr = ctx.transcript(following)
    problems = stream_problems(ctx, tr)
    measured = {"dropped": dropped.end_reason, "next_status": following.status, "next_end": following.end_reason}
    if problems:
        return Outcome.failed("after a client dropped a stream mid-way, the next request failed: "
                              + "; ".join(problems), measured=measured, threshold=threshold,
                              evidence=[stream_evidence(tr, "after the drop")])
    if dropped.end_reason != "cancelled":
        return Outcome.warned(f"the stream to drop ended by itself ({dropped.end_reason}) before the drop point, so "
                              "the disconnect was not exercised; the next request was served normally",
                              measured=measured, threshold=threshold)
    return Outcome.passed("a stream dropped mid-way did not disturb the next request", measured=measured,
                          threshold=threshold)


@check("robustness.repeats", category="robustness",
       description="N repeated requests (after a warm-up) are all served normally (the timing checks judge the "
                   "median over them and the primary)")
def repeats(ctx: Context) -> Outcome:
    named = repeat_captures(ctx.probes, ctx.profile)
    if not named:
        return Outcome.skip(_skip_reason(ctx, "repeats"))
    failed, items = [], []
    for i, (_, cap) in enumerate(named):
        tr = ctx.transcript(cap)
        found = stream_problems(ctx, tr)
        if found:
            failed.append(f"repeat {i + 1}: {'; '.join(found)}")
            items.append(stream_evidence(tr, f"repeat {i + 1}"))
    n = len(named)
    measured = {"n": n, "conforming": n - len(failed)}
    threshold = f"all {n} served normally"
    cut = (ctx.extra.get("robustness") or {}).get("repeats_cut")
    if failed:
        return Outcome.failed(f"{len(failed)} of {n} repeated requests failed: " + " | ".join(failed)
                              + (f" ({cut})" if cut else ""), measured=measured, threshold=threshold, evidence=items)
    # Their timing is not judged here: timing.ttfb/ttft/tokens_per_s/itl/e2e take the median over these and the
    # primary and report its spread.
    return Outcome.passed(f"{n} repeated requests all served normally" + (f" ({cut})" if cut else "")
                          + "; timing.* judge the median over them and the primary", measured=measured,
                          threshold=threshold)
