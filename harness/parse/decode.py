"""Decode parsed events into typed chunks: content delta, role, finish_reason, usage, error, ``[DONE]``.

One Chunk per event, whatever it carries, so checks can point at any event by offset. Decoding never raises:
invalid JSON becomes ``json_error``; an unknown shape becomes a chunk with ``content is None``.

Where the text lives depends on the wire protocol: the request's dialect (harness/dialects/) reads each event.
For the chat family (the seed, OpenAI Chat Completions, and the lenient ``minimal`` family) extraction walks a
short list of known shapes (first match wins):

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

from harness.dialects import Dialect
from harness.dialects import get as get_dialect
from harness.dialects.chat import chat_fields

DONE_SENTINEL = "[DONE]"


@dataclass(slots=True)  # not frozen: building 100 k+ of them must stay cheap
class Chunk:
    """One decoded event.

    ``json`` is re-parsed from ``raw`` on each access rather than kept: a hostile stream of a million tiny
    events would otherwise hold a million dicts (about 1 KB each). Checks that look at it read it once.
    """

    t: float  # arrival time of the read that completed the event (seconds since request start)
    offset: int  # byte offset of the event in the body
    raw: str  # the event's data text
    json_error: str | None = None  # why the data is not JSON (None when it is, or for [DONE])
    done: bool = False  # data == "[DONE]" (SSE) or an NDJSON object with "done": true
    content: str | None = None  # the text delta; None when the event carries no content field
    role: str | None = None
    finish_reason: str | None = None
    usage: dict | None = None
    error: Any = None  # the error payload when the event carries a truthy "error"
    event: str = "message"  # SSE event type
    reasoning: str | None = None  # reasoning/thinking delta: not answer text (TTFT ignores it)
    tool_calls: list | None = None  # Chat Completions delta.tool_calls fragments, as sent

    @property
    def json(self) -> Any:
        """The parsed object; None for ``[DONE]`` and for data that is not JSON."""
        if self.json_error is not None or (self.done and self.raw.strip() == DONE_SENTINEL):
            return None
        try:
            return json.loads(self.raw)
        except (ValueError, RecursionError):  # pragma: no cover - decode_event already recorded it
            return None

    @property
    def has_text(self) -> bool:
        """True when the chunk carries at least one character of content."""
        return bool(self.content)


def decode_event(data: str, t: float = 0.0, offset: int = 0, event: str = "message",
                 dialect: Dialect | None = None) -> Chunk:
    """Decode one event's data text, reading its fields the way ``dialect`` (harness/dialects/) says."""
    if data == DONE_SENTINEL or (len(data) < 16 and data.strip() == DONE_SENTINEL):
        return Chunk(t, offset, data, None, True, event=event)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        return Chunk(t, offset, data, str(exc) or type(exc).__name__, event=event)
    if not isinstance(obj, dict):
        return Chunk(t, offset, data, event=event)
    f = (dialect.fields(obj, event) if dialect is not None and not dialect.chat_family else chat_fields(obj))
    return Chunk(t, offset, data, None, f.terminal, f.content, f.role, f.finish_reason, f.usage, f.error or None,
                 event, f.reasoning, f.tool_calls)


def decode(events: Iterable[Any], dialect: str | Dialect | None = None) -> list[Chunk]:
    """One Chunk per parsed event (SSEEvent or NDJSON event: anything with data, t, offset)."""
    if isinstance(dialect, str):
        dialect = get_dialect(dialect)
    chunks = []
    for ev in events:
        t = getattr(ev, "t", None)
        chunks.append(decode_event(
            getattr(ev, "data", ""),
            t=0.0 if t is None else float(t),
            offset=int(getattr(ev, "offset", 0) or 0),
            event=getattr(ev, "event", "message") or "message",
            dialect=dialect,
        ))
    return chunks


def content_chunks(chunks: Iterable[Chunk]) -> list[Chunk]:
    """Chunks that carry at least one character of content, in arrival order."""
    return [c for c in chunks if c.has_text]


def text_of(chunks: Iterable[Chunk]) -> str:
    """The whole answer: every content delta joined."""
    return "".join(c.content for c in chunks if c.content)
