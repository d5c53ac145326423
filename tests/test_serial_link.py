"""SerialLink against a real pty (PtyDevice): I/O helpers, timeouts, faults, reopen by the run loop."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from nutbridge.drivers.base import DeviceError, Driver
from nutbridge.drivers.serial import SerialLink, SerialTimeout
from nutbridge.simulation import main as sim_main
from nutbridge.simulation.pty import PtyDevice
from nutbridge.state import Device, DriverState
from tests.support import serialsim

REPO = Path(__file__).resolve().parent.parent


class LineSim(PtyDevice):
    """Answers ``Q1\\r`` with ``(<status>\\r``; echoes anything else in brackets."""

    def __init__(self, link: Path) -> None:
        super().__init__(link)
        self.status = "OL"

    def handle(self, data: bytes) -> bytes | None:
        if data == b"Q1\r":
            return f"({self.status}\r".encode()
        if data == b"NOREPLY\r":
            return None
        return b"[" + data


class ByteSim(PtyDevice):
    """APC-like framing: one byte per request."""

    terminator = None

    def handle(self, data: bytes) -> bytes | None:
        return data.upper() + b"\r\n"


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[LineSim]:
    dev = LineSim(tmp_path / "ttyUPS0")
    await dev.start()
    yield dev
    await dev.stop()


@pytest.fixture
async def link(sim: LineSim) -> AsyncIterator[SerialLink]:
    lk = SerialLink(str(sim.link))
    await lk.open()
    yield lk
    await lk.close()


# ---- I/O helpers ----------------------------------------------------------------------

async def test_request_reply(sim: LineSim, link: SerialLink) -> None:
    assert link.is_open
    assert sim.link.is_symlink() and os.readlink(sim.link).startswith("/dev/pts/")
    await link.write(b"Q1\r")
    assert await link.read_until(b"\r", 1.0) == b"(OL\r"
    await link.write(b"ABC\rDEF\r")
    assert await link.read_until(b"\r", 1.0) == b"[ABC\r"
    assert await link.read_exactly(3, 1.0) == b"[DE"
    assert await link.read_available(0.5) == b"F\r"
    assert sim.received == [b"Q1\r", b"ABC\r", b"DEF\r"]
    assert link.counters == {"garbage": 0, "timeouts": 0, "reopens": 0}


async def test_byte_framing(tmp_path: Path) -> None:
    async with ByteSim(tmp_path / "ttyAPC") as dev:
        lk = SerialLink(str(dev.link), baudrate=2400)
        await lk.open()
        await lk.write(b"Yb")
        assert await lk.read_until(b"\r\n", 1.0) == b"Y\r\n"
        assert await lk.read_until(b"\r\n", 1.0) == b"B\r\n"
        assert dev.received == [b"Y", b"b"]
        await lk.close()


async def test_missing_port_is_a_device_error(tmp_path: Path) -> None:
    lk = SerialLink(str(tmp_path / "nope"))
    with pytest.raises(DeviceError, match=r"cannot open serial port .*nope"):
        await lk.open()
    assert not lk.is_open
    with pytest.raises(DeviceError, match="not open"):
        await lk.write(b"Q1\r")


async def test_port_is_locked_like_nut_does(sim: LineSim, link: SerialLink) -> None:
    other = SerialLink(str(sim.link))
    with pytest.raises(DeviceError, match="locked by another process"):
        await other.open()
    shared = SerialLink(str(sim.link), exclusive=False)  # NUT's "nolock"
    await shared.open()
    await shared.close()
    await link.close()
    await other.open()  # released on close
    await other.close()


async def test_timeouts_are_counted_and_leave_the_port_usable(sim: LineSim, link: SerialLink) -> None:
    await link.write(b"NOREPLY\r")
    t0 = time.monotonic()
    with pytest.raises(SerialTimeout, match="no reply ending in"):
        await link.read_until(b"\r", 0.3)
    assert 0.25 < time.monotonic() - t0 < 2.0
    with pytest.raises(SerialTimeout):
        await link.read_exactly(1, 0.1)
    assert await link.read_available(0.1) == b""
    assert link.counters["timeouts"] == 2
    assert link.is_open
    await link.write(b"Q1\r")
    assert await link.read_until(b"\r", 1.0) == b"(OL\r"


async def test_silence(sim: LineSim, link: SerialLink) -> None:
    sim.silence(True)
    await link.write(b"Q1\r")
    with pytest.raises(SerialTimeout):
        await link.read_until(b"\r", 0.3)
    assert sim.received == [b"Q1\r"]  # heard, not answered
    sim.silence(False)
    await link.write(b"Q1\r")
    assert await link.read_until(b"\r", 1.0) == b"(OL\r"


async def test_oversize_line_is_dropped(sim: LineSim, link: SerialLink) -> None:
    sim.send_unsolicited(b"x" * 100)
    with pytest.raises(DeviceError, match="within 64 bytes"):
        await link.read_until(b"\r", 1.0, max_len=64)
    assert link.counters["garbage"] == 1
    await link.flush_input()
    await link.write(b"Q1\r")
    assert await link.read_until(b"\r", 1.0) == b"(OL\r"


async def test_garbage_and_flush(sim: LineSim, link: SerialLink) -> None:
    sim.garbage(5)  # noise in front of the next reply (may itself contain a "\r")
    await link.write(b"Q1\r")
    got = b""
    while not got.endswith(b"(OL\r"):
        got += await link.read_until(b"\r", 1.0)
    assert len(got) == 5 + 4
    sim.garbage(20, now=True)  # noise on an idle line
    await asyncio.sleep(0.1)
    await link.flush_input()
    await link.write(b"Q1\r")
    assert await link.read_until(b"\r", 1.0) == b"(OL\r"


async def test_slow_replies(sim: LineSim, link: SerialLink) -> None:
    sim.slow(0.05)  # 4 bytes: ~0.2 s
    await link.write(b"Q1\r")
    with pytest.raises(SerialTimeout):
        await link.read_until(b"\r", 0.08)
    assert await link.read_until(b"\r", 1.0) == b"(OL\r"  # the rest arrives: no byte lost
    t0 = time.monotonic()
    await link.write(b"Q1\r")
    assert await link.read_until(b"\r", 1.0) == b"(OL\r"
    assert time.monotonic() - t0 >= 0.12  # 3 inter-byte delays


async def test_unsolicited_bytes(sim: LineSim, link: SerialLink) -> None:
    sim.send_unsolicited(b"!")
    assert await link.read_exactly(1, 1.0) == b"!"


async def test_dtr_rts_on_a_pty_is_not_fatal(sim: LineSim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "nutbridge.drivers.serial")
    lk = SerialLink(str(sim.link), dtr=True, rts=False)
    for _ in range(3):
        await lk.open()
        await lk.write(b"Q1\r")
        assert await lk.read_until(b"\r", 1.0) == b"(OL\r"
        await lk.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings  # once, not on every reopen
    assert "cannot set DTR=1" in warnings[0] and str(sim.link) in warnings[0]
    assert lk.counters["reopens"] == 2


async def test_unplug_replug(sim: LineSim, link: SerialLink) -> None:
    sim.unplug()
    assert not sim.link.exists()
    t0 = time.monotonic()
    with pytest.raises(DeviceError) as err:
        await link.write(b"Q1\r")
        await link.read_until(b"\r", 5.0)
    assert not isinstance(err.value, SerialTimeout)  # a hang-up, seen at once
    assert time.monotonic() - t0 < 1.0
    assert not link.is_open
    await link.close()
    with pytest.raises(DeviceError, match="cannot open"):
        await link.open()
    sim.replug()
    await link.open()
    await link.write(b"Q1\r")
    assert await link.read_until(b"\r", 1.0) == b"(OL\r"
    assert link.counters["reopens"] == 1


# ---- the driver run loop: stale on unplug, recovers by reopening ---------------------------

class LineDriver(Driver):
    names = ("test-serial",)

    def __init__(self, device: Device, port: str) -> None:
        super().__init__(device, {"port": port, "pollinterval": "0.1"})
        self.link = SerialLink(port, dtr=True, rts=False)
        self.opened_at = 0.0
        self.first_data: list[float] = []  # open -> first good reply, per connection

    async def connect(self) -> None:
        await self.link.open()
        self.opened_at = time.monotonic()

    async def update(self) -> None:
        await self.link.flush_input()
        await self.link.write(b"Q1\r")
        frame = await self.link.read_until(b"\r", 1.0)
        if not frame.startswith(b"("):
            self.link.counters["garbage"] += 1
            raise DeviceError(f"bad frame {frame!r}")
        if self.opened_at:
            self.first_data.append(time.monotonic() - self.opened_at)
            self.opened_at = 0.0
        self.device.set("ups.status", frame[1:-1].decode())

    async def close(self) -> None:
        await self.link.close()


async def _until(cond: Callable[[], bool], timeout: float) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


async def test_driver_goes_stale_and_recovers(sim: LineSim, capsys: pytest.CaptureFixture[str]) -> None:
    dev = Device("ups")
    drv = LineDriver(dev, str(sim.link))
    task = asyncio.create_task(drv.run())
    try:
        await _until(lambda: dev.driver_state is DriverState.OK, 5)
        assert dev.value("ups.status") == "OL"
        results = []
        for outage in (0.2, 2.0):
            sim.unplug()
            detect = await _until(lambda: dev.driver_state is DriverState.STALE, 5)
            await asyncio.sleep(outage)
            sim.status = "OB"
            t0 = time.monotonic()
            sim.replug()
            await _until(lambda: dev.driver_state is DriverState.OK, 10)
            recovered = time.monotonic() - t0
            assert dev.value("ups.status") == "OB"
            results.append((outage, detect, recovered, drv.first_data[-1]))
            drv.first_data.clear()
            sim.status = "OL"
        assert drv.link.counters["reopens"] >= 2
        assert drv.reconnects == 2
        for _outage, detect, recovered, first in results:
            assert detect < 1.0
            assert recovered < 10.0  # the target
            assert first < 0.5
        with capsys.disabled():
            for outage, detect, recovered, first in results:
                print(f"\n[serial recovery] unplugged {outage:.1f}s: stale after {detect * 1000:.0f} ms, "
                      f"replug->data {recovered * 1000:.0f} ms (backoff included), "
                      f"reopen->data {first * 1000:.1f} ms", end="")
    finally:
        drv.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_driver_survives_garbage(sim: LineSim) -> None:
    dev = Device("ups")
    drv = LineDriver(dev, str(sim.link))
    task = asyncio.create_task(drv.run())
    try:
        await _until(lambda: dev.driver_state is DriverState.OK, 5)
        sim.garbage(3)
        sim.send_unsolicited(b"x" * 600)  # a runaway line
        await _until(lambda: drv.failures > 0 or drv.link.counters["garbage"] > 0, 5)
        await _until(lambda: dev.driver_state is DriverState.OK and drv.failures == 0, 10)
        assert dev.value("ups.status") == "OL"
    finally:
        drv.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ---- test support and CLI ----------------------------------------------------------------

def test_serialsim_thread(tmp_path: Path) -> None:
    async def roundtrip(port: str) -> bytes:
        lk = SerialLink(port)
        await lk.open()
        try:
            await lk.write(b"Q1\r")
            return await lk.read_until(b"\r", 2.0)
        finally:
            await lk.close()

    with serialsim.running(lambda: LineSim(tmp_path / "ttyUPS0")) as s:
        assert asyncio.run(roundtrip(str(s.link))) == b"(OL\r"
        s.call(setattr, s.device, "status", "OB LB")
        assert asyncio.run(roundtrip(str(s.link))) == b"(OB LB\r"
        assert s.received() == [b"Q1\r", b"Q1\r"]
        s.call(s.device.unplug)
        assert not s.link.exists()
        s.call(s.device.replug)
        assert asyncio.run(roundtrip(str(s.link))) == b"(OB LB\r"
    assert not (tmp_path / "ttyUPS0").exists()


def test_simulate_cli_usage() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "bridge"))
    top = subprocess.run([sys.executable, "-m", "nutbridge", "--help"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert "simulate" in top.stdout
    bad = subprocess.run([sys.executable, "-m", "nutbridge", "simulate", "nosuch", "--link", "/x"],
                         env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "nutbridge", "simulate", "megatec", "--link", "/x",
                          "-o", "novalue"], env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "expected KEY=VALUE" in bad.stderr


@pytest.mark.parametrize("protocol", sim_main.PROTOCOLS)
def test_simulate_cli_serves_a_pty(protocol: str, tmp_path: Path) -> None:
    sim_main.simulator_class(protocol)  # our own module: it must import (no skip)
    link = tmp_path / "ttyUPS0"
    env = dict(os.environ, PYTHONPATH=str(REPO / "bridge"))
    proc = subprocess.Popen([sys.executable, "-m", "nutbridge", "simulate", protocol, "--link", str(link),
                             "--speed", "10"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert str(link) in line, line
        assert link.is_symlink()
        probe = b"Q1\r" if protocol == "megatec" else b"Y"

        async def ask() -> bytes:
            lk = SerialLink(str(link))
            await lk.open()
            try:
                await lk.write(probe)
                return await lk.read_available(2.0)
            finally:
                await lk.close()

        assert asyncio.run(ask())  # the protocol answers something
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert not link.exists()
