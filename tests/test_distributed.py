"""bench/grade --ray without a cluster: how a level is split over workers, how their results merge, and the
usage errors (--ray without the ray extra says how to install it, exit 2). The runs on a real Ray are in
test_ray.py and test_ray_cluster.py."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from harness.bench.stats import LevelSpec
from harness.cli import main as cli_main
from harness.distributed import bench_workers, ray_backend
from harness.distributed.bench_workers import level_shares, merge_level, weighted_split
from schemas import load_schema


@pytest.mark.parametrize(("total", "weights"), [(64, [2, 2]), (7, [1, 1, 1]), (5, [3, 1]), (0, [1, 1]),
                                                (3, [1, 0, 1])])
def test_a_split_adds_up_and_follows_the_weights(total, weights):
    parts = weighted_split(total, weights)
    assert sum(parts) == total and len(parts) == len(weights)
    assert all(p == 0 for p, w in zip(parts, weights, strict=True) if w == 0)
    assert max(parts) - min(p for p, w in zip(parts, weights, strict=True) if w) <= max(weights)


def test_a_closed_level_splits_concurrency_and_requests_with_global_offsets():
    shares = level_shares(LevelSpec("closed", concurrency=4), 64, None, 0, [0, 1])
    assert [(s.concurrency, s.requests, s.offset) for s in shares] == [(2, 32, 0), (2, 32, 32)]
    uneven = level_shares(LevelSpec("closed", concurrency=5), 20, None, 0, [0, 1])
    assert [s.concurrency for s in uneven] == [3, 2] and [s.requests for s in uneven] == [12, 8]
    # concurrency 1 cannot be split: one worker runs it
    assert [s.worker for s in level_shares(LevelSpec("closed", concurrency=1), 8, None, 0, [0, 1])] == [0]


def test_an_open_level_divides_the_rate_with_independent_seeds():
    shares = level_shares(LevelSpec("open", rate=10.0), 41, None, 3, [0, 1])
    assert [s.rate for s in shares] == [5.0, 5.0] and sum(s.requests for s in shares) == 41
    assert shares[0].seed == 3 and shares[1].seed != 3  # worker 0 keeps the seed: one worker = in-process
    # a duration-only level: no count to split, distinct index ranges
    timed = level_shares(LevelSpec("open", rate=4.0), None, 2.0, 0, [0, 1])
    assert [s.requests for s in timed] == [None, None] and timed[0].offset != timed[1].offset


def _record(index, ttft, worker):
    return {"index": index, "t_start_s": 0.1 * index, "ok": True, "status": 200, "end_reason": "eof",
            "error_kind": None, "error": None, "ttfb_ms": ttft - 1, "ttft_ms": ttft, "e2e_ms": ttft + 100.0,
            "itl_ms": [10.0, 12.0], "itl_max_ms": 12.0, "tpot_ms": 3.0, "tokens": 30, "tokens_per_s": 300.0,
            "token_method": "chars/4", "chars": 120, "content_events": 3, "bytes": 500, "worker": worker}


def _worker_level(records, duration, lag_p99, start_lag=0.002):
    return {"requests": len(records), "completed": len(records), "duration_s": duration,
            "start_lag_s": start_lag, "records": records,
            "overhead": {"judged": True, "not_judged_reason": None,
                         "loop_lag_ms": {"count": 100, "p50": 0.1, "p99": lag_p99, "max": lag_p99 + 1},
                         "client_cpu_s": 0.2, "client_cpu_share": 0.1, "parse_cpu_s": 0.02,
                         "parse_cpu_share": 0.1,
                         "client_cpu_ms_per_1k_events": 5.0, "warnings": ["a warning"]}}


def test_merged_level_keeps_every_request_counts_a_lost_worker_and_validates():
    spec = LevelSpec("closed", concurrency=6)
    shares = level_shares(spec, 12, None, 0, [0, 1, 2])
    ok0 = _worker_level([_record(i, 50.0 + i, 0) for i in range(4)], 1.0, 2.0)
    ok1 = _worker_level([_record(4 + i, 60.0 + i, 1) for i in range(4)], 1.5, 3.0, start_lag=0.01)
    wheres = {w: {"node": f"n{w}", "node_ip": "127.0.0.1", "pid": 100 + w} for w in range(3)}
    level = merge_level(spec, {"ttft_ms": 55.0}, shares, [ok0, ok1, RuntimeError("node died\nmore")], wheres,
                        "chars/4")
    assert level["requests"] == 12 and level["completed"] == 8 and level["errors"] == {"worker_lost": 4}
    assert [r["index"] for r in level["records"]] == list(range(12))
    assert sum(w["requests"] for w in level["workers"]) == 12
    lost = level["workers"][2]
    assert lost["error"] == "RuntimeError: node died" and lost["completed"] == 0
    assert level["duration_s"] == pytest.approx(1.51)  # from the common start to the end of the last worker
    assert level["overhead"]["loop_lag_ms"]["p99"] == 3.0  # the worst worker's
    assert level["overhead"]["client_cpu_s"] == pytest.approx(0.4)
    assert level["overhead"]["warnings"] == ["worker 0: a warning", "worker 1: a warning"]
    assert level["goodput"]["good_requests"] == 4  # ttft 50..53 of worker 0, none of worker 1's 60+
    schema = load_schema("bench.schema")
    doc = {"schema_version": 1, "kind": "bench", "harness_version": "x", "target": "t", "profile": "tds",
           "dialect": "prompt", "token_method": "chars/4", "started_at": "s", "options": {}, "slo": {},
           "levels": [level], "comparison": None}
    jsonschema.validate(json.loads(json.dumps(doc)), schema)


@pytest.mark.parametrize("argv", [["bench", "http://127.0.0.1:9/v1/chat/completions", "--ray", "auto"],
                                  ["grade", "ROSTER", "--out", "OUT", "--ray", "auto"]])
def test_ray_without_the_extra_is_a_usage_error_that_says_how_to_install_it(argv, monkeypatch, capsys,
                                                                             tmp_path):
    monkeypatch.setattr(ray_backend, "ray_installed", lambda: False)
    roster = tmp_path / "r.csv"
    roster.write_text("id,url\na,http://127.0.0.1:9/\n")
    argv = [str(roster) if a == "ROSTER" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "--ray needs Ray" in err and "pip install 'streamconform[ray]'" in err
    assert not (tmp_path / "out").exists()  # found before any work


@pytest.mark.parametrize(("extra", "message"), [(["--workers", "2"], "--workers needs --ray"),
                                                (["--ray", "nohostport"], "expected auto or HOST:PORT"),
                                                (["--ray", "auto", "--workers", "0"], "at least 1")])
def test_bench_ray_option_mistakes_are_usage_errors(extra, message, capsys):
    assert cli_main(["bench", "http://127.0.0.1:9/v1/chat/completions", *extra]) == 2
    assert message in capsys.readouterr().err


def test_nothing_imports_ray_until_ray_is_asked_for():
    """The default stays one process: bench, grade and the worker bodies load without touching Ray."""
    code = ("import sys, harness.bench.cli, harness.grade.cli, harness.distributed.bench_workers, "
            "harness.distributed.grade_tasks; sys.exit('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    assert bench_workers.BenchWorker.__module__ == "harness.distributed.bench_workers"
