"""A reader that closes the pipe early (`streamconform ... | head`) ends the command quietly with exit 141
(128 + SIGPIPE, as a shell reports for any writer cut off that way), never "internal error ... please report it"."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from harness.cli import COMMANDS, EXIT_BROKEN_PIPE


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}


def into_a_closed_pipe(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The command writing into a pipe whose reader has already gone: every write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "harness.cli", *args], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=child_env(), timeout=timeout)
    finally:
        os.close(write_end)


def assert_quiet(stderr: str) -> None:
    for noise in ("internal error", "Traceback", "Exception ignored", "BrokenPipeError"):
        assert noise not in stderr, stderr


def test_serve_list_faults_into_a_closed_pipe_exits_141_quietly():
    proc = into_a_closed_pipe("serve", "--list-faults")
    assert proc.returncode == EXIT_BROKEN_PIPE, proc.stderr
    assert proc.stderr == ""


def test_serve_list_faults_read_one_line_then_closed_is_quiet():
    """`| head -1`: the whole list fits the pipe's buffer, so the writer may finish before the reader leaves
    (exit 0) or find it gone (141); either way nothing is said."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", "--list-faults"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env())
    first = proc.stdout.readline()
    proc.stdout.close()
    _, stderr = proc.communicate(timeout=60)
    assert first.split()[0] and proc.returncode in (0, EXIT_BROKEN_PIPE), (proc.returncode, stderr)
    assert stderr == ""


def test_run_whose_reader_leaves_after_the_first_line_exits_141_quietly():
    """The first line ("no URL given: ...") arrives at once; the table comes seconds later, into a closed pipe."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        first = proc.stdout.readline()
        proc.stdout.close()
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first.startswith("no URL given"), first
    assert proc.returncode == EXIT_BROKEN_PIPE, stderr
    assert_quiet(stderr)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_into_a_closed_pipe_is_quiet(command):
    proc = into_a_closed_pipe(command, "--help")
    assert proc.returncode in (0, EXIT_BROKEN_PIPE), proc.stderr
    assert proc.stderr == ""


def test_a_broken_pipe_inside_a_command_is_not_an_internal_error(monkeypatch, capsys):
    """main() itself, with a stand-in subcommand whose output hits a closed pipe."""
    import harness.cli

    module = types.ModuleType("broken_pipe_command")
    module.add_arguments = lambda parser: None

    def main(args):
        raise BrokenPipeError(32, "Broken pipe")

    module.main = main
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(harness.cli.COMMANDS, "broken", (module.__name__, "writes into a closed pipe"))
    monkeypatch.setitem(harness.cli.EXAMPLES, "broken", ("streamconform broken",))
    assert harness.cli.main(["broken"]) == EXIT_BROKEN_PIPE
    assert "internal error" not in capsys.readouterr().err
