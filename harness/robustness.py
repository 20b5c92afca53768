"""Placeholder filled in by the errors/robustness work (issue 4). The runner calls collect() unconditionally."""

from __future__ import annotations

from typing import Any


async def collect(run: Any) -> None:
    """Add extra captures/data for the robustness checks to the run context. No-op until implemented."""
    return None
