"""Shared data model: what the capture records and what every later stage reads.

One clock everywhere: ``time.perf_counter()`` seconds relative to the request start (``t == 0``).
A Capture is plain data that round-trips through JSON, so a run can be re-checked offline.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

CAPTURE_FORMAT = 1

# Why a capture ended. Anything but "eof" means the harness cut it short or never got a stream.
END_REASONS = (
    "eof",              # server closed the body normally
    "deadline",         # total deadline reached
    "idle_timeout",     # no byte for idle_timeout_s
    "max_bytes",        # body larger than the byte cap
    "max_line",         # one line longer than the line cap
    "connect_error",    # could not connect (refused, DNS failure, TLS mismatch...)
    "read_error",       # connection reset / broken chunked encoding / non-HTTP reply
    "protocol_error",   # the reply is not HTTP or is malformed HTTP
    "redirect",         # a 3xx was not followed
    "encoding_refused", # a Content-Encoding we did not ask for (identity requested)
    "blocked_address",  # address policy refused the target; nothing was sent
    "invalid_url",      # the URL cannot be requested at all
    "cancelled",        # the harness dropped the stream on purpose (disconnect probe)
)


@dataclass(frozen=True, slots=True)
class Read:
    """One raw read from the socket, as it arrived."""

    t: float  # seconds since the request was sent (see Capture.rebase_to_request)
    data: bytes


@dataclass(slots=True)
class RequestSpec:
    """Exactly what was (or will be) sent, so it can be replayed with curl."""

    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    dialect: str = "prompt"  # "prompt" | "openai"
    prompt: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["body"] = self.body.decode("utf-8", "replace")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RequestSpec:
        d = dict(d)
        d["body"] = d.get("body", "").encode("utf-8")
        return cls(**d)


# Body cap of one capture, wherever it is made (run, grade, bench, the pytest plugin). The pipeline holds several
# copies of a body at once (reads, the joined body, its events and chunks), so a flood filling a 16 MiB cap peaked
# near 250 MB RSS; 4 MiB still holds ~20,000 OpenAI chunks, far beyond any answer a check needs.
CAPTURE_MAX_BYTES = 4 * 1024 * 1024
# Room in a run's byte budget for the error probes' short replies (a dozen of at most 64 KiB each): the main answer
# and its second prompt can never use it up, and the repeats before the probes leave it (harness/run/robustness.py).
PROBE_RESERVE_BYTES = 1024 * 1024
# Body bytes all the captures of one run keep together (main, second prompt, repeats, probes, robustness streams):
# what a run holds in memory and writes to a capture bundle is bounded by this, however many requests it makes.
# Two whole captures (a main answer and its second prompt can both hit the cap) and the probes' room; a normal run
# uses a few hundred KB of it.
RUN_BUDGET_BYTES = 2 * CAPTURE_MAX_BYTES + PROBE_RESERVE_BYTES


@dataclass(slots=True)
class Limits:
    """Hard caps that end a capture with a recorded reason instead of a hang or unbounded memory."""

    deadline_s: float = 60.0
    idle_timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    max_bytes: int = CAPTURE_MAX_BYTES
    max_line_bytes: int = 1024 * 1024
    max_headers: int = 200
    budget_bytes: int = RUN_BUDGET_BYTES  # all the captures of one run together (see ByteBudget)


class ByteBudget:
    """Body bytes the captures of one run may still keep, shared by all of them (concurrent ones included).

    A capture keeps at most ``min(its own cap, what is left)``; one that the budget stops ends as ``max_bytes``
    saying so. Captures run on one event loop, so the counter needs no lock.
    """

    __slots__ = ("total", "used")

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0

    def left(self) -> int:
        return max(0, self.total - self.used)

    def take(self, n: int) -> None:
        self.used += n

    def give_back(self, n: int) -> None:
        """Bytes no longer held (bench parses a capture into a record and drops it): others may use them."""
        self.used = max(0, self.used - n)


@dataclass(slots=True)
class Capture:
    """Raw evidence of one request/response exchange."""

    request: RequestSpec
    started_at: str = ""  # ISO 8601 wall-clock time of the request start
    status: int | None = None
    http_version: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # in order, names lower-cased
    reads: list[Read] = field(default_factory=list)
    t_request_sent: float | None = None  # the request body handed to the socket (httpcore trace event)
    t_headers: float | None = None  # arrival of the socket read that completed the response headers
    t_first_byte: float | None = None  # arrival of the first body byte (Read times are arrivals too)
    t_end: float = 0.0
    end_reason: str = "eof"
    error: str | None = None  # human-readable detail for any end_reason but eof
    remote_addr: str | None = None  # the IP actually connected to
    redirects: list[str] = field(default_factory=list)  # URLs of the redirect hops followed, in order
    # time.perf_counter() at t == 0: lines up captures made in one process (or one machine, where the clock is
    # CLOCK_MONOTONIC) on a common timeline. Meaningless across machines or reboots.
    clock_origin: float | None = None
    # Where the read times come from: "kernel" (SO_TIMESTAMPNS receive stamps), "userspace" (the event loop's
    # reading of the socket: late by however long the loop was busy), "mixed" (TLS after a kernel-read start).
    clock: str = "userspace"
    read_lag_ms_max: float | None = None  # kernel clock: how late userspace saw a read, at worst

    @property
    def body(self) -> bytes:
        return b"".join(r.data for r in self.reads)

    def __repr__(self) -> str:
        # Not the dataclass's repr of every read: Python 3.11's asyncio.run formats the repr of its main task's
        # result (signal.getsignal on the way out), so a run's result printed megabytes of reads at the end, 40 MB
        # of RSS for a capture at the byte cap.
        return (f"Capture(url={self.request.url!r}, status={self.status!r}, end_reason={self.end_reason!r}, "
                f"reads={len(self.reads)}, bytes={sum(len(r.data) for r in self.reads)})")

    def rebase_to_request(self) -> Capture:
        """Shift every time so that 0 is the moment the request was sent: the one clock a user reads everywhere
        (TTFT, the report's timeline, evidence ``t=``), whatever the connect and TLS set-up took. Idempotent; a
        capture whose request was never sent keeps its capture-start clock."""
        shift = self.t_request_sent
        if not shift:
            return self
        self.reads = [Read(r.t - shift, r.data) for r in self.reads]
        self.t_headers = None if self.t_headers is None else self.t_headers - shift
        self.t_first_byte = None if self.t_first_byte is None else self.t_first_byte - shift
        self.t_end -= shift
        self.t_request_sent = 0.0
        if self.clock_origin is not None:
            self.clock_origin += shift
        return self

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CAPTURE_FORMAT,
            "request": self.request.to_dict(),
            "started_at": self.started_at,
            "status": self.status,
            "http_version": self.http_version,
            "headers": [list(h) for h in self.headers],
            "reads": [{"t": r.t, "b64": base64.b64encode(r.data).decode("ascii")} for r in self.reads],
            "t_request_sent": self.t_request_sent,
            "t_headers": self.t_headers,
            "t_first_byte": self.t_first_byte,
            "t_end": self.t_end,
            "end_reason": self.end_reason,
            "error": self.error,
            "remote_addr": self.remote_addr,
            "redirects": list(self.redirects),
            "clock_origin": self.clock_origin,
            "clock": self.clock,
            "read_lag_ms_max": self.read_lag_ms_max,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Capture:
        return cls(
            request=RequestSpec.from_dict(d["request"]),
            started_at=d.get("started_at", ""),
            status=d.get("status"),
            http_version=d.get("http_version", ""),
            headers=[(k, v) for k, v in d.get("headers", [])],
            reads=[Read(r["t"], base64.b64decode(r["b64"])) for r in d.get("reads", [])],
            t_request_sent=d.get("t_request_sent"),
            t_headers=d.get("t_headers"),
            t_first_byte=d.get("t_first_byte"),
            t_end=d.get("t_end", 0.0),
            end_reason=d.get("end_reason", "eof"),
            error=d.get("error"),
            remote_addr=d.get("remote_addr"),
            redirects=list(d.get("redirects", [])),
            clock_origin=d.get("clock_origin"),
            clock=d.get("clock", "userspace"),
            read_lag_ms_max=d.get("read_lag_ms_max"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Capture:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, slots=True)
class Finding:
    """An oddity a parser noticed. Never silently dropped: checks turn findings into warnings or failures."""

    code: str  # e.g. "cr-line-ending", "no-space-after-colon", "bom", "nul-in-id", "bad-retry",
    #            "unknown-field", "invalid-utf8", "unterminated-final-block", "line-too-long", "invalid-json-line"
    message: str
    offset: int  # byte offset in the body where it was seen
    t: float | None = None
