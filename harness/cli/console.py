"""Human-readable rendering of a run result, shared by `run`, `check` and the pytest plugin: a rich table on a
terminal, one plain line per check in logs and pipes (greppable, never wrapped, no escape codes)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

_STATUS_ORDER = {"fail": 0, "warn": 1, "skip": 2, "pass": 3}
_STATUS_STYLE = {"fail": "bold red", "warn": "yellow", "skip": "dim", "pass": "green"}


class HarnessConsole(Console):
    """rich's Console, except that a reader closing the pipe (`| head`) raises BrokenPipeError for harness.cli to
    end the command quietly: rich's own handling exits with status 1, which here means "a check failed"."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more is written to a stream nobody reads
        raise BrokenPipeError


def make_console(*, stderr: bool = False) -> Console:
    """The console of a command. Outside a terminal rich would wrap every line at 80 columns (it cannot know the
    width of a log or a pipe): soft wrapping leaves each line whole instead. rich writes no colour codes there
    (and honours NO_COLOR on a terminal)."""
    console = HarnessConsole(stderr=stderr)
    console.soft_wrap = not console.is_terminal
    return console


def ordered_checks(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failing first (required before advisory), then warnings, skips, passes; stable within each group."""
    return sorted(checks, key=lambda c: (_STATUS_ORDER.get(c["status"], 9), not c.get("required", False)))


def _short(value: Any, limit: int = 40) -> str:
    if value is None:
        return ""
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_evidence(check: dict[str, Any], limit: int = 3, excerpt_chars: int = 160) -> str:
    """Evidence as plain text lines: byte offset, time, excerpt (repr'd so control bytes stay visible)."""
    lines = []
    for ev in (check.get("evidence") or [])[:limit]:
        parts = []
        if ev.get("offset") is not None:
            parts.append(f"@{ev['offset']}")
        if ev.get("t") is not None:
            parts.append(f"t={ev['t'] * 1000:.0f}ms")
        excerpt = ev.get("excerpt")
        if excerpt:
            parts.append(repr(excerpt[:excerpt_chars]) + ("…" if len(excerpt) > excerpt_chars else ""))
        for key, value in ev.items():  # any other evidence fields a check chose to add
            if key not in ("offset", "t", "excerpt", "curl"):  # a probe's curl is its `reproduce` line already
                parts.append(f"{key}={_short(value, 80)}")
        lines.append(" ".join(parts))
    more = len(check.get("evidence") or []) - limit
    if more > 0:
        lines.append(f"(+{more} more)")
    return "\n".join(lines)


def _missing_or_repr(value: Any) -> str:
    return "missing" if value is None else repr(value)


def format_check_failure(check: dict[str, Any]) -> str:
    """The text a pytest failure or a log shows for one check."""
    out = [f"{check['id']}: {check['status'].upper()} - {check.get('message', '')}"]
    if check.get("measured") is not None or check.get("threshold") is not None:
        out.append(f"measured: {_missing_or_repr(check.get('measured'))}   "
                   f"threshold: {_missing_or_repr(check.get('threshold'))}")
    evidence = format_evidence(check, limit=5)
    if evidence:
        out.append("evidence:\n  " + evidence.replace("\n", "\n  "))
    if check.get("reproduce"):
        out.append(f"reproduce:\n  {check['reproduce']}")
    return "\n".join(out)


def metrics_line(metrics: dict[str, Any]) -> str:
    """One line of the main request's figures; a figure that was not measured shows as "-", never "None"."""
    def shown(value: Any, fmt: str = "{}") -> str:
        return "-" if value is None else fmt.format(value)

    def ms(key: str) -> str:
        return shown(metrics.get(key), "{:.0f} ms")

    itl = metrics.get("itl_ms") or {}
    if itl.get("p50") is None and itl.get("p99") is None:
        itl_text = "ITL -"  # fewer than two content chunks: no gaps to measure
    else:
        itl_text = f"ITL p50 {shown(itl.get('p50'), '{:.1f}')} p99 {shown(itl.get('p99'), '{:.1f}')} ms"
    return (
        f"TTFB {ms('ttfb_ms')} | TTFT {ms('ttft_ms')} | "
        + (f"first reasoning {ms('ttfr_ms')} | " if metrics.get("ttfr_ms") is not None else "")
        + f"e2e {ms('e2e_ms')} | "
        f"{shown(metrics.get('chunks'))} chunks | {shown(metrics.get('chars'))} chars | "
        f"{shown(metrics.get('tokens'))} tokens ({metrics.get('token_method') or '?'}) | "
        f"{shown(metrics.get('tokens_per_s'), '{:.1f}')} tokens/s | {itl_text}"
        + (f" | clock {metrics['clock']}" if metrics.get("clock") else "")
        + (f" (TTFT +0/-{metrics['ttft_error_bound_ms']:g} ms)" if metrics.get("ttft_error_bound_ms") else "")
    )


def status_label(check: dict[str, Any]) -> str:
    """FAIL, WARN, SKIP or PASS; a trailing "?" marks an advisory check (reported, never fails the run)."""
    return check["status"].upper() + ("" if check.get("required") else "?")


def listed_checks(result: dict[str, Any], show_passed: bool, show_skipped: bool) -> tuple[list[dict], dict]:
    """The checks to list (failures first) and how many passed / skipped ones ``--quiet`` left out: they need no
    action, and a dead endpoint skips twenty checks that would bury its few failures."""
    hidden = {"pass": 0, "skip": 0}
    shown = []
    for check in ordered_checks(result.get("checks", [])):
        if (check["status"] == "pass" and not show_passed) or (check["status"] == "skip" and not show_skipped):
            hidden[check["status"]] += 1
        else:
            shown.append(check)
    return shown, hidden


def print_result(result: dict[str, Any], console: Console | None = None, show_passed: bool = True,
                 show_skipped: bool = True) -> None:
    """The checks (failures first), the metrics line and the verdict: a table on a terminal, plain lines in a
    log or a pipe, where a table is cut to 80 columns and its cells wrap mid-word."""
    console = console or make_console()
    checks, hidden = listed_checks(result, show_passed, show_skipped)
    plain = not console.is_terminal  # also for a caller's own console (a StringIO): lines kept whole
    if plain:
        print_plain(result, checks, console)
    else:
        print_table(result, checks, console)
    if any(hidden.values()):
        console.print(f"(not listed: {hidden['pass']} passed, {hidden['skip']} skipped)", style="dim",
                      highlight=False, soft_wrap=plain)
    console.print("(? = advisory check: reported, never fails the run)", style="dim", highlight=False,
                  soft_wrap=plain)
    console.print(metrics_line(result.get("metrics", {})), highlight=False, soft_wrap=plain)
    console.print(verdict_markup(result), soft_wrap=plain, highlight=False)
    hint = (result.get("root_cause") or {}).get("hint")
    if hint:
        console.print(f"hint: {hint}", soft_wrap=plain, highlight=False)
    if not result.get("passed"):
        print_reproduce(result, console)


def verdict_markup(result: dict[str, Any]) -> str:
    """The verdict line (harness.result.verdict_text) with PASS/FAIL coloured for a terminal."""
    from rich.markup import escape

    from harness.result import verdict_text

    checks = result.get("checks", [])
    failed = [c["id"] for c in checks if c["status"] == "fail" and c.get("required")]
    advisory = result.get("advisory_failures")
    if advisory is None:
        advisory = [c["id"] for c in checks if c["status"] == "fail" and not c.get("required")]
    cause = (result.get("root_cause") or {}).get("cause")
    line = escape(verdict_text(bool(result.get("passed")), failed, advisory, cause))
    word = "PASS" if result.get("passed") else "FAIL"
    return f"[bold {'green' if word == 'PASS' else 'red'}]{word}[/]{line[len(word):]}"


def _plain_value(value: Any) -> str:
    """A measured or threshold value as one token: "-" when absent, quoted when it holds spaces."""
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):  # compact JSON: one token that jq or a script can read back
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    return repr(text) if not text or any(ch.isspace() for ch in text) else text


def plain_line(check: dict[str, Any], id_width: int = 0) -> str:
    """One check on one line: status, id, measured=..., threshold=..., message (its line breaks folded)."""
    message = " ".join((check.get("message") or "").splitlines())
    return (f"{status_label(check):<5}  {check['id']:<{id_width}}  measured={_plain_value(check.get('measured'))}"
            f"  threshold={_plain_value(check.get('threshold'))}  {message}").rstrip()


def print_plain(result: dict[str, Any], checks: list[dict[str, Any]], console: Console) -> None:
    """The greppable layout: a header line, then one line per check; a failure's or warning's evidence follows
    on indented lines, which never start with a status word."""
    console.print(f"target {result.get('target')}  profile {result.get('profile')}", markup=False,
                  highlight=False, soft_wrap=True)
    width = max((len(c["id"]) for c in checks), default=0)
    for check in checks:
        console.print(plain_line(check, width), markup=False, highlight=False, soft_wrap=True)
        if check["status"] in ("fail", "warn"):
            for line in format_evidence(check, limit=2, excerpt_chars=60).splitlines():
                console.print(f"       evidence: {line}", markup=False, highlight=False, soft_wrap=True)


def print_table(result: dict[str, Any], checks: list[dict[str, Any]], console: Console) -> None:
    table = Table(title=f"{result.get('target')}  [profile {result.get('profile')}]", show_lines=False,
                  expand=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("measured", overflow="fold", max_width=24)
    table.add_column("threshold", overflow="fold", max_width=24)
    table.add_column("message / evidence", overflow="fold", ratio=1)
    for check in checks:
        detail = Text(check.get("message") or "")
        if check["status"] in ("fail", "warn"):
            evidence = format_evidence(check, limit=2, excerpt_chars=60)
            if evidence:
                detail.append("\n" + evidence, style="dim")
        table.add_row(
            Text(status_label(check), style=_STATUS_STYLE.get(check["status"], "")),
            check["id"],
            _short(check.get("measured")),
            _short(check.get("threshold")),
            detail,
        )
    if table.row_count:  # --quiet on a clean run: no empty frame, the "not listed" line says it all
        console.print(table)


def print_reproduce(result: dict[str, Any], console: Console, limit: int = 4) -> None:
    """One curl line per distinct failing request (the main stream, a probe...), so each failure can be replayed."""
    by_command: dict[str, list[str]] = {}
    for check in ordered_checks(result.get("checks", [])):
        if check["status"] == "fail" and check.get("reproduce"):
            by_command.setdefault(check["reproduce"], []).append(check["id"])
    for command, ids in list(by_command.items())[:limit]:
        console.print(f"reproduce ({', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''}):", highlight=False,
                      soft_wrap=not console.is_terminal)
        console.print(Text(command), soft_wrap=True)
    if len(by_command) > limit:
        console.print(f"(+{len(by_command) - limit} more requests: --json or --html has every one)", highlight=False,
                      soft_wrap=not console.is_terminal)
