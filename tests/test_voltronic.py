"""Voltronic (nutdrv_qx ``protocol = voltronic``, QGS/QPI): parsers, simulator, driver, and
NUT's own nutdrv_qx on the same simulated device.

Expected values below were observed with Debian's nutdrv_qx (NUT 2.8.0; 2.8.5 in sid
agrees) on a pty answering canned replies (``nutdrv_qx -d 1``, and upscmd/SET VAR
through the C upsd). The differential test runs the C driver, then our bridge, against
one frozen simulator and compares what upsd serves and the bytes the device gets. Its
normalisations, and nothing else:

* driver.* variables are not compared (versions, parameters NUT echoes); of them only
  ``driver.version.data`` is checked: NUT's starts with "Voltronic", ours is "Voltronic";
* with a NUT other than 2.8.0 (ours follows 2.8.0): ``battery.voltage`` (2.8.5 prints the raw
  "026.5", 2.8.0 "26.50") and the ``battery.voltage.high``/``.low`` guesses 2.8.5 adds are not
  compared, and " DISCHRG" is dropped from NUT's ``ups.status`` (2.8.5 adds it to "OB LB").

Commands, RW variables, types and ranges, the answers to INSTCMD / SET VAR and the bytes
sent to the device are compared as they are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nutbridge.drivers.base import ConfigError, DeviceError, Status
from nutbridge.drivers.qx import common, voltronic
from nutbridge.drivers.qx.driver import MegatecDriver
from nutbridge.simulation.megatec import MegatecSimulator
from nutbridge.simulation.model import Params, SimUPS
from nutbridge.state import Device
from tests.support import realnut, serialsim
from tests.support.serialsim import OUTAGE

QGS = b"(234.9 50.0 229.8 50.0 000.0 014 369.1 ---.- 026.5 ---.- 018.8 010000000000\r"
FUZZ = settings(deadline=None, derandomize=True, database=None, max_examples=400)


# ---- sans-IO ------------------------------------------------------------------------------

def test_parse_qgs() -> None:
    assert voltronic.parse("QGS", QGS) == {
        "input.voltage": "234.9", "input.frequency": "50.0", "output.voltage": "229.8",
        "output.frequency": "50.0", "output.current": "0.0", "ups.load": "14",
        "battery.voltage": "26.50", "ups.temperature": "18.8", "_bits": "010000000000"}


def test_parse_static_replies() -> None:
    assert voltronic.parse("QPI", b"(PI01\r") == {"ups.firmware.aux": "P01"}
    assert voltronic.parse("QRI", b"(220.0 004 036.0 60.0\r") == {
        "output.voltage.nominal": "220.0", "output.current.nominal": "4",
        "battery.voltage.nominal": "36.0", "output.frequency.nominal": "60.0"}
    # QMD's output voltage and battery fields are not published (NUT takes QRI's)
    assert voltronic.parse("QMD", b"(#######OLHVT1K0 ###1000 80 1/1 210 240 03 12.0\r") == {
        "device.model": "OLHVT1K0", "ups.power.nominal": "1000", "output.powerfactor": "0.8",
        "input.phases": "1", "output.phases": "1", "input.voltage.nominal": "210.0"}
    assert voltronic.parse("QMF", b"(#####VOLTRONIC\r") == {"device.mfr": "VOLTRONIC"}
    assert voltronic.parse("QID", b"(12345678901234\r") == {"device.serial": "12345678901234"}
    assert voltronic.parse("QBV", b"(026.0 02 01 090 045\r") == {
        "battery.packs": "1", "battery.charge": "90", "battery.runtime": "2700"}
    assert voltronic.parse("QMOD", b"(B\r") == {"_mode": "B"}


def test_parse_firmware_as_nut() -> None:
    # NUT reads 8 characters after "VERFW:" as they are (a trailing blank stays) and
    # ignores a shorter reply
    assert voltronic.parse("QVFW", b"(VERFW:00322.02\r") == {"ups.firmware": "00322.02"}
    assert voltronic.parse("QVFW", b"(VERFW:SIM-1.0 \r") == {"ups.firmware": "SIM-1.0 "}
    assert voltronic.parse("QVFW", b"(VERFW:ABCDEFGHIJ\r") == {"ups.firmware": "ABCDEFGH"}
    assert voltronic.parse("QVFW", b"(VERFW:00001.0\r") is None


@pytest.mark.parametrize(("query", "raw"), [
    ("QGS", b"(NAK\r"), ("QPI", b"(NAK\r"), ("QPI", b"(XX01\r"), ("QGS", QGS[:-5] + b"\r"),
    ("QGS", QGS.replace(b"010000000000", b"0100000000x0")), ("QGS", QGS.replace(b"(", b"#")),
    ("QGS", b"(215.0 195.0 230.0 014 49.0 22.7 30.0 00000000\r"),  # a Q1 reply
    ("QBV", b"(026.0 02\r"), ("QRI", b"(2\x0020.0 004 036.0 60.0\r"),
])
def test_parse_rejects(query: str, raw: bytes) -> None:
    assert voltronic.parse(query, raw) is None


# QGS status characters (63..74) and QMOD letter -> ups.status, beeper, type: NUT 2.8.0/2.8.5
@pytest.mark.parametrize(("bits", "mode", "tokens", "beeper", "ups_type"), [
    ("000000000001", "L", ["OL"], "enabled", "offline"),
    ("010000000000", "L", ["OL"], "enabled", "line-interactive"),
    ("100000000001", "L", ["OL"], "enabled", "online"),
    ("001000000001", "L", ["OB"], "enabled", "offline"),
    ("001100000000", "L", ["OB", "LB"], "enabled", "offline"),
    ("000100000001", "L", ["OL", "LB"], "enabled", "offline"),
    ("000010000001", "B", ["OL", "BYPASS"], "enabled", "offline"),
    ("000001000001", "F", ["OL"], "enabled", "offline"),  # the fault bit shows nowhere
    ("000000010001", "L", ["OL", "CAL"], "enabled", "offline"),
    ("000000001001", "L", ["OL", "FSD"], "enabled", "offline"),
    ("000000000101", "L", ["OL"], "disabled", "offline"),
    ("000000000001", "S", ["OL", "OFF"], "enabled", "offline"),
    ("000000000001", "Y", ["OL", "BYPASS"], "enabled", "offline"),
    ("000000000001", "B", ["OL"], "enabled", "offline"),  # only S and Y count
    ("001110011001", "S", ["OB", "LB", "BYPASS", "OFF", "CAL", "FSD"], "enabled", "offline"),
])
def test_status(bits: str, mode: str, tokens: list[str], beeper: str, ups_type: str) -> None:
    info = voltronic.decode_status(bits, mode)
    assert (info.tokens, info.beeper, info.ups_type) == (tokens, beeper, ups_type)


# upscmd / SET VAR -> bytes sent by NUT 2.8.0's nutdrv_qx (ondelay 180, offdelay 30 unless given)
@pytest.mark.parametrize(("cmd", "param", "on", "off", "beeper_on", "sent"), [
    ("beeper.toggle", None, 180, 30, True, b"BZOFF\r"),
    ("beeper.toggle", None, 180, 30, False, b"BZON\r"),
    ("load.off", None, 180, 30, True, b"SOFF\r"),
    ("load.on", None, 180, 30, True, b"SON\r"),
    ("shutdown.return", None, 180, 30, True, b"S.5R0003\r"),
    ("shutdown.return", None, 180, 42, True, b"S.7R0003\r"),
    ("shutdown.return", None, 240, 660, True, b"S11R0004\r"),
    ("shutdown.stayoff", None, 180, 30, True, b"S.5R0000\r"),
    ("shutdown.stayoff", None, 240, 660, True, b"S11R0000\r"),
    ("shutdown.stop", None, 180, 30, True, b"CS\r"),
    ("test.battery.start", None, 180, 30, True, b"T10\r"),
    ("test.battery.start", "120", 180, 30, True, b"T02\r"),
    ("test.battery.start.deep", None, 180, 30, True, b"TL\r"),
    ("test.battery.start.quick", None, 180, 30, True, b"T\r"),
    ("test.battery.stop", None, 180, 30, True, b"CT\r"),
])
def test_encode_command(cmd: str, param: str | None, on: int, off: int, beeper_on: bool,
                        sent: bytes) -> None:
    assert voltronic.encode_command(cmd, param, on, off, beeper_on=beeper_on) == sent


def test_encode_command_errors() -> None:
    assert voltronic.encode_command("outlet.1.load.off", None, 180, 30) is None
    with pytest.raises(common.CommandError):
        voltronic.encode_command("test.battery.start", "2", 180, 30)  # seconds: 60..5940


@FUZZ
@given(query=st.sampled_from(sorted(voltronic.MIN_LEN)), raw=st.binary(max_size=90))
def test_fuzz_parse_random_bytes(query: str, raw: bytes) -> None:
    out = voltronic.parse(query, raw)
    assert out is None or all(isinstance(v, str) for v in out.values())


@FUZZ
@given(pos=st.integers(0, len(QGS) - 1), byte=st.integers(0, 255), cut=st.integers(0, len(QGS)),
       mode=st.sampled_from("LBSYTFDX"))
def test_fuzz_parse_mutated_status(pos: int, byte: int, cut: int, mode: str) -> None:
    raw = (QGS[:pos] + bytes([byte]) + QGS[pos + 1:])[:cut]
    out = voltronic.parse("QGS", raw)
    if out is not None:
        bits = out["_bits"]
        assert len(bits) == 12 and set(bits) <= {"0", "1"}
        info = voltronic.decode_status(bits, mode)
        assert info.tokens[0] in ("OL", "OB") and info.beeper in ("enabled", "disabled")


# ---- driver + simulator in one event loop ----------------------------------------------------

def frozen_model() -> SimUPS:
    return SimUPS(Params(seed=1))


async def test_driver_detects_and_reads(tmp_path: Path) -> None:
    sim = MegatecSimulator(tmp_path / "tty", model=frozen_model(), speed=0, protocol="voltronic")
    async with sim, serialsim.megatec_driver(sim) as drv:
        await drv.update()
        dev = drv.device
        assert drv.protocol == "voltronic"
        assert sim.received[:2] == [b"QGS\r", b"QPI\r"]  # NUT probes Voltronic first
        assert b"Q1\r" not in sim.received and b"QS\r" not in sim.received
        assert dev.value("ups.status") == "OL"
        assert dev.value("driver.version.data") == "Voltronic"
        assert dev.value("battery.charge") == "100"
        assert dev.value("ups.type") == "line-interactive"
        sim.model.set_mains(False)
        await drv.update()
        assert dev.value("ups.status") == "OB"
        sim.model.charge = 5
        await drv.update()
        assert dev.value("ups.status") == "OB LB" and dev.value("battery.charge") == "5"
        assert await drv.instcmd("load.off", None) == Status.HANDLED
        await drv.update()
        assert dev.value("ups.status") == "OB LB OFF"
        assert sim.commands == ["SOFF"]


async def test_megatec_unit_not_taken_for_voltronic(tmp_path: Path) -> None:
    sim = MegatecSimulator(tmp_path / "tty", speed=0, echo_unknown=True)  # echoes QGS and QPI
    async with sim, serialsim.megatec_driver(sim) as drv:
        assert drv.protocol == "megatec"
        assert sim.received[0] == b"QGS\r"


async def test_nak_ends_a_query_and_commands(tmp_path: Path) -> None:
    sim = MegatecSimulator(tmp_path / "tty", speed=0, protocol="voltronic")
    async with sim, serialsim.megatec_driver(sim, protocol="voltronic", offdelay="1200") as drv:
        sim.received.clear()
        t0 = time.monotonic()
        assert await drv.query("QWS", b"QWS\r") is None
        assert time.monotonic() - t0 < 0.5 and sim.received == [b"QWS\r"]  # no retries
        assert drv.counters["garbage"] == 0
        sim.voltronic_command = lambda text: False  # type: ignore[method-assign]
        assert await drv.instcmd("beeper.toggle", None) == Status.FAILED  # (NAK
        assert await drv.instcmd("shutdown.return", None) == Status.FAILED
        assert sim.received[-1] == b"S20R0003\r"  # offdelay up to 99 minutes
        assert await drv.instcmd("test.battery.start", "30") == Status.INVALID


async def test_setvar(tmp_path: Path) -> None:
    sim = MegatecSimulator(tmp_path / "tty", speed=0, protocol="voltronic")
    async with sim, serialsim.megatec_driver(sim) as drv:
        await drv.update()
        dev = drv.device
        assert await drv.setvar("battery.packs", "3") == Status.HANDLED
        assert sim.packs == 3 and sim.received[-1] == b"BATGN03\r"
        await drv.update()
        assert dev.value("battery.packs") == "3"
        assert await drv.setvar("battery.packs", "100") == Status.INVALID
        assert await drv.setvar("ups.delay.shutdown", "700") == Status.HANDLED
        assert dev.value("ups.delay.shutdown") == "660"
        assert await drv.setvar("ups.delay.shutdown", "6000") == Status.INVALID


async def test_silent_unit_goes_stale(tmp_path: Path) -> None:
    sim = MegatecSimulator(tmp_path / "tty", speed=0, protocol="voltronic")
    async with sim, serialsim.megatec_driver(sim) as drv:
        sim.garbage(60)
        await drv.update()  # a retry gets a clean frame
        sim.silence(True)
        with pytest.raises(DeviceError):
            await drv.update()


def test_config_checks() -> None:
    with pytest.raises(ConfigError):
        MegatecDriver(Device("u"), {"driver": "blazer_ser", "port": "/x", "protocol": "voltronic"})
    with pytest.raises(ConfigError):
        MegatecDriver(Device("u"), {"driver": "nutdrv_qx", "port": "/x", "protocol": "megatec",
                                       "offdelay": "660"})
    drv = MegatecDriver(Device("u"), {"driver": "nutdrv_qx", "port": "/x", "offdelay": "5940"})
    assert drv.offdelay == 5940
    with pytest.raises(ValueError):
        MegatecSimulator("/nonexistent/tty", protocol="q9")


# ---- through the bridge and through NUT -------------------------------------------------------

ACTIONS: list[str] = [
    "INSTCMD ups beeper.toggle", "INSTCMD ups test.battery.start.quick",
    "INSTCMD ups test.battery.start.deep", "INSTCMD ups test.battery.start 180",
    "INSTCMD ups test.battery.start 2", "INSTCMD ups test.battery.stop",
    "INSTCMD ups shutdown.return", "INSTCMD ups shutdown.stop", "INSTCMD ups shutdown.stayoff",
    "SET VAR ups battery.packs 3", "SET VAR ups ups.delay.shutdown 700",
    "SET VAR ups ups.delay.start 240", "INSTCMD ups shutdown.return",
    "INSTCMD ups load.on", "INSTCMD ups load.off",
]
QUERIES = (b"Q", b"F\r", b"I\r")  # every Voltronic query starts with Q; F and I: NUT's probes
# NUT 2.8.5 prints the raw battery.voltage ("026.5", 2.8.0: "26.50") and adds the
# battery.voltage.high/.low guesses (ours follows 2.8.0), and DISCHRG to "OB LB"
SKEW_AFTER_280 = {"battery.voltage", "battery.voltage.high", "battery.voltage.low"}


def _vars(port: int) -> dict[str, str]:
    out = {}
    for line in realnut.query(port, "LIST VAR ups").decode().splitlines():
        if line.startswith("VAR "):
            _, _, name, value = line.split(" ", 3)
            if not name.startswith("driver.") or name in ("driver.version", "driver.version.data"):
                out[name] = value[1:-1]
    return out


def _lines(port: int, what: str) -> list[str]:
    return [line for line in realnut.query(port, what).decode().splitlines()
            if not line.startswith(("BEGIN", "END"))]


def _sent(sim: serialsim.SimThread[MegatecSimulator]) -> list[bytes]:
    return [r for r in sim.received() if not r.startswith(QUERIES)]


def _run_script(port: int, sim: serialsim.SimThread[MegatecSimulator]) -> dict[str, object]:
    snaps = []
    for status, change in OUTAGE:
        sim.call(change, sim.device.model)
        def reached(value: str | None, want: str = status) -> bool:
            return (value or "").replace(" DISCHRG", "") == want  # NUT 2.8.5: OB LB DISCHRG

        serialsim.wait_var(port, "ups", "ups.status", reached)
        time.sleep(1.2)  # one more poll: every variable of this state is in
        snaps.append(_vars(port))
    meta = {"cmds": _lines(port, "LIST CMD ups"), "rw": _lines(port, "LIST RW ups"),
            "types": [realnut.query(port, f"GET TYPE ups {v}", f"LIST RANGE ups {v}").decode()
                      for v in ("battery.packs", "ups.delay.shutdown", "ups.delay.start")]}
    sim.clear_received()
    answers = []
    for line in ACTIONS:
        answers.append(realnut.query(port, "USERNAME admin", "PASSWORD s3cr3t", line).decode())
        time.sleep(0.3)  # SET VAR then INSTCMD: in this order at the device too
    deadline = time.monotonic() + 30
    while b"SOFF\r" not in _sent(sim) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.2)  # nothing more must follow
    return {"snaps": snaps, "answers": answers, "sent": _sent(sim), **meta}


@pytest.mark.interop
@pytest.mark.slow
def test_differential_vs_nut(tmp_path: Path, bridge_server: Callable[..., object]) -> None:
    realnut.require_daemon("upsd")
    realnut.require_daemon("nutdrv_qx")
    sim = serialsim.SimThread(lambda: MegatecSimulator(
        tmp_path / "ttyUPS0", model=frozen_model(), speed=0, protocol="voltronic")).start()

    def reset() -> None:
        sim.device.model = frozen_model()
        sim.device.packs = 1
        sim.device.received.clear()

    try:
        # no protocol option: both must detect Voltronic; pollfreq 1: NUT refreshes every
        # variable each poll, as ours does
        opts = {"driver": "nutdrv_qx", "port": str(sim.link), "pollinterval": "1", "pollfreq": "1"}
        cfg = realnut.NutConfig(tmp_path / "c")
        cfg.add_ups("ups", **opts)
        with realnut.c_upsd(cfg):
            theirs = _run_script(cfg.port, sim)
        sim.call(reset)
        ours_cfg = realnut.NutConfig(tmp_path / "py")
        ours_cfg.add_ups("ups", **opts)
        bridge_server(ours_cfg)
        ours = _run_script(ours_cfg.port, sim)
    finally:
        sim.stop()
    first: dict[str, str] = theirs["snaps"][0]  # type: ignore[index]
    nut = first["driver.version"]
    assert first["driver.version.data"].startswith("Voltronic")
    assert ours["snaps"][0]["driver.version.data"] == "Voltronic"  # type: ignore[index]
    skip = {"driver.version", "driver.version.data"} | (set() if nut == "2.8.0" else SKEW_AFTER_280)
    for step, (a, b) in enumerate(zip(theirs["snaps"], ours["snaps"], strict=True)):  # type: ignore[call-overload]
        a = {k: v for k, v in a.items() if k not in skip}
        b = {k: v for k, v in b.items() if k not in skip}
        if nut != "2.8.0":
            a["ups.status"] = a["ups.status"].replace(" DISCHRG", "")
        assert b == a, f"step {step} ({OUTAGE[step][0]}), NUT {nut}"
    assert ours["cmds"] == theirs["cmds"]
    assert ours["rw"] == theirs["rw"]
    assert ours["types"] == theirs["types"]
    # upscmd / SET VAR -> the very same bytes at the device
    assert ours["sent"][-1] == b"SOFF\r" and b"BATGN03\r" in ours["sent"]  # type: ignore[index,operator]
    assert ours["sent"] == theirs["sent"], f"ours {ours['sent']}\nNUT's {theirs['sent']}"
    assert ours["answers"] == theirs["answers"], f"ours {ours['answers']}\nNUT's {theirs['answers']}"


@pytest.mark.slow
def test_unplug_replug_recovers(tmp_path: Path, bridge_server: Callable[..., object]) -> None:
    with serialsim.running(lambda: MegatecSimulator(tmp_path / "ttyUPS0", speed=0,
                                                    protocol="voltronic")) as sim:
        cfg = realnut.NutConfig(tmp_path / "py")
        cfg.add_ups("ups", driver="nutdrv_qx", port=str(sim.link), pollinterval="1")
        bridge_server(cfg)
        serialsim.wait_var(cfg.port, "ups", "ups.status", "OL")
        sim.call(sim.device.unplug)
        serialsim.wait_var(cfg.port, "ups", "ups.status", None, timeout=10)
        time.sleep(2)
        sim.call(sim.device.replug)
        took = serialsim.wait_var(cfg.port, "ups", "ups.status", "OL", timeout=15)
        assert took < 10, f"recovery took {took:.1f}s"
        assert serialsim.get_var(cfg.port, "ups", "driver.version.data") == "Voltronic"


async def test_cli_option_builds_voltronic(tmp_path: Path) -> None:
    from nutbridge.simulation.main import create

    dev = create("megatec", str(tmp_path / "tty"), speed=0, protocol="voltronic")
    assert isinstance(dev, MegatecSimulator)
    async with dev:
        assert dev.handle(b"QPI\r") == b"(PI01\r"
        assert dev.handle(b"Q1\r") == b"(NAK\r"
        reply = dev.handle(b"QGS\r")
        assert reply is not None and voltronic.parse("QGS", reply) is not None
        await asyncio.sleep(0)


def test_cli_rejects_unknown_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nutbridge.simulation.main import main

    with pytest.raises(SystemExit) as exc:
        main(["megatec", "--link", str(tmp_path / "tty"), "-o", "protocol=q9"])
    assert exc.value.code == 2
    assert "protocol must be one of megatec, mustek, voltronic" in capsys.readouterr().err
