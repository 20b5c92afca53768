"""Run one benchmark script several times and report the median of every figure it writes, with the load it ran
under: the form the README quotes (issue 16: "the median of three runs with the load they ran under").

    python benchmarks/median_of_runs.py fidelity.py --quick                 # 3 runs (default)
    python benchmarks/median_of_runs.py --runs 3 --json out.json bench_client.py --quick
    python benchmarks/median_of_runs.py grade_scale.py --quick

The script is run as ``python benchmarks/SCRIPT ARGS --json RUN.json``, one run after another (never two at once:
they would measure each other). Every number found at the same place in the runs' JSON documents is replaced by
the median of the runs (a place missing from a run is left out of that median); the 1-minute load average is
read before and after each run. Printed: each run's load and exit status, then the figures the script marked as
its headline (the keys listed in HEADLINES, when present) as median [min - max].
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# Per script: the JSON paths shown in the summary (dotted; list items by index).
HEADLINES: dict[str, list[str]] = {
    # runs: streamconform, raw-socket, httpx-sse at 1 stream, then the same at --streams
    "fidelity.py": ["runs.0.ttft_abs_err_ms.p99", "runs.0.gap_abs_err_ms.p99", "runs.3.ttft_abs_err_ms.p99",
                    "runs.3.gap_abs_err_ms.p99", "runs.4.ttft_abs_err_ms.p99", "runs.4.gap_abs_err_ms.p99",
                    "runs.5.ttft_abs_err_ms.p99", "runs.5.gap_abs_err_ms.p99"],
    "grade_scale.py": ["wall_s", "ttft_err_p99_ms", "ttft_err_max_ms", "upper_bound_p99_ms", "rss_mb",
                       "loop_lag_p99_ms"],
    "reference_server_scale.py": ["best_reference.streams", "best.flask", "ratio"],
}


def numeric_paths(doc: Any, prefix: str = "") -> dict[str, float]:
    """Every number in ``doc`` by its dotted path."""
    out: dict[str, float] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.update(numeric_paths(v, f"{prefix}{k}."))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.update(numeric_paths(v, f"{prefix}{i}."))
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        out[prefix[:-1]] = float(doc)
    return out


def with_medians(doc: Any, runs: list[dict[str, float]], prefix: str = "") -> Any:
    """``doc`` (the first run's) with each number replaced by the median over the runs that have it."""
    if isinstance(doc, dict):
        return {k: with_medians(v, runs, f"{prefix}{k}.") for k, v in doc.items()}
    if isinstance(doc, list):
        return [with_medians(v, runs, f"{prefix}{i}.") for i, v in enumerate(doc)]
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        values = [r[prefix[:-1]] for r in runs if prefix[:-1] in r and r[prefix[:-1]] == r[prefix[:-1]]]
        return statistics.median(values) if values else doc
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", dest="json_path", default=None, help="write the medians (and every run) here")
    ap.add_argument("--settle-load", type=float, default=1.5, metavar="L",
                    help="before each run, wait (up to --settle-max seconds) until the 1-minute load average is at "
                         "most L: a run must not inherit the load of the one before (default 1.5)")
    ap.add_argument("--settle-max", type=float, default=150.0, metavar="S")
    ap.add_argument("script", help="a script in benchmarks/, e.g. fidelity.py")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    args = ap.parse_args(argv)
    script = HERE / Path(args.script).name
    docs, loads = [], []
    with tempfile.TemporaryDirectory(prefix="median_of_runs_") as tmp:
        for i in range(args.runs):
            path = Path(tmp) / f"run{i}.json"
            waited = time.monotonic()
            while os.getloadavg()[0] > args.settle_load and time.monotonic() - waited < args.settle_max:
                time.sleep(5)
            before = os.getloadavg()[0]
            started = time.monotonic()
            proc = subprocess.run([sys.executable, str(script), *args.args, "--json", str(path)])
            after = os.getloadavg()[0]
            loads.append((before, after))
            print(f"median_of_runs: run {i + 1}/{args.runs} of {script.name}: exit {proc.returncode}, "
                  f"{time.monotonic() - started:.0f} s, 1-minute load average {before:.2f} -> {after:.2f}",
                  flush=True)
            if path.exists():
                docs.append(json.loads(path.read_text()))
    if not docs:
        print("median_of_runs: no run wrote its JSON")
        return 1
    flat = [numeric_paths(d) for d in docs]
    medians = with_medians(docs[0], flat)
    print(f"median of {len(docs)} runs of {script.name} {' '.join(args.args)} (load average before each: "
          + ", ".join(f"{b:.2f}" for b, _ in loads) + "):")
    for key in HEADLINES.get(script.name, []):
        values = [f[key] for f in flat if key in f]
        if values:
            print(f"  {key}: {statistics.median(values):.3f}  [{min(values):.3f} - {max(values):.3f}]")
    if isinstance(docs[0], list):  # bench_client.py: one row per (phase, client, streams)
        for i, row in enumerate(docs[0]):
            if not isinstance(row, dict) or "client" not in row:
                continue
            label = f"{row.get('phase')} {row['client']} {row.get('concurrency')} streams"
            fields = ("ttft_err_p99_ms", "ttft_err_p50_ms") if row.get("phase") == "fidelity" else (
                "cpu_ms_per_1k_events", "events_per_s")
            shown = []
            for field in fields:
                values = [f[f"{i}.{field}"] for f in flat if f"{i}.{field}" in f]
                if values:
                    shown.append(f"{field} {statistics.median(values):.2f} [{min(values):.2f} - {max(values):.2f}]")
            print(f"  {label}: " + "; ".join(shown))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"script": script.name, "args": args.args, "runs": len(docs),
                                                    "load_average_1min": loads, "median": medians,
                                                    "each_run": docs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
