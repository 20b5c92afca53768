"""`--upstream URL`: relay a real OpenAI-compatible server instead of generating text.

The request is forwarded in the OpenAI dialect (a seed-dialect prompt becomes one user message), with the API key
read from an environment variable (never from the command line, where `ps` would show it). The upstream's bytes
are passed through unchanged as they arrive; a failure after the first byte becomes an error event + [DONE].
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from reference_server.chunks import DONE, sse
from reference_server.config import ServerConfig
from reference_server.validate import ApiError, ChatRequest

UPSTREAM_MODEL_ENV = "STREAMCONFORM_UPSTREAM_MODEL"


_MAX_PENDING = 1024 * 1024
_SSE_ENDS = (b"\r\n\r\n", b"\n\n", b"\r\r")


def _last_boundary(data: bytearray, ndjson: bool) -> int:
    """Length of the prefix of `data` made of complete events (SSE) or lines (NDJSON)."""
    if ndjson:
        return data.rfind(b"\n") + 1
    return max((i + len(end) for end in _SSE_ENDS if (i := data.rfind(end)) != -1), default=0)


def upstream_url(base: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def upstream_body(body: bytes, request: ChatRequest) -> dict:
    data = json.loads(body) if body.strip() else {}
    if not isinstance(data, dict):
        data = {}
    if request.dialect == "prompt":
        data = {"messages": [{"role": "user", "content": request.prompt}]}
    data["stream"] = True
    data.setdefault("model", request.model or os.environ.get(UPSTREAM_MODEL_ENV, "gpt-4o-mini"))
    return data


async def relay(send: Any, body: bytes, request: ChatRequest, config: ServerConfig, headers: dict[str, str]) -> None:
    from reference_server.replies import CORS_HEADERS, send_error

    assert config.upstream is not None
    out_headers = {"accept": headers.get("accept", "text/event-stream")}
    key = os.environ.get(config.upstream_key_env)
    if key:
        out_headers["authorization"] = f"Bearer {key}"
    started = False
    pending = bytearray()
    timeout = httpx.Timeout(30.0, read=120.0)
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            async with client.stream("POST", upstream_url(config.upstream), json=upstream_body(body, request),
                                     headers=out_headers) as response:
                content_type = response.headers.get("content-type", "text/event-stream")
                if response.status_code != 200:
                    data = await response.aread()
                    await send({"type": "http.response.start", "status": response.status_code,
                                "headers": [(b"content-type", content_type.encode()), *CORS_HEADERS]})
                    await send({"type": "http.response.body", "body": data[:65536], "more_body": False})
                    return
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", content_type.encode()), (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"), *CORS_HEADERS]})
                started = True
                ndjson = "ndjson" in content_type
                async for piece in response.aiter_raw():
                    # Only whole events are forwarded, so that if the upstream fails mid-event the error event
                    # that follows is not glued onto half an event.
                    pending += piece
                    cut = _last_boundary(pending, ndjson)
                    if cut == 0 and len(pending) > _MAX_PENDING:
                        cut = len(pending)  # a giant line: pass it through rather than hold it
                    if cut:
                        await send({"type": "http.response.body", "body": bytes(pending[:cut]), "more_body": True})
                        del pending[:cut]
                if pending:
                    await send({"type": "http.response.body", "body": bytes(pending), "more_body": True})
    except httpx.HTTPError as exc:
        err = ApiError(502, f"the upstream failed: {type(exc).__name__}: {exc}", type="upstream_error",
                       code="upstream_failed")
        if not started:
            await send_error(send, err)
            return
        await send({"type": "http.response.body", "body": sse(err.body().decode()) + sse(DONE), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
