"""What the Python SDK clients share in their subprocess: the job, the tap, the deadline, the result.

A client module subclasses :class:`SdkRunner`, imports its SDK in ``setup`` (before "ready": import time is
not the endpoint's) and yields the text deltas the SDK gives in ``deltas(http_client)``."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import signal
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from harness.clients import tap
from harness.clients.child import DeadlineReached, read_deltas

DEFAULT_CAP_BYTES = 1024 * 1024


class SdkRunner:
    distribution = ""  # the package's distribution name, for its version
    # The SDK module that imports its HTTP library: newer openai, anthropic and google-genai are built on
    # httpx2 (a fork whose classes are not httpx's), older ones and ollama on httpx. The client gets the
    # flavour it uses.
    http_module = ""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.url: str = job["url"]
        self.headers: dict[str, str] = dict(job.get("headers") or {})
        raw = job.get("body") or ""
        self.body: dict[str, Any] = json.loads(raw) if raw else {}
        self.recorder = tap.Recorder(int(job.get("cap_bytes") or DEFAULT_CAP_BYTES))
        self._http: Any = None
        pin = job.get("pin")
        if pin:
            tap.pin_address(pin["host"], pin["ip"])
        self.setup()
        uses = importlib.import_module(self.http_module) if self.http_module else None
        self.mod = getattr(uses, "httpx2", None) or importlib.import_module("httpx")

    # -- for subclasses
    # ------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Import the SDK (and anything slow) here."""

    def deltas(self, http: Any) -> Iterator[str | None]:
        raise NotImplementedError

    # -- helpers
    # ---------------------------------------------------------------------------------------------------
    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def base_url(self, suffix: str) -> str | None:
        """The URL before ``suffix`` when the path ends with it (no query): what the SDK's base_url is."""
        parts = urlsplit(self.url)
        if parts.query or not parts.path.endswith(suffix):
            return None
        return urlunsplit((parts.scheme, parts.netloc, parts.path[: -len(suffix)], "", ""))

    def version(self) -> str:
        try:
            return f"{self.distribution} {importlib.metadata.version(self.distribution)}"
        except importlib.metadata.PackageNotFoundError:
            return self.distribution

    # -- the run
    # ---------------------------------------------------------------------------------------------------
    def run(self, timeout: float) -> dict[str, Any]:
        self._http = tap.http_client(self.recorder, timeout=timeout, mod=self.mod,
                                     follow_redirects=bool(self.job.get("follow_redirects")))

        def expire(signum: int, frame: Any) -> None:
            raise DeadlineReached(f"no end of stream within the run's deadline ({timeout:.1f} s left)")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, max(0.05, timeout))
        try:
            out = read_deltas(self.deltas(self._http))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        rec = self.recorder
        first = out.pop("first_text_at", None)
        # On the harness's clock: 0 = the request handed to the socket (or the request's start, when unknown).
        out["first_text_ms"] = None if first is None or rec.t0 is None else \
            max(0.0, (first - rec.t0 - (rec.t_sent or 0.0)) * 1000.0)
        out["raw"] = rec.to_dict()
        out["version"] = self.version()
        return out

    def close(self) -> None:
        if self._http is not None:
            try:
                self._http.close()
            except Exception:  # noqa: BLE001 - closing after a failure must not hide the result
                pass
