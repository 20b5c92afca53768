"""Small purpose-built servers that misbehave on purpose, for testing that the harness cannot be hung or flooded.

Each server speaks raw bytes over asyncio streams (no HTTP framework would let us send a broken chunked encoding
or 10,000 headers), runs its own event loop in a thread, listens on a free 127.0.0.1 port, and is a context
manager::

    with hostile_server("silence") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), Limits(idle_timeout_s=1))

``srv.accepted`` counts accepted connections (to prove that a blocked address made none). The behaviours are
listed in ``BEHAVIOURS`` (and ``FACTORIES``, for those that keep state per server); :class:`HostileServer` takes any
``async handler(reader, writer)`` as well. :class:`ServedElsewhere` runs named servers in a process of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Connection: close\r\n\r\n")
# For the well-behaved parts of the small servers written in tests: one OpenAI-style content chunk (``% text``),
# the closing stop chunk and [DONE], and a relevant sentence to fill the content with.
OPENAI_CHUNK = 'data: {"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n'
OPENAI_STOP = 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
VOLCANO_TEXT = "Volcanoes form where molten rock rises through the crust and erupts at the surface. "
_BLOCK = 64 * 1024


class HostileServer:
    """Serves ``handler`` for every connection on 127.0.0.1:<free port> from a background thread."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context  # serve TLS (https://) with this context
        self.port = 0
        self.accepted = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/stream"

    def __enter__(self) -> HostileServer:
        self._thread = threading.Thread(target=self._serve, name="hostile-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
        # Let the aborted handlers notice and finish before the loop goes away.
        await asyncio.sleep(0.05)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        try:
            await self.handler(reader, writer)
            # Finished on purpose: flush what is still buffered (abort would drop it), then close.
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)
        except NotHTTPRequest:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except (ConnectionError, asyncio.CancelledError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                OSError):
            pass  # the client went away: expected when the harness cuts a capture
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


class NotHTTPRequest(Exception):
    """The client sent something that is not an HTTP/1 request (a TLS ClientHello, say)."""


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """Read one request head and its Content-Length body; returns the head.

    Like a real plain-HTTP server, a request that does not start like HTTP/1 gets a 400 and a close
    (that is what an https:// URL pointed at this server produces).
    """
    first = await reader.read(1)
    if not first.isalpha():
        raise NotHTTPRequest(first)
    head = first + await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    if length:
        await reader.readexactly(length)
    return head


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one request (head and body); returns its request line."""
    return (await read_head(reader)).split(b"\r\n", 1)[0]


async def _forever() -> None:
    await asyncio.Event().wait()


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write and drain, raising once the client has gone (drain alone does not on a closing transport)."""
    if writer.transport.is_closing():
        raise ConnectionResetError("client went away")
    writer.write(data)
    await writer.drain()


# -- behaviours ------------------------------------------------------------------------------------------------

async def ok_sse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, events: int = 5,
                 gap_s: float = 0.0, ttft_s: float = 0.0) -> None:
    """A well-behaved SSE stream: ``events`` data events then ``[DONE]``, close-delimited."""
    await read_request(reader)
    writer.write(SSE_HEAD)
    await writer.drain()
    await asyncio.sleep(ttft_s)
    for i in range(events):
        if i:
            await asyncio.sleep(gap_s)
        await send(writer, b'data: {"content": "token %d "}\n\n' % i)
    writer.write(b"data: [DONE]\n\n")
    await writer.drain()


async def echo_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers with the request head as the body (to see what the harness really sent), setting a cookie."""
    head = await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: session=secret123; Path=/\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(head), head))
    await writer.drain()
    with contextlib.suppress(Exception):  # keep-alive: serve the next request on this connection too
        await echo_request(reader, writer)


async def silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Headers, then nothing, forever."""
    await read_request(reader)
    writer.write(SSE_HEAD)
    await writer.drain()
    await _forever()


async def no_response(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, read the request, never answer."""
    await read_request(reader)
    await _forever()


async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, pause_s: float = 0.0) -> None:
    """Well-formed SSE events, never ending: as fast as the client reads, or one every ``pause_s``."""
    await read_request(reader)
    writer.write(SSE_HEAD)
    block = b'data: {"content": "more "}\n\n' * (1 if pause_s else 2000)
    while True:
        await send(writer, block)
        if pause_s:
            await asyncio.sleep(pause_s)


async def huge_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, size: int = 128 * 1024 * 1024
                    ) -> None:
    """One data line of ``size`` bytes (128 MiB by default) with no newline, generated on the fly."""
    await read_request(reader)
    writer.write(SSE_HEAD + b"data: ")
    block = b"a" * _BLOCK
    for _ in range(size // _BLOCK):
        await send(writer, block)
    writer.write(block[: size % _BLOCK] + b"\n\n")
    await writer.drain()


@functools.cache
def bomb(kind: str, size: int = 256 * 1024 * 1024) -> bytes:
    """``size`` zero bytes compressed (about a thousandth of it): gzip or raw-zlib deflate."""
    wbits = {"gzip": 31, "deflate": 15}[kind]
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(size // len(zeros))]
    parts.append(packer.flush())
    return b"".join(parts)


async def compression_bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, kind: str = "gzip"
                           ) -> None:
    """A small body that inflates to 256 MiB, sent with Content-Encoding although identity was asked for."""
    await read_request(reader)
    body = bomb(kind)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: %s\r\n"
                 b"Content-Length: %d\r\n\r\n" % (kind.encode(), len(body)))
    writer.write(body)
    await writer.drain()


async def unasked_encoding(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, name: str = "br"
                           ) -> None:
    """Opaque bytes labelled with a Content-Encoding (brotli by default): the harness must not try to decode them,
    so no compression library is needed to prove it refuses."""
    await read_request(reader)
    body = bytes(range(256)) * 64
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: %s\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (name.encode(), len(body), body))
    await writer.drain()


async def invalid_utf8(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """SSE events whose data holds bytes that are not UTF-8, then a clean end."""
    await read_request(reader)
    writer.write(SSE_HEAD + b'data: {"content": "caf\xe9 \xff\xfe"}\n\n' + b"data: \xc3\x28\n\ndata: [DONE]\n\n")
    await writer.drain()


async def reset_mid_event(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One full event, half of the next, then a TCP reset (SO_LINGER 0)."""
    await read_request(reader)
    writer.write(SSE_HEAD + b'data: {"content": "first"}\n\ndata: {"content": "sec')
    await writer.drain()
    await asyncio.sleep(0.2)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def broken_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A chunked body whose second chunk-size line is not hex."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"1b\r\ndata: {\"content\": \"ok\"}\n\n\r\nZZ-not-hex\r\nxxxx\r\n")
    await writer.drain()
    await _forever()


async def redirect_loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every request is answered with a 307 to the next of an endless chain of paths."""
    line = await read_request(reader)
    path = line.split(b" ")[1] if line.count(b" ") >= 2 else b"/"
    hop = path.count(b"/again")
    writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: %s/again\r\nContent-Length: 0\r\n\r\n"
                 % (b"/stream" + b"/again" * hop))
    await writer.drain()
    await _forever()


async def redirect_to(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, location: str) -> None:
    """A 302 to ``location``."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                 % location.encode())
    await writer.drain()


async def many_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: int = 10_000
                       ) -> None:
    """A response head with ``count`` headers."""
    await read_request(reader)
    head = b"".join(b"X-Flood-%d: %d\r\n" % (i, i) for i in range(count))
    await send(writer, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + head
               + b"Connection: close\r\n\r\ndata: [DONE]\n\n")


async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, interval_s: float = 1.0
                    ) -> None:
    """The whole response, status line included, one byte every ``interval_s``."""
    await read_request(reader)
    payload = SSE_HEAD + b'data: {"content": "slow"}\n\n' * 1000
    for i in range(len(payload)):
        await send(writer, payload[i:i + 1])
        await asyncio.sleep(interval_s)


async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What sshd does when spoken HTTP to: its banner, a complaint, and a close."""
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    # Take the whole request before hanging up: closing with unread bytes makes the kernel send a reset, which can
    # reach the client before the banner does (seen on a loaded machine) and the case would test a reset instead.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(read_request(reader), 1.0)
    writer.write(b"Protocol mismatch.\r\n")
    await writer.drain()


async def silent_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A non-HTTP banner and then silence (a service waiting for its own protocol)."""
    writer.write(b"220 mail.example ESMTP ready\r\n")
    await writer.drain()
    await _forever()


async def garbage_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A complete header block whose status line is not HTTP."""
    await read_request(reader)
    writer.write(b"HELLO THERE\r\nfoo: bar\r\n\r\nsome body")
    await writer.drain()
    await _forever()


async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, unit: bytes = b"data:x\n\n",
                per_write: int = 8192) -> None:
    """A 200 event stream, then ``unit`` repeated forever (``per_write`` of them in each write), as fast as the
    client reads: a flood of tiny lines or events that costs the sender nothing."""
    await read_request(reader)
    writer.write(SSE_HEAD)
    block = unit * per_write
    while True:
        await send(writer, block)


async def byte_drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, byte: bytes = b"\n") -> None:
    """A 200 event stream, then one byte per write (a TCP segment each: asyncio sets TCP_NODELAY), forever: the
    most reads a sender can make the harness handle per byte."""
    await read_request(reader)
    await send(writer, SSE_HEAD)
    while True:
        await send(writer, byte)


class ValidThenFlood:
    """Answers the first ``valid`` requests with a short valid stream (so the run goes on to its repeats, probes
    and robustness streams), and every later one with a flood of tiny events."""

    def __init__(self, valid: int = 2, unit: bytes = b"data:x\n\n") -> None:
        self.valid = valid
        self.unit = unit
        self.requests = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        if self.requests > self.valid:
            await flood(reader, writer, unit=self.unit)
            return
        await read_request(reader)
        body = "".join(OPENAI_CHUNK % (word + " ") for word in VOLCANO_TEXT.split()) + OPENAI_STOP
        writer.write(SSE_HEAD + body.encode())
        await writer.drain()


async def close_without_response(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request and hang up."""
    await read_request(reader)


BEHAVIOURS: dict[str, Handler] = {
    "ok": ok_sse,
    "echo": echo_request,
    "silence": silence,
    "no-response": no_response,
    "endless": endless,
    "huge-line": huge_line,
    "gzip-bomb": functools.partial(compression_bomb, kind="gzip"),
    "deflate-bomb": functools.partial(compression_bomb, kind="deflate"),
    "brotli-labelled": unasked_encoding,
    "invalid-utf8": invalid_utf8,
    "reset": reset_mid_event,
    "broken-chunked": broken_chunked,
    "redirect-loop": redirect_loop,
    "redirect-to": redirect_to,
    "many-headers": many_headers,
    "slowloris": slowloris,
    "not-http": not_http,
    "silent-banner": silent_banner,
    "garbage-head": garbage_head,
    "hang-up": close_without_response,
    "id-flood": functools.partial(flood, unit=b"id:x\n"),
    "event-flood": flood,
    "byte-drip": byte_drip,
}


# Behaviours that count requests: a fresh handler per server, built with the server's options.
FACTORIES: dict[str, Callable[..., Handler]] = {
    "valid-then-flood": ValidThenFlood,
}


def hostile_server(behaviour: str | Handler, *, tls: ssl.SSLContext | None = None, **options: object
                   ) -> HostileServer:
    """A server for a named behaviour (see ``BEHAVIOURS`` and ``FACTORIES``) or a handler; ``options`` go to the
    handler.

    ``tls``: a server-side SSL context to serve https (see :func:`self_signed`)."""
    if isinstance(behaviour, str) and behaviour in FACTORIES:
        return HostileServer(FACTORIES[behaviour](**options), ssl_context=tls)  # type: ignore[arg-type]
    handler = BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour
    if behaviour in ("gzip-bomb", "deflate-bomb"):
        bomb(str(behaviour).split("-")[0])  # build it now: compressing 256 MiB must not count as server silence
    if options:
        handler = functools.partial(handler, **options)
    return HostileServer(handler, ssl_context=tls)


def _serve_named(conn: Any, names: list[str]) -> None:
    """Child process of :class:`ServedElsewhere`: start the servers, send their URLs, serve until told to stop."""
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(hostile_server(name)) for name in names]
        conn.send([srv.url for srv in servers])
        conn.recv()


class ServedElsewhere:
    """Named hostile servers in a spawned process of their own: a flooding server's Python work then shares a GIL
    with neither the harness being measured nor a well-behaved server graded beside it.

        with ServedElsewhere(["id-flood", "byte-drip"]) as urls: ...
    """

    def __init__(self, names: list[str]) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_named, args=(child, list(names)), daemon=True)

    def __enter__(self) -> list[str]:
        self._proc.start()
        if not self._conn.poll(30):
            self._proc.kill()
            raise RuntimeError("the hostile servers' process did not start")
        return self._conn.recv()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)


def self_signed(directory: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a certificate valid for localhost and 127.0.0.1,
    made with the openssl command in ``directory``."""
    import os
    import subprocess

    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=cert)
    return server, client
