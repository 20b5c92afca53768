"""A plain-asyncio network stream for httpcore that stamps every socket read with its arrival time.

Why not httpcore's default (anyio) stream: the capture's timestamps should say when bytes arrived, not when the
capture's task got round to them. With hundreds of streams whose events arrive together, a task can run
milliseconds after its data came in; a protocol's ``data_received`` runs as soon as the event loop has read the
socket, before any task, so its clock reading is the arrival time. It is also cheaper per read (no cancel scope
per read, no attribute dict per ``get_extra_info``), which matters at hundreds of streams on one loop.

Each read returns one chunk as the kernel gave it (like anyio), so read boundaries are preserved. The stream
calls ``on_read(data, arrival, lag)`` of the current task's tap (see harness.capture.core) for every chunk it returns.
Reading pauses when more than ``_HIGH_WATER`` bytes wait unread, so a fast sender cannot fill memory.

Kernel receive timestamps. Even ``data_received`` runs only when the event loop gets round to the socket: a busy
loop (hundreds of streams, checks running, a loaded machine) would be measured as server latency. On Linux a plain
TCP connection is read with ``recvmsg`` and ``SO_TIMESTAMPNS``: the kernel stamps each received segment, and a
read's arrival is the stamp of the last segment it copied (CLOCK_REALTIME, moved onto the perf_counter clock with
the offset between the two clocks measured at that read, so a wall-clock step cannot shift a result). That "last
segment" is the catch: a loop that reads late finds two events waiting and gives the first the second's time.
So, where the C extension is built, the sockets are read by a receive thread that never needs the GIL
(harness/capture/receiver.py, _receiver.c): each read happens within microseconds of its data, and the loop
collects the stamped reads when it can. Without the extension the loop reads them itself (``_KernelReader``).
``lag`` is how late the loop saw the bytes. Kernel stamps are the default; STREAMCONFORM_CLOCK=userspace turns
them off. TLS is decrypted in memory over the stamped ciphertext reads (harness/capture/tlsstream.py). Where the
option or ``recvmsg`` is missing (other systems, uvloop's own transports), reads are stamped in userspace as
before and ``lag`` is None: the capture then names its clock ``userspace``.
"""

from __future__ import annotations

import asyncio
import collections
import select
import socket
import struct
import sys
import time
import typing

import httpcore

from harness.capture import receiver

ReadTap = typing.Callable[..., None]  # (data, arrival on the perf_counter clock, lag in seconds or None)
_HIGH_WATER = 1024 * 1024
_LOW_WATER = 256 * 1024
# Linux's option number; Python names it from 3.?? only on some builds. Other systems: no kernel stamps.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35) if sys.platform.startswith("linux") else None
_TIMESPEC = struct.Struct("qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_RECV_SIZE = 256 * 1024


class _Protocol(asyncio.Protocol):
    """Buffers received chunks with their arrival times and wakes the one reader waiting for them."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[tuple[bytes, float, float | None]] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.read_paused = False
        self.kernel: _KernelReader | _ThreadReader | None = None  # set while read with kernel stamps

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.stamped(data, time.perf_counter(), None)

    def stamped(self, data: bytes, arrival: float, lag: float | None) -> None:
        self.chunks.append((data, arrival, lag))
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and not self.read_paused:
            self.pause()
        self._wake()

    def pause(self) -> None:
        self.read_paused = True
        if self.kernel is not None:
            self.kernel.pause()
        elif self.transport is not None:
            self.transport.pause_reading()

    def resume(self) -> None:
        self.read_paused = False
        if self.kernel is not None:
            self.kernel.resume()
        elif self.transport is not None:
            self.transport.resume_reading()

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


class _KernelReader:
    """Reads a plain TCP socket with recvmsg in the loop's reader callback (where data_received would run), taking
    each read's arrival from the kernel's SO_TIMESTAMPNS stamp. No transport owns the socket (asyncio refuses a
    reader on a transport's socket): KernelStream writes and closes it itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, proto: _Protocol) -> None:
        self.loop, self.sock, self.proto = loop, sock, proto
        self.fd = sock.fileno()
        self.reading = False
        proto.kernel = self

    def pause(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False

    def close(self) -> None:
        self.pause()

    def resume(self) -> None:
        if not self.reading and not self.proto.eof and self.sock.fileno() >= 0:
            self.loop.add_reader(self.fd, self._readable)
            self.reading = True

    def _readable(self) -> None:
        now = time.perf_counter()
        try:
            data, ancillary, _flags, _addr = self.sock.recvmsg(_RECV_SIZE, _ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.pause()
            self.proto.connection_lost(exc)
            return
        if not data:
            self.pause()
            self.proto.eof_received()
            return
        stamp = _kernel_stamp(ancillary)
        if stamp is None:
            self.proto.stamped(data, now, None)
            return
        # The two clocks' offset is read now, beside the stamp's use: a wall-clock step between reads moves both.
        arrival = min(now, stamp - (time.time() - time.perf_counter()))
        self.proto.stamped(data, arrival, now - arrival)


class _ThreadReader:
    """The socket read by the receive thread (harness/capture/receiver.py): read and stamped the moment its data
    arrives, whatever the loop is doing; the loop gets the stamped reads through the protocol's ``stamped``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, proto: _Protocol) -> None:
        self.receiver = receiver.for_loop(loop)
        self.conn = self.receiver.add(sock.fileno(), proto)
        self.closed = False
        proto.kernel = self

    def pause(self) -> None:
        if not self.closed:
            self.receiver.pause(self.conn)

    def resume(self) -> None:
        if not self.closed:
            self.receiver.resume(self.conn)

    def close(self) -> None:
        """Before the socket is closed: the thread must never read a closed (or reused) descriptor."""
        if not self.closed:
            self.closed = True
            self.receiver.remove(self.conn)


# STREAMCONFORM_CLOCK=userspace turns kernel stamps off (the loop stamps each read when it gets to it).
_USERSPACE_ONLY = __import__("os").environ.get("STREAMCONFORM_CLOCK", "kernel").strip().lower() == "userspace"


def _kernel_stamp(ancillary: list) -> float | None:
    """The SO_TIMESTAMPNS stamp (CLOCK_REALTIME seconds) among a read's ancillary data, or None."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(payload)
            return sec + nsec / 1e9
    return None


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
        data, arrival, lag = await self.next_chunk(max_bytes, timeout)
        tap = self._tap_for_task() if self._tap_for_task is not None and data else None
        if tap is not None:
            tap(data, arrival, lag)
        return data

    async def next_chunk(self, max_bytes: int, timeout: float | None = None) -> tuple[bytes, float, float | None]:
        """The next received bytes (at most ``max_bytes``) with their arrival and lag, not yet shown to the tap:
        ``read`` taps them; the TLS layer (harness/capture/tlsstream.py) taps what it decrypts instead."""
        proto = self._protocol
        if not proto.chunks and not proto.eof:
            try:
                await self._wait("waiter", timeout)
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(f"no data for {timeout} s") from exc
        if not proto.chunks:
            if proto.error is not None:
                raise httpcore.ReadError(str(proto.error) or type(proto.error).__name__) from proto.error
            return b"", 0.0, None  # the peer closed the connection
        data, arrival, lag = proto.chunks.popleft()
        if len(data) > max_bytes:
            proto.chunks.appendleft((data[max_bytes:], arrival, lag))
            data = data[:max_bytes]
        proto.buffered -= len(data)
        if proto.read_paused and proto.buffered < _LOW_WATER:
            proto.resume()
        return data, arrival, lag

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


class KernelStream(AsyncioStream):
    """A plain TCP connection read with kernel receive stamps (see the module docstring): the socket is this
    stream's own, written with the loop's sock_sendall. TLS is decrypted over it (harness/capture/tlsstream.py)."""

    def __init__(self, sock: socket.socket, protocol: _Protocol,
                 tap_for_task: typing.Callable[[], ReadTap | None] | None = None) -> None:
        self._sock = sock
        self._protocol = protocol
        self._tap_for_task = tap_for_task
        self._loop = asyncio.get_running_loop()
        self._closed = False

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._closed or self._protocol.error is not None:
            raise httpcore.WriteError("the connection is closed")
        # Send at once, in this task: the request's send time is stamped just before this call, and handing the
        # bytes to another task (wait_for makes one) would send them a loop iteration later, behind every other
        # stream's callbacks. Only what the socket buffer cannot take now waits.
        try:
            sent = self._sock.send(buffer)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc
        if sent >= len(buffer):
            return
        try:
            await asyncio.wait_for(self._loop.sock_sendall(self._sock, memoryview(buffer)[sent:]), timeout)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise httpcore.WriteTimeout(f"could not write for {timeout} s") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._protocol.kernel is not None:
                self._protocol.kernel.close()
            self._sock.close()

    async def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        """TLS decrypted in memory over this stream's stamped reads (harness/capture/tlsstream.py): each
        decrypted read keeps the kernel stamp of the ciphertext that completed its record."""
        from harness.capture.tlsstream import KernelTLSStream

        return await KernelTLSStream.wrap(self, ssl_context, server_hostname, timeout, self._tap_for_task)

    def get_extra_info(self, info: str) -> typing.Any:
        proto = self._protocol
        if info == "is_readable":
            if proto.chunks or proto.eof or self._closed:
                return True
            try:
                return bool(select.select([self._sock], [], [], 0)[0])
            except (OSError, ValueError):
                return True
        if info == "server_addr":
            return self._sock.getpeername() if not self._closed else None
        if info == "client_addr":
            return self._sock.getsockname() if not self._closed else None
        if info == "socket":
            return self._sock
        return None


def _kernel_stamps_possible() -> bool:
    return SO_TIMESTAMPNS is not None and bool(_ANCILLARY) and not _USERSPACE_ONLY


async def _connect_kernel_stamped(ip: str, port: int, timeout: float | None, local_address: str | None,
                                  socket_options: typing.Iterable[typing.Any] | None,
                                  tap_for_task: typing.Callable[[], ReadTap | None] | None) -> KernelStream | None:
    """A connection whose reads carry kernel stamps; None where the option is refused (then the caller falls
    back to the transport path)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        sock.close()
        return None
    try:
        for option in socket_options or ():
            sock.setsockopt(*option)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if local_address:
            sock.bind((local_address, 0))
        await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), timeout)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        sock.close()
        raise httpcore.ConnectTimeout(f"connecting to {ip} port {port} timed out after {timeout} s") from exc
    except OSError as exc:
        sock.close()
        raise httpcore.ConnectError(f"{ip} port {port}: {exc.strerror or exc}") from exc
    except BaseException:
        sock.close()
        raise
    proto = _Protocol()
    if receiver.AVAILABLE:
        _ThreadReader(loop, sock, proto)
    else:
        _KernelReader(loop, sock, proto).resume()
    return KernelStream(sock, proto, tap_for_task)


async def connect_tcp(ip: str, port: int, timeout: float | None,
                      local_address: str | None = None,
                      socket_options: typing.Iterable[typing.Any] | None = None,
                      tap_for_task: typing.Callable[[], ReadTap | None] | None = None) -> AsyncioStream:
    """Connect to an IP address (already validated by the caller); errors become httpcore's exceptions."""
    if _kernel_stamps_possible():
        stream = await _connect_kernel_stamped(ip, port, timeout, local_address, socket_options, tap_for_task)
        if stream is not None:
            return stream
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
