"""Score = sum over checks of weight x credit; the maximum is the same for every student (but see below).

Credit per check status: pass 1, warn ``WARN_CREDIT`` (an advisory problem costs something, not everything),
fail 0, skip 0 (a check is skipped when what it needs never arrived), not run 0. The maximum sums the weights of
every check the profile grades, whether or not it ran, so an unreachable endpoint scores 0 out of the same
maximum as everyone else.

One exception: a check skipped because the *grader's* deadline (``--deadline``) ran out before its requests could
be sent (probes and robustness parts are started only when the time left covers them) says nothing about the
student. It is reported as ``not_run`` with ``reason: grader_deadline`` and ``counted: false``: it earns nothing and
is left out of that student's maximum, so the grader's own time budget is never charged to a student. Unless the
student's own stream was too slow (a failed ``timing.*`` check): then the endpoint used up the time itself, and
the cut checks count as skipped, so slowing down cannot take checks out of the maximum.

Likewise a check that does not apply to the endpoint at all (``applicable: false`` in the result: no credentials
for ``errors.auth`` to take away, a request that is valid input in the endpoint's dialect) is left out of the
maximum with ``reason: not_applicable``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CREDIT = {"pass": 1.0, "warn": 0.5, "fail": 0.0, "skip": 0.0, "not_run": 0.0}
GRADER_DEADLINE = "grader_deadline"
NOT_APPLICABLE = "not_applicable"  # e.g. errors.auth when the run sends no credentials: nothing to earn or lose
# How the harness words a skip caused by the run's own deadline: a probe "not sent: the run's deadline was reached
# first", a robustness part "... left before the run's deadline ...", "... fitted before the deadline", a stage that
# "ran out of time (run deadline)", the request after a drop "not sent (run deadline)". Only the categories that
# send extra requests are considered, so no text taken from a response can make a check stop counting.
# A client (clients.*) skipped for the deadline says "not run: too little of the run's deadline was left".
_DEADLINE_SKIP = re.compile(r"run's deadline|run deadline|fitted before the deadline|\(--deadline\)")
_DEADLINE_CATEGORIES = ("errors.", "robustness.", "clients.")
WARN_CREDIT = CREDIT["warn"]
DEFAULT_WEIGHT = 1.0


@dataclass
class Score:
    score: float
    max_score: float
    items: list[dict[str, Any]] = field(default_factory=list)  # one per graded check

    @property
    def failed(self) -> list[str]:
        """Check ids that lost points, in profile order (a check that does not count lost nothing)."""
        return [i["id"] for i in self.items if counted(i) and i["points"] < i["weight"]]


def counted(item: Mapping[str, Any]) -> bool:
    """Whether a scoring item is part of the maximum (False only for checks the grader's deadline cut)."""
    return item.get("counted", True) is not False


def cut_by_grader_deadline(check: Mapping[str, Any] | None) -> bool:
    """A check skipped only because the run's deadline left no time to send its requests."""
    return (bool(check) and check.get("status") == "skip" and str(check.get("id")).startswith(_DEADLINE_CATEGORIES)
            and bool(_DEADLINE_SKIP.search(str(check.get("message")))))


def score_checks(checks: Iterable[Mapping[str, Any]], weights: Mapping[str, float] | None) -> Score:
    """``checks``: result check dicts (id, status, required). ``weights``: check id -> weight from the profile
    (None: every check present weighs ``DEFAULT_WEIGHT``). A weight of 0 means reported but not graded."""
    by_id = {c["id"]: c for c in checks}
    too_slow = any(str(i).startswith("timing.") and c.get("status") == "fail" for i, c in by_id.items())
    # With profile weights only the profile's checks are graded, so the maximum cannot depend on what ran.
    order = list(weights) if weights is not None else list(by_id)
    items = []
    for cid in order:
        weight = float(weights[cid]) if weights is not None else DEFAULT_WEIGHT
        if weight <= 0:
            continue
        check = by_id.get(cid)
        status = check.get("status", "not_run") if check else "not_run"
        points = weight * CREDIT.get(status, 0.0)
        item = {"id": cid, "status": status, "required": bool(check and check.get("required")),
                "weight": _round(weight), "points": _round(points)}
        if not too_slow and cut_by_grader_deadline(check):
            item.update(status="not_run", points=0, reason=GRADER_DEADLINE, counted=False)
        elif check and check.get("applicable") is False:
            item.update(points=0, reason=NOT_APPLICABLE, counted=False)
        items.append(item)
    return Score(score=_round(sum(i["points"] for i in items)),
                 max_score=_round(sum(i["weight"] for i in items if counted(i))), items=items)


def _round(x: float) -> float:
    r = round(float(x), 4)
    return int(r) if r.is_integer() else r
