"""`bench --ray ADDRESS --workers N`: one level's load split over N Ray actors, spread across the nodes.

Each actor (``BenchWorker``) holds a BenchClient and an event loop of its own for the whole sweep and runs the
in-process load loop (harness.bench.load.run_level) on its share of each level: a closed level's concurrency
and request count split between the workers, an open level's rate divided by N with a seed per worker (so the
merged arrivals are still a Poisson process of the full rate, not N copies of one pattern).

The clock rule. A record's times (TTFB, TTFT, ITL, e2e, its ``t_start_s``) come from the monotonic clock of
the worker that made it, relative to that worker's own start: no time is ever compared across nodes, whose
clocks are not synchronised finely enough for millisecond latencies. The only cross-node instant is the
level's common start, a wall-clock time the driver broadcasts a moment ahead and every worker waits for: it
decides when the workers begin, not any measured time. The level's throughput window runs from that common
start to the end of the last worker (each worker's lateness in starting plus its own monotonic duration).

A worker that dies mid-level is reported (its entry in ``workers`` has the error) and its share counted as
failed requests (``worker_lost``); the level completes on the others, and the later levels are split over the
workers still alive.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from harness.bench.stats import LevelSpec, summarize_level
from harness.errors import ConfigError, HarnessError

START_LEAD_S = 0.5  # the common start is broadcast this far ahead, so every worker has it before it passes
READY_TIMEOUT_S = 120.0  # an actor the cluster cannot place (no free CPU) fails the command, never hangs it
UNKNOWN_COUNT_OFFSET = 10**7  # index offset per worker when a level has no request count (--duration alone)
LOST = "worker_lost"


def weighted_split(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders first), adding up to ``total``."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * len(weights)
    exact = [total * w / whole for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (exact[i] - parts[i], weights[i]), reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts


def worker_seed(seed: int, worker: int) -> int:
    """Worker 0 keeps the level's seed; each other gets an independent one derived from it."""
    if worker == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}#{worker}".encode()).digest()[:8], "big")


@dataclass
class Share:
    """One worker's part of one level."""

    worker: int
    mode: str
    concurrency: int | None
    rate: float | None
    requests: int | None
    duration_s: float | None
    seed: int
    offset: int  # added to the worker's own request numbers: global record indices, prompts used in turn


def level_shares(spec: LevelSpec, requests: int | None, duration_s: float | None, seed: int,
                 workers: list[int]) -> list[Share]:
    """The shares of ``workers`` (their ids) in one level; a worker left with nothing to do gets no share
    (a closed level of concurrency 1 runs on one worker)."""
    n = len(workers)
    if spec.mode == "closed":
        conc = weighted_split(spec.concurrency or 1, [1] * n)
        reqs: list[int | None] = list(weighted_split(requests, conc)) if requests is not None else [None] * n
        rates: list[float | None] = [None] * n
    else:
        conc = [0] * n
        reqs = list(weighted_split(requests, [1] * n)) if requests is not None else [None] * n
        rates = [(spec.rate or 1.0) / n] * n
    shares, offset = [], 0
    for k, w in enumerate(workers):
        if (spec.mode == "closed" and conc[k] == 0) or reqs[k] == 0:
            continue
        start = offset if requests is not None else k * UNKNOWN_COUNT_OFFSET
        shares.append(Share(w, spec.mode, conc[k] or None, rates[k], reqs[k], duration_s,
                            worker_seed(seed, k), start))
        offset += reqs[k] or 0
    return shares


class BenchWorker:
    """A Ray actor's body (wrapped with ray.remote by the driver, so this module imports without Ray)."""

    def __init__(self, worker: int, client_kwargs: dict[str, Any]) -> None:
        from harness.bench.request import BenchClient

        self.worker = worker
        # One loop and one connection pool for the whole sweep, as the in-process bench keeps one client.
        self.loop = asyncio.new_event_loop()
        self.client = BenchClient(**client_kwargs)
        self.loop.run_until_complete(self.client.__aenter__())

    def where(self) -> dict[str, Any]:
        from harness.distributed.ray_backend import where_am_i

        return {"worker": self.worker, **where_am_i()}

    def run_level(self, share: dict[str, Any], slos: dict[str, float], start_at: float) -> dict[str, Any]:
        """Wait for the common start (wall clock), run the share, return its summary with its records."""
        from harness.bench.load import LevelPlan, run_level

        s = Share(**share)
        spec = LevelSpec(s.mode, concurrency=s.concurrency, rate=s.rate)
        plan = LevelPlan(spec, requests=s.requests, duration_s=s.duration_s, seed=s.seed)
        wait = start_at - time.time()
        if wait > 0:
            time.sleep(wait)
        start_lag_s = time.time() - start_at  # how late this worker began: part of the throughput window

        async def requester(index: int, t_start_s: float) -> dict[str, Any]:
            return await self.client.request(s.offset + index, t_start_s)

        level = self.loop.run_until_complete(run_level(plan, requester, slos, finish=self.finish))
        for record in level["records"]:
            record["worker"] = self.worker
        level["start_lag_s"] = max(0.0, start_lag_s)
        return level

    def finish(self, item: dict[str, Any]) -> dict[str, Any]:
        """A request's record, after the level (a subclass may read more from the capture here)."""
        return self.client.finish(item)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.__aexit__(None, None, None))
        self.loop.close()


def lost_records(share: Share, token_method: str, error: str) -> list[dict[str, Any]]:
    """A dead worker's share as failed requests: its request count, or (a --duration level) the requests it
    had in flight, at least its concurrency."""
    count = share.requests if share.requests is not None else (share.concurrency or 1)
    return [{"index": share.offset + i, "t_start_s": 0.0, "ok": False, "status": None, "end_reason": LOST,
             "error_kind": LOST, "error": error, "ttfb_ms": None, "ttft_ms": None, "e2e_ms": 0.0,
             "itl_ms": [], "itl_max_ms": None, "tpot_ms": None, "tokens": 0, "tokens_per_s": None,
             "token_method": token_method, "chars": 0, "content_events": 0, "bytes": 0,
             "worker": share.worker} for i in range(count)]


def merge_overhead(parts: list[dict[str, Any]], events: int) -> dict[str, Any]:
    """The level's client overhead from its workers': CPU seconds added up; lag and CPU share are the worst
    worker's (each worker is a process of its own, so its own core is what it can exhaust); warnings name the
    worker."""
    if not parts:
        return {"judged": False, "not_judged_reason": "no worker finished the level",
                "loop_lag_ms": {"count": 0, "p50": None, "p99": None, "max": None}, "client_cpu_s": 0.0,
                "client_cpu_share": 0.0, "parse_cpu_s": 0.0, "parse_cpu_share": 0.0,
                "client_cpu_ms_per_1k_events": None, "warnings": []}
    cpu = sum(p["client_cpu_s"] for p in parts)
    parse = sum(p["parse_cpu_s"] for p in parts)
    lags = [p["loop_lag_ms"] for p in parts]

    def worst(key: str) -> float | None:
        values = [lag[key] for lag in lags if lag.get(key) is not None]
        return max(values) if values else None

    judged = [p for p in parts if p.get("judged")]
    return {
        "judged": bool(judged),
        "not_judged_reason": None if judged else parts[0].get("not_judged_reason"),
        "loop_lag_ms": {"count": sum(lag.get("count") or 0 for lag in lags), "p50": worst("p50"),
                        "p99": worst("p99"), "max": worst("max")},
        "client_cpu_s": cpu,
        "client_cpu_share": max(p["client_cpu_share"] for p in parts),
        "parse_cpu_s": parse,
        "parse_cpu_share": parse / cpu if cpu > 0 else 0.0,
        "client_cpu_ms_per_1k_events": (cpu * 1000.0 / events * 1000.0) if events else None,
        "warnings": [f"worker {p['_worker']}: {w}" for p in parts for w in p.get("warnings") or []],
        "merged_from_workers": len(parts),
    }


def worker_entry(where: dict[str, Any], share: Share, level: dict[str, Any] | None,
                 error: str | None) -> dict[str, Any]:
    """One worker's line in the level's ``workers``: where it ran, what it sent and what it cost."""
    entry: dict[str, Any] = {"worker": share.worker, "node": where.get("node"),
                             "node_ip": where.get("node_ip"), "pid": where.get("pid"), "error": error}
    if level is None:
        count = share.requests if share.requests is not None else (share.concurrency or 1)
        entry.update(requests=count, completed=0, duration_s=None, start_lag_ms=None, events_per_s=None,
                     client_cpu_s=None, client_cpu_share=None, loop_lag_ms=None)
        return entry
    events = sum(r.get("content_events") or 0 for r in level["records"])
    over = level["overhead"]
    entry.update(requests=level["requests"], completed=level["completed"], duration_s=level["duration_s"],
                 start_lag_ms=level["start_lag_s"] * 1000.0,
                 events_per_s=events / level["duration_s"] if level["duration_s"] > 0 else 0.0,
                 client_cpu_s=over["client_cpu_s"], client_cpu_share=over["client_cpu_share"],
                 loop_lag_ms=over["loop_lag_ms"])
    return entry


def merge_level(spec: LevelSpec, slos: dict[str, float], shares: list[Share], results: list[Any],
                wheres: dict[int, dict[str, Any]], token_method: str) -> dict[str, Any]:
    """One level's summary from its workers' results (a summary, or the exception that ended the worker)."""
    records: list[dict[str, Any]] = []
    overheads, entries, window = [], [], 0.0
    for share, result in zip(shares, results, strict=True):
        where = wheres.get(share.worker, {})
        if isinstance(result, BaseException):
            error = f"{type(result).__name__}: {str(result).splitlines()[0] if str(result) else ''}".strip()
            records += lost_records(share, token_method,
                                    f"the worker running this request was lost ({error})")
            entries.append(worker_entry(where, share, None, error))
            continue
        records += result["records"]
        overheads.append({**result["overhead"], "_worker": share.worker})
        entries.append(worker_entry(where, share, result, None))
        window = max(window, result["start_lag_s"] + result["duration_s"])  # from the common start
    records.sort(key=lambda r: r["index"])
    for n, record in enumerate(records):  # one numbering for the level, whatever each worker's offset was
        record["index"] = n
    events = sum(r.get("content_events") or 0 for r in records)
    merged_overhead = merge_overhead(overheads, events)
    for p in overheads:
        p.pop("_worker", None)
    summary = summarize_level(spec, records, window, slos, merged_overhead)
    summary["records"] = records
    summary["workers"] = entries
    return summary


def run_levels_on_ray(address: str, workers: int | None, client_kwargs: dict[str, Any],
                      plans: list[tuple[LevelSpec, int | None, float | None, int]], slos: dict[str, float],
                      on_level: Callable[[dict[str, Any]], None] | None = None,
                      on_ready: Callable[[list[dict[str, Any]]], None] | None = None,
                      worker_class: type[BenchWorker] | None = None) -> list[dict[str, Any]]:
    """Every level of the sweep on ``workers`` actors (default: one per node). ``plans``: (spec, requests,
    duration_s, seed) per level. ``on_ready`` gets where each worker runs, ``on_level`` each merged level;
    ``worker_class`` (a BenchWorker) lets a benchmark read more from each capture."""
    from harness.distributed.ray_backend import alive_nodes, connected, lost_worker_errors, total_cpus

    with connected(address) as ray:
        count = workers or max(1, len(alive_nodes(ray)))
        cpus = total_cpus(ray)
        if count > cpus:
            raise ConfigError(f"--workers {count}: the Ray cluster has {cpus} CPU(s) and each bench worker "
                              "takes one (a worker sharing a core with another would time its streams late)")
        peak = max((s.concurrency or 0) for s, *_ in plans)
        if any(s.mode == "open" for s, *_ in plans):
            from harness.bench.load import OPEN_LOOP_CONNECTIONS

            peak = max(peak, OPEN_LOOP_CONNECTIONS)
        kwargs = {**client_kwargs, "max_connections": max(10, -(-peak // count))}
        actor_class = ray.remote(worker_class or BenchWorker)
        token = secrets.token_hex(4)
        actors = [actor_class.options(name=f"streamconform-bench-{token}-{w}", num_cpus=1, max_restarts=0,
                                      scheduling_strategy="SPREAD").remote(w, kwargs) for w in range(count)]
        try:
            try:
                located = ray.get([a.where.remote() for a in actors], timeout=READY_TIMEOUT_S)
            except lost_worker_errors() as exc:
                raise HarnessError(f"the bench workers could not start on the Ray cluster: {exc}") from None
            wheres = {w["worker"]: w for w in located}
            if on_ready:
                on_ready(located)
            alive = list(range(count))
            levels = []
            for spec, requests, duration_s, seed in plans:
                shares = level_shares(spec, requests, duration_s, seed, alive)
                start_at = time.time() + START_LEAD_S
                refs = [actors[s.worker].run_level.remote(asdict(s), slos, start_at) for s in shares]
                results: list[Any] = []
                for share, ref in zip(shares, refs, strict=True):
                    try:
                        results.append(ray.get(ref))
                    except lost_worker_errors() as exc:
                        results.append(exc)
                        if share.worker in alive and not _still_alive(ray, actors[share.worker]):
                            alive.remove(share.worker)
                if not alive:
                    raise HarnessError("every bench worker of the Ray cluster was lost")
                levels.append(merge_level(spec, slos, shares, results, wheres, client_kwargs["token_method"]))
                if on_level:
                    on_level(levels[-1])
            return levels
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)


def _still_alive(ray: Any, actor: Any) -> bool:
    """A worker whose call failed may only have hit a bug in the level (then it takes the next one)."""
    try:
        ray.get(actor.where.remote(), timeout=10)
        return True
    except Exception:  # noqa: BLE001 - dead, unreachable or stuck: no more levels for it
        return False


def worker_lines(level: dict[str, Any]) -> list[str]:
    """The terminal's line per worker of a level: where it ran, its share, its rate and its own overhead."""
    lines = []
    for w in level.get("workers") or []:
        where = f"worker {w['worker']} on {w.get('node_ip')} (node {str(w.get('node'))[:8]})"
        if w.get("error"):
            lines.append(f"    {where}: LOST, its {w['requests']} request(s) counted as errors: {w['error']}")
            continue
        lag = (w.get("loop_lag_ms") or {}).get("p99")
        lines.append(f"    {where}: {w['completed']}/{w['requests']} ok, {w['events_per_s']:.0f} events/s, "
                     f"client CPU {w['client_cpu_share']:.0%}, loop lag p99 "
                     f"{'-' if lag is None else f'{lag:.1f}'} ms, started {w['start_lag_ms']:.1f} ms late")
    return lines
