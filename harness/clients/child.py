"""One client in its own process: ``python -m harness.clients.child``, driven by harness/clients/collect.py.

A process per client so that a client that hangs, floods its memory or crashes costs only itself: the address
space is bounded (RLIMIT_AS, Python clients; the browser's page and the Node script cap what they keep instead:
Chromium and V8 need a large address space) and the parent kills the process group at the run's deadline.

Protocol over stdin/stdout, one JSON object per line:
    parent -> child   the job: client, url, method, headers, body, dialect, pin {host, ip}, cap_bytes,
                      memory_bytes, follow_redirects, chromium
    child -> parent   {"ready": true} once the client is imported and set up (not the endpoint's time)
    parent -> child   {"go": true, "timeout": seconds}: send the request now, within that time
    child -> parent   the result: {"read", "text", "first_text_ms", "error", "error_type", "raw", ...}
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from typing import Any

# Characters of client text kept (beyond, the text is cut and said so): the comparison needs no more.
TEXT_CAP_CHARS = 1024 * 1024
MODULES = {
    "openai_python": "harness.clients.openai_python",
    "anthropic_python": "harness.clients.anthropic_python",
    "ollama_python": "harness.clients.ollama_python",
    "google_genai": "harness.clients.google_genai",
    "openai_node": "harness.clients.node_client",
    "vercel_ai": "harness.clients.node_client",
    "browser": "harness.clients.browser_client",
}
# Clients that cannot run under an address-space limit: Chromium and V8 reserve far more than they use. They
# bound what they keep themselves (the page's cap; Node's heap limit and the script's byte cap).
_NO_RLIMIT = frozenset({"browser", "openai_node", "vercel_ai"})


class DeadlineReached(BaseException):
    """The run's deadline, raised in the reading thread by a timer. A BaseException so that an SDK's own
    ``except Exception`` (which wraps connection errors) cannot turn it into a client failure."""


def _send(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _limit_memory(nbytes: int) -> None:
    if nbytes <= 0:
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = nbytes if hard == resource.RLIM_INFINITY else min(nbytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def error_text(exc: BaseException) -> str:
    """``Type: message``, bounded: the check names the exception the client raised."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message[:300]}" if message else type(exc).__name__


def read_deltas(deltas: Any) -> dict[str, Any]:
    """Iterate a client's text deltas: the joined text (capped) and when (``time.perf_counter()``) the first
    non-empty one came, as ``first_text_at``."""
    out: dict[str, Any] = {"read": False, "text": "", "first_text_at": None, "deltas": 0, "error": None,
                           "error_type": None, "text_truncated": False}
    pieces: list[str] = []
    size = 0
    try:
        for delta in deltas:
            out["deltas"] += 1
            if not delta:
                continue
            if out["first_text_at"] is None:
                out["first_text_at"] = time.perf_counter()
            if size < TEXT_CAP_CHARS:
                pieces.append(delta[:TEXT_CAP_CHARS - size])
                size += len(pieces[-1])
            else:
                out["text_truncated"] = True
        out["read"] = True
    except DeadlineReached as exc:
        out["error"], out["error_type"] = str(exc), "deadline"
    except Exception as exc:  # the client's own failure on this stream: the finding itself
        out["error"], out["error_type"] = error_text(exc), type(exc).__name__
        out["traceback"] = "".join(traceback.format_exception(exc)[-3:])[-1500:]
    out["text"] = "".join(pieces)
    return out


def main() -> int:
    job = json.loads(sys.stdin.readline())
    name = job["client"]
    if name not in _NO_RLIMIT:
        _limit_memory(int(job.get("memory_bytes") or 0))
    module = importlib.import_module(MODULES[name])
    try:
        runner = module.prepare(job)
    except Exception as exc:  # noqa: BLE001 - set-up failed: report it instead of the result
        _send({"ready": False, "error": f"could not set up {name}: {error_text(exc)}"})
        return 1
    _send({"ready": True})
    go = json.loads(sys.stdin.readline() or "{}")
    if not go.get("go"):
        runner.close()
        return 0
    try:
        result = runner.run(float(go.get("timeout", 30.0)))
    finally:
        runner.close()
    _send(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
