"""Decode parsed events into typed chunks: content delta, role, finish_reason, usage, error, ``[DONE]``.

One Chunk per event, whatever it carries, so checks can point at any event by offset. Decoding never raises:
invalid JSON becomes ``json_error``; an unknown shape becomes a chunk with ``content is None``.

Where the text lives depends on the server family, so extraction walks a short list of known shapes (first
match wins):

    choices[0].delta.content    OpenAI chat.completion.chunk (and the seed's minimal delta)
    choices[0].text             OpenAI legacy completions, vLLM /v1/completions
    message.content             Ollama /api/chat NDJSON
    response                    Ollama /api/generate NDJSON
    content | text | token      bare minimal servers
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DONE_SENTINEL = "[DONE]"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One decoded event."""

    t: float  # arrival time of the read that completed the event (seconds since request start)
    offset: int  # byte offset of the event in the body
    raw: str  # the event's data text
    json: Any = None  # the parsed object, None for [DONE] or invalid JSON
    json_error: str | None = None  # why the data is not JSON (None when it is, or for [DONE])
    done: bool = False  # data == "[DONE]" (SSE) or an NDJSON object with "done": true
    content: str | None = None  # the text delta; None when the event carries no content field
    role: str | None = None
    finish_reason: str | None = None
    usage: dict | None = None
    error: Any = None  # the error payload when the event carries a truthy "error"
    event: str = "message"  # SSE event type

    @property
    def has_text(self) -> bool:
        """True when the chunk carries at least one character of content."""
        return bool(self.content)


def _first_choice(obj: dict) -> dict | None:
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def _content_of(obj: dict) -> str | None:
    choice = _first_choice(obj)
    if choice is not None:
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            return delta["content"]
        if isinstance(choice.get("text"), str):
            return choice["text"]
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return message["content"]
        return None
    message = obj.get("message")
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        return message["content"]
    for key in ("response", "content", "text", "token"):
        if isinstance(obj.get(key), str):
            return obj[key]
    delta = obj.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
        return delta["content"]
    if isinstance(delta, str):
        return delta
    return None


def _role_of(obj: dict) -> str | None:
    choice = _first_choice(obj)
    holder = choice.get("delta") if choice is not None else obj.get("message")
    if isinstance(holder, dict) and isinstance(holder.get("role"), str):
        return holder["role"]
    return None


def _finish_reason_of(obj: dict) -> str | None:
    choice = _first_choice(obj)
    if choice is not None:
        value = choice.get("finish_reason")
    else:
        value = obj.get("finish_reason", obj.get("done_reason"))
    return value if isinstance(value, str) else None


def decode_event(data: str, t: float = 0.0, offset: int = 0, event: str = "message") -> Chunk:
    """Decode one event's data text."""
    if data.strip() == DONE_SENTINEL:
        return Chunk(t=t, offset=offset, raw=data, done=True, event=event)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        return Chunk(t=t, offset=offset, raw=data, json_error=str(exc) or type(exc).__name__, event=event)
    if not isinstance(obj, dict):
        return Chunk(t=t, offset=offset, raw=data, json=obj, event=event)
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else None
    error = obj.get("error") or None
    return Chunk(
        t=t,
        offset=offset,
        raw=data,
        json=obj,
        done=obj.get("done") is True,  # Ollama-style NDJSON end marker
        content=_content_of(obj),
        role=_role_of(obj),
        finish_reason=_finish_reason_of(obj),
        usage=usage,
        error=error,
        event=event,
    )


def decode(events: Iterable[Any]) -> list[Chunk]:
    """One Chunk per parsed event (SSEEvent or NDJSON event: anything with data, t, offset)."""
    chunks = []
    for ev in events:
        t = getattr(ev, "t", None)
        chunks.append(decode_event(
            getattr(ev, "data", ""),
            t=0.0 if t is None else float(t),
            offset=int(getattr(ev, "offset", 0) or 0),
            event=getattr(ev, "event", "message") or "message",
        ))
    return chunks


def content_chunks(chunks: Iterable[Chunk]) -> list[Chunk]:
    """Chunks that carry at least one character of content, in arrival order."""
    return [c for c in chunks if c.has_text]


def text_of(chunks: Iterable[Chunk]) -> str:
    """The whole answer: every content delta joined."""
    return "".join(c.content for c in chunks if c.content)
