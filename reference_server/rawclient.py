"""A minimal raw HTTP reader and SSE splitter for the reference server's own tests and benchmark.

Deliberately independent of `harness/` (the harness is what the reference server is used to test): it records
the bytes exactly as read, with their arrival times, and splits events by the WHATWG rules in a few lines.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def loopback_bypasses_proxies() -> None:
    """Add the loopback hosts to NO_PROXY (both spellings), keeping what is there.

    The tests and benchmarks talk to servers on 127.0.0.1 with plain httpx / openai clients, which honour
    HTTP(S)_PROXY: on a machine with a proxy set, those requests would go to the proxy and fail. (The harness's
    own capture never uses environment proxies.) Child processes inherit the setting.
    """
    import os

    for name in ("NO_PROXY", "no_proxy"):
        present = [h.strip() for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join(present + [h for h in LOOPBACK_HOSTS if h not in present])


@dataclass
class RawResponse:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    reads: list[tuple[float, bytes]] = field(default_factory=list)
    """(seconds since the request was sent, bytes) for every read from the socket, body only."""
    error: str | None = None
    """Why reading stopped early: a transport error, or "max_bytes" / "max_time" when a cap was reached."""
    elapsed: float = 0.0

    @property
    def body(self) -> bytes:
        return b"".join(b for _, b in self.reads)

    def events(self) -> list[dict[str, str]]:
        return sse_events(self.body.decode("utf-8", "replace"))

    def data(self) -> list[str]:
        return [e["data"] for e in self.events() if "data" in e]

    def chunks(self) -> list[dict]:
        return [json.loads(d) for d in self.data() if d != "[DONE]"]

    def content(self) -> str:
        return "".join(chunk_content(c) for c in self.chunks())


def chunk_content(chunk: dict) -> str:
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        return delta.get("content") or choice.get("text") or ""
    return ""


_LINE = re.compile(r"\r\n|\r|\n")


def sse_events(text: str) -> list[dict[str, str]]:
    """Dispatched events as {field: value} (data lines joined with LF); comments kept under ":" for inspection."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    data: list[str] = []
    lines = _LINE.split(text)
    complete = lines[:-1]  # the last element is an unterminated line (or ""), never dispatched
    for line in complete:
        if line == "":
            if data:
                current["data"] = "\n".join(data)
                events.append(current)
            current, data = {}, []
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "":
            current[":"] = current.get(":", "") + value
        elif name == "data":
            data.append(value)
        else:
            current[name] = value
    return events


def post_raw(url: str, body: Any = None, *, content: bytes | None = None, headers: dict[str, str] | None = None,
             method: str = "POST", max_bytes: int = 50_000_000, max_time: float = 30.0,
             read_timeout: float = 10.0) -> RawResponse:
    """Send one request and read the raw body (no decompression) until EOF, a cap, or an error."""
    out = RawResponse()
    h = {"accept-encoding": "identity", **(headers or {})}
    if body is not None and content is None:
        content = json.dumps(body).encode()
        h.setdefault("content-type", "application/json")
    t0 = time.perf_counter()
    try:
        with httpx.Client(timeout=httpx.Timeout(10.0, read=read_timeout)) as client:
            with client.stream(method, url, content=content, headers=h) as response:
                out.status = response.status_code
                out.headers = {k.lower(): v for k, v in response.headers.items()}
                size = 0
                for piece in response.iter_raw():
                    out.reads.append((time.perf_counter() - t0, piece))
                    size += len(piece)
                    if size >= max_bytes:
                        out.error = "max_bytes"
                        break
                    if time.perf_counter() - t0 >= max_time:
                        out.error = "max_time"
                        break
    except httpx.HTTPError as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.elapsed = time.perf_counter() - t0
    return out
