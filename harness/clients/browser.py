"""A headless Chromium driven over the DevTools pipe: the one driver of the package and of the tests.

Why the DevTools protocol over a pipe (``--remote-debugging-pipe``): it needs no websocket client and no port.
Messages are JSON objects terminated by NUL bytes; Chromium reads commands on fd 3 and writes replies and
events on fd 4. ``clients.browser`` (harness/clients/browser_client.py) loads a page and runs a fetch in it;
the report tests (tests/browser.py) subclass :class:`Browser` to look at reports with the network off."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ENV = "STREAMCONFORM_CHROMIUM"

# Flags every use needs: headless, no sandbox (containers run as root), quiet and deterministic.
BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium executable: ``explicit`` (``--chromium``), else $STREAMCONFORM_CHROMIUM, else the first of
    CANDIDATES on PATH. A named one that does not exist is None, not a silent fallback to another browser."""
    named = explicit or os.environ.get(CHROMIUM_ENV)
    if named:
        found = shutil.which(named) if os.sep not in named else (named if Path(named).exists() else None)
        return found
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """Chromium could not be started, stopped answering, or a DevTools command failed."""


def _high_fd(fd: int) -> int:
    """Move a descriptor to >= 10 so the child can dup2 onto 3 and 4 without clobbering it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium process. ``send`` a DevTools command, ``page()`` a fresh tab's session."""

    def __init__(self, executable: str | None = None, *, timeout: float = 30.0, width: int = 1280,
                 height: int = 900, flags: Sequence[str] = (), new_session: bool = True) -> None:
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("chromium not found (install Debian's `chromium` package)")
        self.timeout = timeout
        self.width, self.height = width, height
        self.flags = tuple(flags)
        # True: Chromium gets a process group of its own (a forced stop takes its helpers down too); False: it
        # stays in ours, for a caller that runs in a group of its own and is killed as one (the clients
        # stage).
        self.new_session = new_session
        self._next_id = 0
        self._events: queue.Queue[dict] = queue.Queue()
        self._replies: dict[int, dict] = {}
        self._lock = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._profile = tempfile.mkdtemp(prefix="streamconform-chromium-")

    # -- process and pipe ------------------------------------------------------------------------------------
    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        cmd_r, cmd_w = (_high_fd(fd) for fd in os.pipe())
        res_r, res_w = (_high_fd(fd) for fd in os.pipe())

        def wire_fds() -> None:  # runs in the child, before exec
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        argv = [self.executable, *BASE_FLAGS, *self.flags, f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}", "about:blank"]
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(3, 4), preexec_fn=wire_fds,
                start_new_session=self.new_session,
            )
        except OSError as exc:
            shutil.rmtree(self._profile, ignore_errors=True)
            raise BrowserError(f"cannot start {self.executable}: {exc}") from exc
        finally:
            os.close(cmd_r)
            os.close(res_w)
        self._out = os.fdopen(cmd_w, "wb", buffering=0)
        self._in = os.fdopen(res_r, "rb", buffering=0)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.send("Browser.getVersion")  # fails fast if the pipe is not wired

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                self._send_raw({"id": self._new_id(), "method": "Browser.close"})
            except (OSError, ValueError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                if self.new_session:
                    self.kill_group(proc.pid)
                else:
                    proc.kill()
                proc.wait(timeout=10)
            for f in (self._out, self._in):
                try:
                    f.close()
                except OSError:
                    pass
        shutil.rmtree(self._profile, ignore_errors=True)

    @staticmethod
    def kill_group(pid: int) -> None:
        """SIGKILL the process group Chromium was started in: the browser and its helpers, nothing else."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                data = self._in.read(65536)
            except (OSError, ValueError):
                data = b""
            if not data:
                with self._lock:
                    self._replies[-1] = {"error": {"message": "chromium closed the pipe"}}
                    self._lock.notify_all()
                return
            buf += data
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        self._replies[msg["id"]] = msg
                        self._lock.notify_all()
                else:
                    self._events.put(msg)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _send_raw(self, msg: dict) -> None:
        self._out.write(json.dumps(msg).encode() + b"\0")

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Send one DevTools command and wait for its reply; raise BrowserError on error or timeout."""
        msg_id = self._new_id()
        msg: dict = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            self._send_raw(msg)
        except (OSError, ValueError) as exc:
            raise BrowserError(f"{method}: chromium is gone ({exc})") from exc
        wait = timeout or self.timeout
        deadline = time.monotonic() + wait
        with self._lock:
            while msg_id not in self._replies:
                if -1 in self._replies:
                    raise BrowserError(self._replies[-1]["error"]["message"])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"no reply to {method} within {wait:g} s")
                self._lock.wait(left)
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def events(self) -> Iterator[dict]:
        """The events received so far (and not yet taken), oldest first."""
        while True:
            try:
                yield self._events.get_nowait()
            except queue.Empty:
                return

    # -- pages
    # -------------------------------------------------------------------------------------------------
    @contextmanager
    def page(self, url: str = "about:blank") -> Iterator[str]:
        """A fresh tab on ``url``; yields its flattened session id and closes the tab afterwards."""
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            yield session
        finally:
            try:
                self.send("Target.closeTarget", {"targetId": target})
            except BrowserError:
                pass  # the browser is gone: close() cleans up

    def evaluate(self, expression: str, session: str, timeout: float | None = None):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=session, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            described = (details.get("exception") or {}).get("description") or details.get("text")
            raise BrowserError(f"evaluation failed: {described}")
        return result["result"].get("value")

    def _wait_ready(self, session: str, expression: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(f"!!({expression})", session):
                    # Two animation frames: whatever the load handlers drew has reached the canvas.
                    self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
                                  session)
                    return
            except BrowserError:
                pass  # the navigation replaced the context mid-evaluation; ask again
            time.sleep(0.05)
        raise BrowserError(f"page not ready within {self.timeout} s: {expression}")
