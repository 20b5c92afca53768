"""robustness.*: the reference server passes; small real servers that break under load, after a dropped stream, or
slow down over repeats fail exactly the check meant for them. Plus the pure parts (plan, stats, numbering)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from harness.checks import catalog
from harness.checks.robustness import numbered
from harness.model import Capture, Limits, RequestSpec
from harness.run import robustness
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, run_target
from tests.hostile_servers import (
    OPENAI_CHUNK,
    OPENAI_STOP,
    SSE_HEAD,
    VOLCANO_TEXT,
    HostileServer,
    read_head,
    send,
)


class StreamServer(HostileServer):
    """A small SSE server on loopback with one planted weakness (``mode``).

    ``busy``:      serves one stream at a time; a request arriving meanwhile gets 503
    ``fragile``:   once a client has dropped a stream mid-way, every later request gets 500
    ``degrading``: each valid request waits 100 ms longer than the previous one before its first chunk
    ``flood-later``: the first request is answered normally, every later one with an endless stream
    The tests below run only the http and robustness categories, so no bad-request probe reaches it.
    """

    def __init__(self, mode: str, chunks: int = 30, gap_s: float = 0.02) -> None:
        super().__init__(self.handle)
        self.mode, self.chunks, self.gap_s = mode, chunks, gap_s
        self.active = 0
        self.served = 0
        self.broken = False

    async def _reply(self, writer, status: int, message: str) -> None:
        body = json.dumps({"error": {"message": message, "type": "server_error"}}).encode()
        writer.write(b"HTTP/1.1 %d Error\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (status, len(body), body))
        await writer.drain()

    async def handle(self, reader, writer) -> None:
        head = await read_head(reader)  # reads (and discards) the body too
        if not head.startswith(b"POST "):
            return await self._reply(writer, 405, "use POST")
        if self.mode == "fragile":
            await asyncio.sleep(0.05)  # let the loop notice a client that left just before (as cleanup would)
        if self.broken:
            return await self._reply(writer, 500, "internal state corrupted by an earlier disconnect")
        if self.mode == "busy" and self.active:
            return await self._reply(writer, 503, "busy: one stream at a time")
        self.active += 1
        delay = 0.1 * self.served if self.mode == "degrading" else 0.0
        self.served += 1
        stream = asyncio.ensure_future(self._stream(writer, delay))
        gone = asyncio.ensure_future(reader.read(1))  # b"" as soon as the client hangs up
        try:
            await asyncio.wait({stream, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not stream.done():  # the client left mid-stream
                stream.cancel()
                if self.mode == "fragile":
                    self.broken = True
        finally:
            gone.cancel()
            self.active -= 1

    async def _stream(self, writer, delay: float) -> None:
        writer.write(SSE_HEAD)
        await writer.drain()
        if self.mode == "flood-later" and self.served > 1:
            block = (OPENAI_CHUNK % VOLCANO_TEXT).encode() * 200
            while True:
                await send(writer, block)
        await asyncio.sleep(0.02 + delay)
        for i in range(self.chunks):
            if i:
                await asyncio.sleep(self.gap_s)
            await send(writer, (OPENAI_CHUNK % f"{VOLCANO_TEXT}({i}) ").encode())
        await send(writer, OPENAI_STOP.encode())


def run(url: str, profile: str = "tds", overrides=(), categories=None, deadline_s: float = 30.0):
    prof = load_profile(profile, list(overrides))
    options = RunOptions(limits=Limits(deadline_s=deadline_s), categories=categories, api_key=None)
    return asyncio.run(run_target(url, prof, options))


def by_id(result) -> dict:
    return {c.id: c for c in result.checks}


def test_reference_server_passes_every_robustness_check(reference_server):
    result = run(reference_server.endpoint, categories={"http", "robustness"})
    checks = by_id(result)
    for cid in ("robustness.concurrency", "robustness.disconnect", "robustness.repeats"):
        assert checks[cid].status == "pass", (cid, checks[cid].message)
    assert checks["robustness.concurrency"].measured["streams"] == 5
    assert checks["robustness.repeats"].measured == {"n": 3, "conforming": 3}
    assert sum(name.startswith("robustness.repeats.warmup.") for name in result.probes) == 1
    assert result.extra["robustness"]["drop_after_s"] > 0


def test_one_stream_at_a_time_fails_concurrency_only():
    with StreamServer("busy") as srv:
        checks = by_id(run(srv.url, categories={"http", "robustness"}))
    assert checks["robustness.concurrency"].status == "fail"
    assert "status 503" in checks["robustness.concurrency"].message
    assert checks["robustness.concurrency"].evidence[0]["status"] == 503
    assert checks["robustness.disconnect"].status == "pass", checks["robustness.disconnect"].message
    assert checks["robustness.repeats"].status == "pass"


def test_state_broken_by_a_disconnect_fails_the_disconnect_check():
    with StreamServer("fragile") as srv:
        checks = by_id(run(srv.url, categories={"http", "robustness"}))
    assert checks["robustness.concurrency"].status == "pass", checks["robustness.concurrency"].message
    out = checks["robustness.disconnect"]
    assert out.status == "fail" and "after a client dropped a stream" in out.message and "status 500" in out.message
    assert out.measured["dropped"] == "cancelled"
    # The timing repeats run right after the measured streams, before the drop: they were served normally.
    assert checks["robustness.repeats"].status == "pass", checks["robustness.repeats"].message


def test_median_timing_over_repeats_is_judged_by_the_timing_checks():
    overrides = ["timing.ttft_ms=250", "robustness.concurrency_enabled=false", "robustness.disconnect_enabled=false"]
    with StreamServer("degrading") as srv:
        checks = by_id(run(srv.url, overrides=overrides, categories={"timing", "robustness"}))
    # requests: primary (0 ms extra), warm-up (100), repeats (200, 300, 400): of primary + repeats, the worse
    # middle value is 300 ms > 250 ms. Every repeat was served normally, so robustness.repeats passes.
    out = checks["timing.ttft"]
    assert out.status == "fail" and "median of 4 requests" in out.message, out.message
    assert out.evidence[0]["capture"] == "robustness.repeats.1"
    assert checks["robustness.repeats"].status == "pass", checks["robustness.repeats"].message
    assert checks["robustness.concurrency"].status == "skip"
    assert checks["robustness.disconnect"].status == "skip"


def test_nothing_is_sent_when_the_main_stream_failed(reference_server):
    fake = SimpleNamespace(primary=Capture(request=RequestSpec(url=reference_server.endpoint), status=500),
                           profile=load_profile("tds"), probes={}, extra={}, remaining=lambda: 10.0,
                           limits=lambda: Limits(deadline_s=10.0), options=RunOptions())
    asyncio.run(robustness.collect(fake))
    assert fake.probes == {}
    assert "not answered with 2xx" in fake.extra["robustness"]["skipped"]["concurrency"]


def test_extra_answers_flooding_past_the_main_ones_size_are_cut_and_fail():
    with StreamServer("flood-later") as srv:
        result = run(srv.url, categories={"http", "robustness"})
    checks = by_id(result)
    assert checks["http.status"].status == "pass"
    out = checks["robustness.concurrency"]
    assert out.status == "fail" and "ended by max_bytes" in out.message
    main_size = len(result.captures["primary"].body)
    cap = result.probes["robustness.concurrency.0"]
    assert len(cap.body) <= max(robustness.MIN_EXTRA_BODY_CAP, robustness.EXTRA_BODY_FACTOR * main_size)


def test_parts_that_cannot_finish_before_the_deadline_are_skipped_not_failed(make_reference_server):
    server = make_reference_server(gap_ms=100)  # a stream of ~4 s
    result = run(server.endpoint, categories={"http", "robustness"}, deadline_s=8.0)
    checks = by_id(result)
    assert checks["http.status"].status == "pass"
    for cid in ("robustness.concurrency", "robustness.disconnect", "robustness.repeats"):
        assert checks[cid].status == "skip", (cid, checks[cid].message)
        assert "s needed" in checks[cid].message and "--deadline" in checks[cid].message


def test_plan_and_stats_helpers():
    assert catalog.plan({}) == {"concurrency": 5, "repeats": 3, "warmup": 1, "disconnect": True}
    assert catalog.plan({"concurrency_enabled": False, "repeats": 0, "disconnect_enabled": False}) == {
        "concurrency": 0, "repeats": 0, "warmup": 1, "disconnect": False}
    caps = {"robustness.repeats.1": "b", "robustness.repeats.0": "a", "robustness.repeats.warmup.0": "w",
            "robustness.repeats.10": "k"}
    assert numbered(caps, "robustness.repeats.") == ["a", "b", "k"]
    three = load_profile("tds")
    assert catalog.repeat_captures(caps, three) == [("robustness.repeats.0", "a"), ("robustness.repeats.1", "b"),
                                                      ("robustness.repeats.10", "k")]
    assert catalog.repeat_captures(caps, load_profile("tds", ["robustness.repeats=2"]))[-1][1] == "b"
    assert catalog.repeat_captures(caps, load_profile("tds", ["robustness.repeats_enabled=false"])) == []


@pytest.mark.parametrize("duration, expected", [(0.0, 0.1), (1.0, 0.5), (60.0, 5.0)])
def test_drop_point_is_half_the_main_stream(duration, expected):
    cap = Capture(request=RequestSpec(url="http://x"), t_request_sent=0.0, t_end=duration)
    assert robustness.drop_after_s(cap) == expected
