"""Proof, end to end through run_target: the reference server passes every errors and robustness check with the tds
and ops profiles (the fault modes are in test_errors_faults.py)."""

from __future__ import annotations

import asyncio

from harness.checks.catalog import BAD_REQUEST_PROBES, PROBES
from harness.model import Limits
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, evaluate_bundle, load_bundle, run_target, save_bundle

OUR_CATEGORIES = ("errors", "robustness")
BODY_PROBES = {f"errors.{p}" for p in BAD_REQUEST_PROBES if p != "wrong_method" and PROBES[p].applies_to("prompt")}


def run(url: str, profile: str, fault: str | None = None, categories=None):
    headers = {"X-Fault": fault} if fault else {}
    options = RunOptions(headers=headers, limits=Limits(deadline_s=60), categories=categories, api_key=None)
    return asyncio.run(run_target(url, load_profile(profile), options))


def statuses(result, categories=OUR_CATEGORIES) -> dict[str, str]:
    return {c.id: c.status for c in result.checks if c.category in categories}


def failing(result, categories=OUR_CATEGORIES) -> set[str]:
    return {cid for cid, status in statuses(result, categories).items() if status == "fail"}


def test_reference_server_passes_every_errors_and_robustness_check_tds(reference_server):
    result = run(reference_server.endpoint, "tds")
    got = statuses(result)
    assert result.passed, [(c.id, c.message) for c in result.checks if c.status == "fail"]
    assert got.pop("errors.rate_limit") == "skip"  # off in tds
    assert got.pop("errors.auth") == "skip"  # no credentials sent
    assert got.pop("errors.missing_required") == "skip"  # an Anthropic probe: not this dialect's
    assert set(got.values()) == {"pass"}, got
    assert len(got) == len(BAD_REQUEST_PROBES) - 1 + 2 + 3  # probes, midstream, cors, three robustness checks


def test_offline_recheck_of_a_saved_bundle_gives_the_same_verdicts(reference_server, tmp_path):
    result = run(reference_server.endpoint, "tds", "error-500")
    path = str(tmp_path / "bundle.json")
    save_bundle(path, result)
    again = evaluate_bundle(load_bundle(path), load_profile("tds"))
    assert statuses(again) == statuses(result)
    assert {c.id: c.message for c in again.checks} == {c.id: c.message for c in result.checks}


def test_reference_server_passes_every_errors_and_robustness_check_ops(make_reference_server):
    server = make_reference_server(rate_limit=20)
    result = run(server.endpoint, "ops")
    got = statuses(result)
    assert result.passed, [(c.id, c.message) for c in result.checks if c.status == "fail"]
    assert got.pop("errors.auth") == "skip"  # no credentials sent
    assert got.pop("errors.missing_required") == "skip"  # an Anthropic probe: not this dialect's
    assert set(got.values()) == {"pass"}, {k: v for k, v in got.items() if v != "pass"}
    required = {c.id for c in result.checks if c.required and c.category in OUR_CATEGORIES}
    assert "errors.rate_limit" in required and "robustness.concurrency" in required
    assert "errors.cors" not in required  # advisory
