"""NUT's C drivers through the bridge: hosted (the bridge runs them) and attached to (started
by someone else), drivers/external/.

Against the real binaries: host NUT 2.8.0 (/lib/nut), and the same file under sid for 2.8.5::

    ../shared/tools/sid bash -c 'cd /work/main && .venv-3.14/bin/python -m pytest -q \\
        -p no:cacheprovider tests/test_hosted.py'

* sans-IO: locate (binary, private ups.conf, socket path limit, argv/env), mirror (upsd's
  state rules, bounds, flood budget), and that both stay sans-IO;
* ups.conf: the ``nutbridge_hosted`` / ``nutbridge_attach`` globals (file:line errors), the
  driver config contract, the registry's choice;
* AttachedDriver in-process against a fake driver (tests/support/fakedriver.py): the dump
  mirrored with types, enums, ranges and commands, WAIT until DUMPDONE, DATAOK/DATASTALE, PING
  after MAXAGE//3 of silence, stale after MAXAGE + 1, EOF and refused sockets, TRACKING;
* HostedDriver in-process with the C dummy-ups: SIGKILL and SIGSTOP are survived, a clean stop
  leaves no process and no file, killpower runs ``-k``;
* ``nutbridge serve`` hosting C dummy-ups answers upsc/upsrw/upscmd -l byte for byte like the
  C upsd with the same C driver, and INSTCMD/SET give the same TRACKING results; a killed driver
  is restarted (timed); failing drivers (exit 1, missing binary) give DRIVER-NOT-CONNECTED and
  a clear log; attach mode next to the C upsd, to drivers started by hand and by upsdrvctl;
  hostile drivers (flood, stall, garbage, 10 MB) only hurt their own UPS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nutbridge.config.parser import ConfigError, parse_text
from nutbridge.config.ups_conf import parse_ups_conf, validate_drivers
from nutbridge.drivers import create_driver, driver_class, is_native
from nutbridge.drivers.base import ConfigError as DriverConfigError
from nutbridge.drivers.base import KillpowerError, Status
from nutbridge.drivers.external import driver as ext
from nutbridge.drivers.external import locate
from nutbridge.drivers.external.mirror import Budget, Limits, Mirror, Overflow
from nutbridge.protocol import sock
from nutbridge.state import Device, DriverState
from tests.support import realnut
from tests.support.fakedriver import FakeDriver
from tests.support.hosting import (
    HostedConfig,
    Session,
    client,
    dead,
    driver_children,
    gone,
    hosted_pid,
    views,
)
from tests.support.realnut import NutConfig

NUT = tuple(int(x) for x in realnut.nut_version().split(".") if x.isdigit())


async def until(what: str, cond: Callable[[], object], timeout: float = 10.0) -> float:
    """Wait for ``cond()``; the seconds it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not reached within {timeout} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short name: driver socket paths must fit 107 bytes."""
    d = Path(tempfile.mkdtemp(prefix="nbt-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---- locate (sans-IO) ---------------------------------------------------------------------


def test_find_driver_in_driverpath_else_the_usual_places(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "mydrv"
    exe.write_text("#!/bin/sh\nexit 1\n")
    exe.chmod(0o755)
    (bindir / "noexec").write_text("")
    cfg = {"driver": "mydrv", "_driverpath": "bin", "_confdir": str(tmp_path)}  # relative: confdir
    assert locate.find_driver(cfg) == exe
    assert locate.find_driver({**cfg, "driver": "noexec"}) is None
    assert locate.find_driver({**cfg, "driver": "../bin/mydrv"}) is None
    assert locate.find_driver({**cfg, "driver": "dummy-ups"}) is None  # only driverpath, as upsdrvctl
    msg = locate.not_found_message({**cfg, "driver": "nothere"})
    assert "'nothere'" in msg and str(bindir) in msg
    msg = locate.not_found_message({"driver": "nothere"})
    assert all(d in msg for d in ("/lib/nut", "/usr/lib/nut", "/usr/libexec/nut")) and "driverpath" in msg
    dummy = realnut.require_daemon("dummy-ups")
    assert locate.find_driver({"driver": "dummy-ups"}) == Path(dummy)


def test_private_ups_conf_keeps_the_users_keys_only() -> None:
    config = {"driver": "apcsmart", "pollinterval": "5", "port": '/dev/tty "S0" #1 \\',
              "nolock": "enabled", "desc": "a b", "_confdir": "/etc/nut", "_mode": "hosted",
              "_flags": "nolock", "_maxage": "15"}
    text = locate.ups_conf_text("ups1", config)
    assert text.splitlines()[2:] == [
        "[ups1]", '\tdriver = "apcsmart"', '\tport = "/dev/tty \\"S0\\" \\#1 \\\\"',
        '\tpollinterval = "5"', "\tnolock", '\tdesc = "a b"',
        # the bridge is the socket's only reader: a driver that writes without blocking hangs up
        # on it when it falls behind a big dump (driver-socket.md §5), so unless the user chose
        '\tsynchronous = "yes"']
    assert locate.ups_conf_text("ups1", {**config, "synchronous": "no"}).splitlines()[-1] == (
        '\tsynchronous = "no"')
    # NUT's parser (the bridge's follows it) reads the same values back
    words = [e.words for e in parse_text(text)]
    assert ("port", "=", '/dev/tty "S0" #1 \\') in words and ("nolock",) in words
    assert not any(w[0].startswith("_") for w in words)


def test_socket_path_and_its_limit() -> None:
    assert locate.socket_path("/run/nut", "dummy-ups", "ups") == "/run/nut/dummy-ups-ups"
    base = "/" + "d" * (107 - len("/dummy-ups-u") - 1)
    assert len(locate.socket_path(base, "dummy-ups", "u")) == 107  # fits with its NUL
    with pytest.raises(ValueError, match="107 bytes"):
        locate.socket_path(base + "x", "dummy-ups", "u")


def test_argv_env_and_defaults() -> None:
    assert locate.driver_argv("/lib/nut/x", "u", "root") == ["/lib/nut/x", "-a", "u", "-F", "-u", "root"]
    assert locate.driver_argv("/b", "u", "nut", kill=True, extra=["ondelay=30"]) == [
        "/b", "-a", "u", "-k", "-u", "nut", "-x", "ondelay=30"]
    env = locate.driver_env({"PATH": "/bin", "NOTIFY_SOCKET": "/run/sd", "NUT_STATEPATH": "/run/nut"},
                            "/p", "/p/etc")
    assert (env["NUT_STATEPATH"], env["NUT_CONFPATH"], env["PATH"]) == ("/p", "/p/etc", "/bin")
    assert "NOTIFY_SOCKET" not in env  # a hosted driver must not talk to systemd as if it were us
    assert locate.attach_statepath({}, {}) == "/run/nut"
    assert locate.attach_statepath({}, {"NUT_STATEPATH": "/s"}) == "/s"
    assert locate.attach_statepath({"_statepath": "/c"}, {"NUT_STATEPATH": "/s"}) == "/c"
    assert [locate.maxage(c) for c in ({}, {"_maxage": "4"}, {"_maxage": "x"}, {"_maxage": "0"})] == [
        15, 4, 15, 1]


# ---- mirror (sans-IO) ---------------------------------------------------------------------


def events(data: bytes) -> list[sock.DriverEvent | sock.ParseError]:
    return sock.DriverReader().feed(data)


def test_mirror_follows_upsd() -> None:
    m = Mirror()
    ch = m.apply(events(
        b'SETINFO ups.status "OL"\nSETINFO Battery.Charge "90"\nSETFLAGS battery.charge RW NUMBER\n'
        b'ADDRANGE battery.charge 10 90\nADDRANGE battery.charge 10 95\nADDRANGE battery.charge 5 50\n'
        b'SETINFO input.sensitivity "normal"\nADDENUM input.sensitivity "normal"\n'
        b'ADDENUM input.sensitivity "high"\nADDENUM input.sensitivity "normal"\n'
        b'SETAUX input.sensitivity 8\nSETFLAGS input.sensitivity RW STRING IMMUTABLE\n'
        b'ADDENUM missing.var "x"\nSETAUX missing.var 3\nSETFLAGS missing.var RW\n'
        b'ADDCMD load.off\nADDCMD LOAD.OFF\nADDCMD beeper.enable\nDATAOK\n'))
    assert not m.dumpdone and not m.fresh and m.data_ok
    assert ch.heard == 19 and ch.ignored == 0 and ch.vars == {"ups.status", "battery.charge",
                                                              "input.sensitivity"}
    bc, sens = m.vars["battery.charge"], m.vars["input.sensitivity"]
    assert (bc.name, bc.value, bc.rw, bc.string, bc.number) == ("Battery.Charge", "90", True, False, True)
    assert bc.ranges == [(10, 90), (5, 50)]  # one sharing a bound with an earlier one is dropped
    assert (sens.enums, sens.aux, sens.rw, sens.string) == (["normal", "high"], 8, True, True)
    assert m.cmds == {"load.off": "load.off", "beeper.enable": "beeper.enable"}
    ch = m.apply(events(b"DUMPDONE\n"))
    assert ch.dumpdone and m.fresh

    # changes: a case-only change is none (strcasecmp); SETFLAGS replaces; deletions
    ch = m.apply(events(
        b'SETINFO ups.status "ol"\nSETINFO battery.charge "80"\nSETFLAGS input.sensitivity RW\n'
        b'DELENUM input.sensitivity "high"\nDELRANGE battery.charge 5 50\nDELINFO ups.status\n'
        b'DELCMD Beeper.Enable\nDELCMD nothing\nDATASTALE\nTRACKING abc-1 3\nPONG\n'))
    assert ch.vars == {"ups.status", "battery.charge", "input.sensitivity"} and ch.cmds == {"beeper.enable"}
    assert "ups.status" not in m.vars and m.vars["battery.charge"].value == "80"
    assert (sens.string, sens.enums, bc.ranges) == (False, ["normal"], [(10, 90)])
    assert list(m.cmds) == ["load.off"] and not m.fresh
    assert ch.tracking == [sock.Tracking("abc-1", 3)] and ch.heard == 11
    ch = m.apply(events(b'SETINFO ups.status "x"\n'))
    assert m.vars["ups.status"].value == "x" and ch.vars == {"ups.status"}


def test_mirror_ignores_what_upsd_ignores() -> None:
    m = Mirror()
    ch = m.apply(events(b'BOGUS 1\nSETINFO onlyname\nPID 12\nOK Goodbye\nADDRANGE x 1\n'
                        b'SETINFO a "#"\nSETINFO v "' + b"x" * 300 + b'"\n'))
    # unknown, too few words, the replies only upsdrvctl asks for: not "heard"; '#' in quotes
    # is a parse error (the rest of that read is dropped)
    assert (ch.heard, ch.ignored, ch.parse_errors) == (0, 5, 1) and not m.vars
    m.apply(events(b'SETINFO v "' + b"x" * 300 + b'"\n'))
    assert m.vars["v"].value == "x" * 255  # what a C upsd keeps
    m.reset()
    assert not m.vars and not m.dumpdone and not m.data_ok


def test_mirror_bounds() -> None:
    m = Mirror(Limits(variables=3, commands=2, enums=2, ranges=1))
    m.apply(events(b'SETINFO a "1"\nSETINFO b "1"\nSETINFO c "1"\nSETINFO C "2"\n'))
    with pytest.raises(Overflow, match="3 variables"):
        m.apply(events(b'SETINFO d "1"\n'))
    with pytest.raises(Overflow, match="2 commands"):
        m.apply(events(b"ADDCMD x\nADDCMD y\nADDCMD z\n"))
    with pytest.raises(Overflow, match="enum"):
        m.apply(events(b'ADDENUM a "1"\nADDENUM a "2"\nADDENUM a "3"\n'))
    with pytest.raises(Overflow, match="ranges"):
        m.apply(events(b"ADDRANGE a 1 2\nADDRANGE a 3 4\n"))


def test_budget() -> None:
    b = Budget(rate=100, burst=1000, now=0.0)
    assert b.take(900, 0.0) and b.take(100, 0.0) and not b.take(1, 0.0)
    assert not b.take(50, 0.4)  # 40 back, 51 owed
    assert b.take(50, 2.0)  # refilled (to at most the burst)
    b = Budget(rate=100, burst=1000, now=0.0)
    assert all(b.take(100, t) for t in range(100))  # the sustained rate is fine for ever


# ---- ups.conf and the registry --------------------------------------------------------------


def conf_file(tmp_path: Path, text: str, upsd: str | None = None) -> Path:
    (tmp_path / "ups.conf").write_text(text)
    if upsd is not None:
        (tmp_path / "upsd.conf").write_text(upsd)
    return tmp_path / "ups.conf"


SECTIONS = """\
[a]
  driver = dummy-ups
  port = a.dev
  nolock
[b]
  driver = usbhid-ups
  port = auto
[c]
  driver = dummy-ups
  port = c.dev
[d]
  driver = dummy-ups
  port = d.dev
"""


def test_mode_globals(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = "nutbridge_hosted = a\nnutbridge_attach = B\nnutbridge_attach = c\n" \
           "driverpath = /opt/nut/bin\npollinterval = 3\n" + SECTIONS
    with caplog.at_level(logging.WARNING):
        conf = parse_ups_conf(conf_file(tmp_path, text))
    assert not caplog.records  # known globals: no "unknown global setting"
    a, b, c, d = (conf.driver_config(s) for s in conf.sections)
    assert a == {"pollinterval": "3", "driver": "dummy-ups", "port": "a.dev", "nolock": "enabled",
                 "_confdir": str(tmp_path), "_mode": "hosted", "_driverpath": "/opt/nut/bin",
                 "_flags": "nolock"}
    assert (b["_mode"], c["_mode"]) == ("attach", "attach")
    # a native section is configured as before: nothing of ours but _confdir
    assert d == {"pollinterval": "3", "driver": "dummy-ups", "port": "d.dev", "_confdir": str(tmp_path)}
    assert conf.driver_config(conf.sections[3], mode="attach")["_mode"] == "attach"  # nutbridge upsd
    # a driver the bridge does not have runs hosted without being named
    realnut.require_daemon("bcmxcp")
    conf = parse_ups_conf(conf_file(tmp_path, "[x]\n driver = bcmxcp\n port = /dev/ttyS0\n"))
    cfg = conf.driver_config(conf.sections[0])
    assert "_mode" not in cfg and driver_class("bcmxcp", cfg) is ext.HostedDriver
    assert not is_native("bcmxcp") and is_native("usbhid-ups")


def test_star_upsd_conf_and_composition_root(tmp_path: Path) -> None:
    text = "nutbridge_attach = *\nnutbridge_hosted = a\n" + SECTIONS
    conf = parse_ups_conf(conf_file(tmp_path, text, "LISTEN 127.0.0.1 3493\nMAXAGE 4\nSTATEPATH /srv/nut\n"))
    modes = [conf.driver_config(s).get("_mode") for s in conf.sections]
    assert modes == ["hosted", "attach", "attach", "attach"]  # a name beats the other list's *
    cfg = conf.driver_config(conf.sections[1])
    assert (cfg["_maxage"], cfg["_statepath"]) == ("4", "/srv/nut")  # read from upsd.conf
    conf = parse_ups_conf(conf_file(tmp_path, text))
    conf.maxage, conf.statepath = 9, "/x"  # what serve.py may set from its UpsdConf
    cfg = conf.driver_config(conf.sections[1])
    assert (cfg["_maxage"], cfg["_statepath"]) == ("9", "/x")
    conf = parse_ups_conf(conf_file(tmp_path, text, "MAXAGE\n"))  # broken: the defaults
    assert "_maxage" not in conf.driver_config(conf.sections[1])


@pytest.mark.parametrize(("text", "error"), [
    ("nutbridge_attach = a nope\n" + SECTIONS, "ups.conf:1: nutbridge_attach: there is no UPS [nope]"),
    ("nutbridge_hosted = a\nnutbridge_attach = c A\n" + SECTIONS,
     "ups.conf:2: nutbridge_attach: UPS [A] is also in nutbridge_hosted"),
    ("nutbridge_hosted = *\nnutbridge_attach = *\n" + SECTIONS, "ups.conf:2: nutbridge_attach = * and"),
    ("nutbridge_attach\n" + SECTIONS, "ups.conf:1: nutbridge_attach expects UPS names"),
    (SECTIONS + "  nutbridge_hosted = d\n", "ups.conf:14: nutbridge_hosted is a global setting"),
])
def test_mode_global_errors(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_ups_conf(conf_file(tmp_path, text))
    assert str(exc.value).startswith(f"{tmp_path}/{error}"), str(exc.value)


def test_registry(tmp_path: Path) -> None:
    realnut.require_daemon("dummy-ups")
    assert driver_class("dummy-ups", {"_mode": "attach"}) is ext.AttachedDriver
    assert driver_class("dummy-ups", {"_mode": "hosted"}) is ext.HostedDriver
    assert driver_class("dummy-ups", {"_mode": "native", "port": "x"}).__name__ == "DummyUPS"
    assert driver_class("dummy-ups", {"port": "x"}).__name__ == "DummyUPS"
    with pytest.raises(DriverConfigError, match="unknown driver mode 'bogus'"):
        driver_class("dummy-ups", {"_mode": "bogus"})
    with pytest.raises(DriverConfigError, match=r"unknown driver 'nosuch'.*/lib/nut.*/usr/libexec/nut"):
        driver_class("nosuch", {})
    with pytest.raises(DriverConfigError, match="no NUT driver 'dummy-ups' in /nowhere"):
        driver_class("dummy-ups", {"_mode": "hosted", "_driverpath": "/nowhere"})
    # validation names the driver line of the section
    conf = parse_ups_conf(conf_file(tmp_path, "[x]\n port = p\n driver = nosuchdrv\n"))
    with pytest.raises(ConfigError, match=r"ups.conf:3: unknown driver 'nosuchdrv'"):
        validate_drivers(conf)
    # socket names must fit: refused when the driver is made, not when it runs
    with pytest.raises(DriverConfigError, match="longer than the 107 bytes"):
        create_driver(Device("u" * 120), {"driver": "dummy-ups", "_mode": "attach"})
    with pytest.raises(DriverConfigError, match="longer than the 107 bytes"):
        create_driver(Device("u" * 120), {"driver": "dummy-ups", "_mode": "hosted"})


# ---- AttachedDriver against a fake driver (in-process) ----------------------------------------

VARS = [
    sock.VarDump("ups.status", "OL", ("RW", "STRING"), 32),
    sock.VarDump("battery.charge", "100", ("RW", "NUMBER"), ranges=[(0, 100)]),
    sock.VarDump("input.sensitivity", "normal", ("RW", "STRING"), 10, enums=["normal", "high", "low"]),
    sock.VarDump("ups.mfr", "Fake \"quoted\" #1"),
]
CMDS = ["load.off", "test.battery.start"]


def attached(directory: Path, name: str = "ups1", **extra: str) -> ext.AttachedDriver:
    config = {"driver": "fake", "port": "none", "_mode": "attach", "_statepath": str(directory),
              "_maxage": "3", **extra}
    drv = create_driver(Device(name, None, "fake"), config)
    assert isinstance(drv, ext.AttachedDriver)
    return drv


@contextlib.asynccontextmanager
async def running(drv: ext.AttachedDriver) -> AsyncIterator[ext.AttachedDriver]:
    task = asyncio.create_task(drv.run())
    try:
        yield drv
    finally:
        drv.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await drv.close()


def types(dev: Device) -> dict[str, str]:
    return {v.name: " ".join(v.type_words()) for v in dev.variables()}


async def test_attached_mirrors_dump_and_changes(short_dir: Path) -> None:
    fake = await FakeDriver(short_dir / "fake-ups1", VARS, CMDS).start()
    async with running(attached(short_dir)) as drv:
        dev = drv.device
        await until("first dump", lambda: dev.driver_state is DriverState.OK)
        assert {v.name: v.value for v in dev.variables()} == {
            "battery.charge": "100", "input.sensitivity": "normal", "ups.mfr": 'Fake "quoted" #1',
            "ups.status": "OL"}
        assert types(dev) == {"battery.charge": "RW RANGE NUMBER", "input.sensitivity": "RW ENUM STRING:10",
                              "ups.mfr": "NUMBER", "ups.status": "RW STRING:32"}
        assert dev.get("input.sensitivity").enums == ["normal", "high", "low"]  # type: ignore[union-attr]
        assert dev.get("battery.charge").ranges == [(0, 100)]  # type: ignore[union-attr]
        assert dev.commands() == CMDS
        assert dev.get("driver.parameter._mode") is None and dev.get("driver.name") is None  # all theirs

        seen: list[frozenset[str]] = []
        dev.subscribe(lambda _d, names: seen.append(names))
        fake.broadcast(sock.setinfo("ups.status", "OB LB") + sock.addcmd("beeper.enable")
                       + sock.delinfo("ups.mfr") + sock.delenum("input.sensitivity", "low")
                       + sock.setflags("ups.status", ["RW"]) + sock.delrange("battery.charge", 0, 100)
                       + sock.addrange("battery.charge", 10, 90) + sock.delcmd("load.off"))
        await until("changes", lambda: dev.get("ups.mfr") is None and dev.has_cmd("beeper.enable")
                    and not dev.has_cmd("load.off"))
        assert dev.value("ups.status") == "OB LB" and types(dev)["ups.status"] == "RW NUMBER"
        assert dev.get("input.sensitivity").enums == ["normal", "high"]  # type: ignore[union-attr]
        assert dev.get("battery.charge").ranges == [(10, 90)]  # type: ignore[union-attr]
        assert len(seen) == 1  # one read, one announcement
        fake.broadcast(sock.setinfo("ups.status", "ob lb") + sock.setinfo("battery.charge", "55"))
        await until("charge", lambda: dev.value("battery.charge") == "55")
        assert dev.value("ups.status") == "OB LB"  # a change of case only is none, as in upsd

        fake.broadcast(sock.DATASTALE)
        await until("DATASTALE", lambda: dev.availability(3) == "DATA-STALE")
        fake.broadcast(sock.DATAOK)
        await until("DATAOK", lambda: dev.availability(3) is None)
        assert fake.connections == 1
    await fake.stop()


async def test_attached_waits_for_dumpdone(short_dir: Path) -> None:
    release = asyncio.Event()

    async def slow_dump(fake: FakeDriver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = sock.ServerReader()
        await fake.requests(reader, parser)  # DUMPALL
        dump = fake.dump()
        fake.write(writer, dump[: -len(sock.DUMPDONE)])
        await release.wait()
        fake.write(writer, sock.DUMPDONE)
        while True:
            for ev in await fake.requests(reader, parser):
                fake.react(writer, ev)

    fake = await FakeDriver(short_dir / "fake-ups1", VARS, CMDS, behaviour=slow_dump).start()
    async with running(attached(short_dir)) as drv:
        dev = drv.device
        await until("connected", lambda: dev.driver_state is DriverState.WAIT)
        await asyncio.sleep(0.5)
        assert dev.driver_state is DriverState.WAIT and dev.status == "WAIT" and not dev.variables()
        release.set()
        await until("dump done", lambda: dev.driver_state is DriverState.OK)
        assert dev.value("ups.status") == "OL" and len(dev.variables()) == 4
    await fake.stop()


async def test_attached_keepalive_and_silence(short_dir: Path) -> None:
    fake = await FakeDriver(short_dir / "fake-ups1", VARS, CMDS).start()
    async with running(attached(short_dir)) as drv:  # MAXAGE 3: PING after 1 s of silence
        dev = drv.device
        await until("dump", lambda: dev.driver_state is DriverState.OK)
        await asyncio.sleep(6)  # twice MAXAGE + 1 of a quiet driver that answers PING
        assert dev.driver_state is DriverState.OK and dev.availability(3) is None
        pings = sum(isinstance(e, sock.Ping) for e in fake.received)
        assert 3 <= pings <= 7, fake.received
        fake.answer_ping = False  # silent now (a SIGSTOPped driver)
        t = await until("stale after MAXAGE + 1", lambda: dev.driver_state is DriverState.STALE)
        assert 2 <= t <= 6, t  # from the last PONG: MAXAGE + 1 s (+ the 1 s tick)
        fake.answer_ping = True
        await until("fresh again", lambda: dev.driver_state is DriverState.OK)
        assert fake.connections == 1  # silence is not a reason to hang up (2.8.0 would busy-loop)
    await fake.stop()


async def test_attached_driver_gone_and_back(short_dir: Path) -> None:
    drv = attached(short_dir)
    async with running(drv):
        dev = drv.device
        await asyncio.sleep(0.3)
        assert dev.availability(3) == "DRIVER-NOT-CONNECTED" and "no socket" in (drv.last_error or "")
        # a socket file nobody listens on (a 2.8.0 driver killed while in -F) is a driver gone
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(short_dir / "fake-ups1"))
        await until("refused", lambda: "refuses connections" in (drv.last_error or ""), 5)
        fake = await FakeDriver(short_dir / "fake-ups1", VARS, CMDS).start()
        t = await until("connected within upsd's retry interval", lambda: dev.availability(3) is None)
        assert t < 3.5
        await fake.stop()  # EOF
        # as upsd's sstate_disconnect: the driver's data goes with it
        await until("not connected after a loss", lambda: dev.availability(3) == "DRIVER-NOT-CONNECTED")
        assert dev.variables() == [] and dev.commands() == []
        fake = await FakeDriver(short_dir / "fake-ups1", [*VARS[:1]], ["load.on"]).start()
        await until("back", lambda: dev.availability(3) is None)
        # the new dump replaced the old one
        assert [v.name for v in dev.variables()] == ["ups.status"] and dev.commands() == ["load.on"]
        await fake.stop()


async def test_attached_tracking(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    codes = {"load.off": 0, "test.battery.start": 3, "ups.status": 0, "input.sensitivity": 2}

    def answer(ev: sock.InstCmd | sock.SetVar) -> int | None:
        return codes.get(ev.cmd if isinstance(ev, sock.InstCmd) else ev.var)  # None: no answer

    fake = await FakeDriver(short_dir / "fake-ups1", VARS, CMDS, answer=answer).start()
    drv = attached(short_dir)
    assert await drv.instcmd("load.off", None) == Status.FAILED  # not connected
    async with running(drv):
        await until("dump", lambda: drv.device.driver_state is DriverState.OK)
        assert await drv.instcmd("load.off", None) == Status.HANDLED
        assert await drv.instcmd("test.battery.start", "10 s") == Status.FAILED
        assert await drv.setvar("ups.status", 'OB "x"') == Status.HANDLED
        assert await drv.setvar("input.sensitivity", "bogus") == Status.INVALID
        await until("SET applied by the driver", lambda: drv.device.value("ups.status") == 'OB "x"')
        sent = [e for e in fake.received if isinstance(e, sock.InstCmd | sock.SetVar)]
        assert [(type(e).__name__, getattr(e, "cmd", getattr(e, "var", "")), getattr(e, "param", None))
                for e in sent] == [("InstCmd", "load.off", None), ("InstCmd", "test.battery.start", "10 s"),
                                   ("SetVar", "ups.status", None), ("SetVar", "input.sensitivity", None)]
        assert all(e.tracking and len(e.tracking) == 36 for e in sent)
        # a driver without a handler never answers (2.8.0): bounded, then UNKNOWN
        monkeypatch.setattr(ext, "COMMAND_TIMEOUT", 0.3)
        t0 = time.monotonic()
        assert await drv.setvar("battery.charge", "5") == Status.UNKNOWN
        assert time.monotonic() - t0 < 1
        assert await drv.instcmd("load.off", None) == Status.HANDLED  # still talking
    await fake.stop()


# ---- HostedDriver with the C dummy-ups (in-process) --------------------------------------------

DEV = "ups.status: OL\nbattery.charge: 80\nups.model: Hosted\n"


def hosted(etc: Path, name: str = "h1", dev_text: str = DEV, **extra: str) -> ext.HostedDriver:
    realnut.require_daemon("dummy-ups")
    etc.mkdir(exist_ok=True)
    (etc / "h.dev").write_text(dev_text)
    config = {"driver": "dummy-ups", "port": "h.dev", "_confdir": str(etc), "_mode": "hosted",
              "_maxage": "3", **extra}
    drv = create_driver(Device(name, None, "dummy-ups"), config)
    assert isinstance(drv, ext.HostedDriver)
    return drv


def child_pid(drv: ext.HostedDriver) -> int:
    proc = drv._proc
    assert proc is not None and proc.returncode is None
    return proc.pid






async def test_hosted_driver_is_supervised(tmp_path: Path) -> None:
    drv = hosted(tmp_path / "etc")
    dev = drv.device
    async with running(drv):
        await until("first dump", lambda: dev.driver_state is DriverState.OK, 20)
        assert dev.value("ups.model") == "Hosted" and dev.value("driver.parameter.port") == "h.dev"
        assert dev.value("driver.name") == "dummy-ups" and dev.get("driver.parameter._mode") is None
        pid, private = child_pid(drv), drv._dir
        assert private is not None and (private / "etc" / "h.dev").is_symlink()  # relative port works
        assert Path(drv.socket_path).parent == private
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:6] == [b"-a", b"h1", b"-F", b"-u", os.fsencode(ext._current_user())]

        os.kill(pid, signal.SIGKILL)  # a crash
        t0 = time.monotonic()
        await until("stale", lambda: dev.driver_state is DriverState.STALE, 5)
        await until("restarted", lambda: dev.driver_state is DriverState.OK, 20)
        print(f"\nhosted dummy-ups SIGKILL -> fresh again: {time.monotonic() - t0:.2f} s")
        assert gone(pid) and child_pid(drv) != pid and not private.exists()

        pid = child_pid(drv)
        os.kill(pid, signal.SIGSTOP)  # hung: answers no PING
        t0 = time.monotonic()
        await until("stale", lambda: dev.driver_state is DriverState.STALE, 10)
        t_stale = time.monotonic() - t0
        await until("restarted", lambda: dev.driver_state is DriverState.OK, 30)
        print(f"hosted dummy-ups SIGSTOP -> stale {t_stale:.1f} s, fresh again {time.monotonic() - t0:.1f} s")
        assert 3 <= t_stale <= 6  # MAXAGE 3 + 1 s grace (+ the loop's 1 s tick)
        assert gone(pid)
        last, private = child_pid(drv), drv._dir
    assert gone(last) and private is not None and not private.exists()  # clean stop
    assert drv._proc is None


async def test_hosted_startup_failure_and_missing_binary(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "fakeups"
    runs = tmp_path / "runs"
    script.write_text(f"#!/bin/sh\necho run >> {runs}\necho 'No matching HID UPS found' >&2\nexit 1\n")
    script.chmod(0o755)
    drv = create_driver(Device("f1", None, "fakeups"), {
        "driver": "fakeups", "port": "auto", "_driverpath": str(bindir), "_confdir": str(tmp_path)})
    assert isinstance(drv, ext.HostedDriver)  # no native fakeups: hosted
    drv.retry_max = 0.5
    with caplog.at_level(logging.INFO, logger="nutbridge"):
        async with running(drv):
            await until("retried", lambda: runs.exists() and len(runs.read_text().split()) >= 3)
            assert drv.device.availability(15) == "DRIVER-NOT-CONNECTED"
            assert drv.last_error == ("fakeups exited with status 1 before it was ready: "
                                      "No matching HID UPS found")
            script.unlink()
            await until("missing", lambda: "cannot run" in (drv.last_error or ""))
            assert drv.device.availability(15) == "DRIVER-NOT-CONNECTED"
    text = caplog.text
    assert ("UPS [f1]: fakeups exited with status 1 before it was ready: No matching HID UPS found "
            "(retrying)") in text
    assert "UPS [f1]: fakeups: No matching HID UPS found" in text  # its own words, logged
    assert text.count("No matching HID UPS found") < 10  # rate-limited
    assert drv._dir is None and drv._proc is None


async def test_hosted_private_ups_conf_reaches_the_c_driver(tmp_path: Path) -> None:
    """A bare flag is written bare and accepted (the driver gets as far as its port); an
    option it does not know is refused in its own words."""
    realnut.require_daemon("blazer_ser")
    for flag, end in (("norating", "1 before it was ready: Fatal error: unusable configuration"),
                      ("bogusflag", "0 before it was ready: valid variable names and flags.")):
        drv = create_driver(Device("q"), {"driver": "blazer_ser", "port": "/dev/ttyS99", flag: "enabled",
                                          "_flags": flag, "_mode": "hosted", "_confdir": str(tmp_path)})
        assert isinstance(drv, ext.HostedDriver)
        async with running(drv):
            await until("failed", lambda: "exited with status" in (drv.last_error or ""))  # noqa: B023
        assert drv.last_error == f"blazer_ser exited with status {end}"


async def test_hosted_killpower(tmp_path: Path) -> None:
    drv = hosted(tmp_path / "etc")
    async with running(drv):
        await until("first dump", lambda: drv.device.driver_state is DriverState.OK, 20)
        pid = child_pid(drv)
        if NUT >= (2, 8, 3):
            # the running instance is stopped first: -k finds none to ask, does it itself
            result = await drv.killpower()
            assert result.startswith("dummy-ups -a h1 -k: ") and "shutdown" in result
        else:
            with pytest.raises(KillpowerError, match=r"dummy-ups -a h1 -k exited with status 1: "
                                                     r"shutdown not supported"):
                await drv.killpower()
        assert gone(pid)
        await until("started again", lambda: drv.device.driver_state is DriverState.OK and drv._proc
                    is not None and drv._proc.pid != pid, 40)


# ---- nutbridge serve -----------------------------------------------------------------------------














def private_dir(pid: int) -> Path:
    """The private state directory a hosted driver runs in (its NUT_STATEPATH)."""
    env = dict(x.split("=", 1) for x in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
               if "=" in x)
    return Path(env["NUT_STATEPATH"])




@dataclass
class Pair:
    c: HostedConfig  # the C upsd with the C drivers (started the way realnut.c_upsd does)
    b: HostedConfig  # nutbridge serve hosting the same C drivers
    bridge: realnut.BridgeProcess
    names: list[str]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    for tool in ("upsc", "upsrw", "upscmd"):
        realnut.require_client(tool)
    realnut.require_daemon("upsd")
    realnut.require_daemon("dummy-ups")
    files = realnut.ddl_files()
    realnut.require(f"NUT DDL corpus at {realnut.DDL_DIR}", files)
    picks = files[:: max(1, len(files) // 5)][:5]
    root = tmp_path_factory.mktemp("hosted")
    (root / "dm.dev").write_text(DEV)
    # the same file for both; the C drivers ignore the bridge's global (checked here, live)
    c = HostedConfig(root / "c", globals_text="nutbridge_hosted = *\n")
    b = HostedConfig(root / "b", globals_text="nutbridge_hosted = *\n", upsd_extra="MAXAGE 6\n")
    names = [f"d{i}" for i in range(len(picks))] + ["rel", "dm"]
    for cfg in (c, b):
        cfg.etc.mkdir(parents=True)
        (cfg.etc / "rel.dev").write_text(DEV.replace("Hosted", "Relative"))
        for name, f in zip(names, picks, strict=False):
            cfg.add_ups(name, driver="dummy-ups", port=str(f), desc=f.stem[:40])
        cfg.add_ups("rel", driver="dummy-ups", port="rel.dev")  # resolved in the conf dir
        cfg.add_ups("dm", driver="dummy-ups", port=str(root / "dm.dev"), pollinterval="1")
    with realnut.c_upsd(c, wait_ready=False), realnut.BridgeProcess.start(b) as br:
        realnut.wait_ready_many(c.port, names)
        realnut.wait_ready_many(b.port, names)
        yield Pair(c, b, br, names)
        children = driver_children(br.proc.pid)
        private = [private_dir(pid) for pid in children]
        assert len(children) == len(names) and all(d.is_dir() for d in private)
    # a clean stop: every driver stopped and reaped, its socket and private files removed
    assert all(gone(pid) for pid in children), children
    assert not any(d.exists() for d in private), private


@pytest.mark.interop
def test_serve_hosting_answers_like_the_c_upsd(pair: Pair) -> None:
    for name in pair.names:
        want = views(pair.c.port, name)
        assert "driver.name: dummy-ups\n" in want and "Instant commands supported" in want, want
        assert views(pair.b.port, name) == want, name
    assert "ups.model: Relative\n" in views(pair.b.port, "rel")
    assert "_mode" not in views(pair.b.port, "dm")


@pytest.mark.interop
def test_serve_hosting_tracking_like_the_c_upsd(pair: Pair) -> None:
    script = ['SET VAR dm ups.status "OB LB"', 'SET VAR dm battery.charge "42"',
              "INSTCMD dm load.off", 'SET VAR dm ups.model "new model"']
    results = {}
    for side, cfg in (("c", pair.c), ("bridge", pair.b)):
        s = Session(cfg.port)
        try:
            assert [s.ask(x) for x in ("USERNAME admin", "PASSWORD s3cr3t", "SET TRACKING ON")] == ["OK"] * 3
            ids = []
            for line in script:
                answer = s.ask(line)
                assert answer.startswith("OK TRACKING "), (side, line, answer)
                ids.append(answer.split()[2])
            got = []
            for tid in ids:
                deadline = time.monotonic() + 15
                while (r := s.ask(f"GET TRACKING {tid}")) == "PENDING" and time.monotonic() < deadline:
                    time.sleep(0.1)
                got.append(r)
            results[side] = got
            deadline = time.monotonic() + 10
            while s.ask("GET VAR dm ups.status") != 'VAR dm ups.status "OB LB"':
                assert time.monotonic() < deadline, side
                time.sleep(0.1)
            assert s.ask("GET VAR dm battery.charge") == 'VAR dm battery.charge "42"'
        finally:
            s.close()
    assert results["bridge"] == results["c"], results
    assert results["c"][0] == "SUCCESS"


@pytest.mark.interop
def test_serve_restarts_a_killed_driver(pair: Pair) -> None:
    bridge = pair.bridge.proc
    pid = hosted_pid(bridge.pid, "dm")
    s = Session(pair.b.port)
    try:
        assert s.ask("GET VAR dm ups.model").startswith("VAR dm ups.model ")
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        t_stale = t_fresh = None
        while time.monotonic() - t0 < 30:
            answer = s.ask("GET VAR dm ups.model")
            if answer == "ERR DATA-STALE" and t_stale is None:
                t_stale = time.monotonic() - t0
            elif answer.startswith("VAR ") and t_stale is not None:
                t_fresh = time.monotonic() - t0
                break
            time.sleep(0.02)
    finally:
        s.close()
    print(f"\nserve: hosted dummy-ups SIGKILLed -> DATA-STALE after {t_stale} s, "
          f"fresh data after {t_fresh} s (bridge not restarted)")
    assert t_stale is not None and t_stale < 1 and t_fresh is not None and t_fresh < 15
    assert bridge.poll() is None and gone(pid) and hosted_pid(bridge.pid, "dm") != pid
    assert "UPS [dm]: the driver closed its socket (retrying)" in pair.bridge.log()


@pytest.mark.interop
def test_serve_failing_drivers(tmp_path: Path) -> None:
    usbhid = realnut.require_daemon("usbhid-ups")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "usbhid-ups").symlink_to(usbhid)  # the real one: no USB bus here, it exits 1
    runs = tmp_path / "runs"
    script = bindir / "fakeups"
    script.write_text(f"#!/bin/sh\necho run >> {runs}\n"
                      "echo 'fakeups: cannot open /dev/nothing' >&2\nexit 1\n")
    script.chmod(0o755)
    cfg = HostedConfig(tmp_path / "nut", globals_text=f"driverpath = {bindir}\nnutbridge_hosted = usb\n")
    cfg.etc.mkdir(parents=True)
    (cfg.etc / "x.dev").write_text(DEV)
    cfg.add_ups("usb", driver="usbhid-ups", port="auto")
    cfg.add_ups("script", driver="fakeups", port="/dev/nothing")
    cfg.add_ups("good", driver="dummy-ups", port="x.dev")  # native: driverpath is not for it
    with realnut.BridgeProcess.start(cfg) as br:
        realnut.wait_ready_ups(cfg.port, ["good"])
        deadline = time.monotonic() + 10
        while not (runs.exists() and len(runs.read_text().split()) >= 2):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for ups in ("usb", "script"):
            assert realnut.query(cfg.port, f"GET VAR {ups} ups.status") == b"ERR DRIVER-NOT-CONNECTED\n"
        assert "Error: Driver not connected" in client("upsc", f"usb@127.0.0.1:{cfg.port}")
        log = br.log()
        assert "UPS [usb]: usbhid-ups exited with status 1 before it was ready: No matching HID UPS " \
               "found (retrying)" in log, log
        assert "UPS [script]: fakeups exited with status 1 before it was ready: fakeups: cannot open " \
               "/dev/nothing (retrying)" in log, log
        assert "UPS [usb]: usbhid-ups: libusb1: Could not open any HID devices" in log  # its words
    # a driver NUT does not have either: refused at start, naming where it looked (exit 2)
    cfg.add_ups("nope", driver="nosuchdrv", port="x")
    cfg.write()
    env = cfg.env()
    env["PYTHONPATH"] = str(realnut.REPO / "bridge")
    p = subprocess.run([sys.executable, "-m", "nutbridge", "serve", "--config-dir", str(cfg.etc)],
                       env=env, capture_output=True, timeout=30)
    assert p.returncode == 2, p
    assert re.search(rb"ups\.conf:\d+: unknown driver 'nosuchdrv': the bridge has no such driver of "
                     rb"its own \(known: .*\), and no NUT driver 'nosuchdrv' in " + re.escape(
                         str(bindir).encode()), p.stderr), p.stderr


@pytest.mark.interop
def test_serve_attaches_to_drivers_started_elsewhere(tmp_path: Path) -> None:
    """Drivers started by hand (``dummy-ups -a hand -F``, as NIT starts them) and by upsdrvctl;
    the bridge attaches (STATEPATH from its upsd.conf) next to a C upsd on the same sockets."""
    dummy = realnut.require_daemon("dummy-ups")
    upsdrvctl = realnut.require_daemon("upsdrvctl")
    realnut.require_daemon("upsd")
    c = NutConfig(tmp_path / "c")
    b = HostedConfig(tmp_path / "b", globals_text="nutbridge_attach = *\n",
                     upsd_extra=f"STATEPATH {c.run}\n")
    for cfg in (c, b):
        cfg.add_ups("hand", driver="dummy-ups", port=str(tmp_path / "hand.dev"))
        cfg.add_ups("ctl", driver="dummy-ups", port=str(tmp_path / "ctl.dev"), desc="via upsdrvctl")
    (tmp_path / "hand.dev").write_text(DEV.replace("Hosted", "By hand"))
    (tmp_path / "ctl.dev").write_text(DEV.replace("Hosted", "By upsdrvctl"))
    c.write()
    env = c.env()
    procs: list[subprocess.Popen[bytes]] = []

    def start_by_hand() -> subprocess.Popen[bytes]:
        p = subprocess.Popen([dummy, "-a", "hand", "-F", "-u", "root"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        return p

    try:
        with realnut.BridgeProcess.start(b) as br:
            # nothing started yet: not connected, as a C upsd says
            assert realnut.query(b.port, "GET VAR hand ups.status") == b"ERR DRIVER-NOT-CONNECTED\n"
            hand = start_by_hand()
            ctl = subprocess.run([upsdrvctl, "-u", "root", "start", "ctl"], env=env, capture_output=True,
                                 timeout=60)
            assert ctl.returncode == 0, ctl
            t0 = time.monotonic()
            realnut.wait_ready_ups(b.port, ["hand", "ctl"])
            assert time.monotonic() - t0 < 8  # retried every 2 s at most
            with realnut.c_upsd(c, drivers=False):
                for ups in ("hand", "ctl"):
                    want = views(c.port, ups)
                    assert "ups.model: By " in want
                    assert views(b.port, ups) == want, ups
            # the driver goes away (2.8.0 -F: no handler, the socket file stays): not connected,
            # as the C upsd says, and fresh again when it is back, without restarting anything
            hand.terminate()
            hand.wait(10)
            deadline = time.monotonic() + 10
            while realnut.query(b.port, "GET VAR hand ups.status") != b"ERR DRIVER-NOT-CONNECTED\n":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert realnut.query(b.port, "GET VAR ctl ups.status") == b'VAR ctl ups.status "OL"\n'
            start_by_hand()
            realnut.wait_ready_ups(b.port, ["hand"])
            assert "UPS [hand]" in br.log()
    finally:
        subprocess.run([upsdrvctl, "-u", "root", "stop", "ctl"], env=env, capture_output=True, timeout=60)
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)


async def _ask(port: int, line: str, timeout: float = 5.0) -> tuple[str, float]:
    """One request on a fresh connection, without blocking this loop: (answer, seconds)."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(line.encode() + b"\n")
        answer = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    return answer.decode().rstrip("\n"), time.perf_counter() - t0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.interop
async def test_hostile_drivers_only_hurt_their_own_ups(tmp_path: Path, short_dir: Path) -> None:
    """Fake drivers in this test's loop: one floods after its dump, one stalls in the middle of
    its dump, one sends garbage, one 10 MB of SETINFO; a polite one and a native dummy-ups share
    the bridge. The hostile UPSes go stale, the others keep answering fast, memory stays bounded."""
    hostile = {"flood": "flood", "stall": "stall", "garbage": "garbage", "big": "big-setinfo"}
    cfg = HostedConfig(tmp_path / "nut", globals_text=f"nutbridge_attach = {' '.join(hostile)} polite\n",
                       upsd_extra=f"MAXAGE 3\nSTATEPATH {short_dir}\n")
    cfg.etc.mkdir(parents=True)
    (cfg.etc / "x.dev").write_text(DEV)
    for name in [*hostile, "polite"]:
        cfg.add_ups(name, driver="fake", port="none")
    cfg.add_ups("good", driver="dummy-ups", port="x.dev")
    polite = await FakeDriver(short_dir / "fake-polite", VARS, CMDS).start()
    fakes = [await FakeDriver(short_dir / f"fake-{n}", VARS, CMDS, behaviour=b).start()
             for n, b in hostile.items()]
    br = await asyncio.to_thread(realnut.BridgeProcess.start, cfg)
    try:
        await until("polite and good ready", lambda: True)
        for ups in ("polite", "good"):
            t0 = time.monotonic()
            while (await _ask(cfg.port, f"GET VAR {ups} ups.status"))[0] != f'VAR {ups} ups.status "OL"':
                assert time.monotonic() - t0 < 10, ups
                await asyncio.sleep(0.1)
        rss0 = rss_kib(br.proc.pid)
        latencies: list[float] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 12:  # the hostile ones are at it all this time
            for ups in ("good", "polite"):
                answer, dt = await _ask(cfg.port, f"GET VAR {ups} ups.status")
                assert answer == f'VAR {ups} ups.status "OL"', answer
                latencies.append(dt)
            await asyncio.sleep(0.05)
        answers = {n: (await _ask(cfg.port, f"GET VAR {n} ups.status"))[0] for n in hostile}
        rss1 = rss_kib(br.proc.pid)
        latencies.sort()
        sent = {f.path.rsplit("-", 1)[1]: f.sent for f in fakes}
        print(f"\nhostile drivers: sent {sent} bytes; healthy UPS answers median "
              f"{latencies[len(latencies) // 2] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms "
              f"({len(latencies)} requests); bridge RSS {rss0} -> {rss1} KiB")
        assert answers == {n: "ERR DATA-STALE" for n in hostile}, answers
        assert latencies[len(latencies) // 2] < 0.05 and latencies[-1] < 1.0
        assert rss1 - rss0 < 64 * 1024
        assert sent["flood"] > 1 << 20 and sent["big"] > 1 << 20 and sent["garbage"] > 1 << 20
        log = br.log()
        assert "UPS [flood]: the driver floods its socket" in log
        assert "UPS [stall]: no word from the driver" in log
    finally:
        await asyncio.to_thread(br.stop)
        for f in [polite, *fakes]:
            await f.stop()
    assert br.proc.returncode == 0, br.log()[-3000:]


@pytest.mark.interop
def test_no_driver_outlives_the_bridge(tmp_path: Path) -> None:
    """A SIGKILLed bridge takes its drivers along (PR_SET_PDEATHSIG), so a new one can open the
    device; the private directory it could not remove goes when the next bridge starts one."""
    realnut.require_daemon("dummy-ups")
    cfg = HostedConfig(tmp_path / "nut", globals_text="nutbridge_hosted = dm\n")
    cfg.etc.mkdir(parents=True)
    (cfg.etc / "x.dev").write_text(DEV)
    cfg.add_ups("dm", driver="dummy-ups", port="x.dev")
    br = realnut.BridgeProcess.start(cfg)
    try:
        realnut.wait_ready_ups(cfg.port, ["dm"])
        pid = hosted_pid(br.proc.pid, "dm")
        private = private_dir(pid)
        br.proc.kill()
        br.proc.wait()
        deadline = time.monotonic() + 5
        while not dead(pid):
            assert time.monotonic() < deadline, "the hosted driver outlived the bridge"
            time.sleep(0.05)
        assert private.is_dir()
    finally:
        br.stop()
    with realnut.BridgeProcess.start(cfg):
        realnut.wait_ready_ups(cfg.port, ["dm"])
        assert not private.exists()


@pytest.mark.interop
def test_serve_reconnects_to_a_driver_that_hung_up(tmp_path: Path) -> None:
    """A C driver drops a connection whose reader fell behind; the bridge connects again to the
    same process, as upsd does, instead of restarting it (which would loop: the new driver
    hangs up the same way)."""
    realnut.require_daemon("dummy-ups")
    seq = tmp_path / "big.seq"
    lines = [line for s in range(2) for line in [*(f"x.var{i}: {s}{i}" for i in range(600)), "TIMER 0.2"]]
    seq.write_text("ups.status: OL\n" + "\n".join(lines) + "\n")
    cfg = HostedConfig(tmp_path / "nut", globals_text="nutbridge_hosted = big\n")
    cfg.add_ups("big", driver="dummy-ups", port=str(seq), pollinterval="1")
    with realnut.BridgeProcess.start(cfg) as br:
        realnut.wait_ready_ups(cfg.port, ["big"], timeout=30)
        pid = hosted_pid(br.proc.pid, "big")
        os.kill(br.proc.pid, signal.SIGSTOP)  # the bridge falls behind
        time.sleep(3)
        os.kill(br.proc.pid, signal.SIGCONT)
        time.sleep(3)
        realnut.wait_ready_ups(cfg.port, ["big"], timeout=15)
        assert hosted_pid(br.proc.pid, "big") == pid, br.log()[-3000:]


def test_leftover_private_directories_swept_only_when_their_owner_is_surely_dead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bridge started after one that was SIGKILLed removes that one's private directories,
    but a pid is only meaningful in the PID namespace it was written in: the directory of a
    bridge in another namespace sharing this /tmp (a container, ``unshare --pid``: CI once lost
    a live bridge's directories to one) is left alone, as is a live owner's."""
    from nutbridge.drivers.external import driver as external

    ns = os.readlink("/proc/self/ns/pid")
    dead = subprocess.Popen(["true"])
    dead.wait()
    owners = {"dead": f"{dead.pid} {ns}", "alive": f"{os.getpid()} {ns}",
              "elsewhere": f"{dead.pid} pid:[1]", "old-format": f"{dead.pid}"}
    for name, owner in owners.items():
        d = tmp_path / f"{external.PRIVATE_PREFIX}{name}"
        d.mkdir()
        (d / external.OWNER_FILE).write_text(owner + "\n")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(external, "_swept", False)
    external._sweep_leftovers()
    left = sorted(p.name.removeprefix(external.PRIVATE_PREFIX) for p in tmp_path.iterdir())
    assert left == ["alive", "elsewhere", "old-format"]
