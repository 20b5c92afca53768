"""``streamconform report RESULT.json --html out.html``: render any saved JSON as a self-contained HTML page.

The kind of JSON (run result, a grade record's nested run result, grading summary, bench result) is detected
from its content.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.cli.options import add_html

    add = parser.add_argument
    add("json_path", metavar="RESULT.json",
        help="a saved run result, grade record (OUT/results/*.json), grading summary (summary.json) or bench result")
    add_html(add, "default: RESULT.html beside the JSON", metavar="OUT.html")
    add("--previous", metavar="PREVIOUS.json", default=None,
        help="bench results only: a previous bench JSON to show side by side")


def main(args: argparse.Namespace) -> int:
    from reports.detect import render_file
    from reports.render import write_html

    html_path = Path(args.html_path) if args.html_path else Path(args.json_path).with_suffix(".html")
    kind, html = render_file(args.json_path, html_path, args.previous)
    try:
        written = write_html(html_path, html)
    except OSError as exc:  # a bad output path is the user's to fix (exit 2), not a harness bug
        raise ConfigError(f"--html {html_path}: cannot write it ({exc.strerror or exc})") from None
    print(f"{kind} report: {written}")
    return 0
