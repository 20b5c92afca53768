"""The clients stage, last in run_target: the main request once more through each selected client.

Every client runs in its own subprocess (harness/clients/child.py), started in a process group of its own so
the whole group (the browser's helpers included) can be killed at the run's deadline. All are started together
(their start-up, importing an SDK or starting Chromium, is not the endpoint's time) and then sent, one at a
time, the same request as the main stream: the endpoint never serves two clients at once, as it never serves a
measured stream beside another request.

Each client may reach only the endpoint's host, at the address the main request connected to (already checked
by the run's address policy), and keeps at most its share of the run's byte budget. What it read is filed as
plain data in ``extra["clients"]``::

    {"requested": [names as asked],
     "results": {name: {"read", "text", "first_text_ms", "error", "error_type", "raw", "version", ...}
                       | {"skipped": why}}}
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import time
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.clients import CLIENTS, expand, requested

# Body bytes one client keeps at most (its share of the run's byte budget when less is left, never below the
# floor).
CLIENT_CAP_BYTES = 1024 * 1024
MIN_CLIENT_CAP_BYTES = 64 * 1024
# Address space of a Python client's process (RLIMIT_AS): the interpreter, an SDK and threads fit in well
# under it; a client that buffers a flood hits it and fails with MemoryError instead of taking the machine
# down.
MEMORY_BYTES = 512 * 1024 * 1024
# A client gets no request when less than this is left of the run: it could not finish anyway.
MIN_CLIENT_S = 1.0
READY_TIMEOUT_S = 30.0
# One result line: base64 of the capped bytes and the text, JSON-escaped.
RESULT_LINE_LIMIT = 32 * 1024 * 1024
STDERR_TAIL = 2000
# Runs reading with clients at once in one process (grade runs dozens of endpoints together): each holds a
# browser or an SDK process, so more would only trade memory for CPU time the streams' timing needs. Waiting
# for a slot spends the run's own deadline, like any stage.
CONCURRENT_RUNS = max(2, os.cpu_count() or 2)
_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
# Headers the harness adds for its own capture: each client sends its own (the user's -H values stay).
_CLIENT_OWNED = frozenset({"accept", "accept-encoding", "content-type", "content-length", "host",
                           "connection"})
# Settings that would change what a client sends: a client here is told everything explicitly.
_CLIENT_ENV = ("OPENAI_", "ANTHROPIC_", "OLLAMA_", "GOOGLE_", "GEMINI_", "HTTP_PROXY", "HTTPS_PROXY",
               "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy")


def _job_headers(spec: Any, user_headers: dict[str, str]) -> dict[str, str]:
    given = {k.lower() for k in user_headers}
    return {k: v for k, v in spec.headers.items()
            if k.lower() not in _CLIENT_OWNED or (k.lower() in given and k.lower() != "accept-encoding")}


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV)}
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the harness package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Child:
    """One client's process: started at once, sent its request later."""

    def __init__(self, name: str, job: dict[str, Any]) -> None:
        self.name, self.job = name, job
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = b""
        self._drain: asyncio.Task | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "harness.clients.child", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_child_env(),
            start_new_session=True, limit=RESULT_LINE_LIMIT)
        self._drain = asyncio.create_task(self._keep_stderr_tail())
        await self._write(self.job)

    async def _keep_stderr_tail(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            data = await self.proc.stderr.read(65536)
            if not data:
                return
            self.stderr = (self.stderr + data)[-STDERR_TAIL:]

    async def _write(self, obj: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()

    async def line(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout=max(0.01, timeout))
        return json.loads(raw) if raw.strip() else None

    def died(self) -> str:
        """Why the process ended without a result: its exit status and the end of what it wrote to stderr."""
        code = self.proc.returncode if self.proc is not None else None
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        tail = self.stderr.decode("utf-8", "replace").strip().splitlines()
        said = f": {tail[-1][:300]}" if tail else ""
        return f"the client's process ended without a result ({how}){said}"

    async def stop(self) -> None:
        """Kill the process group (the client and anything it started: Chromium and its helpers) if still
        there."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group start_new_session made for this child
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5.0)
        else:  # the client ended; a browser it left behind (same group) must not outlive it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(BaseException):
                await self._drain


async def collect(run: Any) -> None:
    asked = requested(run.profile)
    names = expand(asked, run.dialect)
    if not names:
        return
    results: dict[str, Any] = {}
    # As asked ("all" kept): a re-check of the bundle then plans the same checks as the run did.
    run.extra["clients"] = {"requested": asked, "results": results}
    runnable = []
    for name in names:
        client = CLIENTS[name]
        if run.dialect not in client.dialects:
            continue  # its check says it does not apply
        why = client.available(getattr(run.options, "chromium", None))
        if why is not None:
            results[name] = {"skipped": why, "installed": False}
        else:
            runnable.append(name)
    primary = run.primary
    if not runnable:
        return
    if primary is None or not primary.remote_addr:
        for name in runnable:
            results[name] = {"skipped": "not run: the main request reached no address to send it to"}
        return
    loop = asyncio.get_running_loop()
    slots = _SLOTS.setdefault(loop, asyncio.Semaphore(CONCURRENT_RUNS))
    async with slots:
        children = [_Child(name, job) for name, job in _jobs(run, runnable).items()]
        try:
            for child in children:
                await child.start()
            for child in children:
                results[child.name] = await _one(child, run)
                await child.stop()
        finally:
            for child in children:
                await child.stop()


def _jobs(run: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    spec = run.primary.request
    budget = getattr(run, "budget", None)
    share = budget.left() // len(names) if budget is not None else CLIENT_CAP_BYTES
    cap = max(MIN_CLIENT_CAP_BYTES, min(CLIENT_CAP_BYTES, share))
    settings = run.profile.section("clients") if hasattr(run.profile, "section") else {}
    base = {"url": spec.url, "method": spec.method, "headers": _job_headers(spec, run.options.headers or {}),
            "body": spec.body.decode("utf-8", "replace"), "dialect": spec.dialect, "cap_bytes": cap,
            "pin": {"host": urlsplit(spec.url).hostname or "", "ip": run.primary.remote_addr},
            "memory_bytes": MEMORY_BYTES, "follow_redirects": bool(run.options.follow_redirects),
            "chromium": getattr(run.options, "chromium", None),
            "credentials": str(settings.get("browser_credentials", "same-origin"))}
    return {name: dict(base, client=name) for name in names}


async def _one(child: _Child, run: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        ready = await child.line(min(READY_TIMEOUT_S, run.remaining()))
    except asyncio.TimeoutError:
        return {"skipped": "not run: the client did not start before the run's deadline",
                "error_type": "deadline"}
    except (ValueError, json.JSONDecodeError):
        ready = None
    if ready is None:
        return {"skipped": f"could not start: {child.died() if child.proc else 'no process'}", "setup": True}
    if not ready.get("ready"):
        return {"skipped": str(ready.get("error") or "could not start"), "setup": True}
    left = run.remaining()
    if left < MIN_CLIENT_S:
        return {"skipped": "not run: too little of the run's deadline was left", "error_type": "deadline"}
    await child._write({"go": True, "timeout": left - 0.5})
    sent = time.monotonic()
    try:
        result = await child.line(left + 0.5)
    except asyncio.TimeoutError:
        return {"read": False, "text": "", "first_text_ms": None, "error_type": "deadline",
                "error": f"no result within the run's deadline ({left:.1f} s left): the client was stopped"}
    except (ValueError, json.JSONDecodeError) as exc:
        result = {"read": False, "text": "", "first_text_ms": None, "error_type": "crash",
                  "error": f"the client's result could not be read ({type(exc).__name__})"}
    if result is None:
        await asyncio.sleep(0.05)  # let the exit status arrive
        result = {"read": False, "text": "", "first_text_ms": None, "error_type": "crash",
                  "error": child.died()}
    result["duration_ms"] = (time.monotonic() - sent) * 1000.0
    result["started_ms"] = (sent - started) * 1000.0
    _charge(run, result)
    return result


def _charge(run: Any, result: dict[str, Any]) -> None:
    """The bytes a client kept count against the run's byte budget, as every capture's do."""
    budget = getattr(run, "budget", None)
    raw = result.get("raw") if isinstance(result.get("raw"), dict) else None
    if budget is None or raw is None:
        return
    size = 0
    for item in raw.get("reads") or []:
        with contextlib.suppress(Exception):
            size += len(base64.b64decode(item[1]))
    budget.take(size)
