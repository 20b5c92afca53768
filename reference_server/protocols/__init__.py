"""The wire protocols the reference server speaks besides the seed's and OpenAI Chat Completions.

One module per protocol (`responses`, `anthropic`, `ollama`, `gemini`; `chat_extras` for tool calls and
reasoning on the chat endpoint), each a `PROTOCOL` (base.Protocol): how to read a body, an encoder class
like chunks.ChunkEncoder, its error shape, the faults only it has. `endpoint` serves them all the same way;
`writers` holds the stream writers they share. `match(path)` is the routing table the app consults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reference_server.protocols import anthropic, gemini, ollama, responses
from reference_server.protocols.base import Protocol


@dataclass(frozen=True)
class Route:
    protocol: Protocol
    params: dict[str, str] = field(default_factory=dict)


_FIXED = {
    "/v1/responses": Route(responses.PROTOCOL),
    "/responses": Route(responses.PROTOCOL),
    "/v1/messages": Route(anthropic.PROTOCOL),
    "/api/chat": Route(ollama.PROTOCOL, {"kind": "chat"}),
    "/api/generate": Route(ollama.PROTOCOL, {"kind": "generate"}),
}
_GEMINI = re.compile(r"/(?:v1|v1beta|v1alpha)/models/([^/:]+):(streamGenerateContent|generateContent)")
PATHS = (*_FIXED, "/v1beta/models/{model}:streamGenerateContent", "/v1beta/models/{model}:generateContent")


def match(path: str) -> Route | None:
    route = _FIXED.get(path)
    if route is None and path.startswith("/v1"):
        m = _GEMINI.fullmatch(path)
        if m:
            route = Route(gemini.PROTOCOL, {"model": m.group(1), "method": m.group(2)})
    return route
