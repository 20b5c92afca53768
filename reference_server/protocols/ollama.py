"""Ollama's native API: `POST /api/chat` and `POST /api/generate`, streaming unless `"stream": false`.

NDJSON (`application/x-ndjson`), one object per line: /api/chat lines carry `message: {role, content}`,
/api/generate lines `response`; every line has `model`, `created_at` and `done: false`, and the last one has
`done: true` with `done_reason`, token counts and durations in nanoseconds (measured, not made up). Errors are
`{"error": "..."}`, mid-stream too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone

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
    optional_number,
    optional_object,
    required,
)
from reference_server.stream import NDJSON_TYPE

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_DONE_REASONS = {"stop": "stop", "length": "length"}


def _turns(messages: object) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise bad("'messages' must be a non-empty list of {role, content}", "messages", "invalid_type")
    turns = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise bad(f"'{where}.role' must be one of {sorted(_ROLES)}", f"{where}.role")
        content = m.get("content", "")
        if content is None and m["role"] == "assistant" and m.get("tool_calls"):
            content = ""
        if not isinstance(content, str):
            raise bad(f"'{where}.content' must be a string", f"{where}.content", "invalid_type")
        turns.append((m["role"], content))
    return turns


def _num_predict(options: dict) -> int | None:
    """`options.num_predict`: the token limit; -1 (no limit) and -2 (fill the context) mean none here."""
    value = options.get("num_predict")
    if value is None or value in (-1, -2):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad("'options.num_predict' must be a positive integer, -1 or -2", "options.num_predict")
    return value


def parse(data: dict, incoming: Incoming, config: ServerConfig) -> Call:
    model = model_name(data)
    stream = flag(data, "stream", True)  # Ollama streams unless told not to
    options = optional_object(data, "options")
    optional_number(options, "temperature", 0, 2, "options.temperature")
    max_tokens = _num_predict(options)
    if incoming.params["kind"] == "chat":
        prompt, total = conversation(_turns(data.get("messages")), "messages", config)
    else:
        system = data.get("system") or ""
        if not isinstance(system, str):
            raise bad("'system' must be a string", "system", "invalid_type")
        prompt, total = conversation([("user", required(data, "prompt", str, "a string"))], "prompt", config,
                                     len(system))
    request = ChatRequest(prompt=prompt, dialect="ollama", stream=stream, max_tokens=max_tokens, model=model,
                          prompt_chars=total)
    return Call(request)


def _now() -> str:
    # RFC 3339 in UTC with microseconds, as Ollama writes it (it gives nanoseconds; clients parse either).
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class OllamaEncoder:
    content_type = NDJSON_TYPE

    def __init__(self, call: Call, incoming: Incoming, config: ServerConfig, fault: str | None = None):
        self.chat = incoming.params["kind"] == "chat"
        self.model = call.request.model or config.model
        self.prompt_tokens = token_estimate(call.request.prompt_chars)
        self.started_ns = time.perf_counter_ns()
        self.first_ns: int | None = None
        self.chars = 0
        # A line is head + created_at + middle + the JSON string + tail.
        self._head = f'{{"model": {dumps(self.model)}, "created_at": "'
        self._mid = '", "message": {"role": "assistant", "content": ' if self.chat else '", "response": '
        self._tail = '}, "done": false}\n' if self.chat else ', "done": false}\n'

    def _text_field(self, text: str) -> dict:
        return {"message": {"role": "assistant", "content": text}} if self.chat else {"response": text}

    def opening(self) -> list[bytes]:
        return []

    def body(self, pieces: Iterable[str]) -> Iterator[bytes]:
        for piece in pieces:
            if self.first_ns is None:
                self.first_ns = time.perf_counter_ns()
            self.chars += len(piece)
            yield f"{self._head}{_now()}{self._mid}{dumps(piece)}{self._tail}".encode()

    def _final(self, text: str, finish: str) -> dict:
        now = time.perf_counter_ns()
        first = self.first_ns or now
        return {"model": self.model, "created_at": _now(), **self._text_field(text), "done": True,
                "done_reason": _DONE_REASONS[finish], "total_duration": now - self.started_ns,
                "load_duration": 0,
                "prompt_eval_count": self.prompt_tokens, "prompt_eval_duration": first - self.started_ns,
                "eval_count": token_estimate(self.chars or len(text)), "eval_duration": now - first}

    def closing(self, finish: str, *, terminal: bool = True) -> list[bytes]:
        return [f"{dumps(self._final('', finish))}\n".encode()] if terminal else []

    def error(self, message: str) -> list[bytes]:
        return [f"{dumps({'error': message})}\n".encode()]

    def complete(self, text: str, finish: str) -> dict:
        return self._final(text, finish)


def error_body(err: ApiError) -> bytes:
    return dumps({"error": err.message}).encode()


PROTOCOL = Protocol("ollama", "Ollama", parse, OllamaEncoder, error_body)
