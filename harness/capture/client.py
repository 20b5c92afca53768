"""The httpx client every capture goes through: each connection passes the address policy (the guarded
network backend), no cookies, no environment proxies or .netrc, no automatic redirects, identity encoding; its
connections are spread over small pools (shards). ``make_client`` builds one to share between captures;
``harness.capture.core.capture`` builds its own when given none. ``_classify`` says what an exception from an
exchange means for the capture (its ``end_reason`` and message).
"""

from __future__ import annotations

import contextvars
import http.cookiejar
import ssl
import threading
from typing import Any

import httpx

from harness import __version__
from harness.capture.guard import AddressPolicy, GuardedBackend, blocked_reason
from harness.model import Limits

_GUARD_MARK = "_streamconform_guarded"
# httpcore's pool (1.0.x) does work quadratic in its connections on every request start and end: with hundreds
# of keep-alive connections in one pool, a burst of stream ends stalls the loop for hundreds of ms, which shows
# up as fake inter-token gaps. So a shared client spreads its connections over small pools (shards).
_SHARD_CONNECTIONS = 16

# The policy of the capture running in this task: a shared client's network backend applies it on connect.
_TASK_POLICY: contextvars.ContextVar[AddressPolicy | None] = contextvars.ContextVar("streamconform_policy",
                                                                                  default=None)
# The running capture's view of raw socket reads (to quote a reply that is not HTTP in the error message).
_TASK_TAP: contextvars.ContextVar[Any] = contextvars.ContextVar("streamconform_tap", default=None)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """A cookie policy that accepts none: one submission's cookies must never reach another (or the grader's)."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


def make_client(*args: Any, policy: AddressPolicy | None = None, limits: Limits | None = None,
                max_connections: int = 512, ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through the address policy; share it between captures.

    Accepts ``make_client(policy, limits)`` or ``make_client(limits)`` positionally (or keywords). ``policy=None``
    admits any address (local testing, benchmarks); a capture given its own policy applies it too, on top.
    No cookie jar, no environment proxies or .netrc (``trust_env=False``), no automatic redirects.
    ``ssl_context`` replaces the default verifying TLS context (tests use it to trust their own CA).
    """
    for arg in args:
        if isinstance(arg, AddressPolicy):
            policy = arg
        elif isinstance(arg, Limits):
            limits = arg
        elif arg is not None:
            raise TypeError(f"make_client() takes an AddressPolicy and/or Limits, not {type(arg).__name__}")
    limits = limits or Limits()
    backend = GuardedBackend(policy, policy_for_task=_TASK_POLICY.get, tap_for_task=_TASK_TAP.get)
    shards = max(1, -(-max_connections // _SHARD_CONNECTIONS))
    per_shard = -(-max_connections // shards)
    context = ssl_context or _ssl_context()
    transport = _ShardedTransport([_guarded_transport(backend, per_shard, context) for _ in range(shards)])
    client = httpx.AsyncClient(
        transport=transport, trust_env=False, follow_redirects=False,
        cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
        timeout=_timeouts(limits),
        headers={"User-Agent": f"streamconform/{__version__}", "Accept-Encoding": "identity"})
    setattr(client, _GUARD_MARK, True)
    return client


_SSL_CONTEXT: ssl.SSLContext | None = None
_SSL_LOCK = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs ~0.1 s of CPU, too much per capture."""
    global _SSL_CONTEXT
    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            _SSL_CONTEXT = httpx.create_ssl_context(verify=True, trust_env=False)
        return _SSL_CONTEXT


def _guarded_transport(backend: GuardedBackend, max_connections: int, context: ssl.SSLContext
                       ) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(
        verify=context, trust_env=False, retries=0,
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                            keepalive_expiry=5.0))
    pool = transport._pool  # httpx 0.28 has no public hook for the network backend; httpcore's pool does
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpcore version has no network backend hook; the address guard cannot apply")
    pool._network_backend = backend
    return transport


class _ShardedTransport(httpx.AsyncBaseTransport):
    """Several small connection pools behind one transport; each request goes to the least busy one.

    Ties go to the first shard, so sequential requests keep reusing one keep-alive connection.
    """

    def __init__(self, shards: list[httpx.AsyncHTTPTransport]) -> None:
        self._shards = shards

    @staticmethod
    def _busy(shard: httpx.AsyncHTTPTransport) -> int:
        return len(getattr(shard._pool, "_requests", ()))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = self._shards[0] if len(self._shards) == 1 else min(self._shards, key=self._busy)
        return await shard.handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def _timeouts(limits: Limits) -> httpx.Timeout:
    return httpx.Timeout(connect=limits.connect_timeout_s, read=limits.idle_timeout_s,
                         write=limits.idle_timeout_s, pool=limits.deadline_s)


def _classify(exc: BaseException, run: Any) -> tuple[str, str]:
    """Turn an exception from the exchange into (end_reason, message). One place, as h11 does at its boundary."""
    limits = run.limits
    got_head = run.cap.status is not None
    detail = str(exc) or type(exc).__name__
    blocked = blocked_reason(exc)
    if blocked is not None:
        return "blocked_address", blocked
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect_error", f"connecting timed out after {limits.connect_timeout_s:g} s: {detail}"
    if isinstance(exc, httpx.PoolTimeout):
        return "connect_error", f"no free connection in the client's pool within {limits.deadline_s:g} s"
    if isinstance(exc, httpx.ConnectError):
        lowered = detail.lower()
        if "ssl" in lowered or "tls" in lowered or "certificate" in lowered:
            return "connect_error", (f"TLS handshake failed: {detail} (an https:// URL pointing at a plain-HTTP "
                                     "server fails this way)")
        return "connect_error", f"could not connect: {detail}"
    if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout)):
        where = "in the body" if got_head else "before the response headers"
        return "idle_timeout", f"no byte for {limits.idle_timeout_s:g} s {where}{run.head_note()}"
    if isinstance(exc, httpx.RemoteProtocolError):
        if not got_head and run.head and not run.head.startswith(b"HTTP/"):
            return "protocol_error", f"the reply is not HTTP: it began {run.head[:80]!r} ({detail})"
        if not got_head:
            if "disconnected without sending a response" in detail:
                return "read_error", f"the server closed the connection without a response: {detail}"
            if "receive buffer too long" in detail.lower() or "too long" in detail.lower():
                return "protocol_error", ("the response header block is over httpcore's 100 KiB limit "
                                          f"(a flood of headers?): {detail}")
            return "protocol_error", f"the reply is not valid HTTP/1.1: {detail}"
        return "read_error", f"the body broke off (bad chunked encoding or an early close): {detail}"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.CloseError)):
        return "read_error", f"the connection failed: {detail} (reset by the server?)"
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)):
        return "invalid_url", f"the request cannot be sent: {detail}"
    if isinstance(exc, httpx.TransportError):
        return "read_error", f"{type(exc).__name__}: {detail}"
    if isinstance(exc, OSError):
        return ("read_error" if got_head else "connect_error"), f"{type(exc).__name__}: {detail}"
    # Not an endpoint behaviour we know: still a result, never a traceback; the type names the surprise.
    return ("read_error" if got_head else "connect_error"), f"unexpected {type(exc).__name__}: {detail}"
