"""Checks evaluated in other processes, so a grader's check work runs on the other cores.

Evaluating a submission (parsing every stream, validating every event against its schema, the robustness
streams' conformance) is pure work over captured bytes (harness/run/runner.py ``evaluate``), and in one process it
shares one GIL with the event loop that is capturing every other submission. `grade` therefore evaluates in a
pool of spawned processes (one fewer than the CPUs, at least one, only where there are two CPUs or more): the
captures go over a pipe, the RunResult comes back. The run's deadline still covers evaluation (an absolute
CLOCK_MONOTONIC time, the same clock in every process on Linux). A pool that breaks (a worker killed) is
replaced and that submission is evaluated in a thread instead: a grade never loses a record to it.

    STREAMCONFORM_EVAL_PROCESSES   the pool's size; 0 evaluates in a thread of the grader's process as before
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

_POOL: ProcessPoolExecutor | None = None
_LOCK = threading.Lock()


def size() -> int:
    """How many evaluation processes: STREAMCONFORM_EVAL_PROCESSES, else one fewer than the CPUs (0 on one CPU)."""
    given = os.environ.get("STREAMCONFORM_EVAL_PROCESSES")
    if given is not None and given.strip().isdigit():
        return int(given)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, cpus - 1)


def _pool() -> ProcessPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            # spawn: the grader has threads (the receive thread, executors); forking them is unsafe.
            _POOL = ProcessPoolExecutor(max_workers=size(), mp_context=multiprocessing.get_context("spawn"))
        return _POOL


def _discard(pool: ProcessPoolExecutor) -> None:
    global _POOL
    with _LOCK:
        if _POOL is pool:
            _POOL = None
    pool.shutdown(wait=False, cancel_futures=True)


async def evaluate_elsewhere(fn: Callable[..., Any], *args: Any) -> Any | None:
    """``fn(*args)`` (a module-level function: it is sent by name) in the pool, or None when the pool could not
    run it (the caller then evaluates in a thread)."""
    pool = _pool()
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(pool, fn, *args)
    except BrokenProcessPool:
        _discard(pool)
        return None
