"""`streamconform run [URL]`: check one endpoint and print a verdict with evidence.

With no URL the embedded reference server is started on a free loopback port and checked, so a newcomer sees a
passing run at once (and `--fault NAME` shows how a defect is reported).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from rich.console import Console

from harness.errors import ConfigError
from harness.options import add_run_options, run_options_from

# The whole run is bounded by --timeout; this margin covers tearing down captures after the deadline fires.
_TEARDOWN_MARGIN_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", default=None,
                        help="full endpoint URL, e.g. http://host:8080/v1/chat/completions "
                             "(default: an embedded reference server)")
    parser.add_argument("--profile", default="tds", help="profile name or path to a TOML file (default: tds)")
    add_run_options(parser.add_argument)
    parser.add_argument("--json", dest="json_path", default=None, metavar="PATH|-",
                        help="write the result JSON to PATH, or to stdout with '-' (the table then goes to stderr)")
    parser.add_argument("--save-capture", dest="save_capture", default=None, metavar="PATH",
                        help="save the raw captures so `streamconform check PATH` can re-check them offline")
    parser.add_argument("--html", dest="html_path", default=None, metavar="PATH",
                        help="write a self-contained HTML report")
    parser.add_argument("--fault", default=None, metavar="NAME",
                        help="with no URL: start the reference server with this fault mode (see `serve --list-faults`)")
    parser.add_argument("--quiet", action="store_true", help="print only failing checks and the verdict")


def emit_outputs(result: Any, args: argparse.Namespace, console: Console) -> None:
    """Write --json / --html and print the table; shared with `check`."""
    from harness.console import print_result

    doc = result.to_dict()
    if args.json_path == "-":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
    if args.html_path:
        from reports import render_run, write_html

        write_html(args.html_path, render_run(doc))
    print_result(doc, console=console, show_passed=not args.quiet)
    if args.html_path:
        console.print(f"HTML report: {args.html_path}")


async def _run(url: str, profile: Any, options: Any) -> Any:
    from harness.runner import run_target

    # run_target honours the deadline itself; this outer bound is a guarantee, not the mechanism.
    return await asyncio.wait_for(run_target(url, profile, options), options.limits.deadline_s + _TEARDOWN_MARGIN_S)


def main(args: argparse.Namespace) -> int:
    from harness.profile import load_profile

    console = Console(stderr=args.json_path == "-")
    profile = load_profile(args.profile, args.overrides)
    options = run_options_from(args)
    if args.fault and args.url:
        raise ConfigError("--fault applies to the embedded reference server: give no URL with it")

    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from reference_server.config import ServerConfig
            from reference_server.embedded import EmbeddedServer

            server = stack.enter_context(EmbeddedServer(ServerConfig(fault=args.fault)))
            url = server.endpoint
            console.print(f"no URL given: checking the embedded reference server at {url}"
                          + (f" (fault: {args.fault})" if args.fault else ""), highlight=False)
        try:
            result = asyncio.run(_run(url, profile, options))
        except asyncio.TimeoutError:
            console.print(f"[bold red]FAIL[/]: the run did not finish within its {options.limits.deadline_s:.0f} s "
                          "deadline (the harness stopped it)")
            return 1

    if args.save_capture:
        from harness.runner import save_bundle

        save_bundle(args.save_capture, result)
    emit_outputs(result, args, console)
    return 0 if result.passed else 1
