"""clients.browser: headless Chromium reads the endpoint the way a browser-based exam page does.

In the client's subprocess: a throwaway loopback server serves one page on its own port, so the page's origin
is not the endpoint's and the browser applies CORS, preflight included. The page ``fetch()``es the endpoint
(POST, the JSON body, the run's headers and credentials, ``credentials`` mode from the profile:
``same-origin`` by default, what a page that sets no mode sends) and reads ``response.body`` with a
``TextDecoder``, recording every read: its time since ``fetch()`` was called, its bytes (up to a cap: Chromium
cannot run under an address-space limit, so the page bounds what it keeps instead) and the text the decoder
gave. A fetch the browser refuses is reported with the reason DevTools gives (``Network.loadingFailed``'s CORS
error, the console's "blocked by CORS policy" line).

The browser may reach only the endpoint's host, resolved to the address the main request connected to
(``--host-resolver-rules``), through no proxy; redirects are not followed unless the run follows them.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from harness.capture.guard import parse_ip
from harness.clients.browser import Browser, BrowserError, find_chromium
from harness.clients.raw import capture_of, decoded
from harness.model import RequestSpec

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>streamconform client</title></head><body>
<p>streamconform: a page on another origin reading the endpoint with fetch().</p>
<script>
function b64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}
window.streamconformFetch = async function (cfg) {
  const out = {read: false, status: null, type: null, headers: [], reads: [], text_reads: [], error: null,
               error_type: null, ended: false, truncated: false, response_ms: null};
  const abort = new AbortController();
  let expired = false;
  const timer = setTimeout(() => { expired = true; abort.abort(); }, cfg.timeout_ms);
  const t0 = performance.now();
  let response;
  try {
    response = await fetch(cfg.url, {method: cfg.method, headers: cfg.headers, body: cfg.body, mode: 'cors',
                                     credentials: cfg.credentials, redirect: cfg.redirect, cache: 'no-store',
                                     signal: abort.signal});
  } catch (e) {
    clearTimeout(timer);
    out.error = expired ? 'no answer within the run\\'s deadline' : e.name + ': ' + e.message;
    out.error_type = expired ? 'deadline' : e.name;
    out.error_ms = performance.now() - t0;
    return out;
  }
  out.response_ms = performance.now() - t0;
  out.status = response.status;
  out.type = response.type;
  response.headers.forEach((v, k) => out.headers.push([k, v]));
  const decoder = new TextDecoder();
  let size = 0;
  try {
    if (response.body) {
      const reader = response.body.getReader();
      for (;;) {
        const {done, value} = await reader.read();
        const t = performance.now() - t0;
        if (done) {
          const tail = decoder.decode();
          if (tail) out.text_reads.push([t, tail]);
          out.ended = true;
          break;
        }
        let chunk = value;
        if (size + chunk.length > cfg.cap) {
          chunk = chunk.subarray(0, cfg.cap - size);
          out.truncated = true;
        }
        size += chunk.length;
        out.reads.push([t, b64(chunk)]);
        out.text_reads.push([t, decoder.decode(chunk, {stream: true})]);
        if (out.truncated) { reader.cancel(); break; }
      }
    } else {
      out.ended = true;
    }
    out.read = true;
  } catch (e) {
    out.error = expired ? 'no end of stream within the run\\'s deadline' : e.name + ': ' + e.message;
    out.error_type = expired ? 'deadline' : e.name;
    out.read = size > 0;
  }
  clearTimeout(timer);
  out.t_end = performance.now() - t0;
  return out;
};
</script></body></html>"""

CREDENTIALS = ("omit", "same-origin", "include")
# Command time for everything but the fetch itself (start, page load): a browser that takes longer is broken.
_SETUP_TIMEOUT_S = 20.0


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = PAGE.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the parent reads stdout
        pass


def browser_flags(url: str, pin: dict[str, str] | None) -> list[str]:
    """No proxy, and (for a host name) one resolution: the endpoint's host to the checked address."""
    flags = ["--no-proxy-server"]
    if not pin:
        return flags
    host = (urlsplit(url).hostname or "").lower()
    ip = f"[{pin['ip']}]" if ":" in pin["ip"] else pin["ip"]
    # The rules apply to IP literals too: the page's own origin and the checked address are excluded by name.
    rules = [f"MAP {host} {ip}"] if host and parse_ip(host) is None else []
    rules += ["MAP * ~NOTFOUND", *(f"EXCLUDE {a}" for a in dict.fromkeys(("127.0.0.1", ip)))]
    return [*flags, "--host-resolver-rules=" + ", ".join(rules)]


class BrowserRunner:
    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        executable = find_chromium(job.get("chromium"))
        if executable is None:
            raise BrowserError("Chromium not found")
        self.server = _PageServer(("127.0.0.1", 0), _Page)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.browser = Browser(executable, timeout=_SETUP_TIMEOUT_S, new_session=False,
                               flags=browser_flags(job["url"], job.get("pin")))
        self._page: Any = None
        try:
            self._open()
        except BaseException:
            self.close()  # Chromium shares our process group but would outlive us: never leave it running
            raise

    def _open(self) -> None:
        self.browser.start()
        self.version = self.browser.send("Browser.getVersion").get("product", "Chromium")
        self._page = self.browser.page(self.origin + "/")
        self.session = self._page.__enter__()
        for domain in ("Runtime", "Log", "Network"):
            self.browser.send(f"{domain}.enable", session=self.session)
        self.browser._wait_ready(self.session, "document.readyState === 'complete' && "
                                               "typeof window.streamconformFetch === 'function'")
        list(self.browser.events())  # the page load's own events are not the fetch's

    def run(self, timeout: float) -> dict[str, Any]:
        job = self.job
        headers = {"Content-Type": "application/json", **(job.get("headers") or {})}
        credentials = job.get("credentials") if job.get("credentials") in CREDENTIALS else "same-origin"
        cfg = {"url": job["url"], "method": job.get("method", "POST"), "headers": headers,
               "body": job.get("body"), "credentials": credentials,
               "redirect": "follow" if job.get("follow_redirects") else "manual",
               "cap": int(job.get("cap_bytes") or 1024 * 1024), "timeout_ms": int(max(0.05, timeout) * 1000)}
        try:
            page = self.browser.evaluate(f"window.streamconformFetch({json.dumps(cfg)})", self.session,
                                         timeout=timeout + 5.0)
        except BrowserError as exc:
            page = {"read": False, "error": f"the page did not finish: {exc}", "error_type": "BrowserError"}
        return self._result(page or {}, credentials)

    def _result(self, page: dict[str, Any], credentials: str) -> dict[str, Any]:
        job = self.job
        blocked = self._blocked_reason()
        error = page.get("error")
        if error and blocked:
            error = f"{error} ({blocked})"
        if page.get("type") == "opaqueredirect":
            error, page["read"] = "the endpoint redirected and the run does not follow redirects", False
        request = RequestSpec(url=job["url"], body=(job.get("body") or "").encode(),
                              dialect=job.get("dialect", "prompt"))
        raw = {"status": page.get("status"), "headers": page.get("headers") or [],
               "reads": page.get("reads") or [],
               "truncated": bool(page.get("truncated")), "ended": bool(page.get("ended")),
               "t_request_sent": None, "t_end": (page.get("t_end") or 0.0) / 1000.0}
        raw["reads"] = [[t / 1000.0, b] for t, b in raw["reads"]]
        text_raw = dict(raw, reads=[[t / 1000.0, s] for t, s in page.get("text_reads") or []])
        text, first = decoded(capture_of(text_raw, request, text=True)) if page.get("status") else ("", None)
        return {"read": bool(page.get("read")), "text": text,
                "first_text_ms": None if first is None else first * 1000,
                "error": error, "error_type": page.get("error_type"), "cors": blocked, "raw": raw,
                "status": page.get("status"), "response_ms": page.get("response_ms"), "origin": self.origin,
                "credentials": credentials, "clock": "fetch", "version": self.version,
                "reads": len(raw["reads"])}

    def _blocked_reason(self) -> str | None:
        """Why the browser refused the fetch, as DevTools says it (a CORS error and the console's line)."""
        cors, lines = None, []
        for event in self.browser.events():
            method, params = event.get("method"), event.get("params") or {}
            if method == "Network.loadingFailed":
                status = params.get("corsErrorStatus") or {}
                if status.get("corsError") and cors is None:
                    cors = "CORS error " + status["corsError"] + (
                        f" ({status['failedParameter']})" if status.get("failedParameter") else "")
                elif params.get("blockedReason") and cors is None:
                    cors = f"blocked: {params['blockedReason']}"
            elif method == "Log.entryAdded":
                text = (params.get("entry") or {}).get("text") or ""
                if "CORS" in text or "blocked" in text:
                    lines.append(text)
        parts = [p for p in (cors, lines[0] if lines else None) if p]
        return "; ".join(parts)[:600] or None

    def close(self) -> None:
        try:
            if self._page is not None:
                self._page.__exit__(None, None, None)
        finally:
            self.browser.close()
            self.server.shutdown()
            self.server.server_close()


def prepare(job: dict[str, Any]) -> BrowserRunner:
    return BrowserRunner(job)
