"""decode, tokens and metrics: the pure functions under every check and the bench."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace as Ev

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.measure.metrics import burst_of, compute_metrics, is_meaningful, percentile
from harness.measure.tokens import METHODS, count_tokens, token_count
from harness.parse.decode import decode, decode_event, text_of


def test_openai_chunk():
    c = decode_event(json.dumps({"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"},
                                                         "finish_reason": None}]}), t=0.5, offset=7)
    assert (c.content, c.role, c.finish_reason, c.t, c.offset, c.done) == ("Hi", "assistant", None, 0.5, 7, False)


@pytest.mark.parametrize(("obj", "content"), [
    ({"choices": [{"text": "a"}]}, "a"),                      # legacy completions / vLLM
    ({"message": {"role": "assistant", "content": "b"}}, "b"),  # Ollama chat
    ({"response": "c", "done": False}, "c"),                  # Ollama generate
    ({"content": "d"}, "d"),
    ({"text": "e"}, "e"),
    ({"token": "f"}, "f"),
    ({"choices": [{"delta": {}, "finish_reason": "stop"}]}, None),
    ({"foo": 1}, None),
])
def test_content_shapes(obj, content):
    assert decode_event(json.dumps(obj)).content == content


def test_done_error_usage_invalid():
    assert decode_event("[DONE]").done
    assert decode_event(json.dumps({"done": True, "response": ""})).done
    err = decode_event(json.dumps({"error": {"message": "boom"}}))
    assert err.error == {"message": "boom"} and err.content is None
    usage = decode_event(json.dumps({"choices": [], "usage": {"completion_tokens": 3}}))
    assert usage.usage == {"completion_tokens": 3}
    bad = decode_event('{"choices": [')
    assert bad.json is None and bad.json_error
    assert decode_event("[1, 2]").json == [1, 2]
    assert decode_event("[" * 100000).json_error  # deep nesting is an error, not a crash


def test_decode_events_keeps_order_and_text():
    events = [Ev(data=json.dumps({"content": p}), t=i / 10, offset=i * 10, event="message") for i, p in
              enumerate(["a", "", "b"])]
    chunks = decode(events)
    assert [c.offset for c in chunks] == [0, 10, 20]
    assert text_of(chunks) == "ab"


def test_token_methods():
    assert count_tokens("abcdefghi") == 3  # ceil(9 / 4)
    assert token_count("", "chars/4").tokens == 0
    assert token_count("one two  three", "words").tokens == 3
    assert token_count("x", "chunks", chunks=7).tokens == 7
    assert token_count("x", "usage", usage={"completion_tokens": 42}).tokens == 42
    missing = token_count("abcd", "usage")
    assert missing.tokens is None and "usage" in missing.note
    assert count_tokens("abcd", "usage") == 1  # the int form falls back to chars/4
    tk = token_count("hello world", "tiktoken")
    assert tk.method == "tiktoken" and (tk.tokens is None) == (tk.note is not None)
    with pytest.raises(ValueError):
        token_count("x", "bogus")
    assert set(METHODS) == {"chars/4", "words", "chunks", "usage", "tiktoken", "auto"}
    # auto: the server's usage when it reports one, else chars/4, naming the method it used
    assert token_count("x", "auto", usage={"completion_tokens": 42}) == token_count("x", "usage",
                                                                                     usage={"completion_tokens": 42})
    fallback = token_count("abcdefgh", "auto")
    assert (fallback.tokens, fallback.method) == (2, "chars/4") and "no usage" in fallback.note


def test_percentile_interpolates():
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert math.isclose(percentile(list(range(101)), 99), 99.0)


def test_meaningful():
    assert not is_meaningful(None) and not is_meaningful("") and not is_meaningful("  ...\n") \
        and not is_meaningful("…")
    assert is_meaningful("a") and is_meaningful(" 1.")


def _chunks(spec):
    """spec: (t, content) pairs -> chunks."""
    return decode([Ev(data=json.dumps({"content": c}) if c is not None else json.dumps({"role": "x"}), t=t,
                      offset=i, event="message") for i, (t, c) in enumerate(spec)])


def test_metrics_definitions():
    chunks = _chunks([(0.10, None), (0.15, ""), (0.20, "..."), (0.50, "Hello"), (0.60, " world"), (0.80, "!!!!!")])
    m = compute_metrics(chunks, t_request_sent=0.0, t_first_byte=0.1, t_end=1.0)
    assert m.ttfb_ms == pytest.approx(100)
    assert m.ttft_ms == pytest.approx(500)  # role, empty and "..." do not stop the clock
    assert m.e2e_ms == pytest.approx(1000)
    assert m.chunks == 4 and m.chars == len("...Hello world!!!!!")
    assert m.tokens == math.ceil(m.chars / 4)
    assert m.tokens_per_s == pytest.approx(m.tokens / 0.3)  # first meaningful (0.5) to last content (0.8)
    assert m.itl_ms["max"] == pytest.approx(300) and m.itl_ms["p50"] == pytest.approx(200)
    d = m.to_dict()
    assert set(d) >= {"ttfb_ms", "ttft_ms", "e2e_ms", "chunks", "chars", "tokens", "token_method", "tokens_per_s",
                      "itl_ms", "burst"}


def test_one_chunk_rate_is_undefined():
    m = compute_metrics(_chunks([(0.3, "everything at once")]), t_end=0.4)
    assert m.tokens_per_s is None and m.itl_ms["p50"] is None and m.ttft_ms == pytest.approx(300)


def test_burst():
    b = burst_of([1.0, 1.01, 1.02], [10, 10, 10], 0.0, 200)
    assert b.share == 1.0 and b.silence_ms == pytest.approx(1000)
    b = burst_of([0.1 * i for i in range(1, 11)], [10] * 10, 0.0, 200)
    assert b.share == pytest.approx(0.3)  # three chunks fit in any 200 ms window
    assert burst_of([], [], 0.0).share is None


# -- properties: no input crashes the pure stages --------------------------------------------------------------------


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                st.sampled_from(["choices", "delta", "content", "text", "message", "usage", "error",
                                                 "finish_reason", "role", "done", "response", "id"]), inner,
                                max_size=4), max_leaves=12)


@given(st.one_of(st.text(max_size=80), _json_values.map(json.dumps)))
@settings(max_examples=300, deadline=None)
def test_decode_never_raises(data):
    chunk = decode_event(data, t=0.1, offset=3)
    assert chunk.content is None or isinstance(chunk.content, str)
    assert chunk.finish_reason is None or isinstance(chunk.finish_reason, str)


@given(st.lists(st.tuples(st.floats(0, 10, allow_nan=False), st.one_of(st.none(), st.text(max_size=8))),
                max_size=30).map(lambda xs: sorted(xs, key=lambda x: x[0])))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_metrics_never_raise_and_stay_consistent(spec):
    m = compute_metrics(_chunks(spec), t_request_sent=0.0, t_first_byte=0.0, t_end=10.0)
    assert m.chunks == sum(1 for _, c in spec if c)
    assert m.tokens_per_s is None or m.tokens_per_s >= 0
    if m.itl_ms["p50"] is not None:
        assert m.itl_ms["p50"] <= m.itl_ms["p90"] <= m.itl_ms["p99"] <= m.itl_ms["max"] + 1e-9
    assert m.burst.share is None or 0 < m.burst.share <= 1.0 + 1e-9
