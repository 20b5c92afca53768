"""`streamconform clients`: which real clients `run --clients` can use here, and `--install` for the Node ones.

Listing changes nothing. ``--install`` is the only place the Node clients' npm packages are installed (into the
cache directory, harness/clients/node_runtime.py): a run never installs anything without being asked."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--install", action="store_true",
        help="install the Node clients' npm packages (openai, ai, @ai-sdk/openai-compatible, @ai-sdk/openai) "
             "into the cache directory ($STREAMCONFORM_CACHE_DIR, else ~/.cache/streamconform); needs node 18+ "
             "and npm")
    from harness.cli.options import SHARED_OPTIONS

    chromium = next(o for o in SHARED_OPTIONS if "--chromium" in o.flags)
    add("--chromium", metavar="PATH", default=None, help=chromium.meaning + "; here: whether it is found")


def main(args: argparse.Namespace) -> int:
    from harness.clients import CLIENTS
    from harness.clients.node_runtime import install, node_dir

    if args.install:
        status = install()
        if status:
            return status
    rows = []
    for name, client in CLIENTS.items():
        why = client.available(args.chromium)
        rows.append((name, client.runtime, ", ".join(client.dialects), "ready" if why is None else why))
    width = max(len(r[0]) for r in rows)
    for name, runtime, dialects, state in rows:
        print(f"{name:<{width}}  {runtime:<7}  {state}")
        print(f"{'':<{width}}  {'':<7}  protocols: {dialects}")
    print(f"\nNode packages: {node_dir()}. Use them with `streamconform run URL --clients all` "
          "(or --clients NAME,...).")
    return 0
