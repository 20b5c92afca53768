"""`grade --processes N`: submissions graded by N local processes, their records written by this one.

One grading loop is bound by one core: with the probe and robustness stages a submission sends about two dozen
requests, and at a hundred submissions in flight the loop's own work (HTTP parsing, connection set-up, the checks'
GIL time) is what slows every submission down. N spawned processes (``spawn``: a clean interpreter, no inherited
loop, threads or receive thread) each hold an EngineRunner built from the driver's settings, as ``grade --ray``'s
actors do, and grade what they are sent on their own event loop with the same attempt code
(attempt.grade_one). --concurrency is the total in flight, split over the processes.

The driver (this process) keeps the queue, sends each process its next submission as one finishes, and persists
every record the moment it arrives, through the same store, lock and resume as in-process grading: a driver
killed mid-batch loses only the submissions in flight. A worker process that dies turns its submissions in flight
into ``error`` records, which a rerun grades again; the rest go to the processes still alive.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue as queue_module
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing.connection import wait
from typing import Any

from harness.distributed.grade_tasks import OnRecord, persisted
from harness.errors import HarnessError
from harness.grade.attempt import AttemptPolicy, GradeInput, error_record

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 5.0


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity), the most processes worth starting."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def shares(concurrency: int, processes: int) -> list[int]:
    """--concurrency split over the processes: 10 over 3 is [4, 3, 3]; never 0 for a process that is started."""
    n = max(1, min(processes, concurrency))
    return [concurrency // n + (1 if i < concurrency % n else 0) for i in range(n)]


# -- the worker process ---------------------------------------------------------------------------------------------

def _serve(conn: Any, settings: dict[str, Any], share: int, initializer: str | None) -> None:
    """The child: grade each (seq, item, policy) it receives, at most ``share`` at once, and send the records back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    try:
        if initializer:
            module, _, name = initializer.partition(":")
            getattr(__import__(module, fromlist=[name]), name)()
        from harness.grade.engine import EngineRunner

        # As in-process grading does (grade/cli.py): checks run in threads; hand the GIL back to the loop soon.
        sys.setswitchinterval(0.001)
        runner = EngineRunner(**settings)
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which fails the command
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", {"pid": os.getpid()}))
    asyncio.run(_grade_loop(conn, runner, share))


async def _grade_loop(conn: Any, runner: Any, share: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from harness.grade.attempt import grade_one

    loop = asyncio.get_running_loop()
    # As batch.py: a pool as wide as the batch, so no DNS lookup waits behind other students' checks.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=share + 8, thread_name_prefix="grade"))
    outbox: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()
    stopped = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    def send_records() -> None:  # a record is tens of KB: pickling and writing it must not hold up the loop
        while (message := outbox.get()) is not None:
            try:
                conn.send(message)
            except (OSError, ValueError):  # the driver is gone: nothing left to report to
                return

    async def one(seq: int, item: GradeInput, policy: AttemptPolicy) -> None:
        try:
            record = await grade_one(item, runner, policy)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one submission must never end the batch
            record = error_record(item, runner, exc)
        outbox.put(("record", seq, record))

    def receive() -> None:  # blocking reads from the driver, handed to the loop
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = ("stop",)
            if message[0] == "stop":
                loop.call_soon_threadsafe(stopped.set)
                return
            _, seq, item, policy = message
            loop.call_soon_threadsafe(lambda s=seq, i=item, p=policy: tasks.add(loop.create_task(one(s, i, p))))

    sender = threading.Thread(target=send_records, name="grade-send", daemon=True)
    sender.start()
    threading.Thread(target=receive, name="grade-receive", daemon=True).start()
    await stopped.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    outbox.put(None)
    sender.join(STOP_TIMEOUT_S)


# -- the driver -----------------------------------------------------------------------------------------------------

class _Worker:
    def __init__(self, ctx: Any, index: int, settings: dict[str, Any], share: int,
                 initializer: str | None) -> None:
        self.index, self.share = index, share
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, settings, share, initializer), daemon=True,
                                name=f"streamconform-grade-{index}")
        self.proc.start()
        child.close()
        self.inflight: dict[int, GradeInput] = {}
        self.alive = True
        self.pid: int | None = None

    def ready(self) -> None:
        if not self.conn.poll(READY_TIMEOUT_S):
            raise HarnessError(f"grading process {self.index} did not start within {READY_TIMEOUT_S:.0f} s")
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(1.0)
            raise HarnessError(f"grading process {self.index} ended on start (exit status {self.proc.exitcode})"
                               ) from None
        if status != "ready":
            raise HarnessError(f"grading process {self.index} could not start: {value}")
        self.pid = value["pid"]

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(("stop",))
            except (OSError, ValueError):
                pass
            self.proc.join(STOP_TIMEOUT_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(STOP_TIMEOUT_S)
        self.conn.close()


def grade_all_in_processes(items: Iterable[GradeInput], runner: Any, persist: Callable[[dict[str, Any]], Any], *,
                           processes: int, concurrency: int, policy: AttemptPolicy | None = None,
                           on_done: OnRecord | None = None, on_unsaved: OnRecord | None = None,
                           on_ready: Callable[[list[dict[str, Any]]], None] | None = None,
                           initializer: str | None = None) -> int:
    """Grade every item in ``processes`` local processes (``concurrency`` in flight over all of them), calling
    ``persist(record)`` here then ``on_done(record)`` for each as it comes back; return the count. Same contract as
    harness.grade.batch.grade_all. ``initializer``: "module:function" each process calls first (benchmarks)."""
    pending = deque(items)
    if not pending:
        return 0
    policy = policy or AttemptPolicy()
    ctx = multiprocessing.get_context("spawn")
    settings = runner.settings()
    workers = [_Worker(ctx, i, settings, share, initializer)
               for i, share in enumerate(shares(concurrency, processes))]
    try:
        for worker in workers:
            worker.ready()
        if on_ready:
            on_ready([{"process": w.index, "pid": w.pid, "concurrency": w.share} for w in workers])
        return _drain(workers, pending, runner, persist, policy, on_done, on_unsaved)
    finally:
        for worker in workers:
            worker.stop()


def _drain(workers: list[_Worker], pending: deque[GradeInput], runner: Any, persist: Callable[..., Any],
           policy: AttemptPolicy, on_done: OnRecord | None, on_unsaved: OnRecord | None) -> int:
    """Keep every live process at its share in flight; persist each record as it returns."""
    done = 0
    seq = 0

    def finish(item: GradeInput, record: dict[str, Any]) -> None:
        nonlocal done
        record = persisted(item, runner, persist, record, on_unsaved)
        done += 1
        if on_done:
            on_done(record)

    def lost(worker: _Worker, why: str) -> None:
        worker.alive = False
        exc = HarnessError(why)
        for item in list(worker.inflight.values()):
            finish(item, error_record(item, runner, exc, doing="the process grading it was lost: "))
        worker.inflight.clear()

    while True:
        live = [w for w in workers if w.alive]
        for worker in live:
            while pending and len(worker.inflight) < worker.share:
                item = pending.popleft()
                seq += 1
                try:
                    worker.conn.send(("grade", seq, item, policy))
                except (OSError, ValueError):
                    pending.appendleft(item)
                    lost(worker, f"grading process {worker.index} ended (exit status {worker.proc.exitcode})")
                    break
                worker.inflight[seq] = item
        live = [w for w in workers if w.alive]
        if not live:  # every process lost: the rest are error records, graded again on rerun
            while pending:
                item = pending.popleft()
                finish(item, error_record(item, runner, HarnessError("every grading process was lost")))
            return done
        if not pending and not any(w.inflight for w in live):
            return done
        ready = wait([w.conn for w in live] + [w.proc.sentinel for w in live])
        for worker in live:
            if worker.conn in ready:
                try:
                    while worker.conn.poll():
                        kind, number, record = worker.conn.recv()
                        item = worker.inflight.pop(number, None)
                        if kind == "record" and item is not None:
                            finish(item, record)
                except (EOFError, OSError):  # the process is gone: its submissions in flight are error records
                    worker.proc.join(1.0)
                    lost(worker, f"grading process {worker.index} ended (exit status {worker.proc.exitcode})")
                    continue
                except Exception:  # noqa: BLE001 - a message that cannot be read: the process is not trusted
                    lost(worker, f"grading process {worker.index} sent an unreadable message: "
                                 f"{traceback.format_exc(limit=1).strip()}")
                    continue
            if worker.alive and not worker.proc.is_alive() and not worker.conn.poll():
                worker.proc.join(1.0)
                lost(worker, f"grading process {worker.index} ended (exit status {worker.proc.exitcode})")
