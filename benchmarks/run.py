#!/usr/bin/env python3
"""Side-by-side benchmark: Debian's C upsd 2.8.0 + dummy-ups vs NUT Bridge.

    .venv/bin/python benchmarks/run.py [--quick] [--out docs/benchmarks.md]

Both servers serve the same dummy-ups ``.dev`` file (a ~50-variable NUT DDL
dump). One run measures, and writes as Markdown:

1. GET VAR throughput at 1, 10 and 100 connections, each connection keeping
   exactly one request outstanding (request/response, like real clients);
2. full LIST VAR latency (p50/p99) on one connection;
3. 10,000 idle connections held open while a poller measures GET VAR latency,
   then every idle connection asks once;
4. idle footprint (RSS, CPU %) of the bridge's embedded simulated UPS, the
   bridge on the .dev file, and C upsd + dummy-ups.

The load comes from ``loadgen.c`` (one epoll loop, compiled at run time with
gcc into a temporary directory); its own CPU use is reported, because on a
small machine it competes with the server for cores. The bridge runs on uvloop
(its default when installed) and a second time on asyncio's own loop
(NUTBRIDGE_UVLOOP=0); ``benchmarks/ceiling.py``, a bare uvloop server that
answers without parsing, gives the language's ceiling for GET VAR throughput.

Not part of the test suite. Needs gcc, /lib/nut/upsd and dummy-ups (Debian:
nut-server), and the test extra (tests/support/realnut.py imports pytest).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.realnut import NutConfig, ask_line, daemon, free_port, wait_port, wait_ready_ups  # noqa: E402

DEFAULT_DEV = Path("/work/shared/data/ddl/Eaton/Eaton__5PX__snmp-ups__2.7.4__02.dev")
DDL_ROOT = Path("/work/shared/data/ddl")
UPS = "ups"
GET_REQ = f"GET VAR {UPS} ups.status\\n"
LIST_REQ = f"LIST VAR {UPS}\\n"
LIST_END = f"END LIST VAR {UPS}\\n"
NIDLE = 10_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOADAVG = os.getloadavg()
BACKGROUND = [0.0]

# ---------------------------------------------------------------- helpers
def sh(*argv: str) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (and the hard limit up, as root)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = max(hard, 3 * NIDLE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def server_preexec() -> None:
    # new process group (clean stop); the raised NOFILE limit is inherited
    os.setpgrp()


def busy_cores(seconds: float = 1.0) -> float:
    """CPU in use on the whole machine (in cores) over `seconds`, before we start anything."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(1, t1 - t0))


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Server:
    label: str
    procs: list[subprocess.Popen[bytes]]
    port: int
    main: subprocess.Popen[bytes]  # the process that answers the network
    logs: list[Path] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu(self) -> float:
        return proc_cpu(self.main.pid)

    def stop(self) -> None:
        stop_processes(list(reversed(self.procs)))


def dev_config(root: Path, dev: Path) -> NutConfig:
    cfg = NutConfig(root)
    cfg.etc.mkdir(parents=True, exist_ok=True)
    shutil.copy(dev, cfg.etc / "ups.dev")
    cfg.add_ups(UPS, driver="dummy-ups", port=str(cfg.etc / "ups.dev"), desc="benchmark")
    cfg.write()
    return cfg


def start_c(cfg: NutConfig) -> Server:
    upsd, drv = daemon("upsd"), daemon("dummy-ups")
    if not upsd or not drv:
        raise SystemExit("C upsd / dummy-ups not found (Debian: apt-get install nut-server)")
    env = cfg.env()
    dlog, ulog = cfg.run / "driver.log", cfg.run / "upsd.log"
    with open(dlog, "wb") as lf:
        d = subprocess.Popen([drv, "-a", UPS, "-F", "-u", "root"], env=env, stdout=lf,
                             stderr=subprocess.STDOUT, preexec_fn=server_preexec)
    with open(ulog, "wb") as lf:
        u = subprocess.Popen([upsd, "-F", "-u", "root"], env=env, stdout=lf,
                             stderr=subprocess.STDOUT, preexec_fn=server_preexec)
    srv = Server("C upsd 2.8.0", [d, u], cfg.port, u, [dlog, ulog])
    try:
        wait_port(cfg.port)
        wait_ready_ups(cfg.port, [UPS])
    except Exception:
        srv.stop()
        raise
    return srv


ASYNCIO = "bridge, asyncio loop"
CEILING = "ceiling: bare uvloop server"


def start_bridge(cfg: NutConfig | None, *, uvloop: bool, src: Path, logdir: Path,
                 port: int = 3493) -> Server:
    """The bridge as users run it: on uvloop when installed (its default), or with
    ``uvloop=False`` on asyncio's own loop (NUTBRIDGE_UVLOOP=0)."""
    env = dict(os.environ) if cfg is None else cfg.env()
    if cfg is None:
        for k in ("NUT_CONFPATH", "NUT_STATEPATH"):
            env.pop(k, None)
    env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    env["NUTBRIDGE_UVLOOP"] = "1" if uvloop else "0"
    args = ["serve"] + ([] if cfg is None else ["--config-dir", str(cfg.etc)])
    argv = [sys.executable, "-m", "nutbridge", *args]
    log = logdir / f"bridge{'-uvloop' if uvloop else ''}-{time.monotonic_ns()}.log"
    with open(log, "wb") as lf:
        p = subprocess.Popen(argv, env=env, stdout=lf, stderr=subprocess.STDOUT, preexec_fn=server_preexec)
    port = cfg.port if cfg is not None else port
    srv = Server("bridge" if uvloop else ASYNCIO, [p], port, p, [log])
    try:
        wait_port(port, timeout=20)
        if cfg is not None:
            wait_ready_ups(port, [UPS])
        else:
            wait_ready_ups(port, ["sim"])
    except Exception:
        srv.stop()
        raise SystemExit(f"bridge did not start:\n{log.read_text(errors='replace')[-3000:]}") from None
    want = "event loop uvloop" if uvloop else "event loop asyncio"
    deadline = time.monotonic() + 5
    while want not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.05)
    if want not in log.read_text(errors="replace"):
        srv.stop()
        raise SystemExit(f"bridge is not on the expected loop ({want}):\n"
                         f"{log.read_text(errors='replace')[-3000:]}")
    return srv


def start_ceiling(port: int, answer: str, logdir: Path) -> Server:
    log = logdir / "ceiling.log"
    with open(log, "wb") as lf:
        p = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ceiling.py")), str(port), answer],
                             stdout=lf, stderr=subprocess.STDOUT, preexec_fn=server_preexec)
    srv = Server(CEILING, [p], port, p, [log])
    wait_port(port, timeout=20)
    return srv


def query_once(port: int, request: str) -> str:
    """One request on a fresh connection; the answer line (what the ceiling will repeat)."""
    return ask_line(port, request.encode()).decode()


def loadgen(exe: Path, *args: str, timeout: float = 120) -> dict[str, Any]:
    p = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0 or not p.stdout.strip():
        raise RuntimeError(f"loadgen {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return dict(json.loads(p.stdout))


# ---------------------------------------------------------------- measurements
@dataclass
class Plan:
    quick: bool
    reps: int
    tput_s: float
    warmup_s: float
    list_s: float
    idle_poll_s: float
    connect_budget_s: float
    footprint_s: float


def throughput(servers: list[Server], exe: Path, plan: Plan) -> dict[str, dict[str, Any]]:
    """GET VAR req/s; the servers take turns so that background load hits all alike.
    Each figure is the run with the median req/s of plan.reps runs."""
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {s.label: {1: [], 10: [], 100: []} for s in servers}
    for rep in range(plan.reps):
        for conns in (1, 10, 100):
            for srv in servers:
                c0, t0 = srv.cpu(), time.monotonic()
                r = loadgen(exe, "rr", "127.0.0.1", str(srv.port), str(conns), str(plan.tput_s),
                            str(plan.warmup_s), "\\n", "VAR ", GET_REQ)
                r["server_cpu_pct"] = 100 * (srv.cpu() - c0) / (time.monotonic() - t0)
                runs[srv.label][conns].append(r)
                print(f"  [{rep + 1}/{plan.reps}] {srv.label}: GET VAR x{conns}: {r['rps']:.0f} req/s, "
                      f"p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us, "
                      f"server CPU {r['server_cpu_pct']:.0f} %, generator CPU {r['gen_cpu_pct']:.0f} %",
                      flush=True)
    out: dict[str, dict[str, Any]] = {}
    for label, per in runs.items():
        out[label] = {}
        for conns, rs in per.items():
            rs = sorted(rs, key=lambda r: float(r["rps"]))
            med = dict(rs[len(rs) // 2])
            med["all_rps"] = [r["rps"] for r in rs]
            out[label][f"get_{conns}"] = med
    return out


def measure_server(srv: Server, exe: Path, plan: Plan) -> dict[str, Any]:
    res: dict[str, Any] = {}
    host, port = "127.0.0.1", str(srv.port)
    r = loadgen(exe, "rr", host, port, "1", str(plan.list_s), "0.2", LIST_END, "BEGIN LIST VAR", LIST_REQ)
    res["list"] = r
    print(f"  {srv.label}: LIST VAR: p50 {r['p50_us'] / 1000:.2f} ms, p99 {r['p99_us'] / 1000:.2f} ms "
          f"({r['requests']} lists, {r['bytes_per_reply']:.0f} bytes)", flush=True)
    # 10,000 idle connections + a poller; sample the server's RSS meanwhile
    rss0 = proc_rss_mb(srv.main.pid)
    c0, t0 = srv.cpu(), time.monotonic()
    p = subprocess.Popen([str(exe), "idle", host, port, str(NIDLE), str(plan.idle_poll_s),
                          str(plan.connect_budget_s), "\\n", "VAR ", GET_REQ],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = rss0
    while p.poll() is None:
        with contextlib.suppress(OSError):
            peak = max(peak, proc_rss_mb(srv.main.pid))
        time.sleep(0.1)
    out, err = p.communicate()
    if p.returncode != 0 or not out.strip():
        raise RuntimeError(f"loadgen idle failed: {err}")
    r = dict(json.loads(out))
    r["rss_before_mb"] = rss0
    r["rss_peak_mb"] = peak
    r["server_cpu_pct"] = 100 * (srv.cpu() - c0) / (time.monotonic() - t0)
    r["alive_after"] = srv.main.poll() is None
    res["idle"] = r
    print(f"  {srv.label}: {NIDLE} idle: opened {r['opened']}, poller p50 {r['p50_us']:.0f} us "
          f"p99 {r['p99_us']:.0f} us ({r['poll_requests']} req, fail={r['poll_fail']}), "
          f"dropped {r['dropped']}, answered {r['answered_ok']}/{r['asked']} in {r['check_s']:.2f} s, "
          f"RSS {rss0:.1f} -> {peak:.1f} MB",
          flush=True)
    # let the server close 10,000 sockets before the next server starts
    time.sleep(0.5)
    return res


def footprint(root: Path, dev: Path, src: Path, seconds: float) -> dict[str, dict[str, Any]]:
    """Idle RSS/CPU, all candidates side by side over the same window."""
    servers: list[tuple[str, Server]] = []
    notes: dict[str, str] = {}
    try:
        if port_free(3493):
            servers.append(("bridge, embedded simulated UPS (no config)",
                            start_bridge(None, uvloop=True, src=src, logdir=root)))
            notes["sim"] = "`nutbridge serve` with no configuration (127.0.0.1:3493)"
        else:
            cfg = NutConfig(root / "fp-sim")
            cfg.add_ups("sim", driver="nutbridge-sim", port="simulated")
            cfg.write()
            servers.append(("bridge, simulated UPS (nutbridge-sim)",
                            start_bridge(cfg, uvloop=True, src=src, logdir=root)))
            notes["sim"] = f"port 3493 taken: a config dir with one `nutbridge-sim` UPS on port {cfg.port}"
        bdev = dev_config(root / "fp-bdev", dev)
        servers.append(("bridge, dummy-ups .dev", start_bridge(bdev, uvloop=True, src=src, logdir=root)))
        adev = dev_config(root / "fp-adev", dev)
        servers.append((f"{ASYNCIO}, dummy-ups .dev", start_bridge(adev, uvloop=False, src=src, logdir=root)))
        servers.append(("C upsd + dummy-ups .dev", start_c(dev_config(root / "fp-c", dev))))
        time.sleep(2.0)  # let start-up work settle
        before = {label: [proc_cpu(p) for p in s.pids] for label, s in servers}
        t0 = time.monotonic()
        time.sleep(seconds)
        dt = time.monotonic() - t0
        out: dict[str, dict[str, Any]] = {}
        for label, s in servers:
            cpus = [100 * (proc_cpu(pid) - b) / dt for pid, b in zip(s.pids, before[label], strict=True)]
            rss = [proc_rss_mb(pid) for pid in s.pids]
            out[label] = {"rss_mb": rss, "cpu_pct": cpus, "seconds": dt,
                          "procs": ["dummy-ups", "upsd"] if label.startswith("C ") else ["python"]}
        out["_notes"] = notes
        return out
    finally:
        for _, s in servers:
            s.stop()


# ---------------------------------------------------------------- report
def cpu_per_req(r: dict[str, Any]) -> float:
    """Server CPU microseconds per answered request in one throughput run."""
    return float(r["server_cpu_pct"]) * 1e4 / max(1.0, float(r["rps"]))


def fmt_rate(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def first_line(path: str, prefix: str) -> str:
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            if line.startswith(prefix):
                return line
    return ""


def machine_info() -> list[str]:
    cpu = first_line("/proc/cpuinfo", "model name").split(":", 1)[-1].strip()
    memline = first_line("/proc/meminfo", "MemTotal").split()
    mem = f"{int(memline[1]) / 1024 / 1024:.1f} GiB" if len(memline) > 1 else "?"
    try:
        import uvloop

        uv = str(getattr(uvloop, "__version__", "?"))
    except ImportError:
        uv = "not installed"
    os_name = first_line("/etc/os-release", "PRETTY_NAME=").split("=", 1)[-1].strip().strip('"')
    return [
        f"- CPU: {cpu or platform.processor()}, {os.cpu_count()} cores "
        "(load generator and server share them)",
        f"- Memory: {mem}; kernel {platform.release()}; {os_name}",
        f"- Code: {code_version()}",
        f"- Python {platform.python_version()} ({sys.executable}); uvloop {uv}",
        f"- C upsd: `{sh(daemon('upsd') or 'upsd', '-V').splitlines()[0] if daemon('upsd') else 'missing'}` "
        f"({daemon('upsd')}, {daemon('dummy-ups')})",
        f"- Load generator: benchmarks/loadgen.c, {sh('gcc', '--version').splitlines()[0]} -O2, "
        "one epoll thread",
        f"- RLIMIT_NOFILE for the benchmark and the servers: {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}",
        "- Load average (1/5/15 min) when the run started: " + " / ".join(f"{x:.2f}" for x in LOADAVG)
        + f"; CPU busy with other work just before the run: {BACKGROUND[0]:.2f} cores"
        + " (anything above ~0.05 skews the numbers)",
    ]


def report(results: dict[str, dict[str, Any]], fp: dict[str, dict[str, Any]], plan: Plan, dev: Path,
           argv: list[str], started: datetime.datetime, total_s: float, src: Path) -> str:
    c = results["C upsd 2.8.0"]
    labels = [k for k in results if k not in ("C upsd 2.8.0", CEILING)]  # bridge variants
    has_ceiling = CEILING in results
    L: list[str] = []
    w = L.append
    w("# Benchmarks: NUT Bridge vs C upsd 2.8.0")
    w("")
    w("Generated by `benchmarks/run.py`; do not edit by hand, re-run it (`make bench`).")
    w("")
    w(f"- Date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()} ({'quick' if plan.quick else 'full'} run, "
      f"{total_s:.0f} s)")
    w(f"- Command: `{' '.join(argv)}`")
    try:
        devname = dev.relative_to(DDL_ROOT)
    except ValueError:
        devname = dev
    nvars = sum(1 for line in dev.read_text(errors="replace").splitlines()
                if line and not line.startswith("#") and ":" in line.split()[0])
    w(f"- Device: DDL dump `{devname}` ({nvars} lines), served by dummy-ups to both servers "
      f"(C: /lib/nut/dummy-ups, bridge: its built-in dummy-ups); LIST VAR reply "
      f"{c['list']['bytes_per_reply']:.0f} bytes (C)")
    if src != REPO / "bridge":
        w(f"- Bridge source: `{src}` (not the repository tree)")
    w("")
    w("## Machine")
    w("")
    L.extend(machine_info())
    w("")

    # 1. throughput
    w("## 1. GET VAR throughput")
    w("")
    w(f"`GET VAR {UPS} ups.status`; N connections, each with one request outstanding; "
      f"{plan.warmup_s:g} s warm-up then {plan.tput_s:g} s measured; {plan.reps} run(s) per cell, "
      "the servers taking turns, median shown (all runs in the latency table). Target: bridge >= 1.0x C. "
      f"`{CEILING}` (benchmarks/ceiling.py) answers every line with the same bytes without parsing: "
      "the most any Python server can do here, so `bridge / ceiling` is the share of the language's "
      "ceiling the bridge reaches.")
    w("")
    tput_labels = [*labels, CEILING] if has_ceiling else labels
    head = "| connections | C upsd req/s |"
    sep = "|---|---|"
    for lab in tput_labels:
        head += f" {lab} req/s | {lab} / C |"
        sep += "---|---|"
    if has_ceiling:
        head += " bridge / ceiling |"
        sep += "---|"
    w(head)
    w(sep)
    for n in (1, 10, 100):
        cr = c[f"get_{n}"]["rps"]
        row = f"| {n} | {fmt_rate(cr)} |"
        for lab in tput_labels:
            br = results[lab][f"get_{n}"]["rps"]
            row += f" {fmt_rate(br)} | **{ratio(br, cr)}** |"
        if has_ceiling:
            bn, ce = results["bridge"][f"get_{n}"]["rps"], results[CEILING][f"get_{n}"]["rps"]
            row += f" **{ratio(bn, ce)}** |"
        w(row)
    w("")
    w("Latency, server CPU and the load generator's own CPU during the same runs "
      "(CPU % of one core; the machine has 2). `CPU us/req` is the server's CPU time per answered request:")
    w("")
    w("| server | conns | p50 us | p99 us | server CPU % | CPU us/req | generator CPU % | "
      "req/s of all runs |")
    w("|---|---|---|---|---|---|---|---|")
    for lab in ["C upsd 2.8.0", *tput_labels]:
        for n in (1, 10, 100):
            r = results[lab][f"get_{n}"]
            allr = ", ".join(fmt_rate(x) for x in r["all_rps"])
            w(f"| {lab} | {n} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['server_cpu_pct']:.0f} | "
              f"{cpu_per_req(r):.1f} | {r['gen_cpu_pct']:.0f} | {allr} |")
    w("")

    # 2. LIST VAR
    w("## 2. LIST VAR latency")
    w("")
    w(f"Full `LIST VAR {UPS}` on one connection, back to back for {plan.list_s:g} s. "
      "Target: bridge p50 < 2 ms and >= 20x faster than C.")
    w("")
    w("| server | lists | p50 ms | p99 ms | p50 speed-up vs C |")
    w("|---|---|---|---|---|")
    cl = c["list"]
    for lab in ["C upsd 2.8.0", *labels]:
        r = results[lab]["list"]
        w(f"| {lab} | {r['requests']} | {r['p50_us'] / 1000:.3f} | {r['p99_us'] / 1000:.3f} | "
          f"{ratio(cl['p50_us'], r['p50_us'])} |")
    w("")

    # 3. idle connections
    w(f"## 3. {NIDLE:,} idle connections")
    w("")
    w(f"{NIDLE:,} connections opened 8 at a time (each asks GET VAR once, so we know the server "
      "accepted it), then left idle; meanwhile one more connection polls GET VAR back to back for "
      f"{plan.idle_poll_s:g} s; "
      "then every idle connection still open sends one GET VAR. Target: bridge poller p99 < 5 ms.")
    w("")
    w("| server | opened (time) | poller requests | poller p50 ms | poller p99 ms | dropped while idle | "
      "idle conns answered (time) | server RSS before -> peak MB | server CPU % |")
    w("|---|---|---|---|---|---|---|---|---|")
    for lab in ["C upsd 2.8.0", *labels]:
        r = results[lab]["idle"]
        fail = f" (poller failed: {r['poll_fail']})" if r["poll_fail"] else ""
        probs = [f"{r[k]} {txt}" for k, txt in (("connect_fail", "connect failed"), ("open_lost", "closed"),
                                                  ("open_timeout", "unanswered"), ("not_tried", "not tried"))
                 if r[k]]
        if r["connect_errno"]:
            probs.append(str(r["connect_errno"]))
        err = f" ({', '.join(probs)})" if probs else ""
        w(f"| {lab} | {r['opened']}{err} ({r['connect_s']:.1f} s) | {r['poll_requests']}{fail} | "
          f"{r['p50_us'] / 1000:.3f} | {r['p99_us'] / 1000:.3f} | {r['dropped']} | "
          f"{r['answered_ok']}/{r['asked']} ({r['check_s']:.2f} s) | "
          f"{r['rss_before_mb']:.1f} -> {r['rss_peak_mb']:.1f} | {r['server_cpu_pct']:.0f} |")
    w("")

    # 4. footprint
    w("## 4. Idle footprint")
    w("")
    notes = fp.pop("_notes", {})
    w(f"All started together, then {plan.footprint_s:g} s with no client. RSS is VmRSS at the end; CPU is "
      "utime+stime over the window. Targets (bridge, embedded simulated UPS): RSS < 40 MB, CPU < 1 %.")
    if notes.get("sim"):
        w(f"Simulated UPS: {notes['sim']}.")
    w("")
    w("| setup | RSS MB | CPU % | detail |")
    w("|---|---|---|---|")
    for label, r in fp.items():
        rss, cpu, procs = r["rss_mb"], r["cpu_pct"], r["procs"]
        detail = ", ".join(f"{p} {m:.1f} MB / {x:.3f} %" for p, m, x in zip(procs, rss, cpu, strict=True))
        w(f"| {label} | {sum(rss):.1f} | {sum(cpu):.3f} | {detail} |")
    w("")

    # targets
    w("## Targets")
    w("")
    best = labels[0]
    w("| target | result | met |")
    w("|---|---|---|")
    for n in (1, 10, 100):
        for lab in labels:
            cr = c[f"get_{n}"]["rps"]
            br = results[lab][f"get_{n}"]["rps"]
            w(f"| GET VAR x{n} >= 1.0x C ({lab}) | {ratio(br, cr)} | {'yes' if br >= cr else 'no'} |")
    bl = results[best]["list"]
    sp = cl["p50_us"] / bl["p50_us"]
    met = "yes" if bl["p50_us"] < 2000 else "no"
    w(f"| LIST VAR p50 < 2 ms ({best}) | {bl['p50_us'] / 1000:.3f} ms | {met} |")
    w(f"| LIST VAR >= 20x faster than C ({best}) | {sp:.0f}x | {'yes' if sp >= 20 else 'no'} |")
    bi = results[best]["idle"]
    ok_idle = bi["p99_us"] < 5000 and bi["answered_ok"] == NIDLE and not bi["poll_fail"]
    w(f"| {NIDLE:,} idle: poller p99 < 5 ms, all answered ({best}) | {bi['p99_us'] / 1000:.3f} ms, "
      f"{bi['answered_ok']}/{NIDLE} | {'yes' if ok_idle else 'no'} |")
    sim = next(v for k, v in fp.items() if k.startswith("bridge, ") and "dummy" not in k)
    srss, scpu = sum(sim["rss_mb"]), sum(sim["cpu_pct"])
    w(f"| idle RSS < 40 MB (embedded sim) | {srss:.1f} MB | {'yes' if srss < 40 else 'no'} |")
    w(f"| idle CPU < 1 % (embedded sim) | {scpu:.3f} % | {'yes' if scpu < 1 else 'no'} |")
    w("")
    w("## Where GET VAR time goes")
    w("")
    w("From the table above (server CPU time per answered request, 10 connections, where every server "
      "is CPU-bound):")
    w("")
    cu = cpu_per_req(c["get_10"])
    for lab in tput_labels:
        r = results[lab]["get_10"]
        w(f"- {lab}: {cpu_per_req(r):.1f} us/request ({ratio(cpu_per_req(r), cu)} of C's {cu:.1f} us)")
    w("")
    if has_ceiling:
        ce = results[CEILING]
        gap = [n for n in (1, 10, 100) if results["bridge"][f"get_{n}"]["rps"] < c[f"get_{n}"]["rps"]]
        if gap:
            w("Where the bridge stays below 1.0x C, compare it with the ceiling at the same connection "
              "count: "
              "the ceiling does nothing but receive, count newlines and send, so what it cannot reach no "
              "Python code on one event loop can. "
              + " ".join(f"At {n} connection{'s' if n > 1 else ''}: bridge "
                         f"{ratio(results['bridge'][f'get_{n}']['rps'], c[f'get_{n}']['rps'])} of C, ceiling "
                         f"{ratio(ce[f'get_{n}']['rps'], c[f'get_{n}']['rps'])}."
                         for n in gap))
        else:
            w("The bridge reaches 1.0x C at 1, 10 and 100 connections in this run.")
        w("")
    w("What the bridge does per request: a repeated `GET VAR` line is answered from a cache keyed by the "
      "exact request bytes and checked against the device's generation counter and its MAXAGE deadline "
      "(server/core.py, tests/test_answer_cache.py), so the Python work left is one dict lookup and one "
      "write; the rest is the event loop and the recv/send system calls, which is what the ceiling "
      "measures too. Memory: each of the two answer caches (by request bytes, and by words for "
      "pipelined lines) holds at most 1,024 answers of at most 512 bytes; uvloop's cost is the "
      "difference between the two dummy-ups rows of section 4. A second process (SO_REUSEPORT workers "
      "reading a shared snapshot) was considered: "
      "on this 2-core machine the load generator needs one core, so a second server process would only "
      "compete with it, and push, TRACKING, FSD and login state would have to be shared across "
      "processes; it is not done.")
    w("")
    w("## Method notes")
    w("")
    w("- Servers and load generator run on the same 2-core machine over loopback: at 10 and 100 connections "
      "the generator takes a good part of one core, so absolute numbers are lower than on a dedicated "
      "client; the ratio bridge/C is the meaningful figure. Throughput cells are the median of the "
      "runs listed; LIST VAR, idle-connection and footprint figures come from one run each.")
    w("- Other processes on the machine (see 'CPU busy with other work' above) take CPU from both the "
      "server and the generator; compare runs made under similar background load only.")
    w("- Both servers get the benchmark's raised RLIMIT_NOFILE (inherited; `resource.setrlimit` in run.py).")
    w("- `bridge` is `nutbridge serve` as installed: on uvloop (a default dependency where it has wheels). "
      f"`{ASYNCIO}` is the same with NUTBRIDGE_UVLOOP=0. The benchmark checks the bridge's log says which "
      "loop runs.")
    w("- C upsd writes each LIST line with its own send(); with Nagle and delayed ACK that costs ~40 ms per "
      "LIST. The bridge sends each answer in one write with TCP_NODELAY.")
    w("")
    return "\n".join(L)


from sections import KEEP_MARKER, code_version, stop_processes  # noqa: E402  (the script directory is on sys.path)


# ---------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs (< 90 s in all)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--dev", type=Path, default=DEFAULT_DEV, help="dummy-ups .dev file both servers serve")
    ap.add_argument("--bridge-src", type=Path, default=REPO / "bridge",
                    help="directory holding the nutbridge package to benchmark (e.g. a patched copy)")
    ap.add_argument("--no-asyncio", action="store_true", help="skip the bridge-on-asyncio's-loop runs")
    a = ap.parse_args()
    started = datetime.datetime.now().astimezone()
    t_start = time.monotonic()
    if a.quick:
        plan = Plan(True, 1, 1.5, 0.5, 1.5, 2.0, 15.0, 20.0)
    else:
        plan = Plan(False, 3, 3.0, 0.5, 5.0, 5.0, 30.0, 60.0)
    BACKGROUND[0] = busy_cores()
    if BACKGROUND[0] > 0.1:
        print(f"warning: {BACKGROUND[0]:.2f} cores busy with other work before the run: "
              "numbers will be skewed", file=sys.stderr)
    limit = raise_nofile()
    if limit < NIDLE + 100:
        print(f"warning: RLIMIT_NOFILE is {limit}; {NIDLE} connections will not fit", file=sys.stderr)
    dev = a.dev.resolve()
    src = a.bridge_src.resolve()
    try:
        import uvloop  # noqa: F401
    except ImportError:
        raise SystemExit("uvloop is not installed: the bridge's default loop and the ceiling need it "
                         "(make install-test installs it)") from None
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        raise SystemExit("gcc not found (apt-get install gcc)")
    with tempfile.TemporaryDirectory(prefix="nutbench-") as tmp:
        root = Path(tmp)
        exe = root / "loadgen"
        csrc = Path(__file__).with_name("loadgen.c")
        subprocess.run([gcc, "-O2", "-Wall", "-o", str(exe), str(csrc)], check=True)
        results: dict[str, dict[str, Any]] = {}
        servers: list[Server] = []
        try:
            servers.append(start_c(dev_config(root / "c", dev)))
            for uv in [True] if a.no_asyncio else [True, False]:
                bcfg = dev_config(root / f"b{int(uv)}", dev)
                servers.append(start_bridge(bcfg, uvloop=uv, src=src, logdir=root))
            answer = query_once(servers[0].port, GET_REQ.replace("\\n", "\n")).rstrip("\n")
            servers.append(start_ceiling(free_port(), answer, root))
            print(f"[{time.monotonic() - t_start:5.1f} s] GET VAR throughput, "
                  f"{', '.join(s.label for s in servers)} taking turns", flush=True)
            results = throughput(servers, exe, plan)
            for srv in servers:
                if srv.label == CEILING:
                    continue
                print(f"[{time.monotonic() - t_start:5.1f} s] {srv.label}: LIST VAR, {NIDLE} idle",
                      flush=True)
                results[srv.label].update(measure_server(srv, exe, plan))
        finally:
            for srv in servers:
                srv.stop()
        print(f"[{time.monotonic() - t_start:5.1f} s] idle footprint ({plan.footprint_s:g} s)", flush=True)
        fp = footprint(root, dev, src, plan.footprint_s)
        for label, r in fp.items():
            if not label.startswith("_"):
                print(f"  {label}: RSS {sum(r['rss_mb']):.1f} MB, CPU {sum(r['cpu_pct']):.3f} %")
    total = time.monotonic() - t_start
    argv = [".venv/bin/python", "benchmarks/run.py", *sys.argv[1:]]
    text = report(results, fp, plan, dev, argv, started, total, src)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    # keep sections other benchmarks own (e.g. ha_push.py's), which follow the marker
    if a.out.exists() and KEEP_MARKER in a.out.read_text():
        text = text.rstrip("\n") + "\n\n" + a.out.read_text()[a.out.read_text().index(KEEP_MARKER):]
    a.out.write_text(text)
    print(f"[{total:5.1f} s] wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
