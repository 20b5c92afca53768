"""`grade --ray ADDRESS`: submissions graded on a Ray cluster, their records written by the driver.

One async actor per node (``GradeWorker``, pinned to its node) holds an EngineRunner built from the
driver's settings and grades up to --concurrency submissions at once on its event loop, as
harness/grade/batch.py does in one process. Each submission is one actor task running the same attempt code
(attempt.grade_one), so the address guard resolves the URL and checks the IP it connects to from the node
that connects.

Records come back to the driver, which persists each the moment it arrives, through the same store as
in-process grading (atomic file, the folder's lock and resume are the driver's): a driver killed mid-batch
loses only the submissions in flight, and rerunning the command grades exactly those. A worker lost
mid-batch (its node died) turns its submissions in flight into ``error`` records, which a rerun grades
again; the rest go to the workers still alive.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.errors import HarnessError
from harness.grade.attempt import AttemptPolicy, GradeInput, error_record, grade_one

READY_TIMEOUT_S = 120.0  # a worker the cluster cannot place fails the command instead of hanging it
OnRecord = Callable[[dict[str, Any]], None]


class GradeWorker:
    """A Ray actor's body (wrapped with ray.remote by the driver, so this module imports without Ray)."""

    def __init__(self, settings: dict[str, Any], concurrency: int) -> None:
        from harness.grade.engine import EngineRunner

        # As in-process grading does (grade/cli.py): checks run in threads; hand the GIL back to the event
        # loop within 1 ms so other submissions' reads are timestamped when they arrive.
        sys.setswitchinterval(0.001)
        self.runner = EngineRunner(**settings)
        self.concurrency = concurrency
        self._executor: ThreadPoolExecutor | None = None

    def where(self) -> dict[str, Any]:
        from harness.distributed.ray_backend import where_am_i

        return where_am_i()

    async def grade(self, item: GradeInput, policy: AttemptPolicy) -> dict[str, Any]:
        # As batch.py: a pool as wide as the batch, so no DNS lookup waits behind other students' checks.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.concurrency + 8, thread_name_prefix="grade")
            asyncio.get_running_loop().set_default_executor(self._executor)
        try:
            return await grade_one(item, self.runner, policy)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one submission must never end the batch
            return error_record(item, self.runner, exc)


def persisted(item: GradeInput, runner: Any, persist: Callable[[dict[str, Any]], Any], record: dict[str, Any],
              on_unsaved: OnRecord | None) -> dict[str, Any]:
    """``record`` once saved, or the error record that replaces one that could not be (as batch.py does)."""
    try:
        persist(record)
        return record
    except Exception as exc:  # noqa: BLE001 - one record that cannot be saved must not end the batch either
        unsaved = error_record(item, runner, exc, doing="could not save the result: ")
    if on_unsaved:
        on_unsaved(unsaved)
    return unsaved


def grade_all_on_ray(items: Iterable[GradeInput], runner: Any, persist: Callable[[dict[str, Any]], Any], *,
                     address: str, concurrency: int, policy: AttemptPolicy | None = None,
                     on_done: OnRecord | None = None, on_unsaved: OnRecord | None = None,
                     on_ready: Callable[[list[dict[str, Any]]], None] | None = None) -> int:
    """Grade every item on the cluster (``concurrency`` at once per node), calling ``persist(record)`` on the
    driver then ``on_done(record)`` for each as it comes back; return the count. Same contract as
    harness.grade.batch.grade_all."""
    from harness.distributed.ray_backend import alive_nodes, connected, lost_worker_errors

    queue = deque(items)
    if not queue:
        return 0
    policy = policy or AttemptPolicy()
    with connected(address) as ray:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = alive_nodes(ray)
        if not nodes:
            raise HarnessError("the Ray cluster has no live node with a CPU to grade on")
        actor_class = ray.remote(GradeWorker)
        token = secrets.token_hex(4)  # names that tell this batch's workers apart (`ray list actors`)
        actors = [actor_class.options(name=f"streamconform-grade-{token}-{i}", num_cpus=1,
                                      max_concurrency=concurrency, max_restarts=0,
                                      scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"],
                                                                                         soft=False))
                  .remote(runner.settings(), concurrency) for i, n in enumerate(nodes)]
        try:
            try:
                located = ray.get([a.where.remote() for a in actors], timeout=READY_TIMEOUT_S)
            except lost_worker_errors() as exc:
                raise HarnessError(f"the grading workers could not start on the Ray cluster: {exc}") from None
            if on_ready:
                on_ready(located)
            return _drain(ray, actors, queue, runner, persist, concurrency, policy, on_done, on_unsaved)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)


def _drain(ray: Any, actors: list[Any], queue: deque[GradeInput], runner: Any, persist: Callable[..., Any],
           concurrency: int, policy: AttemptPolicy, on_done: OnRecord | None,
           on_unsaved: OnRecord | None) -> int:
    """Keep every live worker at ``concurrency`` submissions in flight; persist each record as it returns."""
    from harness.distributed.ray_backend import lost_worker_errors

    load = [0] * len(actors)
    alive = set(range(len(actors)))
    inflight: dict[Any, tuple[GradeInput, int]] = {}
    done = 0

    def finish(item: GradeInput, record: dict[str, Any]) -> None:
        nonlocal done
        record = persisted(item, runner, persist, record, on_unsaved)
        done += 1
        if on_done:
            on_done(record)

    while queue or inflight:
        while queue and alive:
            worker = min(alive, key=load.__getitem__)
            if load[worker] >= concurrency:
                break
            item = queue.popleft()
            inflight[actors[worker].grade.remote(item, policy)] = (item, worker)
            load[worker] += 1
        if not alive:  # every worker lost: the rest are error records, graded again on rerun
            while queue:
                item = queue.popleft()
                finish(item, error_record(item, runner, HarnessError("every Ray grading worker was lost")))
            if not inflight:
                break
        ray.wait(list(inflight), num_returns=1)
        ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=0)
        for ref in ready:
            item, worker = inflight.pop(ref)
            load[worker] -= 1
            try:
                record = ray.get(ref)
            except lost_worker_errors() as exc:
                if isinstance(exc, ray.exceptions.RayActorError):
                    alive.discard(worker)
                record = error_record(item, runner, exc, doing="the Ray worker grading it was lost: ")
            finish(item, record)
    return done
