"""Emission lateness: how long after its scheduled time each paced event was actually written.

Recorded only when `ServerConfig.record_lateness` is set (the scale benchmark), into a fixed histogram of 0.1 ms
buckets so that millions of events cost a constant amount of memory and one increment each.
Read with `GET /debug/emission` (`?reset=1` starts a new measurement window).
"""

from __future__ import annotations

RESOLUTION_S = 1e-4
BUCKETS = 50_001  # 0 .. 5 s; the last bucket collects everything later


class LatenessHistogram:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counts = [0] * BUCKETS
        self.n = 0
        self.max_s = 0.0

    def add(self, seconds: float) -> None:
        if seconds < 0:
            seconds = 0.0
        i = int(seconds / RESOLUTION_S)
        self.counts[i if i < BUCKETS else BUCKETS - 1] += 1
        self.n += 1
        if seconds > self.max_s:
            self.max_s = seconds

    def quantile(self, q: float) -> float:
        if not self.n:
            return 0.0
        rank = q * (self.n - 1) + 1
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min((i + 1) * RESOLUTION_S, self.max_s)  # bucket's upper edge: never under-reports
        return self.max_s

    def sparse(self) -> dict:
        """The raw histogram (non-empty buckets only): what a reader merging several workers' histograms needs."""
        return {"counts": {str(i): c for i, c in enumerate(self.counts) if c}, "max_s": self.max_s}

    @classmethod
    def merged(cls, parts: list[dict]) -> LatenessHistogram:
        """One histogram from several ``sparse()`` dumps (one per server worker process)."""
        hist = cls()
        for part in parts:
            for i, c in (part.get("counts") or {}).items():
                hist.counts[int(i)] += c
                hist.n += c
            hist.max_s = max(hist.max_s, float(part.get("max_s") or 0.0))
        return hist

    def snapshot(self) -> dict:
        return {"events": self.n, "p50_ms": self.quantile(0.5) * 1000, "p99_ms": self.quantile(0.99) * 1000,
                "max_ms": self.max_s * 1000}
