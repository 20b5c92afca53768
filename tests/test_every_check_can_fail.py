"""Proof that every registered check can fail: one row per check id, each a realistic input that makes it fail.

The founding brief: "a check that cannot fail is a defect". This module is the ledger for that rule. ``TABLE`` maps
every check id in the registry (``harness.checks.load_checks()``, the modules harness/run/runner.py imports) to one
or more inputs that make it return ``fail`` -- or ``warn``, for the two checks whose only non-pass outcome is a
warning by design (``WARN_BY_DESIGN``) -- and ``test_every_registered_check_has_a_failing_row`` fails, naming the
check, when a new check arrives without a row here. Each failing verdict must carry a message that says why, a
measured value or threshold, and evidence where the defect has a place in the stream. A second test re-judges every
input under every built-in profile, so no profile's thresholds can make a check it runs impossible to fail.

Where the inputs come from, in order of preference:

* a reference-server fault (``X-Fault: NAME``) captured over real loopback HTTP through ``harness.run.runner.run_target``
  (most rows);
* ``CarelessServer`` below, a small real loopback server for the defects no fault produces (it answers every
  method, sends no Cache-Control and no CORS headers, a new chunk id per event, and a 429 without Retry-After once
  its quota is spent) -- the kind of endpoint a first attempt looks like;
* real captures recombined: the robustness checks judge extra streams (``ctx.probes["robustness.<part>.<n>"]``), and
  a defect those checks see must be absent from the main stream, which no single fault header can arrange; so a
  fault's real capture is filed as one of the extra streams beside clean ones;
* a hand-made capture with chosen timestamps, only for timing limits that real streams would need a minute to
  cross (``timing.e2e``) or a stall no fault has (``timing.itl``).

Each source is captured once for the module (all at the same time) and every row is judged offline with
``harness.run.runner.evaluate`` over a context built by ``harness.run.runner.build_context``: the same engine as a run.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from harness.capture.core import capture
from harness.checks import Context, load_checks
from harness.checks.catalog import BAD_REQUEST_PROBES, PROBES
from harness.model import Capture, Limits, Read, RequestSpec
from harness.run.profile import builtin_profiles, load_profile
from harness.run.runner import RunOptions, build_context, build_spec, evaluate, planned_checks, run_target
from tests.hostile_servers import HostileServer, read_head, send

# -- sources --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One run to capture: against the reference server (with an optional X-Fault) or the careless server."""

    profile: str
    categories: frozenset[str]
    fault: str | None = None
    server: str = "reference"  # "reference" | "careless"
    path: str | None = None  # replaces the endpoint's path (a mistyped URL)
    overrides: tuple[str, ...] = ()  # capture-time profile settings
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request of the run (credentials)


STREAM = frozenset({"http", "framing", "schema", "stream"})
CONTENT = frozenset({"content"})
# content.distinct needs the second prompt's answer: only sources judged on it keep the secondary capture.
NO_SECONDARY = ("checks.content.distinct.enabled=false",)

SOURCES: dict[str, Source] = {
    "clean": Source("tds", STREAM | CONTENT, overrides=NO_SECONDARY),
    "wrong-path": Source("tds", frozenset({"http"}), path="/v1/chat/completion"),
    "wrong-content-type": Source("tds", STREAM, "wrong-content-type"),
    "gzip": Source("tds", STREAM, "gzip"),
    "huge-line": Source("tds", STREAM, "huge-line"),
    "invalid-utf8": Source("tds", STREAM, "invalid-utf8"),
    "cr": Source("tds", STREAM, "cr"),
    "no-space": Source("tds", STREAM, "no-space"),
    "truncated": Source("tds", STREAM, "truncated"),
    "malformed-json": Source("tds", STREAM, "malformed-json"),
    "no-done": Source("tds", STREAM, "no-done"),
    "data-after-done": Source("tds", STREAM, "data-after-done"),
    "schema-mismatch": Source("openai", STREAM, "schema-mismatch"),
    "few-chunks": Source("tds", CONTENT, "few-chunks", overrides=NO_SECONDARY),
    "short-content": Source("tds", CONTENT, "short-content", overrides=NO_SECONDARY),
    "canned": Source("grading", CONTENT, "canned"),
    "echo": Source("grading", CONTENT, "echo", overrides=NO_SECONDARY),
    "padding": Source("grading", CONTENT, "padding", overrides=NO_SECONDARY),
    "placeholder-first": Source("grading", CONTENT, "placeholder-first", overrides=NO_SECONDARY),
    "slow-ttft": Source("tds", frozenset({"timing"}), "slow-ttft"),
    "buffered": Source("tds", frozenset({"timing"}), "buffered"),
    "error-500": Source("tds", frozenset({"errors"}), "error-500"),
    "error-midstream": Source("tds", frozenset({"errors"}), "error-midstream"),
    # LiteLLM's proxy: without the key (or with a wrong one) a 500 text/plain, not a 401.
    "auth-500": Source("tds", frozenset({"errors"}), "auth-500",
                       headers=(("Authorization", "Bearer sk-streamconform"),)),
    # ops: the rate-limit burst is on (it floods the target, so only ops opts in).
    "careless": Source("ops", frozenset({"http", "schema", "errors"}), server="careless"),
}


class CarelessServer(HostileServer):
    """A naive streaming endpoint on loopback: every defect here is one no reference-server fault produces.

    * any method is answered with the stream: GET (``errors.wrong_method``) and the CORS preflight OPTIONS, which
      also gets no Access-Control-* headers (``errors.cors``);
    * no Cache-Control header (``http.cache_control``);
    * a fresh ``id`` on every chunk, as code that builds each chunk from scratch does (``schema.consistent_id``);
    * a request quota: past ``quota`` requests, a 429 with no Retry-After (``errors.rate_limit``). The run's own
      requests before the burst (the main stream and eleven probes) stay under it, so only the burst meets it.
    """

    def __init__(self, quota: int = 20, chunks: int = 12, gap_s: float = 0.01) -> None:
        super().__init__(self.handle)
        self.quota, self.chunks, self.gap_s = quota, chunks, gap_s
        self.served = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        self.served += 1
        if self.served > self.quota:
            body = b'{"error": {"message": "quota exceeded", "type": "rate_limit"}}'
            writer.write(b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        await writer.drain()
        words = "Volcanoes form where magma rises through cracks in the crust; gas-rich magma erupts explosively"
        for i in range(self.chunks):
            await asyncio.sleep(self.gap_s)
            chunk = {"id": f"chatcmpl-{self.served}-{i}", "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": f"{words} ({i}). "}, "finish_reason": None}]}
            await send(writer, b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await send(writer, b"data: [DONE]\n\n")


def _url(base: str, path: str | None) -> str:
    if path is None:
        return base
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}{path}"


async def _capture_all(reference_url: str, careless_url: str) -> dict[str, Any]:
    async def one(source: Source):
        base = careless_url if source.server == "careless" else reference_url
        headers = {"X-Fault": source.fault} if source.fault else {}
        headers.update(dict(source.headers))
        options = RunOptions(headers=headers, categories=set(source.categories), api_key=None,
                             limits=Limits(deadline_s=40.0, idle_timeout_s=10.0))
        return await run_target(_url(base, source.path), load_profile(source.profile, list(source.overrides)),
                                options)

    async def dropped() -> Capture:
        """A stream the client drops half-way, as harness/run/robustness.py's disconnect part does."""
        tds = load_profile("tds")
        spec = build_spec(reference_url, tds, RunOptions(api_key=None), tds.prompts[0], tds.dialect)
        return await capture(spec, Limits(deadline_s=20.0), cancel_after_s=0.3)

    names = list(SOURCES)
    got = await asyncio.gather(*(one(SOURCES[n]) for n in names), dropped())
    runs = dict(zip(names, got[:-1], strict=True))
    runs["dropped"] = got[-1]
    return runs


@pytest.fixture(scope="module")
def runs(reference_server) -> dict[str, Any]:
    with CarelessServer() as careless:
        return asyncio.run(_capture_all(reference_server.endpoint, careless.url))


# -- contexts built from the captures -------------------------------------------------------------------------------

def context_of(runs: dict[str, Any], name: str, profile: Any) -> Context:
    """The context a run was judged on, rebuilt offline for ``profile`` (the same bytes, maybe other settings)."""
    result = runs[name]
    return build_context(profile, result.captures["primary"], result.captures.get("secondary"), result.probes,
                         result.extra)


def primary(runs: dict[str, Any], name: str) -> Capture:
    return runs[name].captures["primary"]


def with_extra_streams(part: str, broken: str, *, count: int, broken_count: int = 1
                       ) -> Callable[[dict[str, Any], Any], Context]:
    """The clean main stream, plus ``count`` extra streams for a robustness part, the first ``broken_count`` of
    them ``broken`` (a real fault capture): the endpoint did worse on extra streams than on the main one. (First,
    because a profile that asks for fewer repeats than were filed judges only the first ones.)"""

    def build(runs: dict[str, Any], profile: Any) -> Context:
        extras = [primary(runs, broken)] * broken_count + [primary(runs, "clean")] * (count - broken_count)
        probes = {f"robustness.{part}.{i}": cap for i, cap in enumerate(extras)}
        return build_context(profile, primary(runs, "clean"), probes=probes)

    return build


def disconnect_then(broken: str) -> Callable[[dict[str, Any], Any], Context]:
    """A real stream dropped half-way, then a next request answered with the ``broken`` fault's capture."""

    def build(runs: dict[str, Any], profile: Any) -> Context:
        probes = {"robustness.disconnect.dropped": runs["dropped"],
                  "robustness.disconnect.next": primary(runs, broken)}
        return build_context(profile, primary(runs, "clean"), probes=probes)

    return build


PROMPT = "Explain how volcanoes form and why some volcanic eruptions are explosive while others are gentle."


def timed_stream(times: list[float], t_end: float) -> Callable[[dict[str, Any], Any], Context]:
    """A hand-made SSE capture whose content chunks arrive at exactly ``times`` (seconds since the request)."""

    def build(runs: dict[str, Any], profile: Any) -> Context:
        reads = []
        for i, t in enumerate(times):
            delta = {"content": f"Magma rises through the crust and erupts ({i}). "}
            reads.append(Read(t, b"data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}).encode()
                              + b"\n\n"))
        reads.append(Read(t_end, b"data: [DONE]\n\n"))
        request = RequestSpec(url="http://127.0.0.1:9/v1/chat/completions", prompt=PROMPT,
                              body=json.dumps({"prompt": PROMPT, "stream": True}).encode())
        cap = Capture(request=request, status=200, headers=[("content-type", "text/event-stream")], reads=reads,
                      t_request_sent=0.0, t_headers=times[0] - 0.01, t_first_byte=times[0], t_end=t_end,
                      end_reason="eof")
        return build_context(profile, cap)

    return build


def responses_out_of_order() -> Callable[[dict[str, Any], Any], Context]:
    """An OpenAI Responses stream whose sequence numbers go back (3 then 2): no fault server speaks it yet."""

    def build(runs: dict[str, Any], profile: Any) -> Context:
        reads, names = [], ["response.created"] + ["response.output_text.delta"] * 3 + ["response.completed"]
        for i, (name, seq) in enumerate(zip(names, [0, 1, 3, 2, 4], strict=True)):
            obj: dict = {"type": name, "sequence_number": seq}
            if name == "response.output_text.delta":
                obj.update(item_id="msg_1", output_index=0, content_index=0, delta=f"Magma rises ({i}). ")
            else:
                obj["response"] = {"id": "resp_1", "status": "completed" if i else "in_progress"}
            reads.append(Read(0.1 + 0.05 * i, f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()))
        request = RequestSpec(url="http://127.0.0.1:9/v1/responses", prompt=PROMPT, dialect="openai-responses",
                              body=json.dumps({"model": "m", "input": PROMPT, "stream": True}).encode())
        cap = Capture(request=request, status=200, headers=[("content-type", "text/event-stream")], reads=reads,
                      t_request_sent=0.0, t_headers=0.05, t_first_byte=0.1, t_end=0.4, end_reason="eof")
        return build_context(profile, cap)

    return build


def tool_call_with_broken_arguments() -> Callable[[dict[str, Any], Any], Context]:
    """A chat stream answering the offered tool with arguments that do not join into JSON (vLLM #34887)."""

    def build(runs: dict[str, Any], profile: Any) -> Context:
        head = {"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}
        frames = [{"role": "assistant", "tool_calls": [head]},
                  {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
                  {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"'}}]}]
        reads = [Read(0.1 + 0.05 * i, b"data: " + json.dumps({"choices": [{"index": 0, "delta": d}]}).encode()
                      + b"\n\n") for i, d in enumerate(frames)]
        reads.append(Read(0.4, b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n'
                               b"data: [DONE]\n\n"))
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        request = RequestSpec(url="http://127.0.0.1:9/v1/chat/completions", prompt=PROMPT, dialect="openai",
                              body=json.dumps({"model": "m", "messages": [{"role": "user", "content": PROMPT}],
                                               "stream": True, "tools": tools}).encode())
        cap = Capture(request=request, status=200, headers=[("content-type", "text/event-stream")], reads=reads,
                      t_request_sent=0.0, t_headers=0.05, t_first_byte=0.1, t_end=0.45, end_reason="eof")
        return build_context(profile, cap)

    return build


def anthropic_probe_answered_500() -> Callable[[dict[str, Any], Any], Context]:
    """An Anthropic-dialect run whose max_tokens-less request got the error-500 fault's real 500 page."""

    def build(runs: dict[str, Any], profile: Any) -> Context:
        from dataclasses import replace

        clean = primary(runs, "clean")
        main = replace(clean, request=replace(clean.request, dialect="anthropic"))
        return build_context(profile, main, probes={"missing_required": runs["error-500"].probes["missing_prompt"]})

    return build


def _protocol_stream(dialect: str, pieces: list[str]) -> tuple[str, bytes]:
    """(content type, body) of a small stream carrying ``pieces`` in ``dialect``'s own events."""
    if dialect == "ollama":
        lines = [{"model": "m", "message": {"role": "assistant", "content": p}, "done": False}
                 for p in pieces]
        lines.append({"model": "m", "message": {"role": "assistant", "content": ""}, "done": True})
        return "application/x-ndjson", b"".join(json.dumps(obj).encode() + b"\n" for obj in lines)
    if dialect == "anthropic":
        frames = [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": p}}) for p in pieces]
        frames.append(("message_stop", {"type": "message_stop"}))
        body = b"".join(f"event: {n}\ndata: {json.dumps(o)}\n\n".encode() for n, o in frames)
        return "text/event-stream", body
    if dialect == "gemini":
        events = [{"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}}]} for p in pieces]
        return "text/event-stream", b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    raise ValueError(dialect)


def client_read(name: str, result: dict[str, Any], dialect: str | None = None
                ) -> Callable[[dict[str, Any], Any], Context]:
    """A run whose clients stage recorded ``result`` for client ``name`` (the plain data
    harness/clients/collect.py files), its ``raw`` the very bytes of the main stream. ``dialect``: the clean
    main stream re-labelled (openai: the same chat events) or, for a protocol the seed's stream is not, a
    small stream of that protocol's events. What real clients do with real streams is tests/test_clients.py's;
    here the verdict on each kind of record."""

    def build(runs: dict[str, Any], profile: Any) -> Context:
        from dataclasses import replace

        clean = primary(runs, "clean")
        if dialect in (None, "openai", "prompt"):
            main = replace(clean, request=replace(clean.request, dialect=dialect or clean.request.dialect))
        else:
            pieces = [f"Magma rises through the crust ({i}). " for i in range(6)]
            kind, body = _protocol_stream(dialect, pieces)
            main = Capture(request=replace(clean.request, dialect=dialect), status=200,
                           headers=[("content-type", kind)], reads=[Read(0.1, body)], t_request_sent=0.0,
                           t_headers=0.05, t_first_byte=0.1, t_end=0.2, end_reason="eof")
        raw = {"status": main.status, "headers": [list(h) for h in main.headers], "t_request_sent": 0.0,
               "reads": [[r.t, base64.b64encode(r.data).decode()] for r in main.reads], "ended": True,
               "t_end": main.t_end}
        record = {"read": True, "text": "", "first_text_ms": None, "error": None, "raw": raw, **result}
        extra = {"clients": {"requested": [name], "results": {name: record}}}
        return build_context(profile, main, extra=extra)

    return build


# -- the table ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """How one check is made to fail.

    ``source``: a SOURCES name, or a builder ``(runs, profile) -> Context``. ``where``: what the evidence must
    locate -- "offset" (a byte offset in a body), "t" (a time), "any" (some evidence, e.g. a header or a probe's
    reply) or None (no evidence required: the defect is an absence or a whole-stream figure).
    """

    source: str | Callable[[dict[str, Any], Any], Context]
    profile: str = "tds"
    expect: str = "fail"
    where: str | None = "offset"
    overrides: tuple[str, ...] = ()
    words: str = ""  # a phrase the message must contain: the row fails for the reason it claims
    label: str = ""  # names the case in the test id (default: the source's name)

    @property
    def name(self) -> str:
        return self.label or (self.source if isinstance(self.source, str) else "hand-made")


BODY_PROBE_CASES = {
    # error-500: bad input gets a 500 HTML page. GET is refused before the fault's validation path, so
    # errors.wrong_method has its own row (the careless server).
    f"errors.{p}": Case("error-500", where="any", words="server error 500")
    for p in BAD_REQUEST_PROBES if p != "wrong_method" and PROBES[p].applies_to("prompt")
}

TABLE: dict[str, Case | list[Case]] = {
    # http
    "http.status": Case("wrong-path", where="any", words="expected 200", label="mistyped-url-404"),
    "http.content_type": Case("wrong-content-type", where="any", words="text/plain"),
    "http.content_encoding": Case("gzip", where="any", words="gzip"),
    "http.cache_control": Case("careless", "ops", where="any", words="no Cache-Control"),
    # framing
    "framing.parse": Case("huge-line", words="framing error"),
    "framing.utf8": Case("invalid-utf8", words="invalid UTF-8"),
    # WARN BY DESIGN (see WARN_BY_DESIGN): a lone CR is valid SSE (WHATWG), so failing it would fail conforming
    # servers; it warns because many line splitters only know LF. Mixed endings likewise. No fail branch is right.
    "framing.line_endings": Case("cr", expect="warn", words="lone CR"),
    # WARN BY DESIGN (see WARN_BY_DESIGN): "data:value" is valid SSE (the one leading space is optional); some
    # naive clients break on it.
    "framing.field_spacing": Case("no-space", expect="warn", words="without a space"),
    "framing.unterminated": Case("truncated", words="ends inside an event"),
    "framing.complete": Case("truncated", words="the capture ended by"),
    # schema
    "schema.events": Case("malformed-json", words="not JSON"),
    "schema.consistent_id": Case("careless", "ops", words="id changes"),
    # stream
    "stream.done": Case("no-done", words="no [DONE]"),
    "stream.done_last": Case("data-after-done", words="after [DONE]"),
    # Hand-made until the reference server speaks these protocols' faults (sequence-gap, tool-args-invalid-json).
    "stream.protocol": Case(responses_out_of_order(), words="not increasing", label="responses-sequence-back"),
    "stream.tool_calls": Case(tool_call_with_broken_arguments(), words="not valid JSON",
                              label="tool-arguments-not-json"),
    "stream.finish_reason": Case("truncated", words="no chunk sets finish_reason"),
    "stream.usage": Case("schema-mismatch", "openai", words="no usage chunk"),
    # content
    "content.chunks": Case("few-chunks", words="content chunks"),
    "content.chars": Case("short-content", words="characters"),
    "content.relevance": Case("canned", "grading", words="key terms"),
    "content.not_echo": Case("echo", "grading", words="copied from the prompt"),
    "content.distinct": Case("canned", "grading", words="share"),
    "content.not_padding": Case("padding", "grading", words="repeat"),
    # The placeholder's real text comes ~2 s in, near tds's TTFT limit: the limit is raised so only the
    # placeholder is judged (the same override as tests/test_checks_faults.py).
    "content.placeholder_first": Case("placeholder-first", "grading", overrides=("timing.ttft_ms=10000",),
                                      words="placeholder"),
    # timing
    # The fault (3 s) is over tds's limit; the hand-timed 11 s first byte is over every profile's (see the
    # per-profile test below: minimal and openai allow 10 s).
    "timing.ttfb": [Case("slow-ttft", where="t", words="first byte"),
                    Case(timed_stream([11.0 + 0.05 * i for i in range(30)], t_end=12.6), where="t",
                         words="first byte", label="first-byte-after-11s")],
    "timing.ttft": Case("slow-ttft", where="t", words="first content"),
    # Two ways to fail: a buffered dump leaves no rate at all, and a slow model (~20 tokens/s, chunks 0.6 s apart,
    # hand-timed: the slow-throughput fault takes ~25 s) has a rate below tds's 29.
    "timing.tokens_per_s": [Case("buffered", where="t", words="no streaming rate"),
                            Case(timed_stream([0.2 + 0.6 * i for i in range(20)], t_end=12.0), where=None,
                                 words="tokens/s", label="slow-model")],
    "timing.progressive": Case("buffered", words="buffered, not streamed"),
    # One 11 s stall mid-answer (tds: largest gap <= 5000 ms; minimal and openai: 10000 ms). No fault stalls
    # between content chunks.
    "timing.itl": Case(timed_stream([0.2 + 0.05 * i for i in range(20)] + [12.2 + 0.05 * i for i in range(20)],
                                    t_end=13.5), words="max", label="11s-stall"),
    # A stream that takes 61 s (tds: <= 60000 ms): chosen timestamps instead of a minute of real waiting.
    "timing.e2e": Case(timed_stream([0.2 + 1.5 * i for i in range(41)], t_end=61.0), where="t", words="after",
                       label="61s-stream"),
    # errors
    **BODY_PROBE_CASES,
    "errors.wrong_method": Case("careless", "ops", where="any", words="bad input accepted"),
    "errors.midstream": Case("error-midstream", words="error event"),
    "errors.missing_required": Case(anthropic_probe_answered_500(), where="any", words="server error 500",
                                    label="anthropic-no-max-tokens-500"),
    "errors.auth": Case("auth-500", where="any", words="server error 500"),
    "errors.rate_limit": Case("careless", "ops", where="any", words="no Retry-After"),
    "errors.cors": Case("careless", "ops", where="any", words="Access-Control-Allow-Origin"),
    # robustness: the main stream is clean, one extra stream is a real fault capture.
    # Two ways: one of five parallel streams is cut off; or all five conform but start slowly (TTFT ~3 s each,
    # the slow-ttft fault's real captures; tds: p90 < 2401 ms).
    "robustness.concurrency": [Case(with_extra_streams("concurrency", "truncated", count=5), where="any",
                                    words="did not conform", label="1-of-5-cut-off"),
                               Case(with_extra_streams("concurrency", "slow-ttft", count=5, broken_count=5),
                                    where="any", words="TTFT p90", label="5-slow-starts")],
    "robustness.disconnect": Case(disconnect_then("malformed-json"), where="any", words="after a client dropped",
                                  label="dropped-then-malformed-json"),
    # A repeat served as text/plain (say, by another replica): not an event stream under any profile. (A defect
    # only a non-required check sees, such as a missing [DONE] under minimal, is not the robustness checks' to
    # judge: they hold extra streams to the profile's required conformance checks.)
    "robustness.repeats": Case(with_extra_streams("repeats", "wrong-content-type", count=3), where="any",
                               words="repeat 1", label="repeat-as-text-plain"),
    # clients: what a client recorded, judged against the harness's reading of the same bytes.
    # openai-python on a stream whose first block is a lone `retry: 3000` (tests/test_clients.py runs it for
    # real).
    "clients.openai_python": Case(client_read("openai_python", {
        "read": False, "error": "JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        "error_type": "JSONDecodeError", "version": "openai 3.63.0"}, "openai"), where="any",
        words="JSONDecodeError", label="retry-only-first-block"),
    "clients.anthropic_python": Case(client_read("anthropic_python", {"version": "anthropic"}, "anthropic"),
                                     where="any", words="read no text", label="no-text"),
    "clients.ollama_python": Case(client_read("ollama_python", {"text": "Magma rises through the crust (0)."},
                                              "ollama"), where="any", words="reads different text",
                                  label="different-text"),
    "clients.google_genai": Case(client_read("google_genai", {}, "gemini"), where="any", words="read no text",
                                 label="no-text"),
    # openai-node on NDJSON and the Vercel AI SDK on a chunk that is not JSON (tests/test_clients_node.py runs
    # both for real).
    "clients.openai_node": Case(client_read("openai_node", {"version": "openai 6.49.0"}, "openai"), where="any",
                                words="read no text", label="ndjson-no-text"),
    "clients.vercel_ai": Case(client_read("vercel_ai", {
        "read": False, "error_type": "AI_JSONParseError",
        "error": "AI_JSONParseError: JSON parsing failed: Text: {\"id\": \"chatcmpl-1\"",
        "version": "ai 6.0.333 + @ai-sdk/openai-compatible 2.0.92"}, "openai"), where="any",
        words="AI_JSONParseError", label="malformed-json"),
    # A browser page on another origin, an endpoint sending no CORS headers (as tests/test_clients.py sees).
    "clients.browser": Case(client_read("browser", {
        "read": False, "raw": None, "error_type": "TypeError",
        "error": "TypeError: Failed to fetch (CORS error PreflightMissingAllowOriginHeader; Access to fetch "
                 "at 'http://127.0.0.1:9/v1/chat/completions' from origin 'http://127.0.0.1:8' has been "
                 "blocked by CORS policy)"}), "grading", where="any", words="CORS", label="no-cors-headers"),
}


# Checks whose only non-pass verdict is a warning, on purpose: what they flag is valid per the WHATWG event-stream
# rules, so failing it would fail conforming servers. Everything else must be able to fail.
WARN_BY_DESIGN = {
    "framing.line_endings": "lone CR (and mixed) line endings are valid SSE; only some clients break on them",
    "framing.field_spacing": "the space after 'data:' is optional in SSE; only naive parsers need it",
}


def rows(check_id: str) -> list[Case]:
    found = TABLE[check_id]
    return found if isinstance(found, list) else [found]


def cases() -> list[Any]:
    """One pytest param per (check id, case)."""
    out = []
    for check_id in sorted(TABLE):
        for case in rows(check_id):
            out.append(pytest.param(check_id, case, id=f"{check_id}:{case.name}"))
    return out


def judge(runs: dict[str, Any], check_id: str, case: Case):
    """The engine's verdict (a CheckResult) on the row's input, with the row's profile."""
    profile = load_profile(case.profile, list(case.overrides))
    ctx = context_of(runs, case.source, profile) if isinstance(case.source, str) else case.source(runs, profile)
    result = evaluate(ctx, categories={check_id.split(".", 1)[0]})
    return result.check(check_id)


# -- tests ----------------------------------------------------------------------------------------------------------

def test_every_registered_check_has_a_failing_row():
    registered = set(load_checks())
    missing = sorted(registered - set(TABLE))
    stale = sorted(set(TABLE) - registered)
    assert not missing, (f"check(s) with no input that makes them fail: {', '.join(missing)} -- add a row to TABLE "
                         "in tests/test_every_check_can_fail.py (a check that cannot fail is a defect)")
    assert not stale, f"TABLE rows for checks that are no longer registered: {', '.join(stale)}"


def test_only_the_warn_by_design_checks_expect_a_warning():
    warned = {cid for cid in TABLE if any(case.expect == "warn" for case in rows(cid))}
    assert warned == set(WARN_BY_DESIGN)
    assert all(case.expect in ("fail", "warn") for cid in TABLE for case in rows(cid))


def all_inputs() -> dict[str, Callable[[dict[str, Any], Any], Context]]:
    """Every input of this module, by name: the captured sources and the hand-built contexts."""
    found: dict[str, Callable[[dict[str, Any], Any], Context]] = {
        name: (lambda runs, profile, name=name: context_of(runs, name, profile)) for name in SOURCES}
    for check_id in TABLE:
        for case in rows(check_id):
            if not isinstance(case.source, str):
                found[f"{check_id}:{case.name}"] = case.source
    return found


@pytest.mark.parametrize("profile_name", builtin_profiles())
def test_every_check_a_profile_runs_can_fail_under_that_profile(runs, profile_name):
    """A profile's thresholds could make a check vacuous (a limit no stream can cross): under each built-in
    profile, some input of this module must make every check it runs fail (or warn, for WARN_BY_DESIGN)."""
    profile = load_profile(profile_name)
    statuses: dict[str, set[str]] = {}
    for build in all_inputs().values():
        for result in evaluate(build(runs, profile)).checks:
            statuses.setdefault(result.id, set()).add(result.status)
    planned = [cid for cid, _ in planned_checks(profile)]
    assert planned, profile_name
    vacuous = [f"{cid} (only {sorted(statuses.get(cid, set()))})" for cid in planned
               if ("warn" if cid in WARN_BY_DESIGN else "fail") not in statuses.get(cid, set())]
    assert not vacuous, f"under the {profile_name} profile no input makes these fail: {', '.join(vacuous)}"


@pytest.mark.parametrize("check_id, case", cases())
def test_check_can_fail(runs, check_id, case):
    profile = load_profile(case.profile, list(case.overrides))
    assert profile.enabled(check_id), f"{check_id} is not enabled in the {case.profile} profile of its row"
    out = judge(runs, check_id, case)
    assert out is not None, f"{check_id} was not evaluated"
    detail = f"{out.status} {check_id}: {out.message} (measured {out.measured!r}, threshold {out.threshold!r}, " \
             f"evidence {out.evidence!r})"
    assert out.status == case.expect, detail
    assert out.message.strip(), detail
    assert case.words in out.message, detail
    assert out.threshold is not None or out.measured is not None, detail
    assert out.reproduce, detail
    if case.where is not None:
        assert out.evidence, f"no evidence: {detail}"
    if case.where in ("offset", "t"):
        assert any(item.get(case.where) is not None for item in out.evidence), f"evidence without {case.where}: " \
                                                                              f"{detail}"


@pytest.mark.parametrize("check_id", ["http.status", "framing.complete", "stream.done", "content.chars",
                                      "timing.ttft", "robustness.repeats"])
def test_the_clean_main_stream_passes_the_same_checks(runs, check_id):
    """The inputs fail because of their defect, not because the captures are broken: the clean capture passes."""
    case = rows(check_id)[0]
    clean = Case("clean", case.profile)
    if not isinstance(case.source, str):  # robustness rows: the same clean main stream with clean extra streams
        clean = Case(with_extra_streams("repeats", "clean", count=3), case.profile)
    out = judge(runs, check_id, clean)
    assert out.status == "pass", (out.message, out.measured, out.threshold)


def test_a_slow_rate_points_at_the_content_it_measured(runs):
    """The rate is measured between the first and the last content chunk: a failing verdict should say where
    they are (offsets and times), as every other located failure does."""
    slow = next(case for case in rows("timing.tokens_per_s") if case.label == "slow-model")
    out = judge(runs, "timing.tokens_per_s", slow)
    assert out.status == "fail"
    assert any(item.get("t") is not None and item.get("offset") is not None for item in out.evidence)
