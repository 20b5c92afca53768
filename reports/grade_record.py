"""A grade record (``OUT/results/<id>.json``, ``schemas/grade.schema.json``) as a page: the run report of the
submission, headed by its score out of the maximum, with each graded check's weight and points.

The score is the grader's (``harness/grade/scoring.py``), read from the record, never recomputed here: the
page must say what the student was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reports.render import finite_float
from reports.run_report import render_run

MAX_SCORING_ITEMS = 500  # a profile grades a few dozen checks; a bigger list is not a record the grader wrote

# Why a check is left out of the maximum (``reason`` in a scoring item), in a reader's words.
NOT_COUNTED_TEXT = {
    "grader_deadline": "not counted: the grader's deadline cut it before its requests were sent",
    "not_applicable": "not counted: it does not apply to this endpoint",
}


def _item_view(item: Mapping[str, Any]) -> dict[str, Any]:
    weight, points = finite_float(item.get("weight")), finite_float(item.get("points"))
    counted = item.get("counted", True) is not False  # the schema's default: counted unless it says false
    reason = str(item.get("reason") or "")
    return {
        "id": str(item.get("id", "?")),
        "status": str(item.get("status") or "?"),
        "weight": weight,
        "points": points,
        "counted": counted,
        "lost": counted and weight is not None and points is not None and points < weight,
        "reason": reason,
        "note": NOT_COUNTED_TEXT.get(reason, "not counted" if not counted else ""),
    }


def grade_view(record: Any) -> dict[str, Any] | None:
    """What the page shows of a grade record: score, maximum, and one row per scoring item; None when
    ``record`` is not a grade record (a plain run result has no score)."""
    if not isinstance(record, Mapping) or not ("grade_format" in record or "scoring" in record):
        return None
    scoring = (record.get("scoring") or [])[:MAX_SCORING_ITEMS]
    items = [_item_view(i) for i in scoring if isinstance(i, Mapping)]
    score, max_score = finite_float(record.get("score")), finite_float(record.get("max_score"))
    return {
        "id": str(record.get("id") or ""),
        "status": str(record.get("status") or ""),
        "profile": str(record.get("profile") or ""),
        "score": score,
        "max_score": max_score,
        "fraction": score / max_score if score is not None and max_score else None,
        "items": items,
        "by_id": {i["id"]: i for i in items},
        "not_counted": sum(1 for i in items if not i["counted"]),
        "thresholds": sorted((str(k), str(v)) for k, v in (record.get("thresholds") or {}).items())
        if isinstance(record.get("thresholds"), Mapping) else [],
    }


def render_record(record: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """The run report of ``result`` (the run nested in ``record``) with the record's score on top."""
    return render_run(result, grade=grade_view(record))

