"""Score = sum over checks of weight x credit; the maximum is the same for every student.

Credit per check status: pass 1, warn ``WARN_CREDIT`` (an advisory problem costs something, not everything),
fail 0, skip 0 (a check is skipped when what it needs never arrived), not run 0. The maximum sums the weights of
every check the profile grades, whether or not it ran, so an unreachable endpoint scores 0 out of the same
maximum as everyone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CREDIT = {"pass": 1.0, "warn": 0.5, "fail": 0.0, "skip": 0.0, "not_run": 0.0}
WARN_CREDIT = CREDIT["warn"]
DEFAULT_WEIGHT = 1.0


@dataclass
class Score:
    score: float
    max_score: float
    items: list[dict[str, Any]] = field(default_factory=list)  # one per graded check

    @property
    def failed(self) -> list[str]:
        """Check ids that lost points, in profile order."""
        return [i["id"] for i in self.items if i["points"] < i["weight"]]


def score_checks(checks: Iterable[Mapping[str, Any]], weights: Mapping[str, float] | None) -> Score:
    """``checks``: result check dicts (id, status, required). ``weights``: check id -> weight from the profile
    (None: every check present weighs ``DEFAULT_WEIGHT``). A weight of 0 means reported but not graded."""
    by_id = {c["id"]: c for c in checks}
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
        items.append({"id": cid, "status": status, "required": bool(check and check.get("required")),
                      "weight": _round(weight), "points": _round(points)})
    return Score(score=_round(sum(i["points"] for i in items)), max_score=_round(sum(i["weight"] for i in items)),
                 items=items)


def _round(x: float) -> float:
    r = round(float(x), 4)
    return int(r) if r.is_integer() else r
