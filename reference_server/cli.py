"""`streamconform serve`: run the reference server (optionally with a fault mode, pacing, rate limit or relay)."""

from __future__ import annotations

import argparse
import re
import sys

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080; 0 = any free)")
    parser.add_argument("--fault", metavar="NAME", help="fault mode for every request (see --list-faults); "
                        "without it, a request can pick one with the X-Fault header")
    parser.add_argument("--list-faults", action="store_true", help="print the fault modes and exit")
    parser.add_argument("--ttft-ms", type=_positive(float), default=d.ttft_ms,
                        help=f"delay before the first content chunk (default {d.ttft_ms:g})")
    parser.add_argument("--gap-ms", type=_positive(float), default=d.gap_ms,
                        help=f"delay between content chunks (default {d.gap_ms:g})")
    parser.add_argument("--chars", type=_positive(int), default=d.target_chars,
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
    parser.add_argument("--model", default=d.model, help=f"model name reported in chunks (default {d.model})")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes (default 1; more for the scale benchmark)")
    parser.add_argument("--record-lateness", action="store_true",
                        help="record emission lateness of paced events (GET /debug/emission; for benchmarks)")
    parser.add_argument("--task-per-stream", action="store_true",
                        help="pace each stream with its own sleeping task instead of the shared pacer (benchmarks)")
    parser.add_argument("--http", choices=["auto", "h11", "httptools"], default="auto",
                        help="uvicorn HTTP implementation (auto: httptools when installed; faster per event)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                        help="event loop (auto: uvloop when installed)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")


def config_from(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(ttft_ms=args.ttft_ms, gap_ms=args.gap_ms, target_chars=args.chars,
                        min_chunks=args.min_chunks, fault=args.fault, rate_limit=args.rate_limit,
                        upstream=args.upstream, upstream_key_env=args.upstream_key_env, model=args.model,
                        record_lateness=args.record_lateness, shared_pacer=not args.task_per_stream)


def _settle_gc() -> None:
    """Move everything allocated at start-up out of the collector's view: full collections then only walk the
    objects of live streams, which keeps their pauses (and so the emission lateness tail) short."""
    import gc

    gc.collect()
    gc.freeze()


def main(args: argparse.Namespace) -> int:
    from reference_server.faults import FAULTS, describe

    if args.list_faults:
        print(describe())
        return 0
    if args.fault and args.fault not in FAULTS:
        print(f"error: unknown fault {args.fault!r}; see --list-faults", file=sys.stderr)
        return 2
    import os

    import uvicorn

    config = config_from(args)
    if args.port == 0:  # "any free port": pick it here so the address printed below is the real one
        from reference_server.embedded import free_port

        args.port = free_port(args.host)
    if args.workers > 1:
        # Worker processes import the app by name, so the config travels through the environment.
        from reference_server.app import CONFIG_ENV, config_to_env

        os.environ[CONFIG_ENV] = config_to_env(config)
        uvicorn.run("reference_server.app:app_from_env", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level=args.log_level, access_log=False, lifespan="off",
                    backlog=4096, http=args.http, loop=args.loop)
        return 0
    from reference_server.app import create_app

    _settle_gc()
    print(f"reference server on http://{args.host}:{args.port}/v1/chat/completions"
          + (f" (fault: {args.fault})" if args.fault else ""), file=sys.stderr, flush=True)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                lifespan="off", backlog=4096, timeout_graceful_shutdown=2, http=args.http, loop=args.loop)
    return 0
