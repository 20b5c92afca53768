"""Connecting to Ray for ``--ray ADDRESS``: the only module that imports ray.

ray is an optional extra, so ``--ray`` without it is a usage error (exit 2) that says how to install it,
found before any work is done. ``auto`` joins the cluster named by RAY_ADDRESS, or starts a local Ray
instance for the command (and stops it after); ``HOST:PORT`` joins a running cluster (`ray start --head`
prints its address).

A local instance started here listens on loopback only: Ray would otherwise announce the machine's network
address (it maps 127.0.0.1 to it on purpose, so other machines could join), and a Ray started for one command
has no other machine to wait for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from harness.errors import ConfigError

INSTALL_HINT = "pip install 'streamconform[ray]'"
AUTO = "auto"
# Ray reads this when it is imported: false means "no cluster of several machines", and then every address it
# binds or announces is loopback. Set only for a local instance started here, never when joining a cluster.
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ray_installed() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a half-removed install, or ray blocked in sys.modules
        return False


def check_ray_option(address: str | None) -> str | None:
    """``--ray``'s value checked before any work: None (not asked), ``auto`` or ``HOST:PORT``. Ray missing
    or a malformed address is a ConfigError (exit 2)."""
    if address is None:
        return None
    address = address.strip()
    if address != AUTO:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--ray {address!r}: expected auto or HOST:PORT of a running Ray cluster "
                              "(`ray start --head` prints it)")
    if not ray_installed():
        raise ConfigError(f"--ray needs Ray, which is not installed here: {INSTALL_HINT} "
                          "(on the driver and on every node of the cluster)")
    return address


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why nothing answers at HOST:PORT, or None. Ray itself retries an unreachable GCS for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__


@contextlib.contextmanager
def connected(address: str) -> Iterator[Any]:
    """The ray module, connected for the block; disconnected after (which also stops a local instance started
    here). A process already connected (a test, a notebook) is used as it is and left connected."""
    target = address if address != AUTO else os.environ.get("RAY_ADDRESS")
    if target is None or _is_loopback(target.removeprefix("ray://").rpartition(":")[0]):
        # Before ray is imported (its constants read it then). A loopback address names a Ray on this machine,
        # which Ray would otherwise look for at the machine's network address.
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
    if target is None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a Ray started for one command reports nowhere
    import ray

    if ray.is_initialized():
        yield ray
        return
    # Workers' prints are not forwarded (a `--json -` document on stdout must stay clean); their failures
    # still reach the driver as exceptions.
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    problem = _reachable(target) if target is not None and target != AUTO else None
    if problem:
        raise ConfigError(f"--ray {address}: no Ray cluster answers at {target} ({problem}); "
                          "`ray start --head` prints the address of the one it starts")
    if target is None:
        try:
            # "local": a new instance of this command's own, never another user's `ray start` cluster that a
            # bare ray.init() would join.
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     _node_ip_address="127.0.0.1", **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"--ray auto: cannot start a local Ray ({exc})") from None
    else:
        try:
            ray.init(address=None if address == AUTO else address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            hint = "" if os.environ.get("RAY_AUTH_MODE") else (
                "; a cluster with token authentication (what `ray start` sets up) needs RAY_AUTH_MODE=token "
                "here too")
            message = f"--ray {address}: cannot connect to the Ray cluster at {target} ({exc}){hint}"
            raise ConfigError(message) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def alive_nodes(ray: Any) -> list[dict[str, Any]]:
    """The cluster's live nodes with at least one CPU (a head started with --num-cpus 0 runs no work)."""
    return [n for n in ray.nodes() if n.get("Alive") and (n.get("Resources") or {}).get("CPU", 0) >= 1]


def total_cpus(ray: Any) -> int:
    return int(sum((n.get("Resources") or {}).get("CPU", 0) for n in alive_nodes(ray)))


def where_am_i() -> dict[str, Any]:
    """Inside a Ray worker: its node (Ray's node id, which two nodes on one host do not share), IP and pid."""
    import ray

    return {"node": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address(),
            "pid": os.getpid()}


def lost_worker_errors() -> tuple[type[BaseException], ...]:
    """What ray.get raises when the worker running a call died or its task failed (never the endpoint's
    fault)."""
    import ray.exceptions as rx

    return (rx.RayError,)
