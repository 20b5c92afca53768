"""A client's recorded exchange as a harness Capture, and the answer text the harness decodes from it.

Used by the check (the reference: what the harness reads in the bytes the client got) and by the browser's
subprocess (the page's TextDecoder output, read as the protocol's events). Plain data in, plain data out.
"""

from __future__ import annotations

import base64
from typing import Any

from harness.model import Capture, Read, RequestSpec


def capture_of(raw: dict[str, Any], request: RequestSpec, *, text: bool = False) -> Capture:
    """``raw`` ({"status", "headers", "reads": [[t, b64 | str]], "t_request_sent", "t_end", "ended"}) as a
    Capture of ``request``. ``text``: the reads hold text (the browser's TextDecoder output), not base64."""
    reads = []
    for item in raw.get("reads") or []:
        t, data = float(item[0]), item[1]
        reads.append(Read(t, data.encode("utf-8") if text else base64.b64decode(data)))
    first = next((r.t for r in reads if r.data), None)
    ended = raw.get("ended", True)
    return Capture(request=request, status=raw.get("status"),
                   headers=[(str(k).lower(), str(v)) for k, v in raw.get("headers") or []], reads=reads,
                   t_request_sent=raw.get("t_request_sent"), t_first_byte=first,
                   t_end=float(raw.get("t_end") or (reads[-1].t if reads else 0.0)),
                   end_reason="eof" if ended else ("max_bytes" if raw.get("truncated") else "read_error"))


def decoded(capture: Capture) -> tuple[str, float | None]:
    """(answer text, time of its first content chunk in seconds) as the harness reads ``capture``."""
    from harness.parse.decode import content_chunks, decode, text_of
    from harness.parse.media import parse_capture

    capture.rebase_to_request()
    chunks = decode(parse_capture(capture).events, capture.request.dialect)
    first = next((c.t for c in content_chunks(chunks)), None)
    return text_of(chunks), first
