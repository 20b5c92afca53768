"""Grade many submissions with bounded concurrency on one event loop.

A fixed pool of workers pulls from a queue (rather than one task per submission) so memory stays flat however
long the roster is. Each record is written to disk by a thread — an fsync must not stall the event loop while
other submissions' streams are being timed — before the next submission is taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.grade.attempt import AttemptPolicy, GradeInput, Runner, error_record, grade_one

OnDone = Callable[[dict[str, Any]], None]
Persist = Callable[[dict[str, Any]], Any]


async def grade_all(items: Iterable[GradeInput], runner: Runner, persist: Persist, *, concurrency: int,
                    policy: AttemptPolicy | None = None, on_done: OnDone | None = None,
                    on_unsaved: OnDone | None = None) -> int:
    """Grade every item, calling ``persist(record)`` (in a thread) then ``on_done(record)``; return the count.

    A record ``persist`` fails on (disk full, permissions) is replaced by an ``error`` record saying why, which
    exists only in memory: it goes to ``on_unsaved``, then to ``on_done``, and the batch goes on.
    """
    loop = asyncio.get_running_loop()
    # Checks (evaluate_in_thread), DNS lookups (loop.getaddrinfo) and record writes all use the default executor.
    # Its stock size (cpu + 4) would queue one student's DNS lookup behind other students' checks, and that wait
    # would count in their TTFT; threads are started only when needed, so a pool as wide as the batch costs nothing.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=concurrency + 8, thread_name_prefix="grade"))
    queue: asyncio.Queue[GradeInput] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    total = queue.qsize()
    done = 0

    async def worker() -> None:
        nonlocal done
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                record = await grade_one(item, runner, policy or AttemptPolicy())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one submission must never end the batch
                record = error_record(item, runner, exc)
            record = await _persisted(item, runner, persist, record, on_unsaved)
            done += 1
            if on_done:
                on_done(record)

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, total)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return done


async def _persisted(item: GradeInput, runner: Runner, persist: Persist, record: dict[str, Any],
                     on_unsaved: OnDone | None) -> dict[str, Any]:
    """``record`` once saved, or the error record that replaces one that could not be."""
    try:
        await asyncio.to_thread(persist, record)
        return record
    except Exception as exc:  # noqa: BLE001 - one record that cannot be saved must not end the batch either
        unsaved = error_record(item, runner, exc, doing="could not save the result: ")
    if on_unsaved:
        on_unsaved(unsaved)
    return unsaved
