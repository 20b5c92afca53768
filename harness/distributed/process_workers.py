"""`bench --processes N`: one level's load split over N local processes, one event loop each (one per core).

The Ray workers' split and merge (harness/distributed/bench_workers.py: ``level_shares``, ``merge_level``,
``BenchWorker``) without Ray: each process is a ``BenchWorker`` driven over a pipe, started with the ``spawn``
method (a clean interpreter: no inherited event loop, threads or receive thread). Times are each process's own
monotonic clock relative to its own start, as on Ray; only the level's common start is a wall-clock instant, and
on one machine every process reads the same wall clock.

Why: one event loop holds a few hundred streams before its own work (parsing, metrics) competes with receiving.
Splitting the load over processes gives each loop its share, and each its own core.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from harness.bench.stats import LevelSpec
from harness.distributed.bench_workers import BenchWorker, level_shares, merge_level
from harness.errors import ConfigError, HarnessError

START_LEAD_S = 0.5
READY_TIMEOUT_S = 60.0


class WorkerLost(RuntimeError):
    """A worker process ended (or failed) before answering."""


def _serve(conn: Any, worker: int, client_kwargs: dict[str, Any]) -> None:
    """The child: a BenchWorker answering (method, args) calls until it is told to stop."""
    try:
        body = BenchWorker(worker, client_kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the command
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", {"worker": worker, "pid": os.getpid()}))
    while True:
        try:
            method, args = conn.recv()
        except EOFError:
            break
        if method == "stop":
            break
        try:
            conn.send(("ok", getattr(body, method)(*args)))
        except BaseException as exc:  # noqa: BLE001 - the level fails, the worker stays for the next one
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))
    body.close()


class _Process:
    def __init__(self, ctx: Any, worker: int, client_kwargs: dict[str, Any]) -> None:
        self.worker = worker
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, worker, client_kwargs), daemon=True,
                                name=f"streamconform-bench-{worker}")
        self.proc.start()
        child.close()

    def answer(self, timeout: float | None = None) -> Any:
        if timeout is not None and not self.conn.poll(timeout):
            raise WorkerLost(f"worker {self.worker} did not answer within {timeout:.0f} s")
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(1.0)
            raise WorkerLost(f"worker {self.worker} ended (exit status {self.proc.exitcode})") from None
        if status != "ok":
            raise WorkerLost(f"worker {self.worker}: {value}")
        return value

    def call(self, method: str, *args: Any) -> None:
        self.conn.send((method, args))

    def stop(self) -> None:
        try:
            self.conn.send(("stop", ()))
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(10.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5.0)


def run_levels_in_processes(processes: int, client_kwargs: dict[str, Any],
                            plans: list[tuple[LevelSpec, int | None, float | None, int]], slos: dict[str, float],
                            on_level: Callable[[dict[str, Any]], None] | None = None,
                            on_ready: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Every level of the sweep on ``processes`` local worker processes; the same records and summaries as the
    in-process bench and the Ray workers."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if processes > cpus:
        raise ConfigError(f"--processes {processes}: this machine lets the bench use {cpus} CPU(s), and each "
                          "process needs one (two loops sharing a core would time their streams late)")
    peak = max((s.concurrency or 0) for s, *_ in plans)
    if any(s.mode == "open" for s, *_ in plans):
        from harness.bench.load import OPEN_LOOP_CONNECTIONS

        peak = max(peak, OPEN_LOOP_CONNECTIONS)
    kwargs = {**client_kwargs, "max_connections": max(10, -(-peak // processes))}
    ctx = multiprocessing.get_context("spawn")
    workers = [_Process(ctx, w, kwargs) for w in range(processes)]
    try:
        located = []
        for w in workers:
            try:
                located.append({**w.answer(READY_TIMEOUT_S), "node": "local", "node_ip": "127.0.0.1"})
            except WorkerLost as exc:
                raise HarnessError(f"the bench worker processes could not start: {exc}") from None
        wheres = {w["worker"]: w for w in located}
        if on_ready:
            on_ready(located)
        alive = list(range(processes))
        levels = []
        for spec, requests, duration_s, seed in plans:
            shares = level_shares(spec, requests, duration_s, seed, alive)
            start_at = time.time() + START_LEAD_S
            for share in shares:
                workers[share.worker].call("run_level", asdict(share), slos, start_at)
            results: list[Any] = []
            for share in shares:
                try:
                    results.append(workers[share.worker].answer())
                except WorkerLost as exc:
                    results.append(exc)
                    if not workers[share.worker].proc.is_alive() and share.worker in alive:
                        alive.remove(share.worker)
            if not alive:
                raise HarnessError("every bench worker process was lost")
            levels.append(merge_level(spec, slos, shares, results, wheres, client_kwargs["token_method"]))
            if on_level:
                on_level(levels[-1])
        return levels
    finally:
        for w in workers:
            w.stop()
