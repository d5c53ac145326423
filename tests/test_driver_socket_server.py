"""``nutbridge driver``: our drivers as NUT driver processes, served by the real C upsd.

The oracle is NUT itself (Debian 12's 2.8.0 on the host, 2.8.5 under ``../shared/tools/sid``):

* **C upsd over our driver vs our bridge.** The same ups.conf runs twice: ``nutbridge driver``
  processes under the C upsd, and ``nutbridge serve``. ``upsc``, ``upsrw``, ``upscmd -l`` and
  ``GET TYPE``/``LIST ENUM``/``LIST RANGE``/``GET DESC`` of every variable must answer the same
  bytes, with no normalisation at all (both legs run our drivers; the C upsd is only the
  transport), for dummy-ups over DDL dumps (with their ``#RW``/``#CMD`` metadata: enums,
  ranges, writable strings, commands), nutbridge-sim (clock frozen) and the serial drivers
  on the pty simulators (nutdrv_qx, apcsmart). INSTCMD/SET through the C upsd reach the
  driver and come back as the same ``GET TRACKING`` results as through the bridge.
* **Our socket vs a C driver's socket.** The same request bytes to C dummy-ups and ours on
  the same file get the same reply bytes. Normalised: ``driver.version`` (ours names the
  bridge), the PID in ``PID``, 2.8.5's ``driver.state`` churn (it flips between quiet and
  updateinfo around every request) and the ``NUMBER`` flag 2.8.5 gives its core's
  ``driver.debug``/``driver.flag.allow_killpower`` (the state store has no NUMBER flag: upsd
  shows NUMBER for any variable that is not STRING anyway). On 2.8.0 only the 2.8.0
  commands are compared (it ignores GETPID, LOGOUT...).
* **upsdrvctl** starts and stops our driver through links in a ``driverpath``; 2.8.5's also
  ``status`` and ``-c reload``/``-c exit``.
* **Self-healing** (the serial simulator unplugged: the C upsd says DATA-STALE, then the data
  is back without restarting anything) and **hostile peers** on our socket (a flood does not
  stop the C upsd's data, memory stays bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nutbridge.protocol import sock
from nutbridge.server.sockserver import Shadow, SockServer, clean, snapshot
from nutbridge.simulation.apcsmart import ApcSmartSim
from nutbridge.simulation.megatec import MegatecSimulator
from nutbridge.simulation.model import Params, SimUPS
from nutbridge.simulation.pty import PtyDevice
from nutbridge.state import Device, DriverState
from tests.support import nutdriver, realnut, serialsim
from tests.support.nutdriver import DriverProcess, SockPeer
from tests.support.realnut import NutConfig

NUT = realnut.nut_version()
NUT_285 = tuple(int(x) for x in NUT.split(".") if x.isdigit()) >= (2, 8, 3)
LOGIN = ("USERNAME admin", "PASSWORD s3cr3t")


# ---- what a upsd answers about one UPS --------------------------------------------------------

def answers(port: int, ups: str) -> dict[str, bytes]:
    """``upsc``, ``upsrw``, ``upscmd -l`` (exit code, stdout, stderr) and, for every variable,
    GET TYPE / LIST ENUM / LIST RANGE / GET DESC, as the real NUT clients get them."""
    target = f"{ups}@127.0.0.1:{port}"
    out: dict[str, bytes] = {}
    for name, argv in (("upsc", [realnut.require_client("upsc"), target]),
                       ("upsrw", [realnut.require_client("upsrw"), target]),
                       ("upscmd -l", [realnut.require_client("upscmd"), "-l", target])):
        p = realnut.run_tool(argv)
        out[name] = b"rc %d\n%s--- stderr ---\n%s" % (p.returncode, p.stdout, p.stderr)
    names = [ln.split(b":", 1)[0].decode() for ln in out["upsc"].split(b"--- stderr")[0].splitlines()[1:]]
    out["per variable"] = nutdriver.pipeline(port, [
        f"{q} {ups} {n}" for n in names for q in ("GET TYPE", "LIST ENUM", "LIST RANGE", "GET DESC")])
    return out


def assert_same(c_port: int, b_port: int, ups: str, log: Callable[[], str] = str) -> dict[str, bytes]:
    """The C upsd over our driver (``c_port``) and the bridge (``b_port``) answer alike."""
    want = answers(c_port, ups)
    compare(ups, want, answers(b_port, ups), log)
    return want


def compare(ups: str, want: dict[str, bytes], got: dict[str, bytes], log: Callable[[], str] = str) -> None:
    assert want["upsc"].startswith(b"rc 0\n") and b"ups.status: " in want["upsc"], want["upsc"][:300]
    for key in want:
        if got[key] != want[key]:
            import difflib

            diff = "\n".join(difflib.unified_diff(
                want[key].decode(errors="replace").splitlines(),
                got[key].decode(errors="replace").splitlines(),
                "C upsd + nutbridge driver", "nutbridge serve", lineterm="", n=2))
            pytest.fail(f"[{ups}] {key} differs:\n{diff[:5000]}\n{log()[-2000:]}")


def tracked(port: int, ups: str, request: str, timeout: float = 10.0) -> str:
    """Send ``request`` (an INSTCMD or SET VAR line) with tracking on; the final GET TRACKING
    answer (SUCCESS, ERR UNKNOWN, ERR INVALID-ARGUMENT, ERR FAILED)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rwb")

        def ask(line: str) -> str:
            f.write(line.encode() + b"\n")
            f.flush()
            return f.readline().decode().rstrip("\n")

        for line in (*LOGIN, "SET TRACKING ON"):
            assert ask(line).startswith("OK"), line
        ok = ask(request)
        m = re.fullmatch(r"OK TRACKING (\S+)", ok)
        assert m, f"{request}: {ok}"
        deadline = time.monotonic() + timeout
        while True:
            result = ask(f"GET TRACKING {m.group(1)}")
            if result != "PENDING" or time.monotonic() > deadline:
                return result
            time.sleep(0.05)


@contextmanager
def both(c_cfg: NutConfig, b_cfg: NutConfig) -> Iterator[tuple[list[DriverProcess], realnut.BridgeProcess]]:
    """The C upsd over our drivers (``c_cfg``) and a bridge (``b_cfg``), both ready."""
    with nutdriver.c_upsd_over_ours(c_cfg) as drivers, realnut.BridgeProcess.start(b_cfg) as bridge:
        realnut.wait_ready_many(b_cfg.port, list(b_cfg.ups), timeout=30)
        yield drivers, bridge


# ---- dummy-ups over DDL dumps ------------------------------------------------------------------

def _ddl(pattern: str) -> Path:
    root = realnut.require_path(realnut.DDL_DIR, "the NUT DDL corpus")
    found = sorted(root.rglob(pattern))
    assert found, pattern
    return found[0]


DDL_PICKS = (
    "MGE_UPS_SYSTEMS__Pulsar_Ellipse_Premium_800__newmge-shut__2.6.1__02.dev",  # #RW ENUM
    "PowerWalker__VFI_1000_CG_PF1__nutdrv_qx__2.7.4__01.dev",  # #RW RANGE and ENUM, #CMD
    "Tripp_Lite__ECO850LCD__usbhid-ups__2.6.3__01.dev",  # #RW STRING, #CMD
    "APC*Back-UPS*usbhid-ups*.dev",  # a common one, without metadata
)


@pytest.mark.interop
@pytest.mark.slow
def test_dummy_ups_ddl_same_answers(tmp_path: Path) -> None:
    files = [_ddl(p) for p in DDL_PICKS]
    c_cfg, b_cfg = NutConfig(tmp_path / "c"), NutConfig(tmp_path / "b")
    for i, f in enumerate(files):
        for cfg in (c_cfg, b_cfg):
            cfg.add_ups(f"ddl{i}", driver="dummy-ups", port=str(f), desc=f.stem[:40])
    with both(c_cfg, b_cfg) as (_, bridge):
        seen = b""
        for ups in c_cfg.ups:
            seen += b"".join(assert_same(c_cfg.port, b_cfg.port, ups, bridge.log).values())
        # the comparison covered enums, ranges, writable strings and commands
        for what in (b"Type: ENUM", b"Type: RANGE", b"Type: STRING", b"RANGE ddl1 ", b"ENUM ddl0 ",
                     b"shutdown.return - "):
            assert what in seen, what
        # INSTCMD and SET through the C upsd reach our driver; TRACKING as through the bridge
        requests = ["INSTCMD ddl1 shutdown.return", "INSTCMD ddl3 load.off",
                    'SET VAR ddl2 ups.delay.shutdown "30"', 'SET VAR ddl3 ups.delay.shutdown "45"']
        results = [(tracked(c_cfg.port, r.split()[1], r), tracked(b_cfg.port, r.split()[1], r))
                   for r in requests]
        assert [c for c, _ in results] == [b for _, b in results], results
        assert results[0][0] == "SUCCESS" and results[1][0] == "ERR UNKNOWN", results
        for port in (c_cfg.port, b_cfg.port):
            serialsim.wait_var(port, "ddl3", "ups.delay.shutdown", "45", timeout=5)
        assert_same(c_cfg.port, b_cfg.port, "ddl3", bridge.log)


# ---- nutbridge-sim -----------------------------------------------------------------------------

SIM = {"driver": "nutbridge-sim", "port": "simulated", "simspeed": "0.000001", "outlets": "2"}


@pytest.mark.interop
@pytest.mark.slow
def test_simulated_ups_same_answers_and_commands(tmp_path: Path) -> None:
    c_cfg, b_cfg = NutConfig(tmp_path / "c"), NutConfig(tmp_path / "b")
    for cfg in (c_cfg, b_cfg):
        cfg.add_ups("sim", **SIM)
    with both(c_cfg, b_cfg) as (_, bridge):
        assert_same(c_cfg.port, b_cfg.port, "sim", bridge.log)
        requests = ['SET VAR sim ups.id "rack 7"', "SET VAR sim ups.beeper.status muted",
                    "INSTCMD sim test.failure.start", "INSTCMD sim outlet.2.load.off",
                    "INSTCMD sim load.off.delay 20"]
        results = [(tracked(c_cfg.port, "sim", r), tracked(b_cfg.port, "sim", r)) for r in requests]
        assert all(c == b == "SUCCESS" for c, b in results), results
        for port in (c_cfg.port, b_cfg.port):
            serialsim.wait_var(port, "sim", "ups.status", lambda v: v is not None and "OB" in v.split(),
                               timeout=10)
        assert_same(c_cfg.port, b_cfg.port, "sim", bridge.log)


# ---- the serial drivers on the pty simulators ---------------------------------------------------

def _frozen() -> SimUPS:
    return SimUPS(Params(seed=1))


# simulator, its model's attribute, ups.conf options, a command and its bytes
SERIAL: dict[str, tuple[Callable[[Path], PtyDevice], str, dict[str, str], str, bytes]] = {
    "nutdrv_qx": (lambda p: MegatecSimulator(p, model=_frozen(), speed=0), "model",
                  {"protocol": "megatec", "pollinterval": "1"}, "test.battery.start.quick", b"T\r"),
    "apcsmart": (lambda p: ApcSmartSim(p, _frozen(), speed=0), "ups", {"pollinterval": "1"},
                 "test.battery.start", b"W"),
}


@pytest.mark.interop
@pytest.mark.slow
@pytest.mark.parametrize("driver", sorted(SERIAL))
def test_serial_driver_same_answers(tmp_path: Path, driver: str) -> None:
    """One simulator (the port is a driver.parameter), its clock stopped: the C upsd over our
    driver first, then the bridge, on the same device state."""
    factory, model, opts, cmd, wire = SERIAL[driver]
    legs: list[tuple[dict[str, bytes], str, list[bytes]]] = []
    with serialsim.running(lambda: factory(tmp_path / "tty")) as sim:
        for leg in ("c", "b"):
            sim.call(setattr, sim.device, model, _frozen())
            cfg = NutConfig(tmp_path / leg)
            cfg.add_ups("ups", driver=driver, port=str(sim.link), **opts)
            with ExitStack() as stack:
                if leg == "c":
                    stack.enter_context(nutdriver.c_upsd_over_ours(cfg))
                else:
                    stack.enter_context(realnut.BridgeProcess.start(cfg))
                    realnut.wait_ready_ups(cfg.port, ["ups"])
                got = answers(cfg.port, "ups")
                sim.clear_received()
                result = tracked(cfg.port, "ups", f"INSTCMD ups {cmd}")
                legs.append((got, result, [r for r in sim.received() if r == wire]))
    (want, c_result, c_sent), (got, b_result, b_sent) = legs
    compare("ups", want, got)
    assert (c_result, c_sent) == (b_result, b_sent) == ("SUCCESS", [wire])


@pytest.mark.interop
@pytest.mark.slow
def test_unplugged_device_goes_stale_and_comes_back(tmp_path: Path) -> None:
    """The C upsd says DATA-STALE while the serial UPS is gone, and serves it again once it is
    back: the same driver process reconnected, nothing was restarted."""
    with serialsim.running(lambda: MegatecSimulator(tmp_path / "tty", speed=0)) as sim:
        cfg = NutConfig(tmp_path / "nut")
        cfg.add_ups("ups", driver="blazer_ser", port=str(sim.link), pollinterval="1")
        with nutdriver.c_upsd_over_ours(cfg) as (drv,):
            serialsim.wait_var(cfg.port, "ups", "ups.status", "OL")
            sim.call(sim.device.unplug)
            serialsim.wait_var(cfg.port, "ups", "ups.status", None, timeout=15)
            assert realnut.query(cfg.port, "GET VAR ups ups.status") == b"ERR DATA-STALE\n"
            time.sleep(3)  # a few failed reconnects
            sim.call(sim.device.replug)
            took = serialsim.wait_var(cfg.port, "ups", "ups.status", "OL", timeout=20)
            assert took < 15, f"recovery took {took:.1f}s"
            assert drv.proc.poll() is None
            assert "communication restored" in drv.log()
            upsd_log = (cfg.run / "upsd.log").read_text(errors="replace")
            assert "is stale" in upsd_log and "no longer stale" in upsd_log, upsd_log


# ---- hostile peers on our socket ---------------------------------------------------------------

def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.interop
@pytest.mark.slow
def test_flooding_peers_do_not_stop_the_c_upsd(tmp_path: Path) -> None:
    """Three peers flood our socket (DUMPALLs never read, garbage, unknown commands) while the
    device changes: the C upsd still gets every change within seconds and never calls the data
    stale, a new peer is answered at once, memory stays bounded, the garbage senders are cut off."""
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\nbattery.charge: 90\n")
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups", driver="dummy-ups", port=str(dev), pollinterval="1")
    stop = threading.Event()
    outcome: dict[str, str] = {}

    def flood(name: str, payload: bytes) -> None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(nutdriver.socket_path(cfg, "ups")))
                s.settimeout(1)
                while not stop.is_set():
                    try:
                        s.sendall(payload)
                    except TimeoutError:
                        continue  # not read any more: the driver paused us
            outcome[name] = "still connected"
        except OSError as exc:
            outcome[name] = f"disconnected ({type(exc).__name__})"

    with nutdriver.c_upsd_over_ours(cfg) as (drv,):
        rss = _rss_kb(drv.proc.pid)
        threads = [threading.Thread(target=flood, args=a, daemon=True) for a in (
            ("dumpall, never read", b"DUMPALL\n" * 4096),
            ("garbage", bytes(range(256)) * 64 + b'"#\n' * 100),
            ("unknown commands", b"FOO BAR BAZ\n" * 4096),
        )]
        for t in threads:
            t.start()
        try:
            for charge in ("80", "70", "60"):
                time.sleep(1)
                dev.write_text(f"ups.status: OL\nbattery.charge: {charge}\n")
                later = time.time() + int(charge)  # a new mtime (dummy-ups re-reads on a change)
                os.utime(dev, (later, later))
                took = serialsim.wait_var(cfg.port, "ups", "battery.charge", charge, timeout=10)
                assert took < 8, f"the C upsd saw battery.charge {charge} only after {took:.1f}s"
                assert realnut.query(cfg.port, "GET VAR ups ups.status") == b'VAR ups ups.status "OL"\n'
            # a peer that does not read is paused, not buffered without end
            assert _rss_kb(drv.proc.pid) < rss + 64 * 1024
            with SockPeer(drv.socket) as peer:
                t0 = time.monotonic()
                peer.send(b"PING\n")
                assert peer.read_until(b"PONG\n", timeout=2) == b"PONG\n"
                assert time.monotonic() - t0 < 1
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        assert outcome["garbage"].startswith("disconnected"), outcome
        assert outcome["unknown commands"].startswith("disconnected"), outcome
        assert "kept sending what a driver refuses" in drv.log()


# ---- our socket against a C driver's ------------------------------------------------------------

_SOCKET_NORMALISE = [
    (re.compile(rb'^SETINFO driver\.version "[^"]*"\n', re.M), b'SETINFO driver.version "<version>"\n'),
    (re.compile(rb'^SETINFO driver\.state "[^"]*"\n', re.M), b""),
    (re.compile(rb"^PID \d+\n", re.M), b"PID <pid>\n"),
    (re.compile(rb"^(SETFLAGS driver\.(?:debug|flag\.allow_killpower) RW) NUMBER\n", re.M), rb"\1\n"),
]


def _norm(data: bytes) -> bytes:
    for rx, rep in _SOCKET_NORMALISE:
        data = rx.sub(rep, data)
    return data


DIALOGUE_280 = [b"DUMPALL\n", b"PING\n", b'SET ups.id "new val" TRACKING 77\n',
                b"INSTCMD load.off TRACKING ab\n", b"INSTCMD load.off\n", b"INSTCMD a b c d e f\n",
                b"SET a b c d e\n", b"FOO bar\n", b"dumpall\n", b'SET battery.charge "42"\n', b"ping\n"]
DIALOGUE_285 = [b"GETPID\n", b"DUMPSTATUS\n", b"DUMPVALUE battery.charge\n", b"DUMPVALUE nope\n",
                b"NOBROADCAST\n", b"SET battery.charge 41\n", b"PING\n", b"BROADCAST 1\n",
                b"SET battery.charge 43\n", b"PING\n", b"BROADCAST 0\n", b"SET battery.charge 44\n",
                b"PING\n", b"LOGOUT\n"]


@pytest.mark.interop
def test_socket_dialogue_like_c_dummy_ups(tmp_path: Path) -> None:
    c_driver = realnut.require_daemon("dummy-ups")
    dev = tmp_path / "ups.dev"
    dev.write_text('ups.status: OL\nbattery.charge: 90\nups.id: a "quoted" value\nups.mfr: X\n')
    dialogue = DIALOGUE_280 + (DIALOGUE_285 if NUT_285 else [])
    replies: dict[str, list[bytes]] = {}
    for who in ("C", "ours"):
        cfg = NutConfig(tmp_path / who)
        cfg.add_ups("ups", driver="dummy-ups", port=str(dev))
        cfg.write()
        with ExitStack() as stack:
            if who == "C":
                log = stack.enter_context(open(cfg.run / "driver.log", "wb"))
                proc = subprocess.Popen([c_driver, "-a", "ups", "-F", "-u", "root"], env=cfg.env(),
                                        stdout=log, stderr=subprocess.STDOUT)
                stack.callback(proc.wait, 10)
                stack.callback(proc.terminate)
                deadline = time.monotonic() + 10
                while not nutdriver.socket_path(cfg, "ups").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            else:
                stack.enter_context(DriverProcess.start(cfg, "ups"))
            time.sleep(0.5)  # past the first poll
            with SockPeer(nutdriver.socket_path(cfg, "ups")) as peer:
                replies[who] = []
                for request in dialogue:
                    peer.send(request)
                    replies[who].append(_norm(peer.read_quiet(0.4, 1.0)))
    for request, c, ours in zip(dialogue, replies["C"], replies["ours"], strict=True):
        assert ours == c, f"{request!r}:\nC:\n{c.decode()}\nours:\n{ours.decode()}"
    assert replies["C"][0].endswith(b"DATAOK\nDUMPDONE\n") and b"SETAUX ups.id 16\n" in replies["C"][0]
    assert replies["C"][2] == b'SETINFO ups.id "new val"\nTRACKING 77 0\n'
    if NUT_285:
        assert replies["C"][-1] == b"OK Goodbye\n"


# ---- the driver process: socket, broadcasts, commands --------------------------------------------

def test_broadcasts_and_staleness_on_the_socket(tmp_path: Path) -> None:
    """Changes reach broadcasting peers as the C upsd needs them; DATASTALE / DATAOK follow the
    device; NOBROADCAST peers hear nothing."""
    with serialsim.running(lambda: MegatecSimulator(tmp_path / "tty", speed=0)) as sim:
        cfg = NutConfig(tmp_path / "nut")
        cfg.add_ups("ups", driver="nutdrv_qx", port=str(sim.link), protocol="megatec", pollinterval="0.5")
        with DriverProcess.start(cfg, "ups") as drv, SockPeer(drv.socket) as peer, \
                SockPeer(drv.socket) as quiet:
            quiet.send(b"NOBROADCAST\nPING\n")
            assert quiet.read_until(b"PONG\n") == b"PONG\n"
            peer.send(b"DUMPALL\n")
            dump = peer.read_until(b"DUMPDONE\n")
            assert dump.endswith(b"DATAOK\nDUMPDONE\n") and b'SETINFO ups.status "OL"\n' in dump
            sim.call(sim.device.model.set_mains, False)
            got = peer.read_until(b'SETINFO ups.status "OB"\n', timeout=5)
            assert b"DATA" not in got
            sim.call(sim.device.unplug)
            assert peer.read_until(b"DATASTALE\n", timeout=10).endswith(b"DATASTALE\n")
            sim.call(sim.device.replug)
            assert peer.read_until(b"DATAOK\n", timeout=20).endswith(b"DATAOK\n")
            peer.send(b"DUMPSTATUS\n")
            status = peer.read_until(b"DUMPDONE\n")
            assert status.startswith(b'SETINFO ups.status "OB') and status.endswith(b"DATAOK\nDUMPDONE\n")
            assert quiet.read_quiet(0.3, 0.5) == b""


def test_background_start_pid_file_and_signals(tmp_path: Path) -> None:
    """Through a link named like the driver, as upsdrvctl runs it: the parent exits 0 once the
    socket is there, the daemon's PID is in the PID file; SIGTERM removes both."""
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\n")
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups", driver="dummy-ups", port=str(dev))
    cfg.write()
    bin_dir = nutdriver.install_links(tmp_path / "bin", ["dummy-ups", "nutdrv_qx"])
    path, pid_file = nutdriver.socket_path(cfg, "ups"), cfg.run / "dummy-ups-ups.pid"
    p = realnut.run_tool([str(bin_dir / "dummy-ups"), "-a", "ups", "-u", "root"], env=nutdriver.env(cfg))
    assert p.returncode == 0, p.stderr
    assert path.exists() and pid_file.exists()
    assert oct(path.stat().st_mode & 0o777) == "0o660"
    pid = int(pid_file.read_text())
    try:
        with SockPeer(path) as peer:
            peer.send(b"GETPID\nDUMPSTATUS\n")
            assert peer.read_until(b"DUMPDONE\n") == (
                b'PID %d\nSETINFO ups.status "OL"\nSETAUX ups.status 32\nSETFLAGS ups.status RW STRING\n'
                b"DATAOK\nDUMPDONE\n" % pid)
        # a second instance replaces the first (NUT's drivers do the same with their twin)
        p = realnut.run_tool([str(bin_dir / "dummy-ups"), "-a", "ups", "-u", "root"], env=nutdriver.env(cfg))
        assert p.returncode == 0, p.stderr
        new = int(pid_file.read_text())
        assert new != pid and not _running(pid)
        pid = new
        # the wrong program for this section
        p = realnut.run_tool([str(bin_dir / "nutdrv_qx"), "-a", "ups", "-u", "root"], env=nutdriver.env(cfg))
        assert (p.returncode, p.stderr.strip().splitlines()[-1]) == (
            1, b"Error: UPS [ups] is for driver dummy-ups, but I'm nutdrv_qx!")
    finally:
        os.kill(pid, signal.SIGTERM)
    _wait(lambda: not _running(pid))
    assert not path.exists() and not pid_file.exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_foreground_with_pid_file_exits_0_on_signals(tmp_path: Path, sig: signal.Signals) -> None:
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups", **SIM)
    drv = DriverProcess.start(cfg, "ups", "-F", "-g", "daemon")  # -F twice: -FF
    pid_file = cfg.run / "nutbridge-sim-ups.pid"
    try:
        assert int(pid_file.read_text()) == drv.proc.pid
        st = drv.socket.stat()  # -g: the socket's group, g+rw
        assert (st.st_gid, oct(st.st_mode & 0o777)) == (grp.getgrnam("daemon").gr_gid, "0o660")
        drv.proc.send_signal(sig)
        assert drv.proc.wait(10) == 0
    finally:
        drv.stop()
    assert not drv.socket.exists() and not pid_file.exists()


def test_systemd_notify(tmp_path: Path) -> None:
    """As NUT 2.8.5's nut-driver@ runs a driver (Type=notify-reload, ``upsdrvctl -FF``):
    READY=1 once the socket is up, RELOADING=1 + READY=1 around a SIGHUP, STOPPING=1."""
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups", **SIM)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify"))
        notify.settimeout(10)
        drv = DriverProcess.start(cfg, "ups", "-F", extra_env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
        try:
            ready = notify.recv(4096)
            assert ready.startswith(b"READY=1\nSTATUS=serving ") and drv.socket.exists()
            drv.proc.send_signal(signal.SIGHUP)
            assert re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=\d+", notify.recv(4096))
            assert notify.recv(4096) == b"READY=1"
            drv.proc.send_signal(signal.SIGTERM)
            assert notify.recv(4096) == b"STOPPING=1"
            assert drv.proc.wait(10) == 0
        finally:
            drv.stop()


@pytest.mark.parametrize("mode", ["background", "foreground"])
def test_missing_device_exits_1_without_socket(tmp_path: Path, mode: str) -> None:
    """As C drivers: no device at start-up -> exit 1, no socket, no PID file."""
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("dev", driver="dummy-ups", port=str(tmp_path / "missing.dev"))
    cfg.add_ups("tty", driver="nutdrv_qx", port=str(tmp_path / "ttyMISSING"), protocol="megatec")
    cfg.write()
    for ups in ("dev", "tty"):
        argv = [*_driver_argv(), "-a", ups, "-u", "root", *(["-F"] if mode == "foreground" else [])]
        p = realnut.run_tool(argv, env=nutdriver.env(cfg), timeout=60)
        assert p.returncode == 1, (ups, p.stderr)
        assert b"cannot reach the device, exiting" in p.stderr and b"retrying" not in p.stderr, p.stderr
        assert list(cfg.run.iterdir()) == [], ups


def test_commands_reload_and_exit(tmp_path: Path) -> None:
    """-c reload re-reads ups.conf (SIGHUP too) and restarts the driver in place with the new
    options; INSTCMD driver.exit (what 2.8.5's upsdrvctl sends) ends it cleanly."""
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\n")
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups", driver="dummy-ups", port=str(dev), pollinterval="2")
    with DriverProcess.start(cfg, "ups") as drv, SockPeer(drv.socket) as peer:
        peer.send(b"DUMPALL\n")
        assert b'SETINFO driver.parameter.pollinterval "2"\n' in peer.read_until(b"DUMPDONE\n")
        p = realnut.run_tool([*_driver_argv(), "-a", "ups", "-c", "reload"], env=nutdriver.env(cfg))
        assert p.returncode == 0, p.stderr
        assert b"nothing changed" in _wait_log(drv, "nothing changed")
        cfg.ups["ups"]["pollinterval"] = "3"
        cfg.write()
        p = realnut.run_tool([*_driver_argv(), "-a", "ups", "-c", "reload-or-error"], env=nutdriver.env(cfg))
        assert p.returncode == 0, p.stderr
        got = peer.read_until(b'SETINFO driver.parameter.pollinterval "3"\n', timeout=10)
        assert b"DATASTALE" not in got  # the data stayed valid across the restart
        cfg.ups["ups"]["pollinterval"] = "4"
        cfg.write()
        drv.proc.send_signal(signal.SIGHUP)
        peer.read_until(b'SETINFO driver.parameter.pollinterval "4"\n', timeout=10)
        cfg.ups["ups"]["driver"] = "nutdrv_qx"
        cfg.write()
        peer.send(b"INSTCMD driver.reload-or-error TRACKING e1\nINSTCMD driver.reload TRACKING e2\n")
        assert peer.read_until(b"TRACKING e2 0\n").endswith(b"TRACKING e1 3\nTRACKING e2 0\n")
        peer.send(b"INSTCMD driver.exit TRACKING bye\n")
        assert peer.read_until(b"TRACKING bye 0\n") == b"TRACKING bye 0\n"
        assert drv.proc.wait(10) == 0
        cfg.ups["ups"]["driver"] = "dummy-ups"  # for the socket check on exit


def test_our_driver_even_where_ups_conf_hosts_nuts(tmp_path: Path) -> None:
    """``nutbridge_hosted = *`` tells ``nutbridge serve`` to run NUT's C drivers; the process
    that *is* the driver (upsdrvctl runs it under that name) still runs ours."""
    from nutbridge import __version__

    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups", **SIM)
    conf = cfg.write() / "ups.conf"
    conf.write_text("nutbridge_hosted = *\n" + conf.read_text())
    with DriverProcess.start(cfg, "ups", write=False) as drv, SockPeer(drv.socket) as peer:
        peer.send(b"DUMPVALUE driver.version\n")
        want = b'SETINFO driver.version "%s"\n' % __version__.encode()
        assert peer.read_until(b"DUMPDONE\n").startswith(want)


def test_killpower(tmp_path: Path) -> None:
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups", **SIM)
    cfg.write()
    p = realnut.run_tool([*_driver_argv(), "-a", "ups", "-k"], env=nutdriver.env(cfg))
    assert p.returncode == 0, p.stderr
    assert b"killpower: shutdown.reboot" in p.stderr  # on mains: power-cycle (drivers/base.py)
    assert list(cfg.run.iterdir()) == []


# ---- upsdrvctl ---------------------------------------------------------------------------------

@pytest.mark.interop
@pytest.mark.slow
def test_upsdrvctl_starts_and_stops_our_driver(tmp_path: Path) -> None:
    upsdrvctl = realnut.require_daemon("upsdrvctl")
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\nbattery.charge: 90\n")
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("ups", driver="dummy-ups", port=str(dev))
    cfg.add_ups("sim", **SIM)
    bin_dir = nutdriver.install_links(tmp_path / "bin", ["dummy-ups", "nutbridge-sim"])

    def write_conf() -> None:
        conf = cfg.write() / "ups.conf"
        conf.write_text(f'driverpath = "{bin_dir}"\n' + conf.read_text())

    write_conf()
    # NUT 2.8.1+ upsdrvctl signals a PID only if /proc/PID/exe is named like the driver; ours
    # is the Python interpreter: NUT's own switch for wrapped drivers turns that check off
    env = nutdriver.env(cfg, NUT_IGNORE_CHECKPROCNAME="true", NUT_QUIET_INIT_NDE_WARNING="true")
    ctl = [upsdrvctl, "-u", "root"]
    p = realnut.run_tool([*ctl, "start"], env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    pids = [int((cfg.run / f"{d}.pid").read_text()) for d in ("dummy-ups-ups", "nutbridge-sim-sim")]
    try:
        with realnut.c_upsd(cfg, drivers=False):
            realnut.wait_ready_many(cfg.port, ["ups", "sim"])
            assert realnut.query(cfg.port, "GET VAR ups battery.charge") == b'VAR ups battery.charge "90"\n'
            assert realnut.query(cfg.port, "GET VAR sim device.mfr") == b'VAR sim device.mfr "NUT Bridge"\n'
            if NUT_285:
                p = realnut.run_tool([*ctl, "status"], env=env)
                assert p.returncode == 0, p.stderr
                rows = {ln.split()[0]: ln.split() for ln in p.stdout.decode().splitlines()[1:]}
                assert rows["ups"][2:] == ["RUNNING", str(pids[0]), "RESPONSIVE", str(pids[0]), '"OL"']
                cfg.ups["ups"]["pollinterval"] = "3"
                write_conf()
                p = realnut.run_tool([*ctl, "-c", "reload", "ups"], env=env)
                assert p.returncode == 0 and b"returned code 0" in p.stderr + p.stdout, p
                serialsim.wait_var(cfg.port, "ups", "driver.parameter.pollinterval", "3", timeout=10)
                # the socket way of 2.8.5 needs no PID check: -c exit
                p = realnut.run_tool([upsdrvctl, "-c", "exit", "sim"], env=nutdriver.env(cfg))
                assert p.returncode == 0, p.stderr
                _wait(lambda: not _running(pids[1]))
                # 2.8.5's nut-driver@: "upsdrvctl -FF start" becomes the driver (exec)
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
                    notify.bind(str(tmp_path / "notify"))
                    notify.settimeout(20)
                    fg = subprocess.Popen([*ctl, "-FF", "start", "sim"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL,
                                          env={**env, "NOTIFY_SOCKET": str(tmp_path / "notify")})
                    try:
                        assert notify.recv(4096).startswith(b"READY=1")
                        assert int((cfg.run / "nutbridge-sim-sim.pid").read_text()) == fg.pid
                        serialsim.wait_var(cfg.port, "sim", "device.mfr", "NUT Bridge", timeout=15)
                        fg.send_signal(signal.SIGTERM)  # what systemd does
                        assert fg.wait(10) == 0
                    finally:
                        if fg.poll() is None:
                            fg.kill()
                            fg.wait()
            p = realnut.run_tool([*ctl, "stop", *(["ups"] if NUT_285 else [])], env=env, timeout=60)
            assert p.returncode == 0, p.stderr
            for pid in pids:
                _wait(partial(_stopped, pid))
            serialsim.wait_var(cfg.port, "ups", "ups.status", None, timeout=10)
            assert realnut.query(cfg.port, "GET VAR ups ups.status") == b"ERR DRIVER-NOT-CONNECTED\n"
    finally:
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    assert sorted(f.name for f in cfg.run.iterdir() if not f.name.endswith(".log")) == []


# ---- the shadow against a model of upsd's state table (sans-IO) ----------------------------------

class UpsdModel:
    """What a C upsd holds for one driver after reading its lines (driver-socket.md §3): an
    update equal but for case is ignored, enums and ranges are appended once, SETFLAGS replaces
    the flags (upsd keeps RW, STRING and NUMBER), lookups ignore case."""

    def __init__(self) -> None:
        self.vars: dict[str, dict[str, Any]] = {}
        self.cmds: dict[str, str] = {}
        self.data_ok = False
        self.dumps = 0

    def feed(self, data: bytes) -> None:
        for ev in sock.DriverReader().feed(data):
            assert not isinstance(ev, sock.ParseError | sock.Unknown), ev
            self.apply(ev)

    def apply(self, ev: sock.DriverEvent) -> None:
        if isinstance(ev, sock.DataOk | sock.DataStale):
            self.data_ok = isinstance(ev, sock.DataOk)
            return
        if isinstance(ev, sock.DumpDone):
            self.dumps += 1
            return
        if isinstance(ev, sock.AddCmd):
            self.cmds.setdefault(ev.cmd.lower(), ev.cmd)
            return
        if isinstance(ev, sock.DelCmd):
            self.cmds.pop(ev.cmd.lower(), None)
            return
        key = getattr(ev, "var", "").lower()
        var = self.vars.get(key)
        if isinstance(ev, sock.SetInfo):
            if var is None:
                self.vars[key] = {"name": ev.var, "value": ev.value, "flags": (), "aux": 0,
                                  "enums": [], "ranges": []}
            elif var["value"].lower() != ev.value.lower():
                var["value"] = ev.value
        elif isinstance(ev, sock.DelInfo):
            self.vars.pop(key, None)
        elif var is None:
            pytest.fail(f"{ev} for a variable upsd does not have")
        elif isinstance(ev, sock.AddEnum) and ev.value not in var["enums"]:
            var["enums"].append(ev.value)
        elif isinstance(ev, sock.DelEnum) and ev.value in var["enums"]:
            var["enums"].remove(ev.value)
        elif isinstance(ev, sock.AddRange) and (ev.min, ev.max) not in var["ranges"]:
            var["ranges"].append((ev.min, ev.max))
        elif isinstance(ev, sock.DelRange) and (ev.min, ev.max) in var["ranges"]:
            var["ranges"].remove((ev.min, ev.max))
        elif isinstance(ev, sock.SetAux):
            var["aux"] = ev.aux
        elif isinstance(ev, sock.SetFlags):
            var["flags"] = tuple(f for f in ev.flags if f in ("RW", "STRING", "NUMBER"))

    def view(self) -> tuple[dict[str, tuple[Any, ...]], list[str], bool]:
        return ({k: (v["name"], v["value"], v["flags"], v["aux"], v["enums"], v["ranges"])
                 for k, v in self.vars.items()}, sorted(self.cmds.values()), self.data_ok)


def device_view(dev: Device) -> tuple[dict[str, tuple[Any, ...]], list[str], bool]:
    """What upsd should hold for ``dev``: printable ASCII values of at most 255 characters."""
    out = {}
    for v in dev.variables():
        d = snapshot(v)
        out[v.name.lower()] = (d.name, d.value, d.flags, d.aux, d.enums, d.ranges)
    return out, sorted(dev.commands()), dev.driver_state is DriverState.OK


NAMES = st.sampled_from(["ups.status", "UPS.STATUS", "ups.id", "battery.charge", "x.y", "load.off"])
VALUES = st.sampled_from(["OL", "ol", "OB LB", "ob lb", "", "a \"quoted\" #1", "caf\u00e9\tx", "7",
                          "x" * 300, "On Line"])
OPS = st.one_of(
    st.tuples(st.just("set"), NAMES, VALUES, st.sampled_from([None, True, False]),
              st.sampled_from([None, True, False]), st.sampled_from([None, 0, 16, 32])),
    st.tuples(st.just("set_flags"), NAMES, st.booleans(), st.booleans()),
    st.tuples(st.just("set_aux"), NAMES, st.sampled_from([0, 8, 32])),
    st.tuples(st.just("delete"), NAMES),
    st.tuples(st.just("add_enum"), NAMES, VALUES),
    st.tuples(st.just("set_enums"), NAMES, st.lists(VALUES, max_size=4)),
    st.tuples(st.just("add_range"), NAMES, st.integers(-5, 5), st.integers(0, 10)),
    st.tuples(st.just("add_cmd"), NAMES),
    st.tuples(st.just("delete_cmd"), NAMES),
    st.tuples(st.sampled_from(["clear", "data_ok", "data_stale", "driver_connected", "driver_gone"])),
)


def _apply(dev: Device, op: tuple[Any, ...]) -> None:
    kind, *args = op
    if kind == "set":
        name, value, rw, string, aux = args
        dev.set(name, value, rw=rw, string=string, aux=aux)
    elif kind == "set_flags":
        name, rw, string = args
        dev.set_flags(name, rw=rw, string=string)
    else:
        getattr(dev, kind)(*args)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.lists(OPS, min_size=1, max_size=4), max_size=12))
def test_broadcasts_keep_upsd_equal_to_the_device(batches: list[list[tuple[Any, ...]]]) -> None:
    """Whatever a driver does to its Device (one change at a time or batched), the lines the
    socket sends keep a C upsd's copy equal to it; and a dump at any point gives the same copy."""
    dev = Device("ups", driver_name="dummy-ups")
    dev.set("ups.status", "OL")
    dev.data_ok()
    shadow = Shadow(dev)
    upsd = UpsdModel()
    upsd.feed(shadow.dump())
    dev.subscribe(lambda d, names: upsd.feed(shadow.changed(names) + shadow.check_ok()))
    for batch in batches:
        with dev.batch():
            for op in batch:
                _apply(dev, op)
        assert upsd.view() == device_view(dev), batch
        fresh = UpsdModel()
        fresh.feed(shadow.dump())
        assert fresh.dumps == 1 and fresh.view() == upsd.view()


def test_changes_a_c_upsd_cannot_take_as_updates() -> None:
    """A value changing only in case (upsd would ignore the SETINFO) and flags dropping to none
    (a SETFLAGS without flags is ignored) re-create the variable; a new variable comes in the
    order a C driver broadcasts it."""
    dev = Device("ups")
    dev.set("ups.status", "OL", rw=True, string=True, aux=32)
    shadow = Shadow(dev)
    sent: list[bytes] = []
    dev.subscribe(lambda d, names: sent.append(shadow.changed(names)))
    dev.set("ups.status", "ol")
    dev.set_flags("ups.status", rw=False, string=False)
    dev.set("ups.id", "x", rw=True, string=True, aux=16)
    dev.set("ups.id", "y")
    assert sent == [
        b'DELINFO ups.status\nSETINFO ups.status "ol"\nSETFLAGS ups.status RW STRING\nSETAUX ups.status 32\n',
        b'DELINFO ups.status\nSETINFO ups.status "ol"\nSETAUX ups.status 32\n',
        b'SETINFO ups.id "x"\nSETFLAGS ups.id RW STRING\nSETAUX ups.id 16\n',
        b'SETINFO ups.id "y"\n',
    ]
    assert clean("caf\u00e9 \x01ok" + "x" * 300) == "caf ok" + "x" * 249


PROTOCOL_LINES = [b"DUMPALL\n", b"PING\n", b"GETPID\n", b"DUMPSTATUS\n", b"NOBROADCAST\n",
                  b"BROADCAST 0\n", b"INSTCMD load.off TRACKING t1\n", b'SET ups.id "x" TRACKING t2\n',
                  b"LOGOUT\n", b'"#\n', b"INSTCMD\n", b"SET a b c d\n"]


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(st.one_of(st.binary(max_size=700), st.sampled_from(PROTOCOL_LINES)), max_size=10))
def test_any_bytes_leave_the_socket_serving(chunks: list[bytes]) -> None:
    """Bad input never raises out of the server: after any bytes from one peer, the next peer
    gets a full dump and a PONG, and the server closes cleanly."""
    asyncio.run(_any_bytes(chunks))


async def _any_bytes(chunks: list[bytes]) -> None:
    dev = Device("ups", driver_name="dummy-ups")
    dev.set("ups.status", "OL", rw=True, string=True, aux=32)
    dev.add_cmd("load.off")
    dev.data_ok()
    calls: list[tuple[str, str, str | None]] = []

    async def handler(kind: str, name: str, param: str | None) -> int:
        calls.append((kind, name, param))
        return 0

    with tempfile.TemporaryDirectory(prefix="nbs") as d:
        srv = SockServer(dev, Path(d) / "dummy-ups-ups", handler)
        await srv.start()
        try:
            r, w = await asyncio.open_unix_connection(srv.path)
            for chunk in chunks:
                w.write(chunk)
            with contextlib.suppress(OSError):
                await w.drain()
            w.close()
            r, w = await asyncio.open_unix_connection(srv.path)
            w.write(b"DUMPALL\nPING\n")
            got = await asyncio.wait_for(r.readuntil(b"PONG\n"), 5)
            assert got == srv.shadow.dump() + b"PONG\n"
            w.close()
        finally:
            await srv.close()
        assert not os.path.exists(srv.path)
        assert all(kind in ("INSTCMD", "SET") for kind, _, _ in calls)


def test_half_closed_peer_gets_its_answers() -> None:
    """A peer that sends its requests and shuts its side (``nc -N``) still gets every answer,
    in order, then the end of the stream; handlers run one at a time, TRACKING after the
    change they made (as a C driver, which handles them synchronously)."""

    async def go() -> bytes:
        dev = Device("ups", driver_name="dummy-ups")
        dev.set("ups.id", "a", rw=True, string=True, aux=16)
        dev.data_ok()

        async def handler(kind: str, name: str, param: str | None) -> int:
            await asyncio.sleep(0.05)
            if kind == "SET":
                dev.set(name, param or "")
                return 0
            return 1

        with tempfile.TemporaryDirectory(prefix="nbs") as d:
            srv = SockServer(dev, Path(d) / "dummy-ups-ups", handler)
            await srv.start()
            try:
                r, w = await asyncio.open_unix_connection(srv.path)
                w.write(b'SET ups.id "b" TRACKING t1\nINSTCMD x TRACKING t2\nSET ups.id c\nPING\n')
                w.write_eof()
                return await asyncio.wait_for(r.read(), 5)
            finally:
                await srv.close()

    assert asyncio.run(go()) == (b'SETINFO ups.id "b"\nTRACKING t1 0\nTRACKING t2 1\n'
                                 b'SETINFO ups.id "c"\nPONG\n')


# ---- helpers ------------------------------------------------------------------------------------

def _driver_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "nutbridge", "driver"]


def _stopped(pid: int) -> bool:
    return not _running(pid)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _wait_log(drv: DriverProcess, text: str, timeout: float = 10.0) -> bytes:
    _wait(lambda: text in drv.log(), timeout)
    return drv.log().encode()
