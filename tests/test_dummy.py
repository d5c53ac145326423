"""dummy-ups: file semantics, our DDL extension, and a differential test
against the real C dummy-ups served by the real C upsd.

test_differential_against_c_dummy_ups loads every DDL dump (and a few hand-made corner
cases) into our driver (``ddlmeta = no``: plain upstream behaviour) and compares its VAR,
TYPE and CMD lines, in order, with the C upsd's LIST VAR / GET TYPE / LIST CMD for the C
driver on the same file. Left out (VAR and TYPE lines), and nothing else:

* ``driver.version``: ours names the bridge (docs/compatibility.md, dummy-ups);
* ``driver.parameter.ddlmeta``: our own option, set on our side only;
* ``driver.state``: NUT 2.8.5's C driver flips it between quiet and updateinfo.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nutbridge.compat import driver_core_2_8_5
from nutbridge.drivers import create_driver, driver_class
from nutbridge.drivers.base import Status
from nutbridge.drivers.dummy.driver import DummyUPS
from nutbridge.drivers.dummy.protocol import known_flags, parse_entries, parse_meta
from nutbridge.protocol.wire import quote
from nutbridge.state import Device, DriverState
from tests.support import realnut

DDL = realnut.DDL_DIR


def make(tmp_path: Path, text: str | bytes, name: str = "u.dev", **opts: str) -> DummyUPS:
    f = tmp_path / name
    f.write_bytes(text.encode() if isinstance(text, str) else text)
    cfg = {"driver": "dummy-ups", "port": name, "_confdir": str(tmp_path), **opts}
    drv = create_driver(Device("u"), cfg)
    assert isinstance(drv, DummyUPS)
    return drv


async def load(drv: DummyUPS) -> Device:
    await drv.connect()
    await drv.update()
    return drv.device


def vals(dev: Device) -> dict[str, str]:
    return {v.name: v.value for v in dev.variables() if not v.name.startswith("driver.")}


def typ(dev: Device, name: str) -> str:
    var = dev.get(name)
    assert var is not None, name
    return " ".join(var.type_words())


# ---- parsing ------------------------------------------------------------------


def test_parse_rules() -> None:
    es = parse_entries(
        b'ups.id: Some "quoted" \\ value # not comment?\n'
        b"foo.bar: a   b\tc\nNoColon v\ndriver.name: x\nDriver.Version: 1\n"
        b"TIMER 2.5\nTIMER x\nALARM on fire\nALARM\nups.status: OB LB\nempty:\n  # only a comment\n"
    )
    got = [(e.kind, e.name, e.value, e.seconds) for e in es]
    assert got == [
        ("var", "ups.id", "Some quoted  value", 0.0),
        ("var", "foo.bar", "a b c", 0.0),
        ("var", "NoColon", "v", 0.0),
        ("timer", "", None, 2.5),
        ("alarm", "", "on fire", 0.0),
        ("alarm", "", "", 0.0),
        ("status", "ups.status", "OB LB", 0.0),
        ("var", "empty", None, 0.0),
    ]


def test_known_flags_table() -> None:
    assert known_flags("battery.charge") == (False, None)
    assert known_flags("Battery.Charge") == (False, None)
    assert known_flags("ups.id") == (True, 16)
    assert known_flags("input.sensitivity") == (True, 1)
    assert known_flags("whatever.else") == (True, 32)


async def test_builtin_data_and_flags(tmp_path: Path) -> None:
    dev = await load(make(tmp_path, "battery.charge: 50\nfoo: x\nups.id: abc\n"))
    assert vals(dev) == {
        "battery.charge": "50", "device.mfr": "Dummy Manufacturer", "device.model": "Dummy UPS",
        "device.type": "ups", "foo": "x", "ups.id": "abc", "ups.mfr": "Dummy Manufacturer",
        "ups.model": "Dummy UPS", "ups.status": "" if driver_core_2_8_5() else "OL",
    }
    assert typ(dev, "battery.charge") == "RW NUMBER"
    assert typ(dev, "foo") == "RW STRING:32"
    assert typ(dev, "ups.id") == "RW STRING:16"
    assert typ(dev, "device.type") == "NUMBER"  # no flags at all
    assert typ(dev, "driver.name") == "NUMBER"
    assert dev.value("driver.name") == "dummy-ups"
    assert dev.value("driver.parameter.mode") == "dummy-once"
    assert dev.value("driver.parameter.pollinterval") == "2"
    assert dev.value("driver.parameter.synchronous") == "auto"
    assert dev.value("driver.parameter.port") == "u.dev"
    assert dev.get("driver.parameter._confdir") is None
    assert dev.commands() == with_core(["load.off"])


async def test_upstream_quirks(tmp_path: Path) -> None:
    text = (
        "ups.model: X\nups.mfr: Y\ndevice.mfr: Z\ndevice.serial: S1\nups.serial: S2\n"
        'a: 1 2\nb:\nups.status: OB  LB\nc:\nk: ""\nups.status: ob OL OL\nUPS.Status: OB\n'
    )
    dev = await load(make(tmp_path, text))
    v = vals(dev)
    # device.* copies ups.* once the first read is done, keeping existing flags.
    assert (v["device.mfr"], v["device.model"], v["device.serial"]) == ("Y", "X", "S2")
    assert typ(dev, "device.mfr") == "RW STRING:32"
    assert typ(dev, "device.model") == "NUMBER"
    # no value: the previous non-status value is reused; "" deletes
    assert v["b"] == "1 2" and v["c"] == "1 2" and "k" not in v
    assert v["ups.status"] == "OB"
    assert dev.get("ups.status") is not None and dev.get("ups.status").name == "ups.status"  # type: ignore[union-attr]


async def test_empty_values_delete(tmp_path: Path) -> None:
    dev = await load(make(tmp_path, "ups.mfr:\ndevice.mfr: Z\nups.status:\n"))
    v = vals(dev)
    assert "ups.mfr" not in v and v["device.mfr"] == "Z" and v["ups.status"] == ""


async def test_alarm_lines(tmp_path: Path) -> None:
    dev = await load(make(tmp_path, "ups.status: OB\nALARM fan failure\nALARM overheat\n"))
    assert dev.value("ups.alarm") == "fan failure overheat"
    assert dev.value("ups.status") == "OB ALARM"
    dev = await load(make(tmp_path, "ups.status: OL\nALARM x\nALARM\n"))
    assert dev.get("ups.alarm") is None and dev.value("ups.status") == "OL"


async def test_relative_and_absolute_paths(tmp_path: Path) -> None:
    sub = tmp_path / "data"
    sub.mkdir()
    (sub / "x.dev").write_text("foo: 1\n")
    cfg = {"driver": "dummy-ups", "port": "data/x.dev", "_confdir": str(tmp_path)}
    assert (await load(DummyUPS(Device("u"), cfg))).value("foo") == "1"
    cfg["port"] = str(sub / "x.dev")
    assert (await load(DummyUPS(Device("u"), cfg))).value("foo") == "1"


def test_mode_selection(tmp_path: Path) -> None:
    def mode(port: str, **kw: str) -> str:
        return DummyUPS(Device("u"), {"port": port, "_confdir": str(tmp_path), **kw}).mode

    assert mode("a.dev") == "dummy-once"
    assert mode("a.seq") == "dummy-loop"
    assert mode("a.txt") == "dummy"
    assert mode("a.dev", mode="dummy-loop") == "dummy-loop"
    assert driver_class("dummy-ups", {"port": "ups@host:3493"}).__name__ == "Repeater"
    assert driver_class("dummy-ups", {"port": "a.dev", "mode": "repeater"}).__name__ == "Repeater"


async def test_missing_file_goes_stale_and_recovers(tmp_path: Path) -> None:
    drv = make(tmp_path, "foo: 1\n", pollinterval="0.05")
    drv.retry_min = drv.retry_max = 0.05
    (tmp_path / "u.dev").unlink()
    task = asyncio.create_task(drv.run())
    try:
        await asyncio.sleep(0.2)
        assert drv.device.driver_state is DriverState.NOT_CONNECTED
        (tmp_path / "u.dev").write_text("foo: 2\n")
        await _until(lambda: drv.device.value("foo") == "2")
        await _until(lambda: drv.device.driver_state is DriverState.OK)
        (tmp_path / "u.dev").unlink()
        await _until(lambda: drv.device.driver_state is DriverState.STALE)
    finally:
        drv.stop()
        task.cancel()


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


# ---- modes over time ------------------------------------------------------------


async def test_seq_timer_pacing(tmp_path: Path) -> None:
    text = "ups.status: OB\nbattery.charge: 1\nTIMER 0.3\nbattery.charge: 2\nTIMER 0.6\nups.status: OL\n"
    drv = make(tmp_path, text, name="s.seq", pollinterval="0.1")
    seen: list[tuple[float, str, str]] = []  # (time, charge, status) at each change
    t0 = time.monotonic()

    def on_change(d: Device, _names: frozenset[str]) -> None:
        now = (d.value("battery.charge", "") or "", d.value("ups.status", "") or "")
        if now[0] and (not seen or seen[-1][1:] != now):
            seen.append((time.monotonic() - t0, *now))

    drv.device.subscribe(on_change)
    task = asyncio.create_task(drv.run())
    try:
        await _until(lambda: len(seen) >= 4, 5)
    finally:
        drv.stop()
        task.cancel()
    assert [s[1:] for s in seen[:4]] == [("1", "OB"), ("2", "OB"), ("2", "OL"), ("1", "OB")]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    assert 0.25 <= gaps[0] <= 0.8  # TIMER 0.3
    assert 0.55 <= gaps[1] <= 1.1  # TIMER 0.6
    assert 0.05 <= gaps[2] <= 0.6  # end of file: one poll interval, then start over
    assert drv.device.value("driver.parameter.mode") == "dummy-loop"


async def test_long_timer_keeps_data_fresh(tmp_path: Path) -> None:
    drv = make(tmp_path, "x: 1\nTIMER 30\n", name="s.seq", pollinterval="0.05")
    task = asyncio.create_task(drv.run())
    try:
        await _until(lambda: drv.device.driver_state is DriverState.OK)
        await asyncio.sleep(0.3)
        # heartbeats continue during the TIMER, so upsd keeps serving the data
        assert time.monotonic() - drv.device.last_heard < 0.2
    finally:
        drv.stop()
        task.cancel()


async def test_dev_mtime_reread_and_set_persistence(tmp_path: Path) -> None:
    drv = make(tmp_path, "x: 1\nups.status: OL\n", pollinterval="0.05")
    task = asyncio.create_task(drv.run())
    dev = drv.device
    try:
        await _until(lambda: dev.value("x") == "1")
        assert await drv.setvar("x", "setval") == Status.HANDLED
        assert await drv.setvar("ups.status", "OB") == Status.HANDLED
        await asyncio.sleep(0.2)  # file unchanged: SET values persist
        assert (dev.value("x"), dev.value("ups.status")) == ("setval", "OB")
        f = tmp_path / "u.dev"
        f.write_text("y: 2\nups.model: Changed\n")
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        await _until(lambda: dev.value("y") == "2")
        # an overlay: nothing the new file omits is removed
        got = (dev.value("x"), dev.value("ups.status"), dev.value("ups.model"))
        assert got == ("setval", "OB", "Changed")
        assert dev.value("device.model") == "Dummy UPS"  # copied only after the first read
        assert await drv.setvar("x", "") == Status.HANDLED
        assert dev.get("x") is None
    finally:
        drv.stop()
        task.cancel()


# ---- commands and writes ---------------------------------------------------------


async def test_upstream_commands_and_set(tmp_path: Path) -> None:
    drv = make(tmp_path, "battery.charge: 5\nfoo: bar\n#CMD:beeper.enable\n", ddlmeta="no")
    dev = await load(drv)
    assert dev.commands() == with_core(["load.off"])
    assert await drv.instcmd("load.off", None) == Status.UNKNOWN
    assert await drv.instcmd("beeper.enable", None) == Status.UNKNOWN
    assert await drv.setvar("foo", "a much longer value than before") == Status.HANDLED
    assert dev.value("foo") == "a much longer value than before"
    assert typ(dev, "foo") == "RW STRING:32"
    assert dev.value("driver.parameter.ddlmeta") == "no"


DDL_SAMPLE = """\
ups.delay.shutdown: 20
ups.delay.start: 30
input.sensitivity: normal
outlet.desc: Main Outlet
output.voltage.nominal: 230
battery.charge.low: 10
#RW:ups.delay.shutdown:RANGE:"12" "5940"
#RW:ups.delay.start:STRING
#RW:input.sensitivity:ENUM:"normal"
#RW:input.sensitivity:ENUM:"high"	#COMMENT: whatever
  #RW:input.sensitivity:ENUM:"low"
#RW:outlet.desc:STRING:20
#RW:output.voltage.nominal:ENUM:"220"
#RW:output.voltage.nominal:ENUM:"230"
#RW:not.present:STRING:5
#CMD:beeper.enable
#CMD:load.off	#BAD: Not working.
#CMD:test.battery.start.quick #COMMENT: something
"""


def test_parse_meta() -> None:
    meta = parse_meta(DDL_SAMPLE)
    assert meta.cmds == ["beeper.enable", "load.off", "test.battery.start.quick"]
    assert meta.rw["ups.delay.shutdown"].ranges == [(12, 5940)]
    assert meta.rw["ups.delay.start"].string is None  # bare STRING: keep the base type
    assert meta.rw["input.sensitivity"].enums == ["normal", "high", "low"]
    assert (meta.rw["outlet.desc"].string, meta.rw["outlet.desc"].aux) == (True, 20)


async def test_ddl_metadata_extension(tmp_path: Path) -> None:
    drv = make(tmp_path, DDL_SAMPLE)
    dev = await load(drv)
    assert dev.commands() == with_core(["beeper.enable", "load.off", "test.battery.start.quick"])
    assert typ(dev, "ups.delay.shutdown") == "RW RANGE NUMBER"
    assert typ(dev, "ups.delay.start") == "RW NUMBER"
    assert typ(dev, "input.sensitivity") == "RW ENUM STRING:1"
    assert typ(dev, "outlet.desc") == "RW STRING:20"
    assert dev.get("not.present") is None
    var = dev.get("input.sensitivity")
    assert var is not None and var.enums == ["normal", "high", "low"]
    assert await drv.instcmd("beeper.enable", None) == Status.HANDLED
    assert await drv.instcmd("load.off", None) == Status.HANDLED
    assert await drv.instcmd("shutdown.return", None) == Status.UNKNOWN
    assert await drv.setvar("input.sensitivity", "bogus") == Status.INVALID
    assert await drv.setvar("input.sensitivity", "high") == Status.HANDLED
    assert dev.value("input.sensitivity") == "high"
    assert await drv.setvar("ups.delay.shutdown", "5") == Status.INVALID
    assert await drv.setvar("ups.delay.shutdown", "abc") == Status.INVALID
    assert await drv.setvar("ups.delay.shutdown", "60") == Status.HANDLED
    assert await drv.setvar("outlet.desc", "x" * 21) == Status.INVALID
    assert await drv.setvar("outlet.desc", "x" * 20) == Status.HANDLED
    # a re-read keeps the metadata flags (no flapping back to the table's)
    await drv.update()
    assert typ(dev, "ups.delay.shutdown") == "RW RANGE NUMBER"


async def test_ddlmeta_off_is_plain_upstream(tmp_path: Path) -> None:
    dev = await load(make(tmp_path, DDL_SAMPLE, ddlmeta="no"))
    assert dev.commands() == with_core(["load.off"])
    assert typ(dev, "ups.delay.shutdown") == "RW NUMBER"
    assert typ(dev, "input.sensitivity") == "RW STRING:1"
    assert typ(dev, "outlet.desc") == "RW STRING:32"


async def test_every_ddl_file_loads_with_metadata() -> None:
    files = sorted(DDL.rglob("*.dev"))
    realnut.require(f"NUT DDL corpus at {DDL}", files)
    with_cmds = 0
    for f in files:
        cfg = {"driver": "dummy-ups", "port": str(f)}
        drv = DummyUPS(Device("u"), cfg)
        dev = await load(drv)
        assert dev.value("ups.status") is not None, f
        meta = drv.meta
        if meta.cmds:
            with_cmds += 1
            assert with_core(sorted(c.lower() for c in meta.cmds)) == [c.lower() for c in dev.commands()], f
        for name, vm in meta.rw.items():
            var = dev.get(name)
            if var is None:
                continue
            assert var.rw, (f, name)
            for e in vm.enums:
                assert e in var.enums, (f, name)
    assert with_cmds > 30


# ---- differential test against the real C dummy-ups ------------------------------


def with_core(cmds: list[str]) -> list[str]:
    """A command list as the profile's driver core adds to it (2.8.5: driver.* etc.)."""
    from nutbridge.compat import driver_core_2_8_5
    from nutbridge.drivers.base import CORE_CMDS

    return sorted(set(cmds) | set(CORE_CMDS), key=str.lower) if driver_core_2_8_5() else cmds


_QUIRK_FILES = [
    b"ups.model: X\nups.mfr: Y\ndevice.mfr: Z\ndevice.serial: S1\nups.serial: S2\ndevice.type: pdu\n",
    b'a: 1 2\nb:\nups.status: OB  LB\nc:\nk: ""\nups.status: ob OL OL\nBattery.Charge: 3\n',
    # (a no-value line before any value reads uninitialised memory in C: avoided)
    b'x: 1\nups.mfr: ""\ndevice.mfr: Z\ndevice.model:\nups.status:\n',
    b'ups.id: Some "quoted" \\ value # not comment\nx: caf\xc3\xa9 \x01tab\there\n'
    + b"y: " + b"w " * 40 + b"\n",
    b"driver.name: other\ndriver.parameter.port: x\nNoColon value\nweird: a:b c\n",
    b'ups.model: say \\"hi\\" back\\\\slash\nups.serial: x\n',  # device.* copies get escaped twice
]


def _render(dev: Device, ups: str) -> list[str]:
    out = [f"VAR {ups} {v.name} {quote(v.value)}" for v in dev.variables()]
    out += [f"TYPE {ups} {v.name} {' '.join(v.type_words())}" for v in dev.variables()]
    out += [f"CMD {ups} {c}" for c in dev.commands()]
    return out


# driver.version is ours (intentional difference); ddlmeta is our own option.
# driver.state flips between quiet and updateinfo in NUT 2.8.5's C driver
_SKIP = ("driver.version", "driver.parameter.ddlmeta", "driver.state")


def _keep(line: str) -> bool:
    parts = line.split(" ", 3)
    return not (parts[0] in ("VAR", "TYPE") and parts[2] in _SKIP)


class _Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.rf = self.sock.makefile("rb")

    def ask(self, lines: list[str], until: str | None = None) -> list[str]:
        """Send lines; read one answer line each, or (for LIST) up to ``until``."""
        self.sock.sendall("".join(x + "\n" for x in lines).encode())
        out: list[str] = []
        if until is None:
            return [self.rf.readline().decode("latin-1").rstrip("\n") for _ in lines]
        while True:
            line = self.rf.readline().decode("latin-1").rstrip("\n")
            if not line:
                raise EOFError("upsd closed the connection")
            out.append(line)
            if line == until or line.startswith("ERR "):
                return out

    def close(self) -> None:
        self.rf.close()
        self.sock.close()


def _c_render(conn: _Conn, batch: list[str]) -> dict[str, list[str]]:
    """LIST VAR, GET TYPE and LIST CMD for a batch of UPSes in two round trips
    (one request at a time would cost a Nagle/delayed-ACK stall per answer)."""
    conn.sock.sendall("".join(f"LIST VAR {u}\nLIST CMD {u}\n" for u in batch).encode())
    out: dict[str, list[str]] = {}
    cmds: dict[str, list[str]] = {}
    for u in batch:
        out[u] = [x for x in conn.ask([], until=f"END LIST VAR {u}") if x.startswith("VAR ")]
        cmds[u] = [x for x in conn.ask([], until=f"END LIST CMD {u}") if x.startswith("CMD ")]
    gets = [f"GET TYPE {u} {x.split(' ', 3)[2]}" for u in batch for x in out[u]]
    types = iter(conn.ask(gets))
    for u in batch:
        out[u] += [next(types) for _ in range(len(out[u]))] + cmds[u]
    return out


@pytest.mark.interop
@pytest.mark.slow
async def test_differential_against_c_dummy_ups(tmp_path: Path) -> None:
    realnut.require_daemon("upsd")
    realnut.require_daemon("dummy-ups")
    files = sorted(DDL.rglob("*.dev"))
    realnut.require("NUT DDL corpus in shared/data/ddl", files)
    names = {f"d{i}": f for i, f in enumerate(files)}
    for i, text in enumerate(_QUIRK_FILES):  # hand-made corner cases ride along
        f = tmp_path / f"quirk{i}.dev"
        f.write_bytes(text)
        names[f"q{i}"] = f

    ours: dict[str, list[str]] = {}
    for ups, f in names.items():
        drv = DummyUPS(Device(ups), {"driver": "dummy-ups", "port": str(f), "ddlmeta": "no"})
        ours[ups] = [x for x in _render(await load(drv), ups) if _keep(x)]

    # One C upsd serving a dummy-ups per file, queried on one pipelined connection.
    cfg = realnut.NutConfig(tmp_path / "c")
    for ups, f in names.items():
        cfg.add_ups(ups, driver="dummy-ups", port=str(f))
    theirs = await asyncio.to_thread(_collect_c, cfg)

    assert sum(len(v) for v in theirs.values()) > 10000
    mismatches = []
    for ups, f in names.items():
        if ours[ups] != [x for x in theirs[ups] if _keep(x)]:
            mismatches.append(f.name)
            if len(mismatches) <= 6:
                a, b = set(ours[ups]), {x for x in theirs[ups] if _keep(x)}
                print("ours only:", sorted(a - b), "\nC only:", sorted(b - a))
    assert not mismatches, f"{len(mismatches)} of {len(names)} differ: {mismatches[:10]}"


def _collect_c(cfg: realnut.NutConfig) -> dict[str, list[str]]:
    with realnut.c_upsd(cfg, wait_ready=False):
        conn = _Conn(cfg.port)
        try:
            names = list(cfg.ups)
            _wait_all_ready(conn, names)
            out: dict[str, list[str]] = {}
            for i in range(0, len(names), 16):
                out.update(_c_render(conn, names[i:i + 16]))
            return out
        finally:
            conn.close()


def _wait_all_ready(conn: _Conn, names: list[str], timeout: float = 40.0) -> None:
    # realnut.wait_ready_ups asks one UPS per connection; pipelining is far faster
    deadline = time.monotonic() + timeout
    pending = names
    while pending:
        answers = conn.ask([f"GET VAR {u} ups.status" for u in pending])
        ready = {u for u, a in zip(pending, answers, strict=True)
                 if a.startswith("VAR ") and '"WAIT"' not in a}
        pending = [u for u in pending if u not in ready]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"C dummy-ups not ready: {pending[:5]}...")
        if pending:
            time.sleep(0.2)
