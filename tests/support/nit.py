"""NUT's integration-test sandbox (``tests/NIT/nit.sh``), for tests/test_nit.py.

What nit.sh sets up (../shared/docs/nut-protocol.md §7.1), reproduced on :class:`NutConfig`
(whose ``env()`` gives NUT_CONFPATH, NUT_STATEPATH, NUT_ALTPIDPATH...):

* upsd.conf: ``STATEPATH``, ``LISTEN localhost <port>`` plus ``LISTEN 127.0.0.1`` and ``LISTEN ::1``
  on the same port (where usable), ``ALLOW_NO_DEVICE true`` for the sandbox;
* upsd.users: nit.sh's users and passwords (admin, tester, the upsmon primary/master and
  secondary/slave accounts);
* ups.conf: ``maxretry = 3``, ``maxstartdelay = 1`` (2.8.5's script), ``[dummy]`` on
  ``dummy.seq`` (OB, TIMER 5, OL, TIMER 5) with ``desc = "Crash Dummy"``; what nit.sh adds from
  a NUT source tree is taken from the NUT DDL instead: ``[UPS1]`` a sequence on an Evolution 500
  dump (upstream's ``evolution500.seq``), ``[UPS2]`` an ePDU dump in ``mode = dummy-once``
  (``epdu-managed.dev``), both with nit.sh's fix-up of an empty ``ups.status`` to ``OL BOOST``.

:class:`Daemons` starts and stops the processes of a scenario (every one is stopped at the end,
and each one's exit code is kept); :func:`upsd_argv` is the command line of either upsd.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support import realnut
from tests.support.realnut import NutConfig

TESTPASS_ADMIN = "mypass"
TESTPASS_TESTER = "pass words"
TESTPASS_UPSMON_PRIMARY = "P@ssW0rdAdm"
TESTPASS_UPSMON_SECONDARY = "P@ssW0rd"

NIT_USERS = f"""\
[admin]
    password = {TESTPASS_ADMIN}
    actions = SET
    instcmds = ALL

[tester]
    password = "{TESTPASS_TESTER}"
    instcmds = test.battery.start
    instcmds = test.battery.stop

[dummy-admin-m]
    password = "{TESTPASS_UPSMON_PRIMARY}"
    upsmon master

[dummy-admin]
    password = "{TESTPASS_UPSMON_PRIMARY}"
    upsmon primary

[dummy-user-s]
    password = "{TESTPASS_UPSMON_SECONDARY}"
    upsmon slave

[dummy-user]
    password = "{TESTPASS_UPSMON_SECONDARY}"
    upsmon secondary
"""

DUMMY_SEQ = "ups.status: OB\nTIMER 5\nups.status: OL\nTIMER 5\n"
UPS1_DDL = "MGE_UPS_SYSTEMS/MGE_UPS_SYSTEMS__Pulsar_Evolution_500__usbhid-ups__2.7.2__01.dev"
UPS2_DDL = "Eaton/Eaton__ePDU_Managed_Aphel__snmp-ups__2.6.1__01.dev"
# the events of upstream's evolution500.seq, on the Evolution 500 dump
UPS1_EVENTS = "TIMER 5\nups.status: OB DISCHRG\nTIMER 5\nups.status: OL CHRG\nTIMER 5\n"

REPO = realnut.REPO
NUTCLIENT_PROBE = Path(__file__).resolve().parent / "nit_nutclient.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def nut_release() -> tuple[int, ...]:
    return tuple(int(x) for x in realnut.nut_version().split(".") if x.isdigit())


def ipv6_loopback() -> bool:
    """Can ::1 be listened on (nit.sh adds ``LISTEN ::1`` when it resolves or answers)?"""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def _fix_status(text: str) -> str:
    # nit.sh: an empty ups.status becomes "OL BOOST"; a file without one gets it appended
    lines = ["ups.status: OL BOOST" if ln.strip() in ("ups.status:", "ups.status") else ln
             for ln in text.splitlines()]
    if not any(ln.startswith("ups.status:") for ln in lines):
        lines.append("ups.status: OL BOOST")
    return "\n".join(lines) + "\n"


@dataclass
class NitConfig(NutConfig):
    """nit.sh's files. ``statepath``: upsd.conf's STATEPATH (default: this config's run dir;
    another config's run dir lets two upsd serve the same drivers)."""

    users: str = NIT_USERS
    statepath: Path | None = None
    upsd_lines: str = ""  # more upsd.conf lines (MAXAGE ...)
    # nit.sh's hints for upsdrvctl (maxstartdelay = 1: 2.8.5's script, whose upsdrvctl -F does
    # not wait; too short for a driver that upsdrvctl starts in the background)
    startdelay_hint: bool = True

    @property
    def state(self) -> Path:
        return self.statepath or self.run

    def prepare(self) -> None:
        """The directories, without any configuration file (nit.sh's first case)."""
        self.etc.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(parents=True, exist_ok=True)
        self.run.chmod(0o750)

    def write_upsd_conf(self, allow_no_device: bool = False) -> None:
        lines = [f'STATEPATH "{self.state}"', f"LISTEN localhost {self.port}",
                 f"LISTEN 127.0.0.1 {self.port}"]
        if ipv6_loopback():
            lines.append(f"LISTEN ::1 {self.port}")
        if allow_no_device:
            lines.append("ALLOW_NO_DEVICE true")
        self._put("upsd.conf", "\n".join(lines) + "\n" + self.upsd_lines)

    def write_users(self) -> None:
        self._put("upsd.users", self.users)

    def write_ups_conf(self, devices: bool = True) -> None:
        text = "maxretry = 3\n" + ("maxstartdelay = 1\n" if self.startdelay_hint else "")
        if devices:
            ddl = realnut.require_path(realnut.DDL_DIR, "the NUT DDL corpus")
            (self.etc / "dummy.seq").write_text(DUMMY_SEQ)
            ups1 = _fix_status((ddl / UPS1_DDL).read_text(errors="replace"))
            ups2 = _fix_status((ddl / UPS2_DDL).read_text(errors="replace"))
            (self.etc / "evolution500.seq").write_text(ups1 + UPS1_EVENTS)
            (self.etc / "epdu-managed.dev").write_text(ups2)
            text += ('[dummy]\n    driver = dummy-ups\n    desc = "Crash Dummy"\n    port = dummy.seq\n'
                     "    #mode = dummy-loop\n\n"
                     '[UPS1]\n    driver = dummy-ups\n    desc = "Example event sequence"\n'
                     "    port = evolution500.seq\n\n"
                     '[UPS2]\n    driver = dummy-ups\n    desc = "Example ePDU data dump"\n'
                     "    port = epdu-managed.dev\n    mode = dummy-once\n")
        self._put("ups.conf", text)

    def write(self) -> Path:
        """The sandbox: every file, ALLOW_NO_DEVICE true (as nit.sh's sandbox)."""
        self.prepare()
        self.write_upsd_conf(allow_no_device=True)
        self.write_users()
        self.write_ups_conf()
        return self.etc

    def _put(self, name: str, text: str) -> None:
        path = self.etc / name
        path.write_text(text)
        path.chmod(0o640)

    def bridge_env(self) -> dict[str, str]:
        env = self.env()
        env["PYTHONPATH"] = str(REPO / "bridge") + os.pathsep + env.get("PYTHONPATH", "")
        return env


IMPLEMENTATIONS = ("c", "bridge")


def upsd_argv(impl: str, *args: str) -> list[str]:
    """The command line of the C upsd or of ``nutbridge upsd`` (same arguments)."""
    if impl == "c":
        return [realnut.require_daemon("upsd"), *args]
    return [sys.executable, "-m", "nutbridge", "upsd", *args]


def upsd_env(impl: str, cfg: NitConfig) -> dict[str, str]:
    return cfg.env() if impl == "c" else cfg.bridge_env()


class Daemons:
    """The processes of one scenario, by name; :meth:`close` stops what still runs."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.codes: dict[str, int] = {}

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        assert name not in self.procs or self.procs[name].poll() is not None, name
        with open(self.logdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        try:
            return (self.logdir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def send(self, name: str, sig: int) -> None:
        self.procs[name].send_signal(sig)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal ``name`` (SIGTERM) and return its exit code (killed after ``timeout``: -9)."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.codes[name] = proc.returncode
        return proc.returncode

    def close(self) -> None:
        for name, proc in reversed(self.procs.items()):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)  # a SIGSTOPped driver must see its SIGTERM
                self.stop(name)


def unix_listening(path: Path) -> bool:
    """Is a Unix socket bound at ``path`` listening yet (/proc/net/unix flag __SO_ACCEPTCON)?
    Asked of the kernel rather than by connecting: a 2.8.0 driver busy-loops after a client that
    connected goes away."""
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return path.exists()
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == str(path) and int(fields[3], 16) & 0x10000:
            return True
    return False


def wait_for(cond: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``cond()`` until it is true; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def tool(name: str, *args: str, env: Mapping[str, str] | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """Run a NUT client (upsc, upscmd, upsrw, upslog...) of the installed release."""
    return realnut.run_tool([realnut.require_client(name), *args], env=env, timeout=timeout)
