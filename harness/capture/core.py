"""Capture: the harness's only network I/O. One request, every raw read with its arrival time, and why it ended.

Whatever the endpoint does, :func:`capture` returns a :class:`~harness.model.Capture`; it never raises for the
endpoint's behaviour. Each way of ending maps to one ``end_reason`` (see ``harness.model.END_REASONS``) with a
message in ``error``, and the bytes that arrived before the end are kept.

How each cap is enforced, and why that way:
    deadline       an asyncio timeout around the whole exchange (DNS, connect, headers, body): httpx has no total
                   timeout, and a 1 byte/s trickle never trips a per-read one.
    idle timeout   httpx's read timeout, which is per socket read: no extra timer task per read, so hundreds of
                   concurrent captures stay cheap.
    max bytes /    counted on the raw reads as they arrive; the capture stops reading at the cap, or when the run's
    max line       shared byte budget (``budget``, harness.model.ByteBudget) is used up.
    max headers    h11 refuses a header block over 100 KiB (httpcore's limit) and we count the rest, so 10,000
                   headers end as a protocol_error, not as memory.
    encoding       the request asks for identity and the body is read with ``aiter_raw``, so nothing is ever
                   decompressed; a Content-Encoding the server applied anyway ends the capture as
                   ``encoding_refused`` after its first raw read is kept as evidence (a gzip bomb stays small).
Reads are kept as they arrived, with two exceptions that bound the objects per byte (a sender writing one byte per
TCP segment would otherwise cost a Read object, and later a JSON object, per byte):
    - a read that holds no line break cannot complete an event, so the reads after it join it and the joined read
      takes the time of its last part (the event times stay exact);
    - a read arriving within ``COALESCE_S`` of the read it would join, joins it and takes its time (an event time
      is then early by less than ``COALESCE_S``, far under the timing checks' resolution).
    A joined read holds at most ``MAX_JOINED_BYTES``; past ``MAX_READS`` reads everything joins the last one
    (events that far into a stream are past the parser's event cap).
Redirects are not followed unless asked; each followed hop is re-validated (URL syntax here, address in the
guarded network backend), at most five hops.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from harness.capture.client import _GUARD_MARK, _TASK_POLICY, _TASK_TAP, _classify, _timeouts, make_client
from harness.capture.guard import AddressPolicy, check_url, parse_ip
from harness.model import ByteBudget, Capture, Limits, Read, RequestSpec

MAX_REDIRECTS = 5
# A body in an unrequested Content-Encoding: the first read (at most this much) is kept as evidence, then stop.
ENCODED_PREFIX_BYTES = 64 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers not carried to a different origin when following a redirect (the grader's secrets stay with the target).
_ORIGIN_BOUND_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"})
_LINE_BREAKS = re.compile(rb"[\r\n]")

# Bytes of a reply kept before its headers are parsed: enough to quote a non-HTTP reply.
_HEAD_EXCERPT_BYTES = 256
# A request body this small leaves in one send() (the socket buffer holds it).
_SMALL_BODY = 32 * 1024
# Joining reads (see the module docstring): the time window, the size of one joined read (httpcore's read size, so
# the parser is fed pieces no larger than before) and the number of reads past which everything joins the last.
COALESCE_S = 0.0005
MAX_JOINED_BYTES = 64 * 1024
MAX_READS = 32 * 1024


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


class _Ended(Exception):
    """Raised inside the exchange when a cap ends the capture; carries the reason and message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _Run:
    """The state of one capture while it runs."""

    def __init__(self, spec: RequestSpec, limits: Limits, policy: AddressPolicy | None,
                 follow_redirects: bool, budget: ByteBudget | None = None) -> None:
        self.spec = spec
        self.limits = limits
        self.policy = policy
        self.follow_redirects = follow_redirects
        self.budget = budget  # shared with the run's other captures, or None
        self.cap = Capture(request=spec)
        self.t0 = 0.0
        self.total = 0       # body bytes kept
        self.line_run = 0    # bytes since the last CR or LF, across reads
        self.head = b""      # the first bytes of the reply, until its headers are parsed
        self.arrival: float | None = None  # perf_counter time the latest socket read arrived (from the tap)
        self.kernel_reads = 0  # reads stamped by the kernel (harness/capture/netstream.py), and by userspace
        self.userspace_reads = 0
        self.max_lag = 0.0  # how late userspace saw a kernel-stamped read, at worst (seconds)
        # The read being joined (see the module docstring), its time, and whether it holds a line break.
        self.joined: bytes | bytearray = b""
        self.joined_t = 0.0
        self.joined_eol = False

    def head_note(self) -> str:
        """For messages about a reply whose headers never completed: what it had sent so far."""
        if self.cap.status is not None or not self.head:
            return ""
        kind = "" if self.head.startswith(b"HTTP/"[: len(self.head)]) else " (not HTTP)"
        return f"; the reply so far{kind}: {self.head[:80]!r}"

    def tap(self, data: bytes, arrival: float, lag: float | None = None) -> None:
        """Sees every raw socket read of this capture's connection, with the time it arrived (and, for a kernel
        stamp, how late userspace saw it)."""
        self.arrival = arrival
        if lag is None:
            self.userspace_reads += 1
        else:
            self.kernel_reads += 1
            self.max_lag = max(self.max_lag, lag)
        if self.cap.status is None and len(self.head) < _HEAD_EXCERPT_BYTES:
            self.head += data[: _HEAD_EXCERPT_BYTES - len(self.head)]

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def arrived(self) -> float:
        """When the bytes being handled arrived: the latest socket read's stamp, else the current time.

        httpcore hands body bytes up right after the socket read that carried them, so the latest read is the
        one that brought them; its stamp excludes however long this task waited for its turn on the loop.
        """
        return self.arrival - self.t0 if self.arrival is not None else self.now()

    def end(self, reason: str, message: str | None) -> None:
        self.cap.end_reason = reason
        self.cap.error = message

    async def trace(self, name: str, info: dict[str, Any]) -> None:
        # httpcore's trace events are the closest the client gets to the wire: the body handed to the socket,
        # the header block parsed.
        if name == "http11.send_request_body.started":
            # The body write is one send() for a small body; "complete" fires only after the loop has run
            # other tasks (a checkpoint), late by up to a loop iteration under load, so "started" is closer.
            self.cap.t_request_sent = self.now()
        elif name == "http11.send_request_body.complete" and len(self.spec.body) > _SMALL_BODY:
            self.cap.t_request_sent = self.now()  # a large body may wait for the socket: take its end
        elif name == "http11.receive_response_headers.complete":
            self.cap.t_headers = self.arrived()
        elif name == "connection.connect_tcp.complete":
            # Known before any response: a capture that fails later still names the address it reached.
            stream = info.get("return_value")
            addr = stream.get_extra_info("server_addr") if stream is not None else None
            if addr:
                self.cap.remote_addr = str(addr[0])

    # -- the exchange -------------------------------------------------------------------------------------------

    async def exchange(self, client: httpx.AsyncClient) -> None:
        url, method = self.spec.url, self.spec.method
        headers, body = dict(self.spec.headers), self.spec.body
        for hop in range(MAX_REDIRECTS + 1):
            location = await self.one_request(client, url, method, headers, body)
            if location is None:
                return
            status = self.cap.status
            target = urljoin(url, location)
            if not self.follow_redirects:
                raise _Ended("redirect", f"HTTP {status} redirect to {target} was not followed "
                                         "(redirects are followed only with --follow-redirects)")
            if hop == MAX_REDIRECTS:
                raise _Ended("redirect", f"more than {MAX_REDIRECTS} redirects; the last one pointed to {target}")
            problem = check_url(target)
            if problem is not None:
                raise _Ended("invalid_url", f"HTTP {status} redirect to {target!r} cannot be followed: {problem}")
            if _origin(target) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() not in _ORIGIN_BOUND_HEADERS}
            if status == 303 or (status in (301, 302) and method == "POST"):
                # What browsers and curl -L do: the redirected request becomes a GET without a body.
                method, body = "GET", b""
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
            self.cap.redirects.append(target)
            url = target
            self.reset_response()

    def reset_response(self) -> None:
        cap = self.cap
        cap.status, cap.http_version, cap.headers, cap.reads = None, "", [], []
        cap.t_headers = cap.t_first_byte = None
        self.total = self.line_run = 0
        self.head = b""
        self.joined = b""

    # -- keeping reads --------------------------------------------------------------------------------------------

    def keep(self, chunk: bytes, t: float) -> None:
        """Record one body read that arrived at ``t``, joined to the read before it when that loses no event time
        (or less than COALESCE_S of it): see the module docstring."""
        eol = 10 in chunk or 13 in chunk  # int operands: a memchr each
        joined = self.joined
        if joined and self.joins(len(chunk), t):
            if type(joined) is bytes:  # a second part: amortized appends from here
                self.joined = joined = bytearray(joined)
            joined += chunk
            if not self.joined_eol:  # nothing completed before this part: the joined read is as late as it
                self.joined_t, self.joined_eol = t, eol
            return
        self.flush_reads()
        self.joined, self.joined_t, self.joined_eol = chunk, t, eol

    def joins(self, n: int, t: float) -> bool:
        if len(self.cap.reads) >= MAX_READS - 1:
            return True
        if len(self.joined) + n > MAX_JOINED_BYTES:
            return False
        return not self.joined_eol or t - self.joined_t < COALESCE_S

    def flush_reads(self) -> None:
        """Move the read being joined into the capture (done before the capture is returned)."""
        if self.joined:
            self.cap.reads.append(Read(self.joined_t, bytes(self.joined)))
            self.joined = b""

    async def one_request(self, client: httpx.AsyncClient, url: str, method: str, headers: dict[str, str],
                          body: bytes) -> str | None:
        """Send one request and read its response under the caps; the Location when it is a redirect."""
        try:
            request = client.build_request(method, url, headers=headers, content=body or None,
                                           timeout=_timeouts(self.limits), extensions={"trace": self.trace})
        except (UnicodeError, ValueError, TypeError, httpx.HTTPError) as exc:
            raise _Ended("invalid_url", f"the request cannot be built: {exc} (header values must be ASCII)"
                         ) from exc
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            self.record_head(response)
            location = response.headers.get("location")
            if response.status_code in _REDIRECT_STATUSES and location:
                return location
            await self.read_body(response)
            return None
        finally:
            await response.aclose()

    def record_head(self, response: httpx.Response) -> None:
        cap = self.cap
        if cap.t_headers is None:
            cap.t_headers = self.now()
        cap.status = response.status_code
        cap.http_version = response.http_version
        raw = response.headers.raw
        cap.headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                       for k, v in raw[: self.limits.max_headers]]
        stream = response.extensions.get("network_stream")
        if stream is not None:
            addr = stream.get_extra_info("server_addr")
            if addr:
                cap.remote_addr = str(addr[0])
        if len(raw) > self.limits.max_headers:
            raise _Ended("protocol_error", f"the response has {len(raw)} headers (limit {self.limits.max_headers}); "
                                           f"only the first {self.limits.max_headers} were kept")

    async def read_body(self, response: httpx.Response) -> None:
        limits = self.limits
        encoding = (response.headers.get("content-encoding") or "").strip()
        foreign = encoding.lower() not in ("", "identity")
        byte_cap = min(limits.max_bytes, ENCODED_PREFIX_BYTES) if foreign else limits.max_bytes
        budget = self.budget
        async for chunk in response.aiter_raw():
            t = self.arrived()
            if not chunk:
                continue
            if self.cap.t_first_byte is None:
                self.cap.t_first_byte = t
            room = byte_cap - self.total
            if budget is not None:
                room = min(room, budget.left())
            if len(chunk) > room:
                self.keep_counted(chunk[:room], t)
                if foreign:
                    break
                raise _Ended("max_bytes", self.cut_message(byte_cap))
            self.keep_counted(chunk, t)
            if foreign:
                break  # the first read is the evidence; a compressed stream is not worth waiting for
            longest = self.track_lines(chunk)
            if longest > limits.max_line_bytes:
                raise _Ended("max_line", f"a line of over {limits.max_line_bytes} bytes without CR or LF "
                                         f"(at least {longest} so far); the capture stopped reading")
        if foreign:
            raise _Ended("encoding_refused", f"the server sent Content-Encoding: {encoding} although the request "
                                             f"asked for identity; the body was not decoded ({self.total} raw "
                                             "bytes kept)")

    def keep_counted(self, chunk: bytes, t: float) -> None:
        if chunk:
            self.keep(chunk, t)
            self.total += len(chunk)
            if self.budget is not None:
                self.budget.take(len(chunk))

    def cut_message(self, byte_cap: int) -> str:
        """Why the body was cut: this capture's cap, or the byte budget shared by the run's captures."""
        if self.total < byte_cap and self.budget is not None:
            return (f"the run's byte budget ({self.budget.total} bytes over all its requests) was used up; the "
                    f"first {self.total} bytes of this body were kept")
        return f"the body exceeded {self.limits.max_bytes} bytes; the first {self.total} were kept"

    def track_lines(self, chunk: bytes) -> int:
        """Update the run of bytes since the last line break; return the longest run this chunk is part of."""
        n = len(chunk)
        last = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if last < 0:
            self.line_run += n
            return self.line_run
        if self.line_run + n <= self.limits.max_line_bytes:  # cannot be over: skip the scan
            self.line_run = n - last - 1
            return 0
        pieces = _LINE_BREAKS.split(chunk)
        longest = max(self.line_run + len(pieces[0]), max(len(p) for p in pieces))
        self.line_run = len(pieces[-1])
        return longest


async def _run_with_timeout(coro: Any, seconds: float) -> None:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            await coro
    else:  # pragma: no cover - Python 3.10
        await asyncio.wait_for(coro, seconds)


async def capture(spec: RequestSpec, limits: Limits | None = None, *, policy: AddressPolicy | None = None,
                  follow_redirects: bool = False, client: httpx.AsyncClient | None = None,
                  cancel_after_s: float | None = None, budget: ByteBudget | None = None) -> Capture:
    """Send ``spec`` and record the response under ``limits``. Never raises for anything the endpoint does.

    ``policy``: the address policy (None admits any address). ``client``: a shared client from
    :func:`make_client`, for many concurrent captures on one loop; a client without the guard is not used
    when a policy is given (a fresh guarded client is used instead). ``cancel_after_s``: drop the stream on
    purpose after that many seconds (``end_reason="cancelled"``), as the disconnect probe does. ``budget``: the
    byte budget shared by the captures of one run (the body then keeps at most what is left of it).
    """
    limits = limits or Limits()
    run = _Run(spec, limits, policy, follow_redirects, budget)
    cap = run.cap
    cap.started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    run.t0 = cap.clock_origin = time.perf_counter()
    try:
        problem = check_url(spec.url)
        if problem is not None:
            run.end("invalid_url", f"{problem}: {spec.url!r}")
            return cap
        literal = parse_ip(urlsplit(spec.url).hostname or "")
        if literal is not None and policy is not None:
            refused = policy.check_ip(literal)
            if refused is not None:  # known before any socket exists; the backend would refuse it too
                run.end("blocked_address", f"refused to connect to {literal}: {refused}")
                return cap
        own_client = client is None or (policy is not None and not getattr(client, _GUARD_MARK, False))
        use = make_client(policy, limits, max_connections=4) if own_client else client
        assert use is not None
        cut, cut_reason = limits.deadline_s, "deadline"
        if cancel_after_s is not None and cancel_after_s < limits.deadline_s:
            cut, cut_reason = cancel_after_s, "cancelled"
        token = _TASK_POLICY.set(policy)
        tap_token = _TASK_TAP.set(run.tap)
        try:
            await _run_with_timeout(_guarded_exchange(run, use), max(0.0, cut - run.now()))
        except asyncio.TimeoutError:
            if cut_reason == "cancelled":
                run.end("cancelled", f"the harness dropped the stream on purpose after {cut:g} s")
            else:
                where = "in the body" if cap.status is not None else "before the response headers were complete"
                run.end("deadline", f"the run's deadline was reached after {cut:g} s {where} "
                                    f"({run.total} body bytes received){run.head_note()}")
        finally:
            _TASK_POLICY.reset(token)
            _TASK_TAP.reset(tap_token)
            if own_client:
                await use.aclose()
    finally:
        run.flush_reads()
        cap.t_end = run.now()
        cap.clock = "kernel" if run.kernel_reads and not run.userspace_reads else (
            "mixed" if run.kernel_reads else "userspace")
        cap.read_lag_ms_max = round(run.max_lag * 1000.0, 3) if run.kernel_reads else None
    return cap.rebase_to_request()


async def _guarded_exchange(run: _Run, client: httpx.AsyncClient) -> None:
    try:
        await run.exchange(client)
    except _Ended as ended:
        run.end(ended.reason, ended.message)
    except Exception as exc:  # noqa: BLE001 - every endpoint failure becomes an end_reason, by design
        run.end(*_classify(exc, run))


def capture_sync(spec: RequestSpec, limits: Limits | None = None, **kwargs: Any) -> Capture:
    """:func:`capture` for synchronous callers; runs in a helper thread when an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(capture(spec, limits, **kwargs))
    box: list[Capture] = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(capture(spec, limits, **kwargs))))
    thread.start()
    thread.join()
    return box[0]
