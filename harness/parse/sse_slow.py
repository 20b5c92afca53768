"""The SSE parser's general path: reads with CR or CRLF line endings, the line-by-line field rules, the start of a
read after an irregular one (BOM, a CR cut from its LF, a too-long line), buffering a partial line, the end of the
stream. :class:`harness.parse.sse.SSEParser` keeps the hot path (plain ``data:`` events in LF-only reads, with or
without the C scanner) and inherits these methods; both paths give the same events and findings.
"""

from __future__ import annotations

from harness.parse.sse_base import _EOL, SSEEvent, _new_event, excerpt


class SlowPath:
    """The general path of :class:`harness.parse.sse.SSEParser` (a mixin: the parser's ``__init__`` sets the
    state these methods read and write)."""

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
