"""The client library against hostile or broken NUT servers (issue 12).

Each test starts a real asyncio TCP server on 127.0.0.1 that misbehaves in one way
(an endless line, a LIST without END, garbage, silence, a flood of push updates)
and checks that the client raises its documented error in bounded time, having
held a bounded amount of memory (tracemalloc peak: the test's server runs in the
same process, but streams from one small chunk, so the peak is the client's).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from nutbridge.client import PROTOCOL_ERROR, TIMEOUT, NutClient, NutError, ReconnectingClient
from nutbridge.client.connection import MAX_LINE
from nutbridge.client.core import MAX_LIST_BYTES
from nutbridge.client.push import MAX_BATCH_BYTES, subscribe
from tests.support.bounds import peak_memory

MB = 1 << 20
FLOOD = 50 * MB

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Hostile:
    """A server whose every connection runs ``scripts[n]`` (the last one for later ones)."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = scripts
        self.connections = 0
        self.sent = 0  # bytes written by stream()
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        script = self.scripts[min(self.connections, len(self.scripts) - 1)]
        self.connections += 1
        self._writers.append(w)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await script(r, w)
        except (ConnectionError, OSError):
            pass  # the client hung up: what these servers are waiting for
        finally:
            w.close()

    async def stream(self, w: asyncio.StreamWriter, chunk: bytes, total: int = FLOOD) -> None:
        """Write ``chunk`` over and over until ``total`` bytes or the client hangs up."""
        while self.sent < total and not w.is_closing():
            w.write(chunk)
            self.sent += len(chunk)
            await w.drain()


@asynccontextmanager
async def hostile(*scripts: Script) -> AsyncIterator[Hostile]:
    h = Hostile(*scripts)
    server = await asyncio.start_server(h._serve, "127.0.0.1", 0)
    h.port = server.sockets[0].getsockname()[1]
    try:
        yield h
    finally:
        server.close()
        for w in h._writers:
            w.close()
        if h._tasks:  # let every script see its connection end (cancelling them logs errors)
            await asyncio.wait(h._tasks, timeout=5)
        await server.wait_closed()


async def _request(r: asyncio.StreamReader) -> bytes:
    line = await r.readline()
    if not line:
        raise ConnectionError("client gone")
    return line


def _answer(data: bytes) -> Script:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            await _request(r)
            w.write(data)
            await w.drain()
    return script


async def _silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while await r.read(4096):
        pass


# ---- NutClient -------------------------------------------------------------------------------

async def test_endless_line_is_a_protocol_error_in_bounded_memory() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _request(r)
        await srv.stream(w, b"VAR ups x " + b"x" * 65526)  # 64 KiB chunks, never a newline

    async with hostile(script) as srv:
        c = NutClient("127.0.0.1", srv.port, timeout=5)
        await c.connect()
        t0 = time.monotonic()
        with peak_memory() as peak, pytest.raises(NutError) as err:
            await c.get_var("ups", "x")
        assert err.value.code == PROTOCOL_ERROR
        assert f"longer than {MAX_LINE} bytes" in str(err.value)
        assert not c.connected  # the stream is out of step: dropped
        assert time.monotonic() - t0 < 5
        assert peak.bytes < MB, peak.bytes
        assert srv.sent < FLOOD  # it stopped reading long before the flood's end


async def test_line_at_the_limit_is_accepted_one_more_byte_is_not() -> None:
    head = b'VAR ups x "'
    fits = head + b"a" * (MAX_LINE - len(head) - 1) + b'"\n'
    assert len(fits) == MAX_LINE + 1  # the newline does not count
    async with hostile(_answer(fits)) as srv, NutClient("127.0.0.1", srv.port, timeout=5) as c:
        assert (await c.get_var("ups", "x")).startswith("aaa")
    too_long = head + b"a" * (MAX_LINE - len(head)) + b'"\n'
    async with hostile(_answer(too_long)) as srv, NutClient("127.0.0.1", srv.port, timeout=5) as c:
        with pytest.raises(NutError) as err:
            await c.get_var("ups", "x")
        assert err.value.code == PROTOCOL_ERROR


async def test_list_without_end_stops_at_the_size_budget() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _request(r)
        w.write(b"BEGIN LIST VAR ups\n")
        lines = b"".join(b'VAR ups v.%04d "%s"\n' % (i, b"v" * 100) for i in range(512))
        await srv.stream(w, lines)

    async with hostile(script) as srv:
        c = NutClient("127.0.0.1", srv.port, timeout=10)
        await c.connect()
        with peak_memory() as peak, pytest.raises(NutError) as err:
            await c.list_var("ups")
        assert err.value.code == PROTOCOL_ERROR
        assert f"larger than {MAX_LIST_BYTES} bytes" in str(err.value)
        assert not c.connected
        # the items of 1 MiB of lines, and no more
        assert peak.bytes < 6 * MB, peak.bytes
        assert srv.sent < FLOOD


async def test_list_that_trickles_for_ever_stops_at_the_timeout() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _request(r)
        w.write(b"BEGIN LIST UPS\n")
        n = 0
        while True:  # each line well within the per-line timeout
            w.write(b'UPS u%d "desc"\n' % n)
            await w.drain()
            n += 1
            await asyncio.sleep(0.05)

    async with hostile(script) as srv:
        c = NutClient("127.0.0.1", srv.port, timeout=1.0)
        await c.connect()
        t0 = time.monotonic()
        with pytest.raises(NutError) as err:
            await c.list_ups()
        elapsed = time.monotonic() - t0
        assert err.value.code == TIMEOUT
        assert 0.9 < elapsed < 3
        assert not c.connected


@pytest.mark.parametrize("garbage", [
    b"\x00\xff\xfe\x80\n",
    b'VAR ups x "unterminated\n',
    b'VAR ups x "a#b"\n',
    b"\xff" * 3000 + b"\n",
    b"\n",
    bytes(random.Random(12).randrange(256) for _ in range(20000)) + b"\n",
])
async def test_garbage_answers_raise_nut_errors(garbage: bytes) -> None:
    async with hostile(_answer(garbage)) as srv, NutClient("127.0.0.1", srv.port, timeout=2) as c:
        for call in (c.get_var("ups", "x"), c.list_var("ups"), c.list_events()):
            with pytest.raises(NutError):
                await call


async def test_garbage_inside_a_list_is_a_protocol_error() -> None:
    noise = bytes(random.Random(7).randrange(256) for _ in range(3000)).replace(b"\n", b"")
    answer = b"BEGIN LIST VAR ups\n" + noise + b"\nEND LIST VAR ups\n"
    async with hostile(_answer(answer)) as srv, NutClient("127.0.0.1", srv.port, timeout=2) as c:
        with pytest.raises(NutError) as err:
            await c.list_var("ups")
        assert err.value.code == PROTOCOL_ERROR


async def test_silent_server_times_out() -> None:
    async with hostile(_silent) as srv:
        c = NutClient("127.0.0.1", srv.port, timeout=0.5)
        await c.connect()
        t0 = time.monotonic()
        with pytest.raises(NutError) as err:
            await c.ver()
        assert err.value.code == TIMEOUT
        assert time.monotonic() - t0 < 2
        assert not c.connected
        # STARTTLS that is never answered fails the connect the same way
        from nutbridge.client import TLSMode, TLSOptions

        c = NutClient("127.0.0.1", srv.port, timeout=0.5, tls=TLSOptions(TLSMode.REQUIRE))
        with pytest.raises(NutError) as err:
            await c.connect()
        assert err.value.code == TIMEOUT


async def test_reconnecting_client_starts_over_after_an_endless_line() -> None:
    async def flood(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _request(r)
        await srv.stream(w, b"y" * 65536)

    async with hostile(flood, _answer(b'VAR ups x "1"\n')) as srv:
        c = ReconnectingClient("127.0.0.1", srv.port, timeout=5)
        await c.connect()
        with pytest.raises(NutError) as err:
            await c.get_var("ups", "x")
        assert err.value.code == PROTOCOL_ERROR  # reported, not retried
        assert await c.get_var("ups", "x") == "1"  # the next request reconnects
        assert srv.connections == 2
        await c.close()


# ---- push (SUBSCRIBE) ------------------------------------------------------------------------

def _batch(n: int) -> bytes:
    return (b"BEGIN UPDATE ups\n" + b'VAR ups battery.charge "%d"\n' % (n % 100)
            + b"STATE ups OK\nEND UPDATE ups\n")


async def test_push_flood_is_read_only_as_fast_as_it_is_consumed() -> None:
    chunk = b"".join(_batch(i) for i in range(1000))

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _request(r)
        w.write(b"OK SUBSCRIBED\n")
        await srv.stream(w, chunk)

    async with hostile(script) as srv:
        with peak_memory() as peak:
            updates = subscribe("127.0.0.1", srv.port, ["ups"], timeout=5)
            got = 0
            async for update in updates:
                assert update.ups == "ups" and "battery.charge" in update.values
                got += 1
                if got == 2000:
                    # a slow consumer: the server fills the socket buffers and stops there
                    await asyncio.sleep(0.5)
                if got == 4000:
                    break
            await updates.aclose()
        assert peak.bytes < 2 * MB, peak.bytes
        assert srv.sent < FLOOD


async def test_push_batch_without_end_stops_at_the_size_budget() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _request(r)
        w.write(b"OK SUBSCRIBED\nBEGIN UPDATE ups\n")
        await srv.stream(w, b"".join(b'VAR ups v.%04d "%s"\n' % (i, b"v" * 200) for i in range(256)))

    async with hostile(script) as srv:
        with peak_memory() as peak, pytest.raises(NutError) as err:
            async for _update in subscribe("127.0.0.1", srv.port, ["ups"], timeout=5):
                pass
        assert err.value.code == PROTOCOL_ERROR
        assert f"larger than {MAX_BATCH_BYTES} bytes" in str(err.value)
        assert peak.bytes < 4 * MB, peak.bytes


async def test_push_endless_line_holds_one_word() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _request(r)
        w.write(b"OK SUBSCRIBED\n")
        await srv.stream(w, b"z" * 65536, 20 * MB)

    async with hostile(script) as srv:
        with peak_memory() as peak, pytest.raises(ConnectionError):
            async for _update in subscribe("127.0.0.1", srv.port, ["ups"], timeout=5):
                pass
        assert srv.sent >= 20 * MB  # all of it went through the tokenizer
        assert peak.bytes < 2 * MB, peak.bytes


async def test_push_silent_server_times_out() -> None:
    async with hostile(_silent) as srv:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            async for _update in subscribe("127.0.0.1", srv.port, ["ups"], timeout=0.5):
                pass
        assert time.monotonic() - t0 < 2
