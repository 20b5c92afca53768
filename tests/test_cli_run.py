"""`streamconform run` and `check` as a user runs them: a real subprocess against the real reference server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jsonschema

from schemas import load_schema


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="160")
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_run_without_url_checks_the_embedded_reference_server_and_passes():
    proc = cli("run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "embedded reference server" in proc.stdout
    assert "PASS: every required check passed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_run_json_to_stdout_is_a_valid_result_and_the_table_goes_to_stderr(reference_server):
    proc = cli("run", reference_server.endpoint, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, load_schema("result.schema.json"))
    assert doc["passed"] is True and doc["target"] == reference_server.endpoint
    assert "PASS" in proc.stderr


def test_a_fault_fails_the_run_with_evidence_and_a_curl_command(reference_server):
    proc = cli("run", reference_server.endpoint, "-H", "X-Fault: few-chunks", "--quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "content.chunks" in proc.stdout and "FAIL" in proc.stdout
    assert "curl -N" in proc.stdout
    assert "X-Fault: few-chunks" in proc.stdout  # the reproduce command carries the extra header


def test_saved_capture_rechecks_offline_with_the_same_verdict(reference_server, tmp_path):
    cap, first, second = tmp_path / "cap.json", tmp_path / "a.json", tmp_path / "b.json"
    proc = cli("run", reference_server.endpoint, "-H", "X-Fault: malformed-json", "--save-capture", str(cap),
               "--json", str(first))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    proc = cli("check", str(cap), "--json", str(second))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    status = lambda doc: {c["id"]: c["status"] for c in doc["checks"]}  # noqa: E731
    assert status(a) == status(b)
    assert status(b)["schema.events"] == "fail"


def test_profile_override_changes_the_threshold(reference_server):
    proc = cli("run", reference_server.endpoint, "--set", "content.min_chars=100000", "--quiet")
    assert proc.returncode == 1
    assert "content.chars" in proc.stdout


def test_usage_errors_exit_2_with_one_clear_line():
    for args in (["run", "--profile", "no-such-profile"], ["run", "--set", "nonsense"],
                 ["run", "--set", "timing.no_such_key=3"], ["run", "-H", "no colon here"],
                 ["check", "/nonexistent/capture.json"]):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "error" in proc.stderr.lower() and "Traceback" not in proc.stderr, (args, proc.stderr)


def test_unreachable_endpoint_is_a_failure_with_a_clear_message():
    proc = cli("run", "http://127.0.0.1:9/v1/chat/completions", "--deadline", "10")
    assert proc.returncode == 1
    assert "connect" in proc.stdout.lower()
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_hanging_endpoint_ends_within_the_deadline(reference_server):
    started = time.monotonic()
    proc = cli("run", reference_server.endpoint, "-H", "X-Fault: hang", "--deadline", "6", timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert elapsed < 6 + 2 + 3, elapsed  # deadline + 2 s, plus interpreter start-up
    assert "Traceback" not in proc.stdout + proc.stderr
