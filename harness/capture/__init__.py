"""capture: the harness's only network I/O.

``request`` builds what is sent (a RequestSpec for a dialect, its curl reproduction), ``guard`` is the address
policy and the guarded network backend, ``netstream`` the socket stream under httpcore that stamps each read on
arrival, ``client`` the shared httpx client every capture goes through, ``core`` the capture itself:
``capture(spec, limits) -> Capture``, which never raises for anything the endpoint does.

``from harness.capture import capture, make_client`` keeps working: the names are looked up in ``core`` and
``client`` on first use, so importing ``harness.capture.request`` alone does not load httpx.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"capture": "harness.capture.core", "capture_sync": "harness.capture.core",
            "make_client": "harness.capture.client"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
