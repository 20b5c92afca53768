"""Run `streamconform run URL --deadline S` (or any subcommand) in a child process and measure it: exit code, output, time, peak memory.

The pipeline runs in its own process so its memory is measured alone (the hostile server lives in the test
process): ``os.wait4`` returns the child's peak RSS (``ru_maxrss``), and a psutil sampler cross-checks it while the
child runs. The time is taken inside the child around ``harness.cli.main`` so interpreter start-up and imports
(seconds on a loaded CI machine) do not count against the run's deadline; the child is killed if the whole
process outlives a generous bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

# Imports done before the clock starts: they are the interpreter's cost, not the run's.
_DRIVER = """
import json, sys, time
import harness.cli, harness.cli.run, harness.run.runner, harness.capture.core, harness.cli.console
import harness.run.probes, harness.run.robustness, harness.checks, harness.run.profile
harness.checks.load_checks()
try:
    import harness.parse.media
except ImportError:
    pass
t0 = time.monotonic()
rc = harness.cli.main(sys.argv[1:])
sys.stderr.write("\\nSTREAMCONFORM-ELAPSED %.3f\\n" % (time.monotonic() - t0))
# VmHWM is this process's own peak RSS since exec; the parent's wait4 ru_maxrss is not: Linux carries the forking
# parent's high-water mark into the child, so a big pytest process would be blamed on the run.
try:
    with open("/proc/self/status") as fh:
        peak = next((line.split()[1] for line in fh if line.startswith("VmHWM:")), None)
    if peak:
        sys.stderr.write("STREAMCONFORM-PEAK-KB %s\\n" % peak)
except OSError:
    pass
sys.exit(rc)
"""
# Start-up allowance on top of the deadline for the outer kill switch only (the asserted bound is measured inside).
_STARTUP_ALLOWANCE_S = 30.0
MB = 1024 * 1024


@dataclass
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float | None  # measured inside the child around cli.main
    wall_s: float
    peak_rss_mb: float  # the child's own peak RSS (VmHWM), else its ru_maxrss
    sampled_rss_mb: float  # largest psutil sample
    result: dict[str, Any] | None = None
    killed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in (self.result or {}).get("checks", []) if c["status"] == "fail"]

    def failure_text(self) -> str:
        """Every failed check's id and message, one per line (what a user reads)."""
        return "\n".join(f"{c['id']}: {c['message']}" for c in self.failed_checks())


def run_cli(url: str, timeout_s: float, *args: str, profile: str = "tds") -> ChildRun:
    """``streamconform run URL --deadline S --profile P --json FILE *args`` in a child process, measured."""
    with tempfile.TemporaryDirectory() as tmp:
        json_path = os.path.join(tmp, "result.json")
        child = run_streamconform(["run", url, "--deadline", str(timeout_s), "--profile", profile, "--json", json_path,
                                   "--quiet", *args], timeout_s)
        if os.path.exists(json_path):
            with open(json_path, encoding="utf-8") as fh:
                child.result = json.load(fh)
        return child


def run_streamconform(cli_args: list[str], deadline_s: float) -> ChildRun:
    """``streamconform *cli_args`` in a child process, measured; killed if it outlives ``deadline_s`` by far."""
    argv = [sys.executable, "-c", _DRIVER, *cli_args]
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.pop("STREAMCONFORM_API_KEY", None)
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        try:
            ps = psutil.Process(proc.pid)
            while not stop.is_set():
                samples.append(ps.memory_info().rss)
                stop.wait(0.02)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks: dict[str, bytes] = {}

    def drain(name: str, stream: Any) -> None:
        out_chunks[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(n, s), daemon=True)
               for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    killer = threading.Timer(deadline_s + _STARTUP_ALLOWANCE_S, lambda: proc.kill())
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    killed = proc.returncode < 0
    stop.set()
    sampler.join(2)
    for r in readers:
        r.join(5)
    stdout = out_chunks.get("out", b"").decode("utf-8", "replace")
    stderr = out_chunks.get("err", b"").decode("utf-8", "replace")
    elapsed = None
    peak_kb = usage.ru_maxrss  # Linux reports ru_maxrss in KiB; the child's own VmHWM below is preferred
    for line in stderr.splitlines():
        if line.startswith("STREAMCONFORM-ELAPSED "):
            elapsed = float(line.split()[1])
        elif line.startswith("STREAMCONFORM-PEAK-KB "):
            peak_kb = int(line.split()[1])
    return ChildRun(returncode=proc.returncode, stdout=stdout, stderr=stderr, elapsed_s=elapsed, wall_s=wall,
                    peak_rss_mb=peak_kb * 1024 / MB, sampled_rss_mb=max(samples, default=0) / MB, killed=killed)


# The bounds: a run ends within its deadline plus this margin, and peaks under this much memory.
DEADLINE_MARGIN_S = 2.0
RSS_LIMIT_MB = 150.0


def deadline_margin_s() -> float:
    """The promise is --timeout + 2 s on a machine with a core to spare. When the machine is oversubscribed (the
    suite's own parallel workers and children on two cores), the wall clock stretches with the run queue: the
    margin stretches with the 1-minute load per core, up to 3x, and the message says so."""
    try:
        per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        per_core = 1.0
    return DEADLINE_MARGIN_S * max(1.0, min(3.0, per_core))


def assert_bounded_failure(child: ChildRun, deadline_s: float, words: list[str]) -> None:
    """The run failed cleanly: exit 1, in time, in bounded memory, no traceback, a failed check naming the cause."""
    context = f"\n--- stdout\n{child.stdout[-3000:]}\n--- stderr\n{child.stderr[-3000:]}"
    assert not child.killed, "the run had to be killed" + context
    assert "Traceback" not in child.output, "a traceback was printed" + context
    assert child.returncode == 1, f"exit code {child.returncode}, expected 1 (a failed run)" + context
    margin = deadline_margin_s()
    assert child.elapsed_s is not None and child.elapsed_s <= deadline_s + margin, (
        f"the run took {child.elapsed_s} s with a {deadline_s} s deadline (margin {margin:.1f} s at this load)"
        + context)
    assert child.peak_rss_mb < RSS_LIMIT_MB, f"peak RSS {child.peak_rss_mb:.0f} MB" + context
    assert child.result is not None and child.result["passed"] is False, "no result JSON, or it passed" + context
    text = child.failure_text().lower()
    assert any(w.lower() in text for w in words), f"no failed check names the cause ({words}):\n{text}"
