"""What a run sends besides the main request, as data: read by the checks that judge the answers and by the
engine (harness/run/probes.py, harness/run/robustness.py) that sends the requests.

- the bad-request probe catalog: ``Probe`` (what it sends, what a well-behaved endpoint answers, the dialects it
  is invalid in), ``PROBES``, the auth captures' names, the ``[errors]`` settings and the codes each probe accepts;
- the robustness plan: the ``[robustness]`` settings, the numbered captures (``robustness.repeats.<n>``...) and
  whether the main capture is a basis for more requests;
- ``profile_section``: one table of a profile (a Profile, a plain dict or None).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.model import Capture


def profile_section(profile: Any, name: str) -> dict[str, Any]:
    """One table of a profile as a dict copy ({} when absent); also accepts a plain dict, or None for no profile
    (the probe and robustness planners are called with all three)."""
    if profile is None:
        return {}
    if isinstance(profile, dict):
        value = profile.get(name, {})
        return dict(value) if isinstance(value, dict) else {}
    section = getattr(profile, "section", None)
    return section(name) if callable(section) else {}


# -- the bad-request probes (sent by harness/run/probes.py) ------------------------------------------------------------

DEFAULT_ACCEPTED_CODES = (400, 413, 415, 422)
DEFAULT_METHOD_CODES = (405, 404)


@dataclass(frozen=True, slots=True)
class BodyInputs:
    """What a probe body is built from: the primary request's dialect, model and a valid prompt."""

    dialect: str = "prompt"
    model: str = "streamconform-test"
    prompt: str = "Explain how server-sent events work."
    prompt_limit: int | None = None


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _valid(inp: BodyInputs, prompt: Any = None, *, stream: Any = True) -> dict[str, Any]:
    """A valid body for the dialect (harness/dialects/), with the prompt replaced by ``prompt`` when given."""
    from harness.dialects import get

    text = inp.prompt if prompt is None else prompt
    dialect = get(inp.dialect)
    return dialect.body(text, model=inp.model, stream=stream)


def _prompt_key(inp: BodyInputs) -> str:
    from harness.dialects import get

    return get(inp.dialect).prompt_key


def _invalid_json(inp: BodyInputs) -> bytes:
    return _dump(_valid(inp))[:-1]  # the closing brace cut off: a truncated upload


def _empty_body(inp: BodyInputs) -> bytes:
    return b""


def _not_object(inp: BodyInputs) -> bytes:
    return _dump([inp.prompt, True])


def _missing_prompt(inp: BodyInputs) -> bytes:
    body = _valid(inp)
    body.pop(_prompt_key(inp), None)
    return _dump(body)


def _empty_prompt(inp: BodyInputs) -> bytes:
    body = _valid(inp)
    key = _prompt_key(inp)
    # An empty conversation (messages: [], contents: []) or an empty prompt string: nothing to answer.
    body[key] = [] if isinstance(body.get(key), list) else ""
    return _dump(body)


def _blank_prompt(inp: BodyInputs) -> bytes:
    return _dump(_valid(inp, " \n\t "))


def _wrong_types(inp: BodyInputs) -> bytes:
    body = _valid(inp)
    key = _prompt_key(inp)
    # A string where a list of messages belongs, or a number where the prompt string belongs.
    body[key] = inp.prompt if isinstance(body.get(key), list) else 42
    return _dump(body)


def _missing_required(inp: BodyInputs) -> bytes:
    from harness.dialects import get

    body = _valid(inp)
    for key in get(inp.dialect).extra_required:
        body.pop(key, None)
    return _dump(body)


def _prompt_too_long(inp: BodyInputs) -> bytes:
    limit = inp.prompt_limit or 0
    words = "This sentence repeats to make the prompt longer than the documented limit. "
    text = (words * (limit // len(words) + 20))[: limit + 500]
    return _dump(_valid(inp, text))


def _stream_not_bool(inp: BodyInputs) -> bytes:
    return _dump(_valid(inp, stream="yes"))


@dataclass(frozen=True, slots=True)
class Probe:
    """One bad request: what it sends and what a well-behaved endpoint answers."""

    id: str
    description: str
    expected: str
    body: Callable[[BodyInputs], bytes] = _empty_body
    method: str = "POST"
    kind: str = "bad_request"  # "bad_request" | "method" | "cors" | "rate_limit" | "auth"
    # Dialects in which this request is invalid (None: every dialect). In the openai dialect a whitespace-only
    # message is valid input (vLLM streams an answer), so blank_prompt is a probe of the prompt dialect only.
    dialects: tuple[str, ...] | None = None

    def applies_to(self, dialect: str) -> bool:
        return self.dialects is None or dialect in self.dialects


PROBES: dict[str, Probe] = {p.id: p for p in (
    Probe("invalid_json", "a body that is not valid JSON (the closing brace cut off)",
          "4xx with an error object", _invalid_json),
    Probe("empty_body", "an empty body with Content-Type: application/json",
          "4xx with an error object", _empty_body),
    Probe("not_object", "a JSON array where an object belongs", "4xx with an error object", _not_object),
    Probe("missing_prompt", "no prompt (prompt dialect) / no messages (openai dialect)",
          "4xx with an error object", _missing_prompt),
    Probe("empty_prompt", 'an empty prompt ("") / an empty messages list', "4xx with an error object", _empty_prompt),
    Probe("blank_prompt", "a prompt of whitespace only (prompt dialect only)", "4xx with an error object",
          _blank_prompt, dialects=("prompt",)),
    Probe("wrong_types", "a number as the prompt / a string as messages", "4xx with an error object", _wrong_types),
    Probe("prompt_too_long", "a prompt 500 characters over the profile's prompt_limit",
          "4xx (400/413/422) with an error object", _prompt_too_long),
    Probe("stream_not_bool", 'stream given as the string "yes"', "4xx with an error object", _stream_not_bool,
          dialects=("prompt", "openai", "openai-responses", "anthropic", "ollama")),
    Probe("missing_required", "a required body field other than the prompt left out (Anthropic: max_tokens)",
          "4xx with an error object", _missing_required, dialects=("anthropic",)),
    Probe("wrong_method", "GET instead of POST", "405 (or 404) with an error object", method="GET", kind="method"),
    Probe("cors", "a CORS preflight: OPTIONS with Origin, Access-Control-Request-Method: POST and "
          "Access-Control-Request-Headers: content-type",
          "2xx with Access-Control-Allow-Origin, POST and content-type allowed", method="OPTIONS", kind="cors"),
    Probe("rate_limit", "a burst of valid requests at once",
          "when a 429 appears it carries Retry-After or retry-after-ms", kind="rate_limit"),
    Probe("auth", "the main request without its credentials, then with a wrong key (only when the run sends "
          "credentials: Authorization, x-api-key or api-key)", "401/403 with an error object", kind="auth"),
)}
# The two captures of the auth probe, filed under these names.
AUTH_CAPTURES = ("auth.missing", "auth.wrong")

BAD_REQUEST_PROBES = tuple(p.id for p in PROBES.values() if p.kind in ("bad_request", "method"))
DEFAULT_PROBES = BAD_REQUEST_PROBES + ("cors", "auth")


# -- reading the profile -------------------------------------------------------------------------------------------

def errors_settings(profile: Any) -> dict[str, Any]:
    """The profile's ``[errors]`` table ({} when the profile has none)."""
    return profile_section(profile, "errors")


def seed_shape_ok(profile: Any) -> bool:
    """Whether the seed's flat ``{"error": str, "code": int}`` counts as a well-formed error for this profile."""
    settings = errors_settings(profile)
    if "seed_error_shape" in settings:
        return bool(settings["seed_error_shape"])
    dialect = profile.get("dialect") if isinstance(profile, dict) else getattr(profile, "dialect", None)
    return dialect == "prompt"


def selected_probes(settings: dict[str, Any]) -> list[str]:
    """Probe ids to run, in catalog order: the profile's list (unknown ids ignored) plus rate_limit when enabled."""
    wanted = settings.get("probes")
    chosen = set(DEFAULT_PROBES if wanted is None else wanted)
    if settings.get("rate_limit"):
        chosen.add("rate_limit")
    else:
        chosen.discard("rate_limit")
    if not settings.get("prompt_limit"):
        chosen.discard("prompt_too_long")  # no documented limit: there is nothing to exceed
    return [pid for pid in PROBES if pid in chosen]


def accepted_codes(settings: dict[str, Any], probe_id: str) -> tuple[int, ...]:
    """The statuses that count as a correct refusal for this probe."""
    per_probe = settings.get("codes", {})
    if isinstance(per_probe, dict) and probe_id in per_probe:
        return tuple(int(c) for c in per_probe[probe_id])
    if PROBES.get(probe_id) is not None and PROBES[probe_id].kind == "method":
        return tuple(int(c) for c in settings.get("method_codes", DEFAULT_METHOD_CODES))
    return tuple(int(c) for c in settings.get("accepted_codes", DEFAULT_ACCEPTED_CODES))


def retry_after_s(cap: Capture) -> float | None:
    """The wait a 429 asks for: ``retry-after-ms`` (OpenAI's header) or ``Retry-After`` in seconds or as a date."""
    ms = cap.header("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = cap.header("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    from datetime import datetime, timezone

    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


# -- the robustness plan (sent by harness/run/robustness.py) -----------------------------------------------------------

DEFAULT_CONCURRENCY = 5
DEFAULT_REPEATS = 3
DEFAULT_WARMUP = 1


def robustness_settings(profile: Any) -> dict[str, Any]:
    """The profile's ``[robustness]`` table ({} when the profile has none)."""
    return profile_section(profile, "robustness")


def plan(settings: dict[str, Any]) -> dict[str, Any]:
    """The numbers this run uses, from the profile with defaults (recorded in extra["robustness"])."""
    def on(part: str) -> bool:
        return bool(settings.get(f"{part}_enabled", True))

    return {
        "concurrency": max(0, min(64, int(settings.get("concurrency", DEFAULT_CONCURRENCY)))) if on("concurrency")
        else 0,
        "repeats": max(0, min(20, int(settings.get("repeats", DEFAULT_REPEATS)))) if on("repeats") else 0,
        "warmup": max(0, min(5, int(settings.get("warmup", DEFAULT_WARMUP)))),
        "disconnect": bool(settings.get("disconnect", True)) and on("disconnect"),
    }


def healthy(cap: Capture | None) -> str | None:
    """Why the main capture is not a basis for more requests; None when it is a complete 2xx stream."""
    if cap is None:
        return "there is no main capture"
    if cap.status is None or not 200 <= cap.status < 300:
        return f"the main request was not answered with 2xx ({cap.status or cap.end_reason})"
    if cap.end_reason != "eof":
        return f"the main stream did not end normally ({cap.end_reason})"
    return None


REPEAT_PREFIX = "robustness.repeats."


def repeat_captures(probes: dict[str, Capture], profile: Any) -> list[tuple[str, Capture]]:
    """The repeat captures (name, capture) in order, as many as the profile's ``[robustness]`` asks for; none when
    it turns repeats off (so a re-check with ``--set robustness.repeats_enabled=false`` judges the primary alone).
    Warm-ups (``robustness.repeats.warmup.<i>``) are not repeats."""
    wanted = plan(robustness_settings(profile))["repeats"]
    return numbered_probes(probes, REPEAT_PREFIX)[:wanted]


def numbered_probes(probes: dict[str, Capture], prefix: str) -> list[tuple[str, Capture]]:
    """The captures filed as ``<prefix><n>``, as (name, capture) in n order (``<prefix>warmup.0`` is not one)."""
    found = sorted((int(name[len(prefix):]), name) for name in probes
                   if name.startswith(prefix) and name[len(prefix):].isdigit())
    return [(name, probes[name]) for _, name in found]
