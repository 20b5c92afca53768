"""`grade`: a folder graded with several profiles says so everywhere, and --regrade takes one id per use or a
comma list without swallowing ROSTER. Every URL here is invalid (ftp://): graded at once, no connection made."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.cli import main as cli_main
from harness.errors import ConfigError
from harness.grade.cli import regrade_ids, regrade_option, rerun_hints
from reports import render_grading
from reports.grading_report import profile_label


def write_roster(path: Path, ids: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "url"])
        writer.writerows([i, f"ftp://example.test/{n}"] for n, i in enumerate(ids))
    return path


def records(out: Path) -> dict[str, dict]:
    docs = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
    return {d["id"]: d for d in docs}


# -- C: the summary names the profiles the records were graded with ---------------------------------------------

def test_a_rerun_with_another_profile_is_summarised_as_mixed(tmp_path, capsys):
    nine = [f"s{i}" for i in range(9)]
    roster, out = tmp_path / "roster.csv", tmp_path / "g"
    write_roster(roster, nine)
    assert cli_main(["grade", str(roster), "--out", str(out), "--profile", "tds", "--quiet"]) == 0
    write_roster(roster, nine + ["t1", "t2", "t3"])  # three more students, graded with another profile
    capsys.readouterr()
    assert cli_main(["grade", str(roster), "--out", str(out), "--profile", "grading"]) == 0
    err = capsys.readouterr().err
    assert "graded with another profile" in err
    assert "profiles: tds (9), grading (3)" in err, err  # the closing line

    recs = records(out)
    assert {i: r["profile"] for i, r in recs.items()} == {**dict.fromkeys(nine, "tds"),
                                                         **dict.fromkeys(["t1", "t2", "t3"], "grading")}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "mixed" and summary["profiles"] == {"tds": 9, "grading": 3}
    assert list(summary["profiles"]) == ["tds", "grading"]  # most used first
    assert {s["id"]: s["profile"] for s in summary["submissions"]} == {i: r["profile"] for i, r in recs.items()}
    html = (out / "summary.html").read_text()
    assert "profiles: <code>tds</code> (9), <code>grading</code> (3)" in html
    assert "<th>profile</th>" in html and html.count('<td class="mono">grading</td>') == 3


def test_a_single_profile_folder_names_that_profile(tmp_path, capsys):
    roster, out = write_roster(tmp_path / "roster.csv", ["a", "b"]), tmp_path / "g"
    assert cli_main(["grade", str(roster), "--out", str(out), "--profile", "grading"]) == 0
    assert "; profile grading." in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "grading" and summary["profiles"] == {"grading": 2}
    html = (out / "summary.html").read_text()
    assert "profile <code>grading</code>" in html and "<th>profile</th>" not in html


def test_the_label_of_a_summary_written_before_profiles_were_counted():
    assert profile_label({"profile": "tds"}) == "profile tds"
    assert profile_label({"profile": "mixed", "profiles": {"grading": 3, "tds": 9}}) == \
        "profiles: tds (9), grading (3)"
    html = render_grading({"profile": "tds-q28", "submissions": []}, Path("."))
    assert "profile <code>tds-q28</code>" in html


# -- D: --regrade ------------------------------------------------------------------------------------------------

def test_regrade_before_the_roster_leaves_the_roster_alone():
    args = build_parser().parse_args(["grade", "--regrade", "ivan", "roster.csv", "--out", "g"])
    assert args.roster == "roster.csv" and args.regrade == ["ivan"]
    args = build_parser().parse_args(["grade", "--regrade", "ivan,olga", "--regrade", "petr", "roster.csv",
                                      "--out", "g"])
    assert args.roster == "roster.csv" and args.regrade == ["ivan,olga", "petr"]


@pytest.fixture
def graded_once(tmp_path):
    roster = write_roster(tmp_path / "roster.csv", ["ivan", "olga", "petr", "a,b"])
    out = tmp_path / "g"
    assert cli_main(["grade", str(roster), "--out", str(out), "--quiet"]) == 0
    return roster, out, records(out)


def regraded(before: dict, after: dict) -> set[str]:
    return {i for i in before if after[i]["started_at"] != before[i]["started_at"]}


@pytest.mark.parametrize("options", [
    ["--regrade", "ivan,olga"],
    ["--regrade", "ivan", "--regrade", "olga"],
    ["--regrade", " ivan , olga "],
])
def test_regrade_by_comma_list_or_repeated(graded_once, options):
    roster, out, before = graded_once
    assert cli_main(["grade", *options, str(roster), "--out", str(out), "--quiet"]) == 0  # positional after it
    assert regraded(before, records(out)) == {"ivan", "olga"}


def test_an_id_holding_a_comma_is_taken_whole(graded_once):
    roster, out, before = graded_once
    assert cli_main(["grade", str(roster), "--out", str(out), "--quiet", "--regrade", "a,b"]) == 0
    assert regraded(before, records(out)) == {"a,b"}


def test_an_unknown_id_in_a_comma_list_is_a_usage_error(graded_once, capsys):
    roster, out, _ = graded_once
    assert cli_main(["grade", str(roster), "--out", str(out), "--regrade", "ivan,nobody"]) == 2
    assert "'nobody'" in capsys.readouterr().err


def test_regrade_ids_and_the_option_a_hint_suggests():
    known = {"ivan", "olga", "a,b"}
    assert regrade_ids(["ivan,olga", "a,b"], known) == ["ivan", "olga", "a,b"]
    with pytest.raises(ConfigError):
        regrade_ids([" , "], known)
    assert regrade_option(["ivan", "olga"]) == "--regrade ivan,olga"
    assert regrade_option(["ivan", "a,b"]) == "--regrade ivan --regrade a,b"
    assert regrade_option(["o'hara"]) == "--regrade 'o'\"'\"'hara'"
    hints = rerun_hints({"submissions": [{"id": "ivan", "status": "timeout"}, {"id": "olga", "status": "unreachable"},
                                         {"id": "petr", "status": "ok"}]})
    assert hints and hints[0].endswith("to try them again later: --regrade ivan,olga")


def test_allow_private_hint_only_when_it_would_help():
    blocked = {"submissions": [{"id": "a", "status": "blocked_address"}]}
    assert "--allow-private" in rerun_hints(blocked)[0]
    assert "--allow-private" not in rerun_hints(blocked, allow_private=True)[0]
    invalid = {"submissions": [{"id": "a", "status": "invalid_url"}]}
    assert "--allow-private" not in rerun_hints(invalid)[0]  # a malformed URL is not a private address
