"""Each kind of report opened from disk in headless Chromium with the network off, looked at as a person would:
a screenshot is taken, the charts must be painted, the console must be clean, and no request may leave the page.

Set STREAMCONFORM_SCREENSHOTS=DIR to keep the screenshots for a human to look at.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from reports import render_bench, render_grading, render_run, write_grading, write_html
from reports.samples import bench_elsewhere, bench_result, grading_summary, run_result, write_grade_dir
from tests.browser import Browser, ensure_chromium

# In CI a missing browser is a failure, not a skip: these tests are the only look at the pages a person gets.
_CHROMIUM = ensure_chromium()
pytestmark = pytest.mark.skipif(_CHROMIUM is None and not os.environ.get("CI"),
                                reason="headless Chromium not installed and could not be installed (apt-get)")


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the pixel data): a blank page has almost none."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.fixture(scope="module")
def browser():
    with Browser(timeout=30) as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keep = os.environ.get("STREAMCONFORM_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        return Path(keep)
    return tmp_path_factory.mktemp("screenshots")


def look_at(browser: Browser, page: Path, shots: Path):
    shot = shots / (page.stem + ".png")
    report = browser.open(page, screenshot=shot, ready_expression="document.body && document.body.dataset.ready")
    assert report.console_errors == [], report.console_errors
    assert report.requests == [], f"the page tried to fetch {report.requests}"
    width, height, variety = png_facts(shot.read_bytes())
    assert width == 1280 and height > 900 and variety > 50, "the screenshot looks blank"
    return report


def test_run_report_in_a_browser(browser: Browser, shots: Path, tmp_path: Path) -> None:
    page = write_html(tmp_path / "run.html", render_run(run_result()))
    seen = look_at(browser, page, shots)
    assert seen.title == "streamconform run: FAIL"
    painted = {c["id"] for c in seen.painted_charts()}
    assert painted == {"timeline-chart", "gaps-chart"}
    assert "FAIL" in seen.text and "timing.itl" in seen.text
    # The hostile markup in the result is on screen as text, not as elements.
    assert '<script>alert("x")</script>' in seen.text
    # Failing checks are listed before passing ones, as a reader scrolls.
    assert seen.text.index("content.relevance") < seen.text.index("http.status")


def test_grading_summary_in_a_browser(browser: Browser, shots: Path, tmp_path: Path) -> None:
    summary = write_grade_dir(tmp_path)
    page = write_grading(summary, tmp_path, html_name="grading.html")
    seen = look_at(browser, page, shots)
    assert {c["id"] for c in seen.painted_charts()} == {"score-chart", "failures-chart"}
    # Sorting by score (a click on the header, twice: ascending then descending) reorders the rows.
    sid = browser.send("Target.createTarget", {"url": page.resolve().as_uri()})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": sid, "flatten": True})["sessionId"]
    try:
        browser._wait_ready(session, "document.body && document.body.dataset.ready")
        scores = (
            "Array.from(document.querySelectorAll('#submissions tbody tr'))"
            ".map(r => parseFloat(r.cells[2].dataset.sort))"
        )
        header = "document.querySelectorAll('#submissions th')[2]"
        browser.evaluate(f"{header}.click()", session)
        ascending = browser.evaluate(scores, session)
        browser.evaluate(f"{header}.click()", session)
        descending = browser.evaluate(scores, session)
        assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
        assert len(ascending) == len(summary["submissions"])
        # Each submission's report link resolves to a file beside the summary.
        hrefs = browser.evaluate("Array.from(document.querySelectorAll('#submissions a')).map(a => a.href)", session)
        assert len([h for h in hrefs if h.endswith(".html")]) == len([s for s in summary["submissions"]
                                                                      if s["status"] == "ok"])
        assert all(h.startswith("file://") and Path(h[len("file://"):]).is_file() for h in hrefs)
    finally:
        browser.send("Target.closeTarget", {"targetId": sid})


@contextlib.contextmanager
def opened(browser: Browser, page: Path):
    """A DevTools session on ``page`` (loaded, charts drawn) for evaluating expressions in it."""
    target = browser.send("Target.createTarget", {"url": page.resolve().as_uri()})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        browser._wait_ready(session, "document.body && document.body.dataset.ready")
        yield session
    finally:
        browser.send("Target.closeTarget", {"targetId": target})


# Per chart: how many bars, how many Chart.js labels (it drops those it cannot fit), and the room per label.
CHART_LABELS = """JSON.stringify(SC.charts.map(c => {
  const axis = c.scales[c.options.indexAxis === 'y' ? 'y' : 'x'];
  return {id: c.canvas.id, bars: c.data.labels.length, labelled: axis.ticks.length,
          room: Math.abs(axis.getPixelForTick(1) - axis.getPixelForTick(0)),
          font: Chart.helpers.toFont(axis.options.ticks.font).lineHeight};
}))"""
# Per score cell: on how many lines its text is laid out.
SCORE_LINES = """Array.from(document.querySelectorAll('#submissions td.score')).map(td => {
  const r = document.createRange(); r.selectNodeContents(td);
  return new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top))).size;
})"""


def test_grading_charts_label_every_bar_and_scores_never_wrap(browser: Browser, shots: Path,
                                                              tmp_path: Path) -> None:
    """Thirty failing checks (Chart.js labelled one bar in three of them) and scores like "27.6 / 28" in a
    table squeezed by long URLs and check lists (they broke over two lines)."""
    summary = grading_summary(n=40)
    rng = random.Random(1)
    for sub in summary["submissions"]:
        if sub["status"] == "ok":
            sub["failed_checks"] = [f"check.number_{i:02d}" for i in range(30) if rng.random() < 0.4]
            sub["url"] = "https://a-rather-long-host-name.example.net/api/v1/stream?student=" + sub["id"]
    write_grade_dir(tmp_path, summary)
    for sub in summary["submissions"]:
        sub.update(score=27.6, max_score=28)
    page = write_html(tmp_path / "many-checks.html", render_grading(summary, tmp_path))
    look_at(browser, page, shots)
    with opened(browser, page) as session:
        charts = {c["id"]: c for c in json.loads(browser.evaluate(CHART_LABELS, session))}
        assert charts["failures-chart"]["bars"] == 30 and charts["score-chart"]["bars"] == 10
        for chart in charts.values():
            assert chart["labelled"] == chart["bars"], chart
            assert chart["room"] >= chart["font"], f"labels overlap: {chart}"
        assert set(browser.evaluate(SCORE_LINES, session)) == {1}
        # The same cells laid out without the rule do wrap: the check above can fail.
        unruled = "document.querySelectorAll('td.score').forEach(td => td.style.whiteSpace = 'normal')"
        browser.evaluate(unruled, session)
        assert max(browser.evaluate(SCORE_LINES, session)) == 2


def test_bench_report_in_a_browser(browser: Browser, shots: Path, tmp_path: Path) -> None:
    page = write_html(tmp_path / "bench.html", render_bench(bench_result(), bench_result(seed=5, slowdown=1.3)))
    seen = look_at(browser, page, shots)
    assert {c["id"] for c in seen.painted_charts()} == {"throughput-chart", "latency-chart", "ttft-cdf",
                                                         "itl-cdf", "e2e-cdf"}
    assert "Side by side with the previous run" in seen.text
    assert "not comparable" not in seen.text and "Before comparing" not in seen.text
    # Against a run in other conditions: the caveats `bench --compare` prints, on the page above the charts.
    page = write_html(tmp_path / "bench-elsewhere.html",
                      render_bench(bench_result(), bench_elsewhere(bench_result(seed=5)), "old/bench.json"))
    seen = look_at(browser, page, shots)
    assert len(seen.painted_charts()) == 5
    assert seen.text.index("Before comparing with the previous run") < seen.text.index("Throughput")
    assert "the SLOs differ" in seen.text and "not comparable (other SLOs)" in seen.text


def test_the_checks_can_fail(browser: Browser, tmp_path: Path) -> None:
    """A page that fetches, logs an error and throws must be caught by the same assertions (no vacuous pass)."""
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><title>bad</title><img src="http://127.0.0.1:9/x.png">'
                    '<canvas id="blank" width="50" height="50"></canvas>'
                    '<script>console.error("broken"); fetch("http://127.0.0.1:9/y").catch(() => {}); nope();</script>')
    seen = browser.open(page)
    assert "http://127.0.0.1:9/x.png" in seen.requests and "http://127.0.0.1:9/y" in seen.requests
    assert any("broken" in e for e in seen.console_errors)
    assert any("nope is not defined" in e for e in seen.console_errors)
    assert seen.charts and not seen.painted_charts()


def test_a_real_run_of_the_reference_server_as_a_report(browser: Browser, shots: Path, tmp_path: Path) -> None:
    """The whole way: `streamconform run` against the embedded reference server with a planted fault writes a
    result, `streamconform report` renders it, and the page shows the verdict and the failing check on top."""
    result_path, page = tmp_path / "run.json", tmp_path / "real-run.html"
    run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--fault", "wrong-content-type", "--quiet",
                          "--timeout", "60", "--json", str(result_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr[-2000:]
    result = json.loads(result_path.read_text())
    assert result["passed"] is False and result["timeline"]
    assert cli_main(["report", str(result_path), "--html", str(page)]) == 0
    seen = look_at(browser, page, shots)
    assert seen.title == "streamconform run: FAIL"
    assert {c["id"] for c in seen.painted_charts()} == {"timeline-chart", "gaps-chart"}
    first_check = seen.text.index("http.content_type")
    assert all(first_check < seen.text.index(c["id"]) for c in result["checks"] if c["status"] == "pass")
    assert all(c["id"] in seen.text for c in result["checks"])  # every check is listed
    # One clock: the stream's first event is its first text, so the timeline's first point sits on the TTFT line
    # (both are times since the request was sent; the screenshot in SHOTS shows them together).
    data = json.loads(page.read_text().split('id="report-data">', 1)[1].split("</script>", 1)[0])
    assert abs(data["timeline"][0][0] - data["ttft_ms"]) < 0.01, (data["timeline"][0], data["ttft_ms"])
    assert abs(result["timeline"][0]["t"] * 1000 - result["metrics"]["ttft_ms"]) < 0.01


def test_a_real_bench_of_the_reference_server_as_a_report(browser: Browser, shots: Path, tmp_path: Path) -> None:
    """`streamconform bench` against the reference server, compared with itself: the JSON the bench writes is
    the JSON the report reads (no hand-made sample in between)."""
    bench_path, page = tmp_path / "bench.json", tmp_path / "real-bench.html"
    run = subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--concurrency", "1,2", "--requests", "3",
                          "--slo", "ttft_ms=500", "--json", str(bench_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert cli_main(["report", str(bench_path), "--previous", str(bench_path), "--html", str(page)]) == 0
    seen = look_at(browser, page, shots)
    assert len(seen.painted_charts()) == 5
    assert "c=1" in seen.text and "c=2" in seen.text and "Side by side with the previous run" in seen.text
