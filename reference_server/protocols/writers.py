"""The stream writers every protocol shares: the correct stream and the faults that mean the same in each.

Each writer is the protocol-neutral form of a fault in reference_server/faults.py: it combines the encoder's
opening, paced body and closing exactly as the chat writer combines chunks, and changes one thing. Faults that
only one protocol has (a sequence_number gap, a delta for an unstarted block, broken tool calls) are encoding
changes made by that protocol's encoder; they run through `normal`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from reference_server.faults import CANNED_PROMPT, LOREM, CutConnection
from reference_server.protocols.base import ProtoStream

Writer = Callable[[ProtoStream], Awaitable[None]]
WRITERS: dict[str, Writer] = {}

# Faults that act before the stream (on validation or credentials): the endpoint consults them there.
BEFORE_STREAM = frozenset({"error-500", "no-validation", "auth-500"})
MIDSTREAM_MESSAGE = "the model backend failed while generating (simulated by the error-midstream fault)"


def writer(name: str) -> Callable[[Writer], Writer]:
    def register(fn: Writer) -> Writer:
        WRITERS[name] = fn
        return fn
    return register


async def pace(p: ProtoStream, events: Iterable[bytes], *, ttft_s: float | None = None) -> None:
    """Write `events` one per gap, the first after the TTFT: the shared pacer when the server has one."""
    ttft = p.config.ttft_ms / 1000 if ttft_s is None else ttft_s
    gap = p.config.gap_ms / 1000
    if p.pacer is not None:
        await p.pacer.play(p.send, iter(events), p.loop.time() + ttft, gap)
    else:
        await p.play(events, ttft_s=ttft, gap_s=gap)


async def _write(p: ProtoStream, events: list[bytes]) -> None:
    if events:
        await p.write(b"".join(events))


async def _play(p: ProtoStream, pieces: Iterable[str] | None = None, *, terminal: bool = True,
                ttft_s: float | None = None) -> None:
    await p.start()
    await _write(p, p.enc.opening())
    await pace(p, p.enc.body(p.iter_pieces() if pieces is None else pieces), ttft_s=ttft_s)
    await _write(p, p.enc.closing(p.finish_reason, terminal=terminal))
    await p.end()


async def normal(p: ProtoStream) -> None:
    await _play(p)


# --- timing -------------------------------------------------------------------------------------------------
@writer("slow-ttft")
async def slow_ttft(p: ProtoStream) -> None:
    await _play(p, ttft_s=3.0)


@writer("buffered")
async def buffered(p: ProtoStream) -> None:
    opening, events = p.enc.opening(), list(p.enc.body(p.iter_pieces()))
    await p.start()
    await asyncio.sleep(p.config.ttft_ms / 1000 + p.config.gap_ms / 1000 * max(0, len(events) - 1))
    await _write(p, opening + events + p.enc.closing(p.finish_reason))
    await p.end()


# --- content ------------------------------------------------------------------------------------------------
@writer("canned")
async def canned(p: ProtoStream) -> None:
    await _play(p, p.split(p.answer(prompt=CANNED_PROMPT)))


@writer("lorem")
async def lorem(p: ProtoStream) -> None:
    await _play(p, p.split(LOREM[: max(p.target_chars, 1400)]))


@writer("echo")
async def echo(p: ProtoStream) -> None:
    prompt = " ".join(p.request.prompt.split())
    text = prompt
    while len(text) < p.target_chars:
        text += " " + prompt
    await _play(p, p.split(text))


@writer("short-content")
async def short_content(p: ProtoStream) -> None:
    await _play(p, p.split(p.answer(target=300)[:320], chunk_chars=1))


@writer("few-chunks")
async def few_chunks(p: ProtoStream) -> None:
    text = p.text
    await _play(p, p.split(text, min_chunks=4, chunk_chars=max(1, len(text) // 4 + 1)))


# --- structure ----------------------------------------------------------------------------------------------
@writer("no-done")
async def no_done(p: ProtoStream) -> None:
    await _play(p, terminal=False)


@writer("data-after-done")
async def data_after_done(p: ProtoStream) -> None:
    await p.start()
    await _write(p, p.enc.opening())
    await pace(p, p.enc.body(p.iter_pieces()))
    await _write(p, p.enc.closing(p.finish_reason) + list(p.enc.body([" Afterthought."])))
    await p.end()


@writer("error-midstream")
async def error_midstream(p: ProtoStream) -> None:
    events = list(p.enc.body(p.iter_pieces()))
    await p.start()
    await _write(p, p.enc.opening())
    await pace(p, events[: max(1, len(events) // 3)])
    await _write(p, p.enc.error(MIDSTREAM_MESSAGE))
    await p.end()


@writer("truncated")
async def truncated(p: ProtoStream) -> None:
    # All content arrives; the cut falls inside the first event after it, so the end never comes.
    await p.start()
    await _write(p, p.enc.opening())
    await pace(p, p.enc.body(p.iter_pieces()))
    await asyncio.sleep(p.config.gap_ms / 1000)
    cut = p.enc.closing(p.finish_reason)[0]
    await p.write(cut[: len(cut) // 2])
    await asyncio.sleep(0.05)  # let that half reach the client before the socket closes
    raise CutConnection()


@writer("malformed-json")
async def malformed_json(p: ProtoStream) -> None:
    events = list(p.enc.body(p.iter_pieces()))
    mid = len(events) // 2
    event = events[mid]
    end = len(event.rstrip(b"\r\n"))  # the closing brace of the JSON sits right before the line break(s)
    events[mid] = event[: end - 1] + event[end:]
    await p.start()
    await _write(p, p.enc.opening())
    await pace(p, events)
    await _write(p, p.enc.closing(p.finish_reason))
    await p.end()


@writer("wrong-content-type")
async def wrong_content_type(p: ProtoStream) -> None:
    await p.start(content_type="text/plain; charset=utf-8")
    await _write(p, p.enc.opening())
    await pace(p, p.enc.body(p.iter_pieces()))
    await _write(p, p.enc.closing(p.finish_reason))
    await p.end()


@writer("hang")
async def hang(p: ProtoStream) -> None:
    await p.start()
    await asyncio.Event().wait()  # cancelled when the client disconnects
