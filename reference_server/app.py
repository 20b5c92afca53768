"""The reference server's Starlette app: chat completions in both dialects, /health, /v1/models, CORS.

`POST /v1/chat/completions` is a plain ASGI endpoint rather than a Starlette request handler: it streams by calling
`send` directly (no per-event middleware or response-object layers), which is what lets one process hold
thousands of paced streams; validation, CORS, rate limiting and fault selection all happen here before the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reference_server.config import ServerConfig
from reference_server.faults import FAULTS, CutConnection, normal
from reference_server.lateness import LatenessHistogram
from reference_server.pacer import Pacer
from reference_server.protocols import chat_extras
from reference_server.protocols import match as match_protocol
from reference_server.protocols.faults import PROTOCOL_FAULTS
from reference_server.replies import _HTML_500, CORS_HEADERS, _send_bytes, send_error
from reference_server.stream import Stream
from reference_server.validate import _NO_VALIDATION_PROMPT, ApiError, ChatRequest, parse_request

_ALLOWED = "POST, OPTIONS"
# Any body is drained (not kept) up to this size before a 413, so the client can finish sending and read it.
_DRAIN_LIMIT = 64 * 1024 * 1024

log = logging.getLogger("reference_server")


class _QuietCut(logging.Filter):
    """The `truncated` fault cuts connections on purpose by raising; uvicorn would log that as a crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, CutConnection)


logging.getLogger("uvicorn.error").addFilter(_QuietCut())


class RateLimiter:
    """Token bucket: `rate` requests per second on average, bursts up to one second's worth."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> float:
        """0 when the request may go on, else the seconds until it could."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class ServerState:
    """Live counters, read by tests and the benchmark (disconnect cleanup, concurrency)."""
    active: set = field(default_factory=set)
    started: int = 0
    completed: int = 0
    cancelled: int = 0
    lateness: LatenessHistogram | None = None
    pacer: Pacer = field(default_factory=Pacer)
    # Stop signals of the running streams of the `interrupt` fault: a new request sets them all.
    interruptible: set = field(default_factory=set)


class ChatCompletions:
    """ASGI endpoint for /v1/chat/completions."""

    protocols: Any = None
    """The endpoint of the other protocols (protocols/endpoint.py); it serves tool calls and reasoning too."""

    def __init__(self, config: ServerConfig, state: ServerState):
        self.config = config
        self.state = state
        self.limiter = RateLimiter(config.rate_limit) if config.rate_limit else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        if method == "OPTIONS":
            return await self._preflight(send, headers)
        if method != "POST":
            return await send_error(send, ApiError(
                405, f"method {method} is not allowed on {scope['path']}; use POST", type="invalid_request_error",
                code="method_not_allowed", headers={"Allow": _ALLOWED}))
        if self.limiter is not None:
            wait = self.limiter.take()
            if wait:
                return await send_error(send, ApiError(
                    429, f"rate limit of {self.config.rate_limit:g} requests/s exceeded; retry later",
                    type="requests", code="rate_limit_exceeded", headers={"Retry-After": str(max(1, round(wait + .5)))}))
        fault_name = headers.get("x-fault", "").strip() or self.config.fault
        if fault_name and fault_name not in FAULTS and fault_name not in PROTOCOL_FAULTS:
            return await send_error(send, ApiError(
                400, f"unknown fault {fault_name!r}; known: {', '.join(FAULTS)}", param="X-Fault", code="unknown_fault"))

        if fault_name == "interrupt":  # a new request ends the running streams (llama-cpp-python's default)
            for running in list(self.state.interruptible):
                running.set()
        if (refused := self._credentials_problem(headers, fault_name)) is not None:
            return await refused(send)

        body = await self._read_body(receive, headers)
        if body is None:
            return await send_error(send, ApiError(
                413, f"the request body exceeds {self.config.max_body_bytes} bytes", code="request_too_large"))
        extras = None
        try:
            request = parse_request(body, self.config)
            if not self.config.upstream:  # tool calls or reasoning asked for: reference_server/protocols/
                extras = chat_extras.call_for(body, request, headers, fault_name)
        except ApiError as err:
            if fault_name == "error-500":
                return await _send_bytes(send, 500, _HTML_500, "text/html; charset=utf-8")
            if fault_name != "no-validation":
                return await send_error(send, err)
            request = ChatRequest(prompt=_NO_VALIDATION_PROMPT, dialect="prompt", stream=True)
        if extras is not None:
            return await self.protocols.serve_chat(receive, send, extras, headers, fault_name)

        if not request.stream:
            return await self._complete(send, request)
        if self.config.upstream:
            from reference_server.upstream import relay

            return await self._guarded(receive, send, lambda: relay(send, body, request, self.config, headers))
        ndjson = "application/x-ndjson" in headers.get("accept", "")
        stream = Stream(send, self.config, request, ndjson_framing=ndjson, base_headers=CORS_HEADERS,
                        lateness=self.state.lateness,
                        pacer=self.state.pacer if self.config.shared_pacer else None)
        mode = FAULTS.get(fault_name) if fault_name else None
        writer = mode.run if mode is not None and mode.run is not None else normal
        if fault_name != "interrupt":
            return await self._guarded(receive, send, lambda: writer(stream), stream)
        stream.interrupted = stop = asyncio.Event()
        self.state.interruptible.add(stop)
        try:
            await self._guarded(receive, send, lambda: writer(stream), stream)
        finally:
            self.state.interruptible.discard(stop)

    def _credentials_problem(self, headers: dict[str, str], fault_name: str) -> Any:
        """None when the request may go on; else a coroutine function that sends the refusal.

        With ``api_key`` set, a missing or wrong key gets 401 and the error object (OpenAI's answer). The
        ``auth-500`` fault wants a key too (``api_key``, else a fixed test key) and answers 500 text/plain."""
        from reference_server.faults import AUTH_500_BODY, DEFAULT_FAULT_KEY

        wanted = self.config.api_key or (DEFAULT_FAULT_KEY if fault_name == "auth-500" else None)
        if wanted is None:
            return None
        given = headers.get("x-api-key") or headers.get("api-key")
        bearer = headers.get("authorization", "")
        if bearer[:7].lower() == "bearer ":
            given = bearer[7:].strip()
        if given == wanted:
            return None
        if fault_name == "auth-500":
            return lambda send: _send_bytes(send, 500, AUTH_500_BODY, "text/plain; charset=utf-8")
        what = "no API key was given" if not given else "the API key is not valid"
        return lambda send: send_error(send, ApiError(
            401, f"{what}: send it as 'Authorization: Bearer KEY' (or x-api-key)", type="invalid_request_error",
            code="invalid_api_key"))

    async def _guarded(self, receive: Any, send: Any, run: Any, stream: Stream | None = None) -> None:
        """Run a stream writer; a client disconnect cancels it, a failure after the start becomes an error event."""
        task = asyncio.current_task()
        assert task is not None
        finished = False
        disconnected = False

        async def watch() -> None:
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            if not finished:
                disconnected = True
                task.cancel()

        state = self.state
        state.started += 1
        state.active.add(task)
        watcher = asyncio.create_task(watch())
        try:
            await run()
            state.completed += 1
        except asyncio.CancelledError:
            if not disconnected:
                raise
            state.cancelled += 1
        except CutConnection:
            raise
        except Exception as exc:  # a server-side failure: never a traceback to the client
            log.exception("stream failed")
            if stream is not None and stream.started:
                await stream.error_event(f"the stream failed: {type(exc).__name__}")
                await stream.end()
            else:
                # Nothing of a stream was sent, or a relay failed at a point only it knows: answer with an error
                # if the response has not started; if it has, uvicorn refuses the message and closes the connection.
                try:
                    await send_error(send, ApiError(500, f"internal error: {type(exc).__name__}", type="server_error"))
                except RuntimeError:  # the relay had started its response: uvicorn closes the connection
                    pass
        finally:
            finished = True
            watcher.cancel()
            state.active.discard(task)

    async def _read_body(self, receive: Any, headers: dict[str, str]) -> bytes | None:
        """The body, or None when it is over the limit (then drained and discarded, up to a bound)."""
        limit = self.config.max_body_bytes
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            declared = 0
        parts: list[bytes] = []
        size = 0
        too_big = declared > limit
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                too_big = True
            if not too_big:
                parts.append(chunk)
            elif size > _DRAIN_LIMIT:
                break
            if not message.get("more_body", False):
                break
        return None if too_big else b"".join(parts)

    async def _preflight(self, send: Any, headers: dict[str, str]) -> None:
        requested = headers.get("access-control-request-headers", "") or "Content-Type, Authorization, X-Fault"
        await send({"type": "http.response.start", "status": 204, "headers": [
            *CORS_HEADERS, (b"access-control-allow-methods", _ALLOWED.encode()),
            (b"access-control-allow-headers", requested.encode("latin-1")), (b"access-control-max-age", b"600"),
            (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _complete(self, send: Any, request: ChatRequest) -> None:
        from reference_server.chunks import ChunkEncoder
        from reference_server.generate import answer_text

        target = self.config.target_chars
        reason = "stop"
        if request.max_tokens is not None and request.max_tokens * 4 < target:
            target, reason = request.max_tokens * 4, "length"  # the same cut as the stream's (stream.py)
        text = answer_text(request.prompt, target)
        if reason == "length":
            text = text[:target]
        payload = ChunkEncoder(request.model or self.config.model).completion(text, request.prompt_chars, reason)
        await _send_bytes(send, 200, json.dumps(payload, ensure_ascii=False).encode(), "application/json")


class ReferenceApp(Starlette):
    """Starlette, with the chat-completions paths dispatched straight to their ASGI endpoint.

    Starlette's middleware stack wraps `send` in two layers that every streamed event would pass through;
    skipping them for the one hot path is a measurable share of the per-event cost at thousands of streams.
    The other routes keep the full stack (exception handlers, routing, 404/405 JSON).
    """

    chat: ChatCompletions
    chat_paths: frozenset[str] = frozenset({"/v1/chat/completions", "/chat/completions"})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] in self.chat_paths:
                scope["app"] = self
                await self.chat(scope, receive, send)
                return
            route = match_protocol(scope["path"])  # Responses, Anthropic, Ollama, Gemini: the same direct way
            if route is not None:
                scope["app"] = self
                await self.chat.protocols(scope, receive, send, route)
                return
        await super().__call__(scope, receive, send)


def create_app(config: ServerConfig | None = None) -> Starlette:
    config = config or ServerConfig()
    lateness = LatenessHistogram() if config.record_lateness else None
    state = ServerState(lateness=lateness, pacer=Pacer(lateness))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "fault": config.fault}, headers={"Access-Control-Allow-Origin": "*"})

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": config.model, "object": "model", "created": 0,
                                                           "owned_by": "streamconform"}]},
                            headers={"Access-Control-Allow-Origin": "*"})

    async def emission(request: Request) -> Response:
        hist = state.lateness
        snap = hist.snapshot() if hist is not None else {"events": 0, "note": "start with record_lateness"}
        if hist is not None and request.query_params.get("raw"):
            snap.update(hist.sparse())  # with --workers N, each answer is one worker's: a reader merges them
        if hist is not None and request.query_params.get("reset"):
            hist.reset()
        return JSONResponse({**snap, "pid": os.getpid(), "active_streams": len(state.active),
                             "started": state.started, "completed": state.completed,
                             "cancelled": state.cancelled})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "error")
        err = ApiError(status, f"{request.method} {request.url.path}: {code.replace('_', ' ')}", code=code)
        extra = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        return JSONResponse(err.payload(), status_code=status, headers={**extra, "Access-Control-Allow-Origin": "*"})

    from reference_server.protocols.endpoint import ProtocolEndpoint

    chat = ChatCompletions(config, state)  # one instance: the rate limit is shared by all paths
    chat.protocols = ProtocolEndpoint(chat)
    app = ReferenceApp(
        routes=[
            Route("/v1/chat/completions", chat),
            Route("/chat/completions", chat),
            Route("/health", health, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/debug/emission", emission, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.chat = chat
    app.state.config = config
    app.state.streams = state
    return app


CONFIG_ENV = "STREAMCONFORM_SERVER_CONFIG"


def config_to_env(config: ServerConfig) -> str:
    from dataclasses import asdict

    return json.dumps(asdict(config))


def app_from_env() -> Starlette:
    """App factory for uvicorn worker processes: the config comes from `CONFIG_ENV` (set by the CLI)."""
    import gc

    raw = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    if "cors_origins" in raw:
        raw["cors_origins"] = tuple(raw["cors_origins"])
    app = create_app(ServerConfig(**raw))
    # As the single-process server does (cli._settle_gc): start-up objects out of the collector's view, so its
    # full collections walk only live streams and their pauses stay short.
    gc.collect()
    gc.freeze()
    return app
