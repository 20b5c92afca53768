"""Whole replies, outside a stream: the CORS headers every reply carries, a body of bytes (``_send_bytes``),
an error object (``send_error``), the HTML page of the ``error-500`` fault. Shared by the chat endpoint (app.py),
the protocol endpoint (protocols/endpoint.py) and the upstream relay (upstream.py).
"""

from __future__ import annotations

from typing import Any

from reference_server.validate import ApiError

CORS_HEADERS = [(b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", b"Retry-After, X-Request-Id")]


async def _send_bytes(send: Any, status: int, body: bytes, content_type: str,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                            *CORS_HEADERS, *(headers or [])]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Any, err: ApiError) -> None:
    headers = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await _send_bytes(send, err.status, err.body(), "application/json", headers)


_HTML_500 = (b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
             b"<body><h1>Internal Server Error</h1><p>The server encountered an internal error and was unable to "
             b"complete your request.</p></body></html>\n")
