"""In-process vs Ray on this machine: the 1,000-submission grading and a 2,000-stream bench level.

    python benchmarks/ray_scale.py                                  # 1,000 submissions, 2,000 streams
    python benchmarks/ray_scale.py --submissions 200 --streams 500  # reduced sizes (the output says so)

Each phase runs twice against the exact-timing server (benchmarks/timed_server.py, a process of its own on
127.0.0.1): first in this process, as `grade` and `bench` run by default, then on Ray with 2 local workers —
a ray.cluster_utils.Cluster of two 1-CPU nodes on loopback, where grade puts one grading actor on each node
(``--concurrency`` per node: half the in-process figure, so both modes keep as many in flight) and bench
``--workers 2`` one bench actor on each (half the streams each). Grading follows grade_scale.py: the grading
profile without the probes and robustness requests, two streams per submission.

Printed for each phase and mode, beside the machine's 1-minute load average taken just before it:
- wall time (grading: the whole batch; bench: the level's duration, from the common start for Ray);
- TTFT error p50/p99/max. Bench: the client's arrival time of the first content event (request start +
  its TTFT, put on CLOCK_MONOTONIC, which every process of the machine shares) minus the server's write
  stamp of that event, as bench_client.py measures it: how late the client timestamps. Grading (a grade
  record keeps no absolute time): measured TTFT minus the server's own interval from reading the request to
  writing the first content event, both stamped into the stream, so that figure also holds the request's
  transit to the server (an upper bound of the client's error);
- overhead per request = (Ray wall - in-process wall) / requests (grading: per submission, two streams each);
- Ray's one-time start (cluster and actors), kept out of the walls above.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timed_server import OPENAI_STAMP, OPENAI_STAMP_TEXT, Schedule, timed_server  # noqa: E402
from harness.distributed.bench_workers import BenchWorker  # noqa: E402

GRADE_SCHEDULE = Schedule(ttft_s=0.100, gap_s=0.020, events=12)
BENCH_SCHEDULE = Schedule(ttft_s=0.250, gap_s=0.100, events=10)  # 2,000 streams: 16,000 events/s at most
CATEGORIES = {"http", "framing", "schema", "stream", "content", "timing"}  # as grade_scale.py: 2 streams each
PROMPT = "Explain how server-sent events deliver tokens to a browser."


def load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def perf_to_monotonic() -> float:
    """What to add to a perf_counter time to put it on time.monotonic's clock (as timed_server.py; repeated
    here so a Ray worker, which unpickles this module's functions by value, needs no benchmarks package)."""
    samples = sorted((time.monotonic() + time.monotonic()) / 2 - time.perf_counter() for _ in range(7))
    return samples[3]


def stamped_record(record: dict[str, Any], capture: Any) -> dict[str, Any]:
    """The record with its TTFT error: arrival of the first content event minus the server's write stamp."""
    stamp = OPENAI_STAMP.search(b"".join(r.data for r in capture.reads)) if capture is not None else None
    record["ttft_err_ms"] = None
    if stamp and capture.clock_origin is not None and record.get("ttft_ms") is not None:
        sent = capture.clock_origin + (capture.t_request_sent or 0.0) + perf_to_monotonic()
        record["ttft_err_ms"] = (sent + record["ttft_ms"] / 1000.0 - float(stamp.group(1))) * 1000.0
    return record


class StampedWorker(BenchWorker):
    """A bench worker that also reads the server's stamp from each capture (pickled by value from here)."""

    def finish(self, item: dict[str, Any]) -> dict[str, Any]:
        return stamped_record(self.client.finish(item), item.get("capture"))


def errors_ms(pairs: list[tuple[float | None, float | None]]) -> list[float]:
    return [measured - server for measured, server in pairs if measured is not None and server is not None]


def describe(errs: list[float]) -> str:
    from harness.measure.metrics import percentile as pct

    if not errs:
        return "TTFT error: no stamped sample"
    return (f"TTFT error p50 {pct(errs, 50):.1f} ms, p99 {pct(errs, 99):.1f} ms, max {max(errs):.1f} ms "
            f"({len(errs)} samples)")


# ---- grading ---------------------------------------------------------------------------------------------

def grade_items(url: str, n: int) -> list[Any]:
    from harness.grade.attempt import GradeInput
    from harness.grade.roster import Submission

    return [GradeInput(Submission(f"s{i:04d}", f"{url}/v1/chat/completions?student={i}")) for i in range(n)]


def grade_errors(out: Path) -> tuple[list[float], dict[str, int]]:
    import json

    pairs, statuses = [], {}
    for path in (out / "results").glob("*.json"):
        rec = json.loads(path.read_text(encoding="utf-8"))
        statuses[rec["status"]] = statuses.get(rec["status"], 0) + 1
        result = rec.get("result") or {}
        stamp = OPENAI_STAMP_TEXT.search((result.get("transcript") or {}).get("text") or "")
        server = (float(stamp.group(1)) - float(stamp.group(3))) * 1000.0 if stamp else None
        pairs.append(((result.get("metrics") or {}).get("ttft_ms"), server))
    return errors_ms(pairs), statuses


def grade_phase(mode: str, items: list[Any], out: Path, concurrency: int) -> dict[str, Any]:
    from harness.grade.attempt import AttemptPolicy
    from harness.grade.batch import grade_all
    from harness.grade.engine import EngineRunner
    from harness.grade.store import ResultStore

    runner = EngineRunner("grading", allow_private=True, deadline_s=30.0, categories=CATEGORIES)
    store = ResultStore(out)
    store.prepare()
    policy = AttemptPolicy(retry_delay_s=1.0)
    la = load()
    t0 = time.perf_counter()
    if mode == "in-process":
        sys.setswitchinterval(0.001)  # as grade's CLI does
        asyncio.run(grade_all(items, runner, store.write, concurrency=concurrency, policy=policy))
    else:
        from harness.distributed.grade_tasks import grade_all_on_ray

        grade_all_on_ray(items, runner, store.write, address="auto", concurrency=concurrency // 2,
                         policy=policy)
    wall = time.perf_counter() - t0
    errs, statuses = grade_errors(out)
    return {"wall_s": wall, "errors": errs, "statuses": statuses, "load": la, "n": len(items)}


# ---- bench -----------------------------------------------------------------------------------------------

def bench_in_process(url: str, streams: int) -> dict[str, Any]:
    from harness.bench.load import LevelPlan, run_level
    from harness.bench.request import BenchClient
    from harness.bench.stats import LevelSpec

    async def go() -> dict[str, Any]:
        async with BenchClient(url, dialect="openai", prompts=[PROMPT], timeout_s=120.0,
                               max_connections=streams) as client:
            def finish(item: dict[str, Any]) -> dict[str, Any]:
                return stamped_record(client.finish(item), item.get("capture"))

            plan = LevelPlan(LevelSpec("closed", concurrency=streams), requests=streams)
            return await run_level(plan, client.request, {}, finish=finish)

    la = load()
    level = asyncio.run(go())
    return {"level": level, "load": la}


def bench_on_ray(url: str, streams: int) -> dict[str, Any]:
    from harness.bench.stats import LevelSpec
    from harness.distributed.bench_workers import run_levels_on_ray

    client = {"url": url, "dialect": "openai", "prompts": [PROMPT], "timeout_s": 120.0,
              "token_method": "chars/4"}
    plan = (LevelSpec("closed", concurrency=streams), streams, None, 0)
    la = load()
    (level,) = run_levels_on_ray("auto", 2, client, [plan], {}, worker_class=StampedWorker)
    return {"level": level, "load": la}


def bench_line(mode: str, res: dict[str, Any]) -> str:
    level = res["level"]
    errs = [r["ttft_err_ms"] for r in level["records"] if r.get("ttft_err_ms") is not None]
    over = level["overhead"]
    return (f"  bench {mode:<10} load {res['load']:.1f}: {level['completed']}/{level['requests']} ok in "
            f"{level['duration_s']:.2f} s; {describe(errs)}; client loop lag p99 "
            f"{over['loop_lag_ms']['p99'] or 0:.1f} ms, CPU {over['client_cpu_share']:.0%} of a core"
            + (" (worst worker)" if level.get("workers") else ""))


# ---- main ------------------------------------------------------------------------------------------------

def start_cluster() -> tuple[Any, Any, float]:
    from harness.distributed.ray_backend import LOOPBACK_ONLY_ENV

    os.environ[LOOPBACK_ONLY_ENV] = "0"  # before ray is imported: every address stays 127.0.0.1
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    t0 = time.perf_counter()
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    return ray, cluster, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--submissions", type=int, default=1000)
    ap.add_argument("--streams", type=int, default=2000, help="streams of the bench level, all at once")
    ap.add_argument("--concurrency", type=int, default=64, help="submissions in flight (Ray: half per node)")
    args = ap.parse_args()
    reduced = args.submissions < 1000 or args.streams < 2000
    print(f"ray_scale: {os.cpu_count()} CPUs, 1-minute load average {load():.1f} at the start"
          + (f"; REDUCED sizes ({args.submissions} submissions, {args.streams} streams; full: 1000 and 2000)"
             if reduced else ""), flush=True)
    with tempfile.TemporaryDirectory(prefix="ray_scale_") as tmp:
        with timed_server(GRADE_SCHEDULE) as grade_url, timed_server(BENCH_SCHEDULE) as bench_url:
            items = grade_items(grade_url, args.submissions)
            bench_url += "/v1/chat/completions"
            g_local = grade_phase("in-process", items, Path(tmp) / "local", args.concurrency)
            print_grade("in-process", g_local)
            b_local = bench_in_process(bench_url, args.streams)
            print(bench_line("in-process", b_local), flush=True)
            ray, cluster, started = start_cluster()
            try:
                print(f"  Ray: a 2-node local cluster (1 CPU each) started in {started:.1f} s", flush=True)
                g_ray = grade_phase("ray", items, Path(tmp) / "ray", args.concurrency)
                print_grade("ray", g_ray)
                b_ray = bench_on_ray(bench_url, args.streams)
                print(bench_line("ray", b_ray), flush=True)
                for w in b_ray["level"]["workers"]:
                    print(f"    worker {w['worker']} (node {w['node'][:8]}): "
                          f"{w['completed']}/{w['requests']} ok, {w['events_per_s']:.0f} events/s, "
                          f"CPU {w['client_cpu_share']:.0%}, started {w['start_lag_ms']:.1f} ms late",
                          flush=True)
            finally:
                ray.shutdown()
                cluster.shutdown()
    per_submission = 1000 * (g_ray["wall_s"] - g_local["wall_s"]) / args.submissions
    per_stream = 1000 * (b_ray["level"]["duration_s"] - b_local["level"]["duration_s"]) / args.streams
    print(f"  overhead per request on Ray: grading {per_submission:+.1f} ms per submission; bench "
          f"{per_stream:+.2f} ms per stream (wall difference / requests; negative: Ray was faster)")
    print(f"  1-minute load average at the end: {load():.1f}")
    return 0


def print_grade(mode: str, res: dict[str, Any]) -> None:
    print(f"  grade {mode:<10} load {res['load']:.1f}: {res['n']} submissions in {res['wall_s']:.1f} s "
          f"({res['n'] / res['wall_s']:.1f}/s), statuses {res['statuses']}; {describe(res['errors'])}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
