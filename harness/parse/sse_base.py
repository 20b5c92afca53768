"""Pieces of the SSE parser shared by its paths and by the NDJSON parser: ``SSEEvent`` (and ``_new_event``,
its fast constructor, which the C scanner's events match), the findings log with its per-code listing cap, the
leading-BOM rule and the line cap. The parser itself is harness/parse/sse.py (see its docstring for the design).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.model import Finding

BOM = b"\xef\xbb\xbf"


class LeadingBOM:
    """One leading UTF-8 BOM stripped (and recorded), even when its three bytes arrive over several reads.

    Shared by the SSE and NDJSON parsers: both must decide on the first bytes before reading any line.
    """

    __slots__ = ("done", "head")

    def __init__(self) -> None:
        self.done = False
        self.head = b""  # the first bytes while it is not yet known whether they start with a BOM

    def strip(self, data: bytes, log: FindingLog, t: float | None) -> tuple[bytes | None, int]:
        """(the data without a leading BOM, the body offset of its first byte); (None, 0) while undecided."""
        data = self.head + data
        if len(data) < len(BOM) and BOM.startswith(data):
            self.head = data  # too short to tell yet
            return None, 0
        self.done = True
        self.head = b""
        if data.startswith(BOM):
            log.add("bom", "leading byte order mark (stripped)", 0, t)
            return data[len(BOM):], len(BOM)
        return data, 0


DEFAULT_MAX_LINE_BYTES = 1024 * 1024
FINDINGS_LISTED_PER_CODE = 20
# Informational codes that say something about the whole stream: one listed occurrence is enough.
_LISTED_ONCE = {"crlf-line-ending": 1}
_EOL = re.compile(rb"\r\n?|\n")  # CRLF before CR: a CR followed by LF is one terminator
_NOT_LF = re.compile(rb"[^\n]")
_EXCERPT = 60


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event (also used for NDJSON lines, with the SSE-only fields left at their defaults)."""

    event: str = "message"
    """The event type; "message" when the block set none (or set it empty)."""
    data: str = ""
    """The data lines joined with LF, without the final LF."""
    id: str = ""
    """The last event ID at dispatch time: it persists across events; "" when none was ever set."""
    retry: int | None = None
    """The reconnection time (ms) set by a valid ``retry`` field in this event's block, else None."""
    t: float | None = None
    """The time passed to the ``feed()`` call that completed this event (the read it arrived in)."""
    offset: int = 0
    """Byte offset, in the whole stream, of the first non-comment line of this event's block."""


def excerpt(raw: bytes) -> str:
    """A short printable view of raw bytes for a finding's message."""
    text = raw[:_EXCERPT].decode("utf-8", "replace")
    return repr(text) + ("..." if len(raw) > _EXCERPT else "")


class FindingLog:
    """Findings with a per-code listing cap: the first N of each code are kept, the rest only counted."""

    def __init__(self, limit: int = FINDINGS_LISTED_PER_CODE) -> None:
        self.items: list[Finding] = []
        self.counts: dict[str, int] = {}
        self._limit = limit
        self._first_unlisted: dict[str, tuple[int, float | None]] = {}

    def add(self, code: str, message: str, offset: int, t: float | None) -> None:
        n = self.counts.get(code, 0) + 1
        self.counts[code] = n
        if n <= _LISTED_ONCE.get(code, self._limit):
            self.items.append(Finding(code, message, offset, t))
        elif code not in self._first_unlisted:
            self._first_unlisted[code] = (offset, t)

    def wants_detail(self, code: str) -> bool:
        """True while another occurrence of ``code`` would still be listed (or is the first unlisted)."""
        return self.counts.get(code, 0) <= _LISTED_ONCE.get(code, self._limit)

    def add_unlisted(self, code: str, n: int) -> None:
        """Count ``n`` occurrences whose details were not worked out (past the listing cap)."""
        if n > 0:
            self.counts[code] = self.counts.get(code, 0) + n

    def finish(self) -> None:
        """End of parsing: findings in stream order (stable for equal offsets), then the over-cap summaries."""
        self.items.sort(key=lambda f: f.offset)
        self.summarize()

    def summarize(self) -> None:
        """Append one summary finding per code that went past its cap (called once, at close)."""
        for code, n in self.counts.items():
            listed = _LISTED_ONCE.get(code, self._limit)
            if n > listed:
                offset, t = self._first_unlisted.get(code, (0, None))
                self.items.append(Finding(code, f"{n - listed} more occurrence(s) not listed ({n} in total)",
                                          offset, t))

    def check_utf8(self, buf: bytes, offset: int, t: float | None) -> bool:
        """Record each invalid UTF-8 sequence in ``buf`` (whole lines starting at stream ``offset``).

        Returns True when ``buf`` is valid UTF-8 (so a strict decode of any of its lines cannot fail)."""
        if buf.isascii():
            return True
        try:
            buf.decode("utf-8")
            return True
        except UnicodeDecodeError:
            pass
        # Each decoding error becomes exactly one U+FFFD; genuine U+FFFD characters are EF BF BD in the bytes.
        total = buf.decode("utf-8", "replace").count("\ufffd") - buf.count(b"\xef\xbf\xbd")
        start = 0
        detailed = 0
        while detailed < total and self.wants_detail("invalid-utf8"):
            try:
                buf[start:].decode("utf-8")
                break  # cannot happen while detailed < total; guards the loop anyway
            except UnicodeDecodeError as e:
                at = start + e.start
                bad = buf[at:start + e.end]
                self.add("invalid-utf8", f"invalid UTF-8 sequence {bad.hex(' ')} replaced by U+FFFD", offset + at, t)
                start += e.end
                detailed += 1
        self.add_unlisted("invalid-utf8", total - detailed)
        return False


class _EventShell:
    """Layout twin of SSEEvent: same slots, no frozen ``__setattr__``, no ``__init__`` (see ``_new_event``)."""

    __slots__ = SSEEvent.__slots__


def _new_event(event: str, data: str, id: str, retry: int | None, t: float | None, offset: int,
               _shell: type = _EventShell, _final: type = SSEEvent) -> SSEEvent:
    """Build an SSEEvent about 3x faster than its frozen ``__init__`` (six ``object.__setattr__`` calls).

    Why: event construction dominated the hot path. The shell has exactly SSEEvent's slots, so CPython allows the
    instance to switch class once filled: the result is an ordinary frozen SSEEvent (equal, hashable, assignment
    raises). The defaults bind the helpers as locals, which is measurably faster than global lookups here.
    Calling the shell class allocates faster than ``object.__new__(shell)`` (no argument-tuple parsing).
    """
    ev = _shell()
    ev.event = event  # type: ignore[attr-defined]
    ev.data = data  # type: ignore[attr-defined]
    ev.id = id  # type: ignore[attr-defined]
    ev.retry = retry  # type: ignore[attr-defined]
    ev.t = t  # type: ignore[attr-defined]
    ev.offset = offset  # type: ignore[attr-defined]
    ev.__class__ = _final
    return ev  # type: ignore[return-value]
