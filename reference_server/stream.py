"""One streamed response: the answer's pieces, the chunk encoder, and the primitives a fault combines.

`Stream` knows what a correct response looks like (`content_events`, `tail_events`, `play`); each fault in
`reference_server/faults.py` is a short function over these primitives that changes exactly one thing.
Pacing is scheduled against absolute times (start + ttft + i * gap) so emission lateness does not accumulate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from reference_server.chunks import DONE, ChunkEncoder, ndjson, sse
from reference_server.config import ServerConfig
from reference_server.generate import answer_json_pieces, answer_pieces, answer_text, split_chunks
from reference_server.lateness import LatenessHistogram
from reference_server.pacer import Pacer
from reference_server.validate import ApiError, ChatRequest

SSE_TYPE = "text/event-stream; charset=utf-8"
NDJSON_TYPE = "application/x-ndjson"
Send = Callable[[dict], Any]


class Stream:
    def __init__(self, send: Send, config: ServerConfig, request: ChatRequest, *, ndjson_framing: bool = False,
                 base_headers: Iterable[tuple[bytes, bytes]] = (), lateness: LatenessHistogram | None = None,
                 pacer: Pacer | None = None):
        self.send = send
        self.config = config
        self.request = request
        self.ndjson = ndjson_framing
        self.base_headers = list(base_headers)
        self.encoder = ChunkEncoder(request.model or config.model)
        self.loop = asyncio.get_running_loop()
        self.started = False
        self.lateness = lateness
        self.pacer = pacer
        self.finish_reason = "stop"
        target = config.target_chars
        if request.max_tokens is not None and request.max_tokens * 4 < target:
            target = request.max_tokens * 4
            self.finish_reason = "length"
        self.target_chars = target
        self._text: str | None = None
        self._pieces: list[str] | None = None

    # --- content -------------------------------------------------------------------------------------------------
    def answer(self, prompt: str | None = None, target: int | None = None) -> str:
        text = answer_text(self.request.prompt if prompt is None else prompt, target or self.target_chars)
        if self.finish_reason == "length":
            text = text[: self.target_chars]
        return text

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self.pieces)
        return self._text

    @property
    def pieces(self) -> list[str]:
        if self._pieces is None:
            self._pieces = list(self.iter_pieces())
        return self._pieces

    def iter_pieces(self, prompt: str | None = None, target: float | None = None) -> Iterator[str]:
        """The answer's pieces, generated lazily (the normal path never holds the whole answer)."""
        pieces = answer_pieces(self.request.prompt if prompt is None else prompt, target or self.target_chars,
                                    self.config.chunk_chars, self.config.min_chunks)
        if self.finish_reason == "length":
            return _limit(pieces, self.target_chars)
        return pieces

    def iter_json_pieces(self) -> Iterator[tuple[int, bytes]]:
        """(length, JSON string literal) per piece of the answer; the normal path's cached, pre-escaped form."""
        if self.finish_reason == "length":
            import json

            return ((len(p), json.dumps(p, ensure_ascii=False).encode()) for p in self.iter_pieces())
        return answer_json_pieces(self.request.prompt, self.target_chars, self.config.chunk_chars,
                                  self.config.min_chunks)

    def split(self, text: str, min_chunks: int | None = None, chunk_chars: int | None = None) -> list[str]:
        return split_chunks(text, chunk_chars or self.config.chunk_chars,
                            self.config.min_chunks if min_chunks is None else min_chunks)

    # --- events --------------------------------------------------------------------------------------------------
    def frame(self, data: str) -> bytes:
        return ndjson(data) if self.ndjson else sse(data)

    def content_payloads(self, pieces: list[str] | None = None) -> list[str]:
        pieces = self.pieces if pieces is None else pieces
        return [self.encoder.content(p, role=(i == 0)) for i, p in enumerate(pieces)]

    def tail_payloads(self, text: str | None = None, done: bool = True, chars: int | None = None) -> list[str]:
        out = [self.encoder.finish(self.finish_reason)]
        if self.request.include_usage:
            if chars is None:
                chars = len(self.text if text is None else text)
            out.append(self.encoder.usage(self.request.prompt_chars, chars))
        if done and not self.ndjson:  # NDJSON has no sentinel: the finish_reason chunk and EOF end it
            out.append(DONE)
        return out

    def content_events(self, pieces: list[str] | None = None) -> list[bytes]:
        return [self.frame(p) for p in self.content_payloads(pieces)]

    def tail_events(self, text: str | None = None, done: bool = True, chars: int | None = None) -> list[bytes]:
        return [self.frame(p) for p in self.tail_payloads(text, done, chars)]

    # --- I/O -----------------------------------------------------------------------------------------------------
    @property
    def content_type(self) -> str:
        return NDJSON_TYPE if self.ndjson else SSE_TYPE

    async def start(self, status: int = 200, content_type: str | None = None,
                    extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        headers = [(b"content-type", (content_type or self.content_type).encode()),
                   (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"), *self.base_headers]
        headers += [(k.lower().encode(), v.encode()) for k, v in extra_headers]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        self.started = True

    async def write(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data: bytes = b"") -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": False})

    async def play(self, content: Iterable[bytes], tail: list[bytes] | None = None, *, ttft_s: float | None = None,
                   gap_s: float | Callable[[int], float] | None = None, write: Callable[[bytes], Any] | None = None,
                   start: float | None = None) -> None:
        """Write `content` events paced (first after ttft, then one per gap), then `tail` in one write.

        Due times are absolute (lateness does not accumulate), but two events are never written closer than half a
        gap: a server stalled past several due times (a loaded machine) catches up at twice the pace instead of
        flushing the overdue events as one burst, which a client would rightly measure as buffered output."""
        write = write or self.write
        ttft = self.config.ttft_ms / 1000 if ttft_s is None else ttft_s
        gap = self.config.gap_ms / 1000 if gap_s is None else gap_s
        loop_time = self.loop.time
        when = (loop_time() if start is None else start) + ttft
        lateness = self.lateness
        last: float | None = None
        for i, event in enumerate(content):
            if i:
                step = gap(i) if callable(gap) else gap
                when += step
                if last is not None:
                    when = max(when, last + step / 2)
            delay = when - loop_time()
            if delay > 0:
                await asyncio.sleep(delay)
            if lateness is not None:
                lateness.add(loop_time() - when)
            await write(event)
            last = loop_time()
        if tail:
            await write(b"".join(tail))

    async def error_event(self, message: str, type: str = "server_error", code: str | None = "stream_failed") -> None:
        """A failure after the stream began: the OpenAI error object as an event, then the end marker."""
        err = ApiError(500, message, type=type, code=code)
        await self.write(self.frame(err.body().decode()) + (b"" if self.ndjson else sse(DONE)))


def _limit(pieces: Iterator[str], chars: int) -> Iterator[str]:
    """Stop after `chars` characters (max_tokens), cutting the last piece."""
    left = chars
    for p in pieces:
        if left <= 0:
            return
        yield p[:left]
        left -= len(p)
