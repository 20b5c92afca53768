"""tox plugin: find the pyenv-installed interpreters (3.10-3.13) without manual steps.

pyenv's shims answer only for the versions named in PYENV_VERSION, and tox hands its interpreter discovery a
filtered environment, so instead each pyXY env is pointed at the newest pyenv interpreter of that minor version
when one exists. Interpreters found on PATH the ordinary way (outside pyenv) keep working: nothing changes then.
"""

from __future__ import annotations

import glob
import os
import re

from tox.config.loader.memory import MemoryLoader
from tox.plugin import impl


def _pyenv_interpreter(minor: str) -> str | None:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = glob.glob(os.path.join(root, "versions", f"3.{minor}.*", "bin", f"python3.{minor}"))
    # newest patch release first; pyenv virtualenvs (names with letters) are skipped by the pattern below
    candidates = [c for c in candidates if re.search(rf"/3\.{minor}\.\d+/bin/", c)]
    candidates.sort(key=lambda p: [int(x) for x in re.findall(r"/3\.\d+\.(\d+)/", p)], reverse=True)
    return candidates[0] if candidates else None


@impl
def tox_add_env_config(env_conf, state):  # noqa: ARG001
    # pyXY test envs, and the .pkg-cpython3.XY envs that build each interpreter's wheel (see tox.ini)
    match = re.fullmatch(r"(?:py3|\.pkg-cpython3\.)(\d+)", env_conf.name)
    if not match:
        return
    path = _pyenv_interpreter(match.group(1))
    if path:
        env_conf.loaders.insert(0, MemoryLoader(base_python=[path]))
