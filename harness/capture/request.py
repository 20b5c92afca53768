"""Request building: what the harness sends, and a `curl -N` command that sends exactly the same.

Dialects (harness/dialects/: one module per wire protocol builds its own body, URL and protocol headers):
    prompt            ``{"prompt": ..., "stream": true}`` (the seed's request shape)
    openai            ``{"model": ..., "messages": [{"role": "user", "content": ...}], "stream": true}``
    openai-responses  ``{"model", "input", "stream"}``;  anthropic ``{"model", "max_tokens", "messages", "stream"}``
    ollama            ``{"model", "messages" | "prompt", "stream"}``;  gemini ``{"contents": [{"parts": ...}]}``

Every request asks for ``Accept-Encoding: identity``: the capture records raw bytes and never decodes a body,
so a compressed reply is the server ignoring the request (a failed check), not something to inflate.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

from harness.dialects import NAMES as DIALECTS  # re-exported: callers import it from here
from harness.dialects import get as get_dialect
from harness.errors import ConfigError
from harness.model import RequestSpec

DEFAULT_MODEL = "streamconform-test"
# The name curl users put their key in; the reproduce command refers to it instead of printing the secret.
API_KEY_ENV = "STREAMCONFORM_API_KEY"
# Headers whose values are secrets: the reproduce command shows an environment variable instead.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"})


def _merge_headers(base: dict[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    """Add ``extra`` over ``base``; names compare case-insensitively, the later spelling wins."""
    merged = dict(base)
    for name, value in (extra or {}).items():
        for existing in [k for k in merged if k.lower() == name.lower()]:
            del merged[existing]
        merged[name] = value
    return merged


def build_payload(dialect: str, prompt: str, *, model: str | None = None, stream: bool = True,
                  extra_body: Mapping[str, Any] | None = None, url: str = "") -> dict[str, Any]:
    """The JSON body for a dialect; ``extra_body`` keys are added last (e.g. ``max_tokens``, ``stream_options``).

    ``max_tokens`` in ``extra_body`` is given to the dialect, which sends it as its own field."""
    if dialect not in DIALECTS:
        raise ConfigError(f"unknown dialect {dialect!r}: expected one of {', '.join(DIALECTS)}")
    extra = dict(extra_body or {})
    max_tokens = extra.pop("max_tokens", None) if dialect not in ("prompt", "openai") else None
    spec = get_dialect(dialect)
    body_for = getattr(spec, "body_for", None)
    kwargs = {"model": model or DEFAULT_MODEL, "stream": stream, "max_tokens": max_tokens}
    payload = body_for(url, prompt, **kwargs) if body_for is not None else spec.body(prompt, **kwargs)
    payload.update(extra)
    return payload


def build_request(url: str, dialect: str, prompt: str, *, model: str | None = None,
                  headers: Mapping[str, str] | None = None, api_key: str | None = None, stream: bool = True,
                  extra_body: Mapping[str, Any] | None = None, accept: str | None = None) -> RequestSpec:
    """A streaming POST for ``dialect``. User ``headers`` override the defaults, except Accept-Encoding."""
    spec = get_dialect(dialect) if dialect in DIALECTS else None
    if spec is not None:
        url = spec.url(url, model or DEFAULT_MODEL)
    payload = build_payload(dialect, prompt, model=model, stream=stream, extra_body=extra_body, url=url)
    base = {"Content-Type": "application/json", "Accept": accept or (spec.accept() if spec else "text/event-stream")}
    if spec is not None:
        base.update(spec.headers(api_key))
    merged = _merge_headers(base, headers)
    # Always identity: the capture keeps raw bytes and must not be handed a compressed body it did not ask for.
    merged = _merge_headers(merged, {"Accept-Encoding": "identity"})
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return RequestSpec(url=url, method="POST", headers=merged, body=body, dialect=dialect, prompt=prompt)


def raw_request(url: str, method: str = "POST", body: bytes = b"", headers: Mapping[str, str] | None = None,
                *, prompt: str = "") -> RequestSpec:
    """A request sent exactly as given (invalid JSON, other methods...), for the error probes.

    Only Accept-Encoding is forced to identity, for the same reason as in :func:`build_request`.
    """
    merged = _merge_headers(dict(headers or {}), {"Accept-Encoding": "identity"})
    return RequestSpec(url=url, method=method.upper(), headers=merged, body=bytes(body), dialect="raw",
                       prompt=prompt)


def _printf_format(data: bytes) -> str:
    """Escape bytes for printf(1): printable ASCII as is, everything else as octal (NUL and invalid UTF-8 too)."""
    out = []
    for byte in data:
        ch = chr(byte)
        if ch == "%":
            out.append("%%")
        elif ch == "\\":
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


def _header_arg(name: str, value: str, redact: bool) -> str:
    if redact and name.lower() in _SECRET_HEADERS:
        if name.lower() == "authorization" and value.lower().startswith("bearer "):
            secret = f"Bearer ${API_KEY_ENV}"
        else:
            secret = f"${API_KEY_ENV}"
        # Double quotes so the shell expands the variable; the name cannot contain quotes (HTTP token chars).
        return f'-H "{name}: {secret}"'
    return "-H " + shlex.quote(f"{name}: {value}")


def curl_for(capture: Any) -> str | None:
    """The curl command repeating ``capture``'s request (redacted); None when there is none or it cannot be
    rendered: a reproduce line is a convenience, never worth losing a verdict or its evidence over."""
    try:
        return curl_command(capture.request)
    except Exception:  # noqa: BLE001 - see the docstring
        return None


def curl_command(spec: RequestSpec, redact: bool = True) -> str:
    """A copy-pasteable shell command that repeats ``spec`` with curl, streaming (-N) and showing headers (-i).

    Secrets in headers are replaced by ``$STREAMCONFORM_API_KEY`` unless ``redact`` is false. A body that is not
    printable UTF-8 (probes send NUL bytes or invalid UTF-8) is piped in through printf so it stays byte-exact.
    """
    parts = ["curl", "-N", "-i"]
    body_via_stdin = False
    method = spec.method.upper()
    if not (method == "POST" and spec.body) and not (method == "GET" and not spec.body):
        parts += ["-X", shlex.quote(method)]
    parts.append(shlex.quote(spec.url))
    parts += [_header_arg(k, v, redact) for k, v in spec.headers.items()]
    if spec.body:
        try:
            text = spec.body.decode("utf-8")
            printable = "\x00" not in text
        except UnicodeDecodeError:
            printable = False
        if printable:
            parts += ["--data-binary", shlex.quote(text)]
        else:
            parts += ["--data-binary", "@-"]
            body_via_stdin = True
    command = " ".join(parts)
    if body_via_stdin:
        command = f"printf {shlex.quote(_printf_format(spec.body))} | {command}"
    return command
