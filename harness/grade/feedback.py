"""What a student may see about their own submission, derived from the instructor's full record.

Withheld from students (instructor-only): raw error strings (addresses resolved, exception text), the connected
address, the full run result, and for the anti-gaming checks the exact measures and thresholds (publishing them
would tell students precisely how much gaming goes unnoticed). Students get: what failed, the evidence taken
from their own response, and a command that reproduces the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from harness.grade.scoring import GRADER_DEADLINE, NOT_APPLICABLE

STATUS_TEXT = {
    "ok": "Your endpoint answered and was graded.",
    "invalid_url": "The submitted URL cannot be requested",
    "blocked_address": "The URL points to a private, loopback or otherwise non-public address, so it was not "
                       "contacted. Submit a publicly reachable URL.",
    "unreachable": "Your endpoint could not be reached (connection refused, DNS failure or reset), "
                   "on two attempts.",
    "timeout": "Your endpoint did not answer within the deadline, on two attempts.",
    "error": "The grader failed on this submission; course staff have been notified and it will be graded again.",
}

# Anti-gaming checks: students see a plain explanation, not the measure and threshold.
ANTI_GAMING_TEXT = {
    "content.relevance": "Each answer should be about its own prompt; yours were no closer to their own prompt "
                         "than to an unrelated one (canned text?).",
    "content.not_echo": "The answer repeats the prompt instead of answering it.",
    "content.distinct": "Answers to two unrelated prompts were nearly identical (canned text).",
    "content.not_padding": "The answer is mostly repetition or filler.",
    "content.placeholder_first": "The first chunk was empty or a placeholder followed by a long gap: "
                                 "time to first token must be time to real content.",
    "timing.progressive": "The content arrived in one burst after a silence instead of progressively "
                          "(a buffered answer replayed as a stream).",
}

# A check the grader's own deadline cut: it neither earns nor costs anything (see scoring.py).
GRADER_DEADLINE_TEXT = ("not run: the grader's time limit for your submission ran out before this check's requests "
                        "could be sent. It does not count: it is left out of your maximum score.")
# Every check of a submission that was never graded (status other than ok) says the same thing: say it once.
NOT_GRADED_TEXT = "not run: your endpoint was not graded (see the result at the top)"
NO_URL = "(none submitted)"

MAX_EVIDENCE = 3
MAX_EXCERPT = 300
_SECRET_HEADER = re.compile(r"((?:authorization|cookie|x-api-key|api-key|proxy-authorization)\s*:\s*)[^'\"\\\n]*",
                            re.IGNORECASE)


def redact(command: str) -> str:
    """No credential ever reaches a student's screen, even if one was configured for some other use."""
    return _SECRET_HEADER.sub(r"\1<redacted>", command or "")


def student_view(record: dict[str, Any]) -> dict[str, Any]:
    status = record["status"]
    status_text = STATUS_TEXT.get(status, status)
    reason = None
    if status == "invalid_url":
        reason = next((a.get("error") for a in record.get("attempts", []) if a.get("error")), None)
        status_text += f": {reason}." if reason else "."
    checks_by_id = {c["id"]: c for c in ((record.get("result") or {}).get("checks") or [])}
    checks = []
    for item in record.get("scoring", []):
        check = checks_by_id.get(item["id"], {})
        hidden = item["id"] in ANTI_GAMING_TEXT
        entry: dict[str, Any] = {"id": item["id"], "status": item["status"], "points": item["points"],
                                 "weight": item["weight"], "description": str(check.get("description") or "")}
        if item.get("reason") == GRADER_DEADLINE:
            entry["message"] = GRADER_DEADLINE_TEXT
            entry["counted"] = False
        elif item.get("reason") == NOT_APPLICABLE:
            entry["message"] = f"does not apply to your endpoint, so it does not count: {check.get('message', '')}"
            entry["counted"] = False
            entry["not_applicable"] = True
        elif item["status"] == "not_run":
            entry["message"] = NOT_GRADED_TEXT if status != "ok" else "not run: the check did not produce a result"
        elif hidden and item["status"] in ("fail", "warn"):
            entry["message"] = ANTI_GAMING_TEXT[item["id"]]
        else:
            entry["message"] = str(check.get("message") or "")
            if check.get("measured") is not None and not hidden:
                entry["measured"] = check.get("measured")
            if check.get("threshold") is not None and not hidden:
                entry["threshold"] = check.get("threshold")
        if item["status"] in ("fail", "warn", "skip"):
            entry["evidence"] = [
                {"offset": e.get("offset"), "t": e.get("t"), "excerpt": _clip(str(e.get("excerpt", "")))}
                for e in (check.get("evidence") or [])[:MAX_EVIDENCE] if isinstance(e, dict)
            ]
            if check.get("reproduce") and not hidden:
                entry["reproduce"] = redact(str(check["reproduce"]))
        checks.append(entry)
    return {
        "id": record["id"],
        "url": record["url"],
        "status": status,
        "status_text": status_text,
        "status_reason": reason,  # the untrusted part of status_text (it may quote the URL), for escaping
        "score": record["score"],
        "max_score": record["max_score"],
        "passed": record["passed"],
        "thresholds": record.get("thresholds", {}),
        "attempts": [{"attempt": a["attempt"], "status": a["status"], "started_at": a.get("started_at")}
                     for a in record.get("attempts", [])],
        "checks": checks,
    }


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EXCERPT else text[:MAX_EXCERPT] + "..."


def check_text(entry: dict[str, Any], clean: Callable[[str], str] = str) -> str:
    """One check's feedback as plain text (Gradescope's per-test output, and the feedback file).

    `clean` is applied to every value that may come from the endpoint (message, measure, evidence,
    command)."""
    lines = [clean(entry["message"])] if entry.get("message") else []
    if "measured" in entry or "threshold" in entry:
        measured, threshold = (clean("missing" if entry.get(k) is None else str(entry.get(k)))
                               for k in ("measured", "threshold"))
        lines.append(f"measured: {measured}   required: {threshold}")
    for e in entry.get("evidence", []):
        where = [f"byte {e['offset']}" if e.get("offset") is not None else "",
                 f"t={e['t']:.3f}s" if isinstance(e.get("t"), (int, float)) else ""]
        excerpt = clean(repr(e["excerpt"]))
        lines.append(f"evidence ({', '.join(w for w in where if w) or 'response'}): {excerpt}")
    if entry.get("reproduce"):
        lines.append(f"reproduce: {clean(entry['reproduce'])}")
    return "\n".join(lines)


# --- Markdown: every value from a roster or an endpoint is untrusted ----------------------------------------
# Characters that would start a new line, or hide or reorder text, in a viewer or a terminal: C0 and C1
# controls (tab excepted), DEL, the Unicode line and paragraph separators, bidirectional controls, the BOM.
_UNSEEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                     r"\u202a-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def visible(text: str) -> str:
    """`text` on one line with its invisible characters written as escapes (\\n, \\x1b, \\u202e)."""
    return _UNSEEN.sub(lambda m: _NAMED.get(m.group(), ascii(m.group())[1:-1]), text)


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall("`+", text)), default=0)


def code_span(text: str) -> str:
    """`text` as an inline code span nothing in it can end or break out of (CommonMark 6.1): a span closes
    only at a backtick run as long as its opening one, so the fence is one longer than any run inside; no
    line break is left to end the paragraph; HTML and Markdown inside a span are literal text."""
    text = visible(text) or " "
    fence = "`" * (_longest_backtick_run(text) + 1)
    if text.strip(" ") and (text[0] in "` " or text[-1] in "` "):
        # A renderer strips one space from each end of a span that is not all spaces: padding keeps an edge
        # space, and keeps an edge backtick from joining the fence.
        text = f" {text} "
    return f"{fence}{text}{fence}"


def code_block(text: str) -> list[str]:
    """The lines of a fenced code block holding `text` that nothing in it can close (a closing fence must be
    at least as long as the opening one, and this one is longer than any backtick run inside)."""
    lines = [visible(line) for line in text.split("\n")]
    fence = "`" * max(3, _longest_backtick_run("\n".join(lines)) + 1)
    return [fence, *lines, fence]


def _status_markdown(view: dict[str, Any]) -> str:
    status = view["status"]
    text = STATUS_TEXT.get(status, code_span(status))
    if status != "invalid_url":
        return text
    reason = view.get("status_reason")
    return f"{text}: {code_span(reason)}." if reason else f"{text}."


def render_markdown(view: dict[str, Any]) -> str:
    status_line = _status_markdown(view)
    out = [f"# Feedback for {code_span(view['id'])}", "",
           f"- URL: {code_span(view['url'])}" if view["url"] else f"- URL: {NO_URL}",
           f"- Result: {status_line}",
           f"- Score: {view['score']} / {view['max_score']}" + ("" if view["status"] != "ok" else
                                                               f" ({'passed' if view['passed'] else 'not passed'})")]
    if view["thresholds"]:
        pairs = [code_span(f"{k} = {v}") for k, v in view["thresholds"].items()]
        out.append("- Your thresholds: " + ", ".join(pairs))
    if view["status"] != "ok":
        # Nothing ran: one explanation (the Result line) instead of the same one under every check.
        ids = [c["id"] for c in view["checks"]]
        out += ["", "## Not graded", "",
                f"None of the {len(ids)} checks could run, so each scored 0: {status_line}",
                "", "Checks: " + ", ".join(ids)]
        return "\n".join(out) + "\n"
    uncounted = [c for c in view["checks"] if c.get("counted") is False]
    lost = [c for c in view["checks"] if c.get("counted") is not False and c["points"] < c["weight"]]
    if lost:
        out += ["", "## What lost points", ""]
        for c in lost:
            out += [f"### {c['id']} ({c['status']}, {c['points']} / {c['weight']})", "",
                    *code_block(check_text(c, visible)), ""]
    cut = [c["id"] for c in uncounted if not c.get("not_applicable")]
    if cut:
        out += ["", "## Not counted", "", GRADER_DEADLINE_TEXT, "", "Checks: " + ", ".join(cut)]
    not_applicable = [c["id"] for c in uncounted if c.get("not_applicable")]
    if not_applicable:
        out += ["", "## Does not apply", "", "These checks do not apply to your endpoint and are left out of your "
                "maximum score.", "", "Checks: " + ", ".join(not_applicable)]
    kept = [c["id"] for c in view["checks"] if c["points"] >= c["weight"]]
    if kept:
        out += ["", "## Passed", "", ", ".join(kept)]
    return "\n".join(out) + "\n"
