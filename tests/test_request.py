"""Request building: dialect bodies, headers, and a curl command that reproduces the request byte for byte."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from harness.capture.request import _printf_format, build_request, curl_command, raw_request
from harness.errors import ConfigError

URL = "http://127.0.0.1:8000/stream"


def test_prompt_dialect_body_and_default_headers():
    spec = build_request(URL, "prompt", "Explain SSE")
    assert json.loads(spec.body) == {"prompt": "Explain SSE", "stream": True}
    assert spec.method == "POST"
    assert spec.headers["Content-Type"] == "application/json"
    assert spec.headers["Accept"] == "text/event-stream"
    assert spec.headers["Accept-Encoding"] == "identity"
    assert "Authorization" not in spec.headers
    assert spec.dialect == "prompt" and spec.prompt == "Explain SSE"


def test_openai_dialect_body_model_and_key():
    spec = build_request(URL, "openai", "hi", model="gpt-x", api_key="sk-123", extra_body={"max_tokens": 5})
    assert json.loads(spec.body) == {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}],
                                     "stream": True, "max_tokens": 5}
    assert spec.headers["Authorization"] == "Bearer sk-123"
    default = build_request(URL, "openai", "hi", stream=False)
    assert json.loads(default.body)["model"] == "streamconform-test"
    assert json.loads(default.body)["stream"] is False


def test_user_headers_override_case_insensitively_but_encoding_stays_identity():
    spec = build_request(URL, "prompt", "x", accept="application/x-ndjson",
                         headers={"accept": "*/*", "accept-encoding": "gzip", "X-Trace": "1"})
    lowered = {k.lower(): v for k, v in spec.headers.items()}
    assert len(lowered) == len(spec.headers)  # no duplicate spellings
    assert lowered["accept"] == "*/*"
    assert lowered["accept-encoding"] == "identity"
    assert lowered["x-trace"] == "1"


def test_unknown_dialect_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown dialect"):
        build_request(URL, "grpc", "x")


def test_non_ascii_prompt_is_utf8_json():
    spec = build_request(URL, "prompt", "héllo ☃")
    assert "héllo ☃".encode() in spec.body


def test_curl_command_redacts_key_and_round_trips_through_the_shell():
    spec = build_request(URL, "openai", "it's \"quoted\" $HOME", api_key="sk-secret")
    cmd = curl_command(spec)
    assert "sk-secret" not in cmd
    assert '-H "Authorization: Bearer $STREAMCONFORM_API_KEY"' in cmd
    argv = shlex.split(cmd)
    assert argv[:3] == ["curl", "-N", "-i"] and URL in argv
    body = argv[argv.index("--data-binary") + 1]
    assert body.encode() == spec.body  # the shell gives curl the exact body
    assert "sk-secret" in curl_command(spec, redact=False)


def test_curl_command_for_raw_bytes_uses_printf_exactly():
    body = b'{"prompt": "\xff\x00%s\\n"}'
    spec = raw_request(URL, "post", body, {"Content-Type": "application/json"})
    assert spec.method == "POST" and spec.headers["Accept-Encoding"] == "identity"
    cmd = curl_command(spec)
    assert cmd.startswith("printf ") and "--data-binary @-" in cmd
    out = subprocess.run(["bash", "-c", f"printf {shlex.quote(_printf_format(body))}"], capture_output=True,
                         check=True).stdout
    assert out == body


def test_curl_command_names_other_methods():
    assert "-X GET" not in curl_command(raw_request(URL, "GET"))
    assert "-X OPTIONS" in curl_command(raw_request(URL, "OPTIONS", headers={"Origin": "https://exam.example"}))
    assert "-X PUT" in curl_command(raw_request(URL, "PUT", b"{}"))
