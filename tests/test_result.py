"""RunResult JSON: valid against schemas/result.schema.json, bounded, passed exactly when no required check failed."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checks import Context, Outcome, check
from harness.model import Read
from harness.result import TRANSCRIPT_LIMIT, CheckResult, RunResult
from harness.run.profile import load_profile
from harness.run.runner import evaluate
from schemas import load_schema, schema_names
from tests.test_checks_units import make_capture, stream_reads, transcript

SCHEMA = load_schema("result.schema")


def _result(*statuses: tuple[str, bool]) -> RunResult:
    return RunResult(target="http://127.0.0.1:1/", profile="tds", metrics=_metrics(),
                     checks=[CheckResult(f"http.c{i}", "http", s, required=r) for i, (s, r) in enumerate(statuses)])


def _metrics() -> dict:
    return {"ttfb_ms": None, "ttft_ms": None, "e2e_ms": None, "chunks": 0, "chars": 0, "tokens": 0,
            "token_method": "chars/4", "tokens_per_s": None, "itl_ms": {"p50": None, "p90": None, "p99": None,
                                                                           "max": None}}


@pytest.mark.parametrize(("statuses", "passed"), [
    ([], True),
    ([("pass", True), ("fail", False), ("warn", True), ("skip", True)], True),
    ([("pass", True), ("fail", True)], False),
])
def test_passed_exactly_when_no_required_check_failed(statuses, passed):
    r = _result(*statuses)
    assert r.passed is passed and r.to_dict()["passed"] is passed
    jsonschema.validate(r.to_dict(), SCHEMA)


def test_schemas_load_by_name():
    assert {"chunk.seed", "chunk.any", "chunk.openai", "error", "result.schema"} <= set(schema_names())
    assert load_schema("chunk.minimal") == load_schema("chunk.any")  # the earlier name still loads
    assert load_schema("error.json")["title"]
    with pytest.raises(KeyError):
        load_schema("nope")


def test_measured_values_are_json_safe_and_transcript_bounded():
    r = _result()
    r.checks.append(CheckResult("timing.x", "timing", "fail", measured={"a": math.nan, "b": {1, 2}, "c": object()},
                                evidence=[{"offset": "12", "excerpt": b"x", "t": "soon", "gap_ms": math.inf}]))
    r.transcript_text = "x" * (TRANSCRIPT_LIMIT + 10)
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    jsonschema.validate(d, SCHEMA)
    assert d["transcript"]["truncated"] and len(d["transcript"]["text"]) == TRANSCRIPT_LIMIT


def test_evaluate_result_is_schema_valid_with_timeline():
    p = load_profile("tds")
    cap = make_capture(stream_reads())
    result = evaluate(Context(p, transcript(cap, p)))
    d = result.to_dict()
    jsonschema.validate(d, SCHEMA)
    assert d["timeline"] and all(set(t) == {"t", "offset", "chars"} for t in d["timeline"])
    assert d["metrics"]["token_method"] == "chars/4"
    assert result.captures["primary"] is cap and "captures" not in d
    assert all(c["reproduce"].startswith("curl") for c in d["checks"])


def test_a_check_that_raises_is_a_failed_check(monkeypatch):
    from harness import checks as registry

    @check("timing.zz_broken", description="raises on purpose")
    def broken(ctx: Context) -> Outcome:
        raise RuntimeError("kaboom")

    try:
        p = load_profile("tds", ["checks.timing.zz_broken.required=true"])
        result = evaluate(Context(p, transcript(make_capture(stream_reads()), p)))
        c = result.check("timing.zz_broken")
        assert c.status == "fail" and "kaboom" in c.message and not result.passed
    finally:
        registry.REGISTRY.pop("timing.zz_broken", None)




_FRAGMENTS = [b"data: ", b"data:", b'{"choices":[{"delta":{"content":"lava "}}]}', b'{"id":"a","choices":[]', b"\n",
              b"\r", b"\r\n", b"[DONE]", b": keep-alive", b"\xff\xfe", b"event: x", b"id: 1", b"retry: x",
              b'{"error":{"message":"m"}}', b'{"usage":{"completion_tokens":1}}', b"\xef\xbb\xbf"]
_streamish = st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map(b"".join)


@given(body=st.one_of(st.binary(max_size=400), _streamish), cuts=st.lists(st.integers(0, 400), max_size=5),
       content_type=st.sampled_from(["text/event-stream", "application/x-ndjson", "text/plain", ""]),
       status=st.sampled_from([200, 200, 404, 500]))
@settings(max_examples=50, deadline=None)
def test_any_body_gives_a_schema_valid_verdict(body, cuts, content_type, status):
    """Whatever bytes an endpoint sends, every check returns a verdict and the result stays schema-valid."""
    points = sorted({0, len(body), *[c for c in cuts if c <= len(body)]})
    reads = [Read(0.05 + i * 0.01, body[a:b]) for i, (a, b) in enumerate(zip(points, points[1:], strict=False)) if b > a]
    headers = [("content-type", content_type)] if content_type else []
    p = load_profile("openai")
    cap = make_capture(reads, status=status, headers=headers)
    result = evaluate(Context(p, transcript(cap, p), transcript(cap, p)))
    crashed = [c for c in result.checks if "check raised" in c.message]
    assert not crashed, crashed
    jsonschema.validate(result.to_dict(), SCHEMA)
