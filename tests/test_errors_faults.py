"""Proof, end to end through run_target: the error fault modes of the reference server fail exactly the checks
meant for them (error-500 / no-validation: every bad-body probe; error-midstream: errors.midstream)."""

from __future__ import annotations

import pytest

from tests.test_errors_e2e import BODY_PROBES, failing, run


@pytest.mark.parametrize("fault, expected", [
    ("error-500", BODY_PROBES),
    ("no-validation", BODY_PROBES),
    ("error-midstream", {"errors.midstream"}),
])
def test_error_faults_fail_exactly_their_checks(reference_server, fault, expected):
    result = run(reference_server.endpoint, "tds", fault)
    assert failing(result) == expected
    if fault != "error-midstream":  # the main stream is normal: nothing outside the errors category fails
        everything = {c.id for c in result.checks if c.status == "fail"}
        assert everything == expected
