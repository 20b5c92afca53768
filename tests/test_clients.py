"""clients.*: real clients (the openai, anthropic, ollama and google-genai packages, headless Chromium) read
real streams from servers started here, through the engine (run_target's clients stage, then the checks).

Known facts reproduced: openai-python raises JSONDecodeError on a valid SSE stream whose first block is a lone
``retry: 3000`` (an event with no data), which the browser reads fine; it gets no text at all, silently, from
an NDJSON stream; a browser page on another origin cannot read an endpoint that sends no CORS headers. The
reference server is read correctly by every installed client, in every protocol it speaks."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from harness.clients import CLIENTS, INSTALL_HINT, expand, parse_names
from harness.errors import ConfigError
from harness.model import Limits
from harness.run.profile import load_profile
from harness.run.runner import RunOptions, bundle_of, evaluate_bundle, run_target
from tests.browser import ensure_chromium
from tests.hostile_servers import OPENAI_CHUNK, OPENAI_STOP, VOLCANO_TEXT, HostileServer, read_head, send
from tests.node_clients import ensure_node_clients

CHROMIUM = ensure_chromium()  # Debian's chromium, installed with apt-get when missing (as the reports' tests)
NODE_MISSING = ensure_node_clients()  # openai-node and the Vercel AI SDK, npm-installed when Node is here
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed")


class StreamServer(HostileServer):
    """An OpenAI-style chat stream on loopback. ``retry_first``: the stream opens with a lone ``retry: 3000``
    block (valid SSE: it sets the reconnection time and dispatches no event). ``cors``: CORS headers on the
    preflight and the stream (without them the preflight gets a bare 405, as from a server that never heard of
    CORS)."""

    def __init__(self, *, retry_first: bool = False, cors: bool = True) -> None:
        super().__init__(self.handle)
        self.retry_first, self.cors = retry_first, cors

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        cors = b"Access-Control-Allow-Origin: *\r\n" if self.cors else b""
        if head.startswith(b"OPTIONS"):
            if self.cors:
                writer.write(b"HTTP/1.1 204 No Content\r\n" + cors + b"Access-Control-Allow-Methods: POST\r\n"
                             b"Access-Control-Allow-Headers: content-type, authorization\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     + cors + b"Connection: close\r\n\r\n")
        if self.retry_first:
            await send(writer, b"retry: 3000\n\n")
        for i in range(8):
            await asyncio.sleep(0.02)
            await send(writer, (OPENAI_CHUNK % f"{VOLCANO_TEXT}({i}) ").encode())
        await send(writer, OPENAI_STOP.encode())


def run(url: str, profile: str, clients: str, **options) -> object:
    """One run with only the main request and the clients stage (categories: clients)."""
    opts = RunOptions(clients=clients, categories={"clients"}, api_key=None, limits=Limits(deadline_s=40.0),
                      **options)
    return asyncio.run(run_target(url, load_profile(profile), opts))


def verdicts(result) -> dict[str, object]:
    return {c.id: c for c in result.checks if c.category == "clients"}


@needs_chromium
def test_a_retry_only_first_block_breaks_openai_python_not_the_browser():
    with StreamServer(retry_first=True) as server:
        result = run(server.url, "openai", "openai_python,browser")
    got = verdicts(result)
    openai_check, browser = got["clients.openai_python"], got["clients.browser"]
    assert openai_check.status == "fail", openai_check.message
    assert "JSONDecodeError" in openai_check.message and "failed" in openai_check.message
    assert openai_check.measured["harness_chars"] > 500  # the harness read the answer in the same bytes
    assert browser.status == "pass", browser.message
    assert "read the same" in browser.message and "harness TTFT" in browser.message


def test_ndjson_gives_openai_python_no_text(reference_server):
    result = run(reference_server.endpoint, "openai", "openai_python", headers={"X-Fault": "ndjson"})
    check = verdicts(result)["clients.openai_python"]
    assert check.status == "fail", check.message
    assert "read no text" in check.message and "the same bytes" in check.message
    assert check.measured["chars"] == 0 and check.measured["harness_chars"] > 500


@needs_chromium
def test_an_endpoint_without_cors_headers_fails_the_browser():
    with StreamServer(cors=False) as server:
        result = run(server.url, "openai", "browser")
    check = verdicts(result)["clients.browser"]
    assert check.status == "fail", check.message
    assert "CORS" in check.message and "Failed to fetch" in check.message
    assert check.evidence


class GzipWhenAskedServer(StreamServer):
    """Plain progressive SSE for a client asking for identity (the harness); for one that accepts gzip (a browser),
    the same events through a gzip compressor that is never flushed until the end, as a compressing proxy or
    middleware does: the compressed bytes, and so the text, only come out at the close."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import zlib

        head = await read_head(reader)
        if head.startswith(b"OPTIONS"):
            writer.write(b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n"
                         b"Access-Control-Allow-Methods: POST\r\nAccess-Control-Allow-Headers: content-type\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        gzip = b"gzip" in next((line for line in head.lower().split(b"\r\n")
                                if line.startswith(b"accept-encoding:")), b"")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Access-Control-Allow-Origin: *\r\n" + (b"Content-Encoding: gzip\r\n" if gzip else b"")
                     + b"Connection: close\r\n\r\n")
        compressor = zlib.compressobj(wbits=31)
        events = [(OPENAI_CHUNK % f"{VOLCANO_TEXT}({i}) ").encode() for i in range(8)] + [OPENAI_STOP.encode()]
        for event in events:
            await asyncio.sleep(0.1)
            await send(writer, compressor.compress(event) if gzip else event)
        if gzip:
            await send(writer, compressor.flush())


@needs_chromium
def test_a_gzip_buffered_stream_shows_the_browsers_first_text_late():
    with GzipWhenAskedServer() as server:
        result = run(server.url, "openai", "browser")
    check = verdicts(result)["clients.browser"]
    assert check.status == "pass", check.message  # the same text in the end
    first, harness = check.measured["first_text_ms"], check.measured["harness_ttft_ms"]
    assert harness < 300 and first > harness + 500, (first, harness)  # the browser saw it at the close
    assert f"first text after {first:.0f} ms as the browser saw it" in check.message


# Each installed client, in each protocol the reference server speaks (the browser twice: chat and Gemini).
READERS = [("openai", "/v1/chat/completions", "all"), ("openai-responses", "/v1/responses", "all"),
           ("anthropic", "/v1/messages", "anthropic_python"), ("ollama", "/api/chat", "ollama_python"),
           ("gemini", "/v1beta/models/streamconform-test:streamGenerateContent", "all")]


@pytest.fixture(scope="module")
def reference_runs(reference_server) -> dict[str, object]:
    base = reference_server.endpoint.rsplit("/v1/", 1)[0]

    async def all_runs():
        async def one(profile: str, path: str, clients: str):
            opts = RunOptions(clients=clients, categories={"clients"}, api_key=None,
                              limits=Limits(deadline_s=50.0))
            return await run_target(base + path, load_profile(profile), opts)

        got = await asyncio.gather(*(one(*reader) for reader in READERS))
        return {reader[0]: result for reader, result in zip(READERS, got, strict=True)}

    return asyncio.run(all_runs())


def test_the_reference_server_passes_every_installed_client(reference_runs):
    seen = set()
    for profile, result in reference_runs.items():
        for check_id, check in verdicts(result).items():
            name = check_id.split(".", 1)[1]
            if not check.applicable:
                continue  # a client of another protocol
            if CLIENTS[name].available() is not None:
                assert check.status == "skip"
                assert any(hint in check.message for hint in ("pip install", "Chromium", "clients --install",
                                                              "Node"))
                continue
            assert check.status == "pass", f"{profile}: {check_id}: {check.message}"
            seen.add(name)
    assert seen == {n for n, c in CLIENTS.items() if c.available() is None}


def test_a_saved_run_is_re_judged_offline_with_the_same_verdicts(reference_runs):
    result = reference_runs["openai"]
    bundle = json.loads(json.dumps(bundle_of(result)))  # through JSON, as `run --save-capture` writes it
    # The profile names no client: the bundle's record of the run does.
    again = evaluate_bundle(bundle, load_profile("openai"), categories={"clients"})
    assert [(c.id, c.status, c.message) for c in again.checks] == \
        [(c.id, c.status, c.message) for c in result.checks if c.category == "clients"]


def test_the_result_validates_and_the_run_report_shows_a_client_matrix(reference_runs):
    import jsonschema

    from reports import render_run
    from schemas import load_schema

    doc = reference_runs["openai"].to_dict()
    jsonschema.validate(doc, load_schema("result.schema"))
    page = render_run(doc)
    matrix = page[page.index('<table id="clients">'):].split("</table>", 1)[0]
    # One row per client speaking the protocol (Python, Node and the browser); the n/a clients are not rows.
    assert matrix.count("<tr><td") == len(expand(["all"], "openai"))
    assert "openai_python" in matrix and "browser" in matrix and "read the same" in matrix
    if NODE_MISSING is None:
        assert "openai_node" in matrix and "vercel_ai" in matrix


def test_a_missing_client_is_skipped_with_the_install_hint(reference_server):
    missing = dataclasses.replace(CLIENTS["openai_python"], package="streamconform_no_such_package")
    assert INSTALL_HINT in missing.available()
    result = run(reference_server.endpoint, "openai", "browser", chromium="/nonexistent/chromium")
    check = verdicts(result)["clients.browser"]
    assert check.status == "skip" and "--chromium" in check.message
    assert check.applicable is False  # the grader's machine, not the endpoint: out of a grade's maximum


def test_selection(tmp_path):
    assert parse_names("all") == ["all"]
    assert parse_names("openai-python, browser") == ["openai_python", "browser"]
    with pytest.raises(ValueError, match="unknown client"):
        parse_names("curl")
    assert expand(["all"], "openai") == ["openai_python", "openai_node", "vercel_ai", "browser"]
    assert expand(["all"], "prompt") == ["browser"]
    grading = load_profile("grading")
    assert grading.get("clients.names") == ["browser"] and grading.rule("clients.browser").required
    typo = tmp_path / "typo.toml"
    typo.write_text('extends = "tds"\nname = "typo"\n[clients]\nnames = ["openai-nodejs"]\n')
    with pytest.raises(ConfigError, match="clients.names: unknown client 'openai-nodejs'"):
        load_profile(str(typo))
