"""Bounded work whatever an endpoint sends: tiny reads joined in the capture, one byte budget per run, parse caps
shared by one evaluation, checks that scan with bounded state, an evaluation that ends with the run's deadline.

The end-to-end bounds (`run` and `grade` in a child process against flooding servers) are in
test_hostile_bounds.py.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from harness.capture.core import COALESCE_S, capture_sync
from harness.capture.request import build_request
from harness.model import RUN_BUDGET_BYTES, ByteBudget, Capture, Limits, Read, RequestSpec
from harness.parse.media import DEFAULT_MAX_LINES, ParseAllowance, parse_capture
from harness.run import runner
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, build_context, bundle_json, bundle_of, evaluate, run_target
from tests.hostile_servers import SSE_HEAD, ValidThenFlood, hostile_server, read_request, send

SSE_HEADERS = [("content-type", "text/event-stream")]


def _spec(url: str) -> RequestSpec:
    return build_request(url, "prompt", "Explain how volcanoes form.")


def _capture_of(body: bytes, piece: int = 64 * 1024) -> Capture:
    """A finished 200 SSE capture holding ``body`` in reads of ``piece`` bytes, one millisecond apart."""
    reads = [Read(i / 1000, body[at:at + piece]) for i, at in enumerate(range(0, len(body), piece))]
    return Capture(request=_spec("http://127.0.0.1:9/"), status=200, headers=list(SSE_HEADERS), reads=reads,
                   t_first_byte=0.0, t_end=len(reads) / 1000)


# -- the capture: reads joined, byte budget ---------------------------------------------------------------------

def test_a_byte_per_segment_costs_a_read_per_window_not_a_read_per_byte():
    with hostile_server("byte-drip") as srv:
        cap = capture_sync(_spec(srv.url), Limits(deadline_s=2.0))
    assert cap.end_reason == "deadline"
    assert len(cap.body) > 5 * len(cap.reads), (len(cap.body), len(cap.reads))
    assert len(cap.reads) <= cap.t_end / COALESCE_S + 10


async def _split_event(reader, writer):
    """Half a field name, then the rest of the event 50 ms later, then a second event 50 ms after that."""
    await read_request(reader)
    await send(writer, SSE_HEAD)
    await asyncio.sleep(0.05)
    await send(writer, b"da")
    await asyncio.sleep(0.05)
    await send(writer, b"ta: one\n\n")
    await asyncio.sleep(0.05)
    await send(writer, b"data: two\n\n")


def test_a_read_without_a_line_break_joins_the_read_that_completes_its_event():
    with hostile_server(_split_event) as srv:
        cap = capture_sync(_spec(srv.url), Limits(deadline_s=5.0))
    assert cap.end_reason == "eof", cap.error
    assert [r.data for r in cap.reads] == [b"data: one\n\n", b"data: two\n\n"]
    events = parse_capture(cap).events
    # The event's time is when its blank line came, not when its first two bytes did (that is the TTFB).
    assert events[0].t == cap.reads[0].t and events[0].t - cap.t_first_byte >= 0.04
    assert events[1].t - events[0].t >= 0.04


def test_events_arriving_apart_keep_their_own_times():
    with hostile_server("ok", events=6, gap_s=0.02) as srv:
        cap = capture_sync(_spec(srv.url), Limits(deadline_s=5.0))
    times = [e.t for e in parse_capture(cap).events]
    assert len(times) == 7 and len(set(times[:6])) == 6  # one read per event: six distinct times


def test_the_captures_of_a_run_share_one_byte_budget():
    budget = ByteBudget(300_000)
    with hostile_server("event-flood") as srv:
        caps = [capture_sync(_spec(srv.url), Limits(deadline_s=5.0, max_bytes=200_000), budget=budget)
                for _ in range(3)]
    assert [len(c.body) for c in caps] == [200_000, 100_000, 0]
    assert all(c.end_reason == "max_bytes" for c in caps)
    assert "exceeded 200000 bytes" in caps[0].error
    assert "byte budget (300000 bytes over all its requests) was used up" in caps[1].error
    assert caps[2].status == 200  # a capture with no budget left still records the answer's head
    assert budget.left() == 0


def test_a_run_keeps_at_most_its_byte_budget_over_all_its_captures():
    """Valid answers to the main request and the second prompt, then every later request floods: repeats, probes
    and robustness streams all run, and all draw from the one budget."""
    with hostile_server(ValidThenFlood()) as srv:
        result = asyncio.run(run_target(srv.url, load_profile("tds"), RunOptions(limits=Limits(deadline_s=20))))
    captures = [*result.captures.values(), *result.probes.values()]
    assert len(captures) > 15
    assert sum(len(c.body) for c in captures) <= RUN_BUDGET_BYTES
    assert sum(len(c.reads) for c in captures) < 2000


def test_a_bundle_is_written_one_capture_at_a_time_as_the_same_json():
    with hostile_server(ValidThenFlood()) as srv:
        result = asyncio.run(run_target(srv.url, load_profile("tds"), RunOptions(limits=Limits(deadline_s=20))))
    pieces = list(bundle_json(result))
    assert "".join(pieces) == json.dumps(bundle_of(result))
    assert len(pieces) > len(result.probes)  # one piece per capture (or less), never the whole bundle at once


# -- parsing: caps per stream and per evaluation ----------------------------------------------------------------

def test_lines_that_make_no_event_stop_the_parse_at_the_line_cap():
    cap = _capture_of(b"id:x\n" * (DEFAULT_MAX_LINES + 50_000))
    started = time.perf_counter()
    parsed = parse_capture(cap)
    assert time.perf_counter() - started < 2.0
    assert parsed.events == []
    stop = [f for f in parsed.findings if f.code == "too-many-lines"]
    assert len(stop) == 1 and f"more than {DEFAULT_MAX_LINES} line breaks" in stop[0].message
    assert parsed.finding_counts["no-space-after-colon"] <= DEFAULT_MAX_LINES


def test_one_evaluation_shares_one_parse_allowance_in_order():
    cap = _capture_of(b"data: x\n\n" * 20)
    allowance = ParseAllowance(events=30, lines=10_000)
    first, second, third = (parse_capture(cap, allowance=allowance) for _ in range(3))
    assert (len(first.events), len(second.events), len(third.events)) == (20, 10, 0)
    cut = [f for f in second.findings if f.code == "too-many-events"]
    assert cut and "allowance" in cut[0].message
    assert allowance.events == 0
    assert [f.code for f in third.findings] == ["too-many-events"]


def test_a_huge_read_is_parsed_in_pieces_with_the_same_result():
    body = b"".join(b"data: %d\n\n" % i for i in range(5000))
    whole, cut = _capture_of(body, piece=len(body)), _capture_of(body, piece=7)
    assert [(e.data, e.offset) for e in parse_capture(whole).events] == \
        [(e.data, e.offset) for e in parse_capture(cut).events]


# -- checks with bounded state; evaluation and the deadline ---------------------------------------------------

def test_field_spacing_counts_a_flood_of_fields_without_listing_it():
    n = 200_000
    ctx = build_context(load_profile("tds"), _capture_of(b"id:x\n" * n))
    outcome = runner._run_one(runner.load_checks()["framing.field_spacing"], ctx)
    assert outcome.status == "warn" and outcome.measured == n
    assert len(outcome.evidence) == 5 and [e["offset"] for e in outcome.evidence] == [0, 5, 10, 15, 20]


def test_checks_past_the_stop_are_failed_as_not_evaluated():
    ctx = build_context(load_profile("tds"), _capture_of(b"data: x\n\n"))
    calls = []

    def stop():
        calls.append(1)
        return "the run's 3 s deadline was reached first" if len(calls) > 2 else None

    result = evaluate(ctx, stop=stop)
    stopped = [c for c in result.checks if c.message.startswith("not evaluated")]
    # Checks that do not apply to this endpoint are decided from the request alone, stop or no stop.
    applicable = [c for c in result.checks if c.applicable]
    assert len(stopped) == len(applicable) - 2 and all(c.status == "fail" for c in stopped)
    assert result.passed is False


def _slow_checks(monkeypatch, seconds: float) -> list[float]:
    calls: list[float] = []
    real = runner._run_one

    def slow(spec, ctx):
        calls.append(time.monotonic())
        time.sleep(seconds)
        return real(spec, ctx)

    monkeypatch.setattr(runner, "_run_one", slow)
    return calls


def test_the_deadline_covers_the_evaluation(monkeypatch):
    calls = _slow_checks(monkeypatch, 0.5)
    with hostile_server("ok") as srv:
        options = RunOptions(limits=Limits(deadline_s=2.0), categories={"framing", "stream"},
                             evaluate_in_thread=True)
        started = time.monotonic()
        result = asyncio.run(run_target(srv.url, load_profile("tds"), options))
    assert time.monotonic() - started < 2.0 + 0.8  # one check's 0.5 s may run past the deadline, no more
    assert 0 < len(calls) < len(result.checks)
    late = [c for c in result.checks if c.message.startswith("not evaluated")]
    assert late and "2 s deadline was reached first" in late[0].message and not result.passed


def test_a_cancelled_run_stops_its_evaluation_thread(monkeypatch):
    calls = _slow_checks(monkeypatch, 0.2)

    async def main(url: str) -> tuple[int, int]:
        options = RunOptions(limits=Limits(deadline_s=30.0), categories={"framing", "stream"},
                             evaluate_in_thread=True)
        task = asyncio.create_task(run_target(url, load_profile("tds"), options))
        while not calls:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        at_cancel = len(calls)
        await asyncio.sleep(1.0)  # the thread would run four or five more checks in this time
        return at_cancel, len(calls)

    with hostile_server("ok") as srv:
        at_cancel, later = asyncio.run(main(srv.url))
    assert later <= at_cancel + 1  # the check running when it was cancelled, then nothing
