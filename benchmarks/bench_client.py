"""Benchmark of the load generator itself: how much CPU `streamconform bench` spends per event, how many events
per second it sustains, and how accurate its TTFT stays at 1 and 256 concurrent streams — beside peer clients
measured in the same run against the same servers.

    python benchmarks/bench_client.py            # full run (a few minutes)
    python benchmarks/bench_client.py --quick    # a smaller sweep (well under a minute without guidellm)

Peers: guidellm's client when it is installed in a separate virtualenv (``--guidellm-venv``, default
``/tmp/guidellm-venv``; it runs offline with ``HF_HUB_OFFLINE=1`` and a tokenizer directory made locally), and
always a plain httpx + httpx-sse client (the smallest reasonable streaming client, the floor of client cost).

Method. The reference server runs in its own process, pinned to CPU 0 when the machine has two cores; each
client runs in its own process pinned to CPU 1, so "per core" means that one core. Client CPU is the user+system
time of the client's whole process tree (guidellm runs worker processes), sampled every 20 ms and read between the
wall-clock start and end of its load phase, so start-up work is not charged; divided by the content events it
received. Sustained events/s is content events received / wall time of the load phase (throughput phase,
against the reference server).

TTFT error (fidelity phase) is measured against the time the server really wrote the first content event, not
against a configured TTFT, so the server's own lateness is not charged to the client. The server is the
exact-timing server of ``fidelity.py`` (benchmarks/timed_server.py), in OpenAI chat-completion shape: it stamps
every content delta, just before writing it, with ``time.monotonic()`` and ``time.time()``. Each client reports
its TTFT relative to its own request start, as it always does; the script puts that on the server's clock:

    TTFT error = (request start + reported TTFT) - server's write time of the first content event

- streamconform: request start = the capture's ``clock_origin + t_request_sent`` (perf_counter, moved onto
  ``time.monotonic()`` with an offset measured in the client process; 0 on Linux, where both are CLOCK_MONOTONIC,
  one clock for every process on the machine), TTFT = the bench record's ``ttft_ms``.
- httpx-sse: its own ``time.monotonic()`` request start and first-content arrival.
- guidellm: only records wall-clock times (``request_start_time`` + ``time_to_first_token_ms``, ``time.time()``),
  so it is compared with the server's ``time.time()`` stamp, taken at the same instant as the monotonic one.
The request start cancels out: the error is how late the client timestamps the first content event's arrival
(loopback latency, its event loop's lag, its parsing before it looks at the clock). At 1 stream and 256 streams;
the targets (issue 16) are p99 <= 2 ms at 256 streams and <= 5 ms at 1,000 (``--fidelity-streams 1,256,1000``).
Loopback only.
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

from benchmarks.timed_server import (  # noqa: E402  (after the sys.path line)
    OPENAI_PATH,
    OPENAI_STAMP,
    OPENAI_STAMP_TEXT,
    Schedule,
    perf_to_monotonic,
    pin_to,
    timed_server,
)

PROMPT = "Explain how server-sent events deliver tokens from a language model to a browser."
SERVER_TTFT_MS = 200.0  # long enough that a late client is visible, short enough to keep runs quick
# Throughput phase: short gaps so the events come as fast as one server core can send them.
THROUGHPUT_SERVER = {"gap_ms": 10.0, "chars": 2000}  # ~50 content events per stream
# Fidelity phase: the exact-timing server (fidelity.py's schedule); TTFT error against its write stamps.
FIDELITY_SCHEDULE = Schedule(ttft_s=0.250, gap_s=0.020, events=12)
FIDELITY_TARGET_P99_MS = {256: 2.0, 1000: 5.0}  # issue 16 (issue 6 asked <= 10 ms at 256 streams)


def server_args(conf: dict[str, float]) -> list[str]:
    return ["--ttft-ms", str(SERVER_TTFT_MS), "--gap-ms", str(conf["gap_ms"]), "--chars", str(int(conf["chars"]))]


# --------------------------------------------------------------------------------------------------- workers
# Each worker runs in a child process, sends `requests` streams keeping `concurrency` in flight, and prints one
# JSON line: events received, wall time of the load phase, per-request TTFT (ms) and errors.


async def _worker_streamconform(url: str, concurrency: int, requests: int, stamped: bool) -> dict[str, Any]:
    from harness.bench.load import LevelPlan, run_level
    from harness.bench.request import BenchClient
    from harness.bench.stats import LevelSpec

    offset = perf_to_monotonic()  # the capture's perf_counter times -> the timed server's monotonic clock
    # request index -> (request start, server's write time of the first content, server's request read), monotonic
    starts: dict[int, tuple[float, float, float]] = {}

    async with BenchClient(url, dialect="openai", prompts=[PROMPT], timeout_s=120.0,
                           max_connections=max(concurrency, 10)) as client:

        def finish(item: dict[str, Any]) -> dict[str, Any]:
            # Runs after the level (the bench client defers parsing there), so reading the stamp costs no timing.
            cap = item.get("capture")
            if stamped and cap is not None and cap.clock_origin is not None:
                stamp = OPENAI_STAMP.search(b"".join(r.data for r in cap.reads))
                if stamp:  # the first stamp in the body is the first content event's
                    starts[item["index"]] = (cap.clock_origin + (cap.t_request_sent or 0.0) + offset,
                                             float(stamp.group(1)), float(stamp.group(3)))
            return client.finish(item)

        w0, t0 = time.time(), time.perf_counter()
        level = await run_level(LevelPlan(LevelSpec("closed", concurrency=concurrency), requests=requests),
                                client.request, {}, finish=finish)
        wall, w1 = time.perf_counter() - t0, time.time()
    recs = level["records"]
    # The record's TTFT is relative to the request start (t_request_sent): start + TTFT is the arrival on the
    # shared clock, minus the server's write time of that event.
    ttft_err = [(starts[r["index"]][0] + r["ttft_ms"] / 1000.0 - starts[r["index"]][1]) * 1000.0
                for r in recs if r["ttft_ms"] is not None and r["index"] in starts]
    transit = [(s[2] - s[0]) * 1000.0 for s in starts.values()]
    return {"events": sum(r["content_events"] for r in recs), "wall_s": wall, "window": [w0, w1],
            "ttft_ms": [r["ttft_ms"] for r in recs if r["ttft_ms"] is not None], "ttft_err_ms": ttft_err,
            "transit_ms": transit,
            "errors": sum(1 for r in recs if not r["ok"]),
            "loop_lag_p99_ms": level["overhead"]["loop_lag_ms"]["p99"]}


async def _worker_httpx_sse(url: str, concurrency: int, requests: int, stamped: bool) -> dict[str, Any]:
    """The peer: httpx + httpx-sse, the way a careful user would write a streaming load loop."""
    import httpx
    from httpx_sse import aconnect_sse

    body = {"model": "bench", "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    ttfts: list[float] = []
    ttft_err: list[float] = []
    transit: list[float] = []
    events = 0
    errors = 0
    next_i = 0
    limits = httpx.Limits(max_connections=max(concurrency, 10), max_keepalive_connections=max(concurrency, 10))
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:

        async def one() -> None:
            nonlocal events, errors
            t0 = time.monotonic()  # the clock the timed server stamps with
            first = None
            stamp = None
            try:
                async with aconnect_sse(client, "POST", url, json=body) as source:
                    async for sse in source.aiter_sse():
                        if sse.data == "[DONE]":
                            break
                        chunk = json.loads(sse.data)
                        choices = chunk.get("choices") or []
                        content = (choices[0].get("delta") or {}).get("content") if choices else None
                        if content:
                            events += 1
                            if first is None:
                                first = time.monotonic()
                                stamp = OPENAI_STAMP_TEXT.search(content) if stamped else None
            except (httpx.HTTPError, ValueError):
                errors += 1
            if first is not None:
                ttfts.append((first - t0) * 1000.0)
                if stamp:
                    ttft_err.append((t0 + ttfts[-1] / 1000.0 - float(stamp.group(1))) * 1000.0)
                    transit.append((float(stamp.group(3)) - t0) * 1000.0)

        async def worker() -> None:
            nonlocal next_i
            while next_i < requests:
                next_i += 1
                await one()

        w0, t0 = time.time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall, w1 = time.perf_counter() - t0, time.time()
    return {"events": events, "wall_s": wall, "window": [w0, w1], "ttft_ms": ttfts, "ttft_err_ms": ttft_err,
            "transit_ms": transit, "errors": errors, "loop_lag_p99_ms": None}


WORKERS = {"streamconform": _worker_streamconform, "httpx-sse": _worker_httpx_sse}


def worker_main(kind: str, url: str, concurrency: int, requests: int, stamped: bool) -> None:
    pin_to(1)
    out = asyncio.run(WORKERS[kind](url, concurrency, requests, stamped))
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


def run_python_worker(kind: str, url: str, concurrency: int, requests: int, timeout_s: float,
                      stamped: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", kind, "--url", url, "--concurrency", str(concurrency),
           "--requests", str(requests), *(["--stamped"] if stamped else [])]
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
    ttft_err, transit = [], []
    for r in ok:
        stamp = OPENAI_STAMP_TEXT.search(r.get("output") or "")
        if stamp and r.get("time_to_first_token_ms") is not None and r.get("request_start_time") is not None:
            # guidellm's clock is time.time(): compare with the wall stamp the server took with the monotonic one.
            arrival = r["request_start_time"] + r["time_to_first_token_ms"] / 1000.0
            ttft_err.append((arrival - float(stamp.group(2))) * 1000.0)
            transit.append((float(stamp.group(4)) - r["request_start_time"]) * 1000.0)
    return {"events": events, "wall_s": window[1] - window[0], "window": window, "ttft_err_ms": ttft_err,
            "transit_ms": transit,
            "ttft_ms": [r["time_to_first_token_ms"] for r in ok if r.get("time_to_first_token_ms") is not None],
            "errors": len(reqs.get("errored") or []) + len(reqs.get("incomplete") or []),
            "cpu_s": sampler.cpu_between(*window), "loop_lag_p99_ms": None}


def summarize(name: str, phase: str, level: int, res: dict[str, Any]) -> dict[str, Any]:
    from harness.measure.metrics import percentile as pct

    events = res["events"]
    cpu = max(res["cpu_s"], 1e-9)
    errs = res.get("ttft_err_ms") or []
    return {
        "client": name, "phase": phase, "concurrency": level, "events": events, "errors": res["errors"],
        "wall_s": res["wall_s"],
        "events_per_s": events / res["wall_s"] if res["wall_s"] > 0 else 0.0,
        "client_cpu_share": cpu / res["wall_s"] if res["wall_s"] > 0 else None,
        "cpu_ms_per_1k_events": cpu * 1000.0 / events * 1000.0 if events else None,
        "events_per_cpu_s": events / cpu if events else 0.0,
        "ttft_p50_ms": pct(res["ttft_ms"], 50), "ttft_p99_ms": pct(res["ttft_ms"], 99),
        # Fidelity phase only: client's arrival stamp of the first content event minus the server's write time.
        "ttft_err_samples": len(errs), "ttft_unstamped": len(res["ttft_ms"]) - len(errs),
        "ttft_err_p50_ms": pct(errs, 50), "ttft_err_p99_ms": pct(errs, 99),
        "ttft_err_min_ms": min(errs) if errs else None, "ttft_err_max_ms": max(errs) if errs else None,
        # Request start (as the client defines it) -> the server having read the request: not an error (it holds
        # the client's connection-pool wait and the loopback), but it is why the TTFTs differ between clients.
        "start_to_read_p50_ms": pct(res.get("transit_ms") or [], 50),
        "loop_lag_p99_ms": res.get("loop_lag_p99_ms"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--stamped", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", default=None, help="throughput levels, comma-separated (default 16,64,256)")
    ap.add_argument("--requests-per-stream", type=int, default=3,
                    help="requests per concurrent stream at each throughput level (default 3)")
    ap.add_argument("--requests", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--fidelity-streams", default="1,256",
                    help="concurrent streams of the TTFT-error runs, comma-separated (default 1,256)")
    ap.add_argument("--quick", action="store_true",
                    help="one request per stream, throughput at 256 streams only, 6 single-stream requests "
                         "(about 15 s; about 50 s with guidellm, whose start-up and report take most of it)")
    ap.add_argument("--phase", choices=("throughput", "fidelity", "both"), default="both",
                    help="run only one phase (default both)")
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
        worker_main(args.worker, args.url, int(args.concurrency), args.requests, args.stamped)
        return 0
    clock = time.get_clock_info("monotonic").implementation
    if "CLOCK_MONOTONIC" not in clock:
        print(f"time.monotonic is {clock}, not CLOCK_MONOTONIC: client and server stamps cannot be compared")
        return 2

    levels = [int(x) for x in (args.concurrency or ("256" if args.quick else "16,64,256")).split(",")]
    per_stream = 1 if args.quick else args.requests_per_stream
    # Single-stream runs are sequential (~0.5 s a request), so they get more requests than one per stream.
    fidelity_plan = [(c, c * per_stream if c > 1 else (6 if args.quick else 30))
                     for c in (int(x) for x in args.fidelity_streams.split(","))]
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
    elif not args.no_guidellm:
        print("guidellm: not installed in --guidellm-venv; the peer is httpx + httpx-sse only", file=sys.stderr)

    cpu_count = len(os.sched_getaffinity(0))
    print("load average before: {:.2f} {:.2f} {:.2f} (other work on the machine skews every figure)".format(*os.getloadavg()))
    print(f"niceness {os.nice(0)}; servers pinned to CPU 0, each client to CPU 1 ({cpu_count} CPUs); loopback only",
          flush=True)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    if args.phase in ("throughput", "both"):
        conf = THROUGHPUT_SERVER
        print(f"throughput: reference server, TTFT {SERVER_TTFT_MS:g} ms, gap {conf['gap_ms']:g} ms, "
              f"{conf['chars']:g} chars per stream", flush=True)
        rows += run_phase("throughput", conf, [(c, c * per_stream) for c in levels], clients, args.guidellm_venv,
                          tokenizer_dir)
    if args.phase in ("fidelity", "both"):
        sched = FIDELITY_SCHEDULE
        print(f"fidelity: exact-timing server, TTFT {sched.ttft_s * 1000:g} ms, gap {sched.gap_s * 1000:g} ms, "
              f"{sched.events} content events per stream, each stamped with its write time", flush=True)
        rows += run_fidelity(fidelity_plan, clients, args.guidellm_venv, tokenizer_dir)

    if args.phase != "fidelity":
        print_table([r for r in rows if r["phase"] == "throughput"])
    if args.phase != "throughput":
        print_fidelity([r for r in rows if r["phase"] == "fidelity"])
    print("load average after: {:.2f} {:.2f} {:.2f}; {:.0f} s in all".format(*os.getloadavg(),
                                                                               time.monotonic() - started))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))
    return 0


def measure(client: str, url: str, base_url: str, concurrency: int, requests: int, guidellm_venv: str,
            tokenizer_dir: str | None, stamped: bool) -> dict[str, Any] | None:
    """One client's run at one level, in its own process; None (reported) when it failed."""
    try:
        if client == "guidellm":
            return run_guidellm(guidellm_venv, tokenizer_dir, base_url, concurrency, requests, 600)
        return run_python_worker(client, url, concurrency, requests, 600, stamped=stamped)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"{client} c={concurrency}: failed ({exc})", file=sys.stderr)
        return None


def run_phase(phase: str, conf: dict[str, float], plan: list[tuple[int, int]], clients: list[str],
              guidellm_venv: str, tokenizer_dir: str | None) -> list[dict[str, Any]]:
    from harness.bench.server import ReferenceServerProcess

    rows = []
    with ReferenceServerProcess(server_args(conf)) as server:
        if len(os.sched_getaffinity(0)) >= 2:
            os.sched_setaffinity(server.proc.pid, {0})
        for client in clients:
            for c, n in plan:
                res = measure(client, server.endpoint, server.base_url, c, n, guidellm_venv, tokenizer_dir, False)
                if res is not None:
                    rows.append(summarize(client, phase, c, res))
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def run_fidelity(plan: list[tuple[int, int]], clients: list[str], guidellm_venv: str,
                 tokenizer_dir: str | None) -> list[dict[str, Any]]:
    """Every client at every level against the exact-timing server; TTFT error against its write stamps."""
    rows = []
    with timed_server(FIDELITY_SCHEDULE, cpu=0) as base_url:
        for c, n in plan:
            for client in clients:
                res = measure(client, base_url + OPENAI_PATH, base_url, c, n, guidellm_venv, tokenizer_dir, True)
                if res is not None:
                    rows.append(summarize(client, "fidelity", c, res))
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def _fmt(v: Any, spec: str = "{:.1f}") -> str:
    return "-" if v is None else spec.format(v)


def print_table(rows: list[dict[str, Any]]) -> None:
    f = _fmt
    print()
    print(f"{'phase':<11}{'client':<14}{'streams':>8}{'events/s':>10}{'client CPU':>11}{'CPU ms/1k ev':>13}"
          f"{'ev/CPU-s':>10}{'TTFT p50':>9}{'TTFT p99':>9}{'lag p99':>9}{'errors':>7}")
    for r in rows:
        print(f"{r['phase']:<11}{r['client']:<14}{r['concurrency']:>8}{f(r['events_per_s'], '{:.0f}'):>10}"
              f"{f((r['client_cpu_share'] or 0) * 100, '{:.0f} %'):>11}{f(r['cpu_ms_per_1k_events']):>13}"
              f"{f(r['events_per_cpu_s'], '{:.0f}'):>10}{f(r['ttft_p50_ms']):>9}{f(r['ttft_p99_ms']):>9}"
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
    best = max(ours, key=lambda r: r["events_per_s"], default=None)
    if best is not None:
        print(f"highest sustained events/s (streamconform): {best['events_per_s']:.0f} at {best['concurrency']} "
              f"streams, client using {(best['client_cpu_share'] or 0) * 100:.0f} % of its core")


def print_fidelity(rows: list[dict[str, Any]]) -> None:
    f = _fmt
    print()
    print("TTFT error = client's request start + its reported TTFT - server's write time of the first content event;"
          "\nstart->read = client's request start -> server read the request (pool wait + loopback: not an error)")
    print(f"{'client':<14}{'streams':>8}{'err p50 ms':>11}{'err p99 ms':>11}{'err min':>9}{'err max':>9}"
          f"{'TTFT p50':>9}{'start->read p50':>16}{'samples':>8}{'unstamped':>10}{'errors':>7}")
    for r in rows:
        print(f"{r['client']:<14}{r['concurrency']:>8}{f(r['ttft_err_p50_ms'], '{:.2f}'):>11}"
              f"{f(r['ttft_err_p99_ms'], '{:.2f}'):>11}{f(r['ttft_err_min_ms'], '{:.2f}'):>9}"
              f"{f(r['ttft_err_max_ms'], '{:.1f}'):>9}{f(r['ttft_p50_ms']):>9}"
              f"{f(r['start_to_read_p50_ms'], '{:.2f}'):>16}{r['ttft_err_samples']:>8}"
              f"{r['ttft_unstamped']:>10}{r['errors']:>7}")
    print()
    by = {(r["client"], r["concurrency"]): r for r in rows}
    for r in rows:
        if r["client"] != "streamconform" or r["ttft_err_p99_ms"] is None:
            continue
        for peer in ("guidellm", "httpx-sse"):
            p = by.get((peer, r["concurrency"]))
            if p and p["ttft_err_p99_ms"]:
                print(f"{r['concurrency']} streams: TTFT error p99 streamconform {r['ttft_err_p99_ms']:.2f} ms / "
                      f"{peer} {p['ttft_err_p99_ms']:.2f} ms = {r['ttft_err_p99_ms'] / p['ttft_err_p99_ms']:.3f}x "
                      f"(p50 {r['ttft_err_p50_ms']:.2f} / {p['ttft_err_p50_ms']:.2f} ms; lower is better)")
    for r in rows:
        target = FIDELITY_TARGET_P99_MS.get(r["concurrency"]) if r.get("phase") == "fidelity" else None
        if target is not None:
            met = r["ttft_err_p99_ms"] is not None and r["ttft_err_p99_ms"] <= target
            print(f"TTFT error p99 <= {target:g} ms at {r['concurrency']} streams, {r['client']}: "
                  f"{f(r['ttft_err_p99_ms'], '{:.2f}')} ms: {'met' if met else 'NOT met'}")
    if any((r["ttft_err_min_ms"] or 0.0) < -0.5 for r in rows):
        print("warning: an arrival before its write stamp (< -0.5 ms): the client's and server's clocks disagree")


if __name__ == "__main__":
    sys.exit(main())
