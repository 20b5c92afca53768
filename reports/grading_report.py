"""The grading summary: a sortable table of submissions, the score distribution, failures per check, and a link to
each submission's own report (a relative path, so the grade output directory can be moved or zipped whole).

Input is the ``summary.json`` the grade command writes in its output directory; the per-submission files it points
to (``results/<stem>.json``) are either run results or grade records that carry one under ``result``.
``write_grading`` renders those too (``results/<stem>.html`` beside each JSON) and then the summary page.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reports.grade_record import grade_view
from reports.render import finite_float, render_page, write_html
from reports.run_report import render_run

# Keys under which a submission may name its result file / its failed checks (accepted for robustness).
RESULT_KEYS = ("result_path", "result", "path", "file")
FAILED_KEYS = ("failed_checks", "failed")
NOT_RUN_KEY = "not_run_checks"  # checks that never ran (endpoint never contacted): not failures of the check
HISTOGRAM_BINS = 10
MAX_FAILED_SHOWN = 8


def _result_ref(sub: Mapping[str, Any]) -> str | None:
    for key in RESULT_KEYS:
        ref = sub.get(key)
        if isinstance(ref, str) and ref.strip():
            return ref
    return None


def _failed(sub: Mapping[str, Any]) -> list[str]:
    for key in FAILED_KEYS:
        items = sub.get(key)
        if isinstance(items, list):
            out = []
            for item in items:
                if isinstance(item, Mapping):  # {"id": ..., ...} records are accepted as well as plain ids
                    item = item.get("id")
                if item is not None:
                    out.append(str(item))
            return out
    return []


def profile_counts_of(summary: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(profile, records graded with it), most used first; empty for a summary written before they were kept."""
    profiles = summary.get("profiles")
    if not isinstance(profiles, Mapping):
        return []
    counts = [(str(name), n) for name, n in profiles.items() if isinstance(n, int) and not isinstance(n, bool)]
    return sorted(counts, key=lambda kv: (-kv[1], kv[0]))


def profile_label(summary: Mapping[str, Any]) -> str:
    """"profile tds", or for a folder graded with several "profiles: tds (9), grading (3)" (terminal and page)."""
    counts = profile_counts_of(summary)
    if len(counts) > 1:
        return "profiles: " + ", ".join(f"{name} ({n})" for name, n in counts)
    name = counts[0][0] if counts else summary.get("profile")
    return f"profile {name}" if name else ""


def _href(target: Path, html_dir: Path) -> str:
    """A relative, percent-encoded link from the summary page to ``target``: never a scheme, never absolute."""
    rel = os.path.relpath(target, html_dir)
    return "/".join(quote(part, safe="") for part in Path(rel).as_posix().split("/"))


def report_path_for(result_file: Path) -> Path:
    """Where a submission's own HTML report lives: beside its JSON, same stem."""
    return result_file.with_suffix(".html")


def _link(sub: Mapping[str, Any], out_dir: Path, html_dir: Path) -> tuple[str | None, str]:
    """(href, what it points to): the submission's HTML report when it exists, else its JSON, else nothing."""
    ref = _result_ref(sub)
    if ref is None:
        return None, ""
    result_file = Path(ref) if os.path.isabs(ref) else out_dir / ref
    html = report_path_for(result_file)
    if html.is_file():
        return _href(html, html_dir), "report"
    if result_file.is_file():
        return _href(result_file, html_dir), "JSON"
    return None, ""


def _histogram(fractions: list[float]) -> list[dict]:
    counts = [0] * HISTOGRAM_BINS
    for f in fractions:
        counts[min(HISTOGRAM_BINS - 1, max(0, int(f * HISTOGRAM_BINS)))] += 1
    width = 100 // HISTOGRAM_BINS
    # Short labels ("90–100"; the axis title says %): ten of them fit beside each other on a narrow chart.
    return [{"label": f"{i * width}\u2013{(i + 1) * width if i < HISTOGRAM_BINS - 1 else 100}", "count": c}
            for i, c in enumerate(counts)]


def render_grading(summary: Mapping[str, Any], out_dir: str | os.PathLike[str],
                   html_dir: str | os.PathLike[str] | None = None) -> str:
    """A self-contained HTML page for a grading summary.

    ``out_dir`` is the grade output directory (result paths in the summary are relative to it); ``html_dir`` is
    where the page will be written (default ``out_dir``), so the links to each submission are relative to it.
    """
    if not isinstance(summary, Mapping):
        raise TypeError("render_grading expects the grading summary as a dict")
    out = Path(out_dir)
    html_home = Path(html_dir) if html_dir is not None else out
    rows = []
    fractions = []
    failures: Counter[str] = Counter()
    not_run: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for sub in summary.get("submissions") or []:
        if not isinstance(sub, Mapping):
            continue
        score, max_score = finite_float(sub.get("score")), finite_float(sub.get("max") or sub.get("max_score"))
        fraction = score / max_score if score is not None and max_score else None
        if fraction is not None:
            fractions.append(fraction)
        skipped = set(_failed({"failed": sub.get(NOT_RUN_KEY)}))
        failed = [f for f in _failed(sub) if f not in skipped]
        failures.update(set(failed))
        not_run.update(skipped)
        status = str(sub.get("status") or "?")
        statuses[status] += 1
        href, link_kind = _link(sub, out, html_home)
        feedback = sub.get("feedback")
        feedback_file = (out / feedback) if isinstance(feedback, str) and feedback and not os.path.isabs(feedback) else None
        feedback_href = _href(feedback_file, html_home) if feedback_file is not None and feedback_file.is_file() else None
        rows.append({
            "id": str(sub.get("id", "?")),
            "url": str(sub.get("url") or ""),
            "profile": str(sub.get("profile") or ""),
            "status": status,
            "status_class": "ok" if status == "ok" else ("other" if status in ("pending", "skipped") else "fail"),
            "score": score,
            "max": max_score,
            "fraction": fraction,
            "passed": sub.get("passed"),
            "ttft_ms": finite_float(sub.get("ttft_ms")),
            "failed": failed[:MAX_FAILED_SHOWN],
            "failed_hidden": max(0, len(failed) - MAX_FAILED_SHOWN),
            "failed_count": len(failed),
            "not_run_count": len(skipped),
            "error": sub.get("error") or "",
            "href": href,
            "link_kind": link_kind,
            "feedback_href": feedback_href,
        })
    # Share of the submissions where the check ran: an unreachable endpoint says nothing about stream.done.
    failure_rows = [(check, n, n / (len(fractions) - not_run[check]) if len(fractions) > not_run[check] else None,
                     not_run[check]) for check, n in failures.most_common()]
    mean = sum(fractions) / len(fractions) if fractions else None
    ordered = sorted(fractions)
    median = ordered[len(ordered) // 2] if ordered else None
    data = {
        "histogram": _histogram(fractions),
        "failures": [{"check": c, "count": n} for c, n, _, _ in failure_rows[:40]],
        "graded": len(fractions),
    }
    return render_page(
        "grading.html.j2",
        title="streamconform grading summary",
        data=data,
        script="grading.js",
        profile=str(summary.get("profile") or ""),
        profiles=profile_counts_of(summary),  # more than one: the page names each, and a column shows whose
        started_at=str(summary.get("started_at") or ""),
        finished_at=str(summary.get("finished_at") or ""),
        rows=rows,
        statuses=sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0])),
        failure_rows=failure_rows,
        not_run_rows=not_run.most_common(),
        total=len(rows),
        graded=len(fractions),
        mean=mean,
        median=median,
        full_marks=sum(1 for f in fractions if f >= 1.0),
        has_ttft=any(r["ttft_ms"] is not None for r in rows),
    )


def _run_result_in(doc: Any) -> Mapping[str, Any] | None:
    """A run result, whether the file is one or is a grade record carrying one under ``result``/``run``."""
    if isinstance(doc, Mapping) and "checks" in doc and "target" in doc:
        return doc
    if isinstance(doc, Mapping):
        for key in ("result", "run"):
            inner = doc.get(key)
            if isinstance(inner, Mapping) and "checks" in inner:
                return inner
    return None


def write_grading(summary: Mapping[str, Any], out_dir: str | os.PathLike[str],
                  html_name: str = "summary.html") -> Path:
    """Render every submission's run report beside its JSON, then the summary page in ``out_dir``.

    A result file that is missing or unreadable gets no report (its row links to nothing); it never stops the
    summary from being written.
    """
    out = Path(out_dir)
    for sub in summary.get("submissions") or []:
        ref = _result_ref(sub) if isinstance(sub, Mapping) else None
        if ref is None:
            continue
        result_file = Path(ref) if os.path.isabs(ref) else out / ref
        try:
            doc = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        result = _run_result_in(doc)
        if result is not None:  # a grade record's page shows its score too (none for a bare run result)
            write_html(report_path_for(result_file), render_run(result, grade=grade_view(doc)))
    return write_html(out / html_name, render_grading(summary, out))
