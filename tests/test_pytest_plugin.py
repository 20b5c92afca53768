"""`pytest --endpoint URL` as a user runs it: real pytest in a subprocess, outside this project's conftest."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema

from schemas import load_schema


def run_pytest(tmp_path, *args: str) -> subprocess.CompletedProcess:
    # Run from an empty directory so only the installed plugin (entry point) is in play, as for a user.
    env = dict(os.environ, COLUMNS="160")
    env.pop("PYTEST_ADDOPTS", None)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        env.pop(name, None)  # the child is not one of this run's parallel workers (pytest-benchmark reads it)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180, env=env)


def test_embedded_reference_server_passes_one_test_per_check(tmp_path):
    out = tmp_path / "result.json"
    proc = run_pytest(tmp_path, "--endpoint", "--conformance-json", str(out), "-v")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "test_check[timing.ttft] PASSED" in proc.stdout
    assert "test_check[content.chars] PASSED" in proc.stdout
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, load_schema("result.schema.json"))
    # one test item per check that ran
    assert proc.stdout.count("test_check[") >= len(doc["checks"])
    assert not (tmp_path / ".benchmarks").exists()  # pytest-benchmark's folder, empty: not left behind


def test_failing_check_prints_evidence_and_reproduce_command(tmp_path, reference_server):
    proc = run_pytest(tmp_path, "--endpoint", reference_server.endpoint, "--conformance-header",
                      "X-Fault: short-content", "-m", "content", "-q")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "FAILED" in proc.stdout and "content.chars" in proc.stdout
    assert "evidence:" in proc.stdout and "curl -N" in proc.stdout
    # the run's verdict line closes the session, as the CLI prints it
    assert "FAIL: 1 required check failed: content.chars" in proc.stdout
    # -m content selected only content checks
    assert "timing.ttft" not in proc.stdout.split("short test summary")[0].split("FAILURES")[0]


def test_profile_option_and_category_markers(tmp_path, reference_server):
    proc = run_pytest(tmp_path, "--endpoint", reference_server.endpoint, "--profile", "openai", "-m", "schema",
                      "-v")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "schema.consistent_id" in proc.stdout
    assert "checking " + reference_server.endpoint + " with profile openai" in proc.stdout


def test_plugin_is_inert_without_endpoint(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    proc = run_pytest(tmp_path, "-q")
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout


def test_asking_for_the_conformance_tests_without_endpoint_checks_the_embedded_server(tmp_path):
    proc = run_pytest(tmp_path, "--pyargs", "harness.conformance_tests", "-m", "stream", "-v")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "checking an embedded reference server" in proc.stdout
    assert "test_check[stream.done] PASSED" in proc.stdout


def test_ini_setting_names_the_endpoint_when_the_option_is_absent(tmp_path, reference_server):
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nstreamconform_endpoint = {reference_server.endpoint}\n")
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    proc = run_pytest(tmp_path, "-m", "http or not conformance", "-v")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert f"checking {reference_server.endpoint}" in proc.stdout
    assert "test_check[http.status] PASSED" in proc.stdout and "test_x PASSED" in proc.stdout
