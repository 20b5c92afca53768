"""Valid but unusual SSE framings a correct client must accept: CRLF or lone-CR line ends, no space after the
colon, comments with id/retry/event fields, data split over lines, bytes cut inside field names and characters.

Each is a stream writer like the faults in reference_server/faults.py, which registers them (FRAMING_VARIANTS) as
valid variants; they live apart to keep that module small, and import nothing from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reference_server.chunks import sse
from reference_server.stream import Stream


# --- framing variants --------------------------------------------------------------------------------------------
def _reframe(s: Stream, fn: Callable[[str], bytes]) -> tuple[list[bytes], list[bytes]]:
    return [fn(p) for p in s.content_payloads()], [fn(p) for p in s.tail_payloads()]


async def _play_framed(s: Stream, fn: Callable[[str], bytes]) -> None:
    content, tail = _reframe(s, fn)
    await s.start()
    await s.play(content, tail)
    await s.end()


async def crlf(s: Stream) -> None:
    await _play_framed(s, lambda d: f"data: {d}\r\n\r\n".encode())


async def cr(s: Stream) -> None:
    await _play_framed(s, lambda d: f"data: {d}\r\r".encode())


async def no_space(s: Stream) -> None:
    await _play_framed(s, lambda d: f"data:{d}\n\n".encode())


async def comments(s: Stream) -> None:
    counter = iter(range(1, 1 << 30))

    def framed(d: str) -> bytes:
        n = next(counter)
        retry = "retry: 3000\n" if n == 1 else ""
        return f": keep-alive\n\n{retry}id: {n}\nevent: message\ndata: {d}\n\n".encode()

    await s.start()
    await s.write(b": stream opened\n\n")
    content, tail = _reframe(s, framed)
    await s.play(content, tail)
    await s.end()


def _split_json_lines(d: str) -> bytes:
    """Put each top-level `, "key":` of a chunk on its own data line (a newline is JSON whitespace, so the
    joined data is the same object)."""
    head, sep, rest = d.partition(', "choices"')
    if not sep:
        return sse(d)
    return f"data: {head},\ndata: {sep[2:]}{rest}\n\n".encode()


async def multiline_data(s: Stream) -> None:
    await _play_framed(s, _split_json_lines)


def _split_points(event: bytes) -> list[int]:
    """Cut positions inside the field name and inside the first multi-byte character."""
    cuts = {2}  # "da|ta: ..."
    for i, b in enumerate(event):
        if b >= 0xC0:  # lead byte of a multi-byte UTF-8 sequence: cut right after it
            cuts.add(i + 1)
            break
    return sorted(c for c in cuts if 0 < c < len(event))


async def split_reads(s: Stream) -> None:
    # Typographic punctuation gives every piece multi-byte characters to cut through.
    text = s.text.replace(", ", " — ").replace("'", "’")
    pieces = s.split(text)

    async def write(event: bytes) -> None:
        start = 0
        for cut in _split_points(event):
            await s.write(event[start:cut])
            await asyncio.sleep(0.002)  # separate TCP segments, so the client sees separate reads
            start = cut
        await s.write(event[start:])

    await s.start()
    await s.play(s.content_events(pieces), s.tail_events(text), write=write)
    await s.end()


# (name, description, writer), registered by reference_server/faults.py in this order.
FRAMING_VARIANTS = [
    ("crlf", "valid: lines end with CRLF", crlf),
    ("cr", "valid: lines end with a lone CR", cr),
    ("no-space", "valid: no space after 'data:'", no_space),
    ("comments", "valid: keep-alive comment lines, id and retry fields, an event name on each event", comments),
    ("multiline-data", "valid: each JSON chunk split over two data: lines", multiline_data),
    ("split-reads", "valid: bytes written cut inside field names and multi-byte characters", split_reads),
]
