"""Load generation for `streamconform bench`: closed-loop concurrency sweeps and open-loop Poisson arrivals.

Closed loop: exactly ``concurrency`` requests in flight; each worker sends its next request as soon as the
previous one ends, until the level's request count (or duration) is used up. Open loop: requests start at
exponentially distributed intervals (a Poisson process of the given rate, as vLLM's benchmark_serving does with
burstiness 1), whatever the server's state, so queueing shows up as latency instead of being hidden by the
client slowing down.

The client measures itself while it runs (see ``OverheadMonitor``) so a reader can tell when the numbers describe
the client rather than the server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from harness.bench.stats import LevelSpec, distribution, summarize_level

OPEN_LOOP_CONNECTIONS = 1024  # the most requests an open-loop level keeps in flight at once

# Thresholds past which the client, not the server, may be what the numbers describe.
LAG_WARN_MS = 10.0
CPU_WARN_SHARE = 0.8  # fraction of one core the client's event-loop thread used
# Overhead is judged only over a level this long that completed a stream. A level whose requests all fail at
# once (a refused port) lasts milliseconds spent in connection set-up and first-use imports: its CPU "share"
# and lag percentiles are noise (100 % of a core), and there is no stream timing they could have distorted.
MIN_JUDGED_S = 0.5

Requester = Callable[[int, float], Awaitable[dict[str, Any]]]  # (index, t_start_s) -> record


class OverheadMonitor:
    """Event-loop lag (a ticker that should wake every ``interval_s``) and the loop thread's CPU time.

    Lag is how late the ticker woke: when it grows, every timestamp the client takes is late by as much.
    CPU is ``time.thread_time()`` of the loop thread, so a server running in another thread or process of the
    same machine is not counted as client work.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.lags_ms: list[float] = []
        self._task: asyncio.Task | None = None
        self._cpu0 = 0.0
        self._wall0 = 0.0
        self.cpu_s = 0.0
        self.wall_s = 0.0

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.lags_ms.append(max(0.0, (time.perf_counter() - before - self.interval_s) * 1000.0))

    def start(self) -> None:
        self._cpu0 = time.thread_time()
        self._wall0 = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        self.cpu_s = time.thread_time() - self._cpu0
        self.wall_s = time.perf_counter() - self._wall0
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def not_judged_reason(self, records: list[dict[str, Any]]) -> str | None:
        """Why this level's overhead figures say nothing about the client (None: they do)."""
        if not any(r.get("ok") for r in records):
            return "no stream completed, so there was no streaming for the client to slow down"
        if self.wall_s < MIN_JUDGED_S:
            return f"the level lasted {self.wall_s * 1000:.0f} ms, under the {MIN_JUDGED_S:g} s it takes"
        return None

    def summary(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        lag = distribution(self.lags_ms)
        parse_ms = sum(r.get("parse_cpu_ms") or 0.0 for r in records)
        # Parsing deferred past the end of the level is client work all the same: charge it.
        self.cpu_s += sum(r.get("parse_cpu_ms") or 0.0 for r in records if r.get("parse_deferred")) / 1000.0
        events = sum(r.get("content_events") or 0 for r in records)
        share = self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0
        not_judged = self.not_judged_reason(records)
        warnings = []
        if not_judged is None and (lag.get("p99") or 0.0) > LAG_WARN_MS:
            warnings.append(f"event-loop lag p99 {lag['p99']:.1f} ms > {LAG_WARN_MS:g} ms: client timestamps are "
                            "late by up to that much; lower the concurrency or rate")
        if not_judged is None and share > CPU_WARN_SHARE:
            warnings.append(f"the client used {share:.0%} of a core: it may be the bottleneck, not the server")
        return {
            "judged": not_judged is None,
            "not_judged_reason": not_judged,
            "loop_lag_ms": {k: lag[k] for k in ("count", "p50", "p99", "max")},
            "client_cpu_s": self.cpu_s,
            "client_cpu_share": share,
            "parse_cpu_s": parse_ms / 1000.0,
            "parse_cpu_share": (parse_ms / 1000.0) / self.cpu_s if self.cpu_s > 0 else 0.0,
            "client_cpu_ms_per_1k_events": (self.cpu_s * 1000.0 / events * 1000.0) if events else None,
            "warnings": warnings,
        }


@dataclass
class LevelPlan:
    """How much load one level gets: a request count, a duration, or both (whichever ends first)."""

    spec: LevelSpec
    requests: int | None = None
    duration_s: float | None = None
    seed: int = 0


async def _closed_loop(plan: LevelPlan, requester: Requester, records: list[dict[str, Any]]) -> None:
    start = time.perf_counter()
    next_index = 0

    def more() -> bool:
        if plan.requests is not None and next_index >= plan.requests:
            return False
        return plan.duration_s is None or time.perf_counter() - start < plan.duration_s

    async def worker() -> None:
        nonlocal next_index
        while more():
            i = next_index
            next_index += 1
            records.append(await requester(i, time.perf_counter() - start))

    await asyncio.gather(*(worker() for _ in range(plan.spec.concurrency or 1)))


async def _open_loop(plan: LevelPlan, requester: Requester, records: list[dict[str, Any]]) -> None:
    rng = random.Random(plan.seed)  # seeded: two runs of the same plan send the same arrival pattern
    rate = plan.spec.rate or 1.0
    start = time.perf_counter()
    tasks: list[asyncio.Task] = []
    i = 0
    next_at = 0.0
    while plan.requests is None or i < plan.requests:
        delay = next_at - (time.perf_counter() - start)
        if plan.duration_s is not None and next_at >= plan.duration_s:
            break
        if delay > 0:
            await asyncio.sleep(delay)

        async def one(index: int, t_start: float) -> None:
            records.append(await requester(index, t_start))

        # The scheduled arrival time is recorded, not the (possibly late) actual start: lateness is client lag.
        tasks.append(asyncio.create_task(one(i, next_at)))
        i += 1
        next_at += rng.expovariate(rate)
    if tasks:
        await asyncio.gather(*tasks)


async def run_level(plan: LevelPlan, requester: Requester, slos: dict[str, float],
                    finish: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Drive one level and summarise it; the per-request records are kept under ``records``.

    ``finish``, when given, turns what the requester returned into the final record after the level ended:
    a requester can defer its parsing there so it never competes with the streams still being timed.
    """
    if plan.requests is None and plan.duration_s is None:
        raise ValueError("a level needs a request count or a duration, or it never ends")
    records: list[dict[str, Any]] = []
    monitor = OverheadMonitor()
    monitor.start()
    t0 = time.perf_counter()
    try:
        if plan.spec.mode == "closed":
            await _closed_loop(plan, requester, records)
        else:
            await _open_loop(plan, requester, records)
    finally:
        duration = time.perf_counter() - t0
        await monitor.stop()
    if finish is not None:
        records = [finish(r) for r in records]
    records.sort(key=lambda r: r["index"])
    summary = summarize_level(plan.spec, records, duration, slos, monitor.summary(records))
    summary["records"] = records
    return summary
