"""`streamconform bench [URL]`: load-benchmark one streaming endpoint.

A closed-loop sweep over fixed concurrency levels (``--concurrency 1,4,16,64``) or open-loop Poisson arrivals
(``--rate R``), with per-request TTFB / TTFT / inter-token gaps / TPOT / end-to-end, per-level percentiles,
throughput, error rate and goodput against ``--slo`` limits, and the client's own overhead. No URL: the reference
server is started in a child process on a free loopback port.

Pieces: bench_load (the load loops and overhead monitor), bench_request (capture -> per-request record),
bench_stats (percentiles, SLOs, goodput, compare), bench_render (terminal tables), bench_server (child server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.bench.load import OPEN_LOOP_CONNECTIONS
from harness.bench.request import DEFAULT_PROMPTS
from harness.bench.stats import LevelSpec, compare_levels, comparison_notes, parse_slos
from harness.cli.options import (
    add_concurrency,
    add_deprecated,
    add_dialect,
    add_fault,
    add_header,
    add_html,
    add_json,
    add_max_tokens,
    add_model,
    add_processes,
    add_profile,
    add_ray,
    add_set,
    add_token_method,
    add_workers,
    check_processes,
)
from harness.errors import ConfigError

BENCH_SCHEMA_VERSION = 1
DEFAULT_CONCURRENCY = "1,4,16,64"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", default=None,
                        help="full endpoint URL (default: the reference server, started in a child process)")
    load = parser.add_argument_group("load").add_argument
    add_concurrency(load, f"here: N requests, a comma list giving one closed-loop level per number; default "
                          f"{DEFAULT_CONCURRENCY}, or none when --rate is given", default=None, metavar="N,N,...")
    load("--rate", default=None, metavar="R,R,...",
         help="open-loop levels: Poisson arrivals per second (requests start whatever the server's state)")
    load("--requests", type=int, default=None, metavar="N",
         help="requests per level (default 4 x concurrency, at least 8; open loop: 10 x rate, at least 8)")
    load("--duration", type=float, default=None, metavar="S",
         help="seconds per level; with --requests, whichever ends first")
    load("--prompts", default=None, metavar="FILE",
         help="prompts, one per line (or JSON lines with a 'prompt' field), used in turn")
    load("--seed", type=int, default=0, help="seed of the open-loop arrival times (default 0)")
    add_ray(load, "here: each level's load is split over --workers Ray actors")
    add_workers(load, "here: Ray actors spread over the cluster's nodes, each sending its share of every "
                      "level (closed loop: of the concurrency; open loop: of the rate); only with --ray; "
                      "default: one per node", type=int, default=None)
    add_processes(load, "here: each level's load, for loads one loop cannot time exactly")
    req = parser.add_argument_group("request").add_argument
    add_profile(req)
    add_set(req, detail="bench reads only dialect, prompts, token_method and request.model")
    add_header(req)
    add_dialect(req, detail="auto is decided once, by one request before the levels")
    add_model(req)
    req("--request-timeout", dest="request_timeout", type=float, default=60.0, metavar="S",
        help="deadline of each request (default 60): a request past it is an error, never a hang")
    add_deprecated(req, "--timeout", "--request-timeout", "request_timeout", type=float, metavar="S")
    add_max_tokens(req)
    add_token_method(req)
    add_fault(req, "only with no URL: the reference server started for this benchmark")
    out = parser.add_argument_group("output").add_argument
    out("--slo", action="append", default=[], metavar="NAME=MS",
        help="a service-level objective, repeatable: ttft_ms, tpot_ms, e2e_ms, ttfb_ms, itl_ms "
             "(worst gap); goodput counts requests meeting all of them")
    add_json(out, "the bench document (schemas/bench.schema.json)")
    add_html(out, "the bench report")
    out("--compare", default=None, metavar="PREVIOUS.json",
        help="show deltas against a previous bench JSON")
    out("--no-records", action="store_true",
        help="leave the per-request records out of the JSON (keeps it small)")


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated whole numbers") from None
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"{option} {text!r}: every level must be at least 1")
    return values


def _float_list(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated numbers") from None
    if not values or any(not (v > 0) or v == float("inf") for v in values):
        raise ConfigError(f"{option} {text!r}: every rate must be a positive number per second")
    return values


def level_specs(concurrency: str | None, rate: str | None) -> list[LevelSpec]:
    specs: list[LevelSpec] = []
    if concurrency is not None or rate is None:
        specs += [LevelSpec("closed", concurrency=c)
                  for c in _int_list(concurrency or DEFAULT_CONCURRENCY, "--concurrency")]
    if rate is not None:
        specs += [LevelSpec("open", rate=r) for r in _float_list(rate, "--rate")]
    return specs


def default_requests(spec: LevelSpec) -> int:
    if spec.mode == "closed":
        return max(8, 4 * (spec.concurrency or 1))
    return max(8, round(10 * (spec.rate or 1)))


def read_prompts(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--prompts {path}: cannot read it ({exc})") from None
    prompts = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--prompts {path}:{n}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or not obj["prompt"].strip():
                raise ConfigError(f"--prompts {path}:{n}: a JSON line needs a non-empty string 'prompt'")
            line = obj["prompt"]
        prompts.append(line)
    if not prompts:
        raise ConfigError(f"--prompts {path}: no prompt in the file")
    return prompts


def load_previous(path: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--compare {path}: cannot read a bench JSON from it ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != "bench" or not isinstance(doc.get("levels"), list):
        raise ConfigError(f"--compare {path}: not a streamconform bench JSON")
    return doc


def _resolve_profile(name: str, overrides: list[str]) -> tuple[str, str, list[str], str, str | None]:
    """(profile name, dialect, prompts, token method, model) from the profile, after the --set overrides."""
    from harness.run.profile import load_profile

    profile = load_profile(name, overrides)
    prompts = [p for p in profile.prompts if isinstance(p, str)]
    return (profile.name, profile.dialect or "prompt", prompts or list(DEFAULT_PROMPTS), profile.token_method,
            profile.get("request.model"))


def _progress_line(lvl: dict[str, Any]) -> str:
    ttft = lvl["ttft_ms"]
    p50 = "-" if ttft["p50"] is None else f"{ttft['p50']:.0f}"
    p99 = "-" if ttft["p99"] is None else f"{ttft['p99']:.0f}"
    return (f"  {lvl['label']:<12} {lvl['completed']}/{lvl['requests']} ok in {lvl['duration_s']:.1f} s, "
            f"{lvl['requests_per_s']:.2f} req/s, TTFT p50/p99 {p50}/{p99} ms")


async def _bench(url: str, specs: list[LevelSpec], args: argparse.Namespace, dialect: str, prompts: list[str],
                 slos: dict[str, float], headers: dict[str, str], console: Any) -> list[dict[str, Any]]:
    from harness.bench.load import LevelPlan, run_level
    from harness.bench.request import BenchClient

    # Closed loop: one connection per stream in flight. Open loop: arrivals do not wait for the server, so the
    # pool must not make them wait either (a request queued in the client would hide the server's queueing).
    peak = max((s.concurrency or 0) for s in specs)
    if any(s.mode == "open" for s in specs):
        peak = max(peak, OPEN_LOOP_CONNECTIONS)
    async with BenchClient(url, dialect=dialect, prompts=prompts, headers=headers, model=args.model,
                           timeout_s=args.request_timeout, token_method=args.token_method, max_tokens=args.max_tokens,
                           max_connections=max(peak, 10)) as client:
        levels = []
        for spec in specs:
            plan = LevelPlan(spec, requests=level_requests(spec, args), duration_s=args.duration,
                             seed=args.seed)
            levels.append(await run_level(plan, client.request, slos, finish=client.finish))
            console.print(_progress_line(levels[-1]), highlight=False)  # a sweep can take minutes: show each level
        return levels


def level_requests(spec: LevelSpec, args: argparse.Namespace) -> int | None:
    """The level's request count: --requests, else none with --duration alone, else the level's default."""
    if args.requests is not None:
        return args.requests
    return None if args.duration is not None else default_requests(spec)


def _client_settings(url: str, args: argparse.Namespace, dialect: str, prompts: list[str],
                     headers: dict[str, str]) -> dict[str, Any]:
    """What each worker (a Ray actor or a local process) builds its BenchClient from."""
    return {"url": url, "dialect": dialect, "prompts": prompts, "headers": headers, "model": args.model,
            "api_key": os.environ.get("STREAMCONFORM_API_KEY") or None, "timeout_s": args.request_timeout,
            "token_method": args.token_method, "max_tokens": args.max_tokens}


def _bench_in_processes(url: str, specs: list[LevelSpec], args: argparse.Namespace, dialect: str,
                        prompts: list[str], slos: dict[str, float], headers: dict[str, str],
                        console: Any) -> list[dict[str, Any]]:
    """The sweep on local worker processes (harness/distributed/process_workers.py), merged like Ray's."""
    from harness.distributed.bench_workers import worker_lines
    from harness.distributed.process_workers import run_levels_in_processes

    plans = [(spec, level_requests(spec, args), args.duration, args.seed) for spec in specs]

    def ready(located: list[dict[str, Any]]) -> None:
        console.print(f"{len(located)} bench worker process(es), one event loop each", highlight=False)

    def done(level: dict[str, Any]) -> None:
        console.print(_progress_line(level), highlight=False)
        for line in worker_lines(level):
            console.print(line, highlight=False)

    return run_levels_in_processes(args.processes, _client_settings(url, args, dialect, prompts, headers), plans,
                                   slos, on_level=done, on_ready=ready)


def _bench_on_ray(url: str, specs: list[LevelSpec], args: argparse.Namespace, dialect: str,
                  prompts: list[str], slos: dict[str, float], headers: dict[str, str],
                  console: Any) -> list[dict[str, Any]]:
    """The sweep on Ray actors (harness/distributed/bench_workers.py), merged into the same summaries."""
    from harness.distributed.bench_workers import run_levels_on_ray, worker_lines

    client = _client_settings(url, args, dialect, prompts, headers)
    plans = [(spec, level_requests(spec, args), args.duration, args.seed) for spec in specs]

    def ready(located: list[dict[str, Any]]) -> None:
        nodes = len({w["node"] for w in located})
        console.print(f"Ray: {len(located)} bench worker(s) on {nodes} node(s)", highlight=False)

    def done(level: dict[str, Any]) -> None:
        console.print(_progress_line(level), highlight=False)
        for line in worker_lines(level):
            console.print(line, highlight=False)

    return run_levels_on_ray(args.ray, args.workers, client, plans, slos, on_level=done, on_ready=ready)


async def resolve_auto_dialect(url: str, first: str, prompt: str, args: argparse.Namespace,
                               headers: dict[str, str]) -> tuple[str, str]:
    """--dialect auto, decided once before the levels the way run decides it (runner.run_target): one request in
    the profile's dialect; when that is refused with a 4xx, one in the other, which is used only if it is not
    refused. Returns the dialect and a line saying what was tried."""
    other = "openai" if first == "prompt" else "prompt"
    status = await _status_in(url, first, prompt, args, headers)
    if status is None or not 400 <= status < 500:
        return first, f"dialect auto: {first} {_answered(status)}: using {first}"
    second = await _status_in(url, other, prompt, args, headers)
    if second is not None and second < 400:
        return other, f"dialect auto: {first} was refused with {status}, {other} {_answered(second)}: using {other}"
    return first, (f"dialect auto: {first} was refused with {status} and {other} {_answered(second)}: "
                   f"using {first}")


async def _status_in(url: str, dialect: str, prompt: str, args: argparse.Namespace,
                     headers: dict[str, str]) -> int | None:
    """The HTTP status of one request in ``dialect`` (None: no answer), sent as the levels send theirs."""
    from harness.bench.request import BenchClient

    async with BenchClient(url, dialect=dialect, prompts=[prompt], headers=headers, model=args.model,
                           timeout_s=args.request_timeout, token_method=args.token_method,
                           max_tokens=args.max_tokens) as client:
        return client.finish(await client.request(0, 0.0))["status"]


def _answered(status: int | None) -> str:
    return "got no answer" if status is None else f"answered {status}"


def build_document(target: str, profile: str, dialect: str, token_method: str, slos: dict[str, float],
                   levels: list[dict[str, Any]], started_at: str, options: dict[str, Any],
                   previous: dict[str, Any] | None, previous_name: str | None,
                   keep_records: bool = True) -> dict[str, Any]:
    from harness import __version__

    if not keep_records:
        levels = [{k: v for k, v in lvl.items() if k != "records"} for lvl in levels]
    doc: dict[str, Any] = {
        "schema_version": BENCH_SCHEMA_VERSION,
        "kind": "bench",
        "harness_version": __version__,
        "target": target,
        "profile": profile,
        "dialect": dialect,
        "token_method": token_method,
        "started_at": started_at,
        "options": options,
        "slo": slos,
        "levels": levels,
        "comparison": None,
    }
    if previous is not None:
        doc["comparison"] = {"previous": previous_name or "previous run",
                             "previous_started_at": previous.get("started_at"),
                             "rows": compare_levels(levels, previous.get("levels", []))}
        doc["comparison"]["notes"] = comparison_notes(doc, previous)  # what the deltas cannot show
    return doc


def main(args: argparse.Namespace) -> int:
    from harness.bench.render import print_bench
    from harness.cli.console import make_console
    from harness.cli.options import (
        parse_headers,
        prepare_output,
        profile_overrides,
        require_fault,
        require_url,
        write_output,
    )

    specs = level_specs(args.concurrency, args.rate)
    slos = parse_slos(args.slo)
    headers = parse_headers(args.headers)
    if args.requests is not None and args.requests < 1:
        raise ConfigError("--requests must be at least 1")
    if args.duration is not None and not args.duration > 0:
        raise ConfigError("--duration must be a positive number of seconds")
    if not args.request_timeout > 0:
        raise ConfigError("--request-timeout must be positive")
    if args.fault and args.url:
        raise ConfigError("--fault applies to the reference server started when no URL is given")
    require_fault(args.fault)
    if args.url is not None:
        require_url(args.url)
    if args.workers is not None and (args.workers < 1 or not args.ray):
        raise ConfigError("--workers needs --ray (the actors run on a Ray cluster) and a count of at least 1")
    check_processes(args.processes, args.ray)
    from harness.distributed.ray_backend import check_ray_option

    args.ray = check_ray_option(args.ray)  # Ray missing: exit 2 with the install hint, before any work
    # Checked before the load runs (directories created, as run does): a benchmark must not be lost to a typo.
    prepare_output("--json", args.json_path)
    prepare_output("--html", args.html_path)
    previous = load_previous(args.compare) if args.compare else None
    # --token-method is --set token_method=... (last, so it wins): the profile then names the method.
    profile_name, dialect, prompts, profile_tokens, profile_model = _resolve_profile(args.profile,
                                                                                     profile_overrides(args))
    args.token_method = profile_tokens or "chars/4"
    args.model = args.model or profile_model  # as run sends it
    profile_dialect = dialect if dialect in ("prompt", "openai") else "prompt"
    dialect = args.dialect if args.dialect and args.dialect != "auto" else profile_dialect
    auto_note = None
    if args.prompts:
        prompts = read_prompts(args.prompts)

    console = make_console(stderr=args.json_path == "-")
    started_at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            from harness.bench.server import ReferenceServerProcess

            server = stack.enter_context(ReferenceServerProcess(["--fault", args.fault] if args.fault else []))
            url = server.endpoint
            console.print(f"no URL given: benchmarking the reference server at {url} (child process)",
                          highlight=False)
        if args.dialect == "auto":
            dialect, auto_note = asyncio.run(resolve_auto_dialect(url, profile_dialect, prompts[0], args, headers))
            console.print(auto_note, highlight=False)
        if args.ray:
            levels = _bench_on_ray(url, specs, args, dialect, prompts, slos, headers, console)
        elif args.processes:
            levels = _bench_in_processes(url, specs, args, dialect, prompts, slos, headers, console)
        else:
            levels = asyncio.run(_bench(url, specs, args, dialect, prompts, slos, headers, console))

    options = {"concurrency": [s.concurrency for s in specs if s.mode == "closed"],
               "rate": [s.rate for s in specs if s.mode == "open"],
               "requests": args.requests, "duration_s": args.duration, "timeout_s": args.request_timeout,
               "seed": args.seed, "prompts": len(prompts), "cpu_count": os.cpu_count(),
               "reference_server": args.url is None}  # (its port differs per run: not "another target")
    if auto_note:
        options["dialect_auto"] = auto_note
    if args.ray:
        options["ray"] = args.ray
        options["workers"] = max(len(lvl.get("workers") or []) for lvl in levels)
    if args.processes:
        options["processes"] = args.processes
    doc = build_document(url, profile_name, dialect, args.token_method, slos, levels, started_at, options,
                         previous, args.compare, keep_records=not args.no_records)
    if args.json_path == "-":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    problems = []
    if args.json_path and args.json_path != "-":
        problems.append(write_output("--json", args.json_path, json.dumps(doc, indent=2)))
    if args.html_path:
        from reports import render_bench

        problems.append(write_output("--html", args.html_path, render_bench(doc, previous)))
    print_bench(doc, console)  # the figures are shown even when a file could not be written
    if args.html_path and problems[-1] is None:
        console.print(f"HTML report: {args.html_path}", highlight=False)
    failed = [p for p in problems if p]
    if failed:
        raise ConfigError("; ".join(failed))
    # Exit 1 when a level got no successful request at all: the numbers then describe nothing.
    return 1 if any(lvl["completed"] == 0 for lvl in doc["levels"]) else 0


def write_html_report(path: str, doc: dict[str, Any], previous: dict[str, Any] | None) -> None:
    from reports import render_bench, write_html

    write_html(path, render_bench(doc, previous))
