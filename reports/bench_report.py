"""The benchmark report: TTFT / ITL / end-to-end distributions per load level, throughput and latency against
concurrency, SLO attainment and goodput, the client's own overhead, and a side-by-side with a previous run.

Input is the bench JSON of ``schemas/bench.schema.json`` (``harness/bench/cli.py``). Distributions are drawn as
empirical CDFs: from every request's record when the JSON kept them, else from the stored percentiles (exact at
p50/p90/p95/p99, which is all the JSON then knows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.bench.stats import COMPARED, compare_levels, comparison_notes, dig
from reports.render import finite_float, render_page

CDF_POINTS = 300  # per level and metric: enough for a smooth curve, small enough for a light page
DIST_METRICS = (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("tpot_ms", "TPOT"), ("e2e_ms", "end to end"))
CDF_METRICS = ("ttft_ms", "itl_ms", "e2e_ms")
PERCENTILE_KEYS = ("p50", "p90", "p95", "p99")
MAX_NOTES, MAX_NOTE_CHARS = 10, 600
# The compared rows whose numbers depend on how tokens are counted (bench_stats.COMPARED names them).
TOKEN_METRICS = frozenset(name for path, name, _ in COMPARED if path[0] in ("output_tokens_per_s", "tpot_ms"))
# How bench_stats.comparison_notes opens its note on a change of token count method (tested against it).
TOKEN_NOTE_OPENING = "tokens were counted by"

def _levels(doc: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not isinstance(doc, Mapping):
        return []
    return [lvl for lvl in doc.get("levels") or [] if isinstance(lvl, Mapping)]


def _label(lvl: Mapping[str, Any], index: int) -> str:
    label = lvl.get("label")
    if isinstance(label, str) and label:
        return label[:40]
    if lvl.get("concurrency") is not None:
        return f"c={lvl.get('concurrency')}"
    return f"level {index + 1}"


def _samples(lvl: Mapping[str, Any], metric: str) -> list[float]:
    """Every successful request's value of ``metric`` (ITL: every gap of every request, pooled)."""
    values: list[float] = []
    for rec in lvl.get("records") or []:
        if not isinstance(rec, Mapping) or rec.get("ok") is False:
            continue
        v = rec.get(metric)
        if isinstance(v, list):
            values.extend(x for x in (finite_float(i) for i in v) if x is not None)
        else:
            x = finite_float(v)
            if x is not None:
                values.append(x)
    return values


def cdf(lvl: Mapping[str, Any], metric: str) -> tuple[list[list[float]], str]:
    """Points ``[value_ms, fraction_of_requests]`` of the metric's empirical CDF, and where they came from."""
    values = sorted(_samples(lvl, metric))
    n = len(values)
    if n:
        if n <= CDF_POINTS:
            idx = range(n)
        else:
            idx = sorted({round(k * (n - 1) / (CDF_POINTS - 1)) for k in range(CDF_POINTS)})
        return [[round(values[i], 3), round((i + 1) / n, 5)] for i in idx], "records"
    dist = lvl.get(metric) if isinstance(lvl.get(metric), Mapping) else {}
    points = []
    for key, frac in (("min", 0.0), ("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
        v = finite_float(dist.get(key))
        if v is not None:
            points.append([round(v, 3), frac])
    return points, "percentiles"


def _x_axis(levels: list[Mapping[str, Any]]) -> tuple[str, str]:
    """Which level attribute the 'against concurrency' charts use on x, and its title."""
    if levels and all(lvl.get("concurrency") is not None for lvl in levels):
        return "concurrency", "concurrency (streams in flight)"
    if levels and all(lvl.get("rate") is not None for lvl in levels):
        return "rate", "offered load (requests/s, Poisson arrivals)"
    return "label", "load level"


def _x_value(lvl: Mapping[str, Any], key: str, index: int) -> str:
    if key == "label":
        return _label(lvl, index)
    v = finite_float(lvl.get(key))
    return f"{v:g}" if v is not None else _label(lvl, index)


def _series(levels: list[Mapping[str, Any]], key: str) -> dict:
    """Per level: its x category and the numbers the 'against concurrency' charts plot."""
    out = []
    for i, lvl in enumerate(levels):
        out.append({
            "x": _x_value(lvl, key, i),
            "sort": finite_float(lvl.get(key)) if key != "label" else i,
            "requests_per_s": finite_float(lvl.get("requests_per_s")),
            "output_tokens_per_s": finite_float(lvl.get("output_tokens_per_s")),
            "goodput_per_s": finite_float(dig(lvl, ("goodput", "requests_per_s"))),
            "ttft_p50": finite_float(dig(lvl, ("ttft_ms", "p50"))),
            "ttft_p99": finite_float(dig(lvl, ("ttft_ms", "p99"))),
            "e2e_p50": finite_float(dig(lvl, ("e2e_ms", "p50"))),
            "e2e_p99": finite_float(dig(lvl, ("e2e_ms", "p99"))),
            "itl_p99": finite_float(dig(lvl, ("itl_ms", "p99"))),
            "error_rate": finite_float(lvl.get("error_rate")),
        })
    return {"points": out}


def pivot(rows: list[Mapping[str, Any]]) -> tuple[list[str], list[tuple[str, list[Mapping[str, Any] | None]]]]:
    """Comparison rows as a grid: one line per metric, one column per level (both in first-seen order)."""
    levels: list[str] = []
    metrics: list[str] = []
    cells: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in rows:
        level, metric = str(r.get("level", ""))[:40], str(r.get("metric", ""))[:40]
        if level not in levels:
            levels.append(level)
        if metric not in metrics:
            metrics.append(metric)
        cells[(metric, level)] = r
    return levels, [(m, [cells.get((m, lv)) for lv in levels]) for m in metrics]


def _notes(bench: Mapping[str, Any], previous: Mapping[str, Any] | None, name: str,
           rows: list[Mapping[str, Any]]) -> list[str]:
    """What the CLI says beside the deltas (no level in common, other SLOs, targets, token count method):
    worked out from ``previous`` when at hand, else the notes the bench JSON stored (older JSON: what it
    shows)."""
    comparison = bench.get("comparison") if isinstance(bench.get("comparison"), Mapping) else {}
    stored = comparison.get("notes")
    if previous is None and isinstance(stored, list):
        return [str(n)[:MAX_NOTE_CHARS] for n in stored[:MAX_NOTES]]
    doc = {**bench, "levels": _levels(bench), "comparison": {**comparison, "previous": name, "rows": rows}}
    prev = {**previous, "levels": _levels(previous)} if previous is not None else None
    try:
        notes = comparison_notes(doc, prev)
    except (TypeError, ValueError, AttributeError) as exc:  # a hand-edited JSON (an SLO that is not a number)
        notes = [f"the caveats of this comparison could not be worked out from these files ({exc})"]
    return [n[:MAX_NOTE_CHARS] for n in notes[:MAX_NOTES]]


def _not_comparable(row: Mapping[str, Any], token_note: str | None) -> tuple[str, str] | None:
    """(short reason, full reason) when the CLI says this row's two numbers cannot be compared, else None."""
    if row.get("comparable") is False:
        return "other SLOs", "goodput was counted against other SLOs in each run: see the notes at the top"
    if token_note and str(row.get("metric")) in TOKEN_METRICS:
        return "other token count", token_note
    return None


def _change(row: Mapping[str, Any], token_note: str | None) -> dict[str, str]:
    """One comparison cell's verdict: the change and its colour, or why there is none. Never "unchanged" for
    numbers that cannot be compared or are missing."""
    why = _not_comparable(row, token_note)
    if why is not None:
        return {"text": "not comparable", "class": "na", "reason": why[0], "detail": why[1]}
    delta, pct = finite_float(row.get("delta")), finite_float(row.get("delta_pct"))
    if delta is None:
        missing = "the previous run" if finite_float(row.get("previous")) is None else "this run"
        return {"text": "no value", "class": "tag", "reason": "", "detail": f"no value in {missing}"}
    if delta == 0:
        return {"text": "unchanged", "class": "tag", "reason": "", "detail": ""}
    better = row.get("better")
    return {"text": f"{pct:+.1f} %" if pct is not None else f"{delta:+g}", "reason": "", "detail": "",
            "class": "better" if better is True else ("worse" if better is False else "tag")}


def _cell(row: Mapping[str, Any] | None, token_note: str | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"previous": row.get("previous"), "current": row.get("current"), **_change(row, token_note)}


def _level_view(lvl: Mapping[str, Any], i: int) -> dict:
    overhead = lvl.get("overhead") if isinstance(lvl.get("overhead"), Mapping) else {}
    goodput = lvl.get("goodput") if isinstance(lvl.get("goodput"), Mapping) else {}
    errors = lvl.get("errors") if isinstance(lvl.get("errors"), Mapping) else {}
    return {
        "label": _label(lvl, i),
        "requests": lvl.get("requests"),
        "completed": lvl.get("completed"),
        "failed": lvl.get("failed"),
        "error_rate": finite_float(lvl.get("error_rate")),
        "errors": sorted((str(k)[:60], v) for k, v in errors.items())[:10],
        "duration_s": finite_float(lvl.get("duration_s")),
        "requests_per_s": finite_float(lvl.get("requests_per_s")),
        "output_tokens_per_s": finite_float(lvl.get("output_tokens_per_s")),
        "dists": [(label, lvl.get(key) if isinstance(lvl.get(key), Mapping) else {}) for key, label in DIST_METRICS],
        "good_requests": goodput.get("good_requests"),
        "good_fraction": finite_float(goodput.get("fraction")),
        "goodput_per_s": finite_float(goodput.get("requests_per_s")),
        "loop_lag_p99": finite_float(dig(overhead, ("loop_lag_ms", "p99"))),
        "client_cpu_share": finite_float(overhead.get("client_cpu_share")),
        "parse_cpu_share": finite_float(overhead.get("parse_cpu_share")),
        "cpu_per_1k": finite_float(overhead.get("client_cpu_ms_per_1k_events")),
        "warnings": [str(w)[:300] for w in (overhead.get("warnings") or [])][:10],
    }


def render_bench(bench: Mapping[str, Any], previous: Mapping[str, Any] | None = None,
                 previous_name: str | None = None) -> str:
    """A self-contained HTML page for a bench result, side by side with ``previous`` (named ``previous_name``,
    e.g. its path) when given, else with the comparison the bench JSON carries (``bench --compare``)."""
    if not isinstance(bench, Mapping):
        raise TypeError("render_bench expects the bench result as a dict")
    if not isinstance(previous, Mapping):
        previous = None
    levels = _levels(bench)
    prev_levels = _levels(previous)
    x_key, x_title = _x_axis(levels + prev_levels)
    comparison = bench.get("comparison") if isinstance(bench.get("comparison"), Mapping) else None
    if previous is not None:
        rows = compare_levels(levels, prev_levels)  # the same rows `bench --compare` prints
    elif comparison and isinstance(comparison.get("rows"), list):
        rows = [r for r in comparison["rows"] if isinstance(r, Mapping)]
    else:
        rows = []
    previous_name = str(previous_name or (comparison or {}).get("previous") or "previous run")
    compared = previous is not None or comparison is not None
    notes = _notes(bench, previous, previous_name, rows) if compared else []
    token_note = next((n for n in notes if n.startswith(TOKEN_NOTE_OPENING)), None)
    compare_columns, grid = pivot(rows)
    cdfs: dict[str, Any] = {}
    sources = set()
    for metric in CDF_METRICS:
        cdfs[metric] = {"current": [], "previous": []}
        for which, group in (("current", levels), ("previous", prev_levels)):
            for i, lvl in enumerate(group):
                points, source = cdf(lvl, metric)
                sources.add(source)
                cdfs[metric][which].append({"label": _label(lvl, i), "points": points})
    data = {
        "x_title": x_title,
        "cdf": cdfs,
        "current": _series(levels, x_key),
        "previous": _series(prev_levels, x_key) if prev_levels else None,
        "slo": {str(k): finite_float(v) for k, v in (bench.get("slo") or {}).items()} if isinstance(bench.get("slo"), Mapping) else {},
    }
    slo = data["slo"]
    return render_page(
        "bench.html.j2",
        title="streamconform benchmark",
        data=data,
        script="bench.js",
        target=str(bench.get("target", "")),
        profile=str(bench.get("profile", "")),
        started_at=str(bench.get("started_at", "")),
        token_method=str(bench.get("token_method", "")),
        levels=[_level_view(lvl, i) for i, lvl in enumerate(levels)],
        slo=slo,
        compared=compared,
        compare_levels=compare_columns,
        compare_grid=[(metric, [_cell(r, token_note) for r in cells]) for metric, cells in grid],
        compare_notes=notes,
        previous_name=previous_name if compared else "",
        previous_started_at=str((previous or {}).get("started_at")
                                or (comparison or {}).get("previous_started_at") or ""),
        has_previous=bool(prev_levels),
        from_percentiles="percentiles" in sources,
        percentile_keys=PERCENTILE_KEYS,
    )
