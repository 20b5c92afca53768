"""Encoding of chat.completion chunks, SSE events and NDJSON lines.

One stream's id, created and model are fixed, so each chunk is a precomputed prefix + the JSON-escaped content +
a fixed suffix: the per-event cost stays at one json.dumps of the piece, which matters at thousands of streams.
"""

from __future__ import annotations

import json
import math
import time
import uuid


def token_estimate(chars: int) -> int:
    return max(1, math.ceil(chars / 4)) if chars else 0


class ChunkEncoder:
    """JSON text of the chunks of one completion (no framing)."""

    def __init__(self, model: str, completion_id: str | None = None, created: int | None = None):
        self.id = completion_id or f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time()) if created is None else created
        self.model = model
        head = json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model})[:-1]
        self._prefix = head + ', "choices": [{"index": 0, "delta": {'
        self._suffix = '}, "finish_reason": null}]}'

    def sse_content_parts(self) -> tuple[bytes, bytes, bytes]:
        """(head of the first event, head of the others, tail): an SSE content event is head + JSON string + tail,
        so the hot path joins three byte strings per event."""
        return (f'data: {self._prefix}"role": "assistant", "content": '.encode(),
                f'data: {self._prefix}"content": '.encode(), f"{self._suffix}\n\n".encode())

    def content(self, text: str, role: bool = False) -> str:
        role_part = '"role": "assistant", ' if role else ""
        return f'{self._prefix}{role_part}"content": {json.dumps(text, ensure_ascii=False)}{self._suffix}'

    def finish(self, reason: str = "stop") -> str:
        return json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})

    def usage(self, prompt_chars: int, completion_chars: int) -> str:
        p, c = token_estimate(prompt_chars), token_estimate(completion_chars)
        return json.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.model, "choices": [],
                           "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})

    def completion(self, text: str, prompt_chars: int, finish_reason: str = "stop") -> dict:
        """The non-streaming `chat.completion` object for the same answer."""
        p, c = token_estimate(prompt_chars), token_estimate(len(text))
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish_reason}],
                "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}


DONE = "[DONE]"


def sse(data: str) -> bytes:
    """One SSE event carrying `data` (which must hold no line break), the plain `data: ...\\n\\n` form."""
    return f"data: {data}\n\n".encode()


def ndjson(data: str) -> bytes:
    return f"{data}\n".encode()
