"""Arguments for a tool call: a JSON object that fits the function's parameter schema, taken from the prompt.

No model decides anything here: strings are the prompt's key terms (the ones not already in the tool's or the
property's name, so "weather in Paris" with get_weather gives "Paris"), other types get a plain valid value
(an enum's first member, a schema's default, the minimum of a number). Deterministic like the answer text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from reference_server.generate import key_terms

_MAX_DEPTH = 4
_SPLIT = re.compile(r"[_\-\s]+")


def _words(name: str) -> set[str]:
    return {w.lower() for w in _SPLIT.split(name) if w}


class _Terms:
    """Hands out the prompt's key terms in turn, skipping the words of the names involved."""

    def __init__(self, prompt: str, tool_name: str):
        skip = _words(tool_name)
        self.terms = [t for t in key_terms(prompt, limit=12) if not (_words(t) & skip)] or ["example"]
        self.turn = 0

    def next(self, prop: str) -> str:
        own = _words(prop)
        for _ in range(len(self.terms)):
            term = self.terms[self.turn % len(self.terms)]
            self.turn += 1
            if not (_words(term) & own):
                return term[:1].upper() + term[1:]
        return self.terms[0]


def _type_of(schema: dict) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]: the first non-null one
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    return "object" if "properties" in schema else "string"


def _value(schema: object, prop: str, terms: _Terms, depth: int) -> object:
    if not isinstance(schema, dict):
        return terms.next(prop)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, terms, depth + 1) if depth < _MAX_DEPTH else {}
    if kind == "array":
        return [_value(schema.get("items"), prop, terms, depth + 1)] if depth < _MAX_DEPTH else []
    if kind in ("integer", "number"):
        low = schema.get("minimum", 1)
        number = low if isinstance(low, (int, float)) and not isinstance(low, bool) else 1
        return int(number) if kind == "integer" else float(number)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return terms.next(prop)


def _object(schema: dict, terms: _Terms, depth: int) -> dict:
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    return {name: _value(sub, name, terms, depth) for name, sub in props.items()}


def arguments(parameters: object, prompt: str, tool_name: str) -> str:
    """The call's arguments as JSON text (an object, `{}` for a function without parameters)."""
    schema = parameters if isinstance(parameters, dict) else {}
    return json.dumps(_object(schema, _Terms(prompt, tool_name), 0), ensure_ascii=False)


def fragments(text: str, size: int = 8) -> Iterator[str]:
    """Argument text in pieces of `size` characters, as a model streams it (cuts fall inside strings too)."""
    for start in range(0, len(text), size):
        yield text[start:start + size]
