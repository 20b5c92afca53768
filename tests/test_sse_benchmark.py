"""Smoke test of benchmarks/parser_speed.py: it runs, and the three parsers agree on the event count.

(The speed figures themselves are the script's business, not a timed unit test's.)
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "parser_speed.py"


@contextlib.contextmanager
def loaded_script(name: str) -> Iterator[ModuleType]:
    """The benchmark script imported as module ``name``, registered in sys.modules while in use as an import would be."""
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


def test_parser_speed_script_runs_and_the_peers_agree(capsys) -> None:
    with loaded_script("parser_speed") as module:
        assert module.main(["--events", "300", "--repeat", "1"]) == 0  # 1 would mean a parser miscounted
    out = capsys.readouterr().out
    assert "ratio SSEParser / httpx-sse SSEDecoder" in out and "openai SSEDecoder" in out


def test_the_benchmark_stream_parses_to_the_chunks_it_was_built_from() -> None:
    with loaded_script("parser_speed_stream") as module:
        body, ends = module.openai_stream(50)
    from harness.parse.sse import SSEParser

    parser = SSEParser()
    events = [e for read in module.per_event_reads(body, ends) for e in parser.feed(read, 0.0)] + parser.close()
    assert len(events) == len(ends) and events[-1].data == "[DONE]"
    assert [e.offset for e in events] == [0, *ends[:-1]]
    assert not parser.findings
