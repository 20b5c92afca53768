"""stream checks: how the stream ends (the protocol's own end, once and last: [DONE], a terminal event, or a clean
end of body) and the OpenAI finish_reason / usage rules (chat family only)."""

from __future__ import annotations

from harness.checks import Context, Outcome, check, evidence

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _kind(ctx: Context) -> str:
    return getattr(ctx.primary.parsed, "kind", "sse")


def _dialect(ctx: Context):
    from harness.dialects import get

    return get(getattr(ctx.primary.capture.request, "dialect", None))


def not_chat_family(ctx: Context) -> str | None:
    """Why the chat-family rules (finish_reason on choices, the usage chunk, one chunk id) do not apply."""
    dialect = _dialect(ctx)
    return None if dialect.chat_family else f"the {dialect.name} protocol has no chat chunks"


def _terminal_event_end(ctx: Context, names: tuple[str, ...]) -> Outcome:
    """Responses and Anthropic end with exactly one event of a terminal type; no [DONE]."""
    chunks = ctx.primary.chunks
    ends = [c for c in chunks if c.done]
    wanted = " | ".join(names)
    last = chunks[-1] if chunks else None
    if not ends:
        cap = ctx.primary.capture
        how = "" if cap.end_reason == "eof" else f" (the capture ended by {cap.end_reason})"
        return Outcome.failed(f"no terminal event ({wanted}){how}: SDK clients wait for it or raise",
                              measured=0, threshold=f"one {wanted}",
                              evidence=[evidence(last.offset, "last event: " + last.raw[:120], last.t)] if last else [])
    if len(ends) > 1:
        return Outcome.failed(f"{len(ends)} terminal events", measured=len(ends), threshold=1,
                              evidence=[evidence(c.offset, c.raw[:120], c.t) for c in ends[:5]])
    end = ends[0]
    kind = (end.json or {}).get("type", end.event) if isinstance(end.json, dict) else end.event
    return Outcome.passed(f"one terminal event ({kind})", measured=1, threshold=1,
                          evidence=[evidence(end.offset, end.raw[:120], end.t)])


def _ndjson_end(ctx: Context) -> Outcome:
    """NDJSON (JSON Lines) has no end marker: the HTTP body ending cleanly is the end of the stream. A reset, an
    unterminated chunked body or a cut by the harness leaves the answer unfinished. A final ``"done": true``
    (Ollama) is accepted, never demanded; a line after it is stream.done_last's finding."""
    cap = ctx.primary.capture
    chunks = ctx.primary.chunks
    last = chunks[-1] if chunks else None
    where = [evidence(last.offset, "last line: " + last.raw[:120], last.t)] if last else []
    if cap.end_reason != "eof":
        detail = cap.end_reason + (f": {cap.error}" if cap.error else "")
        return Outcome.failed(f"the body did not end cleanly ({detail}): the answer may be cut",
                              measured=cap.end_reason, threshold="clean end of body", evidence=where)
    if not chunks:
        return Outcome.failed("the body ended without a single event", measured=0, threshold="clean end of body")
    marker = "; the last one marks the end" if last.done else ""
    return Outcome.passed(f"the body ended cleanly after {len(chunks)} events{marker}", measured="eof",
                          threshold="clean end of body", evidence=where)


@check("stream.done", description="the stream ends with a [DONE] event, exactly once (NDJSON: a clean end of body)")
def done(ctx: Context) -> Outcome:
    chunks = ctx.primary.chunks
    dones = [c for c in chunks if c.done]
    last = chunks[-1] if chunks else None
    dialect = _dialect(ctx)
    if dialect.end == "terminal-event":
        return _terminal_event_end(ctx, dialect.terminal_events)
    if _kind(ctx) == "ndjson" or dialect.end == "clean-eof":
        return _ndjson_end(ctx)
    if not dones:
        return Outcome.failed("no [DONE] event: OpenAI-style clients wait for it (some hang until a timeout)",
                              measured=0, threshold=1,
                              evidence=[evidence(last.offset, "last event: " + last.raw[:120], last.t)] if last else [])
    if len(dones) > 1:
        return Outcome.failed(f"[DONE] sent {len(dones)} times", measured=len(dones), threshold=1,
                              evidence=[evidence(c.offset, c.raw, c.t) for c in dones[:5]])
    return Outcome.passed("[DONE] present once", measured=1, threshold=1,
                          evidence=[evidence(dones[0].offset, dones[0].raw, dones[0].t)])


@check("stream.done_last", description="nothing follows the end marker ([DONE] is the last event)")
def done_last(ctx: Context) -> Outcome:
    chunks = ctx.primary.chunks
    first_done = next((i for i, c in enumerate(chunks) if c.done), None)
    if first_done is None:
        return Outcome.skip("no end marker (see stream.done)")
    after = chunks[first_done + 1:]
    # A ping or an unknown event after the end is still something a client never reads: it is counted too.
    marker = "[DONE]" if chunks[first_done].json is None else "the end marker"
    if after:
        return Outcome.failed(f"{len(after)} event(s) after {marker}: clients stop reading at {marker} and lose "
                              "them",
                              measured=len(after), threshold=0,
                              evidence=[evidence(c.offset, c.raw[:120], c.t) for c in after[:5]])
    return Outcome.passed("the end marker is the last event", measured=0, threshold=0)


def _until_done(ctx: Context) -> list:
    """The chunks a client reads: everything up to the first end marker (what follows is stream.done_last's)."""
    chunks = ctx.primary.chunks
    end = next((i for i, c in enumerate(chunks) if c.done and c.json is None), len(chunks))
    return chunks[:end]


def _choice_chunks(ctx: Context) -> list[tuple]:
    """(chunk, its non-empty choices list) for every chunk a client reads that has choices."""
    out = []
    for c in _until_done(ctx):
        obj = c.json
        if isinstance(obj, dict) and isinstance(obj.get("choices"), list) and obj["choices"]:
            out.append((c, obj["choices"]))
    return out


@check("stream.finish_reason", description="exactly one finish_reason, on the last choice chunk, with a known value",
       applies=not_chat_family)
def finish_reason(ctx: Context) -> Outcome:
    choice_chunks = _choice_chunks(ctx)
    if not choice_chunks:
        if ctx.profile.schema == "chunk.openai":
            return Outcome.failed("no chunk has choices", measured=0, threshold=1)
        return Outcome.skip("the stream does not use OpenAI choices")
    finals = [c for c, choices in choice_chunks if any(isinstance(ch, dict) and ch.get("finish_reason") is not None
                                                       for ch in choices)]
    if not finals:
        last = choice_chunks[-1][0]
        return Outcome.failed("no chunk sets finish_reason: clients cannot tell a complete answer from a cut one",
                              measured=0, threshold=1, evidence=[evidence(last.offset, last.raw[:160], last.t)])
    if len(finals) > 1:
        return Outcome.failed(f"finish_reason set on {len(finals)} chunks", measured=len(finals), threshold=1,
                              evidence=[evidence(c.offset, c.raw[:160], c.t) for c in finals[:5]])
    final = finals[0]
    order = [c for c, _ in choice_chunks]
    if final is not order[-1]:
        later = order[order.index(final) + 1]
        return Outcome.failed("choice chunks follow the one with finish_reason", measured=1, threshold=1,
                              evidence=[evidence(later.offset, later.raw[:160], later.t)])
    value = final.finish_reason
    if value not in FINISH_REASONS:
        return Outcome.failed(f"unknown finish_reason {value!r}", measured=value, threshold=" | ".join(FINISH_REASONS),
                              evidence=[evidence(final.offset, final.raw[:160], final.t)])
    return Outcome.passed(f"finish_reason {value!r} on the last choice chunk", measured=value,
                          threshold=" | ".join(FINISH_REASONS), evidence=[evidence(final.offset, None, final.t)])


def _asked_for_usage(ctx: Context) -> bool:
    import json

    try:
        body = json.loads(ctx.primary.capture.request.body or b"{}")
    except ValueError:
        return False
    opts = body.get("stream_options") if isinstance(body, dict) else None
    return isinstance(opts, dict) and opts.get("include_usage") is True


@check("stream.usage", description="usage: one chunk after the content, before [DONE], with consistent counts",
       applies=not_chat_family)
def usage(ctx: Context) -> Outcome:
    chunks = ctx.primary.chunks
    with_usage = [(i, c) for i, c in enumerate(chunks) if c.usage is not None]
    asked = _asked_for_usage(ctx)
    if not with_usage:
        if asked:
            last = chunks[-1] if chunks else None
            return Outcome.failed("stream_options.include_usage was requested but no usage chunk came",
                                  measured=0, threshold=1,
                                  evidence=[evidence(last.offset, last.raw[:120], last.t)] if last else [])
        return Outcome.skip("no usage reported (not requested)")
    problems = []
    if len(with_usage) > 1:
        problems.append((with_usage[1][1], f"usage sent {len(with_usage)} times"))
    index, chunk = with_usage[-1]
    last_content = max((i for i, c in enumerate(chunks) if c.has_text), default=-1)
    done_at = next((i for i, c in enumerate(chunks) if c.done), len(chunks))
    if index < last_content:
        problems.append((chunk, "usage chunk arrives before the last content chunk"))
    if index > done_at:
        problems.append((chunk, "usage chunk arrives after [DONE]"))
    obj = chunk.json
    if isinstance(obj, dict) and obj.get("choices") not in ([], None) and asked:
        problems.append((chunk, "the usage chunk must have choices: [] (OpenAI include_usage rule)"))
    values = {f: chunk.usage.get(f) for f in _USAGE_FIELDS}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values.values()):
        problems.append((chunk, f"usage fields must be non-negative integers: {values}"))
    elif values["total_tokens"] != values["prompt_tokens"] + values["completion_tokens"]:
        problems.append((chunk, f"total_tokens {values['total_tokens']} != prompt_tokens + completion_tokens"))
    if problems:
        return Outcome.failed("; ".join(p for _, p in problems), measured=values, threshold="OpenAI usage rules",
                              evidence=[evidence(c.offset, c.raw[:160], c.t) for c, _ in problems[:5]])
    return Outcome.passed(f"usage {values}", measured=values, threshold="OpenAI usage rules",
                          evidence=[evidence(chunk.offset, None, chunk.t)])


def _no_protocol_rules(ctx: Context) -> str | None:
    dialect = _dialect(ctx)
    return None if dialect.protocol_problems([]) is not None else f"the {dialect.name} protocol has no event order"


@check("stream.protocol", description="the protocol's event order and numbering (Responses: sequence_number "
       "increasing, type = event name; Anthropic: deltas only inside started blocks)", applies=_no_protocol_rules)
def protocol(ctx: Context) -> Outcome:
    dialect = _dialect(ctx)
    chunks = ctx.primary.chunks
    if not chunks:
        return Outcome.failed("no events", measured=0, threshold="> 0 events")
    problems = dialect.protocol_problems(chunks) or []
    if problems:
        return Outcome.failed(f"{len(problems)} breach(es) of the {dialect.name} event rules; first: "
                              f"{problems[0][1]}", measured=len(problems), threshold=0,
                              evidence=[evidence(c.offset, f"{why} | {c.raw[:100]}", c.t) for c, why in problems[:5]])
    return Outcome.passed(f"{len(chunks)} events in the {dialect.name} order", measured=0, threshold=0)


def _asked_for_tools(ctx: Context) -> str | None:
    import json

    try:
        body = json.loads(ctx.primary.capture.request.body or b"{}")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("tools"):
        return None
    return "the request offers no tools"


@check("stream.tool_calls", description="tool-call deltas: an id, type and name on each call's first fragment and "
       "never changed; arguments that concatenate to valid JSON; finish_reason tool_calls", applies=_asked_for_tools)
def tool_calls(ctx: Context) -> Outcome:
    import json

    calls: dict[int, dict] = {}
    problems: list[tuple] = []
    for chunk in _until_done(ctx):
        for frag in chunk.tool_calls or []:
            index = frag.get("index") if isinstance(frag, dict) else None
            if not isinstance(index, int) or isinstance(index, bool):
                problems.append((chunk, f"a tool_calls fragment without an integer index: {str(frag)[:80]}"))
                continue
            function = frag.get("function") if isinstance(frag.get("function"), dict) else {}
            call = calls.get(index)
            if call is None:
                calls[index] = call = {"id": frag.get("id"), "name": function.get("name"), "args": [], "at": chunk}
                if not isinstance(call["id"], str) or not call["id"]:
                    problems.append((chunk, f"tool call {index}: its first fragment has no id"))
                if frag.get("type") != "function":
                    problems.append((chunk, f"tool call {index}: type is {frag.get('type')!r}, not 'function'"))
                if not isinstance(call["name"], str) or not call["name"]:
                    problems.append((chunk, f"tool call {index}: its first fragment has no function.name"))
            else:
                for key, value in (("id", frag.get("id")), ("name", function.get("name"))):
                    if value not in (None, "", call[key]):
                        problems.append((chunk, f"tool call {index}: {key} re-sent as {value!r} "
                                                f"(was {call[key]!r})"))
            args = function.get("arguments")
            if args is None and "arguments" in function:
                problems.append((chunk, f"tool call {index}: arguments is null"))
            elif isinstance(args, str):
                call["args"].append(args)
    if not calls:
        return Outcome.failed("tools were offered but no tool_calls delta came", measured=0, threshold=">= 1 call")
    for index, call in sorted(calls.items()):
        text = "".join(call["args"])
        try:
            json.loads(text or "")
        except ValueError as exc:
            problems.append((call["at"], f"tool call {index}: arguments {text[:80]!r} are not valid JSON ({exc})"))
    finals = [c.finish_reason for c in _until_done(ctx) if c.finish_reason]
    if finals and finals[-1] != "tool_calls":
        last = [c for c in _until_done(ctx) if c.finish_reason][-1]
        problems.append((last, f"finish_reason {finals[-1]!r}, not 'tool_calls'"))
    if problems:
        return Outcome.failed("; ".join(why for _, why in problems[:3]), measured=len(problems), threshold=0,
                              evidence=[evidence(c.offset, f"{why} | {c.raw[:100]}", c.t) for c, why in problems[:5]])
    return Outcome.passed(f"{len(calls)} tool call(s), each with an id, a name and JSON arguments",
                          measured=len(calls), threshold=">= 1 call")
