"""Every protocol end to end: the reference server's stream in each dialect passes that dialect's profile, and each
protocol's defects fail the check meant for them (real loopback HTTP, one embedded server, all runs at once)."""

from __future__ import annotations

import asyncio

import pytest

from harness.capture.request import build_request
from harness.model import Limits
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, run_target

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "the weather in a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
# name -> (path, profile, fault, overrides)
RUNS: dict[str, tuple[str, str, str | None, tuple[str, ...]]] = {
    "responses": ("/v1/responses", "openai-responses", None, ()),
    "anthropic": ("/v1/messages", "anthropic", None, ()),
    "ollama-chat": ("/api/chat", "ollama", None, ()),
    "ollama-generate": ("/api/generate", "ollama", None, ()),
    "gemini": ("/", "gemini", None, ()),
    "responses-sequence-gap": ("/v1/responses", "openai-responses", "sequence-gap", ()),
    "responses-no-done": ("/v1/responses", "openai-responses", "no-done", ()),
    "anthropic-unstarted-block": ("/v1/messages", "anthropic", "delta-unstarted-block", ()),
    "anthropic-no-done": ("/v1/messages", "anthropic", "no-done", ()),
    "anthropic-error-midstream": ("/v1/messages", "anthropic", "error-midstream", ()),
    "ollama-no-done": ("/api/chat", "ollama", "no-done", ()),
    "gemini-truncated": ("/", "gemini", "truncated", ()),
    "tds-over-anthropic": ("/v1/messages", "tds", None, ()),
}
FAILS = {
    "responses-sequence-gap": "stream.protocol",
    "responses-no-done": "stream.done",
    "anthropic-unstarted-block": "stream.protocol",
    "anthropic-no-done": "stream.done",
    "anthropic-error-midstream": "errors.midstream",
    "ollama-no-done": "stream.done",
    "gemini-truncated": "stream.done",
}


def _explain(result) -> str:
    return "\n".join(f"{c.status} {c.id}: {c.message[:200]}" for c in result.checks if c.status in ("fail", "warn"))


@pytest.fixture(scope="module")
def runs(reference_server):
    base = reference_server.endpoint.split("/v1/", 1)[0]

    async def one(path, profile, fault, overrides, dialect=None):
        options = RunOptions(headers={"X-Fault": fault} if fault else {}, api_key=None, dialect=dialect,
                             limits=Limits(deadline_s=40.0, idle_timeout_s=10.0))
        return await run_target(base + path, load_profile(profile, list(overrides)), options)

    async def all_runs():
        jobs = {name: one(*spec, dialect="anthropic" if name == "tds-over-anthropic" else None)
                for name, spec in RUNS.items()}
        results = await asyncio.gather(*jobs.values())
        return dict(zip(jobs, results, strict=True))

    return asyncio.run(all_runs())


@pytest.mark.parametrize("name", [n for n in RUNS if n not in FAILS])
def test_reference_stream_passes_its_protocol_profile(runs, name):
    result = runs[name]
    assert result.passed and not result.advisory_failures, _explain(result)
    assert result.metrics["chars"] > 1000 and result.metrics["token_method"] in ("usage", "chars/4")


@pytest.mark.parametrize("name", list(FAILS))
def test_protocol_defect_fails_its_check(runs, name):
    result = runs[name]
    check = result.check(FAILS[name])
    assert check.status == "fail" and check.required, _explain(result)
    assert not result.passed


def test_protocol_tokens_come_from_the_servers_own_count(runs):
    for name in ("responses", "anthropic", "ollama-chat", "gemini"):
        assert runs[name].metrics["token_method"] == "usage", name


def test_tool_calls_and_reasoning_in_chat_completions(reference_server):
    """Tools offered: the stream answers with tool-call deltas (checked); the broken variants fail."""
    async def run(fault):
        headers = {"X-Fault": fault} if fault else {}
        profile = load_profile("openai")
        profile.data.setdefault("request", {})["extra_body"] = {"tools": TOOLS, "tool_choice": "required"}
        options = RunOptions(headers=headers, api_key=None, categories={"stream", "http", "schema"},
                             limits=Limits(deadline_s=30.0))
        return await run_target(reference_server.endpoint, profile, options)

    async def all_three():
        return await asyncio.gather(*(run(f) for f in (None, "tool-args-invalid-json", "tool-call-no-id")))

    good, bad_json, no_id = asyncio.run(all_three())
    assert good.check("stream.tool_calls").status == "pass", _explain(good)
    assert bad_json.check("stream.tool_calls").status == "fail"
    assert "not valid JSON" in bad_json.check("stream.tool_calls").message
    assert no_id.check("stream.tool_calls").status == "fail" and "no id" in no_id.check("stream.tool_calls").message


def test_gemini_url_gets_the_models_route_and_sse_switch():
    spec = build_request("http://127.0.0.1:9", "gemini", "hi", model="gemini-x")
    assert spec.url == "http://127.0.0.1:9/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    same = build_request(spec.url, "gemini", "hi", model="gemini-x")
    assert same.url == spec.url


def test_reasoning_deltas_are_not_answer_text(reference_server):
    """delta.reasoning_content before the answer: TTFT stays the first answer text, the first reasoning delta is
    reported beside it, and the answer judged is the answer alone."""
    profile = load_profile("openai")
    profile.data.setdefault("request", {})["extra_body"] = {"reasoning_effort": "low"}
    options = RunOptions(api_key=None, categories={"stream", "http", "schema", "content"},
                         limits=Limits(deadline_s=30.0))
    result = asyncio.run(run_target(reference_server.endpoint, profile, options))
    m = result.metrics
    assert m["ttfr_ms"] is not None and m["ttft_ms"] > m["ttfr_ms"], m
    assert result.passed, _explain(result)
