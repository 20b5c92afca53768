"""Rerunning `streamconform grade`: stale results are graded again, the grader's deadline is not the student's,
feedback and the summary tell never-graded submissions apart, and seeded thresholds suit a correct server.

Real reference servers on loopback, real HTTP, the real runner (helpers shared with test_grade_cli).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from harness.cli import main as cli_main
from harness.grade.scoring import score_checks
from harness.grade.thresholds import DEFAULT_RANGES
from tests.test_grade_cli import closed_port, quick_profile, records, write_roster

FAST = dict(gap_ms=5.0, ttft_ms=20.0)
NO_EXTRA_REQUESTS = """
extends = "grading"
name = "grading-quick"
[errors]
probes = []
[robustness]
concurrency_enabled = false
disconnect_enabled = false
repeats_enabled = false
"""


def grading_quick(tmp: Path) -> str:
    """The grading profile without the probes and robustness requests: two streams per submission."""
    path = tmp / "grading-quick.toml"
    path.write_text(NO_EXTRA_REQUESTS)
    return str(path)


def grade(roster: Path, out: Path, *extra: str) -> int:
    return cli_main(["grade", str(roster), "--out", str(out), "--retry-delay", "0", *extra])


def grades_csv(out: Path) -> dict[str, dict[str, str]]:
    with (out / "grades.csv").open(newline="", encoding="utf-8") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def test_allow_private_on_rerun_grades_the_blocked_results_again(tmp_path, capsys, make_reference_server):
    srv = make_reference_server(**FAST)
    roster = write_roster(tmp_path / "r.csv", [{"id": "a", "url": srv.endpoint}, {"id": "b", "url": "ftp://x/"}])
    out, profile = tmp_path / "out", quick_profile(tmp_path)
    assert grade(roster, out, "--profile", profile) == 0
    assert records(out)["a"]["status"] == "blocked_address"
    capsys.readouterr()
    assert grade(roster, out, "--profile", profile, "--allow-private") == 0
    err = capsys.readouterr().err
    assert "1 result is stale (address policy changed: 1), grading it again" in err
    assert "1 already graded, 1 to grade" in err  # b's invalid URL does not depend on the policy
    assert records(out)["a"]["status"] == "ok" and records(out)["a"]["address_policy"] == "allow_private"
    assert len(list((out / "superseded").glob("a-*.json"))) == 1  # the blocked record is kept aside
    # Dropping --allow-private again: a result obtained from a loopback address no longer holds.
    assert grade(roster, out, "--profile", profile, "--quiet") == 0
    assert records(out)["a"]["status"] == "blocked_address"
    assert "address policy changed: 1" in capsys.readouterr().err


def test_changed_url_or_thresholds_are_graded_again(tmp_path, capsys, make_reference_server):
    old, new = make_reference_server(**FAST), make_reference_server(**FAST)
    rows = [{"id": "ann", "url": old.endpoint, "thr": ""}, {"id": "ben", "url": old.endpoint, "thr": ""},
            {"id": "cy", "url": old.endpoint, "thr": ""}]
    roster = write_roster(tmp_path / "r.csv", rows)
    out = tmp_path / "out"
    argv = ["--profile", quick_profile(tmp_path), "--allow-private", "--thresholds-column", "thr"]
    assert grade(roster, out, *argv) == 0
    first = records(out)
    rows[0]["url"] = new.endpoint
    rows[1]["thr"] = "content.min_chars=100000"
    write_roster(roster, rows)
    capsys.readouterr()
    assert grade(roster, out, *argv) == 0
    err = capsys.readouterr().err
    assert "2 results are stale (URL changed: 1, thresholds changed: 1)" in err
    after, table = records(out), grades_csv(out)
    assert after["ann"]["url"] == new.endpoint and table["ann"]["url"] == new.endpoint
    assert after["ben"]["thresholds"] == {"content.min_chars": "100000"} and after["ben"]["score"] < 18
    assert after["cy"] == first["cy"]  # unchanged: kept as it was
    # The same command again: nothing is stale any more, nothing is graded.
    assert grade(roster, out, *argv) == 0
    assert "stale" not in capsys.readouterr().err and records(out) == after


def test_checks_cut_by_the_grader_deadline_do_not_count(tmp_path, reference_server):
    """A ~0.8 s stream under a 3.5 s deadline: the main requests fit, the robustness requests do not."""
    roster = write_roster(tmp_path / "r.csv", [{"id": "a", "url": reference_server.endpoint}])
    out = tmp_path / "out"
    assert grade(roster, out, "--profile", "grading", "--allow-private", "--deadline", "3.5", "--quiet") == 0
    record = records(out)["a"]
    cut = [i for i in record["scoring"] if i.get("counted") is False and i.get("reason") != "not_applicable"]
    assert {i["id"] for i in cut} >= {"robustness.concurrency", "robustness.repeats"}
    assert all(i["status"] == "not_run" and i["reason"] == "grader_deadline" for i in cut)
    messages = {c["id"]: c["message"] for c in record["result"]["checks"]}
    assert "(raise the deadline: --deadline)" in messages["robustness.concurrency"]
    assert "--timeout" not in messages["robustness.concurrency"]
    counted = [i for i in record["scoring"] if i.get("counted") is not False]
    assert record["max_score"] == sum(i["weight"] for i in counted)
    assert record["score"] == record["max_score"]  # the reference server loses nothing to the grader's deadline
    assert not set(record["failed_checks"]) & {i["id"] for i in cut}
    feedback = next((out / "feedback").glob("a-*.md")).read_text()
    assert "## Not counted" in feedback and "## What lost points" not in feedback
    tests = json.loads(next((out / "gradescope").glob("a-*/results.json")).read_text())["tests"]
    assert sum(t["max_score"] for t in tests) == record["max_score"]


def test_only_deadline_skips_of_extra_requests_stop_counting():
    weights = {"robustness.repeats": 1.0, "robustness.concurrency": 1.0, "http.status": 1.0}
    score = score_checks([
        {"id": "robustness.repeats", "status": "skip", "message": "not run: 0 of 3 repeats fitted before the deadline"},
        {"id": "robustness.concurrency", "status": "skip", "message": "not run: the main request was not answered"},
        {"id": "http.status", "status": "skip", "message": "no HTTP response (deadline)"},
    ], weights)
    assert score.max_score == 2 and score.failed == ["robustness.concurrency", "http.status"]


def test_unreachable_feedback_and_summary_count_not_run_apart(tmp_path, make_reference_server):
    broken = make_reference_server(fault="no-done", **FAST)
    dead = f"http://127.0.0.1:{closed_port()}/v1/chat/completions"
    roster = write_roster(tmp_path / "r.csv", [{"id": "broken", "url": broken.endpoint},
                                               {"id": "dead1", "url": dead}, {"id": "dead2", "url": dead},
                                               {"id": "empty", "url": ""}])
    out = tmp_path / "out"
    assert grade(roster, out, "--profile", grading_quick(tmp_path), "--allow-private", "--quiet") == 0
    dead_feedback = next((out / "feedback").glob("dead1-*.md")).read_text()
    assert dead_feedback.count("could not be reached") == 2  # the Result line and the one "Not graded" note
    assert "## Not graded" in dead_feedback and "### " not in dead_feedback
    assert len(dead_feedback.splitlines()) < 15
    empty_feedback = next((out / "feedback").glob("empty-*.md")).read_text()
    assert "- URL: (none submitted)" in empty_feedback and "``" not in empty_feedback
    summary = json.loads((out / "summary.json").read_text())
    dead1 = next(s for s in summary["submissions"] if s["id"] == "dead1")
    assert "stream.done" in dead1["not_run_checks"]
    html = (out / "summary.html").read_text()
    # stream.done failed for the one submission where it ran (100 %), and did not run for the other three.
    row = html[html.index('<td class="mono">stream.done</td>'):].split("</tr>", 1)[0]
    assert [cell.rsplit(">", 1)[-1] for cell in row.split("</td>")[1:4]] == ["1", "100.0 %", "3"]


def test_roster_threshold_errors_name_the_column_and_student(tmp_path, capsys):
    roster = tmp_path / "r.csv"
    roster.write_text("id,url,thr\nzoe,http://127.0.0.1:1/,timing.bogus=3\n")
    assert grade(roster, tmp_path / "o", "--thresholds-column", "thr") == 2
    err = capsys.readouterr().err
    assert "roster column 'thr', id 'zoe' (roster line 2)" in err and "timing.bogus" in err
    assert "--set" not in err


def test_reference_server_passes_every_seeded_threshold(tmp_path, reference_server):
    """A correct implementation must pass whatever thresholds a student draws from the default ranges."""
    profile = grading_quick(tmp_path)
    ids = [f"s{i:02d}" for i in range(30)]
    roster = write_roster(tmp_path / "r.csv", [{"id": i, "url": f"{reference_server.endpoint}?s={i}"} for i in ids])
    out = tmp_path / "out"
    assert grade(roster, out, "--profile", profile, "--allow-private", "--quiet", "--thresholds-seed",
                 "exam1") == 0
    recs = records(out)
    drawn = {float(r["thresholds"]["content.min_chars"]) for r in recs.values()}
    assert max(drawn) == DEFAULT_RANGES["content.min_chars"][1]  # the hardest draw is among them
    for r in recs.values():
        assert r["status"] == "ok" and r["passed"] and r["score"] == r["max_score"], (r["id"], r["failed_checks"])
        assert r["result"]["metrics"]["chars"] > float(r["thresholds"]["content.min_chars"])

