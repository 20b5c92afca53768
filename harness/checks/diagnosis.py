"""The root cause of a refused main request, and the likely fix.

When the main request gets no 2xx stream (connection refused, a timeout before the headers, a 4xx or 5xx), every
check that reads the answer would fail with it, and the error probes would only repeat the refusal: the endpoint
refuses every request, so its refusal of a bad one says nothing. The engine then runs ``http.status`` alone, marks
the rest "not run" with this cause, and the verdict line carries the cause and the hint. Pure: reads one capture.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key")
# Paths that are a server's base URL rather than a streaming route: a 404 there means the route was left off.
_BASE_PATHS = {"", "/", "/v1", "/v1/", "/api", "/api/", "/openai", "/openai/v1"}
_OPENAI_BODY_HINTS = re.compile(rb"messages|chat\.completion|\"model\"", re.IGNORECASE)
_EXCERPT = 160


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the main request produced nothing to check, and what to try."""

    cause: str
    hint: str | None = None

    def text(self) -> str:
        return self.cause + (f" — {self.hint}" if self.hint else "")

    def to_dict(self) -> dict[str, str | None]:
        return {"cause": self.cause, "hint": self.hint}


def sends_credentials(headers: dict[str, str]) -> bool:
    return any(k.lower() in CREDENTIAL_HEADERS for k in headers)


def _excerpt(body: bytes) -> str:
    text = body[:_EXCERPT * 2].decode("utf-8", "replace").strip()
    try:  # a JSON error: its message is the readable part
        obj = json.loads(body[:4096])
        err = obj.get("error") if isinstance(obj, dict) else None
        message = err.get("message") if isinstance(err, dict) else err if isinstance(err, str) else None
        if isinstance(message, str) and message:
            text = message
    except (ValueError, RecursionError):
        pass
    text = " ".join(text.split())
    return text[:_EXCERPT] + ("…" if len(text) > _EXCERPT else "")


def refusal(capture, dialect: str) -> Refusal | None:
    """The refusal of the main request, or None when it was answered with a 2xx."""
    status = capture.status
    request = capture.request
    creds = sends_credentials(dict(request.headers))
    if status is None:
        return _no_answer(capture)
    if 200 <= status < 300:
        return None
    body = capture.body or b""
    if 300 <= status < 400 and capture.redirects:
        return Refusal(f"the main request was still redirected after {len(capture.redirects)} hops: HTTP {status}"
                       + (f" ({capture.error})" if capture.error else ""),
                       "the redirect chain does not end at a stream: check the URL")
    if 300 <= status < 400:
        where = capture.header("location")
        return Refusal(f"the main request was redirected: HTTP {status}" + (f" to {where}" if where else "")
                       + (f" ({capture.error})" if capture.error else ""),
                       "redirects are not followed by default: use the final URL, or --follow-redirects")
    said = _excerpt(body)
    cause = f"the main request was refused: HTTP {status}" + (f" ({said})" if said else "")
    return Refusal(cause, _hint(status, body, request.url, dialect, creds))


def _no_answer(capture) -> Refusal:
    reason = capture.end_reason
    detail = capture.error or reason
    if reason == "connect_error":
        host = urlsplit(capture.request.url).netloc
        return Refusal(f"the main request got no answer: {detail}",
                       f"is the server running and listening on {host}?")
    if reason in ("idle_timeout", "deadline"):
        return Refusal(f"the main request got no answer in time: {detail}",
                       "the server accepted the connection but sent no response headers; check it is not stuck, "
                       "or raise --deadline")
    return Refusal(f"the main request got no HTTP answer: {detail}", None)


def _hint(status: int, body: bytes, url: str, dialect: str, creds: bool) -> str | None:
    path = urlsplit(url).path
    if status in (401, 403):
        return ("the endpoint wants credentials: give -H 'Authorization: Bearer KEY' (or -H 'x-api-key: KEY') or "
                "set STREAMCONFORM_API_KEY") if not creds else "the credentials sent were refused: check the key"
    if status == 404 and path.rstrip("/") in {p.rstrip("/") for p in _BASE_PATHS}:
        return "this looks like a base URL: add the route, e.g. /v1/chat/completions"
    if status in (400, 422) and dialect == "prompt" and _OPENAI_BODY_HINTS.search(body[:4096]):
        return "this looks like an OpenAI-compatible server that wants messages: use --dialect openai"
    if status in (404, 405):
        return "is this the streaming route? POST to it must stream an answer"
    if status >= 500 and not creds:
        return ("a 5xx to a request without credentials is often a missing API key: give -H "
                "'Authorization: Bearer KEY' or set STREAMCONFORM_API_KEY; otherwise the server's log says why")
    if status >= 500:
        return "the server failed on a valid request: its log says why"
    return None
