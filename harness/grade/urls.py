"""Reject URLs that cannot be requested, before anything touches the network.

Whether the *address* is allowed is the guard's decision (harness/guard.py), judged on the address actually
connected; this only catches what is not an HTTP(S) URL at all.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_URL_CHARS = 2048


def url_problem(url: str) -> str | None:
    """None when ``url`` can be attempted, else a short reason shown to the student."""
    if not url:
        return "no URL was submitted"
    if len(url) > MAX_URL_CHARS:
        return f"the URL is longer than {MAX_URL_CHARS} characters"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "the URL contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"the URL cannot be parsed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"the URL must start with http:// or https:// (got {parts.scheme + ':' if parts.scheme else 'no scheme'})"
    if not parts.hostname:
        return "the URL has no host name"
    if port == 0:
        return "the URL's port is 0"
    return None
