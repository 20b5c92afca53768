"""schema checks: every event's JSON against the profile's schema (schemas/), errors against schemas/error.json."""

from __future__ import annotations

from harness.checks import Context, Outcome, check, evidence
from harness.checks.stream import not_chat_family
from harness.checks.validation import first_error

_MAX_EVIDENCE = 5
# Validation costs up to ~50 us an event (jsonschema, for an invalid one); a hostile stream of a million tiny
# events must not stall the verdict.
MAX_VALIDATED = 50_000


def _problem(chunk, schema_name: str, errors_apart: bool = True) -> str | None:
    """Why one chunk is invalid, or None. ``errors_apart``: an object with "error" is judged by schemas/error.json
    (the chat family); a protocol's own event schema describes its error events itself."""
    if chunk.done and chunk.json is None:
        return None  # [DONE]
    if chunk.json_error is not None:
        return f"not JSON: {chunk.json_error}"
    obj = chunk.json
    target = "error" if errors_apart and isinstance(obj, dict) and "error" in obj else schema_name
    error = first_error(target, obj)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{target}: at {where}: {error.message[:200]}"


def event_schema(ctx: Context) -> str:
    """The protocol's own event schema (Responses, Anthropic, Ollama, Gemini), else the profile's (chat family)."""
    from harness.dialects import get

    dialect = get(getattr(ctx.primary.capture.request, "dialect", None))
    return dialect.event_schema or ctx.profile.schema


@check("schema.events", description="every event is valid JSON of the profile's chunk schema (or an error object)")
def events(ctx: Context) -> Outcome:
    chunks = ctx.primary.chunks
    if not chunks:
        cap = ctx.primary.capture
        return Outcome.failed("no events to validate" + ("" if cap.status is not None else f" ({cap.end_reason})"),
                              measured=0, threshold="> 0 events")
    schema_name = event_schema(ctx)
    checked = chunks[:MAX_VALIDATED]
    errors_apart = schema_name == ctx.profile.schema
    bad = [(c, p) for c in checked if (p := _problem(c, schema_name, errors_apart)) is not None]
    scope = f"{len(checked)}" + ("" if len(checked) == len(chunks) else f" (the first, of {len(chunks)})")
    if bad:
        return Outcome.failed(f"{len(bad)} of {scope} events invalid; first: {bad[0][1]}",
                              measured=len(bad), threshold=0,
                              evidence=[evidence(c.offset, f"{p} | {c.raw[:100]!r}", c.t) for c, p in
                                        bad[:_MAX_EVIDENCE]])
    return Outcome.passed(f"{scope} events valid against {schema_name}", measured=0, threshold=0)


@check("schema.consistent_id", description="every chunk carries the same id (and created), as OpenAI's do",
       applies=not_chat_family)
def consistent_id(ctx: Context) -> Outcome:
    keyed = [(c, obj) for c in ctx.primary.chunks if isinstance(obj := c.json, dict) and "error" not in obj]
    with_id = [c for c, obj in keyed if "id" in obj]
    if not with_id:
        if ctx.profile.schema == "chunk.openai" and keyed:
            first_chunk = keyed[0][0]
            return Outcome.failed("no chunk carries an id", measured=0, threshold="one id",
                                  evidence=[evidence(first_chunk.offset, first_chunk.raw[:120], first_chunk.t)])
        return Outcome.skip("no chunk carries an id")
    for key in ("id", "created"):
        values = [(c, obj[key]) for c, obj in keyed if key in obj]
        if not values:
            continue
        first = values[0][1]
        odd = [c for c, v in values if v != first]
        missing = [c for c, obj in keyed if key not in obj] if key == "id" else []
        if odd or missing:
            culprits = (odd + missing)[:_MAX_EVIDENCE]
            distinct = len({repr(v) for _, v in values})
            return Outcome.failed(f"{key} changes across chunks ({distinct} distinct values"
                                  + (f", {len(missing)} chunks without one" if missing else "") + ")",
                                  measured=distinct, threshold=1,
                                  evidence=[evidence(c.offset, c.raw[:120], c.t) for c in culprits])
    return Outcome.passed(f"one id on all {len(with_id)} chunks", measured=1, threshold=1)
