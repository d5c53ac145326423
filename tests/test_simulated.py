"""The embedded simulated UPS: physics, commands, writable variables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from nutbridge.drivers import create_driver
from nutbridge.drivers.base import ConfigError, Status
from nutbridge.drivers.simulated.driver import SimulatedUPS
from nutbridge.simulation.model import Params, SimUPS
from nutbridge.state import Device, DriverState


def sim(**opts: str) -> SimulatedUPS:
    drv = create_driver(Device("sim"), {"driver": "nutbridge-sim", "port": "auto", **opts})
    assert isinstance(drv, SimulatedUPS)
    return drv


async def started(**opts: str) -> SimulatedUPS:
    drv = sim(**opts)
    await drv.connect()
    await drv.update()
    return drv


def run_until(m: SimUPS, cond: Callable[[], bool], limit: float = 20_000) -> float:
    t0 = m.now
    while not cond():
        m.advance(1)
        assert m.now - t0 < limit, "condition never reached"
    return m.now - t0


# ---- physics (model alone, simulated seconds) --------------------------------------


def test_mains_loss_discharge_lb_and_off() -> None:
    m = SimUPS(Params(), load_w=300)
    assert m.status_tokens() == ["OL"]
    m.set_mains(False)
    m.advance(1)
    assert m.status_tokens() == ["OB", "DISCHRG"]
    assert m.input_voltage == 0 and m.input_frequency == 0
    c1, r1 = m.charge, m.runtime()
    m.advance(60)
    assert m.charge < c1 and m.runtime() < r1
    # at this load LB comes from the charge (10 %) before the runtime (120 s)
    run_until(m, lambda: "LB" in m.status_tokens())
    assert m.charge <= m.charge_low and m.runtime() > m.runtime_low
    assert m.output_on
    t_off = run_until(m, lambda: not m.output_on)
    assert m.charge == 0 and m.status_tokens() == ["OB", "OFF", "LB"]
    assert 100 < t_off < 200  # the last 120 s of runtime, give or take rounding
    # mains returns: charging at once, output back after ups.delay.start
    m.set_mains(True)
    m.advance(1)
    assert m.status_tokens()[:3] == ["OL", "CHRG", "OFF"]
    run_until(m, lambda: m.output_on)
    assert m.status_tokens()[:2] == ["OL", "CHRG"]
    run_until(m, lambda: m.charge >= 100, limit=4 * 3600)
    assert m.status_tokens() == ["OL"]


def test_runtime_follows_load() -> None:
    light, heavy = SimUPS(Params(), load_w=100), SimUPS(Params(), load_w=800)
    assert light.runtime() > 5 * heavy.runtime()
    assert round(heavy.runtime()) == round(150 * 0.9 * 3600 / 800)


def test_lb_from_runtime_threshold() -> None:
    m = SimUPS(Params(), load_w=850, charge=40)
    m.set_mains(False)
    run_until(m, lambda: "LB" in m.status_tokens())
    assert m.runtime() <= m.runtime_low and m.charge > m.charge_low


def test_overload_trim_boost_and_transfer() -> None:
    m = SimUPS(Params(), load_w=1000)
    assert "OVER" in m.status_tokens()
    m.load_w = 300
    m.mains_voltage = 255
    assert m.status_tokens() == ["OL", "TRIM"] and m.output_voltage() < 240
    m.mains_voltage = 195
    assert m.status_tokens() == ["OL", "BOOST"] and m.output_voltage() > 210
    m.mains_voltage = 170  # below input.transfer.low: on battery
    m.advance(1)
    assert m.status_tokens() == ["OB", "DISCHRG"]


def test_deterministic_given_seed() -> None:
    def trace(seed: int) -> list[tuple[float, float, float]]:
        m = SimUPS(Params(seed=seed))
        out = []
        for i in range(50):
            if i == 20:
                m.set_mains(False)
            m.advance(7)
            out.append((m.input_voltage, m.charge, m.temperature))
        return out

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


def test_noise_is_small() -> None:
    m = SimUPS(Params(voltage_nominal=120, frequency_nominal=60))
    for _ in range(100):
        m.advance(1)
        assert abs(m.input_voltage - 120) <= 1 and abs(m.input_frequency - 60) <= 0.1


def test_shutdown_return_cycle() -> None:
    m = SimUPS(Params())
    m.set_mains(False)
    m.shutdown("return")
    assert m.timer_value(m.timer_shutdown) == 20
    m.advance(19)
    assert m.output_on
    m.advance(1)
    assert not m.output_on
    m.advance(300)  # no mains: stays off
    assert not m.output_on and m.timer_start is None
    m.set_mains(True)
    m.advance(1)
    assert m.timer_value(m.timer_start) == 29
    m.advance(29)
    assert m.output_on and m.status_tokens()[0] == "OL"


def test_shutdown_stayoff_reboot_and_stop() -> None:
    m = SimUPS(Params())
    m.shutdown("stayoff")
    m.advance(20)
    assert not m.output_on
    m.advance(1000)
    assert not m.output_on  # mains present, but stay off
    m.load_on()
    assert m.output_on
    m.shutdown("reboot")
    m.advance(20)
    assert not m.output_on
    m.advance(30)
    assert m.output_on
    m.shutdown("return")
    m.advance(10)
    m.shutdown_stop()
    m.advance(100)
    assert m.output_on and m.timer_shutdown is None


def test_battery_tests_and_calibration() -> None:
    m = SimUPS(Params())
    m.start_test("quick")
    m.advance(1)
    assert m.test_result == "In progress" and m.status_tokens()[:2] == ["OL", "DISCHRG"]
    m.advance(10)
    assert m.test_result == "Done and passed" and m.status_tokens() == ["OL", "CHRG"]
    m.start_test("deep")
    m.advance(5)
    m.stop_test()
    assert m.test_result == "Aborted"
    m.health = 40
    assert "RB" in m.status_tokens()
    m.start_test("quick")
    m.advance(11)
    assert m.test_result == "Done and error"
    m.health = 100
    m.charge = 100
    m.calibrating = True
    m.advance(1)
    assert m.status_tokens()[:3] == ["OL", "DISCHRG", "CAL"]
    run_until(m, lambda: not m.calibrating)
    assert m.charge <= 25 and "CHRG" in m.status_tokens()


def test_bypass_has_no_battery_protection() -> None:
    m = SimUPS(Params())
    m.bypass = True
    m.advance(1)
    assert m.status_tokens() == ["OL", "BYPASS"]
    m.set_mains(False)
    m.advance(1)
    assert not m.output_on and m.charge == 100 and "OFF" in m.status_tokens()


def test_outlets_model() -> None:
    m = SimUPS(Params(outlets=3), load_w=300)
    assert m.output_load() == 300
    m.outlet(1, "off")
    assert m.output_load() == 200
    m.outlet(2, "cycle")
    assert m.output_load() == 100
    m.advance(10)
    assert m.output_load() == 200


# ---- the driver -----------------------------------------------------------------------


async def test_published_names_and_types() -> None:
    drv = await started(outlets="2", seed="7")
    dev = drv.device
    assert dev.value("ups.status") == "OL"
    assert dev.value("battery.charge") == "100"
    assert dev.value("ups.load") == "33" and dev.value("ups.realpower") == "300"
    assert dev.value("device.serial") == "SIM-0007"
    assert dev.value("driver.name") == "nutbridge-sim"
    assert dev.value("outlet.count") == "2" and dev.value("outlet.2.status") == "on"

    def types(name: str) -> list[str]:
        var = dev.get(name)
        assert var is not None
        return var.type_words()

    assert types("ups.delay.shutdown") == ["RW", "RANGE", "NUMBER"]
    assert types("battery.charge.low") == ["RW", "RANGE", "NUMBER"]
    assert types("ups.beeper.status") == ["RW", "ENUM", "STRING:8"]
    assert types("ups.id") == ["RW", "STRING:16"]
    assert types("input.transfer.low") == ["RW", "RANGE", "NUMBER"]
    assert types("outlet.1.desc") == ["RW", "STRING:20"]
    assert types("battery.charge") == ["NUMBER"]  # read-only
    for cmd in ("test.failure.start", "shutdown.return", "load.on.delay", "beeper.toggle",
                "bypass.start", "calibrate.stop", "outlet.2.load.cycle"):
        assert dev.has_cmd(cmd)


async def test_instcmd_and_setvar_statuses() -> None:
    drv = await started(outlets="1")
    dev = drv.device
    assert await drv.instcmd("beeper.disable", None) == Status.HANDLED
    assert dev.value("ups.beeper.status") == "disabled"
    assert await drv.instcmd("beeper.toggle", None) == Status.HANDLED
    assert dev.value("ups.beeper.status") == "enabled"
    assert await drv.instcmd("beeper.mute", None) == Status.HANDLED
    assert dev.value("ups.beeper.status") == "muted"
    assert await drv.instcmd("no.such.command", None) == Status.UNKNOWN
    assert await drv.instcmd("outlet.2.load.off", None) == Status.UNKNOWN
    assert await drv.instcmd("load.off.delay", "soon") == Status.INVALID
    assert await drv.instcmd("load.off.delay", "-1") == Status.INVALID
    assert await drv.instcmd("outlet.1.load.off", None) == Status.HANDLED
    assert dev.value("outlet.1.status") == "off" and dev.value("ups.realpower") == "0"
    assert await drv.instcmd("outlet.1.load.on", None) == Status.HANDLED

    assert await drv.setvar("ups.delay.shutdown", "99999") == Status.INVALID
    assert await drv.setvar("ups.delay.shutdown", "abc") == Status.INVALID
    assert await drv.setvar("ups.delay.shutdown", "60") == Status.HANDLED
    assert dev.value("ups.delay.shutdown") == "60"
    assert await drv.setvar("ups.beeper.status", "loud") == Status.INVALID
    assert await drv.setvar("ups.id", "x" * 17) == Status.INVALID
    assert await drv.setvar("ups.id", "rack-7") == Status.HANDLED
    assert dev.value("ups.id") == "rack-7"
    assert await drv.setvar("outlet.1.desc", "Server") == Status.HANDLED
    assert dev.value("outlet.1.desc") == "Server"
    assert await drv.setvar("battery.charge", "5") == Status.UNKNOWN  # read-only
    assert await drv.setvar("experimental.sim.load", "1200") == Status.HANDLED
    assert dev.value("ups.load") == "133" and "OVER" in (dev.value("ups.status") or "")
    assert await drv.setvar("experimental.sim.mains", "off") == Status.HANDLED
    assert dev.value("ups.status", "").startswith("OB")  # type: ignore[union-attr]
    assert dev.value("input.voltage") == "0"
    assert await drv.instcmd("test.failure.stop", None) == Status.HANDLED
    assert dev.value("experimental.sim.mains") == "on"


async def test_load_delay_commands_use_param_or_default() -> None:
    drv = await started()
    m = drv.model
    assert await drv.instcmd("load.off.delay", "5") == Status.HANDLED
    assert drv.device.value("ups.timer.shutdown") == "5"
    assert await drv.instcmd("shutdown.stop", None) == Status.HANDLED
    assert drv.device.value("ups.timer.shutdown") == "-1"
    assert await drv.instcmd("load.off.delay", None) == Status.HANDLED
    assert m.timer_value(m.timer_shutdown) == 20  # ups.delay.shutdown
    assert await drv.instcmd("load.off", None) == Status.HANDLED
    assert "OFF" in (drv.device.value("ups.status") or "")
    assert await drv.instcmd("load.on.delay", "3") == Status.HANDLED
    assert drv.device.value("ups.timer.start") == "3"


def test_bad_options() -> None:
    with pytest.raises(ConfigError):
        sim(simspeed="fast")
    with pytest.raises(ConfigError):
        sim(simspeed="0")


async def test_real_time_run_with_speed() -> None:
    """The driver life cycle at 200x: mains loss shows on the device within a poll."""
    drv = sim(simspeed="200", pollinterval="0.05", load="800", capacity="20")
    task = asyncio.create_task(drv.run())
    dev = drv.device
    try:
        t0 = time.monotonic()
        while dev.driver_state is not DriverState.OK:
            await asyncio.sleep(0.01)
        assert await drv.instcmd("test.failure.start", None) == Status.HANDLED
        assert (dev.value("ups.status") or "").startswith("OB DISCHRG")
        # 20 Wh at 800 W / 0.9 lasts 81 simulated s: about 0.4 s here
        while "OFF" not in (dev.value("ups.status") or ""):
            await asyncio.sleep(0.02)
            assert time.monotonic() - t0 < 5
        assert dev.value("battery.charge") == "0" and dev.value("output.voltage") == "0"
        assert await drv.instcmd("test.failure.stop", None) == Status.HANDLED
        while (dev.value("ups.status") or "").split()[:3] != ["OL", "CHRG", "LB"]:
            await asyncio.sleep(0.02)
            assert time.monotonic() - t0 < 5  # ups.delay.start 30 s = 0.15 s here
    finally:
        drv.stop()
        task.cancel()
