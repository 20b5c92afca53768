"""The conformance tests the pytest plugin adds under `pytest --endpoint URL` (one item per check).

Named without a `test_` prefix so pytest never collects it by accident: the plugin adds it explicitly.
"""

from __future__ import annotations

import pytest

from harness.pytest.plugin import assert_check


def test_check(conformance_result, conformance_check_id, request):
    assert_check(conformance_result, conformance_check_id, request.node)


def test_stream_benchmark(request, conformance_endpoint):
    """Stream timings through pytest-benchmark (TTFT, tokens/s, ITL in extra_info), when it is installed."""
    if not request.config.pluginmanager.hasplugin("benchmark"):
        pytest.skip("pytest-benchmark is not installed")
    from harness.bench.fixture import measure_stream
    from harness.pytest.plugin import _STATE

    benchmark = request.getfixturevalue("benchmark")
    state = request.config.stash[_STATE]
    from harness.cli.options import run_options_from

    measure_stream(benchmark, conformance_endpoint, state.profile, run_options_from(request.config.option,
                                                                                      prefix="conformance-"))
