"""The ASGI endpoint of every protocol route, and of chat requests that ask for tool calls or reasoning.

It follows the chat endpoint step by step (method, rate limit, fault name, credentials, body, validation,
stream) and shares its parts: the rate limiter (one budget for all paths), the body reader, the stream guard
(client disconnects, failures after the start). What differs per protocol is only what the protocol module
says: how to read the body, the encoder, the error shape, and which faults it has.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from reference_server.faults import AUTH_500_BODY, DEFAULT_FAULT_KEY, FAULTS
from reference_server.protocols import Route, chat_extras
from reference_server.protocols.base import (
    ApiError,
    Call,
    ChatRequest,
    Incoming,
    Protocol,
    ProtoStream,
    dumps,
    whole_text,
)
from reference_server.protocols.faults import PROTOCOL_FAULTS
from reference_server.protocols.writers import BEFORE_STREAM, WRITERS, Writer, normal
from reference_server.replies import _HTML_500, CORS_HEADERS, _send_bytes
from reference_server.validate import _NO_VALIDATION_PROMPT, decode_body

_ALLOWED = "POST, OPTIONS"


def choose_writer(proto: Protocol, fault: str | None, explicit: bool) -> Writer:
    """The writer for `fault` in `proto`; ApiError when a fault asked for by X-Fault does not exist there."""
    if not fault or fault in BEFORE_STREAM or fault in proto.faults:
        return normal  # protocol-only faults are encoder changes
    if fault in WRITERS:
        return WRITERS[fault]
    if not explicit:
        return normal  # a server-wide --fault made for another protocol leaves this one correct
    here = ", ".join([*WRITERS, *sorted(proto.faults)])
    raise ApiError(400, f"fault {fault!r} is not available in {proto.title}; these are: {here}",
                   param="X-Fault", code="unknown_fault")


def _given_key(incoming: Incoming) -> str | None:
    h = incoming.headers
    bearer = h.get("authorization", "")
    if bearer[:7].lower() == "bearer ":
        return bearer[7:].strip()
    return h.get("x-api-key") or h.get("api-key") or h.get("x-goog-api-key") or incoming.query.get("key")


class ProtocolEndpoint:
    def __init__(self, chat: Any):  # a reference_server.app.ChatCompletions (app.py imports this module)
        self.chat = chat
        self.config = chat.config
        self.state = chat.state

    async def __call__(self, scope: dict, receive: Any, send: Any, route: Route) -> None:
        proto = route.protocol
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        incoming = Incoming(scope["path"], route.params, query, headers)
        method = scope["method"]
        if method == "OPTIONS":
            return await self.chat._preflight(send, headers)
        if method != "POST":
            return await self.refuse(send, proto, ApiError(
                405, f"method {method} is not allowed on {scope['path']}; use POST",
                code="method_not_allowed", headers={"Allow": _ALLOWED}))
        if (limited := self._rate_limited()) is not None:
            return await self.refuse(send, proto, limited)
        explicit = headers.get("x-fault", "").strip()
        fault = explicit or self.config.fault
        if fault and fault not in FAULTS and fault not in PROTOCOL_FAULTS:
            known = ", ".join([*FAULTS, *PROTOCOL_FAULTS])
            return await self.refuse(send, proto, ApiError(
                400, f"unknown fault {fault!r}; known: {known}", param="X-Fault", code="unknown_fault"))
        if await self._refused_credentials(send, proto, incoming, fault):
            return
        body = await self.chat._read_body(receive, headers)
        if body is None:
            return await self.refuse(send, proto, ApiError(
                413, f"the request body exceeds {self.config.max_body_bytes} bytes",
                code="request_too_large"))
        try:
            call = proto.parse(decode_body(body, self.config), incoming, self.config)
        except ApiError as err:
            if fault == "error-500":
                return await _send_bytes(send, 500, _HTML_500, "text/html; charset=utf-8")
            if fault != "no-validation":
                return await self.refuse(send, proto, err)
            call = Call(ChatRequest(prompt=_NO_VALIDATION_PROMPT, dialect=proto.name, stream=True))
        await self.respond(receive, send, proto, call, incoming, fault, bool(explicit))

    async def serve_chat(self, receive: Any, send: Any, call: Call, headers: dict[str, str],
                         fault: str | None) -> None:
        """A chat request with tool calls or reasoning (see chat_extras.call_for), already validated."""
        incoming = Incoming("/v1/chat/completions", headers=headers)
        explicit = bool(headers.get("x-fault", "").strip())
        await self.respond(receive, send, chat_extras.PROTOCOL, call, incoming, fault, explicit)

    async def respond(self, receive: Any, send: Any, proto: Protocol, call: Call, incoming: Incoming,
                      fault: str | None, explicit: bool) -> None:
        try:
            write = choose_writer(proto, fault, explicit)
        except ApiError as err:
            return await self.refuse(send, proto, err)
        encoder = proto.encoder(call, incoming, self.config, fault if fault in proto.faults else None)
        if not call.request.stream:
            text, finish = whole_text(call.request, self.config)
            body = dumps(encoder.complete(text, finish)).encode()
            return await _send_bytes(send, 200, body, "application/json")
        stream = ProtoStream(send, self.config, call, encoder, base_headers=CORS_HEADERS,
                             lateness=self.state.lateness,
                             pacer=self.state.pacer if self.config.shared_pacer else None)
        await self.chat._guarded(receive, send, lambda: write(stream), stream)

    async def refuse(self, send: Any, proto: Protocol, err: ApiError) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
        await _send_bytes(send, err.status, proto.error_body(err), "application/json", headers)

    def _rate_limited(self) -> ApiError | None:
        limiter = self.chat.limiter
        wait = limiter.take() if limiter is not None else 0.0
        if not wait:
            return None
        return ApiError(429, f"rate limit of {self.config.rate_limit:g} requests/s exceeded; retry later",
                        type="requests", code="rate_limit_exceeded",
                        headers={"Retry-After": str(max(1, round(wait + .5)))})

    async def _refused_credentials(self, send: Any, proto: Protocol, incoming: Incoming,
                                   fault: str | None) -> bool:
        """True when the request was refused for its key: 401 in the protocol's shape (auth-500: 500 text)."""
        wanted = self.config.api_key or (DEFAULT_FAULT_KEY if fault == "auth-500" else None)
        given = _given_key(incoming)
        if wanted is None or given == wanted:
            return False
        if fault == "auth-500":
            await _send_bytes(send, 500, AUTH_500_BODY, "text/plain; charset=utf-8")
            return True
        what = "no API key was given" if not given else "the API key is not valid"
        await self.refuse(send, proto, ApiError(
            401, f"{what}: send it as 'Authorization: Bearer KEY', x-api-key or x-goog-api-key",
            type="invalid_request_error", code="invalid_api_key"))
        return True
