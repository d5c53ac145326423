"""Real third-party NUT clients against the bridge's upsd, each compared with Debian's C upsd.

Every test starts our bridge and the real C upsd side by side, each serving its
own copy of the same dummy-ups file (UPS ``ups``) plus a UPS whose file is missing
(``down``: no driver, DRIVER-NOT-CONNECTED), runs the same real client against
both and requires the same observable results:

* ``upsmon`` (NUT 2.8.0 on Debian 12, 2.8.5 in sid) as a secondary: logs in,
  runs NOTIFYCMD with upstream's environment on ONBATT, follows the primary's FSD
  (SHUTDOWNCMD) and logs out;
* ``aionut`` 4.3.4, Home Assistant's NUT library (project venv);
* PyNUT from Debian's python3-nut, run by the system Python
  (tests/support/pynut_probe.py);
* the Nagios plugin ``check_ups`` (monitoring-plugins-standard) in OL, OB, OB LB,
  FSD, driver-down and stale states;
* a C ``dummy-ups`` in repeater mode mirroring our UPS into a C upsd, read back
  with NUT's own upsc/upsrw/upscmd.

Tolerated differences, normalised here only: the version banners (VER, HELP,
driver.version) as in test_upsd_differential.py, and each side's file path.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import realnut
from tests.support.realnut import BridgeProcess, NutConfig, ask, private_run, until

pytestmark = pytest.mark.interop

DEV = """\
ups.status: OL
battery.charge: 45
battery.runtime: 1800
input.voltage: 230.1
ups.load: 23
ups.temperature: 31.5
ups.realpower: 120
ups.mfr: NUT Bridge
ups.model: Test UPS
ups.id: "rack \\"B\\" \\\\ left"
"""
CHECK_UPS = "/usr/lib/nagios/plugins/check_ups"
SYSTEM_PYTHON = "/usr/bin/python3"
PROBE = Path(__file__).resolve().parent / "support" / "pynut_probe.py"
ADMIN = ("admin", "s3cr3t")


# ---- a bridge and a C upsd on the same data ------------------------------------------


@dataclass
class Pair:
    bridge: NutConfig
    c: NutConfig

    def sides(self) -> dict[str, NutConfig]:
        return {"bridge": self.bridge, "c": self.c}


def _config(root: Path, upsd_extra: str) -> NutConfig:
    cfg = NutConfig(root, upsd_extra=upsd_extra)
    root.mkdir(parents=True, exist_ok=True)
    (root / "ups.dev").write_text(DEV)
    cfg.add_ups("ups", driver="dummy-ups", port=str(root / "ups.dev"), desc="Test one")
    cfg.add_ups("down", driver="dummy-ups", port=str(root / "missing.dev"))
    return cfg


@contextmanager
def serve(side: str, root: Path, upsd_extra: str = "") -> Iterator[NutConfig]:
    """Our bridge ("bridge") or Debian's C upsd + dummy-ups ("c") on a fresh config."""
    if side == "c":
        realnut.require_daemon("upsd")
        realnut.require_daemon("dummy-ups")
    cfg = _config(root / side, upsd_extra)
    with BridgeProcess.start(cfg) if side == "bridge" else realnut.c_upsd(cfg, wait_ready=False):
        realnut.wait_ready_ups(cfg.port, ["ups"])
        yield cfg


@contextmanager
def serve_pair(root: Path, upsd_extra: str = "") -> Iterator[Pair]:
    with serve("c", root, upsd_extra) as c, serve("bridge", root, upsd_extra) as bridge:
        yield Pair(bridge, c)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    with serve_pair(tmp_path) as p:
        yield p


def set_var(port: int, var: str, value: str, ups: str = "ups") -> None:
    """SET VAR as admin (both dummy-ups accept it on every variable), then wait until
    upsd serves the new value: the OK comes before the driver applies it."""
    ans = ask(port, f"USERNAME {ADMIN[0]}", f"PASSWORD {ADMIN[1]}", f'SET VAR {ups} {var} "{value}"')
    assert ans == "OK\nOK\nOK\n", ans
    try:
        until(f"{var}={value!r} on port {port}",
              lambda: ask(port, f"GET VAR {ups} {var}") == f'VAR {ups} {var} "{value}"\n')
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {ask(port, f'GET VAR {ups} {var}')!r}") from None


def set_everywhere(pair: Pair, **values: str) -> None:
    for side, cfg in pair.sides().items():
        for var, value in values.items():
            try:
                set_var(cfg.port, var.replace("_", "."), value)
            except AssertionError as exc:
                raise AssertionError(f"{side}: {exc}") from None


# ---- 1. upsmon as a secondary follows the primary's FSD ---------------------------------


UPSMON_NOTIFY_TYPES = ["ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN",
                       "REPLBATT", "NOCOMM", "NOPARENT"]


def write_upsmon_conf(d: Path, port: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    notify, shut = d / "notify.sh", d / "shutdown.sh"
    notify.write_text('#!/bin/sh\necho "NOTIFYTYPE=$NOTIFYTYPE UPSNAME=$UPSNAME ARGS=[$*]" '
                      f'>> {d}/notify.log\n')
    shut.write_text(f'#!/bin/sh\necho "shutdown uid=$(id -u)" >> {d}/shutdown.marker\n')
    notify.chmod(0o755)
    shut.chmod(0o755)
    conf = d / "upsmon.conf"
    conf.write_text("\n".join([
        f"MONITOR ups@127.0.0.1:{port} 1 monsecondary ms secondary",
        "MINSUPPLIES 1", "POLLFREQ 1", "POLLFREQALERT 1", "DEADTIME 3", "HOSTSYNC 2",
        "FINALDELAY 0", "RUN_AS_USER root",
        f'SHUTDOWNCMD "{shut}"', f'NOTIFYCMD "{notify}"', f"POWERDOWNFLAG {d}/killpower",
        *(f"NOTIFYFLAG {t} EXEC" for t in UPSMON_NOTIFY_TYPES),
    ]) + "\n")
    conf.chmod(0o600)
    return conf


def notify_lines(d: Path) -> list[str]:
    try:
        return (d / "notify.log").read_text().splitlines()
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("side", ["bridge", "c"])
def test_upsmon_secondary_follows_fsd(tmp_path: Path, side: str) -> None:
    """upsmon as a secondary: LOGIN, NOTIFYCMD on ONBATT, shutdown on the primary's FSD."""
    upsmon = realnut.require_daemon("upsmon")
    with serve(side, tmp_path) as cfg:
        upsmon_scenario(upsmon, cfg.port, tmp_path / "upsmon")


def upsmon_scenario(upsmon: str, port: int, d: Path) -> None:
    write_upsmon_conf(d, port)
    # its own PID file: upsmon refuses to start when the one it finds names a live upsmon
    env = dict(os.environ, NUT_CONFPATH=str(d), NUT_STATEPATH=str(d), NUT_PIDPATH=str(d),
               NUT_ALTPIDPATH=str(d), NUT_QUIET_INIT_SSL="true", NUT_QUIET_INIT_UPSNOTIFY="true",
               LANG="C")
    sysname = f"ups@127.0.0.1:{port}"
    with open(d / "upsmon.log", "wb") as log:
        proc = subprocess.Popen(private_run([upsmon, "-F"]), env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        # it logged in: one upsmon client, from 127.0.0.1
        try:
            until("upsmon LOGIN", lambda: ask(port, "GET NUMLOGINS ups") == "NUMLOGINS ups 1\n")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; upsmon log:\n{(d / 'upsmon.log').read_text()}") from None
        assert ask(port, "LIST CLIENT ups") == (
            "BEGIN LIST CLIENT ups\nCLIENT ups 127.0.0.1\nEND LIST CLIENT ups\n")
        # on battery: NOTIFYCMD runs with upstream's environment and message
        set_var(port, "ups.status", "OB")
        until("ONBATT notification", lambda: notify_lines(d))
        assert notify_lines(d) == [f"NOTIFYTYPE=ONBATT UPSNAME={sysname} ARGS=[UPS {sysname} on battery]"]
        assert proc.poll() is None
        # the primary (a raw connection acting as upsmon primary) raises FSD
        with socket.create_connection(("127.0.0.1", port), timeout=5) as primary:
            f = primary.makefile("rwb", buffering=0)
            for line, expect in [("USERNAME monprimary", b"OK\n"), ("PASSWORD mp", b"OK\n"),
                                 ("LOGIN ups", b"OK\n"), ("PRIMARY ups", b"OK PRIMARY-GRANTED\n"),
                                 ("FSD ups", b"OK FSD-SET\n"), ("GET NUMLOGINS ups", b"NUMLOGINS ups 2\n")]:
                f.write(line.encode() + b"\n")
                assert f.readline() == expect, line
            # the secondary shuts down (SHUTDOWNCMD) and exits; the primary's wait is over
            assert proc.wait(15) == 0, (d / "upsmon.log").read_text()
            assert (d / "shutdown.marker").read_text() == "shutdown uid=0\n"
            # like a primary upsmon, poll until only we are left (the close may lag the exit)
            def numlogins() -> bytes:
                f.write(b"GET NUMLOGINS ups\n")
                return f.readline()
            until("secondary gone", lambda: numlogins() == b"NUMLOGINS ups 1\n", 5, 0.25)
            f.write(b"LIST CLIENT ups\n")
            assert [f.readline() for _ in range(3)] == [
                b"BEGIN LIST CLIENT ups\n", b"CLIENT ups 127.0.0.1\n", b"END LIST CLIENT ups\n"]
            f.write(b"LOGOUT\n")
            assert f.readline().startswith(b"OK Goodbye")
        until("NUMLOGINS 0", lambda: ask(port, "GET NUMLOGINS ups") == "NUMLOGINS ups 0\n", 5)
        # each NOTIFYCMD runs in its own child: FSD and SHUTDOWN may log in either order
        until("three notifications", lambda: len(notify_lines(d)) >= 3, 5)
        lines = notify_lines(d)
        assert lines[0] == f"NOTIFYTYPE=ONBATT UPSNAME={sysname} ARGS=[UPS {sysname} on battery]"
        assert sorted(lines[1:]) == [
            f"NOTIFYTYPE=FSD UPSNAME={sysname} ARGS=[UPS {sysname}: forced shutdown in progress]",
            "NOTIFYTYPE=SHUTDOWN UPSNAME= ARGS=[Auto logout and shutdown proceeding]",
        ]
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)


# ---- 2. aionut (Home Assistant) -------------------------------------------------------


def aionut_session(port: int) -> list[tuple[str, object]]:
    """Every aionut 4.3.4 call Home Assistant makes (and the rest of its API), results
    or exception class + message, as a comparable list."""
    from aionut import AIONUTClient

    async def run() -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = []

        async def call(label: str, coro: object) -> None:
            try:
                out.append((label, await coro))  # type: ignore[misc]
            except Exception as exc:
                out.append((label, f"{type(exc).__name__}: {exc}"))

        anon = AIONUTClient("127.0.0.1", port, timeout=5)
        admin = AIONUTClient("127.0.0.1", port, *ADMIN, timeout=5)
        reader = AIONUTClient("127.0.0.1", port, "reader", "r34d", timeout=5)
        wrong = AIONUTClient("127.0.0.1", port, "admin", "wrong", timeout=5, persistent=False)
        try:
            await call("list_ups", anon.list_ups())
            await call("description ups", anon.description("ups"))
            await call("description down", anon.description("down"))
            await call("description nope", anon.description("nope"))
            await call("list_vars ups", anon.list_vars("ups"))
            await call("list_vars down", anon.list_vars("down"))
            await call("list_vars nope", anon.list_vars("nope"))
            await call("list_commands ups", anon.list_commands("ups"))
            await call("list_commands down", anon.list_commands("down"))
            await call("run_command anon", anon.run_command("ups", "load.off"))
            await call("run_command admin", admin.run_command("ups", "load.off"))
            await call("run_command admin param", admin.run_command("ups", "load.off", "10"))
            await call("run_command admin bogus", admin.run_command("ups", "bogus.cmd"))
            await call("run_command admin down", admin.run_command("down", "load.off"))
            await call("run_command reader", reader.run_command("ups", "load.off"))
            await call("run_command wrong password", wrong.run_command("ups", "load.off"))
            # the persistent connection is still usable after the errors
            await call("list_ups again", admin.list_ups())
        finally:
            for c in (anon, admin, reader, wrong):
                c.shutdown()
        return out

    return asyncio.run(run())


def _norm_vars(result: object, cfg: NutConfig) -> object:
    """driver.version names us; driver.state flips between "quiet" and "updateinfo" in
    NUT 2.8.5's dummy-ups; the file path differs per side."""
    if isinstance(result, dict) and "driver.version" in result:
        result = dict(result, **{"driver.version": "<version>"})
        result["driver.parameter.port"] = result["driver.parameter.port"].replace(str(cfg.root), "<root>")
        if "driver.state" in result:
            result["driver.state"] = "<state>"
    return result


def test_aionut(pair: Pair) -> None:
    realnut.require_module("aionut", "nutbridge-ups[test]")
    results = {side: [(label, _norm_vars(r, cfg)) for label, r in aionut_session(cfg.port)]
               for side, cfg in pair.sides().items()}
    ours = dict(results["bridge"])
    assert ours["list_ups"] == {"ups": "Test one", "down": "Description unavailable"}
    assert ours["description ups"] == "Test one"
    assert ours["list_vars ups"]["ups.status"] == "OL"
    assert ours["list_vars ups"]["battery.charge"] == "45"
    assert ours["list_vars ups"]["ups.id"] == r'rack \"B\" \\ left'  # aionut does not unescape
    assert "load.off" in ours["list_commands ups"]
    assert ours["list_vars down"] == "NUTCommandError: Error running: LIST VAR down: ERR DRIVER-NOT-CONNECTED"
    assert ours["run_command anon"] == (
        "NUTCommandError: Error running: INSTCMD ups load.off: ERR USERNAME-REQUIRED")
    assert ours["run_command admin"] == "OK"
    assert ours["run_command reader"] == (
        "NUTLoginError: Error running: INSTCMD ups load.off: ERR ACCESS-DENIED")
    assert results["bridge"] == results["c"]


# ---- 3. PyNUT (python3-nut, system Python) ---------------------------------------------


def system_pynut() -> str | None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return None
    p = subprocess.run([SYSTEM_PYTHON, "-I", "-c", "import PyNUT"], capture_output=True)
    return SYSTEM_PYTHON if p.returncode == 0 else None


def pynut_session(python: str, cfg: NutConfig) -> list[list[object]]:
    p = subprocess.run([python, "-I", str(PROBE), str(cfg.port)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    out: list[list[object]] = json.loads(p.stdout)
    for entry in out:
        if entry[1] == "ok":
            entry[2] = _norm_vars(entry[2], cfg)
    return out


def test_pynut(pair: Pair) -> None:
    python = system_pynut()
    realnut.require(f"Debian's PyNUT for {SYSTEM_PYTHON} (apt-get install python3-nut)", python)
    assert python
    results = {side: pynut_session(python, cfg) for side, cfg in pair.sides().items()}
    ours = {e[0]: e[1:] for e in results["bridge"]}
    theirs = {e[0]: e[1:] for e in results["c"]}
    # documented difference: the banners name us (and the 2.8.5 HELP we reproduce)
    for label in ("anon.ver", "anon.help"):
        assert ours[label][0] == theirs[label][0] == "ok"
    assert re.fullmatch(r"Network UPS Tools upsd \S+ \(NUT Bridge \S+\) - \S+\n", ours["anon.ver"][1])
    assert theirs["anon.ver"][1].startswith("Network UPS Tools upsd ")
    assert set(theirs["anon.help"][1].split()) <= set(ours["anon.help"][1].split())
    for label in ("anon.ver", "anon.help"):
        del ours[label], theirs[label]

    assert ours["anon.GetUPSList"] == ["ok", {"down": "Description unavailable", "ups": "Test one"}]
    assert ours["anon.GetUPSVars ups"][1]["ups.status"] == "OL"
    assert ours["anon.GetUPSVars ups"][1]["ups.id"] == "rack \\"  # PyNUT splits values at any '"'
    assert ours["admin.GetUPSVars after SET"][1]["ups.load"] == "42"
    assert ours["admin.RunUPSCommand load.off"] == ["ok", "OK"]
    assert ours["primary.FSD"] == ["ok", "OK"]
    assert ours["primary.GetUPSVars after FSD"][1]["ups.status"] == "FSD OB"
    assert ours["anon.GetUPSCommands ups"][0] == "ok"
    assert ours["anon.GetRWVars ups"][0] == "ok"
    assert ours == theirs


# ---- 4. Nagios check_ups ----------------------------------------------------------------


CHECKS = [
    ["-u", "ups"],
    ["-u", "ups", "-T"],
    ["-u", "ups", "-v", "BATTPCT", "-w", "50", "-c", "20"],
    ["-u", "ups", "-v", "BATTPCT", "-w", "60", "-c", "50"],
    ["-u", "ups", "-v", "BATTPCT", "-w", "40", "-c", "30"],
    ["-u", "ups", "-v", "LOADPCT", "-w", "20", "-c", "80"],
    ["-u", "ups", "-v", "LINE", "-w", "240", "-c", "250"],
    ["-u", "ups", "-v", "TEMP", "-w", "30", "-c", "40", "-T"],
    ["-u", "ups", "-v", "REALPOWER", "-w", "100", "-c", "200"],
]
# Only ups.status changes between states: NUT 2.8.5's C dummy-ups may add a DISCHRG
# of its own to a SET ups.status after battery.charge was lowered.
STATES = ["OL", "OB", "OL RB BOOST", "OFF CAL", "OB LB"]


def check_ups(port: int, args: list[str]) -> tuple[int, str]:
    p = subprocess.run([CHECK_UPS, "-H", "127.0.0.1", "-p", str(port), *args],
                       capture_output=True, text=True, timeout=20, env=dict(os.environ, LANG="C"))
    return p.returncode, p.stdout + p.stderr


def check_all(pair: Pair, checks: list[list[str]]) -> dict[str, list[tuple[int, str]]]:
    """Run every check against both servers at once."""
    with ThreadPoolExecutor(8) as pool:
        futures = {side: [pool.submit(check_ups, cfg.port, args) for args in checks]
                   for side, cfg in pair.sides().items()}
        return {side: [f.result() for f in fs] for side, fs in futures.items()}


def require_check_ups() -> None:
    realnut.require(f"{CHECK_UPS} (apt-get install monitoring-plugins-standard)",
                    os.access(CHECK_UPS, os.X_OK))


def test_check_ups(pair: Pair) -> None:
    require_check_ups()
    # driver down, unknown UPS, nothing listening
    got = check_all(pair, [["-u", "down"], ["-u", "down", "-v", "BATTPCT"], ["-u", "nope"]])
    assert got["bridge"] == got["c"]
    assert got["bridge"][0] == (2, "Unknown error: ERR DRIVER-NOT-CONNECTED\n"
                                   "Invalid response received from host\n")
    assert check_ups(realnut.free_port(), ["-u", "ups"])[0] == 2
    # UPS states, with and without thresholds
    seen = {}
    for state in STATES:
        set_everywhere(pair, ups_status=state)
        got = check_all(pair, CHECKS if state == "OL" else CHECKS[:5])
        assert got["bridge"] == got["c"], state
        seen[state] = got["bridge"]
    # (monitoring-plugins 2.4 in sid adds "Real power=" to what 2.3 prints)
    assert seen["OL"][0][0] == 0
    assert seen["OL"][0][1].startswith(
        "UPS OK - Status=Online Utility=230.1V Batt=45.0% Load=23.0% Temp=88.7F")
    assert "|voltage=230100mV;;;0; battery=45%;;;0;100 load=23%;;;0;100 temp=88degF;;;0;" in seen["OL"][0][1]
    assert [rc for rc, _ in seen["OL"][2:5]] == [1, 2, 0]  # BATTPCT: warning, critical, ok
    assert seen["OB"][0][0] == 1 and seen["OB"][0][1].startswith("UPS WARNING - Status=On Battery")
    assert seen["OB LB"][0][0] == 2 and "Status=On Battery, Low Battery" in seen["OB LB"][0][1]
    # a primary's FSD latched in upsd
    for cfg in (pair.bridge, pair.c):
        assert ask(cfg.port, "USERNAME monprimary", "PASSWORD mp", "FSD ups") == "OK\nOK\nOK FSD-SET\n"
    got = check_all(pair, CHECKS[:3])
    assert got["bridge"] == got["c"]
    assert got["bridge"][0][0] == 2  # check_ups has no word for FSD; OB LB is critical anyway


def c_driver_pid(cfg: NutConfig, name: str) -> int:
    """The C dummy-ups that realnut.c_upsd started for `name` (found by its state path)."""
    marker = f"NUT_STATEPATH={cfg.run}".encode()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
            environ = (p / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"dummy-ups") and argv[1:3] == [b"-a", name.encode()] and marker in environ:
            return int(p.name)
    raise AssertionError(f"C dummy-ups for {name} not found")


def test_check_ups_stale(tmp_path: Path) -> None:
    """DATA-STALE: upstream's upsd when its driver stops answering (MAXAGE), ours when
    the device stops answering; check_ups reports both alike."""
    require_check_ups()
    with serve_pair(tmp_path, upsd_extra="MAXAGE 2\n") as pair:
        pid = c_driver_pid(pair.c, "ups")
        os.kill(pid, signal.SIGSTOP)
        try:
            (pair.bridge.root / "ups.dev").unlink()
            for cfg in (pair.bridge, pair.c):
                until("DATA-STALE",
                      lambda cfg=cfg: ask(cfg.port, "GET VAR ups ups.status") == "ERR DATA-STALE\n")
            got = check_all(pair, CHECKS[:3])
            assert got["bridge"] == got["c"]
            assert got["bridge"][0] == (
                2, "CRITICAL - UPS data is stale\nInvalid response received from host\n")
        finally:
            os.kill(pid, signal.SIGCONT)


# ---- 5. a C dummy-ups repeating our UPS -------------------------------------------------


def nut_tool(*argv: str) -> str:
    p = realnut.run_tool([realnut.require_client(argv[0]), *argv[1:]], env={"LANG": "C"})
    return p.stdout.decode() + p.stderr.decode().replace("Init SSL without certificate database\n", "")


def test_c_repeater_mirrors_bridge(pair: Pair, tmp_path: Path) -> None:
    """dummy-ups in repeater mode reads our UPS with NUT's client library; the C upsd
    in front of it must serve what a repeater of the C upsd serves."""
    rep = NutConfig(tmp_path / "repeater")
    for side, cfg in pair.sides().items():
        rep.add_ups(f"via{side}", driver="dummy-ups", port=f"ups@127.0.0.1:{cfg.port}", pollinterval="1")

    def dump(tool: str, *args: str, ups: str) -> str:
        remote = pair.sides()[ups.removeprefix("via")].port
        out = nut_tool(tool, *args, f"{ups}@127.0.0.1:{rep.port}")
        return out.replace(ups, "<ups>").replace(f"127.0.0.1:{remote}", "<remote>")

    def compare() -> str:
        views = {}
        for ups in ("viabridge", "viac"):
            views[ups] = "\n".join(
                [dump("upsc", ups=ups), dump("upsrw", ups=ups), dump("upscmd", "-l", ups=ups)])
        assert views["viabridge"] == views["viac"]
        return views["viabridge"]

    def direct(side: str) -> list[str]:
        out = nut_tool("upsc", f"ups@127.0.0.1:{pair.sides()[side].port}")
        return [ln for ln in out.splitlines() if not ln.startswith("driver.")]

    with realnut.c_upsd(rep):
        view = compare()
        assert "ups.status: OL\n" in view and "driver.parameter.mode: repeater\n" in view
        # the repeated variables are ours, unchanged (the driver.* ones are the repeater's)
        mirrored = nut_tool("upsc", f"viabridge@127.0.0.1:{rep.port}")
        assert [ln for ln in mirrored.splitlines() if not ln.startswith("driver.")] == direct("bridge")
        # changes propagate alike
        set_everywhere(pair, ups_status="OB LB", ups_load="87")
        for ups in ("viabridge", "viac"):
            until(f"{ups} OB LB", lambda ups=ups: ask(rep.port, f"GET VAR {ups} ups.status",
                                                       f"GET VAR {ups} ups.load")
                  == f'VAR {ups} ups.status "OB LB"\nVAR {ups} ups.load "87"\n')
        view = compare()
        assert "ups.status: OB LB\nups.temperature: 31.5\n" in view and "ups.load: 87\n" in view


# ---- 6. the same clients against a bridge that offers STARTTLS on its own ----------------


def test_clients_against_a_bridge_with_its_own_certificate(tmp_path: Path) -> None:
    """Listening beyond loopback, the bridge makes a certificate and offers STARTTLS
    (docs/tls.md): NUT's upsmon, which switches to TLS whenever a server offers it, still
    logs in, follows ONBATT and the primary's FSD; aionut (clear text) still reads and
    commands."""
    upsmon = realnut.require_daemon("upsmon")
    realnut.require_module("aionut", "nutbridge-ups[test]")
    cfg = _config(tmp_path / "bridge", "")
    state = tmp_path / "state"
    with BridgeProcess.start(cfg, ["--listen", f"0.0.0.0:{cfg.port}", "--state-dir", str(state)]):
        realnut.wait_ready_ups(cfg.port, ["ups"])
        assert (state / "tls" / "nutbridge.pem").is_file()
        assert ask(cfg.port, "STARTTLS") == "OK STARTTLS\n"
        ours = dict(aionut_session(cfg.port))
        assert _norm_vars(ours["list_vars ups"], cfg)["ups.status"] == "OL"  # type: ignore[index]
        assert ours["run_command admin"] == "OK"
        upsmon_scenario(upsmon, cfg.port, tmp_path / "upsmon")
    log = (tmp_path / "upsmon" / "upsmon.log").read_text()
    assert "SSL handshake done successfully" in log, log  # it did take the offer
