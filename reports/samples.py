"""Realistic sample documents of each kind the reports render: used by the tests and to preview the designs
(``python -m reports.samples OUTDIR`` writes one page of each kind).

They are built the way the harness builds them (a stream of SSE events, a roster of submissions, load levels with
per-request records) and carry hostile strings where an endpoint could put them, so every page is also an
escaping test.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

HOSTILE = '<script>alert("x")</script><img src="http://127.0.0.1:9/pwn.png" onerror="alert(1)">'

CURL = ("curl -N -sS -X POST 'http://127.0.0.1:8765/v1/chat/completions' -H 'content-type: application/json' "
        "-H 'accept: text/event-stream' --data-raw '{\"model\":\"demo\",\"stream\":true,\"messages\":"
        "[{\"role\":\"user\",\"content\":\"Explain how TCP slow start works.\"}]}'")


def _sse_stream(words: list[str], rng: random.Random, stall_at: int | None) -> tuple[str, str, list[dict]]:
    """An OpenAI-style SSE body, the answer text it carries, and the timeline of its content chunks
    (t in seconds since the request, byte offset of the event, characters of content), as harness/run/runner.py
    builds them."""
    parts: list[str] = []
    text: list[str] = []
    timeline: list[dict] = []
    offset = 0
    t = 0.18 + rng.random() * 0.05

    def emit(payload: str, content: str | None) -> None:
        nonlocal offset
        block = f"data: {payload}\n\n"
        if content:
            timeline.append({"t": round(t, 6), "offset": offset, "chars": len(content)})
            text.append(content)
        parts.append(block)
        offset += len(block.encode())

    emit(json.dumps({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}), None)
    for i, word in enumerate(words):
        t += 0.012 + rng.random() * 0.02
        if stall_at is not None and i == stall_at:
            t += 0.9  # a visible stall, as when a backend flushes late
        piece = (" " if i else "") + word
        emit(json.dumps({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"content": piece}}]}), piece)
    t += 0.01
    emit(json.dumps({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}), None)
    t += 0.002
    emit("[DONE]", None)
    return "".join(parts), "".join(text), timeline


def run_result(*, passed: bool = False, words: int = 90, seed: int = 7, hostile: bool = True) -> dict[str, Any]:
    """A run result as ``harness/result.py`` writes it (schema_version 1)."""
    rng = random.Random(seed)
    vocabulary = ("TCP slow start doubles the congestion window every round trip until a loss or the slow start "
                  "threshold is reached then congestion avoidance grows it linearly").split()
    text_words = [vocabulary[i % len(vocabulary)] for i in range(words)]
    if hostile:
        text_words[5] = HOSTILE
    transcript, answer, timeline = _sse_stream(text_words, rng, stall_at=words // 2)
    content_times = [e["t"] for e in timeline]
    gaps = sorted((b - a) * 1000 for a, b in zip(content_times, content_times[1:], strict=False))
    ttft = content_times[0] * 1000
    e2e = timeline[-1]["t"] * 1000 + 14.5
    chars = sum(e["chars"] for e in timeline)

    def pct(q: float) -> float:
        return round(gaps[min(len(gaps) - 1, int(q * (len(gaps) - 1)))], 3)

    checks = [
        {"id": "http.status", "category": "http", "status": "pass", "required": True, "measured": 200,
         "threshold": 200, "message": "HTTP 200", "evidence": [], "reproduce": CURL},
        {"id": "http.content_type", "category": "http", "status": "pass", "required": True,
         "measured": "text/event-stream; charset=utf-8", "threshold": "text/event-stream",
         "message": "SSE content type", "evidence": [], "reproduce": CURL},
        {"id": "framing.line_endings", "category": "framing", "status": "warn", "required": False,
         "measured": {"crlf": 3, "lf": 88}, "threshold": "one style", "message": "mixed line endings (CRLF and LF)",
         "evidence": [{"offset": 1203, "excerpt": 'data: {"choices":[]}\r\n\r\n', "t": 0.31}],
         "reproduce": CURL},
        {"id": "stream.done", "category": "stream", "status": "pass", "required": True, "measured": True,
         "threshold": True, "message": "[DONE] received", "evidence": [], "reproduce": CURL},
        {"id": "timing.ttft", "category": "timing", "status": "pass", "required": True,
         "measured": round(ttft, 3), "threshold": 2401, "message": f"first content after {ttft:.0f} ms",
         "evidence": [{"offset": timeline[0]["offset"], "excerpt": transcript[:80], "t": content_times[0]}],
         "reproduce": CURL},
        {"id": "timing.itl", "category": "timing", "status": "pass" if passed else "fail", "required": True,
         "measured": round(gaps[-1], 3), "threshold": 500,
         "message": f"longest gap between content events {gaps[-1]:.0f} ms exceeds 500 ms",
         "evidence": [{"offset": timeline[words // 2]["offset"],
                       "excerpt": transcript[timeline[words // 2]["offset"]:][:120],
                       "t": timeline[words // 2]["t"]}],
         "reproduce": CURL},
        {"id": "content.relevance", "category": "content", "status": "pass" if passed else "fail",
         "required": True, "measured": 0.12, "threshold": 0.2,
         "message": "answer shares little with the prompt: " + (HOSTILE if hostile else "low overlap"),
         "evidence": [{"offset": 0, "excerpt": HOSTILE if hostile else "TCP slow start", "t": 0.2}],
         "reproduce": CURL + " # prompt 2"},
        {"id": "errors.cors", "category": "errors", "status": "skip", "required": False, "measured": None,
         "threshold": None, "message": "no Origin configured in the profile", "evidence": [], "reproduce": ""},
    ]
    return {
        "schema_version": 1,
        "harness_version": "0.1.0",
        "target": "http://127.0.0.1:8765/v1/chat/completions" + ("?q=" + HOSTILE if hostile else ""),
        "profile": "openai-chat",
        "passed": passed,
        "started_at": "2026-11-24T05:12:03Z",
        "metrics": {
            "ttfb_ms": round(ttft - 3.2, 3), "ttft_ms": round(ttft, 3), "e2e_ms": round(e2e, 3),
            "chunks": len(timeline), "chars": chars, "tokens": chars // 4, "token_method": "chars/4",
            "tokens_per_s": round((chars / 4) / ((e2e - ttft) / 1000), 3),
            "itl_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": round(gaps[-1], 3)},
        },
        "checks": checks,
        "timeline": timeline,
        "transcript": {"text": answer, "truncated": False, "bytes": len(transcript.encode())},
        "status": 200,
        "end_reason": "eof",
    }


def grading_summary(n: int = 24, seed: int = 3, hostile: bool = True) -> dict[str, Any]:
    """A grading summary as ``harness/grade/exports.py`` writes ``OUT/summary.json`` (grade.schema.json
    $defs/summary); each submission's ``result`` is the path of its grade record, relative to the summary."""
    rng = random.Random(seed)
    check_ids = ["timing.ttft", "content.relevance", "stream.done", "errors.cors", "framing.parse",
                 "content.not_padding", "timing.progressive", "http.content_type"]
    submissions = []
    for i in range(n):
        sid = f"student{i:03d}@example.edu"
        if i == 3 and hostile:
            sid = HOSTILE
        stem = f"{i:03d}"
        common = {"id": sid, "result": f"results/{stem}.json", "feedback": f"feedback/{stem}.txt",
                  "gradescope": f"gradescope/{stem}.json"}
        if rng.random() < 0.1:
            submissions.append({**common, "url": f"http://10.0.0.{i}/chat", "status": "blocked_address",
                                "score": 0, "max_score": 10, "passed": False, "failed_checks": [], "ttft_ms": None})
            continue
        failed = [c for c in check_ids if rng.random() < 0.25]
        score = round(10 * (1 - len(failed) / len(check_ids)), 2)
        submissions.append({**common, "url": f"https://app{i}.example.net/api/stream", "status": "ok",
                            "score": score, "max_score": 10, "passed": not failed, "failed_checks": failed,
                            "ttft_ms": round(150 + 400 * rng.random(), 1)})
    by_status: dict[str, int] = {}
    for sub in submissions:
        by_status[sub["status"]] = by_status.get(sub["status"], 0) + 1
    return {"grade_summary_format": 1, "grader_version": "0.1.0", "generated_at": "2026-11-24T05:09:41Z",
            "profile": "tds-q28", "total": n, "graded": n, "passed": sum(1 for s in submissions if s["passed"]),
            "by_status": dict(sorted(by_status.items())), "submissions": submissions}


# Weights of the checks run_result() carries, as a grading profile sets them; errors.auth never runs there
# (not run: 0 points out of its weight) and errors.cors is marked not applicable (left out of the maximum).
SAMPLE_WEIGHTS = {"http.status": 2, "http.content_type": 1, "framing.line_endings": 1.5, "stream.done": 2,
                  "timing.ttft": 2, "timing.itl": 2, "content.relevance": 3, "errors.cors": 1,
                  "errors.auth": 1}


def _scored(result: dict[str, Any] | None) -> dict[str, Any]:
    """The score fields of a grade record, computed as the grader does (harness/grade/scoring.py)."""
    from harness.grade.scoring import score_checks

    checks = result["checks"] if result else []
    for check in checks:
        if check["id"] == "errors.cors":
            check["applicable"] = False
    score = score_checks(checks, SAMPLE_WEIGHTS)
    return {"score": score.score, "max_score": score.max_score, "failed_checks": score.failed,
            "scoring": score.items}


def write_grade_dir(out: Path, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """A grade output directory as the grade command leaves it: summary.json and one grade record per
    submission under results/, the run result nested in it (null when the URL was never requested), scored
    with SAMPLE_WEIGHTS; each summary row takes its record's score."""
    summary = summary or grading_summary()
    (out / "results").mkdir(parents=True, exist_ok=True)
    for i, sub in enumerate(summary["submissions"]):
        result = run_result(passed=not sub["failed_checks"], seed=i) if sub["status"] == "ok" else None
        scored = _scored(result)
        sub.update(score=scored["score"], max_score=scored["max_score"])
        record = {"grade_format": 1, "id": sub["id"], "url": sub["url"], "status": sub["status"],
                  "passed": sub["passed"], "profile": summary.get("profile", ""), "thresholds": {},
                  **scored, "result": result}
        (out / sub["result"]).write_text(json.dumps(record), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return summary


def _bench_level(concurrency: int, rng: random.Random, slowdown: float, slos: dict[str, float]) -> dict:
    records = []
    for i in range(40):
        ttft = (120 + 9 * concurrency) * slowdown * (0.8 + 0.5 * rng.random())
        gaps = [(14 + 0.6 * concurrency) * slowdown * (0.6 + 0.9 * rng.random()) for _ in range(30)]
        ok = rng.random() > 0.01 * concurrency / 4
        e2e = ttft + sum(gaps) + 2
        records.append({"index": i, "ok": ok, "status": 200 if ok else 503,
                        "error_kind": None if ok else "http_status", "ttfb_ms": ttft - 2, "ttft_ms": ttft,
                        "itl_ms": gaps, "itl_max_ms": max(gaps), "tpot_ms": sum(gaps) / 30, "e2e_ms": e2e,
                        "tokens": 31})
    ok = [r for r in records if r["ok"]]

    def dist(vals: list[float]) -> dict:
        vals = sorted(vals)
        return {"count": len(vals), "mean": sum(vals) / len(vals), "min": vals[0], "max": vals[-1],
                **{f"p{p}": vals[min(len(vals) - 1, int(p / 100 * (len(vals) - 1)))] for p in (50, 90, 95, 99)}}

    duration = max(r["e2e_ms"] for r in records) * len(records) / concurrency / 1000
    good = sum(1 for r in ok if r["ttft_ms"] <= slos["ttft_ms"] and r["tpot_ms"] <= slos["tpot_ms"])
    return {
        "label": f"c={concurrency}", "mode": "closed", "concurrency": concurrency, "rate": None,
        "requests": len(records), "completed": len(ok), "failed": len(records) - len(ok),
        "error_rate": (len(records) - len(ok)) / len(records),
        "errors": {"http_status": len(records) - len(ok)} if len(records) > len(ok) else {},
        "duration_s": duration, "requests_per_s": len(ok) / duration,
        "output_tokens": 31 * len(ok), "output_tokens_per_s": 31 * len(ok) / duration,
        "ttfb_ms": dist([r["ttfb_ms"] for r in ok]), "ttft_ms": dist([r["ttft_ms"] for r in ok]),
        "itl_ms": dist([g for r in ok for g in r["itl_ms"]]), "tpot_ms": dist([r["tpot_ms"] for r in ok]),
        "e2e_ms": dist([r["e2e_ms"] for r in ok]),
        "goodput": {"slo": dict(slos), "good_requests": good, "requests_per_s": good / duration,
                    "fraction": good / len(records)},
        "overhead": {"loop_lag_ms": {"count": 200, "p50": 0.3, "p99": 2.1 * concurrency / 16, "max": 4.0},
                     "client_cpu_s": 0.4, "client_cpu_share": 0.08, "parse_cpu_s": 0.05, "parse_cpu_share": 0.12,
                     "warnings": ["event-loop lag p99 above 5 ms: client-bound"] if concurrency >= 64 else []},
        "records": records,
    }


def bench_result(seed: int = 11, slowdown: float = 1.0, levels: tuple[int, ...] = (1, 4, 16, 64)) -> dict:
    """A bench result: one summary per concurrency level, each with its per-request records."""
    rng = random.Random(seed)
    slos = {"ttft_ms": 600.0, "tpot_ms": 50.0}
    return {"schema_version": 1, "kind": "bench", "target": "http://127.0.0.1:8765/v1/chat/completions",
            "started_at": "2026-11-24T05:20:00Z", "mode": "closed", "slo": slos, "token_method": "chars/4",
            "levels": [_bench_level(c, rng, slowdown, slos) for c in levels]}


def bench_elsewhere(bench: dict) -> dict:
    """``bench`` as if measured on another target, with a tighter SLO and another token count method: what
    `bench --compare` warns is not comparable."""
    slo = {"ttft_ms": 300.0}
    for lvl in bench["levels"]:
        lvl["goodput"]["slo"] = dict(slo)
    return {**bench, "slo": slo, "token_method": "usage", "target": "http://10.1.2.3/other"}


def main(argv: list[str] | None = None) -> int:
    from reports import render_bench, render_run, write_grading, write_html

    out = Path((argv or sys.argv[1:] or ["report-samples"])[0])
    write_html(out / "run.html", render_run(run_result()))
    write_grading(write_grade_dir(out / "grade"), out / "grade")
    write_html(out / "bench.html", render_bench(bench_result(), bench_result(seed=5, slowdown=1.3)))
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
