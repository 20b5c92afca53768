"""Robustness requests: timing repeats (right after the measured streams), then, after the error probes, parallel
streams and a dropped stream.

Every extra request is a copy of the primary request (same URL, headers, body), so anything that differs from the
main capture is the endpoint's behaviour under these conditions, not a different question. Captures are filed in
``run.probes`` under ``robustness.<what>.<n>`` (captures there are saved in the bundle and re-checked offline);
plain numbers go to ``run.extra``:

    robustness.concurrency.0 .. K-1   K streams started together
    robustness.disconnect.dropped    a stream the harness drops half-way (``cancel_after_s``)
    robustness.disconnect.next       the request sent right after: it must be served normally
    robustness.repeats.warmup.i      warm-up requests (cold starts, caches): captured, not counted
    robustness.repeats.0 .. N-1      sequential repeats: the timing checks judge the median over the primary and
                                     these (``repeat_captures``); robustness.repeats reports their spread
    extra["robustness"]              {"concurrency": K, "repeats": N, "warmup": W, "drop_after_s": s,
                                      "skipped": {part: reason}}

Only captures and plain facts about the collection are stored: every number judged is computed by the checks from
the captures, so a re-check of a saved bundle (``streamconform check``) gives the same verdicts.

``[robustness]`` profile keys (all optional): ``concurrency`` (K, default 5), ``repeats`` (N, default 3: the
timing checks then judge the median of N + 1 captures, the primary included), ``warmup`` (default 1), ``concurrency_enabled`` / ``disconnect_enabled`` / ``repeats_enabled`` (default true; a
count of 0 also turns a part off), ``ttft_p90_ms`` (default: the profile's ``timing.ttft_ms``).

Nothing is sent when the main capture did not produce a complete 2xx stream (the other checks already say why, and a
hanging endpoint would only burn the run's deadline again), when too little time is left, or when too little is left
of the run's byte budget for answers the size of the main one (a part cut by the budget would read as the
endpoint's failure; the repeats also leave room for the error probes after them).
"""

from __future__ import annotations

import asyncio
from typing import Any

from harness.checks.catalog import REPEAT_PREFIX, healthy, plan, robustness_settings
from harness.model import PROBE_RESERVE_BYTES, Capture
from harness.run.probes import (
    MIN_TIME_LEFT_S,
    capture_with,
    primary_capture,
    primary_request,
    run_budget,
    run_limits,
    run_profile,
    run_store,
    short_limits,
    time_left,
)

# Body cap of each extra capture: this many times the main answer's size, at least MIN_EXTRA_BODY_CAP bytes.
EXTRA_BODY_FACTOR = 4
MIN_EXTRA_BODY_CAP = 256 * 1024
# Byte budget a part needs: this many times the main answer's size per request plus some slack (answers vary).
BUDGET_FACTOR = 1.5
BUDGET_SLACK_BYTES = 4096
# Drop the stream at half the main capture's duration, within these bounds (seconds).
MIN_DROP_AFTER_S, MAX_DROP_AFTER_S = 0.1, 5.0


def drop_after_s(cap: Capture) -> float:
    """Half the main capture's duration: the dropped stream is then mid-way through its answer."""
    duration = cap.t_end - (cap.t_request_sent or 0.0)
    return max(MIN_DROP_AFTER_S, min(MAX_DROP_AFTER_S, duration / 2.0))


def request_duration_s(cap: Capture) -> float:
    """How long the main request took, from sending it to the end of the body."""
    return max(0.0, cap.t_end - (cap.t_request_sent or 0.0))


def time_needed_s(duration_s: float, requests_in_sequence: float = 1.0, load_factor: float = 1.5) -> float:
    """Time to budget for requests like the main one: slower under load, plus a second of slack."""
    return requests_in_sequence * duration_s * load_factor + 1.0


async def collect(run: Any) -> None:
    """Every robustness part the profile asks for: the timing repeats, then the load parts (see the docstring)."""
    await collect_repeats(run)
    await collect_load(run)


class _Session:
    """What both stages read: the plan, the stores, the caps for extra captures and the time rule."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.base = primary_request(run)
        self.probes = run_store(run, "probes")
        extra = run_store(run, "extra")
        self.numbers = plan(robustness_settings(run_profile(run)))
        self.info: dict[str, Any] = extra.setdefault("robustness", dict(self.numbers, skipped={}))
        self.primary = primary_capture(run)
        self.reason = healthy(self.primary)
        self.usable = self.base is not None and self.primary is not None and self.reason is None
        if self.usable:
            # Copies of the main request should get answers of about its size: a cap a few times larger bounds
            # what a dozen extra captures can cost in memory, and an extra answer that floods past it is a
            # finding in itself.
            self.limits = short_limits(run_limits(run), run_limits(run).deadline_s,
                                       max(MIN_EXTRA_BODY_CAP, EXTRA_BODY_FACTOR * len(self.primary.body)))
            self.duration = request_duration_s(self.primary)

    def not_usable(self, parts: tuple[str, ...]) -> bool:
        if not self.usable:
            for part in parts:
                self.info["skipped"][part] = f"not run: {self.reason or 'no main request'}"
        return not self.usable

    def room(self, part: str, need: float, requests: int = 1, reserve: int = 0) -> float | None:
        """Seconds available for ``part``; None (and the reason recorded) when ``need`` seconds do not fit, or the
        byte budget cannot hold ``requests`` answers like the main one (plus ``reserve`` bytes)."""
        left = time_left(self.run) - MIN_TIME_LEFT_S
        if left < need:
            self.info["skipped"][part] = (f"not run: about {need:.1f} s needed, {max(0.0, left):.1f} s left before "
                                          "the run's deadline (raise the deadline: --deadline)")
            return None
        budget = run_budget(self.run)
        want = requests * int(BUDGET_FACTOR * len(self.primary.body) + BUDGET_SLACK_BYTES) + reserve
        if budget is not None and budget.left() < want:
            self.info["skipped"][part] = (f"not run: about {want} body bytes needed, {budget.left()} left of the "
                                          f"run's {budget.total}-byte budget (the answers are long: --max-tokens "
                                          "shortens them)")
            return None
        return left


async def collect_repeats(run: Any) -> None:
    """Warm-ups then sequential repeats of the main request, right after the measured streams and alone on the
    wire (the timing checks judge their median with the main request's figures).

    A part starts only when the time left before the run's deadline covers it (estimated from the main request's
    duration): a request cut by the harness's own deadline would read as the endpoint's failure.
    """
    ses = _Session(run)
    numbers, info, probes = ses.numbers, ses.info, ses.probes
    if ses.not_usable(("repeats",)) or not numbers["repeats"]:
        return
    one = time_needed_s(ses.duration)
    count = numbers["warmup"] + numbers["repeats"]
    if ses.room("repeats", one * (numbers["warmup"] + 1), requests=count, reserve=PROBE_RESERVE_BYTES) is None:
        return
    for i in range(numbers["warmup"]):
        left = ses.room("repeats", one)
        if left is None:
            return
        probes[f"robustness.repeats.warmup.{i}"] = await capture_with(ses.base, short_limits(ses.limits, left), run)
    repeats = []
    for i in range(numbers["repeats"]):
        left = time_left(run) - MIN_TIME_LEFT_S
        if left < one:
            info["repeats_cut"] = f"{len(repeats)} of {numbers['repeats']} repeats fitted before the deadline"
            break
        cap = await capture_with(ses.base, short_limits(ses.limits, left), run)
        probes[f"{REPEAT_PREFIX}{i}"] = cap
        repeats.append(cap)
    if not repeats and "repeats_cut" in info:
        info["skipped"]["repeats"] = f"not run: {info['repeats_cut']}"


async def collect_load(run: Any) -> None:
    """Parallel streams, then a dropped stream and the request after it: after every measured stream and probe."""
    ses = _Session(run)
    numbers, info, probes = ses.numbers, ses.info, ses.probes
    if ses.not_usable(("concurrency", "disconnect")):
        return
    if numbers["concurrency"]:
        left = ses.room("concurrency", time_needed_s(ses.duration, load_factor=2.0), requests=numbers["concurrency"])
        if left is not None:
            lim = short_limits(ses.limits, left)
            caps = await asyncio.gather(*(capture_with(ses.base, lim, run) for _ in range(numbers["concurrency"])))
            for i, cap in enumerate(caps):
                probes[f"robustness.concurrency.{i}"] = cap

    if numbers["disconnect"]:
        after = drop_after_s(ses.primary)
        left = ses.room("disconnect", after + time_needed_s(ses.duration), requests=2)
        if left is not None:
            info["drop_after_s"] = after
            probes["robustness.disconnect.dropped"] = await capture_with(
                ses.base, short_limits(ses.limits, left), run, cancel_after_s=after)
            left = ses.room("disconnect", time_needed_s(ses.duration))
            if left is not None:
                probes["robustness.disconnect.next"] = await capture_with(ses.base, short_limits(ses.limits, left),
                                                                          run)
