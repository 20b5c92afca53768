"""Address policy: which URLs and IP addresses the harness may connect to.

A grader points the harness at URLs that strangers typed in, so by default it refuses anything that is not a
public unicast address: loopback, private, link-local, CGNAT, multicast, reserved, documentation ranges, and IPv6
forms that embed one of those (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 well-known and local-use,
6to4, Teredo). The check is made on the address actually
connected, inside the httpcore network backend: the backend resolves the host itself, validates every address
it got, and connects to the validated IP, so a DNS answer that changes between check and connect (rebinding)
cannot slip past. TLS still verifies the certificate against the host name (httpcore passes it as SNI).

``allow_private=True`` (``--allow-private``) is for local testing: it admits everything but multicast.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import typing
from urllib.parse import urlsplit

import httpcore

from harness.capture import netstream

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Special-purpose ranges (IANA registries), spelled out rather than taken from ipaddress.is_global, whose
# tables differ between Python 3.10 and 3.13. First match names the reason.
_V4_RANGES = [
    ("0.0.0.0/8", "unspecified (this-network) address"),
    ("127.0.0.0/8", "loopback address"),
    ("10.0.0.0/8", "private address"),
    ("172.16.0.0/12", "private address"),
    ("192.168.0.0/16", "private address"),
    ("100.64.0.0/10", "shared (CGNAT) address"),
    ("169.254.0.0/16", "link-local address"),
    ("224.0.0.0/4", "multicast address"),
    ("255.255.255.255/32", "broadcast address"),
    ("240.0.0.0/4", "reserved address"),
    ("192.0.0.0/24", "reserved (IETF protocol assignment) address"),
    ("192.0.2.0/24", "reserved (documentation) address"),
    ("198.51.100.0/24", "reserved (documentation) address"),
    ("203.0.113.0/24", "reserved (documentation) address"),
    ("198.18.0.0/15", "reserved (benchmarking) address"),
    ("192.88.99.0/24", "reserved (6to4 relay) address"),
]
_V6_RANGES = [
    ("::/128", "unspecified address"),
    ("::1/128", "loopback address"),
    ("fc00::/7", "private (unique local) address"),
    ("fe80::/10", "link-local address"),
    ("fec0::/10", "private (site-local) address"),
    ("ff00::/8", "multicast address"),
    ("64:ff9b:1::/48", "private (local-use NAT64) address"),
    ("100::/64", "reserved (discard) address"),
    ("2001:db8::/32", "reserved (documentation) address"),
    ("3fff::/20", "reserved (documentation) address"),
    ("5f00::/16", "reserved (SRv6 segment identifier) address"),
    ("::ffff:0:0:0/96", "reserved (IPv4-translated) address"),
    ("::/96", "reserved (IPv4-compatible) address"),
]
_V4_TABLE = [(ipaddress.ip_network(n), why) for n, why in _V4_RANGES]
_V6_TABLE = [(ipaddress.ip_network(n), why) for n, why in _V6_RANGES]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: always the /96 layout
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215; read as the /96 layout operators deploy
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 SIIT, ::ffff:0:a.b.c.d
_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 (deprecated), ::a.b.c.d
_ALWAYS_REFUSED = ("multicast", "broadcast")  # never a TCP peer, even when testing locally


def parse_ip(value: str | IPAddress) -> IPAddress | None:
    """An IP address from text (brackets and an IPv6 zone id allowed), or None when it is not one."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    text = value.strip().strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _low32(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """An IPv4 address carried inside an IPv6 one, with the mechanism's name: each of these can end up at
    that IPv4 address (a host stack, a translator or a tunnel delivers it there), so it is judged like it."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _TRANSLATED:
        return "IPv4-translated", _low32(ip)
    if ip in _COMPATIBLE and int(ip) > 1:  # :: and ::1 are the unspecified and loopback addresses themselves
        return "IPv4-compatible", _low32(ip)
    if ip in _NAT64:
        return "NAT64", _low32(ip)
    if ip in _LOCAL_NAT64:
        return "local-use NAT64", _low32(ip)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]  # (server, client): the client is where traffic ends up
    return None


def classify_ip(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None when it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            how, v4 = embedded
            inner = classify_ip(v4)
            if inner is not None:
                return f"{inner} ({v4}) embedded in an IPv6 address ({how})"
            if how == "IPv4-mapped":
                return None  # ::ffff:a.b.c.d is exactly a.b.c.d
            # A public IPv4 inside: the IPv6 range itself decides (NAT64 and 6to4 are routable;
            # IPv4-compatible, IPv4-translated and local-use NAT64 are not: the table below refuses them).
        table = _V6_TABLE
    else:
        table = _V4_TABLE
    for network, why in table:
        if ip in network:
            return why
    if not ip.is_global:
        return "reserved (not globally routable) address"
    return None


class AddressPolicy:
    """Which addresses may be connected to. ``allow_private`` admits local ones for testing."""

    def __init__(self, allow_private: bool = False) -> None:
        self.allow_private = allow_private

    def __repr__(self) -> str:
        return f"AddressPolicy(allow_private={self.allow_private})"

    def check_ip(self, ip: str | IPAddress) -> str | None:
        """The reason ``ip`` is refused, or None when it may be connected to."""
        parsed = parse_ip(ip)
        if parsed is None:
            return f"{ip!r} is not an IP address"
        why = classify_ip(parsed)
        if why is None:
            return None
        if self.allow_private and not any(word in why for word in _ALWAYS_REFUSED):
            return None
        hint = "" if self.allow_private else " (use --allow-private to test local servers)"
        return f"{parsed} is a {why}{hint}"

    def check_url(self, url: str) -> str | None:
        """The reason ``url`` cannot be requested, or None. Syntax only; addresses are judged at connect time."""
        return check_url(url)


# Far beyond any endpoint URL, well within what servers accept; also bounds what a roster can make us log.
MAX_URL_CHARS = 2048


def check_url(url: str) -> str | None:
    """Why ``url`` is not a requestable http(s) URL, or None.

    Credentials in the URL are refused: they would be sent to whatever host the URL names, and
    ``http://trusted@evil`` is a classic way to make a reviewer misread the target. Use a header instead.
    """
    if not isinstance(url, str) or not url.strip():
        return "empty URL"
    if len(url) > MAX_URL_CHARS:
        return f"URL is {len(url)} characters long (limit {MAX_URL_CHARS})"
    if any(ord(c) < 0x21 or ord(c) == 0x7F or c.isspace() for c in url):  # isspace: Unicode spaces too
        return "URL contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        return f"malformed URL: {exc}"
    # "localhost:8080/v1" parses as scheme "localhost" with path "8080/v1": a host and port, the scheme forgotten.
    if not parts.scheme or (not parts.netloc and parts.path[:1].isdigit()):
        return "no scheme: the URL must start with http:// or https://"
    if parts.scheme.lower() not in ("http", "https"):
        return f"unsupported scheme {parts.scheme!r}: only http:// and https:// URLs can be checked"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not sent; pass them as a header (-H 'Authorization: ...')"
    if not parts.hostname:
        return "URL has no host"
    if port == 0:
        return "port 0 cannot be connected to"
    return None


class BlockedAddressError(Exception):
    """The policy refused every address of a host; no connection was made."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"refused to connect to {host}: {reason}")
        self.host = host
        self.reason = reason


async def resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The host's addresses (an IP literal resolves to itself), in the resolver's order, without duplicates."""
    literal = parse_ip(host)
    if literal is not None:
        return [str(literal)]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), timeout)
    except asyncio.TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"DNS lookup of {host} timed out") from exc
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"DNS lookup of {host} failed: {exc}") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = str(sockaddr[0]).split("%", 1)[0]
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise httpcore.ConnectError(f"DNS lookup of {host} returned no addresses")
    return addresses


ReadTap = typing.Callable[[bytes, float], None]  # (data, arrival time on the perf_counter clock)


class _TappedStream(httpcore.AsyncNetworkStream):
    """A network stream that shows every read to the current task's tap (the capture uses it to see the bytes
    of a reply that is not HTTP, which httpcore would otherwise discard)."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, tap_for_task: typing.Callable[[], ReadTap | None]) -> None:
        self._inner = inner
        self._tap_for_task = tap_for_task

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        tap = self._tap_for_task()
        if tap is not None:
            tap(data, time.perf_counter())
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _TappedStream(inner, self._tap_for_task)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the policy admits.

    It resolves the host itself, refuses the whole host when ANY address is refused (a name that mixes public
    and private answers is a rebinding attempt, not a load balancer), then connects to the validated IPs in
    order. ``policy_for_task`` lets one shared client apply a stricter per-capture policy as well;
    ``tap_for_task`` gives the running capture a look at each raw read.
    """

    def __init__(self, policy: AddressPolicy | None, inner: httpcore.AsyncNetworkBackend | None = None,
                 policy_for_task: typing.Callable[[], AddressPolicy | None] | None = None,
                 tap_for_task: typing.Callable[[], ReadTap | None] | None = None) -> None:
        self.policy = policy
        self._inner = inner  # None: harness.capture.netstream's asyncio stream, which stamps arrival times
        self._policy_for_task = policy_for_task
        self._tap_for_task = tap_for_task

    def _policies(self) -> list[AddressPolicy]:
        policies = [self.policy] if self.policy is not None else []
        extra = self._policy_for_task() if self._policy_for_task is not None else None
        if extra is not None and extra is not self.policy:
            policies.append(extra)
        return policies

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.AsyncNetworkStream:
        started = time.monotonic()
        addresses = await resolve(host, port, timeout)
        for policy in self._policies():
            for ip in addresses:
                reason = policy.check_ip(ip)
                if reason is not None:
                    raise BlockedAddressError(host, reason)
        last_error: Exception | None = None
        for ip in addresses:
            remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            try:
                if self._inner is None:
                    return await netstream.connect_tcp(ip, port, remaining, local_address, socket_options,
                                                       self._tap_for_task)
                stream = await self._inner.connect_tcp(ip, port, timeout=remaining, local_address=local_address,
                                                       socket_options=socket_options)
                return stream if self._tap_for_task is None else _TappedStream(stream, self._tap_for_task)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError(path, "unix sockets are never connected to")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def blocked_reason(exc: BaseException) -> str | None:
    """The policy's reason when ``exc`` (or anything it was raised from) is a refused address."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, BlockedAddressError):
            return str(current)
        current = current.__cause__ or current.__context__
        seen += 1
    return None
