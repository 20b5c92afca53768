"""A record that cannot be written (disk full, permissions) becomes an ``error`` row with the reason; the batch goes
on with the other submissions and exits 1, and a rerun grades that submission again.

The failure is injected in-process at the rename of the record's temporary file (tests may run as root, where a
read-only directory still takes writes).
"""

from __future__ import annotations

import asyncio
import csv
import errno
import json
import os
from pathlib import Path

import jsonschema

from harness.cli import main as cli_main
from harness.grade.batch import grade_all
from harness.grade.store import file_stem
from schemas import load_schema
from tests.test_grade_batch import ScriptedRunner, item
from tests.test_grade_cli import quick_profile, records, write_roster

VICTIM = "bob"


def full_disk_for(monkeypatch, ident: str) -> None:
    """os.replace fails for ``ident``'s record as it would on a full disk; every other file is written."""
    real = os.replace
    target = f"{file_stem(ident)}.json"

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == target and Path(dst).parent.name == "results":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def grades_csv(out: Path) -> dict[str, dict[str, str]]:
    with (out / "grades.csv").open(newline="", encoding="utf-8") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def test_unwritable_record_is_an_error_row_and_the_batch_goes_on(tmp_path, capsys, monkeypatch, reference_server):
    roster = write_roster(tmp_path / "r.csv", [
        {"id": "alice", "url": f"{reference_server.endpoint}?s=alice"},
        {"id": VICTIM, "url": f"{reference_server.endpoint}?s=bob"},
        {"id": "carol", "url": "ftp://example.test/"},
    ])
    out = tmp_path / "out"
    argv = ["grade", str(roster), "--out", str(out), "--profile", quick_profile(tmp_path), "--allow-private",
            "--retry-delay", "0", "--quiet"]
    full_disk_for(monkeypatch, VICTIM)
    assert cli_main(argv) == 1  # some rows failed: the grader's own failure, as for any error row
    err = capsys.readouterr().err
    assert f"'{VICTIM}': could not save the result: OSError: [Errno {errno.ENOSPC}]" in err, err
    assert "1 of them could not be saved" in err

    rows = grades_csv(out)
    assert set(rows) == {"alice", VICTIM, "carol"}
    assert (rows[VICTIM]["status"], rows[VICTIM]["score"], rows[VICTIM]["result"]) == ("error", "0", "")
    assert rows["alice"]["status"] == "ok" and rows["carol"]["status"] == "invalid_url"
    summary = json.loads((out / "summary.json").read_text())
    victim = next(s for s in summary["submissions"] if s["id"] == VICTIM)
    assert victim["status"] == "error" and "could not save the result" in victim["error"]
    assert os.strerror(errno.ENOSPC) in victim["error"]
    assert summary["by_status"]["error"] == 1 and summary["graded"] == 3
    schema = load_schema("grade.schema")
    jsonschema.validate(summary, {"$defs": schema["$defs"], "$ref": "#/$defs/summary"})
    assert "could not save the result" in (out / "summary.html").read_text()
    assert set(records(out)) == {"alice", "carol"}  # nothing on disk for the victim...
    assert not list((out / "results").glob(".*.tmp"))  # ...not even its temporary file

    monkeypatch.undo()  # the disk has room again: the rerun grades exactly the victim
    assert cli_main(argv) == 0
    assert set(records(out)) == {"alice", VICTIM, "carol"} and grades_csv(out)[VICTIM]["status"] == "ok"


def test_pool_turns_a_failed_persist_into_an_error_record():
    n = 6
    runner = ScriptedRunner({f"http://127.0.0.1:9/{i}": ["ok"] for i in range(n)})
    saved: list[str] = []
    unsaved: list[dict] = []
    done: list[dict] = []

    def persist(record: dict) -> None:
        if record["id"] == "s3":
            raise PermissionError(errno.EACCES, "Permission denied", "results/s3.json")
        saved.append(record["id"])

    count = asyncio.run(grade_all([item(i) for i in range(n)], runner, persist, concurrency=2,
                                  on_done=done.append, on_unsaved=unsaved.append))
    assert count == n and sorted(saved) == [f"s{i}" for i in range(n) if i != 3]
    assert [r["id"] for r in unsaved] == ["s3"] and unsaved[0]["status"] == "error"
    assert unsaved[0]["attempts"][-1]["error"].startswith("could not save the result: PermissionError")
    assert next(r for r in done if r["id"] == "s3") is unsaved[0]
