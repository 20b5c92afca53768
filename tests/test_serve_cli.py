"""`streamconform serve` start-up: option checks, the banner, a taken port. Each case runs the real command in
a child process (a server that wrongly starts would otherwise never return), talking to it over loopback only.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

BANNER = re.compile(r"reference server on http://127\.0\.0\.1:(\d+)/v1/chat/completions")


def serve(*argv: str) -> subprocess.Popen:
    # A session of its own, so that kill() below also reaches uvicorn's worker processes (which would
    # otherwise outlive their parent and hold the stderr pipe open).
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", "--host", "127.0.0.1", *argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started, by its id
    except ProcessLookupError:
        pass
    proc.communicate(timeout=10)


def finish(proc: subprocess.Popen, timeout: float = 10.0) -> tuple[int, str]:
    """Exit code and stderr of a command expected to end on its own; killed (and failed) if it does not."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        pytest.fail("serve kept running where it should have refused to start")
    return proc.returncode, err


def wait_for_banner(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    """The port named by the banner (read line by line from stderr until it appears)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if m := BANNER.search(line):
                return int(m.group(1))
    kill(proc)
    pytest.fail(f"no banner from serve; stderr: {''.join(seen)!r}")


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)  # as Ctrl-C would: uvicorn stops its workers and exits
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        kill(proc)
    return proc.returncode


def health(port: int) -> int:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=5.0, trust_env=False).status_code


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], "0..65535"),
    (["--port", "-1"], "0..65535"),
    (["--chars", "0"], "--chars: must be at least 1"),
    (["--workers", "0"], "--workers: must be at least 1"),
    (["--fault", "nosuch"], "unknown fault 'nosuch'; see --list-faults"),
])
def test_impossible_options_are_usage_errors_before_any_banner(argv, message):
    code, err = finish(serve(*argv))
    assert code == 2
    assert message in err
    assert "streamconform serve: error:" in err
    assert not BANNER.search(err)


def test_a_port_in_use_is_a_clear_usage_error_and_no_banner():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = finish(serve("--port", str(port)))
    assert code == 2  # not uvicorn's 3, which harness/cli.py reserves for its own internal errors
    assert f"streamconform: error: port {port} is in use on 127.0.0.1" in err
    assert not BANNER.search(err)
    assert "Errno" not in err


def test_port_0_banner_names_the_bound_port_which_accepts_at_once():
    proc = serve("--port", "0", "--fault", "buffered")
    try:
        port = wait_for_banner(proc)
        assert port != 0
        assert health(port) == 200  # no retry: the socket listens before the banner is printed
    finally:
        assert stop(proc) == 0


def test_several_workers_print_the_banner_and_serve():
    proc = serve("--port", "0", "--workers", "2")
    try:
        port = wait_for_banner(proc)
        # The workers start after the banner; until then connections wait in the listen backlog.
        assert health(port) == 200
    finally:
        stop(proc)
