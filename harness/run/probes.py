"""Error probes: bad requests sent after the main capture, one separate request each, chosen by the profile.

Each probe is data (``Probe``): an id (its check is ``errors.<id>``), what it sends, what a well-behaved endpoint
answers. The bodies are built from the primary request, so a probe carries the same URL, headers and API key as the
request that worked, and differs in exactly one way. ``collect(run)`` captures every selected probe with a short
deadline and a small byte cap (a probe needs the status line and the start of the body, not a whole stream) and at
most a few requests in flight, and files the captures under ``run.probes[probe_id]``.

Beyond the bad requests there are two probes with their own shape:

- ``cors``: a browser preflight (``OPTIONS`` with ``Origin``, ``Access-Control-Request-Method: POST`` and
  ``Access-Control-Request-Headers: content-type``). Browser-based graders fetch from another origin.
- ``rate_limit`` (off unless the profile turns it on, as ``ops`` does): a bounded burst of valid requests, each
  dropped soon after its headers; the first ``429`` is kept so ``errors.rate_limit`` can read its Retry-After.

``[errors]`` profile keys (every one optional; defaults below):

    probes          ids to run (default: every bad-request probe, plus "cors")
    accepted_codes  4xx codes that count for a bad body (default [400, 413, 415, 422])
    method_codes    codes that count for the wrong-method probe (default [405, 404])
    codes           per-probe override, a table: codes.prompt_too_long = [413]
    prompt_limit    the endpoint's documented prompt limit in characters; prompt_too_long sends a longer one
                    (default: none -> the probe is skipped)
    seed_error_shape  accept the seed's {"error": str, "code": int} as a well-formed error (default: true when
                    the profile's dialect is "prompt", the seed's own request shape; false otherwise)
    probe_timeout_s deadline of one probe request (default 10)
    parallel        probe requests in flight at once (default 4)
    rate_limit      run the burst probe (default false)
    (probe "auth"   sent only when the run carries credentials: the main request without them, then with a
                    wrong key)
    rate_limit_burst  requests in the burst (default 30)
    cors_origin     Origin sent by the preflight (default "https://exam.example")
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any

from harness.checks.catalog import PROBES, BodyInputs, Probe, errors_settings, retry_after_s, selected_probes
from harness.model import ByteBudget, Capture, Limits, RequestSpec

DEFAULT_PROBE_TIMEOUT_S = 10.0
DEFAULT_PARALLEL = 4
DEFAULT_BURST = 30
DEFAULT_CORS_ORIGIN = "https://exam.example"
# A probe only needs the status, headers and the start of the body; the cap keeps a streaming reply to bad input
# (or a hostile one) cheap.
PROBE_MAX_BYTES = 64 * 1024
# Burst requests are dropped this long after they start: the status is all the burst probe needs.
BURST_CANCEL_AFTER_S = 1.0
# Below this much time left in the run, extra requests are not started (the run must end by its deadline).
MIN_TIME_LEFT_S = 1.0
# After a burst that met the rate limiter, wait at most this long for it to recover.
MAX_BURST_COOLDOWN_S = 5.0


WRONG_KEY = "sk-streamconform-wrong-key-0000000000"


# -- building the requests ------------------------------------------------------------------------------------------

def body_inputs(base: RequestSpec, prompt_limit: int | None = None) -> BodyInputs:
    """Dialect, model and prompt of the request that worked, so each probe differs from it in one way only."""
    from harness.dialects import NAMES

    dialect = base.dialect if base.dialect in NAMES else "prompt"
    model = "streamconform-test"
    try:
        payload = json.loads(base.body or b"{}")
        if isinstance(payload, dict) and isinstance(payload.get("model"), str):
            model = payload["model"]
    except ValueError:
        pass
    return BodyInputs(dialect=dialect, model=model, prompt=base.prompt or BodyInputs.prompt,
                      prompt_limit=prompt_limit)


def _headers_without(headers: dict[str, str], *names: str) -> dict[str, str]:
    drop = {n.lower() for n in names}
    return {k: v for k, v in headers.items() if k.lower() not in drop}


def build_probe_request(probe: Probe, base: RequestSpec, settings: dict[str, Any] | None = None) -> RequestSpec:
    """The request a probe sends, derived from the primary request ``base``."""
    settings = settings or {}
    headers = dict(base.headers)
    if probe.kind == "cors":
        # A preflight carries no body and no credentials: the browser sends it before the real request.
        headers = _headers_without(headers, "content-type", "authorization", "accept")
        headers.update({"Origin": str(settings.get("cors_origin", DEFAULT_CORS_ORIGIN)),
                        "Access-Control-Request-Method": "POST",
                        "Access-Control-Request-Headers": "content-type"})
        return RequestSpec(url=base.url, method="OPTIONS", headers=headers, body=b"", dialect="raw")
    if probe.kind == "rate_limit":
        return replace(base, headers=dict(base.headers))
    if probe.kind == "method":
        headers = _headers_without(headers, "content-type")
        return RequestSpec(url=base.url, method=probe.method, headers=headers, body=b"", dialect="raw")
    limit = settings.get("prompt_limit")
    body = probe.body(body_inputs(base, int(limit) if limit else None))
    return RequestSpec(url=base.url, method=probe.method, headers=headers, body=body, dialect="raw")


def auth_requests(base: RequestSpec) -> dict[str, RequestSpec] | None:
    """The main request without its credentials, and with each credential replaced by a wrong key; None when the
    main request sends none (there is nothing to take away)."""
    from harness.checks.diagnosis import CREDENTIAL_HEADERS

    creds = [k for k in base.headers if k.lower() in CREDENTIAL_HEADERS]
    if not creds:
        return None
    wrong = dict(base.headers)
    for name in creds:
        wrong[name] = f"Bearer {WRONG_KEY}" if name.lower() == "authorization" else WRONG_KEY
    return {"auth.missing": replace(base, headers=_headers_without(base.headers, *creds)),
            "auth.wrong": replace(base, headers=wrong)}


# -- the run context ------------------------------------------------------------------------------------------------
# The runner hands ``collect`` its run object; these helpers read what both probes.py and robustness.py need from it
# and tolerate a missing attribute (a bundle re-checked offline, a test's stand-in object).

def run_profile(run: Any) -> Any:
    return getattr(run, "profile", None)


def run_limits(run: Any) -> Limits:
    """The run's caps; the runner's ``Run.limits()`` already cuts the deadline to the time left."""
    limits = getattr(run, "limits", None)
    if callable(limits):
        limits = limits()
    if not isinstance(limits, Limits):
        limits = getattr(getattr(run, "options", None), "limits", None)
    return limits if isinstance(limits, Limits) else Limits()


def run_policy(run: Any) -> Any:
    if getattr(run, "policy", None) is not None:
        return run.policy
    return getattr(getattr(run, "options", None), "policy", None)


def run_follow_redirects(run: Any) -> bool:
    return bool(getattr(getattr(run, "options", None), "follow_redirects", False))


def primary_capture(run: Any) -> Capture | None:
    primary = getattr(run, "primary", None)
    if isinstance(primary, Capture):
        return primary
    cap = getattr(primary, "capture", None)
    return cap if isinstance(cap, Capture) else None


def primary_request(run: Any) -> RequestSpec | None:
    """The request the main capture sent; probes and robustness requests are variations of it."""
    cap = primary_capture(run)
    if cap is not None:
        return cap.request
    spec = getattr(run, "request", None)
    return spec if isinstance(spec, RequestSpec) else None


def time_left(run: Any) -> float:
    """Seconds left before the run's deadline (perf_counter based); the limits' deadline when unknown."""
    remaining = getattr(run, "remaining", None)
    if callable(remaining):
        try:
            return float(remaining())
        except Exception:  # noqa: BLE001 - a broken helper must not stop the run
            pass
    deadline = getattr(run, "deadline", None)
    if isinstance(deadline, (int, float)):  # the runner's deadline is a time.monotonic() value
        return float(deadline) - time.monotonic()
    return run_limits(run).deadline_s


def run_store(run: Any, name: str) -> dict[str, Any]:
    """``run.probes`` / ``run.extra`` (created when the run object has none yet)."""
    store = getattr(run, name, None)
    if store is None:
        store = {}
        setattr(run, name, store)
    return store


def short_limits(limits: Limits, deadline_s: float, max_bytes: int | None = None) -> Limits:
    """Limits for an extra request: the run's caps, with a shorter deadline (and byte cap when given)."""
    deadline_s = max(0.1, min(limits.deadline_s, deadline_s))
    return replace(limits, deadline_s=deadline_s, idle_timeout_s=min(limits.idle_timeout_s, deadline_s),
                   connect_timeout_s=min(limits.connect_timeout_s, deadline_s),
                   max_bytes=min(limits.max_bytes, max_bytes) if max_bytes else limits.max_bytes)


def not_attempted(spec: RequestSpec, reason: str) -> Capture:
    """A stand-in capture for a request the harness did not send (no time left): checks then say why."""
    return Capture(request=spec, end_reason="deadline", error=reason)


def run_budget(run: Any) -> ByteBudget | None:
    """The byte budget shared by the run's captures (None for a stand-in run object without one)."""
    budget = getattr(run, "budget", None)
    return budget if isinstance(budget, ByteBudget) else None


async def capture_with(spec: RequestSpec, limits: Limits, run: Any, **kw: Any) -> Capture:
    """Capture one request with the run's policy and byte budget; never raises (the capture stage's own promise,
    enforced here)."""
    from harness.capture.core import capture

    kw.setdefault("budget", run_budget(run))
    try:
        return await capture(spec, limits, policy=run_policy(run), follow_redirects=run_follow_redirects(run), **kw)
    except Exception as exc:  # noqa: BLE001 - a capture bug must become a failed check, not a crashed run
        return Capture(request=spec, end_reason="read_error", error=f"capture failed: {type(exc).__name__}: {exc}")


# -- collecting -----------------------------------------------------------------------------------------------------

async def _burst(base: RequestSpec, limits: Limits, run: Any, size: int) -> tuple[dict[str, Any], Capture | None]:
    """Fire ``size`` valid requests at once; keep the statuses and the first 429 (the one the check reads)."""
    burst_limits = short_limits(limits, BURST_CANCEL_AFTER_S + 2.0, PROBE_MAX_BYTES)
    caps = await asyncio.gather(*(capture_with(base, burst_limits, run, cancel_after_s=BURST_CANCEL_AFTER_S)
                                  for _ in range(size)))
    statuses = [c.status for c in caps]
    first_429 = next((c for c in caps if c.status == 429), None)
    server_error = next((c for c in caps if c.status is not None and c.status >= 500), None)
    summary = {"sent": size, "statuses": statuses,
               "count_429": sum(1 for s in statuses if s == 429),
               "count_5xx": sum(1 for s in statuses if s is not None and s >= 500)}
    if first_429 is not None:
        # Let the bucket refill before the robustness requests that follow, or they would measure the limiter.
        summary["waited_s"] = wait = min(MAX_BURST_COOLDOWN_S, max(0.0, retry_after_s(first_429) or 1.0),
                                         max(0.0, time_left(run) - MIN_TIME_LEFT_S))
        await asyncio.sleep(wait)
    return summary, first_429 or server_error or (caps[-1] if caps else None)


async def collect(run: Any) -> None:
    """Send the profile's probes after the main capture; file each capture under ``run.probes[probe_id]``."""
    base = primary_request(run)
    if base is None:
        return  # nothing was requested (invalid URL...): the probes would only repeat that failure
    settings = errors_settings(run_profile(run))
    chosen = selected_probes(settings)
    probes = run_store(run, "probes")
    extra = run_store(run, "extra")
    limits = run_limits(run)
    timeout = float(settings.get("probe_timeout_s", DEFAULT_PROBE_TIMEOUT_S))
    gate = asyncio.Semaphore(max(1, int(settings.get("parallel", DEFAULT_PARALLEL))))

    async def one(probe_id: str) -> None:
        probe = PROBES[probe_id]
        if not probe.applies_to(base.dialect):
            return  # valid input in this dialect: its check says so
        if probe.kind == "auth":
            for name, spec in (auth_requests(base) or {}).items():
                await capture_probe(name, spec)
            return
        await capture_probe(probe_id, build_probe_request(probe, base, settings))

    async def capture_probe(probe_id: str, spec: RequestSpec) -> None:
        probe = PROBES[probe_id.split(".", 1)[0]]
        async with gate:
            left = time_left(run) - MIN_TIME_LEFT_S
            if left <= 0:
                probes[probe_id] = not_attempted(spec, "not sent: the run's deadline was reached first")
                return
            if probe.kind == "rate_limit":
                size = max(1, min(200, int(settings.get("rate_limit_burst", DEFAULT_BURST))))
                summary, kept = await _burst(spec, limits, run, size)
                extra["rate_limit"] = summary
                if kept is not None:
                    probes[probe_id] = kept
                return
            probes[probe_id] = await capture_with(spec, short_limits(limits, min(timeout, left), PROBE_MAX_BYTES),
                                                  run)

    # The burst runs alone, after the others, so it cannot make an ordinary probe look rate-limited.
    await asyncio.gather(*(one(pid) for pid in chosen if pid != "rate_limit"))
    if "rate_limit" in chosen:
        await one("rate_limit")
