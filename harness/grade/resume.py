"""Which submissions a rerun grades: those without a finished result, those asked for with ``--regrade``, and those
whose stored result is stale — graded for another URL, other thresholds or an address policy that decided it.

Resuming after a crash or ``kill -9`` reruns the same command, so nothing is stale and exactly the unfinished ids
are graded. A result is stale when the run that produced it asked a different question than the current one:

- the roster's URL for the id changed (the student resubmitted): the old grade is for another endpoint;
- the per-student thresholds changed: the old grade judged other limits;
- the grader's request options changed (``--set``, ``--token-method``, the names of ``-H`` headers, ``--dialect``,
  ``--model``, ``--max-tokens``): the old grade judged other settings or sent another request. A header's *value*
  is not recorded (it may be a credential), so a new value under the same name keeps the results. Records written
  before these options were recorded count as graded with none of them, and with whatever ``--max-tokens`` the
  rerun gives (grade took it before it was recorded);
- the address policy changed in a way that decides the result: a ``blocked_address`` refusal when private
  addresses are now allowed, or anything contacted under ``--allow-private`` when they no longer are.
  (A public endpoint graded without ``--allow-private`` would be graded the same with it: it is kept.)

A result graded under another *profile* is kept with a warning (cli.py): a rerun that forgot ``--profile`` must
not overwrite a whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.grade.attempt import ALLOW_PRIVATE, PUBLIC_ONLY, GradeInput
from harness.grade.store import RETRY_ON_RESUME, ResultStore

URL_CHANGED, THRESHOLDS_CHANGED, POLICY_CHANGED = "URL changed", "thresholds changed", "address policy changed"
OPTIONS_CHANGED = "request options changed"


def address_policy(allow_private: bool) -> str:
    return ALLOW_PRIVATE if allow_private else PUBLIC_ONLY


def recorded_options(record: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The request options a record was graded with; for an older record, none (grade had no -H, --set,
    --dialect or --model then) and the current --max-tokens (which it did not record)."""
    recorded = record.get("request_options")
    if isinstance(recorded, dict):
        return recorded
    return {"set": [], "headers": [], "dialect": None, "model": None, "max_tokens": current.get("max_tokens")}


def stale_reason(record: dict[str, Any], item: GradeInput, policy: str,
                 request_options: dict[str, Any] | None = None) -> str | None:
    """Why ``record`` does not answer the current run's question for ``item``; None when it still does.
    ``request_options``: the grader's (EngineRunner.request_options); None leaves them out of the comparison."""
    if record.get("url") != item.submission.url:
        return URL_CHANGED
    if (record.get("thresholds") or {}) != dict(o.split("=", 1) for o in item.overrides):
        return THRESHOLDS_CHANGED
    if request_options is not None and recorded_options(record, request_options) != request_options:
        return OPTIONS_CHANGED
    # Records written before the policy was recorded: a refusal can only have come from the strict policy.
    graded_under = record.get("address_policy") or (PUBLIC_ONLY if record.get("status") == "blocked_address"
                                                    else None)
    if graded_under == PUBLIC_ONLY and policy == ALLOW_PRIVATE and record.get("status") == "blocked_address":
        return POLICY_CHANGED
    if graded_under == ALLOW_PRIVATE and policy == PUBLIC_ONLY and record.get("status") != "invalid_url":
        return POLICY_CHANGED
    return None


@dataclass
class ResumePlan:
    pending: list[GradeInput] = field(default_factory=list)  # to grade now, roster order
    kept: int = 0  # finished results that still hold
    stale: dict[str, list[str]] = field(default_factory=dict)  # reason -> ids graded again
    other_profile: list[str] = field(default_factory=list)  # kept results graded with another profile

    @property
    def stale_ids(self) -> set[str]:
        return {i for ids in self.stale.values() for i in ids}

    def stale_text(self) -> str:
        """e.g. "3 results are stale (URL changed: 1, address policy changed: 2)"."""
        n = len(self.stale_ids)
        parts = ", ".join(f"{reason}: {len(ids)}" for reason, ids in self.stale.items())
        return f"{n} result{' is' if n == 1 else 's are'} stale ({parts})"


def plan_resume(items: Iterable[GradeInput], store: ResultStore, *, regrade: set[str], allow_private: bool,
                profile_name: str, request_options: dict[str, Any] | None = None) -> ResumePlan:
    plan = ResumePlan()
    policy = address_policy(allow_private)
    for item in items:
        ident = item.submission.id
        record = None if ident in regrade else store.load(ident)  # each record read once: they can be large
        if record is None or record.get("status") in RETRY_ON_RESUME:
            plan.pending.append(item)
            continue
        reason = stale_reason(record, item, policy, request_options)
        if reason:
            plan.stale.setdefault(reason, []).append(ident)
            plan.pending.append(item)
            continue
        plan.kept += 1
        if record.get("profile") != profile_name:
            plan.other_profile.append(ident)
    return plan
