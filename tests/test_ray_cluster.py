"""bench --ray across two Ray nodes (ray.cluster_utils.Cluster), and the issue's done criteria on a cluster
started the way a user starts one (`ray start --head`), driven through the real command line.

Each test starts its own Ray and stops it before the next (one Ray at a time on a two-core machine);
everything listens on 127.0.0.1. Run apart from the default suite: `pytest -m ray -n 0`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.bench.server import ReferenceServerProcess
from harness.cli import main as cli_main
from harness.distributed.ray_backend import LOOPBACK_ONLY_ENV
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
RAY_WORKER_PORTS = range(10002, 20000)  # `ray start` keeps these for its workers; the head's goes elsewhere


def _head_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RAY_WORKER_PORTS:
            return port


@pytest.fixture
def ray_start_cluster(tmp_path):
    """`ray start --head --num-cpus 2` on loopback, blocking in a child process so that terminating it stops
    the cluster (never `ray stop`, which would stop every Ray on the machine). Yields its address and the
    environment a driver needs: the same loopback rule and token authentication as the cluster."""
    port = _head_port()
    env = {**os.environ, LOOPBACK_ONLY_ENV: "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    log_path = tmp_path / "ray-start.log"
    with log_path.open("wb") as log:
        head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head",
                                 "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                                 "--include-dashboard", "false", "--disable-usage-stats", "--block"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in log_path.read_bytes():
            assert head.poll() is None, log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "ray start did not come up in 120 s"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        head.terminate()
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(30)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_done_criteria_on_a_cluster_started_with_ray_start(ray_start_cluster, tmp_path):
    """bench URL --ray HOST:PORT --workers 2 --concurrency 4,16 --requests 64: both workers share each level
    (their requests add up to 64) and TTFT p50 is within 25 % of the in-process run against the same server;
    grade roster.csv --ray HOST:PORT writes the verdicts in-process grading writes."""
    address, env = ray_start_cluster
    with ReferenceServerProcess() as server:  # `streamconform serve` in a child process
        on_ray = _cli(bench_args(server.endpoint, tmp_path / "ray.json", "--ray", address, "--workers", "2"),
                      env)
        in_process = _cli(bench_args(server.endpoint, tmp_path / "local.json"), env)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert in_process.returncode == 0, in_process.stderr[-3000:]
    for level in json.loads((tmp_path / "ray.json").read_text(encoding="utf-8"))["levels"]:
        assert [w["requests"] for w in level["workers"]] == [32, 32] and level["completed"] == 64
    local, ray = ttft_p50s(tmp_path / "local.json"), ttft_p50s(tmp_path / "ray.json")
    assert all(within(ray[label], local[label], 0.25) for label in local), (ray, local)

    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(ReferenceServerProcess(FAST + fault)).endpoint
                   for name, fault in SERVERS}
        roster = grade_roster(tmp_path, servers)
        common = ["grade", str(roster), "--allow-private", "--quiet", "--retry-delay", "0.2"]
        graded_on_ray = _cli([*common, "--out", str(tmp_path / "g-ray"), "--ray", address], env)
        graded_here = _cli([*common, "--out", str(tmp_path / "g-local")], env)
    assert graded_on_ray.returncode == 0, graded_on_ray.stderr[-3000:]
    assert graded_here.returncode == 0, graded_here.stderr[-3000:]
    assert verdicts(tmp_path / "g-ray") == verdicts(tmp_path / "g-local")
    assert len(verdicts(tmp_path / "g-ray")) == 6


# Last in the module: its two-node Ray must not overlap the `ray start` one above (one Ray at a time).
@pytest.fixture(scope="module")
def two_nodes():
    """A head and a second node of one CPU each, on loopback; this process connected to them."""
    ray = import_ray_on_loopback()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        yield ray
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_two_nodes_each_run_one_worker_of_every_level(two_nodes, tmp_path):
    with ReferenceServerProcess() as server:
        split, default = tmp_path / "split.json", tmp_path / "default.json"
        assert cli_main(bench_args(server.endpoint, split, "--ray", "auto", "--workers", "2")) == 0
        # without --workers: one worker per node
        assert cli_main(["bench", server.endpoint, "--concurrency", "4", "--requests", "16",
                         "--ray", "auto", "--json", str(default)]) == 0
    for path, total in ((split, 64), (default, 16)):
        for level in json.loads(path.read_text(encoding="utf-8"))["levels"]:
            workers = level["workers"]
            assert len({w["node"] for w in workers}) == 2, workers  # SPREAD: one per node
            assert [w["requests"] for w in workers] == [total // 2] * 2 and level["completed"] == total


def test_a_grading_worker_lost_mid_batch_leaves_error_rows_a_rerun_grades(two_nodes, tmp_path):
    """One grading actor per node; killing one mid-batch turns its submissions in flight into error rows (exit
    1), the other node grades the rest, and rerunning the command grades the error rows: every id ends ok."""
    out = tmp_path / "out"
    with ReferenceServerProcess(["--ttft-ms", "1500", "--gap-ms", "5"]) as slow:
        ids = [f"s{i}" for i in range(8)]
        roster = write_roster(tmp_path / "r.csv",
                              [{"id": i, "url": f"{slow.endpoint}?student={i}"} for i in ids])
        argv = ["grade", str(roster), "--out", str(out), "--allow-private", "--quiet", "--concurrency", "2",
                "--profile", quick_profile(tmp_path), "--ray", "auto"]
        result: dict = {}
        grading = threading.Thread(target=lambda: result.update(code=cli_main(argv)))
        grading.start()
        deadline = time.monotonic() + 120
        while not [n for n in two_nodes.util.list_named_actors() if n.startswith("streamconform-grade-")]:
            assert time.monotonic() < deadline, "no grading worker started"
            time.sleep(0.1)
        time.sleep(2.0)  # both workers have submissions in flight (each takes about 3 s)
        (name,) = [n for n in two_nodes.util.list_named_actors() if n.startswith("streamconform-grade-")
                   and n.endswith("-1")]
        two_nodes.kill(two_nodes.get_actor(name), no_restart=True)
        grading.join(300)
        first = records(out)
        assert result["code"] == 1 and sorted(first) == ids
        lost = [r for r in first.values() if r["status"] == "error"]
        assert lost and all("worker grading it was lost" in r["attempts"][0]["error"] for r in lost)
        assert cli_main(argv) == 0
    assert all(r["status"] == "ok" for r in records(out).values())
