"""The README's two commands, run verbatim as a newcomer would: a fresh copy of the checkout, a new venv, and a
PATH that holds no venv (an activated or earlier install would hide a missing step).

Command 2 runs the test suite itself; running all of it again here would double CI's time, so the nested run is
narrowed with PYTEST_ADDOPTS (the command line stays verbatim) to the tests that depend on the fresh install: the
console script and `python -m harness` found from the new venv's interpreter.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NESTED_ENV = "STREAMCONFORM_README_NESTED"  # set in the nested run: it must not start this test again
# (the last: the ray-marked test the command's second pytest, -m ray, needs to find)
NESTED_SELECTION = ("test_list_faults_prints_one_line_per_fault or test_version"
                    " or test_the_ray_extra_is_installed")


def readme_commands() -> list[str]:
    """The shell commands of the README's numbered steps under "The two commands", in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S)]


def test_readme_has_two_commands_and_ci_runs_the_second():
    commands = readme_commands()
    assert len(commands) == 2, commands
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci.splitlines(), "the last line of .ci/run must be the README's test command, verbatim"


def _path_without_venvs() -> str:
    """PATH with every virtual environment's bin directory (and this interpreter's) left out."""
    keep = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        p = Path(entry)
        if not entry or (p.parent / "pyvenv.cfg").exists() or p == Path(sys.executable).parent:
            continue
        keep.append(entry)
    return os.pathsep.join(keep)


def _fresh_copy(dest: Path) -> None:
    """The checkout's tracked files as they are now (uncommitted edits included): what a clone would hold."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.mark.skipif(os.environ.get(NESTED_ENV) == "1", reason="this is the nested run of the README's command 2")
@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to list the checkout's files")
def test_readme_commands_work_in_a_fresh_copy(tmp_path):
    clone = tmp_path / "streamconform"
    _fresh_copy(clone)
    env = {
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PATH": _path_without_venvs(),
        NESTED_ENV: "1",
        "PYTEST_ADDOPTS": f"-q -k '{NESTED_SELECTION}'",
    }
    for name in ("PYENV_VERSION", "PYENV_ROOT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS",
                 "NO_PROXY", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        if name in os.environ:
            env[name] = os.environ[name]
    for number, command in enumerate(readme_commands(), start=1):
        proc = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=900)
        tail = (proc.stdout[-3000:] + "\n--- stderr ---\n" + proc.stderr[-3000:])
        assert proc.returncode == 0, f"README command {number} exited {proc.returncode}: {command}\n{tail}"
        if number == 1:
            assert "PASS" in proc.stdout, tail
        else:
            assert re.search(r"\b[1-9]\d* passed\b", proc.stdout), tail
            assert " failed" not in proc.stdout, tail
