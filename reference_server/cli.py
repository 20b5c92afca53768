"""`streamconform serve`: run the reference server (optionally with a fault mode, pacing, rate limit or relay)."""

from __future__ import annotations

import argparse
import errno
import re
import socket
import sys

from harness.errors import ConfigError
from reference_server.config import ServerConfig


def _rate(text: str) -> float:
    """`10`, `10/s`, `600/min` -> requests per second."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a rate like 10/s or 600/min, got {text!r}")
    value = float(m.group(1))
    return value / 60 if (m.group(2) or "s").startswith("m") else value


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text}")
        return value
    return parse


def _at_least(minimum: int) -> object:
    """An integer option that means nothing below `minimum` (an answer of 0 characters, 0 workers)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _port(text: str) -> int:
    """0..65535, checked here: the socket layer would take 70000 modulo 65536 and listen on another port."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535 (0 = any free port), got {value}")
    return value


def _fault(text: str) -> str:
    from reference_server.faults import FAULTS  # imported on use: building the CLI parser stays cheap
    from reference_server.protocols.faults import PROTOCOL_FAULTS  # one protocol's own (sequence-gap, ...)

    if text not in FAULTS and text not in PROTOCOL_FAULTS:
        raise argparse.ArgumentTypeError(f"unknown fault {text!r}; see --list-faults")
    return text


def _api_key(var: str | None) -> str | None:
    """The key named by --api-key-env (a key on the command line would show in ps and shell history)."""
    if not var:
        return None
    import os

    key = os.environ.get(var)
    if not key:
        raise ConfigError(f"--api-key-env {var}: that environment variable is not set")
    return key


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.cli.options import add_fault, add_model, add_workers  # one spelling and meaning everywhere

    d = ServerConfig()
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8080,
                        help="port to listen on (default 8080; 0 = any free)")
    add_fault(parser.add_argument, "applied to every request; without it, a request can pick one with the X-Fault "
              "header", type=_fault)
    parser.add_argument("--list-faults", action="store_true", help="print the fault modes and exit")
    parser.add_argument("--ttft-ms", type=_positive(float), default=d.ttft_ms,
                        help=f"delay before the first content chunk (default {d.ttft_ms:g})")
    parser.add_argument("--gap-ms", type=_positive(float), default=d.gap_ms,
                        help=f"delay between content chunks (default {d.gap_ms:g})")
    parser.add_argument("--chars", type=_at_least(1), default=d.target_chars,
                        help=f"length of the answer in characters (default {d.target_chars})")
    parser.add_argument("--min-chunks", type=_positive(int), default=d.min_chunks,
                        help=f"minimum number of content chunks (default {d.min_chunks})")
    parser.add_argument("--rate-limit", type=_rate, metavar="N/s",
                        help="answer 429 with Retry-After past N requests per second")
    parser.add_argument("--upstream", metavar="URL",
                        help="relay an OpenAI-compatible server instead of generating text (fault modes then "
                        "do not apply; the key comes from --upstream-key-env)")
    parser.add_argument("--upstream-key-env", default=d.upstream_key_env, metavar="VAR",
                        help=f"environment variable holding the upstream API key (default {d.upstream_key_env})")
    add_model(parser.add_argument, detail=f"reported in every chunk; default {d.model}", default=d.model)
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="require the API key held in this environment variable (Authorization: Bearer KEY or "
                             "x-api-key); a request without it gets 401 with an error object")
    add_workers(parser.add_argument, "here: uvicorn worker processes; default 1 (more for the scale "
                "benchmark)", type=_at_least(1), default=1)
    parser.add_argument("--record-lateness", action="store_true",
                        help="record emission lateness of paced events (GET /debug/emission; for benchmarks)")
    parser.add_argument("--task-per-stream", action="store_true",
                        help="pace each stream with its own sleeping task instead of the shared pacer (benchmarks)")
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto",
                        help="uvicorn HTTP implementation (auto: httptools when installed; faster per event)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="event loop (auto: uvloop when installed)")
    parser.add_argument("--header-timeout", type=_positive(float), default=d.header_timeout_s, metavar="S",
                        help="close a connection whose request headers are not complete within S seconds "
                        f"(slowloris; default {d.header_timeout_s:g}, 0 = never)")
    # uvicorn's own level names (uvicorn.config.LOG_LEVELS): a typo is a usage error, not a crash after binding
    parser.add_argument("--log-level", default="warning", type=str.lower,
                        choices=["critical", "error", "warning", "info", "debug", "trace"],
                        help="uvicorn log level (default warning)")


def config_from(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(ttft_ms=args.ttft_ms, gap_ms=args.gap_ms, target_chars=args.chars,
                        min_chunks=args.min_chunks, fault=args.fault, rate_limit=args.rate_limit,
                        upstream=args.upstream, upstream_key_env=args.upstream_key_env, model=args.model,
                        api_key=_api_key(args.api_key_env),
                        record_lateness=args.record_lateness, shared_pacer=not args.task_per_stream,
                        header_timeout_s=args.header_timeout)


def _settle_gc() -> None:
    """Move everything allocated at start-up out of the collector's view: full collections then only walk the
    objects of live streams, which keeps their pauses (and so the emission lateness tail) short."""
    import gc

    gc.collect()
    gc.freeze()


class _StartError(Exception):
    """The server cannot start as asked (exit 2, like any usage error)."""


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen before anything is printed or uvicorn starts: the banner then names a port that is
    really ours (port 0 resolved without a race), and a taken port is a usage error, not uvicorn's exit 3."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart over TIME_WAIT
        sock.bind((host, port))
        sock.listen(4096)  # connections queue from now on, so a client that read the banner is not refused
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise _StartError(f"port {port} is in use on {host} "
                              "(pick another --port, or --port 0 for a free one)") from None
        if exc.errno == errno.EACCES:
            raise _StartError(f"not allowed to listen on port {port} of {host} "
                              "(ports below 1024 need privileges)") from None
        raise _StartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)  # worker processes (--workers > 1) receive it
    return sock


def _error(message: str) -> int:
    # The same prefix harness/cli.py gives every usage error (this module does not depend on harness).
    print(f"streamconform: error: {message}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    from reference_server.faults import describe

    if args.list_faults:
        from reference_server.protocols.faults import describe as describe_protocol_faults

        print(describe())
        print(describe_protocol_faults())
        return 0
    import os

    import uvicorn

    from reference_server.header_timeout import protocol_factory

    config = config_from(args)
    try:
        sock = _listen(args.host, args.port)
    except _StartError as exc:
        return _error(str(exc))
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"reference server on http://{host}:{port}/v1/chat/completions"
          + (f" (fault: {args.fault})" if args.fault else "")
          + (f" ({args.workers} workers)" if args.workers > 1 else ""), file=sys.stderr, flush=True)
    # uvicorn serves the socket bound above (by its file descriptor), so it never binds, nor fails to, itself.
    common = dict(fd=sock.fileno(), log_level=args.log_level, access_log=False, lifespan="off", backlog=4096,
                  http=protocol_factory(args.http, config.header_timeout_s), loop=args.loop)
    try:
        if args.workers > 1:
            # Worker processes import the app by name, so the config travels through the environment.
            from reference_server.app import CONFIG_ENV, config_to_env

            os.environ[CONFIG_ENV] = config_to_env(config)
            uvicorn.run("reference_server.app:app_from_env", factory=True, workers=args.workers, **common)
            return 0
        from reference_server.app import create_app

        app = create_app(config)
        _settle_gc()
        uvicorn.run(app, timeout_graceful_shutdown=2, **common)
    finally:
        sock.close()
    return 0
