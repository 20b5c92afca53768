"""The real Runner: harness.run.runner.run_target with the address policy, a deadline and no grader credentials.

Kept apart from attempt.py so the unit of work can be exercised with any Runner, and so the grade package
imports the whole core only when it really grades.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from harness.errors import TargetError
from harness.grade.attempt import AttemptOutcome, utc_now

# run_target enforces the deadline itself, evaluation included; this margin only covers tearing streams down after
# it fires. Past it the run is cancelled (an evaluation in its worker thread then stops at its next check), so the
# attempt, and the batch, end right after the deadline.
TEARDOWN_MARGIN_S = 2.0


def classify(end_reason: str | None, http_status: int | None) -> str:
    """A submission's status from how its primary capture ended."""
    if end_reason in ("blocked_address", "invalid_url"):
        return end_reason
    if http_status is None:  # no response at all: the transport failed, not the endpoint's HTTP
        if end_reason in ("deadline", "idle_timeout"):
            return "timeout"
        if end_reason in ("connect_error", "read_error"):
            return "unreachable"
    # Anything that answered — even with garbage — is graded: its checks say what is wrong.
    return "ok"


class EngineRunner:
    def __init__(self, profile: str, *, allow_private: bool = False, deadline_s: float = 60.0,
                 api_key: str | None = None, follow_redirects: bool = False,
                 categories: set[str] | None = None, max_tokens: int | None = None,
                 headers: dict[str, str] | None = None, overrides: list[str] | None = None,
                 dialect: str | None = None, model: str | None = None) -> None:
        self._profile_ref = profile
        self.max_tokens = max_tokens
        self.headers = dict(headers or {})  # the instructor's -H: sent to every submission
        self.overrides = list(overrides or [])  # --set for every submission, before per-student thresholds
        self.dialect = dialect  # None: the profile's; "auto": decided per submission (run_target)
        self.model = model
        self.allow_private = allow_private
        self.deadline_s = deadline_s
        # Never the grader's own STREAMCONFORM_API_KEY: only a key the instructor passed on purpose.
        self.api_key = api_key
        self.follow_redirects = follow_redirects
        self.categories = categories  # only these check categories are run and graded (None: all)
        # A memo of immutable profiles (many students share thresholds); loading is pure, so it is not state.
        self._profiles: dict[tuple[str, ...], Any] = {}
        self._weights: dict[tuple[str, ...], dict[str, float]] = {}
        self.base = self.profile([])  # fails fast (ConfigError) on a bad profile, before any grading

    def settings(self) -> dict[str, Any]:
        """The arguments this runner was built from: a copy on another machine (grade --ray) is built from
        them and grades exactly as this one does."""
        return {"profile": self._profile_ref, "allow_private": self.allow_private,
                "deadline_s": self.deadline_s, "api_key": self.api_key,
                "follow_redirects": self.follow_redirects, "categories": self.categories,
                "max_tokens": self.max_tokens, "headers": dict(self.headers),
                "overrides": list(self.overrides), "dialect": self.dialect, "model": self.model}

    def profile(self, overrides: list[str]) -> Any:
        key = tuple(overrides)
        if key not in self._profiles:
            from harness.run.profile import load_profile

            # The batch's --set first, so a student's own thresholds win over it.
            self._profiles[key] = load_profile(self._profile_ref, self.overrides + list(overrides))
        return self._profiles[key]

    def profile_name(self) -> str:
        return self.base.name

    def request_options(self) -> dict[str, Any]:
        """What the grader's options change in the question every submission is asked, recorded with each grade so
        a rerun with other options grades it again (resume.py). Header names only: a value may be a credential."""
        return {"set": list(self.overrides), "headers": sorted(self.headers, key=str.lower),
                "dialect": self.dialect, "model": self.model, "max_tokens": self.max_tokens}

    def weights(self, overrides: list[str]) -> dict[str, float]:
        key = tuple(overrides)
        if key not in self._weights:  # same memo: weights depend on the profile only
            profile = self.profile(overrides)
            self._weights[key] = graded_weights(profile, self.categories, self.sample_request(profile))
        return dict(self._weights[key])

    def sample_request(self, profile: Any) -> Any:
        """The request this grader sends every submission (the URL aside): what decides whether a check applies
        at all (the dialect, the credentials), the same for every student."""
        from harness.run.runner import build_spec

        # With auto, the checks graded are those that apply to the profile's dialect (the first request's); one
        # that does not apply to the dialect a submission answered in is left out of its maximum (not_applicable).
        dialect = self.dialect if self.dialect and self.dialect != "auto" else profile.dialect
        return build_spec("http://submission.invalid/", profile, self.options(), profile.prompts[0], dialect)

    def options(self) -> Any:
        from harness.capture.guard import AddressPolicy
        from harness.model import CAPTURE_MAX_BYTES, RUN_BUDGET_BYTES, Limits
        from harness.run.runner import RunOptions

        # The byte cap of each capture and the byte budget of the attempt are the ones `run` has (Limits' defaults):
        # a submission that floods costs a grade what it costs a run.
        limits = Limits(deadline_s=self.deadline_s, idle_timeout_s=min(Limits().idle_timeout_s, self.deadline_s),
                        connect_timeout_s=min(Limits().connect_timeout_s, self.deadline_s),
                        max_bytes=CAPTURE_MAX_BYTES, budget_bytes=RUN_BUDGET_BYTES)
        return RunOptions(headers=dict(self.headers), api_key=self.api_key, model=self.model, dialect=self.dialect,
                          limits=limits, follow_redirects=self.follow_redirects,
                          policy=AddressPolicy(allow_private=self.allow_private),
                          categories=self.categories, evaluate_in_thread=True, max_tokens=self.max_tokens)

    async def attempt(self, url: str, overrides: list[str]) -> AttemptOutcome:
        from harness.run.runner import run_target

        started_at, t0 = utc_now(), time.perf_counter()
        profile = self.profile(overrides)
        try:
            result = await asyncio.wait_for(run_target(url, profile, self.options()),
                                            self.deadline_s + TEARDOWN_MARGIN_S)
        except TargetError as exc:
            return AttemptOutcome(status=exc.status, end_reason=exc.status, error=str(exc), started_at=started_at,
                                  duration_s=time.perf_counter() - t0)
        except asyncio.TimeoutError:
            return AttemptOutcome(status="timeout", end_reason="deadline", started_at=started_at,
                                  error=f"no result within {self.deadline_s:g} s (stopped by the grader)",
                                  duration_s=time.perf_counter() - t0)
        end_reason = getattr(result, "end_reason", None) or None
        status = classify(end_reason, getattr(result, "status", None))
        primary = (getattr(result, "captures", None) or {}).get("primary")
        return AttemptOutcome(status=status, end_reason=end_reason, error=getattr(primary, "error", None),
                              result=result.to_dict() if status == "ok" else None, started_at=started_at,
                              duration_s=time.perf_counter() - t0)


def graded_weights(profile: Any, categories: set[str] | None = None, request: Any = None) -> dict[str, float]:
    """Check id -> weight for every enabled check of the profile, in registry order.

    A profile that sets no weights at all grades every enabled check equally (weight 1), so such a profile
    still yields a meaningful score.
    """
    from harness.checks import load_checks

    rules = {cid: profile.rule(cid) for cid, spec in load_checks().items()
             if (categories is None or spec.category in categories) and applicable(profile, cid)
             and applies_to_request(spec, profile, request)}
    enabled = {cid: r for cid, r in rules.items() if r.enabled}
    weights = {cid: float(r.weight) for cid, r in enabled.items() if r.weight > 0}
    return weights or {cid: 1.0 for cid in enabled}


def applies_to_request(spec: Any, profile: Any, request: Any) -> bool:
    """False for a check that cannot apply to the request the grader sends (``errors.auth`` without credentials,
    a probe of input that is valid in the profile's dialect): no student could earn or lose it."""
    if request is None or spec.applies is None:
        return True
    from harness.checks import Context
    from harness.measure.transcript import Transcript
    from harness.model import Capture

    stand_in = Transcript(capture=Capture(request=request), parsed=None, chunks=[], metrics=None)
    try:
        return spec.applies(Context(profile=profile, primary=stand_in)) is None
    except Exception:  # a broken rule: grade the check
        return True


def applicable(profile: Any, check_id: str) -> bool:
    """False for a check the profile enables but whose request the profile never makes (a probe not selected, a
    robustness part turned off): it would skip for every student, so it must not sit in the maximum."""
    category, _, name = check_id.partition(".")
    try:
        if category == "errors":
            from harness.checks import catalog

            return name not in catalog.PROBES or name in catalog.selected_probes(catalog.errors_settings(profile))
        if category == "robustness":
            from harness.checks import catalog

            planned = catalog.plan(catalog.robustness_settings(profile))
            return bool(planned.get(name, True))
        if category == "clients":  # a client the profile does not name never reads the endpoint
            from harness.clients import is_selected

            return is_selected(check_id, profile)
    except (ImportError, AttributeError, TypeError, ValueError):
        return True  # unknown layout: grade it, a skip then simply earns nothing
    return True
