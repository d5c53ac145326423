"""upsd's GET VAR answer cache (Core.answers) never answers what handle() would not.

Two servers over the same devices, one with the cache and one without, get the
same random mix of requests (whole lines, lines split across reads, pipelined
lines) and of changes (values, staleness by the driver or by age, the FSD latch,
a UPS dropped by a reload); every answer must be the same byte for byte.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from nutbridge.config.upsd_conf import UpsdConf
from nutbridge.config.users import Users
from nutbridge.server.core import Core
from nutbridge.server.upsd import Connection, Upsd
from nutbridge.state import Device


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()

    def get_extra_info(self, key: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if key == "peername" else default

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data


def _device(name: str) -> Device:
    dev = Device(name, "test", "dummy-ups")
    with dev.batch():
        dev.set("ups.status", "OL")
        dev.set("battery.charge", "100")
        dev.set("ups.id", 'a "quoted" #id')
    dev.data_ok()
    return dev


class NoStore(dict[tuple[str, ...], Any]):
    def __setitem__(self, key: tuple[str, ...], value: Any) -> None:
        pass


class Server:
    made: list[Server] = []
    def __init__(self, devices: list[Device], cache: bool) -> None:
        self.core = Core(devices, Users(), UpsdConf())
        upsd = Upsd(self.core, UpsdConf())
        if not cache:  # neither the lone-line cache nor the one for pipelined lines
            self.core.remember = lambda *args: None  # type: ignore[method-assign]
            upsd.answers_by_words = NoStore()
        self.conn = Connection(upsd)
        self.loop = asyncio.new_event_loop()
        Server.made.append(self)
        self.t = FakeTransport()
        self.conn.connection_made(self.t)  # type: ignore[arg-type]

    def send(self, data: bytes) -> bytes:
        """Deliver one read and run the loop until the connection has no turn queued."""
        async def deliver() -> None:
            self.conn.data_received(data)
            for _ in range(1000):
                if not self.conn.server.heavy:
                    return
                await asyncio.sleep(0)
            raise AssertionError("queued turns never ran")

        self.loop.run_until_complete(deliver())
        return self.t.take()


REQUESTS = [
    b"GET VAR ups ups.status\n", b"GET VAR ups battery.charge\n", b"GET VAR UPS Battery.Charge\n",
    b"GET VAR ups ups.id\n", b"GET VAR ups nosuch.var\n", b"GET VAR other ups.status\n",
    b"GET VAR ups server.version\n", b"GET VAR gone ups.status\n",
]


@pytest.fixture(autouse=True)
def _close_loops() -> Iterator[None]:
    yield
    for srv in Server.made:
        srv.loop.close()
    Server.made.clear()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def test_cache_hits_and_follows_changes(clock: list[float]) -> None:
    ups = _device("ups")
    srv = Server([ups], cache=True)
    req = b"GET VAR ups battery.charge\n"
    assert srv.send(req) == b'VAR ups battery.charge "100"\n'
    assert req in srv.core.answers
    assert srv.send(req) == b'VAR ups battery.charge "100"\n'
    ups.set("battery.charge", 99)
    assert srv.send(req) == b'VAR ups battery.charge "99"\n'
    clock[0] += UpsdConf().maxage + 2  # no word from the driver: stale by age
    assert srv.send(req) == b"ERR DATA-STALE\n"
    ups.data_ok()
    assert srv.send(req) == b'VAR ups battery.charge "99"\n'
    # the tail of a split line is not a request of its own
    assert srv.send(b"GET VAR ups") == b""
    assert srv.send(b" battery.charge\n") == b'VAR ups battery.charge "99"\n'
    assert srv.send(b"GET ") == b""
    assert srv.send(b"VAR ups battery.charge\n") == b'VAR ups battery.charge "99"\n'
    assert srv.send(b"VAR ups battery.charge\n") == b"ERR UNKNOWN-COMMAND\n"
    # a cached line arriving while another line is unfinished belongs to that line
    assert srv.send(b"GET VAR ups") == b""
    assert srv.send(req) == b"ERR UNKNOWN-UPS\n"  # "GET VAR upsGET VAR ups ..."


@pytest.mark.parametrize("seed", range(20))
def test_cache_answers_as_handle_would(clock: list[float], seed: int) -> None:
    rng = random.Random(seed)
    devs = [_device("ups"), _device("other"), _device("gone")]
    with_cache, without = Server(devs, cache=True), Server(devs, cache=False)
    for step in range(600):
        r = rng.random()
        if r < 0.08:
            name = rng.choice(["battery.charge", "ups.status", "ups.id"])
            rng.choice(devs).set(name, rng.choice(["1", "OL", "OB LB", "x"]))
        elif r < 0.10:
            rng.choice(devs).data_stale()
        elif r < 0.12:
            rng.choice(devs).data_ok()
        elif r < 0.13:
            rng.choice(devs).latch_fsd()
        elif r < 0.15:
            clock[0] += rng.choice([1.0, 10.0, 20.0])
        elif r < 0.16 and devs[2] in with_cache.core.devices:
            for s in (with_cache, without):
                s.core.remove_device(devs[2])
        else:
            req = rng.choice(REQUESTS)
            if rng.random() < 0.2:
                req += rng.choice(REQUESTS)  # pipelined
            if rng.random() < 0.15:
                cut = rng.randrange(1, len(req))
                # split across reads, or only the head: the next request then
                # continues this line and must not be answered from the cache
                parts = [req[:cut], req[cut:]] if rng.random() < 0.7 else [req[:cut]]
            else:
                parts = [req]
            for part in parts:
                a, b = with_cache.send(part), without.send(part)
                assert a == b, f"step {step}: {part!r}: cache {a!r}, handle {b!r}"
    assert with_cache.core.answers, "the cache was never used"
    assert with_cache.conn.server.answers_by_words, "the cache of pipelined lines was never used"
