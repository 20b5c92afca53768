"""TLS over a kernel-stamped socket: each decrypted read keeps the kernel time of its ciphertext.

asyncio's TLS transport reads the socket itself, so a TLS connection could only be stamped when the loop got round
to the decrypted bytes. Here the ciphertext is read by the plain stream (harness/capture/netstream.py: the receive
thread or the loop, each read with its SO_TIMESTAMPNS stamp) and decrypted with ``ssl.SSLObject`` over memory BIOs.
A decrypted read's arrival is the stamp of the ciphertext read that completed its TLS record: bytes are readable
only once their whole record has arrived, so that is when a client could first see them. For TTFT this means the
arrival of the last segment of the record holding the first token; a server that sends one event per record
(the usual case) is measured exactly, one that packs several events into a record shows them arriving together.
"""

from __future__ import annotations

import asyncio
import ssl
import typing

import httpcore

# Ciphertext taken from the plain stream at a time: a few TLS records (16 KiB of plaintext each, at most).
_CIPHERTEXT_READ = 64 * 1024


class KernelTLSStream(httpcore.AsyncNetworkStream):
    """httpcore's stream interface for TLS, decrypting what a kernel-stamped plain stream reads."""

    def __init__(self, plain: typing.Any, sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 tap_for_task: typing.Callable[[], typing.Any] | None) -> None:
        self._plain = plain
        self._sslobj = sslobj
        self._incoming = incoming
        self._outgoing = outgoing
        self._tap_for_task = tap_for_task
        self._arrival = 0.0
        self._lag: float | None = None
        self._eof = False

    @classmethod
    async def wrap(cls, plain: typing.Any, ssl_context: ssl.SSLContext, server_hostname: str | None,
                   timeout: float | None, tap_for_task: typing.Callable[[], typing.Any] | None) -> KernelTLSStream:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        sslobj = ssl_context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_hostname)
        stream = cls(plain, sslobj, incoming, outgoing, tap_for_task)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.001, deadline - loop.time())

        try:
            while True:
                try:
                    sslobj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await stream._flush(left())
                    if not await stream._feed(left()):
                        raise httpcore.ConnectError("TLS handshake failed: the server closed the connection") from None
            await stream._flush(left())
        except httpcore.ReadTimeout as exc:
            await plain.aclose()
            raise httpcore.ConnectTimeout(f"TLS handshake timed out after {timeout} s") from exc
        except ssl.SSLError as exc:  # certificate refused, protocol mismatch, ...
            await plain.aclose()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            await plain.aclose()
            raise
        return stream

    async def _flush(self, timeout: float | None) -> None:
        data = self._outgoing.read()
        if data:
            await self._plain.write(data, timeout)

    async def _feed(self, timeout: float | None) -> bool:
        """One ciphertext read into the TLS object, remembering its stamp; False at the end of the connection."""
        if self._eof:
            return False
        data, arrival, lag = await self._plain.next_chunk(_CIPHERTEXT_READ, timeout)
        if not data:
            self._eof = True
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        self._arrival, self._lag = arrival, lag
        return True

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            try:
                data = self._sslobj.read(max_bytes)
            except ssl.SSLWantReadError:
                await self._flush(timeout)  # anything the TLS object wants to say first (e.g. a key update)
                if not await self._feed(timeout) and self._eof and not self._incoming.pending:
                    try:
                        self._sslobj.read(max_bytes)  # with the EOF fed: raises the close or the truncation
                    except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ssl.SSLWantReadError):
                        return b""
                    except ssl.SSLError as exc:
                        raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # close_notify, or the connection closed without it: the end of the bytes either way
            except ssl.SSLError as exc:
                raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc
            if not data:
                return b""
            tap = self._tap_for_task() if self._tap_for_task is not None else None
            if tap is not None:
                tap(data, self._arrival, self._lag)
            return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._sslobj.write(buffer)
        except ssl.SSLError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc
        await self._flush(timeout)

    async def aclose(self) -> None:
        try:
            self._sslobj.unwrap()  # close_notify, best effort: the peer may be gone already
            await self._flush(0.5)
        except (ssl.SSLError, httpcore.NetworkError, OSError):
            pass
        finally:
            await self._plain.aclose()

    async def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("TLS inside TLS (an HTTPS proxy to an HTTPS endpoint) is not supported")

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self._sslobj
        if info == "is_readable":
            return self._sslobj.pending() > 0 or self._plain.get_extra_info("is_readable")
        return self._plain.get_extra_info(info)
