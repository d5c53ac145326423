"""Safe shutdown end to end: ``nutbridge monitor``, ``nutbridge killpower`` and the
bridge's own hooks, against real processes only.

Our monitor runs as its own process (``nutbridge monitor``) or inside
``nutbridge serve``; next to it run Debian's real ``upsmon`` (2.8.0 on the host,
2.8.5 in sid) and, for the reverse direction, Debian's C ``upsd`` + ``dummy-ups``.
SHUTDOWNCMD and NOTIFYCMD of every monitor point at one marker script that
appends a timestamped line to ``marks.txt``; the order of those lines is the
timeline under test. Nothing powers off: the UPS is the simulated one
(``nutbridge-sim``, running ``simspeed`` times faster than real time) or a
dummy-ups whose status the test sets.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nutbridge.history import read_file
from tests.conftest import BridgeServer
from tests.support import realnut
from tests.support.realnut import REPO, NutConfig, ask, private_run, until

pytestmark = pytest.mark.interop

ADMIN = ("USERNAME admin", "PASSWORD s3cr3t")
MAGIC = "upsmon-shutdown-file"
# the notify types Debian's 2.8.0 upsmon knows; both monitors get the same flags
NOTIFY_TYPES = ["ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN",
                "REPLBATT", "NOCOMM", "NOPARENT"]
# sim: 50 simulated seconds per real second; the delays below are simulated seconds
SIMSPEED = 50


# ---- marker script ------------------------------------------------------------------------
@dataclass(frozen=True)
class Mark:
    t: float
    kind: str  # "notify" or "shutdown"
    tag: str  # which monitor
    type: str  # $NOTIFYTYPE
    ups: str  # $UPSNAME
    argc: int  # arguments after KIND TAG
    msg: str

    def key(self) -> tuple[str, str, str, int, str]:
        return self.kind, self.type, self.ups, self.argc, self.msg


class Marks:
    """One script for every monitor's NOTIFYCMD / SHUTDOWNCMD; lines go to marks.txt."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "marks.txt"
        self.script = root / "mark.sh"
        self.script.write_text(
            "#!/bin/sh\n# mark.sh KIND TAG [MESSAGE]\nkind=$1 tag=$2; shift 2\n"
            "printf '%s|%s|%s|%s|%s|%s|%s\\n' \"$(date +%s.%N)\" \"$kind\" \"$tag\" "
            f"\"$NOTIFYTYPE\" \"$UPSNAME\" \"$#\" \"$*\" >> '{self.path}'\n")
        self.script.chmod(0o755)

    def notifycmd(self, tag: str) -> str:
        return f"{self.script} notify {tag}"

    def shutdowncmd(self, tag: str) -> str:
        return f"{self.script} shutdown {tag}"

    def all(self) -> list[Mark]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            t, kind, tag, ntype, ups, argc, msg = line.split("|", 6)
            out.append(Mark(float(t), kind, tag, ntype, ups, int(argc), msg))
        return sorted(out, key=lambda m: m.t)

    def of(self, tag: str, kind: str | None = None, type: str | None = None) -> list[Mark]:
        return [m for m in self.all() if m.tag == tag and kind in (None, m.kind)
                and type in (None, m.type)]

    def wait(self, tag: str, kind: str, type: str | None = None, timeout: float = 15.0) -> Mark:
        found = until(f"{kind} {type or ''} from {tag} (marks so far: {self.all()})",
                      lambda: self.of(tag, kind, type), timeout)
        assert isinstance(found, list)
        return found[0]


def write_upsmon_conf(d: Path, monitors: list[str], marks: Marks, tag: str,
                      **settings: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    values = {"MINSUPPLIES": 1, "POLLFREQ": 1, "POLLFREQALERT": 1, "DEADTIME": 3, "HOSTSYNC": 5,
              "FINALDELAY": 0}
    values.update(settings)
    conf = d / "upsmon.conf"
    conf.write_text("\n".join([
        *(f"MONITOR {m}" for m in monitors),
        *(f"{k} {v}" for k, v in values.items()),
        "RUN_AS_USER root",
        f'SHUTDOWNCMD "{marks.shutdowncmd(tag)}"',
        f'NOTIFYCMD "{marks.notifycmd(tag)}"',
        f"POWERDOWNFLAG {d}/killpower",
        *(f"NOTIFYFLAG {t} SYSLOG+EXEC" for t in NOTIFY_TYPES),
    ]) + "\n")
    conf.chmod(0o600)
    return conf


# ---- processes --------------------------------------------------------------------------------
def _env(d: Path) -> dict[str, str]:
    env = dict(os.environ, NUT_CONFPATH=str(d), NUT_STATEPATH=str(d), NUT_PIDPATH=str(d),
               NUT_ALTPIDPATH=str(d), NUT_QUIET_INIT_SSL="true", NUT_QUIET_INIT_UPSNOTIFY="true",
               LANG="C", TZ="UTC")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "bridge"), os.environ.get("PYTHONPATH", "")) if p)
    return env


class Proc:
    def __init__(self, argv: list[str], d: Path, name: str) -> None:
        self.log_path = d / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.p = subprocess.Popen(argv, env=_env(d), stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s; log:\n{self.log()}") from None

    def end(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


@contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    except BaseException as exc:
        exc.add_note(f"--- {proc.log_path.name}:\n{proc.log()[-4000:]}")
        raise
    finally:
        proc.end()


def real_upsmon(d: Path) -> Proc:
    """Debian's upsmon in the foreground, configured by d/upsmon.conf."""
    upsmon = realnut.require_daemon("upsmon")
    return Proc(private_run([upsmon, "-F", "-D", "-u", "root"]), d, "upsmon")


def our_monitor(d: Path, *args: str) -> Proc:
    return Proc([sys.executable, "-m", "nutbridge", "monitor", "--config-dir", str(d),
                 "--state-dir", str(d), "-D", *args], d, "monitor")


def nutbridge(*args: str, d: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nutbridge", *args], env=_env(d),
                          capture_output=True, text=True, timeout=timeout)


# ---- talking to upsd --------------------------------------------------------------------------
def get(port: int, ups: str, var: str) -> str:
    ans = ask(port, f"GET VAR {ups} {var}")
    m = re.fullmatch(rf'VAR {ups} {re.escape(var)} "(.*)"\n', ans)
    assert m, ans
    return m.group(1)


def status(port: int, ups: str) -> list[str]:
    return get(port, ups, "ups.status").split()


def numlogins(port: int, ups: str) -> int:
    return int(ask(port, f"GET NUMLOGINS {ups}").split()[-1])


def admin(port: int, *lines: str) -> None:
    ans = ask(port, *ADMIN, *lines)
    assert ans.splitlines() == ["OK"] * (2 + len(lines)), ans


def set_status(port: int, ups: str, value: str) -> None:
    admin(port, f'SET VAR {ups} ups.status "{value}"')
    until(f"{ups} status {value}", lambda: get(port, ups, "ups.status").endswith(value), 5, 0.05)


def wait_status(port: int, ups: str, pred: Callable[[list[str]], bool], what: str,
                timeout: float = 15.0) -> float:
    """Wait until ups.status satisfies pred; returns when (time.monotonic())."""
    until(f"{ups}: {what} (status now {status(port, ups)})", lambda: pred(status(port, ups)),
          timeout, 0.05)
    return time.monotonic()


def sim_config(root: Path) -> NutConfig:
    cfg = NutConfig(root)
    cfg.add_ups("sim", driver="nutbridge-sim", port="simulated", simspeed=str(SIMSPEED),
                pollinterval="0.2", offdelay="150", ondelay="100")
    cfg.etc.mkdir(parents=True, exist_ok=True)
    return cfg


def dummy_config(root: Path, *names: str) -> NutConfig:
    cfg = NutConfig(root)
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / f"{name}.dev").write_text("ups.status: OL\nbattery.charge: 100\n")
        cfg.add_ups(name, driver="dummy-ups", port=str(root / f"{name}.dev"), pollinterval="0.2")
    cfg.etc.mkdir(parents=True, exist_ok=True)
    return cfg


def history(state: Path) -> list[dict[str, Any]]:
    """The bridge's event history (docs/events.md), oldest first."""
    return [rec for rec, _ in read_file(state / "events.jsonl").records]


def in_order(events: list[dict[str, Any]], *wanted: Callable[[dict[str, Any]], bool]) -> None:
    """Each predicate matches an event after the one the previous predicate matched."""
    i = 0
    for n, pred in enumerate(wanted):
        while i < len(events) and not pred(events[i]):
            i += 1
        assert i < len(events), f"event #{n} of the expected timeline not found in order:\n" + \
            "\n".join(f"{e['seq']} {e['kind']} {e.get('ups')} {e['detail']}" for e in events)
        i += 1


def ev(kind: str, detail: str = "", **fields: object) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (e["kind"] == kind and detail in str(e["detail"])
                      and all(e.get(k) == v for k, v in fields.items()))


# ---- 1. the outage, end to end ----------------------------------------------------------------
def test_outage_end_to_end(bridge_server: Callable[..., BridgeServer], tmp_path: Path) -> None:
    """Mains lost -> OB -> LB -> our primary (inside serve) sets FSD -> the real upsmon
    secondary shuts down and logs out -> our primary shuts down -> killpower ->
    the UPS cuts its output after offdelay -> mains returns -> output back on."""
    marks = Marks(tmp_path / "marks")
    cfg = sim_config(tmp_path / "bridge")
    sysname = f"sim@127.0.0.1:{cfg.port}"
    write_upsmon_conf(cfg.etc, [f"{sysname} 1 monprimary mp primary"], marks, "ours",
                      HOSTSYNC=8, FINALDELAY=1)
    state = tmp_path / "state"
    bridge_server(cfg, args=["--state-dir", str(state)])
    # LB while a good part of the battery is left, so it does not run flat during the test
    admin(cfg.port, "SET VAR sim battery.runtime.low 1500")
    sec = tmp_path / "secondary"
    write_upsmon_conf(sec, [f"{sysname} 1 monsecondary ms secondary"], marks, "real", HOSTSYNC=20)
    with running(real_upsmon(sec)) as upsmon:
        until("both monitors logged in", lambda: numlogins(cfg.port, "sim") == 2, 15)
        admin(cfg.port, "INSTCMD sim test.failure.start")
        real_down = marks.wait("real", "shutdown", timeout=30)
        assert upsmon.wait(10) == 0
        ours_down = marks.wait("ours", "shutdown", timeout=15)
    until("monitors gone", lambda: numlogins(cfg.port, "sim") == 0, 5)

    onbatt = marks.wait("ours", "notify", "ONBATT")
    lowbatt = marks.wait("ours", "notify", "LOWBATT")
    real_fsd = marks.wait("real", "notify", "FSD")
    shutdown_notify = marks.wait("ours", "notify", "SHUTDOWN")
    # (upsmon runs each NOTIFYCMD in a child of its own: its FSD notify may land after its
    # SHUTDOWNCMD, so those two are not ordered here)
    assert onbatt.t < lowbatt.t < min(real_fsd.t, real_down.t), marks.all()
    assert max(real_fsd.t, real_down.t) < ours_down.t, marks.all()
    assert shutdown_notify.t < ours_down.t
    # our primary waited for the secondary's logout, not for HOSTSYNC (8 s)
    assert ours_down.t - real_down.t < 4.0, (real_down, ours_down)
    assert onbatt.key() == ("notify", "ONBATT", sysname, 1, f"UPS {sysname} on battery")
    assert shutdown_notify.key() == ("notify", "SHUTDOWN", "", 1, "Auto logout and shutdown proceeding")
    assert "FSD" in status(cfg.port, "sim")
    # the primary wrote upsmon's power-down flag, which -K reports
    assert (cfg.etc / "killpower").read_text() == MAGIC
    assert nutbridge("monitor", "-K", "--config-dir", str(cfg.etc), d=tmp_path).returncode == 0

    # killpower, as at the end of the host's shutdown: the running bridge does it
    started = time.monotonic()
    kp = nutbridge("killpower", "--state-dir", str(state), d=tmp_path)
    assert kp.returncode == 0, kp.stderr
    assert kp.stdout.strip() == "sim: OK: shutdown.return", kp.stdout
    assert "OFF" not in status(cfg.port, "sim")
    assert int(get(cfg.port, "sim", "ups.delay.shutdown")) == 150  # ups.conf offdelay
    assert int(get(cfg.port, "sim", "ups.timer.shutdown")) > 0
    off = wait_status(cfg.port, "sim", lambda s: "OFF" in s, "output off")
    assert off - started >= 0.6 * 150 / SIMSPEED
    assert get(cfg.port, "sim", "ups.realpower") == "0"
    # still off while mains is out; back on ondelay after it returns
    time.sleep(0.5)
    assert "OFF" in status(cfg.port, "sim")
    admin(cfg.port, "INSTCMD sim test.failure.stop")
    returned = time.monotonic()
    on = wait_status(cfg.port, "sim", lambda s: "OL" in s and "OFF" not in s, "load back on")
    assert on - returned >= 0.6 * 100 / SIMSPEED
    assert int(get(cfg.port, "sim", "ups.realpower")) > 0
    # the same timeline in the bridge's event history
    in_order(history(state),
             ev("command", "test.failure.start", user="admin"),
             ev("power", "on battery", ups="sim"),
             ev("monitor", event="notify", type="ONBATT", ups=sysname),
             ev("power", "low battery", ups="sim"),
             ev("monitor", event="shutdown", step="begin"),
             ev("fsd", user="monprimary", ups="sim"),
             ev("monitor", event="notify", type="SHUTDOWN_HOSTSYNC"),
             ev("monitor", event="shutdown", step="secondaries_gone"),
             ev("monitor", event="notify", type="SHUTDOWN", ups=None),
             ev("monitor", event="shutdown", step="powerdownflag"),
             ev("monitor", event="shutdown", step="shutdowncmd"),
             ev("monitor", "killpower sent: shutdown.return", event="killpower", ups="sim"),
             ev("power", "output off", ups="sim"),
             ev("command", "test.failure.stop"),
             ev("power", "output on", ups="sim"))


# ---- 2. mains returns mid-shutdown (NUT #3229) --------------------------------------------------
def test_killpower_on_mains_power_cycles(bridge_server: Callable[..., BridgeServer], tmp_path: Path) -> None:
    """Mains came back before killpower: a plain "return" would leave the load dark on
    many UPSes, so the UPS power-cycles (off after offdelay, on after ondelay)."""
    cfg = sim_config(tmp_path / "bridge")
    marks = Marks(tmp_path / "marks")
    write_upsmon_conf(cfg.etc, [f"sim@127.0.0.1:{cfg.port} 1 monprimary mp primary"], marks, "ours")
    state = tmp_path / "state"
    srv = bridge_server(cfg, args=["--state-dir", str(state), "--no-monitor"])
    admin(cfg.port, "INSTCMD sim test.failure.start")
    wait_status(cfg.port, "sim", lambda s: "OB" in s, "on battery", 5)
    admin(cfg.port, "INSTCMD sim test.failure.stop")
    wait_status(cfg.port, "sim", lambda s: "OL" in s, "on line", 5)

    kp = nutbridge("killpower", "--state-dir", str(state), "nosuch", d=tmp_path)
    assert (kp.returncode, kp.stdout) == (1, ""), kp
    assert "no local UPS to power off named nosuch" in kp.stderr
    assert get(cfg.port, "sim", "ups.timer.shutdown") == "-1"
    started = time.monotonic()
    kp = nutbridge("killpower", "--state-dir", str(state), "sim", d=tmp_path)
    assert kp.returncode == 0, kp.stderr
    assert kp.stdout.strip() == "sim: OK: shutdown.reboot", kp.stdout
    off = wait_status(cfg.port, "sim", lambda s: "OFF" in s, "output off")
    assert off - started >= 0.6 * 150 / SIMSPEED
    on = wait_status(cfg.port, "sim", lambda s: "OFF" not in s, "output back on by itself")
    assert on - off >= 0.6 * 100 / SIMSPEED
    assert "OL" in status(cfg.port, "sim") and marks.all() == []
    assert srv.stop() == 0
    assert "power-down flag" not in srv.log()  # no flag: stopping does not kill the power

    # a bridge kills the power by itself when it stops while the power-down flag is set
    (cfg.etc / "killpower").write_text(MAGIC)
    srv = bridge_server(cfg, args=["--state-dir", str(state), "--no-monitor"])
    assert (state / "nutbridge.pid").read_text().strip() == str(srv.proc.pid)
    assert srv.stop() == 0
    log = srv.log()
    assert re.search(r"power-down flag .*killpower is set", log), log
    assert "UPS [sim]: killpower: shutdown.reboot" in log, log
    assert not (state / "nutbridge.pid").exists()
    # no bridge running: killpower starts the drivers of ups.conf itself
    kp = nutbridge("killpower", "--state-dir", str(state), "--config-dir", str(cfg.etc), d=tmp_path)
    assert (kp.returncode, kp.stdout.strip()) == (0, "sim: OK: shutdown.reboot"), kp.stderr


# ---- 3. our monitor as the secondary of NUT's upsd + upsmon ---------------------------------------
def rewrite(dev: Path, text: str) -> None:
    """New .dev contents for the C dummy-ups, which re-reads the file when its mtime (in
    whole seconds) changes: two writes within one second would look like one."""
    mtime = dev.stat().st_mtime
    dev.write_text(text)
    new = max(mtime + 1, time.time())
    os.utime(dev, (new, new))


def test_secondary_of_c_upsd_follows_real_primary(tmp_path: Path) -> None:
    realnut.require_daemon("dummy-ups")
    marks = Marks(tmp_path / "marks")
    dev = tmp_path / "ups.dev"
    dev.write_text("ups.status: OL\nbattery.charge: 100\n")
    cfg = NutConfig(tmp_path / "c")
    cfg.add_ups("ups", driver="dummy-ups", port=str(dev), pollinterval="1")
    sysname = f"ups@127.0.0.1:{cfg.port}"
    with realnut.c_upsd(cfg):
        prim = tmp_path / "primary"
        write_upsmon_conf(prim, [f"{sysname} 1 monprimary mp primary"], marks, "real", HOSTSYNC=10)
        ours_dir = tmp_path / "ours"
        write_upsmon_conf(ours_dir, [f"{sysname} 1 monsecondary ms secondary"], marks, "ours",
                          HOSTSYNC=10)
        with running(real_upsmon(prim)) as upsmon, running(our_monitor(ours_dir)) as ours:
            until("both monitors logged in", lambda: numlogins(cfg.port, "ups") == 2, 15)
            rewrite(dev, "ups.status: OB\nbattery.charge: 50\n")
            marks.wait("ours", "notify", "ONBATT")
            marks.wait("real", "notify", "ONBATT")
            rewrite(dev, "ups.status: OB LB\nbattery.charge: 5\n")
            ours_down = marks.wait("ours", "shutdown", timeout=20)
            assert ours.wait(10) == 0
            real_down = marks.wait("real", "shutdown", timeout=10)
            assert upsmon.wait(10) == 0
    # the real primary did not have to wait out HOSTSYNC (10 s) for us
    assert 0 < real_down.t - ours_down.t < 4.0, marks.all()
    assert marks.wait("ours", "notify", "FSD").key() == (
        "notify", "FSD", sysname, 1, f"UPS {sysname}: forced shutdown in progress")
    assert not (ours_dir / "killpower").exists()  # a secondary leaves killpower to the primary
    assert "Traceback" not in ours.log()


# ---- 4. redundant supplies ---------------------------------------------------------------------
def test_redundant_supplies(bridge_server: Callable[..., BridgeServer], tmp_path: Path) -> None:
    """MINSUPPLIES 1 with two UPS of power value 1: one critical is fine, two are not."""
    marks = Marks(tmp_path / "marks")
    cfg = dummy_config(tmp_path / "bridge", "a", "b")
    bridge_server(cfg)
    d = tmp_path / "ours"
    write_upsmon_conf(d, [f"a@127.0.0.1:{cfg.port} 1 monprimary mp primary",
                          f"b@127.0.0.1:{cfg.port} 1 monprimary mp primary"], marks, "ours",
                      MINSUPPLIES=1)
    with running(our_monitor(d)) as mon:
        until("logged in", lambda: numlogins(cfg.port, "a") == numlogins(cfg.port, "b") == 1, 15)
        set_status(cfg.port, "a", "OB LB")
        marks.wait("ours", "notify", "LOWBATT")
        time.sleep(3)  # three more poll rounds
        assert marks.of("ours", "shutdown") == [] and mon.p.poll() is None
        assert "FSD" not in status(cfg.port, "a")
        set_status(cfg.port, "b", "OB LB")
        marks.wait("ours", "shutdown", timeout=10)
        assert mon.wait(10) == 0
    assert status(cfg.port, "a")[0] == status(cfg.port, "b")[0] == "FSD"
    assert [m.ups for m in marks.of("ours", "notify", "LOWBATT")] == [
        f"a@127.0.0.1:{cfg.port}", f"b@127.0.0.1:{cfg.port}"]


# ---- 5. NOTIFYCMD: the same calls as upstream's upsmon ---------------------------------------------
def test_notify_matches_real_upsmon(bridge_server: Callable[..., BridgeServer], tmp_path: Path) -> None:
    marks = Marks(tmp_path / "marks")
    cfg = dummy_config(tmp_path / "bridge", "ups")
    bridge_server(cfg)
    mon = [f"ups@127.0.0.1:{cfg.port} 1 monsecondary ms secondary"]
    write_upsmon_conf(tmp_path / "real", mon, marks, "real")
    write_upsmon_conf(tmp_path / "ours", mon, marks, "ours")
    with running(real_upsmon(tmp_path / "real")) as real, \
            running(our_monitor(tmp_path / "ours")) as ours:
        until("both logged in", lambda: numlogins(cfg.port, "ups") == 2, 15)
        before = 0
        for value, expected in [("OB", 1), ("OL", 2), ("OL LB", 3), ("OL", 3), ("OL RB", 4)]:
            set_status(cfg.port, "ups", value)
            if expected == before:
                time.sleep(2)  # nothing to notify: give both two poll rounds to prove it
            for tag in ("real", "ours"):
                until(f"{expected} notifications from {tag} after {value}: {marks.all()}",
                      lambda tag=tag, n=expected: len(marks.of(tag)) >= n, 10)
            before = expected
        assert ask(cfg.port, *ADMIN, "FSD ups").splitlines() == ["OK", "OK", "OK FSD-SET"]
        for tag in ("real", "ours"):
            marks.wait(tag, "shutdown", timeout=10)
        assert real.wait(10) == 0 and ours.wait(10) == 0
    time.sleep(0.3)  # NOTIFYCMD children may still be writing

    def calls(tag: str) -> list[tuple[str, str, str, int, str]]:
        # FSD and SHUTDOWN notify children race with each other and SHUTDOWNCMD
        ms = marks.of(tag)
        head = [m.key() for m in ms if m.type not in ("FSD", "SHUTDOWN") and m.kind == "notify"]
        tail = sorted(m.key() for m in ms if m.type in ("FSD", "SHUTDOWN") or m.kind == "shutdown")
        return head + tail

    assert calls("ours") == calls("real")
    assert [c[1] for c in calls("ours")] == ["ONBATT", "ONLINE", "LOWBATT", "REPLBATT",
                                             "FSD", "SHUTDOWN", ""], calls("ours")


# ---- 6. the command line -----------------------------------------------------------------------
def test_command_line(bridge_server: Callable[..., BridgeServer], tmp_path: Path) -> None:
    marks = Marks(tmp_path / "marks")
    cfg = dummy_config(tmp_path / "bridge", "ups")
    srv = bridge_server(cfg)
    sysname = f"ups@127.0.0.1:{cfg.port}"
    d = tmp_path / "ours"
    write_upsmon_conf(d, [f"{sysname} 1 monprimary mp primary"], marks, "ours")
    flag = d / "killpower"

    def k() -> int:
        return nutbridge("monitor", "-K", "--config-dir", str(d), d=d).returncode

    # -K: 0 only when the flag holds upsmon's magic
    assert k() == 1
    flag.write_text(MAGIC)
    assert k() == 0
    flag.write_text("something else")
    assert k() == 1
    # -c without a running monitor
    r = nutbridge("monitor", "-c", "fsd", "--state-dir", str(d), d=d)
    assert r.returncode == 1 and "no running monitor" in r.stderr
    # killpower without a bridge, on a UPS that cannot cut its power: it says so, exit 1
    r = nutbridge("killpower", "--config-dir", str(cfg.etc), "--state-dir", str(d), d=d)
    assert r.returncode == 1 and r.stdout.startswith("ups: FAILED: the UPS offers none of"), r

    # -c fsd: the running primary sets FSD and shuts down; a leftover flag was removed at start
    with running(our_monitor(d)) as mon:
        until("logged in", lambda: numlogins(cfg.port, "ups") == 1, 15)
        assert not flag.exists()
        assert nutbridge("monitor", "-c", "fsd", "--state-dir", str(d), d=d).returncode == 0
        marks.wait("ours", "shutdown", timeout=10)
        assert mon.wait(10) == 0
    assert status(cfg.port, "ups")[0] == "FSD"
    assert k() == 0

    # FSD is latched in upsd: a monitor started now (even a secondary) shuts down at once
    marks.path.unlink()
    d2 = tmp_path / "late"
    write_upsmon_conf(d2, [f"{sysname} 1 monsecondary ms secondary"], marks, "late")
    started = time.time()
    with running(our_monitor(d2)) as late:
        down = marks.wait("late", "shutdown", timeout=10)
        assert late.wait(10) == 0
    assert down.t - started < 5
    assert sorted(m.type for m in marks.of("late", "notify")) == ["FSD", "SHUTDOWN"]

    # configuration errors: file:line, exit 2, no traceback (monitor and serve alike)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "upsmon.conf").write_text("MINSUPPLIES 1\nMONITOR ups@localhost 1 monuser\n")
    r = nutbridge("monitor", "--config-dir", str(bad), d=bad)
    assert r.returncode == 2 and f"{bad}/upsmon.conf:2:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = nutbridge("monitor", "-K", "--config-dir", str(bad), d=bad)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (cfg.etc / "upsmon.conf").write_text("POLLFREQ soon\n")
    r = nutbridge("serve", "--config-dir", str(cfg.etc), d=cfg.etc)
    assert r.returncode == 2 and f"{cfg.etc}/upsmon.conf:1:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = nutbridge("monitor", "--config-dir", str(tmp_path / "nowhere"), d=bad)
    assert r.returncode == 2 and "upsmon.conf" in r.stderr and "Traceback" not in r.stderr
    assert srv.proc.poll() is None


# ---- 7. the monitor inside `nutbridge serve` ----------------------------------------------------
def test_monitor_inside_serve(bridge_server: Callable[..., BridgeServer], tmp_path: Path) -> None:
    """`monitor -c` reaches the monitor of a bridge: reload, fsd; stop is refused (it
    would stop the bridge). After the shutdown the bridge keeps serving."""
    marks = Marks(tmp_path / "marks")
    cfg = dummy_config(tmp_path / "bridge", "ups")
    sysname = f"ups@127.0.0.1:{cfg.port}"
    conf = write_upsmon_conf(cfg.etc, [f"{sysname} 1 monprimary mp primary"], marks, "ours")
    state = tmp_path / "state"
    srv = bridge_server(cfg, args=["--state-dir", str(state)])
    until("monitor logged in", lambda: numlogins(cfg.port, "ups") == 1, 10)
    assert (state / "nutbridge-monitor.pid").read_text().strip() == str(srv.proc.pid)

    def command(cmd: str) -> subprocess.CompletedProcess[str]:
        return nutbridge("monitor", "-c", cmd, "--state-dir", str(state), d=tmp_path)

    r = command("stop")
    assert r.returncode == 1 and "inside 'nutbridge serve'" in r.stderr, r.stderr
    # reload (SIGHUP): a new NOTIFYMSG applies; the connection is kept
    conf.write_text(conf.read_text() + 'NOTIFYMSG ONBATT "mains lost on %s"\n')
    assert command("reload").returncode == 0
    until("reloaded", lambda: "configuration reloaded" in srv.log(), 5)
    set_status(cfg.port, "ups", "OB")
    assert marks.wait("ours", "notify", "ONBATT").msg == f"mains lost on {sysname}"
    assert numlogins(cfg.port, "ups") == 1
    # fsd (SIGUSR1): FSD on the UPS, SHUTDOWNCMD; the bridge goes on serving
    assert command("fsd").returncode == 0
    marks.wait("ours", "shutdown", timeout=10)
    assert status(cfg.port, "ups") == ["FSD", "OB"]
    until("monitor gone", lambda: numlogins(cfg.port, "ups") == 0, 5)
    until("monitor pid file removed", lambda: not (state / "nutbridge-monitor.pid").exists(), 5)
    assert command("fsd").returncode == 1
    assert srv.proc.poll() is None and (cfg.etc / "killpower").read_text() == MAGIC
    # the host now stops its services: the bridge kills the power on its way out (a
    # dummy-ups has no command for that, which it reports) and still exits cleanly
    assert srv.stop() == 0
    assert "is set: killing the power before exiting" in srv.log()
    assert "UPS [ups]: killpower failed: the UPS offers none of" in srv.log()


# ---- 8. which commands killpower picks ------------------------------------------------------------
def test_killpower_command_choice(tmp_path: Path) -> None:
    """Without shutdown.return/reboot, killpower falls back on the delayed load commands;
    the on-timer outlasts the off-timer (both count from the command)."""
    cfg = NutConfig(tmp_path / "nut")
    cfg.root.mkdir(parents=True)
    devs = {
        "cycle": "ups.status: OL\nups.delay.shutdown: 20\nups.delay.start: 30\n"
                 "#CMD:load.off.delay\n#CMD:load.on.delay\n#CMD:shutdown.return\n",
        "onbatt": "ups.status: OB DISCHRG\n#CMD:shutdown.return\n#CMD:shutdown.reboot\n",
        "offonly": "ups.status: OB\n#CMD:load.off.delay\n",
    }
    for name, text in devs.items():
        (cfg.root / f"{name}.dev").write_text(text)
        cfg.add_ups(name, driver="dummy-ups", port=str(cfg.root / f"{name}.dev"))
    cfg.ups["offonly"]["offdelay"] = "90"  # ups.conf's offdelay wins over the UPS's own value
    cfg.write()
    r = nutbridge("killpower", "--config-dir", str(cfg.etc), "--state-dir", str(cfg.run), d=cfg.run)
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == [
        "cycle: OK: load.off.delay 20, load.on.delay 50",
        "onbatt: OK: shutdown.return",
        "offonly: OK: load.off.delay 90",
    ]
    assert "only load.off.delay is available" in r.stderr
