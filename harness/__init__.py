"""streamconform: conformance and benchmark harness for streaming LLM HTTP endpoints.

Pipeline (see ARCHITECTURE.md): request -> capture (the only I/O) -> parse (sans-I/O) -> decode -> checks
-> result. The CLI, the pytest plugin, grading and benchmarks are thin layers over that core.
"""

__version__ = "0.1.0"
