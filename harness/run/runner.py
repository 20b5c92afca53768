"""The engine: capture an endpoint, then evaluate every check of a profile over the captures.

    run_target(url, profile, options)   primary capture, secondary capture (the profile's second prompt),
                                        timing repeats, probes, parallel and dropped streams, then evaluate()
    evaluate(context)                   pure and offline: one CheckResult per enabled check
    save_bundle / load_bundle           every capture of a run in one JSON file ("capture bundle")
    evaluate_bundle(bundle, profile)    re-check a bundle offline (`streamconform check capture.json`)

The whole run respects ``options.limits.deadline_s``, evaluation included: each stage gets only the time left,
a stage that runs out of time leaves its captures missing (their checks fail or skip), never a hang, and a check
not reached by the deadline fails as "not evaluated" (evaluation is bounded, see below, so that takes a hostile
stream; a cancelled run also stops its evaluation, even in a worker thread, at the next check).

Bounded work whatever the endpoint sends: every capture of a run draws from one byte budget
(``Limits.budget_bytes``, harness.model.ByteBudget), so a run holds, and a bundle saves, at most that many body
bytes; and one evaluation parses at most ``harness.parse.media.ParseAllowance`` events and line breaks over all its
streams.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from harness.atomic import atomic_write_text
from harness.capture.request import curl_for
from harness.checks import Context, Outcome, load_checks
from harness.checks.diagnosis import refusal
from harness.measure.transcript import transcript_of
from harness.model import ByteBudget, Capture, Limits
from harness.result import TIMELINE_LIMIT, CheckResult, RunResult

BUNDLE_FORMAT = 1
API_KEY_ENV = "STREAMCONFORM_API_KEY"
# Time kept back from the deadline for evaluation and teardown once the captures are done.
_EVALUATION_RESERVE_S = 0.5
# The secondary capture is skipped when less than this is left: it could not complete anyway.
_MIN_CAPTURE_S = 1.0


@dataclass(slots=True)
class RunOptions:
    prompt: str | None = None  # None: the profile's first prompt
    headers: dict[str, str] = field(default_factory=dict)
    api_key: str | None = field(default_factory=lambda: os.environ.get(API_KEY_ENV) or None)
    model: str | None = None
    dialect: str | None = None  # None: the profile's; "auto": the profile's, then the other after a 4xx
    limits: Limits = field(default_factory=Limits)
    policy: Any = None  # address policy (harness/capture/guard.py) or None for the capture's default
    follow_redirects: bool = False
    max_tokens: int | None = None  # sent as the dialect's own field (max_tokens in both dialects today)
    categories: set[str] | None = None  # only run checks of these categories (None: all)
    # Real clients to read the endpoint with (harness/clients): "all" or names; None: the profile's
    # [clients] names.
    clients: str | list[str] | None = None
    chromium: str | None = None  # the browser client's executable (None: STREAMCONFORM_CHROMIUM, then PATH)
    # Parse and check in a worker thread, so a busy batch (grade) keeps timestamping other streams' reads on time.
    evaluate_in_thread: bool = False


@dataclass(slots=True)
class Run:
    """What collect() functions (harness/run/probes.py, harness/run/robustness.py) receive and fill in."""

    url: str
    profile: Any
    options: RunOptions
    dialect: str  # the dialect that worked (after "auto" resolution)
    deadline: float  # time.monotonic() value the whole run must end by
    primary: Capture | None = None
    secondary: Capture | None = None
    probes: dict[str, Capture] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    budget: ByteBudget | None = None  # body bytes the run's captures may still keep, shared by all of them

    def remaining(self) -> float:
        """Seconds left for captures (the evaluation reserve already taken off)."""
        return max(0.0, self.deadline - time.monotonic() - _EVALUATION_RESERVE_S)

    def limits(self) -> Limits:
        """The run's limits with the deadline cut to the time left: pass these to capture().

        Rounded down to 0.1 s: a capture cut by its deadline quotes the figure, and "7.4 s" reads as the time left
        of --timeout 8, where "7.45812 s" reads as a bug."""
        left = math.floor(self.remaining() * 10) / 10
        return replace(self.options.limits, deadline_s=left, idle_timeout_s=min(self.options.limits.idle_timeout_s,
                                                                                left))

    def build_spec(self, prompt: str, dialect: str | None = None, **kwargs: Any) -> Any:
        """A RequestSpec like the primary one (same headers, key, model) for another prompt or dialect."""
        return build_spec(self.url, self.profile, self.options, prompt, dialect or self.dialect, **kwargs)

    def wants(self, category: str) -> bool:
        cats = self.options.categories
        return cats is None or category in cats


def build_spec(url: str, profile: Any, options: RunOptions, prompt: str, dialect: str, **kwargs: Any) -> Any:
    from harness.capture.request import build_request

    extra_body = dict(profile.get("request.extra_body", {}) or {})
    # Counting tokens by the server's usage report means asking for one; only the openai dialect has a way to.
    wants_usage = profile.get("request.include_usage", False) or profile.token_method in ("usage", "auto")
    if dialect == "openai" and wants_usage:
        extra_body.setdefault("stream_options", {"include_usage": True})
    if options.max_tokens:
        extra_body.setdefault("max_tokens", int(options.max_tokens))
    kwargs.setdefault("extra_body", extra_body or None)
    return build_request(url, dialect, prompt, model=options.model or profile.get("request.model"),
                         headers=options.headers, api_key=options.api_key, **kwargs)


def _prompts(profile: Any, options: RunOptions) -> tuple[str, str]:
    prompts = profile.prompts
    primary = options.prompt or prompts[0]
    secondary = next((p for p in prompts[1:] if p != primary), prompts[0])
    return primary, secondary


async def _capture(spec: Any, run: Run) -> Capture:
    from harness.capture.core import capture

    return await capture(spec, run.limits(), policy=run.options.policy,
                         follow_redirects=run.options.follow_redirects, budget=run.budget)


async def _bounded(coro: Any, run: Run, label: str) -> None:
    """Run a collect() stage within the time left; a crash or a timeout is recorded, not raised."""
    try:
        await asyncio.wait_for(coro, timeout=max(0.01, run.remaining()))
    except asyncio.TimeoutError:
        run.extra.setdefault("stage_errors", {})[label] = "ran out of time (run deadline)"
    except Exception as exc:  # a bug in a collect stage must not lose the primary verdict
        run.extra.setdefault("stage_errors", {})[label] = f"{type(exc).__name__}: {exc}"


async def run_target(url: str, profile: Any, options: RunOptions | None = None) -> RunResult:
    """Capture ``url`` as ``profile`` asks and evaluate every enabled check. Never raises for endpoint behaviour."""
    options = options or RunOptions()
    started = time.monotonic()
    if options.clients:
        from harness.clients import with_clients

        profile = with_clients(profile, options.clients)
    dialect = options.dialect or profile.dialect
    auto = dialect == "auto"
    if auto:
        dialect = profile.dialect
    run = Run(url=url, profile=profile, options=options, dialect=dialect,
              deadline=started + options.limits.deadline_s, budget=ByteBudget(options.limits.budget_bytes))
    primary_prompt, secondary_prompt = _prompts(profile, options)

    run.primary = await _capture(run.build_spec(primary_prompt), run)
    if auto and run.primary.status is not None and 400 <= run.primary.status < 500:
        other = "openai" if dialect == "prompt" else "prompt"
        retry = await _capture(run.build_spec(primary_prompt, other), run)
        if retry.status is not None and retry.status < 400:
            run.dialect, run.primary = other, retry
        run.extra["dialect_attempts"] = [dialect, other]

    if refusal(run.primary, run.dialect) is None:
        await _collect_more(run, secondary_prompt)

    cancelled = threading.Event()

    def stop() -> str | None:
        if cancelled.is_set():
            return "the run was stopped"
        if time.monotonic() > run.deadline:
            return f"the run's {options.limits.deadline_s:g} s deadline was reached first"
        return None

    def finish() -> RunResult:
        ctx = build_context(profile, run.primary, run.secondary, run.probes, run.extra)
        return evaluate(ctx, categories=options.categories, stop=stop)

    try:
        result = await asyncio.to_thread(finish) if options.evaluate_in_thread else finish()
    except asyncio.CancelledError:
        cancelled.set()  # a thread cannot be cancelled: it stops itself at the next check
        raise
    result.duration_s = time.monotonic() - started
    result.extra = run.extra
    return result


async def _collect_more(run: Run, secondary_prompt: str) -> None:
    """The requests after the main one, one stage at a time, measured streams first.

    The measured streams (main, second prompt, timing repeats) never share the wire with the error probes, the
    CORS preflight or the robustness streams: a server that serves one request at a time, or (llama-cpp-python's
    default) ends a running stream when another request arrives, would otherwise be measured as cut or slow.
    The real clients come last, one at a time, and only when the profile or --clients names some.
    """
    from harness.clients import requested
    from harness.run import probes, robustness

    if run.remaining() >= _MIN_CAPTURE_S and _needs_secondary(run.profile, run.options):
        await _secondary(run, secondary_prompt)
    if run.wants("robustness"):
        await _bounded(robustness.collect_repeats(run), run, "robustness")
    if run.wants("errors"):
        await _bounded(probes.collect(run), run, "probes")
    if run.wants("robustness"):
        await _bounded(robustness.collect_load(run), run, "robustness")
    if run.wants("clients") and requested(run.profile):
        from harness.clients.collect import collect as collect_clients

        await _bounded(collect_clients(run), run, "clients")


async def _secondary(run: Run, prompt: str) -> None:
    run.secondary = await _capture(run.build_spec(prompt), run)


def _needs_secondary(profile: Any, options: RunOptions) -> bool:
    cats = options.categories
    return (cats is None or "content" in cats) and profile.enabled("content.distinct")


# -- evaluation (pure) ----------------------------------------------------------------------------------------------


def build_context(profile: Any, primary: Capture, secondary: Capture | None = None,
                  probes: dict[str, Capture] | None = None, extra: dict[str, Any] | None = None) -> Context:
    """The context of one evaluation; its streams share one parse allowance (the main one parsed first)."""
    from harness.parse.media import ParseAllowance

    allowance = ParseAllowance()
    main = transcript_of(primary, profile, allowance)
    return Context(profile=profile, primary=main,
                   secondary=transcript_of(secondary, profile, allowance) if secondary is not None else None,
                   probes=dict(probes or {}), extra=dict(extra or {}), allowance=allowance)


def planned_checks(profile: Any, categories: set[str] | None = None,
                   extra: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(check id, category) of every check the profile enables, in report order. A ``clients.<name>`` check
    is planned only when its client is asked for: by the profile (``[clients] names``, which --clients sets)
    or, for a saved run re-judged offline, by the run that read it (``extra``)."""
    from harness.clients import is_selected

    return [(cid, spec.category) for cid, spec in load_checks().items()
            if profile.enabled(cid) and (categories is None or spec.category in categories)
            and (spec.category != "clients" or is_selected(cid, profile, extra))]


# When the main request is refused, these run and every other check is "not run": the refusal is the one finding.
ROOT_CAUSE_CHECKS = frozenset({"http.status"})


def _not_applicable(spec: Any, ctx: Context) -> str | None:
    """Why the check does not apply to this endpoint (its ``applies`` rule), or None."""
    if spec.applies is None:
        return None
    try:
        return spec.applies(ctx)
    except Exception:  # a broken rule must not hide the check: run it
        return None


def _run_one(spec: Any, ctx: Context) -> Outcome:
    try:
        outcome = spec.func(ctx)
        if not isinstance(outcome, Outcome):
            return Outcome.failed(f"internal error: check returned {type(outcome).__name__}, not an Outcome")
        return outcome
    except Exception as exc:  # a check that raises is a failed check with the reason, never a crash
        return Outcome.failed(f"check raised {type(exc).__name__}: {exc}")


def evaluate(ctx: Context, categories: set[str] | None = None,
             stop: Callable[[], str | None] | None = None) -> RunResult:
    """Run every enabled check over the context. Pure: no I/O, same input -> same verdict.

    ``stop``: asked before each check; a reason it returns fails that check and every later one as "not evaluated"
    (the run's deadline, or the run was cancelled). The offline re-check passes none."""
    profile = ctx.profile
    registry = load_checks()
    primary_curl = curl_for(ctx.primary.capture)
    refused = refusal(ctx.primary.capture, ctx.primary.capture.request.dialect)
    checks = []
    stopped: str | None = None
    for check_id, _category in planned_checks(profile, categories, ctx.extra):
        spec = registry[check_id]
        rule = profile.rule(check_id)
        if stopped is None and stop is not None:
            stopped = stop()
        why_not = _not_applicable(spec, ctx)
        if why_not is not None:  # decided from the request alone: the same whatever the endpoint answered
            outcome = Outcome.not_applicable(f"not run: {why_not}")
        elif stopped is not None:
            outcome = Outcome.failed(f"not evaluated: {stopped}")
        elif refused is not None and check_id not in ROOT_CAUSE_CHECKS:
            outcome = Outcome.skip(f"not run: {refused.cause}")
        else:
            outcome = _run_one(spec, ctx)
        checks.append(CheckResult(
            id=check_id, category=spec.category, status=outcome.status, required=rule.required,
            weight=rule.weight, measured=outcome.measured, threshold=outcome.threshold, message=outcome.message,
            evidence=list(outcome.evidence), reproduce=outcome.reproduce or primary_curl,
            description=spec.description, applicable=outcome.applicable,
        ))
    cap = ctx.primary.capture
    metrics = ctx.primary.metrics
    timeline = [{"t": c.t, "offset": c.offset, "chars": len(c.content)}
                for c in ctx.primary.content_chunks[:TIMELINE_LIMIT]]
    captures = {"primary": cap}
    if ctx.secondary is not None:
        captures["secondary"] = ctx.secondary.capture
    return RunResult(
        target=cap.request.url, profile=profile.name, started_at=cap.started_at, metrics=metrics.to_dict(),
        notes=_notes(ctx.extra),
        checks=checks, timeline=timeline, transcript_text=ctx.primary.text, body_bytes=len(cap.body),
        status=cap.status, end_reason=cap.end_reason, captures=captures, probes=dict(ctx.probes),
        extra=dict(ctx.extra), refusal=refused,
    )


def _notes(extra: dict[str, Any]) -> list[str]:
    notes = [f"{stage}: {why}" for stage, why in (extra.get("stage_errors") or {}).items()]
    attempts = extra.get("dialect_attempts")
    if attempts:
        notes.append(f"dialect auto: {attempts[0]} was refused with a 4xx, {attempts[1]} tried next")
    return notes


# -- capture bundles ------------------------------------------------------------------------------------------------

def _encode_extra(value: Any) -> Any:
    """Extra data may hold Captures (robustness); keep them restorable, anything else JSON or its repr."""
    if isinstance(value, Capture):
        return {"__capture__": value.to_dict()}
    if isinstance(value, dict):
        return {str(k): _encode_extra(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_extra(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _decode_extra(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__capture__"}:
            return Capture.from_dict(value["__capture__"])
        return {k: _decode_extra(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_extra(v) for v in value]
    return value


def _bundle_parts(run: RunResult | Run) -> tuple[Any, Capture, Capture | None]:
    """(profile name, primary, secondary) of a finished run (a RunResult) or of a Run being collected."""
    if isinstance(run, RunResult):
        primary, secondary = run.captures.get("primary"), run.captures.get("secondary")
        profile = run.profile
    else:
        primary, secondary, profile = run.primary, run.secondary, run.profile.name
    if primary is None:
        raise ValueError("the run has no primary capture to save")
    return profile, primary, secondary


def bundle_of(run: RunResult | Run) -> dict[str, Any]:
    """The capture bundle of a finished run (a RunResult) or of a Run being collected."""
    profile, primary, secondary = _bundle_parts(run)
    return {
        "format": BUNDLE_FORMAT,
        "profile": profile,
        "primary": primary.to_dict(),
        "secondary": secondary.to_dict() if secondary is not None else None,
        "probes": {name: cap.to_dict() for name, cap in run.probes.items()},
        "extra": _encode_extra(run.extra),
    }


def bundle_json(run: RunResult | Run) -> Iterator[str]:
    """``json.dumps(bundle_of(run))`` in pieces, one capture at a time: written as they come, a bundle near the run's
    byte budget costs one capture's encoding in memory (base64, then JSON text) instead of the whole bundle's."""
    profile, primary, secondary = _bundle_parts(run)
    yield f'{{"format": {json.dumps(BUNDLE_FORMAT)}, "profile": {json.dumps(profile)}, "primary": '
    yield json.dumps(primary.to_dict())
    yield ', "secondary": ' + (json.dumps(secondary.to_dict()) if secondary is not None else "null")
    yield ', "probes": {'
    for i, (name, cap) in enumerate(run.probes.items()):
        yield (", " if i else "") + json.dumps(name) + ": " + json.dumps(cap.to_dict())
    yield '}, "extra": ' + json.dumps(_encode_extra(run.extra)) + "}"


def save_bundle(path: str, run: RunResult | Run) -> None:
    """Write the bundle atomically (tmp file then rename): a crash never leaves half a file."""
    atomic_write_text(path, bundle_json(run), durable=False)


def load_bundle(path: str) -> dict[str, Any]:
    """Read a bundle; a bare capture (Capture.to_json()) is accepted as a bundle with only a primary."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict):
        raise ValueError("not a capture bundle (expected a JSON object)")
    if "primary" not in doc and "request" in doc:  # a single saved capture
        doc = {"format": BUNDLE_FORMAT, "profile": None, "primary": doc, "secondary": None, "probes": {},
               "extra": {}}
    if doc.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"unsupported bundle format {doc.get('format')!r} (expected {BUNDLE_FORMAT})")
    if not isinstance(doc.get("primary"), dict):
        raise ValueError("the bundle has no primary capture")
    return doc


def evaluate_bundle(bundle: dict[str, Any], profile: Any, categories: set[str] | None = None) -> RunResult:
    """Re-check a bundle offline with ``profile``."""
    primary = Capture.from_dict(bundle["primary"])
    secondary = Capture.from_dict(bundle["secondary"]) if bundle.get("secondary") else None
    probes = {name: Capture.from_dict(d) for name, d in (bundle.get("probes") or {}).items()}
    extra = _decode_extra(bundle.get("extra") or {})
    return evaluate(build_context(profile, primary, secondary, probes, extra), categories=categories)
