#!/usr/bin/env python3
"""Hostile load: does a well-behaved client still get answers while others send garbage? Bridge vs C upsd.

    .venv-3.11/bin/python benchmarks/hostile.py [--quick] [--payload NAME ...] [--server bridge|c|both]
                       [--mode burst|request|both] [--out docs/benchmarks.md] [--json results.json]

For every payload class (benchmarks/hostile_load.py: PAYLOADS) and every server, the
servers taking turns, each run on a fresh server serving one dummy-ups UPS:

1. a separate process opens N idle connections (5,000; --quick 1,000), each asking
   ``GET VAR ups battery.charge`` once: "accepted" counts those answered;
2. 5 processes x 10 threads of hostile clients then send the payload for 30 s (--quick 10 s):
   each sends it (--mode burst, the default: pipelined, repeated up to 64 KiB per send;
   --mode request: once per send), reads at most 50 ms for an answer, up to 20 sends per
   connection, and reconnects (at once when the server drops it);
3. meanwhile a poller process opens a fresh connection every 20 ms and sends
   ``GET VAR ups battery.charge`` with a 1 s timeout; a poll counts as answered only with
   exactly the line ``VAR ups battery.charge "<value>"``;
4. the server's RSS is sampled every 100 ms and its CPU time every 50 ms; "back to idle" is
   the time from the end of the attack to the first 200 ms window with < 5 % CPU; then
   5 more polls, and the idle connections still open are counted.

Targets (issue 12): poller p99 < 50 ms with no failures, RSS < 100 MB at peak, CPU back to
idle within 1 s after the attack. The section "## Hostile load" of --out is replaced (see
benchmarks/sections.py); everything else in the file is kept. Not part of the test suite
(tests/test_hostile.py is its small CI version). Needs Debian's nut-server (/lib/nut/upsd,
dummy-ups) for the C column, and the test extra (tests/support/realnut.py imports pytest).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
for _p in (str(REPO / "tests"), str(BENCH), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from hostile_load import BURST_BYTES, MODES, PAYLOADS, poll_once  # noqa: E402
from sections import code_version, stop_processes, write_section  # noqa: E402

from support.realnut import BridgeProcess, NutConfig, daemon, wait_port, wait_ready_ups  # noqa: E402

SECTION = "## Hostile load"
UPS = "ups"
LOAD = BENCH / "hostile_load.py"
DEV = """\
device.mfr: NUT Bridge
device.model: Hostile load
device.type: ups
ups.mfr: NUT Bridge
ups.model: Hostile load
ups.status: OL
battery.charge: 100
battery.runtime: 3600
input.voltage: 230.0
output.voltage: 230.0
ups.load: 20
"""
ATTACK_PROCS = 5
ATTACK_THREADS = 10
POLL_INTERVAL = 0.02
POLL_TIMEOUT = 1.0
IDLE_WINDOW = 0.2  # s: "back to idle" = the first window this long after the attack below ...
IDLE_CPU = 0.05  # ... this share of one core
AFTER_POLLS = 5
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 100.0
TARGET_IDLE_S = 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Plan:
    quick: bool
    attack_s: float
    idle: int
    idle_budget_s: float
    recover_max_s: float


# ---------------------------------------------------------------- servers
@dataclass
class Server:
    kind: str  # bridge | c
    label: str
    port: int
    main: subprocess.Popen[bytes]  # the process clients talk to
    others: list[subprocess.Popen[bytes]] = field(default_factory=list)  # C: dummy-ups

    def stop(self) -> None:
        stop_processes([self.main, *self.others])


def make_config(root: Path, dev: Path) -> NutConfig:
    cfg = NutConfig(root)
    cfg.add_ups(UPS, driver="dummy-ups", port=str(dev), desc="hostile load")
    cfg.write()
    return cfg


def start_c(cfg: NutConfig) -> Server:
    """Debian's dummy-ups, then upsd (once the driver socket is there), in the foreground."""
    upsd, drv = daemon("upsd"), daemon("dummy-ups")
    assert upsd and drv
    env = cfg.env()
    with open(cfg.run / "driver.log", "wb") as log:
        d = subprocess.Popen([drv, "-a", UPS, "-F", "-u", "root"], env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 10
    while not (cfg.run / f"dummy-ups-{UPS}").exists() and d.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(cfg.run / "upsd.log", "wb") as log:
        u = subprocess.Popen([upsd, "-F", "-u", "root"], env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    srv = Server("c", "C upsd " + c_version(), cfg.port, u, [d])
    try:
        wait_port(cfg.port)
        wait_ready_ups(cfg.port, [UPS])
    except Exception:
        srv.stop()
        raise
    return srv


def start_bridge(cfg: NutConfig, src: Path, loop: str) -> Server:
    """``python -m nutbridge serve`` from `src`; `loop`: the bridge's default, asyncio or uvloop."""
    env = {"PYTHONPATH": str(src)}
    if loop != "default":
        env["NUTBRIDGE_UVLOOP"] = "1" if loop == "uvloop" else "0"
    bp = BridgeProcess.start(cfg, env=env, timeout=20)
    try:
        wait_ready_ups(cfg.port, [UPS])
    except Exception:
        bp.stop()
        raise
    used = "uvloop" if "event loop uvloop" in bp.log() else "asyncio"
    return Server("bridge", f"bridge ({used})", cfg.port, bp.proc)


def c_version() -> str:
    exe = daemon("upsd")
    try:
        out = subprocess.run([exe or "upsd", "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "?"
    words = (out.stdout + out.stderr).split()
    return next((w for w in words if w[:1].isdigit()), "?")


# ---------------------------------------------------------------- measuring the server
def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time of all threads of `pid` (ns resolution from schedstat; clock ticks otherwise)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    if total:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def busy_cores(seconds: float = 1.0) -> float:
    """Cores busy with other work over `seconds`, from /proc/stat."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]

    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(1, t1 - t0))


def raise_nofile(want: int) -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for lim in (max(want, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (lim, lim))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


class Sampler(threading.Thread):
    """CPU time every 50 ms and RSS every 100 ms of one process, until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.cpu: list[tuple[float, float]] = []  # (monotonic, cpu seconds)
        self.rss: list[tuple[float, float]] = []  # (monotonic, MB)
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            try:
                c = cpu_seconds(self.pid)
                r = proc_rss_mb(self.pid) if n % 2 == 0 else None
            except OSError:
                return
            now = time.monotonic()
            with self.lock:
                self.cpu.append((now, c))
                if r is not None:
                    self.rss.append((now, r))
            n += 1
            self.halt.wait(0.05)

    def peak_rss(self, since: float = 0.0) -> float:
        with self.lock:
            return max((r for t, r in self.rss if t >= since), default=0.0)

    def back_to_idle(self, t_stop: float) -> float | None:
        """Seconds from `t_stop` to the start of the first IDLE_WINDOW with < IDLE_CPU CPU."""
        with self.lock:
            pts = [(t, c) for t, c in self.cpu if t >= t_stop - 0.06]
        j = 0
        for i, (ti, ci) in enumerate(pts):
            j = max(j, i + 1)
            while j < len(pts) and pts[j][0] - ti < IDLE_WINDOW:
                j += 1
            if j >= len(pts):
                return None
            tj, cj = pts[j]
            if (cj - ci) / (tj - ti) < IDLE_CPU:
                return max(0.0, ti - t_stop)
        return None


# ---------------------------------------------------------------- load processes
def load_cmd(*args: str) -> list[str]:
    return [sys.executable, str(LOAD), *args]


def read_json_line(stream: IO[str], timeout: float) -> dict[str, Any] | None:
    """One JSON line from a child's stdout, or None after `timeout` s / at EOF."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return None
    line = stream.readline()
    return dict(json.loads(line)) if line.strip() else None


def finish(p: subprocess.Popen[str], timeout: float) -> dict[str, Any] | None:
    """Wait for a child that prints one JSON object at its end; killed after `timeout` s."""
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return None
    lines = [x for x in out.splitlines() if x.strip()]
    return dict(json.loads(lines[-1])) if lines else None


def run_one(kind: str, payload: str, plan: Plan, root: Path, dev: Path, src: Path,
            expect: str, mode: str, loop: str) -> dict[str, Any]:
    cfg = make_config(root / f"{kind}-{payload}-{mode}", dev)
    srv = start_c(cfg) if kind == "c" else start_bridge(cfg, src, loop)
    port = str(srv.port)
    res: dict[str, Any] = {"server": kind, "label": srv.label, "payload": payload, "mode": mode}
    sampler = Sampler(srv.main.pid)
    sampler.start()
    idle: subprocess.Popen[str] | None = None
    try:
        time.sleep(0.5)  # start-up work settles
        res["rss_before_mb"] = proc_rss_mb(srv.main.pid)
        idle = subprocess.Popen(load_cmd("idle", "--port", port, "--ups", UPS, "--count", str(plan.idle),
                                         "--budget", str(plan.idle_budget_s), "--max-life", "900"),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert idle.stdout is not None and idle.stdin is not None
        info = read_json_line(idle.stdout, plan.idle_budget_s + 30)
        if info is None:
            raise RuntimeError(f"{kind}/{payload}: the idle-connection process did not report")
        res["idle"] = info
        print(f"  {srv.label} / {payload} ({mode}): idle {info['accepted']}/{plan.idle} accepted "
              f"in {info['seconds']:.1f} s {info['fail_kinds'] or ''}", flush=True)

        t0 = time.monotonic()
        c0 = cpu_seconds(srv.main.pid)
        attackers = [subprocess.Popen(load_cmd("attack", "--port", port, "--payload", payload,
                                               "--threads", str(ATTACK_THREADS), "--seconds",
                                               str(plan.attack_s), "--seed", str(i), "--mode", mode),
                                      stdout=subprocess.PIPE, text=True) for i in range(ATTACK_PROCS)]
        time.sleep(0.5)
        poller = subprocess.Popen(load_cmd("poll", "--port", port, "--ups", UPS, "--expect", expect,
                                           "--seconds", str(plan.attack_s - 1.0),
                                           "--interval", str(POLL_INTERVAL), "--timeout", str(POLL_TIMEOUT)),
                                  stdout=subprocess.PIPE, text=True)
        stats = [finish(p, plan.attack_s + 20) for p in attackers]
        t_stop = time.monotonic()
        c1 = cpu_seconds(srv.main.pid)
        res["cpu_attack_pct"] = 100 * (c1 - c0) / (t_stop - t0)
        res["attack_s"] = t_stop - t0
        res["poll"] = finish(poller, 20) or {}
        total: dict[str, Any] = {"cpu_s": 0.0, "missing": 0}
        for st in stats:
            if st is None:
                total["missing"] += 1
                continue
            for k, v in st.items():
                if isinstance(v, dict):
                    d = total.setdefault(k, {})
                    for e, n in v.items():
                        d[e] = d.get(e, 0) + n
                else:
                    total[k] = total.get(k, 0) + v
        res["attack"] = total
        res["loadgen_cpu_pct"] = 100 * total["cpu_s"] / (t_stop - t0)

        idle.stdin.write("check\n")
        idle.stdin.flush()
        chk = read_json_line(idle.stdout, 30) or {}
        res["idle_open_after"] = chk.get("open")

        back: float | None = None
        limit = t_stop + plan.recover_max_s
        while back is None and time.monotonic() < limit:
            time.sleep(0.1)
            back = sampler.back_to_idle(t_stop)
        res["back_to_idle_s"] = back
        res["rss_peak_mb"] = max(sampler.peak_rss(), res["rss_before_mb"])
        ok = 0
        for _ in range(AFTER_POLLS):
            line, _dt = poll_once(srv.port, UPS, POLL_TIMEOUT)
            ok += line == expect
            time.sleep(0.1)
        res["after_polls_ok"] = ok
        res["alive"] = srv.main.poll() is None
        p = res["poll"]
        a = res["attack"]
        print(f"  {srv.label} / {payload} ({mode}): poller {p.get('answered')}/{p.get('polls')} answered, "
              f"p50 {p.get('p50_ms', 0):.1f} p99 {p.get('p99_ms', 0):.1f} max {p.get('max_ms', 0):.1f} ms "
              f"{p.get('fail_kinds') or ''}; RSS {res['rss_before_mb']:.1f} -> {res['rss_peak_mb']:.1f} MB; "
              f"CPU {res['cpu_attack_pct']:.0f} % (load generators {res['loadgen_cpu_pct']:.0f} %); "
              f"back to idle {fmt_s(back, plan)}; after {ok}/{AFTER_POLLS}; idle open "
              f"{res['idle_open_after']}/{info['accepted']}; hostile: {a.get('connects', 0)} conns, "
              f"{a.get('sends', 0)} sends, {a.get('answered', 0)} answered, "
              f"{a.get('closed_by_server', 0)} closed by server, {a.get('send_timeouts', 0)} send timeouts",
              flush=True)
    finally:
        if idle is not None:
            with contextlib.suppress(OSError):
                if idle.stdin is not None:
                    idle.stdin.close()
            try:
                idle.wait(30)
            except subprocess.TimeoutExpired:
                idle.kill()
                idle.wait()
        sampler.halt.set()
        sampler.join(5)
        srv.stop()
        time.sleep(0.5)  # let the kernel finish closing thousands of sockets
    return res


# ---------------------------------------------------------------- report
def fmt_s(x: float | None, plan: Plan) -> str:
    return f"{x:.2f} s" if x is not None else f"> {plan.recover_max_s:g} s"


def targets(r: dict[str, Any]) -> tuple[bool, bool, bool]:
    p = r.get("poll") or {}
    poll_ok = bool(p.get("answered")) and not p.get("failed") and p.get("p99_ms", 1e9) < TARGET_P99_MS
    rss_ok = r["rss_peak_mb"] < TARGET_RSS_MB
    idle_ok = r["back_to_idle_s"] is not None and r["back_to_idle_s"] <= TARGET_IDLE_S
    return poll_ok, rss_ok, idle_ok


def yn(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report(results: list[dict[str, Any]], plan: Plan, argv: list[str], started: datetime.datetime,
           total_s: float, src: Path, busy: float) -> str:
    kinds = ["bridge", "c"]
    names = list(PAYLOADS)
    results = sorted(results, key=lambda r: (list(MODES).index(r["mode"]), names.index(r["payload"]),
                                             kinds.index(r["server"])))
    L: list[str] = []
    w = L.append
    w(SECTION)
    w("")
    w("Does a well-behaved client still get answers while others flood the server with bad requests "
      "(issue 12)? Generated by `benchmarks/hostile.py`; do not edit by hand, re-run it.")
    w("")
    w(f"- Date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()} ({'quick' if plan.quick else 'full'} run, "
      f"{total_s:.0f} s)")
    w(f"- Command: `{' '.join(argv)}`")
    w(f"- Code: {code_version()}")
    w(f"- Machine: {cpu_model()}, "
      f"{os.cpu_count()} cores shared by the servers and all load processes; kernel {platform.release()}; "
      f"Python {platform.python_version()}; C upsd {c_version()} ({daemon('upsd')}); "
      f"RLIMIT_NOFILE {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}; CPU busy with other work "
      f"just before the run: {busy:.2f} cores (above ~0.1 the numbers are skewed)")
    if src != REPO / "bridge":
        w(f"- Bridge source: `{src}` (not the repository tree)")
    w("")
    nvar = len(DEV.splitlines())
    w(f"Each cell is one fresh server serving one dummy-ups UPS (a {nvar}-variable .dev file); "
      "bridge and C upsd take turns. Per run: "
      f"{plan.idle:,} idle connections are opened by a separate process (each asks GET VAR once: "
      "*accepted* = answered), then "
      f"{ATTACK_PROCS} processes x {ATTACK_THREADS} threads send the payload for {plan.attack_s:g} s (each "
      "client sends, reads at most 50 ms for an answer, up to 20 sends per connection, then reconnects; "
      "at once when the server drops it; mode *burst*: each send is the payload repeated back to back "
      f"up to {BURST_BYTES // 1024} KiB, pipelined; mode *request*: each send is the payload once), "
      "while a poller process opens a fresh connection every "
      f"{POLL_INTERVAL * 1000:g} ms and sends `GET VAR {UPS} battery.charge` ({POLL_TIMEOUT:g} s timeout; "
      "answered = exactly the expected `VAR` line; latency = connect to answer). RSS is sampled every "
      "100 ms (peak over the whole run); CPU is the server process's share of one core during the "
      f"attack; *back to idle* = time from the end of the attack to the first {IDLE_WINDOW * 1000:g} ms "
      f"window below {IDLE_CPU * 100:g} % CPU; then {AFTER_POLLS} more polls. For C, the process measured "
      "is upsd (dummy-ups is not involved in client traffic).")
    w("")
    w("Payloads:")
    w("")
    for name in dict.fromkeys(r["payload"] for r in results):
        w(f"- `{name}`: {PAYLOADS[name].description}")
    w("")
    w("| payload | mode | server | poller answered / failed | p50 / p99 / max ms | "
      "idle accepted / open after | RSS before -> peak MB | CPU % (attack) | back to idle | polls after | "
      "hostile: conns / sends / answered / dropped by server |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        p, a, idle = r.get("poll") or {}, r["attack"], r["idle"]
        fk = p.get("fail_kinds") or {}
        fails = f"{p.get('failed', 0)}" + (f" ({', '.join(f'{k} {v}' for k, v in fk.items())})" if fk else "")
        lat = (f"{p['p50_ms']:.1f} / {p['p99_ms']:.1f} / {p['max_ms']:.1f}" if p.get("answered") else "-")
        dead = "" if r["alive"] else " (server died)"
        w(f"| {r['payload']} | {r['mode']} | {r['label']}{dead} | {p.get('answered', 0)} / {fails} | {lat} | "
          f"{idle['accepted']} / {r['idle_open_after']} | "
          f"{r['rss_before_mb']:.1f} -> {r['rss_peak_mb']:.1f} | "
          f"{r['cpu_attack_pct']:.0f} | {fmt_s(r['back_to_idle_s'], plan)} | "
          f"{r['after_polls_ok']}/{AFTER_POLLS} | {a.get('connects', 0)} / {a.get('sends', 0)} / "
          f"{a.get('answered', 0)} / {a.get('closed_by_server', 0)} |")
    w("")
    w(f"Targets: poller p99 < {TARGET_P99_MS:g} ms with 0 failures; server RSS < {TARGET_RSS_MB:g} MB "
      f"at peak; CPU back to idle within {TARGET_IDLE_S:g} s after the attack.")
    w("")
    w("| payload | mode | server | poller p99 < 50 ms, 0 failures | RSS < 100 MB | idle within 1 s |")
    w("|---|---|---|---|---|---|")
    for r in results:
        t = targets(r)
        w(f"| {r['payload']} | {r['mode']} | {r['label']} | {yn(t[0])} | {yn(t[1])} | {yn(t[2])} |")
    w("")
    w("- All load processes run on the same cores as the server (the hostile clients took "
      + ", ".join(f"{r['loadgen_cpu_pct']:.0f}" for r in results)
      + " % of one core, in the order of the rows above); C upsd and the bridge get the same load.")
    w("- Idle connections: at most 64 connect at a time, each given 5 s to be answered (C upsd's listen "
      "backlog is short); the opener gives up after 256 failures in a row. *open after* is counted when "
      "the attack ends.")
    w("")
    return "\n".join(L)


# ---------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 s attacks, 1,000 idle connections")
    ap.add_argument("--payload", action="append", choices=sorted(PAYLOADS), metavar="NAME",
                    help=f"payload class (repeatable; default all: {', '.join(PAYLOADS)})")
    ap.add_argument("--server", choices=["bridge", "c", "both"], default="both")
    ap.add_argument("--mode", choices=[*MODES, "both"], default="burst",
                    help="burst: each send is the payload pipelined up to 64 KiB (default); "
                    "request: one payload per send; both: every payload in both modes")
    ap.add_argument("--seconds", type=float, help="attack length (default 30, --quick 10)")
    ap.add_argument("--idle", type=int, help="idle connections (default 5000, --quick 1000)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--loop", choices=["default", "asyncio", "uvloop"], default="default",
                    help="the bridge's event loop (default: its own choice, uvloop when installed)")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--bridge-src", type=Path, default=REPO / "bridge",
                    help="directory holding the nutbridge package to benchmark (e.g. a patched copy)")
    a = ap.parse_args()
    plan = Plan(True, 10.0, 1000, 15.0, 10.0) if a.quick else Plan(False, 30.0, 5000, 30.0, 20.0)
    if a.seconds:
        plan.attack_s = max(2.0, min(a.seconds, 600.0))
    if a.idle is not None:
        plan.idle = max(0, min(a.idle, 15000))
    payloads = a.payload or list(PAYLOADS)
    kinds = ["bridge", "c"] if a.server == "both" else [a.server]
    if "c" in kinds and not (daemon("upsd") and daemon("dummy-ups")):
        raise SystemExit("C upsd / dummy-ups not found (Debian: apt-get install nut-server)")
    started = datetime.datetime.now().astimezone()
    t_start = time.monotonic()
    busy = busy_cores()
    if busy > 0.1:
        print(f"warning: {busy:.2f} cores busy with other work before the run", file=sys.stderr)
    limit = raise_nofile(3 * plan.idle + 5000)
    if limit < plan.idle + 2000:
        print(f"warning: RLIMIT_NOFILE is {limit}; {plan.idle} idle connections will not fit",
              file=sys.stderr)
    src = a.bridge_src.resolve()
    expect = f'VAR {UPS} battery.charge "100"'
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nuthostile-") as tmp:
        root = Path(tmp)
        dev = root / "hostile.dev"
        dev.write_text(DEV)
        modes = list(MODES) if a.mode == "both" else [a.mode]
        cells = [(p, m) for m in modes for p in payloads]
        for i, (payload, mode) in enumerate(cells):
            order = kinds if i % 2 == 0 else kinds[::-1]
            for kind in order:
                print(f"[{time.monotonic() - t_start:5.0f} s] {payload} ({mode}): {kind}", flush=True)
                results.append(run_one(kind, payload, plan, root, dev, src, expect, mode, a.loop))
    total = time.monotonic() - t_start
    argv = [".venv-3.11/bin/python", "benchmarks/hostile.py", *sys.argv[1:]]
    text = report(results, plan, argv, started, total, src, busy)
    print(text)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_section(a.out, SECTION, text)
    print(f"[{total:5.0f} s] wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
