"""clients: will real clients read the stream? One check per client (harness/clients), advisory unless a
profile requires one (grading requires the browser: the exam reads the endpoint that way).

What a client read comes from ``ctx.extra["clients"]["results"][name]`` (harness/clients/collect.py). It is
compared with what the harness decodes from the bytes that same client received (its ``raw`` record: a model
that answers each request anew is still judged fairly); without a record, with the main stream's answer. Text
is compared with whitespace normalised. A client that raised fails with the exception named; one that read
nothing, or other text, fails with the harness's reading beside it. The first-text time as the client saw it
is reported beside the harness's TTFT of the main stream."""

from __future__ import annotations

from typing import Any

from harness.checks import Context, Outcome, check, evidence
from harness.clients import CLIENTS
from harness.clients.raw import capture_of

THRESHOLD = "the same text as the harness decodes from the bytes the client received (whitespace normalised)"
_LABELS = {"openai_python": "openai-python", "anthropic_python": "anthropic-python", "ollama_python":
           "ollama-python", "google_genai": "google-genai", "openai_node": "openai-node",
           "vercel_ai": "the Vercel AI SDK", "browser": "the browser"}
_DIFF_CONTEXT = 40


def _normalised(text: str) -> str:
    return " ".join(text.split())


def first_difference(a: str, b: str) -> int:
    """Index of the first character where ``a`` and ``b`` differ (the shorter one's length when one is a
    prefix)."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def short_diff(client: str, harness: str) -> str:
    """Where two texts part, with a little context from each."""
    i = first_difference(client, harness)
    start = max(0, i - _DIFF_CONTEXT)

    def around(text: str) -> str:
        piece = text[start:i + _DIFF_CONTEXT]
        return ("…" if start else "") + repr(piece)[1:-1] + ("…" if i + _DIFF_CONTEXT < len(text) else "")

    return f"at character {i}: client {around(client)!s} | harness {around(harness)!s}"


def _ms(value: Any) -> str:
    return "missing" if not isinstance(value, (int, float)) else f"{value:.0f} ms"


def _rounded(value: Any) -> float | None:
    return round(float(value), 1) if isinstance(value, (int, float)) else None


def _applies(name: str):
    def rule(ctx: Context) -> str | None:
        dialect = ctx.primary.capture.request.dialect
        if dialect in CLIENTS[name].dialects:
            return None
        speaks = ", ".join(CLIENTS[name].dialects)
        return f"{_LABELS[name]} does not speak the {dialect} dialect (it reads {speaks})"

    return rule


def _reference(ctx: Context, result: dict[str, Any]) -> tuple[str, bool, str]:
    """(the harness's text, whether it may be cut short, where it comes from)."""
    raw = result.get("raw")
    if isinstance(raw, dict) and raw.get("status") is not None:
        tr = ctx.transcript(capture_of(raw, ctx.primary.capture.request))
        return tr.text, bool(raw.get("truncated")) or bool(result.get("text_truncated")), "the same bytes"
    return ctx.primary.text, False, "the main stream (no record of the client's bytes)"


def judge(name: str, ctx: Context) -> Outcome:
    label = _LABELS[name]
    held = ctx.extra.get("clients") if isinstance(ctx.extra.get("clients"), dict) else {}
    result = (held.get("results") or {}).get(name)
    if not isinstance(result, dict):
        why = (ctx.extra.get("stage_errors") or {}).get("clients") or "the clients stage did not reach it"
        return Outcome.skip(f"not run: {why}")
    if "skipped" in result:
        # A client missing (or not starting) here says nothing about the endpoint: left out of a grade's
        # maximum.
        here = result.get("installed") is False or bool(result.get("setup"))
        return Outcome.skip(f"{label}: {result['skipped']}", applicable=not here)
    client_text = result.get("text") if isinstance(result.get("text"), str) else ""
    harness_text, cut, source = _reference(ctx, result)
    who = result.get("version") or label
    measured = {"chars": len(client_text), "harness_chars": len(harness_text),
                "first_text_ms": _rounded(result.get("first_text_ms")),
                "harness_ttft_ms": _rounded(ctx.primary.metrics.ttft_ms), "client": who}
    common: dict[str, Any] = {"measured": measured, "threshold": THRESHOLD}
    timing = (f"first text after {_ms(result.get('first_text_ms'))} as {label} saw it"
              + (" (from fetch(), its CORS preflight included)" if result.get("clock") == "fetch" else "")
              + f"; harness TTFT {_ms(ctx.primary.metrics.ttft_ms)}")
    error = result.get("error")
    if result.get("error_type") == "deadline":
        return Outcome.skip(f"{label} did not finish: {error or 'the run deadline came first'} "
                            f"(read {len(client_text)} characters by then)", **common)
    if error:
        # The client stopped reading where it failed: the harness's reading of a whole stream is the main one.
        measured["harness_chars"] = len(ctx.primary.text)
        verb = "crashed" if result.get("error_type") == "crash" else "failed"
        return Outcome.failed(f"{who} {verb}: {error}; the harness read {len(ctx.primary.text)} characters "
                              f"from the main stream", **common, evidence=[evidence(None, error, None)])
    status = (result.get("raw") or {}).get("status") if isinstance(result.get("raw"), dict) else None
    if isinstance(status, int) and not 200 <= status < 300:
        return Outcome.failed(f"{who} got HTTP {status} for the main request", **common,
                              evidence=[evidence(None, harness_text or f"HTTP {status}", None)])
    mine, theirs = _normalised(client_text), _normalised(harness_text)
    if not theirs:
        return Outcome.skip(f"nothing to compare: the harness decoded no answer text from {source} either "
                            f"({label} read {len(client_text)} characters)", **common)
    if not mine:
        return Outcome.failed(f"{who} read no text: the harness decoded {len(harness_text)} characters from "
                              f"{source}", **common, evidence=[evidence(None, harness_text, None)])
    same = mine == theirs or (cut and (mine.startswith(theirs) or theirs.startswith(mine)))
    if not same:
        diff = short_diff(mine, theirs)
        return Outcome.failed(f"{who} reads different text ({len(client_text)} characters, the harness "
                              f"{len(harness_text)} from {source}): {diff}", **common,
                              evidence=[evidence(None, diff, None)])  # a place in the text, not the body
    return Outcome.passed(f"{who} read the same {len(client_text)} characters as the harness ({source}); "
                          f"{timing}", **common)


def _register(name: str) -> None:
    def run(ctx: Context) -> Outcome:
        return judge(name, ctx)

    run.__name__ = f"client_{name}"
    check(f"clients.{name}", category="clients", description=CLIENTS[name].description,
          applies=_applies(name))(run)


for _name in CLIENTS:
    _register(_name)
