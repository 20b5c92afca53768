"""`bench --processes N`: each level split over N local processes (one event loop each), merged as Ray's workers
are. Real processes against the reference server, through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from schemas import load_schema

CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "bench", *args], capture_output=True, text=True,
                          timeout=180)


@pytest.mark.skipif(CPUS < 2, reason="--processes 2 needs two CPUs")
def test_a_level_is_split_over_processes_and_merged(reference_server, tmp_path):
    out = tmp_path / "bench.json"
    proc = bench(reference_server.endpoint, "--processes", "2", "--concurrency", "4", "--requests", "12",
                 "--json", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 bench worker process(es)" in proc.stdout
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, load_schema("bench.schema.json"))
    level = doc["levels"][0]
    assert doc["options"]["processes"] == 2
    assert level["requests"] == 12 and level["completed"] == 12
    workers = level["workers"]
    assert [w["worker"] for w in workers] == [0, 1] and sum(w["requests"] for w in workers) == 12
    assert len({w["pid"] for w in workers}) == 2 and os.getpid() not in {w["pid"] for w in workers}
    assert sorted(r["index"] for r in level["records"]) == list(range(12))
    assert {r["worker"] for r in level["records"]} == {0, 1}
    assert all(r["ttft_ms"] and r["ttft_ms"] > 0 for r in level["records"])


def test_bad_process_counts_are_usage_errors_before_any_request():
    too_many = bench("http://127.0.0.1:9/v1/chat/completions", "--processes", str(CPUS + 1))
    assert too_many.returncode == 2 and "--processes must be between 1 and" in too_many.stderr
    with_ray = bench("http://127.0.0.1:9/v1/chat/completions", "--processes", "1", "--ray", "auto")
    assert with_ray.returncode == 2
    assert "not both" in with_ray.stderr or "streamconform[ray]" in with_ray.stderr
