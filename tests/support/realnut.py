"""Run upstream NUT (C upsd, dummy-ups and the client tools) for interop tests.

Binaries are looked up where Debian puts them: /lib/nut (Debian 12, NUT 2.8.0)
and /usr/libexec/nut (sid, NUT 2.8.5).

Prerequisites (one mechanism for every test that needs something the machine may lack):
locally a missing one skips the test, under CI (``NUTBRIDGE_REQUIRE_INTEROP=1``, set by
.ci/run) it fails it, so no test can silently skip there.

* :func:`require` (what, found): the general form; :func:`require_daemon`,
  :func:`require_client` find NUT binaries;
* :func:`require_module` instead of ``pytest.importorskip`` (also at module level);
* :func:`require_path` for files and directories (the NUT DDL corpus...);
* :func:`prerequisite` (what, found) is the marker form, for ``pytestmark``, decorators and
  ``pytest.param(..., marks=...)``: checked when the test is set up
  (:func:`check_prerequisite_marks`, called from tests/support/skip_policy.py).

Never use ``pytest.skip``/``skipif``/``importorskip`` directly: under CI the session fails
on any skip that is not on the allow-list of tests/support/skip_policy.py.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import NoReturn, Self

import pytest

NUT_LIBEXEC = [Path("/lib/nut"), Path("/usr/libexec/nut"), Path("/usr/lib/nut"), Path("/usr/sbin")]
REQUIRE = os.environ.get("NUTBRIDGE_REQUIRE_INTEROP", "") not in ("", "0")


def missing(what: str) -> NoReturn:
    """Skip (locally) or fail (CI) the current test: prerequisite `what` is missing.

    Also usable at module level (a skip there skips the module; a failure is a collection
    error, which fails the session)."""
    msg = f"interop prerequisite missing: {what}"
    if REQUIRE:
        pytest.fail(msg + " (NUTBRIDGE_REQUIRE_INTEROP is set)")
    pytest.skip(msg, allow_module_level=True)


def require(what: str, found: object) -> None:
    """Skip (locally) or fail (CI) when an interop prerequisite is missing (`found` falsy)."""
    if not found:
        missing(what)


def require_module(name: str, hint: str = "an extra of nutbridge-ups: make install-test") -> ModuleType:
    """``pytest.importorskip`` under the interop rule: the imported module, or skip/fail."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"Python module {name} ({hint}): {e}")


def require_path(path: Path, what: str) -> Path:
    """`path` (a file or directory that must exist), or skip/fail naming `what`."""
    require(f"{what} at {path}", path.exists())
    return path


def prerequisite(what: str, found: object) -> pytest.MarkDecorator:
    """Marker form of :func:`require`, for ``pytestmark = ...``, ``@...`` and
    ``pytest.param(..., marks=...)``: evaluated now, applied when the test is set up."""
    return pytest.mark.prerequisite(what, bool(found))


def check_prerequisite_marks(item: pytest.Item) -> None:
    """Apply the item's :func:`prerequisite` markers (module, class, function, parameter)."""
    for mark in item.iter_markers("prerequisite"):
        require(*mark.args)


def daemon(name: str) -> str | None:
    for d in NUT_LIBEXEC:
        p = d / name
        if p.is_file() and os.access(p, os.X_OK) and not _is_script(p):
            return str(p)
    return None


def _is_script(p: Path) -> bool:
    # Debian 12's /usr/sbin/upsd is a MODE-checking shell wrapper, not the daemon
    try:
        with p.open("rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return True


def client(name: str) -> str | None:
    return shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")


def require_daemon(name: str) -> str:
    path = daemon(name)
    require(f"NUT daemon {name} (apt-get install nut-server)", path)
    assert path
    return path


def require_client(name: str) -> str:
    path = client(name)
    require(f"NUT client {name} (apt-get install nut-client)", path)
    assert path
    return path


def nut_version() -> str:
    """Version of the installed NUT client tools, e.g. '2.8.0'."""
    exe = client("upsc")
    if not exe:
        return ""
    p = subprocess.run([exe, "-V"], capture_output=True, text=True)
    # 2.8.0 prints on stderr, 2.8.5 on stdout ("... 2.8.5 release")
    m = re.search(r"\d+\.\d+(?:\.\d+)?", p.stdout + p.stderr)
    return m.group(0) if m else ""


@contextmanager
def short_root(prefix: str = "nbt-") -> Iterator[Path]:
    """A directory with a short name under /tmp, removed afterwards: a C driver's socket
    (``<root>/<name>/run/<driver>-<ups>``) must fit in sun_path's 108 bytes, which pytest's
    ``tmp_path`` under xdist (``/tmp/pytest-of-root/pytest-N/popen-gwN/<test name>/``) may not."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _port_slice() -> range:
    """The ports this process hands out: below the kernel's ephemeral range, where no outgoing
    connection can hold one (a port from ``bind(0)`` is in that range, and thousands of client
    connections later an outgoing socket may own it just as a daemon tries to bind it), and
    one slice per pytest-xdist worker so two workers never probe the same port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    base, size = 10000, 1500
    start = base + (index % 14) * size
    if start + size > low:  # a kernel configured with a wide ephemeral range: fall back
        return range(0)
    return range(start, start + size)


_next_port: dict[int, int] = {}


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A 127.0.0.1 port (TCP, or UDP with ``kind=socket.SOCK_DGRAM``) that nothing holds now,
    from this process's :func:`_port_slice`, round robin, so a port is reused as late as
    possible (probed without SO_REUSEADDR: a port still in TIME_WAIT is passed over too)."""
    ports = _port_slice()
    for _ in range(len(ports)):
        i = _next_port.get(kind, os.getpid() % max(len(ports), 1))
        _next_port[kind] = (i + 1) % len(ports)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", ports[i]))
            except OSError:
                continue
            return ports[i]
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port}")


def query(port: int, *lines: str, host: str = "127.0.0.1", timeout: float = 5.0) -> bytes:
    """Send raw request lines on one connection and return everything answered
    until the server goes quiet (used for byte-exact comparisons)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        out = b""
        for line in lines:
            s.sendall(line.encode() + b"\n")
            out += _read_quiet(s)
        return out


def ask(port: int, *lines: str) -> str:
    """Pipeline request lines on one connection; read one answer per line (a whole
    BEGIN ... END block for LIST)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, s.makefile("rb") as f:
        s.sendall("".join(line + "\n" for line in lines).encode())
        out = []
        for _ in lines:
            line = f.readline()
            out.append(line)
            if line.startswith(b"BEGIN LIST "):
                end = b"END " + line[len(b"BEGIN "):]
                while line and line != end:
                    line = f.readline()
                    out.append(line)
        return b"".join(out).decode()


def until(what: str, fn: Callable[[], object], timeout: float = 10.0, step: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


@functools.cache
def _can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare:
        return False
    # fails in a chroot whose / is no mount point (the sid root): NUT_PIDPATH does there
    return subprocess.run([unshare, "--mount", "--propagation", "private", "true"],
                          capture_output=True).returncode == 0


def private_run(argv: list[str]) -> list[str]:
    """upsmon 2.8.0 keeps its PID file in the compiled-in /run/nut (2.8.5 honours
    NUT_PIDPATH) and refuses to start while that file names a live process, which a
    concurrent test's upsmon would be: give it a private, empty /run when we can."""
    if not _can_unshare():
        return argv
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs nutbridge-test /run && mkdir /run/nut && exec "$@"', "sh", *argv]


def ask_line(port: int, request: bytes, host: str = "127.0.0.1", timeout: float = 5.0) -> bytes:
    """Send ``request`` on a fresh connection; the first answer line (shorter if the server closes)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf


SENTINEL = "GET VAR end.of.script server.version"
_SENTINEL_ANSWER = b"VAR end.of.script server.version "


def converse(port: int, lines: list[str], timeout: float = 30.0) -> bytes:
    """Pipeline ``lines`` on one connection (a sender thread); everything answered before the
    answer to a last request that both upsds answer alike (``server.version`` of any UPS name)."""
    payload = "".join(f"{ln}\n" for ln in [*lines, SENTINEL]).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        t = threading.Thread(target=s.sendall, args=(payload,), daemon=True)
        t.start()
        buf = b""
        while True:
            data = s.recv(1 << 16)
            if not data:
                break
            buf += data
            i = buf.rfind(_SENTINEL_ANSWER)
            if i >= 0 and buf.endswith(b"\n") and (i == 0 or buf[i - 1 : i] == b"\n"):
                buf = buf[:i]
                break
        t.join(5)
    return buf


def _read_quiet(s: socket.socket, quiet: float = 0.15, first: float = 3.0) -> bytes:
    buf = b""
    s.settimeout(first)
    while True:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            return buf
        if not chunk:
            return buf
        buf += chunk
        s.settimeout(quiet)


DEFAULT_USERS = """\
[admin]
    password = s3cr3t
    actions = SET
    actions = FSD
    instcmds = ALL
[reader]
    password = r34d
[tester]
    password = t3st
    instcmds = test.battery.start
    instcmds = test.battery.stop
[monprimary]
    password = mp
    upsmon primary
[monmaster]
    password = mm
    upsmon master
[monsecondary]
    password = ms
    upsmon secondary
[monslave]
    password = msl
    upsmon slave
"""


@dataclass
class NutConfig:
    """A NUT configuration directory (ups.conf, upsd.conf, upsd.users, data files)."""

    root: Path
    port: int = field(default_factory=free_port)
    ups: dict[str, dict[str, str]] = field(default_factory=dict)
    upsd_extra: str = ""
    users: str = DEFAULT_USERS

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def add_ups(self, name: str, **options: str) -> None:
        self.ups[name] = options

    def write(self) -> Path:
        self.etc.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(parents=True, exist_ok=True)
        lines = []
        for name, opts in self.ups.items():
            lines.append(f"[{name}]")
            for k, v in opts.items():
                v = v.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#")
                lines.append(f'    {k} = "{v}"')
        (self.etc / "ups.conf").write_text("\n".join(lines) + "\n")
        (self.etc / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\n{self.upsd_extra}")
        (self.etc / "upsd.users").write_text(self.users)
        for f in ("ups.conf", "upsd.conf", "upsd.users"):
            (self.etc / f).chmod(0o640)
        return self.etc

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            NUT_CONFPATH=str(self.etc),
            NUT_STATEPATH=str(self.run),
            NUT_PIDPATH=str(self.run),
            NUT_ALTPIDPATH=str(self.run),
            NUT_QUIET_INIT_SSL="true",
            # NUT_STATEPATH above wins (the state goes to <run>/nut-bridge); this one is for a
            # bridge started without it. Never /var/lib/nut-bridge from a test.
            STATE_DIRECTORY=str(self.root / "state"),
            TZ="UTC",
            LANG="C",
        )
        return env


@contextmanager
def c_upsd(cfg: NutConfig, drivers: bool = True, wait_ready: bool = True) -> Iterator[NutConfig]:
    """Run Debian's C upsd (and dummy-ups for each dummy-ups section) on cfg."""
    upsd = require_daemon("upsd")
    cfg.write()
    env = cfg.env()
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        if drivers:
            for name, opts in cfg.ups.items():
                drv = require_daemon(opts.get("driver", "dummy-ups"))
                log = open(cfg.run / f"driver-{name}.log", "wb")
                logs.append(log)
                procs.append(
                    subprocess.Popen([drv, "-a", name, "-F", "-u", "root"], env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
                )
        if drivers:
            # upsd retries unconnected drivers only every ~2 s: start it once the
            # driver sockets exist
            deadline = time.monotonic() + 10
            socks = [cfg.run / f"{o.get('driver', 'dummy-ups')}-{n}" for n, o in cfg.ups.items()]
            while time.monotonic() < deadline and not all(
                p.exists() or any(x.poll() is not None for x in procs) for p in socks
            ):
                time.sleep(0.02)
        log = open(cfg.run / "upsd.log", "wb")
        logs.append(log)
        procs.append(
            subprocess.Popen([upsd, "-F", "-u", "root"], env=env, stdout=log,
                             stderr=subprocess.STDOUT)
        )
        wait_port(cfg.port)
        if drivers and wait_ready:
            try:
                wait_ready_ups(cfg.port, list(cfg.ups))
            except TimeoutError as exc:
                tails = "".join(f"\n--- {p.name}:\n{p.read_text(errors='replace')[-1500:]}"
                                for p in sorted(cfg.run.glob("*.log")))
                raise TimeoutError(f"{exc}; the C side's logs:{tails}") from None
        yield cfg
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def wait_ready_ups(port: int, names: list[str], timeout: float = 30.0) -> None:
    """Wait until every UPS answers GET VAR ups.status with something but WAIT."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending and time.monotonic() < deadline:
        name = pending[0]
        try:
            ans = query(port, f"GET VAR {name} ups.status", timeout=2)
        except OSError:
            ans = b""
        if ans.startswith(b"VAR ") and b'"WAIT"' not in ans:
            pending.pop(0)
        else:
            time.sleep(0.1)
    if pending:
        raise TimeoutError(f"UPS not ready: {pending}")


def run_tool(argv: list[str], env: Mapping[str, str] | None = None, input: bytes | None = None,
             timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    e = dict(os.environ)
    e.update(env or {})
    e.setdefault("NUT_QUIET_INIT_SSL", "true")
    return subprocess.run(argv, capture_output=True, env=e, input=input, timeout=timeout)


REPO = Path(__file__).resolve().parents[2]


class ChildProcess:
    """A child process writing to ``log_path``; :meth:`stop` is SIGTERM, then SIGKILL after 10 s."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> Self:
        return self


class BridgeProcess(ChildProcess):
    """``python -m nutbridge serve`` on a NutConfig, as a context manager."""

    def __init__(self, cfg: NutConfig, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.cfg = cfg
        self.proc = proc
        self.log_path = log_path

    @classmethod
    def start(cls, cfg: NutConfig, args: list[str] | None = None,
              env: Mapping[str, str] | None = None, timeout: float = 15.0) -> BridgeProcess:
        cfg.write()
        e = cfg.env()
        e["PYTHONPATH"] = str(REPO / "bridge") + os.pathsep + e.get("PYTHONPATH", "")
        e.update(env or {})
        log_path = cfg.run / "bridge.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen([sys.executable, "-m", "nutbridge", "serve", "--config-dir", str(cfg.etc),
                                 *(args or [])], env=e, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self = cls(cfg, proc, log_path)
        try:
            wait_port(cfg.port, timeout=timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"bridge did not start:\n{self.log()}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        rc = self.stop()
        assert rc == 0, f"bridge exited with {rc}:\n{self.log()[-3000:]}"


# ---- the NUT DDL corpus (../shared/data/ddl): device dumps for dummy-ups ------------------

#: NUT's Device Dump Library (../shared/data/ddl beside the repository; NUTBRIDGE_DDL elsewhere)
DDL_DIR = Path(os.environ.get("NUTBRIDGE_DDL") or REPO.parent / "shared" / "data" / "ddl")

#: a few DDL dumps of different vendors and drivers, by a short name (tools and client tests)
DDL_SAMPLES = {
    "apc": "APC/APC__Smart-UPS_SMT3000RMI2U__usbhid-ups__2.7.2__01.dev",
    "eaton": "Eaton/Eaton__5PX_2000__usbhid-ups__2.7.4__01.dev",
    "walker": "PowerWalker/PowerWalker__VFI_1000_CG_PF1__nutdrv_qx__2.7.4__01.dev",
    "mge": "MGE_UPS_SYSTEMS/MGE_UPS_SYSTEMS__Pulsar_Ellipse_Premium_800__mge-shut__2.6.1__01.dev",
    "tripp": "Tripp_Lite/Tripp_Lite__SMART1000LCD__usbhid-ups__2.4.3__02.dev",
}


def ddl_files(root: Path = DDL_DIR) -> list[Path]:
    """Every DDL dump (``*.dev``), in a stable order."""
    return sorted(root.rglob("*.dev"))


def ddl_ups_names(files: list[Path]) -> dict[str, Path]:
    """A valid, unique NUT UPS name per dump, derived from its file name (lower case,
    runs of anything but letters and digits become one '_')."""
    names: dict[str, Path] = {}
    for f in files:
        base = re.sub(r"[^a-z0-9]+", "_", f.stem.lower()).strip("_") or "ups"
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names[name] = f
    return names


def _ready(answer: str) -> bool:
    # A dump without ups.status is ready too: the driver answered for it.
    if answer.startswith("VAR "):
        return not answer.endswith('"WAIT"')
    return answer == "ERR VAR-NOT-SUPPORTED"


def wait_ready_many(port: int, names: list[str], timeout: float = 60.0) -> None:
    """Like wait_ready_ups for many UPS: one pipelined GET VAR per pending UPS and round."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        payload = "".join(f"GET VAR {n} ups.status\n" for n in pending).encode()
        answers: list[str] = []
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(payload)
                buf = b""
                while buf.count(b"\n") < len(pending):
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        break
                    buf += chunk
                answers = buf.decode(errors="replace").splitlines()
        except OSError:
            pass
        pending = [n for i, n in enumerate(pending) if i >= len(answers) or not _ready(answers[i])]
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"UPS not ready: {pending[:5]} ({len(pending)} in all; "
                                   f"the last answers began {answers[:3]})")
            time.sleep(0.2)
