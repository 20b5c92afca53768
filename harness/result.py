"""The run result: what the CLI prints, the JSON it writes (schemas/result.schema.json), what grade and reports read.

``RunResult.passed`` is true exactly when no required check failed (a warning, a skip or an advisory failure
never fails a run). The raw captures ride along in ``captures`` so the CLI can save them, but are never part of
the JSON result: that stays small and bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness import __version__

SCHEMA_VERSION = 1
TRANSCRIPT_LIMIT = 64 * 1024  # characters of answer text kept in the result
TIMELINE_LIMIT = 5000  # content chunks kept in the timeline


def _jsonable(value: Any) -> Any:
    """Measured values may be anything a check computed: make them JSON-safe (no NaN/inf, no objects)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return str(value)


@dataclass(slots=True)
class CheckResult:
    id: str
    category: str
    status: str  # pass | fail | warn | skip
    required: bool = False
    weight: float = 0.0
    measured: Any = None
    threshold: Any = None
    message: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    reproduce: str | None = None
    description: str = ""
    applicable: bool = True  # False: the check does not apply to this endpoint (graded out of the maximum)

    @property
    def failed_required(self) -> bool:
        return self.required and self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "status": self.status,
            "required": self.required,
            "weight": self.weight,
            "description": self.description,
            "measured": _jsonable(self.measured),
            "threshold": _jsonable(self.threshold),
            "message": self.message,
            "evidence": [_evidence(e) for e in self.evidence],
            "reproduce": self.reproduce,
            **({} if self.applicable else {"applicable": False}),
        }


def _evidence(item: dict[str, Any]) -> dict[str, Any]:
    out = {str(k): _jsonable(v) for k, v in item.items()}
    out.setdefault("offset", None)
    out.setdefault("excerpt", None)
    out.setdefault("t", None)
    if out["offset"] is not None and not isinstance(out["offset"], int):
        out["offset"] = None
    if out["t"] is not None and not isinstance(out["t"], (int, float)):
        out["t"] = None
    if out["excerpt"] is not None and not isinstance(out["excerpt"], str):
        out["excerpt"] = str(out["excerpt"])
    return out


@dataclass(slots=True)
class RunResult:
    target: str
    profile: str
    started_at: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    transcript_text: str = ""
    body_bytes: int = 0
    duration_s: float | None = None
    status: int | None = None  # HTTP status of the primary capture
    end_reason: str = ""
    notes: list[str] = field(default_factory=list)  # what the engine wants a reader to know (a stage that timed out...)
    # Not serialised: the raw evidence, so `run --save-capture` can write a bundle (harness/run/runner.save_bundle).
    captures: dict[str, Any] = field(default_factory=dict)  # "primary", "secondary" -> Capture
    probes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    refusal: Any = None  # harness.checks.diagnosis.Refusal when the main request got no 2xx stream

    @property
    def passed(self) -> bool:
        return not any(c.failed_required for c in self.checks)

    @property
    def failed_required(self) -> list[str]:
        return [c.id for c in self.checks if c.failed_required]

    @property
    def advisory_failures(self) -> list[str]:
        """Checks that failed but are not required by the profile: reported, they do not fail the run."""
        return [c.id for c in self.checks if c.status == "fail" and not c.required]

    def verdict(self) -> str:
        """The one-line verdict: PASS or FAIL, what failed, and the root cause when the main request was refused."""
        return verdict_text(self.passed, self.failed_required, self.advisory_failures,
                            self.refusal.text() if self.refusal is not None else None)

    def check(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)

    def to_dict(self) -> dict[str, Any]:
        text = self.transcript_text
        truncated = len(text) > TRANSCRIPT_LIMIT
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "harness_version": __version__,
            "target": self.target,
            "profile": self.profile,
            "passed": self.passed,
            "started_at": self.started_at,
            "metrics": _jsonable(self.metrics),
            "checks": [c.to_dict() for c in self.checks],
            "timeline": [_jsonable(t) for t in self.timeline[:TIMELINE_LIMIT]],
            "transcript": {"text": text[:TRANSCRIPT_LIMIT], "truncated": truncated, "bytes": self.body_bytes},
            "status": self.status,
            "end_reason": self.end_reason,
        }
        doc["advisory_failures"] = self.advisory_failures
        if self.refusal is not None:
            doc["root_cause"] = self.refusal.to_dict()
        if self.notes:
            doc["notes"] = [str(n) for n in self.notes]
        if self.duration_s is not None:
            doc["duration_s"] = max(0.0, self.duration_s)
        return doc


def _listed(ids: list[str], limit: int = 6) -> str:
    more = len(ids) - limit
    return ", ".join(ids[:limit]) + (f", and {more} more" if more > 0 else "")


def verdict_text(passed: bool, failed_required: list[str], advisory_failures: list[str],
                 root_cause: str | None = None) -> str:
    """``PASS``, ``PASS (2 advisory failures: a, b)``, ``FAIL: 3 required checks failed: ...`` (+ root cause).

    Shared by the console, the HTML report and the pytest summary, so each says the same thing."""
    advisory = (f"{len(advisory_failures)} advisory failure{'s' if len(advisory_failures) != 1 else ''}: "
                f"{_listed(advisory_failures)}") if advisory_failures else ""
    if passed:
        return "PASS" + (f" ({advisory})" if advisory else ": every required check passed")
    n = len(failed_required)
    line = f"FAIL: {n} required check{'s' if n != 1 else ''} failed: {_listed(failed_required)}"
    if root_cause:
        line += f". Root cause: {root_cause}"
    return line + (f" ({advisory})" if advisory else "")
