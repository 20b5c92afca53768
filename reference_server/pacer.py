"""One timer that writes the paced events of every open stream.

The obvious design gives each stream a task that sleeps between events: every event then costs a timer, a
future, a task wake-up and a coroutine resume. Here the streams sit in one heap ordered by when their next event
is due; a single timer callback pops every due stream and calls its ASGI `send` directly, driving that coroutine
by hand. `send` normally completes without suspending (the socket accepts the bytes), so the event costs a heap
operation and a write. When the socket's buffer is full, `send` suspends on flow control: the pacer then resumes
it from the awaited future's callback, exactly as a task would, and schedules that stream's next event only after
the write went through (a slow reader slows only its own stream).
With uvicorn's httptools protocol the plain case skips even `send` (reference_server/fastwrite.py).
The stream's own task just awaits one future for the whole stream; cancelling that task (client disconnect)
marks the entry dead, and the heap drops it at its next turn.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

from reference_server.fastwrite import direct_writer
from reference_server.lateness import LatenessHistogram

_EARLY_S = 0.001


class _Entry:
    __slots__ = ("send", "direct", "events", "gap", "done", "dead")

    def __init__(self, send: Callable[[dict], Awaitable[None]], events: Iterator[bytes], gap: float,
                 done: asyncio.Future):
        self.send = send
        self.direct = direct_writer(send)
        self.events = events
        self.gap = gap
        self.done = done
        self.dead = False

    def finish(self, exc: BaseException | None = None) -> None:
        self.dead = True
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)


def _drive(coro: Coroutine[Any, Any, Any], on_done: Callable[[BaseException | None], None]) -> None:
    """Run `coro` to completion without a task: step it, and when it awaits a future, continue on its callback."""
    try:
        fut = coro.send(None)
    except StopIteration:
        on_done(None)
        return
    except BaseException as exc:  # delivered to the stream's own task, which raises it there
        on_done(exc)
        return
    if fut is None:  # a bare yield (sleep(0)): continue on the next loop iteration
        asyncio.get_running_loop().call_soon(_drive, coro, on_done)
        return
    fut._asyncio_future_blocking = False  # the awaiting party (this driver) took responsibility, as a task does
    fut.add_done_callback(lambda _f: _drive(coro, on_done))


class Pacer:
    def __init__(self, lateness: LatenessHistogram | None = None):
        self.lateness = lateness
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self._in_tick = False
        self._deferred: list[tuple[float, _Entry]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return sum(1 for _, _, e in self._heap if not e.dead)

    async def play(self, send: Callable[[dict], Awaitable[None]], events: Iterator[bytes], first_at: float,
                   gap: float) -> None:
        """Write each of `events` as a body part, the first at loop time `first_at`, then one per `gap`."""
        loop = self._loop = asyncio.get_running_loop()
        entry = _Entry(send, events, gap, loop.create_future())
        self._push(first_at, entry)
        try:
            await entry.done
        finally:
            entry.dead = True  # on cancellation (client gone) the heap drops it at its next turn

    def _push(self, when: float, entry: _Entry) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), entry))
        if not self._in_tick and when < self._armed_at:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_at = math.inf
        while self._heap and self._heap[0][2].dead:
            heapq.heappop(self._heap)
        if self._heap and self._loop is not None:
            self._armed_at = self._heap[0][0]
            self._timer = self._loop.call_at(self._armed_at, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._armed_at = math.inf
        loop = self._loop
        assert loop is not None
        heap = self._heap
        lateness = self.lateness
        self._in_tick = True
        try:
            # Timers have millisecond granularity and may fire a little early: what falls due within the next
            # millisecond goes out now, rather than re-arming for it again and again (a busy spin).
            horizon = loop.time() + _EARLY_S
            while heap and heap[0][0] <= horizon:
                when, _, entry = heapq.heappop(heap)
                if entry.dead:
                    continue
                try:
                    event = next(entry.events)
                except StopIteration:
                    entry.finish()
                    continue
                except Exception as exc:
                    entry.finish(exc)
                    continue
                if lateness is not None:
                    lateness.add(loop.time() - when)
                direct = entry.direct
                if direct is not None and direct(event):
                    self._deferred.append((when + entry.gap, entry))
                    continue
                coro = entry.send({"type": "http.response.body", "body": event, "more_body": True})
                _drive(coro, lambda exc, e=entry, w=when: self._sent(e, w, exc))
        finally:
            # Only what was due when the tick began goes out in it, and each stream's next event waits for the
            # next tick: under overload the loop still gets to read sockets and accept connections between
            # ticks, and a late stream is never flushed as a burst of back-to-back events.
            self._in_tick = False
            deferred, self._deferred = self._deferred, []
            for when, entry in deferred:
                heapq.heappush(heap, (when, next(self._seq), entry))
        self._arm()

    def _sent(self, entry: _Entry, when: float, exc: BaseException | None) -> None:
        if exc is not None:
            entry.finish(exc)
        elif not entry.dead:
            if self._in_tick:
                self._deferred.append((when + entry.gap, entry))
            else:
                self._push(when + entry.gap, entry)  # due relative to the schedule, so lateness never accumulates
