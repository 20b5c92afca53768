"""Drive Debian's headless Chromium from tests, to look at reports the way a person would.

The driver itself (process, DevTools pipe, commands, pages) is the package's: harness/clients/browser.py,
which ``clients.browser`` uses too. This module adds what the report tests assert on: console messages and
uncaught exceptions, every network request the page tried to make, a full-page screenshot and whether the
charts were drawn, and installs Debian's ``chromium`` when it is missing.

The network is off three ways: DevTools emulates an offline connection, every host name resolves to nothing, and a
proxy on a closed loopback port catches anything that still tries. A request that leaves the page therefore fails,
but it is still *recorded* (``Network.requestWillBeSent``) so a test can assert that none was attempted.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.clients import browser as driver
from harness.clients.browser import BrowserError, find_chromium

__all__ = ["CHART_PROBE", "FLAGS", "Browser", "BrowserError", "PageReport", "ensure_chromium",
           "find_chromium"]

# The driver's flags plus the ones that keep a report test offline.
OFFLINE_FLAGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)
FLAGS = (*driver.BASE_FLAGS, *OFFLINE_FLAGS)

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


class Browser(driver.Browser):
    """The package's driver, network off; ``open(path)`` loads a file in a fresh tab and reports on it."""

    def __init__(self, executable: str | None = None, *, timeout: float = 30.0, width: int = 1280,
                 height: int = 900) -> None:
        super().__init__(executable, timeout=timeout, width=width, height=height, flags=OFFLINE_FLAGS)

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
        for event in self.events():
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
