"""`measure_stream` through a real pytest-benchmark `benchmark` fixture, in a pytest subprocess (pytester).

Checks what a pytest-benchmark user relies on: --benchmark-json carries the stream metrics in extra_info,
the rounds are pedantic rounds of one stream each, and --benchmark-compare works against a saved run.
"""

from __future__ import annotations

import json

import pytest

from harness.bench.server import ReferenceServerProcess, free_port

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch):
    """The pytest subprocess must not inherit this run's xdist worker identity: pytest-benchmark reads
    PYTEST_XDIST_WORKER and disables itself, as if the child ran in parallel."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)

FAST_SERVER = ["--ttft-ms", "20", "--gap-ms", "5", "--chars", "300"]

# What the lead's plugin does: the loaded profile and the runner's options, as `pytest --endpoint` builds them.
TEST_FILE = """
import os

from harness.bench.fixture import measure_stream
from harness.run.profile import load_profile
from harness.run.runner import RunOptions


def test_stream_benchmark(benchmark):
    records = measure_stream(benchmark, os.environ["SC_BENCH_URL"], load_profile("tds"), RunOptions(), rounds=3)
    assert len(records) == 3
"""


@pytest.fixture(scope="module")
def server():
    with ReferenceServerProcess(FAST_SERVER) as srv:
        yield srv


def test_benchmark_json_carries_stream_metrics(server, pytester, monkeypatch):
    monkeypatch.setenv("SC_BENCH_URL", server.endpoint)
    pytester.makepyfile(test_stream=TEST_FILE)
    out = pytester.path / "bench.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--benchmark-json={out}")
    result.assert_outcomes(passed=1)
    doc = json.loads(out.read_text())
    (bench,) = doc["benchmarks"]
    assert bench["name"] == "test_stream_benchmark"
    assert bench["stats"]["rounds"] == 3  # one stream per pedantic round
    extra = bench["extra_info"]
    assert extra["rounds"] == 3 and extra["failed_rounds"] == 0
    assert extra["ttft_ms"]["p50"] >= 15  # the server waits 20 ms before the first content chunk
    assert extra["ttft_ms"]["p50"] <= bench["stats"]["median"] * 1000  # TTFT is part of the stream's time
    assert extra["tokens_per_s"] > 0 and extra["token_method"] == "chars/4"
    assert extra["itl_ms"]["count"] > 0 and extra["itl_ms"]["p50"] is not None


def test_benchmark_compare_against_a_saved_run(server, pytester, monkeypatch):
    monkeypatch.setenv("SC_BENCH_URL", server.endpoint)
    pytester.makepyfile(test_stream=TEST_FILE)
    storage = f"file://{pytester.path / 'storage'}"
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--benchmark-storage={storage}",
                                          "--benchmark-autosave")
    first.assert_outcomes(passed=1)
    second = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--benchmark-storage={storage}",
                                           "--benchmark-compare")
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["*test_stream_benchmark*", "*test_stream_benchmark*"])  # saved + current rows


def test_a_failing_endpoint_fails_the_benchmark_test(pytester, monkeypatch):
    monkeypatch.setenv("SC_BENCH_URL", f"http://127.0.0.1:{free_port()}/v1/chat/completions")
    pytester.makepyfile(test_stream=TEST_FILE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*3 of 3 benchmarked streams failed: connect_error*"])
