"""`streamconform check CAPTURE.json`: re-run every check offline on a saved capture bundle."""

from __future__ import annotations

import argparse

from harness.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", help="a capture bundle saved with `streamconform run --save-capture PATH`")
    parser.add_argument("--profile", default=None,
                        help="profile name or TOML path (default: the profile recorded in the capture)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a profile setting, repeatable")
    parser.add_argument("--json", dest="json_path", default=None, metavar="PATH|-", help="write the result JSON")
    parser.add_argument("--html", dest="html_path", default=None, metavar="PATH", help="write an HTML report")
    parser.add_argument("--quiet", action="store_true",
                        help="list only failing and warning checks (passed and skipped ones are counted, not "
                             "listed), then the verdict")


def main(args: argparse.Namespace) -> int:
    from harness.console import make_console
    from harness.profile import load_profile
    from harness.run_command import check_output_paths, emit_outputs
    from harness.runner import evaluate_bundle, load_bundle

    try:
        bundle = load_bundle(args.capture)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read capture {args.capture!r}: {exc}") from exc
    profile = load_profile(args.profile or bundle.get("profile") or "tds", args.overrides)
    check_output_paths(args)
    result = evaluate_bundle(bundle, profile)
    emit_outputs(result, args, make_console(stderr=args.json_path == "-"))
    return 0 if result.passed else 1
