"""The reference server's other wire protocols over real HTTP: OpenAI Responses, Anthropic Messages, Ollama
(/api/chat, /api/generate), Gemini, and Chat Completions tool calls and reasoning.

Each protocol streams the chat endpoint's answer at its pace, in its own event order and framing, ends with
its own terminal event exactly once, answers bad input with a 4xx in its own error shape (never a 5xx), and
takes the shared faults and its own. The official SDKs must read the whole answer (skipped when not installed:
`pip install -e '.[clients]'`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_server.config import ServerConfig
from reference_server.embedded import EmbeddedServer
from reference_server.protocols.writers import WRITERS
from reference_server.rawclient import RawResponse, post_raw, sse_events

PROMPT = "Explain how photosynthesis converts sunlight into chemical energy in plants"
WEATHER = "What is the weather like in Paris today? Use get_weather."
INSTALL = "pip install -e '.[clients]' (or: pip install {})"


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    # Faster pacing than the default keeps the module quick; slow-ttft's 3 s is absolute.
    with EmbeddedServer(ServerConfig(ttft_ms=20, gap_ms=4)) as srv:
        yield srv


# --- one description per protocol: how to ask, where the text is, what ends it, what an error looks like ----
@dataclass(frozen=True)
class Proto:
    name: str
    path: str
    body: Callable[[str], dict]
    text: Callable[[dict], str]
    terminal: Callable[[dict], bool]
    error_event: Callable[[dict], bool]
    error_ok: Callable[[dict, int], bool]
    headers: dict[str, str] = field(default_factory=dict)
    ndjson: bool = False


def _openai_error(obj: dict, status: int) -> bool:
    return isinstance(obj.get("error"), dict) and set(obj["error"]) == {"message", "type", "param", "code"} \
        and bool(obj["error"]["message"])


def _anthropic_error(obj: dict, status: int) -> bool:
    err = obj.get("error")
    return obj.get("type") == "error" and isinstance(err, dict) and isinstance(err.get("type"), str) \
        and isinstance(err.get("message"), str) and bool(err["message"])


def _ollama_error(obj: dict, status: int) -> bool:
    return set(obj) == {"error"} and isinstance(obj["error"], str) and bool(obj["error"])


def _gemini_error(obj: dict, status: int) -> bool:
    err = obj.get("error")
    return isinstance(err, dict) and err.get("code") == status and isinstance(err.get("message"), str) \
        and isinstance(err.get("status"), str) and (status != 400 or err["status"] == "INVALID_ARGUMENT")


def _gemini_text(obj: dict) -> str:
    return "".join(p.get("text", "") for c in obj.get("candidates", []) for p in c["content"]["parts"])


PROTOS = {p.name: p for p in (
    Proto("responses", "/v1/responses", lambda q: {"model": "m", "input": q, "stream": True},
          lambda o: o["delta"] if o.get("type") == "response.output_text.delta" else "",
          lambda o: o.get("type") in ("response.completed", "response.incomplete", "response.failed"),
          lambda o: o.get("type") == "error", _openai_error),
    Proto("anthropic", "/v1/messages",
          lambda q: {"model": "m", "max_tokens": 1024, "messages": [{"role": "user", "content": q}],
                     "stream": True},
          lambda o: o["delta"]["text"] if o.get("type") == "content_block_delta" else "",
          lambda o: o.get("type") == "message_stop", lambda o: o.get("type") == "error", _anthropic_error,
          headers={"anthropic-version": "2023-06-01"}),
    Proto("ollama-chat", "/api/chat", lambda q: {"model": "m", "messages": [{"role": "user", "content": q}]},
          lambda o: o.get("message", {}).get("content", ""), lambda o: o.get("done") is True,
          lambda o: "error" in o, _ollama_error, ndjson=True),
    Proto("ollama-generate", "/api/generate", lambda q: {"model": "m", "prompt": q},
          lambda o: o.get("response", ""), lambda o: o.get("done") is True,
          lambda o: "error" in o, _ollama_error, ndjson=True),
    Proto("gemini", "/v1beta/models/gemini-test:streamGenerateContent?alt=sse",
          lambda q: {"contents": [{"role": "user", "parts": [{"text": q}]}]}, _gemini_text,
          lambda o: any("finishReason" in c for c in o.get("candidates", [])),
          lambda o: "error" in o, _gemini_error),
)}


@dataclass
class Event:
    name: str | None
    obj: dict | None
    """The parsed JSON (None when the data is not JSON)."""


def events(p: Proto, r: RawResponse) -> list[Event]:
    out = []
    if p.ndjson:
        for line in r.body.decode("utf-8", "replace").splitlines():
            try:
                out.append(Event(None, json.loads(line)))
            except ValueError:
                out.append(Event(None, None))
        return out
    for e in sse_events(r.body.decode("utf-8", "replace")):
        try:
            out.append(Event(e.get("event"), json.loads(e["data"])))
        except ValueError:
            out.append(Event(e.get("event"), None))
    return out


def text_of(p: Proto, r: RawResponse) -> str:
    return "".join(p.text(e.obj) for e in events(p, r) if e.obj is not None)


def ask(server: EmbeddedServer, p: Proto, fault: str | None = None, prompt: str = PROMPT,
        **kw: object) -> RawResponse:
    headers = {**p.headers, **({"X-Fault": fault} if fault else {})}
    return post_raw(server.url + p.path, p.body(prompt), headers=headers, **kw)


def chat(server: EmbeddedServer, body: dict, **kw: object) -> RawResponse:
    return post_raw(server.endpoint, {"model": "m", "stream": True, **body}, **kw)


def chat_chunks(r: RawResponse) -> list[dict]:
    return [json.loads(d) for d in r.data() if d != "[DONE]"]


# --- the correct streams ------------------------------------------------------------------------------------
def test_responses_event_order_sequence_numbers_and_one_terminal_event(server):
    r = ask(server, PROTOS["responses"])
    assert r.status == 200 and r.error is None and r.headers["content-type"].startswith("text/event-stream")
    evs = events(PROTOS["responses"], r)
    assert all(e.obj is not None and e.name == e.obj["type"] for e in evs), "event name == data.type"
    assert [e.obj["sequence_number"] for e in evs] == list(range(len(evs)))
    kinds = [e.obj["type"] for e in evs]
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 20
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert "[DONE]" not in r.body.decode()
    text = text_of(PROTOS["responses"], r)
    delta = next(e.obj for e in evs if e.obj["type"] == "response.output_text.delta")
    assert {delta["item_id"], delta["output_index"], delta["content_index"]} == {evs[2].obj["item"]["id"], 0}
    done = evs[-1].obj["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["text"] == text
    assert evs[-4].obj["text"] == text and len({e.obj.get("response", {}).get("id") for e in evs[:2]}) == 1
    usage = done["usage"]
    assert usage["output_tokens"] >= len(text) // 4 and usage["total_tokens"] == usage["input_tokens"] + \
        usage["output_tokens"]


def test_responses_max_output_tokens_ends_incomplete(server):
    r = post_raw(server.url + "/v1/responses", {"model": "m", "input": PROMPT, "stream": True,
                                                "max_output_tokens": 20})
    evs = events(PROTOS["responses"], r)
    assert evs[-1].obj["type"] == "response.incomplete"
    assert evs[-1].obj["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert len(text_of(PROTOS["responses"], r)) == 80


def test_anthropic_event_order_and_stop(server):
    p = PROTOS["anthropic"]
    r = ask(server, p)
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(p, r)
    assert all(e.obj is not None and e.name == e.obj["type"] for e in evs)
    kinds = [e.obj["type"] for e in evs]
    n = kinds.count("content_block_delta")
    assert n >= 20
    assert kinds == ["message_start", "content_block_start", "ping", *["content_block_delta"] * n,
                     "content_block_stop", "message_delta", "message_stop"]
    assert evs[1].obj["content_block"] == {"type": "text", "text": ""}
    assert {e.obj["index"] for e in evs if "index" in e.obj} == {0}
    assert all(e.obj["delta"]["type"] == "text_delta" for e in evs if e.obj["type"] == "content_block_delta")
    delta = evs[-2].obj
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] >= len(text_of(p, r)) // 4
    assert evs[0].obj["message"]["role"] == "assistant" and evs[0].obj["message"]["content"] == []


@pytest.mark.parametrize("name", ["ollama-chat", "ollama-generate"])
def test_ollama_ndjson_lines_and_the_done_line(server, name):
    p = PROTOS[name]
    r = ask(server, p)  # no "stream" in the body: Ollama streams by default
    assert r.status == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    evs = events(p, r)
    assert all(e.obj is not None for e in evs) and r.body.endswith(b"}\n")
    assert [e.obj["done"] for e in evs] == [False] * (len(evs) - 1) + [True]
    for e in evs:
        assert e.obj["model"] == "m"
        datetime.fromisoformat(e.obj["created_at"].replace("Z", "+00:00"))
        if name == "ollama-chat":
            assert e.obj["message"]["role"] == "assistant"
    last = evs[-1].obj
    assert last["done_reason"] == "stop" and last["eval_count"] >= len(text_of(p, r)) // 4
    assert all(isinstance(last[k], int) for k in ("eval_duration", "prompt_eval_count", "total_duration"))
    assert 0 < last["eval_duration"] <= last["total_duration"] < 30e9  # nanoseconds, measured


def test_gemini_sse_whole_responses_finish_reason_last(server):
    p = PROTOS["gemini"]
    r = ask(server, p)
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(p, r)
    assert all(e.obj is not None and e.name is None for e in evs) and "[DONE]" not in r.body.decode()
    for e in evs:
        cand = e.obj["candidates"][0]
        assert cand["content"]["role"] == "model" and isinstance(cand["content"]["parts"][0]["text"], str)
        assert e.obj["modelVersion"] == "gemini-test" and "usageMetadata" in e.obj
    assert [p.terminal(e.obj) for e in evs] == [False] * (len(evs) - 1) + [True]
    assert evs[-1].obj["candidates"][0]["finishReason"] == "STOP"
    usage = evs[-1].obj["usageMetadata"]
    assert usage["candidatesTokenCount"] >= len(text_of(p, r)) // 4


def test_gemini_without_alt_sse_streams_one_json_array(server):
    p = PROTOS["gemini"]
    r = post_raw(server.url + p.path.split("?")[0], p.body(PROMPT))
    assert r.headers["content-type"].startswith("application/json") and len(r.reads) >= 10
    array = json.loads(r.body)
    assert "".join(_gemini_text(o) for o in array) == text_of(p, ask(server, p))
    assert array[-1]["candidates"][0]["finishReason"] == "STOP"


def test_every_protocol_streams_the_same_answer_at_the_same_pace(server):
    plain = post_raw(server.endpoint, {"prompt": PROMPT, "stream": True})
    for p in PROTOS.values():
        r = ask(server, p)
        assert text_of(p, r) == plain.content(), p.name
        first = next(t for t, piece in r.reads if p.text(_last_obj(piece)))
        assert first < 1.0 and len(r.reads) >= 15, p.name  # paced: the events come in separate reads


def _last_obj(piece: bytes) -> dict:
    """The last complete JSON object a read carries (enough to see whether it holds text)."""
    for line in reversed(piece.decode("utf-8", "replace").splitlines()):
        line = line[6:] if line.startswith("data: ") else line
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return {}


def test_non_streaming_requests_get_the_whole_answer(server):
    plain = post_raw(server.endpoint, {"prompt": PROMPT, "stream": True}).content()
    r = httpx.post(server.url + "/v1/responses", json={"model": "m", "input": PROMPT})
    assert r.json()["output"][0]["content"][0]["text"] == plain and r.json()["status"] == "completed"
    r = httpx.post(server.url + "/v1/messages", headers=PROTOS["anthropic"].headers,
                   json={"model": "m", "max_tokens": 1024, "messages": [{"role": "user", "content": PROMPT}]})
    assert r.json()["content"][0]["text"] == plain and r.json()["stop_reason"] == "end_turn"
    r = httpx.post(server.url + "/api/chat", json={**PROTOS["ollama-chat"].body(PROMPT), "stream": False})
    assert r.json()["message"]["content"] == plain and r.json()["done"] is True
    r = httpx.post(server.url + "/v1beta/models/g:generateContent", json=PROTOS["gemini"].body(PROMPT))
    assert _gemini_text(r.json()) == plain


# --- errors -------------------------------------------------------------------------------------------------
BAD = {
    "responses": [b'{"model": ', b"", b"[1]", {"input": PROMPT}, {"model": "m"}, {"model": "m", "input": ""},
                  {"model": "m", "input": "   "}, {"model": "m", "input": []}, {"model": 5, "input": PROMPT},
                  {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
                  {"model": "m", "input": PROMPT, "max_output_tokens": 8},
                  {"model": "m", "input": PROMPT, "stream": "yes"}, b'{"model": "m", "input": "\\ud800"}'],
    "anthropic": [b"{", {"model": "m", "messages": [{"role": "user", "content": PROMPT}]},
                  {"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": PROMPT}]},
                  {"model": "m", "max_tokens": 10, "messages": []},
                  {"model": "m", "max_tokens": 10, "messages": [{"role": "system", "content": PROMPT}]},
                  {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": 5}]},
                  {"max_tokens": 10, "messages": [{"role": "user", "content": PROMPT}]},
                  {"model": "m", "max_tokens": 10, "temperature": 3,
                   "messages": [{"role": "user", "content": PROMPT}]}],
    "ollama-chat": [b"nope", {"messages": [{"role": "user", "content": PROMPT}]}, {"model": "m"},
                    {"model": "m", "messages": [{"role": "user", "content": 5}]},
                    {"model": "m", "messages": [{"role": "user", "content": PROMPT}], "stream": "no"},
                    {"model": "m", "messages": [{"role": "user", "content": PROMPT}],
                     "options": {"num_predict": "x"}}],
    "ollama-generate": [{"model": "m"}, {"model": "m", "prompt": ""}, {"model": "m", "prompt": 5},
                        {"model": "", "prompt": PROMPT}],
    "gemini": [b"{]", {}, {"contents": []}, {"contents": [{"role": "user", "parts": [{"inlineData": {}}]}]},
               {"contents": [{"role": "system", "parts": [{"text": PROMPT}]}]},
               {"contents": [{"parts": [{"text": PROMPT}]}], "generationConfig": {"maxOutputTokens": 0}}],
}


@pytest.mark.parametrize("name,i", [(n, i) for n, bodies in BAD.items() for i in range(len(bodies))])
def test_bad_input_gets_400_in_the_protocols_error_shape(server, name, i):
    p, body = PROTOS[name], BAD[name][i]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**p.headers, "content-type": "application/json"}
    r = httpx.post(server.url + p.path, content=content, headers=headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json") and p.error_ok(r.json(), 400), r.text


def test_anthropic_needs_its_version_header(server):
    p = PROTOS["anthropic"]
    r = httpx.post(server.url + p.path, json=p.body(PROMPT))
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]


@pytest.mark.parametrize("name", list(PROTOS))
def test_wrong_method_unknown_fault_and_missing_key_in_the_protocols_shape(server, make_reference_server,
                                                                           name):
    p = PROTOS[name]
    r = httpx.get(server.url + p.path)
    assert r.status_code == 405 and "POST" in r.headers["allow"] and p.error_ok(r.json(), 405)
    for fault in ("no-such-fault", "crlf"):  # unknown anywhere; a chat-only fault this protocol does not have
        r = httpx.post(server.url + p.path, json=p.body(PROMPT), headers={**p.headers, "X-Fault": fault})
        assert r.status_code == 400 and p.error_ok(r.json(), 400), r.text
    keyed = make_reference_server(api_key="sk-test")
    r = httpx.post(keyed.url + p.path, json=p.body(PROMPT), headers=p.headers)
    assert r.status_code == 401 and p.error_ok(r.json(), 401)
    key = {"x-goog-api-key" if name == "gemini" else "x-api-key": "sk-test"}
    with httpx.stream("POST", keyed.url + p.path, json=p.body(PROMPT), headers={**p.headers, **key}) as ok:
        assert ok.status_code == 200


MUTANTS = [None, 0, -1, True, "", "   ", "x", [], {}, [None], {"a": None}, 1e308]


@pytest.mark.parametrize("name", list(PROTOS))
def test_odd_values_in_any_field_never_get_a_5xx(server, name):
    p = PROTOS[name]
    good = {**p.body(PROMPT), "stream": False} if name != "gemini" else p.body(PROMPT)
    with httpx.Client(timeout=10) as client:
        for key in good:
            for value in MUTANTS:
                r = client.post(server.url + p.path.replace("streamGenerateContent", "generateContent"),
                                json={**good, key: value}, headers=p.headers)
                assert r.status_code < 500, (key, value, r.text)
                if r.status_code >= 400:
                    assert p.error_ok(r.json(), r.status_code), (key, value, r.text)


_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
                     lambda inner: st.one_of(st.lists(inner, max_size=3),
                                             st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                     max_leaves=8)


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PROTOS)), body=st.dictionaries(
    st.sampled_from(["model", "input", "messages", "prompt", "contents", "max_tokens", "options", "system",
                     "systemInstruction", "generationConfig", "instructions", "max_output_tokens"]),
    _JSON, max_size=4))
def test_generated_bodies_never_get_a_5xx(server, name, body):
    p = PROTOS[name]
    path = p.path.replace("streamGenerateContent", "generateContent")
    r = httpx.post(server.url + path, json={**body, "stream": False}, headers=p.headers, timeout=10)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert p.error_ok(r.json(), r.status_code), r.text


# --- faults -------------------------------------------------------------------------------------------------
def _terminals(p: Proto, r: RawResponse) -> list[int]:
    evs = events(p, r)
    return [i for i, e in enumerate(evs) if e.obj is not None and p.terminal(e.obj)]


@pytest.mark.parametrize("name", list(PROTOS))
def test_the_correct_stream_has_its_terminal_event_once_and_last(server, name):
    p = PROTOS[name]
    r = ask(server, p)
    assert _terminals(p, r) == [len(events(p, r)) - 1]


@pytest.mark.parametrize("name", list(PROTOS))
def test_no_done_error_midstream_truncated_buffered(server, name):
    p = PROTOS[name]
    full = text_of(p, ask(server, p))
    r = ask(server, p, "no-done")
    assert r.error is None and _terminals(p, r) == [] and text_of(p, r) == full
    r = ask(server, p, "error-midstream")
    evs = events(p, r)
    errors = [i for i, e in enumerate(evs) if p.error_event(e.obj)]
    assert errors and 0 < len(text_of(p, r)) < len(full)
    assert all(i >= errors[0] for i in _terminals(p, r)), "nothing completes before the error"
    if name == "responses":
        assert [e.obj["type"] for e in evs[-2:]] == ["error", "response.failed"]
    r = ask(server, p, "truncated")
    assert r.error and "RemoteProtocolError" in r.error and _terminals(p, r) == []
    assert text_of(p, r) == full
    r = ask(server, p, "buffered")
    assert len(r.reads) == 1 and r.reads[0][0] >= 0.02 + 0.004 * 19 and text_of(p, r) == full


def test_slow_ttft_in_every_protocol(server):
    def first_text_at(p: Proto) -> float:
        r = ask(server, p, "slow-ttft")
        return next(t for t, piece in r.reads if p.text(_last_obj(piece)))

    with ThreadPoolExecutor(len(PROTOS)) as pool:  # concurrently: five 3-second waits in one
        times = list(pool.map(first_text_at, PROTOS.values()))
    assert all(t >= 2.9 for t in times), times


def signature(p: Proto, r: RawResponse) -> tuple:
    """What a harness sees of a stream, ids and times aside."""
    evs = events(p, r)
    return (r.status, r.headers.get("content-type"), r.error is None, len(r.reads) == 1, len(evs),
            text_of(p, r), tuple(_terminals(p, r)), sum(e.obj is None for e in evs),
            sum(e.obj is not None and p.error_event(e.obj) for e in evs))


@pytest.mark.parametrize("fault", sorted(set(WRITERS) - {"hang", "slow-ttft"}))
def test_every_shared_fault_changes_every_protocols_stream_without_a_5xx(server, fault):
    def run(p: Proto) -> tuple[Proto, RawResponse]:
        if p.name not in _CORRECT:
            _CORRECT[p.name] = signature(p, ask(server, p))
        return p, ask(server, p, fault)

    with ThreadPoolExecutor(len(PROTOS)) as pool:
        for p, r in pool.map(run, PROTOS.values()):
            assert r.status == 200, (p.name, r.status)
            assert signature(p, r) != _CORRECT[p.name], (p.name, "the fault changed nothing")


_CORRECT: dict[str, tuple] = {}


def test_sequence_gap_breaks_the_numbering(server):
    r = ask(server, PROTOS["responses"], "sequence-gap")
    seq = [e.obj["sequence_number"] for e in events(PROTOS["responses"], r)]
    steps = [b - a for a, b in zip(seq, seq[1:], strict=False)]
    assert steps.count(1) == len(steps) - 2 and any(s > 1 for s in steps) and any(s < 0 for s in steps)
    assert _terminals(PROTOS["responses"], r) == [len(seq) - 1], "only the numbering is wrong"


def test_delta_unstarted_block(server):
    p = PROTOS["anthropic"]
    evs = events(p, ask(server, p, "delta-unstarted-block"))
    started = {e.obj["index"] for e in evs if e.obj["type"] == "content_block_start"}
    stray = [e for e in evs if e.obj["type"] == "content_block_delta" and e.obj["index"] not in started]
    assert started == {0} and len(stray) == 1


def test_protocol_faults_are_refused_elsewhere(server):
    r = httpx.post(server.url + "/api/chat", json=PROTOS["ollama-chat"].body(PROMPT),
                   headers={"X-Fault": "sequence-gap"})
    assert r.status_code == 400 and _ollama_error(r.json(), 400)
    seed = {"prompt": PROMPT, "stream": True}
    r = httpx.post(server.endpoint, json=seed, headers={"X-Fault": "sequence-gap"})
    assert r.status_code == 400 and "responses" in r.json()["error"]["message"]
    r = httpx.post(server.endpoint, json=seed, headers={"X-Fault": "tool-call-no-id"})
    assert r.status_code == 400 and "tools" in r.json()["error"]["message"]


def test_a_server_wide_protocol_fault_leaves_the_other_protocols_correct(make_reference_server):
    srv = make_reference_server(fault="sequence-gap", ttft_ms=5, gap_ms=1)
    plain = post_raw(srv.endpoint, {"prompt": PROMPT, "stream": True})
    assert plain.status == 200 and plain.data()[-1] == "[DONE]"
    for p in (PROTOS["anthropic"], PROTOS["gemini"]):
        assert _terminals(p, ask(srv, p)) == [len(events(p, ask(srv, p))) - 1]
    seq = [e.obj["sequence_number"] for e in events(PROTOS["responses"], ask(srv, PROTOS["responses"]))]
    assert seq != sorted(seq)


# --- Chat Completions: tool calls and reasoning -------------------------------------------------------------
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a place",
    "parameters": {"type": "object", "required": ["location"], "properties": {
        "location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1}}}}}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"timezone": {"type": "string"}}}}}


def tool_calls(r: RawResponse) -> dict[int, dict]:
    """Fragments reassembled per index; also checks the fragments' own shape as it goes."""
    calls: dict[int, dict] = {}
    for chunk in chat_chunks(r):
        for choice in chunk["choices"]:
            for frag in choice["delta"].get("tool_calls") or []:
                if frag["index"] not in calls:
                    assert {"id", "type", "function"} <= set(frag) and frag["type"] == "function"
                    assert frag["function"]["arguments"] == "" and frag["function"]["name"]
                    calls[frag["index"]] = {"id": frag["id"], "name": frag["function"]["name"],
                                            "arguments": ""}
                else:
                    assert set(frag) == {"index", "function"} and set(frag["function"]) == {"arguments"}
                    calls[frag["index"]]["arguments"] += frag["function"]["arguments"]
    return calls


def finish_reasons(r: RawResponse) -> list[str]:
    return [c["finish_reason"] for ch in chat_chunks(r) for c in ch["choices"] if c["finish_reason"]]


def test_tool_call_fragments_reassemble_to_valid_json(server):
    r = chat(server, {"messages": [{"role": "user", "content": WEATHER}], "tools": [WEATHER_TOOL, TIME_TOOL]})
    assert r.status == 200 and r.data()[-1] == "[DONE]" and r.data().count("[DONE]") == 1
    calls = tool_calls(r)
    assert list(calls) == [0] and calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    args = json.loads(calls[0]["arguments"])
    assert args == {"location": "Paris", "unit": "celsius", "days": 1}
    assert finish_reasons(r) == ["tool_calls"]
    assert chat_chunks(r)[0]["choices"][0]["delta"]["role"] == "assistant" and r.content() == ""
    fragments = [ch for ch in chat_chunks(r) if ch["choices"] and ch["choices"][0]["delta"].get("tool_calls")]
    assert len(fragments) >= 5, "arguments stream in pieces"


def test_tool_choice_required_named_none_and_parallel_calls(server):
    plain = chat(server, {"messages": [{"role": "user", "content": PROMPT}]}).content()
    r = chat(server, {"messages": [{"role": "user", "content": PROMPT}], "tools": [WEATHER_TOOL],
                      "tool_choice": "required"})
    assert [c["name"] for c in tool_calls(r).values()] == ["get_weather"]
    named = {"type": "function", "function": {"name": "get_time"}}
    r = chat(server, {"messages": [{"role": "user", "content": WEATHER}], "tools": [WEATHER_TOOL, TIME_TOOL],
                      "tool_choice": named})
    assert [c["name"] for c in tool_calls(r).values()] == ["get_time"]
    r = chat(server, {"messages": [{"role": "user", "content": WEATHER}], "tools": [WEATHER_TOOL],
                      "tool_choice": "none"})
    assert tool_calls(r) == {} and finish_reasons(r) == ["stop"]
    r = chat(server, {"messages": [{"role": "user", "content": PROMPT}], "tools": [WEATHER_TOOL]})
    assert r.content() == plain and finish_reasons(r) == ["stop"], "auto: a prompt naming no tool gets text"
    both = "Use get_weather and get_time for Paris."
    r = chat(server, {"messages": [{"role": "user", "content": both}], "tools": [WEATHER_TOOL, TIME_TOOL]})
    calls = tool_calls(r)
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert calls[0]["id"] != calls[1]["id"]
    assert all(isinstance(json.loads(c["arguments"]), dict) for c in calls.values())
    r = chat(server, {"messages": [{"role": "user", "content": both}], "tools": [WEATHER_TOOL, TIME_TOOL],
                      "parallel_tool_calls": False})
    assert len(tool_calls(r)) == 1


def test_after_a_tool_result_the_answer_is_text(server):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    messages = [{"role": "user", "content": WEATHER},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}]
    r = chat(server, {"messages": messages, "tools": [WEATHER_TOOL]})
    assert r.status == 200 and tool_calls(r) == {} and len(r.content()) >= 1500
    assert finish_reasons(r) == ["stop"]


@pytest.mark.parametrize("extra", [
    {"tools": []}, {"tools": [{"type": "function"}]},
    {"tools": [{"type": "function", "function": {"name": "a b"}}]},
    {"tools": [WEATHER_TOOL, WEATHER_TOOL]}, {"tool_choice": "required"},
    {"tools": [WEATHER_TOOL], "tool_choice": "sometimes"},
    {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
    {"tools": [WEATHER_TOOL], "parallel_tool_calls": "yes"}, {"reasoning_effort": "extreme"},
])
def test_bad_tools_and_reasoning_get_400_with_the_openai_error(server, extra):
    r = httpx.post(server.endpoint, json={"model": "m", "messages": [{"role": "user", "content": WEATHER}],
                                          "stream": True, **extra})
    assert r.status_code == 400 and _openai_error(r.json(), 400), r.text


@pytest.mark.parametrize("fault,breaks", [("tool-args-invalid-json", "json"), ("tool-call-no-id", "id")])
def test_tool_call_faults(server, fault, breaks):
    body = {"model": "m", "stream": True, "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": WEATHER}]}
    r = post_raw(server.endpoint, body, headers={"X-Fault": fault})
    first = chat_chunks(r)[0]["choices"][0]["delta"]["tool_calls"][0]
    args = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chat_chunks(r)
                   if c["choices"] and c["choices"][0]["delta"].get("tool_calls"))
    if breaks == "json":
        assert "id" in first
        with pytest.raises(ValueError):
            json.loads(args)
    else:
        assert "id" not in first and first["function"]["name"] == "get_weather"
        assert json.loads(args)["location"] == "Paris"
    assert finish_reasons(r) == ["tool_calls"] and r.data()[-1] == "[DONE]"


def test_shared_faults_apply_to_tool_call_streams(server):
    body = {"model": "m", "stream": True, "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": WEATHER}]}
    r = post_raw(server.endpoint, body, headers={"X-Fault": "no-done"})
    assert "[DONE]" not in r.data() and finish_reasons(r) == ["tool_calls"]
    r = post_raw(server.endpoint, body, headers={"X-Fault": "crlf"})
    assert r.status == 400, "a chat-only framing fault is not available on a tool-call stream"


def test_reasoning_deltas_come_before_the_same_answer(server):
    plain = chat(server, {"messages": [{"role": "user", "content": PROMPT}]}).content()
    for extra, headers in (({"reasoning_effort": "low"}, {}), ({}, {"X-Reasoning": "1"})):
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": PROMPT}],
                "stream_options": {"include_usage": True}, **extra}
        r = post_raw(server.endpoint, body, headers=headers)
        deltas = [c["choices"][0]["delta"] for c in chat_chunks(r) if c["choices"]]
        kinds = ["reasoning" if "reasoning_content" in d else "content" if d.get("content") else "other"
                 for d in deltas]
        first_content = kinds.index("content")
        assert kinds[:first_content] == ["reasoning"] * first_content and first_content >= 3
        assert "reasoning" not in kinds[first_content:]
        assert r.content() == plain and finish_reasons(r) == ["stop"] and r.data()[-1] == "[DONE]"
        reasoning = "".join(d["reasoning_content"] for d in deltas if "reasoning_content" in d)
        assert "photosynthesis" in reasoning.lower()
        usage = chat_chunks(r)[-1]["usage"]
        assert usage["completion_tokens_details"]["reasoning_tokens"] >= len(reasoning) // 4
    r = chat(server, {"messages": [{"role": "user", "content": PROMPT}], "reasoning_effort": "none"})
    assert not any("reasoning_content" in c["choices"][0]["delta"] for c in chat_chunks(r) if c["choices"])


def test_plain_chat_requests_are_unchanged(server):
    r = chat(server, {"messages": [{"role": "user", "content": PROMPT}]})
    assert all(set(c["choices"][0]["delta"]) <= {"role", "content"} for c in chat_chunks(r) if c["choices"])
    assert finish_reasons(r) == ["stop"]


# --- the official SDKs as clients ---------------------------------------------------------------------------
def _sdk(module: str, package: str):
    return pytest.importorskip(module, reason=INSTALL.format(package))


def test_openai_sdk_responses_stream_and_create(server):
    openai = _sdk("openai", "openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)
    plain = chat(server, {"messages": [{"role": "user", "content": PROMPT}]}).content()
    with client.responses.stream(model="m", input=PROMPT) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == final.output_text == plain and final.usage.output_tokens > 0
    messages = [{"role": "user", "content": PROMPT}]
    events = list(client.responses.create(model="m", input=messages, stream=True))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == plain
    kinds = [e.type for e in events]
    assert kinds.count("response.completed") == 1 and kinds[-1] == "response.completed"


def test_openai_sdk_chat_tool_calls_and_reasoning(server):
    openai = _sdk("openai", "openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)
    messages = [{"role": "user", "content": WEATHER}]
    with client.chat.completions.stream(model="m", messages=messages, tools=[WEATHER_TOOL]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["location"] == "Paris"
    messages += [final.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"}]
    answer = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
    assert answer.choices[0].message.content and answer.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": PROMPT}],
                                                 reasoning_effort="low", stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == chat(server, {"messages": [{"role": "user", "content": PROMPT}]}).content()


def test_anthropic_sdk_messages_stream(server):
    anthropic = _sdk("anthropic", "anthropic")
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-test", max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]
    with client.messages.stream(model="m", max_tokens=1024, messages=messages) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == final.content[0].text and len(text) >= 1500
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="m", max_tokens=1024, messages=[])


def test_ollama_client_chat_and_generate(server):
    ollama = _sdk("ollama", "ollama")
    client = ollama.Client(host=server.url)
    parts = list(client.chat(model="m", messages=[{"role": "user", "content": PROMPT}], stream=True))
    assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].eval_count > 0
    text = "".join(p.message.content for p in parts)
    assert len(text) >= 1500
    assert "".join(p.response for p in client.generate(model="m", prompt=PROMPT, stream=True)) == text
    with pytest.raises(ollama.ResponseError):
        client.chat(model="m", messages=[{"role": "user", "content": ""}])


def test_google_genai_stream_generate_content(server):
    _sdk("google.genai", "google-genai")
    from google import genai

    client = genai.Client(api_key="sk-test", http_options={"base_url": server.url, "api_version": "v1beta"})
    chunks = list(client.models.generate_content_stream(model="gemini-test", contents=PROMPT))
    text = "".join(c.text or "" for c in chunks)
    assert len(text) >= 1500 and chunks[-1].candidates[0].finish_reason.name == "STOP"
    assert client.models.generate_content(model="gemini-test", contents=PROMPT).text == text
    with pytest.raises(genai.errors.ClientError):
        client.models.generate_content(model="gemini-test", contents="   ")
