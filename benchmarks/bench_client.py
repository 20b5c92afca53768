"""Benchmark of the load generator itself: how much CPU `streamconform bench` spends per event, how many events
per second it sustains, and how accurate its TTFT stays at 256 concurrent streams — beside a peer client measured
in the same run against the same reference server.

    python benchmarks/bench_client.py            # full run (a few minutes)
    python benchmarks/bench_client.py --quick    # a smaller sweep (about a minute)

Peers: guidellm's client when it is installed in a separate virtualenv (``--guidellm-venv``, default
``/tmp/guidellm-venv``; it runs offline with ``HF_HUB_OFFLINE=1`` and a tokenizer directory made locally), and
always a plain httpx + httpx-sse client (the smallest reasonable streaming client, the floor of client cost).

Method. The reference server runs in its own process, pinned to CPU 0 when the machine has two cores; each
client runs in its own process pinned to CPU 1, so "per core" means that one core. Client CPU is the client
process tree's user+system time minus the same client's start-up cost (a run of one request), divided by the
SSE events it received. Sustained events/s is events received / wall time of the load phase. TTFT error is the
measured TTFT minus the server's configured TTFT; it also contains the server's own scheduling delay, so it is an
upper bound of the client's error, and every client is measured against the same server. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = "Explain how server-sent events deliver tokens from a language model to a browser."
SERVER_TTFT_MS = 200.0  # long enough that a late client is visible, short enough to keep runs quick
SERVER_GAP_MS = 10.0
SERVER_CHARS = 2000  # ~50 content events of ~40 chars per stream


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def pin_to(cpu: int) -> None:
    """Pin this process to one CPU when there are at least two (so client and server do not share a core)."""
    try:
        if len(os.sched_getaffinity(0)) >= 2:
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


# --------------------------------------------------------------------------------------------------- workers
# Each worker runs in a child process, sends `requests` streams keeping `concurrency` in flight, and prints one
# JSON line: events received, wall time of the load phase, per-request TTFT (ms) and errors.


async def _worker_streamconform(url: str, concurrency: int, requests: int) -> dict[str, Any]:
    from harness.bench_load import LevelPlan, run_level
    from harness.bench_request import BenchClient
    from harness.bench_stats import LevelSpec

    async with BenchClient(url, dialect="openai", prompts=[PROMPT], timeout_s=120.0,
                           max_connections=max(concurrency, 10)) as client:
        t0 = time.perf_counter()
        level = await run_level(LevelPlan(LevelSpec("closed", concurrency=concurrency), requests=requests),
                                client.request, {})
        wall = time.perf_counter() - t0
    recs = level["records"]
    return {"events": sum(r["content_events"] for r in recs), "wall_s": wall,
            "ttft_ms": [r["ttft_ms"] for r in recs if r["ttft_ms"] is not None],
            "errors": sum(1 for r in recs if not r["ok"]),
            "loop_lag_p99_ms": level["overhead"]["loop_lag_ms"]["p99"]}


async def _worker_httpx_sse(url: str, concurrency: int, requests: int) -> dict[str, Any]:
    """The peer: httpx + httpx-sse, the way a careful user would write a streaming load loop."""
    import httpx
    from httpx_sse import aconnect_sse

    body = {"model": "bench", "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    ttfts: list[float] = []
    events = 0
    errors = 0
    next_i = 0
    limits = httpx.Limits(max_connections=max(concurrency, 10), max_keepalive_connections=max(concurrency, 10))
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:

        async def one() -> None:
            nonlocal events, errors
            t0 = time.perf_counter()
            first = None
            try:
                async with aconnect_sse(client, "POST", url, json=body) as source:
                    async for sse in source.aiter_sse():
                        if sse.data == "[DONE]":
                            break
                        chunk = json.loads(sse.data)
                        choices = chunk.get("choices") or []
                        if choices and (choices[0].get("delta") or {}).get("content"):
                            events += 1
                            if first is None:
                                first = time.perf_counter()
            except (httpx.HTTPError, ValueError):
                errors += 1
            if first is not None:
                ttfts.append((first - t0) * 1000.0)

        async def worker() -> None:
            nonlocal next_i
            while next_i < requests:
                next_i += 1
                await one()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"events": events, "wall_s": wall, "ttft_ms": ttfts, "errors": errors, "loop_lag_p99_ms": None}


WORKERS = {"streamconform": _worker_streamconform, "httpx-sse": _worker_httpx_sse}


def worker_main(kind: str, url: str, concurrency: int, requests: int) -> None:
    pin_to(1)
    out = asyncio.run(WORKERS[kind](url, concurrency, requests))
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------------- drivers


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_python_worker(kind: str, url: str, concurrency: int, requests: int, timeout_s: float) -> dict[str, Any]:
    cpu0 = _children_cpu()
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--url", url, "--concurrency",
                           str(concurrency), "--requests", str(requests)],
                          capture_output=True, text=True, timeout=timeout_s, cwd=str(ROOT))
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["cpu_s"] = cpu
    return out


def make_tokenizer_dir(venv_python: str, directory: str) -> None:
    """A small byte-level BPE tokenizer made here, so guidellm never needs the Hugging Face hub."""
    code = r"""
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
corpus = ["streaming servers send events to clients over http, one token after another. " * 20,
          "the quick brown fox jumps over the lazy dog while the reference server keeps talking. " * 20]
tok = Tokenizer(models.BPE(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=800, special_tokens=["<unk>", "<s>", "</s>"],
                                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                        eos_token="</s>").save_pretrained(sys.argv[1])
"""
    subprocess.run([venv_python, "-c", code, directory], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})


def run_guidellm(venv: str, tokenizer_dir: str, base_url: str, concurrency: int, requests: int,
                 timeout_s: float) -> dict[str, Any]:
    out_dir = tempfile.mkdtemp(prefix="sc-guidellm-")
    out_path = os.path.join(out_dir, "out.json")
    cmd = ["taskset", "-c", "1"] if len(os.sched_getaffinity(0)) >= 2 else []
    cmd += [os.path.join(venv, "bin", "guidellm"), "run",
            "--backend", f"kind=openai_http,target={base_url}",
            "--profile", f"kind=concurrent,streams={concurrency}",
            "--constraint", f"kind=max_requests,count={requests}",
            "--data", "kind=synthetic_text,prompt_tokens=32,output_tokens=512",
            "--tokenizer", f"kind=huggingface_auto,model={tokenizer_dir}",
            "--output", f"kind=json,path={out_path}", "--disable-console"]
    cpu0 = _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0 or not os.path.exists(out_path):
        raise RuntimeError(f"guidellm failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")
    doc = json.loads(Path(out_path).read_text())
    bench = doc["benchmarks"][0]
    reqs = bench["requests"]
    ok = reqs.get("successful") or []
    starts = [r["request_start_time"] for r in ok]
    ends = [r["request_end_time"] for r in ok]
    # guidellm's "token iterations" are the streamed events that carried output (role/usage/[DONE] excluded).
    events = sum(r["info"]["timings"].get("token_iterations") or 0 for r in ok)
    return {"events": events, "wall_s": (max(ends) - min(starts)) if ok else 0.0,
            "ttft_ms": [r["time_to_first_token_ms"] for r in ok if r.get("time_to_first_token_ms") is not None],
            "errors": len(reqs.get("errored") or []) + len(reqs.get("incomplete") or []), "cpu_s": cpu,
            "loop_lag_p99_ms": None}


def summarize(name: str, level: int, res: dict[str, Any], startup_cpu: float) -> dict[str, Any]:
    events = res["events"]
    cpu = max(res["cpu_s"] - startup_cpu, 1e-9)
    errs = [t - SERVER_TTFT_MS for t in res["ttft_ms"]]
    return {
        "client": name, "concurrency": level, "events": events, "errors": res["errors"],
        "events_per_s": events / res["wall_s"] if res["wall_s"] > 0 else 0.0,
        "cpu_ms_per_1k_events": cpu * 1000.0 / events * 1000.0 if events else None,
        "events_per_cpu_s": events / cpu if events else 0.0,
        "ttft_p50_ms": pct(res["ttft_ms"], 50), "ttft_p99_ms": pct(res["ttft_ms"], 99),
        "ttft_err_p99_ms": pct(errs, 99), "loop_lag_p99_ms": res.get("loop_lag_p99_ms"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", default=None, help="levels, comma-separated (default 16,64,256)")
    ap.add_argument("--requests-per-stream", type=int, default=3,
                    help="requests per concurrent stream at each level (default 3)")
    ap.add_argument("--requests", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="levels 16,256 with 2 requests per stream")
    ap.add_argument("--guidellm-venv", default=os.environ.get("GUIDELLM_VENV", "/tmp/guidellm-venv"),
                    help="virtualenv holding guidellm (skipped when absent)")
    ap.add_argument("--no-guidellm", action="store_true", help="do not try guidellm")
    ap.add_argument("--json", dest="json_path", default=None, help="also write the figures as JSON")
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker, args.url, int(args.concurrency), args.requests)
        return 0

    from harness.bench_server import ReferenceServerProcess

    levels = [int(x) for x in (args.concurrency or ("16,256" if args.quick else "16,64,256")).split(",")]
    per_stream = 2 if args.quick else args.requests_per_stream
    clients: list[str] = ["streamconform", "httpx-sse"]
    guidellm_bin = os.path.join(args.guidellm_venv, "bin", "guidellm")
    tokenizer_dir = None
    if not args.no_guidellm and os.path.exists(guidellm_bin):
        tokenizer_dir = tempfile.mkdtemp(prefix="sc-tokenizer-")
        try:
            make_tokenizer_dir(os.path.join(args.guidellm_venv, "bin", "python"), tokenizer_dir)
            clients.append("guidellm")
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"guidellm: cannot make a local tokenizer ({exc}); measured without it", file=sys.stderr)
    else:
        print("guidellm: not installed in --guidellm-venv; the peer is httpx + httpx-sse only", file=sys.stderr)

    server_args = ["--ttft-ms", str(SERVER_TTFT_MS), "--gap-ms", str(SERVER_GAP_MS),
                   "--chars", str(SERVER_CHARS)]
    rows: list[dict[str, Any]] = []
    cpu_count = len(os.sched_getaffinity(0))
    print(f"reference server pinned to CPU 0, clients to CPU 1 ({cpu_count} CPUs); TTFT {SERVER_TTFT_MS:g} ms, "
          f"gap {SERVER_GAP_MS:g} ms, {SERVER_CHARS} chars per stream; loopback only", flush=True)
    with ReferenceServerProcess(server_args) as server:
        if cpu_count >= 2:
            os.sched_setaffinity(server.proc.pid, {0})
        for client in clients:
            def run(c: int, n: int, client: str = client) -> dict[str, Any]:
                if client == "guidellm":
                    return run_guidellm(args.guidellm_venv, tokenizer_dir, server.base_url, c, n, 600)
                return run_python_worker(client, server.endpoint, c, n, 600)

            try:
                startup = run(1, 1)["cpu_s"]  # start-up cost: imports, event loop, first connection
            except (RuntimeError, subprocess.SubprocessError) as exc:
                print(f"{client}: skipped ({exc})", file=sys.stderr)
                continue
            for c in levels:
                try:
                    res = run(c, c * per_stream)
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    print(f"{client} c={c}: failed ({exc})", file=sys.stderr)
                    continue
                row = summarize(client, c, res, startup)
                rows.append(row)
                print(json.dumps(row), flush=True)

    print_table(rows)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    def f(v: Any, spec: str = "{:.1f}") -> str:
        return "-" if v is None else spec.format(v)

    print()
    print(f"{'client':<14}{'streams':>8}{'events/s':>10}{'CPU ms/1k ev':>14}{'ev/CPU-s':>10}"
          f"{'TTFT p50':>10}{'TTFT p99':>10}{'TTFT err p99':>14}{'errors':>8}")
    for r in rows:
        print(f"{r['client']:<14}{r['concurrency']:>8}{f(r['events_per_s'], '{:.0f}'):>10}"
              f"{f(r['cpu_ms_per_1k_events']):>14}{f(r['events_per_cpu_s'], '{:.0f}'):>10}"
              f"{f(r['ttft_p50_ms']):>10}{f(r['ttft_p99_ms']):>10}{f(r['ttft_err_p99_ms']):>14}{r['errors']:>8}")
    ours = [r for r in rows if r["client"] == "streamconform"]
    for peer in ("guidellm", "httpx-sse"):
        theirs = {r["concurrency"]: r for r in rows if r["client"] == peer}
        for r in ours:
            p = theirs.get(r["concurrency"])
            if p and p["events_per_cpu_s"]:
                print(f"streamconform / {peer} at {r['concurrency']} streams: "
                      f"{r['events_per_cpu_s'] / p['events_per_cpu_s']:.2f}x events per client CPU-second, "
                      f"{r['events_per_s'] / max(p['events_per_s'], 1e-9):.2f}x sustained events/s")
    best = max((r["events_per_s"] for r in ours), default=None)
    if best is not None:
        print(f"highest sustained events/s (streamconform): {best:.0f}")
    at256 = next((r for r in ours if r["concurrency"] == 256), None)
    if at256:
        print(f"TTFT error p99 at 256 streams (streamconform, upper bound incl. server scheduling): "
              f"{f(at256['ttft_err_p99_ms'])} ms (target <= 10 ms)")


if __name__ == "__main__":
    sys.exit(main())
