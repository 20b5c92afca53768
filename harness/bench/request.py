"""One benchmark request: capture a stream, then turn it into a flat per-request record.

The capture (harness/capture/core.py) is the only I/O and records raw reads with their arrival times; parsing, decoding
and the timing arithmetic happen after the stream ended, so they never delay a read's timestamp. The CPU they
cost is measured per request (``parse_cpu_ms``) because it is part of the client's overhead.

A record is a plain dict (it goes straight into the bench JSON) with times in milliseconds:
``ttfb_ms`` request sent -> first body byte; ``ttft_ms`` request sent -> first meaningful content event (harness/measure/metrics.py);
``itl_ms`` every gap between consecutive content events; ``tpot_ms`` (last - first content) / (tokens - 1);
``e2e_ms`` request sent -> end of body; ``tokens`` counted by ``token_method``.
"""

from __future__ import annotations

import os
import time
from typing import Any

# Built-in prompts for when neither --prompts nor the profile gives any: varied topics, so a server that caches
# by prompt does not look faster than it is.
DEFAULT_PROMPTS = (
    "Explain how server-sent events deliver tokens from a language model to a browser.",
    "Describe the water cycle for a curious ten-year-old.",
    "What are the trade-offs between TCP and UDP for real-time games?",
    "Summarise the causes and consequences of the 1929 stock market crash.",
    "How does a bloom filter answer membership queries with little memory?",
    "Give practical advice for growing tomatoes on a small balcony.",
)

# Ends of a capture that mean the request did not complete on its own.
_CLEAN_END = "eof"
# Captures kept raw until the level ends; past this many, each is parsed as it ends, bounding memory.
MAX_DEFERRED = 4096
# Body bytes the captures in flight and those kept raw may hold together (each capture also has the usual per-capture
# cap, harness.model.CAPTURE_MAX_BYTES): a flooding endpoint at high concurrency costs this much, not concurrency
# times the cap. A request cut by it ends as max_bytes. Past half of it held, captures are parsed as they end.
BENCH_BUDGET_BYTES = 64 * 1024 * 1024


def _error_kind(capture: Any, saw_error_event: bool, content_events: int) -> str | None:
    """Why a request counts as failed, as a short key for the per-level error breakdown; None when it is ok."""
    if capture.end_reason != _CLEAN_END and capture.status is None:
        return capture.end_reason  # never got a response: connect_error, deadline, ...
    if capture.status != 200:
        return f"http_{capture.status}"
    if capture.end_reason != _CLEAN_END:
        return capture.end_reason  # cut short mid-stream: deadline, idle_timeout, read_error, max_bytes...
    if saw_error_event:
        return "error_event"
    if content_events == 0:
        return "no_content"
    return None


def record_from_capture(capture: Any, *, token_method: str = "chars/4", index: int = 0,
                        t_start_s: float = 0.0) -> dict[str, Any]:
    """Parse, decode and measure one capture (harness/measure/metrics.py does the timing); its CPU time is recorded."""
    from harness.measure.metrics import metrics_from_capture
    from harness.parse.decode import decode
    from harness.parse.media import parse_capture

    cpu0 = time.thread_time()
    chunks = decode(parse_capture(capture).events, capture.request.dialect)
    m = metrics_from_capture(capture, chunks, token_method)
    content = [c for c in chunks if c.has_text]
    tokens = m.tokens or 0
    tpot = None
    if m.first_content_index is not None and tokens > 1:
        # Same clock span as tokens/s: from the first meaningful content to the last content.
        span = content[-1].t - chunks[m.first_content_index].t
        tpot = span * 1000.0 / (tokens - 1) if span > 0 else None
    kind = _error_kind(capture, any(c.error is not None for c in chunks), len(content))
    cpu_ms = (time.thread_time() - cpu0) * 1000.0
    return {
        "index": index,
        "t_start_s": t_start_s,
        "ok": kind is None,
        "status": capture.status,
        "end_reason": capture.end_reason,
        "error_kind": kind,
        "error": capture.error,
        "ttfb_ms": m.ttfb_ms,
        "ttft_ms": m.ttft_ms,
        "e2e_ms": m.e2e_ms if m.e2e_ms is not None else 0.0,
        "itl_ms": m.gaps_ms,
        "itl_max_ms": max(m.gaps_ms) if m.gaps_ms else None,
        "tpot_ms": tpot,
        "tokens": tokens,
        "tokens_per_s": m.tokens_per_s,
        "token_method": m.token_method,  # the method used ("auto" resolves to usage or chars/4)
        "chars": m.chars,
        "content_events": m.chunks,
        "bytes": sum(len(r.data) for r in capture.reads),
        "parse_cpu_ms": cpu_ms,
    }


class BenchClient:
    """Sends the benchmark's requests over one shared connection pool and returns one record per request.

    Prompts are used in turn (request ``i`` gets ``prompts[i % len(prompts)]``) so a level's load is the same
    from run to run.
    """

    def __init__(self, url: str, *, dialect: str, prompts: list[str], headers: dict[str, str] | None = None,
                 model: str | None = None, api_key: str | None = None, timeout_s: float = 60.0,
                 token_method: str = "chars/4", max_connections: int = 100, max_tokens: int | None = None) -> None:
        from harness.model import ByteBudget, Limits

        self.url = url
        self.dialect = dialect
        self.prompts = prompts
        self.headers = dict(headers or {})
        self.model = model
        self.api_key = api_key if api_key is not None else (os.environ.get("STREAMCONFORM_API_KEY") or None)
        self.limits = Limits(deadline_s=timeout_s, idle_timeout_s=min(Limits().idle_timeout_s, timeout_s))
        self.budget = ByteBudget(BENCH_BUDGET_BYTES)  # bytes held, given back as each capture becomes a record
        self.token_method = token_method
        self.max_connections = max_connections
        self.max_tokens = max_tokens
        self._client: Any = None
        self._pending = 0  # captures waiting for finish()

    async def __aenter__(self) -> BenchClient:
        from harness.capture.client import make_client

        self._client = make_client(self.limits, max_connections=self.max_connections)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def spec(self, index: int) -> Any:
        from harness.capture.request import build_request

        prompt = self.prompts[index % len(self.prompts)]
        # Counting by the server's usage needs it asked for; only the openai dialect has a way to ask.
        extra: dict[str, Any] = ({"stream_options": {"include_usage": True}}
                                 if self.dialect == "openai" and self.token_method in ("usage", "auto") else {})
        if self.max_tokens:
            extra["max_tokens"] = self.max_tokens
        return build_request(self.url, self.dialect, prompt, model=self.model, headers=self.headers,
                             api_key=self.api_key, extra_body=extra or None)

    async def request(self, index: int, t_start_s: float) -> dict[str, Any]:
        """Capture one stream. Its parsing waits for ``finish`` (after the level) while few captures wait,
        so bursts of streams ending together do not delay the timestamps of the streams still running."""
        from harness.capture.core import capture

        cap = await capture(self.spec(index), self.limits, client=self._client, budget=self.budget)
        if self._pending < MAX_DEFERRED and self.budget.used <= self.budget.total // 2:
            self._pending += 1
            return {"index": index, "t_start_s": t_start_s, "capture": cap}
        return self._record(cap, index, t_start_s)

    def _record(self, cap: Any, index: int, t_start_s: float) -> dict[str, Any]:
        record = record_from_capture(cap, token_method=self.token_method, index=index, t_start_s=t_start_s)
        self.budget.give_back(record["bytes"])
        return record

    def finish(self, item: dict[str, Any]) -> dict[str, Any]:
        """The record of a request (parsing it now if ``request`` deferred it)."""
        cap = item.get("capture")
        if cap is None:
            return item
        self._pending -= 1
        record = self._record(cap, item["index"], item["t_start_s"])
        record["parse_deferred"] = True
        return record
