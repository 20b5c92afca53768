"""Address policy: which IPs and URLs are refused, and proof that the guarded backend refuses before connecting.

Only loopback is ever connected to; other addresses are judged by the pure policy functions.
"""

from __future__ import annotations

import asyncio

import httpcore
import pytest

from harness.capture.client import make_client
from harness.capture.core import capture_sync
from harness.capture.guard import (
    AddressPolicy,
    BlockedAddressError,
    GuardedBackend,
    blocked_reason,
    check_url,
)
from harness.capture.request import build_request
from harness.model import Limits
from tests.hostile_servers import hostile_server

STRICT = AddressPolicy()
LOCAL = AddressPolicy(allow_private=True)


@pytest.mark.parametrize(("ip", "word"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"), ("240.0.0.1", "reserved"), ("192.0.2.10", "documentation"),
    ("198.18.0.1", "benchmarking"), ("2001:db8::1", "documentation"), ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    # IPv6 forms that carry an IPv4 address inside
    ("::ffff:127.0.0.1", "IPv4-mapped"), ("::ffff:10.0.0.1", "IPv4-mapped"), ("[::ffff:169.254.169.254]", "mapped"),
    ("64:ff9b::7f00:1", "NAT64"), ("2002:7f00:1::", "6to4"), ("2002:c0a8:0101::1", "6to4"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo"),  # client 127.0.0.1, obfuscated
])
def test_non_public_addresses_are_refused_with_a_reason(ip, word):
    reason = STRICT.check_ip(ip)
    assert reason is not None and word.lower() in reason.lower(), reason
    assert "--allow-private" in reason


@pytest.mark.parametrize(("ip", "inner", "form"), [
    ("::ffff:0:7f00:1", "127.0.0.1 loopback", "IPv4-translated"),  # RFC 2765, ::ffff:0:0:0/96
    ("::ffff:0:a00:1", "10.0.0.1 private", "IPv4-translated"),
    ("::ffff:0:a9fe:a9fe", "169.254.169.254 link-local", "IPv4-translated"),
    ("::7f00:1", "127.0.0.1 loopback", "IPv4-compatible"),  # RFC 4291 ::a.b.c.d
    ("::10.1.2.3", "10.1.2.3 private", "IPv4-compatible"),
    ("64:ff9b::a00:1", "10.0.0.1 private", "NAT64"),  # RFC 6052 well-known prefix
    ("64:ff9b::a9fe:a9fe", "169.254.169.254 link-local", "NAT64"),
    ("64:ff9b:1::c0a8:101", "192.168.1.1 private", "local-use NAT64"),  # RFC 8215
    ("64:ff9b:1:ffff::7f00:1", "127.0.0.1 loopback", "local-use NAT64"),
    ("2002:a00:1::1", "10.0.0.1 private", "6to4"),
    # Teredo's client address is stored with its bits inverted: f5ff:fffe is 10.0.0.1
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1 private", "Teredo"),
])
def test_ipv6_forms_are_judged_by_the_ipv4_they_carry(ip, inner, form):
    reason = STRICT.check_ip(ip)
    address, kind = inner.split(" ", 1)
    assert reason is not None and kind in reason, reason
    assert f"({address})" in reason and f"({form})" in reason, reason
    assert LOCAL.check_ip(ip) is None  # admitted for local testing like the IPv4 address itself


@pytest.mark.parametrize(("ip", "word"), [
    ("5f00::1", "SRv6"), ("5f00:ffff::1", "SRv6"),  # RFC 9602 segment identifiers
    ("3fff::1", "documentation"), ("3fff:fff:ffff::1", "documentation"),  # RFC 9637
    ("::ffff:0:808:808", "IPv4-translated"),  # a public IPv4 inside, but the form itself is not routable
    ("::8.8.8.8", "IPv4-compatible"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
])
def test_non_global_ipv6_ranges_are_refused_whatever_they_carry(ip, word):
    reason = STRICT.check_ip(ip)
    assert reason is not None and word in reason and "--allow-private" in reason, reason
    assert LOCAL.check_ip(ip) is None  # --allow-private admits them as it admits other non-public ranges


@pytest.mark.parametrize("ip", ["::ffff:0:e000:1", "::e000:1", "64:ff9b::e000:1", "64:ff9b:1::ffff:ffff",
                                "2002:e000:1::1"])
def test_multicast_or_broadcast_carried_in_ipv6_is_refused_even_when_testing_locally(ip):
    reason = LOCAL.check_ip(ip)
    assert reason is not None and ("multicast" in reason or "broadcast" in reason), reason


@pytest.mark.parametrize("ip", ["::", "::1"])
def test_the_unspecified_and_loopback_addresses_are_not_read_as_ipv4_compatible(ip):
    reason = STRICT.check_ip(ip)
    assert reason is not None and "embedded" not in reason and "IPv4" not in reason, reason


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111",
                                "::ffff:8.8.8.8", "172.32.0.1", "100.128.0.1", "11.0.0.1",
                                "64:ff9b::808:808", "2002:808:808::1", "3fff:1000::1"])
def test_public_addresses_pass(ip):
    assert STRICT.check_ip(ip) is None


@pytest.mark.parametrize(("ip", "word"), [("5eff:ffff::1", "SRv6"), ("5f01::1", "SRv6"),
                                          ("3ffe:ffff::1", "documentation"),
                                          ("3fff:1000::1", "documentation")])
def test_new_ranges_end_where_their_prefix_ends(ip, word):
    assert word not in (STRICT.check_ip(ip) or "")


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "10.0.0.1", "169.254.1.1", "0.0.0.0", "fd00::1",
                                "::ffff:127.0.0.1"])
def test_allow_private_admits_local_addresses(ip):
    assert LOCAL.check_ip(ip) is None


@pytest.mark.parametrize("ip", ["224.0.0.1", "ff02::1", "255.255.255.255"])
def test_multicast_and_broadcast_are_refused_even_when_testing_locally(ip):
    assert LOCAL.check_ip(ip) is not None


def test_text_that_is_not_an_ip_is_refused():
    assert "not an IP address" in STRICT.check_ip("localhost")


@pytest.mark.parametrize(("url", "fragment"), [
    ("", "empty"), ("ftp://example.com/x", "unsupported scheme"), ("file:///etc/passwd", "unsupported scheme"),
    ("example.com/stream", "no scheme: the URL must start with http:// or https://"),
    ("localhost:8080/v1/chat/completions", "no scheme"), ("127.0.0.1:8000/stream", "no scheme"),
    ("//example.com/x", "no scheme"), ("javascript:alert(1)", "unsupported scheme 'javascript'"),
    ("http://", "no host"), ("http:///path", "no host"),
    ("http://user:pw@example.com/", "credentials"), ("http://trusted.example@evil.example/", "credentials"),
    ("http://example.com:99999/", "malformed"), ("http://example.com:0/", "port 0"),
    ("http://exa mple.com/", "whitespace"), ("http://example.com/\r\nX: y", "control"),
    ("http://[::1/", "malformed"), ("http://" + "a" * 5000 + ".com/", "characters long"),
])
def test_bad_urls_are_named(url, fragment):
    reason = check_url(url)
    assert reason is not None and fragment in reason, reason


@pytest.mark.parametrize("url", ["http://example.com/v1/chat/completions", "https://api.example.com:8443/s?q=1",
                                 "http://127.0.0.1:8000/stream", "http://[::1]:8000/", "HTTPS://EXAMPLE.COM"])
def test_good_urls_pass(url):
    assert check_url(url) is None
    assert STRICT.check_url(url) is None


def test_blocked_literal_ip_makes_no_connection():
    with hostile_server("ok") as srv:
        cap = capture_sync(build_request(srv.url, "prompt", "hi"), Limits(deadline_s=5), policy=STRICT)
        assert cap.end_reason == "blocked_address"
        assert "127.0.0.1 is a loopback address" in cap.error
        assert cap.status is None and cap.reads == []
        assert srv.accepted == 0


def test_hostname_resolving_to_loopback_is_refused_at_connect_time():
    # "localhost" is not an IP literal: only the guarded backend, after resolving it, can refuse it.
    with hostile_server("ok") as srv:
        url = srv.url.replace("127.0.0.1", "localhost")
        cap = capture_sync(build_request(url, "prompt", "hi"), Limits(deadline_s=5), policy=STRICT)
        assert cap.end_reason == "blocked_address", cap.error
        assert "refused to connect to localhost" in cap.error and "loopback" in cap.error
        assert srv.accepted == 0


def test_allow_private_connects_and_records_the_address():
    with hostile_server("ok") as srv:
        url = srv.url.replace("127.0.0.1", "localhost")
        cap = capture_sync(build_request(url, "prompt", "hi"), Limits(deadline_s=5), policy=LOCAL)
        assert cap.end_reason == "eof", cap.error
        assert cap.remote_addr in ("127.0.0.1", "::1")
        assert srv.accepted == 1


def test_shared_client_applies_the_per_capture_policy():
    async def main():
        client = make_client(Limits())  # built without a policy: admits anything on its own
        try:
            with hostile_server("ok") as srv:
                spec = build_request(srv.url, "prompt", "hi")
                allowed = await asyncio.gather(*(capture_sync_in_loop(spec, client, None) for _ in range(3)))
                refused = await capture_sync_in_loop(build_request(srv.url.replace("127.0.0.1", "localhost"),
                                                                   "prompt", "hi"), client, STRICT)
                return allowed, refused, srv.accepted
        finally:
            await client.aclose()

    async def capture_sync_in_loop(spec, client, policy):
        from harness.capture.core import capture
        return await capture(spec, Limits(deadline_s=5), client=client, policy=policy)

    allowed, refused, accepted = asyncio.run(main())
    assert [c.end_reason for c in allowed] == ["eof"] * 3
    assert refused.end_reason == "blocked_address" and "localhost" in refused.error
    assert accepted == 3  # the refused capture made no connection


def test_backend_refuses_the_whole_host_when_any_address_is_refused():
    async def main():
        backend = GuardedBackend(STRICT)
        with pytest.raises(BlockedAddressError) as info:
            await backend.connect_tcp("127.0.0.1", 9, timeout=1)
        with pytest.raises(BlockedAddressError):
            await backend.connect_unix_socket("/tmp/x.sock")
        return info.value

    err = asyncio.run(main())
    assert "loopback" in err.reason
    wrapped = httpcore.ConnectError("outer")
    wrapped.__cause__ = err
    assert blocked_reason(wrapped) == str(err)
    assert blocked_reason(ValueError("x")) is None


class _RecordingInner(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer (no public address may be contacted from tests): records connect calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.calls.append(host)
        raise httpcore.ConnectError(f"test backend: not connecting to {host}")

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):  # pragma: no cover
        raise NotImplementedError

    async def sleep(self, seconds):  # pragma: no cover
        await asyncio.sleep(seconds)


def _fake_dns(monkeypatch, answers):
    async def getaddrinfo(self, host, port, **kwargs):
        return [(0, 0, 0, "", (ip, port) if ":" not in ip else (ip, port, 0, 0)) for ip in answers[host]]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)


def test_mixed_public_and_private_answers_refuse_the_host_before_any_connect(monkeypatch):
    _fake_dns(monkeypatch, {"rebind.example": ["93.184.216.34", "127.0.0.1"]})
    inner = _RecordingInner()

    async def main():
        await GuardedBackend(STRICT, inner).connect_tcp("rebind.example", 80, timeout=1)

    with pytest.raises(BlockedAddressError, match="127.0.0.1 is a loopback"):
        asyncio.run(main())
    assert inner.calls == []


def test_the_connect_goes_to_the_validated_ip_not_the_name(monkeypatch):
    # Resolved once, validated, then the IP itself is connected: a second DNS answer can never be used.
    _fake_dns(monkeypatch, {"public.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    inner = _RecordingInner()

    async def main():
        await GuardedBackend(STRICT, inner).connect_tcp("public.example", 80, timeout=1)

    with pytest.raises(httpcore.ConnectError):
        asyncio.run(main())
    assert inner.calls == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]",
                                  "[::ffff:7f00:1]", "LOCALHOST"])
def test_obfuscated_loopback_spellings_are_refused_without_a_connection(host):
    # Each spelling reaches 127.0.0.1 if connected; the resolver turns numeric forms into the address itself
    # (no DNS query leaves the machine), and the guard judges that address.
    with hostile_server("ok") as srv:
        url = f"http://{host}:{srv.port}/stream"
        cap = capture_sync(build_request(url, "prompt", "hi"), Limits(deadline_s=5), policy=STRICT)
        assert cap.end_reason in ("blocked_address", "invalid_url"), (cap.end_reason, cap.error)
        assert srv.accepted == 0
