"""Self-contained HTML reports: one page per run result, grading summary or bench result, opening offline.

Front ends call these; ``streamconform report FILE --html OUT`` renders any saved JSON (see ``reports.cli``).
"""

from __future__ import annotations

from reports.bench_report import render_bench
from reports.detect import detect_kind, render_file
from reports.grading_report import render_grading, write_grading
from reports.render import write_html
from reports.run_report import render_run

__all__ = ["detect_kind", "render_bench", "render_file", "render_grading", "render_run", "write_grading", "write_html"]
