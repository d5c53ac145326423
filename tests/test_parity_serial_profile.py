"""One profile, one release: the serial drivers publish what the profile's NUT release publishes.

NUT 2.8.5's ``nutdrv_qx`` differs visibly from 2.8.0's (``blazer_ser`` does not): the Megatec
``I`` reply is read with the "Megatec IC" layout, ``battery.voltage`` is printed differently
(Q1 and Mustek ``%.1f``, Voltronic the UPS's own text) with ``battery.voltage.high``/``.low``
guesses on Voltronic. tests/test_megatec.py and tests/test_voltronic.py compare everything
else with the C drivers; here the values of every variable at each step of the outage
(OL -> OB -> OB LB -> OL) are compared with NUT's driver of the installed release **without any
allowance**, the bridge running that release's profile (tests/conftest.py pins it). The sans-IO
checks cover the other profile, whose C driver is not installed here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nutbridge.drivers.qx import q1, voltronic
from nutbridge.simulation.megatec import MegatecSimulator
from tests import test_megatec as tm
from tests import test_voltronic as tv
from tests.support import realnut, serialsim

Snap = dict[str, str]

I_REPLY = b"#NUT Bridge      SimQ1      0.1.0     \r"
Q1_REPLY = b"(230.0 230.0 230.0 021 50.0 27.0 30.0 00001001\r"


@pytest.mark.parametrize(("nut_285", "dialect", "blazer", "want"), [
    (False, "megatec", False, {"device.mfr": "NUT Bridge", "device.model": "SimQ1",
                               "ups.firmware": "0.1.0", "battery.voltage": "27.00"}),
    (True, "megatec", False, {"device.mfr": "NUT Bri", "ups.serial": "dge     ",
                              "device.model": "SimQ1", "ups.firmware": "0.1.0",
                              "battery.voltage": "27.0"}),
    # 2.8.5's mustek subdriver keeps the classic layout; blazer_ser all of 2.8.0's table
    (True, "mustek", False, {"device.mfr": "NUT Bridge", "device.model": "SimQ1",
                             "ups.firmware": "0.1.0", "battery.voltage": "27.0"}),
    (True, "megatec", True, {"device.mfr": "NUT Bridge", "device.model": "SimQ1",
                             "ups.firmware": "0.1.0", "battery.voltage": "27.00"}),
])
def test_q1_tables_per_profile(nut_285: bool, dialect: str, blazer: bool, want: Snap) -> None:
    items = q1.items_for(dialect, blazer, nut_285)
    got = (q1.parse("I", I_REPLY, items) or {}) | (q1.parse("status", Q1_REPLY, items) or {})
    assert {k: got.get(k) for k in want} == want
    assert "battery.runtime" not in got  # a blank IC runtime field is not published


def test_voltronic_battery_voltage_per_profile() -> None:
    qgs = tv.QGS
    assert (voltronic.parse("QGS", qgs) or {}).get("battery.voltage") == "26.50"
    assert (voltronic.parse("QGS", qgs, voltronic.ITEMS_285) or {}).get("battery.voltage") == "026.5"


def _vars(port: int) -> Snap:
    out = {}
    for line in realnut.query(port, "LIST VAR ups").decode().splitlines():
        if line.startswith("VAR "):
            _, _, name, value = line.split(" ", 3)
            if not name.startswith("driver."):
                out[name] = value[1:-1]
    return out


def _snapshots(port: int, sim: serialsim.SimThread[MegatecSimulator],
               outage: list[tuple[str, Callable[..., None]]]) -> list[Snap]:
    snaps = []
    for status, change in outage:
        sim.call(change, sim.device.model)

        def reached(value: str | None, want: str = status) -> bool:
            return (value or "").replace(" DISCHRG", "") == want

        serialsim.wait_var(port, "ups", "ups.status", reached)
        time.sleep(2.2)  # two more polls: every variable of this state is in
        snaps.append(_vars(port))
    return snaps


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize(("driver", "protocol"), [
    ("nutdrv_qx", "megatec"), ("nutdrv_qx", "mustek"), ("blazer_ser", "megatec"),
    ("nutdrv_qx", "voltronic")])
def test_values_same_as_installed_release(tmp_path: Path, bridge_server: Callable[..., object],
                                          driver: str, protocol: str) -> None:
    realnut.require_daemon("upsd")
    realnut.require_daemon(driver)
    frozen = tv.frozen_model if protocol == "voltronic" else tm.frozen_model
    outage = serialsim.OUTAGE if protocol == "voltronic" else tm.OUTAGE
    sim = serialsim.SimThread(lambda: MegatecSimulator(
        tmp_path / "ttyUPS0", model=frozen(), speed=0, protocol=protocol)).start()

    def reset() -> None:
        sim.device.model = frozen()
        sim.device.received.clear()

    opts = {"driver": driver, "port": str(sim.link), "pollinterval": "1"}
    if driver == "nutdrv_qx":
        opts.update(protocol=protocol, pollfreq="1")
    try:
        cfg = realnut.NutConfig(tmp_path / "c")
        cfg.add_ups("ups", **opts)
        with realnut.c_upsd(cfg):
            theirs = _snapshots(cfg.port, sim, outage)
        sim.call(reset)
        ours_cfg = realnut.NutConfig(tmp_path / "py")
        ours_cfg.add_ups("ups", **opts)
        bridge_server(ours_cfg)
        ours = _snapshots(ours_cfg.port, sim, outage)
    finally:
        sim.stop()
    diffs = [(step, k, a.get(k), b.get(k))
             for step, (a, b) in enumerate(zip(theirs, ours, strict=True))
             for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    assert not diffs, f"NUT {realnut.nut_version()}: (step, variable, NUT's, ours): {diffs}"
