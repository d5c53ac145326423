"""NUT's integration scenarios (``tests/NIT/nit.sh``) with ``nutbridge upsd`` in upsd's place.

What nit.sh does (../shared/docs/nut-protocol.md §7.1; the release's own script: 2.8.0 on the
host, 2.8.5 under sid), with the real C ``dummy-ups`` started the way nit.sh starts it
(``upsdrvctl -F start dummy`` where upsdrvctl has ``-F``, else ``dummy-ups -a dummy -F``;
``dummy-ups -a UPSn -F``), and the C upsd doing the same next to ours, answer for answer:

* the configuration edge cases: no configuration, no ups.conf, no device -> exit code 1;
  ``ALLOW_NO_DEVICE`` -> runs, ``upsc -l`` empty (``-j``: ``[]``), exit code 0 on SIGTERM;
* the sandbox: upsd alone (``upsc -l`` is ``dummy UPS1 UPS2``, ``Error: Driver not
  connected``), drivers started after upsd, WAIT until a driver's first dump (a driver held
  with SIGSTOP: deterministic), the queries (``device.model``, a bogus variable), upslog over
  dummy.seq seeing OB and OL, NIT's Python client test (PyNUT) with each user, SET/INSTCMD with
  TRACKING through to the driver, exit code 0 on SIGTERM;
* beyond nit.sh, what the upsd role promises: DATA-STALE per MAXAGE and recovery, a driver
  stopped and started again by ``upsdrvctl``, upsd's command line (``-FF`` PID file, the
  background, ``-c reload|stop``, ``-P``, a second instance refused, SIGHUP reload) and
  Debian's nut-server unit (``upsd -F`` as root switching to ``nut``, ``-c reload -P $MAINPID``).

Both servers read copies of the same files (their upsd.conf differ only in the port) and serve
the *same* driver processes (one STATEPATH), so their answers can be compared byte for byte at
the same moment; ``driver.state`` (NUT 2.8.5's driver core flips it every poll) is masked, and
a comparison caught by one of dummy.seq's OB/OL flips is taken again.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.support import nit, realnut
from tests.support.nit import IMPLEMENTATIONS, Daemons, NitConfig, tool, upsd_argv, upsd_env, wait_for

pytestmark = [pytest.mark.interop, pytest.mark.slow]

NUT = nit.nut_release()
JSON = NUT >= (2, 8, 5)  # upsc -j
UPSDRVCTL_F = NUT >= (2, 8, 1)  # upsdrvctl -F start <ups>: becomes the driver, in the foreground


@pytest.fixture
def root() -> Iterator[Path]:
    """A short directory: driver sockets must fit in 108 bytes (nit.sh keeps under 80)."""
    path = Path(tempfile.mkdtemp(prefix="nit-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemons(root: Path) -> Iterator[Daemons]:
    d = Daemons(root)
    yield d
    d.close()


def pair(root: Path, upsd_lines: str = "", startdelay_hint: bool = NUT >= (2, 8, 5)) -> dict[str, NitConfig]:
    """The C upsd's configuration and ours; both serve the drivers of the C side's run dir."""
    c = NitConfig(root / "c", upsd_lines=upsd_lines, startdelay_hint=startdelay_hint)
    b = NitConfig(root / "b", statepath=c.run, upsd_lines=upsd_lines, startdelay_hint=startdelay_hint)
    for cfg in (c, b):
        cfg.write()
    return {"c": c, "bridge": b}


def start_upsd(d: Daemons, impl: str, cfg: NitConfig, *args: str) -> None:
    """``upsd -F -u root`` (nit.sh's ARG_USER for a root run whose daemons keep root)."""
    d.start(f"upsd-{impl}", upsd_argv(impl, "-F", "-u", "root", *args), upsd_env(impl, cfg))
    try:
        realnut.wait_port(cfg.port, timeout=20)
    except TimeoutError:
        pytest.fail(f"{impl} upsd did not listen:\n{d.log(f'upsd-{impl}')[-3000:]}")


def upsc(cfg: NitConfig, *args: str) -> subprocess.CompletedProcess[bytes]:
    """upsc of the installed release, without 2.8.0's "Init SSL" line on stderr (2.8.1+ drop it
    under NUT_QUIET_INIT_SSL, as nit.sh sets; it says nothing about the server)."""
    p = tool("upsc", *args, env=cfg.env())
    p.stderr = p.stderr.replace(b"Init SSL without certificate database\n", b"")
    return p


def both(cfgs: dict[str, NitConfig], *args: str, target: str | None = None,
         var: str | None = None) -> dict[str, tuple[int, bytes, bytes]]:
    """``upsc [args] <target@>localhost:<port> [var]`` against each server: (exit code, stdout,
    stderr)."""
    out = {}
    for impl, cfg in cfgs.items():
        where = f"{target}@localhost:{cfg.port}" if target else f"localhost:{cfg.port}"
        p = upsc(cfg, *args, where, *([var] if var else []))
        out[impl] = (p.returncode, p.stdout, p.stderr)
    return out


_MASK = [(re.compile(rb"^((?:VAR \S+ )?driver\.state:? )\"?[^\"\n]*\"?$", re.M), rb"\1<state>")]


def mask(data: bytes) -> bytes:
    for rx, rep in _MASK:
        data = rx.sub(rep, data)
    return data


def same(get: Callable[[], dict[str, object]], tries: int = 5) -> dict[str, object]:
    """``get()`` (answers per server) until both servers agree (a dummy.seq flip can fall
    between the two queries); the last answers, for the assertion."""
    answers = get()
    for _ in range(tries - 1):
        if answers["c"] == answers["bridge"]:
            break
        time.sleep(0.4)
        answers = get()
    return answers


converse = partial(realnut.converse, timeout=20.0)


def ups_script(ups: str, listing: bytes) -> list[str]:
    names = [ln.split(" ")[2] for ln in listing.decode(errors="replace").splitlines()
             if ln.startswith(f"VAR {ups} ")]
    lines = [f"LIST VAR {ups}", f"LIST RW {ups}", f"LIST CMD {ups}", f"GET UPSDESC {ups}",
             f"GET NUMLOGINS {ups}", f"LIST CLIENT {ups}", f"GET VAR {ups} ups.bogus.value"]
    for n in names:
        lines += [f"GET VAR {ups} {n}", f"GET TYPE {ups} {n}", f"GET DESC {ups} {n}",
                  f"LIST ENUM {ups} {n}", f"LIST RANGE {ups} {n}"]
    return lines


def compare_protocol(cfgs: dict[str, NitConfig], ups: str) -> None:
    """Every variable of ``ups`` (value, type, description, enums, ranges), its writable
    variables, commands, description and clients: the same bytes from both servers."""
    listing = converse(cfgs["c"].port, [f"LIST VAR {ups}"])
    assert listing.startswith(f"BEGIN LIST VAR {ups}\n".encode()), listing[:200]
    script = ups_script(ups, listing)
    answers = same(lambda: {impl: mask(converse(cfg.port, script)) for impl, cfg in cfgs.items()})
    want, got = answers["c"], answers["bridge"]
    assert isinstance(want, bytes) and isinstance(got, bytes)
    assert want.count(b"\nTYPE ") >= len(script) // 5 - 3  # the comparison has bitten
    assert got.decode(errors="replace").splitlines() == want.decode(errors="replace").splitlines()
    assert got == want


# ---- 1. nit.sh's testgroup_upsd_invalid_configs and testgroup_upsd_questionable_configs ---------


def test_upsd_config_edge_cases(root: Path, daemons: Daemons) -> None:
    """No upsd.conf, no ups.conf, no device: upsd exits 1; ALLOW_NO_DEVICE: it runs with an empty
    list and exits 0 on SIGTERM. The C upsd and ours, case by case."""
    realnut.require_daemon("upsd")
    seen: dict[str, list[object]] = {}
    for impl in IMPLEMENTATIONS:
        cfg = NitConfig(root / impl)
        cfg.prepare()
        argv, env = upsd_argv(impl, "-F", "-u", "root"), upsd_env(impl, cfg)
        steps: list[object] = []

        def refused(what: str, argv: list[str] = argv, env: dict[str, str] = env,
                    steps: list[object] = steps) -> str:
            p = subprocess.run(argv, env=env, capture_output=True, timeout=30)
            err = p.stderr.decode(errors="replace")
            assert p.returncode == 1, f"upsd started ({what}): {err}"
            steps.append((what, p.returncode))
            return err

        assert f"stat {cfg.etc / 'upsd.conf'}: No such file or directory" in refused("no configuration")
        cfg.write_upsd_conf()
        assert f"Can't open {cfg.etc / 'ups.conf'}" in refused("no ups.conf")
        cfg.write_ups_conf(devices=False)
        cfg.write_users()  # so that the device list is the only reason
        assert "at least one UPS must be defined in ups.conf" in refused("no device in ups.conf")

        cfg.write_upsd_conf(allow_no_device=True)
        start_upsd(daemons, impl, cfg)
        p = upsc(cfg, "-l", f"localhost:{cfg.port}")
        steps.append(("upsc -l", p.returncode, p.stdout, p.stderr))
        assert (p.returncode, p.stdout) == (0, b""), p.stderr
        if JSON:
            p = upsc(cfg, "-j", "-l", f"localhost:{cfg.port}")
            steps.append(("upsc -j -l", p.returncode, p.stdout))
            assert p.returncode == 0 and re.sub(rb"\s", b"", p.stdout) == b"[]", p.stdout
        code = daemons.stop(f"upsd-{impl}")
        assert code == 0, daemons.log(f"upsd-{impl}")
        steps.append(("SIGTERM", code))
        seen[impl] = steps
    assert seen["bridge"] == seen["c"]


# ---- 2. nit.sh's testgroup_sandbox -------------------------------------------------------------


def start_nit_drivers(d: Daemons, c: NitConfig, hold: str | None = None) -> None:
    """The drivers as nit.sh starts them: ``dummy`` through upsdrvctl in the foreground where
    it can (2.8.1+), else directly; UPS1 and UPS2 as ``dummy-ups -a UPSn -F``. ``hold``: that
    UPS's driver is started beside the state directory, stopped (SIGSTOP) once its socket
    exists and its socket then moved in: the upsd connect to a driver that does not answer."""
    dummy_ups = realnut.require_daemon("dummy-ups")
    env = c.env()
    if UPSDRVCTL_F:
        d.start("drv-dummy", [realnut.require_daemon("upsdrvctl"), "-F", "-u", "root", "start", "dummy"], env)
    else:
        d.start("drv-dummy", [dummy_ups, "-a", "dummy", "-F", "-u", "root"], env)
    for ups in ("UPS1", "UPS2"):
        if ups != hold:
            d.start(f"drv-{ups}", [dummy_ups, "-a", ups, "-u", "root", "-F"], env)
            continue
        side = c.root / "side"
        side.mkdir(exist_ok=True)
        proc = d.start(f"drv-{ups}", [dummy_ups, "-a", ups, "-u", "root", "-F"],
                       {**env, "NUT_STATEPATH": str(side), "NUT_ALTPIDPATH": str(side)})
        sock = side / f"dummy-ups-{ups}"
        wait_for(lambda sock=sock: nit.unix_listening(sock), 30, f"the socket of {ups}'s driver",
                 interval=0.01)
        proc.send_signal(signal.SIGSTOP)
        os.rename(sock, c.run / sock.name)


def wait_not_wait(cfgs: dict[str, NitConfig], ups: str, timeout: float = 90) -> None:
    """nit.sh's loop: until ``upsc <ups>`` answers without ``ups.status: WAIT``, on both."""
    for cfg in cfgs.values():
        def ready(cfg: NitConfig = cfg) -> bool:
            p = upsc(cfg, f"{ups}@localhost:{cfg.port}")
            return p.returncode == 0 and b"ups.status: WAIT" not in p.stdout
        wait_for(ready, timeout, f"{ups} to answer on port {cfg.port}", interval=1.0)


@pytest.mark.timeout(400)
def test_sandbox(root: Path, daemons: Daemons) -> None:
    realnut.require_daemon("upsd")
    cfgs = pair(root)
    c = cfgs["c"]
    for impl, cfg in cfgs.items():
        start_upsd(daemons, impl, cfg)

    # testcase_sandbox_start_upsd_alone: no driver yet
    answers = both(cfgs, "-l")
    assert answers["c"] == answers["bridge"] == (0, b"dummy\nUPS1\nUPS2\n", b"")
    answers = both(cfgs, target="dummy")
    assert answers["bridge"] == answers["c"]
    code, _, err = answers["bridge"]
    assert code != 0 and b"Error: Driver not connected" in err, answers
    if JSON:
        answers = both(cfgs, "-j", "-l")
        assert answers["c"] == answers["bridge"] == (0, b'[\n  "dummy",\n  "UPS1",\n  "UPS2"\n]\n', b"")
        answers = both(cfgs, "-j", target="dummy")
        assert answers["bridge"] == answers["c"]
        assert answers["bridge"][1] == b'{\n  "error": "Driver not connected"\n}\n'
    script = ["LIST UPS", "GET VAR dummy ups.status", "LIST VAR UPS1", "GET UPSDESC UPS2", "LIST CMD UPS2",
              "LIST CLIENT dummy", "GET NUMLOGINS UPS1", "GET TYPE UPS1 ups.status"]
    assert converse(cfgs["bridge"].port, script) == converse(c.port, script)

    # testcase_sandbox_start_drivers_after_upsd, with UPS2's driver held before its first dump
    start_nit_drivers(daemons, c, hold="UPS2")
    for cfg in cfgs.values():  # connected to a driver that has not dumped (yet within MAXAGE): WAIT
        wait_for(lambda cfg=cfg: upsc(cfg, f"UPS2@localhost:{cfg.port}", "ups.status").stdout == b"WAIT\n",
                 30, f"UPS2 WAIT on port {cfg.port}")
    answers = both(cfgs, target="UPS2")
    assert answers["bridge"] == answers["c"]
    assert answers["bridge"][:2] == (0, b"ups.status: WAIT\n"), answers
    assert converse(cfgs["bridge"].port, ["LIST VAR UPS2", "LIST CMD UPS2", "GET VAR UPS2 ups.id"]) == \
        converse(c.port, ["LIST VAR UPS2", "LIST CMD UPS2", "GET VAR UPS2 ups.id"])
    daemons.send("drv-UPS2", signal.SIGCONT)
    for ups in ("dummy", "UPS1", "UPS2"):
        wait_not_wait(cfgs, ups)

    # testcase_sandbox_upsc_query_model and _bogus
    for ups in ("UPS2", "UPS1", "dummy"):
        got = same(lambda ups=ups: {i: (a[0], mask(a[1]), a[2]) for i, a in both(cfgs, target=ups).items()})
        assert got["bridge"] == got["c"], ups
    answers = both(cfgs, target="dummy", var="device.model")
    assert answers["c"] == answers["bridge"] == (0, b"Dummy UPS\n", b"")
    answers = both(cfgs, target="dummy", var="ups.bogus.value")
    assert answers["bridge"] == answers["c"]
    assert answers["bridge"][0] != 0 and b"Error: Variable not supported by UPS" in answers["bridge"][2]
    if JSON:
        answers = both(cfgs, "-j", target="dummy", var="device.model")
        assert answers["c"] == answers["bridge"] == (0, b'"Dummy UPS"\n', b"")
        answers = both(cfgs, "-j", target="dummy", var="ups.bogus.value")
        assert answers["bridge"] == answers["c"]
    for ups in ("UPS2", "UPS1", "dummy"):
        compare_protocol(cfgs, ups)

    # testcase_sandbox_upsc_query_timer: upslog sees dummy.seq's OB and OL
    logs = run_upslogs(daemons, cfgs)
    for impl, text in logs.items():
        assert " [OB] " in text and " [OL] " in text, f"{impl}: {text}"

    # testcases_sandbox_python: NIT's PyNUT client test with each user
    for user, password in ((None, None), ("admin", nit.TESTPASS_ADMIN),
                           ("dummy-admin", nit.TESTPASS_UPSMON_PRIMARY)):
        results = {impl: nutclient(cfg, user, password) for impl, cfg in cfgs.items()}
        assert results["bridge"] == results["c"], user

    # SET and INSTCMD reach the C driver through either server, with TRACKING results
    check_tracking(cfgs)

    # the upsd exit with 0 on SIGTERM
    for impl in cfgs:
        assert daemons.stop(f"upsd-{impl}") == 0, daemons.log(f"upsd-{impl}")


def run_upslogs(d: Daemons, cfgs: dict[str, NitConfig], seconds: float = 16) -> dict[str, str]:
    """nit.sh's upslog (``-F -i 1``; 2.8.5: ``-d 30 -m dummy@...,file``; 2.8.0, which has
    neither, ``-s dummy@... -l file``) against each server for ``seconds``; the logs."""
    files = {}
    for impl, cfg in cfgs.items():
        log = cfg.run / "upslog-dummy.log"
        target = f"dummy@localhost:{cfg.port}"
        args = ["-d", "30", "-m", f"{target},{log}"] if NUT >= (2, 8, 2) else ["-s", target, "-l", str(log)]
        d.start(f"upslog-{impl}", [realnut.require_client("upslog"), "-F", "-i", "1", *args], cfg.env())
        files[impl] = log
    time.sleep(seconds)
    for impl in cfgs:
        d.stop(f"upslog-{impl}")
    return {impl: f.read_text(errors="replace") if f.exists() else "" for impl, f in files.items()}


def system_pynut() -> str | None:
    if not os.access(nit.SYSTEM_PYTHON, os.X_OK):
        return None
    p = subprocess.run([nit.SYSTEM_PYTHON, "-I", "-c", "import PyNUT"], capture_output=True)
    return nit.SYSTEM_PYTHON if p.returncode == 0 else None


def nutclient(cfg: NitConfig, user: str | None, password: str | None) -> dict[str, object]:
    """NIT's test_nutclient.py (tests/support/nit_nutclient.py) against one server, as nit.sh
    runs it: the system Python with Debian's PyNUT, configured by NUT_PORT/NUT_USER/NUT_PASS."""
    python = system_pynut()
    realnut.require(f"Debian's PyNUT for {nit.SYSTEM_PYTHON} (apt-get install python3-nut)", python)
    assert python
    env = {k: v for k, v in cfg.env().items() if k not in ("NUT_USER", "NUT_PASS")}
    env.update(NUT_HOST="127.0.0.1", NUT_PORT=str(cfg.port))
    if user is not None and password is not None:
        env.update(NUT_USER=user, NUT_PASS=password)
    p = subprocess.run([python, "-I", str(nit.NUTCLIENT_PROBE)], env=env, capture_output=True, timeout=60)
    assert p.returncode == 0, f"port {cfg.port} user {user}: {p.stdout!r} {p.stderr!r}"
    result: dict[str, object] = json.loads(p.stdout)
    for call in result["calls"]:  # type: ignore[attr-defined]
        if call[1] == "ok" and isinstance(call[2], dict):
            call[2].pop("driver.state", None)  # NUT 2.8.5's driver core flips it every poll
            call[2].pop("ups.status", None)  # dummy.seq flips it every 5 s
    return result


class Session:
    """One client connection, one answer line per request."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def ask(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError(line)
            self.buf += data
        answer, _, self.buf = self.buf.partition(b"\n")
        return answer.decode()

    def close(self) -> None:
        self.sock.close()


def check_tracking(cfgs: dict[str, NitConfig]) -> None:
    """admin: SET VAR and INSTCMD with TRACKING on, through each server to the C dummy-ups;
    the TRACKING results (ids aside) and the driver's new value are the same."""
    results = {}
    for impl, cfg in cfgs.items():
        value = f"nit-{impl}"
        s = Session(cfg.port)
        try:
            answers = [s.ask(line) for line in ("USERNAME admin", f"PASSWORD {nit.TESTPASS_ADMIN}",
                                                "SET TRACKING ON", f'SET VAR UPS2 ups.id "{value}"',
                                                "INSTCMD UPS2 load.off")]
            ids = [a.removeprefix("OK TRACKING ") for a in answers if a.startswith("OK TRACKING ")]
            assert len(ids) == 2, answers

            def final(s: Session = s, ids: list[str] = ids) -> list[str]:
                return [s.ask(f"GET TRACKING {i}") for i in ids]

            wait_for(lambda: "PENDING" not in final(), 20, f"TRACKING results on port {cfg.port}")
            results[impl] = ([re.sub(r"[0-9A-F-]{36}", "<id>", a) for a in answers], final())
        finally:
            s.close()
        for other in cfgs.values():  # the driver took the value: both servers see it
            wait_for(lambda other=other, value=value: upsc(other, f"UPS2@localhost:{other.port}",
                                                           "ups.id").stdout == f"{value}\n".encode(),
                     15, f"ups.id {value} on port {other.port}")
    assert results["bridge"] == results["c"], results
    assert results["c"][1] == ["SUCCESS", "ERR UNKNOWN"], results  # dummy-ups has no load.off


# ---- 3. the upsd role beyond nit.sh: staleness, a driver restarted by upsdrvctl -----------------


@pytest.mark.timeout(300)
def test_stale_and_driver_restart(root: Path, daemons: Daemons) -> None:
    """MAXAGE 6: a driver that stops answering (SIGSTOP) makes both servers answer ``Data
    stale`` and recover when it resumes; ``upsdrvctl stop`` -> ``Driver not connected``;
    ``upsdrvctl start`` again -> data again, without restarting either upsd."""
    realnut.require_daemon("upsd")
    upsdrvctl = realnut.require_daemon("upsdrvctl")
    cfgs = pair(root, upsd_lines="MAXAGE 6\n", startdelay_hint=False)
    c = cfgs["c"]
    for impl, cfg in cfgs.items():
        start_upsd(daemons, impl, cfg)

    def drvctl(*args: str) -> None:
        p = subprocess.run([upsdrvctl, "-u", "root", *args], env=c.env(), capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode(errors="replace")

    last: list[object] = []

    def state(text: bytes) -> Callable[[], bool]:
        def check() -> bool:
            answers = both(cfgs, target="UPS2", var="ups.status")
            last[:] = [answers]
            return all(text in (a[1] + a[2]) for a in answers.values())
        return check

    def until(text: bytes, what: str) -> None:
        try:
            wait_for(state(text), 30, what)
        except TimeoutError as exc:
            pytest.fail(f"{exc}: last answers {last}")

    drvctl("start", "UPS2")  # upsdrvctl backgrounds the driver: its PID file names it
    try:
        until(b"OL BOOST", "UPS2's data on both servers")
        pid = int((c.run / "dummy-ups-UPS2.pid").read_text().strip())
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            until(b"Error: Data stale", "UPS2 stale on both servers")
            assert time.monotonic() - t0 > 4  # MAXAGE, not at once
            answers = both(cfgs, target="UPS2")
            assert answers["bridge"] == answers["c"]
        finally:
            os.kill(pid, signal.SIGCONT)
        until(b"OL BOOST", "UPS2 fresh again on both servers")
        drvctl("stop", "UPS2")
        until(b"Error: Driver not connected", "UPS2 not connected on both servers")
        answers = both(cfgs, target="UPS2")
        assert answers["bridge"] == answers["c"]
        drvctl("start", "UPS2")
        until(b"OL BOOST", "UPS2 back on both servers")
        compare_protocol(cfgs, "UPS2")
    finally:
        subprocess.run([upsdrvctl, "-u", "root", "stop", "UPS2"], env=c.env(), capture_output=True,
                       timeout=60)
    for impl in cfgs:
        assert daemons.stop(f"upsd-{impl}") == 0, daemons.log(f"upsd-{impl}")


# ---- 4. upsd's command line --------------------------------------------------------------------


def test_command_line_without_starting(root: Path) -> None:
    """-h and -V answer and exit 0; -p/-i are fatal (deprecated); like upsd, an unknown option
    or a stray argument prints the help and exits 0; -c with no upsd running exits 1."""
    realnut.require_daemon("upsd")
    codes: dict[str, list[int]] = {}
    for impl in IMPLEMENTATIONS:
        cfg = NitConfig(root / impl)
        cfg.prepare()
        env = upsd_env(impl, cfg)
        runs = [subprocess.run(upsd_argv(impl, *args), env=env, capture_output=True, timeout=30)
                for args in (["-h"], ["-V"], ["-p", "3493"], ["-i", "127.0.0.1"], ["-x"],
                             ["-F", "extra"], ["-c", "reload"], ["-c", "stop"])]
        codes[impl] = [p.returncode for p in runs]
        assert b"-FF" in runs[0].stdout and b"-c <command>" in runs[0].stdout
        assert runs[1].stdout.startswith(b"Network UPS Tools upsd ")
        assert b"deprecated" in runs[2].stderr and b"deprecated" in runs[3].stderr
    assert codes["bridge"] == codes["c"] == [0, 0, 1, 1, 0, 0, 1, 1]


def pid_of(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")


@pytest.mark.timeout(300)
def test_pid_file_reload_stop_and_background(root: Path, daemons: Daemons) -> None:
    """``-FF``: the PID file ``$NUT_ALTPIDPATH/upsd.pid``; a second upsd is refused (exit 1);
    ``-c reload`` re-reads ups.conf (a new UPS is listed), ``-c stop`` ends it (exit 0, PID
    file gone). Without ``-F``: upsd returns 0 once listening, in the background, with its
    PID file; ``-c stop`` ends it. Both servers, the same exit codes and listings."""
    realnut.require_daemon("upsd")
    cfgs = pair(root)
    seen: dict[str, list[object]] = {}
    for impl, cfg in cfgs.items():
        steps: list[object] = []
        env = upsd_env(impl, cfg)
        pidfile = cfg.run / "upsd.pid"
        name = f"upsd-{impl}"
        daemons.start(name, upsd_argv(impl, "-FF", "-u", "root"), env)
        realnut.wait_port(cfg.port, timeout=20)
        wait_for(pidfile.exists, 10, f"{pidfile}")
        assert pid_of(pidfile) == daemons.procs[name].pid
        second = subprocess.run(upsd_argv(impl, "-F", "-u", "root"), env=env, capture_output=True, timeout=30)
        steps.append(("second instance", second.returncode))
        assert second.returncode == 1 and b"already running" in second.stdout + second.stderr, second
        with open(cfg.etc / "ups.conf", "a") as f:
            f.write('\n[UPS3]\n    driver = dummy-ups\n    port = dummy.seq\n    desc = "Added later"\n'
                    "[UPS4]\n    driver = dummy-ups\n")
        ctl = subprocess.run(upsd_argv(impl, "-c", "reload"), env=env, capture_output=True, timeout=30)
        steps.append(("-c reload", ctl.returncode))
        wait_for(lambda cfg=cfg: b"UPS3" in upsc(cfg, "-l", f"localhost:{cfg.port}").stdout, 20,
                 f"UPS3 after the reload on port {cfg.port}")
        p = upsc(cfg, "-l", f"localhost:{cfg.port}")
        steps.append(("upsc -l after reload", p.returncode, p.stdout))
        ctl = subprocess.run(upsd_argv(impl, "-c", "stop"), env=env, capture_output=True, timeout=30)
        steps.append(("-c stop", ctl.returncode))
        daemons.procs[name].wait(15)
        steps.append(("exit", daemons.procs[name].returncode))
        wait_for(lambda pidfile=pidfile: not pidfile.exists(), 10, "the PID file to go")

        # the background: the command returns once the server listens
        bg = subprocess.run(upsd_argv(impl, "-u", "root"), env=env, capture_output=True, timeout=60)
        pid = None
        try:
            steps.append(("background", bg.returncode))
            assert bg.returncode == 0, bg.stderr
            wait_for(pidfile.exists, 10, f"{impl}'s PID file in the background")  # C: after the fork
            pid = pid_of(pidfile)
            assert pid is not None and alive(pid)
            realnut.wait_port(cfg.port, timeout=10)
            p = upsc(cfg, "-l", f"localhost:{cfg.port}")
            steps.append(("upsc -l in the background", p.returncode, p.stdout))
            ctl = subprocess.run(upsd_argv(impl, "-c", "stop", "-P", str(pid)), env=env, capture_output=True,
                                 timeout=30)
            steps.append(("-c stop -P", ctl.returncode))
            wait_for(lambda pid=pid: not alive(pid), 15, f"background upsd {pid} to exit")
        finally:  # the background server is no child of ours: end it by its PID file
            pid = pid or pid_of(pidfile)
            if pid is not None and alive(pid):
                os.kill(pid, signal.SIGKILL)
        seen[impl] = steps
    assert seen["bridge"] == seen["c"]
    # the C upsd lists a UPS added by a reload first; the incomplete [UPS4] is ignored
    assert ("upsc -l after reload", 0, b"UPS3\ndummy\nUPS1\nUPS2\n") in seen["c"]


# ---- 5. Debian's nut-server unit ------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_debian_unit(root: Path, daemons: Daemons) -> None:
    """As the nut-server unit runs it: ``upsd -F`` as root, no ``-u``: it switches to the
    ``nut`` user once listening, serves the drivers' sockets (group nut), reloads with
    ``upsd -c reload -P $MAINPID`` and exits 0 on the SIGTERM of ``systemctl stop``."""
    realnut.require("root (the unit starts upsd as root)", os.geteuid() == 0)
    try:
        nut = pwd.getpwnam("nut")
    except KeyError:
        nut = None
    realnut.require("the nut user (apt-get install nut-server)", nut)
    assert nut is not None
    realnut.require_daemon("upsd")
    cfgs = pair(root)
    c = cfgs["c"]
    for cfg in cfgs.values():  # Debian's permissions: root:nut 0640 files, a nut run dir
        for path in (cfg.root, cfg.etc, cfg.run, *cfg.etc.iterdir()):
            os.chown(path, 0, nut.pw_gid)
            path.chmod(0o750 if path.is_dir() else 0o640)
        cfg.run.chmod(0o770)
    root.chmod(0o755)
    dummy_ups = realnut.require_daemon("dummy-ups")
    daemons.start("drv-UPS2", [dummy_ups, "-a", "UPS2", "-u", "root", "-F"], c.env())
    for impl, cfg in cfgs.items():
        env = upsd_env(impl, cfg)
        daemons.start(f"upsd-{impl}", upsd_argv(impl, "-F"), env)
        realnut.wait_port(cfg.port, timeout=20)
    uids = {}
    for impl, cfg in cfgs.items():
        pid = daemons.procs[f"upsd-{impl}"].pid
        wait_for(lambda pid=pid: _uid(pid) == nut.pw_uid, 10, f"{impl} upsd to run as nut")
        uids[impl] = _uid(pid)
        ctl = subprocess.run(upsd_argv(impl, "-c", "reload", "-P", str(pid)), env=upsd_env(impl, cfg),
                             capture_output=True, timeout=30)
        assert ctl.returncode == 0, ctl.stderr
    wait_not_wait(cfgs, "UPS2")
    compare_protocol(cfgs, "UPS2")
    answers = both(cfgs, target="dummy")
    assert answers["bridge"] == answers["c"]
    assert b"Error: Driver not connected" in answers["c"][2]
    for impl in cfgs:
        assert daemons.stop(f"upsd-{impl}") == 0, daemons.log(f"upsd-{impl}")
    assert uids["bridge"] == uids["c"] == nut.pw_uid


def _uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[2])  # effective
    except OSError:
        return None
    return None
