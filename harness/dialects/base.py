"""What a wire protocol ("dialect") is to the harness: how to ask, where the answer's text is, how the stream ends.

Capture, parse, decode and the checks ask the dialect and never branch on its name. Each protocol is one module in
this package with one ``Dialect`` subclass; ``harness.dialects.get(name)`` returns its instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How a protocol says the answer is complete.
SENTINEL = "sentinel"  # a data: [DONE] event (OpenAI Chat Completions, the seed)
TERMINAL_EVENT = "terminal-event"  # one event of a named type, last (Responses, Anthropic)
CLEAN_EOF = "clean-eof"  # no marker: the HTTP body ending cleanly (NDJSON, Gemini); a final marker is accepted


@dataclass(slots=True)
class Fields:
    """What one event carries, in the harness's terms (harness/parse/decode.py builds a Chunk from it)."""

    content: str | None = None  # answer text delta
    reasoning: str | None = None  # reasoning / thinking text delta: not answer text (TTFT ignores it)
    role: str | None = None
    finish_reason: str | None = None
    usage: dict | None = None  # normalised: completion_tokens (and prompt_tokens, total_tokens when given)
    error: Any = None  # the error payload when the event reports one
    terminal: bool = False  # the protocol's own end of stream
    tool_calls: list | None = None  # Chat Completions delta.tool_calls fragments, as sent


@dataclass(frozen=True)
class Dialect:
    name: str
    description: str
    stream_format: str = "sse"  # "sse" | "ndjson"
    end: str = SENTINEL
    terminal_events: tuple[str, ...] = ()
    # JSON Schema (schemas/) of one event in this protocol; None: the profile's schema (the chat family).
    event_schema: str | None = None
    default_path: str = "/v1/chat/completions"
    # The body key(s) holding the conversation or prompt: the bad-request probes remove or mistype it.
    prompt_key: str = "prompt"
    extra_required: tuple[str, ...] = field(default=())  # other required body keys (Anthropic's max_tokens)

    # -- the request ---------------------------------------------------------------------------------------------
    def body(self, prompt: Any, *, model: str, stream: Any = True, max_tokens: int | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def url(self, url: str, model: str) -> str:
        """The URL to send to (Gemini names the model and the SSE switch in it)."""
        return url

    def headers(self, api_key: str | None) -> dict[str, str]:
        """Protocol headers, credentials included (most take a Bearer token)."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def accept(self) -> str:
        return "application/x-ndjson" if self.stream_format == "ndjson" else "text/event-stream"

    # -- the answer ----------------------------------------------------------------------------------------------
    def fields(self, obj: dict, event: str = "message") -> Fields:
        raise NotImplementedError

    def protocol_problems(self, chunks: list) -> list[tuple[Any, str]] | None:
        """(chunk, what is wrong) for each breach of the protocol's event order and numbering; None when the
        protocol has no such rules (stream.protocol then does not apply)."""
        return None

    def error_ok(self, obj: Any) -> bool | None:
        """True when ``obj`` is this protocol's own well-formed error object; None: judge by the OpenAI shape."""
        return None

    @property
    def chat_family(self) -> bool:
        """The seed and OpenAI Chat Completions: chunks with choices[], [DONE], finish_reason and usage rules."""
        return self.end == SENTINEL


def usage_of(completion: Any, prompt: Any = None) -> dict | None:
    """A usage dict normalised to OpenAI's names (None when the protocol gave no count)."""
    if not isinstance(completion, int) or isinstance(completion, bool):
        return None
    out = {"completion_tokens": completion}
    if isinstance(prompt, int) and not isinstance(prompt, bool):
        out.update(prompt_tokens=prompt, total_tokens=prompt + completion)
    return out
