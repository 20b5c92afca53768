"""The run report: one endpoint's verdict, its checks (failing first) with evidence, the arrival timeline and the
raw transcript, from a run result dict (the JSON of ``schemas/result.schema.json``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from harness.grade.scoring import CREDIT
from reports.render import (
    MAX_EVIDENCE_ITEMS,
    MAX_TRANSCRIPT_CHARS,
    downsample,
    finite_float,
    number,
    render_page,
)

# Failing first (required before advisory), then warnings, skips, passes: what needs attention is on top.
STATUS_ORDER = {"fail": 0, "error": 0, "warn": 1, "skip": 2, "pass": 3}

METRIC_LABELS = (
    ("ttfb_ms", "TTFB", "ms"),
    ("ttft_ms", "TTFT", "ms"),
    ("e2e_ms", "end to end", "ms"),
    ("chunks", "chunks", ""),
    ("chars", "characters", ""),
    ("tokens", "tokens", ""),
    ("tokens_per_s", "tokens/s", ""),
)


def _check_key(check: Mapping[str, Any]) -> tuple:
    status = str(check.get("status", "")).lower()
    return (STATUS_ORDER.get(status, 1), 0 if check.get("required", True) else 1, str(check.get("id", "")))


def _checks_view(checks: list) -> list[dict]:
    out = []
    for c in sorted((c for c in checks if isinstance(c, Mapping)), key=_check_key):
        evidence = [e for e in (c.get("evidence") or []) if isinstance(e, Mapping)]
        status = str(c.get("status", "")).lower()
        out.append({
            "id": str(c.get("id", "?")),
            "category": str(c.get("category", "")),
            "status": status if status in STATUS_ORDER else "other",
            "status_text": status or "?",
            "required": bool(c.get("required", True)),  # unknown counts as required: never a false PASS
            "measured": c.get("measured"),
            "threshold": c.get("threshold"),
            "message": c.get("message") or "",
            "evidence": evidence[:MAX_EVIDENCE_ITEMS],
            "evidence_hidden": max(0, len(evidence) - MAX_EVIDENCE_ITEMS),
            "reproduce": c.get("reproduce") or "",
        })
    return out


def _clients_view(checks: list) -> list[dict]:
    """One row per client that read the endpoint (``clients.<name>`` checks that apply): the client matrix."""
    rows = []
    for c in checks:
        if not isinstance(c, Mapping) or c.get("category") != "clients" or c.get("applicable") is False:
            continue
        measured = c.get("measured") if isinstance(c.get("measured"), Mapping) else {}
        rows.append({
            "name": str(c.get("id", "")).split(".", 1)[-1],
            "client": measured.get("client"),
            "status": str(c.get("status", "")).lower(),
            "chars": measured.get("chars"),
            "harness_chars": measured.get("harness_chars"),
            "first_text_ms": finite_float(measured.get("first_text_ms")),
            "harness_ttft_ms": finite_float(measured.get("harness_ttft_ms")),
            "message": c.get("message") or "",
        })
    return rows


def timeline_points(timeline: list) -> tuple[list[list[float]], dict]:
    """``[[t_ms, cumulative_chars, chars, gap_ms, offset], ...]`` plus facts for the captions.

    ``timeline[i].chars`` is the number of content characters that event carried; the chart plots their running
    total against the arrival time, so a flat stretch is a stall and the first rise is the TTFT.
    """
    events = []
    for e in timeline:
        if not isinstance(e, Mapping):
            continue
        t = finite_float(e.get("t"))
        if t is None:
            continue
        events.append((t * 1000.0, int(finite_float(e.get("chars")) or 0), int(finite_float(e.get("offset")) or 0)))
    events.sort(key=lambda x: x[0])
    points: list[list[float]] = []
    total = 0
    prev_t = None
    largest_gap = (0.0, -1)
    for i, (t_ms, chars, offset) in enumerate(events):
        total += chars
        gap = t_ms - prev_t if prev_t is not None else 0.0
        if gap > largest_gap[0]:
            largest_gap = (gap, i)
        points.append([round(t_ms, 3), total, chars, round(gap, 3), offset])
        prev_t = t_ms
    first_content = next((p[0] for p in points if p[2] > 0), None)
    shown = downsample(points, keep={largest_gap[1]} if largest_gap[1] >= 0 else None)
    facts = {
        "events": len(points),
        "shown": len(shown),
        "first_content_ms": first_content,
        "largest_gap_ms": largest_gap[0] if largest_gap[1] >= 0 else None,
        "largest_gap_at_ms": points[largest_gap[1]][0] if largest_gap[1] >= 0 else None,
        "total_chars": total,
    }
    return shown, facts


def _transcript_view(transcript: Any) -> dict:
    if not isinstance(transcript, Mapping):
        return {"text": "", "present": False, "truncated": False, "cut_here": False, "bytes": None, "shown": 0}
    text = transcript.get("text")
    text = "" if text is None else str(text)
    cut_here = len(text) > MAX_TRANSCRIPT_CHARS
    shown = text[:MAX_TRANSCRIPT_CHARS]
    return {
        "text": shown,
        "present": True,
        "truncated": bool(transcript.get("truncated")),
        "cut_here": cut_here,
        "bytes": finite_float(transcript.get("bytes")),
        "shown": len(shown),
        "length": len(text),
    }


def _main_reproduce(checks: list[dict]) -> str:
    """The command most checks share (usually the primary request), shown once at the top."""
    commands = Counter(c["reproduce"] for c in checks if c["reproduce"])
    return commands.most_common(1)[0][0] if commands else ""


def _title(passed: bool, grade: Mapping[str, Any] | None) -> str:
    verdict = "PASS" if passed else "FAIL"
    if grade is None or grade.get("score") is None:
        return f"streamconform run: {verdict}"
    return f"streamconform grade: {number(grade['score'])} / {number(grade.get('max_score'))}, run {verdict}"


def render_run(result: Mapping[str, Any], grade: Mapping[str, Any] | None = None) -> str:
    """A self-contained HTML page for one run result; ``grade`` (``grade_record.grade_view``) adds the score
    a grader gave it, out of the maximum, and each graded check's weight and points."""
    if not isinstance(result, Mapping):
        raise TypeError("render_run expects the run result as a dict")
    checks = _checks_view(list(result.get("checks") or []))
    counts = Counter(c["status"] for c in checks)
    required_failed = [c for c in checks if c["status"] == "fail" and c["required"]]
    advisory_failed = [c for c in checks if c["status"] == "fail" and not c["required"]]
    passed = result.get("passed")
    if not isinstance(passed, bool):
        passed = not required_failed
    root_cause = result.get("root_cause") if isinstance(result.get("root_cause"), Mapping) else None
    metrics = result.get("metrics") if isinstance(result.get("metrics"), Mapping) else {}
    itl = metrics.get("itl_ms") if isinstance(metrics.get("itl_ms"), Mapping) else {}
    points, facts = timeline_points(list(result.get("timeline") or []))
    ttft = finite_float(metrics.get("ttft_ms"))
    data = {
        "timeline": points,
        "ttft_ms": ttft if ttft is not None else facts["first_content_ms"],
        "ttfb_ms": finite_float(metrics.get("ttfb_ms")),
        "largest_gap_at_ms": facts["largest_gap_at_ms"],
        "largest_gap_ms": facts["largest_gap_ms"],
    }
    return render_page(
        "run.html.j2",
        title=_title(passed, grade),
        data=data,
        script="run.js",
        result=result,
        target=str(result.get("target", "")),
        profile=str(result.get("profile", "")),
        started_at=str(result.get("started_at", "")),
        passed=passed,
        checks=checks,
        counts=counts,
        required_failed=required_failed,
        advisory_failed=advisory_failed,
        root_cause=root_cause,
        metrics=[(label, metrics.get(key), unit) for key, label, unit in METRIC_LABELS if key in metrics],
        token_method=str(metrics.get("token_method", "")),
        itl=[(k, itl.get(k)) for k in ("p50", "p90", "p99", "max") if k in itl],
        facts=facts,
        transcript=_transcript_view(result.get("transcript")),
        clients=_clients_view(list(result.get("checks") or [])),
        reproduce=_main_reproduce(checks),
        grade=grade,
        warn_credit=CREDIT.get("warn"),
    )
