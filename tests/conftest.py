"""Shared fixtures: the real reference server on a free loopback port (uvicorn in a background thread).

`reference_server` is one server for the whole session with the default config; a test selects a fault per
request with the `X-Fault` header. `make_reference_server(**settings)` starts servers with other settings
(pacing, `fault=`, `rate_limit=`, `upstream=`, ...) and stops them when the test ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from reference_server.config import ServerConfig
from reference_server.embedded import EmbeddedServer
from reference_server.rawclient import loopback_bypasses_proxies

loopback_bypasses_proxies()  # every test server is on loopback: a proxy set in the environment must not see it


@pytest.fixture(scope="session")
def reference_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(ServerConfig()) as server:
        yield server


@pytest.fixture
def make_reference_server() -> Iterator[Callable[..., EmbeddedServer]]:
    servers: list[EmbeddedServer] = []

    def make(**settings: object) -> EmbeddedServer:
        server = EmbeddedServer(ServerConfig(**settings))  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()
