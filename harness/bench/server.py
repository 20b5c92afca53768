"""The reference server as a separate process, for `streamconform bench` with no URL and for the benchmarks.

A load benchmark must not share a process with its target: the server's Python threads would compete with the
client's event loop for the GIL and the client would measure its own contention. So with no URL the bench starts
``python -m reference_server`` on a free loopback port and stops it afterwards (by its own pid).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import httpx

from harness.errors import HarnessError
from reference_server.embedded import free_port  # re-exported: the bench tests pick unused ports with it

_ENDPOINT_PATH = "/v1/chat/completions"


class _PortTaken(Exception):
    """The child could not bind the port picked for it."""


class ReferenceServerProcess:
    """``with ReferenceServerProcess(args) as srv: srv.endpoint`` — a reference server in a child process."""

    def __init__(self, extra_args: Sequence[str] = (), host: str = "127.0.0.1", start_timeout_s: float = 20.0):
        self.host = host
        self.port = free_port(host)
        self.extra_args = list(extra_args)
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        return self.base_url + _ENDPOINT_PATH

    def __enter__(self) -> ReferenceServerProcess:
        # The free port is picked here and bound by the child: another process may take it in between. The child
        # then exits saying so, and a new port is tried (a rare race, but a benchmark should not fail on it).
        for attempt in range(3):
            try:
                return self._start()
            except _PortTaken:
                if attempt == 2:
                    raise HarnessError("the reference server found every free port taken when it started") from None
                self.port = free_port(self.host)
        raise AssertionError("unreachable")

    def _start(self) -> ReferenceServerProcess:
        cmd = [sys.executable, "-m", "reference_server", "--host", self.host, "--port", str(self.port),
               *self.extra_args]
        # stderr to a file, not a pipe: an unread pipe that fills up would stall the server mid-benchmark.
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode("utf-8", "replace")[-2000:]
                code = self.proc.returncode
                self.__exit__(None, None, None)
                if "is in use" in err:
                    raise _PortTaken(err)
                raise HarnessError(f"the reference server exited at start (code {code}): {err}")
            try:
                # trust_env=False: a proxy from the environment must not see (or break) a loopback health poll.
                if httpx.get(self.base_url + "/health", timeout=1.0, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise HarnessError(f"the reference server did not answer /health within {self.start_timeout_s:g} s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        self.proc = None
