"""Chat Completions with tool calls or reasoning: the chat endpoint hands a request asking for either here.

Tool calls: with `tools`, a call is made when `tool_choice` is "required" or names a function, or (by default,
"auto") when the prompt names a tool ("use get_weather", "get weather") or asks to use a tool; not after a
tool result came back. Each call streams as `delta.tool_calls` fragments: the first of an index carries `id`,
`type: "function"`, `function.name` and `function.arguments: ""`, the others only pieces of `arguments` that
concatenate to a JSON object fitting the function's parameter schema; then `finish_reason: "tool_calls"`.
Reasoning: with `reasoning_effort` (anything but "none") or an `X-Reasoning` header, `delta.reasoning_content`
pieces come before the answer (as DeepSeek and vLLM send them), counted in usage's `reasoning_tokens`.
A request asking for neither never comes here: the chat endpoint's own path stays as it was.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from reference_server.chunks import DONE, ChunkEncoder, sse, token_estimate
from reference_server.config import ServerConfig
from reference_server.generate import answer_text, key_terms, split_chunks
from reference_server.protocols import toolargs
from reference_server.protocols.base import ApiError, Call, ChatRequest, Incoming, Protocol, bad, dumps, flag
from reference_server.protocols.faults import PROTOCOL_FAULTS
from reference_server.stream import SSE_TYPE
from reference_server.validate import parse_request

NAME = "chat-extras"
TOOL_FAULTS = frozenset(n for n, f in PROTOCOL_FAULTS.items() if f.protocol == NAME)
_MARKERS = (b'"tools"', b'"tool_choice"', b'"reasoning_effort"')
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ASKS_FOR_A_TOOL = re.compile(r"\b(?:use|call|invoke)\b.{0,30}\b(?:tool|function)s?\b",
                              re.IGNORECASE | re.DOTALL)
EFFORT_CHARS = {"minimal": 80, "low": 200, "medium": 400, "high": 800, "xhigh": 1200}
_EFFORTS = frozenset(EFFORT_CHARS) | {"none"}
_OFF = frozenset({"", "0", "off", "false", "no", "none"})


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Plan:
    reasoning: str
    calls: tuple[ToolCall, ...]


# --- reading the request ------------------------------------------------------------------------------------
def _tools(value: object) -> dict[str, object] | None:
    """{name: parameter schema} in the order given, or None when the request has no tools."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise bad("'tools' must be a non-empty list of {type: 'function', function: {name, parameters}}",
                  "tools", "invalid_type")
    tools: dict[str, object] = {}
    for i, tool in enumerate(value):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise bad(f"'tools[{i}]' must be {{type: 'function', function: {{name, parameters}}}}",
                      f"tools[{i}]")
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise bad(f"'tools[{i}].function.name' must be 1-64 letters, digits, '_' or '-'",
                      f"tools[{i}].function.name")
        if name in tools:
            raise bad(f"'tools[{i}].function.name': {name!r} is declared twice", f"tools[{i}].function.name")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise bad(f"'tools[{i}].function.parameters' must be a JSON Schema object",
                      f"tools[{i}].function.parameters", "invalid_type")
        tools[name] = params
    return tools


def _choice(value: object, tools: dict[str, object] | None) -> str | None:
    """"none", "auto", "required", or the name of the function it forces (None: no tools at all)."""
    if value is None:
        return "auto" if tools else None
    if tools is None:
        raise bad("'tool_choice' is only allowed when 'tools' are given", "tool_choice")
    if value in ("none", "auto", "required"):
        return str(value)
    fn = value.get("function") if isinstance(value, dict) else None
    if isinstance(value, dict) and value.get("type") == "function" and isinstance(fn, dict):
        if fn.get("name") in tools:
            return fn["name"]
        raise bad(f"'tool_choice' names {fn.get('name')!r}, which is not among the tools",
                  "tool_choice.function.name")
    raise bad("'tool_choice' must be 'none', 'auto', 'required' or {type: 'function', function: {name}}",
              "tool_choice")


def _effort(data: dict, headers: dict[str, str]) -> str | None:
    effort = data.get("reasoning_effort")
    if effort is not None and effort not in _EFFORTS:
        raise bad(f"'reasoning_effort' must be one of {sorted(_EFFORTS)}", "reasoning_effort")
    header = headers.get("x-reasoning", "").strip().lower()
    if effort is None and header not in _OFF:
        effort = header if header in EFFORT_CHARS else "medium"
    return None if effort in (None, "none") else effort


def _names_tool(prompt: str, name: str) -> bool:
    lowered = prompt.lower()
    return name.lower() in lowered or " ".join(re.split(r"[_\-]+", name.lower())).strip() in lowered


def _chosen(tools: dict[str, object], choice: str, parallel: bool, prompt: str, last_role: str) -> list[str]:
    if choice == "none" or choice == "auto" and last_role == "tool":
        return []
    if choice in tools:
        return [choice]
    asked = [name for name in tools if _names_tool(prompt, name)]
    if not asked and (choice == "required" or _ASKS_FOR_A_TOOL.search(prompt)):
        asked = list(tools)[:1]
    return asked if parallel else asked[:1]


def reasoning_text(prompt: str, effort: str) -> str:
    """A short, deterministic line of thought about the prompt (another seed than the answer's)."""
    terms = key_terms(prompt)
    opening = f"The question is about {', '.join(terms[:3])}. "
    return opening + answer_text(prompt + " approach", EFFORT_CHARS[effort])


def _plan(data: dict, request: ChatRequest, headers: dict[str, str]) -> Plan:
    tools = _tools(data.get("tools"))
    choice = _choice(data.get("tool_choice"), tools)
    parallel = flag(data, "parallel_tool_calls", True)
    effort = _effort(data, headers)
    messages = data.get("messages") or [{"role": "user"}]
    last_role = messages[-1].get("role", "user") if isinstance(messages[-1], dict) else "user"
    names = _chosen(tools, choice, parallel, request.prompt, last_role) if tools and choice else []
    calls = tuple(ToolCall(f"call_{uuid.uuid4().hex[:24]}", name,
                           toolargs.arguments(tools[name], request.prompt, name)) for name in names)
    return Plan(reasoning_text(request.prompt, effort) if effort else "", calls)


def call_for(body: bytes, request: ChatRequest, headers: dict[str, str], fault: str | None) -> Call | None:
    """The Call when a validated chat request asks for tool calls or reasoning, else None (the plain path).

    Raises ApiError for bad tools / tool_choice / reasoning_effort, and for a tool-call fault with no tool
    call to break (asked for by X-Fault: a server-wide one leaves plain requests alone)."""
    explicit = bool(headers.get("x-fault", "").strip())
    wanted = any(m in body for m in _MARKERS) or headers.get("x-reasoning", "").strip().lower() not in _OFF
    if explicit and fault in PROTOCOL_FAULTS and fault not in TOOL_FAULTS:
        owner = PROTOCOL_FAULTS[fault].protocol
        raise ApiError(400, f"fault {fault!r} belongs to the {owner} protocol, not to chat completions",
                       param="X-Fault", code="unknown_fault")
    plan = _plan(json.loads(body), request, headers) if wanted else Plan("", ())
    if explicit and fault in TOOL_FAULTS and not plan.calls:
        raise ApiError(400, f"fault {fault!r} breaks tool calls: send 'tools' and ask for one (name it in "
                       "the prompt, or tool_choice 'required')", param="X-Fault", code="unknown_fault")
    return Call(request, plan) if plan.calls or plan.reasoning else None


def parse(data: dict, incoming: Incoming, config: ServerConfig) -> Call:
    """The protocol contract's reader (the chat endpoint itself calls `call_for` with what it validated)."""
    request = parse_request(json.dumps(data).encode(), config)
    return Call(request, _plan(data, request, incoming.headers))


# --- writing the stream -------------------------------------------------------------------------------------
class ChatExtrasEncoder:
    content_type = SSE_TYPE

    def __init__(self, call: Call, incoming: Incoming, config: ServerConfig, fault: str | None = None):
        self.plan: Plan = call.detail
        self.chunk = ChunkEncoder(call.request.model or config.model)
        self.include_usage = call.request.include_usage
        self.prompt_chars = call.request.prompt_chars
        self.chunk_chars = config.chunk_chars
        self.fault = fault
        self.first = True
        self.chars = 0

    def _object(self, choice: dict, usage: dict | None = None) -> str:
        c = self.chunk
        out = {"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model,
               "choices": [choice] if choice else []}
        if usage is not None:
            out["usage"] = usage
        return dumps(out)

    def _delta(self, delta: dict) -> bytes:
        if self.first:  # the first chunk names the role; content is null unless this chunk carries text
            delta = {"role": "assistant", "content": None, **delta}
            self.first = False
        return sse(self._object({"index": 0, "delta": delta, "finish_reason": None}))

    def opening(self) -> list[bytes]:
        return []

    def body(self, pieces: Iterable[str]) -> Iterator[bytes]:
        for piece in split_chunks(self.plan.reasoning, self.chunk_chars, 1) if self.plan.reasoning else ():
            yield self._delta({"reasoning_content": piece})
        if self.plan.calls:
            yield from self._calls()
            return
        for piece in pieces:
            self.chars += len(piece)
            yield self._delta({"content": piece})

    def _calls(self) -> Iterator[bytes]:
        for index, call in enumerate(self.plan.calls):
            arguments = call.arguments
            if self.fault == "tool-args-invalid-json" and index == 0:
                arguments = arguments[:-1]
            head: dict = {"index": index, "id": call.id, "type": "function",
                          "function": {"name": call.name, "arguments": ""}}
            if self.fault == "tool-call-no-id" and index == 0:
                del head["id"]
            yield self._delta({"tool_calls": [head]})
            for piece in toolargs.fragments(arguments):
                self.chars += len(piece)
                yield self._delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})

    def _usage(self, chars: int) -> dict:
        p, r = token_estimate(self.prompt_chars), token_estimate(len(self.plan.reasoning))
        c = token_estimate(chars) + r
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                "completion_tokens_details": {"reasoning_tokens": r}}

    def closing(self, finish: str, *, terminal: bool = True) -> list[bytes]:
        reason = "tool_calls" if self.plan.calls else finish
        out = [sse(self._object({"index": 0, "delta": {}, "finish_reason": reason}))]
        if self.include_usage:
            out.append(sse(self._object({}, self._usage(self.chars))))
        if terminal:
            out.append(sse(DONE))
        return out

    def error(self, message: str) -> list[bytes]:
        err = ApiError(500, message, type="server_error", code="stream_failed")
        return [sse(err.body().decode()), sse(DONE)]

    def complete(self, text: str, finish: str) -> dict:
        plan, c = self.plan, self.chunk
        message: dict = {"role": "assistant", "content": None if plan.calls else text}
        if plan.calls:
            message["tool_calls"] = [{"id": t.id, "type": "function",
                                      "function": {"name": t.name, "arguments": t.arguments}}
                                     for t in plan.calls]
        if plan.reasoning:
            message["reasoning_content"] = plan.reasoning
        chars = sum(len(t.arguments) for t in plan.calls) if plan.calls else len(text)
        return {"id": c.id, "object": "chat.completion", "created": c.created, "model": c.model,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if plan.calls else finish}],
                "usage": self._usage(chars)}


def error_body(err: ApiError) -> bytes:
    return err.body()


PROTOCOL = Protocol(NAME, "Chat Completions (tool calls, reasoning)", parse, ChatExtrasEncoder, error_body,
                    TOOL_FAULTS)
