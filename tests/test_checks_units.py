"""Each check over hand-made captures: a clean stream passes, and each defect fails (or warns) the check meant for it.

The reference-server fault table (tests/test_checks_faults.py) proves the same end to end over real HTTP; these
cover what no fault produces (inconsistent ids, finish_reason and usage rules, cache headers, e2e limits...) and
pin the exact measured values.
"""

from __future__ import annotations

import json

import pytest

from harness.checks import Context, Outcome, load_checks
from harness.measure.metrics import metrics_from_capture
from harness.measure.transcript import Transcript
from harness.model import Capture, Read, RequestSpec
from harness.parse.decode import decode
from harness.run.profile import load_profile

PROMPT = "Explain how volcanoes form and why some volcanic eruptions are explosive while others are gentle."
OTHER_PROMPT = "Describe how bread dough rises: the role of yeast, gluten, kneading and fermentation time."
ANSWER = (
    "Volcanoes form where molten rock called magma rises from deep inside the Earth toward the surface. "
    "Most of them sit along the edges of tectonic plates, where one plate sinks beneath another and melts, or "
    "where plates pull apart and let hot mantle material well up. Hot spots such as Hawaii are an exception: a "
    "plume of heat punches through the middle of a plate. Whether an eruption is explosive or gentle depends "
    "mostly on the magma's viscosity and its gas content. Silica-rich magma is thick and sticky, so dissolved "
    "water vapour and carbon dioxide cannot escape easily; pressure builds until the rock shatters and ash is "
    "thrown high into the sky, as at Mount St Helens. Basaltic magma is runny and poor in silica, so gas bubbles "
    "slip out calmly and lava pours from fissures in long glowing rivers, the gentle style seen in Iceland. "
    "Temperature matters too, because hotter melts flow more freely. Scientists watch ground swelling, small "
    "earthquakes and gas emissions to forecast which kind of volcanic eruption is coming next, and they map "
    "old deposits to learn how a particular volcano behaved in past centuries. Crater lakes, domes and calderas "
    "record that history for anyone who knows how to read the layered rock left behind by each event."
)
BREAD = (
    "Bread dough rises because yeast, a single-celled fungus, eats the sugars released from flour starch and "
    "breathes out carbon dioxide. Kneading develops gluten, an elastic network of wheat proteins that traps "
    "those bubbles like tiny balloons. A longer fermentation time gives the yeast more chance to produce gas and "
    "flavour compounds, which is why slow overnight doughs taste richer than quick ones. Warm kitchens speed the "
    "process; cold ones slow it. Bakers judge readiness with the poke test rather than the clock. Salt tightens "
    "the gluten and tempers yeast activity, while sugar and fat soften the crumb of enriched loaves."
)


def sse_event(obj_or_text, *, sep: bytes = b"\n", space: bool = True) -> bytes:
    data = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
    return b"data:" + (b" " if space else b"") + data.encode() + sep + sep


def delta(text: str | None, **extra) -> dict:
    d = {} if text is None else {"content": text}
    d.update(extra.pop("delta_extra", {}))
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": d, "finish_reason": extra.pop("finish_reason", None)}]}
    chunk.update(extra)
    return chunk


def pieces_of(text: str, n: int) -> list[str]:
    size = max(1, len(text) // n + 1)
    return [text[i: i + size] for i in range(0, len(text), size)]


def stream_reads(text: str = ANSWER, *, n: int = 40, t0: float = 0.05, gap: float = 0.01, done: bool = True,
                 finish: bool = True, usage: bool = False) -> list[Read]:
    reads = [Read(t0, sse_event(delta("", delta_extra={"role": "assistant"})))]
    t = t0
    for piece in pieces_of(text, n):
        reads.append(Read(t, sse_event(delta(piece))))
        t += gap
    if finish:
        reads.append(Read(t, sse_event(delta(None, finish_reason="stop"))))
    if usage:
        u = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
             "usage": {"prompt_tokens": 20, "completion_tokens": len(text) // 4, "total_tokens": 20 + len(text) // 4}}
        reads.append(Read(t, sse_event(u)))
    if done:
        reads.append(Read(t, sse_event("[DONE]")))
    return reads


def make_capture(reads: list[Read], *, prompt: str = PROMPT, status: int | None = 200,
                 headers: list[tuple[str, str]] | None = None, end_reason: str = "eof",
                 body: dict | None = None) -> Capture:
    if headers is None:
        headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
    request_body = json.dumps(body if body is not None else {"prompt": prompt, "stream": True}).encode()
    return Capture(request=RequestSpec(url="http://127.0.0.1:9/v1/chat/completions", body=request_body,
                                       prompt=prompt),
                   status=status, headers=headers, reads=reads, t_request_sent=0.001, t_headers=0.01,
                   t_first_byte=reads[0].t if reads else None, t_end=(reads[-1].t + 0.001) if reads else 0.02,
                   end_reason=end_reason)


def transcript(cap: Capture, profile) -> Transcript:
    try:
        from harness.measure.transcript import transcript_of

        return transcript_of(cap, profile)
    except ImportError:  # the parser module not in this checkout yet: parse SSE directly
        from types import SimpleNamespace

        from harness.parse.sse import SSEParser

        parser = SSEParser()
        events = [e for r in cap.reads for e in parser.feed(r.data, r.t)] + parser.close()
        chunks = decode(events)
        return Transcript(cap, SimpleNamespace(kind="sse", events=events, findings=parser.findings), chunks,
                          metrics_from_capture(cap, chunks, profile.token_method))


def context(cap: Capture, profile="tds", secondary: Capture | None = None, overrides=()) -> Context:
    p = load_profile(profile, list(overrides))
    return Context(p, transcript(cap, p), transcript(secondary, p) if secondary is not None else None)


def run_check(check_id: str, ctx: Context) -> Outcome:
    """As the engine runs a check: one whose ``applies`` rule says it does not apply here is not run."""
    spec = load_checks()[check_id]
    why_not = spec.applies(ctx) if spec.applies is not None else None
    return Outcome.not_applicable(why_not) if why_not is not None else spec.func(ctx)


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def _tool_call_capture(args: list[str], *, first: dict | None = None) -> Capture:
    """A chat stream answering with one tool call whose arguments arrive as ``args`` fragments."""
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    head.update(first or {})
    reads = [Read(0.1, sse_event(delta(None, delta_extra={"role": "assistant", "tool_calls": [head]})))]
    for i, piece in enumerate(args):
        frag = {"index": 0, "function": {"arguments": piece}}
        reads.append(Read(0.2 + 0.05 * i, sse_event(delta(None, delta_extra={"tool_calls": [frag]}))))
    reads.append(Read(0.9, sse_event(delta(None, finish_reason="tool_calls"))))
    reads.append(Read(0.95, sse_event("[DONE]")))
    return make_capture(reads, body={"model": "m", "messages": [{"role": "user", "content": PROMPT}],
                                     "stream": True, "tools": TOOLS})


def _responses_capture(sequence: list[int]) -> Capture:
    """An OpenAI Responses stream whose events carry these sequence numbers."""
    names = ["response.created"] + ["response.output_text.delta"] * (len(sequence) - 2) + ["response.completed"]
    reads = []
    for i, (name, seq) in enumerate(zip(names, sequence, strict=True)):
        obj: dict = {"type": name, "sequence_number": seq}
        if name == "response.output_text.delta":
            obj.update(item_id="msg_1", output_index=0, content_index=0, delta=f"Magma rises ({i}). ")
        else:
            obj["response"] = {"id": "resp_1", "status": "completed" if i else "in_progress"}
        reads.append(Read(0.1 + 0.05 * i, f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()))
    cap = make_capture(reads)
    cap.request = RequestSpec(url=cap.request.url, body=b'{"model": "m", "input": "x", "stream": true}',
                              prompt=PROMPT, dialect="openai-responses")
    return cap


def test_tool_call_stream_passes_and_without_tools_the_check_does_not_apply():
    good = _tool_call_capture(['{"city": ', '"Paris"}'])
    assert run_check("stream.tool_calls", context(good, "openai")).status == "pass"
    plain = context(make_capture(stream_reads()), "openai")
    out = run_check("stream.tool_calls", plain)
    assert out.status == "skip" and not out.applicable


def test_responses_stream_in_order_passes_the_protocol_check():
    assert run_check("stream.protocol", context(_responses_capture([0, 1, 2, 3, 4]), "openai-responses")).status \
        == "pass"


MY_CATEGORIES = ("http", "framing", "schema", "stream", "content", "timing")


@pytest.fixture(scope="module")
def clean() -> Context:
    return context(make_capture(stream_reads(usage=True), body={"model": "m", "stream": True,
                                                                 "messages": [{"role": "user", "content": PROMPT}],
                                                                 "stream_options": {"include_usage": True}}),
                   "openai", secondary=make_capture(stream_reads(BREAD), prompt=OTHER_PROMPT))


def test_clean_stream_passes_every_check_of_mine(clean):
    for check_id, spec in load_checks().items():
        if spec.category not in MY_CATEGORIES:
            continue
        outcome = run_check(check_id, clean)
        if not outcome.applicable:  # a rule of another protocol (its own tests above show it passing there)
            continue
        assert outcome.status == "pass", (check_id, outcome)


def test_every_check_of_mine_is_covered_by_a_failing_case():
    ids = {cid for cid, spec in load_checks().items() if spec.category in MY_CATEGORIES}
    covered = {case[0] for case in CASES}
    assert ids <= covered, sorted(ids - covered)


def _reads_with(mutate) -> list[Read]:
    reads = stream_reads()
    return mutate(reads) or reads


def _cap(**kw) -> Capture:
    return make_capture(stream_reads(), **kw)


def _placeholder_reads() -> list[Read]:
    reads = [Read(0.02, sse_event(delta("...")))]
    return reads + [Read(r.t + 2.0, r.data) for r in stream_reads()]


def _buffered_reads() -> list[Read]:
    return [Read(1.5, r.data) for r in stream_reads()]


def _ids_change(reads):
    reads[5] = Read(reads[5].t, reads[5].data.replace(b"chatcmpl-1", b"chatcmpl-2"))


# (check id, expected status, capture or builder, profile, overrides)
CASES = [
    ("http.status", "fail", lambda: _cap(status=500), "tds", ()),
    ("http.status", "fail", lambda: make_capture([], status=None, end_reason="connect_error"), "tds", ()),
    ("http.content_type", "fail", lambda: _cap(headers=[("content-type", "text/plain")]), "tds", ()),
    ("http.content_type", "fail", lambda: _cap(headers=[("content-type", "application/x-ndjson")]), "openai", ()),
    ("http.content_encoding", "fail", lambda: _cap(headers=[("content-type", "text/event-stream"),
                                                            ("content-encoding", "gzip")]), "tds", ()),
    ("http.cache_control", "fail", lambda: _cap(headers=[("content-type", "text/event-stream")]), "tds", ()),
    ("framing.parse", "fail", lambda: make_capture([Read(0.1, b"<html>oops</html>")]), "tds", ()),
    ("framing.utf8", "fail", lambda: make_capture(_reads_with(
        lambda r: r.insert(3, Read(r[3].t, b'data: {"choices":[{"delta":{"content":"\xff\xfe"}}]}\n\n')))), "tds", ()),
    ("framing.line_endings", "warn", lambda: make_capture(
        [Read(r.t, r.data.replace(b"\n", b"\r")) for r in stream_reads()]), "tds", ()),
    ("framing.field_spacing", "warn", lambda: make_capture(
        [Read(r.t, r.data.replace(b"data: ", b"data:")) for r in stream_reads()]), "tds", ()),
    ("framing.unterminated", "fail", lambda: make_capture(stream_reads(done=False) + [Read(2.0, b'data: {"cho')],
                                                          end_reason="read_error"), "tds", ()),
    ("framing.complete", "fail", lambda: _cap(end_reason="deadline"), "tds", ()),
    ("schema.events", "fail", lambda: make_capture(_reads_with(
        lambda r: r.insert(4, Read(r[4].t, b'data: {"choices": [{"delta": {"content": "x"}\n\n')))), "tds", ()),
    ("schema.events", "fail", lambda: make_capture(_reads_with(
        lambda r: r.insert(4, Read(r[4].t, sse_event({"choices": [{"delta": {"content": "x"}}]}))))), "openai", ()),
    ("schema.consistent_id", "fail", lambda: make_capture(_reads_with(_ids_change)), "openai", ()),
    ("stream.done", "fail", lambda: make_capture(stream_reads(done=False)), "tds", ()),
    ("stream.done", "fail", lambda: make_capture(stream_reads() + [Read(1.0, sse_event("[DONE]"))]), "tds", ()),
    ("stream.done_last", "fail", lambda: make_capture(stream_reads() + [Read(1.0, sse_event(delta("late")))]),
     "tds", ()),
    ("stream.tool_calls", "fail", lambda: _tool_call_capture(['{"city": ', '"Paris"']), "openai", ()),
    ("stream.tool_calls", "fail", lambda: _tool_call_capture(['{}'], first={"id": None}), "openai", ()),
    ("stream.protocol", "fail", lambda: _responses_capture([0, 1, 3, 2, 4]), "openai-responses", ()),
    ("stream.finish_reason", "fail", lambda: make_capture(stream_reads(finish=False)), "openai", ()),
    ("stream.finish_reason", "fail", lambda: make_capture(_reads_with(
        lambda r: r.insert(3, Read(r[3].t, sse_event(delta("x", finish_reason="stop")))))), "openai", ()),
    ("stream.usage", "fail", lambda: make_capture(stream_reads(), body={
        "model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}), "openai", ()),
    ("stream.usage", "fail", lambda: make_capture(_reads_with(lambda r: r.insert(2, Read(r[2].t, sse_event(
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 9}}))))), "tds", ()),
    ("content.chunks", "fail", lambda: make_capture(stream_reads(n=3)), "tds", ()),
    ("content.chunks", "fail", lambda: make_capture(stream_reads(n=1) + [Read(0.5 + i / 100, sse_event(delta(" ")))
                                                                         for i in range(4)]), "tds", ()),
    ("content.chars", "fail", lambda: make_capture(stream_reads(ANSWER[:300], n=20)), "tds", ()),
    ("content.relevance", "fail", lambda: make_capture(stream_reads(BREAD * 3)), "tds", ()),
    ("content.not_echo", "fail", lambda: make_capture(stream_reads((PROMPT + " ") * 16)), "tds", ()),
    ("content.distinct", "fail", lambda: (make_capture(stream_reads()),
                                          make_capture(stream_reads(), prompt=OTHER_PROMPT)), "tds", ()),
    ("content.distinct", "fail", lambda: (make_capture(stream_reads()),
                                          make_capture(stream_reads(ANSWER.replace("magma", "lava")),
                                                       prompt=OTHER_PROMPT)), "tds", ()),
    ("content.not_padding", "fail", lambda: make_capture(stream_reads(ANSWER[:120] * 13)), "tds", ()),
    ("content.placeholder_first", "fail", lambda: make_capture(_placeholder_reads()), "tds", ()),
    ("timing.ttfb", "fail", lambda: make_capture([Read(r.t + 3.0, r.data) for r in stream_reads()]), "tds", ()),
    ("timing.ttft", "fail", lambda: make_capture([Read(r.t + 3.0, r.data) for r in stream_reads()]), "tds", ()),
    ("timing.ttft", "fail", lambda: make_capture(_placeholder_reads()), "tds", ("timing.ttft_ms=1500",)),
    ("timing.tokens_per_s", "fail", lambda: make_capture(stream_reads(gap=0.5)), "tds", ()),
    ("timing.tokens_per_s", "fail", lambda: make_capture(stream_reads(n=1)), "tds", ()),
    ("timing.itl", "fail", lambda: make_capture(stream_reads(gap=2.5, n=5)), "tds", ()),
    ("timing.e2e", "fail", lambda: make_capture(stream_reads(gap=0.2)), "tds", ("timing.e2e_ms=1000",)),
    ("timing.progressive", "fail", lambda: make_capture(_buffered_reads()), "tds", ()),
]


@pytest.mark.parametrize(("check_id", "status", "build", "profile", "overrides"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_defect_fails_its_check(check_id, status, build, profile, overrides):
    built = build()
    primary, secondary = built if isinstance(built, tuple) else (built, None)
    outcome = run_check(check_id, context(primary, profile, secondary, overrides))
    assert outcome.status == status, outcome
    if status != "pass":
        assert outcome.message
        # Evidence points into the body (an offset) or at a time whenever there is something to point at.
        for item in outcome.evidence:
            assert set(item) >= {"offset", "excerpt", "t"}


def test_placeholder_does_not_stop_the_ttft_clock():
    ctx = context(make_capture(_placeholder_reads()))
    assert ctx.primary.metrics.ttft_ms > 2000
    assert run_check("content.placeholder_first", ctx).measured >= 2000


def test_role_only_opening_chunk_is_not_a_placeholder():
    ctx = context(make_capture([Read(0.01, sse_event(delta("", delta_extra={"role": "assistant"})))] +
                               [Read(r.t + 1.0, r.data) for r in stream_reads()]))
    assert run_check("content.placeholder_first", ctx).status == "pass"


def test_a_fast_stream_is_progressive_even_when_it_fits_one_window():
    """All text inside 200 ms but right after the request: no silence, so not a buffered dump."""
    ctx = context(make_capture(stream_reads(gap=0.001, t0=0.02)))
    assert ctx.primary.metrics.burst.share == 1.0
    assert run_check("timing.progressive", ctx).status == "pass"


def test_no_secondary_skips_distinct():
    assert run_check("content.distinct", context(make_capture(stream_reads()))).status == "skip"


def test_ndjson_stream_ends_with_finish_reason():
    lines = [Read(0.05 + i * 0.01, (json.dumps(delta(p)) + "\n").encode()) for i, p in enumerate(pieces_of(ANSWER, 20))]
    cap = make_capture(lines + [Read(0.5, (json.dumps(delta(None, finish_reason="stop")) + "\n").encode())],
                       headers=[("content-type", "application/x-ndjson")])
    ctx = context(cap)
    assert ctx.primary.parsed.kind == "ndjson"
    assert run_check("stream.done", ctx).status == "pass"
    assert run_check("http.content_type", ctx).status == "pass"
    # NDJSON has no end marker: a clean end of body ends it, a broken one (reset, unterminated chunks) fails.
    bare = make_capture(lines, headers=[("content-type", "application/x-ndjson")])
    assert run_check("stream.done", context(bare)).status == "pass"
    cut = make_capture(lines, headers=[("content-type", "application/x-ndjson")], end_reason="read_error")
    assert run_check("stream.done", context(cut)).status == "fail"


def test_token_method_is_named_and_tiktoken_without_encoding_skips():
    cap = make_capture(stream_reads())
    ctx = context(cap, overrides=("token_method=words",))
    assert ctx.primary.metrics.token_method == "words"
    assert run_check("timing.tokens_per_s", ctx).status == "pass"
    tk = context(cap, overrides=("token_method=tiktoken",))
    if tk.primary.metrics.tokens is None:
        outcome = run_check("timing.tokens_per_s", tk)
        assert outcome.status == "skip" and "tiktoken" in outcome.message
    usage = context(cap, overrides=("token_method=usage",))  # this stream reports no usage: the endpoint's gap
    assert run_check("timing.tokens_per_s", usage).status == "fail"
    with_usage = context(make_capture(stream_reads(usage=True)), overrides=("token_method=usage",))
    assert with_usage.primary.metrics.tokens == len(ANSWER) // 4


def test_one_buffered_write_split_into_reads_has_no_rate():
    reads = stream_reads()
    ctx = context(make_capture([Read(1.0 + i * 0.0001, r.data) for i, r in enumerate(reads)]))
    assert ctx.primary.metrics.tokens_per_s is None
    assert run_check("timing.tokens_per_s", ctx).status == "fail"


def test_no_rate_message_says_why_in_the_endpoints_terms():
    nothing = context(make_capture([Read(0.05, b": keep-alive\n\n")]))
    message = run_check("timing.tokens_per_s", nothing).message
    assert message.startswith("no content arrived: no streaming rate to measure"), message
    one = context(make_capture(stream_reads(n=1)))
    assert "all the content arrived in one chunk" in run_check("timing.tokens_per_s", one).message
    reads = stream_reads()
    dumped = context(make_capture([Read(1.0 + i * 0.0001, r.data) for i, r in enumerate(reads)]))
    assert "content chunks arrived within 10 ms" in run_check("timing.tokens_per_s", dumped).message


def test_usage_count_in_the_prompt_dialect_says_how_to_get_one():
    cap = make_capture(stream_reads())  # the prompt dialect: no way to ask for a usage report
    outcome = run_check("timing.tokens_per_s", context(cap, overrides=("token_method=usage",)))
    assert outcome.status == "fail" and "--dialect openai" in outcome.message, outcome.message
    cap.request.dialect = "openai"  # asked (or could have): the missing report is the endpoint's alone
    outcome = run_check("timing.tokens_per_s", context(cap, overrides=("token_method=usage",)))
    assert outcome.status == "fail" and "--dialect" not in outcome.message, outcome.message
