"""Which kind of saved JSON a file is (run result, grading summary, bench result) and rendering it by kind."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

KINDS = ("run", "grading", "bench")


def detect_kind(doc: Any) -> str:
    """``"run"``, ``"grading"``, ``"bench"`` or ``"record"``; a ConfigError naming what was expected otherwise.

    An explicit ``kind`` wins; else the shape decides: a run result has ``checks`` and ``target``, a grading
    summary ``submissions``, a bench result ``levels``, a per-submission grade record (grade's ``OUT/results/``)
    ``grade_format`` with the run result nested under ``result``. A capture bundle is refused with the command
    that renders it.
    """
    if not isinstance(doc, Mapping):
        raise ConfigError(f"expected a JSON object, got {type(doc).__name__}")
    kind = doc.get("kind")
    if kind in ("grade", "grading", "summary"):
        return "grading"
    if kind in KINDS:
        return str(kind)
    if isinstance(doc.get("checks"), list) and "target" in doc:
        return "run"
    if isinstance(doc.get("submissions"), list):
        return "grading"
    if isinstance(doc.get("levels"), list):
        return "bench"
    if "grade_format" in doc:
        return "record"
    if ("primary" in doc and "format" in doc) or ("request" in doc and "reads" in doc):
        raise ConfigError("this is a capture bundle (from run --save-capture), not a result: judge it and render "
                          "the report in one step with `streamconform check CAPTURE.json --html out.html`")
    raise ConfigError("not a run result (checks + target), a grading summary (submissions) or a bench result "
                      f"(levels); top-level keys: {', '.join(sorted(map(str, doc))[:12]) or 'none'}")


def load_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; any failure is a ConfigError that says which file and why."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None


def render_file(path: str | os.PathLike[str], html_path: str | os.PathLike[str],
                previous: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """Render the JSON at ``path`` for writing at ``html_path``; returns (kind, html)."""
    from reports.bench_report import render_bench
    from reports.grade_record import render_record
    from reports.grading_report import render_grading
    from reports.run_report import render_run

    doc = load_json(path)
    kind = detect_kind(doc)
    if previous is not None and kind != "bench":
        raise ConfigError("--previous applies to bench results only")
    if kind == "record":  # the run report, headed by the score the grader gave it
        return "run", render_record(doc, run_result_of_record(doc))
    if kind == "run":
        return kind, render_run(doc)
    if kind == "grading":
        # Result paths in a summary are relative to its own directory; links must be relative to the page's.
        return kind, render_grading(doc, Path(path).parent, html_dir=Path(html_path).parent)
    prev_doc = load_json(previous) if previous is not None else None
    if prev_doc is not None and detect_kind(prev_doc) != "bench":
        raise ConfigError(f"--previous {previous}: not a bench result")
    return kind, render_bench(doc, prev_doc, str(previous) if previous is not None else None)


def run_result_of_record(record: Mapping[str, Any]) -> Any:
    """The run result nested in a grade record; a ConfigError saying why there is none (the endpoint was never
    judged: invalid URL, blocked address, unreachable...)."""
    result = record.get("result")
    if isinstance(result, Mapping) and isinstance(result.get("checks"), list):
        return result
    status = record.get("status", "unknown")
    why = next((a.get("error") for a in reversed(record.get("attempts") or [])
                if isinstance(a, Mapping) and a.get("error")), None)
    raise ConfigError(f"grade record of {record.get('id')!r} has no run result to render: status {status!r}"
                      + (f" ({why})" if why else ""))
