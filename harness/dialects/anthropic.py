"""Anthropic Messages (``POST /v1/messages``): ``message_start``, ``content_block_start``, ``content_block_delta``
(``text_delta``, ``thinking_delta``, ``input_json_delta``, ``signature_delta``), ``content_block_stop``,
``message_delta`` (``stop_reason``, cumulative ``usage``), ``message_stop``; ``ping`` anywhere, unknown events
tolerated. ``max_tokens`` is required; credentials go in ``x-api-key`` with an ``anthropic-version``."""

from __future__ import annotations

from typing import Any

from harness.dialects.base import TERMINAL_EVENT, Dialect, Fields, usage_of
from harness.dialects.chat import DEFAULT_MODEL

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # required by the protocol; generous enough for the profiles' length thresholds


class AnthropicDialect(Dialect):
    def body(self, prompt: Any, *, model: str, stream: Any = True, max_tokens: int | None = None) -> dict[str, Any]:
        return {"model": model or DEFAULT_MODEL, "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
                "messages": [{"role": "user", "content": prompt}], "stream": stream}

    def headers(self, api_key: str | None) -> dict[str, str]:
        out = {"anthropic-version": API_VERSION}
        if api_key:
            out["x-api-key"] = api_key
        return out

    def fields(self, obj: dict, event: str = "message") -> Fields:
        kind = obj.get("type") if isinstance(obj.get("type"), str) else event
        out = Fields()
        if kind == "content_block_delta" and isinstance(obj.get("delta"), dict):
            delta = obj["delta"]
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                out.content = delta["text"]
            elif delta.get("type") == "thinking_delta" and isinstance(delta.get("thinking"), str):
                out.reasoning = delta["thinking"]
        elif kind == "message_start":
            message = obj.get("message") if isinstance(obj.get("message"), dict) else {}
            out.role = message.get("role") if isinstance(message.get("role"), str) else None
        elif kind == "message_delta":
            delta = obj.get("delta") if isinstance(obj.get("delta"), dict) else {}
            reason = delta.get("stop_reason")
            out.finish_reason = reason if isinstance(reason, str) else None
            usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}
            out.usage = usage_of(usage.get("output_tokens"), usage.get("input_tokens"))
        elif kind == "message_stop":
            out.terminal = True
        elif kind == "error":
            out.error = obj.get("error") or {"message": "error event"}
        return out

    def protocol_problems(self, chunks: list) -> list[tuple[Any, str]]:
        """message_start first; a delta or stop only for a started, unstopped block; the event name and type
        agree."""
        problems: list[tuple[Any, str]] = []
        open_blocks: set[int] = set()
        started: set[int] = set()
        typed = [(c, c.json) for c in chunks if isinstance(c.json, dict)]
        if typed and typed[0][1].get("type") != "message_start":
            problems.append((typed[0][0], f"the first event is {typed[0][1].get('type')!r}, not message_start"))
        for chunk, obj in typed:
            kind, index = obj.get("type"), obj.get("index")
            if chunk.event != "message" and chunk.event != kind:
                problems.append((chunk, f"event: {chunk.event} carries type {kind!r}"))
            if kind == "content_block_start" and isinstance(index, int):
                if index in started:
                    problems.append((chunk, f"content block {index} started twice"))
                started.add(index)
                open_blocks.add(index)
            elif kind in ("content_block_delta", "content_block_stop") and isinstance(index, int):
                if index not in open_blocks:
                    why = "was never started" if index not in started else "was already stopped"
                    problems.append((chunk, f"{kind} for block {index}, which {why}"))
                elif kind == "content_block_stop":
                    open_blocks.discard(index)
            elif kind == "message_stop" and open_blocks:
                problems.append((chunk, f"message_stop with block(s) {sorted(open_blocks)} never stopped"))
        return problems

    def error_ok(self, obj: Any) -> bool | None:
        error = obj.get("error") if isinstance(obj, dict) else None
        return (isinstance(obj, dict) and obj.get("type") == "error" and isinstance(error, dict)
                and isinstance(error.get("type"), str) and isinstance(error.get("message"), str)
                and bool(error["message"]))


ANTHROPIC = AnthropicDialect("anthropic", "Anthropic Messages (model, max_tokens, messages, stream)",
                             end=TERMINAL_EVENT, terminal_events=("message_stop",), event_schema="event.anthropic",
                             default_path="/v1/messages", prompt_key="messages", extra_required=("max_tokens",))
