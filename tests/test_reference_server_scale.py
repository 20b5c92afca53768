"""Smoke run of benchmarks/reference_server_scale.py (slow: kept out of the default run, like every scale test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "reference_server_scale.py"


@pytest.mark.slow
def test_scale_benchmark_quick_run_reports_both_designs(tmp_path):
    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--max-seconds", "120", "--json", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "largest level held" in proc.stdout and "ratio" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data["levels"]) == {"reference", "flask"}
    assert all(lv["events_per_s"] > 0 for levels in data["levels"].values() for lv in levels)
