"""One grader per --out folder: a second one is refused (exit 2, naming the holder), a lock left by a killed grader
is taken over with a warning, and only temporary files whose writer is gone are swept.

The end-to-end test runs a real grading subprocess against a slow reference server on loopback, kills it with
SIGKILL while it holds the lock, and checks the rerun grades every id exactly once.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness.cli import main as cli_main
from harness.grade import lock
from harness.grade.store import ResultStore
from reference_server.config import ServerConfig
from reference_server.embedded import EmbeddedServer
from tests.test_grade_cli import REPO, quick_profile, write_roster

SLOW = dict(gap_ms=25.0, ttft_ms=50.0)  # ~1 s streams: the first grader is still busy when the second arrives


def holder(out: Path) -> dict | None:
    try:
        text = (out / lock.LOCK_NAME).read_text()
    except OSError:
        return None
    return json.loads(text) if text.strip() else None


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the first grader ended early: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(0.05)


def finished_process_pid() -> int:
    """The pid of a process that has ended (and been reaped): a temporary file's writer that is gone."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def test_second_grader_refused_then_kill_9_lock_taken_over(tmp_path, capsys):
    n = 8
    with EmbeddedServer(ServerConfig(**SLOW)) as srv:
        roster = write_roster(tmp_path / "r.csv", [{"id": f"s{i}", "url": f"{srv.endpoint}?s={i}"} for i in range(n)])
        out = tmp_path / "out"
        argv = ["grade", str(roster), "--out", str(out), "--profile", quick_profile(tmp_path), "--allow-private",
                "--concurrency", "2", "--quiet", "--retry-delay", "0"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        first = subprocess.Popen([sys.executable, "-m", "harness.cli", *argv], cwd=REPO, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: (holder(out) or {}).get("pid") == first.pid and (out / "results").is_dir(), first,
                       "the first grader should hold the lock")
            # A write of the first grader in flight: the second grader deleted it and sank the batch.
            in_flight = out / "results" / f".s0-x.json.{first.pid}.0123abcd.tmp"
            in_flight.write_text("{")

            assert cli_main(argv) == 2
            err = capsys.readouterr().err
            assert f"pid {first.pid} on host {socket.gethostname()}, since " in err, err
            assert "being graded by another streamconform grade" in err and lock.LOCK_NAME in err
            assert in_flight.exists() and first.poll() is None  # the refused grader touched nothing

            wait_until(lambda: len(list((out / "results").glob("*.json"))) >= 2, first, "two results")
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            first.stderr.close()
        before = {p.name: p.read_bytes() for p in (out / "results").glob("*.json")}
        assert 2 <= len(before) < n, "the kill should land mid-run"
        assert (holder(out) or {}).get("pid") == first.pid  # the killed grader never released it

        assert cli_main(argv) == 0
    err = capsys.readouterr().err
    assert f"took over the lock on {out} from pid {first.pid}" in err, err
    after = {p.name: p.read_bytes() for p in (out / "results").glob("*.json")}
    assert len(after) == n and all(after[name] == data for name, data in before.items())
    assert sorted(json.loads(d)["id"] for d in after.values()) == [f"s{i}" for i in range(n)]
    with (out / "grades.csv").open(newline="") as fh:
        assert sorted(row["id"] for row in csv.DictReader(fh)) == [f"s{i}" for i in range(n)]  # each id once
    assert not in_flight.exists()  # its writer is dead now: swept
    assert holder(out) is None  # released: the next run takes it over silently


def test_lock_held_in_process_refuses_before_touching_the_folder(tmp_path, capsys):
    roster = write_roster(tmp_path / "r.csv", [{"id": "a", "url": "ftp://example.test/"}])
    out = tmp_path / "out"
    argv = ["grade", str(roster), "--out", str(out), "--quiet"]
    held = lock.acquire(out)
    try:
        assert cli_main(argv) == 2
    finally:
        lock.release(held)
    err = capsys.readouterr().err
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in err
    assert not (out / "results").exists()
    assert cli_main(argv) == 0
    assert "took over" not in capsys.readouterr().err  # released normally: no takeover


def test_lock_left_by_a_dead_grader_is_taken_over_with_a_warning(tmp_path, capsys):
    roster = write_roster(tmp_path / "r.csv", [{"id": "a", "url": "ftp://example.test/"}])
    out = tmp_path / "out"
    out.mkdir()
    dead = {"pid": finished_process_pid(), "host": "lab-3", "started_at": "2024-05-01T09:30:00.000Z"}
    (out / lock.LOCK_NAME).write_text(json.dumps(dead))  # its content, but nobody holds the flock
    assert cli_main(["grade", str(roster), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"took over the lock on {out} from pid {dead['pid']} on host lab-3, since 2024-05-01T09:30:00.000Z" in err
    assert holder(out) is None


def test_prepare_sweeps_only_temp_files_whose_writer_is_gone(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {"gone": f".a.json.{finished_process_pid()}.0123abcd.tmp",
                 "alive": f".b.json.{alive.pid}.0123abcd.tmp",  # another process writing: its rename must work
                 "mine": f".c.json.{os.getpid()}.0123abcd.tmp",  # this process's own write in flight
                 "foreign": ".d.json.tmp"}  # not a name atomic_write_text makes: not ours to judge
        for name in names.values():
            (store.results_dir / name).write_text("{")
        store.prepare()
    finally:
        alive.kill()
        alive.wait()
    left = {p.name for p in store.results_dir.glob(".*.tmp")}
    assert left == {names["alive"], names["mine"], names["foreign"]}
