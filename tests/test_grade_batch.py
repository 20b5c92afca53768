"""The batch pool and the retry rule, with a small injected Runner (the real one is exercised in test_grade_cli)."""

from __future__ import annotations

import asyncio

from harness.grade.attempt import AttemptOutcome, AttemptPolicy, GradeInput, grade_one
from harness.grade.batch import grade_all
from harness.grade.roster import Submission


class ScriptedRunner:
    """Answers each URL with a scripted list of statuses, one per attempt; records concurrency."""

    def __init__(self, script: dict[str, list[str]], delay: float = 0.01) -> None:
        self.script = {k: list(v) for k, v in script.items()}
        self.delay = delay
        self.in_flight = self.peak = 0
        self.calls: list[str] = []

    async def attempt(self, url, overrides):
        self.calls.append(url)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            status = self.script[url].pop(0)
            if status == "raise":
                raise RuntimeError("grader bug")
            result = {"passed": True, "checks": [{"id": "a.b", "status": "pass", "required": True}],
                      "metrics": {}} if status == "ok" else None
            return AttemptOutcome(status=status, result=result, started_at="t", duration_s=self.delay)
        finally:
            self.in_flight -= 1

    def weights(self, overrides):
        return {"a.b": 1}

    def profile_name(self):
        return "scripted"


def item(i: int, url: str | None = None) -> GradeInput:
    return GradeInput(Submission(f"s{i}", url or f"http://127.0.0.1:9/{i}"))


def test_transport_failure_retried_once_with_delay_and_both_attempts_recorded():
    runner = ScriptedRunner({"http://127.0.0.1:9/1": ["unreachable", "ok"], "http://127.0.0.1:9/2":
                             ["timeout", "timeout"], "http://127.0.0.1:9/3": ["ok"],
                             "http://127.0.0.1:9/4": ["blocked_address"]})
    slept: list[float] = []

    async def fake_sleep(s):
        slept.append(s)

    policy = AttemptPolicy(retry_delay_s=1.5)
    recs = [asyncio.run(grade_one(item(i), runner, policy, sleep=fake_sleep)) for i in (1, 2, 3, 4)]
    assert [r["status"] for r in recs] == ["ok", "timeout", "ok", "blocked_address"]
    assert [[a["status"] for a in r["attempts"]] for r in recs] == [
        ["unreachable", "ok"], ["timeout", "timeout"], ["ok"], ["blocked_address"]]
    assert slept == [1.5, 1.5]  # only after transport failures
    assert (recs[0]["score"], recs[1]["score"], recs[1]["max_score"]) == (1, 0, 1)


def test_invalid_url_never_reaches_the_runner():
    runner = ScriptedRunner({})
    rec = asyncio.run(grade_one(item(1, "ftp://x/"), runner))
    assert rec["status"] == "invalid_url" and runner.calls == [] and len(rec["attempts"]) == 1


def test_pool_bounds_concurrency_and_survives_a_grader_bug():
    n = 40
    script = {f"http://127.0.0.1:9/{i}": ["raise" if i == 7 else "ok"] for i in range(n)}
    runner = ScriptedRunner(script, delay=0.02)
    persisted: list[dict] = []
    seen: list[str] = []
    count = asyncio.run(grade_all([item(i) for i in range(n)], runner, persisted.append, concurrency=5,
                                  on_done=lambda r: seen.append(r["id"])))
    assert count == n and len(persisted) == n and sorted(seen) == sorted(f"s{i}" for i in range(n))
    assert runner.peak == 5
    bad = next(r for r in persisted if r["id"] == "s7")
    assert bad["status"] == "error" and "grader bug" in bad["attempts"][0]["error"]
