"""Where the Node clients live: Node itself, and the npm packages ``streamconform clients --install`` puts in a
cache directory.

Packages are never installed at check time: a run whose packages are missing skips the Node clients with the
command that installs them. The shipped ``node/package.json`` pins the majors (the newest that still run on
Node 18+); the shipped ``node/client.mjs`` is copied beside the installed ``node_modules`` so its imports resolve
there.

    STREAMCONFORM_CACHE_DIR   the cache directory (default ``$XDG_CACHE_HOME/streamconform``, else
                              ``~/.cache/streamconform``); the packages go in its ``node/``
    STREAMCONFORM_NODE        the ``node`` executable (default: ``node`` on PATH)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "node"
SCRIPT = "client.mjs"
MIN_NODE_MAJOR = 18
INSTALL_COMMAND = "streamconform clients --install"
INSTALL_TIMEOUT_S = 600.0


def cache_dir() -> Path:
    given = os.environ.get("STREAMCONFORM_CACHE_DIR")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamconform"


def node_dir() -> Path:
    return cache_dir() / "node"


def find_node() -> str | None:
    given = os.environ.get("STREAMCONFORM_NODE")
    if given:
        return given if os.access(given, os.X_OK) else None
    return shutil.which("node")


def find_npm(node: str | None = None) -> str | None:
    """npm beside the node in use first (a node given by path brings its own npm), then npm on PATH."""
    if node:
        beside = Path(node).resolve().parent / "npm"
        if beside.exists():
            return str(beside)
    return shutil.which("npm")


_VERSIONS: dict[str, tuple[int, str] | None] = {}


def node_version(node: str) -> tuple[int, str] | None:
    """(major, "v20.1.0") of ``node``, or None when it does not run."""
    if node not in _VERSIONS:
        try:
            out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=15).stdout.strip()
            _VERSIONS[node] = (int(out.lstrip("v").split(".")[0]), out)
        except (OSError, ValueError, subprocess.SubprocessError):
            _VERSIONS[node] = None
    return _VERSIONS[node]


def wanted() -> dict[str, str]:
    """The npm packages (name -> version range) the shipped package.json asks for."""
    return dict(json.loads((SHIPPED / "package.json").read_text(encoding="utf-8"))["dependencies"])


def missing(packages: tuple[str, ...]) -> str | None:
    """Why ``packages`` cannot run under Node here, with the way to fix it; None when they can."""
    node = find_node()
    if node is None:
        return (f"Node.js not found (`node` on PATH, or STREAMCONFORM_NODE): install Node {MIN_NODE_MAJOR}+, "
                f"then run `{INSTALL_COMMAND}`")
    version = node_version(node)
    if version is None or version[0] < MIN_NODE_MAJOR:
        shown = version[1] if version else "an unknown version"
        return f"{node} is {shown}: the Node clients need Node {MIN_NODE_MAJOR}+"
    where = node_dir() / "node_modules"
    absent = [p for p in packages if not (where / p / "package.json").is_file()]
    if absent:
        return (f"the npm package{'s' if len(absent) > 1 else ''} {', '.join(absent)} "
                f"{'are' if len(absent) > 1 else 'is'} not installed: run `{INSTALL_COMMAND}` "
                f"(installs into {node_dir()})")
    return None


def script() -> Path:
    """The client script beside the installed packages, refreshed from the shipped copy when it differs."""
    shipped = (SHIPPED / SCRIPT).read_bytes()
    target = node_dir() / SCRIPT
    try:
        current = target.read_bytes()
    except OSError:
        current = None
    if current != shipped:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{SCRIPT}.{os.getpid()}")
        temp.write_bytes(shipped)
        os.replace(temp, target)  # atomic: a client starting now reads the old file or the new one, whole
    return target


def _same_manifest(target: Path) -> bool:
    """Whether ``target`` was installed from the package.json this version ships (a newer streamconform may pin
    other versions: then --install installs again)."""
    try:
        return (target / "package.json").read_bytes() == (SHIPPED / "package.json").read_bytes()
    except OSError:
        return False


def install(say: Callable[[str], None] = print) -> int:
    """``npm install`` the shipped package.json into the cache directory. Returns an exit status."""
    node = find_node()
    npm = find_npm(node)
    if node is None or npm is None:
        say(f"error: {'Node.js' if node is None else 'npm'} not found: install Node {MIN_NODE_MAJOR}+ with npm "
            "(Debian: apt-get install nodejs npm), or give STREAMCONFORM_NODE")
        return 2
    version = node_version(node)
    if version is None or version[0] < MIN_NODE_MAJOR:
        say(f"error: {node} is {version[1] if version else 'not runnable'}; the Node clients need Node "
            f"{MIN_NODE_MAJOR}+")
        return 2
    target = node_dir()
    target.mkdir(parents=True, exist_ok=True)
    packages = ", ".join(f"{k}@{v}" for k, v in wanted().items())
    # One install at a time into the directory (parallel test workers, two terminals): npm does not lock it.
    with open(target / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if missing(tuple(wanted())) is None and _same_manifest(target):
            say(f"already installed in {target}: {packages}")
            return 0
        shutil.copyfile(SHIPPED / "package.json", target / "package.json")
        script()
        say(f"installing {packages} into {target} (node {version[1]}, {npm})")
        try:
            done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error"],
                                  cwd=target, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            say(f"error: npm install did not finish in {INSTALL_TIMEOUT_S:.0f} s")
            return 1
    if done.returncode != 0:
        say(f"error: npm install failed (exit status {done.returncode}); see its output above")
        return 1
    still = missing(tuple(wanted()))
    if still:
        say(f"error: after npm install, {still}")
        return 1
    say("installed: the Node clients (openai_node, vercel_ai) are ready")
    return 0
