"""Everything written besides the per-submission record: rebuilt from the records on disk, so a resumed run's
exports cover every submission, graded today or yesterday.

    OUT/results/<stem>.json              instructor's full record (store.py)
    OUT/feedback/<stem>.md               student-facing feedback
    OUT/gradescope/<stem>/results.json   Gradescope format, written even when the endpoint never answered
    OUT/grades.csv                       one row per submission, the roster's extra columns appended
    OUT/summary.json                     data for reports/ (list of submissions with paths)
    OUT/summary.html                     the grading summary page (reports/)
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from harness import __version__
from harness.grade.attempt import utc_now
from harness.grade.feedback import check_text, render_markdown, student_view
from harness.grade.store import ResultStore, atomic_write_text, file_stem
from reports import render_grading

CSV_COLUMNS = ["id", "url", "status", "score", "max_score", "passed", "ttft_ms", "tokens_per_s", "chars", "chunks",
               "failed_checks", "thresholds", "attempts", "result"]
_PLAIN_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?$")


def feedback_relpath(ident: str) -> str:
    return f"feedback/{file_stem(ident)}.md"


def gradescope_relpath(ident: str) -> str:
    return f"gradescope/{file_stem(ident)}/results.json"


def write_submission_exports(out: Path, record: dict[str, Any]) -> None:
    """The files a student's grade needs, written as soon as the record exists. Not fsynced: the record is the
    durable copy, and write_batch_exports recreates any of these a crash left missing."""
    view = student_view(record)
    atomic_write_text(out / feedback_relpath(record["id"]), render_markdown(view), durable=False)
    atomic_write_text(out / gradescope_relpath(record["id"]), json.dumps(gradescope(record, view), indent=1),
                      durable=False)


def _exports_missing(out: Path, ident: str) -> bool:
    return not (out / feedback_relpath(ident)).is_file() or not (out / gradescope_relpath(ident)).is_file()


def gradescope(record: dict[str, Any], view: dict[str, Any] | None = None) -> dict[str, Any]:
    view = view or student_view(record)
    tests = []
    for i, c in enumerate(view["checks"], start=1):
        test = {"name": f"{c['id']}: {c['description']}" if c.get("description") else c["id"], "number": str(i),
                "score": c["points"], "max_score": c["weight"],
                "status": "passed" if c["points"] >= c["weight"] else "failed",
                "output": check_text(c), "visibility": "visible"}
        if c.get("counted") is False:  # cut by the grader's deadline, or not applicable: worth nothing (scoring.py)
            test.update(score=0, max_score=0)
            del test["status"]
        tests.append(test)
    return {
        "score": record["score"],
        "execution_time": record.get("duration_s", 0),
        "output": f"{view['status_text']} Score {record['score']} / {record['max_score']}.",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def csv_row(record: dict[str, Any], result_path: str) -> dict[str, Any]:
    metrics = (record.get("result") or {}).get("metrics") or {}
    return {
        "id": record["id"], "url": record["url"], "status": record["status"],
        "score": record["score"], "max_score": record["max_score"], "passed": str(record["passed"]).lower(),
        "ttft_ms": _num(metrics.get("ttft_ms")), "tokens_per_s": _num(metrics.get("tokens_per_s")),
        "chars": _num(metrics.get("chars")), "chunks": _num(metrics.get("chunks")),
        "failed_checks": ";".join(record.get("failed_checks", [])),
        "thresholds": ";".join(f"{k}={v}" for k, v in record.get("thresholds", {}).items()),
        "attempts": len(record.get("attempts", [])),
        "result": result_path,
    }


def _num(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 2)
    return "" if x is None else x


def _cell(value: Any) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas; roster and URL text is untrusted."""
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    # Python 3.10's csv module cannot write a NUL at all ("need to escape"); a submitted URL may hold one.
    text = text.replace("\x00", "\\x00")
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def profile_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    """How many records each profile graded, most used first. A rerun with another --profile keeps the results
    graded before (resume.py), so one folder can hold several: the summary names each, not just today's."""
    counts = Counter(str(r.get("profile") or "unknown") for r in records)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def error_text(record: dict[str, Any]) -> str | None:
    """Why the grader failed on a submission (status ``error``): its last attempt's error."""
    if record.get("status") != "error":
        return None
    return next((a.get("error") for a in reversed(record.get("attempts") or []) if a.get("error")), None)


def _restore_exports(out: Path, record: dict[str, Any]) -> None:
    """Recreate a submission's feedback and Gradescope files a kill (or a full disk) left missing; a failure
    leaves them missing, and the rows of the other submissions are still written."""
    if not _exports_missing(out, record["id"]):
        return
    try:
        write_submission_exports(out, record)
    except OSError:
        pass


def write_batch_exports(out: Path, ids: list[str], store: ResultStore, extra_columns: list[str],
                        profile: str, unsaved: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """grades.csv, summary.json and summary.html for ``ids`` (roster order); returns the summary data.

    ``profile`` (the current run's) names the summary only while no record exists; records say their own.
    ``unsaved``: this run's error records for submissions whose record could not be written (batch.py); they
    take the place of whatever is on disk for those ids, with no result file to link."""
    unsaved = unsaved or {}
    records = []
    for ident in ids:
        record = unsaved.get(ident) or store.load(ident)
        if record is not None:
            records.append(record)
            if ident not in unsaved:
                _restore_exports(out, record)
    own = set(CSV_COLUMNS)
    extra_names = {c: (c if c not in own else f"roster_{c}") for c in extra_columns}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS + list(extra_names.values()), lineterminator="\n")
    writer.writeheader()
    submissions = []
    for record in records:
        result_path = "" if record["id"] in unsaved else store.relpath(record["id"])
        row = csv_row(record, result_path)
        for col, name in extra_names.items():
            row[name] = record.get("roster", {}).get(col, "")
        writer.writerow({k: _cell(v) for k, v in row.items()})
        submissions.append({
            "id": record["id"], "url": record["url"], "status": record["status"], "score": record["score"],
            "max_score": record["max_score"], "passed": record["passed"], "profile": record.get("profile"),
            "failed_checks": record.get("failed_checks", []),
            # Checks that never ran (endpoint never contacted, or the grader's deadline): the summary page counts
            # them apart from real failures.
            "not_run_checks": [i["id"] for i in record.get("scoring", []) if i.get("status") == "not_run"],
            "ttft_ms": row["ttft_ms"] if row["ttft_ms"] != "" else None,
            "result": result_path, "feedback": feedback_relpath(record["id"]),
            "gradescope": gradescope_relpath(record["id"]),
            # Shown under the row of summary.html: the only place a record that could not be saved says why.
            **({"error": error_text(record)} if error_text(record) else {}),
        })
    atomic_write_text(out / "grades.csv", buf.getvalue())
    counts = Counter(s["status"] for s in submissions)
    profiles = profile_counts(records)
    summary = {
        "grade_summary_format": 1,
        "grader_version": __version__,
        "generated_at": utc_now(),
        # One name when every record used the same profile; "mixed" when they differ (``profiles`` says which).
        "profile": (next(iter(profiles)) if len(profiles) == 1 else "mixed") if profiles else profile,
        "profiles": profiles,
        "total": len(ids),
        "graded": len(submissions),
        "passed": sum(1 for s in submissions if s["passed"]),
        "by_status": dict(sorted(counts.items())),
        "submissions": submissions,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False))
    # The rich page (sortable table, score distribution, failures per check) from reports/, one offline file;
    # rows link each submission's run report when `--html` rendered them, else its JSON record.
    atomic_write_text(out / "summary.html", render_grading(summary, out))
    return summary
