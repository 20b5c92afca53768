"""Gemini (``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``): each ``data:`` is a whole
GenerateContentResponse (``candidates[].content.parts[].text``, ``finishReason`` on the last, ``usageMetadata``);
no end marker; errors ``{"error": {"code", "message", "status"}}``, which may also arrive mid-stream on a 200.
Parts marked ``thought: true`` are reasoning, not answer text."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from harness.dialects.base import CLEAN_EOF, Dialect, Fields, usage_of
from harness.dialects.chat import DEFAULT_MODEL


class GeminiDialect(Dialect):
    def body(self, prompt: Any, *, model: str, stream: Any = True, max_tokens: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
        if max_tokens:
            body["generationConfig"] = {"maxOutputTokens": max_tokens}
        return body

    def url(self, url: str, model: str) -> str:
        """A base URL (or one ending in /models) gets the model's streaming route; ``alt=sse`` is always asked."""
        parts = urlsplit(url)
        path = parts.path
        if ":streamGenerateContent" not in path:
            base = path.rstrip("/")
            if not base.endswith("/models"):
                base = (base or "") + ("/models" if base.endswith("/v1beta") else "/v1beta/models")
            path = f"{base}/{model or DEFAULT_MODEL}:streamGenerateContent"
        query = parts.query
        if "alt=sse" not in query:
            query = "&".join(q for q in (query, "alt=sse") if q)
        return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))

    def headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": api_key} if api_key else {}

    def fields(self, obj: dict, event: str = "message") -> Fields:
        out = Fields(error=obj.get("error") or None)
        candidates = obj.get("candidates")
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
            first = candidates[0]
            content = first.get("content") if isinstance(first.get("content"), dict) else {}
            parts = content.get("parts") if isinstance(content.get("parts"), list) else []
            texts = [p for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
            answer = "".join(p["text"] for p in texts if not p.get("thought"))
            thought = "".join(p["text"] for p in texts if p.get("thought"))
            out.content = answer if texts and answer else (None if thought else ("" if texts else None))
            out.reasoning = thought or None
            out.role = content.get("role") if isinstance(content.get("role"), str) else None
            reason = first.get("finishReason")
            if isinstance(reason, str) and reason:
                out.finish_reason = reason
                out.terminal = True
        usage = obj.get("usageMetadata") if isinstance(obj.get("usageMetadata"), dict) else {}
        out.usage = usage_of(usage.get("candidatesTokenCount"), usage.get("promptTokenCount")) if out.terminal \
            else None
        return out


GEMINI = GeminiDialect("gemini", "Gemini streamGenerateContent?alt=sse (contents/parts)", end=CLEAN_EOF,
                       event_schema="event.gemini", default_path="/v1beta/models/MODEL:streamGenerateContent",
                       prompt_key="contents")
