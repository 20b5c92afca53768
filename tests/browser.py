"""Drive Debian's headless Chromium from tests, to look at reports the way a person would.

Why the DevTools protocol over a pipe (``--remote-debugging-pipe``): it needs no websocket client and no port, and
it gives exactly what the report tests assert on: console messages and uncaught exceptions, every network request
the page tried to make, a full-page screenshot, and script evaluation (were the charts drawn?). Messages are JSON
objects terminated by NUL bytes; Chromium reads commands on fd 3 and writes replies and events on fd 4.

The network is off three ways: DevTools emulates an offline connection, every host name resolves to nothing, and a
proxy on a closed loopback port catches anything that still tries. A request that leaves the page therefore fails,
but it is still *recorded* (``Network.requestWillBeSent``) so a test can assert that none was attempted.
"""

from __future__ import annotations

import base64
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
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# Flags from the lead's brief plus the ones that keep a test run quiet, deterministic and offline.
FLAGS = (
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
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--remote-debugging-pipe",
)

# Returns one entry per canvas/svg: how big it is and whether anything was painted on it.
CHART_PROBE = """
(() => {
  const out = [];
  for (const c of document.querySelectorAll('canvas')) {
    let painted = 0;
    try {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < d.length; i += 4) { if (d[i] !== 0) painted++; }
    } catch (e) { painted = -1; }
    out.push({kind: 'canvas', id: c.id || '', width: c.width, height: c.height, painted: painted});
  }
  for (const s of document.querySelectorAll('svg')) {
    out.push({kind: 'svg', id: s.id || '', width: s.clientWidth, height: s.clientHeight,
              painted: s.querySelectorAll('path,rect,circle,line,polyline').length});
  }
  return JSON.stringify(out);
})()
"""


def find_chromium() -> str | None:
    """The Chromium executable to use: $STREAMCONFORM_CHROMIUM, else the first of CANDIDATES on PATH."""
    explicit = os.environ.get("STREAMCONFORM_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> str | None:
    """find_chromium(), installing Debian's `chromium` package first when it is missing and we may.

    The test setup installs the browser (no browser download by a test tool): only as root with apt-get present,
    and never when STREAMCONFORM_NO_BROWSER_INSTALL is set. Returns None when it still cannot be had.
    """
    found = find_chromium()
    if found or os.environ.get("STREAMCONFORM_NO_BROWSER_INSTALL"):
        return found
    if not shutil.which("apt-get") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", "chromium"],
                ["sh", "-c", "apt-get update -q && apt-get install -y -q chromium"]):
        try:
            subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        found = find_chromium()
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """Chromium could not be started, stopped answering, or a DevTools command failed."""


@dataclass
class PageReport:
    """What a person (and a test) would notice about one page."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    console_messages: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    charts: list[dict] = field(default_factory=list)
    title: str = ""
    text: str = ""
    screenshot: bytes = b""

    def painted_charts(self) -> list[dict]:
        return [c for c in self.charts if c["painted"] > 0 and c["width"] > 0 and c["height"] > 0]


def _high_fd(fd: int) -> int:
    """Move a descriptor to >= 10 so the child can dup2 onto 3 and 4 without clobbering it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium process; ``open(path)`` loads a file in a fresh tab and reports on it."""

    def __init__(self, executable: str | None = None, *, timeout: float = 30.0, width: int = 1280,
                 height: int = 900) -> None:
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("chromium not found (install Debian's `chromium` package)")
        self.timeout = timeout
        self.width, self.height = width, height
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

    def start(self) -> None:
        cmd_r, cmd_w = (_high_fd(fd) for fd in os.pipe())
        res_r, res_w = (_high_fd(fd) for fd in os.pipe())

        def wire_fds() -> None:  # runs in the child, before exec
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        argv = [self.executable, *FLAGS, f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}", "about:blank"]
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(3, 4), preexec_fn=wire_fds,
                start_new_session=True,  # its own process group: a forced stop takes its helpers down too
            )
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
            except OSError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the group we created at start: Chromium and its helpers
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
            for f in (self._out, self._in):
                try:
                    f.close()
                except OSError:
                    pass
        shutil.rmtree(self._profile, ignore_errors=True)

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
        self._send_raw(msg)
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            while msg_id not in self._replies:
                if -1 in self._replies:
                    raise BrowserError(self._replies[-1]["error"]["message"])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"no reply to {method} within {timeout or self.timeout} s")
                self._lock.wait(left)
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    # -- one page ----------------------------------------------------------------------------------------------
    def open(self, path: str | Path, *, screenshot: str | Path | None = None,
             ready_expression: str = "document.readyState === 'complete'") -> PageReport:
        """Load a file with the network off; collect console errors, requests, charts and a screenshot."""
        url = Path(path).resolve().as_uri()
        report = PageReport(url=url)
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable", session=session)
            self.send("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                            "uploadThroughput": -1}, session=session)
            self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                             "deviceScaleFactor": 1, "mobile": False},
                      session=session)
            self.send("Page.navigate", {"url": url}, session=session)
            # Checked against the URL too: about:blank is "complete" before the navigation has committed.
            self._wait_ready(session, f"location.href === {json.dumps(url)} && ({ready_expression})")
            report.charts = json.loads(self.evaluate(CHART_PROBE, session))
            report.title = self.evaluate("document.title", session)
            report.text = self.evaluate("document.body ? document.body.innerText : ''", session)
            if screenshot is not None:
                report.screenshot = self._full_page_png(session)
                Path(screenshot).write_bytes(report.screenshot)
            time.sleep(0.1)  # let late console/log events arrive before draining
            self._drain(session, report)
        finally:
            self.send("Target.closeTarget", {"targetId": target})
        return report

    def evaluate(self, expression: str, session: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=session)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluation failed: {result['exceptionDetails'].get('text')}")
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

    def _full_page_png(self, session: str) -> bytes:
        metrics = self.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        height = min(int(size["height"]) + 1, 8000)  # bounded: a screenshot, not an archive
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                         session=session)["data"]
        return base64.b64decode(data)

    def _drain(self, session: str, report: PageReport) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                line = f"console.{params.get('type')}: {text}"
                report.console_messages.append(line)
                if params.get("type") in ("error", "assert"):
                    report.console_errors.append(line)
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                desc = details.get("exception", {}).get("description") or details.get("text", "")
                report.console_errors.append(f"uncaught: {desc}")
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                line = f"log.{entry.get('level')} [{entry.get('source')}]: {entry.get('text')} {entry.get('url', '')}"
                report.console_messages.append(line)
                if entry.get("level") == "error":
                    report.console_errors.append(line)
            elif method == "Network.requestWillBeSent":
                req_url = params.get("request", {}).get("url", "")
                if req_url != report.url:
                    report.requests.append(req_url)
