"""errors: how the endpoint answers bad requests, reports errors mid-stream, rate-limits and answers CORS preflights.

Bad-request probes (``errors.<probe_id>``, captures filled by harness/run/probes.py):

    pass  a 4xx the profile accepts, with a well-formed error: the OpenAI error object ``{"error": {"message"...}}``
          (schemas/error.json), an SSE/NDJSON event carrying that object, or -- for profiles in the seed's
          prompt dialect (tds), or with ``seed_error_shape = true`` -- the seed's ``{"error": str, "code": int}``
    warn  a 4xx whose body is not a structured error (plain text, an HTML page without a traceback, other JSON);
          a 200 that reports the error in the body; a 429 (rate-limited before validation: nothing learned)
    fail  a 2xx stream for bad input, any 5xx, a 3xx, an HTML/text traceback, an empty body, a 4xx the profile
          does not accept, no HTTP answer at all

``errors.midstream`` reads the primary and secondary streams. Any event carrying ``error`` fails it: the answer was
cut short. The message says whether the error was at least reported properly (schema-valid, then ``[DONE]`` or a
clean close) or not (malformed, followed by more content, or followed by a broken connection). A gateway that
swallows an upstream error and ends with a clean ``[DONE]`` leaves no error event; the trace it leaves is an
OpenAI-shaped stream whose content stops with no ``finish_reason`` on any chunk before ``[DONE]``. That is reported
as a warning only: ``stream.finish_reason`` owns the missing finish_reason, and a minimal (tds) stream never sends one.
"""

from __future__ import annotations

import json
import re
from typing import Any

from harness.capture.request import curl_for
from harness.checks import Context, Outcome, check, evidence
from harness.checks.catalog import (
    AUTH_CAPTURES,
    BAD_REQUEST_PROBES,
    PROBES,
    accepted_codes,
    errors_settings,
    retry_after_s,
    seed_shape_ok,
)

_TRACEBACK = re.compile(
    rb"Traceback \(most recent call last\)|\bat [\w$.<>]+ \([^)]*:\d+:\d+\)|Exception in thread"
    rb"|\n\s+at (?:java|org|com)\.[\w$.]+\(|Werkzeug Debugger|<title>[^<]*(?:Exception|Error at /)",
    re.IGNORECASE,
)
_BODY_EXCERPT = 300


# -- reading a reply ------------------------------------------------------------------------------------------------

def _error_schema_problem(obj: Any) -> str | None:
    """Why ``obj`` is not an OpenAI error object (schemas/error.json); None when it is one."""
    try:
        from harness.checks.validation import all_errors

        errors = sorted(all_errors("error", obj), key=str)
        if errors:
            err = errors[0]
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            return f"{where}: {err.message}"
        return None
    except (ImportError, KeyError):  # schema not shipped: the same rule, written out
        if not isinstance(obj, dict) or not isinstance(obj.get("error"), dict):
            return "no 'error' object"
        message = obj["error"].get("message")
        return None if isinstance(message, str) and message else "error.message is not a non-empty string"


def _is_seed_error(obj: Any) -> bool:
    """The seed's flat shape: ``{"error": "text", "code": 400}``."""
    return (isinstance(obj, dict) and isinstance(obj.get("error"), str) and bool(obj["error"].strip())
            and isinstance(obj.get("code"), int) and not isinstance(obj.get("code"), bool))


def error_shape(obj: Any, seed_ok: bool, dialect: str | None = None) -> tuple[bool, str]:
    """(well-formed?, what it is) for one decoded error payload holder. The protocol's own error shape counts
    (Ollama's {"error": "text"}, Anthropic's {"type": "error", "error": {...}}), as does OpenAI's."""
    if dialect is not None:
        from harness.dialects import get

        own = get(dialect).error_ok(obj)
        if own:
            return True, f"{dialect} error object"
    problem = _error_schema_problem(obj)
    if problem is None:
        return True, "OpenAI error object"
    if _is_seed_error(obj):
        return (True, "seed error {error: str, code: int}") if seed_ok else (
            False, "seed-style {error: str, code: int}, not the OpenAI error object")
    return False, f"not an error object ({problem})"


def _event_payloads(text: str) -> list[Any]:
    """JSON values found in SSE ``data:`` lines or NDJSON lines of a (bounded) body."""
    values = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("data:"):
            stripped = stripped[5:].strip()
        if not stripped.startswith("{"):
            continue
        try:
            values.append(json.loads(stripped))
        except ValueError:
            continue
    return values


def classify_reply(cap: Any, seed_ok: bool, dialect: str | None = None) -> tuple[str, str]:
    """What kind of body a reply has: (kind, detail).

    kinds: ``error`` (well-formed error body), ``error_event`` (well-formed error inside an event stream),
    ``traceback``, ``empty``, ``malformed_error`` (has "error" but not the schema), ``json`` (other JSON),
    ``html``, ``text``, ``stream`` (events without an error).
    """
    body: bytes = cap.body
    if not body.strip():
        return "empty", "empty body"
    if _TRACEBACK.search(body):
        return "traceback", "the body shows a stack trace (internal details leaked, input not validated)"
    text = body.decode("utf-8", "replace")
    ctype = (cap.header("content-type") or "").lower()
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
        parsed = False
    else:
        parsed = True
    if parsed:
        ok, what = error_shape(whole, seed_ok, dialect)
        if ok:
            return "error", what
        if isinstance(whole, dict) and "error" in whole:
            return "malformed_error", what
        return "json", "JSON without an error object"
    payloads = _event_payloads(text)
    if payloads:
        for obj in payloads:
            if isinstance(obj, dict) and obj.get("error"):
                ok, what = error_shape(obj, seed_ok, dialect)
                return ("error_event", f"error event: {what}") if ok else ("malformed_error", f"error event: {what}")
        return "stream", f"{len(payloads)} event(s) without an error"
    if "html" in ctype or text.lstrip()[:1] == "<":
        return "html", "an HTML page"
    return "text", "unstructured text"


def probe_refs(cap: Any) -> dict[str, Any]:
    """An Outcome's ``evidence`` and ``reproduce`` for a probe: its status, a body excerpt and its own curl command
    (it is not the primary request), built once for both fields."""
    curl = curl_for(cap)
    body = cap.body
    excerpt = body[:_BODY_EXCERPT].decode("utf-8", "replace") if body else (cap.error or "")
    return {"evidence": [evidence(offset=0 if body else None, excerpt=excerpt, t=cap.t_first_byte, status=cap.status,
                                  curl=curl)],
            "reproduce": curl}


def not_sent(cap: Any) -> bool:
    """A stand-in capture the probes module files when the run's deadline left no time for the request."""
    return cap.status is None and not cap.reads and (cap.error or "").startswith("not sent")


# -- bad-request probes ---------------------------------------------------------------------------------------------

def judge_bad_request(cap: Any, codes: tuple[int, ...], seed_ok: bool, dialect: str | None = None) -> Outcome:
    """The verdict on one bad-request probe's reply (see the module docstring's table)."""
    threshold = "/".join(str(c) for c in codes) + " + error object"
    common = {"threshold": threshold, **probe_refs(cap)}
    status = cap.status
    if status is None:
        if not_sent(cap):
            return Outcome.skip(cap.error, **common)
        return Outcome.failed(f"no HTTP answer to a bad request ({cap.end_reason}: {cap.error or 'no detail'})",
                              measured=cap.end_reason, **common)
    kind, detail = classify_reply(cap, seed_ok, dialect)
    common["measured"] = status
    if status == 429:
        return Outcome.warned("rate-limited (429) before the input was validated: the probe learned nothing",
                              **common)
    if 200 <= status < 300:
        if kind in ("error", "error_event"):
            return Outcome.warned(f"reported the error ({detail}) but with status {status}: clients and "
                                  "retry logic read the status", **common)
        what = "a stream" if kind == "stream" else detail
        return Outcome.failed(f"bad input accepted: status {status} and {what} (the input was not validated)",
                              **common)
    if 300 <= status < 400:
        return Outcome.failed(f"bad input answered with a redirect ({status})", **common)
    if status >= 500:
        extra = " with a stack trace" if kind == "traceback" else ""
        return Outcome.failed(f"server error {status}{extra} for bad input: it should be a 4xx naming the problem",
                              **common)
    if kind == "traceback":
        return Outcome.failed(f"status {status} but {detail}", **common)
    if kind == "empty":
        return Outcome.failed(f"status {status} with an empty body: nothing says what was wrong", **common)
    if status not in codes:
        return Outcome.failed(f"status {status} is not one of the accepted codes {list(codes)} ({detail})",
                              **common)
    if kind in ("error", "error_event"):
        return Outcome.passed(f"status {status} with {detail}", **common)
    return Outcome.warned(f"status {status} but the body is {detail}, not a structured error object", **common)


def _make_probe_check(probe_id: str) -> None:
    probe = PROBES[probe_id]

    def probe_check(ctx: Context) -> Outcome:
        cap = ctx.probes.get(probe_id)
        if cap is None and (why_not := applies(ctx)) is not None:
            return Outcome.not_applicable(f"not run: {why_not}")
        if cap is None:
            return Outcome.skip(f"probe {probe_id} not run (not selected by the profile's [errors] section)")
        settings = errors_settings(ctx.profile)
        return judge_bad_request(cap, accepted_codes(settings, probe_id), seed_shape_ok(ctx.profile), _dialect(ctx))

    def applies(ctx: Context) -> str | None:
        dialect = _dialect(ctx)
        if dialect is not None and not probe.applies_to(dialect):
            return f"{probe.description.split(' (')[0]} is valid input in the {dialect} dialect"
        return None

    probe_check.__name__ = f"errors_{probe_id}"
    check(f"errors.{probe_id}", category="errors", description=f"{probe.description}: expect {probe.expected}",
          applies=applies)(probe_check)


def _dialect(ctx: Context) -> str | None:
    return getattr(getattr(getattr(ctx.primary, "capture", None), "request", None), "dialect", None)


def _sends_no_credentials(ctx: Context) -> str | None:
    from harness.checks.diagnosis import sends_credentials

    request = getattr(getattr(ctx.primary, "capture", None), "request", None)
    if request is not None and not sends_credentials(dict(request.headers)):
        return "the run sends no credentials (Authorization, x-api-key or api-key)"
    return None


for _probe_id in BAD_REQUEST_PROBES:
    _make_probe_check(_probe_id)


# -- mid-stream errors ----------------------------------------------------------------------------------------------

def midstream_problems(transcript: Any, seed_ok: bool, dialect: str | None = None
                       ) -> tuple[list[str], list[dict[str, Any]], bool]:
    """(problems, evidence, saw_error) for one transcript's error events."""
    problems: list[str] = []
    items: list[dict[str, Any]] = []
    chunks = list(transcript.chunks)
    saw = False
    for i, chunk in enumerate(chunks):
        if chunk.error is None:
            continue
        saw = True
        holder = chunk.json if isinstance(chunk.json, dict) else {"error": chunk.error}
        ok, what = error_shape(holder, seed_ok, dialect)
        after = chunks[i + 1:]
        later_content = [c for c in after if c.has_text]
        done_follows = any(c.done for c in after)
        clean_close = transcript.capture.end_reason == "eof"
        items.append(evidence(offset=chunk.offset, excerpt=chunk.raw, t=chunk.t))
        if not ok:
            problems.append(f"error event at byte {chunk.offset} is malformed: {what}")
        if later_content:
            problems.append(f"content continues after the error event at byte {chunk.offset} "
                            f"({len(later_content)} more content chunk(s)): the error was ignored")
            items.append(evidence(offset=later_content[0].offset, excerpt=later_content[0].raw, t=later_content[0].t))
        if not done_follows and not clean_close:
            problems.append(f"the error event at byte {chunk.offset} is followed by neither [DONE] nor a clean "
                            f"close ({transcript.capture.end_reason})")
    return problems, items, saw


def _swallowed_error_hint(transcript: Any) -> dict[str, Any] | None:
    """An OpenAI-shaped stream with content, no finish_reason anywhere, then [DONE]: how a swallowed error looks."""
    chunks = list(transcript.chunks)
    shaped = [c for c in chunks if isinstance(c.json, dict) and isinstance(c.json.get("choices"), list)]
    if not shaped or not any(c.has_text for c in chunks) or not chunks[-1].done:
        return None
    if any(c.finish_reason for c in chunks) or any(c.error is not None for c in chunks):
        return None
    last = [c for c in chunks if c.has_text][-1]
    return evidence(offset=last.offset, excerpt=last.raw, t=last.t)


@check("errors.midstream", category="errors",
       description="an error event mid-stream matches the error schema and is followed by [DONE] or a clean close")
def midstream(ctx: Context) -> Outcome:
    seed_ok = seed_shape_ok(ctx.profile)
    transcripts = [("primary", ctx.primary)] + ([("secondary", ctx.secondary)] if ctx.secondary else [])
    problems: list[str] = []
    items: list[dict[str, Any]] = []
    errored: list[str] = []
    hints: list[tuple[str, dict[str, Any]]] = []
    for name, tr in transcripts:
        found, ev, saw = midstream_problems(tr, seed_ok, _dialect(ctx))
        problems += [f"{name}: {p}" for p in found]
        items += ev
        if saw:
            errored.append(name)
        elif (hint := _swallowed_error_hint(tr)) is not None:
            hints.append((name, hint))
    if problems:
        return Outcome.failed("; ".join(problems), measured=len(problems), threshold="no error events",
                              evidence=items)
    if errored:
        streams = f"the {errored[0]} stream" if len(errored) == 1 else "both streams"
        return Outcome.failed(f"{streams} stopped with an error event (well-formed and "
                              "properly terminated, but the answer is cut short)",
                              measured=f"error event in {', '.join(errored)}", threshold="no error events",
                              evidence=items)
    if hints:
        names = " and ".join(n for n, _ in hints)
        return Outcome.warned(f"the {names} stream ends with [DONE] but no chunk carries a finish_reason: content "
                              "that stops without a reason is what a swallowed upstream error looks like",
                              measured="no finish_reason before [DONE]", threshold="finish_reason before [DONE]",
                              evidence=[h for _, h in hints])
    return Outcome.passed("no error event in the stream(s)", measured=0, threshold="no error events")


# -- credentials ----------------------------------------------------------------------------------------------------

def _judge_auth(cap: Any, what: str, seed_ok: bool, dialect: str | None = None) -> tuple[str, str]:
    """(status, message) for one request sent without valid credentials."""
    status = cap.status
    if status is None:
        return "fail", f"{what}: no HTTP answer ({cap.end_reason}: {cap.error or 'no detail'})"
    kind, detail = classify_reply(cap, seed_ok, dialect)
    if 200 <= status < 300:
        return "fail", (f"{what}: answered {status} (it does not check credentials; if the endpoint is meant to be "
                        "open, run without them)")
    if status >= 500:
        return "fail", (f"{what}: server error {status} ({detail}): a missing or wrong key must be a 401 naming "
                        "the problem, not a crash")
    if kind in ("traceback", "html", "empty"):
        return "fail", f"{what}: status {status} with {detail}"
    if status not in (401, 403):
        return "warn", f"{what}: status {status} ({detail}); a credentials problem is 401 (or 403)"
    if kind not in ("error", "error_event"):
        return "warn", f"{what}: status {status} but the body is {detail}, not an error object"
    return "pass", f"{what}: status {status} with {detail}"


@check("errors.auth", category="errors",
       description="without its credentials, or with a wrong key, the request gets 401/403 with an error object",
       applies=_sends_no_credentials)
def auth(ctx: Context) -> Outcome:
    caps = [(name, ctx.probes.get(name)) for name in AUTH_CAPTURES]
    if all(cap is None for _, cap in caps):
        return Outcome.not_applicable("not run: the run sends no credentials (Authorization, x-api-key or api-key)")
    seed_ok = seed_shape_ok(ctx.profile)
    labels = {"auth.missing": "without credentials", "auth.wrong": "with a wrong key"}
    verdicts = []
    for name, cap in caps:
        if cap is None or not_sent(cap):
            continue
        status, message = _judge_auth(cap, labels[name], seed_ok, _dialect(ctx))
        verdicts.append((status, message, cap))
    if not verdicts:
        return Outcome.skip(next(cap.error for _, cap in caps if cap is not None))
    worst = next(s for s in ("fail", "warn", "pass") if any(v[0] == s for v in verdicts))
    refs = probe_refs(next(c for s, _, c in verdicts if s == worst))
    return Outcome(worst, measured={labels[n]: c.status for n, c in caps if c is not None},
                   threshold="401/403 + error object", message="; ".join(m for _, m, _ in verdicts), **refs)


# -- rate limiting --------------------------------------------------------------------------------------------------

@check("errors.rate_limit", category="errors",
       description="under a burst, a 429 carries Retry-After (or retry-after-ms); no 5xx")
def rate_limit(ctx: Context) -> Outcome:
    cap = ctx.probes.get("rate_limit")
    summary = ctx.extra.get("rate_limit") or {}
    if cap is None and not summary:
        return Outcome.skip("rate-limit probe not run (enable it with [errors] rate_limit = true, e.g. --profile ops)")
    if cap is not None and not_sent(cap):
        return Outcome.skip(cap.error)
    statuses = summary.get("statuses", [])
    measured = {"sent": summary.get("sent"), "count_429": summary.get("count_429"),
                "count_5xx": summary.get("count_5xx")}
    common: dict[str, Any] = {"measured": measured, "threshold": "429 with Retry-After or retry-after-ms; no 5xx"}
    if cap is not None:
        common.update(probe_refs(cap))
    if summary.get("count_5xx"):
        return Outcome.failed(f"{summary['count_5xx']} of {summary.get('sent')} burst requests got a 5xx: the "
                              "endpoint breaks under load instead of refusing politely", **common)
    if not summary.get("count_429"):
        answered = sum(1 for s in statuses if s is not None)
        return Outcome.warned(f"no 429 within a burst of {summary.get('sent')} requests ({answered} answered): "
                              "rate limiting was not observed", **common)
    wait = retry_after_s(cap)
    if wait is None:
        raw = cap.header("retry-after")
        why = f"Retry-After {raw!r} is neither seconds nor a date" if raw else "no Retry-After / retry-after-ms"
        return Outcome.failed(f"429 without a usable wait: {why}; clients cannot back off properly", **common)
    return Outcome.passed(f"{summary['count_429']} of {summary.get('sent')} burst requests got 429, asking to "
                          f"retry after {wait:g} s", **common)


# -- CORS -----------------------------------------------------------------------------------------------------------

def _shown(header: str | None) -> str:
    """A header value for a message: quoted, or "missing" when the response has no such header."""
    return "missing" if header is None else repr(header)


def _listed(header: str | None, wanted: str) -> bool:
    if header is None:
        return False
    items = {part.strip().lower() for part in header.split(",")}
    return "*" in items or wanted.lower() in items


@check("errors.cors", category="errors",
       description="a CORS preflight gets Access-Control-Allow-Origin and allows POST with Content-Type")
def cors(ctx: Context) -> Outcome:
    cap = ctx.probes.get("cors")
    if cap is None:
        return Outcome.skip("CORS preflight not run (not in the profile's [errors] probes)")
    if not_sent(cap):
        return Outcome.skip(cap.error)
    origin = cap.request.headers.get("Origin", "")
    common: dict[str, Any] = {"measured": cap.status, **probe_refs(cap),
                              "threshold": "2xx; Allow-Origin * or the origin; POST and content-type allowed"}
    if cap.status is None:
        return Outcome.failed(f"no HTTP answer to the preflight ({cap.end_reason}: {cap.error or 'no detail'})",
                              **common)
    missing = []
    if not 200 <= cap.status < 300:
        missing.append(f"status {cap.status} (a browser needs 2xx)")
    allow_origin = cap.header("access-control-allow-origin")
    if allow_origin not in ("*", origin):
        missing.append(f"Access-Control-Allow-Origin is {_shown(allow_origin)}, not '*' or {origin!r}")
    methods = cap.header("access-control-allow-methods")
    if not _listed(methods, "POST"):
        missing.append(f"Access-Control-Allow-Methods is {_shown(methods)}: it does not allow POST")
    allowed_headers = cap.header("access-control-allow-headers")
    if not _listed(allowed_headers, "content-type"):
        missing.append(f"Access-Control-Allow-Headers is {_shown(allowed_headers)}: it does not allow content-type")
    if missing:
        return Outcome.failed("a browser on another origin could not call this endpoint: " + "; ".join(missing),
                              **common)
    return Outcome.passed(f"preflight allowed from {origin} (POST, content-type)", **common)
