"""Kernel receive timestamps: a read's time is when the kernel received it, not when a busy event loop got round to
the socket (harness/capture/netstream.py). Real loopback sockets; the server writes at known times."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from harness.capture import netstream, receiver
from harness.capture.core import capture
from harness.capture.request import build_request
from harness.model import Limits
from tests.hostile_servers import SSE_HEAD, HostileServer, read_request, send
from tests.test_capture import tls_pair  # noqa: F401  (a fixture)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_TIMESTAMPNS is Linux's")
FIRST_EVENT_S = 0.10  # the server's first event, after the headers
LOOP_BLOCKED = (0.05, 0.45)  # the client's event loop is busy (a blocking call) from 50 ms to 450 ms


async def _late_event(reader, writer) -> None:
    await read_request(reader)
    writer.write(SSE_HEAD)
    await writer.drain()
    await asyncio.sleep(FIRST_EVENT_S)
    await send(writer, b'data: {"choices":[{"delta":{"content":"Magma rises."}}]}\n\ndata: [DONE]\n\n')


@pytest.fixture(autouse=True)
def _kernel_clock_on(monkeypatch):
    """Kernel stamps are the default; STREAMCONFORM_CLOCK=userspace (set in a user's environment) would turn them
    off, so these tests turn them on whatever the environment says."""
    monkeypatch.setattr(netstream, "_USERSPACE_ONLY", False)


def _capture_with_a_busy_loop(url: str):
    async def go():
        loop = asyncio.get_running_loop()
        start, stop = LOOP_BLOCKED
        loop.call_later(start, time.sleep, stop - start)  # the loop runs nothing else meanwhile
        return await capture(build_request(url, "prompt", "hi"), Limits(deadline_s=5.0))

    return asyncio.run(go())


def test_reference_capture_names_the_kernel_clock(reference_server):
    cap = asyncio.run(capture(build_request(reference_server.endpoint, "prompt", "hi"), Limits(deadline_s=10.0)))
    assert cap.status == 200 and cap.clock == "kernel" and cap.read_lag_ms_max is not None
    assert cap.to_dict()["clock"] == "kernel"


def test_a_busy_loop_is_not_measured_as_server_latency():
    with HostileServer(_late_event) as srv:
        cap = _capture_with_a_busy_loop(srv.url)
    # "mixed": under a loaded machine a read occasionally comes without its stamp (then stamped in userspace); the
    # read that carried the first event is what this test is about.
    assert cap.clock in ("kernel", "mixed") and cap.status == 200
    # The bytes arrived ~100 ms after the request; the loop only saw them at ~450 ms.
    assert cap.t_first_byte < FIRST_EVENT_S + 0.1, cap.t_first_byte
    assert cap.read_lag_ms_max > 200


def test_userspace_clock_is_late_by_the_loops_delay(monkeypatch):
    """The same exchange with kernel stamps off: the measurement then carries the loop's delay (and says so)."""
    monkeypatch.setattr(netstream, "_USERSPACE_ONLY", True)
    with HostileServer(_late_event) as srv:
        cap = _capture_with_a_busy_loop(srv.url)
    assert cap.clock == "userspace" and cap.read_lag_ms_max is None
    assert cap.t_first_byte > LOOP_BLOCKED[1] - 0.05, cap.t_first_byte


GAP_S = 0.03


async def _two_events(reader, writer) -> None:
    await read_request(reader)
    writer.write(SSE_HEAD)
    await writer.drain()
    await asyncio.sleep(FIRST_EVENT_S)
    await send(writer, b'data: {"choices":[{"delta":{"content":"Magma rises."}}]}\n\n')
    await asyncio.sleep(GAP_S)
    await send(writer, b'data: {"choices":[{"delta":{"content":" It erupts."}}]}\n\ndata: [DONE]\n\n')


@pytest.mark.skipif(not receiver.AVAILABLE, reason="the receive thread (harness/capture/_receiver.c) is not built")
def test_the_receive_thread_keeps_each_event_its_own_stamp_while_the_loop_is_blocked():
    """Both events arrive while the loop is blocked. Read in the loop, they would wait in the socket together and
    share the second one's stamp (a TTFT one gap late); the receive thread reads each as it comes."""
    with HostileServer(_two_events) as srv:
        cap = _capture_with_a_busy_loop(srv.url)
    events = [r for r in cap.reads if b"content" in r.data]
    assert len(events) == 2, [r.data for r in cap.reads]
    assert events[0].t < FIRST_EVENT_S + 0.02, events[0].t
    assert abs((events[1].t - events[0].t) - GAP_S) < 0.01, (events[0].t, events[1].t)
    assert cap.read_lag_ms_max > 200  # the loop itself saw them late, and the capture says so


@pytest.mark.skipif(not receiver.AVAILABLE, reason="the receive thread (harness/capture/_receiver.c) is not built")
def test_the_receive_thread_stops_with_the_loops_last_connection():
    import os

    def threads() -> int:  # OS threads of this process, the C receive thread included
        return len(os.listdir("/proc/self/task"))

    async def go(url):
        before = threads()
        cap = await capture(build_request(url, "prompt", "hi"), Limits(deadline_s=5.0))
        return cap, before, threads(), dict(receiver._RECEIVERS)

    with HostileServer(_late_event) as srv:
        cap, before, after, left = asyncio.run(go(srv.url))
    assert cap.status == 200 and cap.clock == "kernel"
    assert not left and after <= before  # no receiver, no thread left behind


def test_without_the_receive_thread_the_loop_reads_with_kernel_stamps(monkeypatch):
    """The extension not built (no compiler): the loop reads each socket itself, still with the kernel's stamp, so a
    loop blocked before the data came still measures its arrival (only merging two late events is left)."""
    monkeypatch.setattr(receiver, "AVAILABLE", False)
    with HostileServer(_late_event) as srv:
        cap = _capture_with_a_busy_loop(srv.url)
    assert cap.clock in ("kernel", "mixed") and cap.t_first_byte < FIRST_EVENT_S + 0.1, cap.t_first_byte
    assert not receiver._RECEIVERS


def test_tls_reads_keep_the_kernel_stamp_of_their_ciphertext(tls_pair):  # noqa: F811 - the imported fixture
    """TLS is decrypted over the stamped ciphertext (harness/capture/tlsstream.py): a loop blocked while the first
    event arrives still measures its arrival, and the capture names the kernel clock."""
    from harness.capture.client import make_client

    server_ctx, client_ctx = tls_pair

    async def go(url):
        client = make_client(Limits(deadline_s=5.0), ssl_context=client_ctx)
        loop = asyncio.get_running_loop()
        start, stop = LOOP_BLOCKED
        try:
            loop.call_later(start, time.sleep, stop - start)
            return await capture(build_request(url, "prompt", "hi"), Limits(deadline_s=5.0), client=client)
        finally:
            await client.aclose()

    with HostileServer(_late_event, ssl_context=server_ctx) as srv:
        cap = asyncio.run(go(srv.url))
    assert cap.status == 200 and cap.end_reason == "eof", cap.error
    assert cap.clock in ("kernel", "mixed"), cap.clock
    first = next(r for r in cap.reads if b"Magma" in r.data)
    assert first.t < FIRST_EVENT_S + 0.1, first.t
    assert cap.read_lag_ms_max > 200
