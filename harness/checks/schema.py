"""schema checks: every event's JSON against the profile's schema (schemas/), errors against schemas/error.json."""

from __future__ import annotations

from functools import cache

from harness.checks import Context, Outcome, check, evidence

_MAX_EVIDENCE = 5


@cache
def validator(name: str):
    """A compiled validator for a schema shipped in schemas/ (compiled once per process)."""
    import jsonschema

    from schemas import load_schema

    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _problem(chunk, schema_name: str) -> str | None:
    """Why one chunk is invalid, or None."""
    if chunk.done and chunk.json is None:
        return None  # [DONE]
    if chunk.json_error is not None:
        return f"not JSON: {chunk.json_error}"
    target = "error" if isinstance(chunk.json, dict) and "error" in chunk.json else schema_name
    error = next(iter(validator(target).iter_errors(chunk.json)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{target}: at {where}: {error.message[:200]}"


@check("schema.events", description="every event is valid JSON of the profile's chunk schema (or an error object)")
def events(ctx: Context) -> Outcome:
    chunks = ctx.primary.chunks
    if not chunks:
        cap = ctx.primary.capture
        return Outcome.failed("no events to validate" + ("" if cap.status is not None else f" ({cap.end_reason})"),
                              measured=0, threshold="> 0 events")
    schema_name = ctx.profile.schema
    bad = [(c, p) for c in chunks if (p := _problem(c, schema_name)) is not None]
    if bad:
        return Outcome.failed(f"{len(bad)} of {len(chunks)} events invalid; first: {bad[0][1]}",
                              measured=len(bad), threshold=0,
                              evidence=[evidence(c.offset, f"{p} | {c.raw[:100]!r}", c.t) for c, p in
                                        bad[:_MAX_EVIDENCE]])
    return Outcome.passed(f"{len(chunks)} events valid against {schema_name}", measured=0, threshold=0)


@check("schema.consistent_id", description="every chunk carries the same id (and created), as OpenAI's do")
def consistent_id(ctx: Context) -> Outcome:
    keyed = [c for c in ctx.primary.chunks if isinstance(c.json, dict) and "error" not in c.json]
    with_id = [c for c in keyed if "id" in c.json]
    if not with_id:
        if ctx.profile.schema == "chunk.openai" and keyed:
            return Outcome.failed("no chunk carries an id", measured=0, threshold="one id",
                                  evidence=[evidence(keyed[0].offset, keyed[0].raw[:120], keyed[0].t)])
        return Outcome.skip("no chunk carries an id")
    for key in ("id", "created"):
        values = [c for c in keyed if key in c.json]
        if not values:
            continue
        first = values[0].json[key]
        odd = [c for c in values if c.json[key] != first]
        missing = [c for c in keyed if key not in c.json] if key == "id" else []
        if odd or missing:
            culprits = (odd + missing)[:_MAX_EVIDENCE]
            distinct = len({repr(c.json.get(key)) for c in values})
            return Outcome.failed(f"{key} changes across chunks ({distinct} distinct values"
                                  + (f", {len(missing)} chunks without one" if missing else "") + ")",
                                  measured=distinct, threshold=1,
                                  evidence=[evidence(c.offset, c.raw[:120], c.t) for c in culprits])
    return Outcome.passed(f"one id on all {len(with_id)} chunks", measured=1, threshold=1)
