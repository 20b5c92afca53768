"""Google Gemini: `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` (and `:generateContent`).

With `alt=sse` each event is one `data:` line holding a whole GenerateContentResponse (candidates[0].content
with role "model" and one text part, usageMetadata, modelVersion, responseId); the last carries
`finishReason: "STOP"` (or "MAX_TOKENS") and the final token counts. There is no end marker. Without `alt=sse`
the API streams the same objects as one JSON array, written progressively; so does this server. Errors are
`{"error": {"code", "message", "status"}}` with Google's status names, mid-stream too.
"""

from __future__ import annotations

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
    optional_int,
    optional_number,
    optional_object,
    texts,
)
from reference_server.stream import SSE_TYPE

_ROLES = frozenset({"user", "model"})
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           405: "UNIMPLEMENTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED"}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}
STREAM_METHOD = "streamGenerateContent"


def _parts(value: object, where: str) -> str:
    if not isinstance(value, dict):
        raise bad(f"'{where}' must be an object with 'parts'", where, "invalid_type")
    return texts(value.get("parts"), f"{where}.parts", frozenset())


def _turns(contents: object) -> list[tuple[str, str]]:
    if not isinstance(contents, list) or not contents:
        raise bad("'contents' must be a non-empty list of {role, parts}", "contents", "invalid_type")
    turns = []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        role = (content.get("role") or "user") if isinstance(content, dict) else None
        if role not in _ROLES:
            raise bad(f"'{where}.role' must be 'user' or 'model'", f"{where}.role")
        turns.append(("user" if role == "user" else "assistant", _parts(content, where)))
    return turns


def parse(data: dict, incoming: Incoming, config: ServerConfig) -> Call:
    model = incoming.params["model"]
    if not model.strip():
        raise bad("the model name in the path must not be empty", "model")
    settings = optional_object(data, "generationConfig")
    max_tokens = optional_int(settings, "maxOutputTokens", 1, "generationConfig.maxOutputTokens")
    optional_number(settings, "temperature", 0, 2, "generationConfig.temperature")
    system = data.get("systemInstruction")
    system_text = "" if system is None else _parts(system, "systemInstruction")
    prompt, total = conversation(_turns(data.get("contents")), "contents", config, len(system_text))
    request = ChatRequest(prompt=prompt, dialect="gemini", stream=incoming.params["method"] == STREAM_METHOD,
                          max_tokens=max_tokens, model=model, prompt_chars=total)
    return Call(request)


class GeminiEncoder:
    def __init__(self, call: Call, incoming: Incoming, config: ServerConfig, fault: str | None = None):
        self.model = call.request.model or config.model
        self.id = uuid.uuid4().hex[:22]
        self.prompt_tokens = token_estimate(call.request.prompt_chars)
        self.chars = 0
        # Without alt=sse the objects are the elements of one JSON array: "[" first, "," between, "]" last.
        self.array = incoming.query.get("alt") != "sse"
        self.content_type = "application/json; charset=utf-8" if self.array else SSE_TYPE
        self._sent = 0
        self._head = '{"candidates": [{"content": {"parts": [{"text": '
        self._tail = (f'}}], "role": "model"}}, "index": 0}}], "usageMetadata": {{"promptTokenCount": '
                      f'{self.prompt_tokens}, "totalTokenCount": {self.prompt_tokens}}}, '
                      f'"modelVersion": {dumps(self.model)}, "responseId": "{self.id}"}}')

    def _frame(self, payload: str, last: bool = False) -> bytes:
        if not self.array:
            return f"data: {payload}\n\n".encode()
        self._sent += 1
        return f"{'[' if self._sent == 1 else ','}{payload}{']' if last else ''}\r\n".encode()

    def response(self, text: str, finish: str | None) -> dict:
        c = token_estimate(self.chars or len(text))
        candidate: dict = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = _FINISH[finish]
        return {"candidates": [candidate], "usageMetadata": {"promptTokenCount": self.prompt_tokens,
                                                             "candidatesTokenCount": c,
                                                             "totalTokenCount": self.prompt_tokens + c},
                "modelVersion": self.model, "responseId": self.id}

    def opening(self) -> list[bytes]:
        return []

    def body(self, pieces: Iterable[str]) -> Iterator[bytes]:
        for piece in pieces:
            self.chars += len(piece)
            yield self._frame(f"{self._head}{dumps(piece)}{self._tail}")

    def closing(self, finish: str, *, terminal: bool = True) -> list[bytes]:
        # The finishReason chunk is Gemini's only end marker; an array still needs its "]" to be JSON at all.
        if terminal:
            return [self._frame(dumps(self.response("", finish)), last=True)]
        return [b"]"] if self.array else []

    def error(self, message: str) -> list[bytes]:
        payload = {"error": {"code": 500, "message": message, "status": "INTERNAL"}}
        return [self._frame(dumps(payload), last=True)]

    def complete(self, text: str, finish: str) -> dict:
        return self.response(text, finish)


def error_body(err: ApiError) -> bytes:
    status = _STATUS.get(err.status, "INTERNAL" if err.status >= 500 else "FAILED_PRECONDITION")
    return dumps({"error": {"code": err.status, "message": err.message, "status": status}}).encode()


PROTOCOL = Protocol("gemini", "Google Gemini", parse, GeminiEncoder, error_body)
