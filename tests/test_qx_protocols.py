"""nutdrv_qx's device protocols: ``protocol = zinto | hunnox | ablerex | gtec | masterguard``.

Sans-IO first (drivers/qx/zinto.py, ablerex.py, gtec.py, masterguard.py): the request
bytes, real reply lines (the DDL corpus's Powercool (hunnox) and Ablerex GRs dumps, the
sample replies NUT's protocol descriptions quote for gtec and Masterguard), the status
encodings, the exact bytes of every instant command and setting, and random or mangled
replies that must never raise. Then the driver: on the Megatec simulator taught each
protocol (simulation/megatec.py), detected as NUT probes where NUT would detect it,
through OL -> OB -> OB LB -> OL, every command reaching the device as its bytes. Those
run behind the fake USB backend's Cypress bridge (20 ms timeouts instead of 1 s), one on a
pty; the two corpus units behind their own bridges (Hunnox strings, Ablerex feature
reports).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nutbridge.drivers.base import ConfigError, Status
from nutbridge.drivers.qx import ablerex, gtec, masterguard
from nutbridge.drivers.qx import driver as qxd
from nutbridge.drivers.qx.common import CommandError
from nutbridge.drivers.qx.device import DeviceProtocol
from nutbridge.drivers.qx.driver import DEVICE_PROTOCOLS, MegatecDriver
from nutbridge.drivers.qx.usblink import UsbLink
from nutbridge.drivers.qx.zinto import Hunnox, Zinto
from nutbridge.simulation import fakeqx
from nutbridge.simulation.fakeusb import FakeHidDevice
from nutbridge.simulation.megatec import MegatecSimulator
from nutbridge.simulation.model import Params, SimUPS
from nutbridge.state import Device
from tests.support import realnut, serialsim
from tests.support.serialsim import OUTAGE

DDL = realnut.DDL_DIR
FUZZ = settings(deadline=None, derandomize=True, database=None, max_examples=300)
FAST = 0.02  # USB exchange timeouts: 20 ms instead of NUT's 1 s

# ---- replies ---------------------------------------------------------------------------------

#: Powercool 1500VA (DDL, nutdrv_qx 2.7.4, protocol hunnox): the lines behind its values
POWERCOOL_Q1 = b"(246.0 000.0 248.0 011 49.8 27.2 29.0 00000000\r"
POWERCOOL_F = b"#000.0 000 000.0 00.0\r"
#: Ablerex GRs (DDL, nutdrv_qx 2.7.4.1, protocol ablerex): Q1, F (output ratings), I, and
#: Q5 with 59.9 Hz, battery 1370/1200 of nominal, cut-off unset, no error, 0.1 A
ABLEREX_Q1 = b"(236.5 185.0 236.5 003 59.9 27.4 30.0 00001001\r"
ABLEREX_F = b"#240.0 004 024.0 60.0\r"
ABLEREX_I = b"#Ablerex         GRs        GS101961  \r"


def q5(fout: int = 599, vb: int = 1370, vbc: int = 0, err: int = 0, iout: int = 1) -> bytes:
    def w(v: int) -> bytes:
        return v.to_bytes(2, "big")
    return b"(" + w(fout) + bytes(4) + w(vb) + w(vbc) + bytes(2) + w(err) + w(iout) + bytes(4) \
        + b"\r"


#: gtec and Masterguard: the sample replies of NUT's protocol descriptions
GTEC_Q4 = b"(236.7 243.2 212.1 220.1 230.4 002 001 50.0 371 372 041.3 22.9 IM\r"
MG_WH = (b"(00 10.06 03.09 A  700  + 0 Bat Pack-19        0 230 50.00 012 02.30 006.00 012.00"
         b" 018 10 40 160 276 47.00 53.00\r")
MG_Q3 = b"(00 225.9 225.9 229.3 043 50.0 02.27 23.4 017.03 100 00000000 00000000\r"
MG_Q3_B = b"(01 226.9 226.9 226.9 039 50.0 02.30 21.8 000.00 000 01100000 00011000\r"


# ---- sans-IO: requests and replies -------------------------------------------------------------

def test_requests() -> None:
    assert [Zinto().request(q) for q in ("Q1", "F", "FW?")] == [b"Q1\r", b"F\r", b"FW?\r"]
    assert Hunnox().request("BL") == b"BL\r"
    assert [ablerex.Ablerex().request(q) for q in ("Q5", "At", "TR")] == [b"Q5\r", b"At\r",
                                                                          b"TR\r"]
    assert gtec.Gtec().request("Q4") == b"Q4\r"
    mg = masterguard.Masterguard()
    assert mg.parse("WH", MG_WH.replace(b"(00", b"(07")) is not None  # the slave address
    assert [mg.request(q) for q in ("WH", "Q3", "GS", "GBS", "GSN", "DRC", "MSO", "PNV")] == [
        b"WH\r", b"Q3\r", b"GS,07\r", b"GBS,07\r", b"GSN,07\r", b"DRC,07\r", b"MSO\r", b"PNV\r"]


def test_what_each_protocol_asks() -> None:
    """Claim (NUT's), connect and poll queries."""
    assert Zinto().claim(False) == ("Q1", "FW?") and Zinto().claim(True) == ("Q1",)
    assert Zinto().static(norating=False, novendor=False) == ("F", "FW?")
    assert Hunnox().static(norating=True, novendor=True) == () and Hunnox.optional == ("BL",)
    assert ablerex.Ablerex().claim(False) == ("Q1", "I") and ablerex.Ablerex.optional == (
        "Q5", "At", "TR")
    assert gtec.Gtec().claim(False) == ("Q4", "I")
    mg = masterguard.Masterguard()
    assert mg.claim(False) == ("WH", "MSO") and mg.status_query == "Q3"
    assert mg.static(norating=False, novendor=False) == ("WH", "MSO", "GSN", "DRC")
    # NUT's probing order after megatec, and hunnox's own delays
    assert list(DEVICE_PROTOCOLS) == ["zinto", "masterguard", "hunnox", "ablerex", "gtec"]
    assert Hunnox.default_delays == (60, 0) and Zinto.default_delays is None


def test_powercool_hunnox_replies() -> None:
    """The Powercool dump's values from the lines its UPS sent (F all zeros: 0.00 limits,
    no charge guess, as NUT published)."""
    proto = Hunnox()
    polled = proto.parse("Q1", POWERCOOL_Q1)
    static = proto.parse("F", POWERCOOL_F)
    assert polled is not None and static is not None
    r = proto.read(static, polled)
    assert r.values == {
        "input.voltage": "246.0", "input.voltage.fault": "0.0", "output.voltage": "248.0",
        "ups.load": "11", "input.frequency": "49.8", "battery.voltage": "27.20",
        "ups.temperature": "29.0", "input.voltage.nominal": "0", "input.current.nominal": "0.0",
        "battery.voltage.nominal": "0.0", "input.frequency.nominal": "0", "ups.type": "online",
        "ups.beeper.status": "disabled", "battery.voltage.low": "0.00",
        "battery.voltage.high": "0.00"}
    assert (r.tokens, r.alarms) == (["OL"], [])
    assert proto.parse("BL", b"BL100\r") == {"battery.charge": "100"}
    assert proto.parse("BL", b"BL7\r") == {"battery.charge": "7"}
    r = proto.read(static, {**polled, "battery.charge": "42"})
    assert r.values["battery.charge"] == "42"  # BL's, not a guess


def test_zinto_identity_from_fw() -> None:
    fw = f"#{'Online':<15} {'Zinto A':<10} {'V1.2':<10}\r".encode()
    assert Zinto().parse("FW?", fw) == {"device.mfr": "Online", "device.model": "Zinto A",
                                        "ups.firmware": "V1.2"}
    proto = Zinto()
    static = {"battery.voltage.nominal": "24.0"}
    polled = proto.parse("Q1", b"(230.0 230.0 230.0 020 50.0 23.4 25.0 00001001\r")
    assert polled is not None
    r = proto.read(static, polled)  # NUT's charge guess from the nominal voltage
    assert (r.values["battery.charge"], r.values["battery.voltage.low"],
            r.values["battery.voltage.high"]) == ("50", "20.80", "26.00")
    assert r.values["ups.type"] == "offline / line interactive"


def test_ablerex_grs_values_as_nut_published() -> None:
    """Ablerex GRs (DDL): every value NUT 2.7.4.1 published, from Q1, F, I and Q5."""
    proto = ablerex.Ablerex()
    static = {**(proto.parse("F", ABLEREX_F) or {}), **(proto.parse("I", ABLEREX_I) or {})}
    polled = {**(proto.parse("Q1", ABLEREX_Q1) or {}), **(proto.parse("Q5", q5()) or {})}
    r = proto.read(static, polled)
    assert r.values == {
        "battery.charge": "100", "battery.voltage": "27.40", "battery.voltage.high": "27.30",
        "battery.voltage.low": "19.20", "battery.voltage.nominal": "24.0", "device.mfr": "Ablerex",
        "device.model": "GRs", "input.frequency": "59.9", "input.voltage": "236.5",
        "input.voltage.fault": "185.0", "output.current": "0.1", "output.current.nominal": "4.0",
        "output.frequency": "59.9", "output.frequency.nominal": "60.0", "output.voltage": "236.5",
        "output.voltage.nominal": "240.0", "ups.beeper.status": "enabled",
        "ups.firmware": "GS101961", "ups.load": "3", "ups.temperature": "30.0",
        "ups.type": "offline / line interactive"}
    assert (r.tokens, r.alarms) == (["OL"], [])  # NUT shows ups.alarm "0" (the error number)


def test_ablerex_battery_and_extras() -> None:
    proto = ablerex.Ablerex()
    static = {"battery.voltage.nominal": "24.0"}
    polled = proto.parse("Q1", ABLEREX_Q1.replace(b"27.4", b"2.10"))
    assert polled is not None
    # no Q5 yet: a per-cell reading is scaled to the battery (6 cells per 12 V)
    r = proto.read(static, polled)
    assert (r.values["battery.voltage"], r.values["battery.charge"]) == ("25.20", "72")
    r = proto.read(static, {**polled, **(proto.parse("Q5", q5(vb=1100, vbc=1000, err=5)) or {})})
    assert (r.values["battery.voltage"], r.values["battery.voltage.low"]) == ("22.00", "20.00")
    assert r.alarms == ["5"]
    assert proto.parse("At", b"(\x00\x00\x0e\x10\r") == {"battery.runtime": "3600"}
    assert proto.parse("TR", b"#PASS\r") == {"ups.test.result": "PASS"}
    assert proto.parse("Q5", q5()[:15] + b"\r") is None  # short
    r = proto.read({}, polled)  # no nominal: NUT's fallbacks
    assert (r.values["battery.voltage"], r.values["battery.charge"]) == ("2.10", "100")


@pytest.mark.parametrize(("volts", "nominal", "pct"), [
    (2.22, 24, 100), (2.215, 24, 90), (2.0, 24, 55), (1.68, 24, 2), (1.67, 24, 0), (1.2, 24, 0),
    (13.5, 12, 100), (13.4, 12, 90), (27.0, 24, 100), (24.0, 24, 55), (10.1, 12, 2),
    (10.05, 12, 0), (36.0, 36, 55),
])
def test_ablerex_discharge_curves(volts: float, nominal: float, pct: int) -> None:
    assert ablerex.charge(volts, nominal) == pct


@pytest.mark.parametrize(("bits", "vout", "tokens"), [
    ("00001001", 230.0, ["OL"]),
    ("10001001", 230.0, ["OB"]),
    ("11001001", 230.0, ["OB", "LB"]),
    ("00101001", 210.0, ["OL", "TRIM"]),  # standby unit: the ratio tells
    ("00101001", 236.5, ["OL", "BYPASS"]),
    ("00100001", 210.0, ["OL", "BYPASS"]),  # online unit: always bypass
    ("00011001", 236.5, ["OL", "RB"]),  # UPS failed: battery to replace (and the alarm)
    ("00001001", 0.0, ["OL", "OFF"]),
    ("00001101", 236.5, ["OL", "CAL"]),
])
def test_ablerex_status(bits: str, vout: float, tokens: list[str]) -> None:
    proto = ablerex.Ablerex()
    raw = f"(236.5 185.0 {vout:05.1f} 003 59.9 27.4 30.0 {bits}\r".encode()
    polled = proto.parse("Q1", raw)
    assert polled is not None
    r = proto.read({}, polled)
    assert r.tokens == tokens
    assert ("UPS selftest failed!" in r.alarms) == (bits[3] == "1")


def test_gtec_q4() -> None:
    proto = gtec.Gtec()
    polled = proto.parse("Q4", GTEC_Q4)
    assert polled == {"input.voltage": "236.7", "input.voltage.fault": "220.1",
                      "output.voltage": "230.4", "ups.load": "1", "input.frequency": "50.0",
                      "battery.voltage": "41.3", "ups.temperature": "22.9", "_letters": "IM"}
    r = proto.read({}, polled)
    assert (r.tokens, r.alarms) == (["OL"], [])
    assert r.values["battery.test.status"] == "Test passed - Result: OK"
    assert proto.parse("Q4", GTEC_Q4[:50] + b"\r") is None
    # no letters at all (NUT's length check wants the blank before them): the output is off
    off = proto.parse("Q4", b"(236.7 243.2 212.1 220.1 000.0 002 001 50.0 371 372 041.3 22.9 \r")
    assert off is not None and proto.read({}, off).tokens == ["OL", "OFF"]


@pytest.mark.parametrize(("letters", "tokens", "alarms", "test"), [
    ("M", ["OL"], [], None),
    ("AB", ["OB", "LB"], [], None),
    ("MAB", ["OB", "LB"], [], None),  # the last of A/C/M counts
    ("AM", ["OL"], [], None),
    ("C", ["OL", "BYPASS"], [], None),
    ("", ["OL", "OFF"], [], None),  # no A, C or M: the output is off
    ("MFN", ["OL", "FSD", "OVER"], [], None),
    ("MJ", ["OL", "RB"], [], "Test passed - Result: Failed"),
    ("MDGHP", ["OL"], ["UPS failed", "Site fault", "EPROM fail", "Battery disconnected"], None),
    ("ME", ["OL"], [], "Test in progress"),
    ("MK", ["OL"], [], "Battery disconnected"),
    ("ML", ["OL"], [], "Test status unknown"),
    ("MXYZ", ["OL"], [], None),  # unknown letters are ignored
])
def test_gtec_letters(letters: str, tokens: list[str], alarms: list[str], test: str | None
                      ) -> None:
    r = gtec.Gtec().read({}, {"_letters": letters})
    assert (r.tokens, r.alarms, r.values.get("battery.test.status")) == (tokens, alarms, test)
    assert gtec.Gtec(ignoresab=True).read({}, {"_letters": "MF"}).tokens == ["OL"]


def test_masterguard_wh_and_q3() -> None:
    mg = masterguard.Masterguard()
    static = mg.parse("WH", MG_WH)
    assert static == {
        "ups.id": "00", "ups.firmware": "10.06", "ups.firmware.aux": "03.09",
        "input.voltage.nominal": "230", "input.frequency.nominal": "50.00",
        "ambient.0.temperature.low": "10", "ambient.0.temperature.high": "40",
        "input.voltage.low.critical": "160", "input.voltage.high.critical": "276",
        "input.frequency.low": "47.00", "input.frequency.high": "53.00",
        "device.model": "A700-19", "ups.power.nominal": "700", "_packs_range": "0 0",
        "_cells": "12", "battery.voltage.nominal": "27.60"}
    polled = mg.parse("Q3", MG_Q3)
    assert polled is not None
    r = mg.read(static, polled)
    assert {k: r.values[k] for k in (
        "input.voltage", "output.voltage", "ups.load", "ups.power", "output.current",
        "input.frequency", "battery.voltage", "ups.temperature", "ambient.0.temperature",
        "battery.runtime", "battery.charge", "ups.type", "ups.test.result", "device.mfr",
        "load.high", "battery.type")} == {
        "input.voltage": "225.9", "output.voltage": "229.3", "ups.load": "43",
        "ups.power": "302", "output.current": "1.32", "input.frequency": "50.0",
        "battery.voltage": "27.24", "ups.temperature": "23.4", "ambient.0.temperature": "23.4",
        "battery.runtime": "1023", "battery.charge": "100", "ups.type": "online",
        "ups.test.result": "no test in progress", "device.mfr": "Masterguard",
        "load.high": "140", "battery.type": "PbAc"}
    assert (r.tokens, r.alarms) == (["OL"], [])
    polled = mg.parse("Q3", MG_Q3_B)
    assert polled is not None
    r = mg.read(static, polled)  # B6 LB, B5 bypass; T4 replace battery, T3 no battery
    assert (r.tokens, r.alarms) == (["OL", "LB", "BYPASS", "RB"], ["no battery connected"])


def test_masterguard_other_replies() -> None:
    mg = masterguard.Masterguard()
    assert mg.parse("GS", b"(00,00 2 1\r") == {"_packs": "2", "_beeper": "1"}
    assert mg.parse("GBS", b"(00,100 0017 0000 0708 0712 0994 115 02.28\r") == {
        "_gbs_charge": "100"}
    assert mg.parse("GSN", b"(00,SSN=6A1212      2782\r") == {"device.part": "6A1212",
                                                             "device.serial": "2782"}
    assert mg.parse("DRC", b"(00,1869:19:06:37\r") == {"device.uptime": "161550397"}
    assert mg.parse("MSO", b"(220 230 240\r") == {"_voltages": "220 230 240"}
    assert mg.parse("PNV", b"(PNV=230\r") == {"output.voltage.nominal": "230"}
    static = {**(mg.parse("WH", MG_WH) or {}), "_voltages": "220 230 240"}
    w = mg.writable(static)
    assert w["battery.packs"].low == 0 and w["battery.packs"].high == 0
    assert w["output.voltage.nominal"].enums == ("220", "230", "240")
    bits = {"_bits": "10000000 00000000", "_packs": "2", "_beeper": "0", "_gbs_charge": "80",
            "ups.load": "50", "output.voltage": "230.0", "output.voltage.nominal": "230"}
    r = mg.read(static, bits)
    assert (r.values["battery.packs"], r.values["ups.beeper.status"], r.values["battery.charge"],
            r.values["output.current.nominal"], r.tokens) == ("2", "disabled", "80", "3.05",
                                                                 ["OB"])
    # the models and their battery pack ranges
    assert masterguard.model_of("A 2000  + 2 Bat Pack-19") == ("A2000-19", 2000, (1, 5))
    assert masterguard.model_of("E100 ") == ("E100", 10000, (1, 1))
    assert masterguard.model_of("B 1000") is None
    assert mg.parse("WH", MG_WH.replace(b"A  700", b"X  700")) is None


# ---- sans-IO: commands --------------------------------------------------------------------------

Q1_COMMANDS = [
    ("beeper.toggle", None, b"Q\r"), ("load.off", None, b"S00R0000\r"), ("load.on", None, b"C\r"),
    ("shutdown.return", None, b"S.5R0003\r"), ("shutdown.stayoff", None, b"S.5R0000\r"),
    ("shutdown.stop", None, b"C\r"), ("test.battery.start", None, b"T10\r"),
    ("test.battery.start", "120", b"T02\r"), ("test.battery.start.deep", None, b"TL\r"),
    ("test.battery.start.quick", None, b"T\r"), ("test.battery.stop", None, b"CT\r"),
]
#: (protocol, cmd, parameter, bytes) with ondelay 180 s, offdelay 30 s
COMMAND_BYTES = [
    *(("zinto", *c) for c in Q1_COMMANDS), *(("gtec", *c) for c in Q1_COMMANDS),
    *(("hunnox", *c) for c in Q1_COMMANDS),
    *(("ablerex", *c) if c[0] != "load.off" else ("ablerex", "load.off", None, b"S.2\r")
      for c in Q1_COMMANDS),
    ("masterguard", "shutdown.return", None, b"S.5R0180\r"),
    ("masterguard", "shutdown.stayoff", None, b"S.5\r"),
    ("masterguard", "shutdown.stop", None, b"C\r"),
    ("masterguard", "test.battery.start", "10", b"T\r"),
    ("masterguard", "test.battery.start", "120", b"T02\r"),
    ("masterguard", "test.battery.start.quick", None, b"T\r"),
    ("masterguard", "test.battery.start.low", None, b"TL\r"),
    ("masterguard", "test.battery.start.deep", None, b"TUD,00\r"),
    ("masterguard", "test.battery.stop", None, b"CT\r"),
    ("masterguard", "clear.fault.record", None, b"FCLR,00\r"),
    ("masterguard", "bypass.start", None, b"FOFF\r"),
    ("masterguard", "bypass.stop", None, b"FON\r"),
    ("masterguard", "beeper.enable", None, b"SS---1,00\r"),
    ("masterguard", "beeper.disable", None, b"SS---0,00\r"),
]


@pytest.mark.parametrize(("protocol", "cmd", "param", "sent"), COMMAND_BYTES)
def test_command_bytes(protocol: str, cmd: str, param: str | None, sent: bytes) -> None:
    proto = DEVICE_PROTOCOLS[protocol]()
    assert cmd in proto.commands
    assert proto.encode_command(cmd, param, 180, 30) == sent


def test_command_delays_and_errors() -> None:
    mg = masterguard.Masterguard()
    assert mg.encode_command("shutdown.return", None, 0, 660) == b"S11R0000\r"
    assert mg.encode_command("shutdown.stayoff", None, 0, 5940) == b"S99\r"
    with pytest.raises(CommandError):
        mg.encode_command("test.battery.start", None, 180, 30)  # NUT wants a duration
    with pytest.raises(CommandError):
        mg.encode_command("test.battery.start", "30", 180, 30)
    assert mg.encode_command("beeper.toggle", None, 180, 30) is None
    assert mg.encode_setvar("battery.packs", "2") == b"SS--2-,00\r"
    assert mg.encode_setvar("output.voltage.nominal", "230") == b"PNV=230\r"
    assert mg.encode_setvar("ups.id", "3") is None
    with pytest.raises(CommandError):
        mg.encode_setvar("battery.packs", "12")
    assert Hunnox().encode_command("shutdown.return", None, 0, 60) == b"S01\r"  # its defaults
    with pytest.raises(CommandError):
        ablerex.Ablerex().encode_command("test.battery.start", "30", 180, 30)


# ---- garbage never raises -------------------------------------------------------------------------

QUERIES = [(name, q) for name, cls in DEVICE_PROTOCOLS.items()
           for q in (cls.status_query, cls.rating_query, cls.vendor_query, *cls.other_static,
                     *cls.optional) if q is not None]
SAMPLES = {"Q1": ABLEREX_Q1, "F": ABLEREX_F, "I": ABLEREX_I, "FW?": ABLEREX_I, "Q5": q5(),
           "At": b"(\x00\x00\x0e\x10\r", "TR": b"#PASS\r", "BL": b"BL100\r", "Q4": GTEC_Q4,
           "WH": MG_WH, "Q3": MG_Q3, "GS": b"(00,00 2 1\r",
           "GBS": b"(00,100 0017 0000 0708 0712 0994 115 02.28\r",
           "GSN": b"(00,SSN=6A1212      2782\r", "DRC": b"(00,1869:19:06:37\r",
           "MSO": b"(220 230 240\r", "PNV": b"(PNV=230\r"}


def _read_all(proto: DeviceProtocol, query: str, out: dict[str, str]) -> None:
    """Whatever a parser let through must read, and every value is text."""
    assert all(isinstance(v, str) for v in out.values())
    static = {**(proto.parse("WH", MG_WH) or {})} if proto.name == "masterguard" else {
        "battery.voltage.nominal": "24.0"}
    status = proto.parse(proto.status_query, SAMPLES[proto.status_query]) or {}
    polled = {**status, **out} if query not in proto.static(norating=False, novendor=False) \
        else status
    r = proto.read({**static, **out} if query != proto.status_query else static, polled)
    assert r.tokens and r.tokens[0] in ("OL", "OB")
    assert all(isinstance(v, str) for v in r.values.values())
    proto.writable({**static, **out})


@FUZZ
@given(which=st.sampled_from(QUERIES), raw=st.binary(max_size=120))
def test_fuzz_random_replies(which: tuple[str, str], raw: bytes) -> None:
    proto = DEVICE_PROTOCOLS[which[0]]()
    out = proto.parse(which[1], raw)
    if out is not None:
        _read_all(proto, which[1], out)


@FUZZ
@given(which=st.sampled_from(QUERIES), data=st.data())
def test_fuzz_mangled_replies(which: tuple[str, str], data: st.DataObject) -> None:
    sample = SAMPLES[which[1]]
    pos = data.draw(st.integers(0, len(sample) - 1))
    byte = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(sample)))
    proto = DEVICE_PROTOCOLS[which[0]]()
    out = proto.parse(which[1], (sample[:pos] + bytes([byte]) + sample[pos + 1:])[:cut])
    if out is not None:
        _read_all(proto, which[1], out)


# ---- the driver and the simulator ----------------------------------------------------------------

@pytest.fixture(autouse=True)
def _restore_backend() -> Iterator[None]:
    saved = qxd.backend
    yield
    qxd.backend = saved


@contextlib.asynccontextmanager
async def behind_usb(dev: FakeHidDevice, **opts: str) -> AsyncIterator[MegatecDriver]:
    """Our nutdrv_qx on ``dev`` through the fake pyusb backend (fast timeouts)."""
    qxd.backend = fakeqx.FakeQxBackend([dev])
    cfg = {"driver": "nutdrv_qx", "port": "auto", **opts}
    drv = MegatecDriver(Device("ups", driver_name="nutdrv_qx"), cfg)
    assert isinstance(drv.link, UsbLink)
    drv.link.time_scale = FAST
    await drv.connect()
    try:
        yield drv
    finally:
        await drv.close()


def sim_ups(protocol: str) -> MegatecSimulator:
    return fakeqx.megatec_ups(SimUPS(Params(seed=1)), protocol=protocol)


#: per protocol: detected without ``protocol =`` (as NUT probes), and values to expect at OL
EXPECT: dict[str, tuple[bool, dict[str, str]]] = {
    "zinto": (True, {"device.mfr": "NUT Bridge", "device.model": "SimQ1",
                     "ups.firmware": "SIM-1.0", "driver.version.data": "Zinto"}),
    "hunnox": (False, {"battery.charge": "100", "driver.version.data": "Hunnox",
                       "ups.delay.shutdown": "60", "ups.delay.start": "0"}),
    "ablerex": (False, {"output.frequency": "50.0", "output.voltage.nominal": "230.0",
                        "battery.voltage.nominal": "24.0", "driver.version.data": "Ablerex"}),
    "gtec": (True, {"input.voltage.nominal": "230", "device.model": "SimQ1",
                    "driver.version.data": "Gtec"}),
    "masterguard": (True, {"device.model": "A1000", "ups.power.nominal": "1000",
                           "battery.voltage.nominal": "24.00", "device.mfr": "Masterguard",
                           "output.voltage.nominal": "230", "device.serial": "0001",
                           "driver.version.data": "Masterguard"}),
}


@pytest.mark.parametrize("protocol", list(EXPECT))
async def test_detect_and_outage(protocol: str) -> None:
    """Detected as NUT would (or named), then OL -> OB -> OB LB -> OL on the simulator."""
    auto, expect = EXPECT[protocol]
    ups = sim_ups(protocol)
    dev = fakeqx.CypressDevice(ups)
    async with behind_usb(dev, **({} if auto else {"protocol": protocol})) as drv:
        assert drv.protocol == protocol
        for status, act in OUTAGE:
            act(ups.model)
            ups.model.tick()  # one tick: the mains back is sampled (the output follows it)
            await drv.update()
            assert drv.device.value("ups.status") == status, protocol
            if status == "OL" and expect:
                got = {k: drv.device.value(k) for k in expect}
                assert got == expect
                expect = {}
        if protocol in ("hunnox", "masterguard"):  # the UPS's own charge figure
            assert drv.device.value("battery.charge") == "60"


def test_protocol_names_checked() -> None:
    with pytest.raises(ConfigError):
        MegatecDriver(Device("u"), {"driver": "blazer_ser", "port": "/x", "protocol": "zinto"})
    with pytest.raises(ConfigError):
        MegatecDriver(Device("u"), {"driver": "nutdrv_qx", "port": "/x", "protocol": "q9"})
    drv = MegatecDriver(Device("u"), {"driver": "nutdrv_qx", "port": "/x", "protocol": "hunnox"})
    assert (drv.offdelay, drv.ondelay) == (60, 0)
    drv = MegatecDriver(Device("u"), {"driver": "nutdrv_qx", "port": "/x",
                                      "protocol": "masterguard", "offdelay": "0"})
    assert drv.offdelay == 0  # Masterguard counts from 0 (Q1: 12 s at least)


@pytest.mark.parametrize("protocol", list(EXPECT))
async def test_every_command_reaches_the_ups(protocol: str) -> None:
    """upscmd -> the bytes the UPS gets, for every command the protocol lists."""
    ups = sim_ups(protocol)
    dev = fakeqx.CypressDevice(ups)
    table = {(c, p): b for proto, c, p, b in COMMAND_BYTES if proto == protocol}
    async with behind_usb(dev, protocol=protocol, ondelay="180", offdelay="30") as drv:
        await drv.update()
        # LIST CMD: the protocol's commands (besides the driver core's), all in the table
        listed = {c for c in drv.device.commands()
                  if not c.startswith("driver.") and c != "shutdown.default"}
        assert listed == {c for c, _ in table}
        for (cmd, param), sent in table.items():
            assert await drv.instcmd(cmd, param) == Status.HANDLED, cmd
            assert dev.received[-1] == sent, cmd
        assert await drv.instcmd("outlet.1.load.off", None) == Status.UNKNOWN
    if protocol == "masterguard":
        assert ups.commands[-2:] == ["SS---1,00", "SS---0,00"]


async def test_masterguard_settings() -> None:
    ups = sim_ups("masterguard")
    dev = fakeqx.CypressDevice(ups)
    async with behind_usb(dev, protocol="masterguard") as drv:
        await drv.update()
        d = drv.device
        var = d.get("output.voltage.nominal")
        assert var is not None and var.enums == ["220", "230", "240"]
        assert await drv.setvar("output.voltage.nominal", "240") == Status.HANDLED
        assert dev.received[-1] == b"PNV=240\r"
        assert await drv.setvar("battery.packs", "1") == Status.HANDLED
        assert dev.received[-1] == b"SS--1-,00\r"
        await drv.update()
        assert (d.value("output.voltage.nominal"), d.value("battery.packs")) == ("240", "1")
        assert await drv.setvar("battery.packs", "x") == Status.INVALID
        assert await drv.setvar("ups.delay.shutdown", "0") == Status.HANDLED
        assert await drv.instcmd("shutdown.stayoff", None) == Status.HANDLED
        assert dev.received[-1] == b"S.0\r"


async def test_zinto_detected_on_a_pty(tmp_path: Path) -> None:
    """The serial path: a Q1 unit that answers FW? but not I is a Zinto (NUT's order)."""
    sim = MegatecSimulator(tmp_path / "tty", model=SimUPS(Params(seed=1)), speed=0,
                           protocol="zinto")
    async with sim, serialsim.megatec_driver(sim) as drv:
        assert drv.protocol == "zinto"
        assert [r for r in sim.received if r in (b"Q1\r", b"I\r", b"FW?\r")][:3] == [
            b"Q1\r", b"I\r", b"Q1\r"]
        await drv.update()
        assert drv.device.value("device.model") == "SimQ1"
        sim.model.set_mains(False)
        await drv.update()
        assert drv.device.value("ups.status") == "OB"


async def test_plain_q1_unit_stays_megatec() -> None:
    """A Q1 unit that answers neither I, FW? nor WH is NUT's fallback Q1 (published as
    Megatec); one that answers I is never asked the device probes."""
    ups = fakeqx.ReplayedUPS({b"Q1\r": POWERCOOL_Q1})
    async with behind_usb(fakeqx.CypressDevice(ups)) as drv:
        assert drv.protocol == "megatec"
    # NUT's claims in turn: megatec (I), zinto (FW?), masterguard (WH); then connect asks I
    assert [c for c in ups.commands if c in ("I", "FW?", "WH", "Q4")][:3] == ["I", "FW?", "WH"]
    ups2 = sim_ups("megatec")
    dev = fakeqx.CypressDevice(ups2)
    async with behind_usb(dev) as drv:
        assert drv.protocol == "megatec"
        assert b"FW?\r" not in dev.received and b"WH\r" not in dev.received


# ---- corpus units behind their own bridges ----------------------------------------------------------

def _dump(path: str) -> dict[str, str]:
    out = {}
    for line in (DDL / path).read_text(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    return out


needs_ddl = pytest.mark.skipif(not DDL.is_dir(), reason="DDL corpus not present")
#: not compared: the driver's own, and NUT's "0" alarm (the Ablerex error number when fine)
NOT_COMPARED = ("driver.", "device.type", "ups.alarm")


def _differ(drv: MegatecDriver, values: dict[str, str]) -> dict[str, Any]:
    ours = drv.device
    out = {}
    for key, theirs in values.items():
        if key.startswith(NOT_COMPARED):
            continue
        mine = ours.value(key)
        if mine != theirs and not (mine is not None and _num(mine) == _num(theirs)):
            out[key] = (mine, theirs)
    return out


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@needs_ddl
async def test_ablerex_grs_behind_its_bridge() -> None:
    """The Ablerex GRs dump: its replies behind the Ablerex bridge (ffff:0000, feature report
    5, binary Q5), ``protocol = ablerex``: every value NUT published but its "0" alarm."""
    values = _dump("Ablerex/Ablerex__GRs_GRs_Plus__nutdrv_qx__2.7.4.1__01.dev")
    ups = fakeqx.ReplayedUPS({b"Q1\r": ABLEREX_Q1, b"F\r": ABLEREX_F, b"I\r": ABLEREX_I,
                              b"Q5\r": q5()})
    dev = fakeqx.AblerexDevice(ups)
    async with behind_usb(dev, protocol="ablerex", subdriver="ablerex", vendorid="ffff",
                          productid="0000") as drv:
        await drv.update()
        assert _differ(drv, values) == {}
        assert await drv.instcmd("load.off", None) == Status.HANDLED
        assert ups.commands[-1] == "S.2"


@needs_ddl
async def test_powercool_hunnox_behind_its_bridge() -> None:
    """The Powercool dump (hunnox strings bridge, ``protocol = hunnox``, novendor), its
    UPS also answering BL now (NUT 2.8.x's hunnox asks it)."""
    values = _dump("Powercool/Powercool__1500VA__nutdrv_qx__2.7.4.1__01.dev")
    ups = fakeqx.ReplayedUPS({b"Q1\r": POWERCOOL_Q1, b"F\r": POWERCOOL_F, b"BL\r": b"BL87\r"})
    dev = fakeqx.HunnoxDevice(ups)
    async with behind_usb(dev, protocol="hunnox", langid_fix="0x0409", novendor="",
                          noscanlangid="") as drv:
        await drv.update()
        assert _differ(drv, values) == {}
        assert drv.device.value("battery.charge") == "87"
