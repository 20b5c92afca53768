"""Shared by the Ray tests (test_ray.py, test_ray_cluster.py): the marks that keep them apart and skip them
with the install hint, a Ray kept on loopback, and what "the same verdicts" means when two gradings are
compared."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.distributed.ray_backend import INSTALL_HINT, LOOPBACK_ONLY_ENV, ray_installed
from tests.test_grade_cli import closed_port, write_roster

MARKS = [pytest.mark.ray,
         pytest.mark.skipif(not ray_installed(), reason=f"the ray extra is not installed: {INSTALL_HINT}")]


def import_ray_on_loopback() -> Any:
    """ray, imported so that every Ray started from this process (and its children) binds and announces
    127.0.0.1 only: Ray maps 127.0.0.1 to the machine's network address unless told there is no cluster."""
    os.environ[LOOPBACK_ONLY_ENV] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # loopback only: nothing is reported anywhere
    import ray

    return ray


FAST = ["--ttft-ms", "20", "--gap-ms", "5"]  # short streams: a grade runs several per submission
SERVERS = (("good", []), ("canned", ["--fault", "canned"]), ("buffered", ["--fault", "buffered"]))


def grade_roster(tmp: Path, servers: dict[str, str]) -> Path:
    """Passing and failing submissions, a refused port and a URL that is not one: every kind of verdict."""
    rows = [{"id": "good", "url": servers["good"]}, {"id": "good2", "url": servers["good"] + "?student=2"},
            {"id": "canned", "url": servers["canned"]}, {"id": "buffered", "url": servers["buffered"]},
            {"id": "refused", "url": f"http://127.0.0.1:{closed_port()}/v1/chat/completions"},
            {"id": "invalid", "url": "not a url"}]
    return write_roster(tmp / "roster.csv", rows)


def bench_args(url: str, json_path: Path, *extra: str) -> list[str]:
    return ["bench", url, "--concurrency", "4,16", "--requests", "64", "--json", str(json_path), *extra]


def verdicts(out: Path) -> dict[str, Any]:
    """id -> what a grade decides (status, score, passed, failed checks, every check's status): no timings."""
    found = {}
    for path in (out / "results").glob("*.json"):
        rec = json.loads(path.read_text(encoding="utf-8"))
        checks = [(c["id"], c["status"]) for c in (rec.get("result") or {}).get("checks", [])]
        found[rec["id"]] = (rec["status"], rec["score"], rec["max_score"], rec["passed"],
                            tuple(rec["failed_checks"]), tuple(checks),
                            [a["status"] for a in rec["attempts"]])
    return found


def ttft_p50s(doc_path: Path) -> dict[str, float]:
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    return {lvl["label"]: lvl["ttft_ms"]["p50"] for lvl in doc["levels"]}


def within(a: float, b: float, share: float) -> bool:
    return abs(a - b) <= share * b
