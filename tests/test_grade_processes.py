"""grade --processes N: the roster graded by N local processes gives the verdicts of in-process grading, each id
once; a grading process killed mid-batch leaves error rows that a rerun grades; bad counts exit 2 before any work.

Real reference servers (child processes) on loopback, the real CLI, real spawned grading processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest

from harness.bench.server import ReferenceServerProcess
from harness.cli import main as cli_main
from harness.distributed.grade_processes import shares, usable_cpus
from tests.ray_support import FAST, SERVERS, grade_roster, verdicts
from tests.test_grade_cli import quick_profile, records, write_roster


def test_the_concurrency_is_split_over_the_processes() -> None:
    assert shares(10, 3) == [4, 3, 3]
    assert shares(64, 2) == [32, 32]
    assert shares(1, 2) == [1]  # no process started with nothing to do


@pytest.mark.skipif(usable_cpus() < 2, reason="needs two CPUs")
def test_grade_in_two_processes_writes_the_verdicts_of_in_process_grading(tmp_path, capsys) -> None:
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(ReferenceServerProcess(FAST + fault)).endpoint
                   for name, fault in SERVERS}
        roster = grade_roster(tmp_path, servers)
        common = ["grade", str(roster), "--allow-private", "--retry-delay", "0.2", "--concurrency", "4"]
        assert cli_main([*common, "--quiet", "--out", str(tmp_path / "local")]) == 0
        capsys.readouterr()
        assert cli_main([*common, "--out", str(tmp_path / "procs"), "--processes", "2"]) == 0
        said = capsys.readouterr()
    local, procs = verdicts(tmp_path / "local"), verdicts(tmp_path / "procs")
    assert set(local) == {"good", "good2", "canned", "buffered", "refused", "invalid"}
    assert procs == local
    assert local["good"][0] == "ok" and local["good"][3] is True and local["canned"][3] is False
    assert len(list((tmp_path / "procs" / "results").glob("*.json"))) == 6  # each id once
    assert "grading in 2 processes, 2+2 at once" in said.out + said.err
    assert (tmp_path / "procs" / "grades.csv").exists() and (tmp_path / "procs" / "summary.html").exists()


@pytest.mark.skipif(usable_cpus() < 2, reason="needs two CPUs")
def test_a_grading_process_killed_mid_batch_leaves_error_rows_a_rerun_grades(tmp_path, monkeypatch) -> None:
    from harness.distributed import grade_processes

    started: list[dict] = []
    real = grade_processes.grade_all_in_processes

    def noting(*args, **kwargs):
        told = kwargs.get("on_ready")

        def ready(workers):
            started.extend(workers)
            if told:
                told(workers)

        kwargs["on_ready"] = ready
        return real(*args, **kwargs)

    monkeypatch.setattr(grade_processes, "grade_all_in_processes", noting)
    out = tmp_path / "out"
    with ReferenceServerProcess(["--ttft-ms", "1500", "--gap-ms", "5"]) as slow:
        ids = [f"s{i}" for i in range(8)]
        roster = write_roster(tmp_path / "r.csv", [{"id": i, "url": f"{slow.endpoint}?student={i}"} for i in ids])
        argv = ["grade", str(roster), "--out", str(out), "--allow-private", "--quiet", "--concurrency", "4",
                "--profile", quick_profile(tmp_path), "--processes", "2"]
        result: dict = {}
        grading = threading.Thread(target=lambda: result.update(code=cli_main(argv)))
        grading.start()
        deadline = time.monotonic() + 60
        while len(started) < 2:
            assert time.monotonic() < deadline, "the grading processes did not start"
            time.sleep(0.05)
        time.sleep(1.0)  # both have submissions in flight (each takes about 3 s)
        os.kill(started[1]["pid"], signal.SIGKILL)
        grading.join(120)
        assert not grading.is_alive()
        first = records(out)
        assert result["code"] == 1 and sorted(first) == ids  # every id has a record, none twice
        lost = [r for r in first.values() if r["status"] == "error"]
        assert len(lost) == 2 and all("process grading it was lost" in r["attempts"][0]["error"] for r in lost)
        monkeypatch.setattr(grade_processes, "grade_all_in_processes", real)
        assert cli_main(argv) == 0
    assert all(r["status"] == "ok" for r in records(out).values())


@pytest.mark.parametrize("extra, message", [
    (["--processes", "0"], "--processes must be between 1 and"),
    (["--processes", "100000"], "--processes must be between 1 and"),
    (["--processes", "2", "--ray", "auto"], "not both"),
])
def test_bad_process_counts_exit_2_before_any_request(tmp_path, capsys, extra, message) -> None:
    roster = write_roster(tmp_path / "r.csv", [{"id": "a", "url": "http://127.0.0.1:9/v1/chat/completions"}])
    assert cli_main(["grade", str(roster), "--out", str(tmp_path / "out"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
