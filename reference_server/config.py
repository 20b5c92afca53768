"""Settings of one reference server: pacing, length, the fault to inject, rate limit, upstream relay.

The defaults pass the tds thresholds (TTFT < 2401 ms, > 29 tokens/s with tokens = chars/4, >= 1,500 characters in
>= 20 chunks) by a wide margin while keeping a whole stream near one second, because tests run it many times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    ttft_ms: float = 50.0
    """Delay between the response headers and the first content chunk."""
    gap_ms: float = 20.0
    """Delay between two content chunks."""
    target_chars: int = 1600
    """Length of the generated answer (characters); generation stops at the first sentence end past it."""
    min_chunks: int = 20
    """The answer is cut into at least this many content chunks."""
    chunk_chars: int = 40
    """Preferred size of one content chunk; chunks are cut at word boundaries near it."""
    fault: str | None = None
    """Fault mode applied to every request (see `reference_server.faults`); `X-Fault` selects one per request."""
    rate_limit: float | None = None
    """Requests per second accepted before answering 429 (token bucket, burst = one second's worth)."""
    upstream: str | None = None
    """Base URL or chat-completions URL of an OpenAI-compatible server to relay instead of generating text."""
    upstream_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the upstream API key (the key itself never sits in the config)."""
    model: str = "streamconform-reference"
    api_key: str | None = None
    """When set, a request must carry it (Authorization: Bearer KEY, x-api-key or api-key) or get 401."""
    max_body_bytes: int = MIB
    max_prompt_chars: int = 5000
    max_json_depth: int = 32
    cors_origins: tuple[str, ...] = field(default=("*",))
    shared_pacer: bool = True
    """Write every stream's paced events from one timer (reference_server/pacer.py); False gives each stream a
    task that sleeps between events (kept to measure the difference in the scale benchmark)."""
    record_lateness: bool = False
    """Record each paced event's emission lateness (for the scale benchmark; read at GET /debug/emission)."""
    header_timeout_s: float = 10.0
    """A connection that has not sent a request's complete headers this long after opening (or after its last
    response) is closed (slowloris); 0 turns the deadline off. See reference_server/header_timeout.py."""
