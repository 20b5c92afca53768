"""The seed's ``{"prompt", "stream": true}`` and OpenAI Chat Completions: one event family (choices[].delta),
``data: [DONE]`` at the end. Tool-call fragments (``delta.tool_calls``) and reasoning deltas
(``delta.reasoning_content``, DeepSeek and older vLLM; ``delta.reasoning``, vLLM now and OpenRouter) are read
here; reasoning is not answer text."""

from __future__ import annotations

from typing import Any

from harness.dialects.base import Dialect, Fields

DEFAULT_MODEL = "streamconform-test"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def chat_fields(obj: dict) -> Fields:
    """The fields of one chat-family object, and of the other common shapes minimal servers send (the ``minimal``
    profile's lenient family: choices[].text, message.content, response, content, text, token)."""
    out = Fields(usage=obj["usage"] if isinstance(obj.get("usage"), dict) else None,
                 error=obj.get("error") or None, terminal=obj.get("done") is True)
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        out.finish_reason = _str(choice.get("finish_reason"))
        delta = choice.get("delta")
        holder = delta if isinstance(delta, dict) else choice.get("message")
        if isinstance(holder, dict):
            out.content, out.role = _str(holder.get("content")), _str(holder.get("role"))
            out.reasoning = _str(holder.get("reasoning_content")) or _str(holder.get("reasoning"))
            calls = holder.get("tool_calls")
            out.tool_calls = calls if isinstance(calls, list) else None
        if out.content is None:
            out.content = _str(choice.get("text"))
        return out
    out.finish_reason = _str(obj.get("finish_reason", obj.get("done_reason")))
    message = obj.get("message")
    if isinstance(message, dict):
        out.content, out.role = _str(message.get("content")), _str(message.get("role"))
        return out
    for key in ("response", "content", "text", "token"):
        if isinstance(obj.get(key), str):
            out.content = obj[key]
            return out
    delta = obj.get("delta")
    if isinstance(delta, dict):
        out.content = _str(delta.get("content"))
    else:
        out.content = _str(delta)
    return out


class PromptDialect(Dialect):
    def body(self, prompt: Any, *, model: str, stream: Any = True, max_tokens: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"prompt": prompt, "stream": stream}
        if max_tokens:
            body["max_tokens"] = max_tokens
        return body

    def fields(self, obj: dict, event: str = "message") -> Fields:
        return chat_fields(obj)


class OpenAIChatDialect(Dialect):
    def body(self, prompt: Any, *, model: str, stream: Any = True, max_tokens: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or DEFAULT_MODEL, "messages": [{"role": "user", "content": prompt}],
                                "stream": stream}
        if max_tokens:
            body["max_tokens"] = max_tokens
        return body

    def fields(self, obj: dict, event: str = "message") -> Fields:
        return chat_fields(obj)


PROMPT = PromptDialect("prompt", "the seed's {\"prompt\": ..., \"stream\": true}", prompt_key="prompt")
OPENAI = OpenAIChatDialect("openai", "OpenAI Chat Completions (model, messages, stream)", prompt_key="messages")
