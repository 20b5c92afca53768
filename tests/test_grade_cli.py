"""`streamconform grade` end to end: real reference servers on loopback, real HTTP, the real runner.

Every address used is loopback. The first roster is graded with --allow-private (the way a course tests its own
grader); the blocked-address test grades loopback URLs without it and proves no connection was made.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from harness.cli import main as cli_main
from reference_server.config import ServerConfig
from reference_server.embedded import EmbeddedServer
from schemas import load_schema

REPO = Path(__file__).resolve().parents[1]
FAST = dict(gap_ms=5.0, ttft_ms=20.0)  # short streams: these tests grade many of them
# fault -> the anti-gaming checks that must catch it (at least one of them must lose points)
GAMING = {
    "canned": {"content.distinct", "content.relevance"},
    "echo": {"content.not_echo"},
    "padding": {"content.not_padding"},
    "placeholder-first": {"content.placeholder_first"},
    "buffered": {"timing.progressive"},
}


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released): connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_roster(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


QUICK_PROFILE = """
extends = "minimal"
name = "quick"
[errors]
probes = []
[robustness]
concurrency_enabled = false
disconnect_enabled = false
repeats_enabled = false
[checks."errors.*"]
enabled = false
[checks."robustness.*"]
enabled = false
"""


def quick_profile(tmp: Path) -> str:
    """The minimal profile without the extra probe and robustness requests: two streams per submission."""
    path = tmp / "quick.toml"
    path.write_text(QUICK_PROFILE)
    return str(path)


def records(out: Path) -> dict[str, dict]:
    docs = [json.loads(p.read_text()) for p in (out / "results").glob("*.json")]
    return {d["id"]: d for d in docs}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One roster: a good server, one server per gaming fault, a bad URL, a refused port; graded once."""
    tmp = tmp_path_factory.mktemp("grade")
    with contextlib.ExitStack() as stack:
        good = stack.enter_context(EmbeddedServer(ServerConfig(**FAST)))
        rows = [{"id": "good", "url": good.endpoint, "email": "good@example.test", "thr": ""},
                {"id": "strict", "url": good.endpoint + "?student=strict", "email": "=cmd()",
                 "thr": "content.min_chars=100000"}]
        for fault in GAMING:
            # buffered keeps the normal pace: its silence must be long enough to be told from a fast stream
            pace = {} if fault == "buffered" else FAST
            srv = stack.enter_context(EmbeddedServer(ServerConfig(fault=fault, **pace)))
            rows.append({"id": fault, "url": srv.endpoint, "email": "", "thr": ""})
        rows += [{"id": "bad-url", "url": "ftp://example.test/x", "email": "", "thr": ""},
                 {"id": "no-server", "url": f"http://127.0.0.1:{closed_port()}/v1/chat/completions", "email": "",
                  "thr": ""}]
        roster = write_roster(tmp / "roster.csv", rows)
        out = tmp / "out"
        argv = ["grade", str(roster), "--out", str(out), "--profile", "grading", "--allow-private",
                "--retry-delay", "0.3", "--deadline", "30", "--quiet", "--thresholds-column", "thr"]
        t0 = time.monotonic()
        assert cli_main(argv) == 0
        elapsed = time.monotonic() - t0
        first = records(out)
        # Rerun: everything is finished, nothing is graded again.
        assert cli_main(argv) == 0
        assert records(out) == first
        # --regrade redoes exactly the chosen id.
        assert cli_main(argv + ["--regrade", "good", "--submission-reports"]) == 0
        again = records(out)
    return {"out": out, "first": first, "again": again, "rows": rows, "elapsed": elapsed}


def test_statuses_and_records(graded):
    recs = graded["first"]
    assert set(recs) == {r["id"] for r in graded["rows"]}
    schema, result_schema = load_schema("grade.schema"), load_schema("result.schema")
    for rec in recs.values():
        jsonschema.validate(rec, schema)
        if rec["result"] is not None:
            jsonschema.validate(rec["result"], result_schema)
    assert recs["bad-url"]["status"] == "invalid_url" and len(recs["bad-url"]["attempts"]) == 1
    down = recs["no-server"]
    assert down["status"] == "unreachable" and [a["status"] for a in down["attempts"]] == ["unreachable"] * 2
    assert down["duration_s"] >= 0.3  # the retry waited
    assert {r["max_score"] for r in recs.values()} == {recs["good"]["max_score"]}  # one maximum for everyone
    assert down["score"] == 0 and recs["bad-url"]["score"] == 0


def test_good_server_full_marks(graded):
    good = graded["first"]["good"]
    assert good["status"] == "ok" and good["passed"], good["failed_checks"]
    assert good["score"] == good["max_score"] > 0, good["failed_checks"]


def test_per_student_threshold_from_roster_column(graded):
    strict = graded["first"]["strict"]
    assert strict["thresholds"] == {"content.min_chars": "100000"}
    assert "content.chars" in strict["failed_checks"] and not strict["passed"]


@pytest.mark.parametrize("fault", sorted(GAMING))
def test_gaming_faults_lose_points(graded, fault):
    rec, good = graded["first"][fault], graded["first"]["good"]
    assert rec["status"] == "ok"
    assert rec["score"] < good["score"]
    assert GAMING[fault] & set(rec["failed_checks"]), (fault, rec["failed_checks"])


def test_regrade_redoes_only_chosen_ids(graded):
    first, again = graded["first"], graded["again"]
    assert again["good"]["finished_at"] != first["good"]["finished_at"]
    assert {k: v for k, v in again.items() if k != "good"} == {k: v for k, v in first.items() if k != "good"}


def test_exports(graded):
    out = graded["out"]
    rows = list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert [r["id"] for r in rows] == [r["id"] for r in graded["rows"]]
    good = rows[0]
    assert good["status"] == "ok" and float(good["ttft_ms"]) > 0 and int(good["chars"]) > 1000
    assert rows[1]["email"] == "'=cmd()"  # a formula from the roster is neutralised
    summary = json.loads((out / "summary.json").read_text())
    schema = load_schema("grade.schema")
    jsonschema.validate(summary, {"$defs": schema["$defs"], "$ref": "#/$defs/summary"})
    for sub in summary["submissions"]:
        gs = json.loads((out / sub["gradescope"]).read_text())
        assert gs["tests"] and gs["score"] == sub["score"]
        assert (out / sub["feedback"]).read_text().startswith("# Feedback for")
    page = (out / "summary.html").read_text()
    assert 'id="submissions"' in page and "<canvas" in page  # the rich reports/ page, not a plain table
    # --html rendered each graded submission's run report, and the summary links them
    good_report = out / "results" / (Path(summary["submissions"][0]["result"]).stem + ".html")
    assert good_report.exists() and good_report.name in page
    echo = (out / next(s["feedback"] for s in summary["submissions"] if s["id"] == "echo")).read_text()
    assert "content.not_echo" in echo and "repeats the prompt" in echo


class Recorder:
    """A bare HTTP listener on loopback that records every request it gets and answers 404 with a cookie."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            with conn:
                conn.settimeout(2)
                data = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in data and len(data) < 65536:
                        piece = conn.recv(4096)
                        if not piece:
                            break
                        data += piece
                self.requests.append(data)
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nSet-Cookie: session=grader-leak\r\n"
                                 b"Content-Length: 0\r\nConnection: close\r\n\r\n")

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_blocked_without_allow_private_and_no_connection(tmp_path):
    with Recorder() as rec:
        roster = write_roster(tmp_path / "r.csv", [
            {"id": "loop", "url": f"http://127.0.0.1:{rec.port}/x"},
            {"id": "loop6", "url": f"http://[::1]:{rec.port}/x"},
            {"id": "localhost", "url": f"http://localhost:{rec.port}/x"},
        ])
        out = tmp_path / "out"
        assert cli_main(["grade", str(roster), "--out", str(out), "--quiet", "--retry-delay", "0"]) == 0
        time.sleep(0.3)
    assert rec.accepted == 0
    recs = records(out)
    assert {k: v["status"] for k, v in recs.items()} == dict.fromkeys(("loop", "loop6", "localhost"),
                                                                      "blocked_address")
    assert all(len(r["attempts"]) == 1 for r in recs.values())  # a refusal is not retried


def test_grader_credentials_never_sent(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMCONFORM_API_KEY", "sk-grader-secret")
    with Recorder() as rec:
        roster = write_roster(tmp_path / "r.csv", [{"id": f"s{i}", "url": f"http://127.0.0.1:{rec.port}/{i}"}
                                                   for i in range(3)])
        assert cli_main(["grade", str(roster), "--out", str(tmp_path / "out"), "--quiet", "--allow-private",
                         "--profile", "minimal", "--retry-delay", "0"]) == 0
    sent = b"\n".join(rec.requests).lower()
    assert rec.requests and b"sk-grader-secret" not in sent
    assert b"authorization:" not in sent and b"cookie:" not in sent  # not even the cookie another one set
    assert {r["status"] for r in records(tmp_path / "out").values()} == {"ok"}  # it answered (404): graded
    with Recorder() as rec:  # only when the instructor asks for it explicitly
        roster = write_roster(tmp_path / "r2.csv", [{"id": "s", "url": f"http://127.0.0.1:{rec.port}/"}])
        assert cli_main(["grade", str(roster), "--out", str(tmp_path / "out2"), "--quiet", "--allow-private",
                         "--profile", quick_profile(tmp_path), "--send-api-key"]) == 0
    assert b"authorization: bearer sk-grader-secret" in rec.requests[0].lower()


def test_hostile_urls_do_not_break_the_batch(tmp_path):
    urls = ["http://[::1", "http://127.0.0.1:99999/", "http://user:pw@127.0.0.1:1/", "http://exa mple/",
            "javascript:alert(1)", "http://\u0000/", "http://" + "a" * 5000, "http://127.0.0.1:0/",
            "http://0.0.0.0:1/", "//no-scheme", "http://%zz/"]
    roster = tmp_path / "r.jsonl"
    roster.write_text("".join(json.dumps({"id": f"h{i}", "url": u}) + "\n" for i, u in enumerate(urls)))
    out = tmp_path / "out"
    assert cli_main(["grade", str(roster), "--out", str(out), "--quiet", "--retry-delay", "0",
                     "--deadline", "5"]) == 0
    recs = records(out)
    assert len(recs) == len(urls)
    assert {r["status"] for r in recs.values()} <= {"invalid_url", "blocked_address", "unreachable"}


def test_bad_roster_exit_2(tmp_path, capsys):
    roster = tmp_path / "r.csv"
    roster.write_text("id,url\na,http://127.0.0.1:1/\na,http://127.0.0.1:2/\n")
    assert cli_main(["grade", str(roster), "--out", str(tmp_path / "o")]) == 2
    assert "duplicate id" in capsys.readouterr().err
    roster.write_text("id,url,thr\na,http://127.0.0.1:1/,timing.nonsense=3\n")
    assert cli_main(["grade", str(roster), "--out", str(tmp_path / "o"), "--thresholds-column", "thr"]) == 2
    assert cli_main(["grade", str(roster), "--out", str(tmp_path / "o"), "--regrade", "zz"]) == 2
    assert not (tmp_path / "o" / "results").exists() or not list((tmp_path / "o" / "results").iterdir())


def test_resume_warns_about_results_of_another_profile(tmp_path, capsys):
    roster = write_roster(tmp_path / "r.csv", [{"id": "a", "url": "ftp://x/"}])
    argv = ["grade", str(roster), "--out", str(tmp_path / "o"), "--quiet"]
    assert cli_main(argv) == 0 and cli_main(argv + ["--profile", "minimal"]) == 0
    assert "graded with another profile" in capsys.readouterr().err


def test_resume_after_kill_9(tmp_path):
    """A real grading subprocess killed with SIGKILL mid-run; the rerun grades each remaining id exactly once."""
    n = 16
    with EmbeddedServer(ServerConfig(gap_ms=25.0, ttft_ms=50.0)) as srv:  # ~1 s streams: the kill lands mid-run
        roster = write_roster(tmp_path / "r.csv", [{"id": f"s{i:02d}", "url": f"{srv.endpoint}?s={i}"}
                                                   for i in range(n)])
        out = tmp_path / "out"
        argv = ["grade", str(roster), "--out", str(out), "--profile", quick_profile(tmp_path), "--allow-private",
                "--concurrency", "4", "--quiet", "--retry-delay", "0"]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *argv], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        try:
            while len(list((out / "results").glob("*.json"))) < 4:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "no result written within 60 s"
                time.sleep(0.05)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            proc.stderr.close()
        before = {p.name: p.read_bytes() for p in (out / "results").glob("*.json")}
        assert 4 <= len(before) < n, "the kill should land mid-run"
        for data in before.values():
            json.loads(data)  # every file on disk is whole: written atomically
        assert cli_main(argv) == 0
    after = {p.name: p.read_bytes() for p in (out / "results").glob("*.json")}
    assert len(after) == n and not list((out / "results").glob(".*.tmp"))
    assert all(after[name] == data for name, data in before.items())  # finished before the kill: not regraded
    assert {json.loads(d)["id"] for d in after.values()} == {f"s{i:02d}" for i in range(n)}
    assert len(list((out / "gradescope").glob("*/results.json"))) == n == len(list((out / "feedback").glob("*.md")))


def test_hostile_endpoints_end_within_the_deadline(tmp_path):
    """Endpoints that hang, never finish, or send one endless line: each is graded within its deadline."""
    with contextlib.ExitStack() as stack:
        rows = []
        for fault in ("hang", "infinite", "huge-line"):
            srv = stack.enter_context(EmbeddedServer(ServerConfig(fault=fault)))
            rows.append({"id": fault, "url": srv.endpoint})
        roster = write_roster(tmp_path / "r.csv", rows)
        t0 = time.monotonic()
        assert cli_main(["grade", str(roster), "--out", str(tmp_path / "out"), "--quiet", "--allow-private",
                         "--profile", quick_profile(tmp_path), "--deadline", "3", "--retry-delay", "0"]) == 0
        elapsed = time.monotonic() - t0
    recs = records(tmp_path / "out")
    assert elapsed < 20, elapsed  # generous: the CPU is shared
    for fault in ("hang", "infinite", "huge-line"):
        rec = recs[fault]
        # Headers arrived, so the endpoint answered: graded (not retried), and it loses points.
        assert rec["status"] == "ok" and len(rec["attempts"]) == 1 and rec["score"] < rec["max_score"], rec
        assert rec["result"]["end_reason"] != "eof"


def test_ctrl_c_exports_what_finished(tmp_path):
    with EmbeddedServer(ServerConfig(gap_ms=25.0, ttft_ms=50.0)) as srv:
        roster = write_roster(tmp_path / "r.csv", [{"id": f"s{i:02d}", "url": f"{srv.endpoint}?s={i}"}
                                                   for i in range(16)])
        out = tmp_path / "out"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "grade", str(roster), "--out", str(out),
                                 "--profile", quick_profile(tmp_path), "--allow-private", "--concurrency", "2",
                                 "--quiet"], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(list((out / "results").glob("*.json"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        proc.stderr.close()
    summary = json.loads((out / "summary.json").read_text())
    assert 2 <= summary["graded"] < 16 == summary["total"]
    assert summary["graded"] == len(list((out / "results").glob("*.json")))
