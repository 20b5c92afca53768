"""The receive thread's Python side: one C ``Receiver`` (harness/capture/_receiver.c) per event loop.

The thread reads each socket as soon as it is readable and stamps each read with the kernel's receive time, so
a loop that is late (hundreds of streams, a garbage collection, checks running beside the streams) can no longer
merge two events of one stream into one read that carries the later one's time. The loop collects the reads
through an eventfd (``_drain``) and hands each to its connection's protocol, as ``data_received`` would.

Used by harness/capture/netstream.py for plain TCP connections when the extension is built, on Linux, unless
``STREAMCONFORM_CLOCK=userspace`` (then the loop reads the sockets itself, as it does without the extension).
A loop's receiver stops its thread when its last connection closes.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from typing import Any

try:
    from harness.capture import _receiver
except ImportError:  # not built (no compiler, not Linux): the loop reads the sockets itself
    _receiver = None

_KIND_DATA, _KIND_EOF = 0, 1
# Undrained bytes per connection before the thread stops reading it (until the loop drains). With the loop's own
# 1 MiB high-water mark (netstream._HIGH_WATER) a connection nobody reads holds at most about 2.3 MiB: this, the
# loop's buffer and one 256 KiB read.
_THREAD_CAP = 1024 * 1024


def _same_clock() -> bool:
    """The thread stamps on CLOCK_MONOTONIC; the capture's clock is time.perf_counter (CLOCK_MONOTONIC on Linux).
    Checked, not assumed: another Python could implement perf_counter differently."""
    if _receiver is None:
        return False
    a = time.perf_counter()
    b = _receiver.monotonic()
    c = time.perf_counter()
    return a - 0.001 <= b <= c + 0.001


AVAILABLE = _same_clock()


class LoopReceiver:
    """The receive thread serving one event loop's connections."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        assert _receiver is not None
        self.loop = loop
        self.core = _receiver.Receiver(_THREAD_CAP)
        self.protocols: dict[int, Any] = {}
        self.fd = self.core.fileno()
        loop.add_reader(self.fd, self._drain)

    def add(self, fileno: int, protocol: Any) -> int:
        conn = self.core.add(fileno)
        self.protocols[conn] = protocol
        return conn

    def pause(self, conn: int) -> None:
        self.core.pause(conn)

    def resume(self, conn: int) -> None:
        self.core.resume(conn)

    def remove(self, conn: int) -> None:
        """Stop reading ``conn``; the caller closes its socket after this returns. The last connection's removal
        stops the thread."""
        self.core.remove(conn)
        self.protocols.pop(conn, None)
        if not self.protocols:
            self.close()

    def _drain(self) -> None:
        now = time.perf_counter()
        for conn, data, arrival, stamped, kind, err in self.core.drain():
            protocol = self.protocols.get(conn)
            if protocol is None:
                continue  # removed since the thread read it
            if kind == _KIND_DATA:
                # The lag reported is the loop's (how late it got the bytes: a diagnostic of the client's load);
                # the thread's own lateness is microseconds. A read without a kernel stamp has the thread's time
                # and is counted as a userspace read.
                protocol.stamped(data, arrival, None if stamped is None else max(0.0, now - arrival))
            elif kind == _KIND_EOF:
                protocol.eof_received()
            else:
                protocol.connection_lost(OSError(err, os.strerror(err)))

    def close(self) -> None:
        if _RECEIVERS.get(self.loop) is self:
            del _RECEIVERS[self.loop]
        if not self.loop.is_closed():
            self.loop.remove_reader(self.fd)
        self.core.close()


_RECEIVERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopReceiver] = weakref.WeakKeyDictionary()


def for_loop(loop: asyncio.AbstractEventLoop) -> LoopReceiver:
    receiver = _RECEIVERS.get(loop)
    if receiver is None:
        receiver = _RECEIVERS[loop] = LoopReceiver(loop)
    return receiver


_ORPHANS: list[LoopReceiver] = []


def _forget_after_fork() -> None:
    # A forked child has the parent's objects but not its threads: its loops must start receivers of their own.
    # The inherited ones are kept, never closed: closing would join a thread that does not exist in this process.
    _ORPHANS.extend(_RECEIVERS.values())
    _RECEIVERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
