"""The `streamconform` command: a thin argparse front end.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``main(args) -> int``, so the
CLI holds no logic of its own. Exit codes: 0 every required check passed, 1 a check failed, 2 usage or
configuration error, 3 an internal error of the harness itself.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from harness import __version__
from harness.errors import ConfigError, HarnessError

# name -> (module, one-line help). Modules are imported only when their subcommand (or --help) needs them.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("harness.run_command", "check one endpoint (the embedded reference server when no URL is given)"),
    "check": ("harness.check_command", "re-check a saved capture offline"),
    "serve": ("reference_server.cli", "run the reference server (optionally with a fault mode)"),
    "grade": ("harness.grade.cli", "grade a roster of submitted endpoints"),
    "bench": ("harness.bench", "load-benchmark one endpoint"),
    "report": ("reports.cli", "render a saved result as a self-contained HTML report"),
}


def _parser_build() -> str:
    """Which SSE parser path this install runs: the optional C speedup is built only where a compiler was."""
    import harness.sse

    if harness.sse.scan_data_events is not None:
        return "C-accelerated SSE parser"
    why = "STREAMCONFORM_PURE_PYTHON set" if harness.sse._sse_speedups else "speedup not built"
    return f"pure-Python SSE parser: {why}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamconform",
        description="Conformance and benchmark harness for streaming LLM HTTP endpoints.",
    )
    parser.add_argument("--version", action="version", version=f"streamconform {__version__} ({_parser_build()})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except ConfigError as exc:
        print(f"streamconform: error: {exc}", file=sys.stderr)
        return 2
    except HarnessError as exc:
        print(f"streamconform: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("streamconform: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in the harness: say so in one line; the traceback on request
        if os.environ.get("STREAMCONFORM_DEBUG"):
            raise
        print(f"streamconform: internal error: {type(exc).__name__}: {exc} "
              "(set STREAMCONFORM_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
