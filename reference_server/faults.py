"""Fault modes: one function per fault, each changing exactly one thing about a correct response.

Select one for the whole server with `--fault NAME`, or per request with the header `X-Fault: NAME`. Defects exist
so that every harness check can be shown to catch one; the valid-but-unusual variants (`VALID_VARIANTS`) exist so
that the harness can be shown to accept everything the SSE specification allows.
Two faults act before the stream (on validation): `error-500` and `no-validation`; the app consults them there.
"""

from __future__ import annotations

import asyncio
import json
import math
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from reference_server.chunks import DONE, sse
from reference_server.stream import Stream
from reference_server.variants import FRAMING_VARIANTS

Fault = Callable[[Stream], Awaitable[None]]


class CutConnection(Exception):
    """Raised after writing a partial event: the server then closes the socket without ending the body."""


@dataclass(frozen=True)
class FaultMode:
    name: str
    description: str
    run: Fault | None
    """The stream writer; None for the faults that act on validation (the app handles those)."""
    valid: bool = False
    """True for variants a correct harness must accept (no defect)."""


FAULTS: dict[str, FaultMode] = {}


def fault(name: str, description: str, *, valid: bool = False) -> Callable[[Fault], Fault]:
    def register(fn: Fault) -> Fault:
        FAULTS[name] = FaultMode(name, description, fn, valid)
        return fn
    return register


FAULTS["error-500"] = FaultMode("error-500", "bad input gets a 500 HTML error page instead of a 4xx JSON error", None)
FAULTS["no-validation"] = FaultMode("no-validation", "bad input gets 200 and a normal stream instead of a 4xx", None)


async def normal(s: Stream) -> None:
    """The correct response: paced content chunks, the finish chunk, optional usage, [DONE].

    The pieces are generated and encoded one at a time as they fall due, and the shared pacer writes them
    (see reference_server/pacer.py): this is the path the scale benchmark measures.
    """
    await s.start()
    chars = 0

    def events() -> Iterator[bytes]:
        nonlocal chars
        if s.ndjson:
            for i, piece in enumerate(s.iter_pieces()):
                chars += len(piece)
                yield s.frame(s.encoder.content(piece, role=(i == 0)))
            return
        first, head, tail = s.encoder.sse_content_parts()
        for i, (length, literal) in enumerate(s.iter_json_pieces()):
            chars += length
            yield b"".join((head if i else first, literal, tail))

    ttft, gap = s.config.ttft_ms / 1000, s.config.gap_ms / 1000
    if s.pacer is not None:
        await s.pacer.play(s.send, events(), s.loop.time() + ttft, gap)
    else:
        await s.play(events(), ttft_s=ttft, gap_s=gap)
    await s.write(b"".join(s.tail_events(chars=chars)))
    await s.end()


# --- timing ----------------------------------------------------------------------------------------------------
@fault("slow-ttft", "first content chunk only after ~3 s (TTFT fails), everything else normal")
async def slow_ttft(s: Stream) -> None:
    await s.start()
    await s.play(s.content_events(), s.tail_events(), ttft_s=3.0)
    await s.end()


@fault("buffered", "every event in one write after a delay as long as the normal stream (no progressive delivery)")
async def buffered(s: Stream) -> None:
    events = s.content_events()
    await s.start()
    await asyncio.sleep(s.config.ttft_ms / 1000 + s.config.gap_ms / 1000 * max(0, len(events) - 1))
    await s.write(b"".join(events + s.tail_events()))
    await s.end()


@fault("slow-throughput", "normal content at ~15 tokens/s (chars/4 per second); a full stream takes ~25 s")
async def slow_throughput(s: Stream) -> None:
    pieces = s.pieces
    # The gap before piece i is the time 15 tokens/s (60 chars/s) takes to deliver the piece before it.
    await s.start()
    await s.play(s.content_events(), s.tail_events(), gap_s=lambda i: len(pieces[i - 1]) / 60.0)
    await s.end()


@fault("placeholder-first", 'a "..." content chunk at once, then a 2 s gap, then the normal content')
async def placeholder_first(s: Stream) -> None:
    await s.start()
    await s.write(s.frame(s.encoder.content("...", role=True)))
    await asyncio.sleep(2.0)
    # The real answer follows at the normal pace, without a second role.
    await s.play([s.frame(s.encoder.content(p)) for p in s.pieces], s.tail_events(), ttft_s=0)
    await s.end()


# --- content ---------------------------------------------------------------------------------------------------
@fault("few-chunks", "the normal text in 4 chunks (below tds's minimum of 5)")
async def few_chunks(s: Stream) -> None:
    pieces = s.split(s.text, min_chunks=4, chunk_chars=max(1, len(s.text) // 4 + 1))
    await s.start()
    await s.play(s.content_events(pieces), s.tail_events(), gap_s=0.1)
    await s.end()


@fault("short-content", "a relevant answer of ~300 characters (below the length minimum), one word per chunk")
async def short_content(s: Stream) -> None:
    text = s.answer(target=300)[:320]
    await s.start()
    await s.play(s.content_events(s.split(text, chunk_chars=1)), s.tail_events(text))  # a word per chunk
    await s.end()


CANNED_PROMPT = "General remarks about careful study, planning and good habits"


@fault("canned", "the same text whatever the prompt")
async def canned(s: Stream) -> None:
    text = s.answer(prompt=CANNED_PROMPT)
    await s.start()
    await s.play(s.content_events(s.split(text)), s.tail_events(text))
    await s.end()


@fault("echo", "returns the prompt itself (repeated up to the normal length)")
async def echo(s: Stream) -> None:
    prompt = " ".join(s.request.prompt.split())
    text = prompt
    while len(text) < s.target_chars:
        text += " " + prompt
    await s.start()
    await s.play(s.content_events(s.split(text)), s.tail_events(text))
    await s.end()


@fault("padding", "one relevant sentence (naming the prompt's key terms) repeated to reach the normal length")
async def padding(s: Stream) -> None:
    from reference_server.generate import key_terms

    terms = key_terms(s.request.prompt)
    named = ", ".join(terms[:-1]) + (" and " if len(terms) > 1 else "") + terms[-1]
    sentence = f"This is an answer about {named}, written with care. "
    text = sentence * (s.target_chars // len(sentence) + 1)
    await s.start()
    await s.play(s.content_events(s.split(text)), s.tail_events(text))
    await s.end()


LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
         "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex "
         "ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu "
         "fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt "
         "mollit anim id est laborum. Curabitur pretium tincidunt lacus, nulla gravida orci a odio. Nullam varius, "
         "turpis et commodo pharetra, est eros bibendum elit, nec luctus magna felis sollicitudin mauris. Integer in "
         "mauris eu nibh euismod gravida. Duis ac tellus et risus vulputate vehicula. Donec lobortis risus a elit. "
         "Etiam tempor. Ut ullamcorper, ligula eu tempor congue, eros est euismod turpis, id tincidunt sapien risus "
         "a quam. Maecenas fermentum consequat mi. Donec fermentum. Pellentesque malesuada nulla a mi. Duis sapien "
         "sem, aliquet nec, commodo eget, consequat quis, neque. Aliquam faucibus, elit ut dictum aliquet, felis nisl "
         "adipiscing sapien, sed malesuada diam lacus eget erat. Cras mollis scelerisque nunc. Nullam arcu. Aliquam "
         "consequat. Curabitur augue lorem, dapibus quis, laoreet et, pretium ac, nisi. Aenean magna nisl, mollis "
         "quis, molestie eu, feugiat in, orci. In hac habitasse platea dictumst. Fusce convallis, mauris imperdiet "
         "gravida bibendum, nisl turpis suscipit mauris, sed placerat ipsum urna sed risus. In convallis tellus a "
         "mauris. Curabitur non elit ut libero tristique sodales. Mauris a lacus. Donec mattis semper leo.")


@fault("lorem", "placeholder text (lorem ipsum) of the normal length and pace, whatever the prompt")
async def lorem(s: Stream) -> None:
    text = LOREM[: max(s.target_chars, 1400)]
    await s.start()
    await s.play(s.content_events(s.split(text)), s.tail_events(text))
    await s.end()


@fault("interrupt", "a new request ends the running stream at once, without its end (llama-cpp-python's "
       "interrupt_requests); one request at a time is served correctly")
async def interrupt(s: Stream) -> None:
    # The app sets s.interrupted when another request to this endpoint arrives (reference_server/app.py).
    stop = getattr(s, "interrupted", None) or asyncio.Event()
    await s.start()
    play = asyncio.ensure_future(s.play(s.content_events(), s.tail_events()))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({play, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (play, stopped):
            task.cancel()
    await s.end()  # the body ends cleanly but early: no finish_reason, no [DONE]


AUTH_500_BODY = b"Internal Server Error"


# `auth-500` acts before the stream (the app checks credentials first): without the key, or with a wrong one, a
# 500 text/plain answer, as LiteLLM's proxy gives; with the key (--api-key, else "sk-streamconform"), the stream.
FAULTS["auth-500"] = FaultMode("auth-500", "a request without the API key (or with a wrong one) gets 500 text/plain "
                               "instead of 401 with an error object", None)
DEFAULT_FAULT_KEY = "sk-streamconform"


# --- structure -------------------------------------------------------------------------------------------------
@fault("no-done", "no final data: [DONE] event")
async def no_done(s: Stream) -> None:
    await s.start()
    await s.play(s.content_events(), s.tail_events(done=False))
    await s.end()


@fault("data-after-done", "one more content chunk after data: [DONE]")
async def data_after_done(s: Stream) -> None:
    await s.start()
    await s.play(s.content_events(), s.tail_events() + [s.frame(s.encoder.content(" Afterthought."))])
    await s.end()


@fault("malformed-json", "one chunk in the middle is not valid JSON (its closing brace is missing)")
async def malformed_json(s: Stream) -> None:
    payloads = s.content_payloads()
    mid = len(payloads) // 2
    payloads[mid] = payloads[mid][:-1]
    await s.start()
    await s.play([s.frame(p) for p in payloads], s.tail_events())
    await s.end()


@fault("schema-mismatch", 'chunks in the legacy completions shape (object "text_completion", choices[].text, no delta)')
async def schema_mismatch(s: Stream) -> None:
    enc = s.encoder

    def legacy(text: str | None, reason: str | None) -> str:
        return json.dumps({"id": enc.id, "object": "text_completion", "created": enc.created, "model": enc.model,
                           "choices": [{"index": 0, "text": text, "finish_reason": reason}]})

    content = [s.frame(legacy(p, None)) for p in s.pieces]
    await s.start()
    await s.play(content, [s.frame(legacy("", s.finish_reason)), s.frame(DONE)])
    await s.end()


@fault("truncated", "the connection is cut in the middle of the final chunk's event (no [DONE], body never ended)")
async def truncated(s: Stream) -> None:
    # All content arrives; what is missing is the end: the cut falls inside the finish_reason event.
    await s.start()
    await s.play(s.content_events())
    await asyncio.sleep(s.config.gap_ms / 1000)
    cut = s.tail_events()[0]
    await s.write(cut[: len(cut) // 2])
    await asyncio.sleep(0.05)  # let that half reach the client before the socket closes
    raise CutConnection()


@fault("error-midstream", 'some content, then data: {"error": {...}}, then data: [DONE]')
async def error_midstream(s: Stream) -> None:
    events = s.content_events()
    await s.start()
    await s.play(events[: max(1, len(events) // 3)])
    await s.error_event("the model backend failed while generating (simulated by the error-midstream fault)")
    await s.end()


@fault("wrong-content-type", "a correct event stream served as text/plain")
async def wrong_content_type(s: Stream) -> None:
    await s.start(content_type="text/plain; charset=utf-8")
    await s.play(s.content_events(), s.tail_events())
    await s.end()


@fault("invalid-utf8", "one chunk's content string holds bytes that are not UTF-8 (0xFF 0xFE)")
async def invalid_utf8(s: Stream) -> None:
    events = s.content_events()
    mid = len(events) // 2
    marker = b'"content": "'
    at = events[mid].index(marker) + len(marker)
    events[mid] = events[mid][:at] + b"\xff\xfe" + events[mid][at:]
    await s.start()
    await s.play(events, s.tail_events())
    await s.end()


@fault("gzip", "a correct event stream compressed with Content-Encoding: gzip (flushed per event)")
async def gzip_stream(s: Stream) -> None:
    comp = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: the gzip container (RFC 1952)

    async def write(data: bytes) -> None:
        await s.write(comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))

    await s.start(extra_headers=[("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")])
    await s.play(s.content_events(), s.tail_events(), write=write)
    await s.end(comp.flush())


# --- hostile ---------------------------------------------------------------------------------------------------
@fault("hang", "sends the headers, then nothing, ever (until the client gives up)")
async def hang(s: Stream) -> None:
    await s.start()
    await asyncio.Event().wait()  # cancelled when the client disconnects


@fault("infinite", "valid content chunks forever at the normal pace, never finishing")
async def infinite(s: Stream) -> None:
    await s.start()
    # An endless lazily generated answer: memory stays flat however long the client listens.
    payloads = (s.encoder.content(p, role=(i == 0)) for i, p in enumerate(s.iter_pieces(target=math.inf)))
    await s.play(s.frame(p) for p in payloads)


HUGE_LINE_BYTES = 128 * 1024 * 1024


@fault("huge-line", "one data line of 128 MiB with no newline, streamed in 64 KiB pieces")
async def huge_line(s: Stream) -> None:
    await s.start()
    prefix = s.encoder.content("", role=True)
    head = prefix[: prefix.rindex('"')]  # ... "content": "   (the string is left open)
    await s.write(f"data: {head}".encode())
    block = b"a" * 65536  # one immutable block written again and again: nothing grows in memory
    for _ in range(HUGE_LINE_BYTES // len(block)):
        await s.write(block)
    await s.write(b'"}, "finish_reason": null}]}\n\n' + sse(DONE))
    await s.end()


# --- valid variants: framings (reference_server/variants.py) and NDJSON ------------------------------------------
for _name, _description, _writer in FRAMING_VARIANTS:
    FAULTS[_name] = FaultMode(_name, _description, _writer, valid=True)


@fault("ndjson", "valid: the same chunks as NDJSON lines (application/x-ndjson), whatever the Accept header",
       valid=True)
async def ndjson_variant(s: Stream) -> None:
    s.ndjson = True
    await normal(s)


@fault("ndjson-bare", "valid: NDJSON lines of the seed's shape with no finish_reason, no done line: the body's "
       "clean end ends the stream", valid=True)
async def ndjson_bare(s: Stream) -> None:
    s.ndjson = True
    await s.start()
    await s.play([s.frame(json.dumps({"choices": [{"delta": {"content": p}}]})) for p in s.pieces])
    await s.end()


@fault("ndjson-truncated", "NDJSON lines, then the connection is cut before the body's end (chunked encoding never "
       "terminated)")
async def ndjson_truncated(s: Stream) -> None:
    s.ndjson = True
    events = s.content_events()
    await s.start()
    await s.play(events[: len(events) * 2 // 3])
    await asyncio.sleep(0.05)
    raise CutConnection()


@fault("role-first", "valid: a first chunk that only announces the role (delta {role: assistant}, no content)",
       valid=True)
async def role_first(s: Stream) -> None:
    enc = s.encoder
    opening = json.dumps({"id": enc.id, "object": "chat.completion.chunk", "created": enc.created,
                          "model": enc.model, "choices": [{"index": 0, "delta": {"role": "assistant"},
                                                           "finish_reason": None}]})
    await s.start()
    await s.write(s.frame(opening))
    await s.play([s.frame(enc.content(p)) for p in s.pieces], s.tail_events())
    await s.end()


@fault("few-large-chunks", "valid: the answer in 6 large chunks, 200 ms apart", valid=True)
async def few_large_chunks(s: Stream) -> None:
    text = s.text
    pieces = s.split(text, min_chunks=6, chunk_chars=len(text) // 6 + 1)
    await s.start()
    await s.play(s.content_events(pieces), s.tail_events(text), gap_s=0.2)
    await s.end()


@fault("keepalive-first", "valid: keep-alive comments for 300 ms before the first content, as proxies send",
       valid=True)
async def keepalive_first(s: Stream) -> None:
    await s.start()
    for _ in range(3):
        await s.write(b": keep-alive\n\n")
        await asyncio.sleep(0.1)
    await s.play(s.content_events(), s.tail_events(), ttft_s=0)
    await s.end()


def describe() -> str:
    """One line per fault, for `streamconform serve --list-faults`."""
    width = max(len(n) for n in FAULTS)
    return "\n".join(f"{mode.name:<{width}}  {mode.description}" for mode in FAULTS.values())
