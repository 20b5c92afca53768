"""A direct body writer for uvicorn's httptools protocol, used by the pacer for paced content events.

Through ASGI, every event is a message dict, a coroutine and uvicorn's generic `send` logic before it reaches the
socket; at thousands of streams that is a third of the server's per-event CPU. When the `send` callable is
uvicorn's httptools `RequestResponseCycle.send`, this writes the same chunked-encoding frame that `send` would,
straight to the transport — but only in the plain case: response started, chunked, not complete, client still
there, writing not paused by flow control. In every other case it returns False and the caller uses `send`,
so behaviour (flow control, disconnects, the final chunk) stays uvicorn's own. Any other server or protocol
(h11, hypercorn, ...) gets None: the pacer then always uses `send`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_HTTPTOOLS_CYCLE = "uvicorn.protocols.http.httptools_impl"
_NEEDED = ("transport", "flow", "chunked_encoding", "response_started", "response_complete", "disconnected")


def direct_writer(send: Any) -> Callable[[bytes], bool] | None:
    cycle = getattr(send, "__self__", None)
    if cycle is None or type(cycle).__module__ != _HTTPTOOLS_CYCLE or getattr(send, "__name__", "") != "send":
        return None
    if not all(hasattr(cycle, name) for name in _NEEDED) or not hasattr(cycle.flow, "write_paused"):
        return None

    def write(body: bytes) -> bool:
        c = cycle
        if (c.disconnected or c.flow.write_paused or not c.response_started or c.response_complete
                or not c.chunked_encoding or not body):
            return False
        c.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        return True

    return write
