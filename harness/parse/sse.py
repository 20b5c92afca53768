"""Sans-I/O parser for ``text/event-stream``, exactly per the WHATWG event-stream interpretation rules.

Feed it raw bytes as they arrived (``feed(data, t)``); it returns the events each read completed and records
every oddity as a :class:`~harness.model.Finding` with its byte offset in the whole stream. Unlike a client's
parser it never drops anything silently, and unlike a naive one it never grows without bound: a line longer
than ``max_line_bytes`` is reported and discarded, and each kind of finding is listed a bounded number of times
(then only counted), so a hostile stream costs bounded memory.

Why it works on bytes: the line terminators (CR, LF) are ASCII and can never occur inside a multi-byte UTF-8
sequence, so splitting bytes first and decoding each event's data afterwards gives the same text as decoding the
whole stream first (a decoding error never swallows a terminator), while keeping exact byte offsets and letting
the common LF-only case find its lines with C-level ``find`` (a memchr) and decode once per event, or once per
read when the read is ASCII.

Three paths, one result. A read that is exactly one ``data: ...`` LF LF event (what a live LLM stream sends)
becomes an event after a few C-level tests; in an LF-only read, a run of such events (the rest of an LLM
stream, however it is cut into reads) is walked with one ``find`` and one compare per event; anything else
goes block by block, line by line. Measured alternatives that lost: splitting the buffer with
``split(b"\n\n")`` (a two-byte separator is searched for several times more slowly than one byte), building
the events with ``map`` over C-level ``split``/``removeprefix``/``accumulate`` calls (more set-up per read and
more objects per event than the walk), and decoding non-ASCII buffers whole (str slices and finds on a
two-byte-per-character str cost more than decoding each value). The tests feed every vector whole, byte by
byte and cut at every position, so the paths are held to the same events and findings.

This module is the hot path. The general path is :class:`harness.parse.sse_slow.SlowPath`, a base class of
``SSEParser``; ``SSEEvent``, the findings log and the BOM rule are in harness/parse/sse_base.py.
"""

from __future__ import annotations

import os

from harness.model import Finding
from harness.parse.sse_base import (
    _NOT_LF,
    DEFAULT_MAX_LINE_BYTES,
    FindingLog,
    LeadingBOM,
    SSEEvent,
    _EventShell,
    _new_event,
)
from harness.parse.sse_slow import SlowPath

try:  # the optional C speedup (built by setup.py where a compiler is present; see _sse_speedups.c)
    from harness.parse import _sse_speedups
except ImportError:  # pragma: no cover - depends on the build
    _sse_speedups = None


_OFF = ("", "0", "false", "no", "off")


def _load_speedup():
    """The C scanner for runs of plain data events, or None: not built, or STREAMCONFORM_PURE_PYTHON=1 is set."""
    if _sse_speedups is None or os.environ.get("STREAMCONFORM_PURE_PYTHON", "").strip().lower() not in _OFF:
        return None
    _sse_speedups.configure(SSEEvent)  # (raises if SSEEvent's fields no longer match what the C code fills)
    return _sse_speedups.scan_data_events


# Read by each SSEParser when it is created (so a test or benchmark may set it to None for the pure-Python path).
scan_data_events = _load_speedup()


class SSEParser(SlowPath):
    """Incremental WHATWG event-stream parser: ``feed(bytes, t) -> events``; ``close() -> events``."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self._log = FindingLog()
        self.findings: list[Finding] = self._log.items
        self.finding_counts: dict[str, int] = self._log.counts
        self.retry: int | None = None  # the stream's reconnection time: the last valid retry field seen
        self._pos = 0  # stream offset of the next byte fed
        self._bom = LeadingBOM()
        # The current unterminated line (no terminator inside): bytes when it came in one read, else a bytearray
        # (not a list of pieces: a drip of one-byte reads must not cost an object, or a copy, per byte).
        self._pending: bytes | bytearray = b""
        self._pending_off = 0
        self._discarding = False  # inside a too-long line: drop bytes up to the next terminator
        self._skip_lf = False  # the previous read ended with CR: an LF starting the next one completes a CRLF
        self._cr_off = 0
        self._closed = False
        self._irregular = True  # any of: BOM undecided, CR pending, discarding, closed
        self._quiet = False  # not irregular, no partial line, no block in progress: see feed()
        self._scan = scan_data_events  # the C scanner, or None for the pure-Python path
        self._last_t: float | None = None
        # The event being built (WHATWG "data buffer", "event type buffer", "last event ID buffer").
        # Invariant: _block_off is None exactly when the block has no field line yet, so the other buffers are
        # empty then (comments and too-long lines leave the block untouched).
        self._data: list[bytes] = []
        self._type = ""
        self._id = ""
        self._block_retry: int | None = None
        self._block_off: int | None = None

    # -- public API -------------------------------------------------------------------------------------------

    def feed(self, data: bytes, t: float | None = None) -> list[SSEEvent]:
        """Parse one read (bytes or bytearray); return the events whose terminating blank line it contained."""
        out: list[SSEEvent] = []
        if self._quiet and self._scan is not None and type(data) is bytes:
            # With the C speedup: the read's leading run of plain data events in one call (all of it, as a rule).
            # Quiet means nothing is carried over, so the read starts a line with no block open, as it requires.
            n = len(data)
            pos = self._scan(data, 0, n, self._pos, t, self._id, self.max_line_bytes, out)
            if pos == n:
                if 13 in data:  # CRLF endings (an int operand: a memchr)
                    self._note_crlf(data, pos, self._pos, t)
                self._pos += n
                return out
            if 13 not in data:  # the rest goes the general way, as if it were a read of its own
                self._pos += pos
                data = data[pos:]
            elif pos:
                # A read with CRs and more than plain events: _feed_any scans it again, so that its UTF-8 findings
                # come before the line-ending ones, in the pure-Python order.
                out.clear()
        elif self._quiet:
            # The fastest pure-Python path: the read is exactly one "data: ..." LF LF event, as a live stream sends them.
            # Safe because quiet means nothing is carried over (no BOM question, no CR, no partial line, no
            # open block), so this read starts a block; a value without CR or LF makes the read exactly one data
            # line and one blank line, and a strict decode proves it valid UTF-8: there is nothing to report.
            # (No _last_t update: close() needs it only for a block left open, which a quiet state rules out.)
            n = len(data)
            if n > 7 and data[-1] == 10 and data[-2] == 10 and data[:6] == b"data: ":
                value = data[6:-2]
                if 10 not in value and 13 not in value and n - 2 <= self.max_line_bytes:  # int operands: memchr
                    try:
                        text = value.decode()
                    except UnicodeDecodeError:
                        pass  # the general path reports it
                    else:  # _new_event, inlined: a call less on the hottest line of the parser
                        off = self._pos
                        self._pos = off + n
                        ev = _EventShell()
                        ev.event = "message"  # type: ignore[attr-defined]
                        ev.data = text  # type: ignore[attr-defined]
                        ev.id = self._id  # type: ignore[attr-defined]
                        ev.retry = None  # type: ignore[attr-defined]
                        ev.t = t  # type: ignore[attr-defined]
                        ev.offset = off  # type: ignore[attr-defined]
                        ev.__class__ = SSEEvent
                        return [ev]  # type: ignore[list-item]
        if self._irregular:
            data, off = self._prelude(data, t)
        else:
            off = self._pos
            self._pos = off + len(data)
        self._last_t = t
        if data:
            self._feed_lines(data, off, t, out)
        # Quiet: nothing carried over from earlier reads, so the next read may take the fastest path.
        self._quiet = not (self._irregular or self._pending or self._block_off is not None)
        return out

    def _feed_lines(self, data: bytes, off: int, t: float | None, out: list[SSEEvent]) -> None:
        """The general path: complete the lines in ``data`` (plus the carried-over partial line), keep the rest."""
        if type(data) is not bytes:  # a bytearray: the C-level paths below need real bytes
            data = bytes(data)
        if 13 in data:  # (an int operand makes `in` a plain memchr: several times faster)
            self._feed_any(data, off, t, out)
            return
        # LF-only read. The carried-over partial line never holds a terminator, so buf has no CR either.
        last = data.rfind(b"\n")
        if last < 0:  # no terminator: the line goes on
            self._keep(data, off, t)
            return
        pending = self._pending
        if pending:
            buf = pending + data if type(pending) is bytes else b"".join((pending, data))
            base = self._pending_off
        else:
            buf = data
            base = off
        n = len(buf)
        end = n - len(data) + last + 1  # just past buf's last LF: buf[:end] is whole lines, buf[end:] a partial one
        self._lines_lf(buf, base, end, t, out)
        # The partial line becomes the pending one (not via _keep, a call less per read, unless it is too long).
        if end == n:
            self._pending = b""
        elif n - end <= self.max_line_bytes:
            self._pending = buf[end:]
            self._pending_off = base + end
        else:
            self._pending = b""
            self._keep(buf[end:], base + end, t)

    # -- lines --------------------------------------------------------------------------------------------

    def _lines_lf(self, buf: bytes, base: int, end: int, t: float | None, out: list[SSEEvent]) -> None:
        """LF-only whole lines ``buf[:end]`` (``buf`` may go on with a partial line; ``base`` is buf's stream
        offset): a run of plain data events on the fast path, anything after it block by block.

        The run: one event per ``data: <value>`` LF LF block from the first line on. Safe because such a block,
        with no block open before it, is exactly one event with nothing to report: its only line is a ``data``
        field whose value follows one space (nothing to strip or note), the blank line dispatches it, the caller
        ruled out CR, the run is no longer than the line cap, and the value's decode proves it valid UTF-8 (an
        ASCII buffer is decoded once, its str indexes being byte offsets). Each step finds the line's LF (a
        memchr) and checks the 8 bytes from there with one compare: LF LF ``data: `` means this block is
        complete and the next is one too. Where that fails only the blank line is checked: the block is the
        run's last. The run ends at the last blank line (``stop``), so every line in it is followed by another:
        ``nl + 1`` is a valid index. A block of any other shape, or not valid UTF-8, ends the run early; the
        per-block path takes it from there, with its findings.
        """
        pos = 0
        if self._block_off is not None:
            if buf[0] != 10:  # the block left open by the previous read goes on: the per-line path
                self._blocks_lf(buf[:end], base, t, out)
                return
            self._dispatch(t, out)  # the blank line closing it (the previous read was cut between the two LFs)
            pos = 1
        if self._scan is not None:  # the C speedup does the run (it checks each line's length against the cap)
            pos = self._scan(buf, pos, end, base, t, self._id, self.max_line_bytes, out)
            if pos < end:
                self._blocks_lf(buf[pos:end], base + pos, t, out)
            return
        stop = end if end - pos >= 8 and buf[end - 2] == 10 else buf.rfind(b"\n\n", pos, end) + 2
        if stop - pos > self.max_line_bytes:  # (a read longer than the line cap: the rest goes block by block)
            stop = buf.rfind(b"\n\n", pos, pos + self.max_line_bytes) + 2
        if stop - pos >= 8 and buf[pos:pos + 6] == b"data: ":  # (8: the shortest data block, "data: " LF LF)
            event_id = self._id
            append = out.append
            shell = _EventShell
            final = SSEEvent
            if buf.isascii():  # (usual for English text)
                s = buf.decode("ascii")
                find = s.find
                while pos < stop:
                    nl = find("\n", pos)
                    if s[nl:nl + 8] != "\n\ndata: ":
                        if s[nl + 1] == "\n":  # the run's last block, complete
                            append(_new_event("message", s[pos + 6:nl], event_id, None, t, base + pos))
                            pos = nl + 2
                        break
                    ev = shell()  # _new_event, inlined (a call less per event)
                    ev.event = "message"
                    ev.data = s[pos + 6:nl]
                    ev.id = event_id
                    ev.retry = None
                    ev.t = t
                    ev.offset = base + pos
                    ev.__class__ = final
                    append(ev)
                    pos = nl + 2
            else:
                find = buf.find
                while pos < stop:
                    nl = find(b"\n", pos)
                    last = buf[nl:nl + 8] != b"\n\ndata: "
                    if last and buf[nl + 1] != 10:
                        break
                    try:
                        text = buf[pos + 6:nl].decode()
                    except UnicodeDecodeError:
                        break
                    ev = shell()
                    ev.event = "message"
                    ev.data = text
                    ev.id = event_id
                    ev.retry = None
                    ev.t = t
                    ev.offset = base + pos
                    ev.__class__ = final
                    append(ev)
                    pos = nl + 2
                    if last:
                        break
        if pos < end:
            self._blocks_lf(buf[pos:end], base + pos, t, out)

    def _blocks_lf(self, buf: bytes, off: int, t: float | None, out: list[SSEEvent]) -> None:
        """LF-only input, block by block: a ``data: `` line followed by a blank line, with no block open, is a
        whole event built at once; anything else goes through the per-line path (same result, only slower).

        UTF-8 is checked line by line as it is decoded (a data line's strict decode is the check; only when it
        fails is the line examined for findings), not in a separate pass over the buffer. Lines are found with
        ``find`` (a memchr), not ``split(b"\\n\\n")``: a two-byte separator is searched for several times more
        slowly than one byte.
        """
        end = len(buf)
        maxlen = self.max_line_bytes
        find = buf.find
        event_id = self._id
        clean = self._block_off is None  # no block open (only _line can open one)
        pos = 0
        while pos < end:
            nl = find(b"\n", pos)  # found: buf ends with LF
            if nl == pos:  # a blank line: dispatch, then skip the rest of a run of blank lines at C speed
                if not clean:
                    self._dispatch(t, out)
                    clean = True
                more = _NOT_LF.search(buf, pos)
                pos = more.start() if more else end
            elif (clean and buf[pos:pos + 6] == b"data: " and nl + 1 < end and buf[nl + 1] == 10
                  and nl - pos <= maxlen):
                value = buf[pos + 6:nl]
                try:
                    text = value.decode()
                except UnicodeDecodeError:
                    self._log.check_utf8(value, off + pos + 6, t)
                    text = value.decode("utf-8", "replace")
                ev = _EventShell()  # _new_event, inlined (a call less per event)
                ev.event = "message"  # type: ignore[attr-defined]
                ev.data = text  # type: ignore[attr-defined]
                ev.id = event_id  # type: ignore[attr-defined]
                ev.retry = None  # type: ignore[attr-defined]
                ev.t = t  # type: ignore[attr-defined]
                ev.offset = off + pos  # type: ignore[attr-defined]
                ev.__class__ = SSEEvent
                out.append(ev)  # type: ignore[arg-type]
                pos = nl + 2
            else:
                line = buf[pos:nl]
                self._log.check_utf8(line, off + pos, t)
                self._line(line, off + pos, t, out)
                event_id = self._id
                clean = self._block_off is None
                pos = nl + 1
