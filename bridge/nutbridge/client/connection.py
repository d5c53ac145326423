"""Thin asyncio transport: connect, write a line, read a line, upgrade to TLS."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl

from .errors import (
    CONNECTION_FAILURE,
    NO_SUCH_HOST,
    PROTOCOL_ERROR,
    SERVER_DISCONNECTED,
    TIMEOUT,
    NutError,
)

# Longest answer line accepted (newline excluded). upsd never sends more than 512 bytes
# (NUT_NET_ANSWER_MAX) and NUT's clients read into 512-byte buffers; 8x that leaves room
# for other servers while a line that never ends costs at most ~2x this in the reader.
MAX_LINE = 4096


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.tls = False

    @classmethod
    async def open(cls, host: str, port: int, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise NutError(NO_SUCH_HOST) from exc
        # Try each address in order and report the last failure, as NUT does.
        last: NutError = NutError(NO_SUCH_HOST)
        for *_, addr in infos:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(str(addr[0]), int(addr[1]), limit=MAX_LINE), timeout
                )
            except TimeoutError:
                last = NutError(CONNECTION_FAILURE, detail=os.strerror(errno.ETIMEDOUT))
            except OSError as exc:
                last = NutError(CONNECTION_FAILURE, detail=_strerror(exc))
            else:
                return cls(reader, writer)
        raise last

    @property
    def closing(self) -> bool:
        """True once the connection gave up (e.g. after an oversize line): drop it."""
        return self.writer.is_closing()

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), timeout)
        except TimeoutError as exc:  # the server stopped reading
            raise NutError(TIMEOUT) from exc
        except (OSError, RuntimeError) as exc:
            raise NutError(SERVER_DISCONNECTED) from exc

    async def readline(self, timeout: float | None) -> str:
        """One answer line without its newline; a line cut by EOF is a disconnect.

        A line longer than :data:`MAX_LINE` raises PROTOCOL-ERROR and closes the
        connection (the reader has dropped what it buffered, so the stream is out of step).
        """
        try:
            data = await asyncio.wait_for(self.reader.readline(), timeout)
        except TimeoutError as exc:
            raise NutError(TIMEOUT) from exc
        except ValueError as exc:  # StreamReader's limit (LimitOverrunError) was hit
            self.writer.close()
            raise NutError(PROTOCOL_ERROR, detail=f"answer line longer than {MAX_LINE} bytes") from exc
        except OSError as exc:
            raise NutError(SERVER_DISCONNECTED) from exc
        if not data.endswith(b"\n"):
            raise NutError(SERVER_DISCONNECTED)
        return data[:-1].decode("latin-1")

    async def start_tls(self, ctx: ssl.SSLContext, server_hostname: str | None, timeout: float) -> None:
        await asyncio.wait_for(self.writer.start_tls(ctx, server_hostname=server_hostname), timeout)
        self.tls = True

    def peer_cert_der(self) -> bytes | None:
        obj = self.writer.get_extra_info("ssl_object")
        if not isinstance(obj, ssl.SSLObject):
            return None
        return obj.getpeercert(binary_form=True)

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (OSError, TimeoutError, ssl.SSLError):
            pass


def _strerror(exc: OSError) -> str:
    if exc.errno is not None:
        return os.strerror(exc.errno)
    return exc.strerror or str(exc)
