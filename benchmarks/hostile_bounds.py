"""Does a flooding endpoint break the promised bounds? `run` and `grade` against servers that flood, measured.

    python benchmarks/hostile_bounds.py                  # every run case, then the grade batch
    python benchmarks/hostile_bounds.py --only run       # the run cases only
    python benchmarks/hostile_bounds.py --timeout 10     # shorter runs (the bounds scale with it)

Servers (tests/hostile_servers.py), each in its own process so the measured process is the harness alone:
    id-flood          200 text/event-stream, then ``id:x`` LF forever (lines, never an event)
    event-flood       ``data:x`` LF LF forever (millions of tiny events)
    byte-drip         one LF byte per TCP segment forever (the most reads per byte)
    valid-then-flood  valid answers to the first two requests (main and second prompt), then floods
                      (the repeats, probes and robustness streams)

Run cases: ``streamconform run URL --deadline T --save-capture B --html H --json J`` as a child process (`run`
admits loopback addresses; grade needs ``--allow-private``). Printed: wall time from spawn to exit (interpreter
start-up included), peak RSS (the child's VmHWM, cross-checked by psutil samples of the child and its children),
the size of the saved bundle, and the verdict against the bounds: wall <= T + 2 s, RSS <= 150 MB.

Grade case: ``streamconform grade ROSTER --concurrency 8 --deadline D --allow-private`` over the four flooders
and four copies of the reference server (a process of its own); bounds: wall <= 1.5 D, RSS <= 500 MB, every row
graded, every flooder failed, every reference server passed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hostile_servers import ServedElsewhere  # noqa: E402  (after the sys.path line)

MB = 1024 * 1024
FLOODERS = ("id-flood", "event-flood", "byte-drip", "valid-then-flood")
RUN_RSS_MB = 150.0
GRADE_RSS_MB = 500.0
RUN_MARGIN_S = 2.0
GRADE_FACTOR = 1.5


def serve_reference(conn: Any) -> None:
    """Child process: the reference server (default config: passes tds)."""
    from reference_server.embedded import EmbeddedServer

    server = EmbeddedServer().start()
    conn.send(server.endpoint)
    conn.recv()
    server.stop()


class Reference:
    """The reference server in a process of its own, stopped on exit."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve_reference, args=(child,), daemon=True)

    def __enter__(self) -> str:
        self.proc.start()
        return self.conn.recv()

    def __exit__(self, *exc: object) -> None:
        self.conn.send("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


@dataclass
class Measured:
    returncode: int
    wall_s: float
    peak_mb: float  # the child's VmHWM (its own peak), else the largest sample
    sampled_mb: float  # the largest psutil sample of the child plus its children
    stdout: str
    stderr: str


def _hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(line.split()[1]) for line in fh if line.startswith("VmHWM:")), None)
    except OSError:
        return None


def measure(argv: list[str], kill_after_s: float) -> Measured:
    """Run ``argv`` as a child; wall time and peak RSS (VmHWM read until it exits; psutil samples of the tree)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.pop("STREAMCONFORM_API_KEY", None)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    samples: list[int] = []
    hwm: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        try:
            ps = psutil.Process(proc.pid)
            while not stop.is_set():
                total = ps.memory_info().rss
                for child in ps.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:
                        pass
                samples.append(total)
                kb = _hwm_kb(proc.pid)
                if kb:
                    hwm.append(kb)
                stop.wait(0.02)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    killer = threading.Timer(kill_after_s, proc.kill)
    killer.start()
    try:
        out, err = proc.communicate()
    finally:
        killer.cancel()
    wall = time.monotonic() - t0
    stop.set()
    sampler.join(2)
    sampled = max(samples, default=0) / MB
    peak = max(max(hwm, default=0) * 1024 / MB, sampled)
    return Measured(proc.returncode, wall, peak, sampled, out.decode("utf-8", "replace"),
                    err.decode("utf-8", "replace"))


def run_case(name: str, url: str, timeout_s: float, tmp: Path) -> bool:
    bundle, html, js = tmp / f"{name}.bundle.json", tmp / f"{name}.html", tmp / f"{name}.json"
    argv = [sys.executable, "-m", "harness", "run", url, "--deadline", f"{timeout_s:g}", "--quiet",
            "--save-capture", str(bundle), "--html", str(html), "--json", str(js)]
    m = measure(argv, timeout_s + 60)
    bound_s = timeout_s + RUN_MARGIN_S
    size = bundle.stat().st_size / MB if bundle.exists() else float("nan")
    result = json.loads(js.read_text()) if js.exists() else {}
    failed = [c["id"] for c in result.get("checks", []) if c["status"] == "fail"]
    ok = m.wall_s <= bound_s and m.peak_mb <= RUN_RSS_MB and m.returncode == 1 and "Traceback" not in m.stderr
    print(f"  run {name:17s} exit {m.returncode}  wall {m.wall_s:5.1f} s (<= {bound_s:g})  "
          f"peak RSS {m.peak_mb:6.1f} MB (<= {RUN_RSS_MB:g}; sampled {m.sampled_mb:.0f})  bundle {size:5.1f} MB  "
          f"{'ok' if ok else 'MISSED'}")
    print(f"      failed checks: {', '.join(failed[:8])}{' ...' if len(failed) > 8 else ''}")
    if "Traceback" in m.stderr:
        print("      " + m.stderr[-2000:].replace("\n", "\n      "))
    return ok


def grade_case(flood_urls: list[str], good_url: str, deadline_s: float, tmp: Path) -> bool:
    roster = tmp / "roster.csv"
    rows = [f"flood-{n},{u}" for n, u in zip(FLOODERS, flood_urls, strict=True)]
    rows += [f"good-{i},{good_url}?student={i}" for i in range(4)]
    roster.write_text("id,url\n" + "\n".join(rows) + "\n")
    out = tmp / "grades"
    argv = [sys.executable, "-m", "harness", "grade", str(roster), "--out", str(out), "--concurrency", "8",
            "--deadline", f"{deadline_s:g}", "--allow-private", "--quiet", "--retry-delay", "1"]
    m = measure(argv, deadline_s * 4 + 60)
    bound_s = deadline_s * GRADE_FACTOR
    records = {rec["id"]: rec for rec in (json.loads(p.read_text()) for p in (out / "results").glob("*.json"))}
    wrong = []
    for sid in [r.split(",")[0] for r in rows]:
        rec = records.get(sid)
        if rec is None:
            wrong.append(f"{sid}: no record")
        elif sid.startswith("flood") and rec.get("passed"):
            wrong.append(f"{sid}: passed")
        elif sid.startswith("good") and not rec.get("passed"):
            wrong.append(f"{sid}: {rec['status']}, failed {rec.get('failed_checks')}")
    ok = m.wall_s <= bound_s and m.peak_mb <= GRADE_RSS_MB and not wrong and m.returncode == 0
    print(f"  grade 4 flooders + 4 good, concurrency 8, deadline {deadline_s:g} s: exit {m.returncode}  "
          f"wall {m.wall_s:5.1f} s (<= {bound_s:g})  peak RSS {m.peak_mb:6.1f} MB (<= {GRADE_RSS_MB:g}; "
          f"sampled {m.sampled_mb:.0f})  {'ok' if ok else 'MISSED'}")
    for sid, rec in sorted(records.items()):
        print(f"      {sid:24s} {rec['status']:8s} passed={rec['passed']!s:5s} {rec['duration_s']:6.1f} s  "
              f"attempts {[a['end_reason'] for a in rec['attempts']]}")
    for w in wrong:
        print(f"      WRONG {w}")
    if "Traceback" in m.stderr:
        print("      " + m.stderr[-2000:].replace("\n", "\n      "))
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--timeout", type=float, default=20.0, help="run --timeout (default 20)")
    ap.add_argument("--deadline", type=float, default=30.0, help="grade --deadline (default 30)")
    ap.add_argument("--only", choices=["run", "grade"], default=None)
    ap.add_argument("--case", action="append", default=None, choices=FLOODERS, help="run cases to measure")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"hostile_bounds: load average {load:.1f} on {os.cpu_count()} CPUs at the start")
    results = []
    with tempfile.TemporaryDirectory(prefix="hostile_bounds_") as tmp_dir:
        tmp = Path(tmp_dir)
        if args.only != "grade":
            for name in args.case or FLOODERS:
                with ServedElsewhere([name]) as urls:  # fresh per case: valid-then-flood counts requests
                    results.append(run_case(name, urls[0], args.timeout, tmp))
        if args.only != "run":
            with ServedElsewhere(list(FLOODERS)) as urls, Reference() as good:
                results.append(grade_case(list(urls), good, args.deadline, tmp))
    print(f"hostile_bounds: {sum(results)}/{len(results)} cases within bounds")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
