"""A plain-asyncio network stream for httpcore that stamps every socket read with its arrival time.

Why not httpcore's default (anyio) stream: the capture's timestamps should say when bytes arrived, not when the
capture's task got round to them. With hundreds of streams whose events arrive together, a task can run
milliseconds after its data came in; a protocol's ``data_received`` runs as soon as the event loop has read the
socket, before any task, so its clock reading is the arrival time. It is also cheaper per read (no cancel scope
per read, no attribute dict per ``get_extra_info``), which matters at hundreds of streams on one loop.

Each read returns one chunk as the kernel gave it (like anyio), so read boundaries are preserved. The stream
calls ``on_read(data, arrival)`` of the current task's tap (see harness.capture) for every chunk it returns.
Reading pauses when more than ``_HIGH_WATER`` bytes wait unread, so a fast sender cannot fill memory.
"""

from __future__ import annotations

import asyncio
import collections
import select
import socket
import time
import typing

import httpcore

ReadTap = typing.Callable[[bytes, float], None]
_HIGH_WATER = 1024 * 1024
_LOW_WATER = 256 * 1024


class _Protocol(asyncio.Protocol):
    """Buffers received chunks with their arrival times and wakes the one reader waiting for them."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[tuple[bytes, float]] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.read_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append((data, time.perf_counter()))
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and not self.read_paused and self.transport is not None:
            self.transport.pause_reading()
            self.read_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class AsyncioStream(httpcore.AsyncNetworkStream):
    """httpcore's network stream interface over an asyncio transport and :class:`_Protocol`."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol,
                 tap_for_task: typing.Callable[[], ReadTap | None] | None = None) -> None:
        self._transport = transport
        self._protocol = protocol
        self._tap_for_task = tap_for_task
        self._loop = asyncio.get_running_loop()

    async def _wait(self, attr: str, timeout: float | None) -> None:
        future = self._loop.create_future()
        setattr(self._protocol, attr, future)
        handle = self._loop.call_later(timeout, _expire, future) if timeout is not None else None
        try:
            await future
        finally:
            setattr(self._protocol, attr, None)
            if handle is not None:
                handle.cancel()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        proto = self._protocol
        if not proto.chunks and not proto.eof:
            try:
                await self._wait("waiter", timeout)
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(f"no data for {timeout} s") from exc
        if not proto.chunks:
            if proto.error is not None:
                raise httpcore.ReadError(str(proto.error) or type(proto.error).__name__) from proto.error
            return b""  # the peer closed the connection
        data, arrival = proto.chunks.popleft()
        if len(data) > max_bytes:
            proto.chunks.appendleft((data[max_bytes:], arrival))
            data = data[:max_bytes]
        proto.buffered -= len(data)
        if proto.read_paused and proto.buffered < _LOW_WATER:
            proto.read_paused = False
            self._transport.resume_reading()
        tap = self._tap_for_task() if self._tap_for_task is not None else None
        if tap is not None:
            tap(data, arrival)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if self._protocol.write_paused:
            try:
                await self._wait("drain_waiter", timeout)
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(f"could not write for {timeout} s") from exc
            if self._protocol.error is not None:
                raise httpcore.WriteError(str(self._protocol.error)) from self._protocol.error

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            transport = await self._loop.start_tls(self._transport, self._protocol, ssl_context,
                                                   server_hostname=server_hostname,
                                                   ssl_handshake_timeout=timeout)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake timed out after {timeout} s") from exc
        except (OSError, EOFError) as exc:  # ssl.SSLError is an OSError
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:
            raise httpcore.ConnectError("TLS handshake failed: the connection closed")
        # Pause and resume must act on the same (TLS) transport, or a paused raw socket is never resumed.
        self._protocol.transport = typing.cast(asyncio.Transport, transport)
        return AsyncioStream(typing.cast(asyncio.Transport, transport), self._protocol, self._tap_for_task)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            # httpcore asks this of idle keep-alive connections: readable means closed or unexpected data.
            if self._protocol.chunks or self._protocol.eof or self._transport.is_closing():
                return True
            sock = self._transport.get_extra_info("socket")
            if sock is None:
                return True
            try:
                return bool(select.select([sock], [], [], 0)[0])
            except (OSError, ValueError):
                return True
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


async def connect_tcp(ip: str, port: int, timeout: float | None,
                      local_address: str | None = None,
                      socket_options: typing.Iterable[typing.Any] | None = None,
                      tap_for_task: typing.Callable[[], ReadTap | None] | None = None) -> AsyncioStream:
    """Connect to an IP address (already validated by the caller); errors become httpcore's exceptions."""
    loop = asyncio.get_running_loop()
    local = (local_address, 0) if local_address else None
    try:
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(_Protocol, host=ip, port=port, local_addr=local), timeout)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise httpcore.ConnectTimeout(f"connecting to {ip} port {port} timed out after {timeout} s") from exc
    except OSError as exc:
        raise httpcore.ConnectError(f"{ip} port {port}: {exc.strerror or exc}") from exc
    sock = transport.get_extra_info("socket")
    if sock is not None:
        for option in socket_options or ():
            sock.setsockopt(*option)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return AsyncioStream(typing.cast(asyncio.Transport, transport), typing.cast(_Protocol, protocol), tap_for_task)
