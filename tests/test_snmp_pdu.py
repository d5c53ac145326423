"""SNMP PDUs (``snmp-ups`` with the ``apc_pdu`` and ``eaton_epdu`` MIBs) against snmpsim.

* Differential: the APC AP8641 / AP8932 / AP7902B recordings of snmpsim-data and the project's
  Eaton ePDU recording (tests/data/snmp/pdu-eaton-epdu.snmprec, 48 outlets) give the same
  variables and values from our driver as from Debian's ``snmp-ups`` on the same agent; every
  difference is listed below with its reason (docs/snmp.md has the same list). The
  normalisations of test_same_variables_as_nut_snmp_ups, and nothing else:

  - driver.* is not compared, except ``driver.version.data`` (MIB name and table revision),
    which must equal NUT's;
  - numbers may differ by 0.01 (NUT rounds through a C float before "%.2f": 0.225 -> 0.22);
  - APC: ``outlet.N.current``, ``outlet.N.realpower`` and ``outlet.group.*`` are ours only
    (NUT's apc_pdu maps no per-outlet metering and no banks); with NUT 2.8.0 also the last
    outlet's variables (its template stops one outlet early; 2.8.5 fixed it);
  - Eaton: ``outlet.current`` is not compared (NUT scales the unit's mA by 0.01, 80.11 "A" on a
    16 A PDU; ours, in amperes, must equal input.current), nor ``outlet.group.N.phase`` (2.8.5
    derives it with a helper: "unknown" for outlet sections);
  - Eaton with NUT older than 2.8.5 (whose snmp-ups never completes its first update on this
    PDU): the reference is tests/data/snmp/pdu-eaton-epdu.nut-2.8.5.txt, the dump 2.8.5 prints
    (driver.* lines but driver.version.data removed); in sid the live dump is checked against it.
* Outlet control: ``upscmd outlet.N.load.off|on|cycle`` and ``upsrw outlet.N.desc|status`` through
  the bridge SET the agent's writable outlet OIDs (read back with a raw SNMP GET), on writable
  copies of the recordings (pdu-*-rw.snmprec: the control column uses snmpsim's writecache).
* Round trips: a 48-outlet poll is counted on the wire (a UDP relay between driver and agent).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nutbridge.drivers.snmp.driver import SnmpUps
from nutbridge.drivers.snmp.mapper import Mapper
from nutbridge.drivers.snmp.mibs import registry
from nutbridge.drivers.snmp.mibs.apc_pdu import APC_PDU
from nutbridge.drivers.snmp.mibs.eaton_epdu import EATON_EPDU
from nutbridge.state import Device

from .support import realnut, serialsim, snmpsim

APC = ("apc-8641", "apc-8932", "apc-7902b")
EATON = "pdu-eaton-epdu"
LOGIN = ["-u", "admin", "-p", "s3cr3t"]
SPDU_CTL = "1.3.6.1.4.1.318.1.1.4.4.2.1.3."      # sPDUOutletCtl.N
SPDU_NAME = "1.3.6.1.4.1.318.1.1.4.4.2.1.4."     # sPDUOutletCtlName.N
EPDU = "1.3.6.1.4.1.534.6.6.7."


# ---- helpers -----------------------------------------------------------------------------------

async def _our_dump(port: int, community: str, **opts: str) -> tuple[dict[str, str], list[str]]:
    dev = Device("s1")
    drv = SnmpUps(dev, {"port": f"127.0.0.1:{port}", "community": community, "snmp_version": "v2c", **opts})
    await drv.connect()
    try:
        await drv.update()
    finally:
        await drv.close()
    return {v.name: v.value for v in dev.variables()}, sorted(dev.commands())


def our_dump(port: int, community: str, **opts: str) -> tuple[dict[str, str], list[str]]:
    """Our driver's variables and commands after its first (init) update."""
    return asyncio.run(_our_dump(port, community, **opts))


def _same(ours: str | None, nut: str) -> bool:
    if ours == nut:
        return True
    try:
        # NUT rounds through a C float before "%.2f": 0.225 prints as 0.22; accept the last digit
        return ours is not None and abs(float(ours) - float(nut)) <= 0.0100001
    except ValueError:
        return False


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".") if x.isdigit()) if text else (0,)


def _golden() -> dict[str, str]:
    path = snmpsim.DATA / "pdu-eaton-epdu.nut-2.8.5.txt"
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split(": ", 1) for line in lines)


def raw_int(agent: snmpsim.Agent, community: str, oid: str) -> int | None:
    body = agent.get(community, oid)
    return None if body is None else int.from_bytes(body, "big", signed=True)


def raw_str(agent: snmpsim.Agent, community: str, oid: str) -> str | None:
    body = agent.get(community, oid)
    return None if body is None else body.decode()


def upsc(port: int, ups: str) -> dict[str, str]:
    res = realnut.run_tool([*_tool("upsc"), f"{ups}@127.0.0.1:{port}"])
    assert res.returncode == 0, res
    return dict(line.split(": ", 1) for line in res.stdout.decode().splitlines() if ": " in line)


def _tool(name: str) -> list[str]:
    return [realnut.require_client(name)]


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[snmpsim.Agent]:
    """Read-only agent: the unmodified recordings (no SET in the tests that use it)."""
    with snmpsim.running(tmp_path_factory.mktemp("pdu-ro"), [*APC, EATON]) as a:
        yield a


@pytest.fixture
def rw_agent(tmp_path: Path) -> Iterator[snmpsim.Agent]:
    """A fresh agent per test: snmpsim's writecache keeps SET values per process and per OID."""
    with snmpsim.running(tmp_path, ["pdu-apc-8641-rw", "pdu-apc-7902b-rw", EATON, "apc-8641"]) as a:
        yield a


# ---- tables ------------------------------------------------------------------------------------

def test_mibs_registered_with_their_sysoids() -> None:
    names = [m.name for m in registry()]
    assert "apc_pdu" in names and "eaton_epdu" in names
    assert "1.3.6.1.4.1.318.1.3.4.6" in APC_PDU.sysoid and APC_PDU.device_type == "pdu"
    assert EATON_EPDU.sysoid == ("1.3.6.1.4.1.534.6.6.7",) and EATON_EPDU.device_type == "pdu"
    # vendor PDU MIBs are tried before the generic RFC 1628 table
    assert names.index("apc_pdu") < names.index("ietf") and names.index("eaton_epdu") < names.index("ietf")


def test_eaton_templates_use_the_unit_then_the_outlet_index() -> None:
    m = Mapper(EATON_EPDU)
    m.learn_counts({"outlet.count": "3", "outlet.group.count": "2"})
    oids = {b.var: b.oid for b in m.bound}
    assert oids["outlet.3.status"] == EPDU + "6.6.1.2.0.3"
    assert oids["outlet.group.2.current"] == EPDU + "5.4.1.3.0.2"
    cmds = {c.cmd: (c.oid, c.spec.value) for c in m.commands()}
    assert cmds["outlet.2.load.off"] == (EPDU + "6.6.1.3.0.2", 0)
    assert cmds["outlet.2.load.on"] == (EPDU + "6.6.1.4.0.2", 0)
    assert cmds["outlet.2.load.cycle"] == (EPDU + "6.6.1.5.0.2", 0)
    # the outlet columns can be fetched with GETBULK (column prefix, rows)
    assert (EPDU + "6.6.1.2.0", 3) in m.template_columns()


# ---- differential against Debian's snmp-ups ----------------------------------------------------

#: variables only we publish (NUT's apc_pdu maps no per-outlet metering)
APC_EXTRA = ("outlet.{n}.current", "outlet.{n}.realpower")


@pytest.mark.parametrize("community", [*APC, EATON])
def test_same_variables_as_nut_snmp_ups(agent: snmpsim.Agent, community: str) -> None:
    if community == EATON and _version(realnut.nut_version()) < (2, 8, 5):
        # snmp-ups 2.8.0 never completes its first update on this ePDU (it loops on GETs):
        # compare with the dump NUT 2.8.5 printed for the same recording (checked live in sid)
        nut = _golden()
    else:
        nut, out = snmpsim.snmp_ups_dump(agent.port, community, timeout=240)
        assert nut, out
        if community == EATON:
            golden = _golden()
            assert {k: v for k, v in nut.items() if not k.startswith("driver.") or k in golden} == golden
    ours, cmds = our_dump(agent.port, community)
    nut_version = nut.get("driver.version", "")
    count = int(ours["outlet.count"])
    # the same MIB, with NUT's table revision (the golden dump keeps driver.version.data)
    expect_mib = "eaton_epdu" if community == EATON else "apc_pdu"
    assert ours["driver.version.data"].startswith(expect_mib + " MIB")
    assert ours["driver.version.data"] == nut["driver.version.data"]
    allowed_extra: set[str] = set()
    skip_nut: set[str] = set()
    if community in APC:
        allowed_extra |= {t.format(n=n) for t in APC_EXTRA for n in range(1, count + 1)}
        allowed_extra |= {k for k in ours if k.startswith("outlet.group.")}   # rPDU2 banks
        if nut_version.startswith("2.8.0"):
            # NUT 2.8.0 stops the apc_pdu outlet template one outlet early (2.8.5 fixed it)
            last = f"outlet.{count}."
            assert not any(k.startswith(last) for k in nut)
            allowed_extra |= {k for k in ours if k.startswith(last)}
    else:
        # NUT scales the unit current (mA) by 0.01 -> 80.11 "A" on a 16 A PDU; we publish amperes
        skip_nut.add("outlet.current")
        assert abs(float(ours["outlet.current"]) - float(ours["input.current"])) < 0.01
        # 2.8.5 derives outlet.group.N.phase with a helper function ("unknown" for outlet sections)
        skip_nut |= {k for k in nut if k.startswith("outlet.group.") and k.endswith(".phase")}
    compared = 0
    for var, value in nut.items():
        if var.startswith("driver.") or var in skip_nut:
            continue
        assert _same(ours.get(var), value), (var, ours.get(var), value)
        compared += 1
    extra = {k for k in ours if not k.startswith("driver.") and k not in nut} - allowed_extra
    assert not extra, sorted(extra)
    assert compared > 60
    # outlet commands: ours for both MIBs (NUT has none for apc_pdu)
    for n in (1, count):
        assert {f"outlet.{n}.load.off", f"outlet.{n}.load.on", f"outlet.{n}.load.cycle"} <= set(cmds)


def test_detection_by_sysoid_and_by_probe(agent: snmpsim.Agent) -> None:
    # AP8641 answers the Rack PDU 2G sysObjectID; AP7902B (.318.1.3.4.8) is found by probing
    # sPDUIdentModelNumber, as NUT's classic detection does; mibs= names force a table
    for community, mib in (("apc-8641", "apc_pdu"), ("apc-7902b", "apc_pdu"), (EATON, "eaton_epdu")):
        values, _ = our_dump(agent.port, community)
        assert values["driver.version.data"].startswith(f"{mib} MIB"), community
        assert values["device.type"] == "pdu"
    values, _ = our_dump(agent.port, "apc-8932", mibs="apc_pdu")
    assert values["outlet.count"] == "24" and values["outlet.24.status"] in ("on", "off")


def test_apc_values_from_the_recording(agent: snmpsim.Agent) -> None:
    values, _ = our_dump(agent.port, "apc-8641")
    # sPDUOutletCtl: outlets 8, 10-16 and 24 are off in the recording
    off = {8, 10, 11, 12, 13, 14, 15, 16, 24}
    for n in range(1, 25):
        assert values[f"outlet.{n}.status"] == ("off" if n in off else "on"), n
        assert values[f"outlet.{n}.desc"] == f"ESX Server {n} PS 2"
        assert values[f"outlet.{n}.switchable"] == "yes"
    # rPDULoadStatusLoad.1 = 66 (0.1 A); rPDU2OutletMeteredStatusCurrent.1 = 9, Power.1 = 163 W
    assert values["input.current"] == "6.60"
    assert values["outlet.1.current"] == "0.90" and values["outlet.1.realpower"] == "163"
    # two breaker banks: rPDU2BankStatusCurrent 38 / 24 (0.1 A), load state normal
    assert values["outlet.group.count"] == "2"
    assert [values[f"outlet.group.{n}.current"] for n in (1, 2)] == ["3.80", "2.40"]
    assert values["outlet.group.1.id"] == "1" and values["outlet.group.2.current.status"] == "good"
    # rPDUIdentDeviceLinetoLineVoltage = -1: not available
    assert "input.voltage.nominal" not in values


# ---- outlet control through the bridge and NUT's clients ---------------------------------------

def _bridge(bridge_server: Callable[..., Any], tmp_path: Path, agent: snmpsim.Agent) -> Any:
    cfg = realnut.NutConfig(tmp_path / "bridge")
    for ups, community in (("apc", "pdu-apc-8641-rw"), ("apc2", "pdu-apc-7902b-rw"), ("eaton", EATON),
                           ("ro", "apc-8641")):
        cfg.add_ups(ups, driver="snmp-ups", port=f"127.0.0.1:{agent.port}", community=community,
                    snmp_version="v2c", pollfreq="1")
    srv = bridge_server(cfg)
    for ups in ("apc", "apc2", "eaton", "ro"):
        serialsim.wait_var(srv.port, ups, "outlet.count", lambda v: v not in (None, "0"), timeout=30)
    return srv


def _upscmd(port: int, ups: str, *args: str) -> None:
    res = realnut.run_tool([*_tool("upscmd"), *LOGIN, "-w", f"{ups}@127.0.0.1:{port}", *args])
    assert res.returncode == 0 and b"SUCCESS" in res.stdout + res.stderr, (args, res)


def _upsrw(port: int, ups: str, var: str, value: str) -> None:
    res = realnut.run_tool([*_tool("upsrw"), *LOGIN, "-w", "-s", f"{var}={value}", f"{ups}@127.0.0.1:{port}"])
    assert res.returncode == 0 and b"SUCCESS" in res.stdout + res.stderr, (var, res)


def test_apc_outlet_commands_set_the_outlet_control_oid(bridge_server: Callable[..., Any], tmp_path: Path,
                                                        rw_agent: snmpsim.Agent) -> None:
    srv = _bridge(bridge_server, tmp_path, rw_agent)
    listed = realnut.run_tool([*_tool("upscmd"), "-l", f"apc@127.0.0.1:{srv.port}"]).stdout.decode()
    for cmd in ("outlet.1.load.off", "outlet.1.load.on", "outlet.1.load.cycle", "outlet.24.load.off"):
        assert cmd in listed, listed
    comm = "pdu-apc-8641-rw"
    assert raw_int(rw_agent, comm, SPDU_CTL + "3") == 1
    _upscmd(srv.port, "apc", "outlet.3.load.off")
    assert raw_int(rw_agent, comm, SPDU_CTL + "3") == 2       # outletOff
    serialsim.wait_var(srv.port, "apc", "outlet.3.status", "off", timeout=10)
    _upscmd(srv.port, "apc", "outlet.3.load.on")
    assert raw_int(rw_agent, comm, SPDU_CTL + "3") == 1       # outletOn
    serialsim.wait_var(srv.port, "apc", "outlet.3.status", "on", timeout=10)
    _upscmd(srv.port, "apc", "outlet.8.load.cycle")
    assert raw_int(rw_agent, comm, SPDU_CTL + "8") == 3       # outletReboot
    # the other outlets were not touched
    assert raw_int(rw_agent, comm, SPDU_CTL + "4") == 1 and raw_int(rw_agent, comm, SPDU_CTL + "10") == 2
    # the MasterSwitch AP7902B (found by probing) is switched the same way
    _upscmd(srv.port, "apc2", "outlet.16.load.off")
    assert raw_int(rw_agent, "pdu-apc-7902b-rw", SPDU_CTL + "16") == 2
    serialsim.wait_var(srv.port, "apc2", "outlet.16.status", "off", timeout=10)


def test_refused_set_is_reported_and_changes_nothing(bridge_server: Callable[..., Any], tmp_path: Path,
                                                     rw_agent: snmpsim.Agent) -> None:
    """The unmodified recording's outlet control column is read-only (as with a read community)."""
    srv = _bridge(bridge_server, tmp_path, rw_agent)
    target = f"ro@127.0.0.1:{srv.port}"
    res = realnut.run_tool([*_tool("upscmd"), *LOGIN, "-w", target, "outlet.1.load.off"])
    assert b"SUCCESS" not in res.stdout + res.stderr and b"ERR" in res.stdout + res.stderr, res
    assert raw_int(rw_agent, "apc-8641", SPDU_CTL + "1") == 1
    assert serialsim.get_var(srv.port, "ro", "outlet.1.status") == "on"
    # an outlet the PDU does not have is not a command
    res = realnut.run_tool([*_tool("upscmd"), *LOGIN, "-w", target, "outlet.25.load.off"])
    assert b"CMD-NOT-SUPPORTED" in res.stdout + res.stderr, res


def test_apc_outlet_writes_through_upsrw(bridge_server: Callable[..., Any], tmp_path: Path,
                                         rw_agent: snmpsim.Agent) -> None:
    """NUT's own way to switch an apc_pdu outlet (SET VAR outlet.N.status) and rename it."""
    srv = _bridge(bridge_server, tmp_path, rw_agent)
    comm = "pdu-apc-8641-rw"
    _upsrw(srv.port, "apc", "outlet.2.status", "off")
    assert raw_int(rw_agent, comm, SPDU_CTL + "2") == 2
    _upsrw(srv.port, "apc", "outlet.2.desc", "NAS PSU A")
    assert raw_str(rw_agent, comm, SPDU_NAME + "2") == "NAS PSU A"
    serialsim.wait_var(srv.port, "apc", "outlet.2.desc", "NAS PSU A", timeout=10)
    serialsim.wait_var(srv.port, "apc", "outlet.2.status", "off", timeout=10)
    # not a value of the enumeration: refused before anything is sent
    res = realnut.run_tool([*_tool("upsrw"), *LOGIN, "-w", "-s", "outlet.2.status=maybe",
                            f"apc@127.0.0.1:{srv.port}"])
    assert b"SUCCESS" not in res.stdout + res.stderr
    assert raw_int(rw_agent, comm, SPDU_CTL + "2") == 2


def test_eaton_outlet_commands_write_delays(bridge_server: Callable[..., Any], tmp_path: Path,
                                            rw_agent: snmpsim.Agent) -> None:
    srv = _bridge(bridge_server, tmp_path, rw_agent)
    values = upsc(srv.port, "eaton")
    assert values["outlet.count"] == "48" and values["outlet.5.status"] == "off"
    off, on, reboot = (f"{EPDU}6.6.1.{c}.0." for c in (3, 4, 5))
    assert raw_int(rw_agent, EATON, off + "7") == -1
    _upscmd(srv.port, "eaton", "outlet.7.load.off")
    assert raw_int(rw_agent, EATON, off + "7") == 0           # outletControlOffCmd.0.7 = now
    _upscmd(srv.port, "eaton", "outlet.5.load.on")
    assert raw_int(rw_agent, EATON, on + "5") == 0
    _upscmd(srv.port, "eaton", "outlet.48.load.cycle")
    assert raw_int(rw_agent, EATON, reboot + "48") == 0
    _upscmd(srv.port, "eaton", "outlet.9.load.off.delay", "30")
    assert raw_int(rw_agent, EATON, off + "9") == 30
    # the pending timers show up as outlet.N.timer.shutdown / timer.start
    serialsim.wait_var(srv.port, "eaton", "outlet.9.timer.shutdown", "30", timeout=10)
    serialsim.wait_var(srv.port, "eaton", "outlet.5.timer.start", "0", timeout=10)
    assert raw_int(rw_agent, EATON, off + "8") == -1          # untouched
    _upsrw(srv.port, "eaton", "outlet.12.desc", "Router")
    assert raw_str(rw_agent, EATON, f"{EPDU}6.1.1.3.0.12") == "Router"


# ---- round trips -------------------------------------------------------------------------------

class UdpRelay:
    """Forwards datagrams between one client and the agent, counting the client's requests."""

    def __init__(self, target: int) -> None:
        self.target = ("127.0.0.1", target)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.bind(("127.0.0.1", 0))
        self.requests = 0
        self.client: tuple[str, int] | None = None
        self.stop = False
        self.threads = [threading.Thread(target=self._down, daemon=True),
                        threading.Thread(target=self._back, daemon=True)]
        for s in (self.sock, self.up):
            s.settimeout(0.2)
        for t in self.threads:
            t.start()

    def _down(self) -> None:
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.client = addr
            self.requests += 1
            self.up.sendto(data, self.target)

    def _back(self) -> None:
        while not self.stop:
            try:
                data, _ = self.up.recvfrom(65535)
            except TimeoutError:
                continue
            if self.client is not None:
                self.sock.sendto(data, self.client)

    def close(self) -> None:
        self.stop = True
        for t in self.threads:
            t.join()
        self.sock.close()
        self.up.close()


def test_48_outlet_pdu_polls_in_few_round_trips(agent: snmpsim.Agent) -> None:
    relay = UdpRelay(agent.port)

    async def run() -> tuple[int, int, dict[str, str]]:
        dev = Device("pdu")
        drv = SnmpUps(dev, {"port": f"127.0.0.1:{relay.port}", "community": EATON, "snmp_version": "v2c"})
        await drv.connect()
        try:
            await drv.update()                     # init: learns which rows exist
            before = relay.requests
            await drv.update()                     # a regular poll
            poll = relay.requests - before
        finally:
            await drv.close()
        return before, poll, {v.name: v.value for v in dev.variables()}

    try:
        init, poll, values = asyncio.run(run())
    finally:
        relay.close()
    assert values["outlet.count"] == "48" and values["outlet.48.status"] == "on"
    polled = sum(1 for k in values if k.startswith("outlet.") and k.split(".")[1].isdigit())
    print(f"48-outlet Eaton ePDU: init {init} requests, then {poll} per poll ({polled} outlet values)")
    assert polled >= 48 * 10
    # a poll re-reads the measurement columns (status, current, current status, W, VA, timers: ~300
    # varbinds; settings are semi-static): GETBULK of the columns, at most 64 varbinds per answer from
    # snmpsim, makes that ~7 requests; one GET per outlet value would be 15 batches of 20 or more
    assert poll <= 10, poll
