"""The `streamconform` command: a thin argparse front end.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``main(args) -> int``, so the
CLI holds no logic of its own. Exit codes: 0 every required check passed, 1 a check failed, 2 usage or
configuration error, 3 an internal error of the harness itself, 141 stdout was closed by its reader (`| head`).
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
    "run": ("harness.cli.run", "check one endpoint (the embedded reference server when no URL is given)"),
    "check": ("harness.cli.check", "re-check a saved capture offline"),
    "serve": ("reference_server.cli", "run the reference server (optionally with a fault mode)"),
    "grade": ("harness.grade.cli", "grade a roster of submitted endpoints"),
    "bench": ("harness.bench.cli", "load-benchmark one endpoint"),
    "report": ("reports.cli", "render a saved result as a self-contained HTML report"),
    "clients": ("harness.cli.clients", "list the real clients `run --clients` can use here; --install the Node ones"),
}

# name -> realistic invocations shown under "examples:" in the subcommand's --help (tests/test_cli_help.py parses
# every one of them, so an example cannot outlive an option it uses).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "run": (
        "streamconform run                                  # the embedded reference server: a passing run",
        "streamconform run --fault few-chunks --quiet       # see how a defect is reported",
        "streamconform run http://localhost:8000/v1/chat/completions --deadline 30 --token-method words",
        "streamconform run http://localhost:8000/v1/chat/completions --profile grading --html report.html",
        'streamconform run https://api.example.com/v1/chat/completions -H "Authorization: Bearer $OPENAI_API_KEY" '
        "--json result.json",
    ),
    "check": (
        "streamconform check capture.json                   # re-judge a `run --save-capture capture.json`",
        "streamconform check capture.json --profile grading --set timing.ttft_ms=1500 --quiet",
        "streamconform check capture.json --json - > result.json",
    ),
    "serve": (
        "streamconform serve --port 8000                    # http://127.0.0.1:8000/v1/chat/completions",
        "streamconform serve --list-faults",
        "streamconform serve --port 8000 --fault slow-ttft --log-level info",
    ),
    "grade": (
        "streamconform grade roster.csv --out grades/ --profile grading",
        "streamconform grade roster.csv --out grades/ --regrade alice,bob     # grade two ids again",
        "streamconform grade roster.csv --out grades/ --allow-private --concurrency 8   # local testing only",
        "streamconform grade roster.csv --out g/ --thresholds-seed exam1 --submission-reports",
        "streamconform grade roster.csv --out g/ --dialect auto --set timing.ttft_ms=3000 --json - > summary.json",
    ),
    "bench": (
        "streamconform bench                                # the reference server at concurrency 1,4,16,64",
        "streamconform bench http://localhost:8000/v1/chat/completions --concurrency 1,8 --slo ttft_ms=500",
        "streamconform bench http://localhost:8000/v1/chat/completions --dialect auto --request-timeout 30",
        "streamconform bench --rate 5,20 --duration 30 --json bench.json --compare previous.json",
        "streamconform bench http://localhost:8000/v1/chat/completions --processes 2 --concurrency 256,1000",
    ),
    "report": (
        "streamconform report result.json                   # writes result.html beside it",
        "streamconform report grades/summary.json --html grading.html",
        "streamconform report bench.json --previous previous-bench.json",
    ),
    "clients": (
        "streamconform clients                              # which clients can run here, and why not",
        "streamconform clients --install                    # npm-install openai-node and the Vercel AI SDK",
    ),
}

# 128 + SIGPIPE: what a shell reports for a writer its reader left, e.g. `yes | head`.
EXIT_BROKEN_PIPE = 141


def _parser_build() -> str:
    """Which SSE parser path this install runs: the optional C speedup is built only where a compiler was."""
    import harness.parse.sse

    if harness.parse.sse.scan_data_events is not None:
        return "C-accelerated SSE parser"
    why = "STREAMCONFORM_PURE_PYTHON set" if harness.parse.sse._sse_speedups else "speedup not built"
    return f"pure-Python SSE parser: {why}"


def examples_epilog(name: str) -> str:
    """The "examples:" block of a subcommand's --help, one command a line (RawDescriptionHelpFormatter keeps the
    lines as written: a wrapped command could not be pasted)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamconform",
        description="Conformance and benchmark harness for streaming LLM HTTP endpoints.",
    )
    parser.add_argument("--version", action="version", version=f"streamconform {__version__} ({_parser_build()})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=examples_epilog(name),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A reader that closes our stdout early (`| head`) ends the command quietly: the pending
    output is flushed here, inside the handler, rather than at interpreter exit where it could only be reported
    as "Exception ignored" (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_closed_streams()
        return EXIT_BROKEN_PIPE


def _silence_closed_streams() -> None:
    """Point every stream whose reader has gone at devnull, as the Python docs recommend, so the flush at exit
    does not fail again. SIGPIPE is left ignored: its default would also kill the reference server's sockets.

    The exit code is 141 and not the docs' 1: 1 here means "a check failed" and 0 would claim a verdict nobody
    read, while 141 is what the shell reports for a C tool cut off the same way, so `set -o pipefail` scripts
    treat both alike."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: already closed
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):  # no file descriptor (an in-memory stream): nothing left to flush
                pass


def _dispatch(argv: list[str] | None) -> int:
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
    except BrokenPipeError:  # the reader left: not a bug of the harness (main ends quietly)
        raise
    except Exception as exc:  # a bug in the harness: say so in one line; the traceback on request
        if os.environ.get("STREAMCONFORM_DEBUG"):
            raise
        print(f"streamconform: internal error: {type(exc).__name__}: {exc} "
              "(set STREAMCONFORM_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
