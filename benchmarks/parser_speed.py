"""SSE parser throughput: streamconform's SSEParser vs httpx-sse and the openai SDK, same bytes, same run.

    python benchmarks/parser_speed.py [--events N] [--repeat R]

The stream imitates an OpenAI chat-completions stream (a role chunk, content chunks of a few characters each,
a finish chunk, a usage chunk, ``data: [DONE]``), encoded once and cut into reads four ways:
  * per-event reads, as a paced stream arrives over loopback (one ``data:`` block per socket read),
  * 1460-byte reads (a TCP segment's payload), cutting events anywhere, as a remote stream may arrive, and
  * 64 KiB reads, the shape of a large read buffer, and
  * 1460-byte reads of the same stream with CRLF line endings, which sse-starlette (FastAPI's usual SSE helper)
    sends by default.
Each peer is driven the way it consumes a response:
  * httpx-sse: an incremental UTF-8 text decoder (what httpx's ``iter_text`` does), ``SSELineDecoder.decode``
    per text piece, then ``SSEDecoder.decode`` per line (exactly ``httpx_sse._api._iter_sse_lines`` + ``iter_sse``);
  * openai: ``openai._streaming.SSEDecoder().iter_bytes`` over the reads;
  * streamconform: ``SSEParser().feed(read, t)`` per read then ``close()``, keeping times, offsets and findings,
    as installed (with the optional C speedup when it was built) and forced onto its pure-Python path.
Times are this thread's CPU time (``time.thread_time``), best of R interleaved repeats: the parsers are
single-threaded and CPU-bound, and CPU time is far less disturbed than wall time by other processes on a shared
machine (pass ``--wall`` to use wall time instead).
Prints MB/s and events/s per parser and the ratio of SSEParser to each peer; the target is >= 2.5x httpx-sse,
judged on the parser as installed (the pure-Python figure is printed beside it, for machines without a compiler).
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys
import time
from collections.abc import Callable

from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder  # not exported; the decoder iter_sse uses
from httpx_sse._decoders import SSELineDecoder
from openai._streaming import SSEDecoder as OpenAISSEDecoder

import harness.parse.sse
from harness.parse.sse import SSEParser

TARGET_RATIO = 2.5
OURS = "streamconform SSEParser"
OURS_PURE = "  ...pure-Python path"


def openai_stream(n_events: int) -> tuple[bytes, list[int]]:
    """A realistic chat.completion.chunk stream; returns the bytes and the end offset of each event."""
    words = "the quick brown fox jumps over a lazy dog while streaming tokens arrive one by one".split()
    base = {"id": "chatcmpl-9xYzAbCdEfGhIjKlMnOpQrStUv", "object": "chat.completion.chunk",
            "created": 1732400000, "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0ba0d124f1"}
    blocks = []

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        body = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        # ensure_ascii=False: like the real API, non-ASCII text travels as raw UTF-8, not \\u escapes
        return b"data: " + json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"

    blocks.append(chunk({"role": "assistant", "content": "", "refusal": None}))
    for i in range(n_events - 4):
        # now and then a typographic apostrophe or dash, as model output has: raw multi-byte UTF-8
        extra = "\u2019s" if i % 40 == 0 else "\u2014" if i % 55 == 0 else ""
        blocks.append(chunk({"content": " " + words[i % len(words)] + extra}))
    blocks.append(chunk({}, "stop"))
    usage = dict(base, choices=[], usage={"prompt_tokens": 12, "completion_tokens": n_events, "total_tokens": 99})
    blocks.append(b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\n")
    blocks.append(b"data: [DONE]\n\n")
    ends, pos = [], 0
    for b in blocks:
        pos += len(b)
        ends.append(pos)
    return b"".join(blocks), ends


def per_event_reads(body: bytes, ends: list[int]) -> list[bytes]:
    starts = [0] + ends[:-1]
    return [body[s:e] for s, e in zip(starts, ends, strict=True)]


def fixed_reads(body: bytes, size: int = 65536) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)]


def run_streamconform(reads: list[bytes]) -> int:
    """As parse_capture drives it: each read with its arrival time."""
    parser = SSEParser()
    events = []
    for t, r in enumerate(reads):
        events += parser.feed(r, t * 0.001)
    events += parser.close()
    return len(events)


def run_streamconform_pure(reads: list[bytes]) -> int:
    """The same, with the C speedup switched off (as on a machine where it could not be built)."""
    saved = harness.parse.sse.scan_data_events
    harness.parse.sse.scan_data_events = None
    try:
        return run_streamconform(reads)
    finally:
        harness.parse.sse.scan_data_events = saved


def run_httpx_sse(reads: list[bytes]) -> int:
    text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines = SSELineDecoder()
    decoder = HttpxSSEDecoder()
    events = []
    for r in reads:
        for line in lines.decode(text_decoder.decode(r)):
            sse = decoder.decode(line.rstrip("\n"))
            if sse is not None:
                events.append(sse)
    tail = text_decoder.decode(b"", final=True)
    for line in (lines.decode(tail) if tail else []) + lines.flush():
        sse = decoder.decode(line.rstrip("\n"))
        if sse is not None:
            events.append(sse)
    return len(events)


def run_openai(reads: list[bytes]) -> int:
    return len(list(OpenAISSEDecoder().iter_bytes(iter(reads))))


PARSERS: dict[str, Callable[[list[bytes]], int]] = {
    OURS: run_streamconform,
    OURS_PURE: run_streamconform_pure,
    "httpx-sse SSEDecoder": run_httpx_sse,
    "openai SSEDecoder": run_openai,
}


def best_times(reads: list[bytes], repeat: int, clock: Callable[[], float]) -> dict[str, tuple[float, int]]:
    """Best time per parser; the parsers take turns so a burst of load elsewhere hits them all alike."""
    best = {name: (float("inf"), 0) for name in PARSERS}
    for _ in range(repeat):
        for name, fn in PARSERS.items():
            t0 = clock()
            count = fn(reads)
            secs = clock() - t0
            if secs < best[name][0]:
                best[name] = (secs, count)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20000, help="events in the stream (default 20000)")
    ap.add_argument("--repeat", type=int, default=9, help="repeats per parser; the best is kept (default 9)")
    ap.add_argument("--wall", action="store_true", help="measure wall time instead of thread CPU time")
    args = ap.parse_args(argv)
    clock = time.perf_counter if args.wall else time.thread_time
    body, ends = openai_stream(args.events)
    print(f"stream: {len(body) / 1e6:.2f} MB, {len(ends)} events, mean event {len(body) / len(ends):.0f} bytes; "
          f"{'wall' if args.wall else 'CPU'} time, best of {args.repeat}")
    speedup = "built and in use" if harness.parse.sse.scan_data_events else "NOT in use (not built, or switched off)"
    print(f"SSEParser's C speedup (harness/parse/_sse_speedups.c): {speedup}")
    ok = True
    crlf = body.replace(b"\n", b"\r\n")
    shapes = (("per-event reads", per_event_reads(body, ends)), ("1460-byte reads", fixed_reads(body, 1460)),
              ("64 KiB reads", fixed_reads(body)),
              ("1460-byte reads, CRLF line endings (as sse-starlette sends)", fixed_reads(crlf, 1460)))
    for label, reads in shapes:
        print(f"\n{label} ({len(reads)} reads)")
        rates: dict[str, float] = {}
        for name, (secs, count) in best_times(reads, args.repeat, clock).items():
            if count != len(ends):
                print(f"  {name}: got {count} events, expected {len(ends)}", file=sys.stderr)
                ok = False
            rates[name] = sum(map(len, reads)) / secs / 1e6
            print(f"  {name:<26} {rates[name]:8.1f} MB/s {count / secs:12,.0f} events/s")
        ours = rates[OURS]
        for name, rate in rates.items():
            if name not in (OURS, OURS_PURE):
                print(f"  ratio SSEParser / {name}: {ours / rate:.2f}x "
                      f"(pure-Python path: {rates[OURS_PURE] / rate:.2f}x)")
        ratio = ours / rates["httpx-sse SSEDecoder"]
        verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
        print(f"  -> {verdict} the >= {TARGET_RATIO}x httpx-sse target ({ratio:.2f}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
