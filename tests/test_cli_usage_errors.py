"""Usage errors of `run`, `check` and `bench` as a user meets them: exit 2, one clear line, found before any work.

Exit codes: 0 passed, 1 a required check failed (an unreachable endpoint included), 2 usage or configuration
error, 3 a harness bug. Real subprocesses against the real reference server, loopback only.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli.run import emit_outputs
from harness.errors import ConfigError
from harness.run.runner import evaluate_bundle, load_bundle


def cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def a_file_in_the_way(tmp_path: Path) -> Path:
    """A regular file used as a directory: no output below it can be created, even by root."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    return blocker


@pytest.fixture(scope="module")
def saved_capture(reference_server, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saved")
    proc = cli("run", reference_server.endpoint, "--save-capture", str(out / "new" / "deeper" / "cap.json"),
               "--json", str(out / "other" / "r.json"), "--html", str(out / "third" / "r.html"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((out / "other" / "r.json").read_text())["passed"] is True
    assert (out / "third" / "r.html").exists()
    return out / "new" / "deeper" / "cap.json"


def test_every_output_path_creates_its_directory(saved_capture, tmp_path):
    assert saved_capture.exists()  # --save-capture, --json and --html into directories that did not exist
    proc = cli("check", str(saved_capture), "--json", str(tmp_path / "x" / "y" / "r.json"), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "x" / "y" / "r.json").read_text())["passed"] is True


@pytest.mark.parametrize("option", ["--json", "--html", "--save-capture"])
def test_an_unwritable_output_is_refused_before_the_run(reference_server, tmp_path, option):
    target = a_file_in_the_way(tmp_path) / "r.json"
    started = time.monotonic()
    proc = cli("run", reference_server.endpoint, option, str(target))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{option} {target}: cannot write there" in proc.stderr
    assert "internal error" not in proc.stderr and proc.stdout == ""  # no run was started, none wasted
    assert time.monotonic() - started < 10


def test_check_refuses_an_unwritable_output_too(saved_capture, tmp_path):
    blocked = a_file_in_the_way(tmp_path)
    for option in ("--json", "--html"):
        proc = cli("check", str(saved_capture), option, str(blocked / "out"))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"{option} {blocked / 'out'}: cannot write there" in proc.stderr


def test_a_write_failing_after_the_run_still_prints_the_verdict(saved_capture, tmp_path):
    """The disk can fill or a directory vanish during a run: the verdict is printed, then exit 2 for the file."""
    result = evaluate_bundle(load_bundle(str(saved_capture)), _profile())
    out = io.StringIO()
    args = Namespace(json_path=str(a_file_in_the_way(tmp_path) / "r.json"), html_path=None, quiet=False)
    with pytest.raises(ConfigError, match="--json .*cannot write it"):
        emit_outputs(result, args, Console(file=out, width=200))
    assert "PASS: every required check passed" in out.getvalue()


def _profile():
    from harness.run.profile import load_profile

    return load_profile("tds")


@pytest.mark.parametrize("command", ["run", "bench"])
def test_an_unknown_fault_is_a_usage_error_listing_the_faults(command):
    started = time.monotonic()
    proc = cli(command, "--fault", "nosuch")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "unknown fault 'nosuch'" in proc.stderr
    assert "buffered" in proc.stderr and "slow-ttft" in proc.stderr  # the valid names, to pick from
    assert time.monotonic() - started < 15  # no server was started


@pytest.mark.parametrize(("url", "reason"), [
    ("notaurl", "no scheme: the URL must start with http:// or https://"),
    ("localhost:8080/v1/chat/completions", "no scheme"),
    ("ftp://127.0.0.1/x", "unsupported scheme 'ftp'"),
    ("http://127.0.0.1:99999/x", "Port out of range"),
])
def test_a_url_that_cannot_be_requested_is_a_usage_error(url, reason):
    proc = cli("run", url)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert reason in proc.stderr and "Traceback" not in proc.stderr


def test_bench_refuses_a_url_that_cannot_be_requested(tmp_path):
    proc = cli("bench", "notaurl", "--concurrency", "1", "--requests", "1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no scheme" in proc.stderr


def test_bench_creates_the_output_directory_and_refuses_an_unwritable_one(reference_server, tmp_path):
    blocked = a_file_in_the_way(tmp_path)
    proc = cli("bench", reference_server.endpoint, "--concurrency", "1", "--requests", "1",
               "--json", str(blocked / "b.json"))
    assert proc.returncode == 2 and "cannot write there" in proc.stderr, proc.stderr
    proc = cli("bench", reference_server.endpoint, "--concurrency", "1", "--requests", "1",
               "--json", str(tmp_path / "new" / "b.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "new" / "b.json").read_text())["kind"] == "bench"


def test_the_pytest_plugin_still_fails_a_bad_url_as_a_check(tmp_path):
    """The plugin has no usage-error exit of its own: a bad --endpoint is a failed check that says why."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--endpoint", "notaurl", "-q", "-x",
                           "-p", "no:cacheprovider"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no scheme: the URL must start with http:// or https://" in proc.stdout
    assert "INTERNALERROR" not in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr


def test_usage_token_count_asks_for_usage_in_the_openai_dialect(reference_server):
    proc = cli("run", reference_server.endpoint, "--dialect", "openai", "--set", "token_method=usage",
               "--json", "-")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["metrics"]["token_method"] == "usage" and doc["metrics"]["tokens"] is not None
    rate = next(c for c in doc["checks"] if c["id"] == "timing.tokens_per_s")
    assert rate["status"] == "pass" and "stream_options" in rate["reproduce"]


def test_usage_token_count_in_the_prompt_dialect_says_what_to_do(reference_server):
    proc = cli("run", reference_server.endpoint, "--set", "token_method=usage", "--json", "-")
    assert proc.returncode == 1
    rate = next(c for c in json.loads(proc.stdout)["checks"] if c["id"] == "timing.tokens_per_s")
    assert rate["status"] == "fail" and "--dialect openai" in rate["message"]
    assert "None tokens" not in proc.stderr and "- tokens (usage)" in proc.stderr


def test_an_embedded_run_says_how_to_restart_the_server_for_its_reproduce_commands():
    proc = cli("run", "--fault", "few-chunks", "--quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    port = re.search(r"curl -N -i http://127\.0\.0\.1:(\d+)/", proc.stdout).group(1)
    assert f"`streamconform serve --port {port} --fault few-chunks`" in proc.stdout


def test_quiet_lists_failures_and_warnings_and_counts_the_rest(reference_server):
    proc = cli("run", reference_server.endpoint, "-H", "X-Fault: hang", "--deadline", "3", "--quiet")
    assert proc.returncode == 1
    # stdout is a pipe: one plain line per listed check, its status first
    rows = [line for line in proc.stdout.splitlines() if line[:4] in ("FAIL", "WARN", "PASS", "SKIP")
            and line[4:5] in ("?", " ")]
    assert rows and all(row[:4] in ("FAIL", "WARN") for row in rows), rows
    assert re.search(r"not listed: \d+ passed, \d+ skipped", proc.stdout)
    # the capture's deadline is quoted to 0.1 s, not as "2.45812 s"
    assert re.search(r"deadline was reached after \d+(\.\d)? s", proc.stdout), proc.stdout


def test_the_metrics_line_shows_a_dash_for_what_was_not_measured():
    from harness.cli.console import metrics_line

    line = metrics_line({"ttfb_ms": 12.0, "chunks": 0, "chars": 0, "tokens": None, "token_method": "tiktoken",
                         "tokens_per_s": None, "itl_ms": {"p50": None, "p90": None, "p99": None, "max": None}})
    assert "None" not in line and "p50  p99" not in line
    assert "- tokens (tiktoken)" in line and line.endswith("ITL -")
    assert metrics_line({"itl_ms": {"p50": 20.04, "p99": 31.0}}).endswith("ITL p50 20.0 p99 31.0 ms")
