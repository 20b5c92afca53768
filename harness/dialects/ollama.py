"""Ollama's native API: ``/api/chat`` (``messages``; lines carry ``message.content``) and ``/api/generate``
(``prompt``; lines carry ``response``), NDJSON, ``stream`` true by default. The last line has ``done: true``,
``done_reason``, ``eval_count`` and ``eval_duration`` (ns). One dialect for both paths: the URL decides the body."""

from __future__ import annotations

from typing import Any

from harness.dialects.base import TERMINAL_EVENT, Dialect, Fields, usage_of
from harness.dialects.chat import DEFAULT_MODEL


def _is_generate(url: str) -> bool:
    return url.split("?", 1)[0].rstrip("/").endswith("/api/generate")


class OllamaDialect(Dialect):
    def body(self, prompt: Any, *, model: str, stream: Any = True, max_tokens: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or DEFAULT_MODEL, "messages": [{"role": "user", "content": prompt}],
                                "stream": stream}
        if max_tokens:
            body["options"] = {"num_predict": max_tokens}
        return body

    def body_for(self, url: str, prompt: Any, **kw: Any) -> dict[str, Any]:
        body = self.body(prompt, **kw)
        if _is_generate(url):
            body.pop("messages")
            body["prompt"] = prompt
        return body

    def fields(self, obj: dict, event: str = "message") -> Fields:
        out = Fields(terminal=obj.get("done") is True)
        message = obj.get("message")
        if isinstance(message, dict):
            out.content = message.get("content") if isinstance(message.get("content"), str) else None
            out.role = message.get("role") if isinstance(message.get("role"), str) else None
            out.reasoning = message.get("thinking") if isinstance(message.get("thinking"), str) else None
        elif isinstance(obj.get("response"), str):
            out.content = obj["response"]
            out.reasoning = obj.get("thinking") if isinstance(obj.get("thinking"), str) else None
        if out.terminal:
            out.finish_reason = obj.get("done_reason") if isinstance(obj.get("done_reason"), str) else "stop"
            out.usage = usage_of(obj.get("eval_count"), obj.get("prompt_eval_count"))
            if out.usage is not None and isinstance(obj.get("eval_duration"), int):
                out.usage["eval_duration_ns"] = obj["eval_duration"]
        if obj.get("error"):
            out.error = obj["error"]
        return out

    def error_ok(self, obj: Any) -> bool | None:
        return isinstance(obj, dict) and isinstance(obj.get("error"), str) and bool(obj["error"].strip())


# Ollama always ends with a done: true line (with the eval counts); a body that stops before it was cut. (Plain
# NDJSON in the seed's dialect has no such line: there a clean end of body is the end.)
OLLAMA = OllamaDialect("ollama", "Ollama native /api/chat and /api/generate (NDJSON)", stream_format="ndjson",
                       end=TERMINAL_EVENT, terminal_events=('"done": true',), event_schema="event.ollama", default_path="/api/chat", prompt_key="messages")
