"""``nutbridge upssched`` against Debian's C upssched (2.8.0 on the host, 2.8.5 in sid).

* sans-IO: the AT lines a notification selects, the timer table, the wire format,
  and upssched.conf errors (file:line, exit 2);
* side by side: each program in its own directory with the same upssched.conf
  (CMDSCRIPT appends "<time> <args>" to a log) gets the same calls, made as upsmon
  makes them (UPSNAME/NOTIFYTYPE in the environment, the message as argument):
  ONBATT, ONLINE within the timer, ONBATT past it, ONLINE, LOWBATT, FSD. Both logs
  must hold the same CMDSCRIPT calls at the same times (±0.5 s). Calls are made
  0.1 s after a wall-clock second because upstream's daemon stamps a timer with
  ``time()`` (whole seconds) and looks at it once a second: unaligned, its timers
  fire up to 1 s early or late, ours on time;
* a real upsmon against our upsd (simulated UPS, mains loss by upscmd) with a
  NOTIFYCMD running both programs;
* robustness: kill -9 of the daemon (ours keeps the timer, NUT's loses it), a
  stale PIPEFN and LOCKFN, ten concurrent first calls (one daemon, every timer
  fires once);
* the command line: the ``nutbridge`` script linked as ``upssched`` is upssched;
  2.8.5's options (-h, -V, -l, -D and bad ones) answered as 2.8.5 answers them,
  ``-l`` listing either daemon's timers with either client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nutbridge import __version__
from nutbridge.config.parser import ConfigError, parse_text
from nutbridge.upssched.config import UpsschedConf, parse_entries
from nutbridge.upssched.inprocess import InProcessUpssched, names_upssched
from nutbridge.upssched.main import Options, parse_options
from nutbridge.upssched.plan import (
    Caller,
    Cancel,
    Execute,
    ListTimers,
    Start,
    Timers,
    actions_for,
    decode,
    encode,
    parse_listing,
)
from tests.support import realnut
from tests.support.realnut import BridgeProcess, NutConfig

REPO = Path(__file__).resolve().parents[1]
OURS = [sys.executable, "-m", "nutbridge", "upssched"]
TOL = 0.5


def nut_upssched() -> str:
    found = shutil.which("upssched", path="/sbin:/usr/sbin")
    realnut.require("NUT's upssched (/sbin or /usr/sbin, package nut-client)", found)
    assert found is not None
    return found


# ---- sans-IO --------------------------------------------------------------------------------

CONF = """\
CMDSCRIPT /bin/true
PIPEFN /run/p
LOCKFN /run/l
AT ONBATT * START-TIMER onbatt 30
AT onbatt ups@host EXECUTE "only for ups@host"
AT ONLINE * CANCEL-TIMER onbatt
AT ONLINE * CANCEL-TIMER late "back online"
"""


def conf_of(text: str) -> UpsschedConf:
    return parse_entries(parse_text(text, "u.conf"), Path("u.conf"))


def test_actions_for_match_type_case_insensitively_and_ups_exactly() -> None:
    conf = conf_of(CONF)
    assert actions_for(conf, "ONBATT", "ups@host") == [Start("onbatt", 30), Execute("only for ups@host")]
    assert actions_for(conf, "OnBatt", "ups@other") == [Start("onbatt", 30)]
    assert actions_for(conf, "ONLINE", "x") == [Cancel("onbatt"), Cancel("late", "back online")]
    assert actions_for(conf, "LOWBATT", "x") == []


@pytest.mark.parametrize(("text", "line", "msg"), [
    ("AT ONBATT * START-TIMER a 1\n", 1, "CMDSCRIPT, PIPEFN, LOCKFN must be set before any AT line"),
    ("CMDSCRIPT x\nPIPEFN p\nLOCKFN l\nAT ONBATT * START-TIMER a\n", 4, "needs <timername> <seconds>"),
    ("CMDSCRIPT x\nPIPEFN p\nLOCKFN l\n\nAT ONBATT * START-TIMER a -1\n", 5, "whole number"),
    ("CMDSCRIPT x\nPIPEFN p\nLOCKFN l\nAT ONBATT * STOP-TIMER a\n", 4, "unknown AT command"),
    ("CMDSCRIPT x\nPIPEFN p\nLOCKFN l\nAT ONBATT *\n", 4, "AT needs"),
    ('CMDSCRIPT "x\n', 1, "unterminated"),
])
def test_conf_errors_name_file_and_line(text: str, line: int, msg: str) -> None:
    with pytest.raises(ConfigError) as err:
        conf_of(text)
    assert err.value.line == line and msg in err.value.message, err.value


def test_conf_error_exits_2_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "upssched.conf").write_text("CMDSCRIPT x\nPIPEFN p\nLOCKFN l\nAT ONBATT * BOGUS a\n")
    r = subprocess.run(OURS, env=_env(tmp_path, "ONBATT"), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr == f"upssched: {tmp_path}/upssched.conf:4: unknown AT command 'BOGUS' (START-TIMER, " \
        "START-TIMER-SHARED, CANCEL-TIMER, CANCEL-TIMER-MATCHED, EXECUTE)\n"
    r = subprocess.run(OURS, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "bridge")},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stdout == "Error: environment variables UPSNAME and NOTIFYTYPE must be " \
        "set.\nThis program should only be run from upsmon(8).\n"  # 2.8.5's words


def test_notifycmd_naming_upssched() -> None:
    for cmd in ("/sbin/upssched", "upssched", '"/usr/sbin/upssched"', "/usr/bin/nutbridge upssched",
                ".venv/bin/nutbridge upssched"):
        assert names_upssched(cmd), cmd
    assert not names_upssched(None)
    for cmd in ("", "/etc/nut/notify.sh", "/sbin/upssched-cmd", "nutbridge monitor",
                "/usr/local/bin/upssched-wrapper", "upssched extra", 'unbalanced "quote'):
        assert not names_upssched(cmd), cmd


def test_unusable_lock_directory_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "upssched.conf").write_text(
        f"CMDSCRIPT /bin/true\nPIPEFN {tmp_path}/p\nLOCKFN {tmp_path}/missing/l\n"
        "AT ONBATT * START-TIMER a 1\n")
    r = subprocess.run(OURS, env=_env(tmp_path, "ONBATT"), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.startswith("upssched: cannot reach or start the timer daemon: [Errno 2]"), r.stderr


def test_timers_follow_upstream() -> None:
    t = Timers()
    ups1, ups2 = Caller("ONBATT", "a@h", "msg 1"), Caller("LOWBATT", "b@h", "msg 2")
    assert t.start(Start("a", 5), ups1, 100.0, 1000.0) and t.start(Start("a", 7), ups2, 101.0, 1001.0)
    assert len(t) == 2  # a second "a" is a second timer
    assert not t.start(Start("b", -1), ups1, 100.0, 1000.0)
    assert t.cancel(Cancel("a", "cmd"), Caller()) is None and len(t) == 0  # every "a" (2.8.5)
    assert t.cancel(Cancel("zz", "cmd"), ups1) == "cmd" and t.cancel(Cancel("zz"), ups1) is None
    # shared: one timer, the callers' values merged (unique, in order)
    for c in (ups1, ups2, ups1):
        t.start(Start("s", 5, shared=True), c, 100.0, 1000.0)
    assert len(t) == 1 and t.timers[0].env() == {
        "UPSNAME": "a@h,b@h", "NOTIFYTYPE": "ONBATT,LOWBATT", "NOTIFYMSG": "msg 1.\tmsg 2"}
    # matched: only the timers this UPS/type started
    assert t.cancel(Cancel("s", "x", matched=True), Caller("ONLINE", "a@h")) == "x"
    assert t.cancel(Cancel("s", "x", matched=True), Caller("LOWBATT", "b@h")) is None and len(t) == 0
    t.start(Start("e", 5), ups1, 100.0, 1000.0)
    assert t.expire(104.9) == [] and [x.name for x in t.expire(105.0)] == ["e"] and len(t) == 0
    t.start(Start("x", 10), ups1, 0.0, 50.0)
    saved = [*t.snapshot(), {"name": "late", "wall": 40.0}, {"bogus": 1}, "junk"]
    u = Timers()
    assert u.restore(saved, now=500.0, wall=55.0, grace=1.0) == 2  # type: ignore[arg-type]
    assert [(x.name, x.due) for x in u.timers] == [("x", 505.0), ("late", 501.0)]
    assert u.timers[0].env() == {"UPSNAME": "a@h", "NOTIFYTYPE": "ONBATT", "NOTIFYMSG": "msg 1"}


def test_wire_format_is_upstreams() -> None:
    c = Caller("ONBATT", "ups@h", "UPS ups@h on battery")
    assert encode(Start("on batt", 30), c) == \
        b'START "on batt" "30" "ONBATT" "ups@h" "UPS ups@h on battery"\n'
    assert encode(Cancel('a"b\\'), Caller()) == b'CANCEL "a\\"b\\\\" "" "" "" ""\n'
    assert encode(Start("s", 1, shared=True), c).startswith(b'START-SHARED "s" "1" ')
    assert decode(("START", "n", "5", "ONBATT", "ups@h", "m")) == (
        Start("n", 5), Caller("ONBATT", "ups@h", "m"))
    # 2.8.0's short forms
    assert decode(("CANCEL", "a")) == (Cancel("a"), Caller())
    assert decode(("CANCEL", "a", "")) == (Cancel("a"), Caller())
    assert decode(("START", "a", "x")) == (Start("a", -1), Caller())
    assert decode(("START", "a")) is None and decode(("HELLO",)) is None


# ---- running the programs -------------------------------------------------------------------

SIDE_CONF = """\
CMDSCRIPT {d}/cmd.sh
PIPEFN {d}/upssched.pipe
LOCKFN {d}/upssched.lock
AT ONBATT * START-TIMER onbatt 3
AT ONBATT nobody@nowhere EXECUTE never
AT ONLINE * CANCEL-TIMER onbatt online
AT LOWBATT * EXECUTE lowbatt
AT LOWBATT * START-TIMER lowbatt-late 2
AT FSD * START-TIMER fsd 2
AT FSD * START-TIMER fsd 3
AT FSD * CANCEL-TIMER nosuch
"""
UPS = "ups@127.0.0.1:3493"
MESSAGES = {"ONBATT": f"UPS {UPS} on battery", "ONLINE": f"UPS {UPS} on line power",
            "LOWBATT": f"UPS {UPS} battery is low", "FSD": f"UPS {UPS}: forced shutdown in progress"}


def _env(d: Path, ntype: str, ups: str = UPS) -> dict[str, str]:
    return dict(os.environ, NUT_CONFPATH=str(d), UPSNAME=ups, NOTIFYTYPE=ntype,
                PYTHONPATH=str(REPO / "bridge"))


@dataclass
class Sched:
    name: str
    argv: list[str]
    d: Path

    @classmethod
    def make(cls, name: str, argv: list[str], d: Path, conf: str = SIDE_CONF) -> Sched:
        d.mkdir(parents=True)
        (d / "cmd.sh").write_text(f'#!/bin/sh\necho "$(date +%s.%N) $*" >> {d}/cmd.log\n'
                                  f'echo "$*|$UPSNAME|$NOTIFYTYPE|$NOTIFYMSG" >> {d}/env.log\n')
        (d / "cmd.sh").chmod(0o755)
        (d / "upssched.conf").write_text(conf.format(d=d))
        return cls(name, argv, d)

    def call(self, ntype: str, ups: str = UPS) -> int:
        r = subprocess.run([*self.argv, MESSAGES.get(ntype, f"{ntype} {ups}")], env=_env(self.d, ntype, ups),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        assert r.returncode == 0, (self.name, ntype, r)
        return r.returncode

    def log(self) -> list[tuple[float, str]]:
        try:
            lines = (self.d / "cmd.log").read_text().splitlines()
        except FileNotFoundError:
            return []
        return [(float(t), args) for t, _, args in (ln.partition(" ") for ln in lines)]

    def env_log(self) -> list[str]:
        try:
            return (self.d / "env.log").read_text().splitlines()
        except FileNotFoundError:
            return []

    def daemon_pid(self) -> int | None:
        """The process listening on PIPEFN (found through /proc: no name matching)."""
        pids = socket_owners(self.d / "upssched.pipe")
        assert len(pids) <= 1, pids
        return pids[0] if pids else None


class InProc(Sched):
    """Our monitor's in-process upssched, on an event loop in a thread of this process."""

    loop: asyncio.AbstractEventLoop
    sched: InProcessUpssched

    @classmethod
    def start(cls, d: Path, conf: str = SIDE_CONF) -> InProc:
        self = cls.make("in-process", [], d, conf)
        assert isinstance(self, InProc)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.sched = InProcessUpssched(d / "upssched.conf")
        return self

    def call(self, ntype: str, ups: str = UPS) -> int:
        async def notify() -> bool:
            return self.sched.notify(ntype, ups)
        assert asyncio.run_coroutine_threadsafe(notify(), self.loop).result(10)
        return 0

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sched.aclose(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def socket_owners(path: Path) -> list[int]:
    """Every process with a listening socket bound to ``path``, even one whose file was
    unlinked (a second daemon would show here)."""
    inodes = set()
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if len(parts) >= 8 and parts[7] == str(path) and parts[5] == "01":  # listening
                inodes.add(parts[6])
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.add(int(pid))
        except OSError:
            continue
    return sorted(pids)


def both(tmp_path: Path, conf: str = SIDE_CONF) -> list[Sched]:
    return [Sched.make("ours", OURS, tmp_path / "ours", conf),
            Sched.make("nut", [nut_upssched()], tmp_path / "nut", conf)]


def at_second(t0: float, offset: float) -> None:
    """Sleep until wall time t0 + offset (t0 is 0.1 s after a whole second)."""
    delay = t0 + offset - time.time()
    if delay > 0:
        time.sleep(delay)


def call_all(scheds: list[Sched], ntype: str, ups: str = UPS) -> None:
    """The same call to every program at the same moment (upsmon would run one)."""
    threads = [threading.Thread(target=s.call, args=(ntype, ups)) for s in scheds]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def rel(log: list[tuple[float, str]], t0: float) -> list[tuple[float, str]]:
    return [(round(t - t0, 2), a) for t, a in log]


def assert_same(scheds: list[Sched], t0: float, expected: list[tuple[float, str]]) -> None:
    for s in scheds:
        got = rel(s.log(), t0)
        assert [a for _, a in got] == [a for _, a in expected], (s.name, got)
        for (t, a), (te, _) in zip(got, expected, strict=True):
            assert abs(t - te) <= TOL, (s.name, a, got)


def until(what: str, fn: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_side_by_side_with_nut(tmp_path: Path) -> None:
    """NUT's program, ours, and ours in-process (as our monitor can run it) in step."""
    inproc = InProc.start(tmp_path / "inproc")
    scheds = [*both(tmp_path), inproc]
    t0 = int(time.time()) + 1.1
    steps = [(0, "ONBATT"), (1, "ONLINE"), (2, "ONBATT"), (6, "ONLINE"), (7, "LOWBATT"), (8, "FSD")]
    for offset, ntype in steps:
        at_second(t0, offset)
        call_all(scheds, ntype)
    at_second(t0, 12)
    # ONLINE at 1 s cancelled the first timer; the second fired at 2+3; the ONLINE at 6
    # found no timer and ran its command; two "fsd" timers both fire (upstream adds, not replaces)
    assert_same(scheds, t0, [(5, "onbatt"), (6, "online"), (7, "lowbatt"), (7 + 2, "lowbatt-late"),
                             (8 + 2, "fsd"), (8 + 3, "fsd")])
    inproc.stop()
    assert not (inproc.d / "upssched.pipe").exists()  # no daemon: the timers were in this process
    # both daemons go away by themselves once idle, removing PIPEFN
    until("the daemons' exit", lambda: not any((s.d / "upssched.pipe").exists() for s in scheds), 25)


def test_killed_daemon_keeps_its_timers_in_ours_only(tmp_path: Path) -> None:
    conf = SIDE_CONF + "AT COMMOK * START-TIMER commok 1\n"
    scheds = both(tmp_path, conf)
    t0 = int(time.time()) + 1.1
    at_second(t0, 0)
    call_all(scheds, "ONBATT")  # onbatt at 3 s
    for s in scheds:
        pid = s.daemon_pid()
        assert pid is not None, s.name
        os.kill(pid, signal.SIGKILL)
    at_second(t0, 1)
    call_all(scheds, "COMMOK")  # the next call starts a new daemon
    at_second(t0, 4)
    ours, nut = scheds
    assert_same([ours], t0, [(2, "commok"), (3, "onbatt")])
    assert_same([nut], t0, [(2, "commok")])  # upstream: the timers died with the daemon
    # ...and a cancelled inherited timer stays cancelled: kill again, then ONLINE
    call_all([ours], "ONBATT")
    pid = ours.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    call_all([ours], "ONLINE")
    time.sleep(4)
    assert [a for _, a in ours.log()] == ["commok", "onbatt"]


def test_stale_pipe_and_lock_files(tmp_path: Path) -> None:
    scheds = both(tmp_path)
    for s in scheds:
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(s.d / "upssched.pipe"))  # a socket file nobody listens on
        stale.close()
        (s.d / "upssched.lock").write_text("")  # left by a crash
    t0 = int(time.time()) + 1.1
    at_second(t0, 0)
    call_all(scheds, "ONBATT")
    at_second(t0, 5)
    ours, nut = scheds
    assert_same([ours], t0, [(3, "onbatt")])
    # upstream gets there too, later: it removes the lock file it could not create, sleeps
    # 0.25 s, starts its daemon and sleeps 0.25 s more; its whole-second stamp and 1 s tick then
    # put the timer anywhere from 2.5 to 4 s (3.5 s seen with 2.8.5, 2.9 s with 2.8.0)
    assert [a for _, a in nut.log()] == ["onbatt"] and 2.5 <= nut.log()[0][0] - t0 <= 4.1, rel(nut.log(), t0)


def nut_is_285() -> bool:
    """NUT >= 2.8.5 (sid) rather than 2.8.0 (the host): the semantics changed in between."""
    v = realnut.nut_version()
    realnut.require("NUT's version (upsc -V)", v)
    return tuple(int(x) for x in v.split(".")[:3]) >= (2, 8, 5)


SHARED_CONF = SIDE_CONF + """\
AT COMMBAD * START-TIMER dup 2
AT NOCOMM * CANCEL-TIMER dup
AT COMMBAD * START-TIMER-SHARED shared 2
AT REPLBATT * EXECUTE replbatt
"""


def test_duplicates_shared_timers_and_environment(tmp_path: Path) -> None:
    """A CANCEL removes every timer of its name, START-TIMER-SHARED merges callers, and
    CMDSCRIPT sees the UPSNAME/NOTIFYTYPE/NOTIFYMSG of the calls that started a timer:
    NUT 2.8.5's behaviour, ours everywhere. 2.8.0 differs and is shown as it is."""
    scheds = both(tmp_path, SHARED_CONF)
    ours, nut = scheds
    t0 = int(time.time()) + 1.1
    at_second(t0, 0)
    call_all(scheds, "COMMBAD", "a@h")  # dup #1, shared (a@h)
    call_all(scheds, "COMMBAD", "b@h")  # dup #2, shared gets b@h
    call_all(scheds, "NOCOMM", "a@h")  # cancels dup: both (2.8.5), the first only (2.8.0)
    call_all(scheds, "REPLBATT", "c@h")  # EXECUTE: the caller's own environment
    at_second(t0, 3)
    expect_ours = ["replbatt|c@h|REPLBATT|", "shared|a@h,b@h|COMMBAD|COMMBAD a@h.\tCOMMBAD b@h"]
    assert ours.env_log() == expect_ours
    if nut_is_285():
        assert nut.env_log() == expect_ours
    else:  # 2.8.0: one "dup" survives the cancel, with the daemon's first caller's values;
        # START-TIMER-SHARED is an "Invalid command" there
        assert nut.env_log() == ["replbatt|c@h|REPLBATT|", "dup|a@h|COMMBAD|"]


@pytest.mark.parametrize("daemon", ["ours", "nut"])
def test_clients_and_daemons_mix(tmp_path: Path, daemon: str) -> None:
    """Same wire format: NUT's client uses our daemon, ours NUT's (one PIPEFN, one daemon)."""
    # 2 s: NUT 2.8.0's daemon, once a client has hung up, spins (its "tight loop" bug) and
    # exits the moment its queue is empty; its whole-second stamps may fire a 1 s timer at once
    conf = SIDE_CONF + "AT COMMOK * START-TIMER commok 2\n"
    ours = Sched.make("ours", OURS, tmp_path / "d", conf)
    nut = Sched("nut", [nut_upssched()], ours.d)
    first, other = (ours, nut) if daemon == "ours" else (nut, ours)
    t0 = time.time()
    first.call("ONBATT")  # starts first's daemon and an "onbatt" timer (3 s)
    pid = first.daemon_pid()
    assert pid is not None
    other.call("COMMOK")  # "commok" (2 s) through the same daemon
    other.call("ONLINE")  # cancels "onbatt"
    assert first.daemon_pid() == pid
    time.sleep(max(0.0, t0 + 4.5 - time.time()))
    assert [a for _, a in ours.log()] == ["commok"]


CONCURRENT = "CMDSCRIPT {d}/cmd.sh\nPIPEFN {d}/upssched.pipe\nLOCKFN {d}/upssched.lock\n" + "".join(
    f"AT ONBATT u{i} START-TIMER t{i} 2\n" for i in range(10))


def test_ten_concurrent_first_calls(tmp_path: Path) -> None:
    """Ten upsmon notifications at once, no daemon yet: one daemon, each timer fires once."""
    s = Sched.make("ours", OURS, tmp_path / "ours", CONCURRENT)
    t0 = time.time()
    procs = [subprocess.Popen([*s.argv, "msg"], env=_env(s.d, "ONBATT", f"u{i}")) for i in range(10)]
    assert [p.wait(30) for p in procs] == [0] * 10
    assert len(socket_owners(s.d / "upssched.pipe")) == 1
    time.sleep(max(0.0, t0 + 4 - time.time()))
    log = s.log()
    assert sorted(a for _, a in log) == sorted(f"t{i}" for i in range(10))
    # each 2 s after its call: the calls themselves took up to a second (ten Pythons starting)
    assert all(2 <= t - t0 <= 3.5 for t, _ in log), rel(log, t0)


# ---- driven by a real upsmon ----------------------------------------------------------------

UPSMON_CONF = """\
CMDSCRIPT {d}/cmd.sh
PIPEFN {d}/upssched.pipe
LOCKFN {d}/upssched.lock
AT ONBATT * START-TIMER onbatt 3
AT ONLINE * CANCEL-TIMER onbatt online
AT FSD * EXECUTE fsd
"""


@pytest.mark.parametrize("monitor", ["upsmon", "nutbridge-monitor"])
def test_real_monitor_drives_both(tmp_path: Path, monitor: str) -> None:
    """NUT's upsmon (and our monitor) with a NOTIFYCMD running both upsscheds."""
    if monitor == "upsmon":
        argv = realnut.private_run([realnut.require_daemon("upsmon"), "-F"])
    else:
        argv = [sys.executable, "-m", "nutbridge", "monitor", "--config-dir", str(tmp_path / "upsmon"),
                "--state-dir", str(tmp_path / "upsmon")]
    scheds = both(tmp_path, UPSMON_CONF)
    cfg = NutConfig(tmp_path / "bridge")
    cfg.add_ups("sim", driver="nutbridge-sim", port="simulated", pollinterval="0.2")
    m = tmp_path / "upsmon"
    m.mkdir()
    # NOTIFYCMD runs both programs at once with upsmon's environment and message
    notify = m / "notify.sh"
    ours, nut = scheds
    notify.write_text(
        "#!/bin/sh\n"
        f'NUT_CONFPATH={ours.d} PYTHONPATH={REPO / "bridge"} {" ".join(OURS)} "$@" &\n'
        f'NUT_CONFPATH={nut.d} {nut.argv[0]} "$@" &\nwait\n')
    notify.chmod(0o755)
    (m / "shutdown.sh").write_text(f"#!/bin/sh\ntouch {m}/shutdown.marker\n")
    (m / "shutdown.sh").chmod(0o755)
    with BridgeProcess.start(cfg) as bridge:
        realnut.wait_ready_ups(bridge.cfg.port, ["sim"])
        port = bridge.cfg.port
        (m / "upsmon.conf").write_text("\n".join([
            f"MONITOR sim@127.0.0.1:{port} 1 monsecondary ms secondary",
            "MINSUPPLIES 1", "POLLFREQ 1", "POLLFREQALERT 1", "DEADTIME 3", "HOSTSYNC 2",
            "FINALDELAY 0", "RUN_AS_USER root", f'SHUTDOWNCMD "{m}/shutdown.sh"',
            f'NOTIFYCMD "{notify}"', *(f"NOTIFYFLAG {t} EXEC" for t in ("ONBATT", "ONLINE", "FSD")),
        ]) + "\n")
        (m / "upsmon.conf").chmod(0o600)
        env = dict(os.environ, NUT_CONFPATH=str(m), NUT_STATEPATH=str(m), NUT_PIDPATH=str(m),
                   NUT_ALTPIDPATH=str(m), NUT_QUIET_INIT_SSL="true", LANG="C",
                   PYTHONPATH=str(REPO / "bridge"))
        with open(m / "upsmon.log", "wb") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            until("upsmon login", lambda: realnut.query(port, "GET NUMLOGINS sim") == b"NUMLOGINS sim 1\n")

            def upscmd(cmd: str) -> None:
                r = subprocess.run([sys.executable, "-m", "nutbridge", "upscmd", "-u", "admin", "-p",
                                    "s3cr3t", f"sim@127.0.0.1:{port}", cmd], capture_output=True,
                                   env=dict(os.environ, PYTHONPATH=str(REPO / "bridge")), timeout=30)
                assert r.returncode == 0, r

            def status_has(word: str) -> bool:
                return word in realnut.query(port, "GET VAR sim ups.status").decode()

            upscmd("test.failure.start")  # ONBATT; ONLINE within the timer
            until("OB", lambda: status_has("OB"))
            time.sleep(1.5)
            upscmd("test.failure.stop")
            until("OL", lambda: status_has("OL"))
            time.sleep(1.5)
            upscmd("test.failure.start")  # ONBATT past the timer
            until("onbatt fired", lambda: all(s.log() for s in scheds), 15)
            upscmd("test.failure.stop")  # ONLINE: no timer left, so "online" runs
            until("online ran", lambda: all(len(s.log()) >= 2 for s in scheds), 15)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as primary:
                f = primary.makefile("rwb", buffering=0)
                for line in ("USERNAME monprimary", "PASSWORD mp", "LOGIN sim", "PRIMARY sim", "FSD sim"):
                    f.write(line.encode() + b"\n")
                    assert f.readline().startswith(b"OK"), line
                assert proc.wait(20) == 0, (m / "upsmon.log").read_text()
            until("fsd ran", lambda: all(len(s.log()) >= 3 for s in scheds), 10)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    logs = {s.name: s.log() for s in scheds}
    assert [a for _, a in logs["ours"]] == [a for _, a in logs["nut"]] == ["onbatt", "online", "fsd"]
    # upstream's daemon looks at its timers once a second on a whole-second clock, so here,
    # with calls at arbitrary moments, its "onbatt" may be up to a second off ours
    for (t1, a), (t2, _) in zip(logs["ours"], logs["nut"], strict=True):
        assert abs(t1 - t2) <= (1.1 if a == "onbatt" else TOL), logs


def test_our_monitor_runs_upssched_in_process(tmp_path: Path) -> None:
    """``NOTIFYCMD "nutbridge upssched"`` in our monitor: the timers run inside the monitor
    (upssched.conf beside upsmon.conf), no process per notification and no timer daemon, so
    PIPEFN never appears; CMDSCRIPT still runs as upssched's would."""
    m = tmp_path / "upsmon"
    m.mkdir()
    (m / "cmd.sh").write_text(f'#!/bin/sh\necho "$*" >> {m}/cmd.log\n')
    (m / "cmd.sh").chmod(0o755)
    (m / "upssched.conf").write_text(UPSMON_CONF.format(d=m))
    cfg = NutConfig(tmp_path / "bridge")
    cfg.add_ups("sim", driver="nutbridge-sim", port="simulated", pollinterval="0.2")
    with BridgeProcess.start(cfg) as bridge:
        port = bridge.cfg.port
        realnut.wait_ready_ups(port, ["sim"])
        (m / "upsmon.conf").write_text("\n".join([
            f"MONITOR sim@127.0.0.1:{port} 1 monsecondary ms secondary",
            "MINSUPPLIES 1", "POLLFREQ 1", "POLLFREQALERT 1", "DEADTIME 3", "HOSTSYNC 2",
            "FINALDELAY 0", f'SHUTDOWNCMD "touch {m}/shutdown.marker"',
            'NOTIFYCMD "nutbridge upssched"', *(f"NOTIFYFLAG {t} EXEC" for t in ("ONBATT", "ONLINE")),
        ]) + "\n")
        (m / "upsmon.conf").chmod(0o600)
        env = dict(os.environ, NUT_STATEPATH=str(m), NUT_PIDPATH=str(m), NUT_ALTPIDPATH=str(m),
                   LANG="C", PYTHONPATH=str(REPO / "bridge"), PATH="/nonexistent")  # no upssched to run
        with open(m / "monitor.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "nutbridge", "monitor", "--config-dir", str(m),
                                     "--state-dir", str(m)], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            until("monitor login", lambda: realnut.query(port, "GET NUMLOGINS sim") == b"NUMLOGINS sim 1\n")
            r = subprocess.run([sys.executable, "-m", "nutbridge", "upscmd", "-u", "admin", "-p", "s3cr3t",
                                f"sim@127.0.0.1:{port}", "test.failure.start"], capture_output=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO / "bridge")), timeout=30)
            assert r.returncode == 0, r
            until("onbatt fired", lambda: (m / "cmd.log").exists(), 15)
            assert (m / "cmd.log").read_text().split() == ["onbatt"]
            assert not (m / "upssched.pipe").exists()  # no timer daemon was ever started
        finally:
            proc.terminate()
            proc.wait(10)


# ---- the command line: a link named upssched, 2.8.5's options ------------------------------

def test_options_parse_as_getopt_plus_dvhl() -> None:
    """Options end at the first other argument, which is the message (NOTIFYMSG)."""
    assert parse_options(["UPS ups@h on battery"], "upssched") == Options(message="UPS ups@h on battery")
    assert parse_options(["-D", "-lD", "msg", "-Z"], "upssched") == Options(2, True, "msg")
    # 2.8.5 counts option letters to find the message: after -DD or -- it loses or misreads it
    assert parse_options(["-DD", "msg"], "upssched") == Options(2, False, "msg")
    assert parse_options(["--", "-msg"], "upssched") == Options(message="-msg")
    assert parse_options(["-", "x"], "upssched") == Options(message="-")
    assert parse_options([], "upssched") == Options()


def test_list_timers_wire_and_format() -> None:
    c = Caller("ONLINE", "ups@h", "m")
    assert encode(ListTimers(), c) == b'LIST-TIMERS "" "" "ONLINE" "ups@h" "m"\n'  # as 2.8.5's client
    assert decode(("LIST-TIMERS", "", "", "", "", "")) == (ListTimers(), Caller())
    t = Timers()
    t.start(Start("a", 30), Caller("ONBATT", "u1@h", "msg 1"), 0.0, 1000.7)
    t.start(Start("s", 1_209_600, shared=True), Caller("ONBATT", "u1@h", "msg 1"), 0.0, 1000.7)
    t.start(Start("s", 5, shared=True), Caller("LOWBATT", "u2@h", "msg 2"), 0.0, 1001.2)
    t.start(Start("old", 3), Caller(), 0.0, 1000.2)  # from a 2.8.0 client: no caller values
    answer = t.listing(1005.9)
    # whole-second stamps as 2.8.5's (time() + seconds), the seconds left printed with %g
    assert answer == (b"BEGIN LIST TIMERS\n"
                      b"a\t1030\t25\tONBATT\tu1@h\tmsg 1\n"
                      b"s\t1210600\t1.2096e+06\tONBATT,LOWBATT\tu1@h,u2@h\tmsg 1.\tmsg 2\n"
                      b'old\t1003\t-2\t""\t""\t""\n'
                      b"END LIST TIMERS\nOK\n")
    assert parse_listing(answer) == answer[18:-19].decode()
    assert parse_listing(Timers().listing(0.0)) == ""
    for bad in (b"ERR UNKNOWN\n", answer[:-3], b"OK\n"):
        assert parse_listing(bad) is None


def test_list_timers_refuses_an_endless_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-l`` reads at most MAX_LISTING bytes: a daemon that starts a list and never ends it
    (at full speed) gets the listing error, not a client that grows until it is killed."""
    from nutbridge.upssched.main import MAX_LISTING, list_timers

    pipefn = str(tmp_path / "pipe")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(pipefn)
    listener.listen(1)
    sent = [0]

    def endless() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):
            conn.recv(512)
            conn.sendall(b"BEGIN LIST TIMERS\n")
            while sent[0] < 64 * MAX_LISTING:
                conn.sendall(b"t\t1\t1\tONBATT\tups@h\tm\n" * 4096)
                sent[0] += 4096 * 23

    thread = threading.Thread(target=endless, daemon=True)
    thread.start()
    try:
        conf = UpsschedConf(cmdscript="/bin/true", pipefn=pipefn, lockfn=str(tmp_path / "lock"))
        assert list_timers(conf, Caller()) == 1
    finally:
        listener.close()
        thread.join(10)
    assert "connection was broken during listing" in capsys.readouterr().err
    assert sent[0] < 64 * MAX_LISTING  # the client hung up long before the daemon ran out


def console_script() -> Path:
    """The ``nutbridge`` script pip installed beside this Python (an editable install)."""
    script = Path(sys.executable).parent / "nutbridge"
    realnut.require(f"the nutbridge console script at {script} (pip install -e .)", script.is_file())
    return script


def ours_link(tmp_path: Path) -> str:
    """A symlink named upssched to the nutbridge script, as a user would put at /sbin/upssched."""
    link = tmp_path / "bin" / "upssched"
    link.parent.mkdir(exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(console_script())
    return str(link)


def run(argv: list[str], d: Path, **env: str) -> tuple[int, str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("UPSNAME", "NOTIFYTYPE", "NUT_DEBUG_LEVEL")}
    r = subprocess.run(argv, env={**clean, "NUT_CONFPATH": str(d), "PYTHONPATH": str(REPO / "bridge"), **env},
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def stop_daemons(scheds: list[Sched]) -> None:
    """End the daemons these tests started (theirs would otherwise idle on for 15 s)."""
    for s in scheds:
        pid = s.daemon_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)


LINK_CONF = SIDE_CONF + "AT COMMBAD * EXECUTE commbad-now\nAT COMMBAD * START-TIMER commbad-later 1\n"


def test_link_named_upssched_is_upssched(tmp_path: Path) -> None:
    """A symlink or hard link called upssched to the nutbridge script is ``nutbridge upssched``
    (before, it was nutbridge itself: "unknown command" for upsmon's message, exit 2)."""
    hard = tmp_path / "hard" / "upssched"
    hard.parent.mkdir()
    shutil.copy2(console_script(), tmp_path / "hard" / "nutbridge")
    os.link(tmp_path / "hard" / "nutbridge", hard)
    scheds = [Sched.make(f"{kind} link", [path], tmp_path / f"{kind}-d", LINK_CONF)
              for kind, path in (("sym", ours_link(tmp_path)), ("hard", str(hard)))]
    try:
        for s in scheds:
            t = time.time()
            s.call("COMMBAD")  # asserts exit 0
            until(f"{s.name}: timer", lambda s=s: len(s.log()) == 2)  # type: ignore[misc]
            assert [a for _, a in s.log()] == ["commbad-now", "commbad-later"], s.name
            assert 0.9 <= s.log()[1][0] - t <= 2.5, (s.name, rel(s.log(), t))
            assert s.env_log() == [f"commbad-now|{UPS}|COMMBAD|",
                                   f"commbad-later|{UPS}|COMMBAD|COMMBAD {UPS}"], s.name
            rc, out, err = run([s.argv[0], "-h"], s.d)
            assert (rc, out.splitlines()[3], err) == (0, "Usage: upssched [OPTIONS] [NOTIFYMSG]", ""), s.name
    finally:
        stop_daemons(scheds)
    # the script under its own name is still nutbridge
    own = run([str(tmp_path / "hard" / "nutbridge"), "--version"], tmp_path)
    assert own == (0, f"nutbridge {__version__}\n", "")


HELP_285 = """\
upssched: upsmon's scheduling helper for offset timers
Practical behavior is managed by UPSNAME and NOTIFYTYPE envvars

Usage: upssched [OPTIONS] [NOTIFYMSG]

  -D\t\traise debugging level (NOTE: keeps reporting when daemonized)
  -V\t\tdisplay the version of this software
  -h\t\tdisplay this help
  -l\t\tdisplay currently pending timers (if any)

For more information please Read The Fine Manual ('man 8 upssched') and/or see
\thttps://www.networkupstools.org/historic/v2.8.5/docs/man/upssched.html
Also check documentation and samples of upsmon.conf
"""
NO_ENV_285 = ("Error: environment variables UPSNAME and NOTIFYTYPE must be set.\n"
              "This program should only be run from upsmon(8).\n")
NO_ENV_280 = "Error: UPSNAME and NOTIFYTYPE must be set.\nThis program should only be run from upsmon.\n"


def bad_option(prog: str, c: str) -> str:
    return f"{prog}: invalid option -- '{c}'\nError: unknown option -?. Try -h for help.\n"


def test_options_as_nut_285(tmp_path: Path) -> None:
    """Each of 2.8.5's options, bad ones and -l without a daemon: exit code, stdout and stderr
    as observed from 2.8.5 (checked against it in sid), without UPSNAME/NOTIFYTYPE. -V is
    the difference: 2.8.5 prints nothing, ours its version."""
    ours, nut = ours_link(tmp_path), nut_upssched()
    nopipe, nodaemon = tmp_path / "nopipe", tmp_path / "nodaemon"
    nopipe.mkdir()
    (nopipe / "upssched.conf").write_text("CMDSCRIPT /bin/true\n")
    nodaemon.mkdir()
    (nodaemon / "upssched.conf").write_text(f"CMDSCRIPT /bin/true\nPIPEFN {nodaemon}/p\nLOCKFN {nodaemon}/l\n"
                                            "AT ONBATT * START-TIMER t 5\n")
    banner = f"Network UPS Tools upssched (nutbridge {__version__}, NUT 2.8.5 compatible)\n"
    cases: list[tuple[list[str], Path, tuple[int, str, str]]] = [
        (["-h"], tmp_path, (0, HELP_285, "")),
        (["-D", "-h", "-Z"], tmp_path, (0, HELP_285, "")),  # each letter acts in turn
        (["-V"], tmp_path, (0, banner, "")),
        (["-Z"], tmp_path, (1, "", bad_option("{prog}", "Z"))),
        (["-Zh"], tmp_path, (1, "", bad_option("{prog}", "Z"))),
        (["--help"], tmp_path, (1, "", bad_option("{prog}", "-"))),
        (["-l"], nopipe, (1, "", "upssched.conf: invalid configuration for timer listing: lacks PIPEFN\n")),
        (["-l", "msg"], nodaemon, (1, "", "upssched timer is not running\n")),
        ([], tmp_path, (1, NO_ENV_285, "")),
        (["msg", "-Z"], tmp_path, (1, NO_ENV_285, "")),  # options end at the message
    ]
    is_285 = nut_is_285()
    for args, d, (rc, out, err) in cases:
        assert run([ours, *args], d) == (rc, out, err.format(prog=ours)), args
        got = run([nut, *args], d)
        if not is_285:  # 2.8.0 has no options at all: every call wants upsmon's environment
            assert got == (1, NO_ENV_280, ""), (args, got)
        elif args == ["-V"]:  # its version report only prints at a debug level -V never reaches
            assert got == (0, "", ""), got
        else:
            assert got == (rc, out, err.format(prog=nut)), (args, got)
    # -l acts on no AT line: no daemon started, no timer (with upsmon's environment set)
    env = {"UPSNAME": UPS, "NOTIFYTYPE": "ONBATT"}
    assert run([ours, "-l"], nodaemon, **env) == (1, "", "upssched timer is not running\n")
    assert not (nodaemon / "p").exists()


LIST_CONF = """\
CMDSCRIPT {d}/cmd.sh
PIPEFN {d}/upssched.pipe
LOCKFN {d}/upssched.lock
AT ONBATT * START-TIMER onbatt 30
AT ONBATT * START-TIMER-SHARED shared 40
AT ONLINE * CANCEL-TIMER onbatt
"""


def test_list_timers_of_either_daemon(tmp_path: Path) -> None:
    """``upssched -l``: ours and NUT 2.8.5's client list ours and 2.8.5's daemon alike
    (2.8.0's daemon does not know LIST-TIMERS: ours says so and exits 1)."""
    ours_exe, nut_exe = ours_link(tmp_path), nut_upssched()
    scheds = [Sched.make("ours", [ours_exe], tmp_path / "ours", LIST_CONF),
              Sched.make("nut", [nut_exe], tmp_path / "nut", LIST_CONF)]
    is_285 = nut_is_285()
    clients = [ours_exe, nut_exe] if is_285 else [ours_exe]
    msg = MESSAGES["ONBATT"]

    def check(daemon: Sched, expected: list[tuple[str, int, str, str, str]], start: float) -> None:
        for client in clients:
            before = time.time()
            rc, out, err = run([client, "-l"], daemon.d)
            after = time.time()
            assert (rc, err) == (0, ""), (client, daemon.name, rc, err)
            rows = [ln.split("\t", 5) for ln in out.splitlines()]
            assert [(n, t, u, m) for n, _, _, t, u, m in rows] == [(e[0], *e[2:]) for e in expected], out
            for (_, due, left, *_), (name, secs, *_) in zip(rows, expected, strict=True):
                # a timer's due time is the second it was started plus its seconds (whole seconds)
                assert int(start) + secs <= int(due) <= int(start) + secs + 1, (client, name, due, start)
                assert int(due) - int(after) <= int(left) <= int(due) - int(before), (client, name, left)

    try:
        t0 = int(time.time()) + 1.1
        at_second(t0, 0)
        call_all(scheds, "ONBATT", "a@h")
        call_all(scheds, "ONBATT", "b@h")
        both_started: list[tuple[str, int, str, str, str]] = [
            ("onbatt", 30, "ONBATT", "a@h", msg), ("shared", 40, "ONBATT", "a@h,b@h", msg),
            ("onbatt", 30, "ONBATT", "b@h", msg)]
        check(scheds[0], both_started, t0)
        if is_285:
            check(scheds[1], both_started, t0)
        else:
            rc, out, err = run([ours_exe, "-l"], scheds[1].d)
            assert (rc, out, err) == (1, "", "Unable to connect to daemon or connection was broken during "
                                             "listing\n")
        scheds[0].call("ONLINE")  # cancels both "onbatt" timers
        check(scheds[0], [("shared", 40, "ONBATT", "a@h,b@h", msg)], t0)
    finally:
        stop_daemons(scheds)


DEBUG_CONF = """\
CMDSCRIPT {d}/cmd.sh
PIPEFN {d}/upssched.pipe
LOCKFN {d}/upssched.lock
AT ONBATT * START-TIMER onbatt 1
"""
STAMP = r"\s*\d+\.\d{6}\t"


def test_debug_reports_on_stderr_like_nut_285(tmp_path: Path) -> None:
    """-D, NUT_DEBUG_LEVEL and DEBUG_MIN: what happens goes to stderr, stamped as 2.8.5's,
    and the daemon the call starts keeps writing there; without them stderr stays empty."""
    progs = [("ours", ours_link(tmp_path))] + ([("nut", nut_upssched())] if nut_is_285() else [])
    variants: list[tuple[str, list[str], dict[str, str], str]] = [
        ("D", ["-D"], {}, ""), ("env", [], {"NUT_DEBUG_LEVEL": "1"}, ""),
        ("min", [], {}, "DEBUG_MIN 1\n"), ("quiet", [], {}, "")]
    runs: list[tuple[str, str, Sched]] = []
    for name, exe in progs:
        for variant, args, env, conf in variants:
            s = Sched.make(f"{name} {variant}", [exe, *args], tmp_path / f"{name}-{variant}",
                           conf + DEBUG_CONF)
            with open(s.d / "stderr", "wb") as err:  # a file: the daemon may keep it open
                r = subprocess.run([*s.argv, "the message"], env={**_env(s.d, "ONBATT"), **env},
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                   timeout=30)
            assert r.returncode == 0, (s.name, (s.d / "stderr").read_text())
            runs.append((name, variant, s))
    try:
        for _, _, s in runs:
            until(f"{s.name}: timer", lambda s=s: s.log())  # type: ignore[misc]
        for _, variant, s in runs:
            text = (s.d / "stderr").read_text()
            if variant == "quiet":
                assert text == "", (s.name, text)
                continue
            lines = text.splitlines()
            if variant == "env":  # said before any stamp, as 2.8.5 does
                assert lines.pop(0) == "Defaulting debug verbosity to NUT_DEBUG_LEVEL=1 since none was " \
                    "requested by command-line options", (s.name, text)
            assert all(re.match(STAMP, ln) for ln in lines), (s.name, text)
            wanted = [r"Timer daemon started$", r"New timer: onbatt\b"]  # the daemon's, on this stderr
            if variant == "min":
                wanted.append(r"\[D1(:cli)?\] Applying debug_min=1 from upssched.conf$")
            else:  # DEBUG_MIN is read with the file, after these
                wanted += [rf"\[D1\] Handling NOTIFYTYPE='ONBATT' for UPSNAME='{re.escape(UPS)}'$",
                           r"\[D1\] Got a NOTIFYMSG from command line: the message$"]
            for w in wanted:
                assert any(re.match(STAMP + w, ln) for ln in lines), (s.name, w, text)
    finally:
        stop_daemons([s for _, _, s in runs])
