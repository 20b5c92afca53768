"""One captured exchange parsed, decoded and measured: ``Transcript`` (what every check reads) and
``transcript_of(capture, profile, allowance)``, the pipeline that builds it (parse -> decode -> metrics). Pure and
offline, so the checks and the engine share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.measure.metrics import DEFAULT_BURST_WINDOW_MS, metrics_from_capture
from harness.model import Capture
from harness.parse.decode import content_chunks, decode, text_of


@dataclass(slots=True)
class Transcript:
    """One captured exchange and everything derived from it offline."""

    capture: Any  # harness.model.Capture
    parsed: Any  # harness.parse.media.Parsed: kind, events, findings
    chunks: list  # list[harness.parse.decode.Chunk]
    metrics: Any  # harness.measure.metrics.Metrics

    @property
    def content_chunks(self) -> list:
        return content_chunks(self.chunks)

    @property
    def text(self) -> str:
        return text_of(self.chunks)

    @property
    def findings(self) -> list:
        return list(getattr(self.parsed, "findings", []) or [])

    def body_excerpt(self, offset: int, length: int = 120) -> str:
        return self.capture.body[max(0, offset): max(0, offset) + length].decode("utf-8", "replace")


def transcript_of(capture: Capture, profile: Any, allowance: Any = None) -> Transcript:
    """Parse, decode and measure one capture (spending ``allowance``, a harness.parse.media.ParseAllowance, if given)."""
    from harness.parse.media import parse_capture

    capture.rebase_to_request()  # a bundle saved before captures were rebased: the same clock as a fresh one
    parsed = parse_capture(capture, allowance=allowance)
    chunks = decode(parsed.events, capture.request.dialect)
    metrics = metrics_from_capture(capture, chunks, token_method=profile.token_method,
                                   burst_window_ms=float(profile.get("timing.burst_window_ms",
                                                                     DEFAULT_BURST_WINDOW_MS)))
    return Transcript(capture=capture, parsed=parsed, chunks=chunks, metrics=metrics)
