"""errors.* checks over hand-made captures: every verdict of the bad-request table, mid-stream errors, 429, CORS."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from harness.checks import Context, load_checks
from harness.checks.errors import classify_reply, judge_bad_request
from harness.measure.transcript import Transcript
from harness.model import Capture, Read, RequestSpec
from harness.parse.decode import decode_event

REQ = RequestSpec(url="http://127.0.0.1:9/v1/chat/completions", body=b'{"prompt": "x"', dialect="raw")
CODES = (400, 413, 415, 422)


def reply(status, body=b"", ctype="application/json", headers=(), end_reason="eof"):
    hdrs = [("content-type", ctype)] if ctype else []
    hdrs += list(headers)
    return Capture(request=REQ, status=status, headers=hdrs, reads=[Read(0.01, body)] if body else [],
                   t_first_byte=0.01, end_reason=end_reason)


OPENAI_ERR = json.dumps({"error": {"message": "prompt is required", "type": "invalid_request_error",
                                   "param": "prompt", "code": None}}).encode()
SEED_ERR = b'{"error": "prompt is required", "code": 400}'


@pytest.mark.parametrize("cap, seed_ok, status, words", [
    (reply(400, OPENAI_ERR), False, "pass", "OpenAI error object"),
    (reply(422, OPENAI_ERR), False, "pass", "422"),
    (reply(400, SEED_ERR), True, "pass", "seed error"),
    (reply(400, SEED_ERR), False, "warn", "not a structured error"),
    (reply(400, b"data: " + OPENAI_ERR + b"\n\n", "text/event-stream"), False, "pass", "error event"),
    (reply(400, b"bad request", "text/plain"), False, "warn", "unstructured text"),
    (reply(400, b'{"detail": "nope"}'), False, "warn", "JSON without an error object"),
    (reply(400, b"<html><body>Bad</body></html>", "text/html"), False, "warn", "HTML page"),
    (reply(400, b""), False, "fail", "empty body"),
    (reply(404, OPENAI_ERR), False, "fail", "not one of the accepted codes"),
    (reply(500, b"<html>Traceback (most recent call last):\n  File x</html>", "text/html"), False, "fail",
     "stack trace"),
    (reply(400, b"Traceback (most recent call last):\n", "text/plain"), False, "fail", "stack trace"),
    (reply(502, b""), False, "fail", "server error 502"),
    (reply(200, b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n', "text/event-stream"), False,
     "fail", "bad input accepted"),
    (reply(200, OPENAI_ERR), False, "warn", "with status 200"),
    (reply(302, b"", None, [("location", "/x")]), False, "fail", "redirect"),
    (reply(429, OPENAI_ERR), False, "warn", "rate-limited"),
    (Capture(request=REQ, end_reason="read_error", error="connection reset"), False, "fail", "no HTTP answer"),
    (Capture(request=REQ, end_reason="deadline", error="not sent: the run's deadline was reached first"), False,
     "skip", "not sent"),
])
def test_bad_request_verdicts(cap, seed_ok, status, words):
    out = judge_bad_request(cap, CODES, seed_ok)
    assert out.status == status, out.message
    assert words in out.message
    if out.status != "skip":
        assert out.reproduce and out.reproduce.startswith("curl ")
        assert out.evidence and out.evidence[0]["curl"] == out.reproduce


def test_classify_node_and_java_traces():
    node = reply(400, b"TypeError: x is undefined\n    at Object.<anonymous> (/app/index.js:10:5)\n", "text/plain")
    java = reply(400, b"java.lang.NullPointerException\n\tat com.example.Foo.bar(Foo.java:3)\n", "text/plain")
    assert classify_reply(node, False)[0] == "traceback"
    assert classify_reply(java, False)[0] == "traceback"


def _transcript(events: list[bytes], end_reason="eof") -> Transcript:
    body = b"".join(b"data: " + e + b"\n\n" for e in events)
    cap = Capture(request=REQ, status=200, headers=[("content-type", "text/event-stream")],
                  reads=[Read(0.1, body)], end_reason=end_reason)
    chunks, offset = [], 0
    for i, e in enumerate(events):
        chunks.append(decode_event(e.decode(), t=0.1 + i / 100, offset=offset))
        offset += len(e) + 8
    return Transcript(capture=cap, parsed=None, chunks=chunks, metrics=None)


def _ctx(primary, profile=None, **kw):
    return Context(profile=profile or SimpleNamespace(section=lambda name: {}), primary=primary, **kw)


CONTENT = b'{"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}'
STOP = b'{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'


def run_check(check_id, ctx):
    return load_checks()[check_id].func(ctx)


def test_midstream_clean_stream_passes():
    out = run_check("errors.midstream", _ctx(_transcript([CONTENT, STOP, b"[DONE]"])))
    assert out.status == "pass"


def test_midstream_well_formed_error_still_fails_as_cut_short():
    out = run_check("errors.midstream", _ctx(_transcript([CONTENT, OPENAI_ERR, b"[DONE]"])))
    assert out.status == "fail" and "cut short" in out.message
    assert out.evidence[0]["excerpt"].startswith('{"error"')


def test_midstream_malformed_error_and_content_after_it():
    out = run_check("errors.midstream", _ctx(_transcript([CONTENT, b'{"error": 42}', CONTENT, b"[DONE]"])))
    assert out.status == "fail"
    assert "malformed" in out.message and "content continues" in out.message


def test_midstream_error_then_broken_connection():
    out = run_check("errors.midstream", _ctx(_transcript([CONTENT, OPENAI_ERR], end_reason="read_error")))
    assert out.status == "fail" and "neither [DONE] nor a clean close" in out.message


def test_midstream_seed_shape_accepted_only_when_the_profile_says_so():
    tds = SimpleNamespace(section=lambda name: {"seed_error_shape": True})
    out = run_check("errors.midstream", _ctx(_transcript([CONTENT, SEED_ERR, b"[DONE]"]), tds))
    assert out.status == "fail" and "well-formed" in out.message
    out = run_check("errors.midstream", _ctx(_transcript([CONTENT, SEED_ERR, b"[DONE]"])))
    assert "malformed" in out.message


def test_midstream_swallowed_error_hint_is_a_warning():
    out = run_check("errors.midstream", _ctx(_transcript([CONTENT, CONTENT, b"[DONE]"])))
    assert out.status == "warn" and "swallowed" in out.message


def test_rate_limit_verdicts():
    primary = _transcript([CONTENT, STOP, b"[DONE]"])
    assert run_check("errors.rate_limit", _ctx(primary)).status == "skip"
    summary = {"sent": 10, "statuses": [200] * 5 + [429] * 5, "count_429": 5, "count_5xx": 0}
    good = reply(429, OPENAI_ERR, headers=[("retry-after", "1")])
    assert run_check("errors.rate_limit", _ctx(primary, probes={"rate_limit": good},
                                               extra={"rate_limit": summary})).status == "pass"
    ms = reply(429, OPENAI_ERR, headers=[("retry-after-ms", "250")])
    assert run_check("errors.rate_limit", _ctx(primary, probes={"rate_limit": ms},
                                               extra={"rate_limit": summary})).status == "pass"
    bare = reply(429, OPENAI_ERR)
    out = run_check("errors.rate_limit", _ctx(primary, probes={"rate_limit": bare}, extra={"rate_limit": summary}))
    assert out.status == "fail" and "Retry-After" in out.message
    none = {"sent": 10, "statuses": [200] * 10, "count_429": 0, "count_5xx": 0}
    out = run_check("errors.rate_limit", _ctx(primary, probes={"rate_limit": reply(200, CONTENT)},
                                              extra={"rate_limit": none}))
    assert out.status == "warn"
    broken = {"sent": 10, "statuses": [200] * 8 + [503] * 2, "count_429": 0, "count_5xx": 2}
    out = run_check("errors.rate_limit", _ctx(primary, probes={"rate_limit": reply(503, b"")},
                                              extra={"rate_limit": broken}))
    assert out.status == "fail" and "5xx" in out.message


def _preflight(status, headers):
    req = RequestSpec(url=REQ.url, method="OPTIONS", headers={"Origin": "https://exam.example"}, dialect="raw")
    return Capture(request=req, status=status, headers=list(headers), end_reason="eof")


def test_cors_verdicts():
    primary = _transcript([CONTENT, STOP, b"[DONE]"])
    ok = _preflight(204, [("access-control-allow-origin", "*"), ("access-control-allow-methods", "GET, POST"),
                          ("access-control-allow-headers", "Content-Type, Authorization")])
    assert run_check("errors.cors", _ctx(primary, probes={"cors": ok})).status == "pass"
    no_cors = _preflight(405, [])
    out = run_check("errors.cors", _ctx(primary, probes={"cors": no_cors}))
    assert out.status == "fail" and "Access-Control-Allow-Origin" in out.message
    assert run_check("errors.cors", _ctx(primary)).status == "skip"
