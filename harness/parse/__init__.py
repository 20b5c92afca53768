"""parse: sans-I/O parsing and decoding of a captured body.

``sse`` (``SSEParser``, hot path; ``sse_slow``: its general path; ``sse_base``: ``SSEEvent``, the findings log,
the BOM rule), the optional C scanner ``_sse_speedups.c``, ``ndjson`` (``NDJSONParser``), ``media`` (picks one by
Content-Type: ``parse_capture(capture) -> Parsed``, with per-stream and per-evaluation caps) and ``decode``
(events -> typed chunks, asking the dialect). ``harness.parse.parse_capture`` (README) is ``media.parse_capture``.
"""

from harness.parse.media import ParseAllowance, Parsed, parse_capture

__all__ = ["ParseAllowance", "Parsed", "parse_capture"]
