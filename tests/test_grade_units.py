"""Grading pieces that need no network: roster, store, thresholds, scoring, URLs, feedback, exports."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import jsonschema
import pytest

from harness.errors import ConfigError
from harness.grade.attempt import AttemptOutcome, GradeInput, build_record
from harness.grade.exports import gradescope, write_batch_exports, write_submission_exports
from harness.grade.feedback import ANTI_GAMING_TEXT, redact, student_view
from harness.grade.roster import Submission, load_roster
from harness.grade.scoring import score_checks
from harness.grade.store import ResultStore, atomic_write_text, file_stem
from harness.grade.thresholds import parse_overrides, parse_range, seeded_overrides
from harness.grade.urls import url_problem
from schemas import load_schema

# -- roster ------------------------------------------------------------------------------------------------------


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_roster_keeps_extra_columns_in_order(tmp_path):
    p = write(tmp_path, "r.csv", "\ufeffEmail, ID ,url,section\nx@y,s1, http://a/ ,A\n\n ,  ,,\nz@y,s2,,B\n")
    subs = load_roster(p)
    assert [s.id for s in subs] == ["s1", "s2"]
    assert subs[0].url == "http://a/" and subs[1].url == ""  # an empty URL is graded invalid_url, not refused
    assert list(subs[0].extra) == ["Email", "section"] and subs[1].extra["section"] == "B"


def test_json_lines_roster(tmp_path):
    p = write(tmp_path, "r.jsonl", '{"id": 7, "url": "http://a/", "team": ["x"]}\n\n{"id": "b", "url": null}\n')
    subs = load_roster(p)
    assert [(s.id, s.url) for s in subs] == [("7", "http://a/"), ("b", "")]
    assert subs[0].extra == {"team": ["x"]}


@pytest.mark.parametrize("name,text,needle", [
    ("r.csv", "name,url\na,http://x/\n", "missing column(s) id"),
    ("r.csv", "id,link\na,http://x/\n", "missing column(s) url"),
    ("r.csv", "", "empty"),
    ("r.csv", "id,url\na,http://x/\nb,http://y/\na,http://z/\n", "duplicate id(s): 'a' on lines 2, 4"),
    ("r.csv", "id,url\n,http://x/\n", "line 2: empty id"),
    ("r.csv", "id,url\na,http://x/,extra\n", "3 fields but the header has 2"),
    ("r.csv", "id,url,id\na,b,c\n", "named twice"),
    ("r.csv", "id,url\n", "no submissions"),
    ("r.jsonl", '{"id": "a"}\n', "missing key(s) url"),
    ("r.jsonl", '{"id": "a", "url": "x"}\nnot json\n', "line 2: not JSON"),
    ("r.jsonl", '[1, 2]\n', "expected a JSON object"),
    ("r.jsonl", '{"id": true, "url": "x"}\n', "id must be"),
])
def test_bad_rosters_are_config_errors(tmp_path, name, text, needle):
    with pytest.raises(ConfigError) as err:
        load_roster(write(tmp_path, name, text))
    assert needle in str(err.value)


def test_unreadable_roster(tmp_path):
    with pytest.raises(ConfigError, match="cannot read roster"):
        load_roster(tmp_path / "missing.csv")
    (tmp_path / "latin.csv").write_bytes(b"id,url\n\xe9,http://x/\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_roster(tmp_path / "latin.csv")


# -- store -------------------------------------------------------------------------------------------------------


def test_file_stems_are_safe_and_distinct():
    ids = ["a/b", "a_b", "A_b", "../../etc/passwd", "..", "é", "x" * 200]
    stems = [file_stem(i) for i in ids]
    assert len({s.lower() for s in stems}) == len(ids)  # distinct even on case-insensitive filesystems
    assert all("/" not in s and not s.startswith(".") and len(s) < 80 for s in stems)


def test_store_round_trip_and_resume_rules(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    writer = subprocess.Popen([sys.executable, "-c", ""])  # a writer that is gone: only its leftovers are swept
    writer.wait()
    (store.results_dir / f".leftover.json.{writer.pid}.0123abcd.tmp").write_text("{")
    store.prepare()
    assert not list(store.results_dir.glob(".*.tmp"))  # a killed writer's leftovers are cleared
    assert store.load("a") is None and not store.finished("a")
    store.write({"id": "a", "status": "ok"})
    assert store.finished("a") and store.load("a") == {"id": "a", "status": "ok"}
    store.write({"id": "b", "status": "error"})
    assert not store.finished("b")  # the grader's own failure is retried on rerun
    store.path("c").write_text("{truncated")
    assert not store.finished("c")
    store.path("d").write_text(json.dumps({"id": "someone else", "status": "ok"}))
    assert not store.finished("d")


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["f.txt"]


# -- thresholds --------------------------------------------------------------------------------------------------


def test_threshold_overrides_parse():
    assert parse_overrides(" content.chars=1625; timing.ttft_ms = 2000 ;") == ["content.chars=1625",
                                                                             "timing.ttft_ms=2000"]
    assert parse_overrides("") == []
    for bad in ("chars=1", "content.chars", "content.chars=", "a b.c=1"):
        with pytest.raises(ConfigError):
            parse_overrides(bad)


def test_seeded_thresholds_reproducible_per_id():
    ranges = {"content.min_chars": (1000, 2000, 125)}
    a1, a2 = seeded_overrides("exam1", "alice", ranges), seeded_overrides("exam1", "alice", ranges)
    assert a1 == a2 and a1[0].startswith("content.min_chars=")
    values = {seeded_overrides("exam1", f"s{i}", ranges)[0] for i in range(50)}
    assert len(values) > 3  # students differ
    assert all(1000 <= int(v.split("=")[1]) <= 2000 and int(v.split("=")[1]) % 125 == 0 for v in values)
    assert seeded_overrides("exam2", "alice", ranges) != a1 or seeded_overrides("exam3", "alice", ranges) != a1
    assert parse_range("timing.ttft_ms=1500..3000/250") == ("timing.ttft_ms", (1500.0, 3000.0, 250.0))
    with pytest.raises(ConfigError):
        parse_range("timing.ttft_ms=3000..1500")


# -- scoring -----------------------------------------------------------------------------------------------------


def test_partial_credit_and_constant_maximum():
    weights = {"a.x": 2, "a.y": 1, "a.z": 1, "a.w": 4}
    checks = [{"id": "a.x", "status": "pass", "required": True}, {"id": "a.y", "status": "warn"},
              {"id": "a.z", "status": "fail"}, {"id": "other.q", "status": "fail"}]
    s = score_checks(checks, weights)
    assert (s.score, s.max_score) == (2.5, 8)
    assert s.failed == ["a.y", "a.z", "a.w"]  # a.w never ran: it lost its points too
    assert [i["status"] for i in s.items] == ["pass", "warn", "fail", "not_run"]
    nothing = score_checks([], weights)
    assert (nothing.score, nothing.max_score) == (0, 8)
    equal = score_checks(checks, None)
    assert (equal.score, equal.max_score) == (1.5, 4)


# -- urls --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url,ok", [
    ("http://127.0.0.1:8000/stream", True), ("https://example.test/x?y=1", True), ("", False),
    ("ftp://x/", False), ("x", False), ("http://", False), ("http://a:99999/", False), ("http://a b/", False),
    ("javascript:alert(1)", False), ("http://a/" + "x" * 3000, False), ("http://a:0/", False),
    ("   ", False), ("http://a\u00a0b/", False), ("http://user:pw@a/", False),
])
def test_url_problem(url, ok):
    assert (url_problem(url) is None) is ok


def test_grading_and_run_judge_urls_with_one_validator():
    from harness.capture.guard import check_url

    for url in ("ftp://x/", "http://user:pw@a/", "http://a:0/", "http://a/" + "x" * 3000):
        assert url_problem(url) == check_url(url)
    assert url_problem("") == "no URL was submitted"


# -- feedback and exports ----------------------------------------------------------------------------------------


class _Runner:
    def weights(self, overrides):
        return {"http.status": 1, "content.chars": 2, "content.distinct": 2}

    def profile_name(self):
        return "t"


def _result(**metrics):
    return {
        "passed": False,
        "metrics": {"ttft_ms": 12.34567, "tokens_per_s": 99.0, "chars": 1500, "chunks": 30, **metrics},
        "checks": [
            {"id": "http.status", "status": "pass", "required": True, "message": "200", "evidence": []},
            {"id": "content.chars", "status": "fail", "required": True, "measured": 900, "threshold": "> 1625",
             "message": "too short", "evidence": [{"offset": 3, "excerpt": "hello", "t": 0.5}],
             "reproduce": "curl -H 'Authorization: Bearer sk-secret' -d '{}' http://x/"},
            {"id": "content.distinct", "status": "fail", "required": False, "measured": 0.99, "threshold": "< 0.9",
             "message": "similarity 0.99 >= 0.9", "evidence": [{"offset": 0, "excerpt": "same", "t": 0.1}],
             "reproduce": "curl -d 'secret second prompt' http://x/"},
        ],
    }


def _record(ident="s1", status="ok", url="http://x/", extra=None):
    outcome = AttemptOutcome(status=status, result=_result() if status == "ok" else None,
                             error="resolved to 10.1.2.3" if status != "ok" else None, started_at="t")
    item = GradeInput(Submission(ident, url, extra or {}), ["content.chars=1625"])
    return build_record(item, _Runner(), [outcome], outcome, "t0", 1.0)


def test_record_is_valid_and_scored():
    record = _record()
    jsonschema.validate(record, load_schema("grade.schema"))
    assert (record["score"], record["max_score"]) == (1, 5)
    assert record["failed_checks"] == ["content.chars", "content.distinct"]
    assert record["thresholds"] == {"content.chars": "1625"}
    down = _record(status="unreachable")
    jsonschema.validate(down, load_schema("grade.schema"))
    assert (down["score"], down["max_score"], down["passed"], down["result"]) == (0, 5, False, None)


def test_student_view_hides_instructor_detail():
    view = student_view(_record())
    text = json.dumps(view) + json.dumps(gradescope(_record()))
    assert "sk-secret" not in text and "secret second prompt" not in text
    distinct = next(c for c in view["checks"] if c["id"] == "content.distinct")
    assert distinct["message"] == ANTI_GAMING_TEXT["content.distinct"] and "measured" not in distinct
    chars = next(c for c in view["checks"] if c["id"] == "content.chars")
    assert chars["measured"] == 900 and chars["evidence"][0]["excerpt"] == "hello"
    assert "<redacted>" in chars["reproduce"]
    down = json.dumps(student_view(_record(status="blocked_address")))
    assert "10.1.2.3" not in down and "non-public address" in down
    assert redact("-H 'Cookie: a=b' -H 'X-Api-Key: k'") == "-H 'Cookie: <redacted>' -H 'X-Api-Key: <redacted>'"


def test_gradescope_always_has_every_test():
    for status in ("ok", "timeout", "invalid_url"):
        gs = gradescope(_record(status=status))
        assert [t["name"].split(":")[0] for t in gs["tests"]] == ["http.status", "content.chars", "content.distinct"]
        assert sum(t["max_score"] for t in gs["tests"]) == 5
        assert all(t["status"] in ("passed", "failed") and t["visibility"] == "visible" for t in gs["tests"])
        assert gs["score"] == sum(t["score"] for t in gs["tests"])


def test_batch_exports(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    hostile = _record("<b>x</b>", url="=HYPERLINK(\"http://evil\")", extra={"email": "-1+1", "note": "-5"})
    records = [_record("s1", extra={"email": "a@b"}), _record("s2", status="timeout", extra={"email": "c@d"}),
               hostile]
    for r in records:
        store.write(r)
        write_submission_exports(tmp_path, r)
    summary = write_batch_exports(tmp_path, ["s1", "s2", "<b>x</b>", "never-graded"], store, ["email", "note"], "t")
    schema = load_schema("grade.schema")
    jsonschema.validate(summary, {"$defs": schema["$defs"], "$ref": "#/$defs/summary"})
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (summary["total"], summary["graded"], summary["by_status"]) == (4, 3, {"ok": 2, "timeout": 1})
    rows = list(csv.DictReader((tmp_path / "grades.csv").open(encoding="utf-8")))
    assert [r["id"] for r in rows] == ["s1", "s2", "<b>x</b>"]
    assert rows[0]["ttft_ms"] == "12.35" and rows[0]["failed_checks"] == "content.chars;content.distinct"
    assert rows[1]["status"] == "timeout" and rows[1]["score"] == "0" and rows[1]["max_score"] == "5"
    assert rows[2]["url"].startswith("'=") and rows[2]["email"] == "'-1+1" and rows[2]["note"] == "-5"
    page = (tmp_path / "summary.html").read_text()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    for s in summary["submissions"]:
        assert (tmp_path / s["result"]).is_file() and (tmp_path / s["feedback"]).is_file()
        assert json.loads((tmp_path / s["gradescope"]).read_text())["tests"]
    feedback = (tmp_path / summary["submissions"][0]["feedback"]).read_text()
    assert "content.chars" in feedback and "content.chars = 1625" in feedback and "sk-secret" not in feedback


def test_thresholds_from_seed_and_column():
    import argparse

    from harness.grade.cli import build_inputs

    subs = [Submission("a", "http://x/", {"thr": "timing.ttft_ms=2000"}), Submission("b", "http://x/", {"thr": ""})]
    ns = argparse.Namespace(thresholds_column="thr", thresholds_seed=None, thresholds_range=[])
    assert [i.overrides for i in build_inputs(subs, ns)] == [["timing.ttft_ms=2000"], []]
    ns = argparse.Namespace(thresholds_column=None, thresholds_seed="exam", thresholds_range=[])
    first, again = build_inputs(subs, ns), build_inputs(subs, ns)
    assert [i.overrides for i in first] == [i.overrides for i in again]
    assert {o.split("=")[0] for o in first[0].overrides} == {"content.min_chars", "timing.ttft_ms"}
    with pytest.raises(ConfigError, match="no column"):
        build_inputs(subs, argparse.Namespace(thresholds_column="nope", thresholds_seed=None, thresholds_range=[]))
    with pytest.raises(ConfigError, match="needs --thresholds-seed"):
        build_inputs(subs, argparse.Namespace(thresholds_column=None, thresholds_seed=None,
                                              thresholds_range=["content.min_chars=1..2"]))


def test_progress_bar_counts_on_a_terminal():
    import io

    from rich.console import Console

    from harness.grade.progress import BatchProgress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=150)
    with BatchProgress(3, console=console) as bar:
        bar.done(_record("a"))
        bar.done({**_record("b"), "passed": True})
        bar.done(_record("c", status="timeout"))
    text = buf.getvalue()
    assert "3/3" in text and "1 passed" in text and "1 failed" in text and "1 no answer" in text
    quiet = io.StringIO()
    with BatchProgress(1, quiet=True, console=Console(file=quiet)) as bar:
        bar.done(_record("a"))
    assert quiet.getvalue() == ""
    plain = io.StringIO()
    with BatchProgress(1, console=Console(file=plain)) as bar:  # not a terminal: one line per submission
        bar.done(_record("a"))
    assert plain.getvalue().startswith("[1/1] a: ok 1/5")


def test_batch_exports_recreate_missing_per_submission_files(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    store.write(_record("s1"))  # as if killed right after the record was written
    summary = write_batch_exports(tmp_path, ["s1"], store, [], "t")
    sub = summary["submissions"][0]
    assert (tmp_path / sub["feedback"]).is_file() and (tmp_path / sub["gradescope"]).is_file()


def test_a_too_slow_endpoint_cannot_take_deadline_cut_checks_out_of_the_maximum():
    from harness.grade.scoring import score_checks

    cut = {"id": "robustness.concurrent", "status": "skip", "required": False,
           "message": "not run: about 8.5 s needed, 1.0 s left before the run's deadline (raise the deadline)"}
    weights = {"timing.ttft": 1, "robustness.concurrent": 2}
    fast = score_checks([{"id": "timing.ttft", "status": "pass"}, cut], weights)
    assert (fast.score, fast.max_score) == (1, 1)  # the grader's budget: not charged
    slow = score_checks([{"id": "timing.ttft", "status": "fail"}, cut], weights)
    assert (slow.score, slow.max_score) == (0, 3)  # the endpoint spent the time itself: charged
    assert slow.failed == ["timing.ttft", "robustness.concurrent"]
