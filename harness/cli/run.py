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

from harness.cli.options import add_run_options, profile_overrides, run_options_from
from harness.errors import ConfigError

# The whole run is bounded by --deadline; this margin covers tearing down captures after the deadline fires.
_TEARDOWN_MARGIN_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.cli.options import add_fault, add_html, add_json, add_profile, add_quiet, add_token_method

    add = parser.add_argument
    add("url", nargs="?", default=None,
        help="full endpoint URL, e.g. http://host:8080/v1/chat/completions (default: an embedded reference server)")
    add_profile(add)
    add_run_options(add)
    add_token_method(add)
    add_json(add, RESULT_JSON)
    add("--save-capture", dest="save_capture", default=None, metavar="PATH",
        help="save the raw captures so `streamconform check PATH` can re-check them offline")
    add_html(add, "the run report")
    add_fault(add, "only with no URL: the embedded server started for this run")
    add_quiet(add, QUIET_CHECKS)


# Shared with `check`, which prints the same table.
RESULT_JSON = "the result (schemas/result.schema.json)"
QUIET_CHECKS = "failing and warning checks are listed, the others counted, then the verdict"


def check_output_paths(args: argparse.Namespace) -> None:
    """Every output path is made writable before the run (its directory created), so none is wasted on a typo."""
    from harness.cli.options import prepare_output

    prepare_output("--json", args.json_path)
    prepare_output("--html", args.html_path)
    prepare_output("--save-capture", getattr(args, "save_capture", None))


def emit_outputs(result: Any, args: argparse.Namespace, console: Console, *, save_capture: str | None = None,
                 after_table: str | None = None) -> None:
    """Write --save-capture / --json / --html and print the table; shared with `check`.

    A file that cannot be written does not hide the verdict: the table is printed anyway, then the
    failures are raised together as a usage error (exit 2).
    """
    from harness.cli.console import print_result
    from harness.cli.options import write_output

    doc = result.to_dict()
    problems: list[str | None] = []
    if save_capture:
        from harness.run.runner import bundle_json

        problems.append(write_output("--save-capture", save_capture, bundle_json(result)))
    if args.json_path == "-":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif args.json_path:
        problems.append(write_output("--json", args.json_path, json.dumps(doc, indent=2)))
    html_written = False
    if args.html_path:
        from reports import render_run

        problem = write_output("--html", args.html_path, render_run(doc))
        problems.append(problem)
        html_written = problem is None
    print_result(doc, console=console, show_passed=not args.quiet, show_skipped=not args.quiet)
    if after_table:
        console.print(after_table, highlight=False, soft_wrap=True)
    if html_written:
        console.print(f"HTML report: {args.html_path}", highlight=False)
    failed = [p for p in problems if p]
    if failed:
        raise ConfigError("; ".join(failed) + " (the verdict above stands; exit code 2 is for the output)")


def _replay_hint(endpoint: str, fault: str | None) -> str:
    """The reproduce commands name the embedded server's port, which closes when `run` exits: say how to reopen it."""
    from urllib.parse import urlsplit

    port = urlsplit(endpoint).port
    command = f"streamconform serve --port {port}" + (f" --fault {fault}" if fault else "")
    return (f"the embedded reference server stopped with this run: to replay a reproduce command, first start it "
            f"again in another terminal with `{command}`")


async def _run(url: str, profile: Any, options: Any) -> Any:
    from harness.run.runner import run_target

    # run_target honours the deadline itself; this outer bound is a guarantee, not the mechanism.
    return await asyncio.wait_for(run_target(url, profile, options), options.limits.deadline_s + _TEARDOWN_MARGIN_S)


def _embedded_route(endpoint: str, dialect: str) -> str:
    """The embedded server's route for the dialect: it speaks every protocol, each at its usual path."""
    from harness.dialects import REGISTRY

    spec = REGISTRY.get(dialect)
    if spec is None or spec.default_path in ("", "/v1/chat/completions") or "MODEL" in spec.default_path:
        return endpoint if spec is None or spec.name != "gemini" else endpoint.rsplit("/v1/", 1)[0] + "/"
    return endpoint.rsplit("/v1/", 1)[0] + spec.default_path


def main(args: argparse.Namespace) -> int:
    from harness.cli.console import make_console
    from harness.cli.options import require_fault, require_url
    from harness.run.profile import load_profile

    console = make_console(stderr=args.json_path == "-")
    profile = load_profile(args.profile, profile_overrides(args))
    options = run_options_from(args)
    if args.fault and args.url:
        raise ConfigError("--fault applies to the embedded reference server: give no URL with it")
    require_fault(args.fault)
    if args.url is not None:
        require_url(args.url)
    check_output_paths(args)

    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from reference_server.config import ServerConfig
            from reference_server.embedded import EmbeddedServer

            server = stack.enter_context(EmbeddedServer(ServerConfig(fault=args.fault)))
            url = _embedded_route(server.endpoint, options.dialect or profile.dialect)
            console.print(f"no URL given: checking the embedded reference server at {url}"
                          + (f" (fault: {args.fault})" if args.fault else ""), highlight=False)
        try:
            result = asyncio.run(_run(url, profile, options))
        except asyncio.TimeoutError:
            console.print(f"[bold red]FAIL[/]: the run did not finish within its {options.limits.deadline_s:g} s "
                          "deadline (the harness stopped it)")
            return 1

    hint = _replay_hint(url, args.fault) if args.url is None and not result.passed else None
    emit_outputs(result, args, console, save_capture=args.save_capture, after_table=hint)
    return 0 if result.passed else 1
