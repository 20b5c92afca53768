"""The reference server's hostile fault modes, end to end: `streamconform run URL -H 'X-Fault: NAME' --deadline S`.

The server runs in the test process and the pipeline in a child, so the child's peak RSS is the harness's alone.
Same bounds as test_hostile_servers.py: deadline + 2 s, < 150 MB, exit 1, no traceback, the cause named.
"""

from __future__ import annotations

import pytest

from tests.hostile_run import assert_bounded_failure, run_cli

DEADLINE_S = 4.0

CASES = {
    "hang": ["deadline", "idle"],  # headers, then nothing
    "infinite": ["deadline"],  # valid chunks at the normal pace, never finishing
    "huge-line": ["max_line", "line longer", "without cr or lf"],  # a 100+ MB data line
    "invalid-utf8": ["utf-8"],
    "gzip": ["gzip"],  # Content-Encoding the harness did not ask for
}


@pytest.mark.parametrize("fault", list(CASES))
def test_reference_fault_fails_cleanly(reference_server, fault):
    child = run_cli(reference_server.endpoint, DEADLINE_S, "-H", f"X-Fault: {fault}")
    assert_bounded_failure(child, DEADLINE_S, CASES[fault])
