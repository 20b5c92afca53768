"""Verdict truth: whole runs (every category, as `streamconform run` does) under the default `tds` profile.

Each defect class of the seed's requirement table must fail the run (passed = False: exit code 1) with a required
failure in its own category; every valid variant must pass. The endpoints are reference-server fault modes, one
per class, captured over real loopback HTTP, all runs at once. A refused main request must give one failure
naming the cause and the likely fix, not a cascade.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from harness.model import Limits
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, run_target
from tests.hostile_servers import HostileServer, read_request

KEY = "sk-streamconform"  # the auth-500 fault's key (reference_server/faults.py)

# fault -> the category whose required check must fail under tds
DEFECTS: dict[str, str] = {
    "error-500": "errors",       # 500 text/html to every bad request
    "no-validation": "errors",   # every bad request accepted and streamed
    "echo": "content",           # the prompt streamed back
    "padding": "content",        # one sentence repeated to the length
    "canned": "content",         # the same text for every prompt
    "lorem": "content",          # lorem ipsum
    "schema-mismatch": "schema",  # {"choices":[{"text": ...}]}, not choices[].delta.content
    "ndjson-truncated": "stream",  # NDJSON cut before the body's end
    "error-midstream": "errors",  # the answer stops with an error event
}
VALID = ("crlf", "cr", "no-space", "comments", "multiline-data", "split-reads", "ndjson", "ndjson-bare",
         "role-first", "few-large-chunks", "keepalive-first", "interrupt")


def _options(fault: str | None, **kw) -> RunOptions:
    headers = {"X-Fault": fault} if fault else {}
    headers.update(kw.pop("headers", {}))
    return RunOptions(headers=headers, api_key=None, limits=Limits(deadline_s=60.0, idle_timeout_s=10.0), **kw)


class OpenAIOnly(HostileServer):
    """An OpenAI-compatible server's answer to the seed's {"prompt"} body: 400, messages required."""

    def __init__(self) -> None:
        super().__init__(self.handle)

    async def handle(self, reader, writer) -> None:
        await read_request(reader)
        body = json.dumps({"error": {"message": "'messages' is a required property", "type": "invalid_request_error",
                                     "param": "messages", "code": None}}).encode()
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()


@pytest.fixture(scope="module")
def runs(reference_server):
    url = reference_server.endpoint
    base = url.split("/v1/", 1)[0] + "/"
    tds = load_profile("tds")

    async def all_runs(openai_only_url: str):
        jobs = {f: run_target(url, tds, _options(f)) for f in list(DEFECTS) + list(VALID)}
        jobs["clean"] = run_target(url, tds, _options(None))
        jobs["strict-openai-usage"] = run_target(url, load_profile("tds", ["request.include_usage=true"]),
                                                 _options(None, dialect="openai"))
        jobs["auth-500-with-key"] = run_target(url, tds, _options("auth-500",
                                                                  headers={"Authorization": f"Bearer {KEY}"}))
        jobs["auth-500-no-key"] = run_target(url, tds, _options("auth-500"))
        jobs["base-url"] = run_target(base, tds, _options(None))
        jobs["refused-port"] = run_target("http://127.0.0.1:9/v1/chat/completions", tds, _options(None))
        jobs["openai-only"] = run_target(openai_only_url, tds, _options(None))
        results = await asyncio.gather(*jobs.values())
        return dict(zip(jobs, results, strict=True))

    with OpenAIOnly() as openai_only:
        return asyncio.run(all_runs(openai_only.url))


def _explain(result) -> str:
    return "\n".join(f"{c.status} {'required' if c.required else 'advisory'} {c.id}: {c.message}"
                     for c in result.checks if c.status in ("fail", "warn"))


@pytest.mark.parametrize("fault", list(DEFECTS))
def test_defect_fails_the_run_in_its_category(runs, fault):
    result = runs[fault]
    assert not result.passed, _explain(result)
    failed = [c for c in result.checks if c.failed_required]
    assert any(c.category == DEFECTS[fault] for c in failed), _explain(result)
    assert result.verdict().startswith("FAIL")


@pytest.mark.parametrize("name", [*VALID, "clean", "strict-openai-usage"])
def test_valid_variant_passes(runs, name):
    result = runs[name]
    assert result.passed, _explain(result)


def test_interrupting_server_keeps_its_measured_verdicts(runs):
    """A server that ends a running stream when another request arrives (llama-cpp-python's default) is measured
    one request at a time: the second prompt gets its own answer, the repeats are whole."""
    result = runs["interrupt"]
    distinct = result.check("content.distinct")
    assert distinct.status == "pass", distinct.message
    assert result.check("robustness.repeats").status == "pass", _explain(result)
    # Its parallel streams are cut, which is what the (advisory) concurrency check is for.
    assert result.check("robustness.concurrency").status == "fail"
    assert "robustness.concurrency" in result.advisory_failures
    assert "advisory failure" in result.verdict()


def test_credentials_refused_with_a_500_are_an_auth_failure(runs):
    result = runs["auth-500-with-key"]
    auth = result.check("errors.auth")
    assert auth.status == "fail" and auth.required and "500" in auth.message, _explain(result)
    assert not result.passed


def test_no_credentials_sent_skips_the_auth_probe(runs):
    auth = runs["clean"].check("errors.auth")
    assert auth.status == "skip" and "no credentials" in auth.message


@pytest.mark.parametrize("name, hint", [
    ("auth-500-no-key", "STREAMCONFORM_API_KEY"),
    ("base-url", "/v1/chat/completions"),
    ("refused-port", "listening"),
    ("openai-only", "--dialect openai"),
])
def test_refused_main_request_is_one_failure_naming_the_cause(runs, name, hint):
    result = runs[name]
    failed = [c.id for c in result.checks if c.status == "fail"]
    assert failed == ["http.status"], _explain(result)
    assert result.refusal is not None and hint in result.refusal.text()
    assert hint in result.verdict()
    not_run = [c for c in result.checks if c.status == "skip" and c.message.startswith("not run:")]
    assert len(not_run) == len(result.checks) - 1
    doc = result.to_dict()
    assert doc["root_cause"]["hint"] and not doc["passed"]


def test_ndjson_clean_end_is_the_end_of_the_stream(runs):
    done = runs["ndjson-bare"].check("stream.done")
    assert done.status == "pass" and "ended cleanly" in done.message
    cut = runs["ndjson-truncated"].check("stream.done")
    assert cut.status == "fail" and cut.required


def test_whitespace_message_is_not_a_bad_request_in_the_openai_dialect(runs):
    blank = runs["strict-openai-usage"].check("errors.blank_prompt")
    assert blank.status == "skip" and "valid input in the openai dialect" in blank.message


def test_pass_with_advisory_failures_says_so(runs):
    result = runs["interrupt"]
    assert result.passed and result.to_dict()["advisory_failures"] == result.advisory_failures != []
    assert result.verdict().startswith("PASS (")


def test_html_report_names_advisory_failures_and_the_root_cause(runs):
    from reports import render_run

    page = render_run(runs["interrupt"].to_dict())
    assert 'id="advisory-failures"' in page and "robustness.concurrency" in page
    refused = render_run(runs["base-url"].to_dict())
    assert 'id="root-cause"' in refused and "/v1/chat/completions" in refused


def test_max_tokens_is_sent_in_the_dialects_field(reference_server):
    """--max-tokens: the server is asked for at most N tokens (the reference server stops at about N * 4 chars)."""
    for dialect in ("prompt", "openai"):
        options = _options(None, dialect=dialect, max_tokens=20, categories={"content"})
        result = asyncio.run(run_target(reference_server.endpoint, load_profile("tds"), options))
        body = json.loads(result.captures["primary"].request.body)
        assert body["max_tokens"] == 20
        assert 0 < result.metrics["chars"] <= 20 * 4 + 40, result.metrics
