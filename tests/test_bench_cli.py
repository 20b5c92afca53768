"""`streamconform bench` end to end: a real reference server in a child process, real HTTP on loopback.

Levels are tiny (a few short streams) so the file runs in seconds; the load generator's speed is measured in
benchmarks/bench_client.py, not here.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import jsonschema
import pytest

from harness.bench.server import ReferenceServerProcess, free_port
from harness.cli import main as cli_main

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "schemas" / "bench.schema.json").read_text())
# A short, quick stream: keeps each request well under a second.
FAST_SERVER = ["--ttft-ms", "20", "--gap-ms", "5", "--chars", "300"]


@pytest.fixture(scope="module")
def server():
    with ReferenceServerProcess(FAST_SERVER) as srv:
        yield srv


def bench(tmp_path: Path, *argv: str, name: str = "bench.json") -> tuple[int, dict]:
    out = tmp_path / name
    code = cli_main(["bench", *argv, "--json", str(out)])
    doc = json.loads(out.read_text()) if out.exists() else {}
    return code, doc


def test_closed_loop_sweep_records_every_request_and_validates(server, tmp_path, capsys):
    code, doc = bench(tmp_path, server.endpoint, "--concurrency", "1,3", "--requests", "4",
                      "--slo", "ttft_ms=5000", "--slo", "tpot_ms=1000")
    assert code == 0
    jsonschema.validate(doc, SCHEMA)
    assert [lvl["label"] for lvl in doc["levels"]] == ["c=1", "c=3"]
    for lvl in doc["levels"]:
        assert lvl["requests"] == lvl["completed"] == 4 and lvl["error_rate"] == 0
        assert lvl["goodput"]["good_requests"] == 4  # generous SLOs: every request is good
        assert lvl["requests_per_s"] > 0 and lvl["output_tokens_per_s"] > 0
        for key in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
            d = lvl[key]
            assert d["p50"] is not None and d["p50"] <= d["p90"] <= d["p95"] <= d["p99"] <= d["max"]
        assert lvl["ttft_ms"]["p50"] >= 15  # the server waits 20 ms before the first chunk
        assert lvl["overhead"]["loop_lag_ms"]["count"] > 0  # the ticker ran
        assert lvl["overhead"]["client_cpu_s"] > 0
        rec = lvl["records"][0]
        assert rec["ok"] and rec["status"] == 200 and rec["token_method"] == "chars/4"
        assert len(rec["itl_ms"]) == rec["content_events"] - 1  # every gap between content events
        assert rec["ttfb_ms"] <= rec["ttft_ms"] <= rec["e2e_ms"]
    printed = capsys.readouterr().out
    assert "c=3" in printed and "client overhead" in printed and "goodput" in printed


def test_tight_slo_gives_zero_goodput_but_full_throughput(server, tmp_path):
    code, doc = bench(tmp_path, server.endpoint, "--concurrency", "2", "--requests", "2", "--slo", "ttft_ms=0.001")
    assert code == 0
    lvl = doc["levels"][0]
    assert lvl["completed"] == 2 and lvl["goodput"]["good_requests"] == 0 and lvl["goodput"]["requests_per_s"] == 0


def test_open_loop_rate_follows_seeded_poisson_arrivals(server, tmp_path):
    code, doc = bench(tmp_path, server.endpoint, "--rate", "40", "--requests", "6", "--seed", "7")
    assert code == 0
    jsonschema.validate(doc, SCHEMA)
    (lvl,) = doc["levels"]
    assert lvl["mode"] == "open" and lvl["label"] == "rate=40/s" and lvl["completed"] == 6
    rng = random.Random(7)
    expected, t = [], 0.0
    for _ in range(6):
        expected.append(t)
        t += rng.expovariate(40)
    assert [r["t_start_s"] for r in lvl["records"]] == pytest.approx(expected)


def test_duration_bounds_a_level(server, tmp_path):
    code, doc = bench(tmp_path, server.endpoint, "--concurrency", "2", "--duration", "0.5")
    assert code == 0
    lvl = doc["levels"][0]
    assert lvl["requests"] >= 2 and lvl["duration_s"] < 5


def test_compare_shows_deltas_against_a_previous_run(server, tmp_path, capsys):
    code, first = bench(tmp_path, server.endpoint, "--concurrency", "2", "--requests", "2", name="a.json")
    assert code == 0
    html = tmp_path / "bench.html"
    code, second = bench(tmp_path, server.endpoint, "--concurrency", "2,4", "--requests", "2",
                         "--compare", str(tmp_path / "a.json"), "--html", str(html), name="b.json")
    assert code == 0
    assert "c=2" in html.read_text(encoding="utf-8")  # the report renders this run beside the previous one
    jsonschema.validate(second, SCHEMA)
    rows = second["comparison"]["rows"]
    assert {r["level"] for r in rows} == {"c=2"}  # c=4 has nothing to compare with
    ttft = next(r for r in rows if r["metric"] == "TTFT p50 ms")
    assert ttft["previous"] == first["levels"][0]["ttft_ms"]["p50"]
    assert ttft["delta"] == pytest.approx(ttft["current"] - ttft["previous"])
    assert "compared with" in capsys.readouterr().out


def test_unreachable_target_is_reported_not_raised(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"  # nothing listens there
    code, doc = bench(tmp_path, url, "--concurrency", "2", "--requests", "2", "--request-timeout", "5")
    assert code == 1  # a level with no successful request describes nothing
    lvl = doc["levels"][0]
    assert lvl["completed"] == 0 and lvl["error_rate"] == 1.0 and lvl["errors"] == {"connect_error": 2}
    jsonschema.validate(doc, SCHEMA)


def test_no_url_benchmarks_the_reference_server(tmp_path, capsys):
    code, doc = bench(tmp_path, "--concurrency", "2", "--requests", "2", "--no-records")
    assert code == 0
    assert doc["levels"][0]["completed"] == 2 and "records" not in doc["levels"][0]
    jsonschema.validate(doc, SCHEMA)
    assert "reference server" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--slo", "ttft=3"], "--slo"),
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "a,b"], "--concurrency"),
    (["--rate", "-1"], "--rate"),
    (["--requests", "0"], "--requests"),
    (["--prompts", "/nonexistent/prompts.txt"], "--prompts"),
    (["--json", str(Path(__file__) / "out.json")], "--json"),  # below a regular file: not even root can create it
    (["--duration", "0"], "--duration"),
    (["--set", "no.such=1"], "--set"),
    (["--set", "dialect"], "--set"),
])
def test_bad_options_exit_2_with_a_clear_message(argv, message, capsys):
    assert cli_main(["bench", "http://127.0.0.1:9/x", *argv]) == 2
    assert message in capsys.readouterr().err


def test_compare_refuses_a_file_that_is_not_a_bench_json(tmp_path, capsys):
    other = tmp_path / "result.json"
    other.write_text(json.dumps({"schema_version": 1, "checks": []}))
    assert cli_main(["bench", "http://127.0.0.1:9/x", "--compare", str(other)]) == 2
    assert "not a streamconform bench JSON" in capsys.readouterr().err


def test_prompts_file_lines_and_json_lines(server, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text('Tell me about lighthouses\n\n{"prompt": "Explain tidal power"}\n', encoding="utf-8")
    code, doc = bench(tmp_path, server.endpoint, "--concurrency", "1", "--requests", "2", "--prompts", str(prompts))
    assert code == 0 and doc["options"]["prompts"] == 2 and doc["levels"][0]["completed"] == 2


def test_deferred_parsing_is_bounded_and_gives_the_same_records(server, tmp_path, monkeypatch):
    import harness.bench.request as bench_request

    monkeypatch.setattr(bench_request, "MAX_DEFERRED", 2)  # the first two wait for the level's end, then inline
    code, doc = bench(tmp_path, server.endpoint, "--concurrency", "1", "--requests", "4")
    assert code == 0
    records = doc["levels"][0]["records"]
    assert [r.get("parse_deferred", False) for r in records] == [True, True, False, False]
    assert all(r["ok"] and r["ttft_ms"] is not None and "capture" not in r for r in records)
    jsonschema.validate(doc, SCHEMA)


def test_set_overrides_the_profile_as_in_run(server, tmp_path):
    code, doc = bench(tmp_path, server.endpoint, "--concurrency", "1", "--requests", "2",
                      "--set", "dialect=openai", "--set", "token_method=words")
    assert code == 0 and doc["levels"][0]["completed"] == 2
    assert doc["dialect"] == "openai" and doc["token_method"] == "words"


def test_usage_token_count_asks_the_openai_server_for_usage(server, tmp_path):
    code, doc = bench(tmp_path, server.endpoint, "--concurrency", "1", "--requests", "2", "--dialect", "openai",
                      "--token-method", "usage")
    assert code == 0 and doc["token_method"] == "usage"
    assert all(r["tokens"] and r["tokens"] > 0 for r in doc["levels"][0]["records"])


def test_compare_notes_reach_the_json_and_the_terminal(server, tmp_path, capsys):
    code, first = bench(tmp_path, server.endpoint, "--concurrency", "1", "--requests", "2")
    assert code == 0
    previous = tmp_path / "first.json"
    previous.write_text(json.dumps(first))
    code, doc = bench(tmp_path, server.endpoint, "--concurrency", "2", "--requests", "2", "--compare", str(previous))
    assert code == 0
    notes = doc["comparison"]["notes"]
    assert any("no level in common" in n for n in notes), notes
    assert "no level in common" in capsys.readouterr().out


def test_reference_server_process_retries_when_its_port_was_taken():
    import socket

    from harness.bench.server import ReferenceServerProcess

    srv = ReferenceServerProcess()
    with socket.socket() as taken:  # the port picked for the child is taken before the child starts
        taken.bind((srv.host, srv.port))
        taken.listen()
        first = srv.port
        with srv:
            assert srv.port != first
            assert httpx.get(srv.base_url + "/health", trust_env=False).status_code == 200
