"""`streamconform check CAPTURE.json`: re-run every check offline on a saved capture bundle."""

from __future__ import annotations

import argparse

from harness.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.cli.options import add_html, add_json, add_profile, add_quiet, add_set, add_token_method
    from harness.cli.run import QUIET_CHECKS, RESULT_JSON

    add = parser.add_argument
    add("capture", help="a capture bundle saved with `streamconform run --save-capture PATH`")
    add_profile(add, default=None, default_text="the profile recorded in the capture")
    add_set(add)
    add_token_method(add)
    add_json(add, RESULT_JSON)
    add_html(add, "the run report")
    add_quiet(add, QUIET_CHECKS)


def main(args: argparse.Namespace) -> int:
    from harness.cli.console import make_console
    from harness.cli.options import profile_overrides
    from harness.cli.run import check_output_paths, emit_outputs
    from harness.run.profile import load_profile
    from harness.run.runner import evaluate_bundle, load_bundle

    try:
        bundle = load_bundle(args.capture)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read capture {args.capture!r}: {exc}") from exc
    profile = load_profile(args.profile or bundle.get("profile") or "tds", profile_overrides(args))
    check_output_paths(args)
    result = evaluate_bundle(bundle, profile)
    emit_outputs(result, args, make_console(stderr=args.json_path == "-"))
    return 0 if result.passed else 1
