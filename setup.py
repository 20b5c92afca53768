"""Only the optional C speedup lives here; all other metadata is in pyproject.toml.

``optional=True``: where the extension cannot be built (no C compiler, no Python headers) the install still
succeeds and harness.parse.sse runs its pure-Python path, with the same events and findings, only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("harness.parse._sse_speedups", ["harness/parse/_sse_speedups.c"], optional=True)])
