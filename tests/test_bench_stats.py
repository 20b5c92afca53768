"""The bench's arithmetic (percentiles, SLOs, goodput, level summaries, --compare deltas and notes), and the
client-overhead judgement over real levels on loopback."""

from __future__ import annotations

import asyncio

import pytest
from rich.console import Console

from harness.bench.cli import build_document
from harness.bench.load import MIN_JUDGED_S, LevelPlan, OverheadMonitor, run_level
from harness.bench.render import print_bench
from harness.bench.request import BenchClient
from harness.bench.stats import (
    LevelSpec,
    compare_levels,
    comparison_notes,
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


def bench_doc(levels, slos=None, previous=None, target="http://127.0.0.1:8000/v1/chat/completions"):
    """A bench document as `streamconform bench` builds it (compared with `previous` when given)."""
    return build_document(target, "tds", "prompt", "chars/4", dict(slos or {}), levels, "2025-01-01T00:00:00+00:00",
                          {}, previous, "old.json" if previous else None)


def printed(doc) -> str:
    console = Console(record=True, width=200)
    print_bench(doc, console)
    return console.export_text()


def test_compare_with_no_level_in_common_says_so_instead_of_an_empty_table():
    old = bench_doc([summarize_level(LevelSpec("closed", concurrency=8), [rec()], 1.0, {})])
    new = bench_doc([summarize_level(LevelSpec("closed", concurrency=1), [rec()], 1.0, {})], previous=old)
    assert new["comparison"]["rows"] == []
    out = printed(new)
    assert "compared with" not in out  # no empty delta table
    assert "no level in common with old.json" in out and "this run: c=1" in out
    notes = comparison_notes(new, old)  # with the previous document at hand, its levels are named too
    assert "this run: c=1; old.json: c=8" in notes[0]


def test_goodput_against_other_slos_is_shown_but_not_compared():
    spec = LevelSpec("closed", concurrency=1)
    old = bench_doc([summarize_level(spec, [rec(ttft=100.0)], 1.0, {"ttft_ms": 500.0})], {"ttft_ms": 500.0})
    new = bench_doc([summarize_level(spec, [rec(ttft=100.0)], 1.0, {"ttft_ms": 50.0})], {"ttft_ms": 50.0},
                    previous=old)
    by_metric = {r["metric"]: r for r in new["comparison"]["rows"]}
    goodput = by_metric["goodput/s"]
    assert (goodput["previous"], goodput["current"]) == (1.0, 0.0)
    assert goodput["comparable"] is False and goodput["delta"] is None and goodput["better"] is None
    assert by_metric["TTFT p50 ms"].get("comparable", True)  # the other metrics do not depend on SLOs
    out = printed(new)
    assert "other SLO" in out and "not comparable" in out
    assert any("ttft_ms <= 500 then, ttft_ms <= 50 now" in n for n in comparison_notes(new, old))


def test_same_slos_and_target_give_no_note():
    spec = LevelSpec("closed", concurrency=1)
    old = bench_doc([summarize_level(spec, [rec()], 1.0, {"ttft_ms": 500.0})], {"ttft_ms": 500.0})
    new = bench_doc([summarize_level(spec, [rec()], 1.0, {"ttft_ms": 500.0})], {"ttft_ms": 500.0}, previous=old)
    assert comparison_notes(new, old) == []
    assert "compare:" not in printed(new)


def test_another_target_or_token_method_is_noted():
    spec = LevelSpec("closed", concurrency=1)
    old = bench_doc([summarize_level(spec, [rec()], 1.0, {})], target="http://127.0.0.1:8001/v1/chat/completions")
    old["token_method"] = "words"
    new = bench_doc([summarize_level(spec, [rec()], 1.0, {})], previous=old)
    notes = comparison_notes(new, old)
    assert any("different targets (http://127.0.0.1:8001/" in n for n in notes)
    assert any("counted by words then and chars/4 now" in n for n in notes)


def test_overhead_is_judged_over_a_long_enough_level_with_a_completed_stream():
    monitor = OverheadMonitor()
    monitor.cpu_s, monitor.wall_s, monitor.lags_ms = 0.95, 1.0, [30.0] * 100
    judged = monitor.summary([rec()])
    assert judged["judged"] is True and len(judged["warnings"]) == 2  # lag and CPU both past their limits
    for records, wall in (([rec()], MIN_JUDGED_S / 10), ([rec(ok=False)], 1.0)):
        monitor.wall_s = wall
        quick = monitor.summary(records)
        assert quick["judged"] is False and quick["warnings"] == [] and quick["not_judged_reason"]
        assert quick["client_cpu_share"] > 0.8  # the figures are kept, only not turned into warnings


def _level(url: str, requests: int) -> dict:
    async def go() -> dict:
        async with BenchClient(url, dialect="prompt", prompts=["hello there"], timeout_s=10.0) as client:
            plan = LevelPlan(LevelSpec("closed", concurrency=2), requests=requests)
            return await run_level(plan, client.request, {}, finish=client.finish)
    return asyncio.run(go())


def test_a_refused_port_gives_errors_but_no_client_overhead_warning():
    from harness.bench.server import free_port

    lvl = _level(f"http://127.0.0.1:{free_port()}/v1/chat/completions", requests=16)
    assert lvl["completed"] == 0 and lvl["errors"]
    assert lvl["overhead"]["judged"] is False and lvl["overhead"]["warnings"] == []
    out = printed(bench_doc([lvl]))
    assert "client overhead not judged: no stream completed" in out
    assert "of a core: it may be the bottleneck" not in out


def test_a_real_level_of_streams_is_judged(reference_server):
    lvl = _level(reference_server.endpoint, requests=2)  # two ~1 s streams side by side
    assert lvl["completed"] == 2
    assert lvl["overhead"]["judged"] is True and lvl["overhead"]["not_judged_reason"] is None
