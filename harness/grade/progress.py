"""Progress of a batch: a rich bar with ETA and pass/fail counts on a terminal, one line per submission
otherwise (logs, CI), nothing with --quiet."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class BatchProgress:
    def __init__(self, total: int, *, quiet: bool = False, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.quiet = quiet
        self.total = total
        self.counts: Counter[str] = Counter()
        self._bar: Progress | None = None
        self._task: Any = None
        if not quiet and self.console.is_terminal and total:
            self._bar = Progress(
                TextColumn("grading"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[green]{task.fields[passed]} passed[/] [red]{task.fields[failed]} failed[/]"
                           " [yellow]{task.fields[other]} no answer[/]"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=False)

    def __enter__(self) -> BatchProgress:
        if self._bar:
            self._bar.start()
            self._task = self._bar.add_task("grading", total=self.total, passed=0, failed=0, other=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.stop()

    def done(self, record: dict[str, Any]) -> None:
        status = record["status"]
        key = "passed" if record["passed"] else "failed" if status == "ok" else "other"
        self.counts[key] += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, passed=self.counts["passed"], failed=self.counts["failed"],
                             other=self.counts["other"])
        elif not self.quiet:
            n = sum(self.counts.values())
            self.console.print(f"[{n}/{self.total}] {record['id']}: {status} "
                               f"{record['score']}/{record['max_score']}"
                               + (" passed" if record["passed"] else ""), markup=False)
