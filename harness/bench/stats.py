"""Pure arithmetic of the load benchmark: percentiles, SLOs, goodput and per-level summaries.

No I/O and no clock here, so every number a bench prints can be recomputed from the per-request records in its
JSON. Times are milliseconds throughout (the unit people quote for latency SLOs).

Metric names, and which formula each one means (peers disagree, see the README):

- ``ttft_ms``  request sent -> first event carrying non-empty content (a role-only or empty first chunk does not
  stop the clock).
- ``itl_ms``   every gap between two consecutive content-carrying events of one request, pooled over all requests
  of a level (vLLM's ITL: a gap per chunk, not per token).
- ``tpot_ms``  one value per request: (last content time - first content time) / (tokens - 1), i.e. the mean time
  per output token after the first (vLLM's TPOT, guidellm's "inter token latency").
- ``e2e_ms``   request sent -> end of the response body.
- goodput      requests that succeeded *and* met every SLO, divided by the level's wall time (vLLM's definition).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError
from harness.measure.metrics import (
    percentile,  # one definition of the interpolation, shared with the run metrics
)

PERCENTILES = (50, 90, 95, 99)

# SLO names accepted by --slo, each bound to the per-request field it limits. All are upper bounds in ms.
SLO_FIELDS = {
    "ttft_ms": "ttft_ms",
    "tpot_ms": "tpot_ms",
    "e2e_ms": "e2e_ms",
    "ttfb_ms": "ttfb_ms",
    "itl_ms": "itl_max_ms",  # an ITL SLO bounds the worst gap of the request, as a user feels the longest stall
}


def distribution(values: Iterable[float | None]) -> dict[str, Any]:
    """count, mean, min, max and p50/p90/p95/p99 of the values that are not None."""
    data = sorted(v for v in values if v is not None)
    out: dict[str, Any] = {"count": len(data)}
    if not data:
        out.update({"mean": None, "min": None, "max": None, **{f"p{p}": None for p in PERCENTILES}})
        return out
    out["mean"] = sum(data) / len(data)
    out["min"] = data[0]
    out["max"] = data[-1]
    for p in PERCENTILES:
        out[f"p{p}"] = percentile(data, p)
    return out


def parse_slos(items: Iterable[str]) -> dict[str, float]:
    """``["ttft_ms=2401", "tpot_ms=50"]`` -> ``{"ttft_ms": 2401.0, "tpot_ms": 50.0}``; bad input is a ConfigError."""
    slos: dict[str, float] = {}
    for item in items or ():
        for part in item.split(","):  # "--slo ttft_ms=1,tpot_ms=2" is accepted too
            if not part.strip():
                continue
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in SLO_FIELDS:
                raise ConfigError(f"--slo {part!r}: expected NAME=MILLISECONDS with NAME one of "
                                  f"{', '.join(SLO_FIELDS)}")
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"--slo {part!r}: {raw!r} is not a number of milliseconds") from None
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"--slo {part!r}: the limit must be a positive number of milliseconds")
            slos[name] = value
    return slos


def meets_slos(record: Mapping[str, Any], slos: Mapping[str, float]) -> bool:
    """A request is good when it succeeded and every SLO'd metric was measured and within its limit.

    A metric that could not be measured (no content, a single token for TPOT) fails its SLO, except TPOT of a
    one-token answer, which vLLM counts as 0: it had no second token to be late.
    """
    if not record.get("ok"):
        return False
    for name, limit in slos.items():
        value = record.get(SLO_FIELDS[name])
        if value is None and name == "tpot_ms" and (record.get("tokens") or 0) <= 1:
            value = 0.0
        if value is None or value > limit:
            return False
    return True


@dataclass(frozen=True)
class LevelSpec:
    """One load level: a fixed concurrency (closed loop) or a Poisson arrival rate (open loop)."""

    mode: str  # "closed" | "open"
    concurrency: int | None = None
    rate: float | None = None

    @property
    def label(self) -> str:
        if self.mode == "closed":
            return f"c={self.concurrency}"
        return f"rate={self.rate:g}/s"


def summarize_level(spec: LevelSpec, records: Sequence[Mapping[str, Any]], duration_s: float,
                    slos: Mapping[str, float], overhead: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the table and the JSON show for one level, from its per-request records."""
    ok = [r for r in records if r.get("ok")]
    n = len(records)
    duration_s = max(duration_s, 1e-9)
    good = sum(1 for r in records if meets_slos(r, slos))
    itl_pool = [g for r in ok for g in (r.get("itl_ms") or ())]
    tokens_total = sum(int(r.get("tokens") or 0) for r in ok)
    errors: dict[str, int] = {}
    for r in records:
        if not r.get("ok"):
            key = r.get("error_kind") or "error"
            errors[key] = errors.get(key, 0) + 1
    return {
        "label": spec.label,
        "mode": spec.mode,
        "concurrency": spec.concurrency,
        "rate": spec.rate,
        "requests": n,
        "completed": len(ok),
        "failed": n - len(ok),
        "error_rate": (n - len(ok)) / n if n else 0.0,
        "errors": errors,
        "duration_s": duration_s,
        "requests_per_s": len(ok) / duration_s,
        "output_tokens": tokens_total,
        "output_tokens_per_s": tokens_total / duration_s,
        "ttfb_ms": distribution(r.get("ttfb_ms") for r in ok),
        "ttft_ms": distribution(r.get("ttft_ms") for r in ok),
        "itl_ms": distribution(itl_pool),
        "tpot_ms": distribution(r.get("tpot_ms") for r in ok),
        "e2e_ms": distribution(r.get("e2e_ms") for r in ok),
        "goodput": {"slo": dict(slos), "good_requests": good, "requests_per_s": good / duration_s,
                    "fraction": good / n if n else 0.0},
        "overhead": dict(overhead or {}),
    }


# What --compare shows, as (path into a level summary, label, True when bigger is better).
COMPARED = (
    (("ttft_ms", "p50"), "TTFT p50 ms", False),
    (("ttft_ms", "p99"), "TTFT p99 ms", False),
    (("itl_ms", "p50"), "ITL p50 ms", False),
    (("itl_ms", "p99"), "ITL p99 ms", False),
    (("tpot_ms", "p50"), "TPOT p50 ms", False),
    (("e2e_ms", "p99"), "e2e p99 ms", False),
    (("requests_per_s",), "requests/s", True),
    (("output_tokens_per_s",), "tokens/s", True),
    (("goodput", "requests_per_s"), "goodput/s", True),
    (("error_rate",), "error rate", False),
)


def dig(doc: Any, path: Sequence[str]) -> Any:
    """``doc[path[0]][path[1]]...``, or None where a level is missing or not a mapping."""
    cur: Any = doc
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _level_slo(level: Mapping[str, Any]) -> dict[str, Any] | None:
    slo = dig(level, ("goodput", "slo"))
    return dict(slo) if isinstance(slo, Mapping) else None


def compare_levels(current: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Deltas of the headline metrics for each level present in both runs (matched by label).

    ``better`` is True / False when the change is an improvement / a regression, None when unchanged or unknown.
    Goodput counted against other SLOs than this run's is shown but not compared: its row has no delta and
    ``comparable`` False (a tighter SLO would read as a regression of the server).
    """
    prev_by_label = {lvl.get("label"): lvl for lvl in previous}
    rows: list[dict[str, Any]] = []
    for lvl in current:
        old = prev_by_label.get(lvl.get("label"))
        if old is None:
            continue
        new_slo, old_slo = _level_slo(lvl), _level_slo(old)
        slo_differs = new_slo is not None and old_slo is not None and new_slo != old_slo
        for path, name, bigger_is_better in COMPARED:
            new_v, old_v = dig(lvl, path), dig(old, path)
            delta = pct = better = None
            comparable = not (slo_differs and path[0] == "goodput")
            if comparable and isinstance(new_v, (int, float)) and isinstance(old_v, (int, float)):
                delta = new_v - old_v
                pct = (delta / old_v * 100.0) if old_v else None
                if delta:
                    better = (delta > 0) == bigger_is_better
            row = {"level": lvl.get("label"), "metric": name, "previous": old_v, "current": new_v,
                   "delta": delta, "delta_pct": pct, "better": better}
            if not comparable:
                row["comparable"] = False
            rows.append(row)
    return rows


def slo_text(slos: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k} <= {v:g}" for k, v in (slos or {}).items()) or "no SLO"


def comparison_notes(doc: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> list[str]:
    """What a reader of the --compare deltas must know: no level in common, other SLOs, another target or
    token count. ``doc`` is the current bench document with its ``comparison``; ``previous`` the compared
    document when at hand (without it, only what the current document shows is said)."""
    comparison = doc.get("comparison") if isinstance(doc.get("comparison"), Mapping) else {}
    rows = comparison.get("rows") or []
    name = comparison.get("previous") or "the previous run"
    labels = ", ".join(str(lvl.get("label")) for lvl in doc.get("levels") or []) or "none"
    notes: list[str] = []
    if not rows:
        text = f"no level in common with {name}, so nothing is compared "
        text += f"(levels are matched by label; this run: {labels}"
        if previous is not None:
            previous_labels = [str(lvl.get("label")) for lvl in previous.get("levels") or []
                               if isinstance(lvl, Mapping)]
            text += f"; {name}: {', '.join(previous_labels) or 'none'}"
        notes.append(text + "): rerun with the same --concurrency or --rate")
    same_server = previous is not None and all(
        dig(d, ("options", "reference_server")) is True for d in (doc, previous))
    if previous is not None and not same_server and previous.get("target") != doc.get("target"):
        notes.append(f"the runs measured different targets ({previous.get('target')} then, "
                     f"{doc.get('target')} now): the deltas compare two endpoints, not two runs of one")
    old_slo = previous.get("slo") if previous is not None else None
    if isinstance(old_slo, Mapping) and dict(old_slo) != dict(doc.get("slo") or {}):
        notes.append(f"the SLOs differ ({slo_text(old_slo)} then, {slo_text(doc.get('slo'))} now): goodput "
                     "counts requests meeting the SLOs, so it is not comparable and is not compared")
    elif any(r.get("comparable") is False for r in rows):
        notes.append(f"{name} counted goodput against other SLOs than this run ({slo_text(doc.get('slo'))}): "
                     "goodput is not comparable and is not compared")
    old_tokens = previous.get("token_method") if previous is not None else None
    if old_tokens and doc.get("token_method") and old_tokens != doc.get("token_method"):
        notes.append(f"tokens were counted by {old_tokens} then and {doc.get('token_method')} now: tokens/s "
                     "and TPOT differ by method as well as by speed")
    return notes
