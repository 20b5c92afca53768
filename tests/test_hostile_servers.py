"""Hostile endpoints that stall or flood, end to end: `streamconform run URL --deadline S` in a child process.

Each run must end within its deadline + 2 s, peak under 150 MB RSS, exit 1 (a failed run, not a crash), print no
traceback, and name what happened in a failed check. Servers: tests/hostile_servers.py.
"""

from __future__ import annotations

import pytest

from tests.hostile_run import assert_bounded_failure, run_cli
from tests.hostile_servers import hostile_server, unasked_encoding

DEADLINE_S = 3.0

# behaviour -> words (any of them, case-insensitive) a failed check's message must contain
CASES = {
    "silence": ["deadline"],
    "no-response": ["deadline", "before the response headers"],
    "slowloris": ["deadline"],
    "silent-banner": ["deadline"],
    "endless": ["max_bytes", "exceeded"],
    "huge-line": ["max_line", "line longer", "without cr or lf"],
    "gzip-bomb": ["gzip"],
    "deflate-bomb": ["deflate"],
}


@pytest.mark.parametrize("behaviour", list(CASES))
def test_stalling_or_flooding_endpoint_fails_cleanly(behaviour):
    with hostile_server(behaviour) as srv:
        child = run_cli(srv.url, DEADLINE_S)
    assert_bounded_failure(child, DEADLINE_S, CASES[behaviour])


def test_brotli_labelled_body_is_refused_without_decoding():
    """No brotli library is needed: a Content-Encoding the harness did not ask for is refused, whatever it is."""
    with hostile_server(unasked_encoding, name="br") as srv:
        child = run_cli(srv.url, DEADLINE_S)
    assert_bounded_failure(child, DEADLINE_S, ["content-encoding 'br'", "encoding"])
