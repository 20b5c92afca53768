"""How tests start the project's commands: always through the interpreter running the tests, never PATH.

A fresh venv that is not activated has its console scripts beside ``sys.executable`` only; PATH may hold none, or
an older install of the project.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def console_script(name: str) -> str:
    """The path of console script NAME installed for this interpreter (a venv's bin/ or Scripts/)."""
    bindir = Path(sys.executable).parent
    for candidate in (bindir / name, bindir / f"{name}.exe"):
        if candidate.exists() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(f"console script {name!r} is not installed beside {sys.executable}")
