"""Terminal rendering of a bench document (rich): one row per level, then overhead, SLOs and --compare deltas."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _ms(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def levels_table(doc: dict[str, Any]) -> Table:
    slos = doc.get("slo") or {}
    title = f"streamconform bench  {doc.get('target', '')}"
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("level", no_wrap=True)
    table.add_column("ok/req", justify="right")
    table.add_column("err %", justify="right")
    table.add_column("req/s", justify="right")
    table.add_column("tok/s", justify="right")
    for metric in ("TTFT", "ITL", "TPOT", "e2e"):
        table.add_column(f"{metric} p50/p90/p95/p99 ms", justify="right")
    if slos:
        table.add_column("goodput/s", justify="right")
    for lvl in doc.get("levels", []):
        row = [
            lvl["label"],
            f"{lvl['completed']}/{lvl['requests']}",
            _num(lvl["error_rate"] * 100, "{:.0f}"),
            _num(lvl["requests_per_s"], "{:.2f}"),
            _num(lvl["output_tokens_per_s"], "{:.0f}"),
        ]
        for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
            d = lvl[key]
            row.append("/".join(_ms(d.get(f"p{p}")) for p in (50, 90, 95, 99)))
        if slos:
            g = lvl["goodput"]
            row.append(f"{g['requests_per_s']:.2f} ({g['fraction']:.0%})")
        style = "red" if lvl["error_rate"] > 0 else None
        table.add_row(*row, style=style)
    return table


def overhead_table(doc: dict[str, Any]) -> Table:
    table = Table(title="client overhead (is the client the bottleneck?)", title_justify="left")
    table.add_column("level")
    table.add_column("loop lag p50/p99/max ms", justify="right")
    table.add_column("client CPU", justify="right")
    table.add_column("parsing share", justify="right")
    table.add_column("CPU ms / 1k events", justify="right")
    for lvl in doc.get("levels", []):
        o = lvl.get("overhead") or {}
        lag = o.get("loop_lag_ms") or {}
        table.add_row(
            lvl["label"],
            "/".join(_ms(lag.get(k)) for k in ("p50", "p99", "max")),
            _num((o.get("client_cpu_share") or 0) * 100, "{:.0f} % of a core"),
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
        style = {True: "green", False: "red"}.get(r["better"])
        table.add_row(r["level"], r["metric"], _num(r["previous"], "{:.3g}"), _num(r["current"], "{:.3g}"),
                      f"[{style}]{change}[/]" if style else change)
    return table


def print_bench(doc: dict[str, Any], console: Console) -> None:
    console.print(levels_table(doc))
    slos = doc.get("slo") or {}
    if slos:
        console.print("goodput counts requests that succeeded and met every SLO: "
                      + ", ".join(f"{k} <= {v:g}" for k, v in slos.items()), highlight=False)
    console.print(overhead_table(doc))
    for lvl in doc.get("levels", []):
        for warning in (lvl.get("overhead") or {}).get("warnings", []):
            console.print(f"[yellow]warning[/] {lvl['label']}: {warning}", highlight=False)
        if lvl.get("errors"):
            console.print(f"[red]errors[/] {lvl['label']}: "
                          + ", ".join(f"{k} x{v}" for k, v in sorted(lvl["errors"].items())), highlight=False)
    if doc.get("comparison"):
        console.print(compare_table(doc["comparison"]["rows"], doc["comparison"]["previous"]))
    console.print(f"tokens counted by {doc.get('token_method')}; ITL = every gap between content events, "
                  "TPOT = (last - first content) / (tokens - 1) per request", style="dim", highlight=False)
