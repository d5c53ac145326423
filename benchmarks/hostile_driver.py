#!/usr/bin/env python3
"""Hostile drivers: what one misbehaving driver costs the other UPSes, bridge beside the C upsd.

    .venv-3.11/bin/python benchmarks/hostile_driver.py [--quick] [--window 20]
                                                       [--out docs/benchmarks.md]

Each server runs two UPSes from one ups.conf: ``good``, NUT's C ``dummy-ups`` (started as
upsdrvctl starts it for the C upsd, hosted by the bridge with ``nutbridge_hosted = good``), and
``bad``, a fake driver on the driver socket (tests/support/fakedriver.py, in a process of its
own) that the C upsd connects to as to any driver and the bridge attaches to
(``nutbridge_attach = bad``). The fake driver behaves one way per run:

* ``polite``: a normal driver (the baseline);
* ``flood``: its dump, then SETINFO lines as fast as the server reads them, for ever;
* ``garbage``: random bytes and unknown words, 64 KB every 10 ms;
* ``big-setinfo``: 10 MB of SETINFO for ever new variables instead of a dump;
* ``stall``: half of its dump, then silence (PINGs unanswered).

Meanwhile a NUT client on one connection asks ``GET VAR good ups.status`` every 10 ms (each
answer awaited, 2 s at most). Reported per server and behaviour, over a ``--window`` of
seconds: the good UPS's answers (right / wrong / timed out), their latency p50 / p99 / max, the
server's CPU (ms per s) and largest RSS, what the server says of ``bad`` at the end, and what
the fake driver wrote in the window. Measures, asserts nothing (tests/test_hosted.py
asserts that only the bad UPS suffers); writes the section "## Hostile drivers" of
docs/benchmarks.md. Needs Debian's nut-server (upsd, dummy-ups) and the test extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bridge")]

from benchmarks.hosting import children, cpu_ns, rss_kib  # noqa: E402
from benchmarks.sections import code_version, fill, percentile, publish, stop_processes  # noqa: E402
from tests.support import realnut  # noqa: E402
from tests.support.hosting import HostedConfig  # noqa: E402

SECTION = "## Hostile drivers"
BEHAVIOURS = ("polite", "flood", "garbage", "big-setinfo", "stall")
SIDES = {"c": "C upsd", "bridge": "bridge"}
POLL = 0.01  # s between the good UPS's GET VARs
ANSWER_TIMEOUT = 2.0
SETTLE = 2.0  # s between the good UPS answering and the window (the bad driver is at it already)
GOOD_DEV = "ups.status: OL\nbattery.charge: 100\nups.model: Good\n"


# ---- the fake driver, in a process of its own -----------------------------------------------------


def run_fake(path: str, behaviour: str) -> None:
    """``--fake PATH BEHAVIOUR``: serve a driver socket at PATH until SIGTERM."""
    from tests.support.fakedriver import FakeDriver

    from nutbridge.protocol import sock

    variables = [sock.VarDump("ups.status", "OL"), sock.VarDump("battery.charge", "90"),
                 sock.VarDump("ups.load", "20"), sock.VarDump("ups.mfr", "Fake")]

    counter = Path(path + ".sent")
    fake = FakeDriver(path, variables, ["load.off"],
                      behaviour="normal" if behaviour == "polite" else behaviour)

    # A flood that never fills the socket buffer never yields to its event loop: the count is
    # written by a thread, and SIGTERM ends the process from a plain signal handler.
    def count() -> None:
        while True:
            tmp = counter.with_suffix(".tmp")
            tmp.write_text(str(fake.sent))
            tmp.replace(counter)  # never read half-written
            time.sleep(0.25)

    def end(*_: object) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os._exit(0)

    signal.signal(signal.SIGTERM, end)
    threading.Thread(target=count, daemon=True).start()

    async def main() -> None:
        await fake.start()
        await asyncio.Event().wait()

    asyncio.run(main())


@contextlib.contextmanager
def fake_driver(path: Path, behaviour: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, __file__, "--fake", str(path), behaviour],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fake driver {behaviour} did not start")
            time.sleep(0.02)
        yield proc
    finally:
        stop_processes([proc])


def sent(path: Path) -> int:
    """Bytes the fake driver at ``path`` has written (it updates the count every 0.25 s)."""
    with contextlib.suppress(OSError, ValueError):
        return int(Path(f"{path}.sent").read_text())
    return 0


# ---- the servers ------------------------------------------------------------------------------------


def config(root: Path) -> HostedConfig:
    cfg = HostedConfig(root, globals_text="nutbridge_hosted = good\nnutbridge_attach = bad\n")
    cfg.etc.mkdir(parents=True, exist_ok=True)
    (cfg.etc / "good.dev").write_text(GOOD_DEV)
    cfg.add_ups("good", driver="dummy-ups", port="good.dev")
    cfg.add_ups("bad", driver="fake", port="none")
    cfg.upsd_extra = f"STATEPATH {cfg.run}\n"
    return cfg


@contextlib.contextmanager
def server(kind: str, cfg: HostedConfig) -> Iterator[int]:
    """Yields the server's pid once the good UPS answers."""
    if kind == "c":
        cfg.write()
        with open(cfg.run / "driver-good.log", "wb") as log:
            drv = subprocess.Popen([realnut.require_daemon("dummy-ups"), "-a", "good", "-F", "-u", "root"],
                                   env=cfg.env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while not (cfg.run / "dummy-ups-good").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            with realnut.c_upsd(cfg, drivers=False, wait_ready=False):
                realnut.wait_ready_ups(cfg.port, ["good"], timeout=30)
                pids = [pid for pid, argv in children(os.getpid()).items() if Path(argv[0]).name == "upsd"]
                if len(pids) != 1:
                    raise RuntimeError(f"expected one C upsd child, found {pids}")
                yield pids[0]
        finally:
            stop_processes([drv])
    else:
        with realnut.BridgeProcess.start(cfg, timeout=30) as br:
            realnut.wait_ready_ups(cfg.port, ["good"], timeout=30)
            yield br.proc.pid


# ---- one run -----------------------------------------------------------------------------------------


@dataclass
class Run:
    kind: str
    behaviour: str
    right: int = 0
    wrong: int = 0
    timeouts: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu: float = math.nan  # server, ms per s
    rss: int = 0  # server, KiB, largest sample
    bad_answer: str = ""
    sent: int = 0  # bytes the fake driver wrote
    first_wrong: str = ""


def poll_good(port: int, seconds: float, run: Run) -> None:
    want = b'VAR good ups.status "OL"\n'
    conn: socket.socket | None = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if conn is None:
            conn = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT)
        t0 = time.perf_counter()
        try:
            conn.sendall(b"GET VAR good ups.status\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
        except (TimeoutError, OSError):
            run.timeouts += 1
            conn.close()
            conn = None
            continue
        run.latencies.append(time.perf_counter() - t0)
        if buf == want:
            run.right += 1
        else:
            run.wrong += 1
            run.first_wrong = run.first_wrong or buf.decode(errors="replace").strip()
        time.sleep(POLL)
    if conn is not None:
        conn.close()


def measure(kind: str, behaviour: str, seconds: float, root: Path) -> Run:
    cfg = config(root / f"{kind}-{behaviour}")
    cfg.run.mkdir(parents=True, exist_ok=True)
    run = Run(kind, behaviour)
    with fake_driver(cfg.run / "fake-bad", behaviour), server(kind, cfg) as pid:
        time.sleep(SETTLE)
        sent0, cpu0, t0 = sent(cfg.run / "fake-bad"), cpu_ns(pid), time.monotonic()
        sampler_done = threading.Event()

        def sample() -> None:
            run.rss = rss_kib(pid)
            while not sampler_done.wait(0.5):
                run.rss = max(run.rss, rss_kib(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        poll_good(cfg.port, seconds, run)
        sampler_done.set()
        sampler.join()
        run.cpu = (cpu_ns(pid) - cpu0) / 1e6 / (time.monotonic() - t0)
        time.sleep(0.3)  # one more count from the fake
        run.sent = sent(cfg.run / "fake-bad") - sent0
        with contextlib.suppress(OSError):
            run.bad_answer = realnut.ask_line(cfg.port, b"GET VAR bad ups.status\n").decode().strip()
    return run


# ---- report --------------------------------------------------------------------------------------------


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def _bytes(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB" if n >= 1e3 else f"{n} B"


def report(runs: list[Run], args: argparse.Namespace, argv: list[str], started: datetime.datetime,
           total_s: float, load: tuple[float, float, float]) -> str:
    w = [SECTION, "", fill(
        "One misbehaving driver beside a good one (NUT's C dummy-ups), under the C upsd and under the "
        "bridge, while a NUT client asks the good UPS's status every 10 ms on one connection. The bad "
        "driver is a fake on the driver socket (tests/support/fakedriver.py, its own process) that "
        "the C upsd connects to as to any driver and the bridge attaches to. Generated by "
        "`benchmarks/hostile_driver.py` (`make bench-hostile-driver`); do not edit by hand, re-run "
        "it."), ""]
    w += [f"- Date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()} ({'quick' if args.quick else 'full'} "
          f"run, {total_s:.0f} s; {args.window:g} s window per cell)",
          f"- Command: `{' '.join(argv)}`",
          f"- Code: {code_version()}",
          f"- Machine: {platform.system()} {platform.release()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.2f} at the start, Python {platform.python_version()}; NUT "
          f"{realnut.nut_version() or '?'} ({realnut.daemon('upsd')}, {realnut.daemon('dummy-ups')})", ""]
    w += ["| bad driver | server | good UPS: right / wrong / timed out | p50 | p99 | max | server CPU "
          "| server RSS | `GET VAR bad ups.status` at the end | the bad driver wrote |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        w.append(f"| {r.behaviour} | {SIDES[r.kind]} | {r.right} / {r.wrong} / {r.timeouts} | "
                 f"{_ms(percentile(r.latencies, 50))} | {_ms(percentile(r.latencies, 99))} | "
                 f"{_ms(max(r.latencies, default=math.nan))} | {r.cpu:.0f} ms/s | {r.rss / 1024:.0f} MiB | "
                 f"`{r.bad_answer or '(no answer)'}` | {_bytes(r.sent)} |")
    w.append("")
    wrongs = [r for r in runs if r.wrong]
    for r in wrongs:
        w.append(fill(f"- {SIDES[r.kind]}, {r.behaviour}: the first wrong answer about the good UPS "
                       f"was `{r.first_wrong}`."))
    by = {(r.kind, r.behaviour): r for r in runs}
    polls = []
    for b in BEHAVIOURS:
        c, br = by.get(("c", b)), by.get(("bridge", b))
        if c and br and c.latencies and br.latencies:
            polls.append(f"{b} {statistics.median(br.latencies) / statistics.median(c.latencies):.2f}x")
    if polls:
        w.append(fill("- Median latency of the good UPS, bridge / C upsd: " + ", ".join(polls) + "."))
    return "\n".join(w).rstrip("\n") + "\n"


def main() -> int:
    if sys.argv[1:2] == ["--fake"]:
        run_fake(sys.argv[2], sys.argv[3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 s windows (a check of the benchmark)")
    ap.add_argument("--window", type=float, help="s of polling per cell (default 20; quick 5)")
    ap.add_argument("--behaviours", default=",".join(BEHAVIOURS))
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    a = ap.parse_args()
    a.window = a.window if a.window is not None else 5.0 if a.quick else 20.0
    missing = [n for n in ("upsd", "dummy-ups") if not realnut.daemon(n)]
    if missing:
        sys.exit(f"hostile_driver: missing NUT's {', '.join(missing)} (apt-get install nut-server)")
    started = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()
    t0 = time.monotonic()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="nbhd-", dir="/tmp") as tmp:  # short: socket paths
        for b in [x.strip() for x in a.behaviours.split(",") if x.strip()]:
            for kind in ("c", "bridge"):
                print(f"[{time.monotonic() - t0:5.0f} s] {b} under the {SIDES[kind]}", flush=True)
                runs.append(r := measure(kind, b, a.window, Path(tmp)))
                p99 = _ms(percentile(r.latencies, 99))
                print(f"        good {r.right}/{r.wrong}/{r.timeouts}, p99 {p99}, "
                      f"cpu {r.cpu:.0f} ms/s, bad: {r.bad_answer}", flush=True)
    argv = [os.path.relpath(sys.executable, REPO), "benchmarks/hostile_driver.py", *sys.argv[1:]]
    publish(a.out, SECTION, report(runs, a, argv, started, time.monotonic() - t0, load), t0,
            "hostile drivers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
