"""Smoke test of benchmarks/parser_speed.py: it runs, and the three parsers agree on the event count.

(The speed figures themselves are the script's business, not a timed unit test's.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "parser_speed.py"


def test_parser_speed_script_runs_and_the_peers_agree(capsys) -> None:
    spec = importlib.util.spec_from_file_location("parser_speed", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["parser_speed"] = module
    try:
        spec.loader.exec_module(module)
        assert module.main(["--events", "300", "--repeat", "1"]) == 0  # 1 would mean a parser miscounted
    finally:
        sys.modules.pop("parser_speed", None)
    out = capsys.readouterr().out
    assert "ratio SSEParser / httpx-sse SSEDecoder" in out and "openai SSEDecoder" in out


def test_the_benchmark_stream_parses_to_the_chunks_it_was_built_from() -> None:
    spec = importlib.util.spec_from_file_location("parser_speed_stream", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["parser_speed_stream"] = module
    try:
        spec.loader.exec_module(module)
        body, ends = module.openai_stream(50)
    finally:
        sys.modules.pop("parser_speed_stream", None)
    from harness.sse import SSEParser

    parser = SSEParser()
    events = [e for read in module.per_event_reads(body, ends) for e in parser.feed(read, 0.0)] + parser.close()
    assert len(events) == len(ends) and events[-1].data == "[DONE]"
    assert [e.offset for e in events] == [0, *ends[:-1]]
    assert not parser.findings
