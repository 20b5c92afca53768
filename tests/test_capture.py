"""Capture against real servers on loopback: the reference server and small purpose-built ones.

What is proved here: the transcript (reads, times, headers, address) is recorded faithfully, the request on the
wire is the one built, the capture never raises, redirects are refused or re-validated, cancel drops the stream,
and many captures share one loop and one client.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from harness.capture.client import make_client
from harness.capture.core import capture, capture_sync
from harness.capture.guard import AddressPolicy
from harness.capture.request import build_request, raw_request
from harness.model import Capture, Limits
from tests.hostile_servers import hostile_server, ok_sse

LOCAL = AddressPolicy(allow_private=True)
QUICK = Limits(deadline_s=10, idle_timeout_s=5, connect_timeout_s=5)


def _ordered(cap: Capture) -> None:
    times = [cap.t_request_sent, cap.t_headers, cap.t_first_byte]
    assert all(t is not None for t in times), times
    assert 0 <= cap.t_request_sent <= cap.t_headers <= cap.t_first_byte <= cap.reads[-1].t <= cap.t_end
    assert [r.t for r in cap.reads] == sorted(r.t for r in cap.reads)


@pytest.mark.parametrize("dialect", ["prompt", "openai"])
def test_reference_server_stream_is_recorded_whole(reference_server, dialect):
    spec = build_request(reference_server.endpoint, dialect, "Explain server-sent events briefly")
    cap = capture_sync(spec, QUICK, policy=LOCAL)
    assert cap.end_reason == "eof", cap.error
    assert cap.error is None
    assert cap.status == 200 and cap.http_version == "HTTP/1.1"
    assert cap.header("content-type", "").startswith("text/event-stream")
    assert all(name == name.lower() for name, _ in cap.headers)
    assert cap.remote_addr == "127.0.0.1"
    assert cap.started_at.endswith("Z") and "T" in cap.started_at
    assert len(cap.reads) > 1  # streamed, not one buffered block
    assert b"data: [DONE]" in cap.body
    _ordered(cap)


def test_capture_round_trips_through_json(reference_server):
    cap = capture_sync(build_request(reference_server.endpoint, "prompt", "hello"), QUICK)
    again = Capture.from_json(json.dumps(json.loads(cap.to_json())))
    assert again.to_dict() == cap.to_dict()
    assert again.body == cap.body and again.reads == cap.reads


def test_the_request_on_the_wire_is_the_spec():
    with hostile_server("echo") as srv:
        spec = build_request(srv.url, "openai", "hi", api_key="sk-test", headers={"X-Course": "tds"})
        cap = capture_sync(spec, QUICK)
    head = cap.body.decode().lower()
    assert head.startswith("post /stream http/1.1\r\n")
    for line in ("accept-encoding: identity", "accept: text/event-stream", "content-type: application/json",
                 "authorization: bearer sk-test", "x-course: tds", f"content-length: {len(spec.body)}"):
        assert line in head
    assert "user-agent: streamconform/" in head


def test_cookies_are_never_sent_back():
    async def main():
        client = make_client(LOCAL, QUICK)
        try:
            with hostile_server("echo") as srv:
                spec = build_request(srv.url, "prompt", "hi")
                first = await capture(spec, QUICK, client=client)
                second = await capture(spec, QUICK, client=client)
        finally:
            await client.aclose()
        return first, second

    first, second = asyncio.run(main())
    assert first.header("set-cookie", "").startswith("session=secret123")
    assert b"cookie" not in second.body.lower()


def test_timings_follow_the_server_schedule():
    with hostile_server(ok_sse, events=4, ttft_s=0.3, gap_s=0.15) as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), QUICK)
    assert cap.end_reason == "eof", cap.error
    events = [r for r in cap.reads if b"token" in r.data]
    assert len(events) == 4  # one read per event: the server pauses between them
    ttft = events[0].t - cap.t_request_sent
    gaps = [b.t - a.t for a, b in zip(events, events[1:], strict=False)]
    assert 0.28 <= ttft <= 0.6, ttft  # generous upper bounds: CPU is shared; benchmarks/fidelity.py measures error
    assert all(0.13 <= g <= 0.45 for g in gaps), gaps


def test_cancel_after_drops_the_stream_and_the_server_serves_the_next(reference_server):
    spec = build_request(reference_server.endpoint, "prompt", "Write a long answer about streaming")
    started = time.perf_counter()
    cap = capture_sync(spec, QUICK, cancel_after_s=0.3)
    assert time.perf_counter() - started < 2.5
    assert cap.end_reason == "cancelled" and "on purpose" in cap.error
    assert cap.status == 200 and cap.reads  # what arrived before the drop is kept
    nxt = capture_sync(spec, QUICK)
    assert nxt.end_reason == "eof", nxt.error


def test_redirects_are_reported_not_followed_by_default():
    with hostile_server("redirect-loop") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), QUICK)
    assert cap.end_reason == "redirect" and cap.status == 307
    assert "/stream/again" in cap.error and "--follow-redirects" in cap.error
    assert cap.redirects == []


def test_followed_redirect_reaches_the_target_and_drops_credentials_across_origins():
    with hostile_server("echo") as target:
        location = target.url.replace("127.0.0.1", "localhost")  # another origin
        with hostile_server("redirect-to", location=location) as srv:
            spec = build_request(srv.url, "prompt", "hi", api_key="sk-secret")
            cap = capture_sync(spec, QUICK, policy=LOCAL, follow_redirects=True)
    assert cap.end_reason == "eof", cap.error
    assert cap.redirects == [location]
    head = cap.body.decode().lower()
    assert head.startswith("get /stream")  # a 302 after POST becomes a GET, as curl -L and browsers do
    assert "authorization" not in head


def test_redirect_loop_stops_after_five_hops():
    with hostile_server("redirect-loop") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), QUICK, policy=LOCAL, follow_redirects=True)
    assert cap.end_reason == "redirect"
    assert "more than 5 redirects" in cap.error
    assert len(cap.redirects) == 5


class _OnlyOneLoopback(AddressPolicy):
    """Admits 127.0.0.1 and nothing else, to show that every hop is judged again."""

    def check_ip(self, ip):
        return None if str(ip) == "127.0.0.1" else f"{ip} is not 127.0.0.1"


def test_every_redirect_hop_is_revalidated():
    policy = _OnlyOneLoopback()
    with hostile_server("redirect-to", location="http://127.0.0.2:9/elsewhere") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), QUICK, policy=policy, follow_redirects=True)
    assert cap.end_reason == "blocked_address", cap.error
    assert "127.0.0.2" in cap.error and cap.redirects == ["http://127.0.0.2:9/elsewhere"]
    with hostile_server("redirect-to", location="file:///etc/passwd") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), QUICK, policy=policy, follow_redirects=True)
    assert cap.end_reason == "invalid_url" and "unsupported scheme" in cap.error


def test_too_many_headers_under_the_h11_limit_end_cleanly():
    with hostile_server("many-headers", count=500) as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), Limits(deadline_s=10, max_headers=200))
    assert cap.end_reason == "protocol_error"
    assert "502 headers (limit 200)" in cap.error  # 500 flood headers + Content-Type + Connection
    assert len(cap.headers) == 200


@pytest.mark.parametrize(("url", "reason", "fragment"), [
    ("not a url", "invalid_url", "whitespace"),
    ("ftp://127.0.0.1/x", "invalid_url", "unsupported scheme"),
    ("http://127.0.0.1:1/stream", "connect_error", "could not connect"),
])
def test_unusable_targets_become_end_reasons(url, reason, fragment):
    cap = capture_sync(build_request(url, "prompt", "hi"), QUICK)
    assert cap.end_reason == reason and fragment in cap.error
    assert cap.t_end >= 0 and cap.status is None


@pytest.mark.parametrize(("method", "headers", "fragment"), [
    ("POST", {"X-Bad": "a\r\nInjected: yes"}, "Illegal header value"),
    ("PO ST", {}, "Illegal method"),
    ("POST", {"X-Uni": "café ☃"}, "must be ASCII"),
])
def test_a_request_that_cannot_be_sent_is_an_end_reason_not_an_exception(method, headers, fragment):
    with hostile_server("echo") as srv:
        cap = capture_sync(raw_request(srv.url, method, b"{}", headers), QUICK)
    assert cap.end_reason == "invalid_url" and fragment in cap.error, cap.error


def test_byte_cap_keeps_exactly_the_cap():
    with hostile_server("endless") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), Limits(deadline_s=10, max_bytes=100_000))
    assert cap.end_reason == "max_bytes" and len(cap.body) == 100_000


def test_line_cap_counts_across_reads_and_ignores_short_lines():
    with hostile_server("huge-line", size=300_000) as srv:
        cut = capture_sync(build_request(srv.url, "prompt", "hi"), Limits(deadline_s=10, max_line_bytes=200_000))
        whole = capture_sync(build_request(srv.url, "prompt", "hi"), Limits(deadline_s=10, max_line_bytes=400_000))
    assert cut.end_reason == "max_line" and "200000" in cut.error
    assert len(cut.body) < 300_000
    assert whole.end_reason == "eof" and len(whole.body) > 300_000


def test_capture_sync_works_inside_a_running_loop(reference_server):
    async def main():
        return capture_sync(build_request(reference_server.endpoint, "prompt", "hi"), QUICK)

    assert asyncio.run(main()).end_reason == "eof"


def test_two_hundred_concurrent_captures_share_one_loop_and_client():
    async def main(url):
        client = make_client(LOCAL, QUICK, max_connections=512)
        try:
            spec = build_request(url, "prompt", "hi")
            return await asyncio.gather(*(capture(spec, Limits(deadline_s=30), client=client)
                                          for _ in range(200)))
        finally:
            await client.aclose()

    with hostile_server(ok_sse, events=5, gap_s=0.05) as srv:
        caps = asyncio.run(main(srv.url))
        accepted = srv.accepted
    assert [c.end_reason for c in caps] == ["eof"] * 200, {c.error for c in caps}
    assert all(c.body.count(b"data: ") == 6 for c in caps)
    assert accepted <= 200


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    import shutil

    from tests.hostile_servers import self_signed

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")

    return self_signed(str(tmp_path_factory.mktemp("tls")))


def test_https_stream_through_the_guarded_backend(tls_pair):
    server_ctx, client_ctx = tls_pair

    async def main(url):
        client = make_client(LOCAL, QUICK, ssl_context=client_ctx)
        try:
            return await capture(build_request(url, "prompt", "hi"), QUICK, client=client)
        finally:
            await client.aclose()

    with hostile_server(ok_sse, tls=server_ctx, events=3, gap_s=0.05) as srv:
        by_ip = asyncio.run(main(srv.url))
        by_name = asyncio.run(main(srv.url.replace("127.0.0.1", "localhost")))  # SNI and name check
    for cap in (by_ip, by_name):
        assert cap.end_reason == "eof", cap.error
        assert cap.status == 200 and cap.body.count(b"data: ") == 4
        _ordered(cap)


def test_an_untrusted_certificate_is_a_connect_error(tls_pair):
    server_ctx, _ = tls_pair
    with hostile_server("ok", tls=server_ctx) as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), QUICK)
    assert cap.end_reason == "connect_error"
    assert "TLS handshake failed" in cap.error and "CERTIFICATE_VERIFY_FAILED" in cap.error


@pytest.mark.parametrize("tls", [False, True])
def test_a_body_larger_than_the_read_buffer_arrives_whole(tls_pair, tls):
    # 6 MiB sent as fast as possible: reading pauses at the buffer's high-water mark and resumes, also under TLS.
    server_ctx, client_ctx = tls_pair
    size = 6 * 1024 * 1024

    async def main(url):
        client = make_client(LOCAL, QUICK, ssl_context=client_ctx)
        try:
            return await capture(build_request(url, "prompt", "hi"),
                                 Limits(deadline_s=20, max_line_bytes=2 * size, max_bytes=2 * size),
                                 client=client)
        finally:
            await client.aclose()

    with hostile_server("huge-line", tls=server_ctx if tls else None, size=size) as srv:
        cap = asyncio.run(main(srv.url))
    assert cap.end_reason == "eof", cap.error
    assert len(cap.body) == len(b"data: ") + size + 2


@pytest.mark.parametrize("tls", [False, True])
def test_the_stream_stops_reading_when_its_buffer_is_full_and_resumes(tls_pair, tls):
    from harness.capture import netstream

    server_ctx, client_ctx = tls_pair
    size = 6 * 1024 * 1024

    async def main(port):
        stream = await netstream.connect_tcp("127.0.0.1", port, timeout=5)
        if tls:
            stream = await stream.start_tls(client_ctx, server_hostname="localhost", timeout=5)
        await stream.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(0.5)  # a slow consumer: the server keeps sending meanwhile
        proto = getattr(stream, "_plain", stream)._protocol  # under TLS: the ciphertext's stream buffers
        paused, buffered = proto.read_paused, proto.buffered
        got = 0
        while chunk := await stream.read(65536, timeout=5):
            got += len(chunk)
        await stream.aclose()
        return paused, buffered, got

    with hostile_server("huge-line", tls=server_ctx if tls else None, size=size) as srv:
        paused, buffered, got = asyncio.run(main(srv.port))
    assert paused and buffered < 3 * 1024 * 1024, (paused, buffered)  # bounded while nobody reads
    assert got >= size  # and everything still arrives once reading resumes


def test_environment_proxies_are_ignored(monkeypatch):
    # A proxy variable pointing at a closed port would break every capture if it were honoured.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:1")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with hostile_server("ok") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), QUICK)
    assert cap.end_reason == "eof", cap.error
