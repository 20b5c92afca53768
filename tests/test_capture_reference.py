"""Capture against the real reference server's fault modes (uvicorn on loopback, fault chosen per request with the
X-Fault header): each misbehaviour ends as the end_reason meant for it, within the deadline."""

from __future__ import annotations

import time

import pytest

from harness.capture.core import capture_sync
from harness.capture.request import build_request
from harness.model import Limits

LIMITS = Limits(deadline_s=4.0, idle_timeout_s=1.5, connect_timeout_s=2.0)


@pytest.mark.parametrize(("fault", "reason", "fragment"), [
    ("gzip", "encoding_refused", "Content-Encoding: gzip"),
    ("hang", "idle_timeout", "in the body"),
    ("infinite", "deadline", "deadline was reached after 4 s"),
    ("huge-line", "max_line", "without CR or LF"),
    ("truncated", "read_error", "broke off"),
    ("invalid-utf8", "eof", None),
    ("split-reads", "eof", None),
])
def test_reference_server_fault_ends_as_expected(reference_server, fault, reason, fragment):
    spec = build_request(reference_server.endpoint, "openai", "Explain streaming", headers={"X-Fault": fault})
    started = time.perf_counter()
    cap = capture_sync(spec, LIMITS)
    assert time.perf_counter() - started < LIMITS.deadline_s + 2
    assert cap.end_reason == reason, (cap.end_reason, cap.error)
    if fragment is None:
        assert cap.error is None
    else:
        assert fragment in cap.error
    assert cap.status == 200


def test_split_reads_arrive_as_separate_reads(reference_server):
    spec = build_request(reference_server.endpoint, "openai", "Explain streaming", headers={"X-Fault": "split-reads"})
    cap = capture_sync(spec, LIMITS)
    assert len(cap.reads) > 10
    assert b"data: [DONE]" in cap.body


def test_slow_ttft_is_visible_in_the_timestamps(reference_server):
    spec = build_request(reference_server.endpoint, "openai", "Explain streaming", headers={"X-Fault": "slow-ttft"})
    cap = capture_sync(spec, Limits(deadline_s=15))
    assert cap.end_reason == "eof", cap.error
    content = [r for r in cap.reads if b'"content"' in r.data and b'"content": ""' not in r.data]
    assert content and content[0].t - cap.t_request_sent > 2.5
