"""The bench's arithmetic: percentiles, SLO parsing, goodput, level summaries and --compare deltas (pure, fast)."""

from __future__ import annotations

import pytest

from harness.bench_stats import (
    LevelSpec,
    compare_levels,
    distribution,
    meets_slos,
    parse_slos,
    percentile,
    summarize_level,
)
from harness.errors import ConfigError


def rec(ok=True, ttft=100.0, tpot=20.0, e2e=1000.0, itl=(20.0, 20.0), tokens=10, **extra):
    return {"ok": ok, "ttft_ms": ttft, "tpot_ms": tpot, "e2e_ms": e2e, "itl_ms": list(itl),
            "itl_max_ms": max(itl) if itl else None, "ttfb_ms": None if ttft is None else ttft / 2, "tokens": tokens,
            "error_kind": None if ok else "http_500", **extra}


def test_percentile_matches_linear_interpolation():
    data = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(data, 50) == 3.0
    assert percentile(data, 0) == 1.0
    assert percentile(data, 100) == 5.0
    assert percentile(data, 90) == pytest.approx(4.6)  # numpy.percentile(data, 90) == 4.6
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0  # unsorted input


def test_distribution_ignores_missing_values_and_reports_count():
    d = distribution([None, 10.0, 30.0, None, 20.0])
    assert d["count"] == 3 and d["mean"] == 20.0 and d["min"] == 10.0 and d["max"] == 30.0 and d["p50"] == 20.0
    empty = distribution([None])
    assert empty["count"] == 0 and empty["p99"] is None and empty["mean"] is None


def test_parse_slos_accepts_repeated_and_comma_forms():
    assert parse_slos(["ttft_ms=2401", "tpot_ms=50"]) == {"ttft_ms": 2401.0, "tpot_ms": 50.0}
    assert parse_slos(["ttft_ms=1,e2e_ms=2.5"]) == {"ttft_ms": 1.0, "e2e_ms": 2.5}
    assert parse_slos([]) == {}


@pytest.mark.parametrize("bad", ["ttft=5", "ttft_ms", "ttft_ms=abc", "ttft_ms=-1", "ttft_ms=0", "ttft_ms=nan",
                                 "bogus_ms=5"])
def test_parse_slos_rejects_bad_input_with_a_clear_error(bad):
    with pytest.raises(ConfigError, match="--slo"):
        parse_slos([bad])


def test_meets_slos_needs_success_and_every_limit():
    slos = {"ttft_ms": 200.0, "tpot_ms": 30.0}
    assert meets_slos(rec(), slos)
    assert not meets_slos(rec(ttft=201.0), slos)
    assert not meets_slos(rec(tpot=31.0), slos)
    assert not meets_slos(rec(ok=False), slos)  # a failed request is never good, however fast
    assert not meets_slos(rec(ttft=None), {"ttft_ms": 200.0})  # unmeasured counts as missed
    assert meets_slos(rec(tpot=None, tokens=1), {"tpot_ms": 1.0})  # one token: no second token to be late
    assert meets_slos(rec(ok=True), {})  # no SLO: every success is good
    assert not meets_slos(rec(itl=(5.0, 90.0)), {"itl_ms": 50.0})  # the worst gap is what an ITL SLO bounds


def test_summarize_level_goodput_throughput_and_error_rate():
    records = [rec(ttft=100.0), rec(ttft=300.0), rec(ttft=150.0, tpot=60.0), rec(ok=False)]
    lvl = summarize_level(LevelSpec("closed", concurrency=4), records, duration_s=2.0,
                          slos={"ttft_ms": 200.0, "tpot_ms": 50.0})
    assert lvl["label"] == "c=4"
    assert (lvl["requests"], lvl["completed"], lvl["failed"]) == (4, 3, 1)
    assert lvl["error_rate"] == 0.25 and lvl["errors"] == {"http_500": 1}
    assert lvl["requests_per_s"] == 1.5
    assert lvl["output_tokens"] == 30 and lvl["output_tokens_per_s"] == 15.0
    assert lvl["goodput"]["good_requests"] == 1  # only the first meets both SLOs
    assert lvl["goodput"]["requests_per_s"] == 0.5
    assert lvl["goodput"]["fraction"] == 0.25
    assert lvl["ttft_ms"]["count"] == 3 and lvl["ttft_ms"]["p50"] == 150.0  # failed requests are not timed
    assert lvl["itl_ms"]["count"] == 6  # every gap of every successful request, pooled


def test_open_loop_label():
    assert LevelSpec("open", rate=2.5).label == "rate=2.5/s"


def test_compare_levels_marks_improvements_and_regressions():
    spec = LevelSpec("closed", concurrency=1)
    old = summarize_level(spec, [rec(ttft=100.0), rec(ttft=100.0)], 1.0, {})
    new = summarize_level(spec, [rec(ttft=50.0), rec(ttft=50.0)], 2.0, {})
    other = summarize_level(LevelSpec("closed", concurrency=8), [rec()], 1.0, {})
    rows = compare_levels([new, other], [old])
    assert {r["level"] for r in rows} == {"c=1"}  # only levels present in both runs
    by_metric = {r["metric"]: r for r in rows}
    assert by_metric["TTFT p50 ms"]["delta"] == -50.0
    assert by_metric["TTFT p50 ms"]["delta_pct"] == -50.0
    assert by_metric["TTFT p50 ms"]["better"] is True  # lower latency is better
    assert by_metric["requests/s"]["better"] is False  # 2/s -> 1/s is a regression
    assert by_metric["error rate"]["better"] is None  # unchanged
