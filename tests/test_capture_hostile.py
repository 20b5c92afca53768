"""Hostile endpoints: every capture ends within its deadline + 2 s, with bounded memory, a named end_reason and a
message that says what happened, and never raises.

The servers are in tests/hostile_servers.py. Memory is the peak RSS growth sampled while the capture runs.
"""

from __future__ import annotations

import asyncio
import threading
import time

import psutil
import pytest

from harness.capture.client import make_client
from harness.capture.core import capture, capture_sync
from harness.capture.guard import AddressPolicy
from harness.capture.request import build_request
from harness.model import Limits
from tests.hostile_servers import hostile_server

DEADLINE_S = 3.0
MARGIN_S = 2.0
MAX_RSS_GROWTH = 100 * 1024 * 1024
LIMITS = Limits(deadline_s=DEADLINE_S, idle_timeout_s=1.5, connect_timeout_s=2.0)  # idle > the 1 s trickle


class PeakRSS:
    """Samples this process's RSS every 5 ms in a thread; ``growth`` is the peak minus the starting value."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.start = self.peak = 0

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.start


# behaviour, handler options, expected end_reason, fragments the message must contain
CASES = [
    ("silence", {}, "idle_timeout", ["no byte for 1.5 s", "in the body"]),
    ("no-response", {}, "idle_timeout", ["before the response headers"]),
    ("endless", {}, "max_bytes", ["exceeded 4194304 bytes"]),
    ("huge-line", {}, "max_line", ["line of over 1048576 bytes"]),
    ("gzip-bomb", {}, "encoding_refused", ["Content-Encoding: gzip", "not decoded"]),
    ("deflate-bomb", {}, "encoding_refused", ["Content-Encoding: deflate"]),
    ("brotli-labelled", {}, "encoding_refused", ["Content-Encoding: br"]),
    ("reset", {}, "read_error", ["reset"]),
    ("broken-chunked", {}, "read_error", ["chunk"]),
    ("redirect-loop", {}, "redirect", ["not followed"]),
    ("many-headers", {}, "protocol_error", ["100 KiB"]),
    ("slowloris", {}, "deadline", ["deadline was reached after 3 s", "before the response headers", "HTT"]),
    ("not-http", {}, "protocol_error", ["not HTTP", "SSH-2.0"]),
    ("silent-banner", {}, "idle_timeout", ["(not HTTP)", "220 mail"]),
    ("garbage-head", {}, "protocol_error", ["not HTTP", "HELLO THERE"]),
    ("hang-up", {}, "read_error", ["without a response"]),
]


@pytest.mark.parametrize(("behaviour", "options", "reason", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_hostile_endpoint_ends_cleanly(behaviour, options, reason, fragments):
    with hostile_server(behaviour, **options) as srv, PeakRSS() as rss:
        started = time.perf_counter()
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), LIMITS)
        elapsed = time.perf_counter() - started
    assert elapsed < DEADLINE_S + MARGIN_S, elapsed
    assert cap.end_reason == reason, (cap.end_reason, cap.error)
    for fragment in fragments:
        assert fragment in (cap.error or ""), cap.error
    assert rss.growth < MAX_RSS_GROWTH, rss.growth
    assert cap.t_end <= DEADLINE_S + MARGIN_S


def test_endless_trickle_ends_at_the_deadline():
    limits = Limits(deadline_s=2.0, idle_timeout_s=1.0)
    with hostile_server("endless", pause_s=0.01) as srv:
        started = time.perf_counter()
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), limits)
    assert time.perf_counter() - started < 2.0 + MARGIN_S
    assert cap.end_reason == "deadline" and "in the body" in cap.error
    assert len(cap.reads) > 20 and cap.status == 200


def test_compressed_body_is_kept_raw_and_small():
    with hostile_server("gzip-bomb") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), LIMITS)
    assert cap.header("content-encoding") == "gzip"
    assert cap.body[:2] == b"\x1f\x8b"  # the gzip magic: raw bytes, never inflated
    assert 0 < len(cap.body) <= 64 * 1024


def test_invalid_utf8_is_kept_byte_exact():
    with hostile_server("invalid-utf8") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), LIMITS)
    assert cap.end_reason == "eof" and cap.error is None
    assert b"caf\xe9 \xff\xfe" in cap.body and b"\xc3\x28" in cap.body


def test_reset_keeps_the_bytes_that_arrived():
    with hostile_server("reset") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), LIMITS)
    assert cap.body.startswith(b'data: {"content": "first"}\n\ndata: {"content": "sec')


def test_https_url_to_a_plain_http_port_is_a_connect_error():
    with hostile_server("ok") as srv:
        cap = capture_sync(build_request(srv.url.replace("http://", "https://"), "prompt", "hi"), LIMITS)
    assert cap.end_reason == "connect_error"
    assert "TLS handshake failed" in cap.error and "plain-HTTP" in cap.error


def test_all_hostile_endpoints_at_once_on_one_loop_end_by_the_deadline():
    async def main(urls):
        client = make_client(AddressPolicy(allow_private=True), LIMITS)
        try:
            return await asyncio.gather(*(capture(build_request(u, "prompt", "hi"), LIMITS, client=client)
                                          for u in urls))
        finally:
            await client.aclose()

    behaviours = [case[0] for case in CASES]
    servers = [hostile_server(b) for b in behaviours]
    for srv in servers:
        srv.__enter__()
    try:
        with PeakRSS() as rss:
            started = time.perf_counter()
            caps = asyncio.run(main([srv.url for srv in servers]))
            elapsed = time.perf_counter() - started
    finally:
        for srv in servers:
            srv.__exit__(None, None, None)
    assert elapsed < DEADLINE_S + MARGIN_S, elapsed
    assert [c.end_reason for c in caps] == [case[2] for case in CASES], [(c.end_reason, c.error) for c in caps]
    assert rss.growth < 150 * 1024 * 1024, rss.growth
