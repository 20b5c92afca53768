"""Faults that exist in one protocol only, selected like the others (`X-Fault: NAME` or `--fault NAME`).

They live apart from reference_server/faults.py, whose registry is the chat endpoint's list (`--list-faults`);
each is an encoding change made by its protocol's encoder. Which shared faults each protocol also takes is
protocols/writers.py's `WRITERS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProtocolFault:
    name: str
    protocol: str
    """The protocol's name (protocols/__init__.py): "responses", "anthropic", "chat-extras"."""
    description: str


PROTOCOL_FAULTS: dict[str, ProtocolFault] = {f.name: f for f in (
    ProtocolFault("sequence-gap", "responses", "OpenAI Responses: one output_text.delta's sequence_number "
                  "jumps ahead by 3 and the next goes back (a gap, then a decrease)"),
    ProtocolFault("delta-unstarted-block", "anthropic", "Anthropic Messages: one content_block_delta names "
                  "index 1, a block that was never started"),
    ProtocolFault("tool-args-invalid-json", "chat-extras", "Chat Completions tool calls: the argument "
                  "fragments concatenate to invalid JSON (the closing brace is missing)"),
    ProtocolFault("tool-call-no-id", "chat-extras", "Chat Completions tool calls: a call's first fragment "
                  "has no 'id' (vLLM issue #18412)"),
)}


def describe() -> str:
    """One line per protocol-only fault (the same layout as reference_server.faults.describe)."""
    width = max(len(n) for n in PROTOCOL_FAULTS)
    return "\n".join(f"{f.name:<{width}}  {f.description}" for f in PROTOCOL_FAULTS.values())
