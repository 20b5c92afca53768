"""OpenAI Responses (``POST /v1/responses``): SSE blocks ``event: <type>`` + ``data: {"type": <type>, ...}``, an
increasing ``sequence_number`` on every event, text in ``response.output_text.delta``, and exactly one terminal
``response.completed`` | ``response.incomplete`` | ``response.failed``. No ``[DONE]``. A mid-stream ``error`` event
nests ``{"error": {...}}`` on the live API and puts the fields at the top level in the SDK's types: both are
read."""

from __future__ import annotations

from typing import Any

from harness.dialects.base import TERMINAL_EVENT, Dialect, Fields, usage_of
from harness.dialects.chat import DEFAULT_MODEL

TERMINAL = ("response.completed", "response.incomplete", "response.failed")
_TEXT_DELTA = "response.output_text.delta"
_REASONING_DELTAS = ("response.reasoning_text.delta", "response.reasoning_summary_text.delta")
_FINISH = {"response.completed": "stop", "response.incomplete": "length", "response.failed": "error"}


class ResponsesDialect(Dialect):
    def body(self, prompt: Any, *, model: str, stream: Any = True, max_tokens: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or DEFAULT_MODEL, "input": prompt, "stream": stream}
        if max_tokens:
            body["max_output_tokens"] = max_tokens
        return body

    def fields(self, obj: dict, event: str = "message") -> Fields:
        kind = obj.get("type") if isinstance(obj.get("type"), str) else event
        out = Fields()
        if kind == _TEXT_DELTA and isinstance(obj.get("delta"), str):
            out.content = obj["delta"]
        elif kind in _REASONING_DELTAS and isinstance(obj.get("delta"), str):
            out.reasoning = obj["delta"]
        elif kind == "error":
            out.error = obj.get("error") or {k: obj.get(k) for k in ("code", "message", "param") if k in obj}
        elif kind in TERMINAL:
            out.terminal = True
            out.finish_reason = _FINISH[kind]
            response = obj.get("response") if isinstance(obj.get("response"), dict) else {}
            usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
            out.usage = usage_of(usage.get("output_tokens"), usage.get("input_tokens"))
            if kind == "response.failed":
                out.error = response.get("error") or {"message": "response.failed"}
        return out


    def protocol_problems(self, chunks: list) -> list[tuple[Any, str]]:
        """type equals the SSE event name; sequence_number strictly increasing; response.created first."""
        problems: list[tuple[Any, str]] = []
        last_seq = None
        typed = [(c, c.json) for c in chunks if isinstance(c.json, dict)]
        if typed and typed[0][1].get("type") != "response.created":
            problems.append((typed[0][0], f"the first event is {typed[0][1].get('type')!r}, not response.created"))
        for chunk, obj in typed:
            kind = obj.get("type")
            if chunk.event != "message" and chunk.event != kind:
                problems.append((chunk, f"event: {chunk.event} carries type {kind!r}"))
            seq = obj.get("sequence_number")
            if isinstance(seq, int) and not isinstance(seq, bool):
                if last_seq is not None and seq <= last_seq:
                    problems.append((chunk, f"sequence_number {seq} after {last_seq}: not increasing"))
                last_seq = seq
        return problems


RESPONSES = ResponsesDialect("openai-responses", "OpenAI Responses (model, input, stream): typed events",
                             end=TERMINAL_EVENT, terminal_events=TERMINAL, event_schema="event.openai_responses",
                             default_path="/v1/responses", prompt_key="input")
