"""The reference server over real HTTP (uvicorn on a free loopback port): dialects, framing, headers, content,
validation, CORS, rate limit, concurrency, disconnect cleanup, upstream relay, the official SDK, the CLI."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time

import httpx
import pytest

from reference_server.generate import answer_text, key_terms, split_chunks
from reference_server.rawclient import post_raw, sse_events

PROMPT = "Explain how photosynthesis converts sunlight into chemical energy in plants"
OTHER = "Describe the history of medieval castle architecture in Europe"


def stream_body(prompt: str = PROMPT, **extra: object) -> dict:
    return {"prompt": prompt, "stream": True, **extra}


def openai_body(prompt: str = PROMPT, **extra: object) -> dict:
    return {"model": "m", "messages": [{"role": "system", "content": "Be helpful."},
                                       {"role": "user", "content": prompt}], "stream": True, **extra}


# --- the correct stream ----------------------------------------------------------------------------------------
def test_seed_dialect_streams_a_complete_openai_chunk_sequence(reference_server):
    r = post_raw(reference_server.endpoint, stream_body())
    assert r.status == 200 and r.error is None
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-accel-buffering"] == "no"
    assert r.headers["access-control-allow-origin"] == "*"
    body = r.body.decode()
    assert body.endswith("data: [DONE]\n\n")
    events = sse_events(body)
    assert all(set(e) == {"data"} for e in events)
    chunks = r.chunks()
    ids = {c["id"] for c in chunks}
    created = {c["created"] for c in chunks}
    assert len(ids) == 1 and len(created) == 1
    assert all(c["object"] == "chat.completion.chunk" and isinstance(c["model"], str) for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    content_chunks = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) >= 20
    assert len(r.content()) >= 1500


def test_openai_dialect_with_usage_chunk_before_done(reference_server):
    r = post_raw(reference_server.endpoint, openai_body(stream_options={"include_usage": True}))
    assert r.status == 200
    chunks = r.chunks()
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] >= len(r.content()) // 4
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[0]["model"] == "m"
    assert r.data()[-1] == "[DONE]"


def test_default_pacing_is_progressive_and_fast(reference_server):
    r = post_raw(reference_server.endpoint, stream_body())
    content_reads = [t for t, b in r.reads if b'"content"' in b]
    # Generous bounds (shared CPU): the defaults aim at ~50 ms TTFT and ~1 s in total.
    assert content_reads[0] < 1.0
    assert len(content_reads) >= 15, "the events should arrive in separate reads, spread over time"
    tokens_per_s = len(r.content()) / 4 / (content_reads[-1] - content_reads[0])
    assert tokens_per_s > 60
    assert r.elapsed < 5


def test_max_tokens_cuts_the_answer_with_finish_reason_length(reference_server):
    r = post_raw(reference_server.endpoint, openai_body(max_tokens=50))
    assert len(r.content()) <= 200
    assert r.chunks()[-1]["choices"][0]["finish_reason"] == "length"


def test_non_streaming_returns_one_chat_completion(reference_server):
    for body in ({"prompt": PROMPT}, openai_body(stream=False)):
        r = httpx.post(reference_server.endpoint, json=body)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        data = r.json()
        assert data["object"] == "chat.completion"
        assert data["choices"][0]["message"]["role"] == "assistant"
        assert data["choices"][0]["finish_reason"] == "stop"
        assert len(data["choices"][0]["message"]["content"]) >= 1500
        assert data["usage"]["total_tokens"] > 0


def test_accept_ndjson_gives_the_same_chunks_as_lines(reference_server):
    r = post_raw(reference_server.endpoint, stream_body(), headers={"accept": "application/x-ndjson"})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = r.body.decode().splitlines()
    chunks = [json.loads(line) for line in lines]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == \
        post_raw(reference_server.endpoint, stream_body()).content()


# --- content ---------------------------------------------------------------------------------------------------
def test_content_is_deterministic_relevant_and_prompt_specific(reference_server):
    a1 = post_raw(reference_server.endpoint, stream_body(PROMPT)).content()
    a2 = post_raw(reference_server.endpoint, openai_body(PROMPT)).content()
    b = post_raw(reference_server.endpoint, stream_body(OTHER)).content()
    assert a1 == a2
    for term in ("photosynthesis", "sunlight", "chemical"):
        assert term in a1.lower()
    for term in ("castle", "architecture", "medieval"):
        assert term in b.lower() and term not in a1.lower()
    words_a, words_b = set(a1.lower().split()), set(b.lower().split())
    assert len(words_a & words_b) / len(words_a | words_b) < 0.6


def test_generated_text_reads_like_sentences_and_does_not_repeat():
    text = answer_text(PROMPT, 1600)
    sentences = [s for s in re.split(r"(?<=\.)\s+", text) if s]
    assert len(sentences) >= 12 and all(s[0].isupper() for s in sentences)
    words = text.lower().split()
    grams = [tuple(words[i:i + 5]) for i in range(len(words) - 4)]
    assert len(set(grams)) / len(grams) > 0.8, "5-gram repetition would look like padding"
    assert key_terms("Write a haiku about databases, please") == ["haiku", "databases"]
    pieces = split_chunks(text, 40, 20)
    assert "".join(pieces) == text and len(pieces) >= 20


# --- validation ------------------------------------------------------------------------------------------------
BAD_INPUTS = {
    "invalid-json": b'{"prompt": "hi", ',
    "not-an-object": b'["prompt", "hi"]',
    "missing-prompt": b'{"stream": true}',
    "empty-prompt": b'{"prompt": "", "stream": true}',
    "blank-prompt": b'{"prompt": "   \\n\\t ", "stream": true}',
    "non-string-prompt": b'{"prompt": 42, "stream": true}',
    "messages-not-list": b'{"messages": "hi", "stream": true}',
    "messages-empty": b'{"messages": [], "stream": true}',
    "message-not-object": b'{"messages": ["hi"], "stream": true}',
    "message-without-content": b'{"messages": [{"role": "user"}], "stream": true}',
    "message-bad-role": b'{"messages": [{"role": "wizard", "content": "hi"}], "stream": true}',
    "prompt-too-long": json.dumps({"prompt": "x" * 5001, "stream": True}).encode(),
    "stream-not-boolean": b'{"prompt": "hi", "stream": "yes"}',
    "not-utf8": b'{"prompt": "caf\xe9", "stream": true}',
    "deeply-nested": b'{"prompt": "hi", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "empty-body": b"",
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_4xx_with_the_openai_error_object(reference_server, case):
    r = httpx.post(reference_server.endpoint, content=BAD_INPUTS[case], headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    assert "Traceback" not in r.text


def test_param_names_the_offending_field(reference_server):
    r = httpx.post(reference_server.endpoint, json={"prompt": "hi", "stream": 1})
    assert r.json()["error"]["param"] == "stream"
    r = httpx.post(reference_server.endpoint, json={"prompt": "x" * 5001})
    assert r.json()["error"]["param"] == "prompt" and "5000" in r.json()["error"]["message"]


def test_prompt_at_the_limit_is_accepted(reference_server):
    r = httpx.post(reference_server.endpoint, json={"prompt": "word " * 1000})
    assert r.status_code == 200


def test_body_over_one_mib_gets_413(reference_server):
    body = json.dumps({"prompt": "hi", "pad": "x" * (1024 * 1024)}).encode()
    r = httpx.post(reference_server.endpoint, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunked():  # no Content-Length: the limit must hold while reading
        for _ in range(20):
            yield b"x" * 65536

    r = httpx.post(reference_server.endpoint, content=chunked())
    assert r.status_code == 413


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_gets_405_with_allow(reference_server, method):
    r = httpx.request(method, reference_server.endpoint)
    assert r.status_code == 405
    assert "POST" in r.headers["allow"]
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_unknown_path_and_unknown_fault_are_json_errors(reference_server):
    r = httpx.get(reference_server.url + "/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.post(reference_server.endpoint, json=stream_body(), headers={"X-Fault": "no-such-fault"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "X-Fault"


# --- CORS, health, models --------------------------------------------------------------------------------------
def test_cors_preflight_and_simple_requests(reference_server):
    r = httpx.options(reference_server.endpoint, headers={
        "Origin": "https://exam.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert r.status_code in (200, 204)
    assert r.headers["access-control-allow-origin"] == "*"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "content-type" in r.headers["access-control-allow-headers"].lower()
    r = httpx.post(reference_server.endpoint, json={"prompt": ""}, headers={"Origin": "https://exam.example"})
    assert r.headers["access-control-allow-origin"] == "*", "errors must be readable from a browser page too"


def test_health_and_models(reference_server):
    assert httpx.get(reference_server.url + "/health").json()["status"] == "ok"
    models = httpx.get(reference_server.url + "/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"]


# --- rate limit ------------------------------------------------------------------------------------------------
def test_rate_limit_answers_429_with_retry_after(make_reference_server):
    server = make_reference_server(rate_limit=2.0)
    statuses = [httpx.post(server.endpoint, json={"prompt": "hi"}) for _ in range(5)]
    limited = [r for r in statuses if r.status_code == 429]
    assert statuses[0].status_code == 200 and limited
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["error"]["code"] == "rate_limit_exceeded"
    time.sleep(1.1)
    assert httpx.post(server.endpoint, json={"prompt": "hi"}).status_code == 200


# --- the official SDK ------------------------------------------------------------------------------------------
def test_openai_sdk_consumes_the_stream(reference_server):
    import openai

    client = openai.OpenAI(base_url=reference_server.url + "/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}], stream=True,
                                            stream_options={"include_usage": True})
    text, usage, finish = [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert len("".join(text)) >= 1500 and finish == "stop" and usage and usage.total_tokens > 0
    full = client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}])
    assert full.choices[0].message.content == "".join(text)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[], stream=True)
    assert info.value.status_code == 400


def test_openai_sdk_reads_a_midstream_error(reference_server):
    import openai

    client = openai.OpenAI(base_url=reference_server.url + "/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}], stream=True,
                                            extra_headers={"X-Fault": "error-midstream"})
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


# --- concurrency and disconnects -------------------------------------------------------------------------------
def test_200_concurrent_streams(make_reference_server):
    server = make_reference_server(gap_ms=20, target_chars=1500)

    async def one(client: httpx.AsyncClient, i: int) -> str:
        async with client.stream("POST", server.endpoint, json=stream_body(f"{PROMPT} {i}")) as r:
            assert r.status_code == 200
            return (await r.aread()).decode()

    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=250)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(*(one(client, i) for i in range(200)))

    bodies = asyncio.run(main())
    assert all(b.endswith("data: [DONE]\n\n") for b in bodies)
    assert len({b.split('"id": "')[1][:30] for b in bodies}) == 200, "each stream has its own id"
    state = server.app.state.streams
    assert server.call(lambda: len(state.active)) == 0


def _server_tasks(server) -> int:
    return server.call(lambda: len([t for t in asyncio.all_tasks() if not t.done()]))


@pytest.mark.parametrize("fault", [None, "hang", "infinite", "slow-throughput"])
def test_disconnect_cancels_generation(make_reference_server, fault):
    server = make_reference_server()
    baseline = _server_tasks(server)
    state = server.app.state.streams
    headers = {"X-Fault": fault} if fault else {}
    with httpx.Client(timeout=5) as client:
        with client.stream("POST", server.endpoint, json=stream_body(), headers=headers) as r:
            assert r.status_code == 200
            reads = r.iter_raw()  # kept referenced: a collected generator would close the response early
            if fault != "hang":
                next(reads)
            assert server.call(lambda: len(state.active)) == 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and server.call(lambda: len(state.active)):
        time.sleep(0.02)
    assert server.call(lambda: len(state.active)) == 0
    assert state.cancelled == 1 and state.completed == 0
    # The handler and its disconnect watcher are both gone: no task or timer is left behind.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _server_tasks(server) > baseline:
        time.sleep(0.02)
    assert _server_tasks(server) <= baseline


def test_embedded_server_starts_fast_and_leaves_no_thread():
    import threading

    from reference_server.embedded import EmbeddedServer

    before = set(threading.enumerate())
    t0 = time.perf_counter()
    with EmbeddedServer() as server:
        assert time.perf_counter() - t0 < 2.0
        assert server.url.startswith("http://127.0.0.1:")
        assert server.endpoint.endswith("/v1/chat/completions")
        with httpx.Client(timeout=5) as client:  # an open stream at stop time must not keep the thread alive
            with client.stream("POST", server.endpoint, json=stream_body(), headers={"X-Fault": "hang"}):
                server.stop()
    assert set(threading.enumerate()) <= before


# --- upstream relay --------------------------------------------------------------------------------------------
def test_upstream_relay_passes_the_stream_through(make_reference_server, monkeypatch):
    upstream = make_reference_server(model="upstream-model")
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "secret")
    relay = make_reference_server(upstream=upstream.url + "/v1", upstream_key_env="TEST_UPSTREAM_KEY")
    direct = post_raw(upstream.endpoint, openai_body(model="upstream-model"))
    relayed = post_raw(relay.endpoint, stream_body())
    assert relayed.status == 200 and relayed.headers["content-type"].startswith("text/event-stream")
    assert relayed.content() == direct.content()
    assert relayed.data()[-1] == "[DONE]"
    # Upstream errors come back with their status; an unreachable upstream is a 502 error object.
    bad = post_raw(relay.endpoint, stream_body(), headers={"X-Fault": "error-500"})
    assert bad.status == 200  # X-Fault is not forwarded: the relay is transparent to the client's request only
    dead = make_reference_server(upstream="http://127.0.0.1:9/v1")
    r = httpx.post(dead.endpoint, json=stream_body())
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_failed"


# --- command line ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["python -m harness", "console script"])
def test_list_faults_prints_one_line_per_fault(how):
    from reference_server.faults import FAULTS
    from reference_server.protocols.faults import PROTOCOL_FAULTS
    from tests.commands import console_script

    argv = [sys.executable, "-m", "harness"] if how == "python -m harness" else [console_script("streamconform")]
    out = subprocess.run([*argv, "serve", "--list-faults"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(FAULTS) + len(PROTOCOL_FAULTS)
    assert {line.split()[0] for line in lines} == set(FAULTS) | set(PROTOCOL_FAULTS)


def test_python_m_reference_server_serves(tmp_path):
    from reference_server.embedded import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "reference_server", "--port", str(port), "--fault", "no-done"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = post_raw(url + "/v1/chat/completions", stream_body())
        assert r.status == 200 and "[DONE]" not in r.data()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- the shared pacer ------------------------------------------------------------------------------------------
def test_task_per_stream_pacing_gives_the_same_stream(make_reference_server, reference_server):
    server = make_reference_server(shared_pacer=False)
    r = post_raw(server.endpoint, openai_body(stream_options={"include_usage": True}))
    assert r.content() == post_raw(reference_server.endpoint, stream_body()).content()
    assert r.data()[-1] == "[DONE]" and r.chunks()[-1]["usage"]["completion_tokens"] > 0


def test_pacer_survives_a_reader_that_stalls(make_reference_server):
    # 8 MB in 64 KB events with no gap: the socket buffers fill while the client sleeps, so `send` suspends on
    # flow control and the pacer must resume it and keep the order.
    server = make_reference_server(target_chars=8_000_000, chunk_chars=64_000, ttft_ms=0, gap_ms=0)
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", server.endpoint, json=stream_body()) as r:
            reads = r.iter_raw()
            first = next(reads)
            time.sleep(1.0)
            body = first + b"".join(reads)
    text = "".join(c["choices"][0]["delta"].get("content", "")
                   for c in (json.loads(e["data"]) for e in sse_events(body.decode()) if e["data"] != "[DONE]"))
    assert len(text) >= 8_000_000 and body.endswith(b"data: [DONE]\n\n")
    assert text == answer_text(PROMPT, 8_000_000)
    assert server.call(lambda: len(server.app.state.streams.pacer)) == 0


def test_pacer_drops_disconnected_streams(make_reference_server):
    server = make_reference_server()
    pacer = server.app.state.streams.pacer

    async def open_and_drop() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            async def one() -> None:
                async with client.stream("POST", server.endpoint, json=stream_body()) as r:
                    async for _ in r.aiter_raw():
                        break
            await asyncio.gather(*(one() for _ in range(50)))

    asyncio.run(open_and_drop())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and server.call(lambda: len(pacer)):
        time.sleep(0.02)
    assert server.call(lambda: len(pacer)) == 0
    assert server.app.state.streams.cancelled == 50


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_both_uvicorn_protocols_stream_identically(reference_server, http):
    # With httptools the pacer writes plain events straight to the transport (reference_server/fastwrite.py);
    # with h11 it always goes through `send`. The bytes on the wire must not differ in substance.
    if http == "httptools":
        pytest.importorskip("httptools")
    from reference_server.config import ServerConfig
    from reference_server.embedded import EmbeddedServer

    with EmbeddedServer(ServerConfig(target_chars=400_000, chunk_chars=20_000, gap_ms=0), http=http) as server:
        big = post_raw(server.endpoint, stream_body())
        assert big.error is None and big.data()[-1] == "[DONE]"
        assert big.content() == answer_text(PROMPT, 400_000)
    with EmbeddedServer(http=http) as server:
        r = post_raw(server.endpoint, openai_body(stream_options={"include_usage": True}))
        assert r.content() == post_raw(reference_server.endpoint, openai_body()).content()
        assert r.chunks()[-1]["usage"]["completion_tokens"] > 0


# --- command-line parsing --------------------------------------------------------------------------------------
def test_serve_arguments_build_the_config():
    import argparse

    from reference_server.cli import add_arguments, config_from

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--rate-limit", "600/min", "--ttft-ms", "10", "--gap-ms", "5", "--chars", "2000",
                              "--fault", "crlf", "--upstream", "http://127.0.0.1:1/v1"])
    config = config_from(args)
    assert config.rate_limit == 10 and config.ttft_ms == 10 and config.gap_ms == 5
    assert config.target_chars == 2000 and config.fault == "crlf" and config.upstream == "http://127.0.0.1:1/v1"
    assert config_from(parser.parse_args(["--rate-limit", "3/s"])).rate_limit == 3
    for bad in (["--rate-limit", "fast"], ["--rate-limit", "0/s"], ["--gap-ms", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_worker_processes_rebuild_the_config_from_the_environment(monkeypatch):
    from reference_server.app import CONFIG_ENV, app_from_env, config_to_env
    from reference_server.config import ServerConfig

    config = ServerConfig(fault="no-done", rate_limit=5.0, gap_ms=7)
    monkeypatch.setenv(CONFIG_ENV, config_to_env(config))
    assert app_from_env().state.config == config


def test_unknown_fault_on_the_command_line_is_refused():
    out = subprocess.run([sys.executable, "-m", "reference_server", "--fault", "nope"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "unknown fault" in out.stderr


def test_failure_after_the_stream_began_is_an_error_event_then_done(make_reference_server):
    # A real failure mid-way: the upstream cuts its connection, the relay has already streamed part of the answer.
    upstream = make_reference_server(fault="truncated", gap_ms=2)
    relay = make_reference_server(upstream=upstream.url)
    r = post_raw(relay.endpoint, stream_body())
    assert r.status == 200 and r.error is None
    datas = r.data()
    assert datas[-1] == "[DONE]"
    error = json.loads(datas[-2])["error"]
    assert error["code"] == "upstream_failed" and set(error) == {"message", "type", "param", "code"}
    assert len(r.content()) >= 1500, "what the upstream sent before failing was passed through"


def test_validation_never_raises_anything_but_api_errors():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from reference_server.config import ServerConfig
    from reference_server.validate import ApiError, parse_request

    config = ServerConfig()
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20)
    bodies = st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries({}, optional={"prompt": json_values, "messages": json_values, "stream": json_values,
                                            "stream_options": json_values, "max_tokens": json_values,
                                            "temperature": json_values, "model": json_values})
        .map(lambda v: json.dumps(v).encode()),
    )

    @settings(max_examples=400, deadline=None)
    @given(bodies)
    def check(body: bytes) -> None:
        try:
            parse_request(body, config)
        except ApiError as err:
            assert 400 <= err.status < 500 and err.message

    check()


def test_lateness_histogram_quantiles():
    from reference_server.lateness import LatenessHistogram

    h = LatenessHistogram()
    for _ in range(970):
        h.add(0.0005)
    for _ in range(30):
        h.add(0.030)
    h.add(-0.001)  # early events count as on time
    snap = h.snapshot()
    assert snap["events"] == 1001 and snap["p50_ms"] <= 0.7 and 25 <= snap["p99_ms"] <= 30.1
    assert snap["max_ms"] == pytest.approx(30.0)
    h.add(99.0)  # beyond the last bucket: still counted, max exact
    assert h.snapshot()["max_ms"] == pytest.approx(99000.0)
