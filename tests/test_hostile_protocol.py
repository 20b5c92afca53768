"""Hostile endpoints that break HTTP itself, end to end (`streamconform run` in a child process, and run_target).

Reset mid-event, broken chunked encoding, a redirect loop (not followed by default; followed with
--follow-redirects, each hop re-validated, until the hop limit), 10,000 headers, non-HTTP replies, a hang-up, invalid
UTF-8, and a TLS handshake to a plain-HTTP port. Same bounds as test_hostile_servers.py.
"""

from __future__ import annotations

import asyncio

import jsonschema
import pytest

from harness.model import Limits
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, run_target
from schemas import load_schema
from tests.hostile_run import assert_bounded_failure, run_cli
from tests.hostile_servers import hostile_server

DEADLINE_S = 3.0

CASES = {
    "reset": ["read_error", "reset"],
    "broken-chunked": ["chunk", "broke off"],
    "redirect-loop": ["redirect"],
    "many-headers": ["header"],
    "not-http": ["not http"],
    "garbage-head": ["not http"],
    "hang-up": ["without a response"],
    "invalid-utf8": ["utf-8"],
}


@pytest.mark.parametrize("behaviour", list(CASES))
def test_protocol_breaking_endpoint_fails_cleanly(behaviour):
    with hostile_server(behaviour) as srv:
        child = run_cli(srv.url, DEADLINE_S)
    assert_bounded_failure(child, DEADLINE_S, CASES[behaviour])


def test_redirect_loop_followed_on_request_stops_at_the_hop_limit():
    with hostile_server("redirect-loop") as srv:
        child = run_cli(srv.url, DEADLINE_S, "--follow-redirects")
        hops = srv.accepted
    assert_bounded_failure(child, DEADLINE_S, ["redirect"])
    assert "not followed" not in child.failure_text()  # it was followed this time...
    assert hops > 5  # ...hop after hop (a new validated connection each), until the 5-hop limit


def test_tls_handshake_to_a_plain_http_port_fails_cleanly():
    with hostile_server("ok") as srv:
        url = srv.url.replace("http://", "https://")
        child = run_cli(url, DEADLINE_S)
    assert_bounded_failure(child, DEADLINE_S, ["tls", "ssl", "connect"])


@pytest.mark.parametrize("behaviour", ["reset", "not-http", "many-headers"])
def test_run_target_returns_a_schema_valid_failed_result(behaviour):
    """The library entry point: no exception, a failed result that validates against the result schema."""
    with hostile_server(behaviour) as srv:
        result = asyncio.run(run_target(srv.url, load_profile("tds"), RunOptions(limits=Limits(deadline_s=DEADLINE_S))))
    doc = result.to_dict()
    jsonschema.validate(doc, load_schema("result.schema"))
    assert doc["passed"] is False
    failed = [c for c in doc["checks"] if c["status"] == "fail"]
    if behaviour == "reset":  # answered, then cut mid-body: the stream's own checks say so
        assert any(c["id"] == "framing.complete" for c in failed)
        return
    # No HTTP answer: http.status names the cause, everything else is "not run" with it (no cascade).
    assert [c["id"] for c in failed] == ["http.status"] and doc["root_cause"]["cause"] in failed[0]["message"]
    assert all(c["message"].startswith("not run:") for c in doc["checks"] if c["id"] != "http.status")
