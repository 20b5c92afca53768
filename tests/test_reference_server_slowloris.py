"""The reference server closes connections that are slow to send request headers (slowloris).

Real sockets against real servers: headers trickled a line at a time, a connection that sends nothing, a
second request on a kept-alive connection; and the cases that must survive (headers completed in time, a
stream that lasts longer than the deadline). The deadline is shortened to ~1 s here; the 10 s default is
read from the config.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Iterator

import pytest

from reference_server.config import ServerConfig
from reference_server.embedded import EmbeddedServer
from reference_server.header_timeout import protocol_factory

DEADLINE_S = 1.0


@pytest.fixture(scope="module", params=["h11", "httptools"])
def server(request: pytest.FixtureRequest) -> Iterator[EmbeddedServer]:
    if request.param == "httptools":
        pytest.importorskip("httptools")
    config = ServerConfig(header_timeout_s=DEADLINE_S, ttft_ms=0, gap_ms=0, target_chars=200, min_chunks=2)
    with EmbeddedServer(config, http=request.param) as srv:
        yield srv


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _closed(sock: socket.socket) -> bool:
    """True when the server has closed the connection (EOF or reset), False while it is open."""
    sock.setblocking(False)
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def _trickle_until_closed(sock: socket.socket, lines: Iterator[bytes], pause_s: float,
                          limit_s: float) -> float:
    """Send one header line per `pause_s` (never the blank line that ends the headers) until the server
    closes; the seconds that took (fails past `limit_s`)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        try:
            sock.sendall(next(lines))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
        time.sleep(pause_s)
        if _closed(sock):
            return time.monotonic() - start
    pytest.fail(f"the connection was still open after {limit_s} s of trickled headers")


def _header_lines() -> Iterator[bytes]:
    yield b"GET /health HTTP/1.1\r\n"
    n = 0
    while True:
        n += 1
        yield b"X-Slow-%d: x\r\n" % n


def _read_response(sock: socket.socket) -> bytes:
    """One complete response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(line.lower().split(b":", 1) for line in head.split(b"\r\n")[1:])
    length = int(fields[b"content-length"])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_headers_trickled_past_the_deadline_are_cut_off(server: EmbeddedServer) -> None:
    with _connect(server.port) as sock:
        took = _trickle_until_closed(sock, _header_lines(), pause_s=0.1, limit_s=DEADLINE_S + 3)
    assert DEADLINE_S - 0.2 <= took <= DEADLINE_S + 1.0, took


def test_a_connection_that_sends_nothing_is_closed(server: EmbeddedServer) -> None:
    with _connect(server.port) as sock:
        sock.settimeout(DEADLINE_S + 3)
        start = time.monotonic()
        assert sock.recv(4096) == b""  # no 408 either: nothing was asked
        assert time.monotonic() - start >= DEADLINE_S - 0.2


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(server: EmbeddedServer) -> None:
    with _connect(server.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        # The first byte of the next request stops uvicorn's keep-alive timer; the header deadline still runs.
        took = _trickle_until_closed(sock, _header_lines(), pause_s=0.1, limit_s=DEADLINE_S + 3)
    assert took <= DEADLINE_S + 1.0


def test_slow_headers_completed_in_time_are_answered(server: EmbeddedServer) -> None:
    with _connect(server.port) as sock:
        for line in (b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", b"Accept: */*\r\n", b"\r\n"):
            sock.sendall(line)
            time.sleep(DEADLINE_S / 6)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")


def test_a_stream_longer_than_the_deadline_is_not_cut() -> None:
    config = ServerConfig(header_timeout_s=0.3, ttft_ms=0, gap_ms=50, target_chars=400, min_chunks=20)
    with EmbeddedServer(config) as srv, _connect(srv.port) as sock:
        body = b'{"prompt": "magma", "stream": true}'
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        start = time.monotonic()
        data = b""
        while b"data: [DONE]" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"closed mid-stream after {time.monotonic() - start:.2f} s"
            data += chunk
        assert time.monotonic() - start > 0.6  # the stream really outlasted the deadline


def test_zero_turns_the_deadline_off() -> None:
    with EmbeddedServer(ServerConfig(header_timeout_s=0)) as srv, _connect(srv.port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        time.sleep(0.5)
        assert not _closed(sock)


def test_the_default_deadline_is_10_s_wherever_the_server_starts() -> None:
    from reference_server.cli import add_arguments, config_from

    assert ServerConfig().header_timeout_s == 10.0
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from(parser.parse_args([])).header_timeout_s == 10.0
    assert config_from(parser.parse_args(["--header-timeout", "2.5"])).header_timeout_s == 2.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--header-timeout", "-1"])
    for http in ("auto", "h11"):
        assert protocol_factory(http).keywords == {"header_timeout_s": 10.0}
    # What the embedded server hands uvicorn (the object is built before it starts).
    srv = EmbeddedServer()
    try:
        assert srv._server.config.http.keywords == {"header_timeout_s": 10.0}
    finally:
        srv._sock.close()


def test_serve_command_applies_the_deadline() -> None:
    from tests.test_serve_cli import kill, serve, wait_for_banner

    proc = serve("--port", "0", "--header-timeout", str(DEADLINE_S))
    try:
        port = wait_for_banner(proc)
        with _connect(port) as sock:
            took = _trickle_until_closed(sock, _header_lines(), pause_s=0.1, limit_s=DEADLINE_S + 5)
        assert took <= DEADLINE_S + 1.5
    finally:
        kill(proc)
