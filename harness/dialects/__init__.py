"""One module per wire protocol; ``get(name)`` is what the other stages ask (see base.py for the interface).

    prompt            the seed's {"prompt", "stream": true}            SSE or NDJSON, data: [DONE]
    openai            OpenAI Chat Completions (+ tool calls, reasoning) SSE, data: [DONE]
    openai-responses  OpenAI Responses                                  SSE typed events, response.completed
    anthropic         Anthropic Messages                                SSE typed events, message_stop
    ollama            Ollama /api/chat and /api/generate               NDJSON, clean end (done: true accepted)
    gemini            Gemini streamGenerateContent?alt=sse              SSE, clean end (finishReason accepted)
"""

from __future__ import annotations

from harness.dialects.anthropic import ANTHROPIC
from harness.dialects.base import CLEAN_EOF, SENTINEL, TERMINAL_EVENT, Dialect, Fields
from harness.dialects.chat import OPENAI, PROMPT
from harness.dialects.gemini import GEMINI
from harness.dialects.ollama import OLLAMA
from harness.dialects.responses import RESPONSES

REGISTRY: dict[str, Dialect] = {d.name: d for d in (PROMPT, OPENAI, RESPONSES, ANTHROPIC, OLLAMA, GEMINI)}
NAMES = tuple(REGISTRY)

__all__ = ["CLEAN_EOF", "NAMES", "REGISTRY", "SENTINEL", "TERMINAL_EVENT", "Dialect", "Fields", "get"]


def get(name: str | None) -> Dialect:
    """The dialect called ``name``; the seed's for None or a name no protocol has ("raw" probe requests)."""
    return REGISTRY.get(name or "prompt", PROMPT)
