"""One vocabulary across subcommands: an option several subcommands take has one spelling and one meaning.

harness.cli.options.SHARED_OPTIONS is the list; the parsers (harness.cli.build_parser), the README's table "Options
shared by several subcommands" and that list must agree. Old spellings still work for one release, with a note.
Then the options grade and bench gained end to end: grade with -H, --set, --dialect, --model, --json against a
reference server that requires a key; bench --dialect auto against the reference server and against a server that
refuses the prompt dialect.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from harness.cli import COMMANDS, build_parser
from harness.cli import main as cli_main
from harness.cli.options import DEPRECATED, SHARED_OPTIONS
from reference_server.config import ServerConfig
from reference_server.embedded import EmbeddedServer
from tests.test_grade_cli import FAST, quick_profile, records, write_roster

REPO = Path(__file__).resolve().parents[1]


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def visible_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Option string -> action, for the options --help shows (not -h, not hidden aliases)."""
    return {flag: action for action in parser._actions for flag in action.option_strings
            if action.help != argparse.SUPPRESS and flag not in ("-h", "--help")}


def test_every_option_several_subcommands_take_is_in_the_shared_list():
    takers: dict[str, set[str]] = defaultdict(set)
    for name, parser in subcommand_parsers().items():
        for flag in visible_options(parser):
            takers[flag].add(name)
    shared = {flag: set(option.commands) for option in SHARED_OPTIONS for flag in option.flags}
    several = {flag: names for flag, names in takers.items() if len(names) > 1}
    assert several == {flag: names for flag, names in shared.items() if len(names) > 1}, (
        "an option taken by several subcommands must be in harness.cli.options.SHARED_OPTIONS, with who takes it")


@pytest.mark.parametrize("option", SHARED_OPTIONS, ids=lambda o: o.flags[-1])
def test_a_shared_option_means_the_same_in_every_subcommand(option):
    parsers = subcommand_parsers()
    for name in option.commands:
        actions = visible_options(parsers[name])
        for flag in option.flags:
            assert flag in actions, f"{name} lacks {flag}"
        action = actions[option.flags[-1]]
        assert all(actions[flag] is action for flag in option.flags)  # -H and --header: one option
        # One meaning, word for word; a subcommand only adds after it (its default, what it does with it).
        assert action.help == option.meaning or action.help.startswith(option.meaning + "; "), (name, action.help)


def readme_table() -> dict[str, tuple[str, list[str]]]:
    """Long flag -> (meaning, subcommands) from the README's table of shared options."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Options shared by several subcommands", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3 or cells[0] in ("option", "---"):
            continue
        flags = re.findall(r"`(-{1,2}[a-z][-a-z]*)", cells[0])
        # "grade (N submissions, default 64)" -> grade: the words in brackets say what the subcommand adds.
        names = [item.split("(")[0].strip() for item in re.sub(r"\([^)]*\)", "", cells[2]).split(",")]
        rows[flags[-1]] = (cells[1].replace("`", ""), names)
    return rows


def test_the_readme_table_lists_every_shared_option_with_its_one_meaning():
    rows = readme_table()
    assert set(rows) == {option.flags[-1] for option in SHARED_OPTIONS}
    for option in SHARED_OPTIONS:
        meaning, names = rows[option.flags[-1]]
        assert meaning == option.meaning
        assert sorted(names) == sorted(option.commands), option.flags


def test_the_readme_names_every_old_spelling_and_its_replacement():
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())  # wrapped lines joined
    for old in DEPRECATED:
        for name in old.commands:
            assert f"`{name} {old.old}` (now `{old.new}`" in text


# (subcommand argv, old spelling argv, new spelling argv, the dest both set)
ALIASES = [
    (["run"], ["--timeout", "7"], ["--deadline", "7"], "deadline"),
    (["bench"], ["--timeout", "7"], ["--request-timeout", "7"], "request_timeout"),
    (["grade", "r.csv", "--out", "o"], ["--html"], ["--submission-reports"], "submission_reports"),
]


def test_every_deprecated_spelling_is_tested():
    assert {(old.commands[0], old.old) for old in DEPRECATED} == {(argv[0], o[0]) for argv, o, _, _ in ALIASES}


@pytest.mark.parametrize(("argv", "old", "new", "dest"), ALIASES, ids=lambda v: " ".join(v) if isinstance(v, list)
                         else v)
def test_an_old_spelling_works_as_the_new_one_hidden_and_with_one_note(argv, old, new, dest, capsys):
    parsers = subcommand_parsers()
    assert old[0] not in visible_options(parsers[argv[0]])  # hidden from --help
    assert new[0] in visible_options(parsers[argv[0]])
    with_new = build_parser().parse_args(argv + new)
    assert capsys.readouterr().err == ""
    with_old = build_parser().parse_args(argv + old + old)  # given twice: still one note
    assert getattr(with_old, dest) == getattr(with_new, dest)
    err = capsys.readouterr().err
    assert err.count("deprecated") == 1 and f"{old[0]} is deprecated" in err and f"use {new[0]}" in err


def test_the_pytest_plugin_keeps_its_old_timeout_spelling_with_one_note(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS" and not k.startswith("PYTEST_XDIST")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--conformance-timeout", "5",
                           "--co", "-q"], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 5, proc.stdout + proc.stderr  # 5: no tests collected (an empty directory)
    assert proc.stderr.count("--conformance-timeout is deprecated") == 1  # pytest parses twice: one note
    assert "use --conformance-deadline" in proc.stderr


def test_run_with_the_old_timeout_against_the_embedded_server(tmp_path):
    """`streamconform run --timeout 30 --quiet` (no URL: the embedded reference server) still passes, says once that
    --timeout is now --deadline, and --token-method is --set token_method=...; the saved capture re-checks with
    another method through `check --token-method`."""
    capture = tmp_path / "cap.json"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--timeout", "30", "--quiet",
                           "--token-method", "words", "--json", "-", "--save-capture", str(capture)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("--timeout is deprecated") == 1 and "use --deadline" in proc.stderr
    assert "PASS" in proc.stderr  # the table goes to stderr with --json -
    assert json.loads(proc.stdout)["metrics"]["token_method"] == "words"
    check = subprocess.run([sys.executable, "-m", "harness.cli", "check", str(capture), "--token-method", "chunks",
                            "--json", "-", "--quiet"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["metrics"]["token_method"] == "chunks"


def test_grade_sends_headers_settings_dialect_and_model_and_writes_the_summary_json(tmp_path, capsys):
    with EmbeddedServer(ServerConfig(api_key="sk-course-key", **FAST)) as server:
        roster = write_roster(tmp_path / "r.csv", [{"id": "a", "url": server.endpoint}])
        out = tmp_path / "out"
        base = ["grade", str(roster), "--out", str(out), "--allow-private", "--profile", quick_profile(tmp_path),
                "--retry-delay", "0", "--deadline", "20", "--quiet"]
        # Without the key the server refuses the request: the header below is what makes it answer.
        assert cli_main(base + ["--out", str(tmp_path / "nokey")]) == 0
        assert "http.status" in records(tmp_path / "nokey")["a"]["failed_checks"]
        capsys.readouterr()
        argv = base + ["-H", "Authorization: Bearer sk-course-key", "--set", "content.min_chars=100000",
                       "--dialect", "openai", "--model", "course-model", "--token-method", "words", "--json", "-"]
        assert cli_main(argv) == 0
        summary = json.loads(capsys.readouterr().out)  # --json -: the summary alone on stdout
        assert summary == json.loads((out / "summary.json").read_text())
        record = records(out)["a"]
        assert record["status"] == "ok"
        checks = {c["id"]: c for c in record["result"]["checks"]}
        assert checks["http.status"]["status"] == "pass"
        assert checks["content.chars"]["status"] == "fail"  # --set content.min_chars
        curl = checks["http.status"]["reproduce"]
        assert '"messages"' in curl and "course-model" in curl  # --dialect openai, --model
        assert "sk-course-key" not in json.dumps(record)  # the key is sent, never written down
        assert record["result"]["metrics"]["token_method"] == "words"
        assert record["request_options"] == {"set": ["content.min_chars=100000", "token_method=words"],
                                             "headers": ["Authorization"], "dialect": "openai",
                                             "model": "course-model", "max_tokens": None}

        # The same command again: nothing to grade. Another --set asks another question: graded again.
        assert cli_main(argv) == 0
        assert records(out)["a"]["finished_at"] == record["finished_at"]
        capsys.readouterr()
        changed = [v if v != "content.min_chars=100000" else "content.min_chars=10" for v in argv]
        assert cli_main(changed) == 0
        assert "stale (request options changed: 1)" in capsys.readouterr().err
        regraded = {c["id"]: c for c in records(out)["a"]["result"]["checks"]}
        assert regraded["content.chars"]["status"] == "pass"


def test_grade_json_path_is_checked_before_grading(tmp_path, capsys):
    roster = write_roster(tmp_path / "r.csv", [{"id": "a", "url": "ftp://example.test/"}])
    blocked = Path(__file__) / "summary.json"  # below a regular file: not even root can create it
    assert cli_main(["grade", str(roster), "--out", str(tmp_path / "o"), "--json", str(blocked)]) == 2
    assert "--json" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results").exists()


class OpenAIOnly(http.server.BaseHTTPRequestHandler):
    """Answers the openai dialect with a short stream and refuses anything else with 400, as an OpenAI-compatible
    server refuses {"prompt": ...}."""

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if "messages" not in body:
            payload = json.dumps({"error": {"message": "'messages' is required", "type": "invalid_request_error"}})
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in ("Tokens ", "arrive ", "one ", "event ", "at ", "a ", "time."):
            chunk = {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def openai_only_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OpenAIOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    finally:
        server.shutdown()
        server.server_close()


def bench_json(tmp_path: Path, *argv: str) -> tuple[int, dict]:
    out = tmp_path / "bench.json"
    code = cli_main(["bench", *argv, "--concurrency", "1", "--requests", "2", "--json", str(out)])
    return code, json.loads(out.read_text()) if out.exists() else {}


def test_bench_dialect_auto_falls_back_when_the_profile_dialect_is_refused(tmp_path, capsys):
    with openai_only_server() as url:
        code, doc = bench_json(tmp_path, url, "--dialect", "auto", "--timeout", "10")
    err = capsys.readouterr().err
    assert code == 0 and doc["levels"][0]["completed"] == 2
    assert doc["dialect"] == "openai" and doc["options"]["timeout_s"] == 10  # --timeout: --request-timeout
    assert doc["options"]["dialect_auto"] == ("dialect auto: prompt was refused with 400, openai answered 200: "
                                              "using openai")
    assert "--timeout is deprecated" in err


def test_bench_dialect_auto_keeps_the_profile_dialect_when_it_is_answered(tmp_path, capsys):
    with EmbeddedServer(ServerConfig(**FAST)) as server:
        code, doc = bench_json(tmp_path, server.endpoint, "--dialect", "auto")
    assert code == 0 and doc["dialect"] == "prompt"
    assert doc["options"]["dialect_auto"] == "dialect auto: prompt answered 200: using prompt"
    assert "dialect auto: prompt answered 200" in capsys.readouterr().out


def test_every_subcommand_is_covered():
    assert set(subcommand_parsers()) == set(COMMANDS)
