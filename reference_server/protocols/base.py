"""What every wire protocol shares: the request as the endpoint knows it, the encoder contract, the stream.

A protocol module reads a decoded JSON body into a `Call` (a `ChatRequest` plus what only that protocol needs)
and writes the answer with an encoder; the text and its pace are the chat endpoint's (generate.py, the shared
pacer), so one prompt gets the same answer at the same pace in every protocol. Bad input raises `ApiError`,
which each protocol renders in its own error shape (`Protocol.error_body`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from typing import Protocol as Interface

from reference_server.config import ServerConfig
from reference_server.generate import answer_text
from reference_server.stream import Send, Stream
from reference_server.validate import ApiError, ChatRequest, _bad, _check_prompt

__all__ = ["ApiError", "Call", "ChatRequest", "Encoder", "Incoming", "Protocol", "ProtoStream"]


@dataclass(frozen=True)
class Incoming:
    """What is known of a request before its body is read."""
    path: str
    params: dict[str, str] = field(default_factory=dict)
    """From the route: {"kind": "chat" | "generate"} for Ollama, {"model", "method"} for Gemini."""
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One validated request: what the chat endpoint's machinery needs, and what only its protocol does."""
    request: ChatRequest
    detail: Any = None


class Encoder(Interface):
    """The bytes of one response in one protocol; `finish` is "stop" or "length" (cut by the token limit)."""
    content_type: str

    def opening(self) -> list[bytes]:
        """Events written as soon as the response starts (before the first paced one)."""

    def body(self, pieces: Iterable[str]) -> Iterator[bytes]:
        """One paced event per piece of the answer (lazily: the encoder keeps only what its closing needs)."""

    def closing(self, finish: str, *, terminal: bool = True) -> list[bytes]:
        """The events after the last piece; `terminal=False` leaves out the protocol's end marker."""

    def error(self, message: str) -> list[bytes]:
        """A failure after the stream began, as the protocol reports one mid-stream."""

    def complete(self, text: str, finish: str) -> dict:
        """The whole answer as the protocol's non-streaming response object."""


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    parse: Callable[[dict, Incoming, ServerConfig], Call]
    encoder: Callable[[Call, Incoming, ServerConfig, str | None], Encoder]
    """(call, incoming, config, fault name) -> a fresh encoder: protocol-only faults are encoding changes."""
    error_body: Callable[[ApiError], bytes]
    faults: frozenset[str] = frozenset()
    """The faults only this protocol has (protocols/faults.py describes them)."""


class ProtoStream(Stream):
    """A Stream whose events come from a protocol encoder (the generic writers in protocols/writers.py)."""

    def __init__(self, send: Send, config: ServerConfig, call: Call, encoder: Encoder, **kw: Any):
        super().__init__(send, config, call.request, **kw)
        self.call = call
        self.enc = encoder

    @property
    def content_type(self) -> str:
        return self.enc.content_type

    async def error_event(self, message: str, type: str = "server_error",
                          code: str | None = "stream_failed") -> None:
        # The app calls this when a writer fails after the start: the protocol's error event, not OpenAI's.
        await self.write(b"".join(self.enc.error(message)))


# --- encoding helpers ---------------------------------------------------------------------------------------
def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def named_event(name: str, payload: str) -> bytes:
    """An SSE event with an event name (Responses, Anthropic): `event: NAME` then one data line."""
    return f"event: {name}\ndata: {payload}\n\n".encode()


def whole_text(request: ChatRequest, config: ServerConfig) -> tuple[str, str]:
    """(text, finish) of a non-streamed answer: the same cut as a stream's (Stream.__init__)."""
    target = config.target_chars
    if request.max_tokens is not None and request.max_tokens * 4 < target:
        return answer_text(request.prompt, request.max_tokens * 4)[: request.max_tokens * 4], "length"
    return answer_text(request.prompt, target), "stop"


# --- validation helpers -------------------------------------------------------------------------------------
def bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return _bad(message, param, code)


def required(data: dict, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in data or data[key] is None:
        raise bad(f"'{key}' is required ({what})", key, "missing_required_parameter")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise bad(f"'{key}' must be {what}", key, "invalid_type")
    return value


def model_name(data: dict) -> str:
    model = required(data, "model", str, "a string")
    if not model.strip():
        raise bad("'model' must not be empty", "model")
    return model


def flag(data: dict, key: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(f"'{key}' must be a boolean (true or false)", key, "invalid_type")
    return value


def optional_int(data: dict, key: str, minimum: int, where: str | None = None) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad(f"'{where or key}' must be an integer >= {minimum}", where or key, "invalid_type")
    return value


def optional_number(data: dict, key: str, low: float, high: float, where: str | None = None) -> None:
    value = data.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not low <= value <= high):
        raise bad(f"'{where or key}' must be a number from {low:g} to {high:g}", where or key)


def optional_object(data: dict, key: str) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(f"'{key}' must be an object", key, "invalid_type")
    return value


def conversation(turns: list[tuple[str, str]], param: str, config: ServerConfig,
                 extra_chars: int = 0) -> tuple[str, int]:
    """(prompt, total characters) from (role, text) turns: the prompt is the last user turn's text."""
    prompts = [text for role, text in turns if role == "user"]
    if not prompts:
        raise bad(f"'{param}' must contain at least one message with role 'user'", param)
    limit = config.max_prompt_chars
    prompt = _check_prompt(prompts[-1], f"{param}[].content", limit)
    total = sum(len(text) for _, text in turns) + extra_chars
    if total > limit:
        raise bad(f"the input holds {total} characters; the limit is {limit}", param, "prompt_too_long")
    return prompt, total


def texts(parts: object, where: str, kinds: frozenset[str], key: str = "text") -> str:
    """Text parts joined by newlines: a list of {"type": one of `kinds`, key: str} (no type needed when
    `kinds` is empty: Gemini's parts have none); anything else is refused: this server reads text only."""
    if not isinstance(parts, list) or not parts:
        raise bad(f"'{where}' must be a non-empty list of text parts", where, "invalid_type")
    out = []
    for i, part in enumerate(parts):
        ok = isinstance(part, dict) and isinstance(part.get(key), str)
        if ok and kinds:
            ok = part.get("type") in kinds
        if not ok:
            allowed = f" of type {'/'.join(sorted(kinds))}" if kinds else ""
            raise bad(f"'{where}[{i}]' must be a text part{allowed} with a string '{key}' (this server reads "
                      "text only)", f"{where}[{i}]", "invalid_type")
        out.append(part[key])
    return "\n".join(out)
