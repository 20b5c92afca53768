"""The unit of work: one Submission in, one grade record (plain JSON data) out.

It holds no shared state: everything it needs arrives as arguments, and the record it returns is complete, so a
distributed engine could fan submissions out to other machines and collect the files.

Status of a submission (anything but ``ok`` scores 0):
    invalid_url      the URL cannot be requested at all (checked before any connection)
    blocked_address  the address policy refused the resolved address; nothing was sent
    unreachable      connection refused / DNS failure / reset before any response   (retried once)
    timeout          no response within the deadline                                 (retried once)
    ok               a response arrived and the profile's checks graded it
    error            the grader itself failed on this submission (a bug, or its record could not be saved:
                     disk full, permissions): recorded, graded again on rerun
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from harness import __version__
from harness.grade import GRADE_FORMAT
from harness.grade.roster import Submission
from harness.grade.scoring import score_checks
from harness.grade.urls import url_problem

TRANSPORT_FAILURES = frozenset({"unreachable", "timeout"})
STATUSES = ("ok", "invalid_url", "blocked_address", "unreachable", "timeout", "error")
PUBLIC_ONLY, ALLOW_PRIVATE = "public_only", "allow_private"  # a record's address_policy


@dataclass
class AttemptOutcome:
    """What one try at a submission produced."""

    status: str
    end_reason: str | None = None  # the capture's end_reason, when a capture was made
    error: str | None = None  # detail for the instructor (may name addresses or exceptions)
    result: dict[str, Any] | None = None  # the run result (schemas/result.schema.json), when status is ok
    started_at: str = ""
    duration_s: float = 0.0


class Runner(Protocol):
    """How a submission is actually run; the real one is harness.grade.engine.EngineRunner."""

    async def attempt(self, url: str, overrides: list[str]) -> AttemptOutcome: ...

    def weights(self, overrides: list[str]) -> dict[str, float] | None: ...

    def profile_name(self) -> str: ...


@dataclass(frozen=True)
class AttemptPolicy:
    retry_delay_s: float = 5.0
    max_attempts: int = 2  # the first try plus one retry after a transport failure


@dataclass
class GradeInput:
    submission: Submission
    overrides: list[str] = field(default_factory=list)  # per-student thresholds, KEY=VALUE


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def grade_one(item: GradeInput, runner: Runner, policy: AttemptPolicy = AttemptPolicy(),
                    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> dict[str, Any]:
    sub = item.submission
    started_at, t0 = utc_now(), time.perf_counter()
    attempts: list[AttemptOutcome] = []
    problem = url_problem(sub.url)
    if problem:
        attempts.append(AttemptOutcome(status="invalid_url", error=problem, started_at=started_at))
    else:
        for n in range(1, policy.max_attempts + 1):
            outcome = await runner.attempt(sub.url, item.overrides)
            attempts.append(outcome)
            if outcome.status not in TRANSPORT_FAILURES or n == policy.max_attempts:
                break
            await sleep(policy.retry_delay_s)
    final = attempts[-1]
    return build_record(item, runner, attempts, final, started_at, time.perf_counter() - t0)


def error_record(item: GradeInput, runner: Runner, exc: BaseException, doing: str = "") -> dict[str, Any]:
    """The grader failed on this submission: keep the batch going and say so in the record.

    ``doing`` says what failed when it was not the grading itself, e.g. "could not save the result: "."""
    outcome = AttemptOutcome(status="error", error=f"{doing}{type(exc).__name__}: {exc}", started_at=utc_now())
    return build_record(item, runner, [outcome], outcome, outcome.started_at, 0.0)


def build_record(item: GradeInput, runner: Runner, attempts: list[AttemptOutcome], final: AttemptOutcome,
                 started_at: str, duration_s: float) -> dict[str, Any]:
    sub = item.submission
    result = final.result if final.status == "ok" else None
    try:
        weights = runner.weights(item.overrides)
    except Exception:  # noqa: BLE001 - the profile loaded for the batch already; never lose the record for this
        weights = None
    score = score_checks(result["checks"] if result else [], weights)
    return {
        "grade_format": GRADE_FORMAT,
        "grader_version": __version__,
        "id": sub.id,
        "url": sub.url,
        "status": final.status,
        "passed": bool(result and result.get("passed")),
        "score": score.score,
        "max_score": score.max_score,
        "failed_checks": score.failed,
        "scoring": score.items,
        "profile": runner.profile_name(),
        **_address_policy(runner),
        **_request_options(runner),
        "thresholds": dict(o.split("=", 1) for o in item.overrides),
        "roster": sub.extra,
        "started_at": started_at,
        "finished_at": utc_now(),
        "duration_s": round(duration_s, 3),
        "attempts": [
            {"attempt": i, "status": a.status, "end_reason": a.end_reason, "error": a.error,
             "started_at": a.started_at, "duration_s": round(a.duration_s, 3)}
            for i, a in enumerate(attempts, start=1)
        ],
        "result": result,
    }


def _request_options(runner: Runner) -> dict[str, Any]:
    """The grader's --set, -H names, --dialect, --model and --max-tokens, when the runner says: a rerun with
    other ones then knows the results it must grade again (resume.py)."""
    options = getattr(runner, "request_options", None)
    return {"request_options": options()} if callable(options) else {}


def _address_policy(runner: Runner) -> dict[str, str]:
    """Whether loopback/private addresses were allowed, when the runner says: a rerun under another policy then
    knows which results it must grade again (resume.py)."""
    allow = getattr(runner, "allow_private", None)
    if not isinstance(allow, bool):
        return {}
    return {"address_policy": ALLOW_PRIVATE if allow else PUBLIC_ONLY}
