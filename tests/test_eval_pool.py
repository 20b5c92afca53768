"""grade's evaluation in other processes (harness/run/eval_pool.py): the same verdicts as in-process, and a pool
that breaks costs no record (the submission is evaluated in a thread instead)."""

from __future__ import annotations

import asyncio

import pytest

from harness.model import Limits
from harness.run import eval_pool
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, run_target


def verdicts(url: str, *, in_process: bool, headers: dict[str, str] | None = None) -> dict[str, str]:
    opts = RunOptions(api_key=None, limits=Limits(deadline_s=30.0), evaluate_in_thread=True,
                      evaluate_in_process=in_process, headers=headers or {},
                      categories={"http", "framing", "schema", "stream", "content", "timing"})
    result = asyncio.run(run_target(url, load_profile("tds"), opts))
    return {c.id: c.status for c in result.checks}


@pytest.fixture
def one_process(monkeypatch):
    monkeypatch.setenv("STREAMCONFORM_EVAL_PROCESSES", "1")


def test_checks_evaluated_in_a_process_give_the_same_verdicts(reference_server, one_process):
    for fault in (None, "few-chunks"):
        headers = {"X-Fault": fault} if fault else None
        there = verdicts(reference_server.endpoint, in_process=True, headers=headers)
        here = verdicts(reference_server.endpoint, in_process=False, headers=headers)
        assert there == here, fault
    assert eval_pool._POOL is not None  # the pool did the work
    assert verdicts(reference_server.endpoint, in_process=True, headers={"X-Fault": "few-chunks"})[
        "content.chunks"] == "fail"


def test_a_broken_pool_falls_back_to_a_thread(reference_server, one_process):
    verdicts(reference_server.endpoint, in_process=True)  # the pool exists and has its worker
    pool = eval_pool._POOL
    assert pool is not None
    for process in list(pool._processes.values()):
        process.kill()  # as the OOM killer would
        process.join(5)
    got = verdicts(reference_server.endpoint, in_process=True)
    assert got and all(status in ("pass", "skip") for status in got.values()), got
    assert eval_pool._POOL is not pool  # replaced for the next submission
