"""Reject URLs that cannot be requested, before anything touches the network.

Whether the *address* is allowed is the guard's decision (harness/capture/guard.py), judged on the address actually
connected; this only catches what is not an HTTP(S) URL at all, with the same rules (and messages) as
`streamconform run`: one validator, ``guard.check_url``.
"""

from __future__ import annotations

from harness.capture.guard import MAX_URL_CHARS, check_url

__all__ = ["MAX_URL_CHARS", "url_problem"]


def url_problem(url: str) -> str | None:
    """None when ``url`` can be attempted, else a short reason shown to the student."""
    if not url or not url.strip():
        return "no URL was submitted"
    return check_url(url)
