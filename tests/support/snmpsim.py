"""Run snmpsim (``snmpsim-command-responder``) as an SNMP agent for tests and benchmarks.

Usage::

    from tests.support import snmpsim

    def test_x(tmp_path):
        with snmpsim.running(tmp_path, ["apc-8641", "apc-smartups-nmc"]) as agent:
            agent.port                      # UDP port on 127.0.0.1; community = recording name
            agent.stop(); agent.start()     # fault injection: agent gone / back (same port)
            agent.get("apc-8641", "1.3.6.1.2.1.1.2.0")   # raw v2c GET, no pysnmp needed

Recordings are looked up by name (the file stem = SNMP community): first
``tests/data/snmp/<name>.snmprec`` (project recordings and frozen copies of drifting
snmpsim-data files), then anywhere in the installed ``snmpsim_data`` package
(``.snmprec`` or ``.snmprec.bz2``; bz2 files are decompressed into the data dir because
snmpsim does not read them). A recording can be served under another name with
``("alias", "apc-8641")``.

snmpsim refuses to run as root unless it drops privileges, so as root we drop to
``nobody:nogroup``. The data and cache dirs are made world-accessible for that. The
dropped process cannot import anything from a Python that lives under ``/root``
(pyenv), and snmpsim imports its dbm backend lazily after the drop, so we start it
through a tiny bootstrap that imports those modules first.

SNMPv3: ``v3_users=[V3User("nut", "authpass1", "SHA", "privpass1", "AES")]`` (snmpsim's
protocol names: MD5 SHA SHA224 SHA256 SHA384 SHA512 / DES 3DES AES AES192 AES256 and the
Blumenthal variants AES192BLMT AES256BLMT). snmpsim 1.2.2 on pysnmp 7 cannot serve a v3
request without a context name (snmpsim's context lookup is never called) and never grants
its v3 users VACM access; the bootstrap patches both, and ``v3_contextless="<community>"``
names the recording that answers context-less v3 requests (what NUT's snmp-ups and our
driver send).

Control OIDs: static snmprec lines reject SET; use ``<type>:writecache|value=<v>`` lines
(tests/data/snmp/*.snmprec do) so that SETs succeed and read back.
"""

from __future__ import annotations

import atexit
import bz2
import os
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import realnut

DATA = Path(__file__).resolve().parent.parent / "data" / "snmp"

_BOOTSTRAP = (
    "import sys, dbm, dbm.dumb\n"
    "for m in ('dbm.gnu', 'dbm.ndbm'):\n"
    "    try: __import__(m)\n"
    "    except ImportError: pass\n"
    # modules snmpsim/pysnmp import lazily while serving (after the privilege drop)
    "import encodings.idna, encodings.ascii, encodings.latin_1\n"
    "import hashlib, hmac, bz2, uuid, json, pickle, random\n"
    "import snmpsim.variation, snmpsim.record.snmprec, snmpsim.record.search.database\n"
    # v3 privacy: pysnmp loads the ciphers (python-cryptography) on first use
    "try:\n"
    "    import cryptography.hazmat.primitives.ciphers, cryptography.hazmat.backends\n"
    "    import cryptography.hazmat.decrepit.ciphers.modes, cryptography.hazmat.decrepit.ciphers.algorithms\n"
    "    import cryptography.hazmat.backends.openssl\n"
    "    cryptography.hazmat.backends.default_backend()\n"
    "except ImportError: pass\n"
    "import pysnmp.proto.secmod.rfc3826.priv.aes, pysnmp.proto.secmod.rfc3414.priv.des\n"
    "import pysnmp.proto.secmod.eso.priv.aes192, pysnmp.proto.secmod.eso.priv.aes256\n"
    "import pysnmp.proto.secmod.eso.priv.des3\n"
    # snmpsim 1.2.2 maps a v3 context to a recording in a hook pysnmp 7 no longer calls, so
    # v3 requests can only name a context directly; NUT's snmp-ups sends the empty context:
    # serve it from the recording named in $SNMPSIM_V3_DEFAULT (a community of this agent)
    "import os\n"
    "from pysnmp.entity.rfc3413 import context as _ctx\n"
    "_dflt = os.environ.get('SNMPSIM_V3_DEFAULT', '').encode()\n"
    "_get = _ctx.SnmpContext.get_mib_instrum\n"
    "def _get_mib_instrum(self, contextName=b''):\n"
    "    if _dflt and bytes(contextName) == b'':\n"
    "        contextName = _dflt\n"
    "    return _get(self, contextName)\n"
    "_ctx.SnmpContext.get_mib_instrum = _ctx.SnmpContext.getMibInstrum = _get_mib_instrum\n"
    # ...and it checks VACM for v3 users, which snmpsim never configures: grant them the tree
    "from pysnmp.entity import config as _cfg\n"
    "_addu = _cfg.add_v3_user\n"
    "def _add_v3_user(engine, user, *a, **k):\n"
    "    _addu(engine, user, *a, **k)\n"
    "    _cfg.add_vacm_user(engine, 3, user, 'noAuthNoPriv', (1, 3, 6), (1, 3, 6))\n"
    "_cfg.add_v3_user = _add_v3_user\n"
    "from snmpsim.commands.responder import main\n"
    "sys.argv[0] = 'snmpsim-command-responder'\n"
    "sys.exit(main())\n"
)


def snmpsim_available() -> bool:
    try:
        import snmpsim  # type: ignore[import-untyped]  # noqa: F401
        import snmpsim_data  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def require_snmpsim() -> None:
    realnut.require("snmpsim + snmpsim-data (pip install snmpsim snmpsim-data)", snmpsim_available())


def snmpsim_data_dir() -> Path:
    import snmpsim_data

    return Path(snmpsim_data.__file__).resolve().parent / "data"


def find_recording(name: str) -> Path:
    """Path of recording ``name`` (project data first, then snmpsim-data)."""
    own = DATA / f"{name}.snmprec"
    if own.is_file():
        return own
    base = snmpsim_data_dir()
    for pattern in (f"{name}.snmprec", f"{name}.snmprec.bz2"):
        hits = sorted(base.rglob(pattern))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"no snmprec recording named {name!r} in {DATA} or {base}")


def read_recording(name: str) -> str:
    path = find_recording(name)
    if path.suffix == ".bz2":
        return bz2.decompress(path.read_bytes()).decode("utf-8", "replace")
    return path.read_text(encoding="utf-8", errors="replace")


def free_udp_ports(count: int) -> list[int]:
    return [realnut.free_port(socket.SOCK_DGRAM) for _ in range(count)]


# --- a minimal SNMP v2c GET (BER) so readiness checks need neither pysnmp nor net-snmp tools


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + body


def _int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.strip(".").split(".")]
    out = bytearray([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _parse(buf: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    return tag, buf[pos : pos + n], pos + n


def _request(port: int, community: str, oid: str, timeout: float, host: str) -> bytes | None:
    pdu = _tlv(0xA0, _int(int(time.time()) & 0x7FFFFFFF) + _int(0) + _int(0)
               + _tlv(0x30, _tlv(0x30, _oid(oid) + b"\x05\x00")))
    msg = _tlv(0x30, _int(1) + _tlv(0x04, community.encode()) + pdu)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(msg, (host, port))
        try:
            return s.recv(65535)
        except OSError:
            return None


def raw_get(port: int, community: str, oid: str, timeout: float = 1.0,
            host: str = "127.0.0.1") -> bytes | None:
    """v2c GET of one OID: the value's BER body, or None on timeout / no such object."""
    data = _request(port, community, oid, timeout, host)
    if data is None:
        return None
    # Message -> [version, community, Response-PDU -> [id, status, index, varbinds -> [vb -> [oid, value]]]]
    _, msg_body, _ = _parse(data)
    _, _, p = _parse(msg_body)
    _, _, p = _parse(msg_body, p)
    _, pdu_body, _ = _parse(msg_body, p)
    _, _, p = _parse(pdu_body)
    _, status, p = _parse(pdu_body, p)
    _, _, p = _parse(pdu_body, p)
    _, vbl, _ = _parse(pdu_body, p)
    _, vb, _ = _parse(vbl)
    _, _, p = _parse(vb)
    tag, value, _ = _parse(vb, p)
    if int.from_bytes(status, "big") or tag in (0x80, 0x81, 0x82):
        return None
    return value


@dataclass
class V3User:
    """An SNMPv3 USM user served by snmpsim (protocol names as snmpsim's CLI spells them)."""

    name: str
    auth_key: str | None = None
    auth_proto: str = "NONE"
    priv_key: str | None = None
    priv_proto: str = "NONE"


@dataclass
class Agent:
    """One snmpsim-command-responder process serving ``recordings`` on ``ports``."""

    workdir: Path
    recordings: Sequence[str | tuple[str, str]]
    endpoints: int = 1
    v3_users: Sequence[V3User] = ()
    v3_contextless: str | None = None  # community whose recording answers v3 requests without context
    extra_args: Sequence[str] = ()
    ports: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "snmpsim.log"

    def communities(self) -> list[str]:
        return [r if isinstance(r, str) else r[0] for r in self.recordings]

    def prepare(self) -> None:
        """Assemble the data dir (decompressing .bz2 recordings) and pick free ports."""
        if os.geteuid() == 0 and not self.workdir.exists():
            # The agent drops to nobody, which must traverse every parent of its files. Under
            # pytest's tmp_path that means opening up /tmp/pytest-of-root, which any pytest
            # session starting meanwhile closes again (it enforces 0700): the agent then fails
            # with "Permission denied". So its files live in a directory of their own under /tmp,
            # linked from where the caller asked for them.
            real = Path(tempfile.mkdtemp(prefix="nutbridge-snmpsim-"))
            atexit.register(shutil.rmtree, real, True)
            self.workdir.parent.mkdir(parents=True, exist_ok=True)
            self.workdir.symlink_to(real, target_is_directory=True)
            self.workdir = real
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "cache").mkdir(exist_ok=True)
        for rec in self.recordings:
            alias, name = (rec, rec) if isinstance(rec, str) else rec
            (self.data_dir / f"{alias}.snmprec").write_text(read_recording(name), encoding="utf-8")
        _open_up(self.workdir)
        if not self.ports:
            self.ports = free_udp_ports(self.endpoints)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-c", _BOOTSTRAP,
               f"--data-dir={self.data_dir}", f"--cache-dir={self.workdir / 'cache'}",
               f"--logging-method=file:{self.log_path}", "--log-level=error",
               # e.g. SNMPSIM_DEBUG_ARGS="--debug=secmod --log-level=info" to see why a request fails
               *os.environ.get("SNMPSIM_DEBUG_ARGS", "").split()]
        cmd += [f"--agent-udpv4-endpoint=127.0.0.1:{p}" for p in self.ports]
        if os.geteuid() == 0:
            cmd += ["--process-user=nobody", "--process-group=nogroup"]
        for u in self.v3_users:
            cmd.append(f"--v3-user={u.name}")
            if u.auth_key:
                cmd += [f"--v3-auth-key={u.auth_key}", f"--v3-auth-proto={u.auth_proto}"]
            if u.priv_key:
                cmd += [f"--v3-priv-key={u.priv_key}", f"--v3-priv-proto={u.priv_proto}"]
        return cmd + list(self.extra_args)

    def start(self, timeout: float = 60.0) -> Agent:
        """Start (or restart after :meth:`stop`) on the same ports and wait until it answers."""
        if not self.ports:
            self.prepare()
        assert self.proc is None, "already running"
        out = (self.workdir / "snmpsim.out").open("ab")
        env = dict(os.environ, SNMPSIM_V3_DEFAULT=self.v3_contextless or "")
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                     cwd=self.workdir, env=env, start_new_session=True)
        out.close()
        self.starts += 1
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        probe = self.communities()[0] if self.recordings else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"snmpsim exited with {self.proc.returncode}:\n{self.output()}")
            if probe is None:
                time.sleep(1.0)
                return
            # every endpoint must answer (the index build happens before the first bind)
            if all(_request(p, probe, "1.3.6.1.2.1.1.2.0", 0.3, "127.0.0.1") for p in self.ports):
                return
            time.sleep(0.1)
        raise TimeoutError(f"snmpsim did not answer within {timeout}s:\n{self.output()}")

    def stop(self) -> None:
        """Kill the agent: clients then see timeouts, like a device that lost its network."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def output(self) -> str:
        text = ""
        for p in (self.workdir / "snmpsim.out", self.log_path):
            if p.exists():
                text += p.read_text(errors="replace")[-4000:]
        return text

    def get(self, community: str, oid: str, port: int | None = None) -> bytes | None:
        return raw_get(port or self.port, community, oid)


def _open_up(root: Path) -> None:
    # the agent runs as nobody: it must read the recordings and write its index cache
    for d in [root, *[p for p in root.rglob("*")]]:
        d.chmod(0o777 if d.is_dir() else 0o666)
    p = root
    while p != p.parent:  # parents must be traversable (tmp_path lives under /tmp/pytest-of-root)
        p = p.parent
        try:
            mode = p.stat().st_mode
            if not mode & 0o001:
                p.chmod(mode | 0o011)
        except OSError:
            break


@contextmanager
def running(workdir: Path, recordings: Sequence[str | tuple[str, str]], **kw: object) -> Iterator[Agent]:
    """An :class:`Agent` started for the duration of the block (skips/fails if snmpsim is missing)."""
    require_snmpsim()
    agent = Agent(workdir / "snmpsim", recordings, **kw)  # type: ignore[arg-type]
    agent.prepare()
    try:
        agent.start()
        yield agent
    finally:
        agent.stop()


# --- Debian's snmp-ups as the differential oracle


def snmp_ups_dump(port: int, community: str, *, mibs: str | None = None, version: str = "v2c",
                  extra: Iterable[tuple[str, str]] = (), timeout: float = 60.0) -> tuple[dict[str, str], str]:
    """Run ``snmp-ups -d 1`` once against 127.0.0.1:port: (variables, full output).

    NUT prints the tree as ``var: value`` lines after the first update; driver.* and
    other bookkeeping lines are kept, the caller filters what it compares.
    """
    exe = realnut.require_daemon("snmp-ups")
    args = [exe, "-s", "s1", "-x", f"port=127.0.0.1:{port}", "-x", f"snmp_version={version}", "-d", "1"]
    if version != "v3":
        args += ["-x", f"community={community}"]
    if mibs:
        args += ["-x", f"mibs={mibs}"]
    for k, v in extra:
        args += ["-x", f"{k}={v}"]
    if os.geteuid() == 0:
        args += ["-u", "root"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    out = proc.stdout + proc.stderr
    values: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, val = line.partition(": ")
        if sep and key and " " not in key and "." in key:
            values[key] = val
    return values, out


# --- a well-known port for nut-scanner ---------------------------------------------------------

@contextmanager
def on_port_161(port: int) -> Iterator[str]:
    """Relay UDP ``<address>:161`` to the agent on ``127.0.0.1:port`` and yield the address.

    nut-scanner's SNMP scan has no port option and snmpsim refuses to run as root, so NUT's
    scanner cannot reach an agent directly. The relay listens on a loopback address of its own
    (127.x.y.z, chosen at random, so parallel tests never share it) as root; the agent's answers
    go to whoever sent the last request (one scanner at a time)."""
    realnut.require("root (to listen on UDP port 161 for nut-scanner)", os.geteuid() == 0)
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(50):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        try:
            front.bind((address, 161))
            break
        except OSError:
            continue
    else:
        front.close()
        raise RuntimeError("no loopback address with UDP port 161 free")
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.bind(("127.0.0.1", 0))
    done = threading.Event()
    asker: list[tuple[str, int]] = []  # one scanner at a time: answers go to the last asker

    def run() -> None:
        sel = selectors.DefaultSelector()
        sel.register(front, selectors.EVENT_READ)
        sel.register(back, selectors.EVENT_READ)
        while not done.is_set():
            for key, _ in sel.select(0.2):
                if key.fileobj is front:
                    data, source = front.recvfrom(65535)
                    asker[:] = [source]
                    back.sendto(data, ("127.0.0.1", port))
                else:
                    data = back.recv(65535)
                    if asker:
                        front.sendto(data, asker[0])
        sel.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield address
    finally:
        done.set()
        thread.join(5)
        front.close()
        back.close()
