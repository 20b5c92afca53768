"""pytest: the ``pytest --endpoint URL`` plugin (``plugin``, the pytest11 entry point) and the conformance tests it
adds (``conformance_tests``, collected through the documented ``harness.conformance_tests``).
"""
