"""A deadline for request headers: uvicorn protocols that close a connection slow to send one (slowloris).

uvicorn (0.55) has `timeout_keep_alive`, but that timer only runs between a response and the first byte of
the next request, and never on a fresh connection: a client that opens connections and trickles header bytes
holds each one forever. Here every connection must complete a request's headers within `header_timeout_s`
of opening, and again of its previous response ending. The timer checks, when it fires, whether a request
is being served (uvicorn sets `cycle` once the headers are parsed), so a long stream is never cut and
nothing needs hooking into either parser. Slow request bodies are not covered (the app reads those with its
own size limit).

`protocol_factory(http, seconds)` is what `uvicorn.Config(http=...)` receives: a partial of a module-level
class, so it pickles into `--workers` processes.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string
from uvicorn.protocols.http.h11_impl import H11Protocol

from reference_server.config import ServerConfig

DEFAULT_HEADER_TIMEOUT_S: float = ServerConfig.header_timeout_s


class _HeaderDeadline:
    """Mixin over a uvicorn HTTP protocol (which provides loop, transport, cycle and the callbacks below)."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def __init__(self, *args: Any, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._arm_header_timer()  # the next request on this connection gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        if self.header_timeout_s > 0 and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_deadline)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        serving = self.cycle is not None and not self.cycle.response_complete
        if not serving and not self.transport.is_closing():
            # Closed without a 408: the client may have sent nothing at all, and an unasked-for response
            # could be read as the answer to a request it sends later.
            self.transport.close()


class H11HeaderTimeout(_HeaderDeadline, H11Protocol):
    pass


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional: "auto" then means h11, as in uvicorn
    _BY_BASE: dict[type, type] = {H11Protocol: H11HeaderTimeout}
else:
    class HttpToolsHeaderTimeout(_HeaderDeadline, HttpToolsProtocol):
        pass

    _BY_BASE = {H11Protocol: H11HeaderTimeout, HttpToolsProtocol: HttpToolsHeaderTimeout}


def protocol_factory(http: str, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S) -> Any:
    """uvicorn's `http` setting ("auto", "h11", "httptools") with the header deadline; 0 turns it off."""
    base = import_from_string(HTTP_PROTOCOLS.get(http, http))
    cls = _BY_BASE.get(base)
    if cls is None:  # a protocol this module does not know: served as uvicorn would, without the deadline
        return http
    return functools.partial(cls, header_timeout_s=header_timeout_s)
