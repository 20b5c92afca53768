"""clients.openai_node and clients.vercel_ai: the official openai npm package and the Vercel AI SDK, under a
real Node, read real streams from servers started here (through run_target's clients stage and the checks).

Facts reproduced, each a class of defect a Node application meets: NDJSON gives openai-node no text at all and
makes the AI SDK raise (no finish reason); a chunk that is not JSON is a SyntaxError / AI_JSONParseError; content
after ``[DONE]`` is dropped by openai-node (the client survives but reads different text). Unlike openai-python,
both read a stream that opens with a lone ``retry:`` block."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time

import pytest

from harness.clients import CLIENTS
from harness.model import Limits
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, run_target
from tests.hostile_servers import OPENAI_CHUNK, HostileServer, ValidThenFlood, silence
from tests.node_clients import ensure_node_clients
from tests.test_clients import StreamServer

NODE_MISSING = ensure_node_clients()
pytestmark = pytest.mark.skipif(NODE_MISSING is not None, reason=f"Node clients unavailable: {NODE_MISSING}")

NODE = "openai_node,vercel_ai"


def run(url: str, clients: str = NODE, profile: str = "openai", deadline: float = 40.0, **options) -> dict:
    opts = RunOptions(clients=clients, categories={"clients"}, api_key=None, limits=Limits(deadline_s=deadline),
                      **options)
    result = asyncio.run(run_target(url, load_profile(profile), opts))
    return {c.id.split(".", 1)[1]: c for c in result.checks if c.category == "clients" and c.applicable}


def test_the_reference_server_passes_both_node_clients_in_both_openai_protocols(reference_server):
    base = reference_server.endpoint.rsplit("/v1/", 1)[0]
    for profile, path in (("openai", "/v1/chat/completions"), ("openai-responses", "/v1/responses")):
        got = run(base + path, profile=profile)
        assert set(got) == {"openai_node", "vercel_ai"}
        for name, check in got.items():
            assert check.status == "pass", f"{profile}: {name}: {check.message}"
            assert check.measured["chars"] > 500 and check.measured["first_text_ms"] > 0
        assert got["openai_node"].measured["client"].startswith("openai 6.")
        assert "@ai-sdk/" in got["vercel_ai"].measured["client"]


def test_ndjson_gives_openai_node_no_text_and_the_ai_sdk_an_error(reference_server):
    got = run(reference_server.endpoint, headers={"X-Fault": "ndjson"})
    assert got["openai_node"].status == "fail" and "read no text" in got["openai_node"].message
    assert got["vercel_ai"].status == "fail"
    assert "AI_InvalidResponseDataError" in got["vercel_ai"].message, got["vercel_ai"].message


def test_a_chunk_that_is_not_json_is_named_as_each_sdk_raises_it(reference_server):
    got = run(reference_server.endpoint, headers={"X-Fault": "malformed-json"})
    assert got["openai_node"].status == "fail" and "SyntaxError" in got["openai_node"].message
    assert got["vercel_ai"].status == "fail" and "AI_JSONParseError" in got["vercel_ai"].message


def test_openai_node_survives_data_after_done_but_reads_different_text(reference_server):
    check = run(reference_server.endpoint, clients="openai_node", headers={"X-Fault": "data-after-done"})[
        "openai_node"]
    assert check.status == "fail" and "reads different text" in check.message, check.message
    assert check.measured["chars"] < check.measured["harness_chars"]


def test_both_read_a_stream_that_opens_with_a_lone_retry_block():
    with StreamServer(retry_first=True) as server:
        got = run(server.url)
    for name, check in got.items():
        assert check.status == "pass", f"{name}: {check.message}"


def test_a_host_name_resolves_only_to_the_checked_address(reference_server):
    url = reference_server.endpoint.replace("127.0.0.1", "localhost")
    got = run(url, clients="openai_node")
    assert got["openai_node"].status == "pass", got["openai_node"].message


class ValidThenSilent(ValidThenFlood):
    """The main request gets a valid stream; the client's gets the headers and then nothing, ever."""

    async def __call__(self, reader, writer) -> None:
        if self.requests >= self.valid:
            self.requests += 1
            await silence(reader, writer)
            return
        await super().__call__(reader, writer)


def test_a_hanging_stream_ends_at_the_deadline_and_the_node_process_with_it():
    started = time.monotonic()
    with HostileServer(ValidThenSilent(valid=1)) as server:
        check = run(server.url, clients="openai_node", deadline=8.0)["openai_node"]
    assert time.monotonic() - started < 8.0 + 5.0
    assert check.status == "skip" and "did not finish" in check.message, check.message
    # No Node client left running (each runs in its own process group, killed at the end of the stage).
    left = subprocess.run(["pgrep", "-f", "client.mjs"], capture_output=True, text=True).stdout.split()
    assert not [pid for pid in left if _parent_is(pid, os.getpid())]


def _parent_is(pid: str, ancestor: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return False
    return ppid == ancestor


def test_a_flood_is_read_only_up_to_the_clients_byte_cap():
    # The client's request gets an endless flood of events: the Node client stops at its share of the byte
    # budget and reports what it kept.
    started = time.monotonic()
    opts = RunOptions(clients="openai_node", categories={"clients"}, api_key=None,
                      limits=Limits(deadline_s=30.0))
    unit = (OPENAI_CHUNK % "more ").encode()
    with HostileServer(ValidThenFlood(valid=1, unit=unit)) as server:
        result = asyncio.run(run_target(server.url, load_profile("openai"), opts))
    raw = result.extra["clients"]["results"]["openai_node"]["raw"]
    assert raw["truncated"] is True
    kept = sum(len(base64.b64decode(r[1])) for r in raw["reads"])
    assert 64 * 1024 <= kept <= 1024 * 1024  # the client's share of the run's byte budget, never more
    check = next(c for c in result.checks if c.id == "clients.openai_node")
    assert check.status == "pass" and "read the same" in check.message, check.message  # judged on the kept part
    assert time.monotonic() - started < 30.0


def test_missing_packages_skip_with_the_install_command(reference_server, tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMCONFORM_CACHE_DIR", str(tmp_path))
    assert "streamconform clients --install" in CLIENTS["openai_node"].available()
    opts = RunOptions(clients=NODE, categories={"clients"}, api_key=None, limits=Limits(deadline_s=20.0))
    result = asyncio.run(run_target(reference_server.endpoint, load_profile("openai"), opts))
    for check in (c for c in result.checks if c.id in ("clients.openai_node", "clients.vercel_ai")):
        assert check.status == "skip" and "streamconform clients --install" in check.message
        assert check.applicable is False  # this machine, not the endpoint: out of a grade's maximum
    assert not (tmp_path / "node" / "node_modules").exists()  # a run never installs


def test_the_clients_command_lists_what_can_run_and_why_not(tmp_path):
    env = {**os.environ, "STREAMCONFORM_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "harness", "clients"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line and not line[0].isspace()}
    assert "streamconform clients --install" in lines["openai_node"]
    assert "ready" in lines["openai_python"]


def test_pytest_endpoint_with_clients_runs_one_test_per_client(tmp_path, reference_server):
    from tests.test_pytest_plugin import run_pytest

    proc = run_pytest(tmp_path, "--endpoint", reference_server.endpoint, "--profile", "openai", "--clients",
                      "openai_node,vercel_ai", "-m", "clients", "-v")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert "test_check[clients.openai_node] PASSED" in proc.stdout
    assert "test_check[clients.vercel_ai] PASSED" in proc.stdout
