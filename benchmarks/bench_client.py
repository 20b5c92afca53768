"""Benchmark of the load generator itself: how much CPU `streamconform bench` spends per event, how many events
per second it sustains, and how accurate its TTFT stays at 256 concurrent streams — beside a peer client measured
in the same run against the same reference server.

    python benchmarks/bench_client.py            # full run (a few minutes)
    python benchmarks/bench_client.py --quick    # a smaller sweep (about a minute)

Peers: guidellm's client when it is installed in a separate virtualenv (``--guidellm-venv``, default
``/tmp/guidellm-venv``; it runs offline with ``HF_HUB_OFFLINE=1`` and a tokenizer directory made locally), and
always a plain httpx + httpx-sse client (the smallest reasonable streaming client, the floor of client cost).

Method. The reference server runs in its own process, pinned to CPU 0 when the machine has two cores; each
client runs in its own process pinned to CPU 1, so "per core" means that one core. Client CPU is the user+system
time of the client's whole process tree (guidellm runs worker processes), sampled every 20 ms and read between the
wall-clock start and end of its load phase, so start-up work is not charged; divided by the content events it
received. Sustained events/s is content events received / wall time of the load phase. TTFT error is the
measured TTFT minus the server's configured TTFT; it also contains the server's own scheduling delay, so it is an
upper bound of the client's error, and every client is measured against the same server. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
# Throughput phase: short gaps so the events come as fast as one server core can send them.
THROUGHPUT_SERVER = {"gap_ms": 10.0, "chars": 2000}  # ~50 content events per stream
# Fidelity phase: 256 streams at a gap the server core keeps up with, so TTFT error is mostly the client's.
FIDELITY_SERVER = {"gap_ms": 100.0, "chars": 800}  # ~20 content events per stream
FIDELITY_STREAMS = 256


def server_args(conf: dict[str, float]) -> list[str]:
    return ["--ttft-ms", str(SERVER_TTFT_MS), "--gap-ms", str(conf["gap_ms"]), "--chars", str(int(conf["chars"]))]


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
        w0, t0 = time.time(), time.perf_counter()
        level = await run_level(LevelPlan(LevelSpec("closed", concurrency=concurrency), requests=requests),
                                client.request, {}, finish=client.finish)
        wall, w1 = time.perf_counter() - t0, time.time()
    recs = level["records"]
    return {"events": sum(r["content_events"] for r in recs), "wall_s": wall, "window": [w0, w1],
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

        w0, t0 = time.time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, w1 = time.perf_counter() - t0, time.time()
    return {"events": events, "wall_s": wall, "window": [w0, w1], "ttft_ms": ttfts, "errors": errors,
            "loop_lag_p99_ms": None}


WORKERS = {"streamconform": _worker_streamconform, "httpx-sse": _worker_httpx_sse}


def worker_main(kind: str, url: str, concurrency: int, requests: int) -> None:
    pin_to(1)
    out = asyncio.run(WORKERS[kind](url, concurrency, requests))
    print(json.dumps(out))


# --------------------------------------------------------------------------------------------------- drivers


class CpuSampler:
    """Samples the CPU time (user + system) of a process and all its descendants every few milliseconds.

    The CPU a client spent *during its load phase* is then read off between two wall-clock instants the client
    reports, so start-up work (imports, tokenizer loading, data generation) is never charged to the load.
    """

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._seen: dict[int, float] = {}  # pid -> last CPU seen, so a child that exits keeps its share

    def sample(self) -> None:
        import psutil

        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in procs:
            try:
                t = proc.cpu_times()
                self._seen[proc.pid] = t.user + t.system
            except psutil.Error:
                pass
        self.samples.append((time.time(), sum(self._seen.values())))

    def cpu_between(self, w0: float, w1: float) -> float:
        def at(w: float) -> float:
            prev = self.samples[0]
            for cur in self.samples:
                if cur[0] >= w:
                    if cur[0] == prev[0]:
                        return cur[1]
                    return prev[1] + (cur[1] - prev[1]) * (w - prev[0]) / (cur[0] - prev[0])
                prev = cur
            return self.samples[-1][1]

        return max(at(w1) - at(w0), 0.0) if self.samples else 0.0


def run_sampled(cmd: list[str], timeout_s: float, env: dict[str, str] | None = None,
                cwd: str | None = None) -> tuple[subprocess.CompletedProcess, CpuSampler]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        sampler = CpuSampler(proc.pid)
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None:
            sampler.sample()
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{cmd[0]} did not finish within {timeout_s:g} s")
            time.sleep(sampler.interval_s)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode("utf-8", "replace"),
                                           err.read().decode("utf-8", "replace"))
    return done, sampler


def run_python_worker(kind: str, url: str, concurrency: int, requests: int, timeout_s: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", kind, "--url", url, "--concurrency", str(concurrency),
           "--requests", str(requests)]
    proc, sampler = run_sampled(cmd, timeout_s, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["cpu_s"] = sampler.cpu_between(*out["window"])
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
    proc, sampler = run_sampled(cmd, timeout_s, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                     "TRANSFORMERS_OFFLINE": "1"})
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
    window = [min(starts), max(ends)] if ok else [0.0, 0.0]  # guidellm's timestamps are time.time()
    return {"events": events, "wall_s": window[1] - window[0], "window": window,
            "ttft_ms": [r["time_to_first_token_ms"] for r in ok if r.get("time_to_first_token_ms") is not None],
            "errors": len(reqs.get("errored") or []) + len(reqs.get("incomplete") or []),
            "cpu_s": sampler.cpu_between(*window), "loop_lag_p99_ms": None}


def summarize(name: str, phase: str, level: int, res: dict[str, Any]) -> dict[str, Any]:
    from harness.metrics import percentile as pct

    events = res["events"]
    cpu = max(res["cpu_s"], 1e-9)
    errs = [t - SERVER_TTFT_MS for t in res["ttft_ms"]]
    return {
        "client": name, "phase": phase, "concurrency": level, "events": events, "errors": res["errors"],
        "wall_s": res["wall_s"],
        "events_per_s": events / res["wall_s"] if res["wall_s"] > 0 else 0.0,
        "client_cpu_share": cpu / res["wall_s"] if res["wall_s"] > 0 else None,
        "cpu_ms_per_1k_events": cpu * 1000.0 / events * 1000.0 if events else None,
        "events_per_cpu_s": events / cpu if events else 0.0,
        "ttft_p50_ms": pct(res["ttft_ms"], 50), "ttft_p99_ms": pct(res["ttft_ms"], 99),
        "ttft_err_p50_ms": pct(errs, 50), "ttft_err_p99_ms": pct(errs, 99),
        "loop_lag_p99_ms": res.get("loop_lag_p99_ms"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", default=None, help="throughput levels, comma-separated (default 16,64,256)")
    ap.add_argument("--requests-per-stream", type=int, default=3,
                    help="requests per concurrent stream at each level (default 3)")
    ap.add_argument("--requests", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="levels 16,256 with 2 requests per stream")
    ap.add_argument("--guidellm-venv", default=os.environ.get("GUIDELLM_VENV", "/tmp/guidellm-venv"),
                    help="virtualenv holding guidellm (skipped when absent)")
    ap.add_argument("--no-guidellm", action="store_true", help="do not try guidellm")
    ap.add_argument("--json", dest="json_path", default=None, help="also write the figures as JSON")
    ap.add_argument("--nice", type=int, default=0, metavar="N",
                    help="run server and clients at this niceness (negative needs root): on a machine shared with "
                         "other work, it keeps the scheduler's delays out of the timings")
    args = ap.parse_args()
    if args.nice:
        try:
            os.nice(args.nice)  # inherited by the server and every client started from here
        except OSError as exc:
            print(f"--nice {args.nice}: not permitted ({exc}); running at the normal priority", file=sys.stderr)
    if args.worker:
        worker_main(args.worker, args.url, int(args.concurrency), args.requests)
        return 0

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

    cpu_count = len(os.sched_getaffinity(0))
    print("load average before: {:.2f} {:.2f} {:.2f} (other work on the machine skews every figure)".format(*os.getloadavg()))
    print(f"niceness {os.nice(0)}; reference server pinned to CPU 0, each client to CPU 1 ({cpu_count} CPUs); "
          f"server TTFT {SERVER_TTFT_MS:g} ms; loopback only", flush=True)
    rows: list[dict[str, Any]] = []
    phases = [("throughput", THROUGHPUT_SERVER, [(c, c * per_stream) for c in levels]),
              ("fidelity", FIDELITY_SERVER, [(FIDELITY_STREAMS, FIDELITY_STREAMS * per_stream)])]
    for phase, conf, plan in phases:
        print(f"{phase}: server gap {conf['gap_ms']:g} ms, {conf['chars']:g} chars per stream", flush=True)
        rows += run_phase(phase, conf, plan, clients, args.guidellm_venv, tokenizer_dir)

    print_table(rows)
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))
    return 0


def run_phase(phase: str, conf: dict[str, float], plan: list[tuple[int, int]], clients: list[str],
              guidellm_venv: str, tokenizer_dir: str | None) -> list[dict[str, Any]]:
    from harness.bench_server import ReferenceServerProcess

    rows = []
    with ReferenceServerProcess(server_args(conf)) as server:
        if len(os.sched_getaffinity(0)) >= 2:
            os.sched_setaffinity(server.proc.pid, {0})
        for client in clients:
            def run(c: int, n: int, client: str = client) -> dict[str, Any]:
                if client == "guidellm":
                    return run_guidellm(guidellm_venv, tokenizer_dir, server.base_url, c, n, 600)
                return run_python_worker(client, server.endpoint, c, n, 600)

            for c, n in plan:
                try:
                    res = run(c, n)
                except (RuntimeError, subprocess.SubprocessError) as exc:
                    print(f"{client} c={c}: failed ({exc})", file=sys.stderr)
                    continue
                row = summarize(client, phase, c, res)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    def f(v: Any, spec: str = "{:.1f}") -> str:
        return "-" if v is None else spec.format(v)

    print()
    print(f"{'phase':<11}{'client':<14}{'streams':>8}{'events/s':>10}{'client CPU':>11}{'CPU ms/1k ev':>13}"
          f"{'ev/CPU-s':>10}{'TTFT p50':>9}{'TTFT err p99':>13}{'lag p99':>9}{'errors':>7}")
    for r in rows:
        print(f"{r['phase']:<11}{r['client']:<14}{r['concurrency']:>8}{f(r['events_per_s'], '{:.0f}'):>10}"
              f"{f((r['client_cpu_share'] or 0) * 100, '{:.0f} %'):>11}{f(r['cpu_ms_per_1k_events']):>13}"
              f"{f(r['events_per_cpu_s'], '{:.0f}'):>10}{f(r['ttft_p50_ms']):>9}{f(r['ttft_err_p99_ms']):>13}"
              f"{f(r['loop_lag_p99_ms']):>9}{r['errors']:>7}")
    print()
    ours = [r for r in rows if r["client"] == "streamconform"]
    for peer in ("guidellm", "httpx-sse"):
        theirs = {(r["phase"], r["concurrency"]): r for r in rows if r["client"] == peer}
        for r in ours:
            p = theirs.get((r["phase"], r["concurrency"]))
            if p and p["events_per_cpu_s"]:
                print(f"{r['phase']} {r['concurrency']} streams: streamconform / {peer} = "
                      f"{r['events_per_cpu_s'] / p['events_per_cpu_s']:.2f}x events per client CPU-second, "
                      f"{r['events_per_s'] / max(p['events_per_s'], 1e-9):.2f}x sustained events/s")
    best = max((r for r in ours if r["phase"] == "throughput"), key=lambda r: r["events_per_s"], default=None)
    if best is not None:
        print(f"highest sustained events/s (streamconform): {best['events_per_s']:.0f} at {best['concurrency']} "
              f"streams, client using {(best['client_cpu_share'] or 0) * 100:.0f} % of its core")
    for r in rows:
        if r["phase"] == "fidelity":
            print(f"TTFT error p99 at {r['concurrency']} streams, {r['client']}: {f(r['ttft_err_p99_ms'])} ms "
                  "(measured - configured TTFT: an upper bound that includes the server's own delay)")


if __name__ == "__main__":
    sys.exit(main())
