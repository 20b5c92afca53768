"""The reference server inside the current process, on a free loopback port, in a background thread.

Used by `streamconform run` with no URL, the pytest plugin, the tests and the benchmarks: starting takes a few tens
of milliseconds because nothing is spawned; the socket is bound before uvicorn starts, so the port is known at
once and no other process can take it in between. `stop()` shuts uvicorn down and joins the thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from reference_server.app import create_app
from reference_server.config import ServerConfig
from reference_server.header_timeout import protocol_factory

ENDPOINT_PATH = "/v1/chat/completions"


class EmbeddedServer:
    """``with EmbeddedServer(ServerConfig(...)) as srv: srv.endpoint`` — a real uvicorn on 127.0.0.1:<free port>."""

    def __init__(self, config: ServerConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 start_timeout_s: float = 10.0, http: str = "auto"):
        self.config = config or ServerConfig()
        self.host = host
        self.app = create_app(self.config)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto named as uvicorn's own bind does: asyncio sets TCP_NODELAY on accepted connections only
        # when the listening socket says IPPROTO_TCP; with 0, Nagle held each response's body behind its
        # headers for the client's delayed ACK (~40 ms per request on a kept-alive connection).
        self._sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._start_timeout_s = start_timeout_s
        self._server = uvicorn.Server(uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1,
            backlog=4096, http=protocol_factory(http, self.config.header_timeout_s),
        ))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.url + ENDPOINT_PATH

    def start(self) -> EmbeddedServer:
        self._thread = threading.Thread(target=self._serve, name=f"reference-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the embedded reference server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the embedded reference server did not start in time")
            time.sleep(0.005)
        return self

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported to the starting thread, which raises it
            self._error = exc
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    def call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run `fn()` on the server's event loop and return its result (for tests that inspect live state)."""
        assert self.loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=3.0)
            if self._thread.is_alive():  # open streams outlived the graceful period: cut them
                self._server.force_exit = True
                self._thread.join(timeout=5.0)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now (for child processes that bind it themselves; a small race is accepted there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
