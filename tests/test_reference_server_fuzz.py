"""The reference server never answers 5xx, whatever a client sends (hypothesis, against a real server).

Generated requests mix wrong methods, odd paths and queries, unusual headers (bytes beyond ASCII included)
and bad bodies: random bytes, random JSON, chat-shaped objects with wrong types, lone UTF-16 surrogates
(escaped, and as raw invalid UTF-8), deep nesting. Every answer must be below 500, and the app's own 4xx
answers must be its OpenAI-shaped error object. The runs are derandomized and keep no example database, so
CI sees the same cases. Requests httpx cannot form (non-token methods, raw bytes in the target) go over
plain sockets.
"""

from __future__ import annotations

import json
import socket
import string
import urllib.parse
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_server.config import ServerConfig
from reference_server.embedded import EmbeddedServer

# No pacing and short answers: a request that happens to be valid streams at once, so 1,000 stay fast.
FAST_SERVER = dict(ttft_ms=0, gap_ms=0, target_chars=120, min_chunks=2)
FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(ServerConfig(**FAST_SERVER)) as srv:  # type: ignore[arg-type]
        yield srv


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    # One client for every example: keep-alive, so the run measures the server, not connection set-up.
    with httpx.Client(timeout=15, trust_env=False) as c:
        yield c


# --- strategies ---------------------------------------------------------------------------------------------
_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_TEXT = st.text(st.one_of(st.characters(), _SURROGATE), max_size=24)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), _TEXT)
_JSON = st.recursive(_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(_TEXT, inner, max_size=4)),
                     max_leaves=12)
_PROMPT = st.one_of(st.sampled_from(["magma", "why is the sky blue?", "", "   "]), _TEXT, _JSON)
_ROLE = st.one_of(st.sampled_from(["user", "system", "assistant", "tool", "robot"]), _JSON)
_PART = st.fixed_dictionaries({}, optional={"type": st.sampled_from(["text", "image_url"]), "text": _PROMPT})
_CONTENT = st.one_of(_PROMPT, st.lists(_PART, max_size=3))
_MESSAGE = st.one_of(st.fixed_dictionaries({}, optional={"role": _ROLE, "content": _CONTENT}), _JSON)
# A valid body of either dialect with up to two fields replaced or added: most bodies then have exactly one
# thing wrong (or nothing, for a 200), which reaches each validation branch and every field the answer echoes.
_VALID_BODY = st.one_of(
    st.fixed_dictionaries({"prompt": st.sampled_from(["magma", "why is the sky blue?"])},
                          optional={"stream": st.booleans(), "model": st.just("gpt-x")}),
    st.fixed_dictionaries({"messages": st.just([{"role": "user", "content": "magma"}])},
                          optional={"stream": st.booleans(),
                                    "stream_options": st.just({"include_usage": True}),
                                    "max_tokens": st.integers(1, 40), "temperature": st.just(0.5)}),
)
_FIELD = st.sampled_from(["prompt", "messages", "model", "stream", "stream_options", "max_tokens",
                          "max_completion_tokens", "temperature"])
# Strings weigh most: a string is what the answer echoes (model, prompt), where encoding bugs surface.
_WITH_SURROGATE = st.builds(lambda a, s, b: a + s + b, _TEXT, _SURROGATE, _TEXT)
_FIELD_VALUE = st.one_of(_TEXT, _WITH_SURROGATE, _JSON, st.lists(_MESSAGE, max_size=3), st.integers(-2, 40),
                         st.fixed_dictionaries({"include_usage": st.one_of(st.booleans(), _JSON)}))
_CHANGES = st.lists(st.tuples(st.one_of(_FIELD, _FIELD, _TEXT), _FIELD_VALUE), max_size=2).map(dict)
_ECHOED = st.builds(lambda field, value: {field: value}, st.sampled_from(["model", "prompt"]),
                   st.one_of(_WITH_SURROGATE, _TEXT))
_CHAT_BODY = st.builds(lambda base, changes: {**base, **changes}, _VALID_BODY, st.one_of(_CHANGES, _ECHOED))


def _encode(value: object, ascii_only: bool) -> bytes:
    # ensure_ascii escapes a lone surrogate as \udXXX; without it the surrogate goes out as invalid UTF-8.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


def _with_cut(prompt: str, cut: str) -> bytes:
    return json.dumps({"prompt": "magma " + prompt, "stream": True}).replace("magma", "magma" + cut).encode()


_CHAT_BYTES = st.builds(_encode, _CHAT_BODY, st.sampled_from([True, True, False]))
_BODY = st.one_of(
    st.just(b""),
    st.binary(max_size=600),
    _CHAT_BYTES,
    st.builds(_encode, _JSON, st.booleans()),
    st.builds(_nested, st.integers(1, 5000), st.sampled_from([b"[", b'{"a":[']),
              st.sampled_from([b"]", b"]}"])),
    # A valid body with one escape cut into it: lone surrogates, broken escapes, stray quotes.
    st.builds(_with_cut, _TEXT, st.sampled_from(["\\ud800", "\\udfff", "\\ud83d", "\\u12", "\\", '"'])),
)
_TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=12)
_METHOD = st.one_of(st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"]),
                    _TOKEN)
_PATH = st.one_of(st.sampled_from([CHAT, "/chat/completions", "/health", "/v1/models", "/debug/emission",
                                   "/", CHAT + "/", "//v1/chat/completions", "/v1/chat/completions%00",
                                   "/%ff%fe"]),
                  st.text(st.one_of(st.characters(), _SURROGATE), max_size=30).map(lambda t: "/" + t))
# Headers that would make the request itself wrong (framing, connection), or pick a deliberate fault mode.
_NOT_FUZZED = frozenset({"content-length", "transfer-encoding", "host", "connection", "upgrade", "expect",
                         "te", "x-fault", "keep-alive", "proxy-connection", "trailer"})
_HEADER_NAME = st.one_of(st.sampled_from(["content-type", "accept", "authorization", "origin",
                                          "accept-encoding", "access-control-request-headers",
                                          "access-control-request-method", "x-request-id", "user-agent",
                                          "cookie"]),
                         _TOKEN).filter(lambda n: n.lower() not in _NOT_FUZZED)
# Field values h11 lets a client send: visible ASCII, obs-text (0x80-0xff), inner spaces and tabs.
_VALUE_BYTES = [9, *range(0x20, 0x7F), *range(0x80, 0x100)]
_HEADER_VALUE = st.one_of(
    st.sampled_from([b"application/json", b"application/x-ndjson", b"text/event-stream", b"*/*", b"gzip",
                     b"\xc3\xa9t\xc3\xa9", b"\xff\xfe", b"X-Fault, Content-Type"]),
    st.lists(st.sampled_from(_VALUE_BYTES), max_size=40).map(lambda b: bytes(b).strip(b" \t")),
)
_HEADERS = st.lists(st.tuples(_HEADER_NAME, _HEADER_VALUE), max_size=5)


def _target(path: str, query: str | None) -> str:
    raw = path + (f"?{query}" if query is not None else "")
    return urllib.parse.quote(raw.encode("utf-8", "surrogatepass"), safe="/%?=&")


# Half the requests are chat-completions POSTs (mostly chat-shaped bodies), half anything at all.
_REQUEST = st.one_of(
    st.tuples(st.just("POST"), st.sampled_from([CHAT, "/chat/completions"]), _HEADERS,
              st.one_of(_CHAT_BYTES, _CHAT_BYTES, _BODY)),
    st.tuples(_METHOD, st.builds(_target, _PATH, st.one_of(st.none(), _TEXT)), _HEADERS, _BODY),
)


# --- checks -------------------------------------------------------------------------------------------------
def _assert_error_shape(response: httpx.Response) -> None:
    """A 4xx the app wrote carries {"error": {message, type, param, code}} (uvicorn's own 400 for HTTP it
    cannot parse is text/plain and never reaches the app)."""
    if response.request.method == "HEAD" or "json" not in response.headers.get("content-type", ""):
        return
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str)


def test_no_generated_request_gets_a_5xx(server: EmbeddedServer, client: httpx.Client) -> None:
    statuses: Counter[int] = Counter()

    @FUZZ
    @given(_REQUEST)
    def one(request: tuple[str, str, list[tuple[str, bytes]], bytes]) -> None:
        method, target, headers, body = request
        response = client.request(method, server.url + target, headers=headers, content=body)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (method, target, headers, body[:300], response.text[:300])
        if 400 <= response.status_code < 500:
            _assert_error_shape(response)

    one()
    assert sum(statuses.values()) >= 1000
    # The generator reached the interesting answers, not only one kind of refusal.
    assert statuses[200] and statuses[400] and statuses[404] and statuses[405], statuses


# --- raw sockets --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["h11", "httptools"])
def raw_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedServer]:
    if request.param == "httptools":
        pytest.importorskip("httptools")
    with EmbeddedServer(ServerConfig(**FAST_SERVER), http=request.param) as srv:  # type: ignore[arg-type]
        yield srv


def _status_of(port: int, raw: bytes) -> int | None:
    """The status code of the first response to `raw`, or None when the server closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        head = b""
        while b"\r\n" not in head:
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                return None
            if not data:
                return None
            head += data
    return int(head.split(b" ", 2)[1])


_RAW_BYTES = st.binary(min_size=1, max_size=16).filter(lambda b: not {0x0D, 0x0A, 0x20} & set(b))


def _raw_request(method: bytes, target: bytes, name: bytes, value: bytes) -> bytes:
    return (method + b" " + target + b" HTTP/1.1\r\nHost: x\r\n" + name + b": " + value
            + b"\r\nContent-Length: 0\r\n\r\n")


_RAW_REQUEST = st.builds(
    _raw_request,
    st.one_of(st.sampled_from([b"POST", b"GET", b"G\xc3\x89T", b"P\xffST"]), _RAW_BYTES),
    st.one_of(st.sampled_from([CHAT.encode(), b"/health", b"/\xff\xfe", b"/\xed\xa0\x80", b"*"]),
              _RAW_BYTES.map(lambda b: b"/" + b)),
    st.one_of(st.sampled_from([b"Accept", b"X-Fault", b"Origin", b"\xc3\xa9"]), _RAW_BYTES),
    st.binary(max_size=30).filter(lambda b: not {0x0D, 0x0A} & set(b)),
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(raw=_RAW_REQUEST)
def test_raw_bytes_in_method_target_and_headers_never_get_a_5xx(raw_server: EmbeddedServer,
                                                                 raw: bytes) -> None:
    status = _status_of(raw_server.port, raw)
    assert status is None or status < 500, raw


@pytest.mark.parametrize("raw", [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: [\r\nContent-Length: 2\r\n\r\n{}",
    b"GET /health/ HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n",
    b"GET /v1/chat/completions/ HTTP/1.1\r\nHost: [::1\r\n\r\n",
    b"OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAccess-Control-Request-Headers: \xe9\xff\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Fault: \xc3\xa9\xff\r\nContent-Length: 0\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"GET /debug/emission?reset=%ff%ed%a0%80 HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_known_awkward_raw_requests_never_get_a_5xx(raw_server: EmbeddedServer, raw: bytes) -> None:
    status = _status_of(raw_server.port, raw)
    assert status is not None and status < 500


# --- the cases from the issue, and the big ones -------------------------------------------------------------
@pytest.mark.parametrize("body, param", [
    (b'{"prompt":"magma","model":"\\ud800","stream":false}', "model"),
    (b'{"prompt":"magma","model":"\\ud800","stream":true}', "model"),
    (b'{"prompt":"magma \\udfff","stream":true}', "prompt"),
    (b'{"messages":[{"role":"user","content":[{"type":"text","text":"x\\uDBFF"}]}]}',
     "messages[0].content[0].text"),
    (b'{"prompt":"magma","metadata":{"\\ud800":1}}', "metadata.\\ud800"),
])
def test_a_lone_surrogate_is_a_400_naming_where_it_is(server: EmbeddedServer, client: httpx.Client,
                                                      body: bytes, param: str) -> None:
    for fault in ({}, {"X-Fault": "echo"}):  # echo sent the prompt back: the stream's encoder raised mid-way
        r = client.post(server.url + CHAT, content=body, headers=fault)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_encoding" and r.json()["error"]["param"] == param


def test_a_surrogate_pair_is_an_ordinary_character(server: EmbeddedServer, client: httpx.Client) -> None:
    r = client.post(server.url + CHAT, content=b'{"prompt":"magma \\ud83d\\ude00","model":"m\\ud83d\\ude00",'
                                               b'"stream":false}')
    assert r.status_code == 200 and r.json()["model"] == "m\U0001f600"


def test_a_50_mb_body_is_a_413(server: EmbeddedServer, client: httpx.Client) -> None:
    r = client.post(server.url + CHAT, content=b"x" * (50 * 1024 * 1024))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("body", [
    _nested(100_000, b"[", b"]"),
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b"[" * 100_000,  # never closed
    b'{"prompt": "magma", "x": ' + _nested(100_000, b"[", b"]") + b"}",
])
def test_100k_deep_json_is_a_400(server: EmbeddedServer, client: httpx.Client, body: bytes) -> None:
    r = client.post(server.url + CHAT, content=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
