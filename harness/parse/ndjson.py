"""Sans-I/O parser for newline-delimited JSON streams (``application/x-ndjson``, JSON Lines; e.g. Ollama).

Same API as :class:`harness.parse.sse.SSEParser`: ``feed(data, t) -> events``, ``close() -> events``, ``.findings``.
Each non-blank line becomes one :class:`~harness.parse.sse_base.SSEEvent` with ``data`` = the line's text (``event`` is
"message", ``id`` "", ``retry`` None), its arrival time and its byte offset. JSON validity is not judged here:
the decode stage parses each line and reports bad JSON.

Decisions, each recorded as a finding so checks can judge them:
  * Lines end at LF only, as NDJSON/JSON Lines define it and as JavaScript clients split. A CR before the LF is
    stripped (JSON treats it as whitespace): "crlf-line-ending" (info, listed once). A CR anywhere else is left
    in the line, where it is JSON whitespace but usually means CR-only line endings that make many lines run
    together: "cr-line-ending".
  * Blank (whitespace-only) lines are skipped: "blank-line".
  * A final line without a newline is still delivered by ``close()`` (JSON Lines readers accept a missing final
    newline; Ollama sends one): "unterminated-final-block".
  * Invalid UTF-8 is replaced by U+FFFD: "invalid-utf8"; a leading BOM is stripped: "bom".
  * A line longer than ``max_line_bytes`` is reported and discarded, without buffering it: "line-too-long".
  * With ``json_seq=True`` (``application/json-seq``, RFC 7464) the RS byte that starts each record is stripped.
"""

from __future__ import annotations

from itertools import accumulate, repeat

from harness.model import Finding
from harness.parse.sse_base import (
    DEFAULT_MAX_LINE_BYTES,
    FindingLog,
    LeadingBOM,
    SSEEvent,
    _new_event,
    excerpt,
)

_WHITESPACE = b" \t\r"


class NDJSONParser:
    """Incremental NDJSON / JSON Lines splitter: ``feed(bytes, t) -> events``; ``close() -> events``."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, *, json_seq: bool = False) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self.json_seq = json_seq  # application/json-seq (RFC 7464): each record starts with RS (0x1E), stripped
        self._log = FindingLog()
        self.findings: list[Finding] = self._log.items
        self.finding_counts: dict[str, int] = self._log.counts
        self._pos = 0
        self._bom = LeadingBOM()
        # The current unterminated line (no LF inside). A bytearray, not a list of pieces: a drip of
        # one-byte reads must not cost an object per byte.
        self._pending = bytearray()
        self._pending_off = 0
        self._discarding = False  # inside a too-long line: drop bytes up to the next LF
        self._last_t: float | None = None
        self._closed = False

    def feed(self, data: bytes, t: float | None = None) -> list[SSEEvent]:
        """Parse one read; return an event per complete non-blank line it finished."""
        if self._closed:
            raise RuntimeError("feed() after close()")
        out: list[SSEEvent] = []
        if not data:
            return out
        if type(data) is not bytes:  # a bytearray: the C-level paths below need real bytes
            data = bytes(data)
        off = self._pos
        self._pos += len(data)
        self._last_t = t
        if not self._bom.done:
            stripped, off = self._bom.strip(data, self._log, t)
            if stripped is None:
                return out
            data = stripped
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return out
            self._discarding = False
            data = data[nl + 1:]
            off += nl + 1
        last = data.rfind(b"\n")
        if last < 0:
            self._keep(data, off, t)
            return out
        if self._pending:
            buf = b"".join((self._pending, data if last + 1 == len(data) else data[: last + 1]))
            buf_off = self._pending_off
            self._pending.clear()
        else:
            buf = data if last + 1 == len(data) else data[: last + 1]
            buf_off = off
        self._log.check_utf8(buf, buf_off, t)
        lines = buf.split(b"\n")
        lines.pop()  # buf ends with LF
        if (self.json_seq or 13 in buf or max(map(len, lines)) > self.max_line_bytes
                or not all(map(bytes.strip, lines))):
            self._lines(lines, buf_off, t, out)
        else:  # the usual case: no CR, no blank line, none too long: one event per line, built in C loops
            n = len(lines)
            offsets = accumulate(map(len, lines), lambda a, b: a + b + 1, initial=buf_off)
            out.extend(map(_new_event, repeat("message", n), [ln.decode("utf-8", "replace") for ln in lines],
                           repeat("", n), repeat(None, n), repeat(t, n), offsets))
        if last + 1 < len(data):
            self._keep(data[last + 1:], off + last + 1, t)
        return out

    def close(self) -> list[SSEEvent]:
        """End of stream: a final line without a newline is delivered (and reported)."""
        out: list[SSEEvent] = []
        if self._closed:
            return out
        self._closed = True
        t = self._last_t
        if self._bom.head:  # the whole stream was a BOM prefix
            self._pending = bytearray(self._bom.head)
            self._pending_off = 0
        if self._discarding:
            self._log.add("unterminated-final-block", "stream ended inside a too-long line (discarded)",
                          self._pending_off, t)
        elif self._pending:
            line = bytes(self._pending)
            self._pending.clear()
            self._log.check_utf8(line, self._pending_off, t)
            self._log.add("unterminated-final-block", f"final line has no newline (delivered anyway): "
                          f"{excerpt(line)}", self._pending_off, t)
            self._lines([line], self._pending_off, t, out)
        self._log.finish()
        return out

    def abandon(self) -> None:
        """Stop before the end of the stream: no end-of-stream findings, but findings ordered and summarized."""
        if not self._closed:
            self._closed = True
            self._log.finish()

    def _lines(self, lines: list[bytes], pos: int, t: float | None, out: list[SSEEvent]) -> None:
        """The general path: every line checked for CR, blankness and length."""
        log = self._log
        blank_detail = log.wants_detail("blank-line")  # past the cap, empty lines are only counted, in bulk
        blank_more = 0
        for line in lines:
            n = len(line)
            if not n:
                if blank_detail:
                    log.add("blank-line", "blank line skipped", pos, t)
                    blank_detail = log.wants_detail("blank-line")
                else:
                    blank_more += 1
                pos += 1
                continue
            if n > self.max_line_bytes:
                self._log.add("line-too-long", f"line longer than the {self.max_line_bytes}-byte cap discarded "
                              f"({n} bytes)", pos, t)
            else:
                text = line
                if text[-1:] == b"\r":
                    text = text[:-1]
                    self._log.add("crlf-line-ending", "CRLF line endings", pos + n - 1, t)
                if self.json_seq and text[:1] == b"\x1e":
                    text = text[1:]
                    pos += 1  # the event's offset is its JSON text's
                    n -= 1
                cr = text.find(b"\r")
                if cr >= 0:
                    self._log.add("cr-line-ending", "CR inside a line (CR-only line endings?): only LF ends an "
                                  "NDJSON line", pos + cr, t)
                if not text.strip(_WHITESPACE):
                    log.add("blank-line", "blank line skipped", pos, t)
                    blank_detail = log.wants_detail("blank-line")
                else:
                    out.append(_new_event("message", text.decode("utf-8", "replace"), "", None, t, pos))
            pos += n + 1
        log.add_unlisted("blank-line", blank_more)

    def _keep(self, piece: bytes, off: int, t: float | None) -> None:
        if not self._pending:
            self._pending_off = off
        self._pending += piece
        if len(self._pending) > self.max_line_bytes:
            self._discarding = True
            self._log.add("line-too-long", f"line longer than the {self.max_line_bytes}-byte cap discarded "
                          f"({len(self._pending)}+ bytes)", self._pending_off, t)
            self._pending = bytearray()  # (a new one: clear() would keep the large allocation)
