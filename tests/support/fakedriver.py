"""A fake NUT driver serving the driver socket in the test's own event loop.

It plays a C driver's end of shared/docs/driver-socket.md with the bridge's sans-IO protocol
(:mod:`nutbridge.protocol.sock`): ``DUMPALL`` -> the dump of its variables and commands,
``PING`` -> ``PONG``, ``INSTCMD``/``SET`` -> a handler's code as ``TRACKING <id> <code>``
(or nothing, as a 2.8.0 driver without a handler). Or it misbehaves (:data:`BEHAVIOURS`):
floods lines after its dump, stalls in the middle of the dump, sends garbage, or sends 10 MB
of SETINFO for ever new variables, so tests can check that only that UPS suffers.

    fake = FakeDriver(run_dir / "fake-ups1", [VarDump("ups.status", "OL")], ["load.off"])
    await fake.start()
    ...
    fake.broadcast(sock.setinfo("ups.status", "OB"))
    await fake.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

from nutbridge.protocol import sock

#: (fake, reader, writer) -> runs for the connection's lifetime
Behaviour = Callable[["FakeDriver", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class FakeDriver:
    def __init__(self, path: Path | str, variables: list[sock.VarDump] | None = None,
                 commands: list[str] | None = None, *, data_ok: bool = True,
                 behaviour: str | Behaviour = "normal", answer_ping: bool = True,
                 answer: Callable[[sock.InstCmd | sock.SetVar], int | None] | None = None) -> None:
        self.path = str(path)
        # copies: SET changes them
        self.variables = {v.name: dataclasses.replace(v, enums=list(v.enums), ranges=list(v.ranges))
                          for v in (variables or [])}
        self.commands = list(commands or [])
        self.data_ok = data_ok
        self.behaviour: Behaviour = BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour
        self.answer_ping = answer_ping
        # code for a tracked request, None: no answer (a driver without a handler)
        self.answer = answer or (lambda ev: 0)
        self.received: list[sock.ServerEvent | sock.ParseError] = []
        self.connections = 0
        self.sent = 0  # bytes written, all connections
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[object]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> FakeDriver:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, self.path)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def dump(self) -> bytes:
        return sock.dump(self.variables.values(), self.commands, self.data_ok)

    def broadcast(self, data: bytes) -> None:
        for w in list(self._writers):
            if not w.is_closing():
                w.write(data)
                self.sent += len(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.behaviour(self, reader, writer)
        except (ConnectionError, asyncio.CancelledError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()

    def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.sent += len(data)

    async def requests(self, reader: asyncio.StreamReader, parser: sock.ServerReader
                       ) -> list[sock.ServerEvent | sock.ParseError]:
        """The next events the client sent; ConnectionError at EOF."""
        data = await reader.read(4096)
        if not data:
            raise ConnectionError("client closed")
        events = parser.feed(data)
        self.received += events
        del self.received[:-1000]
        return events

    def react(self, writer: asyncio.StreamWriter, ev: sock.ServerEvent | sock.ParseError) -> None:
        """A C driver's answer to one request."""
        if isinstance(ev, sock.DumpAll):
            self.write(writer, self.dump())
        elif isinstance(ev, sock.Ping):
            if self.answer_ping:
                self.write(writer, sock.PONG)
        elif isinstance(ev, sock.InstCmd | sock.SetVar):
            code = self.answer(ev)
            if isinstance(ev, sock.SetVar) and code == 0 and ev.var in self.variables:
                self.variables[ev.var].value = ev.value
                self.broadcast(sock.setinfo(ev.var, ev.value))
            if code is not None and ev.tracking is not None:
                self.write(writer, sock.tracking(ev.tracking, code))


async def _normal(fake: FakeDriver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    parser = sock.ServerReader()
    while True:
        for ev in await fake.requests(reader, parser):
            fake.react(writer, ev)
        await writer.drain()


async def _until_dumpall(fake: FakeDriver, reader: asyncio.StreamReader) -> None:
    parser = sock.ServerReader()
    while not any(isinstance(ev, sock.DumpAll) for ev in await fake.requests(reader, parser)):
        pass


async def _drain_requests(fake: FakeDriver, reader: asyncio.StreamReader) -> None:
    parser = sock.ServerReader()
    with contextlib.suppress(ConnectionError):
        while True:
            await fake.requests(reader, parser)


async def _flood(fake: FakeDriver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A good dump, then SETINFO lines as fast as the client takes them, for ever."""
    await _until_dumpall(fake, reader)
    fake.write(writer, fake.dump())
    drain = asyncio.ensure_future(_drain_requests(fake, reader))
    try:
        n = 0
        while True:
            block = b"".join(sock.setinfo("ups.load", str((n + i) % 100)) for i in range(2000))
            n += 2000
            fake.write(writer, block)
            await writer.drain()
    finally:
        drain.cancel()


async def _stall(fake: FakeDriver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half of the dump, then nothing at all (PINGs unanswered), while still reading."""
    await _until_dumpall(fake, reader)
    dump = fake.dump()
    fake.write(writer, dump[: len(dump) // 2])
    await writer.drain()
    await _drain_requests(fake, reader)


async def _garbage(fake: FakeDriver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Random bytes and unknown commands, 64 KB every 10 ms: nothing a upsd recognises."""
    rng = random.Random(14)
    drain = asyncio.ensure_future(_drain_requests(fake, reader))
    try:
        while True:
            chunk = bytearray(rng.randbytes(48 * 1024))
            chunk += b"".join(b"BOGUS %d \"x\"\n" % rng.randrange(10**6) for _ in range(800))
            fake.write(writer, bytes(chunk))
            await writer.drain()
            await asyncio.sleep(0.01)
    finally:
        drain.cancel()


async def _big_setinfo(fake: FakeDriver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """10 MB of SETINFO for ever new variables as the dump (no DUMPDONE)."""
    await _until_dumpall(fake, reader)
    drain = asyncio.ensure_future(_drain_requests(fake, reader))
    try:
        total, n = 0, 0
        while total < 10 * 1024 * 1024:
            block = b"".join(sock.setinfo(f"x.var{n + i}.{'y' * 200}", "v" * 200) for i in range(1000))
            n += 1000
            fake.write(writer, block)
            total += len(block)
            await writer.drain()
        await asyncio.Event().wait()
    finally:
        drain.cancel()


BEHAVIOURS: dict[str, Behaviour] = {
    "normal": _normal, "flood": _flood, "stall": _stall, "garbage": _garbage,
    "big-setinfo": _big_setinfo,
}
