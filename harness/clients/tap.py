"""In a client's subprocess: record the bytes the client received, and keep it to the run's checked address.

The SDKs decode the stream their own way; the check compares their text with what the harness decodes from the
*same bytes*, so a model that answers each request differently is still judged fairly. ``TapTransport`` sits
under the SDK's httpx client and records the status, headers and every body read (with its arrival time)
before any content decoding, up to a byte cap. ``pin_address`` makes every name lookup in the process answer
only the endpoint's host, with the IP the main request connected to (already checked by the run's address
policy): a client cannot be redirected or resolved anywhere else."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx


class Recorder:
    """What one exchange brought in, bounded by ``cap`` body bytes. Times are seconds since the request began.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.requests = 0
        self.t0: float | None = None
        self.t_sent: float | None = None
        self.status: int | None = None
        self.headers: list[list[str]] = []
        self.reads: list[tuple[float, bytes]] = []
        self.size = 0
        self.truncated = False
        self.ended = False

    def begin(self) -> None:
        """A new request: the last one is what the client read (a redirect or retry replaces the one before).
        """
        self.requests += 1
        self.t0 = time.perf_counter()
        self.t_sent = self.status = None
        self.headers, self.reads, self.size, self.truncated, self.ended = [], [], 0, False, False

    def now(self) -> float:
        return time.perf_counter() - (self.t0 or time.perf_counter())

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: the moment the request body was handed to the socket is the harness's t = 0.
        """
        if name.endswith("send_request_body.complete"):
            self.t_sent = self.now()

    def add(self, data: bytes) -> None:
        if not data:
            return
        room = self.cap - self.size
        if room <= 0:
            self.truncated = True
            return
        if len(data) > room:
            data, self.truncated = data[:room], True
        self.size += len(data)
        self.reads.append((self.now(), bytes(data)))

    def to_dict(self) -> dict[str, Any] | None:
        if self.t0 is None:
            return None
        return {"status": self.status, "headers": self.headers, "t_request_sent": self.t_sent,
                "reads": [[t, base64.b64encode(d).decode("ascii")] for t, d in self.reads],
                "truncated": self.truncated, "ended": self.ended, "t_end": self.now(),
                "requests": self.requests}


def _classes(mod: Any) -> tuple[type, type]:
    """The tapping stream and transport for one httpx flavour: ``httpx`` or ``httpx2`` (the fork the newer
    openai and anthropic SDKs ship with; their classes are not each other's, so each SDK gets its own)."""

    class TapStream(mod.SyncByteStream):
        def __init__(self, inner: Any, recorder: Recorder) -> None:
            self._inner, self._recorder = inner, recorder

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._inner:
                self._recorder.add(chunk)
                yield chunk
            self._recorder.ended = True

        def close(self) -> None:
            self._inner.close()

    class TapTransport(mod.BaseTransport):
        """Records what the wrapped transport receives (no proxies from the environment)."""

        def __init__(self, recorder: Recorder) -> None:
            self._inner = mod.HTTPTransport(trust_env=False)
            self.recorder = recorder

        def handle_request(self, request: Any) -> Any:
            self.recorder.begin()
            request.extensions = {**request.extensions, "trace": self.recorder.trace}
            response = self._inner.handle_request(request)
            self.recorder.status = response.status_code
            self.recorder.headers = [[k.decode("latin-1").lower(), v.decode("latin-1")]
                                     for k, v in response.headers.raw]
            return mod.Response(response.status_code, headers=response.headers,
                                stream=TapStream(response.stream, self.recorder),
                                extensions=response.extensions)

        def close(self) -> None:
            self._inner.close()

    return TapStream, TapTransport


def transport(recorder: Recorder, mod: Any = httpx) -> Any:
    """A tapping transport of ``mod``'s flavour."""
    return _classes(mod)[1](recorder)


def http_client(recorder: Recorder, *, timeout: float, follow_redirects: bool, mod: Any = httpx) -> Any:
    """The client a Python SDK is given: tapped, bounded in time, no environment proxies."""
    return mod.Client(transport=transport(recorder, mod), timeout=mod.Timeout(timeout),
                      follow_redirects=follow_redirects, trust_env=False)


def pin_address(host: str, ip: str) -> None:
    """Make ``host`` (and ``ip`` itself) the only name this process can resolve, to ``ip``."""
    real = socket.getaddrinfo
    wanted = {host.strip("[]").lower(), ip}

    def pinned(name: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
        if text.strip("[]").lower() in wanted:
            return real(ip, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, f"streamconform: this client may reach only {host} ({ip}), "
                                                 f"not {text}")

    socket.getaddrinfo = pinned
