"""Check registry, the Context every check reads, and the Outcome every check returns.

A check is a small pure function ``(ctx: Context) -> Outcome`` registered with ``@check("category.name", ...)``.
It does no I/O: everything it needs was captured before (``ctx.primary``, ``ctx.secondary``, ``ctx.probes``,
``ctx.extra``) and its thresholds come from ``ctx.profile``. The engine (harness/run/runner.py) adds the check id,
category, required flag, weight and a curl command; a check that raises becomes a failed check, never a crash.

Writing one (e.g. in harness/checks/errors.py):

    from harness.checks import Context, Outcome, check, evidence

    @check("errors.empty_body", category="errors", description="an empty body gets a 4xx")
    def empty_body(ctx: Context) -> Outcome:
        cap = ctx.probes.get("empty_body")
        if cap is None:
            return Outcome.skip("probe not run")
        ok = cap.status is not None and 400 <= cap.status < 500
        return Outcome.of(ok, f"HTTP {cap.status}", measured=cap.status, threshold="4xx",
                          evidence=[evidence(0, cap.body[:120], cap.t_first_byte)])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.measure.transcript import Transcript

STATUSES = ("pass", "fail", "warn", "skip")
CATEGORIES = ("http", "framing", "schema", "stream", "content", "timing", "errors", "robustness", "clients")
# Modules whose import registers checks, in the order results are listed.
CHECK_MODULES = tuple(f"harness.checks.{c}" for c in CATEGORIES)
EXCERPT_LIMIT = 200


def evidence(offset: int | None = None, excerpt: str | bytes | None = None, t: float | None = None,
             **more: Any) -> dict[str, Any]:
    """One evidence item: where in the body (byte offset), what was there (bounded excerpt), when (seconds)."""
    if isinstance(excerpt, bytes):
        excerpt = excerpt.decode("utf-8", "replace")
    if excerpt is not None and len(excerpt) > EXCERPT_LIMIT:
        excerpt = excerpt[:EXCERPT_LIMIT] + "…"
    item: dict[str, Any] = {"offset": offset, "excerpt": excerpt, "t": t}
    item.update(more)
    return item


@dataclass(slots=True)
class Outcome:
    """What a check found. ``threshold`` is human-readable with its comparison, e.g. ``"< 2401"``."""

    status: str
    measured: Any = None
    threshold: Any = None
    message: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    reproduce: str | None = None  # set only when another request than the primary one reproduces it
    # False when the check does not apply to this endpoint at all (no credentials to take away, a request that is
    # valid in this dialect): a skip that says nothing about the endpoint, left out of a grade's maximum.
    applicable: bool = True

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown check status {self.status!r}")

    @classmethod
    def passed(cls, message: str = "", **kw: Any) -> Outcome:
        return cls("pass", message=message, **kw)

    @classmethod
    def failed(cls, message: str, **kw: Any) -> Outcome:
        return cls("fail", message=message, **kw)

    @classmethod
    def warned(cls, message: str, **kw: Any) -> Outcome:
        return cls("warn", message=message, **kw)

    @classmethod
    def skip(cls, message: str, **kw: Any) -> Outcome:
        return cls("skip", message=message, **kw)

    @classmethod
    def not_applicable(cls, message: str, **kw: Any) -> Outcome:
        return cls("skip", message=message, applicable=False, **kw)

    @classmethod
    def of(cls, ok: bool, message: str, **kw: Any) -> Outcome:
        return cls("pass" if ok else "fail", message=message, **kw)


@dataclass(slots=True)
class Context:
    profile: Any  # harness.run.profile.Profile
    primary: Transcript
    secondary: Transcript | None = None  # a second capture with an unrelated prompt
    probes: dict[str, Any] = field(default_factory=dict)  # name -> Capture (harness/run/probes.py)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form data (harness/run/robustness.py)
    # Transcripts of probe captures by id(capture): several checks read the same extra stream (every timing check
    # reads each repeat), and parsing it once per evaluation is enough. The capture itself is held by ``probes``.
    _transcripts: dict[int, Transcript] = field(default_factory=dict, repr=False, compare=False)
    # What this evaluation may still parse over all its streams (harness.parse.media.ParseAllowance), or None.
    allowance: Any = field(default=None, repr=False, compare=False)

    def transcript(self, capture: Any) -> Transcript:
        """``capture`` (one of ``probes``) parsed, decoded and measured with this profile, once per context."""
        found = self._transcripts.get(id(capture))
        if found is None or found.capture is not capture:
            from harness.measure.transcript import transcript_of

            found = self._transcripts[id(capture)] = transcript_of(capture, self.profile, self.allowance)
        return found

    def setting(self, key: str, default: Any = None) -> Any:
        """A profile setting by dotted key, e.g. ``ctx.setting("timing.ttft_ms")``."""
        return self.profile.get(key, default)


CheckFunc = Callable[[Context], Outcome]


# Why a check does not apply to an endpoint at all (None when it does): decided from the request alone (the
# dialect, the credentials sent), never from the answer, so every endpoint of a graded batch has the same maximum.
AppliesFunc = Callable[[Context], "str | None"]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    id: str
    category: str
    description: str
    func: CheckFunc
    applies: AppliesFunc | None = None


REGISTRY: dict[str, CheckSpec] = {}


def check(check_id: str, *, category: str | None = None, description: str = "",
          applies: AppliesFunc | None = None) -> Callable[[CheckFunc], CheckFunc]:
    """Register ``func`` under ``check_id`` ("category.name"). Re-registering an id replaces it (module reloads).

    ``applies(ctx)``: the reason the check does not apply to this endpoint (None when it does); the engine then
    reports it "not applicable" without running it, whatever the endpoint answered."""
    category = category or check_id.split(".", 1)[0]
    if category not in CATEGORIES:
        raise ValueError(f"check {check_id!r}: unknown category {category!r}")

    def register(func: CheckFunc) -> CheckFunc:
        REGISTRY[check_id] = CheckSpec(check_id, category, description or (func.__doc__ or "").strip(), func, applies)
        return func

    return register


def load_checks() -> dict[str, CheckSpec]:
    """Import every category module (which registers its checks) and return the registry in category order."""
    for name in CHECK_MODULES:
        importlib.import_module(name)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return dict(sorted(REGISTRY.items(), key=lambda kv: order[kv[1].category]))
