"""Request validation: raw body bytes -> `ChatRequest`, or an `ApiError` carrying the OpenAI error object.

Every way a client can get the body wrong ends here as a 4xx with `{"error": {message, type, param, code}}`;
nothing a client sends may reach a code path that raises anything else (no 5xx, no traceback).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from reference_server.config import ServerConfig

_NO_VALIDATION_PROMPT = "an unspecified question"

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class ApiError(Exception):
    """A client error, rendered as the OpenAI error object with this HTTP status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = headers or {}

    def payload(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def body(self) -> bytes:
        return json.dumps(self.payload()).encode()


@dataclass(frozen=True)
class ChatRequest:
    prompt: str
    """The text the answer is about: the seed's `prompt`, or the last user message."""
    dialect: str
    """"prompt" (the seed's `{"prompt", "stream"}`) or "openai" (`model`, `messages`, ...)."""
    stream: bool
    include_usage: bool = False
    max_tokens: int | None = None
    model: str | None = None
    prompt_chars: int = 0
    """Characters of input in total (all messages), for the usage object."""


def _depth_exceeds(text: str, limit: int) -> bool:
    """True when brackets nest deeper than `limit`, scanning outside strings (before json.loads can recurse)."""
    if text.count("[") + text.count("{") <= limit:  # C-speed shortcut: ordinary bodies never need the scan
        return False
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


# A \uD800-\uDFFF escape: JSON lets one stand alone (RFC 8259 8.2), but it then decodes to a surrogate
# code point, which is no character and which UTF-8 cannot encode: echoed into a response (the model name,
# an echoed prompt) it made the encoder raise. The pattern only says where to look; pairs decode to
# ordinary characters.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # only surrogates fail: every other code point has a UTF-8 form
        return True
    return False


def _surrogate_path(value: object, path: str = "") -> str | None:
    """Where in the parsed body a string or an object key holds a lone surrogate, e.g. "messages[0].content"
    (the nesting is already bounded by `max_json_depth`, so the recursion is too)."""
    if isinstance(value, str):
        return path if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if _has_surrogate(key):  # the path is sent back: the key's surrogate goes in as printable \udXXX
                return where.encode("utf-8", "backslashreplace").decode("utf-8")
            found = _surrogate_path(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _surrogate_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def _text_of(content: object) -> str | None:
    """Message content as text: a string, or a list of `{"type": "text", "text": ...}` parts; None when neither."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                return None
            texts.append(part["text"])
        return "\n".join(texts)
    return None


def _check_prompt(prompt: object, param: str, limit: int) -> str:
    if not isinstance(prompt, str):
        raise _bad(f"'{param}' must be a string, got {type(prompt).__name__}", param, "invalid_type")
    if not prompt:
        raise _bad(f"'{param}' must not be empty", param, "empty_prompt")
    if not prompt.strip():
        raise _bad(f"'{param}' must not be blank (only whitespace)", param, "empty_prompt")
    if len(prompt) > limit:
        raise _bad(f"'{param}' is {len(prompt)} characters long; the limit is {limit}", param, "prompt_too_long")
    return prompt


def _messages_prompt(messages: object, limit: int) -> tuple[str, int]:
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list of {role, content} objects", "messages")
    last_user: str | None = None
    total = 0
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(f"'{where}' must be an object with 'role' and 'content'", where, "invalid_type")
        role = m.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise _bad(f"'{where}.role' must be one of {sorted(_ROLES)}", f"{where}.role")
        if role == "assistant" and m.get("tool_calls") and m.get("content") is None:
            continue  # a tool-call turn sent back with the results: no text (see protocols/chat_extras.py)
        if "content" not in m:
            raise _bad(f"'{where}.content' is required", f"{where}.content", "missing_required_parameter")
        text = _text_of(m["content"])
        if text is None:
            raise _bad(f"'{where}.content' must be a string or a list of text parts", f"{where}.content",
                       "invalid_type")
        total += len(text)
        if role == "user":
            last_user = text
    if last_user is None:
        raise _bad("'messages' must contain at least one message with role 'user'", "messages")
    prompt = _check_prompt(last_user, "messages[].content", limit)
    if total > limit:
        raise _bad(f"the messages hold {total} characters; the limit is {limit}", "messages", "prompt_too_long")
    return prompt, total


def decode_body(body: bytes, config: ServerConfig) -> dict:
    """The body as a JSON object, else an ApiError saying what is wrong (every protocol's first step)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"the request body is not valid UTF-8 (byte {exc.start})", None, "invalid_encoding") from None
    if not text.strip():
        raise _bad("the request body is empty; send a JSON object", None, "invalid_json")
    if _depth_exceeds(text, config.max_json_depth):
        raise _bad(f"the JSON body nests deeper than {config.max_json_depth} levels", None, "invalid_json")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"the request body is not valid JSON: {exc}", None, "invalid_json") from None
    if not isinstance(data, dict):
        raise _bad(f"the request body must be a JSON object, got {type(data).__name__}", None, "invalid_type")
    if _SURROGATE_ESCAPE.search(text):
        where = _surrogate_path(data)
        if where is not None:
            raise _bad("a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair), "
                       "which is not a Unicode character", where, "invalid_encoding")
    return data


def parse_request(body: bytes, config: ServerConfig) -> ChatRequest:
    """Validate a chat-completions body (already within the size limit) in either dialect."""
    data = decode_body(body, config)
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean (true or false)", "stream", "invalid_type")

    if "messages" in data:
        prompt, total = _messages_prompt(data["messages"], config.max_prompt_chars)
        dialect = "openai"
    elif "prompt" in data:
        prompt = _check_prompt(data["prompt"], "prompt", config.max_prompt_chars)
        total = len(prompt)
        dialect = "prompt"
    else:
        raise _bad("the body needs 'prompt' (a string) or 'messages' (a list of {role, content})", "prompt",
                   "missing_required_parameter")

    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad("'model' must be a string", "model", "invalid_type")
    include_usage = False
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _bad("'stream_options' must be an object", "stream_options", "invalid_type")
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise _bad("'stream_options.include_usage' must be a boolean", "stream_options.include_usage",
                       "invalid_type")
    max_tokens = data.get("max_tokens", data.get("max_completion_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _bad("'max_tokens' must be a positive integer", "max_tokens", "invalid_type")
    temperature = data.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not 0 <= temperature <= 2):
        raise _bad("'temperature' must be a number between 0 and 2", "temperature")
    return ChatRequest(prompt=prompt, dialect=dialect, stream=stream, include_usage=include_usage,
                       max_tokens=max_tokens, model=model, prompt_chars=total)
