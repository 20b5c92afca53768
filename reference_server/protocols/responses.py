"""OpenAI Responses: `POST /v1/responses` with `stream: true`.

Every event is `event: <type>` + `data: {"type": <type>, "sequence_number": n, ...}`, n counting from 0 by
one. Order: response.created, response.in_progress, response.output_item.added, response.content_part.added,
response.output_text.delta*, response.output_text.done, response.content_part.done, response.output_item.done,
then one terminal event: response.completed, or response.incomplete when max_output_tokens cut the answer
(the API's own rule). No [DONE]. Errors are OpenAI's error object; a failure mid-stream is an `error` event
followed by response.failed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator

from reference_server.chunks import token_estimate
from reference_server.config import ServerConfig
from reference_server.protocols.base import (
    ApiError,
    Call,
    ChatRequest,
    Incoming,
    Protocol,
    bad,
    conversation,
    dumps,
    flag,
    model_name,
    named_event,
    optional_int,
    optional_number,
    texts,
)
from reference_server.stream import SSE_TYPE

_ROLES = frozenset({"user", "system", "developer", "assistant"})
_PART_TYPES = frozenset({"input_text", "output_text", "text"})
# The API refuses smaller limits ("Expected a value >= 16").
MIN_OUTPUT_TOKENS = 16


def _input_turns(value: object) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [("user", value)]
    if not isinstance(value, list) or not value:
        raise bad("'input' must be a string or a non-empty list of messages", "input", "invalid_type")
    turns = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            raise bad(f"'{where}' must be a message ({{role, content}}); this server reads no other "
                      "item types", where, "invalid_type")
        role = item.get("role")
        if role not in _ROLES:
            raise bad(f"'{where}.role' must be one of {sorted(_ROLES)}", f"{where}.role")
        content = item.get("content")
        text = content if isinstance(content, str) else texts(content, f"{where}.content", _PART_TYPES)
        turns.append((role, text))
    return turns


def parse(data: dict, incoming: Incoming, config: ServerConfig) -> Call:
    model = model_name(data)
    stream = flag(data, "stream", False)
    max_tokens = optional_int(data, "max_output_tokens", MIN_OUTPUT_TOKENS)
    optional_number(data, "temperature", 0, 2)
    instructions = data.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad("'instructions' must be a string", "instructions", "invalid_type")
    if "input" not in data:
        raise bad("'input' is required (a string or a list of messages)", "input",
                  "missing_required_parameter")
    prompt, total = conversation(_input_turns(data["input"]), "input", config, len(instructions or ""))
    request = ChatRequest(prompt=prompt, dialect="responses", stream=stream, max_tokens=max_tokens,
                          model=model, prompt_chars=total)
    return Call(request, instructions)


class ResponsesEncoder:
    content_type = SSE_TYPE

    def __init__(self, call: Call, incoming: Incoming, config: ServerConfig, fault: str | None = None):
        request = call.request
        self.id = f"resp_{uuid.uuid4().hex}"
        self.item_id = f"msg_{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = request.model or config.model
        self.instructions = call.detail
        self.max_output_tokens = request.max_tokens
        self.prompt_chars = request.prompt_chars
        self.fault = fault
        self.seq = 0
        self.parts: list[str] = []
        # A delta event is this prefix, its number, the middle, the JSON string, the suffix.
        self._delta_head = ('event: response.output_text.delta\n'
                            'data: {"type": "response.output_text.delta", "sequence_number": ')
        self._delta_mid = f', "item_id": "{self.item_id}", "output_index": 0, "content_index": 0, "delta": '
        self._delta_tail = ', "logprobs": []}\n\n'

    def _event(self, kind: str, **fields: object) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return named_event(kind, dumps(payload))

    def response(self, status: str, output: list | None = None, usage: dict | None = None,
                 error: dict | None = None) -> dict:
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {"id": self.id, "object": "response", "created_at": self.created, "status": status,
                "error": error, "incomplete_details": incomplete, "instructions": self.instructions,
                "max_output_tokens": self.max_output_tokens, "model": self.model, "output": output or [],
                "parallel_tool_calls": True, "previous_response_id": None,
                "reasoning": {"effort": None, "summary": None}, "store": False, "temperature": 1.0,
                "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
                "truncation": "disabled", "usage": usage, "metadata": {}}

    def _item(self, status: str, text: str | None) -> dict:
        content = [] if text is None else [self._part(text)]
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant",
                "content": content}

    @staticmethod
    def _part(text: str) -> dict:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def _usage(self, text: str) -> dict:
        p, c = token_estimate(self.prompt_chars), token_estimate(len(text))
        return {"input_tokens": p, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": c,
                "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": p + c}

    def opening(self) -> list[bytes]:
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        return [self._event("response.created", response=self.response("in_progress")),
                self._event("response.in_progress", response=self.response("in_progress")),
                self._event("response.output_item.added", output_index=0,
                            item=self._item("in_progress", None)),
                self._event("response.content_part.added", **where, part=self._part(""))]

    def body(self, pieces: Iterable[str]) -> Iterator[bytes]:
        for i, piece in enumerate(pieces):
            if self.fault == "sequence-gap" and i in (3, 4):
                self.seq += 3 if i == 3 else -3  # ... n, n+4, n+2, ...: a gap, then a step back
            self.parts.append(piece)
            n = self.seq
            self.seq += 1
            yield f"{self._delta_head}{n}{self._delta_mid}{dumps(piece)}{self._delta_tail}".encode()

    def closing(self, finish: str, *, terminal: bool = True) -> list[bytes]:
        text = "".join(self.parts)
        status = "completed" if finish == "stop" else "incomplete"
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        item = self._item(status, text)
        events = [self._event("response.output_text.done", **where, text=text, logprobs=[]),
                  self._event("response.content_part.done", **where, part=self._part(text)),
                  self._event("response.output_item.done", output_index=0, item=item)]
        if terminal:
            final = self.response(status, [item], self._usage(text))
            events.append(self._event(f"response.{status}", response=final))
        return events

    def error(self, message: str) -> list[bytes]:
        failure = {"code": "server_error", "message": message}
        return [self._event("error", code="server_error", message=message, param=None),
                self._event("response.failed", response=self.response("failed", error=failure))]

    def complete(self, text: str, finish: str) -> dict:
        status = "completed" if finish == "stop" else "incomplete"
        return self.response(status, [self._item(status, text)], self._usage(text))


def error_body(err: ApiError) -> bytes:
    return err.body()


PROTOCOL = Protocol("responses", "OpenAI Responses", parse, ResponsesEncoder, error_body,
                    frozenset({"sequence-gap"}))
