"""Error probes against the real reference server: bodies, selection, verdicts, CORS, the rate-limit burst.

The errors.* checks read only the probe captures, so these tests run probes.collect() on a runner ``Run`` and
evaluate the errors checks directly (the full pipeline is exercised in test_hostile*.py / test_errors_e2e.py).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from harness.capture.core import capture
from harness.capture.request import build_request
from harness.checks import Context, catalog, load_checks
from harness.model import Limits, RequestSpec
from harness.run import probes
from harness.run.profile import load_profile
from harness.run.runner import Run, RunOptions

PROMPT = "Explain how volcanoes form."


# -- bodies (no network) --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dialect", ["prompt", "openai"])
def test_each_probe_body_is_the_valid_request_broken_in_one_way(dialect):
    base = build_request("http://127.0.0.1:9/v1/chat/completions", dialect, PROMPT, model="m1",
                         headers={"X-Trace": "1"}, api_key="sk-test")
    settings = {"prompt_limit": 5000}
    bodies = {pid: probes.build_probe_request(catalog.PROBES[pid], base, settings) for pid in catalog.BAD_REQUEST_PROBES}
    for spec in bodies.values():
        assert spec.url == base.url
        assert spec.headers["Authorization"] == "Bearer sk-test" and spec.headers["X-Trace"] == "1"
    with pytest.raises(ValueError):
        json.loads(bodies["invalid_json"].body)
    assert bodies["empty_body"].body == b""
    assert isinstance(json.loads(bodies["not_object"].body), list)
    key = "messages" if dialect == "openai" else "prompt"
    assert key not in json.loads(bodies["missing_prompt"].body)
    assert json.loads(bodies["stream_not_bool"].body)["stream"] == "yes"
    assert bodies["wrong_method"].method == "GET" and bodies["wrong_method"].body == b""
    assert "Content-Type" not in bodies["wrong_method"].headers
    too_long = json.loads(bodies["prompt_too_long"].body)
    text = too_long["prompt"] if dialect == "prompt" else too_long["messages"][0]["content"]
    assert len(text) == 5500
    if dialect == "openai":
        assert json.loads(bodies["empty_prompt"].body)["messages"] == []
        assert isinstance(json.loads(bodies["wrong_types"].body)["messages"], str)
        assert json.loads(bodies["missing_prompt"].body)["model"] == "m1"
    else:
        assert json.loads(bodies["empty_prompt"].body)["prompt"] == ""
        assert json.loads(bodies["blank_prompt"].body)["prompt"].strip() == ""
        assert json.loads(bodies["wrong_types"].body)["prompt"] == 42


def test_cors_preflight_request_shape():
    base = build_request("http://127.0.0.1:9/x", "prompt", PROMPT, api_key="sk-test")
    spec = probes.build_probe_request(catalog.PROBES["cors"], base, {})
    assert spec.method == "OPTIONS" and spec.body == b""
    assert spec.headers["Origin"] == probes.DEFAULT_CORS_ORIGIN
    assert spec.headers["Access-Control-Request-Method"] == "POST"
    assert spec.headers["Access-Control-Request-Headers"] == "content-type"
    assert "Authorization" not in spec.headers  # browsers send no credentials in a preflight


def test_selection_follows_the_profile():
    tds = catalog.errors_settings(load_profile("tds"))
    assert "prompt_too_long" in catalog.selected_probes(tds) and "rate_limit" not in catalog.selected_probes(tds)
    ops = catalog.errors_settings(load_profile("ops"))
    assert "rate_limit" in catalog.selected_probes(ops) and "auth" in catalog.selected_probes(ops)
    assert "prompt_too_long" not in catalog.selected_probes({})  # no documented limit: nothing to exceed
    assert catalog.selected_probes({"probes": ["empty_body", "nonsense"]}) == ["empty_body"]
    assert catalog.accepted_codes(tds, "wrong_method") == (405, 404)
    assert catalog.accepted_codes({"codes": {"empty_body": [422]}}, "empty_body") == (422,)


def test_retry_after_forms():
    from harness.model import Capture

    def cap(*headers):
        return Capture(request=RequestSpec(url="http://x"), status=429, headers=list(headers))

    assert catalog.retry_after_s(cap(("retry-after", "3"))) == 3.0
    assert catalog.retry_after_s(cap(("retry-after-ms", "250"))) == 0.25
    assert catalog.retry_after_s(cap(("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"))) == 0.0  # a past date
    assert catalog.retry_after_s(cap(("retry-after", "soon"))) is None
    assert catalog.retry_after_s(cap()) is None


# -- against the reference server -------------------------------------------------------------------------------------

def collect_probes(url: str, profile_name: str = "tds", *, dialect: str | None = None, headers=None,
                   deadline_s: float = 30.0) -> Run:
    """A runner Run with a real primary capture, then probes.collect(run)."""
    profile = load_profile(profile_name)
    options = RunOptions(headers=dict(headers or {}), dialect=dialect, limits=Limits(deadline_s=deadline_s),
                         api_key=None)
    run = Run(url=url, profile=profile, options=options, dialect=dialect or profile.dialect,
              deadline=time.monotonic() + deadline_s)

    async def go() -> None:
        run.primary = await capture(run.build_spec(PROMPT), run.limits())
        await probes.collect(run)

    asyncio.run(go())
    return run


def verdicts(run: Run) -> dict[str, object]:
    ctx = Context(profile=run.profile, primary=None, probes=run.probes, extra=run.extra)  # type: ignore[arg-type]
    registry = load_checks()
    return {cid: registry[cid].func(ctx) for cid in registry if cid.startswith("errors.") and cid != "errors.midstream"}


@pytest.mark.parametrize("dialect", ["prompt", "openai"])
def test_reference_server_passes_every_probe(reference_server, dialect):
    run = collect_probes(reference_server.endpoint, dialect=dialect)
    results = verdicts(run)
    expected = set(catalog.selected_probes(catalog.errors_settings(run.profile))) - {"auth"}  # no credentials sent
    if dialect == "openai":
        expected.discard("blank_prompt")  # a whitespace-only message is valid input in the openai dialect
    assert expected <= set(run.probes)
    for cid, out in results.items():
        if cid in ("errors.rate_limit", "errors.auth", "errors.missing_required") or (
                cid == "errors.blank_prompt" and dialect == "openai"):
            assert out.status == "skip"
            continue
        assert out.status == "pass", (cid, out.message, out.evidence)
        assert out.reproduce.startswith("curl ") or out.reproduce.startswith("printf ")


PROMPT_DIALECT_PROBES = [p for p in catalog.BAD_REQUEST_PROBES if catalog.PROBES[p].applies_to("prompt")]


def test_error_500_fault_fails_every_body_probe(reference_server):
    run = collect_probes(reference_server.endpoint, headers={"X-Fault": "error-500"})
    results = verdicts(run)
    for pid in PROMPT_DIALECT_PROBES:
        out = results[f"errors.{pid}"]
        if pid == "wrong_method":  # the method is refused before the fault's validation path
            assert out.status == "pass", out.message
        else:
            assert out.status == "fail" and "server error 500" in out.message, (pid, out.message)
            assert out.evidence[0]["status"] == 500
    assert results["errors.cors"].status == "pass"


def test_no_validation_fault_fails_as_accepted_bad_input(reference_server):
    run = collect_probes(reference_server.endpoint, headers={"X-Fault": "no-validation"})
    results = verdicts(run)
    for pid in PROMPT_DIALECT_PROBES:
        out = results[f"errors.{pid}"]
        if pid == "wrong_method":
            assert out.status == "pass", out.message
        else:
            assert out.status == "fail" and "bad input accepted" in out.message, (pid, out.message)
    # a probe keeps only the start of a stream: the byte cap bounds what bad input costs
    assert all(len(c.body) <= probes.PROBE_MAX_BYTES + 65536 for c in run.probes.values())


def test_rate_limit_burst_against_a_rate_limited_server(make_reference_server):
    server = make_reference_server(rate_limit=20)
    run = collect_probes(server.endpoint, "ops")
    summary = run.extra["rate_limit"]
    assert summary["sent"] == 30 and summary["count_429"] > 0
    out = verdicts(run)["errors.rate_limit"]
    assert out.status == "pass", out.message
    assert "retry after" in out.message


def test_rate_limit_probe_warns_when_no_limit_is_seen(reference_server):
    run = collect_probes(reference_server.endpoint, "ops")
    out = verdicts(run)["errors.rate_limit"]
    assert out.status == "warn" and "not observed" in out.message


def test_probes_respect_the_run_deadline(reference_server):
    profile = load_profile("tds")
    options = RunOptions(limits=Limits(deadline_s=5))
    run = Run(url=reference_server.endpoint, profile=profile, options=options, dialect="prompt",
              deadline=time.monotonic())  # already out of time
    run.primary = asyncio.run(capture(build_request(reference_server.endpoint, "prompt", PROMPT), Limits()))
    asyncio.run(probes.collect(run))
    out = verdicts(run)["errors.invalid_json"]
    assert out.status == "skip" and "deadline" in out.message
