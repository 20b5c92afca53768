"""An exact-timing streaming server for the timing benchmarks: every event carries the time it was written.

Shared by ``fidelity.py`` (the capture's error) and ``bench_client.py`` (each load client's TTFT error). It runs in
its own process on 127.0.0.1, reads a request, then sends events on a fixed schedule (TTFT after the request was
read, then one event per gap) and stamps each one, just before handing it to the socket, with ``time.monotonic()``
(CLOCK_MONOTONIC on Linux: one clock for every process on the machine, so a client's arrival times compare with
these stamps directly) and, taken at the same instant, ``time.time()`` for clients that only record wall-clock
times (guidellm). The server's own lateness therefore never counts against a client: error = arrival - stamp.

Two shapes, chosen by path:
- ``POST /v1/chat/completions``: OpenAI chat-completion chunks (a role chunk at once, then content deltas
  ``"[m=<monotonic> w=<wall> rm=<request read, monotonic> rw=<same, wall>] "``, a finish chunk, ``[DONE]``), for clients that speak the OpenAI dialect.
  ``GET /health`` and ``GET /v1/models`` answer too, because guidellm asks before it starts.
- any other POST: ``data: {"i": n, "emit": <monotonic>, "recv": <monotonic>}`` events (fidelity.py's clients).
Loopback only; no request validation: this is a measuring instrument, not a server under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reference_server.rawclient import loopback_bypasses_proxies

loopback_bypasses_proxies()  # its clients talk to 127.0.0.1 only; an environment proxy must not see them

# The stamp inside an OpenAI content delta, and a plain event's fields.
# Groups: write time (monotonic, wall), then when the request was read (monotonic, wall).
OPENAI_STAMP = re.compile(rb"\[m=([0-9.]+) w=([0-9.]+) rm=([0-9.]+) rw=([0-9.]+)\]")
OPENAI_STAMP_TEXT = re.compile(r"\[m=([0-9.]+) w=([0-9.]+) rm=([0-9.]+) rw=([0-9.]+)\]")
PLAIN_EVENT = re.compile(rb'data: \{"i": (\d+), "emit": ([0-9.]+), "recv": ([0-9.]+)\}\n\n')
OPENAI_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Schedule:
    """When events leave: ``ttft_s`` after the request was read, then one every ``gap_s``."""

    ttft_s: float = 0.250
    gap_s: float = 0.020
    events: int = 12


def _chunk(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(body), body)


def _openai_event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {"id": "chatcmpl-timed", "object": "chat.completion.chunk", "created": 0, "model": "timed",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


async def _stream(writer: asyncio.StreamWriter, schedule: Schedule, openai: bool, t_recv: float,
                  wall_recv: float) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    if openai:
        writer.write(_chunk(_openai_event({"role": "assistant", "content": ""})))
    for i in range(schedule.events):
        delay = t_recv + schedule.ttft_s + i * schedule.gap_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        emit, wall = time.monotonic(), time.time()  # stamped just before the write: the true emission time
        if openai:
            stamp = f"[m={emit:.7f} w={wall:.6f} rm={t_recv:.7f} rw={wall_recv:.6f}] "
            event = _openai_event({"content": stamp})
        else:
            event = b'data: {"i": %d, "emit": %.7f, "recv": %.7f}\n\n' % (i, emit, t_recv)
        writer.write(_chunk(event))
        await writer.drain()
    if openai:
        writer.write(_chunk(_openai_event({}, "stop")))
    writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    await writer.drain()


def _json_response(doc: Any) -> bytes:
    body = json.dumps(doc).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, schedule: Schedule) -> None:
    """Serve requests on one keep-alive connection."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path = (lines[0].split(b" ") + [b"", b""])[:2]
            length = 0
            for line in lines[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            t_recv, wall_recv = time.monotonic(), time.time()
            if method == b"GET":
                doc = {"object": "list", "data": [{"id": "timed", "object": "model", "owned_by": "bench"}]}
                writer.write(_json_response(doc if path.startswith(b"/v1/models") else {"status": "ok"}))
                await writer.drain()
                continue
            await _stream(writer, schedule, path.split(b"?")[0] == OPENAI_PATH.encode(), t_recv, wall_recv)
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def _server_process(schedule: Schedule, port_queue: Any, stop_event: Any) -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: _serve_connection(r, w, schedule), "127.0.0.1", 0,
                                            backlog=2048)
        port_queue.put(server.sockets[0].getsockname()[1])
        async with server:
            while not stop_event.is_set():
                await asyncio.sleep(0.1)

    asyncio.run(main())


def pin_to(cpu: int, pid: int = 0) -> None:
    """Pin a process (this one by default) to one CPU when there are at least two, so client and server do not
    share a core; a no-op where affinity is unsupported."""
    with contextlib.suppress(AttributeError, OSError):
        if len(os.sched_getaffinity(0)) >= 2:
            os.sched_setaffinity(pid, {cpu})


@contextlib.contextmanager
def timed_server(schedule: Schedule, cpu: int | None = None) -> Iterator[str]:
    """Run the server in a child process (pinned to ``cpu`` when given and possible); yields its base URL."""
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited event loop or threads
    queue: Any = ctx.Queue()
    stop = ctx.Event()
    server = ctx.Process(target=_server_process, args=(schedule, queue, stop), daemon=True)
    server.start()
    try:
        if cpu is not None:
            pin_to(cpu, server.pid)
        yield f"http://127.0.0.1:{queue.get(timeout=30)}"
    finally:
        stop.set()
        server.join(5)
        if server.is_alive():
            server.terminate()
            server.join(5)


def perf_to_monotonic() -> float:
    """What to add to a ``time.perf_counter()`` time to put it on ``time.monotonic()``'s clock, in this process.

    Both are CLOCK_MONOTONIC on Linux (the offset is 0 there); measured rather than assumed so that a platform
    where they differ is still mapped correctly. The median of a few bracketed samples damps a preemption.
    """
    samples = []
    for _ in range(7):
        m0 = time.monotonic()
        p = time.perf_counter()
        m1 = time.monotonic()
        samples.append((m0 + m1) / 2 - p)
    return sorted(samples)[len(samples) // 2]
