"""The engine end to end over real loopback HTTP: deadlines, capture bundles, offline re-checks, the full pipeline."""

from __future__ import annotations

import asyncio
import json
import time

import jsonschema
import pytest

from harness.model import Limits
from harness.run.profile import load_profile
from harness.run.runner import (
    RunOptions,
    evaluate_bundle,
    load_bundle,
    planned_checks,
    run_target,
    save_bundle,
)
from schemas import load_schema

MINE = {"http", "framing", "schema", "stream", "content", "timing"}


def _run(url: str, profile: str = "tds", **kw):
    options = RunOptions(api_key=None, **kw)
    return asyncio.run(run_target(url, load_profile(profile), options))


@pytest.fixture(scope="module")
def full_run(reference_server):
    """The whole pipeline (probes and robustness included) once against the clean server."""
    return _run(reference_server.endpoint, "tds", limits=Limits(deadline_s=60.0))


def test_full_pipeline_result_is_valid_and_passes(full_run):
    doc = full_run.to_dict()
    jsonschema.validate(doc, load_schema("result.schema"))
    assert doc["passed"], [c for c in doc["checks"] if c["status"] == "fail"]
    assert [c["id"] for c in doc["checks"]] == [cid for cid, _ in planned_checks(load_profile("tds"))]
    assert doc["metrics"]["ttft_ms"] > 0 and doc["metrics"]["chunks"] >= 5
    assert doc["transcript"]["text"] and doc["timeline"]
    assert full_run.captures["secondary"].request.prompt != full_run.captures["primary"].request.prompt
    assert "stage_errors" not in full_run.extra, full_run.extra


def test_bundle_round_trip_rechecks_offline(full_run, tmp_path):
    path = tmp_path / "capture.json"
    save_bundle(str(path), full_run)
    bundle = load_bundle(str(path))
    assert bundle["format"] == 1 and bundle["profile"] == "tds" and bundle["secondary"]
    again = evaluate_bundle(bundle, load_profile("tds"))
    assert [(c.id, c.status) for c in again.checks] == [(c.id, c.status) for c in full_run.checks]
    assert again.metrics == full_run.metrics
    # Stricter settings re-judge the same bytes offline.
    strict = evaluate_bundle(bundle, load_profile("tds", ["timing.ttft_ms=1"]))
    assert strict.check("timing.ttft").status == "fail" and not strict.passed


def test_a_bare_capture_is_a_bundle(full_run, tmp_path):
    path = tmp_path / "one.json"
    path.write_text(full_run.captures["primary"].to_json())
    result = evaluate_bundle(load_bundle(str(path)), load_profile("tds"))
    assert result.check("content.distinct").status == "skip"
    assert result.check("timing.ttft").status == "pass"


@pytest.mark.parametrize("content", ["[]", '{"format": 99, "primary": {}}', '{"format": 1}'])
def test_bad_bundles_are_value_errors(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        load_bundle(str(path))


@pytest.mark.parametrize("fault", ["hang", "infinite"])
def test_run_ends_within_its_deadline(reference_server, fault):
    start = time.monotonic()
    result = _run(reference_server.endpoint, "tds", headers={"X-Fault": fault}, categories=MINE,
                  limits=Limits(deadline_s=3.0, idle_timeout_s=2.0))
    assert time.monotonic() - start < 6.0
    complete = result.check("framing.complete")
    assert complete.status == "fail" and complete.measured in ("deadline", "idle_timeout")
    assert not result.passed


def test_unreachable_target_is_a_failed_run_not_an_exception():
    result = _run("http://127.0.0.1:9/v1/chat/completions", "tds", categories=MINE,
                  limits=Limits(deadline_s=5.0))
    status = result.check("http.status")
    assert status.status == "fail" and "connect" in status.message
    assert not result.passed and result.captures.get("secondary") is None
    json.dumps(result.to_dict())


def test_openai_dialect_and_auto(reference_server):
    result = _run(reference_server.endpoint, "openai", categories=MINE)
    assert result.passed, [(c.id, c.message) for c in result.checks if c.status == "fail"]
    body = json.loads(result.captures["primary"].request.body)
    assert body["messages"][0]["content"] and body["stream_options"] == {"include_usage": True}
    auto = _run(reference_server.endpoint, "tds", dialect="auto", categories=MINE)
    assert auto.passed


def test_categories_limit_the_checks(reference_server):
    result = _run(reference_server.endpoint, "tds", categories={"http"})
    assert {c.category for c in result.checks} == {"http"}
    assert "secondary" not in result.captures


def test_a_crashing_collect_stage_is_a_note_not_a_crash(reference_server, monkeypatch):
    from harness.run import probes

    async def broken(run):
        raise RuntimeError("probe bug")

    monkeypatch.setattr(probes, "collect", broken)
    result = _run(reference_server.endpoint, "tds", categories=MINE | {"errors"})
    doc = result.to_dict()
    assert any("probe bug" in n for n in doc["notes"])
    jsonschema.validate(doc, load_schema("result.schema"))
    assert result.check("timing.ttft").status == "pass"
