"""``pytest --pyargs harness.conformance_tests`` (README): the conformance tests, defined in
harness/pytest/conformance_tests.py. The plugin adds this module, so the documented name, its path and the test
ids stay what they were."""

from harness.pytest.conformance_tests import test_check, test_stream_benchmark

__all__ = ["test_check", "test_stream_benchmark"]
