"""`run` / `check` output outside a terminal (CI logs, pipes, files): one plain line per check, never wrapped,
no escape codes; the rich table stays for terminals (and leaves out colour under NO_COLOR)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.checks import load_checks

STATUS_WORDS = {f"{word}{mark}" for word in ("PASS", "FAIL", "WARN", "SKIP") for mark in ("", "?")}
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child whose stdout is not a terminal, with nothing forcing one (CI may set these)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS")}
    env.update(extra)
    return env


def run_to_file(tmp: Path, name: str, *args: str) -> tuple[int, str]:
    """The command with stdout (and stderr) going to a real file, as `streamconform run > log` would."""
    log = tmp / f"{name}.log"
    with log.open("w") as fh:
        proc = subprocess.run([sys.executable, "-m", "harness.cli", *args], stdout=fh, stderr=subprocess.STDOUT,
                              env=child_env(), timeout=180)
    return proc.returncode, log.read_text(encoding="utf-8")


def check_lines(text: str) -> list[str]:
    """Lines whose first word looks like a status (the verdict "PASS:" / "FAIL:" is not one)."""
    return [line for line in text.splitlines() if line.split(" ", 1)[0].rstrip("?") in ("PASS", "FAIL", "WARN",
                                                                                          "SKIP")]


def assert_one_whole_line_per_check(text: str, doc: dict) -> None:
    registered = set(load_checks())
    lines = check_lines(text)
    for line in lines:
        status, check_id = line.split()[:2]
        assert status in STATUS_WORDS, line
        assert check_id in registered, line
    assert len(lines) == len(doc["checks"]), text
    by_id = {line.split()[1]: line for line in lines}
    for check in doc["checks"]:
        line = by_id[check["id"]]
        assert line.split()[0].rstrip("?") == check["status"].upper(), line
        assert " ".join(check["message"].splitlines()) in line, (check["message"], line)  # whole, not wrapped


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain")
    rc, text = run_to_file(tmp, "clean", "run", "--json", str(tmp / "clean.json"), "--save-capture",
                           str(tmp / "bundle.json"))
    return {"rc": rc, "text": text, "doc": json.loads((tmp / "clean.json").read_text()),
            "bundle": tmp / "bundle.json", "tmp": tmp}


def test_a_clean_run_in_a_file_is_one_plain_line_per_check_and_short(clean_run):
    text, doc = clean_run["text"], clean_run["doc"]
    assert clean_run["rc"] == 0, text
    assert_one_whole_line_per_check(text, doc)
    assert len(text.splitlines()) < 80, text
    assert "\x1b" not in text and "┃" not in text and "│" not in text
    assert text.splitlines()[-1] == "PASS: every required check passed"
    assert any(line.startswith("TTFB ") and "tokens/s" in line for line in text.splitlines())


def test_a_fault_run_in_a_file_keeps_messages_and_reproduce_lines_whole(tmp_path):
    rc, text = run_to_file(tmp_path, "fault", "run", "--fault", "malformed-json", "--json",
                           str(tmp_path / "fault.json"))
    doc = json.loads((tmp_path / "fault.json").read_text())
    assert rc == 1, text
    assert_one_whole_line_per_check(text, doc)
    assert "\x1b" not in text
    failed = [c["id"] for c in doc["checks"] if c["status"] == "fail" and c.get("required")]
    verdicts = [line for line in text.splitlines() if line.startswith("FAIL: ")]
    assert len(verdicts) == 1 and failed and all(i in verdicts[0] for i in failed), verdicts  # on one line
    commands = {c["reproduce"] for c in doc["checks"] if c["status"] == "fail" and c.get("reproduce")}
    assert commands and all(command in text.splitlines() for command in commands), text  # each on one line
    assert any(line.startswith("the embedded reference server stopped with this run") for line in text.splitlines())


def test_check_in_a_pipe_is_plain_too_and_quiet_lists_no_check(clean_run):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "check", str(clean_run["bundle"]), "--quiet"],
                          capture_output=True, text=True, env=child_env(NO_COLOR="1"), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert check_lines(proc.stdout) == [] and "\x1b" not in proc.stdout
    assert re.search(r"^\(not listed: \d+ passed, \d+ skipped\)$", proc.stdout, re.M), proc.stdout


def colour_codes(text: str) -> list[str]:
    """SGR parameters that set a colour (30-49, 90-107); bold or dim alone is not colour."""
    found = []
    for params in SGR.findall(text):
        for p in filter(None, params.split(";")):
            if 30 <= int(p) <= 49 or 90 <= int(p) <= 107:
                found.append(params)
    return found


def on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the command with a pseudo-terminal as stdout; what it wrote."""
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *args], stdout=follower,
                                stderr=subprocess.PIPE, env=env)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
    finally:
        os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_terminal_keeps_the_table_and_no_color_leaves_colour_out(clean_run):
    args = ["check", str(clean_run["bundle"])]
    coloured = on_a_terminal(args, child_env(COLUMNS="160"))
    assert "┃" in coloured and colour_codes(coloured)  # the table, in colour, as before
    plain = on_a_terminal(args, child_env(COLUMNS="160", NO_COLOR="1"))
    assert "┃" in plain and not colour_codes(plain), plain[:2000]
