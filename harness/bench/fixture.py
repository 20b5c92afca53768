"""Stream timings through pytest-benchmark's ``benchmark`` fixture.

``measure_stream(benchmark, endpoint, profile, options)`` streams one response per pedantic round, so
pytest-benchmark's own statistics are end-to-end seconds of a whole stream, and puts the streaming metrics
(TTFT, tokens/s, ITL, TPOT, TTFB) in ``benchmark.extra_info``. ``--benchmark-json``, ``--benchmark-compare`` and
``--benchmark-histogram`` then work as pytest-benchmark users expect, with the stream metrics alongside.

Only the capture runs inside the timed round; parsing and the timing arithmetic happen after all rounds, so the
round time is the stream's and not the harness's.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from harness.bench.request import record_from_capture
from harness.bench.stats import distribution

DEFAULT_ROUNDS = 5


def _pick(options: Any, profile: Any, name: str, default: Any = None) -> Any:
    """An option's value, else the profile's, else the default (options and profile may be partial)."""
    value = getattr(options, name, None)
    if value is None:
        value = getattr(profile, name, None)
    return default if value is None else value


def _prompt(options: Any, profile: Any) -> str:
    if getattr(options, "prompt", None):
        return options.prompt
    prompts = getattr(profile, "prompts", None) or []
    if prompts and isinstance(prompts[0], str):
        return prompts[0]
    from harness.bench.request import DEFAULT_PROMPTS

    return DEFAULT_PROMPTS[0]


def stream_extra_info(records: list[dict[str, Any]], endpoint: str) -> dict[str, Any]:
    """The summary stored in ``benchmark.extra_info``: plain JSON, milliseconds, one distribution per metric."""

    def dist(key: str) -> dict[str, Any]:
        d = distribution(r.get(key) for r in records if r.get("ok"))
        return {k: d[k] for k in ("mean", "min", "p50", "p90", "p99", "max")}

    gaps = [g for r in records if r.get("ok") for g in r.get("itl_ms") or ()]
    itl = distribution(gaps)
    tps = [r["tokens_per_s"] for r in records if r.get("ok") and r.get("tokens_per_s") is not None]
    return {
        "endpoint": endpoint,
        "rounds": len(records),
        "failed_rounds": sum(1 for r in records if not r.get("ok")),
        "token_method": records[0]["token_method"] if records else None,
        "ttft_ms": dist("ttft_ms"),
        "ttfb_ms": dist("ttfb_ms"),
        "tpot_ms": dist("tpot_ms"),
        "e2e_ms": dist("e2e_ms"),
        "itl_ms": {k: itl[k] for k in ("count", "p50", "p90", "p99", "max")},
        "tokens_per_s": sum(tps) / len(tps) if tps else None,
        "tokens": distribution(r.get("tokens") for r in records if r.get("ok"))["mean"],
        "errors": sorted({r["error_kind"] for r in records if r.get("error_kind")}),
    }


def measure_stream(benchmark: Any, endpoint: str, profile: Any, options: Any, *, rounds: int | None = None,
                   warmup_rounds: int = 1) -> list[dict[str, Any]]:
    """Benchmark one endpoint's stream with pytest-benchmark; returns the per-round records (warm-up excluded).

    ``options`` is the runner's RunOptions (prompt, headers, api_key, model, dialect, limits); ``profile`` gives
    the dialect and prompts when the options leave them unset. A round whose stream fails is reported: the test
    fails after the statistics are stored, because timings of a broken stream mislead.
    """
    from harness.capture.client import make_client
    from harness.capture.core import capture
    from harness.capture.request import build_request
    from harness.model import ByteBudget, Limits

    rounds = rounds or int(os.environ.get("STREAMCONFORM_BENCH_ROUNDS", DEFAULT_ROUNDS))
    limits = getattr(options, "limits", None) or Limits()
    budget = ByteBudget(limits.budget_bytes)  # every round's capture is kept until the end, as a run's are
    dialect = _pick(options, profile, "dialect", "prompt")
    if dialect not in ("prompt", "openai"):
        dialect = "prompt"  # "auto" falls back to the seed dialect: a benchmark sends one fixed request
    token_method = getattr(profile, "token_method", None) or "chars/4"
    spec = build_request(endpoint, dialect, _prompt(options, profile), model=getattr(options, "model", None),
                         headers=dict(getattr(options, "headers", None) or {}),
                         api_key=getattr(options, "api_key", None))
    loop = asyncio.new_event_loop()
    captures: list[Any] = []
    try:
        policy = getattr(options, "policy", None)  # the address policy of `pytest --endpoint`, if any
        client = make_client(policy, limits, max_connections=4)

        def one_stream() -> None:
            captures.append(loop.run_until_complete(capture(spec, limits, policy=policy, client=client,
                                                            budget=budget)))

        try:
            benchmark.pedantic(one_stream, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
        finally:
            loop.run_until_complete(client.aclose())
    finally:
        loop.close()
    measured = captures[-rounds:] if len(captures) >= rounds else captures  # drop warm-up rounds
    records = [record_from_capture(c, token_method=token_method, index=i) for i, c in enumerate(measured)]
    benchmark.extra_info.update(stream_extra_info(records, endpoint))
    failed = [r for r in records if not r["ok"]]
    if failed:
        import pytest

        kinds = ", ".join(sorted({f"{r['error_kind']}" + (f" ({r['error']})" if r.get("error") else "")
                                  for r in failed}))
        pytest.fail(f"{len(failed)} of {len(records)} benchmarked streams failed: {kinds}", pytrace=False)
    return records
