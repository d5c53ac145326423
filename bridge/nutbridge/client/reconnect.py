"""A NutClient that re-establishes a dropped connection and restores its session.

upsd drops clients silently after 60 s of silence and on restart, so long-lived
pollers need this. After a reconnect the session (USERNAME, PASSWORD, LOGIN and
SET TRACKING ON) is replayed. Only side-effect-free requests (GET, LIST, VER...)
are repeated automatically; SET/INSTCMD/FSD raise the disconnect error instead,
because the server may already have acted on them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..protocol.wire import request
from .core import NutClient, check_err
from .errors import CONNECTION_FAILURE, NutError
from .tls import TLSOptions

T = TypeVar("T")


class ReconnectingClient(NutClient):
    def __init__(self, host: str = "localhost", port: int = 3493, *, timeout: float = 10.0,
                 tls: TLSOptions | None = None, retries: int = 2, backoff: float = 0.2) -> None:
        super().__init__(host, port, timeout=timeout, tls=tls)
        self.retries = retries
        self.backoff = backoff
        self.reconnects = 0

    async def _restore(self) -> None:
        await self._connect()
        s = self.session
        replay: list[tuple[str, ...]] = []
        if s.username is not None:
            replay.append(("USERNAME", s.username))
        if s.password is not None:
            replay.append(("PASSWORD", s.password))
        if s.login is not None:
            replay.append(("LOGIN", s.login))
        if s.tracking:
            replay.append(("SET", "TRACKING", "ON"))
        for words in replay:
            check_err(await self._exchange(request(*words)))
        self.reconnects += 1

    async def _run(self, op: Callable[[NutClient], Awaitable[T]], retry: bool = False) -> T:
        async with self._lock:
            attempt = 0
            while True:
                try:
                    if self._conn is None:
                        await self._restore()
                    return await op(self)
                except NutError as exc:
                    if not (exc.disconnected or exc.code == CONNECTION_FAILURE):
                        raise
                    await self._drop()
                    # Unsafe requests are reported; the next request reconnects.
                    if not retry or attempt >= self.retries:
                        raise
                attempt += 1
                await asyncio.sleep(self.backoff * attempt)
