"""The dummy-ups repeater against a real C upsd serving a real C dummy-ups."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from nutbridge.drivers import create_driver
from nutbridge.drivers.base import ConfigError, Status
from nutbridge.drivers.repeater.driver import Repeater, _flags, parse_target
from nutbridge.state import Device, DriverState
from tests.support import realnut

pytestmark = pytest.mark.interop

SOURCE = "battery.charge: 50\nups.id: abc\nfoo: bar\nups.status: OL CHRG\n"


def test_parse_target() -> None:
    assert parse_target("ups@host") == ("ups", "host", 3493)
    assert parse_target("ups@10.0.0.1:3494") == ("ups", "10.0.0.1", 3494)
    assert parse_target("ups@[::1]:3495") == ("ups", "::1", 3495)
    with pytest.raises(ConfigError):
        parse_target("nohost")


def test_type_words() -> None:
    assert _flags(("RW", "STRING:16")) == (True, True, 16)
    assert _flags(("NUMBER",)) == (False, False, None)
    assert _flags(("RW", "ENUM", "STRING:3")) == (True, True, 3)
    assert _flags(("ENUM",)) == (True, False, None)  # pre-2.8 servers: one word


def _source(tmp_path: Path) -> realnut.NutConfig:
    realnut.require_daemon("upsd")
    realnut.require_daemon("dummy-ups")
    cfg = realnut.NutConfig(tmp_path / "c")
    cfg.etc.mkdir(parents=True, exist_ok=True)
    (cfg.etc / "src.dev").write_text(SOURCE)
    cfg.add_ups("src", driver="dummy-ups", port="src.dev")
    return cfg


@asynccontextmanager
async def repeater(port: int, **opts: str) -> AsyncIterator[Repeater]:
    cfg = {"driver": "dummy-ups", "port": f"src@127.0.0.1:{port}", "pollinterval": "0.2",
           "username": "admin", "password": "s3cr3t", **opts}
    drv = create_driver(Device("rep"), cfg)
    assert isinstance(drv, Repeater)
    task = asyncio.create_task(drv.run())
    try:
        yield drv
    finally:
        drv.stop()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await drv.close()


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


def c_get(port: int, var: str) -> str:
    return realnut.query(port, f"GET VAR src {var}").decode()


async def test_mirrors_and_forwards(tmp_path: Path) -> None:
    cfg = _source(tmp_path)
    with realnut.c_upsd(cfg):
        async with repeater(cfg.port) as drv:
            dev = drv.device
            await until(lambda: dev.driver_state is DriverState.OK)
            assert dev.value("battery.charge") == "50"
            assert dev.value("ups.status") == "OL CHRG"
            assert dev.value("ups.mfr") == "Dummy Manufacturer"
            # types copied from the remote, not re-derived
            ups_id, charge = dev.get("ups.id"), dev.get("battery.charge")
            assert ups_id is not None and ups_id.type_words() == ["RW", "STRING:16"]
            assert charge is not None and charge.type_words() == ["RW", "NUMBER"]
            remote = realnut.query(cfg.port, "LIST CMD src").decode().splitlines()
            assert dev.commands() == [ln.split()[2] for ln in remote if ln.startswith("CMD ")]
            assert "load.off" in dev.commands()
            # driver.* are ours
            assert dev.value("driver.name") == "dummy-ups"
            assert dev.value("driver.parameter.mode") == "repeater"
            assert dev.value("driver.parameter.port") == f"src@127.0.0.1:{cfg.port}"
            assert dev.get("driver.parameter.password") is None
            assert dev.get("driver.parameter.username") is None

            # SET is forwarded, and the remote's change comes back on the next poll
            assert await drv.setvar("foo", "baz qux") == Status.HANDLED
            assert c_get(cfg.port, "foo") == 'VAR src foo "baz qux"\n'
            await until(lambda: dev.value("foo") == "baz qux", 3)
            # SET "" deletes on a dummy-ups: the variable disappears here too
            assert await drv.setvar("foo", "") == Status.HANDLED
            await until(lambda: dev.get("foo") is None, 3)

            # INSTCMD is forwarded; C dummy-ups answers "unknown" for load.off,
            # and the TRACKING result carries that back
            assert await drv.instcmd("load.off", None) == Status.UNKNOWN
            log = (cfg.run / "upsd.log").read_text()
            assert "did load.off on src" in log

            # remote refusals map to statuses
            assert await drv.setvar("driver.name", "x") == Status.INVALID  # READONLY
            assert await drv.instcmd("no.such.cmd", None) == Status.UNKNOWN


async def test_without_credentials_commands_fail(tmp_path: Path) -> None:
    cfg = _source(tmp_path)
    with realnut.c_upsd(cfg):
        async with repeater(cfg.port, username="", password="") as drv:
            await until(lambda: drv.device.driver_state is DriverState.OK)
            assert await drv.setvar("foo", "x") == Status.FAILED
            assert c_get(cfg.port, "foo") == 'VAR src foo "bar"\n'


async def test_stale_and_recovery(tmp_path: Path) -> None:
    """Stop the C upsd: stale. Start it again: we recover without a restart."""
    cfg = _source(tmp_path)
    async with repeater_on(cfg) as drv:
        dev = drv.device
        with realnut.c_upsd(cfg):
            await until(lambda: dev.driver_state is DriverState.OK)
        # upsd and its driver are stopped now
        t_stale = await until(lambda: dev.driver_state is DriverState.STALE, 5)
        with realnut.c_upsd(cfg):
            t_back = await until(lambda: dev.driver_state is DriverState.OK, 10)
            assert dev.value("battery.charge") == "50"
        print(f"stale after {t_stale:.2f}s, recovered {t_back:.2f}s after the C upsd was ready")
        assert t_back < 5


async def test_remote_driver_loss_is_stale(tmp_path: Path) -> None:
    """The remote upsd stays up but its driver dies: DRIVER-NOT-CONNECTED -> stale."""
    cfg = _source(tmp_path)
    drv_exe = realnut.require_daemon("dummy-ups")
    with realnut.c_upsd(cfg, drivers=False):
        proc = _start_driver(cfg, drv_exe)
        try:
            async with repeater_on(cfg) as rep:
                dev = rep.device
                await until(lambda: dev.driver_state is DriverState.OK)
                proc.terminate()
                proc.wait(5)
                await until(lambda: dev.driver_state is DriverState.STALE, 10)
                proc = _start_driver(cfg, drv_exe)
                await until(lambda: dev.driver_state is DriverState.OK, 15)
        finally:
            proc.terminate()
            proc.wait(5)


def _start_driver(cfg: realnut.NutConfig, exe: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([exe, "-a", "src", "-F", "-u", "root"], env=cfg.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def repeater_on(cfg: realnut.NutConfig) -> AbstractAsyncContextManager[Repeater]:
    return repeater(cfg.port)
