"""Self-contained HTML reports: one page per run result, grading summary or bench result, opening offline.

Front ends call these; ``streamconform report FILE --html OUT`` renders any saved JSON (see ``reports.cli``).
"""

from __future__ import annotations

from reports.render import write_html
from reports.run_report import render_run

__all__ = ["render_run", "write_html"]
