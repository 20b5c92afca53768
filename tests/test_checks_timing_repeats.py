"""The timing checks judge the median over the primary capture and the robustness repeats, over real loopback HTTP.

A small SSE server whose n-th request waits a planned time before its first chunk shows that the median, not the
primary, decides (a slow cold start is forgiven, a fast first answer followed by slow ones is not); with repeats
turned off the primary decides; a saved bundle re-checks to the same verdicts; the reference server's slow-ttft
fault (every request slow) still fails timing.ttft.
"""

from __future__ import annotations

import asyncio
import json

from harness.measure.metrics import median_pick, spread_of
from harness.model import Limits
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, evaluate_bundle, load_bundle, run_target, save_bundle
from tests.hostile_servers import (
    OPENAI_CHUNK,
    OPENAI_STOP,
    SSE_HEAD,
    VOLCANO_TEXT,
    HostileServer,
    read_head,
    send,
)

TIMING = ("timing.ttfb", "timing.ttft", "timing.tokens_per_s", "timing.itl", "timing.e2e")
# Only the repeats among the robustness requests: the other parts would add requests to the plan.
REPEATS_ONLY = ["robustness.concurrency_enabled=false", "robustness.disconnect_enabled=false"]
REPEATS_OFF = ["robustness.repeats_enabled=false"]


class PlannedServer(HostileServer):
    """Request n waits ``ttft_s[n]`` (the last entry for every later one) before its first content chunk."""

    def __init__(self, ttft_s: list[float], chunks: int = 20, gap_s: float = 0.02) -> None:
        super().__init__(self.handle)
        self.ttft_s, self.chunks, self.gap_s = ttft_s, chunks, gap_s
        self.served = 0

    async def handle(self, reader, writer) -> None:
        await read_head(reader)
        delay = self.ttft_s[min(self.served, len(self.ttft_s) - 1)]
        self.served += 1
        # Headers and the first byte of the body come together with the first chunk, so TTFB follows TTFT.
        await asyncio.sleep(delay)
        writer.write(SSE_HEAD)
        for i in range(self.chunks):
            if i:
                await asyncio.sleep(self.gap_s)
            await send(writer, (OPENAI_CHUNK % f"{VOLCANO_TEXT}({i}) ").encode())
        await send(writer, OPENAI_STOP.encode())


def run(url: str, overrides: list[str], headers: dict[str, str] | None = None, deadline_s: float = 30.0):
    profile = load_profile("tds", overrides)
    options = RunOptions(limits=Limits(deadline_s=deadline_s), categories={"timing", "robustness"},
                         headers=headers or {}, api_key=None)
    return asyncio.run(run_target(url, profile, options))


def by_id(result) -> dict:
    return {c.id: c for c in result.checks}


def verdicts(result) -> dict[str, str]:
    return {c.id: c.status for c in result.checks}


def test_a_slow_cold_start_is_outvoted_by_the_fast_repeats(tmp_path):
    overrides = ["timing.ttft_ms=700", "timing.ttfb_ms=700", *REPEATS_ONLY]
    with PlannedServer([1.2, 0.05]) as srv:
        result = run(srv.url, overrides)
        assert srv.served == 5  # primary, one warm-up, three repeats
    checks = by_id(result)
    assert result.captures["primary"] is not None
    primary_ttft = result.metrics["ttft_ms"]
    assert primary_ttft > 1100  # the primary alone would fail
    for cid in ("timing.ttft", "timing.ttfb"):
        out = checks[cid]
        assert out.status == "pass", (cid, out.message)
        assert out.measured < 700
        assert "median of 4 requests" in out.message and "judged on robustness.repeats." in out.message
        assert "max 1" in out.message  # the cold start is the spread's max
        assert out.evidence[0]["capture"].startswith("robustness.repeats.")
    assert f"max {primary_ttft:.0f} ms" in checks["timing.ttft"].message
    assert checks["robustness.repeats"].status == "pass", checks["robustness.repeats"].message

    # The same captures re-checked offline, from a saved bundle: same verdicts. With repeats turned off in the
    # profile, the primary alone decides.
    path = tmp_path / "bundle.json"
    save_bundle(str(path), result)
    bundle = load_bundle(str(path))
    again = evaluate_bundle(bundle, load_profile("tds", overrides), categories={"timing", "robustness"})
    assert verdicts(again) == verdicts(result)
    assert [c.measured for c in again.checks] == [c.measured for c in result.checks]
    alone = by_id(evaluate_bundle(bundle, load_profile("tds", overrides + REPEATS_OFF),
                                  categories={"timing", "robustness"}))
    assert alone["timing.ttft"].status == "fail" and "median" not in alone["timing.ttft"].message
    assert alone["timing.ttft"].evidence[0]["capture"] == "primary"
    assert alone["robustness.repeats"].status == "skip"


def test_with_repeats_disabled_the_primary_decides():
    overrides = ["timing.ttft_ms=700", *REPEATS_ONLY, *REPEATS_OFF]
    with PlannedServer([1.2, 0.05]) as srv:
        result = run(srv.url, overrides)
        assert srv.served == 1
    out = by_id(result)["timing.ttft"]
    assert out.status == "fail" and out.measured > 1100 and "median" not in out.message, out.message
    assert not any(name.startswith("robustness.repeats") for name in result.probes)


def test_a_fast_first_answer_does_not_hide_slow_repeats(tmp_path):
    overrides = ["timing.ttft_ms=500", *REPEATS_ONLY]
    with PlannedServer([0.05, 0.9]) as srv:
        result = run(srv.url, overrides)
    checks = by_id(result)
    assert result.metrics["ttft_ms"] < 500  # the primary alone would pass
    out = checks["timing.ttft"]
    assert out.status == "fail" and out.measured >= 850, out.message
    assert "median of 4 requests" in out.message
    assert out.evidence[0]["capture"].startswith("robustness.repeats.")
    assert out.evidence[0]["excerpt"].startswith("Volcanoes")
    # Rate and gaps are the same on every request: whichever capture is the median, they pass.
    assert checks["timing.tokens_per_s"].status == "pass", checks["timing.tokens_per_s"].message
    assert checks["timing.itl"].status == "pass", checks["timing.itl"].message

    # A repeat that got no complete 2xx answer is left out of the sample (robustness.repeats reports it): with
    # two of the three slow repeats gone, the sample is the fast primary and one slow repeat.
    path = tmp_path / "bundle.json"
    save_bundle(str(path), result)
    bundle = json.loads(path.read_text())
    for name in ("robustness.repeats.0", "robustness.repeats.1"):
        bundle["probes"][name]["status"] = 500
    changed = by_id(evaluate_bundle(load_bundle_doc(tmp_path, bundle), load_profile("tds", overrides),
                                    categories={"timing", "robustness"}))
    ttft = changed["timing.ttft"]
    assert "median of 2 requests" in ttft.message and "2 repeat(s) without a complete 2xx answer" in ttft.message
    assert ttft.status == "fail"  # of two, the worse middle value: a split sample never favours the endpoint
    assert changed["robustness.repeats"].status == "fail"


def load_bundle_doc(tmp_path, doc: dict) -> dict:
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(doc))
    return load_bundle(str(path))


def test_slow_ttft_fault_still_fails_when_every_request_is_slow(reference_server):
    overrides = [*REPEATS_ONLY, "robustness.repeats=2", "robustness.warmup=0"]
    result = run(reference_server.endpoint, overrides, headers={"X-Fault": "slow-ttft"}, deadline_s=40.0)
    checks = by_id(result)
    assert sum(name.startswith("robustness.repeats.") for name in result.probes) == 2
    out = checks["timing.ttft"]
    assert out.status == "fail" and out.measured > 2401 and "median of 3 requests" in out.message, out.message
    assert checks["robustness.repeats"].status == "pass", checks["robustness.repeats"].message


def test_median_pick_and_spread():
    assert median_pick([5.0, 1.0, 3.0]) == 2
    assert median_pick([5.0, 1.0, 3.0, 2.0]) == 2  # even count: the worse middle value (3.0)
    assert median_pick([10.0, 30.0, 20.0, 40.0], higher_is_better=True) == 2  # rates: the lower middle (20.0)
    assert median_pick([None, 1.0, 2.0]) == 2  # a value never measured ranks worst
    assert median_pick([100.0]) == 0 and median_pick([]) is None
    assert spread_of([30.0, None, 10.0, 20.0]) == {"n": 4, "median": 30.0, "min": 10.0, "max": 30.0, "missing": 1}
    assert spread_of([None])["median"] is None
