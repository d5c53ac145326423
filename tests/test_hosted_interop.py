"""NUT's C drivers hosted by ``nutbridge serve`` answer like the C upsd serving them (issue 14).

On each side of every comparison runs the same Debian C driver binary: under the C upsd
started as :func:`tests.support.realnut.c_upsd` starts it, and hosted by the bridge
(drivers/external/: ``nutbridge_hosted = ...`` in ups.conf for a driver the bridge also has
natively, nothing for one it has not); the ups.conf text is the same on both sides (the C
drivers ignore the bridge's globals). What NUT's clients print about each UPS, ``upsc``,
``upsrw`` and ``upscmd -l`` (:func:`tests.support.hosting.views`), must be the same bytes:

* every DDL dump the C dummy-ups reads (the selection of tests/test_dummy.py: every ``*.dev``
  of the corpus, 368), C dummy-ups, in batches of at most :data:`BATCH` UPSes (one C upsd and
  one bridge per batch: CI's 2 cores, and a bridge's file descriptors: three per hosted driver);
* the serial C drivers on pty simulators (bridge/nutbridge/simulation/), each side with its
  own simulator built alike (same model seed, frozen clock): nutdrv_qx and blazer_ser on the
  Megatec simulator, apcsmart and apcsmart-old (hosted without being named: the bridge has no
  apcsmart-old) on the APC Smart simulator; INSTCMD and SET through either server get the
  same TRACKING results and reach the simulated devices as the same commands and settings;
* snmp-ups against one snmpsim agent shared by both sides (the recordings of tests/test_snmp.py
  and an APC PDU; v1, v2c, mibs=ietf); a SET and an INSTCMD through the bridge change the agent's
  writable objects, with the same TRACKING results as through the C upsd;
* a SIGKILLed hosted serial driver (nutdrv_qx, apcsmart): ``DATA-STALE`` at once, then the
  bridge (not restarted, its other UPSes answering throughout) starts the driver again and
  serves fresh data, read from the device after the kill; the C side's driver, killed too and
  started again by hand (the C upsd does not restart drivers), then answers the same.

Normalisations of the compared text, and nothing else:

* ``driver.state``: NUT 2.8.5's C drivers flip it between ``quiet`` and ``updateinfo``
  around each poll, so its value depends on the moment a client asks (masked on both sides);
* ``driver.parameter.synchronous`` ``auto`` or ``yes`` (masked on both sides): a C driver in
  the default ``synchronous = auto`` mode whose server falls behind reading its socket (a
  write fails with EAGAIN) drops that connection and (NUT 2.8.0) writes synchronously from
  then on, publishing ``yes``; which server falls behind, if any, depends on the load of the
  moment (seen on the C upsd's side, with eleven snmp-ups dumping at once: "send_to_one:
  write ... failed ... Resource temporarily unavailable, disconnecting", then "Connected to
  UPS" again);
* serial drivers: the line ``driver.parameter.port: <path>``, where each side's path is the
  pty link of its own simulator (a pty can serve only one driver), becomes
  ``driver.parameter.port: <pty>``.

Run it under sid (NUT 2.8.5) as on the host (2.8.0)::

    ../shared/tools/sid bash -c 'cd /work/main && .venv-3.14/bin/python -m pytest -q \\
        -p no:cacheprovider tests/test_hosted_interop.py'
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nutbridge.simulation.apcsmart import ApcSmartSim
from nutbridge.simulation.megatec import MegatecSimulator
from nutbridge.simulation.model import Params, SimUPS
from nutbridge.simulation.pty import PtyDevice
from tests.support import hosting, realnut, serialsim, snmpsim
from tests.support.hosting import HostedConfig, Session

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SIDES = ("c", "b")  # the C upsd, the bridge


def configs(root: Path, globals_text: str) -> tuple[HostedConfig, HostedConfig]:
    """The C upsd's and the bridge's configuration, with the same ups.conf globals."""
    return (HostedConfig(root / "c", globals_text=globals_text),
            HostedConfig(root / "b", globals_text=globals_text))


def require_clients() -> None:
    for tool in ("upsc", "upsrw", "upscmd"):
        realnut.require_client(tool)
    realnut.require_daemon("upsd")


def assert_hosts(bridge: realnut.BridgeProcess, drivers: dict[str, str]) -> None:
    """The bridge runs exactly the C binaries ``drivers`` (ups -> path), one per UPS."""
    children = hosting.driver_children(bridge.proc.pid)
    got = {argv[2]: argv[0] for argv in children.values() if argv[1:2] == ["-a"]}
    assert got == drivers, children


# ---- 1. C dummy-ups over the DDL corpus -----------------------------------------------------

#: UPSes per C upsd and per bridge: the corpus in a few batches
BATCH = 92
DDL = realnut.DDL_DIR
DDL_FILES = realnut.ddl_files(DDL)  # as tests/test_dummy.py: every dump, C dummy-ups reads them all
DDL_BATCHES = math.ceil(len(DDL_FILES) / BATCH)


def _batch_params() -> list[object]:
    if not DDL_FILES:
        return [pytest.param(0, id="no-corpus",
                             marks=realnut.prerequisite(f"NUT DDL corpus (*.dev) at {DDL}", False))]
    return [pytest.param(i, id=f"{i + 1}of{DDL_BATCHES}") for i in range(DDL_BATCHES)]


@pytest.mark.parametrize("batch", _batch_params())
def test_ddl_dumps_hosted_like_the_c_upsd(batch: int) -> None:
    require_clients()
    dummy = realnut.require_daemon("dummy-ups")
    size = math.ceil(len(DDL_FILES) / DDL_BATCHES)
    files = {f"d{i:03d}": f for i, f in enumerate(DDL_FILES)
             if batch * size <= i < (batch + 1) * size}
    names = list(files)
    with realnut.short_root("nbhi-") as root:
        c, b = configs(root, "nutbridge_hosted = *\n")
        for cfg in (c, b):
            for name, f in files.items():
                cfg.add_ups(name, driver="dummy-ups", port=str(f))
        t0 = time.monotonic()
        with hosting.side_by_side(c, b, names, timeout=90) as bridge:
            t_ready = time.monotonic() - t0
            assert_hosts(bridge, dict.fromkeys(names, dummy))
            want = hosting.views_many(c.port, names)
            got = hosting.views_many(b.port, names)
    print(f"\nDDL batch {batch + 1}/{DDL_BATCHES}: {len(names)} hosted C dummy-ups, ready after "
          f"{t_ready:.1f} s, compared in {time.monotonic() - t0 - t_ready:.1f} s")
    for name in names:  # the C side really served each dump
        assert "driver.name: dummy-ups\n" in want[name], (files[name], want[name][:500])
    mismatched = [name for name in names if got[name] != want[name]]
    if mismatched:
        first = mismatched[0]
        pytest.fail(hosting.difference(want[first], got[first], f"{files[first]} ({first})")
                    + f"\n{len(mismatched)} of {len(names)} differ: "
                    + ", ".join(files[n].name for n in mismatched[:20]))


# ---- 2. serial C drivers on pty simulators ----------------------------------------------------

#: ups -> (C driver, simulator, ups.conf options besides driver and port)
SERIAL: dict[str, tuple[str, str, dict[str, str]]] = {
    # protocol: skip NUT's probing of the other Q1 dialects; pollfreq 1: the full Q1 set each poll
    "qx": ("nutdrv_qx", "megatec", {"protocol": "megatec", "pollinterval": "1", "pollfreq": "1"}),
    "blazer": ("blazer_ser", "megatec", {"pollinterval": "1"}),
    "apc": ("apcsmart", "apcsmart", {"pollinterval": "1"}),
    "apcold": ("apcsmart-old", "apcsmart", {"pollinterval": "1"}),  # no native one: hosted anyway
}
HOSTED_BY_NAME = ("qx", "blazer", "apc")  # the bridge has these natively


def _simulator(kind: str, link: Path) -> Callable[[], PtyDevice]:
    # frozen clock (speed 0), same seed: the two sides' devices answer alike
    if kind == "megatec":
        return lambda: MegatecSimulator(link, model=SimUPS(Params(seed=1)), speed=0)
    return lambda: ApcSmartSim(link, SimUPS(Params(seed=1)), speed=0)


@dataclass
class SerialPair:
    c: HostedConfig
    b: HostedConfig
    bridge: realnut.BridgeProcess
    sims: dict[tuple[str, str], serialsim.SimThread[PtyDevice]] = field(default_factory=dict)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)  # C drivers we restarted

    def port(self, side: str) -> int:
        return self.c.port if side == "c" else self.b.port

    def views(self, side: str, ups: str) -> str:
        link = self.sims[side, ups].link
        return hosting.views(self.port(side), ups, {
            f"driver.parameter.port: {link}": "driver.parameter.port: <pty>"})

    def assert_same_views(self, ups: str) -> None:
        want, got = self.views("c", ups), self.views("b", ups)
        assert got == want, hosting.difference(want, got, ups)

    def kill_and_restart_c_driver(self, ups: str) -> None:
        """What the C upsd's side needs after a crash: the driver started again by hand (as
        upsdrvctl would); the C upsd reconnects to it by itself."""
        drv = SERIAL[ups][0]
        pids = [pid for pid, argv in hosting.driver_children(os.getpid()).items()
                if argv[1:3] == ["-a", ups] and argv[0].endswith(f"/{drv}")]
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not hosting.dead(pids[0]):  # its port and socket are free again
            assert time.monotonic() < deadline, f"{drv} survived SIGKILL"
            time.sleep(0.02)
        log = open(self.c.run / f"driver-{ups}-restarted.log", "ab")
        self.started.append(subprocess.Popen(
            [realnut.require_daemon(drv), "-a", ups, "-F", "-u", "root"], env=self.c.env(),
            stdout=log, stderr=subprocess.STDOUT))
        log.close()

    def both(self, ups: str, fn: Callable[[PtyDevice], object]) -> None:
        """Do the same to the device of ``ups`` on both sides."""
        for side in SIDES:
            sim = self.sims[side, ups]
            sim.call(fn, sim.device)


@pytest.fixture(scope="module")
def serial() -> Iterator[SerialPair]:
    require_clients()
    drivers = {ups: realnut.require_daemon(drv) for ups, (drv, _, _) in SERIAL.items()}
    with realnut.short_root("nbhi-") as root, contextlib.ExitStack() as stack:
        c, b = configs(root, f"nutbridge_hosted = {' '.join(HOSTED_BY_NAME)}\n")
        sims = {}
        for side, cfg in zip(SIDES, (c, b), strict=True):
            for ups, (drv, kind, opts) in SERIAL.items():
                sim = stack.enter_context(serialsim.running(_simulator(kind, root / side / f"tty-{ups}")))
                sims[side, ups] = sim
                cfg.add_ups(ups, driver=drv, port=str(sim.link), **opts)
        pair = None
        try:
            with hosting.side_by_side(c, b, list(SERIAL)) as bridge:
                assert_hosts(bridge, drivers)
                pair = SerialPair(c, b, bridge, sims)
                yield pair
        finally:
            for proc in pair.started if pair else []:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def test_serial_drivers_hosted_like_the_c_upsd(serial: SerialPair) -> None:
    for ups in SERIAL:
        serial.assert_same_views(ups)
    assert "driver.name: apcsmart-old\n" in serial.views("b", "apcold")


#: what each server is asked, in order; answers and TRACKING results must be the same
SERIAL_SCRIPT: dict[str, list[str]] = {
    "qx": ["SET VAR qx ups.delay.shutdown 42", "SET VAR qx ups.delay.start 240",
           "SET VAR qx ups.delay.shutdown 5",  # out of its range: refused by the server
           "INSTCMD qx beeper.toggle", "INSTCMD qx test.battery.start 180",
           "INSTCMD qx test.battery.start.quick", "INSTCMD qx test.battery.start 99999",
           "INSTCMD qx shutdown.return", "INSTCMD qx shutdown.stop", "INSTCMD qx nosuch.cmd"],
    "blazer": ["SET VAR blazer ups.delay.shutdown 60",  # read-only under blazer_ser
               "INSTCMD blazer test.battery.start 2", "INSTCMD blazer shutdown.stayoff",
               "INSTCMD blazer shutdown.stop"],
    "apc": ["SET VAR apc ups.delay.shutdown 300", 'SET VAR apc ups.id "rack7"',
            "SET VAR apc input.sensitivity X",  # not one of its enum values
            "INSTCMD apc test.battery.start", "INSTCMD apc calibrate.start"],
    "apcold": ['SET VAR apcold ups.id "rack8"', "SET VAR apcold input.transfer.high 264",
               "INSTCMD apcold test.battery.start"],
}


def _device_record(sim: serialsim.SimThread[PtyDevice]) -> dict[str, object]:
    """What the simulated device carried out: commands, and settings for the APC."""
    def read() -> dict[str, object]:
        dev = sim.device
        out: dict[str, object] = {"commands": list(getattr(dev, "commands", []))}
        if isinstance(dev, ApcSmartSim):
            out.update(settings=dict(dev.settings), strings=dict(dev.strings))
        return out

    return sim.call(read)


def test_serial_instcmd_and_set_reach_the_device(serial: SerialPair) -> None:
    results: dict[str, dict[str, list[tuple[str, str | None]]]] = {}
    errors: list[BaseException] = []

    def run(side: str) -> None:
        try:
            with Session(serial.port(side)) as s:
                s.login()
                results[side] = {ups: [s.tracked(line) for line in lines]
                                 for ups, lines in SERIAL_SCRIPT.items()}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(side,)) for side in SIDES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    print("\nserial INSTCMD/SET answers (C upsd = bridge):")
    for ups, lines in SERIAL_SCRIPT.items():
        for line, (answer, result) in zip(lines, results["c"][ups], strict=True):
            print(f"  {line}: {answer if result is None else f'TRACKING {result}'}")
    assert results["b"] == results["c"]
    # the drivers' own verdicts travel back, a failure (test.battery.start 99999) too
    tracked = {r for ups in SERIAL for _, r in results["c"][ups] if r is not None}
    assert tracked == {"SUCCESS", "ERR FAILED"}, tracked

    # the devices carried out the same: commands in the same order, settings changed alike
    for ups in SERIAL:
        want = _device_record(serial.sims["c", ups])
        deadline = time.monotonic() + 15
        while (got := _device_record(serial.sims["b", ups])) != want and time.monotonic() < deadline:
            time.sleep(0.2)
            want = _device_record(serial.sims["c", ups])
        assert got == want, ups
    qx = _device_record(serial.sims["b", "qx"])["commands"]
    assert isinstance(qx, list) and qx[0] == "Q" and qx[-1] == "C" and len(qx) >= 5, qx
    apc = _device_record(serial.sims["b", "apc"])
    assert apc["strings"]["c"] == "rack7" and apc["settings"]["p"] == "300", apc  # type: ignore[index]
    assert _device_record(serial.sims["b", "apcold"])["strings"]["c"] == "rack8"  # type: ignore[index]

    # read back from the devices, then the same answers again on both sides
    for side in SIDES:
        port = serial.port(side)
        serialsim.wait_var(port, "apc", "ups.id", "rack7")
        serialsim.wait_var(port, "apc", "ups.delay.shutdown", "300")
        serialsim.wait_var(port, "apcold", "ups.id", "rack8")
        serialsim.wait_var(port, "qx", "ups.delay.shutdown", "42")
    time.sleep(1.5)  # one more poll everywhere
    for ups in SERIAL:
        serial.assert_same_views(ups)


def _on_battery(dev: PtyDevice, on: bool) -> None:
    model = dev.ups if isinstance(dev, ApcSmartSim) else dev.model  # type: ignore[attr-defined]
    model.set_mains(not on)


@pytest.mark.parametrize("ups", ["qx", "apc"])
def test_killed_serial_driver_is_restarted(serial: SerialPair, ups: str) -> None:
    """SIGKILL the hosted driver; the mains fail on both sides' devices meanwhile: the bridge
    says DATA-STALE, starts the driver again and serves what the device says now; its other
    UPSes answer all along and the bridge is the same process. The C side's driver is killed
    too and started again by hand, so that both serve a fresh driver: same answers again
    (what a driver keeps in memory, such as qx's ups.delay.shutdown, starts over)."""
    bridge = serial.bridge.proc
    port = serial.port("b")
    others = [u for u in SERIAL if u != ups]
    pid = hosting.hosted_pid(bridge.pid, ups)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    serial.both(ups, lambda dev: _on_battery(dev, True))
    serial.kill_and_restart_c_driver(ups)
    t_stale = t_fresh = None
    try:
        with Session(port) as s:
            while time.monotonic() - t0 < 40:
                answer = s.ask(f"GET VAR {ups} ups.status")
                now = time.monotonic() - t0
                if answer == "ERR DATA-STALE" and t_stale is None:
                    t_stale = now
                elif t_stale is not None and answer.startswith("VAR ") \
                        and "OB" in answer.split('"')[1].split():
                    t_fresh = now  # data read from the device after the kill
                    break
                for other in others:  # the bridge's other UPSes are not affected
                    assert s.ask(f"GET VAR {other} ups.status").startswith(f"VAR {other} "), other
                time.sleep(0.02)
        print(f"\nhosted {SERIAL[ups][0]} SIGKILLed: DATA-STALE after {t_stale} s, fresh data "
              f"(on battery) after {t_fresh} s, bridge not restarted")
        assert t_stale is not None and t_stale < 1, t_stale
        assert t_fresh is not None, serial.bridge.log()[-3000:]
        assert bridge.poll() is None and hosting.gone(pid)
        assert hosting.hosted_pid(bridge.pid, ups) != pid
        serialsim.wait_var(serial.port("c"), ups, "ups.status", lambda v: "OB" in (v or "").split())
        time.sleep(1.5)
        serial.assert_same_views(ups)
    finally:
        serial.both(ups, lambda dev: _on_battery(dev, False))
        for side in SIDES:
            serialsim.wait_var(serial.port(side), ups, "ups.status",
                               lambda v: "OL" in (v or "").split(), timeout=40)


# ---- 3. snmp-ups against snmpsim ---------------------------------------------------------------

#: ups -> (recording, ups.conf options besides driver, port, community)
SNMP: dict[str, tuple[str, dict[str, str]]] = {
    "apc": ("apc-smartups-nmc", {"pollfreq": "2"}),  # polled often: the SET test reads back
    "apcietf": ("apc-smartups-nmc", {"mibs": "ietf"}),
    "apcv1": ("apc-smartups-nmc", {"snmp_version": "v1"}),
    "eaton": ("eaton-93e-80", {}),
    "eaton9px": ("eaton-9px-partial", {}),
    "huawei": ("huawei-gse200m", {}),
    "xppc": ("phoenixtec-power", {}),
    "eastpower": ("eastpower-istars-swv053", {}),
    "ingrasys": ("ingrasys-power-switch", {}),
    "apcpdu": ("pdu-apc-8641-rw", {}),
    # not pdu-eaton-epdu: NUT 2.8.0's snmp-ups takes over 200 s to start on that recording
}
APC_OID = "1.3.6.1.4.1.318.1.1.1."  # PowerNet-MIB upsAdv...: writable in the APC recording
DELAY_START_OID = APC_OID + "5.2.9.0"  # upsAdvConfigReturnDelay: ups.delay.start
TEST_OID = APC_OID + "7.2.2.0"  # upsAdvTestDiagnostics: test.battery.start writes 2


@dataclass
class SnmpPair:
    c: HostedConfig
    b: HostedConfig
    bridge: realnut.BridgeProcess
    agent: snmpsim.Agent


@pytest.fixture(scope="module")
def snmp() -> Iterator[SnmpPair]:
    require_clients()
    exe = realnut.require_daemon("snmp-ups")
    with realnut.short_root("nbhi-") as root, \
            snmpsim.running(root, sorted({rec for rec, _ in SNMP.values()})) as agent:
        c, b = configs(root, "nutbridge_hosted = *\n")
        for cfg in (c, b):
            for ups, (rec, opts) in SNMP.items():
                cfg.add_ups(ups, driver="snmp-ups", port=f"127.0.0.1:{agent.port}", community=rec,
                            **{"snmp_version": "v2c", **opts})
        with hosting.side_by_side(c, b, list(SNMP), timeout=90) as bridge:
            assert_hosts(bridge, dict.fromkeys(SNMP, exe))
            yield SnmpPair(c, b, bridge, agent)


def test_snmp_ups_hosted_like_the_c_upsd(snmp: SnmpPair) -> None:
    want = hosting.views_many(snmp.c.port, SNMP)
    got = hosting.views_many(snmp.b.port, SNMP)
    for ups in SNMP:
        assert "driver.name: snmp-ups\n" in want[ups], want[ups][:500]
        assert got[ups] == want[ups], hosting.difference(want[ups], got[ups], ups)


def test_snmp_set_and_instcmd_reach_the_agent(snmp: SnmpPair) -> None:
    agent, rec = snmp.agent, SNMP["apc"][0]
    before = agent.get(rec, DELAY_START_OID), agent.get(rec, TEST_OID)
    results = {}
    for side, cfg, value in (("b", snmp.b, "60"), ("c", snmp.c, "120")):
        with Session(cfg.port) as s:
            s.login()
            results[side] = [s.tracked(f"SET VAR apc ups.delay.start {value}"),
                             s.tracked("INSTCMD apc test.battery.start"),
                             s.tracked("INSTCMD apc nosuch.cmd")]
        if side == "b":  # through the bridge first: the agent's objects changed
            after = agent.get(rec, DELAY_START_OID), agent.get(rec, TEST_OID)
            assert after[0] != before[0] and after[1] == b"\x02" != before[1], (before, after)
            for port in (snmp.b.port, snmp.c.port):  # read back by both drivers
                serialsim.wait_var(port, "apc", "ups.delay.start", "60")
    print(f"\nsnmp TRACKING results (C upsd = bridge): {results['c']}")
    assert results["b"] == results["c"]
    assert [r for _, r in results["c"][:2]] == ["SUCCESS", "SUCCESS"]
    for port in (snmp.b.port, snmp.c.port):
        serialsim.wait_var(port, "apc", "ups.delay.start", "120")
    time.sleep(2.5)  # one more full poll on both sides
    want, got = hosting.views(snmp.c.port, "apc"), hosting.views(snmp.b.port, "apc")
    assert got == want, hosting.difference(want, got, "apc")
