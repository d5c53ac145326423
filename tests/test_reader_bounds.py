"""Driver readers against devices and peers that flood, babble or stall (issue 12).

For each reader of untrusted bytes (the serial link and its Megatec / APC Smart
drivers, the powermand client, the SNMP session, the USB HID interrupt reader):

(a) what it buffers stays under its cap, whatever the peer sends;
(b) the event loop keeps running other tasks: between two ticks of a 10 ms ticker
    the loop's thread never spends 100 ms of CPU (a Python loop over the flood would),
    and the ticker never waits a whole second (a blocking call would);
(c) the driver goes stale while the peer misbehaves and recovers when it stops.

The floods are 10 MB or more; the bounds are checked on the buffers themselves or
with tracemalloc, never on wall time. The ticker's CPU measure, rather than its wall
gap, is what keeps (b) from flaking on a loaded 2-CPU runner, where the simulator's
thread and the kernel's pty work can keep the loop's thread off a CPU for 100+ ms.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from nutbridge.drivers import serial as serial_mod
from nutbridge.drivers.apcsmart import protocol as apc
from nutbridge.drivers.apcsmart.driver import ApcSmart
from nutbridge.drivers.base import DeviceError, Driver
from nutbridge.drivers.powerman import protocol as pw
from nutbridge.drivers.powerman.driver import PowermanClient, PowermanPDU
from nutbridge.drivers.qx.driver import MegatecDriver
from nutbridge.drivers.serial import MAX_BUFFER, SerialLink
from nutbridge.simulation.apcsmart import ApcSmartSim
from nutbridge.simulation.megatec import MegatecSimulator
from nutbridge.simulation.pty import PtyDevice
from nutbridge.state import Device, DriverState
from tests.support import realnut, serialsim
from tests.support.bounds import peak_memory

MB = 1 << 20
FLOOD = 10 * MB
MAX_BUSY = 0.25  # CPU seconds the loop's thread may spend between two ticks: a per-byte
# Python loop over a flood costs seconds; GC and a loaded machine cost up to ~0.15 s (seen in CI)
MAX_GAP = 1.0  # wall seconds the ticker may wait (descheduling included)
# random line noise (seeded), with CRs and LFs and APC alert characters in it
NOISE = bytes(random.Random(12).randrange(256) for _ in range(4096))


class Ticker:
    """A task that wakes every 10 ms and records the longest wait (wall time) and the most
    CPU time the loop's thread spent between two ticks; runs ``probe`` on every tick."""

    def __init__(self, probe: Callable[[], None] | None = None, period: float = 0.01) -> None:
        self.probe = probe
        self.period = period
        self.max_gap = 0.0
        self.max_busy = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def check(self) -> None:
        assert self.ticks > 0
        assert self.max_busy < MAX_BUSY, f"the loop ran {self.max_busy:.3f}s of CPU between ticks"
        assert self.max_gap < MAX_GAP, f"the ticker waited {self.max_gap:.3f}s"

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last, last_cpu = loop.time(), time.thread_time()
        while True:
            await asyncio.sleep(self.period)
            now, cpu = loop.time(), time.thread_time()
            self.max_gap = max(self.max_gap, now - last)
            self.max_busy = max(self.max_busy, cpu - last_cpu)
            last, last_cpu = now, cpu
            self.ticks += 1
            if self.probe is not None:
                self.probe()


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        await asyncio.sleep(0.02)


@pytest.fixture
def link_peak(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The most bytes any SerialLink held after taking in data (checked on every chunk)."""
    peak = [0]
    original = serial_mod._Receiver.data_received

    def spy(self: Any, data: bytes) -> None:
        original(self, data)
        peak[0] = max(peak[0], self.link.buffered)

    monkeypatch.setattr(serial_mod._Receiver, "data_received", spy)
    return peak


@asynccontextmanager
async def running(driver: Driver) -> AsyncIterator[Driver]:
    task = asyncio.create_task(driver.run())
    try:
        yield driver
    finally:
        driver.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.close()


# ---- serial link ---------------------------------------------------------------------------

class Q1(PtyDevice):
    def handle(self, data: bytes) -> bytes | None:
        return b"(OL\r" if data == b"Q1\r" else None


@pytest.mark.parametrize("pattern", [b"x", NOISE], ids=["endless-line", "noise"])
async def test_serial_link_flood_is_bounded(tmp_path: Path, link_peak: list[int],
                                            pattern: bytes) -> None:
    async with Q1(tmp_path / "ttyUPS0") as sim:
        link = SerialLink(str(sim.link))
        await link.open()
        try:
            async with Ticker() as ticker:
                flood = asyncio.create_task(sim.flood(pattern, FLOOD))
                while not flood.done():  # a driver polling through the flood
                    await link.flush_input()
                    await link.write(b"Q1\r")
                    try:
                        await link.read_until(b"\r", 0.2, 128)
                    except DeviceError:
                        pass
                    await asyncio.sleep(0.02)
                assert await flood == FLOOD
            assert link_peak[0] <= MAX_BUFFER
            ticker.check()
            assert link.counters["garbage"] > 0
            # sane data again: the next request gets its reply
            await link.flush_input()
            await link.write(b"Q1\r")
            assert await link.read_until(b"\r", 1.0) == b"(OL\r"
        finally:
            await link.close()


# ---- serial drivers: stale under a flood, back after it ------------------------------------

async def _flood(sim: serialsim.SimThread[Any], driver: Driver, pattern: bytes,
                 probe: Callable[[], None] | None = None, *, stale: bool = True) -> Ticker:
    """Flood ``sim`` (on its own thread) until FLOOD bytes went out and, with ``stale``,
    the driver went stale; then stop the flood and wait for the driver to be OK again."""
    dev = driver.device
    await until(lambda: dev.driver_state is DriverState.OK, 15, "connected")
    async with Ticker(probe) as ticker:
        flood = sim.submit(sim.device.flood(pattern))
        try:
            if stale:
                await until(lambda: dev.driver_state is DriverState.STALE, 30, "stale")
            await until(lambda: sim.device.flooded >= FLOOD, 60, f"{FLOOD} bytes flooded")
        finally:
            flood.cancel()
        await until(lambda: dev.driver_state is DriverState.OK, 20, "recovered")
    return ticker


@pytest.mark.slow
@pytest.mark.parametrize("pattern", [b"x", NOISE], ids=["endless-line", "noise"])
async def test_megatec_goes_stale_under_a_flood_and_recovers(tmp_path: Path, link_peak: list[int],
                                                             pattern: bytes) -> None:
    with serialsim.running(lambda: MegatecSimulator(tmp_path / "ttyUPS0", speed=0)) as sim:
        drv = MegatecDriver(Device("ups", driver_name="nutdrv_qx"),
                            {"driver": "nutdrv_qx", "port": str(sim.link), "pollinterval": "0.3"})
        async with running(drv):
            ticker = await _flood(sim, drv, pattern)
            assert drv.device.value("ups.status") == "OL"
    assert link_peak[0] <= MAX_BUFFER
    ticker.check()
    assert drv.link.counters["garbage"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("pattern", [b"x", b"!$%+#?=", NOISE], ids=["endless-line", "alerts", "noise"])
async def test_apcsmart_under_a_flood_and_after_it(tmp_path: Path, link_peak: list[int],
                                                   pattern: bytes) -> None:
    # alert characters are protocol: replies that get through between them are good ones,
    # so an alert flood need not make the data stale (the other two always do)
    alerts = [0]
    with serialsim.running(lambda: ApcSmartSim(tmp_path / "ttyUPS0", speed=0)) as sim:
        drv = ApcSmart(Device("apc", driver_name="apcsmart"),
                       {"driver": "apcsmart", "port": str(sim.link), "pollinterval": "0.3"})

        def probe() -> None:
            alerts[0] = max(alerts[0], len(drv.reader.alerts))
            assert len(drv.reader.buf) <= apc.MAX_LINE

        async with running(drv):
            ticker = await _flood(sim, drv, pattern, probe, stale=b"!" not in pattern)
            await until(lambda: drv.device.value("ups.status") == "OL", 10, "OL again")
    assert link_peak[0] <= MAX_BUFFER
    assert alerts[0] <= apc.MAX_ALERTS
    ticker.check()


def test_apcsmart_line_reader_keeps_the_newest_alerts() -> None:
    r = apc.LineReader()
    assert r.feed(b"!" * 10_000 + b"$" + b"x" * 10_000) == []
    assert len(r.alerts) == apc.MAX_ALERTS and r.alerts[-1] == ord("$")
    assert apc.apply_alerts(["OL"], r.take_alerts()) == ["OL"]  # the last one won
    assert r.dropped == 1 and not r.buf  # and the endless line was dropped


# ---- Powerman -----------------------------------------------------------------------------

class Powermand:
    """A powermand that answers well in mode "ok", or: "flood" (every reply an endless
    stream without prompt), "stall" (reads, never answers)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.sent = 0
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Powermand:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for w in self._writers:
            w.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self.server.wait_closed()

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(w)
        try:
            w.write(b"001 2.3.27\r\npowerman> ")
            while line := await r.readline():
                req = line.strip()
                if self.mode == "stall":
                    continue
                if self.mode == "flood":
                    chunk = NOISE.replace(b"powerman> ", b"") * 16
                    while not w.is_closing():
                        w.write(chunk)
                        self.sent += len(chunk)
                        await w.drain()
                    return
                if req == b"exprange":
                    w.write(b"105 Hostrange expansion ON\r\n")
                elif req == b"nodes":
                    w.write(b"307 t0\r\n307 t1\r\n103 Query complete\r\n")
                elif req == b"status":
                    w.write(b"303 t0: on\r\n303 t1: off\r\n103 Query complete\r\n")
                else:
                    w.write(b"201 Unknown command\r\n")
                w.write(b"powerman> ")
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["flood", "stall"])
async def test_powerman_flood_or_stall_goes_stale_and_recovers(mode: str) -> None:
    async with Powermand() as srv:
        drv = PowermanPDU(Device("pdu", driver_name="powerman-pdu"),
                          {"port": f"127.0.0.1:{srv.port}", "pollinterval": "0.2"})
        async with running(drv):
            dev = drv.device
            await until(lambda: dev.driver_state is DriverState.OK, 10, "connected")
            assert dev.value("outlet.1.status") == "on"
            with peak_memory() as peak:
                async with Ticker() as ticker:
                    srv.mode = mode
                    await until(lambda: dev.driver_state is DriverState.STALE, 20, "stale")
                    if mode == "flood":  # a few reconnects, each flooded again
                        await until(lambda: srv.sent >= FLOOD, 60, f"{FLOOD} bytes flooded")
                    srv.mode = "ok"
                    await until(lambda: dev.driver_state is DriverState.OK, 20, "recovered")
        assert dev.value("outlet.2.status") == "off"
        # a connection's reader holds MAX_REPLY and one socket read at most (with a copy while
        # it grows); a dropped connection's buffer lives until the cyclic GC frees it
        assert peak.bytes < 8 * pw.MAX_REPLY, peak.bytes
        ticker.check()


async def test_powerman_endless_reply_is_cut_at_the_limit() -> None:
    async with Powermand() as srv:
        client = PowermanClient("127.0.0.1", srv.port, timeout=10)
        await client.connect()
        srv.mode = "flood"
        with peak_memory() as peak, pytest.raises(DeviceError):
            await client.status()
        assert client._writer is None  # dropped: the rest of the flood answers nothing
        # MAX_REPLY, one socket read more, and a copy while the buffer grows
        assert peak.bytes < 3 * pw.MAX_REPLY, peak.bytes


def test_powerman_replies_are_parsed_at_c_speed() -> None:
    # 1 MiB of what a hostile powermand can put before one prompt: a Python loop per
    # byte or per line here held the event loop for a good part of a second
    lines = b"\n" * (pw.MAX_REPLY - 40) + b"103 Query complete\r\npowerman> "
    assert pw.parse_reply(lines).code == 103
    with pytest.raises(pw.PowermanError, match="unexpected line"):
        pw.parse_reply(b"303 t0: on\n" * 50_000 + b"garbage\n103 ok\npowerman> ")
    with pytest.raises(ValueError, match="bad hostlist"):
        pw.expand_hostlist("a," * 400_000 + "[")


def test_powerman_hostlist_bomb_is_refused() -> None:
    bomb = ",".join(f"n{i}x[0-99999]" for i in range(1000))  # 100 million names
    with peak_memory() as peak, pytest.raises(ValueError, match="more than"):
        pw.expand_hostlist(bomb)
    assert peak.bytes < 32 * MB, peak.bytes
    reply = pw.parse_reply(b"".join(b"302 on: t[0-99999]\r\n" for _ in range(20))
                           + b"103 Query complete\r\npowerman> ")
    with pytest.raises(ValueError, match="more than"):
        pw.parse_status(reply)  # the budget is per reply, not per line
    assert len(pw.expand_hostlist("t[1-100000]")) == pw.MAX_NODES  # the most there may be


# ---- SNMP ---------------------------------------------------------------------------------

COLUMN = (1, 3, 6, 1, 4, 1, 99999, 1, 1)
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


class Agent(asyncio.DatagramProtocol):
    """A v2c agent whose table under COLUMN never ends, and which sprays ``spray``
    garbage datagrams (random bytes, and well-formed responses to requests nobody
    sent) at the manager after every answer."""

    def __init__(self) -> None:
        from pysnmp.proto import api

        self.p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
        self.spray = 0
        self.sprayed = 0
        self.transport: Any = None  # a DatagramTransport (3.11's is not a subclass of it)
        self._rng = random.Random(3)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def _next(self, oid: tuple[int, ...]) -> tuple[int, ...]:
        if oid[:len(COLUMN)] != COLUMN:
            return (*COLUMN, 1)
        return (*COLUMN, (oid[len(COLUMN)] if len(oid) > len(COLUMN) else 0) + 1)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        from pyasn1.codec.ber import decoder, encoder

        p = self.p
        msg, _ = decoder.decode(data, asn1Spec=p.Message())
        pdu = p.apiMessage.get_pdu(msg)
        rsp_msg = p.apiMessage.get_response(msg)
        rsp = p.apiMessage.get_pdu(rsp_msg)
        oids = [tuple(oid) for oid, _val in p.apiPDU.get_varbinds(pdu)]
        vbs: list[tuple[Any, Any]] = []
        if pdu.isSameTypeWith(p.GetBulkRequestPDU()):
            for _ in range(int(p.apiBulkPDU.get_max_repetitions(pdu))):
                oids = [self._next(o) for o in oids]
                vbs += [(p.ObjectIdentifier(o), p.Integer(1)) for o in oids]
        else:
            vbs = [(p.ObjectIdentifier(o), p.ObjectIdentifier("1.3.6.1.4.1.318.1")) for o in oids]
        p.apiPDU.set_varbinds(rsp, vbs)
        self.transport.sendto(encoder.encode(rsp_msg), addr)
        for n in range(self.spray):
            if n % 2:
                p.apiPDU.set_request_id(rsp, self._rng.randrange(1 << 30))
                junk = encoder.encode(rsp_msg)
            else:
                junk = self._rng.randbytes(self._rng.randrange(1, 8192))
            self.transport.sendto(junk, addr)
            self.sprayed += 1


@asynccontextmanager
async def agent() -> AsyncIterator[tuple[Agent, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Agent, local_addr=("127.0.0.1", 0))
    try:
        yield proto, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def test_snmp_walk_of_an_endless_table_stops() -> None:
    realnut.require_module("pysnmp", "nutbridge-ups[snmp]")
    from nutbridge.drivers.snmp.session import MAX_WALK_ROWS, Session

    async with agent() as (_a, port):
        s = await Session.create("127.0.0.1", port, version="v2c", timeout=2, retries=0)
        async with Ticker() as ticker:
            rows = await s.walk(".".join(map(str, COLUMN)))
            assert len(rows) == MAX_WALK_ROWS
            assert len(await s.walk(".".join(map(str, COLUMN)), 30)) == 30
        ticker.check()


@pytest.mark.slow
async def test_snmp_garbage_datagrams_are_dropped_and_nothing_accumulates(
        caplog: pytest.LogCaptureFixture) -> None:
    realnut.require_module("pysnmp", "nutbridge-ups[snmp]")
    from nutbridge.drivers.snmp import session
    from nutbridge.drivers.snmp.session import Session

    async with agent() as (ag, port):
        s = await Session.create("127.0.0.1", port, version="v2c", timeout=2, retries=0)
        assert await s.sysobjectid() == "1.3.6.1.4.1.318.1"
        ag.spray = 50
        for _ in range(20):  # warm up pysnmp's caches under the same load
            await s.sysobjectid()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            async with Ticker() as ticker:
                for _ in range(100):
                    assert await s.sysobjectid() == "1.3.6.1.4.1.318.1"
            await asyncio.sleep(0.2)  # the last sprays are read and dropped
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert ag.sprayed >= 5000  # about 10 MB (what the socket buffer overflows is lost)
        assert grown < 1 * MB, grown
        ticker.check()
    # some garbage makes pyasn1 raise: dropped and counted, no traceback per datagram
    assert session.undecodable > 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_snmp_absurd_outlet_counts_are_capped() -> None:
    realnut.require_module("pysnmp", "nutbridge-ups[snmp]")
    from nutbridge.drivers.snmp.mapper import MAX_OUTLETS, Mapper
    from nutbridge.drivers.snmp.session import SnmpValue
    from nutbridge.drivers.snmp.table import OUTLET, Mib, Row

    m = Mapper(Mib("t", "0.1", (Row("outlet.count", "4.1.0"),
                                Row("outlet.%i.status", "4.2.1.3.%i", flags=OUTLET)), ()))
    for count, expanded in ((10**12, MAX_OUTLETS), (-5, 0), (3, 3)):
        m.learn_counts(m.apply({"4.1.0": SnmpValue("int", count)}, init=True))
        assert len(m.template_oids()) == expanded
    m.learn_counts({"outlet.count": "inf", "input.phases": "inf"})  # not a number: no outlets
    assert m.template_oids() == []


def test_snmp_binary_strings_render_at_c_speed() -> None:
    realnut.require_module("pysnmp", "nutbridge-ups[snmp]")
    from nutbridge.drivers.snmp.session import SnmpValue

    big = SnmpValue("str", bytes(range(256)) * 256)  # 64 KiB: a whole datagram's worth
    text = big.text
    assert text.startswith("00 01 02") and text.endswith("FE FF") and len(text) == 3 * 65536 - 1


# ---- USB HID ------------------------------------------------------------------------------

def _hid_ups() -> bytes:
    from tests.support.hidbuild import FieldSpec, build

    return build([
        FieldSpec("UPS.PowerSummary.RemainingCapacity", "Feature", report_id=1, logical_max=100),
        FieldSpec("UPS.PowerSummary.RemainingCapacity", "Input", report_id=1, logical_max=100),
        FieldSpec("UPS.PowerSummary.PresentStatus.ACPresent", "Feature", report_id=3, size=1,
                  logical_max=1),
        FieldSpec("UPS.PowerSummary.PresentStatus.ACPresent", "Input", report_id=3, size=1,
                  logical_max=1),
        FieldSpec("UPS.PowerSummary.PresentStatus", "Feature", report_id=3, size=7, pad=True),
        FieldSpec("UPS.PowerSummary.PresentStatus", "Input", report_id=3, size=7, pad=True),
    ])


@pytest.mark.slow
async def test_hid_interrupt_flood_then_stall_then_recovery(monkeypatch: pytest.MonkeyPatch) -> None:
    realnut.require_module("usb", "pyusb: nutbridge-ups[usb]")
    from nutbridge.drivers.usbhid import driver as usbhid
    from nutbridge.simulation.fakeusb import FakeBackend, FakeHidDevice

    dev = FakeHidDevice(_hid_ups(), vendor_id=0x0764, product_id=0x0501,
                        features={1: b"\x01\x64", 3: b"\x03\x01"})
    monkeypatch.setattr(usbhid, "backend", FakeBackend([dev]))
    drv = usbhid.UsbHid(Device("ups", driver_name="usbhid-ups"),
                        {"driver": "usbhid-ups", "port": "auto", "vendorid": "0764",
                         "pollinterval": "0.2"})
    rng = random.Random(5)
    async with running(drv):
        ups = drv.device
        await until(lambda: ups.value("battery.charge") == "100", 15, "connected")
        pending = [0]

        def probe() -> None:  # the transport never has more than one read in flight
            t = drv.transport
            if t is not None:
                pending[0] = max(pending[0], t._intr._work_queue.qsize())

        with peak_memory() as peak:
            async with Ticker(probe) as ticker:
                # 10 000 reports: garbage of every size (oversized ones answer EOVERFLOW),
                # unknown IDs, and good ones; the device queues them, as its endpoint would
                start = drv.interrupt_reports
                for n in range(10_000):
                    kind = n % 4
                    if kind == 0:
                        data = rng.randbytes(rng.randrange(1, 200))
                    elif kind == 1:
                        data = bytes([rng.randrange(4, 256)]) + rng.randbytes(3)
                    else:
                        data = bytes([1, n % 101])
                    dev.push_interrupt(data)
                    if n % 500 == 499:  # let the reader catch up: the device side stays small
                        await until(lambda: not dev._queue, 30, "interrupt queue drained")
                await until(lambda: not dev._queue, 30, "interrupt queue drained")
                assert drv.interrupt_reports - start > 5000
                dev.push_interrupt(b"\x01\x2a")
                await until(lambda: ups.value("battery.charge") == "42", 5, "latest report applied")
        assert pending[0] <= 1
        assert peak.bytes < 4 * MB, peak.bytes
        ticker.check()
        # a UPS that stops answering goes stale, and comes back
        dev.features[1] = b"\x01\x37"
        dev.hang = True
        await until(lambda: ups.driver_state is DriverState.STALE, 20, "stale")
        dev.hang = False
        await until(lambda: ups.driver_state is DriverState.OK
                    and ups.value("battery.charge") == "55", 20, "recovered")
