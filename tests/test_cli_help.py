"""Every subcommand's --help ends with realistic examples, and every example is a command line the parser takes."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from harness.cli import COMMANDS, EXAMPLES, build_parser


def help_text(command: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", command, "--help"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def examples_section(text: str) -> list[str]:
    """The lines under "examples:" up to the end of the help."""
    assert "\nexamples:\n" in text, text
    return [line.strip() for line in text.split("\nexamples:\n", 1)[1].splitlines() if line.strip()]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_at_least_two_examples(command):
    lines = examples_section(help_text(command))
    assert sum(line.startswith(f"streamconform {command}") for line in lines) >= 2, lines
    assert all(line.startswith(f"streamconform {command}") for line in lines), lines  # one command a line


def example_argv(line: str) -> list[str]:
    """The arguments of an example, its shell comment and any redirection or pipe left out."""
    words = shlex.split(line, comments=True)
    for i, word in enumerate(words):
        if word in ("|", ">", ">>", "2>&1"):
            return words[1:i]
    return words[1:]


@pytest.mark.parametrize(("command", "line"), [(c, line) for c, lines in EXAMPLES.items() for line in lines])
def test_every_example_parses(command, line):
    argv = example_argv(line)
    assert argv[0] == command
    args = build_parser().parse_args(argv)  # a usage error would exit 2 here
    assert args.command == command


def test_every_command_has_examples():
    assert set(EXAMPLES) == set(COMMANDS)


def test_serve_log_level_lists_its_values():
    text = help_text("serve")
    assert "--log-level {critical,error,warning,info,debug,trace}" in text
    assert build_parser().parse_args(["serve", "--log-level", "INFO"]).log_level == "info"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-level", "verbose"])
