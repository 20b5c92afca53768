"""Anthropic Messages: `POST /v1/messages` with `stream: true` (headers `anthropic-version`, `x-api-key`).

Events (each `event: <type>` + `data: {"type": <type>, ...}`): message_start, content_block_start (a text
block), ping, content_block_delta* (text_delta), content_block_stop, message_delta (stop_reason,
usage.output_tokens), message_stop. Errors are `{"type": "error", "error": {"type": ..., "message": ...}}`,
with the HTTP status the API gives each type; a failure mid-stream is the same object as an `error` event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator

from reference_server.chunks import token_estimate
from reference_server.config import ServerConfig
from reference_server.protocols.base import (
    ApiError,
    Call,
    ChatRequest,
    Incoming,
    Protocol,
    bad,
    conversation,
    dumps,
    flag,
    model_name,
    named_event,
    optional_number,
    required,
    texts,
)
from reference_server.stream import SSE_TYPE

_ROLES = frozenset({"user", "assistant"})
_TEXT = frozenset({"text"})
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
                429: "rate_limit_error", 529: "overloaded_error"}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def _content(value: object, where: str) -> str:
    return value if isinstance(value, str) else texts(value, where, _TEXT)


def _turns(messages: object) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list of {role, content}", "messages", "invalid_type")
    turns = []
    for i, m in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise bad(f"'{where}.role' must be 'user' or 'assistant'", f"{where}.role")
        if "content" not in m:
            raise bad(f"'{where}.content' is required", f"{where}.content", "missing_required_parameter")
        turns.append((m["role"], _content(m["content"], f"{where}.content")))
    return turns


def parse(data: dict, incoming: Incoming, config: ServerConfig) -> Call:
    if not incoming.headers.get("anthropic-version", "").strip():
        raise bad("anthropic-version: header is required", "anthropic-version", "missing_required_header")
    model = model_name(data)
    max_tokens = required(data, "max_tokens", int, "an integer >= 1, the most tokens to generate")
    if max_tokens < 1:
        raise bad("'max_tokens' must be an integer >= 1", "max_tokens")
    stream = flag(data, "stream", False)
    optional_number(data, "temperature", 0, 1)
    system = data.get("system")
    system_text = "" if system is None else _content(system, "system")
    prompt, total = conversation(_turns(data.get("messages")), "messages", config, len(system_text))
    request = ChatRequest(prompt=prompt, dialect="anthropic", stream=stream, max_tokens=max_tokens,
                          model=model, prompt_chars=total)
    return Call(request)


class AnthropicEncoder:
    content_type = SSE_TYPE

    def __init__(self, call: Call, incoming: Incoming, config: ServerConfig, fault: str | None = None):
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self.model = call.request.model or config.model
        self.input_tokens = token_estimate(call.request.prompt_chars)
        self.fault = fault
        self.chars = 0
        self._delta_head = b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": '
        self._delta_mid = b', "delta": {"type": "text_delta", "text": '

    def _message(self, content: list, stop_reason: str | None, output_tokens: int) -> dict:
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": output_tokens}}

    def opening(self) -> list[bytes]:
        return [named_event("message_start", dumps({"type": "message_start",
                                                    "message": self._message([], None, 1)})),
                named_event("content_block_start", dumps({"type": "content_block_start", "index": 0,
                                                          "content_block": {"type": "text", "text": ""}})),
                named_event("ping", '{"type": "ping"}')]

    def body(self, pieces: Iterable[str]) -> Iterator[bytes]:
        for i, piece in enumerate(pieces):
            self.chars += len(piece)
            index = b"1" if self.fault == "delta-unstarted-block" and i == 3 else b"0"
            yield b"".join((self._delta_head, index, self._delta_mid, dumps(piece).encode(), b"}}\n\n"))

    def closing(self, finish: str, *, terminal: bool = True) -> list[bytes]:
        delta = {"type": "message_delta",
                 "delta": {"stop_reason": _STOP_REASONS[finish], "stop_sequence": None},
                 "usage": {"output_tokens": token_estimate(self.chars)}}
        events = [named_event("content_block_stop", '{"type": "content_block_stop", "index": 0}'),
                  named_event("message_delta", dumps(delta))]
        if terminal:
            events.append(named_event("message_stop", '{"type": "message_stop"}'))
        return events

    def error(self, message: str) -> list[bytes]:
        payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        return [named_event("error", dumps(payload))]

    def complete(self, text: str, finish: str) -> dict:
        content = [{"type": "text", "text": text}]
        return self._message(content, _STOP_REASONS[finish], token_estimate(len(text)))


def error_body(err: ApiError) -> bytes:
    kind = _ERROR_TYPES.get(err.status, "api_error")
    return dumps({"type": "error", "error": {"type": kind, "message": err.message}}).encode()


PROTOCOL = Protocol("anthropic", "Anthropic Messages", parse, AnthropicEncoder, error_body,
                    frozenset({"delta-unstarted-block"}))
