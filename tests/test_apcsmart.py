"""APC Smart: sans-IO parsing, the simulator, our driver, and NUT's apcsmart side by side.

test_differential_vs_c_apcsmart runs NUT's apcsmart (under the C upsd) and our bridge on two
identical simulators. What it compares, and how:

* every variable NUT serves, except driver.* (versions, parameters), must have the same value
  on ours; variables only ours serves are not compared;
* ours offers every command NUT offers, except ``shutdown.return``, and may offer more;
* each variable that is RW on NUT has the same GET TYPE and LIST ENUM answers on ours;
* SET VAR / INSTCMD reach both simulators as the same bytes; NUT's ``load.off`` is asked twice,
  3.5 s apart (NUT runs such "nasty" commands only when confirmed; ours at once: a documented
  difference); the status changes (OL, OB, OB LB, OL LB, OL; CAL TRIM OL RB) must be equal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nutbridge.drivers import create_driver
from nutbridge.drivers.apcsmart import protocol as apc
from nutbridge.drivers.apcsmart.driver import ApcSmart
from nutbridge.drivers.base import DeviceError, Status
from nutbridge.simulation.apcsmart import CAPS, ApcSmartSim, caps_reply
from nutbridge.simulation.model import Params, SimUPS
from nutbridge.state import Device
from tests.conftest import BridgeServer

from .support import realnut, serialsim

Sim = serialsim.SimThread[ApcSmartSim]
Pair = tuple[int, int, Sim, Sim]

# the ^Z reply of a real Smart-UPS (locale I), quoted in ../shared/docs/drivers.md §2.3
REAL_CAPS = ("#uD43132135138129uM43229234239224uA43110112114108uI43253264271280lD43103100097106"
             "lM43177172168182lA43090092081085lI43196188208204e44200155090oI43230240220225oD13115"
             "oJ13100oM13208s441HMLLq44202050710p443020180300600k4410TLNr443000060180300E443336168"
             "ON OFF")


# ---- sans-IO --------------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "tokens"), [
    ("08", ["OL"]), ("10", ["OB"]), ("50", ["OB", "LB"]), ("0A", ["TRIM", "OL"]),
    ("00", ["OFF"]), ("88", ["OL", "RB"]), ("01", ["CAL"]), ("xx", None), ("", None), ("123", None),
])
def test_status_byte(reply: str, tokens: list[str] | None) -> None:
    assert apc.parse_status(reply) == tokens


def test_cmdset_and_capabilities() -> None:
    cs = apc.parse_cmdset("3.!$%+?=#|.\x01\x1aABQYZab-")
    assert cs is not None and cs.protocol == 3 and {"\x1a", "Q", "-"} <= cs.cmds
    assert apc.parse_cmdset("NA") is None
    assert apc.firmware_locale("925.T2.I") == "I"
    caps = apc.parse_capabilities(REAL_CAPS, "I")
    assert caps is not None
    assert caps["u"] == ["253", "264", "271", "280"]  # locale I only, not D/M/A
    assert caps["o"] == ["230", "240", "220", "225"]
    assert caps["E"] == ["336", "168", "ON ", "OFF"]
    assert caps["s"] == ["H", "M", "L"]  # duplicates folded
    assert apc.parse_capabilities("#u", "I") is None
    assert apc.parse_capabilities(caps_reply(), "I") == {
        k: list(dict.fromkeys(v)) for k, v in CAPS.items()}


def test_conversions() -> None:
    assert apc.convert("j", "0045:") == "2700"
    assert apc.convert("q", "02") == "120"
    assert apc.convert("E", "336") == "1209600"
    assert apc.convert("P", "024.9") == "024.9"  # NUT keeps the UPS's text
    assert apc.convert("G", "O") == "no transfers yet since turnon"
    assert apc.convert("f", "NA") is None
    assert apc.convert("j", "zz") is None


def test_alerts_mid_reply() -> None:
    r = apc.LineReader()
    assert r.feed(b"23!0.") == []
    assert r.feed(b"4\r\n08%") == ["230.4"]
    assert r.take_alerts() == [ord("!"), ord("%")]
    assert apc.apply_alerts(["OL"], [ord("!"), ord("%")]) == ["OB", "LB"]
    assert apc.apply_alerts(["OB", "LB"], [ord("$"), ord("+")]) == ["OL"]
    assert r.feed(b"|&\r\n") == ["08"]  # EEPROM-changed / alarm-register noise dropped
    assert r.feed(b"*") == ["OK"]  # "*" = powering down, a complete reply
    r.mode = "caps"
    assert r.feed(b"#uI43!253\r\n") == ["#uI43253"]
    assert r.take_alerts() == [ord("!")]


def test_oversize_line_dropped_and_counted() -> None:
    r = apc.LineReader()
    assert r.feed(b"x" * (apc.MAX_LINE + 10)) == []
    assert r.dropped == 1
    assert r.feed(b"yyy\r\n08\r\n") == ["08"]  # the oversize frame's tail is dropped too


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20), st.sampled_from(["normal", "caps", "raw"]))
def test_fuzz_line_reader(chunks: list[bytes], mode: str) -> None:
    r = apc.LineReader()
    r.mode = mode
    for chunk in chunks:
        for line in r.feed(chunk):
            assert "\n" not in line and len(line) <= apc.MAX_LINE + 1
            apc.parse_status(line)
            apc.parse_cmdset(line)
            apc.parse_capabilities(line, "I")
            for var in apc.VARS:
                apc.convert(var.cmd, line)
    assert all(a in apc.ALERTS for a in r.take_alerts())


_REPLY = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPRSTUVWXYZ.:/ ", min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(_REPLY, min_size=1, max_size=8), st.data())
def test_fuzz_alerts_anywhere(replies: list[str], data: st.DataObject) -> None:
    """Alert characters sprinkled anywhere (and any chunking) never change the replies."""
    stream = bytearray()
    sent: list[int] = []
    for reply in replies:
        for ch in (reply + "\r\n").encode():
            if data.draw(st.booleans()):
                alert = data.draw(st.sampled_from(sorted(apc.ALERTS)))
                stream.append(alert)
                sent.append(alert)
            stream.append(ch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    r = apc.LineReader()
    lines: list[str] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        lines += r.feed(bytes(stream[a:b]))
    assert lines == [x.strip("\r") for x in replies]
    assert r.take_alerts() == sent


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200))
def test_fuzz_capabilities(text: str) -> None:
    caps = apc.parse_capabilities("#" + text, "I")
    assert caps is None or all(isinstance(v, list) for v in caps.values())


# ---- our driver against the simulator (same event loop) ----------------------------------------


async def _driver(tmp_path: Path, ups: SimUPS | None = None) -> tuple[ApcSmartSim, ApcSmart]:
    sim = ApcSmartSim(tmp_path / "ttyUPS0", ups, speed=0)
    await sim.start()
    drv = create_driver(Device("apc"), {"driver": "apcsmart", "port": str(sim.link),
                                        "pollinterval": "1"})
    assert isinstance(drv, ApcSmart)
    await drv.connect()
    await drv.update()
    return sim, drv


async def test_driver_reads_and_alerts(tmp_path: Path) -> None:
    sim, drv = await _driver(tmp_path)
    try:
        dev = drv.device
        assert dev.value("ups.model") == "Smart-UPS 1500"
        assert dev.value("ups.firmware") == "925.T2.I"
        assert dev.value("battery.runtime.low") == "120"
        assert dev.value("ups.test.interval") == "1209600"
        assert dev.value("ups.status") == "OL"
        assert sim.received[:4] == [b"Y", b"b", b"a", b"\x1a"]
        var = dev.get("ups.delay.shutdown")
        assert var is not None and var.rw
        # an alert wakes the driver up before the poll interval is over
        sim.ups.set_mains(False)
        assert sim.push_alerts() == b"!"
        await asyncio.wait_for(drv.wait(), 0.9)
        assert "OB" in dev.status_tokens()
        await drv.update()
        assert dev.value("ups.status") == "OB"
        assert dev.value("input.transfer.reason") == "low utility voltage"
    finally:
        await drv.close()
        await sim.stop()


async def test_setvar_cycles_with_minus(tmp_path: Path) -> None:
    sim, drv = await _driver(tmp_path)
    try:
        sim.received.clear()
        assert await drv.setvar("ups.delay.shutdown", "300") == Status.HANDLED
        assert sim.settings["p"] == "300"
        assert sim.received[:5] == [b"p", b"-", b"p", b"-", b"p"]
        assert drv.device.value("ups.delay.shutdown") == "300"
        assert await drv.setvar("ups.delay.shutdown", "17") == Status.INVALID
        assert await drv.setvar("battery.runtime.low", "420") == Status.HANDLED
        assert sim.settings["q"] == "07"
        sim.received.clear()
        assert await drv.setvar("ups.id", "RACK7") == Status.HANDLED
        assert b"".join(sim.received) == b"c-RACK7\r\r\rc"
        assert drv.device.value("ups.id") == "RACK7"
        assert await drv.setvar("ups.id", "TOO-LONG-ID") == Status.INVALID
        assert await drv.setvar("ups.model", "x") == Status.UNKNOWN
    finally:
        await drv.close()
        await sim.stop()


@pytest.mark.parametrize(("cmd", "wire", "mains"), [
    ("test.battery.start", b"W", True),
    ("calibrate.start", b"QD", True),  # status checked first: "D" toggles
    ("test.panel.start", b"A", True),
    ("shutdown.return", b"S", False),
    ("load.off", b"ZZ", True),  # repeated commands: two bytes, 1.3 s apart
])
async def test_instcmd_bytes(tmp_path: Path, cmd: str, wire: bytes, mains: bool) -> None:
    sim, drv = await _driver(tmp_path)
    try:
        sim.ups.set_mains(mains)
        assert drv.device.has_cmd(cmd)
        sim.received.clear()
        assert await drv.instcmd(cmd, None) == Status.HANDLED
        assert b"".join(sim.received) == wire
        assert sim.commands == [wire[-1:].decode()]
    finally:
        await drv.close()
        await sim.stop()


async def test_instcmd_refused(tmp_path: Path) -> None:
    sim, drv = await _driver(tmp_path)
    try:
        sim.received.clear()
        # "D" toggles: never sent when it would start what should stop (as NUT)
        assert await drv.instcmd("calibrate.stop", None) == Status.FAILED
        assert b"D" not in b"".join(sim.received)
        assert await drv.instcmd("calibrate.start", None) == Status.HANDLED
        assert sim.ups.calibrating
        assert await drv.instcmd("calibrate.start", None) == Status.FAILED
        assert await drv.instcmd("calibrate.stop", None) == Status.HANDLED
        assert not sim.ups.calibrating
        # "^" answers BYP / INV: the way the toggle went
        assert await drv.instcmd("bypass.start", None) == Status.HANDLED
        assert sim.ups.bypass
        assert await drv.instcmd("bypass.start", None) == Status.FAILED  # toggled back: INV
        assert await drv.instcmd("shutdown.return", None) == Status.FAILED  # on mains: "NA"
        assert await drv.instcmd("beeper.toggle", None) == Status.UNKNOWN
    finally:
        await drv.close()
        await sim.stop()


async def test_old_firmware_without_command_set(tmp_path: Path) -> None:
    sim = ApcSmartSim(tmp_path / "ttyUPS0", speed=0)
    sim.old_firmware = True
    await sim.start()
    drv = create_driver(Device("apc"), {"driver": "apcsmart", "port": str(sim.link)})
    assert isinstance(drv, ApcSmart)
    try:
        await drv.connect()
        await drv.update()
        assert drv.device.value("ups.status") == "OL"
        assert drv.device.value("battery.charge") == "100.0"
        assert drv.device.has_cmd("test.battery.start")
        var = drv.device.get("ups.delay.shutdown")  # no ^Z: readable, not settable
        assert var is not None and not var.rw
        sim.received.clear()
        await drv.update()
        polled = b"".join(sim.received)
        assert b"f" in polled and b"9" not in polled  # unanswered variables are not polled
    finally:
        await drv.close()
        await sim.stop()


async def test_silent_ups_then_back(tmp_path: Path) -> None:
    sim, drv = await _driver(tmp_path)
    try:
        sim.silence(True)
        with pytest.raises(DeviceError, match="no reply"):
            await drv.update()
        sim.silence(False)
        await drv.close()
        await drv.connect()
        await drv.update()
        assert drv.device.value("ups.status") == "OL"
        sim.unplug()  # a command on a dead port fails cleanly (no exception escapes)
        await asyncio.sleep(0.1)
        assert await drv.instcmd("test.panel.start", None) == Status.FAILED
        assert await drv.setvar("ups.delay.shutdown", "180") == Status.FAILED
    finally:
        await drv.close()
        await sim.stop()


async def test_killpower_on_battery_sends_s(tmp_path: Path) -> None:
    sim, drv = await _driver(tmp_path)
    try:
        sim.ups.set_mains(False)
        await drv.update()
        assert await drv.killpower() == "shutdown.return"
        assert sim.commands == ["S"]
        assert sim.ups.after_off == "return"
    finally:
        await drv.close()
        await sim.stop()


async def test_garbage_reply_then_recovery(tmp_path: Path) -> None:
    sim, drv = await _driver(tmp_path)
    try:
        assert drv.link is not None
        sim.garbage(30)  # line noise before the Q reply
        with pytest.raises(DeviceError):
            await drv.update()
        assert drv.link.counters["garbage"] >= 1
        # no reconnect needed: the leftover reply is dropped before the next command
        await drv.update()
        assert drv.device.value("ups.status") == "OL"
        assert drv.device.value("ups.model") == "Smart-UPS 1500"
        sim.garbage(20, now=True)  # noise between polls
        await asyncio.sleep(0.1)
        await drv.update()
        assert drv.device.value("ups.status") == "OL"
    finally:
        await drv.close()
        await sim.stop()


# ---- through upsd: NUT's apcsmart vs our bridge, each on its own identical simulator ----------


def _ups() -> SimUPS:
    return SimUPS(Params(seed=1))


def _vars(port: int, ups: str) -> dict[str, str]:
    out = realnut.query(port, f"LIST VAR {ups}").decode()
    vals: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("VAR "):
            _, _, name, value = line.split(" ", 3)
            vals[name] = value.strip('"')
    return vals


def _cmds(port: int, ups: str) -> set[str]:
    out = realnut.query(port, f"LIST CMD {ups}").decode()
    return {line.split()[2] for line in out.splitlines() if line.startswith("CMD ")}


@pytest.fixture
def pair(tmp_path: Path, bridge_server: Callable[..., BridgeServer]) -> Iterator[Pair]:
    with side_by_side(tmp_path, bridge_server,
                      lambda where: ApcSmartSim(tmp_path / where / "ttyUPS0", _ups(), speed=0)) as p:
        yield p


@contextlib.contextmanager
def side_by_side(tmp_path: Path, bridge_server: Callable[..., BridgeServer],
                 make: Callable[[str], ApcSmartSim]) -> Iterator[Pair]:
    """NUT's C apcsmart under the C upsd and ours under the bridge, each on its own simulator
    (``make("c")``, ``make("b")``): (C upsd port, bridge port, C's simulator, ours)."""
    realnut.require_daemon("apcsmart")
    with serialsim.running(lambda: make("c")) as csim, serialsim.running(lambda: make("b")) as bsim:
        ccfg = realnut.NutConfig(tmp_path / "cnut")
        ccfg.add_ups("apc", driver="apcsmart", port=str(csim.link), pollinterval="1")
        bcfg = realnut.NutConfig(tmp_path / "bnut")
        bcfg.add_ups("apc", driver="apcsmart", port=str(bsim.link), pollinterval="1")
        with realnut.c_upsd(ccfg):
            srv = bridge_server(bcfg)
            serialsim.wait_var(srv.port, "apc", "ups.status", "OL")
            yield ccfg.port, srv.port, csim, bsim


_DRIVER_KEYS = ("driver.", "device.")


def test_differential_vs_c_apcsmart(pair: Pair) -> None:
    cport, bport, csim, bsim = pair
    c, b = _vars(cport, "apc"), _vars(bport, "apc")
    common = sorted(k for k in c if not k.startswith("driver."))
    assert {k: b.get(k) for k in common} == {k: c[k] for k in common}
    assert _cmds(bport, "apc") >= _cmds(cport, "apc") - {"shutdown.return"}
    for name in sorted(k for k in c if _rw(cport, k)):
        assert _type_enum(bport, name) == _type_enum(cport, name), name
    # the same SET and INSTCMD reach both simulators as the same bytes
    for request, wire in ((b"SET VAR apc ups.delay.shutdown 300", b"p-p-p"),
                          (b'SET VAR apc ups.id "rack7"', b"c-rack7\r\r\r"),
                          (b"INSTCMD apc test.battery.start", b"W"),
                          (b"INSTCMD apc load.off", b"ZZ"),
                          (b"INSTCMD apc load.on", b"\x0e\x0e")):
        got = []
        for port, sim in ((cport, csim), (bport, bsim)):
            sim.clear_received()
            # NUT's apcsmart runs a "nasty" command (load.off, shutdown.*) only when it is
            # asked twice, 3-15 s apart; ours at once (a documented difference)
            nasty = port == cport and b"load.off" in request
            for attempt in range(2 if nasty else 1):
                if attempt:
                    time.sleep(3.5)
                    if _sent(sim, wire):
                        break
                answer = realnut.query(port, "USERNAME admin", "PASSWORD s3cr3t",
                                       request.decode(), timeout=10).decode()
                assert answer.count("OK") == 3, answer
            _wait_for(partial(_sent, sim, wire))
            got.append(b"".join(sim.received()))
        assert wire in got[0] and wire in got[1], got
    serialsim.wait_var(cport, "apc", "ups.delay.shutdown", "300")
    serialsim.wait_var(bport, "apc", "ups.delay.shutdown", "300")
    # OL -> OB -> OB LB -> OL, the alerts reaching both drivers
    for sims, step in (("mains", False), ("charge", 5.0), ("mains", True), ("charge", 100.0)):
        for sim in (csim, bsim):
            if sims == "mains":
                sim.call(sim.device.ups.set_mains, step)
            else:
                sim.call(setattr, sim.device.ups, "charge", step)
            sim.call(sim.device.push_alerts)
        want = {(False,): "OB", (5.0,): "OB LB", (True,): "OL LB", (100.0,): "OL"}[(step,)]
        for port in (cport, bport):
            serialsim.wait_var(port, "apc", "ups.status", want, timeout=10)
    # several bits at once come out in the same order
    for sim in (csim, bsim):
        for knob, value in (("mains_voltage", 250.0), ("health", 40.0), ("calibrating", True)):
            sim.call(setattr, sim.device.ups, knob, value)
    for port in (cport, bport):
        serialsim.wait_var(port, "apc", "ups.status", "CAL TRIM OL RB", timeout=10)



def _rw(port: int, name: str) -> bool:
    return " RW" in realnut.query(port, f"GET TYPE apc {name}").decode()


def _type_enum(port: int, name: str) -> str:
    return realnut.query(port, f"GET TYPE apc {name}", f"LIST ENUM apc {name}").decode()


def _sent(sim: Sim, wire: bytes) -> bool:
    return wire in b"".join(sim.received())


def _wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_unplug_replug_through_bridge(tmp_path: Path,
                                     bridge_server: Callable[..., BridgeServer]) -> None:
    with serialsim.running(lambda: ApcSmartSim(tmp_path / "ttyUPS0", _ups(), speed=0)) as sim:
        cfg = realnut.NutConfig(tmp_path / "nut")
        cfg.add_ups("apc", driver="apcsmart", port=str(sim.link), pollinterval="1")
        srv = bridge_server(cfg)
        serialsim.wait_var(srv.port, "apc", "ups.status", "OL")
        sim.call(sim.device.unplug)
        stale = serialsim.wait_var(srv.port, "apc", "ups.status", None)  # DATA-STALE
        sim.call(sim.device.ups.set_mains, False)
        sim.call(sim.device.replug)
        back = serialsim.wait_var(srv.port, "apc", "ups.status", "OB", timeout=30)
        print(f"apcsmart: stale {stale:.1f} s after unplug, back {back:.1f} s after replug")
        assert sim.received().count(b"Y") >= 2  # a fresh handshake after the replug
