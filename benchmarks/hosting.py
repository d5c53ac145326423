#!/usr/bin/env python3
"""Hosted C drivers: what hosting NUT's C drivers costs the bridge, beside the C upsd.

    .venv-3.11/bin/python benchmarks/hosting.py [--quick] [--ns 1,10,100] [--window 30]
                                                [--changes 60] [--restarts 5] [--parts 1,2,3]
                                                [--out docs/benchmarks.md]

The same C driver (NUT's ``dummy-ups``, ``pollinterval 1``) under both servers, from one
ups.conf (with the global ``nutbridge_hosted = *``, which the C programs ignore): the C upsd
with the drivers started as upsdrvctl starts them (tests/support/realnut.py ``c_upsd``), and
``nutbridge serve`` hosting them (drivers/external: each driver in a private state directory,
its socket mirrored into the Device).

1. Hosting overhead: N = 1, 10, 100 drivers, each side on its own (fresh servers, one after
   the other), with idle data (a ``.dev`` file, dummy-once: nothing changes) and with changing
   data (a ``.seq`` file, dummy-loop: ``ups.load`` changes at every 1 s poll, ``TIMER 1``).
   After a settling time, CPU time (user + sys) of the server process over a steady window,
   per second of wall time, and its RSS (the largest of 1 s samples); the drivers' CPU and RSS
   are summed on their own (the same binary with the same data on both sides, so these should
   match). The cost per hosted driver is the slope from the smallest to the largest N.
2. Latency from a driver's SETINFO to the client: both sides at once, one C dummy-ups each,
   dummy-loop over a ``.seq`` whose ``ups.load`` takes a new value every second. The benchmark
   holds a connection of its own to each driver's socket (C drivers broadcast every change to
   every connection) and times each ``SETINFO ups.load`` as it arrives: the moment the server
   gets it too. Then until (a) a SUBSCRIBE client on the bridge (``nutbridge.client.push``)
   and (b) a NUT client on one connection sending ``GET VAR`` every 10 ms, to the bridge and
   to the C upsd, sees that value. p50 / p99 / max over ``--changes`` changes.
3. Restart: the driver of one UPS is SIGKILLed (and its ``.dev`` rewritten with a new value)
   while a client polls ``GET VAR`` every 10 ms. Bridge: time to the first answer that is not
   a ``VAR`` line (``ERR DATA-STALE``) and to the new value, with nobody intervening. The C
   upsd has no supervisor: its answers are recorded for ``--hold`` seconds, then
   ``upsdrvctl start <ups>`` is run (the benchmark is a child subreaper and reaps the killed
   driver at once, as systemd would: an unreaped zombie makes the new driver wait for it) and
   timed to the new value, as the C reference. Beside them the same C driver started alone
   (no server), timed from its exec to its socket and to the end of a dump asked for at once:
   the driver's own part of any restart.

Measures, asserts nothing; writes the section "## Hosted C drivers" of docs/benchmarks.md
(after run.py's KEEP marker; the rest of the file is kept). Not part of the test suite
(tests/test_hosted.py asserts the hosting itself, and the restart bounds). Needs Debian's
nut-server (upsd, dummy-ups, upsdrvctl) and the test extra (tests/support imports pytest).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import math
import os
import platform
import pwd
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bridge")]

from benchmarks.sections import code_version, fill, median_max, percentile, write_section  # noqa: E402
from tests.support import realnut  # noqa: E402

from nutbridge.client import push  # noqa: E402
from nutbridge.protocol import sock  # noqa: E402

SECTION = "## Hosted C drivers"
DRIVER = "dummy-ups"
VAR = "ups.load"  # the variable that changes
POLL = 0.01  # s between GET VAR of the polling clients (parts 2 and 3)
SEQ_STEPS = 60  # values in the part-1 .seq cycle (its wrap adds one more second)
READY_TIMEOUT = 120.0  # every UPS answers, after the servers start
BACK_CAP = 60.0  # part 3: give up waiting for fresh data
# targets (tests/test_hosted.py::test_serve_restarts_a_killed_driver asserts the same bounds)
TARGET_STALE, TARGET_BACK = 1.0, 15.0
SIDES = {"c": "C upsd", "bridge": "bridge"}
HAS_SCHEDSTAT = Path("/proc/self/schedstat").exists()
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- configuration ------------------------------------------------------------------------------


@dataclass
class HostedConfig(realnut.NutConfig):
    """A NutConfig whose ups.conf starts with ``nutbridge_hosted = *`` (the C programs ignore
    it): one file for both servers."""

    globals_text: str = "nutbridge_hosted = *\n"

    def write(self) -> Path:
        etc = super().write()
        conf = etc / "ups.conf"
        conf.write_text(self.globals_text + conf.read_text())
        return etc


def config(root: Path, files: dict[str, Path]) -> HostedConfig:
    """One dummy-ups section per UPS name, each reading its file, polled every second."""
    cfg = HostedConfig(root)
    for name, path in files.items():
        cfg.add_ups(name, driver=DRIVER, port=str(path), pollinterval="1")
    return cfg


def dev_text(load: int) -> str:
    return f"ups.status: OL\nbattery.charge: 100\n{VAR}: {load}\n"


def seq_text(values: range) -> str:
    lines = ["ups.status: OL", "battery.charge: 100"]
    for v in values:
        lines += [f"{VAR}: {v}", "TIMER 1"]
    return "\n".join(lines) + "\n"


def rewrite(path: Path, text: str) -> None:
    """Replace the file, its mtime a second later than before (dummy-once re-reads a file
    whose mtime changed)."""
    old = path.stat().st_mtime if path.exists() else time.time()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.utime(tmp, (old + 1, old + 1))
    os.replace(tmp, path)


# ---- processes ------------------------------------------------------------------------------


def children(ppid: int) -> dict[int, list[str]]:
    """pid -> argv of the processes whose parent is ``ppid``."""
    out: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == ppid:
                out[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().decode().split("\0")
    return out


def cpu_ns(pid: int) -> int:
    """CPU time (user + sys) of a process so far: its threads' schedstat run time (ns), or
    utime + stime from /proc/<pid>/stat (clock ticks) where there is no schedstat."""
    if HAS_SCHEDSTAT:
        total = 0
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    total += int((task / "schedstat").read_text().split()[0])
        return total
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLK_TCK


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def driver_socket(pid: int, ups: str) -> Path:
    """The socket of the driver ``pid``: in its NUT_STATEPATH (the bridge's private directory)."""
    env = dict(x.split("=", 1) for x in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
               if "=" in x)
    return Path(env["NUT_STATEPATH"]) / f"{DRIVER}-{ups}"


def set_subreaper(on: bool) -> bool:
    """Orphans (the drivers upsdrvctl starts, which fork into the background) become our
    children, so a killed one can be reaped at once, as systemd (PID 1) reaps them."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return int(ctypes.CDLL(None, use_errno=True).prctl(36, int(on), 0, 0, 0)) == 0  # CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap(pid: int, timeout: float = 5.0) -> None:
    """Wait for our child ``pid`` (killed) so that it leaves no zombie; not our child: wait
    until it is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return
        time.sleep(0.005)


@dataclass
class Running:
    """A server with its drivers: the server's pid and the parent of the drivers."""

    kind: str
    port: int
    server: int
    parent: int  # of the driver processes: the bridge, or this process for the C upsd
    names: list[str]
    log: Path | None = None  # the bridge's log

    def drivers(self) -> dict[int, str]:
        """pid -> UPS name of the running drivers of this server."""
        names = set(self.names)
        return {pid: argv[2] for pid, argv in children(self.parent).items()
                if Path(argv[0]).name == DRIVER and argv[1:2] == ["-a"] and len(argv) > 2
                and argv[2] in names}

    def driver(self, ups: str) -> int:
        pids = [pid for pid, name in self.drivers().items() if name == ups]
        if len(pids) != 1:
            raise RuntimeError(f"{len(pids)} {DRIVER} -a {ups} processes under pid {self.parent}")
        return pids[0]


@contextlib.contextmanager
def serve(kind: str, cfg: HostedConfig) -> Iterator[Running]:
    """The C upsd with its C drivers (as tests/support/realnut.c_upsd starts them), or
    ``nutbridge serve`` hosting them; yields once every UPS answers."""
    names = list(cfg.ups)
    if kind == "c":
        with realnut.c_upsd(cfg, wait_ready=False):
            realnut.wait_ready_many(cfg.port, names, READY_TIMEOUT)
            upsd = [pid for pid, argv in children(os.getpid()).items() if Path(argv[0]).name == "upsd"]
            if len(upsd) != 1:
                raise RuntimeError(f"expected one upsd child, found {upsd}")
            yield Running(kind, cfg.port, upsd[0], os.getpid(), names)
    else:
        with realnut.BridgeProcess.start(cfg, timeout=30) as br:
            realnut.wait_ready_many(cfg.port, names, READY_TIMEOUT)
            yield Running(kind, cfg.port, br.proc.pid, br.proc.pid, names, br.log_path)


# ---- 1. hosting overhead --------------------------------------------------------------------


@dataclass
class Footprint:
    n: int
    data: str  # idle | changing
    kind: str  # c | bridge
    cpu: float = math.nan  # server, ms of CPU per s
    rss: int = 0  # server, KiB (largest sample)
    drivers_cpu: float = math.nan
    drivers_rss: int = 0  # KiB, summed over the drivers (largest sample)
    drivers: int = 0  # driver processes at the end of the window
    restarts: int = 0  # driver pids that changed during the window
    note: str = ""


def window(run: Running, seconds: float, fp: Footprint) -> None:
    pids = run.drivers()
    t0 = time.monotonic()
    srv0, drv0 = cpu_ns(run.server), {p: cpu_ns(p) for p in pids}
    while (left := t0 + seconds - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        fp.rss = max(fp.rss, rss_kib(run.server))
        fp.drivers_rss = max(fp.drivers_rss, sum(rss_kib(p) for p in pids))
    srv1, drv1 = cpu_ns(run.server), {p: cpu_ns(p) for p in pids}
    elapsed = time.monotonic() - t0
    now = run.drivers()
    fp.cpu = (srv1 - srv0) / 1e6 / elapsed
    fp.drivers_cpu = sum(drv1[p] - drv0[p] for p in pids) / 1e6 / elapsed
    fp.drivers = len(now)
    fp.restarts = len(set(pids) - set(now))


def overhead(ns: list[int], settle: float, seconds: float, root: Path) -> list[Footprint]:
    out: list[Footprint] = []
    for n in ns:
        names = [f"u{i:03d}" for i in range(n)]
        for data in ("idle", "changing"):
            for kind in ("c", "bridge"):
                where = root / f"p1-{n}-{data}-{kind}"
                where.mkdir(parents=True)
                if data == "idle":
                    path = where / "idle.dev"
                    path.write_text(dev_text(20))
                else:
                    path = where / "changing.seq"
                    path.write_text(seq_text(range(20, 20 + SEQ_STEPS)))
                fp = Footprint(n, data, kind)
                print(f"  1. {n:3} x {DRIVER}, {data:8}, {SIDES[kind]}: ", end="", flush=True)
                try:
                    with serve(kind, config(where, dict.fromkeys(names, path))) as run:
                        time.sleep(settle)
                        window(run, seconds, fp)
                except Exception as e:  # a server that does not start is a result too
                    fp.note = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                print(fp.note or f"server {fp.cpu:.2f} ms/s {fp.rss / 1024:.1f} MiB, drivers "
                      f"{fp.drivers_cpu:.2f} ms/s {fp.drivers_rss / 1024:.1f} MiB ({fp.drivers} "
                      f"running, {fp.restarts} restarted)", flush=True)
                out.append(fp)
    return out


# ---- 2. SETINFO -> client latency -------------------------------------------------------------


class Observer(asyncio.Protocol):
    """A connection to a driver's socket that timestamps each ``SETINFO <VAR>`` on arrival."""

    def __init__(self) -> None:
        self.reader = sock.DriverReader()
        self.seen: list[tuple[str, float]] = []  # (value, when)
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        for ev in self.reader.feed(data):
            if isinstance(ev, sock.SetInfo) and ev.var == VAR:
                self.seen.append((ev.value, now))


async def poller(port: int, ups: str, seen: dict[str, float], ready: asyncio.Event) -> None:
    """One NUT connection sending ``GET VAR`` every :data:`POLL` s (at once when late); the
    first time each value is answered. After each new value the grid moves by a random part of
    :data:`POLL`, so that the changes meet the polls at a uniformly random phase."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET VAR {ups} {VAR}\n".encode()
    prefix = f'VAR {ups} {VAR} "'
    nxt = time.perf_counter()
    try:
        while True:
            writer.write(request)
            line = await reader.readline()
            now = time.perf_counter()
            if not line:
                raise ConnectionError(f"port {port} closed the polling connection")
            text = line.decode(errors="replace").rstrip("\r\n")
            nxt += POLL
            if text.startswith(prefix) and text.endswith('"'):
                value = text[len(prefix):-1]
                if value not in seen:
                    seen[value] = now
                    # the drivers change on a 1 s grid of their own, which would meet this
                    # 10 ms grid at the same phase every time: shift it by a random fraction
                    nxt += random.uniform(0, POLL)
                ready.set()
            if nxt < now:
                nxt = now
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
    finally:
        writer.close()


async def subscriber(port: int, ups: str, seen: dict[str, float], ready: asyncio.Event) -> None:
    async for update in push.subscribe("127.0.0.1", port, [ups]):
        now = time.perf_counter()
        value = update.values.get(VAR)
        if value is not None:
            seen.setdefault(value, now)
        ready.set()


@dataclass
class Latency:
    client: str
    kind: str
    ms: list[float] = field(default_factory=list)
    missed: int = 0



async def measure_latency(runs: dict[str, Running], ups: str, changes: int,
                          keep: list[asyncio.BaseTransport]) -> list[Latency]:
    """Observe both drivers' sockets, run the three clients, pair each SETINFO with the first
    answer (or push) carrying its value. The observers' transports go to ``keep``: they must
    stay open until the drivers are stopped (a 2.8.0 driver busy-loops on a connection its
    client closed, shared/docs/driver-socket.md §5)."""
    loop = asyncio.get_running_loop()
    observers: dict[str, Observer] = {}
    for kind, run in runs.items():
        path = driver_socket(run.driver(ups), ups)
        transport, observers[kind] = await loop.create_unix_connection(Observer, str(path))
        keep.append(transport)
    every = f"GET VAR every {POLL * 1000:g} ms"
    clients: list[tuple[Latency, dict[str, float]]] = [
        (Latency("SUBSCRIBE push", "bridge"), {}), (Latency(every, "bridge"), {}), (Latency(every, "c"), {})]
    readies = [asyncio.Event() for _ in clients]
    tasks = [loop.create_task(subscriber(runs["bridge"].port, ups, clients[0][1], readies[0])),
             loop.create_task(poller(runs["bridge"].port, ups, clients[1][1], readies[1])),
             loop.create_task(poller(runs["c"].port, ups, clients[2][1], readies[2]))]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
        start = time.perf_counter()

        def counted(o: Observer) -> list[tuple[str, float]]:
            # changes after every client is connected; the first may straddle the start
            return [(v, t) for v, t in o.seen if t > start][1:changes + 1]

        deadline = start + 3 * changes + 30
        while any(len(counted(o)) < changes for o in observers.values()):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the drivers did not change {VAR} once a second")
            for task in tasks:
                if task.done():
                    task.result()  # a client that failed: raise its error
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # the last change reaches the clients
        for lat, seen in clients:
            for value, t0 in counted(observers[lat.kind]):
                t1 = seen.get(value)
                if t1 is None:
                    lat.missed += 1
                else:
                    lat.ms.append(max(0.0, t1 - t0) * 1000)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return [lat for lat, _ in clients]


def latency(changes: int, root: Path) -> tuple[list[Latency], str]:
    ups = "lat"
    cfgs = {}
    for kind in ("c", "bridge"):
        where = root / f"p2-{kind}"
        where.mkdir(parents=True)
        path = where / "lat.seq"
        path.write_text(seq_text(range(1000, 1000 + 3 * changes + 300)))  # no value comes twice
        cfgs[kind] = config(where, {ups: path})
    print(f"  2. SETINFO -> client, {changes} changes, both servers at once", flush=True)
    loop = asyncio.new_event_loop()
    keep: list[asyncio.BaseTransport] = []
    result: list[Latency] = []
    note = ""
    try:
        with serve("c", cfgs["c"]) as c, serve("bridge", cfgs["bridge"]) as b:
            result = loop.run_until_complete(measure_latency({"c": c, "bridge": b}, ups, changes, keep))
    except Exception as e:
        note = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        print(f"     {note}", flush=True)
    finally:
        for transport in keep:  # the drivers are stopped now
            transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    for lat in result:
        print(f"     {lat.client:22} {SIDES[lat.kind]:7} {_stats(lat.ms)}"
              + (f", {lat.missed} missed" if lat.missed else ""), flush=True)
    return result, note


# ---- 3. restart after SIGKILL ------------------------------------------------------------------


class Session:
    """One NUT connection, one request and its answer line at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rb")

    def get(self, ups: str) -> tuple[str | None, str]:
        """(value, answer line): value None when the answer is not ``VAR <ups> <VAR> "..."``."""
        self.sock.sendall(f"GET VAR {ups} {VAR}\n".encode())
        text = self.file.readline().decode(errors="replace").rstrip("\r\n")
        prefix = f'VAR {ups} {VAR} "'
        if text.startswith(prefix) and text.endswith('"'):
            return text[len(prefix):-1], text
        return None, text or "connection closed"

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@dataclass
class Kill:
    """One SIGKILL. Seconds from the kill, except ``ctl`` and ``back`` on the C side: from
    the start of ``upsdrvctl start``."""

    stale: float | None = None  # first answer that is not a VAR line
    down: list[str] = field(default_factory=list)  # answers not a VAR line, until the restart
    coming: list[str] = field(default_factory=list)  # ... from the restart to the new value
    respawn: float | None = None  # bridge: a new driver process (from the bridge's log)
    polls: int = 0  # C: polls while nobody restarts the driver
    polls_var: int = 0  # C: of which VAR answers
    ctl: float | None = None  # C: upsdrvctl start's own run time
    ctl_rc: int | None = None
    back: float | None = None  # first answer with the new value


def poll_until(s: Session, ups: str, want: str | None, cap: float, t0: float,
               answers: list[str]) -> tuple[float | None, float | None, int, int]:
    """Poll every POLL s until the value ``want`` (None: until ``cap`` only). Returns (first
    non-VAR answer, want seen, polls, VAR answers), seconds after ``t0``."""
    stale = back = None
    polls = var = 0
    nxt = time.monotonic()
    while time.monotonic() - t0 < cap:
        value, line = s.get(ups)
        now = time.monotonic() - t0
        polls += 1
        if value is None:
            if stale is None:
                stale = now
            if line not in answers:
                answers.append(line)
        else:
            var += 1
            if want is not None and value == want:
                back = now
                break
        nxt += POLL
        time.sleep(max(0.0, nxt - time.monotonic()))
    return stale, back, polls, var


def respawned(log: Path | None, ups: str, pid: int, killed_at: float) -> float | None:
    """Seconds from ``killed_at`` (epoch) to the bridge's log line that started the driver
    again (``UPS [<ups>]: started ... (pid <n>)``, n not ``pid``; stamped in UTC, ms)."""
    if log is None:
        return None
    with contextlib.suppress(OSError):
        for line in log.read_text(errors="replace").splitlines():
            m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*UPS \[(.+?)\]: started .* "
                         r"\(pid (\d+)\)$", line)
            if m is None or m.group(2) != ups or int(m.group(3)) == pid:
                continue
            when = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(
                tzinfo=datetime.UTC).timestamp()
            if when >= killed_at - 0.002:
                return max(0.0, when - killed_at)
    return None


def restarts(kind: str, runs: int, hold: float, root: Path) -> tuple[list[Kill], str]:
    ups = "rs"
    where = root / f"p3-{kind}"
    where.mkdir(parents=True)
    dev = where / "rs.dev"
    dev.write_text(dev_text(100))
    cfg = config(where, {ups: dev})
    kills: list[Kill] = []
    note = ""
    upsdrvctl = realnut.client("upsdrvctl")
    user = pwd.getpwuid(os.geteuid()).pw_name
    pidfile = cfg.run / f"{DRIVER}-{ups}.pid"
    print(f"  3. SIGKILL {DRIVER}, {SIDES[kind]}: {runs} times", flush=True)
    try:
        with serve(kind, cfg) as run:
            s = Session(run.port)
            try:
                for i in range(runs):
                    old, new = str(100 + i), str(101 + i)
                    if poll_until(s, ups, old, 30, time.monotonic(), [])[1] is None:
                        raise RuntimeError(f"{VAR} never {old} before the kill")
                    time.sleep(1.0)
                    if kind == "bridge" or i == 0:
                        pid = run.driver(ups)  # ours (c_upsd's Popen) or the bridge's child
                    else:
                        pid = int(pidfile.read_text().split()[0])  # started by upsdrvctl
                    killed_at = time.time()
                    os.kill(pid, signal.SIGKILL)
                    t0 = time.monotonic()
                    rewrite(dev, dev_text(int(new)))
                    k = Kill()
                    if kind == "bridge":
                        k.stale, k.back, _, _ = poll_until(s, ups, new, BACK_CAP, t0, k.down)
                        k.respawn = respawned(run.log, ups, pid, killed_at)
                    else:
                        reap(pid)
                        k.stale, _, k.polls, k.polls_var = poll_until(s, ups, None, hold, t0, k.down)
                        t1 = time.monotonic()
                        assert upsdrvctl is not None
                        p = realnut.run_tool([upsdrvctl, "-u", user, "start", ups], env=cfg.env(),
                                             timeout=BACK_CAP)
                        k.ctl, k.ctl_rc = time.monotonic() - t1, p.returncode
                        k.back = poll_until(s, ups, new, BACK_CAP, t1, k.coming)[1]
                    kills.append(k)
                    print(f"     {SIDES[kind]:7} {', '.join(k.down) or '-'} after {_s(k.stale)}; "
                          + (f"new driver after {_s(k.respawn)}; " if kind == "bridge" else
                             f"upsdrvctl start {_s(k.ctl)} (exit {k.ctl_rc}), then "
                             f"{', '.join(k.coming) or '-'}; ")
                          + f"new value after {_s(k.back)}", flush=True)
                    if k.back is None:
                        note = f"not back within {BACK_CAP:.0f} s"
                        break
            finally:
                s.close()
                if kind == "c" and pidfile.exists():  # the driver upsdrvctl started
                    with contextlib.suppress(ValueError, OSError):
                        pid = int(pidfile.read_text().split()[0])
                        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(
                                DRIVER.encode()):
                            os.kill(pid, signal.SIGTERM)
                            reap(pid)
    except Exception as e:
        note = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        print(f"     {note}", flush=True)
    return kills, note


@dataclass
class Startup:
    """The C driver alone: seconds from its exec to its socket, and to the end of its dump."""

    socket: float | None = None
    dump: float | None = None


def driver_alone(runs: int, root: Path) -> list[Startup]:
    """Start the C driver by hand with no server, connect as soon as its socket exists and send
    ``DUMPALL`` at once: the driver's own part of any restart."""
    where = root / "p3-alone"
    where.mkdir(parents=True)
    dev = where / "rs.dev"
    dev.write_text(dev_text(100))
    cfg = config(where, {"rs": dev})
    cfg.write()
    binary = realnut.daemon(DRIVER)
    assert binary is not None
    user = pwd.getpwuid(os.geteuid()).pw_name
    path = cfg.run / f"{DRIVER}-rs"
    out: list[Startup] = []
    print(f"  3. {DRIVER} alone: {runs} starts", flush=True)
    for _ in range(runs):
        for leftover in cfg.run.iterdir():  # the last run's socket and pid file
            leftover.unlink()
        st = Startup()
        conn: socket.socket | None = None
        t0 = time.monotonic()
        proc = subprocess.Popen([binary, "-a", "rs", "-F", "-u", user], env=cfg.env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = t0 + 30
            while conn is None and time.monotonic() < deadline and proc.poll() is None:
                if path.exists():
                    st.socket = st.socket if st.socket is not None else time.monotonic() - t0
                    conn = socket.socket(socket.AF_UNIX)
                    try:
                        conn.connect(str(path))
                    except OSError:
                        conn.close()
                        conn = None
                time.sleep(0.002)
            if conn is not None:
                conn.sendall(sock.DUMPALL)
                reader = sock.DriverReader()
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                while st.dump is None and (data := conn.recv(65536)):
                    if any(isinstance(ev, sock.DumpDone) for ev in reader.feed(data)):
                        st.dump = time.monotonic() - t0
        except OSError:
            pass
        finally:
            proc.terminate()  # before closing our connection: a 2.8.0 driver busy-loops on it
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if conn is not None:
                conn.close()
        print(f"     socket after {_s(st.socket)}, dump done after {_s(st.dump)}", flush=True)
        out.append(st)
    return out


# ---- the report ---------------------------------------------------------------------------------


def _s(x: float | None) -> str:
    if x is None:
        return "never"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def _ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def _stats(values: list[float]) -> str:
    if not values:
        return "no values"
    return (f"p50 {_ms(percentile(values, 50))} ms, p99 {_ms(percentile(values, 99))} ms, "
            f"max {_ms(max(values))} ms (n={len(values)})")


def _ratio(b: float, c: float) -> str:
    if math.isnan(b) or math.isnan(c) or c <= 0:
        return "—"
    r = b / c
    return f"**{r:.2f}x**" if r < 0.1 else f"**{r:.1f}x**" if r < 100 else f"**{r:.0f}x**"


def _cpu(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def _mib(kib: int) -> str:
    return "—" if not kib else f"{kib / 1024:.1f}"


def _median_max(values: list[float | None], never: str) -> str:
    return median_max(values, never, _s)


def report_overhead(w: list[str], fps: list[Footprint], settle: float, seconds: float) -> None:
    w += ["### Hosting overhead", "", fill(
        f"Each side on its own, on fresh servers: N `{DRIVER}` drivers (`pollinterval 1`), idle (a "
        f"`.dev` file, dummy-once: nothing changes) or changing (a `.seq` file, dummy-loop: `{VAR}` "
        f"takes the next of {SEQ_STEPS} values at every 1 s poll, `TIMER 1`). Once every UPS answers, "
        f"{settle:g} s to settle, then a {seconds:g} s window: CPU is the server process's user + sys "
        "time in ms per second of wall time ("
        + ("its threads' `/proc/<pid>/task/*/schedstat`, ns resolution" if HAS_SCHEDSTAT else
           f"`/proc/<pid>/stat` utime + stime, {1000 // CLK_TCK} ms ticks")
        + "), RSS the largest of the 1 s samples of `VmRSS`. The drivers are counted on their own "
        "(summed over the N processes): the same binary with the same data, asked the same by both "
        "servers (each sends `PING` to a silent driver every few seconds), so their columns should "
        "be close. No client is connected."), ""]
    w += ["| N drivers | data | C upsd CPU ms/s | bridge CPU ms/s | bridge/C | C upsd RSS MiB "
          "| bridge RSS MiB | bridge/C | drivers CPU ms/s, C / bridge side "
          "| drivers RSS MiB, C / bridge side |", "|---|---|---|---|---|---|---|---|---|---|"]
    table = {(f.n, f.data, f.kind): f for f in fps}
    for n in sorted({f.n for f in fps}):
        for data in ("idle", "changing"):
            c, b = table.get((n, data, "c")), table.get((n, data, "bridge"))
            if c is None or b is None:
                continue
            notes = [f"{SIDES[x.kind]}: {x.note}" for x in (c, b) if x.note]
            notes += [f"{SIDES[x.kind]}: {x.restarts} driver(s) restarted in the window"
                      for x in (c, b) if x.restarts]
            notes += [f"{SIDES[x.kind]}: {x.drivers} of {n} drivers running"
                      for x in (c, b) if not x.note and x.drivers != n]
            w.append(f"| {n} | {data} | {_cpu(c.cpu)} | {_cpu(b.cpu)} | {_ratio(b.cpu, c.cpu)} "
                     f"| {_mib(c.rss)} | {_mib(b.rss)} | {_ratio(b.rss, c.rss)} "
                     f"| {_cpu(c.drivers_cpu)} / {_cpu(b.drivers_cpu)} "
                     f"| {_mib(c.drivers_rss)} / {_mib(b.drivers_rss)} |")
            if notes:
                w.append(f"| | | {'; '.join(notes)} | | | | | | | |")
    w.append("")
    ns = sorted({f.n for f in fps if not f.note})
    if len(ns) < 2:
        return
    lo, hi = ns[0], ns[-1]
    w += [fill(f"Per hosted driver: the slope from N = {lo} to N = {hi}, (value at {hi} - value at "
                f"{lo}) / {hi - lo}; the server alone, the driver process not included."), "",
          "| per driver | data | C upsd | bridge | bridge/C |", "|---|---|---|---|---|"]
    for data in ("idle", "changing"):
        ends = [(table.get((lo, data, k)), table.get((hi, data, k))) for k in ("c", "bridge")]
        slopes = []
        for a, z in ends:
            if a is None or z is None or a.note or z.note:
                break
            slopes.append(((z.cpu - a.cpu) / (hi - lo), (z.rss - a.rss) / (hi - lo)))
        if len(slopes) != 2:
            continue
        (c_cpu, c_rss), (b_cpu, b_rss) = slopes
        w.append(f"| CPU, µs/s | {data} | {c_cpu * 1000:.1f} | {b_cpu * 1000:.1f} | {_ratio(b_cpu, c_cpu)} |")
        w.append(f"| RSS, KiB | {data} | {c_rss:.0f} | {b_rss:.0f} | {_ratio(b_rss, c_rss)} |")
    w.append("")


def report_latency(w: list[str], lats: list[Latency], note: str, changes: int) -> None:
    w += ["### From a driver's SETINFO to the client", "", fill(
        f"Both servers at once, one `{DRIVER}` each in dummy-loop mode over a `.seq` whose `{VAR}` "
        "takes a new value every second (`TIMER 1`, `pollinterval 1`). The benchmark holds its own "
        "connection to each driver's socket (a C driver broadcasts every change to every "
        f"connection; the bridge's is in its private state directory) and times each `SETINFO {VAR}` "
        "as it arrives, which is when the server gets it too; then until (a) a `SUBSCRIBE` client of "
        "the bridge (`nutbridge.client.push.subscribe`) and (b) a NUT client on one connection "
        f"asking `GET VAR` every {POLL * 1000:g} ms, of the bridge and of the C upsd, first has that "
        f"value. {changes} changes per server; all clients run in one asyncio process. The polling "
        f"clients' figures include waiting for their next poll (0 to {POLL * 1000:g} ms)."), ""]
    if note:
        w += [f"Not measured: {note}", ""]
        return
    w += ["| client | server | p50 ms | p99 ms | max ms | changes seen | missed |",
          "|---|---|---|---|---|---|---|"]
    for lat in lats:
        if not lat.ms:
            w.append(f"| {lat.client} | {SIDES[lat.kind]} | — | — | — | 0 | {lat.missed} |")
            continue
        p50, p99 = _ms(percentile(lat.ms, 50)), _ms(percentile(lat.ms, 99))
        w.append(f"| {lat.client} | {SIDES[lat.kind]} | {p50} | {p99} "
                 f"| {_ms(max(lat.ms))} | {len(lat.ms)} | {lat.missed} |")
    w.append("")
    by = {(lat.client.split()[0], lat.kind): lat for lat in lats if lat.ms}
    c = by.get(("GET", "c"))
    lines = []
    for key, what in ((("GET", "bridge"), "bridge polled"), (("SUBSCRIBE", "bridge"), "bridge pushed")):
        b = by.get(key)
        if b is not None and c is not None:
            lines.append(f"| {what} / C upsd polled | {_ratio(percentile(b.ms, 50), percentile(c.ms, 50))} "
                         f"| {_ratio(percentile(b.ms, 99), percentile(c.ms, 99))} |")
    if lines:
        w += ["| ratio | p50 | p99 |", "|---|---|---|", *lines, ""]


def report_restart(w: list[str], kills: dict[str, tuple[list[Kill], str]], alone: list[Startup],
                   hold: float) -> None:
    w += ["### Restart after SIGKILL", "", fill(
        f"One `{DRIVER}` (`.dev`, dummy-once, `pollinterval 1`) per server; its driver process gets "
        f"SIGKILL and its file a new `{VAR}` at once, while a NUT client on one connection asks "
        f"`GET VAR` every {POLL * 1000:g} ms. The bridge starts its driver again by itself; when "
        "it did is read from its log. The C upsd has no supervisor: its answers are recorded for "
        f"{hold:g} s, then `upsdrvctl start <ups>` is run by hand and timed from its start (it returns "
        "once the driver is in the background; then upsd has to reconnect). The killed C driver is "
        "reaped at once (the benchmark is a child subreaper), as systemd would: an unreaped zombie "
        "makes the new driver wait for it (\"Duplicate driver instance detected\"). Median (max) of "
        f"the kills; \"new value\" is the first answer with the `{VAR}` written after the kill."), ""]
    w += ["| server | answers while the driver is down | first after the kill | with nobody intervening "
          "| driver started again | answers until the new value | new value |",
          "|---|---|---|---|---|---|---|"]
    never = f"not within {BACK_CAP:.0f} s"

    def answers(lists: list[list[str]]) -> str:
        return ", ".join(f"`{a}`" for a in dict.fromkeys(a for x in lists for a in x)) or "—"

    for kind in ("bridge", "c"):
        if kind not in kills:
            continue
        ks, note = kills[kind]
        if not ks:
            w.append(f"| {SIDES[kind]} | {note or '—'} | — | — | — | — | — |")
            continue
        stale = _median_max([k.stale for k in ks], "never")
        if kind == "bridge":
            w.append(f"| {SIDES[kind]} | {answers([k.down for k in ks])} | {stale} | — "
                     f"| by the bridge, {_median_max([k.respawn for k in ks], '—')} after the kill "
                     f"| the same | {_median_max([k.back for k in ks], never)} after the kill |")
        else:
            polls = sum(k.polls for k in ks)
            var = sum(k.polls_var for k in ks)
            during = (f"{polls - var} of {polls} polls in {len(ks)} x {hold:g} s: an error"
                      + (f"; {var} a VAR line" if var else ""))
            rcs = sorted({str(k.ctl_rc) for k in ks})
            w.append(f"| {SIDES[kind]} | {answers([k.down for k in ks])} | {stale} | {during} "
                     f"| `upsdrvctl start` by hand, returned after {_median_max([k.ctl for k in ks], '—')}"
                     + ("" if rcs == ["0"] else f" (exit {', '.join(rcs)})")
                     + f" | {answers([k.coming for k in ks])} "
                     f"| {_median_max([k.back for k in ks], never)} after `upsdrvctl start` |")
        if note:
            w.append(f"| | {note} | | | | | |")
    w.append("")
    bk, ck = kills.get("bridge", ([], ""))[0], kills.get("c", ([], ""))[0]
    b_pick = [None if k.back is None or k.respawn is None else k.back - k.respawn for k in bk]
    c_pick: list[float | None] = [k.back for k in ck]
    if bk or ck or alone:
        mb = None if not b_pick or None in b_pick else statistics.median(x for x in b_pick if x is not None)
        mc = None if not c_pick or None in c_pick else statistics.median(x for x in c_pick if x is not None)
        w += [fill("Where the time goes: the bridge from the new driver process (its log), the C upsd "
                    "from `upsdrvctl start`, to the new value; beside them the same C driver started "
                    f"alone, with no server ({len(alone)} times, a fresh state directory each), timed "
                    "from its exec, connected to as soon as its socket exists and sent `DUMPALL` at once."),
              "", "| step | bridge | C upsd | bridge/C | the C driver alone |", "|---|---|---|---|---|",
              f"| the kill -> the driver runs again | {_median_max([k.respawn for k in bk], '—')} "
              "(the bridge restarts it) | when someone runs `upsdrvctl start` | — | — |",
              f"| the driver's exec -> its socket exists | — | — | — "
              f"| {_median_max([x.socket for x in alone], 'never')} |",
              f"| the driver's (re)start -> the new value (alone: `DUMPDONE`) | {_median_max(b_pick, never)} "
              f"| {_median_max(c_pick, never)} | {'—' if mb is None or mc is None else _ratio(mb, mc)} "
              f"| {_median_max([x.dump for x in alone], 'never')} |", ""]
    if bk:
        stales = [k.stale for k in bk]
        backs = [k.back for k in bk]
        worst_stale = max((x for x in stales if x is not None), default=None)
        worst_back = max((x for x in backs if x is not None), default=None)
        met = (None not in stales and None not in backs and worst_stale is not None
               and worst_back is not None and worst_stale < TARGET_STALE and worst_back < TARGET_BACK)
        w += [fill(f"Target (tests/test_hosted.py asserts the same): the bridge answers `ERR DATA-STALE` "
                    f"< {TARGET_STALE:g} s after the kill and has fresh data < {TARGET_BACK:g} s after it, "
                    f"without a restart of the bridge. Worst case {_s(worst_stale)} / {_s(worst_back)}: "
                    + ("met." if met else "NOT met.")), ""]


@dataclass
class Results:
    """What the parts that ran measured (None: not run)."""

    overhead: list[Footprint] | None = None
    latency: tuple[list[Latency], str] | None = None
    restart: dict[str, tuple[list[Kill], str]] | None = None
    alone: list[Startup] = field(default_factory=list)


def report(res: Results, args: argparse.Namespace, argv: list[str], started: datetime.datetime,
           total_s: float, load: tuple[float, float, float]) -> str:
    w: list[str] = [SECTION, ""]
    w += [fill(
        f"NUT's C `{DRIVER}` served two ways from one ups.conf (global `nutbridge_hosted = *`, "
        "which the C programs ignore): by the C upsd with the drivers started as upsdrvctl starts "
        "them, and by `nutbridge serve` hosting them (drivers/external: each driver in a private "
        "state directory, its socket mirrored into the Device). Generated by `benchmarks/hosting.py` "
        "(`make bench-hosting`); do not edit by hand, re-run it."), ""]
    try:
        import uvloop
        loop_name = f"uvloop {getattr(uvloop, '__version__', '?')}"
    except ImportError:
        loop_name = "asyncio"
    if os.environ.get("NUTBRIDGE_UVLOOP", "") == "0":
        loop_name = "asyncio (NUTBRIDGE_UVLOOP=0)"
    w += [f"- Date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()} ({'quick' if args.quick else 'full'} "
          f"run, {total_s:.0f} s)",
          f"- Command: `{' '.join(argv)}`",
          f"- Code: {code_version()}",
          f"- Machine: {platform.system()} {platform.release()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.2f} at the start, Python {platform.python_version()}, the bridge on {loop_name}; "
          f"NUT {realnut.nut_version() or '?'} ({realnut.daemon('upsd')}, {realnut.daemon(DRIVER)})", ""]
    if res.overhead is not None:
        report_overhead(w, res.overhead, args.settle, args.window)
    if res.latency is not None:
        report_latency(w, *res.latency, changes=args.changes)
    if res.restart is not None:
        report_restart(w, res.restart, res.alone, args.hold)
    return "\n".join(w).rstrip("\n") + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="short windows, 20 changes, 2 kills (a check of the benchmark, ~3 min)")
    ap.add_argument("--ns", default="1,10,100", help="driver counts for part 1 (default 1,10,100)")
    ap.add_argument("--window", type=float, help="s of steady window per part-1 run (default 30; quick 5)")
    ap.add_argument("--settle", type=float, help="s between ready and the window (default 5; quick 2)")
    ap.add_argument("--changes", type=int, help="changes timed in part 2 (default 60; quick 20)")
    ap.add_argument("--restarts", type=int, help="SIGKILLs per server in part 3 (default 5; quick 2)")
    ap.add_argument("--hold", type=float, help="s the killed C driver stays down (default 10; quick 3)")
    ap.add_argument("--parts", default="1,2,3", help="which parts to run (default 1,2,3)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    a = ap.parse_args()
    q = a.quick
    a.window = a.window if a.window is not None else 5.0 if q else 30.0
    a.settle = a.settle if a.settle is not None else 2.0 if q else 5.0
    a.changes = a.changes if a.changes is not None else 20 if q else 60
    a.restarts = a.restarts if a.restarts is not None else 2 if q else 5
    a.hold = a.hold if a.hold is not None else 3.0 if q else 10.0
    ns = sorted({int(x) for x in a.ns.split(",") if x.strip()})
    wanted = [p.strip() for p in a.parts.split(",") if p.strip()]
    missing = [n for n in ("upsd", DRIVER) if not realnut.daemon(n)]
    missing += [n for n in ("upsdrvctl",) if "3" in wanted and not realnut.client(n)]
    if missing:
        sys.exit(f"hosting: missing NUT's {', '.join(missing)} (apt-get install nut-server)")
    started = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()
    t0 = time.monotonic()
    res = Results()
    with tempfile.TemporaryDirectory(prefix="nbh-", dir="/tmp") as tmp:  # short: socket paths
        root = Path(tmp)
        if "1" in wanted:
            print(f"[{time.monotonic() - t0:5.0f} s] 1. hosting overhead, N = {ns}", flush=True)
            res.overhead = overhead(ns, a.settle, a.window, root)
        if "2" in wanted:
            print(f"[{time.monotonic() - t0:5.0f} s] 2. latency", flush=True)
            res.latency = latency(a.changes, root)
        if "3" in wanted:
            print(f"[{time.monotonic() - t0:5.0f} s] 3. restart", flush=True)
            reaper = set_subreaper(True)
            if not reaper:
                print("     (not a child subreaper: killed C drivers may stay zombies)", flush=True)
            try:
                res.restart = {kind: restarts(kind, a.restarts, a.hold, root) for kind in ("bridge", "c")}
                res.alone = driver_alone(a.restarts, root)
            finally:
                if reaper:
                    set_subreaper(False)
    argv = [os.path.relpath(sys.executable, REPO), "benchmarks/hosting.py", *sys.argv[1:]]
    text = report(res, a, argv, started, time.monotonic() - t0, load)
    print(text)
    write_section(a.out, SECTION, text)
    print(f"[{time.monotonic() - t0:5.0f} s] wrote the section {SECTION!r} of {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
