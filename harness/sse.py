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
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from harness.model import Finding

try:  # the optional C speedup (built by setup.py where a compiler is present; see _sse_speedups.c)
    from harness import _sse_speedups
except ImportError:  # pragma: no cover - depends on the build
    _sse_speedups = None

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


_OFF = ("", "0", "false", "no", "off")


def _load_speedup():
    """The C scanner for runs of plain data events, or None: not built, or STREAMCONFORM_PURE_PYTHON=1 is set."""
    if _sse_speedups is None or os.environ.get("STREAMCONFORM_PURE_PYTHON", "").strip().lower() not in _OFF:
        return None
    _sse_speedups.configure(SSEEvent)  # (raises if SSEEvent's fields no longer match what the C code fills)
    return _sse_speedups.scan_data_events


# Read by each SSEParser when it is created (so a test or benchmark may set it to None for the pure-Python path).
scan_data_events = _load_speedup()


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



class SSEParser:
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

    def _feed_any(self, data: bytes, off: int, t: float | None, out: list[SSEEvent]) -> None:
        """A read with a CR in it: any of CR, LF and CRLF may end a line."""
        cr = data.rfind(b"\r")
        last = data.rfind(b"\n")
        if cr > last:
            last = cr
        if self._pending:
            buf = b"".join((self._pending, data if last + 1 == len(data) else data[: last + 1]))
            buf_off = self._pending_off
            self._pending = b""
        else:
            buf = data if last + 1 == len(data) else data[: last + 1]
            buf_off = off
        run_end = 0
        if self._scan is not None and self._block_off is None:
            # The C speedup takes the leading run of plain events (CRLF ones, as sse-starlette sends, included).
            run_end = self._scan(buf, 0, len(buf), buf_off, t, self._id, self.max_line_bytes, out)
        rest = buf[run_end:] if run_end else buf
        # Findings in the pure-Python order: the UTF-8 check of the whole buffer (the run is valid UTF-8, so only
        # the rest can have any), then the lines' findings in stream order, the run's endings first.
        self._log.check_utf8(rest, buf_off + run_end, t)
        if run_end:
            self._note_crlf(buf, run_end, buf_off, t)
        if rest:
            self._lines_any(rest, buf_off + run_end, t, out, last + 1 == len(data))
        if last + 1 < len(data):
            self._keep(data[last + 1:], off + last + 1, t)

    def close(self) -> list[SSEEvent]:
        """End of stream: an unterminated final block is discarded (per the spec) and reported."""
        if self._closed:
            return []
        self._closed = self._irregular = True
        self._quiet = False
        t = self._last_t
        if self._skip_lf:
            self._skip_lf = False
            self._cr_only(self._cr_off, t)
        if self._bom.head:  # the stream was only a BOM prefix
            self._pending = bytearray(self._bom.head)
            self._pending_off = 0
        if self._pending:
            self._log.check_utf8(bytes(self._pending), self._pending_off, t)
        if self._pending or self._discarding or self._block_off is not None:
            at = self._block_off if self._block_off is not None else self._pending_off
            self._log.add("unterminated-final-block",
                          "stream ended inside an event (no final blank line): the event is discarded", at, t)
        self._pending = b""
        self._data = []
        self._log.finish()
        return []

    def abandon(self) -> None:
        """Stop without reaching the end of the stream (the caller read enough): no end-of-stream findings, but
        the findings are put in order and summarized as ``close()`` does. Further feeds are refused."""
        if not self._closed:
            self._closed = self._irregular = True
            self._quiet = False
            self._log.finish()

    # -- the slow start of a read: BOM, a CR from the previous read, a too-long line ---------------------

    def _prelude(self, data: bytes, t: float | None) -> tuple[bytes, int]:
        if self._closed:
            raise RuntimeError("feed() after close()")
        off = self._pos
        if not data:
            return data, off
        self._pos = off + len(data)
        self._last_t = t
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 0x0A:  # the second half of a CRLF split across reads: not a new (empty) line
                self._log.add("crlf-line-ending", "CRLF line endings", self._cr_off, t)
                data = data[1:]
                off += 1
            else:
                self._cr_only(self._cr_off, t)
        if not self._bom.done and data:
            stripped, bom_off = self._bom.strip(data, self._log, t)
            if stripped is None:
                return b"", off
            data, off = stripped, bom_off
        if self._discarding and data:
            data, off = self._skip_long_line(data, off, t)
        self._irregular = not self._bom.done or self._skip_lf or self._discarding
        return data, off

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

    def _lines_any(self, buf: bytes, off: int, t: float | None, out: list[SSEEvent], read_end: bool) -> None:
        """CR, LF and CRLF terminators (buf ends with one); notes which endings the stream uses.

        ``read_end``: buf ends where the read ends, so a final CR may be half of a CRLF cut by the read boundary.
        (Otherwise the byte after buf is neither CR nor LF: buf ends at the read's last terminator.)
        """
        log = self._log
        # Past its listing cap, a line-ending finding is only counted: no per-line call for a CR-only flood.
        crlf_detail = log.wants_detail("crlf-line-ending")
        cr_detail = log.wants_detail("cr-line-ending")
        crlf_more = cr_more = 0
        start = 0
        end = len(buf)
        for m in _EOL.finditer(buf):
            s, e = m.span()
            if s > start or self._block_off is not None:  # (a blank line with no block open changes nothing)
                self._line(buf[start:s], off + start, t, out)
            start = e
            if buf[s] == 0x0D:
                if e - s == 2:
                    if crlf_detail:
                        log.add("crlf-line-ending", "CRLF line endings", off + s, t)
                        crlf_detail = log.wants_detail("crlf-line-ending")
                    else:
                        crlf_more += 1
                elif e == end and read_end:  # may be the first half of a CRLF: decide on the next read's first byte
                    self._skip_lf = self._irregular = True
                    self._cr_off = off + s
                elif cr_detail:
                    self._cr_only(off + s, t)
                    cr_detail = log.wants_detail("cr-line-ending")
                else:
                    cr_more += 1
        log.add_unlisted("crlf-line-ending", crlf_more)
        log.add_unlisted("cr-line-ending", cr_more)

    def _line(self, line: bytes, pos: int, t: float | None, out: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(t, out)
        elif len(line) > self.max_line_bytes:
            self._too_long(pos, len(line), t)
        else:
            self._field(line, pos, t)

    def _field(self, line: bytes, pos: int, t: float | None) -> None:
        """One non-blank line: a comment or a field (name before the first colon, one leading space stripped)."""
        if line[0] == 0x3A:
            self._note("comment", "comment line", line, pos, t)
            return
        if self._block_off is None:
            self._block_off = pos
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""  # no colon: the whole line is the field name, the value is empty
        else:
            name, value = line[:colon], line[colon + 1:]
            if value[:1] == b" ":
                value = value[1:]
            elif value:
                self._note("no-space-after-colon", "no space after the colon in", line, pos, t)
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" in value:
                self._note("nul-in-id", "id containing NUL ignored:", line, pos, t)
            else:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():  # bytes.isdigit: ASCII digits only, False when empty
                self._block_retry = self.retry = int(value)
            else:
                self._note("bad-retry", "retry value is not ASCII digits, ignored:", line, pos, t)
        else:
            self._note("unknown-field", "unknown field ignored:", line, pos, t)

    def _note(self, code: str, what: str, line: bytes, pos: int, t: float | None) -> None:
        """A finding about ``line``, whose excerpt is made only when the finding is listed: past the listing cap a
        flood of one oddity is only counted, and formatting its excerpts cost more than parsing it."""
        if self._log.wants_detail(code):
            self._log.add(code, f"{what} {excerpt(line)}", pos, t)
        else:
            self._log.add_unlisted(code, 1)

    def _dispatch(self, t: float | None, out: list[SSEEvent]) -> None:
        """A blank line: dispatch the event unless its data buffer is empty; reset the block either way."""
        data = self._data
        if data:
            raw = data[0] if len(data) == 1 else b"\n".join(data)
            out.append(_new_event(self._type or "message", raw.decode("utf-8", "replace"), self._id,
                                  self._block_retry, t, self._block_off))  # type: ignore[arg-type]
            data.clear()
        self._type = ""
        self._block_retry = None
        self._block_off = None

    # -- bookkeeping ----------------------------------------------------------------------------------------

    def _note_crlf(self, buf: bytes, stop: int, base: int, t: float | None) -> None:
        """Record the line endings of the plain events the C scanner took from ``buf[:stop]``: its only CRs are
        halves of CRLF endings (a value with a CR is left to the general path), noted as ``_lines_any`` would."""
        n = buf.count(b"\r", 0, stop)
        log = self._log
        at = -1
        while n and log.wants_detail("crlf-line-ending"):
            at = buf.find(b"\r", at + 1, stop)
            log.add("crlf-line-ending", "CRLF line endings", base + at, t)
            n -= 1
        log.add_unlisted("crlf-line-ending", n)

    def _cr_only(self, pos: int, t: float | None) -> None:
        self._log.add("cr-line-ending", "line ended by a lone CR (many clients only split on LF)", pos, t)

    def _too_long(self, pos: int, n: int, t: float | None) -> None:
        self._log.add("line-too-long", f"line longer than the {self.max_line_bytes}-byte cap discarded "
                      f"({n} bytes seen)", pos, t)

    def _keep(self, piece: bytes, off: int, t: float | None) -> None:
        """Buffer the unterminated tail of a read; past the line cap, report it and start discarding."""
        if not self._pending:
            self._pending_off = off
            self._pending = piece  # usually the whole partial line: kept as is, no copy
        else:
            if type(self._pending) is bytes:  # a line growing over several reads: amortized appends from here
                self._pending = bytearray(self._pending)
            self._pending += piece
        if len(self._pending) > self.max_line_bytes:
            self._discarding = self._irregular = True
            self._too_long(self._pending_off, len(self._pending), t)
            self._pending = b""

    def _skip_long_line(self, data: bytes, off: int, t: float | None) -> tuple[bytes, int]:
        """Drop the rest of a too-long line: everything up to and including its terminator."""
        lf = data.find(b"\n")
        cr = data.find(b"\r")
        if lf < 0 and cr < 0:
            return b"", off
        i = lf if cr < 0 or (0 <= lf < cr) else cr
        self._discarding = False
        if data[i] == 0x0D:
            if i + 1 == len(data):
                self._skip_lf = True
                self._cr_off = off + i
            elif data[i + 1] == 0x0A:
                self._log.add("crlf-line-ending", "CRLF line endings", off + i, t)
                i += 1
            else:
                self._cr_only(off + i, t)
        return data[i + 1:], off + i + 1
