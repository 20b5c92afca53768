"""The schema fast path (harness/checks/validation.py) never passes what jsonschema would fail.

Documents are generated from each shipped schema itself: objects with some of its declared properties (values
drawn from the property's own schema, or anything), a branch of each anyOf/oneOf, the const or enum value or
something near it, extra keys, wrong types, huge and fractional numbers, non-BMP text. Most are near-valid,
which is where two validators could disagree.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.checks import validation
from schemas import load_schema, schema_names

jsonschema_rs = pytest.importorskip("jsonschema_rs")

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.integers(2**63 - 2, 2**70),
    st.sampled_from([0.0, 1.0, -1.0, 2.5, 1e300]), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6), st.sampled_from(["", "a", "\U0001f600", "é" * 3, "0"]),
)
ANY = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                   max_leaves=8)


def _resolve(schema: dict, root: dict) -> dict:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        return _resolve(node, root)
    return schema


def guided(schema: object, root: dict, depth: int = 0) -> st.SearchStrategy:
    """Documents shaped by ``schema``, with a fair share of near misses."""
    if not isinstance(schema, dict) or depth > 5:
        return ANY
    schema = _resolve(schema, root)
    options: list[st.SearchStrategy] = []
    if "const" in schema:
        options.append(st.just(schema["const"]))
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, []):
            options.append(guided(branch, root, depth + 1))
    for key in ("then", "else"):
        if key in schema:
            options.append(guided(schema[key], root, depth + 1))
    for branch in schema.get("allOf", []):
        if isinstance(branch, dict) and "if" in branch:
            options.append(guided(branch["if"], root, depth + 1))
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    props = {k: v for k, v in (schema.get("properties") or {}).items()}
    for branch in schema.get("allOf", []):
        for part in ("if", "then"):
            sub = branch.get(part) if isinstance(branch, dict) else None
            if isinstance(sub, dict):
                props.update({k: v for k, v in (sub.get("properties") or {}).items() if k not in props})
    if props or "object" in types:
        fields = {k: guided(v, root, depth + 1) for k, v in props.items()}
        required = [k for k in schema.get("required", []) if k in fields]
        optional = {k: s for k, s in fields.items() if k not in required}
        options.append(st.fixed_dictionaries({k: fields[k] for k in required},
                                              optional=optional).flatmap(
            lambda d: st.tuples(st.dictionaries(st.sampled_from(["extra", "x", "type"]), SCALARS, max_size=1),
                                st.sampled_from([None] * 4 + sorted(d))).map(
                lambda pair: {k: v for k, v in {**pair[0], **d}.items() if k != pair[1]})))
    if "array" in types or "items" in schema:
        options.append(st.lists(guided(schema.get("items", {}), root, depth + 1), max_size=3))
    if "string" in types:
        options.append(st.text(max_size=int(schema.get("minLength", 0)) + 3))
    if "integer" in types or "number" in types:
        low = schema.get("minimum", -5)
        options.append(st.one_of(st.integers(low - 2, low + 5), st.sampled_from([float(low), low + 0.5]))
                       if isinstance(low, (int, float)) and not isinstance(low, bool) and math.isfinite(low)
                       else st.integers())
    # Mostly shaped, sometimes anything: near-valid documents are where two validators could disagree.
    return st.one_of(*options, *options, *options, ANY) if options else ANY


EVENT_SCHEMAS = [n for n in schema_names()]


@pytest.fixture(scope="module")
def real_events() -> list[object]:
    """Every JSON payload the reference server streams in each protocol, and its error reply to a bad body."""
    from harness.capture.core import capture_sync
    from harness.capture.request import build_request
    from harness.dialects import NAMES, get
    from harness.model import Limits, RequestSpec
    from reference_server.embedded import EmbeddedServer

    found: list[object] = []
    with EmbeddedServer() as srv:
        for name in NAMES:
            url = srv.url.rstrip("/") + get(name).default_path.replace("MODEL", "m")
            for spec in (build_request(url, name, "Say hello", model="m"),
                         RequestSpec(url=url, method="POST", headers={"content-type": "application/json"},
                                     body=b"{}", dialect="raw")):
                cap = capture_sync(spec, Limits(deadline_s=10))
                for line in cap.body.splitlines():
                    text = line.decode("utf-8", "replace").removeprefix("data:").strip()
                    try:
                        found.append(json.loads(text))
                    except ValueError:
                        pass
    assert len(found) > 30
    return found


def _paths(doc: object, here: tuple = ()) -> list[tuple]:
    out = [here]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, here + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, here + (i,))
    return out


def _mutated(doc: object, path: tuple, value: object, delete: bool) -> object:
    if not path:
        return value
    copy = json.loads(json.dumps(doc))
    node = copy
    for part in path[:-1]:
        node = node[part]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return copy


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_fast_path_agrees_on_mutated_real_events(real_events: list[object], data: st.DataObject) -> None:
    doc = data.draw(st.sampled_from(real_events))
    for _ in range(data.draw(st.integers(0, 2))):
        path = data.draw(st.sampled_from(_paths(doc)))
        doc = _mutated(doc, path, data.draw(st.one_of(SCALARS, ANY)), data.draw(st.booleans()))
    for name in EVENT_SCHEMAS:
        if validation.surely_valid(name, doc):
            assert validation.validator(name).is_valid(doc), f"{name}: fast path passed what jsonschema fails: {doc!r}"


@pytest.mark.parametrize("name", EVENT_SCHEMAS)
def test_fast_path_agrees_with_jsonschema(name: str) -> None:
    if validation.fast_validator(name) is None:
        pytest.skip(f"jsonschema-rs cannot compile {name}")
    root = load_schema(name)
    reference = validation.validator(name)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(guided(root, root))
    def agree(doc: object) -> None:
        json.dumps(doc)  # only JSON documents: what a decoded event can be
        if validation.surely_valid(name, doc):
            assert reference.is_valid(doc), f"fast path passed what jsonschema fails: {doc!r}"

    agree()


def test_fast_path_is_used_and_jsonschema_explains() -> None:
    event = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    assert validation.surely_valid("chunk.openai", event)
    assert validation.first_error("chunk.openai", event) is None
    bad = dict(event, choices="nope")
    assert not validation.surely_valid("chunk.openai", bad)
    error = validation.first_error("chunk.openai", bad)
    assert error is not None and list(error.absolute_path) == ["choices"]


def test_values_the_fast_path_cannot_take_go_to_jsonschema() -> None:
    huge = {"id": "c1", "object": "chat.completion.chunk", "created": 2**80, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    assert validation.first_error("chunk.openai", huge) is None  # jsonschema: any int is an integer


def test_without_jsonschema_rs_the_verdicts_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation, "fast_validator", lambda name: None)
    assert not validation.surely_valid("chunk.openai", {})
    assert validation.first_error("chunk.openai", {"choices": "nope"}) is not None
