"""Only the optional C extensions live here; all other metadata is in pyproject.toml.

``optional=True``: where an extension cannot be built (no C compiler, no Python headers, not Linux) the install
still succeeds. Without ``_sse_speedups`` harness.parse.sse runs its pure-Python path (same events, slower); without
``_receiver`` the capture reads its sockets in the event loop (harness/capture/netstream.py), which a busy loop
makes late.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("harness.parse._sse_speedups", ["harness/parse/_sse_speedups.c"], optional=True),
    Extension("harness.capture._receiver", ["harness/capture/_receiver.c"], optional=True),
])
