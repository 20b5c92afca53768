"""Terminal rendering of a bench document (rich): one row per level, then overhead, SLOs and --compare deltas."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from harness.bench.stats import comparison_notes, slo_text


def _ms(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _auto(value: Any) -> str:
    """A number with as many decimals as its size deserves (1234, 12.3, 1.23, 0.012)."""
    if value is None:
        return "-"
    size = abs(value)
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.1 or size == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def levels_table(doc: dict[str, Any]) -> Table:
    """Throughput, errors and goodput: one row per level."""
    slos = doc.get("slo") or {}
    table = Table(title=f"streamconform bench  {doc.get('target', '')}", title_justify="left")
    table.add_column("level", no_wrap=True)
    table.add_column("ok/requests", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("requests/s", justify="right")
    table.add_column("tokens/s", justify="right")
    table.add_column("goodput/s" if slos else "goodput/s (no SLO)", justify="right")
    for lvl in doc.get("levels", []):
        g = lvl["goodput"]
        table.add_row(
            lvl["label"],
            f"{lvl['completed']}/{lvl['requests']}",
            f"{lvl['error_rate']:.0%}",
            _num(lvl["requests_per_s"], "{:.2f}"),
            _num(lvl["output_tokens_per_s"], "{:.0f}"),
            f"{g['requests_per_s']:.2f} ({g['fraction']:.0%})",
            style="red" if lvl["error_rate"] > 0 else None,
        )
    return table


_LATENCIES = (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("tpot_ms", "TPOT"), ("e2e_ms", "e2e"))


def latency_table(doc: dict[str, Any]) -> Table:
    """Latency percentiles: a row per level and metric, so it fits a terminal whatever the number of levels."""
    table = Table(title="latency (ms)", title_justify="left")
    table.add_column("level", no_wrap=True)
    table.add_column("metric")
    for name in ("p50", "p90", "p95", "p99", "max", "n"):
        table.add_column(name, justify="right")
    for lvl in doc.get("levels", []):
        for i, (key, name) in enumerate(_LATENCIES):
            d = lvl[key]
            table.add_row(lvl["label"] if i == 0 else "", name,
                          *(_ms(d.get(p)) for p in ("p50", "p90", "p95", "p99", "max")), str(d.get("count", 0)),
                          end_section=i == len(_LATENCIES) - 1)
    return table


def overhead_table(doc: dict[str, Any]) -> Table:
    table = Table(title="client overhead (is the client the bottleneck?)", title_justify="left")
    table.add_column("level", no_wrap=True)
    table.add_column("loop lag p50/p99/max", justify="right")
    table.add_column("client CPU", justify="right")
    table.add_column("parsing share", justify="right")
    table.add_column("CPU ms/1k events", justify="right")
    for lvl in doc.get("levels", []):
        o = lvl.get("overhead") or {}
        lag = o.get("loop_lag_ms") or {}
        if not o.get("judged", True):  # (bench JSON written before the field existed: judged as it was)
            # Figures over a few milliseconds of failing requests would only alarm; they stay in the JSON.
            table.add_row(lvl["label"], "not judged", "-", "-", "-", style="dim")
            continue
        table.add_row(
            lvl["label"],
            "/".join(_ms(lag.get(k)) for k in ("p50", "p99", "max")),
            _num((o.get("client_cpu_share") or 0) * 100, "{:.0f} % core"),
            _num((o.get("parse_cpu_share") or 0) * 100, "{:.0f} %"),
            _ms(o.get("client_cpu_ms_per_1k_events")),
        )
    return table


def compare_table(rows: list[dict[str, Any]], previous_label: str) -> Table:
    table = Table(title=f"compared with {previous_label}", title_justify="left")
    for name, justify in (("level", "left"), ("metric", "left"), ("previous", "right"), ("current", "right"),
                          ("change", "right")):
        table.add_column(name, justify=justify)
    for r in rows:
        pct = r["delta_pct"]
        change = "-" if r["delta"] is None else (f"{pct:+.1f} %" if pct is not None else f"{r['delta']:+.3g}")
        if r["delta"] == 0:
            change = "="
        if r.get("comparable") is False:
            change = "[dim]other SLO[/]"
        style = {True: "green", False: "red"}.get(r["better"])
        table.add_row(r["level"], r["metric"], _auto(r["previous"]), _auto(r["current"]),
                      f"[{style}]{change}[/]" if style else change)
    return table


def print_bench(doc: dict[str, Any], console: Console) -> None:
    console.print(levels_table(doc))
    console.print(latency_table(doc))
    slos = doc.get("slo") or {}
    if slos:
        console.print("goodput counts requests that succeeded and met every SLO: " + slo_text(slos),
                      highlight=False)
    console.print(overhead_table(doc))
    for lvl in doc.get("levels", []):
        for warning in (lvl.get("overhead") or {}).get("warnings", []):
            console.print(f"[yellow]warning[/] {lvl['label']}: {warning}", highlight=False)
        if (lvl.get("overhead") or {}).get("not_judged_reason"):
            console.print(f"[dim]{lvl['label']}: client overhead not judged: "
                          f"{lvl['overhead']['not_judged_reason']}[/]", highlight=False)
        if lvl.get("errors"):
            console.print(f"[red]errors[/] {lvl['label']}: "
                          + ", ".join(f"{k} x{v}" for k, v in sorted(lvl["errors"].items())), highlight=False)
    comparison = doc.get("comparison")
    if comparison:
        if comparison.get("rows"):
            console.print(compare_table(comparison["rows"], comparison["previous"]))
        # bench.py may store the notes (it has the previous document); otherwise say what this one shows.
        notes = comparison.get("notes")
        for note in comparison_notes(doc) if notes is None else notes:
            console.print(f"[yellow]compare[/]: {note}", highlight=False)
    console.print(f"tokens counted by {doc.get('token_method')}; ITL = every gap between content events, "
                  "TPOT = (last - first content) / (tokens - 1) per request", style="dim", highlight=False)
