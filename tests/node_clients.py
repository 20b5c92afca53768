"""The Node clients' npm packages for tests: installed once (``streamconform clients --install``'s own code, into
the user's cache directory, under its lock) when Node and npm are here and the packages are not. Tests ask for
the install explicitly, as a user does; a run never installs anything."""

from __future__ import annotations

from harness.clients import CLIENTS
from harness.clients.node_runtime import find_node, find_npm, install, missing

NODE_PACKAGES = tuple(dict.fromkeys(p for c in CLIENTS.values() for p in c.npm))


def ensure_node_clients() -> str | None:
    """None when the Node clients can run, else why not (Node or npm missing, the install failed)."""
    if missing(NODE_PACKAGES) is None:
        return None
    if find_node() is None or find_npm(find_node()) is None:
        return missing(NODE_PACKAGES)
    said: list[str] = []
    install(say=said.append)
    why = missing(NODE_PACKAGES)
    return None if why is None else f"{why} ({'; '.join(said)[-500:]})"
