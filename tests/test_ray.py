"""bench --ray and grade --ray on a real local Ray instance (ray.init(num_cpus=2), not local_mode).

bench: each level split over two actors (their requests add up, every record kept once, TTFT p50 within
25 % of the in-process run against the same server), an open level's rate divided, a worker killed mid-level
reported with its requests counted as errors while the level and the next go on. grade: the same verdicts as
in-process grading, the address guard applied where the request is made, and a driver killed with SIGKILL
then rerun loses nothing and grades nothing twice. The two-node split and a `ray start` cluster are in
test_ray_cluster.py.

Run apart from the default suite (one Ray at a time): `pytest -m ray -n 0`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from harness.bench.server import ReferenceServerProcess
from harness.bench.stats import LevelSpec
from harness.cli import main as cli_main
from schemas import load_schema
from tests.ray_support import (
    FAST,
    MARKS,
    SERVERS,
    bench_args,
    grade_roster,
    import_ray_on_loopback,
    ttft_p50s,
    verdicts,
    within,
)
from tests.test_grade_cli import quick_profile, records, write_roster

pytestmark = MARKS
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_local():
    ray = import_ray_on_loopback()
    # "local": a new instance, even where another `ray start` cluster runs on the machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def server():
    with ReferenceServerProcess() as srv:  # a child process: it must not share the test's GIL
        yield srv


def test_the_ray_extra_is_installed():
    """What `pip install 'streamconform[ray]'` brings (the README's test command installs it)."""
    major, minor = (int(x) for x in importlib.metadata.version("ray").split(".")[:2])
    assert (major, minor) >= (2, 9)


def test_bench_splits_each_level_over_two_workers_and_times_like_in_process(ray_local, server, tmp_path):
    in_process, on_ray = tmp_path / "local.json", tmp_path / "ray.json"
    assert cli_main(bench_args(server.endpoint, in_process)) == 0
    assert cli_main(bench_args(server.endpoint, on_ray, "--ray", "auto", "--workers", "2")) == 0
    doc = json.loads(on_ray.read_text(encoding="utf-8"))
    jsonschema.validate(doc, load_schema("bench.schema"))
    assert doc["options"]["ray"] == "auto" and doc["options"]["workers"] == 2
    for level in doc["levels"]:
        workers = level["workers"]
        assert [w["worker"] for w in workers] == [0, 1]
        assert [w["requests"] for w in workers] == [32, 32] and level["requests"] == 64 == level["completed"]
        assert all(w["error"] is None and w["events_per_s"] > 0 and w["node"] for w in workers)
        assert [r["index"] for r in level["records"]] == list(range(64))
        assert sorted({r["worker"] for r in level["records"]}) == [0, 1]
    local, ray = ttft_p50s(in_process), ttft_p50s(on_ray)
    for label in local:  # the reference server's TTFT is 50 ms: each worker's clock measures it as in-process
        assert within(ray[label], local[label], 0.25), (label, ray[label], local[label])


def test_an_open_level_divides_its_rate_between_the_workers(ray_local, server, tmp_path):
    out = tmp_path / "open.json"
    assert cli_main(["bench", server.endpoint, "--rate", "8", "--requests", "16", "--ray", "auto",
                     "--workers", "2", "--json", str(out)]) == 0
    (level,) = json.loads(out.read_text(encoding="utf-8"))["levels"]
    assert level["label"] == "rate=8/s" and level["completed"] == 16
    assert [w["requests"] for w in level["workers"]] == [8, 8]


def test_a_worker_lost_mid_level_is_reported_and_the_level_goes_on(ray_local):
    from harness.distributed.bench_workers import run_levels_on_ray

    ready = threading.Event()
    result: dict = {}
    plans = [(LevelSpec("closed", concurrency=4), 8, None, 0),
             (LevelSpec("closed", concurrency=2), 4, None, 0)]
    with ReferenceServerProcess(["--gap-ms", "100"]) as slow:  # about 4 s per request
        client = {"url": slow.endpoint, "dialect": "prompt", "prompts": ["Explain server-sent events."],
                  "timeout_s": 60.0, "token_method": "chars/4"}

        def bench() -> None:
            try:
                result["levels"] = run_levels_on_ray("auto", 2, client, plans, {},
                                                     on_ready=lambda _: ready.set())
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                result["error"] = exc

        thread = threading.Thread(target=bench)
        thread.start()
        assert ready.wait(120)
        time.sleep(2.0)  # the first level began 0.5 s after the workers were ready: its requests are running
        (name,) = [n for n in ray_local.util.list_named_actors() if n.startswith("streamconform-bench-")
                   and n.endswith("-1")]
        ray_local.kill(ray_local.get_actor(name), no_restart=True)
        thread.join(180)
    assert "error" not in result, result.get("error")
    first, second = result["levels"]
    lost = [w for w in first["workers"] if w["error"]]
    assert [w["worker"] for w in lost] == [1] and lost[0]["requests"] == 4
    assert first["requests"] == 8 and first["completed"] == 4 and first["errors"] == {"worker_lost": 4}
    assert [w["worker"] for w in second["workers"]] == [0]  # the next level runs on the worker left
    assert second["completed"] == 4


def test_grade_on_ray_writes_the_verdicts_of_in_process_grading(ray_local, tmp_path):
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(ReferenceServerProcess(FAST + fault)).endpoint
                   for name, fault in SERVERS}
        roster = grade_roster(tmp_path, servers)
        common = ["grade", str(roster), "--allow-private", "--quiet", "--retry-delay", "0.2"]
        assert cli_main([*common, "--out", str(tmp_path / "local")]) == 0
        assert cli_main([*common, "--out", str(tmp_path / "ray"), "--ray", "auto"]) == 0
    local, ray = verdicts(tmp_path / "local"), verdicts(tmp_path / "ray")
    assert set(local) == {"good", "good2", "canned", "buffered", "refused", "invalid"}
    assert ray == local
    assert local["good"][0] == "ok" and local["good"][3] is True and local["canned"][3] is False
    assert (tmp_path / "ray" / "grades.csv").exists() and (tmp_path / "ray" / "summary.html").exists()


def test_the_address_guard_judges_the_address_the_ray_worker_connects_to(ray_local, server, tmp_path):
    roster = write_roster(tmp_path / "r.csv", [{"id": "loop", "url": server.endpoint}])
    assert cli_main(["grade", str(roster), "--out", str(tmp_path / "out"), "--quiet", "--ray", "auto"]) == 0
    rec = records(tmp_path / "out")["loop"]
    assert rec["status"] == "blocked_address" and "127.0.0.1" in rec["attempts"][0]["error"]


def test_kill_9_of_the_driver_then_a_rerun_lose_nothing(ray_local, tmp_path):
    address = ray_local.get_runtime_context().gcs_address
    out = tmp_path / "out"
    with ReferenceServerProcess(["--ttft-ms", "600", "--gap-ms", "5"]) as slow:
        ids = [f"s{i}" for i in range(8)]
        roster = write_roster(tmp_path / "r.csv",
                              [{"id": i, "url": f"{slow.endpoint}?student={i}"} for i in ids])
        cmd = [sys.executable, "-m", "harness.cli", "grade", str(roster), "--out", str(out),
               "--allow-private", "--quiet", "--profile", quick_profile(tmp_path), "--concurrency", "1",
               "--ray", address]
        driver = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 180
            while len(list((out / "results").glob("*.json"))) < 2:
                assert driver.poll() is None and time.monotonic() < deadline, "the driver graded nothing"
                time.sleep(0.1)
        finally:
            driver.kill()  # SIGKILL: no handler runs
            driver.wait(30)
        before = {p.name: p.read_bytes() for p in (out / "results").glob("*.json")}
        assert 2 <= len(before) < len(ids)
        rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = records(out)
    assert sorted(after) == ids and all(r["status"] == "ok" for r in after.values())
    for name, data in before.items():  # graded before the kill: kept as written, not graded again
        assert (out / "results" / name).read_bytes() == data
    assert not (out / "superseded").exists() and not list((out / "results").glob(".*.tmp"))
