"""One JSON file per submission, written atomically the moment it is graded; resume by reading them back.

A result file either exists whole or not at all (temporary file + fsync + rename + fsync of the directory), so a
``kill -9`` at any instant loses at most the submissions still in flight, and a rerun grades exactly those.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

# atomic_write_text is re-exported: the grade modules write through it
from harness.atomic import atomic_write_text, orphaned

# A result with this status is the grader's own failure, not the student's: a rerun grades it again.
RETRY_ON_RESUME = frozenset({"error"})

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(ident: str) -> str:
    """A file name for an id: readable, safe on every filesystem, and distinct for distinct ids.

    The hash suffix keeps ids apart that sanitise alike ("a/b" vs "a_b") or differ only in case (macOS, Windows).
    """
    readable = _UNSAFE.sub("_", ident)[:60].strip("._-") or "id"
    digest = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:10]
    return f"{readable}-{digest}"


class ResultStore:
    """``OUT/results/<stem>.json`` per submission; ``OUT/superseded/<stem>.<n>.json`` for stale results replaced."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out = Path(out_dir)
        self.results_dir = self.out / "results"
        self.superseded_dir = self.out / "superseded"

    def prepare(self) -> None:
        """Create the folders and sweep what graders killed mid-write left (never read, safe to remove).

        Only files whose writer is gone: the caller holds the folder's lock (lock.py), but a file of a live process
        (an older grader that takes no lock, a report being rendered beside a record) must survive its rename.
        """
        self.results_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.results_dir.glob(".*.tmp"):
            if orphaned(tmp):
                tmp.unlink(missing_ok=True)

    def path(self, ident: str) -> Path:
        return self.results_dir / f"{file_stem(ident)}.json"

    def relpath(self, ident: str) -> str:
        return self.path(ident).relative_to(self.out).as_posix()

    def load(self, ident: str) -> dict[str, Any] | None:
        """The stored record for ``ident``, or None when there is none (or it is unreadable or someone else's)."""
        try:
            doc = json.loads(self.path(ident).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("id") != ident:
            return None
        return doc

    def finished(self, ident: str) -> bool:
        doc = self.load(ident)
        return doc is not None and doc.get("status") not in RETRY_ON_RESUME

    def supersede(self, ident: str) -> Path | None:
        """Copy the current record aside before a stale result is graded again: a rerun that forgot an option
        (say --thresholds-seed) overwrites grades, and this keeps the earlier ones recoverable."""
        try:
            data = self.path(ident).read_text(encoding="utf-8")
        except OSError:
            return None
        stem = file_stem(ident)
        n = 1 + sum(1 for _ in self.superseded_dir.glob(f"{stem}.*.json"))
        target = self.superseded_dir / f"{stem}.{n}.json"
        self.superseded_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, data)
        return target

    def write(self, doc: dict[str, Any]) -> Path:
        path = self.path(doc["id"])
        atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False, default=str))
        return path
