"""HTML reports without a browser: what the page contains, how hostile values are escaped, the command line.

The browser tests (tests/test_reports_browser.py) look at the same pages in headless Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
from pathlib import Path

import pytest
from markupsafe import escape

from harness.cli import main as cli_main
from harness.errors import ConfigError
from reports import detect_kind, render_bench, render_grading, render_run, write_grading, write_html
from reports.bench_report import cdf
from reports.grade_record import grade_view
from reports.render import MAX_TRANSCRIPT_CHARS, visible
from reports.run_report import timeline_points
from reports.samples import (
    HOSTILE,
    bench_elsewhere,
    bench_result,
    grading_summary,
    run_result,
    write_grade_dir,
)

ROOT = Path(__file__).resolve().parents[1]


def inline_blocks(html: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)


def csp_of(html: str) -> str:
    match = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert match, "no Content-Security-Policy meta tag"
    return match.group(1).replace("&#39;", "'")


def sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return {
        "run": render_run(run_result()),
        "grading": render_grading(grading_summary(), ROOT / "nowhere"),
        "bench": render_bench(bench_result(), bench_result(seed=5, slowdown=1.3)),
    }


# -- every page -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["run", "grading", "bench"])
def test_page_is_self_contained_and_locked_down(pages: dict[str, str], kind: str) -> None:
    html = pages[kind]
    csp = csp_of(html)
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # The CSP meta comes before anything that could load or run.
    assert html.index("Content-Security-Policy") < html.index("<style>") < html.index("<script")
    scripts = inline_blocks(html, "script")
    assert len(scripts) == 3 and "Chart.js v4" in scripts[0]
    for code in scripts:
        assert sha(code) in csp, "an inline script the policy would block"
    for css in inline_blocks(html, "style"):
        assert sha(css) in csp
    # Nothing referenced from outside the file: no src/href to a URL, no external script or stylesheet.
    assert not re.search(r'\b(src|href)\s*=\s*"(https?:)?//', html)
    assert "<link" not in html


@pytest.mark.parametrize("kind", ["run", "grading", "bench"])
def test_hostile_strings_are_escaped_everywhere(pages: dict[str, str], kind: str) -> None:
    html = pages[kind]
    assert HOSTILE not in html
    assert '<img src="http://127.0.0.1:9' not in html
    assert "<script>alert" not in html
    # The data block is JSON the page reads, escaped so no "</script>" can close it early.
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert data and "<" not in data.group(1)
    json.loads(data.group(1))


def test_hostile_value_is_still_shown_as_text() -> None:
    html = render_run(run_result())
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


# -- run report -------------------------------------------------------------------------------------------------

def test_run_report_verdict_and_failing_checks_first() -> None:
    result = run_result(passed=False)
    html = render_run(result)
    assert "streamconform run: FAIL" in html
    order = [m for m in re.findall(r'<span class="check-id">([^<]+)</span>', html)]
    statuses = [c["status"] for c in sorted(result["checks"], key=lambda c: order.index(c["id"]))]
    assert statuses[:2] == ["fail", "fail"] and statuses[-1] == "pass"
    assert order.index("timing.itl") < order.index("framing.line_endings") < order.index("errors.cors")
    assert "Required checks failed" in html
    assert "curl -N -sS -X POST" in html  # the reproduce command


def test_run_report_pass_verdict() -> None:
    html = render_run(run_result(passed=True, hostile=False))
    assert "streamconform run: PASS" in html and "Every required check passed." in html


def test_timeline_is_cumulative_with_gaps_and_keeps_the_longest_gap() -> None:
    timeline = [{"t": 0.1, "offset": 0, "chars": 0}, {"t": 0.2, "offset": 10, "chars": 5},
                {"t": 1.2, "offset": 20, "chars": 3}, {"t": 1.25, "offset": 30, "chars": 2}]
    points, facts = timeline_points(timeline)
    assert [p[1] for p in points] == [0, 5, 8, 10]
    assert facts["first_content_ms"] == pytest.approx(200)
    assert facts["largest_gap_ms"] == pytest.approx(1000)
    assert facts["largest_gap_at_ms"] == pytest.approx(1200)
    many = [{"t": i / 1000, "offset": i, "chars": 1} for i in range(20_000)] + [{"t": 60.0, "offset": 1, "chars": 1}]
    points, facts = timeline_points(many)
    assert facts["events"] == 20_001 and facts["shown"] < 5_000
    assert points[-1][0] == pytest.approx(60_000)  # the stall is still on the chart


def test_transcript_is_cut_with_a_note_and_control_characters_are_visible() -> None:
    result = run_result(hostile=False)
    result["transcript"] = {"text": "data: x\r\n\x00" + "y" * (MAX_TRANSCRIPT_CHARS + 50), "truncated": True,
                            "bytes": 9_999_999}
    html = render_run(result)
    assert 'id="transcript-truncated"' in html and "9,999,999 bytes" in html
    assert 'id="transcript-cut"' in html
    transcript = re.search(r'<pre id="transcript">(.*?)</pre>', html, re.S).group(1)
    assert len(transcript) <= MAX_TRANSCRIPT_CHARS + 100
    assert '<span class="ctl" title="U+000D">CR</span>' in transcript and ">NUL</span>" in transcript
    assert "\x00" not in transcript and "\r" not in transcript
    assert visible("<a>\rb\x1b\x01\n") == ('&lt;a&gt;<span class="ctl" title="U+000D">CR</span>b'
                                           '<span class="ctl" title="U+001B">ESC</span>'
                                           '<span class="ctl" title="U+0001">x01</span>\n')


def test_run_report_survives_a_minimal_or_odd_result() -> None:
    html = render_run({"target": "http://x", "checks": [{"id": "http.status", "status": "fail",
                                                         "evidence": [{"excerpt": None}, "junk"]}, "junk"],
                       "timeline": [{"t": "soon"}, None], "metrics": {"itl_ms": None}})
    assert "streamconform run: FAIL" in html and 'id="no-timeline"' in html
    with pytest.raises(TypeError):
        render_run([])  # type: ignore[arg-type]


# -- grading summary ---------------------------------------------------------------------------------------------

def test_grading_links_are_relative_and_encoded(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    summary = {"submissions": [
        {"id": "a", "status": "ok", "score": 5, "max": 10, "failed": ["timing.ttft"], "result": "results/a.json"},
        {"id": "b", "status": "ok", "score": 10, "max": 10, "failed": [], "result": "javascript:alert(1)"},
        {"id": "c", "status": "invalid_url", "score": 0, "max": 10, "failed": [], "result": None},
    ]}
    (tmp_path / "results" / "a.json").write_text(json.dumps(run_result(seed=1)))
    (tmp_path / "javascript:alert(1)").write_text("{}")
    html = render_grading(summary, tmp_path)
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert hrefs == ["results/a.json", "javascript%3Aalert%281%29"]
    write_grading(summary, tmp_path)
    assert (tmp_path / "results" / "a.html").is_file()
    html = (tmp_path / "summary.html").read_text()
    assert 'href="results/a.html"' in html
    # Rendered from elsewhere, the links are relative to where the page is written.
    elsewhere = render_grading(summary, tmp_path, html_dir=tmp_path / "pages")
    assert 'href="../results/a.html"' in elsewhere


def test_grading_counts_and_histogram() -> None:
    summary = grading_summary(n=30)
    html = render_grading(summary, ROOT)
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    assert sum(b["count"] for b in data["histogram"]) == 30
    failing = {}
    for sub in summary["submissions"]:
        for c in sub["failed_checks"]:
            failing[c] = failing.get(c, 0) + 1
    assert {f["check"]: f["count"] for f in data["failures"]} == failing
    assert html.count('<tr>') >= 30


def test_write_grading_skips_unreadable_results(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text("{not json")
    grade_record = {"id": "y", "status": "ok", "result": run_result(seed=2)}
    (tmp_path / "results" / "y.json").write_text(json.dumps(grade_record))
    summary = {"submissions": [{"id": "x", "status": "ok", "result": "results/x.json"},
                               {"id": "y", "status": "ok", "result": "results/y.json"}]}
    write_grading(summary, tmp_path)
    assert not (tmp_path / "results" / "x.html").exists()
    assert "streamconform run" in (tmp_path / "results" / "y.html").read_text()


def test_grading_histogram_labels_every_band_and_scores_do_not_wrap() -> None:
    html = render_grading(grading_summary(), ROOT)
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))
    # Short labels (the axis title says %), so ten fit side by side; the browser test checks each is drawn.
    labels = [b["label"] for b in data["histogram"]]
    assert labels[::3] == ["0\u201310", "30\u201340", "60\u201370", "90\u2013100"]
    scores = re.findall(r'<td class="num score" data-sort="[^"]*">([^<]*)</td>', html)
    assert len(scores) == len(grading_summary()["submissions"]) and "7.5 / 10" in scores
    assert ".score { white-space: nowrap; }" in inline_blocks(html, "style")[0]


# -- grade record -------------------------------------------------------------------------------------------

def scoring_rows(html: str) -> dict[str, tuple[str, str, str]]:
    """check id -> (weight, points, counted) as the page's #scoring table shows them."""
    table = re.search(r'<table class="sortable" id="scoring">(.*?)</table>', html, re.S)
    assert table, "no scoring table"
    rows = re.findall(r'<tr><td class="mono">([^<]+)</td>.*?<td class="num score">([^<]*)</td>\s*'
                      r'<td class="num score[^"]*">([^<]*)</td>\s*<td>(.*?)</td></tr>', table.group(1), re.S)
    return {cid: (weight, points, counted) for cid, weight, points, counted in rows}


def test_report_of_a_grade_record_shows_its_score_and_each_weight(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    summary = write_grade_dir(tmp_path)
    sub = next(s for s in summary["submissions"] if s["status"] == "ok" and s["failed_checks"])
    record = json.loads((tmp_path / sub["result"]).read_text())
    assert cli_main(["report", str(tmp_path / sub["result"]), "--html", str(tmp_path / "one.html")]) == 0
    html = (tmp_path / "one.html").read_text()
    score = f"{record['score']:g} / {record['max_score']:g}"
    assert f"<title>streamconform grade: {score}, run FAIL</title>" in html
    assert re.search(rf'<div class="big score" id="score"[^>]*>{re.escape(score)} <small>', html)
    rows = scoring_rows(html)
    assert list(rows) == [i["id"] for i in record["scoring"]]  # every item, in the grader's order
    for item in record["scoring"]:
        weight, points, counted = rows[item["id"]]
        assert (weight, points) == (f"{item['weight']:g}", f"{item['points']:g}")
        assert (counted == "yes") == item.get("counted", True)
    assert "not counted: it does not apply to this endpoint" in rows["errors.cors"][2]
    assert rows["framing.line_endings"][:2] == ("1.5", "0.75")  # a warning earns part of its weight
    # Beside each graded check of the check list: its points out of its weight.
    assert re.search(r'content\.relevance</span>\s*<span class="pts score worse"[^>]*>0 / 3 pt</span>', html)
    # The summary's per-submission pages are the same page.
    write_grading(summary, tmp_path)
    beside = (tmp_path / sub["result"]).with_suffix(".html").read_text()
    assert 'id="scoring"' in beside and f"streamconform grade: {score}" in beside
    # A bare run result has no score to show.
    assert 'id="scoring"' not in render_run(run_result()) and 'id="score"' not in render_run(run_result())


def test_grade_view_of_odd_and_hostile_items() -> None:
    record = {"grade_format": 1, "id": HOSTILE, "status": "ok", "score": 27.6, "max_score": 28,
              "scoring": [{"id": HOSTILE, "status": "pass", "weight": 2, "points": 2},
                          {"id": "errors.cors", "status": "not_run", "weight": 1, "points": 0,
                           "reason": "grader_deadline", "counted": False},
                          {"id": "x", "status": "skip", "weight": "heavy", "points": None}, "junk"]}
    view = grade_view(record)
    assert view is not None and [i["id"] for i in view["items"]] == [HOSTILE, "errors.cors", "x"]
    assert view["not_counted"] == 1 and view["items"][2]["weight"] is None
    html = render_run(run_result(), grade=view)
    assert HOSTILE not in html and "27.6 / 28" in html
    assert "not counted: the grader&#39;s deadline cut it before its requests were sent" in html
    assert "1 check below does not count" in html
    assert grade_view(run_result()) is None and grade_view([]) is None


# -- bench report ---------------------------------------------------------------------------------------------

def _schema(name: str) -> dict:
    return json.loads((ROOT / "schemas" / name).read_text())


def test_samples_are_valid_against_the_result_and_grade_schemas() -> None:
    """The samples the report tests use stay realistic: the harness's own schemas accept them."""
    import jsonschema

    jsonschema.validate(run_result(), _schema("result.schema.json"))
    grade = _schema("grade.schema.json")
    jsonschema.validate(grading_summary(), {**grade["$defs"]["summary"], "$defs": grade["$defs"]})


def test_grade_output_directory_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = write_grade_dir(tmp_path)
    page = write_grading(summary, tmp_path)
    html = page.read_text()
    ok = [s for s in summary["submissions"] if s["status"] == "ok"]
    blocked = [s for s in summary["submissions"] if s["status"] != "ok"]
    assert ok and blocked
    for sub in ok:  # graded: a link to its own run report, rendered beside the grade record
        report = (tmp_path / sub["result"]).with_suffix(".html")
        assert report.is_file() and f'href="{sub["result"][:-5]}.html"' in html
    for sub in blocked:  # never requested: no run report, the link is to the grade record itself
        assert not (tmp_path / sub["result"]).with_suffix(".html").exists()
        assert f'href="{sub["result"]}"' in html
    (tmp_path / "feedback").mkdir()
    (tmp_path / ok[0]["feedback"]).write_text("# feedback")
    assert f'href="{ok[0]["feedback"]}">feedback</a>' in write_grading(summary, tmp_path).read_text()
    # The command renders the same directory's summary.json, with links relative to wherever the page goes.
    assert cli_main(["report", str(tmp_path / "summary.json"), "--html", str(tmp_path / "pages" / "s.html")]) == 0
    assert 'href="../results/000.html"' in (tmp_path / "pages" / "s.html").read_text()


def test_bench_sample_is_valid_against_the_bench_schema() -> None:
    import jsonschema

    doc = bench_result()
    doc.update({"harness_version": "0.1.0", "profile": "openai-chat", "dialect": "openai", "options": {},
                "comparison": None})
    for lvl in doc["levels"]:
        for rec in lvl["records"]:
            rec.update({"end_reason": "eof", "token_method": "chars/4"})
    jsonschema.validate(doc, _schema("bench.schema.json"))


def test_bench_cdf_from_records_and_from_percentiles() -> None:
    lvl = bench_result()["levels"][0]
    points, source = cdf(lvl, "itl_ms")
    assert source == "records" and len(points) <= 300
    assert points[-1][1] == 1.0 and all(a[0] <= b[0] for a, b in zip(points, points[1:], strict=False))
    del lvl["records"]
    points, source = cdf(lvl, "ttft_ms")
    assert source == "percentiles"
    assert [p[1] for p in points] == [0.0, 0.5, 0.9, 0.95, 0.99, 1.0]
    assert points[1][0] == pytest.approx(lvl["ttft_ms"]["p50"], abs=1e-3)


def test_bench_side_by_side_and_without_previous() -> None:
    html = render_bench(bench_result(), bench_result(seed=5, slowdown=1.3))
    assert 'id="comparison"' in html and "previous run dashed in the charts" in html
    assert re.search(r"TTFT p50 ms</td>\s*<td class=\"num\">[\d.,]+ &rarr; [\d.,]+", html)
    alone = render_bench(bench_result())
    assert 'id="comparison"' not in alone and "previous run dashed in the charts" not in alone
    assert "client-bound" in alone  # the overhead warnings are shown
    no_records = bench_result()
    for lvl in no_records["levels"]:
        del lvl["records"]
    assert "their curves join the stored min" in render_bench(no_records)


def comparison_cells(html: str) -> dict[str, list[tuple[str, str]]]:
    """metric -> [(class, text) of the change line of each level's cell] from the page's #comparison table."""
    table = re.search(r'<table id="comparison">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert table, "no comparison table"
    out = {}
    for metric, cells in re.findall(r"<tr><td>([^<]+)</td>(.*?)</tr>", table.group(1), re.S):
        changes = re.findall(r'<div class="([^"]+)"[^>]*>(.*?)</div>', cells, re.S)
        out[metric] = [(cls, re.sub(r"<[^>]+>", "", text).strip()) for cls, text in changes]
    return out


def bench_with_stored_comparison(cur: dict, prev: dict, name: str) -> dict:
    """The JSON `bench --compare PREVIOUS` writes: the comparison rows and notes stored in it."""
    from harness.bench.cli import build_document

    return build_document(cur["target"], "openai", "openai", cur["token_method"], cur["slo"], cur["levels"],
                          cur["started_at"], {}, prev, name)


@pytest.mark.parametrize("stored", [False, True], ids=["report --previous", "bench --compare JSON"])
def test_bench_comparison_says_what_the_cli_says_is_not_comparable(stored: bool) -> None:
    from harness.bench.stats import compare_levels, comparison_notes

    cur, prev = bench_result(), bench_elsewhere(bench_result(seed=5, slowdown=1.3))
    for lvl in prev["levels"]:  # error rates equal in both runs: a real "unchanged" beside the not comparable
        lvl["error_rate"] = cur["levels"][0]["error_rate"] = 0.0
    doc = bench_with_stored_comparison(cur, prev, "old/bench.json")
    html = render_bench(doc) if stored else render_bench(cur, prev, "old/bench.json")
    rows = compare_levels(cur["levels"], prev["levels"])
    notes = comparison_notes({**cur, "comparison": {"previous": "old/bench.json", "rows": rows}}, prev)
    assert notes == doc["comparison"]["notes"] and len(notes) == 3  # targets, SLOs, token count method
    caveats = re.search(r'<section class="caveats" id="compare-notes">(.*?)</section>', html, re.S).group(1)
    assert [str(escape(n)) for n in notes] == re.findall(r"<li>(.*?)</li>", caveats)
    cells = comparison_cells(html)
    for metric, reason in (("goodput/s", "other SLOs"), ("tokens/s", "other token count"),
                           ("TPOT p50 ms", "other token count")):
        assert cells[metric] == [("na", f"not comparable ({reason})")] * 4, metric
    assert cells["error rate"][0] == ("tag", "unchanged")  # equal and comparable: still said so
    assert all(cls in ("better", "worse") for cls, _ in cells["TTFT p50 ms"])
    assert "compared with <code>old/bench.json</code>" in html
    assert ("previous run dashed in the charts" in html) is not stored  # a stored comparison has no curves


def test_bench_comparison_in_like_conditions_has_no_caveat() -> None:
    html = render_bench(bench_result(), bench_result(seed=5, slowdown=1.3))
    assert 'id="compare-notes"' not in html and "not comparable" not in html
    assert all(cls != "na" for row in comparison_cells(html).values() for cls, _ in row)


def test_bench_comparison_with_no_level_in_common() -> None:
    cur, prev = bench_result(), bench_result(levels=(2, 8))
    for html in (render_bench(cur, prev, "old.json"),
                 render_bench(bench_with_stored_comparison(cur, prev, "old.json"))):
        assert 'id="nothing-compared"' in html and 'id="comparison"' not in html
        assert "no level in common with old.json, so nothing is compared" in html


def test_bench_comparison_stored_before_notes_were_kept() -> None:
    """An older bench JSON: rows, no notes. The page says what the CLI says of it (what the JSON shows)."""
    cur, prev = bench_result(), bench_elsewhere(bench_result(seed=5))
    doc = bench_with_stored_comparison(cur, prev, "old.json")
    del doc["comparison"]["notes"]
    html = render_bench(doc)
    assert "old.json counted goodput against other SLOs than this run" in html
    assert comparison_cells(html)["goodput/s"][0] == ("na", "not comparable (other SLOs)")
    # A note that cannot be worked out (a hand-edited SLO) is said, not a crash.
    doc["slo"] = {"ttft_ms": "fast"}
    assert "could not be worked out" in render_bench(doc)


# -- detection, files, command line ---------------------------------------------------------------------------

def test_detect_kind() -> None:
    assert detect_kind(run_result()) == "run"
    assert detect_kind(grading_summary()) == "grading"
    assert detect_kind(bench_result()) == "bench"
    assert detect_kind({"submissions": []}) == "grading"
    with pytest.raises(ConfigError, match="top-level keys: a"):
        detect_kind({"a": 1})
    with pytest.raises(ConfigError):
        detect_kind([1, 2])


def test_write_html_is_atomic_and_readable(tmp_path: Path) -> None:
    path = write_html(tmp_path / "deep" / "r.html", "<p>hi</p>")
    assert path.read_text() == "<p>hi</p>"
    assert path.stat().st_mode & stat.S_IROTH  # not mkstemp's 0600
    assert [p.name for p in path.parent.iterdir()] == ["r.html"]


def test_report_command_renders_each_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, doc in (("run", run_result()), ("grading", grading_summary()), ("bench", bench_result())):
        src = tmp_path / f"{name}.json"
        src.write_text(json.dumps(doc))
        assert cli_main(["report", str(src), "--html", str(tmp_path / "out" / f"{name}.html")]) == 0
        assert f"{name} report:" in capsys.readouterr().out
        assert "<!doctype html>" in (tmp_path / "out" / f"{name}.html").read_text()
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps(bench_result(seed=2)))
    assert cli_main(["report", str(tmp_path / "bench.json"), "--previous", str(prev)]) == 0
    assert 'id="comparison"' in (tmp_path / "bench.html").read_text()


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ("{broken", "not valid JSON"),
    ('{"hello": 1}', "not a run result"),
])
def test_report_command_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    content: str | None, message: str) -> None:
    src = tmp_path / "in.json"
    if content is not None:
        src.write_text(content)
    assert cli_main(["report", str(src), "--html", str(tmp_path / "o.html")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.html").exists()


def test_previous_only_for_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "run.json"
    src.write_text(json.dumps(run_result()))
    assert cli_main(["report", str(src), "--previous", str(src)]) == 2
    assert "--previous applies to bench results only" in capsys.readouterr().err


def test_non_finite_numbers_do_not_break_the_page_data() -> None:
    result = run_result(hostile=False)
    result["metrics"]["ttft_ms"] = float("nan")
    result["timeline"][3]["t"] = float("inf")
    bench = bench_result()
    bench["levels"][0]["requests_per_s"] = float("nan")
    bench["levels"][1]["records"][0]["ttft_ms"] = float("-inf")
    summary = grading_summary()
    summary["submissions"][0]["score"] = float("nan")
    for html in (render_run(result), render_bench(bench), render_grading(summary, ROOT)):
        data = re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1)
        assert "NaN" not in data and "Infinity" not in data
        json.loads(data, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_report_renders_the_run_result_nested_in_a_grade_record(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    summary = write_grade_dir(tmp_path / "grades")
    by_status = {sub["status"]: sub for sub in summary["submissions"]}
    graded = tmp_path / "grades" / by_status["ok"]["result"]
    assert cli_main(["report", str(graded), "--html", str(tmp_path / "one.html")]) == 0
    assert "run report:" in capsys.readouterr().out
    page = (tmp_path / "one.html").read_text()
    nested = json.loads(graded.read_text())["result"]
    assert "<!doctype html>" in page and nested["checks"][0]["id"] in page
    never_run = next(sub for status, sub in by_status.items() if status != "ok")
    assert cli_main(["report", str(tmp_path / "grades" / never_run["result"])]) == 2
    err = capsys.readouterr().err
    assert "has no run result to render" in err and never_run["status"] in err


def test_report_of_a_capture_bundle_says_which_command_renders_it(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "cap.json"
    bundle.write_text(json.dumps({"format": 1, "profile": "tds", "primary": {"request": {}}, "secondary": None,
                                  "probes": {}, "extra": {}}))
    assert cli_main(["report", str(bundle)]) == 2
    assert "streamconform check CAPTURE.json --html out.html" in capsys.readouterr().err


def test_report_to_an_unwritable_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "run.json"
    src.write_text(json.dumps(run_result()))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli_main(["report", str(src), "--html", str(blocker / "out.html")]) == 2  # was an internal error, 3
    assert "--html" in capsys.readouterr().err
