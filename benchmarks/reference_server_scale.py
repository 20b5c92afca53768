"""How many paced streams the reference server holds, vs a thread-per-stream Flask server (the seed's design).

Both servers run as separate processes on loopback and stream the same kind of chunk every `--gap-ms` (20 ms).
For each load level the client opens N long streams, waits until all are flowing, then measures a window:
  - emission lateness p50/p99: how long after its scheduled time each event was written, recorded inside the
    server with the same 0.1 ms histogram for both designs (GET /debug/emission);
  - events/s actually received by the client, and how many of the N streams delivered events in the window;
  - memory per stream: server RSS growth over its idle RSS, divided by N.
A level "holds" when every stream delivered events and p99 lateness <= --p99-ms, in one of `--tries` tries (2: on
a shared machine other processes stall a run now and then; both designs get the same allowance). The figure of
merit is the largest level that holds for each design, and their ratio; the same sweep is also read at tighter
lateness bounds (equal lateness). The run bounds itself (`--max-seconds`) and only uses loopback.

    python benchmarks/reference_server_scale.py            # full sweep, a few minutes at most
    python benchmarks/reference_server_scale.py --quick    # smaller levels, shorter windows
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import httpx
import psutil

from reference_server.rawclient import loopback_bypasses_proxies

loopback_bypasses_proxies()  # its clients talk to 127.0.0.1 only; an environment proxy must not see them

HOST = "127.0.0.1"  # loopback only, by design
PROMPT = "Explain how photosynthesis converts sunlight into chemical energy in plants"


# --- the peer: a thread-per-stream Flask server, the way the seed describes it --------------------------------------
def serve_flask(port: int, gap_ms: float, events: int) -> None:
    """One thread per connection (werkzeug threaded server), a generator that sleeps between chunks."""
    from flask import Flask, Response, jsonify, request

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from reference_server.lateness import LatenessHistogram

    app = Flask(__name__)
    hist = LatenessHistogram()
    lock = threading.Lock()
    active = [0]
    words = PROMPT.split()

    @app.post("/v1/chat/completions")
    def chat():  # noqa: ANN202
        prompt = (request.get_json(silent=True) or {}).get("prompt", "")
        gap = gap_ms / 1000

        def generate():  # noqa: ANN202
            with lock:
                active[0] += 1
            try:
                start = time.monotonic() + gap
                for i in range(events):
                    when = start + i * gap
                    delay = when - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    late = time.monotonic() - when
                    with lock:
                        hist.add(late)
                    piece = f"{words[i % len(words)]} {prompt[:8]} "
                    chunk = {"id": "chatcmpl-flask", "object": "chat.completion.chunk", "created": 0,
                             "model": "flask", "choices": [{"index": 0, "delta": {"content": piece},
                                                            "finish_reason": None}]}
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                with lock:
                    active[0] -= 1

        return Response(generate(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/health")
    def health():  # noqa: ANN202
        return jsonify(status="ok")

    @app.get("/debug/emission")
    def emission():  # noqa: ANN202
        with lock:
            snap = hist.snapshot()
            if request.args.get("reset"):
                hist.reset()
        return jsonify(**snap, active_streams=active[0])

    from werkzeug.serving import make_server

    server = make_server(HOST, port, app, threaded=True)
    server.socket.listen(4096)  # the default backlog of 128 would drop connection attempts during ramp-up
    server.serve_forever()


# --- server processes ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    name: str
    cmd: list[str]
    port: int
    proc: subprocess.Popen | None = None
    log: object = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.name} exited: {self.log.read().decode(errors='replace')[-1500:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def rss(self) -> int:
        p = psutil.Process(self.proc.pid)
        return p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))

    workers: int = 1

    def emission(self, reset: bool = False) -> dict:
        """The emission-lateness figures of every worker process, merged. With --workers N each request is answered
        by one worker: new connections are made until each worker (by pid) has answered."""
        if self.workers <= 1:
            return httpx.get(self.url + "/debug/emission" + ("?reset=1" if reset else ""), timeout=30).json()
        from reference_server.lateness import LatenessHistogram

        parts: dict[int, dict] = {}
        for _ in range(200 * self.workers):
            with httpx.Client(timeout=30) as fresh:  # a new connection: the kernel picks the worker that accepts
                doc = fresh.get(self.url + "/debug/emission?raw=1" + ("&reset=1" if reset else "")).json()
            parts.setdefault(doc["pid"], doc)
            if len(parts) >= self.workers:
                break
        hist = LatenessHistogram.merged(list(parts.values()))
        return {**hist.snapshot(), "workers_seen": len(parts)}

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's whole process tree (the uvicorn supervisor and its workers)."""
        p = psutil.Process(self.proc.pid)
        total = 0.0
        for q in (p, *p.children(recursive=True)):
            with contextlib.suppress(psutil.Error):
                t = q.cpu_times()
                total += t.user + t.system
        return total


# --- the load client: raw asyncio protocols, as cheap per read as Python gets -------------------------------------------
class StreamReader(asyncio.Protocol):
    def __init__(self, request: bytes, first: asyncio.Future):
        self.request = request
        self.first = first
        self.events = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        n = data.count(b"\n\n")
        if n:
            self.events += n
            if not self.first.done():
                self.first.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.first.done():
            self.first.set_result(None)


def build_request(port: int) -> bytes:
    body = json.dumps({"prompt": PROMPT, "stream": True}).encode()
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@dataclass
class Level:
    server: str
    streams: int
    held: int = 0
    events_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    kib_per_stream: float = 0.0
    server_cpu_pct: float = 0.0
    note: str = ""
    ok: bool = field(default=False)


async def run_level(server: ServerProcess, n: int, idle_rss: int, args: argparse.Namespace) -> Level:
    loop = asyncio.get_running_loop()
    request = build_request(server.port)
    level = Level(server.name, n)
    readers: list[StreamReader] = []
    firsts = []
    ramp = args.ramp_s
    try:
        for i in range(n):
            fut = loop.create_future()
            firsts.append(fut)
            reader = StreamReader(request, fut)
            readers.append(reader)
            try:
                await loop.create_connection(lambda r=reader: r, HOST, server.port)
            except OSError as exc:
                level.note = f"connect failed at {i}: {exc}"
                break
            if i % 50 == 49:
                await asyncio.sleep(ramp * 50 / n)
        try:
            await asyncio.wait_for(asyncio.gather(*firsts), timeout=args.settle_s + ramp)
        except asyncio.TimeoutError:
            level.note = level.note or "not every stream started in time"
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.emission, True)
        cpu0 = server.cpu_seconds()
        before = [r.events for r in readers]
        t0 = time.perf_counter()
        await asyncio.sleep(args.window_s)
        elapsed = time.perf_counter() - t0
        after = [r.events for r in readers]
        cpu1 = server.cpu_seconds()
        stats = await asyncio.to_thread(server.emission)
        rss = await asyncio.to_thread(server.rss)
    finally:
        for r in readers:
            if r.transport is not None:
                r.transport.close()
    level.held = sum(1 for a, b in zip(before, after, strict=True) if b > a)
    level.events_per_s = (sum(after) - sum(before)) / elapsed
    level.p50_ms, level.p99_ms, level.max_ms = stats["p50_ms"], stats["p99_ms"], stats["max_ms"]
    level.kib_per_stream = max(0, rss - idle_rss) / 1024 / max(1, n)
    level.server_cpu_pct = 100 * (cpu1 - cpu0) / elapsed
    expected = n * 1000 / args.gap_ms
    level.ok = level.held == n and level.p99_ms <= args.p99_ms and level.events_per_s >= 0.9 * expected
    await asyncio.sleep(args.cooldown_s)  # let the server cancel the closed streams before the next level
    return level


def print_level(lv: Level, gap_ms: float) -> None:
    expected = lv.streams * 1000 / gap_ms
    print(f"  {lv.server:<10} {lv.streams:>6} {lv.held:>6} {lv.events_per_s:>10.0f} {expected:>10.0f} "
          f"{lv.p50_ms:>8.1f} {lv.p99_ms:>8.1f} {lv.max_ms:>8.1f} {lv.kib_per_stream:>8.1f} {lv.server_cpu_pct:>6.0f}%"
          f"  {'holds' if lv.ok else 'FAILS'} {lv.note}", flush=True)


async def sweep(server: ServerProcess, levels: list[int], args: argparse.Namespace, deadline: float) -> list[Level]:
    idle = server.rss()
    out = []
    for n in levels:
        if time.monotonic() + args.window_s + args.ramp_s + args.settle_s + 5 > deadline:
            print(f"  {server.name}: time budget reached, stopping the sweep before {n} streams", flush=True)
            break
        lv = await run_level(server, n, idle, args)
        print_level(lv, args.gap_ms)
        for attempt in range(2, args.tries + 1):
            if lv.ok or time.monotonic() + args.window_s + args.ramp_s + args.settle_s + 5 > deadline:
                break
            # Other processes on a shared machine stall a run now and then; a level gets the same extra try
            # whichever design is measured, and the better try counts.
            again = await run_level(server, n, idle, args)
            again.note = (again.note + f" (try {attempt})").strip()
            print_level(again, args.gap_ms)
            if again.ok or again.p99_ms < lv.p99_ms:
                lv = again
        out.append(lv)
        if not lv.ok:
            break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gap-ms", type=float, default=20.0)
    ap.add_argument("--p99-ms", type=float, default=20.0, help="lateness bound for a level to hold (default 20)")
    ap.add_argument("--ref-levels", default="500,1000,1500,2000,2500,3000")
    ap.add_argument("--flask-levels", default="50,100,150,200,250,300,400")
    ap.add_argument("--ref-workers", default="1,2",
                    help="reference server worker processes to sweep (serve --workers N), comma-separated; the "
                         "figure of merit is the best of them, and the script says which (default 1,2)")
    ap.add_argument("--with-task-variant", action="store_true",
                    help="also sweep the reference server with a sleeping task per stream instead of its shared pacer")
    ap.add_argument("--window-s", type=float, default=4.0)
    ap.add_argument("--ramp-s", type=float, default=2.0)
    ap.add_argument("--settle-s", type=float, default=5.0)
    ap.add_argument("--cooldown-s", type=float, default=1.5)
    ap.add_argument("--tries", type=int, default=2,
                    help="tries per level before it counts as failed (shared-machine noise; default 2)")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="hard bound on the whole run (default 300)")
    ap.add_argument("--quick", action="store_true", help="small levels and short windows (a smoke run)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--serve-flask", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_flask:
        serve_flask(args.serve_flask, args.gap_ms, args.events)
        return 0
    if args.quick:
        args.ref_levels, args.flask_levels = "100,300", "25,50"
        args.window_s, args.ramp_s, args.settle_s = 2.0, 1.0, 3.0
    ref_levels = [int(x) for x in args.ref_levels.split(",")]
    flask_levels = [int(x) for x in args.flask_levels.split(",")]
    deadline = time.monotonic() + args.max_seconds
    # Streams last longer than ramp + settle + window, so none ends inside the measured window.
    stream_s = args.ramp_s + args.settle_s + args.window_s + 10
    events = int(stream_s * 1000 / args.gap_ms)
    here = os.path.abspath(__file__)
    root = os.path.dirname(os.path.dirname(here))
    ref_port, flask_port = free_port(), free_port()
    ref = ServerProcess("reference", [sys.executable, "-m", "reference_server", "--host", HOST, "--port", str(ref_port),
                                      "--gap-ms", str(args.gap_ms), "--ttft-ms", str(args.gap_ms),
                                      "--chars", str(events * 40), "--min-chunks", str(events),
                                      "--record-lateness"], ref_port)
    flask = ServerProcess("flask", [sys.executable, here, "--serve-flask", str(flask_port), "--gap-ms",
                                    str(args.gap_ms), "--events", str(events)], flask_port)
    os.environ["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    try:
        import uvloop  # noqa: F401

        client_loop = "uvloop"
    except ImportError:
        client_loop = "asyncio"
    import importlib.util

    fast = [m for m in ("httptools", "uvloop") if importlib.util.find_spec(m)]
    print(f"scale benchmark: one chunk every {args.gap_ms:g} ms per stream, a level holds when every stream "
          f"delivers and emission p99 <= {args.p99_ms:g} ms; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, client loop {client_loop}, reference server on uvicorn with "
          f"{' + '.join(fast) if fast else 'h11 + asyncio (install httptools and uvloop for the fast path)'}")
    print(f"  {'server':<10} {'streams':>6} {'held':>6} {'events/s':>10} {'expected':>10} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8} {'KiB/str':>8} {'cpu':>7}")
    results: dict[str, list[Level]] = {}

    def run(srv: ServerProcess, levels: list[int]) -> None:
        srv.start()
        try:
            if client_loop == "uvloop":
                import uvloop

                results[srv.name] = uvloop.run(sweep(srv, levels, args, deadline))
            else:
                results[srv.name] = asyncio.run(sweep(srv, levels, args, deadline))
        finally:
            srv.stop()

    workers_list = [int(x) for x in args.ref_workers.split(",")]
    for workers in workers_list:
        port = free_port()
        cmd = [*ref.cmd, "--workers", str(workers)] if workers > 1 else list(ref.cmd)
        cmd[cmd.index("--port") + 1] = str(port)
        name = "reference" if workers == 1 else f"ref-w{workers}"
        run(ServerProcess(name, cmd, port, workers=workers), ref_levels)
    if args.with_task_variant:
        tasks_port = free_port()
        cmd = [*ref.cmd, "--task-per-stream"]
        cmd[cmd.index("--port") + 1] = str(tasks_port)
        run(ServerProcess("ref-tasks", cmd, tasks_port), ref_levels)
    run(flask, flask_levels)
    best = {name: max((lv.streams for lv in levels if lv.ok), default=0) for name, levels in results.items()}
    ref_names = [n for n in best if n == "reference" or n.startswith("ref-w")]
    winner = max(ref_names, key=lambda n: best[n])
    best_ref = best[winner]
    ratio = best_ref / best["flask"] if best.get("flask") else float("inf")
    print(f"largest level held: reference {best_ref} streams ({winner}: "
          f"{'serve --workers ' + winner[5:] if winner.startswith('ref-w') else 'one worker'}; "
          + ", ".join(f"{n} {best[n]}" for n in ref_names) + f"), flask (thread per stream) "
          f"{best['flask']} streams; ratio {ratio:.1f}x (target >= 10x, and >= 2000 streams at p99 <= 20 ms)"
          + (f"; reference with a task per stream: {best['ref-tasks']}" if "ref-tasks" in best else ""))
    # The same sweep read at tighter lateness bounds: streams held by each design at equal lateness.
    equal: dict[str, dict[str, int]] = {}
    for bound in (5.0, 10.0, args.p99_ms):
        held = {name: max((lv.streams for lv in levels if lv.held == lv.streams and lv.p99_ms <= bound
                           and lv.events_per_s >= 0.9 * lv.streams * 1000 / args.gap_ms), default=0)
                for name, levels in results.items()}
        equal[f"{bound:g}"] = held
        r = max(held[n] for n in ref_names) / held["flask"] if held.get("flask") else float("inf")
        print(f"  at p99 <= {bound:g} ms: " + ", ".join(f"{k} {v}" for k, v in held.items()) + f" -> ratio {r:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gap_ms": args.gap_ms, "p99_ms": args.p99_ms, "best": best, "ratio": ratio,
                       "best_reference": {"name": winner, "streams": best_ref},
                       "load_average_1min": os.getloadavg()[0],
                       "equal_lateness": equal,
                       "levels": {k: [vars(lv) for lv in v] for k, v in results.items()}}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
