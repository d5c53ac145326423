#!/usr/bin/env python3
"""1,000 UPSes beyond one machine: 50 bridges -> Mosquitto -> Home Assistant, Prometheus, vs the NUT path.

    .venv-3.11/bin/python benchmarks/scale.py [--quick] [--bridges 50] [--ups 20] [--pollinterval 2]
                                              [--window 60] [--changes 100] [--paths integration,mqtt]
                                              [--hass-python PY] [--keep] [--out docs/benchmarks.md]

Everything on this machine, on loopback, each a real process started by the benchmark on free
ports with its own configuration in a temporary directory:

* ``--bridges`` ``nutbridge serve`` processes, each with ``--ups`` simulated UPSes
  (``driver = nutbridge-sim``, ``port = simulated``, ``pollinterval`` 2 s as NUT's default,
  one seed each), named ``bNNuMM`` so that every name is unique in Home Assistant;
* Debian's Mosquitto (its own config: one loopback listener, anonymous, no persistence,
  ``sys_interval 1``; everything else Debian's defaults), Debian's Prometheus (``scrape_interval``
  5 s over every bridge's ``/metrics``), and a real ``python -m homeassistant``
  (benchmarks/scale_ha.py: fresh config dir, onboarded and configured over HA's own APIs).

Two paths, one after the other, each with fresh bridges and a fresh Home Assistant:

``integration`` (the NUT path): the bridges serve NUT only. First the bridges alone are measured
   (CPU, RSS over the window), then HA gets this repository's integration with one config entry
   per bridge (``nut_bridge``, added through the config flow: 50 entries, push from each bridge
   plus the integration's own polls).
``mqtt``: every bridge also has ``MQTT_URL`` (HA device discovery, state topics) and
   ``HTTP_LISTEN`` (Prometheus ``/metrics``); HA gets one MQTT config entry for the broker.

In each path: the time from the first entry until HA's device registry holds a device for every
UPS (matched by name), the entities HA made of them; after ``--settle`` s, a steady window of
``--window`` s in which CPU time (user + sys, all threads, from /proc) per second of wall time and
RSS (largest of 2 s samples) of every process are read: per bridge (median and max over the
bridges), Mosquitto, Prometheus, HA (and HA before any entry, for its own baseline). Then
``--changes`` status changes: on one UPS after another, spread over the bridges, ``INSTCMD
test.failure.start`` then ``test.failure.stop`` (mains lost, back) through a logged-in NUT
connection to its bridge, timed from just before the command is sent to the arrival, at the
benchmark's websocket to HA, of the state change of that UPS's on-battery entity (``on`` /
``off``); both timestamps in this process (``subscribe_trigger`` with a ``state`` trigger on
the timed entities). Prometheus: every target ``up`` (its ``/api/v1/targets``), each target's
scrape duration (mean and max over the window), samples per scrape, head series.

Measures, asserts nothing; writes the section "## 1,000 UPSes" of docs/benchmarks.md (after
run.py's KEEP marker; the rest of the file is kept). ``--quick``: 5 bridges x 20 UPSes, short
windows, 20 changes (< 3 min: a check of the benchmark, for CI). Not part of the test suite.
Needs Debian's mosquitto and prometheus, the test extra (tests/support imports pytest), and Home
Assistant: this interpreter's, ``--hass-python``, or ../shared/tools/sid's .venv-3.14.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bridge")]

import aiohttp  # noqa: E402
from benchmarks.hosting import cpu_ns, rss_kib  # noqa: E402
from benchmarks.scale_ha import HaSocket, Hass, ha_command, ha_version  # noqa: E402
from benchmarks.sections import code_version, fill, percentile, write_section  # noqa: E402
from tests.support import realnut  # noqa: E402

from nutbridge.client import NutClient  # noqa: E402

SECTION = "## 1,000 UPSes"
MOSQUITTO = "/usr/sbin/mosquitto"
PROMETHEUS = "/usr/bin/prometheus"
ADMIN = ("admin", "s3cr3t")  # realnut.DEFAULT_USERS: instcmds = ALL
TARGET_P99_MS = 1000.0
CHANGE_TIMEOUT = 10.0  # s: a change not seen by then counts as lost
MEND_TIMEOUT = 150.0  # s to wait for entities left unavailable by a dropped message
FLOW_TRIES = 5  # a config flow ending in cannot_connect (HA too busy to connect in time) is retried
PATHS = {"integration": "HA integration (NUT, 1 entry per bridge)", "mqtt": "MQTT discovery (1 broker entry)"}
# which entity of a UPS's device is its on-battery one: the OB status flag as a binary sensor
ON_BATTERY = re.compile(r"(^|[_.\-/])(ob|on_?battery)$", re.IGNORECASE)


def has_module(name: str) -> bool:
    """Has the bridge a module of this name yet (the publisher / the HTTP endpoint)?"""
    try:
        return find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def ups_name(b: int, u: int) -> str:
    return f"b{b:02d}u{u:02d}"


def _t(t0: float) -> str:
    return f"[{time.monotonic() - t0:5.0f} s]"


# ---- processes -----------------------------------------------------------------------------------


@dataclass
class Bridge:
    index: int
    cfg: realnut.NutConfig
    proc: subprocess.Popen[bytes]
    names: list[str]
    http_port: int | None = None

    @property
    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.cfg.run / "bridge.log").read_text(errors="replace")
        return ""


@contextlib.contextmanager
def fleet(root: Path, n: int, m: int, poll: float, mqtt_port: int | None, http: bool,
          t0: float) -> Iterator[list[Bridge]]:
    """``n`` ``nutbridge serve`` processes with ``m`` simulated UPSes each (started all at once),
    once every UPS of every bridge answers."""
    bridges: list[Bridge] = []
    try:
        for b in range(n):
            cfg = realnut.NutConfig(root / f"b{b:02d}")
            names = [ups_name(b, u) for u in range(m)]
            for u, name in enumerate(names):
                cfg.add_ups(name, driver="nutbridge-sim", port="simulated", pollinterval=f"{poll:g}",
                            seed=str(b * m + u), serial=f"SIM-{name}")
            http_port = realnut.free_port() if http else None
            if http_port is not None:
                cfg.upsd_extra += f"HTTP_LISTEN 127.0.0.1 {http_port}\n"
            if mqtt_port is not None:
                cfg.upsd_extra += f"MQTT_URL mqtt://127.0.0.1:{mqtt_port}\n"
            cfg.write()
            env = cfg.env()
            env["PYTHONPATH"] = str(REPO / "bridge") + os.pathsep + env.get("PYTHONPATH", "")
            with open(cfg.run / "bridge.log", "wb") as log:
                proc = subprocess.Popen([sys.executable, "-m", "nutbridge", "serve", "--config-dir",
                                         str(cfg.etc)], env=env, stdout=log, stderr=subprocess.STDOUT)
            bridges.append(Bridge(b, cfg, proc, names, http_port))
        for br in bridges:
            try:
                realnut.wait_port(br.cfg.port, timeout=180)
                realnut.wait_ready_many(br.cfg.port, br.names, 120)
                if br.http_port is not None:
                    realnut.wait_port(br.http_port, timeout=30)
            except (TimeoutError, RuntimeError) as e:
                raise RuntimeError(f"bridge {br.index}: {e}\n{br.log[-3000:]}") from None
        print(f"{_t(t0)} {n} bridges x {m} UPSes ready", flush=True)
        yield bridges
    finally:
        for br in bridges:
            if br.proc.poll() is None:
                br.proc.terminate()
        for br in bridges:
            try:
                br.proc.wait(20)
            except subprocess.TimeoutExpired:
                br.proc.kill()
                br.proc.wait()


@contextlib.contextmanager
def daemon(argv: list[str], log: Path, port: int, what: str) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            realnut.wait_port(port, timeout=30)
        except TimeoutError:
            raise RuntimeError(f"{what} did not start:\n{log.read_text(errors='replace')[-2000:]}") from None
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mosquitto(root: Path, port: int,
              max_queued: int | None) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    conf = root / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "log_dest stderr\nlog_type error\nlog_type warning\nsys_interval 1\n"
                    + ("" if max_queued is None else f"max_queued_messages {max_queued}\n"))
    conf.chmod(0o644)  # read before it drops root for the mosquitto user
    return daemon([MOSQUITTO, "-c", str(conf)], root / "mosquitto.log", port, "mosquitto")


def prometheus(root: Path, port: int, targets: list[int],
               interval: float) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    conf = root / "prometheus.yml"
    listed = ", ".join(f"'127.0.0.1:{p}'" for p in targets)
    conf.write_text(f"global:\n  scrape_interval: {interval:g}s\n  scrape_timeout: {interval * 0.8:g}s\n"
                    f"scrape_configs:\n  - job_name: nutbridge\n    static_configs:\n"
                    f"      - targets: [{listed}]\n")
    return daemon([PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={root / 'tsdb'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                  root / "prometheus.log", port, "prometheus")


# ---- CPU and memory ------------------------------------------------------------------------------


@dataclass
class Usage:
    cpu: float = math.nan  # ms of CPU per s of wall time
    rss: int = 0  # KiB, largest sample
    load: tuple[float, float] = (math.nan, math.nan)  # 1-min load average at the window's start, end


async def window(pids: dict[str, int], seconds: float) -> dict[str, Usage]:
    """CPU and RSS of each process over ``seconds`` (async: HA's websocket keeps being read)."""
    out = {k: Usage() for k in pids}
    load0 = os.getloadavg()[0]
    print(f"     window of {seconds:g} s, load average {load0:.2f}", flush=True)
    t0 = time.monotonic()
    start = {k: cpu_ns(p) for k, p in pids.items()}
    while (left := t0 + seconds - time.monotonic()) > 0:
        await asyncio.sleep(min(2.0, left))
        for k, p in pids.items():
            out[k].rss = max(out[k].rss, rss_kib(p))
    elapsed = time.monotonic() - t0
    for k, p in pids.items():
        out[k].cpu = (cpu_ns(p) - start[k]) / 1e6 / elapsed
        out[k].load = (load0, os.getloadavg()[0])
    return out


async def broker_counters(port: int) -> dict[str, float]:
    """Mosquitto's ``$SYS/broker/...`` counters (published every second with sys_interval 1)."""
    import aiomqtt

    out: dict[str, float] = {}
    with contextlib.suppress(aiomqtt.MqttError, TimeoutError, asyncio.TimeoutError):
        async with aiomqtt.Client("127.0.0.1", port, identifier="scale-bench-sys") as c:
            await c.subscribe("$SYS/broker/#")
            async with asyncio.timeout(2.5):
                async for msg in c.messages:
                    with contextlib.suppress(ValueError, TypeError):
                        out[str(msg.topic).removeprefix("$SYS/broker/")] = float(
                            bytes(msg.payload).decode())
    return out


# ---- Prometheus ----------------------------------------------------------------------------------


@dataclass
class Scrapes:
    targets: int = 0
    up: int = 0
    errors: list[str] = field(default_factory=list)
    mean_ms: list[float] = field(default_factory=list)  # per target, mean over the window
    max_ms: list[float] = field(default_factory=list)  # per target, max over the window
    samples: list[float] = field(default_factory=list)  # per target, last scrape
    head_series: float = math.nan


async def prom_query(s: aiohttp.ClientSession, base: str, q: str) -> list[dict[str, Any]]:
    async with s.get(f"{base}/api/v1/query", params={"query": q}) as r:
        body = await r.json()
    return list(body.get("data", {}).get("result", []))


async def scrapes(port: int, seconds: float) -> Scrapes:
    base = f"http://127.0.0.1:{port}"
    out = Scrapes()
    w = f"{max(1, round(seconds))}s"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/api/v1/targets") as r:
            active = (await r.json())["data"]["activeTargets"]
        out.targets = len(active)
        out.up = sum(1 for t in active if t.get("health") == "up")
        out.errors = sorted({t.get("lastError", "") for t in active if t.get("health") != "up"} - {""})
        for q, dest in ((f"avg_over_time(scrape_duration_seconds[{w}])", out.mean_ms),
                        (f"max_over_time(scrape_duration_seconds[{w}])", out.max_ms)):
            dest += [float(x["value"][1]) * 1000 for x in await prom_query(s, base, q)]
        out.samples = [float(x["value"][1]) for x in await prom_query(s, base, "scrape_samples_scraped")]
        async with s.get(f"{base}/api/v1/status/tsdb") as r:
            head = (await r.json()).get("data", {}).get("headStats", {})
        out.head_series = float(head.get("numSeries", math.nan))
    return out


async def wait_targets_up(port: int, n: int, timeout: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(aiohttp.ClientError, OSError, KeyError):
            sc = await scrapes(port, 10)
            if sc.targets == n and sc.up == n:
                return time.monotonic() - t0
        await asyncio.sleep(1)
    return None


# ---- Home Assistant ------------------------------------------------------------------------------


def device_of(names: list[str]) -> Callable[[dict[str, Any]], str | None]:
    """The UPS name a device registry entry stands for (its name or an identifier holds it)."""
    wanted = set(names)
    token = re.compile(r"(?<![A-Za-z0-9])(b\d+u\d+)(?![A-Za-z0-9])")

    def match(dev: dict[str, Any]) -> str | None:
        texts = [str(dev.get("name") or "")] + [str(i[-1]) for i in dev.get("identifiers") or []]
        for text in texts:
            for hit in token.findall(text):
                if hit in wanted:
                    return str(hit)
        return None

    return match


@dataclass
class Registry:
    devices: dict[str, str]  # ups -> device id
    entities: int  # entities of those devices
    enabled: int  # of which enabled (the others are registered but not set up)
    on_battery: dict[str, str]  # ups -> entity id


async def registry(ws: HaSocket, names: list[str]) -> Registry:
    match = device_of(names)
    devices: dict[str, str] = {}
    for dev in await ws.call("config/device_registry/list"):
        ups = match(dev)
        if ups is not None:
            devices[ups] = dev["id"]
    by_device = {v: k for k, v in devices.items()}
    entities = enabled = 0
    on_battery: dict[str, str] = {}
    for ent in await ws.call("config/entity_registry/list"):
        ups = by_device.get(ent.get("device_id"))
        if ups is None:
            continue
        entities += 1
        enabled += not ent.get("disabled_by")
        eid = str(ent.get("entity_id"))
        if (eid.startswith("binary_sensor.") and not ent.get("disabled_by")
                and (ON_BATTERY.search(str(ent.get("unique_id") or "")) or ON_BATTERY.search(eid))):
            on_battery.setdefault(ups, eid)
    return Registry(devices, entities, enabled, on_battery)


async def wait_devices(ws: HaSocket, names: list[str], timeout: float,
                       t0: float) -> tuple[float | None, Registry]:
    """Until HA has a device for every UPS (the device registry: small, asked often), then until
    every UPS has its on-battery entity (the entity registry: tens of MB, asked seldom)."""
    start = time.monotonic()
    last = -1
    reg = Registry({}, 0, 0, {})
    match = device_of(names)
    pause = 2.0 if len(names) > 200 else 0.5
    while time.monotonic() - start < timeout:
        found = sum(1 for dev in await ws.call("config/device_registry/list") if match(dev) is not None)
        if found != last:
            last = found
            print(f"{_t(t0)}   HA: {found} of {len(names)} devices", flush=True)
        if found >= len(names):
            break
        await asyncio.sleep(pause)
    else:
        return None, await registry(ws, names)
    devices_s = time.monotonic() - start
    while time.monotonic() - start < timeout:
        reg = await registry(ws, names)
        if len(reg.on_battery) >= len(names):
            break
        await asyncio.sleep(5 * pause)
    return devices_s, reg


@dataclass
class Latency:
    ms: list[float] = field(default_factory=list)
    lost: int = 0
    skipped: int = 0  # UPSes without an on-battery entity
    cut: int = 0  # UPSes not timed: --latency-budget used up


def pick(bridges: list[Bridge], k: int) -> str:
    """The k-th UPS timed: one bridge after another, a different UPS of it each round."""
    br = bridges[k % len(bridges)]
    return br.names[(k // len(bridges) * 7 + br.index) % len(br.names)]


async def status_changes(ws: HaSocket, hass: Hass, bridges: list[Bridge], reg: Registry, changes: int,
                         budget: float, t0: float) -> Latency:
    res = Latency()
    ups_list = [pick(bridges, k) for k in range(max(1, changes // 2))]
    timed = [u for u in ups_list if u in reg.on_battery]
    res.skipped = len(ups_list) - len(timed)
    waiting: dict[str, tuple[str, asyncio.Future[float]]] = {}

    def seen(entity: str, state: str, now: float) -> None:
        hit = waiting.get(entity)
        if hit is not None and hit[0] == state and not hit[1].done():
            hit[1].set_result(now)

    await ws.subscribe_trigger(sorted({reg.on_battery[u] for u in timed}), seen)
    port_of = {name: br.cfg.port for br in bridges for name in br.names}
    clients: dict[int, NutClient] = {}
    loop = asyncio.get_running_loop()
    rnd = random.Random(16)
    started = time.monotonic()
    try:
        for i, ups in enumerate(timed):
            if time.monotonic() - started > budget:
                res.cut = len(timed) - i
                print(f"{_t(t0)}   latency budget of {budget:g} s used up: {res.cut} UPSes not timed",
                      flush=True)
                break
            port = port_of[ups]
            if port not in clients:
                clients[port] = NutClient("127.0.0.1", port, timeout=10)
                await clients[port].connect()
                await clients[port].authenticate(*ADMIN)
            entity = reg.on_battery[ups]
            for cmd, want in (("test.failure.start", "on"), ("test.failure.stop", "off")):
                fut: asyncio.Future[float] = loop.create_future()
                waiting[entity] = (want, fut)
                sent = time.monotonic()
                await clients[port].instcmd(ups, cmd)
                try:
                    res.ms.append((await asyncio.wait_for(fut, CHANGE_TIMEOUT) - sent) * 1000)
                except TimeoutError:
                    if ws.closed or (hass.proc is not None and hass.proc.poll() is not None):
                        raise RuntimeError("Home Assistant went away during the status changes") from None
                    res.lost += 1
                del waiting[entity]
                await asyncio.sleep(rnd.uniform(0.2, 0.7))  # not in step with the 2 s polls
            if (i + 1) % 10 == 0:
                print(f"{_t(t0)}   {2 * (i + 1)} changes timed", flush=True)
    finally:
        for c in clients.values():
            with contextlib.suppress(Exception):
                await c.close()
    return res


# ---- one path ------------------------------------------------------------------------------------


@dataclass
class PathResult:
    path: str
    devices: int = 0
    entities: int = 0
    enabled: int = 0
    to_devices: float | None = None  # s from the first entry to every UPS's device in HA
    entries_s: float = 0.0  # s to create the config entries
    ha_start_s: float = 0.0
    ha_idle: Usage = field(default_factory=Usage)
    alone: dict[str, Usage] = field(default_factory=dict)  # before HA and Prometheus
    steady: dict[str, Usage] = field(default_factory=dict)
    latency: Latency = field(default_factory=Latency)
    prom: Scrapes | None = None
    prom_up_s: float | None = None
    broker_rate: tuple[float, float] | None = None  # messages/s received, sent in the window
    broker_dropped: float = math.nan  # Mosquitto's publish/dropped/15min after the window
    unavailable: int = 0  # on-battery entities "unavailable" in HA after the steady window
    mended_s: float | None = None  # until none was (None: some still were after MEND_TIMEOUT)
    still: int = 0  # unavailable after MEND_TIMEOUT
    died: list[int] = field(default_factory=list)
    note: str = ""
    flow_retries: int = 0  # config flows that ended in an error and were run again
    failed: str = ""  # why the path stopped early


async def run_path(path: str, a: argparse.Namespace, root: Path, t0: float) -> PathResult:
    res = PathResult(path)
    names_all = [ups_name(b, u) for b in range(a.bridges) for u in range(a.ups)]
    with contextlib.ExitStack() as stack:
        mqtt_port = http = None
        pids: dict[str, int] = {}
        if path == "mqtt":
            mqtt_port = realnut.free_port()
            pids["mosquitto"] = stack.enter_context(mosquitto(root, mqtt_port, a.broker_max_queued)).pid
            http = has_module("nutbridge.web.server")
        bridges = stack.enter_context(fleet(root / path, a.bridges, a.ups, a.pollinterval, mqtt_port,
                                            bool(http), t0))
        pids.update({f"bridge{br.index}": br.proc.pid for br in bridges})
        # before any consumer: the bridges alone (integration path), publishing to the broker
        # with nobody subscribed and nobody scraping (MQTT path)
        await asyncio.sleep(a.settle)
        res.alone = await window(pids, a.window)
        print(f"{_t(t0)}   before HA and Prometheus: {summary(res.alone)}", flush=True)
        prom_port = None
        if http:
            prom_port = realnut.free_port()
            scraped = [br.http_port for br in bridges if br.http_port]
            pids["prometheus"] = stack.enter_context(prometheus(root / path, prom_port, scraped,
                                                                a.scrape_interval)).pid
        hass = Hass(realnut.free_port(), a.hass_python, [REPO / "custom_components" / "nut_bridge"])
        res.note = "frontend stand-in" if hass.frontend_stub else ""
        try:
            hass.start()
            res.ha_start_s = await hass.wait_http(300)
            await hass.onboard()
            pids["hass"] = hass.pid
            print(f"{_t(t0)}   HA up in {res.ha_start_s:.1f} s (pid {hass.pid})", flush=True)
            await asyncio.sleep(2)
            res.ha_idle = (await window({"hass": hass.pid}, min(10.0, a.window)))["hass"]
            async with HaSocket(hass) as ws:
                first = time.monotonic()
                if path == "mqtt":
                    assert mqtt_port is not None
                    await hass.add_entry("mqtt", [{"broker": "127.0.0.1", "port": mqtt_port}])
                else:
                    for br in bridges:
                        res.flow_retries += await hass.add_entry(
                            "nut_bridge", [{"host": "127.0.0.1", "port": br.cfg.port}], FLOW_TRIES)
                res.entries_s = time.monotonic() - first
                print(f"{_t(t0)}   config entries made in {res.entries_s:.1f} s", flush=True)
                wait, reg = await wait_devices(ws, names_all, a.devices_timeout, t0)
                res.to_devices = None if wait is None else res.entries_s + wait
                res.devices, res.entities, res.enabled = len(reg.devices), reg.entities, reg.enabled
                print(f"{_t(t0)}   HA: {res.devices} devices, {res.entities} entities "
                      f"({res.enabled} enabled), {len(reg.on_battery)} on-battery entities", flush=True)
                if prom_port is not None:
                    res.prom_up_s = await wait_targets_up(prom_port, len(bridges), 60)
                await asyncio.sleep(a.settle)
                before = await broker_counters(mqtt_port) if mqtt_port else {}
                tw = time.monotonic()
                res.steady = await window(pids, a.window)
                if mqtt_port:
                    after = await broker_counters(mqtt_port)
                    dt = time.monotonic() - tw
                    k_in, k_out = "messages/received", "messages/sent"
                    if k_in in before and k_in in after:
                        res.broker_rate = ((after[k_in] - before[k_in]) / dt,
                                           (after[k_out] - before[k_out]) / dt)
                    res.broker_dropped = after.get("load/publish/dropped/15min", math.nan)
                print(f"{_t(t0)}   steady: {summary(res.steady)}", flush=True)
                if hass.proc is not None and hass.proc.poll() is not None:
                    raise RuntimeError("Home Assistant exited during the steady window")
                if prom_port is not None:
                    res.prom = await scrapes(prom_port, a.window)
                timed = set(reg.on_battery.values())

                async def unavailable() -> int:
                    return sum(1 for st in await ws.call("get_states")
                               if st.get("entity_id") in timed and st.get("state") == "unavailable")

                res.unavailable = res.still = await unavailable()
                if res.unavailable:
                    # a message the broker dropped: the bridges say it again (docs/mqtt.md)
                    print(f"{_t(t0)}   {res.unavailable} on-battery entities unavailable in HA", flush=True)
                    tm = time.monotonic()
                    while res.still and time.monotonic() - tm < MEND_TIMEOUT:
                        await asyncio.sleep(2)
                        res.still = await unavailable()
                    res.mended_s = None if res.still else time.monotonic() - tm
                    print(f"{_t(t0)}   {res.still} still unavailable after "
                          f"{time.monotonic() - tm:.0f} s", flush=True)
                res.latency = await status_changes(ws, hass, bridges, reg, a.changes, a.latency_budget,
                                                   t0)
                print(f"{_t(t0)}   latency: {stats(res.latency.ms)}, lost {res.latency.lost}", flush=True)
            res.died = [br.index for br in bridges if br.proc.poll() is not None]
        except Exception:
            print(hass.log_tail(), file=sys.stderr)
            raise
        finally:
            hass.stop()
            if not a.keep:
                hass.remove()
            else:
                print(f"     HA config kept in {hass.config}")
    return res


# ---- report --------------------------------------------------------------------------------------


def stats(ms: list[float]) -> str:
    if not ms:
        return "no samples"
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    return f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(ms):.0f} ms ({len(ms)})"


def bridge_usage(u: dict[str, Usage]) -> tuple[list[float], list[float]]:
    cpu = [v.cpu for k, v in u.items() if k.startswith("bridge")]
    rss = [v.rss / 1024 for k, v in u.items() if k.startswith("bridge")]
    return cpu, rss


def summary(u: dict[str, Usage]) -> str:
    cpu, rss = bridge_usage(u)
    parts = [f"bridge {statistics.median(cpu):.1f} ms/s {statistics.median(rss):.0f} MiB (median)"
             ] if cpu else []
    parts += [f"{k} {v.cpu:.1f} ms/s {v.rss / 1024:.0f} MiB" for k, v in u.items()
              if not k.startswith("bridge")]
    return ", ".join(parts)


def med_max(values: list[float], fmt: str) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):{fmt}} (max {max(values):{fmt}})"


def ratio(x: float, y: float) -> str:
    if not (y > 0 and math.isfinite(x) and math.isfinite(y)):
        return "—"
    return f"{x / y:.2f}x"


def usage_rows(w: list[str], label: str, u: dict[str, Usage]) -> None:
    cpu, rss = bridge_usage(u)
    if cpu:
        w.append(f"| {label} | each bridge (median, max of {len(cpu)}) | {med_max(cpu, '.1f')} "
                 f"| {med_max(rss, '.0f')} |")
        w.append(f"| {label} | all bridges together | {sum(cpu):.0f} | {sum(rss):.0f} |")
    for k, v in u.items():
        if not k.startswith("bridge"):
            name = {"hass": "Home Assistant", "mosquitto": "Mosquitto", "prometheus": "Prometheus"}[k]
            w.append(f"| {label} | {name} | {v.cpu:.1f} | {v.rss / 1024:.0f} |")


def report(results: list[PathResult], a: argparse.Namespace, argv: list[str], started: datetime.datetime,
           total_s: float, load: tuple[float, float, float], hass_version: str, missing: list[str]) -> str:
    n_ups = a.bridges * a.ups
    w: list[str] = [SECTION, ""]
    w += [fill(
        f"{a.bridges} `nutbridge serve` processes x {a.ups} simulated UPSes (`driver = nutbridge-sim`, "
        f"`pollinterval = {a.pollinterval:g}`) = {n_ups} UPSes, all on this machine and on loopback, "
        "seen by one real Home Assistant process two ways, one after the other with fresh bridges and a "
        "fresh HA: through this repository's integration (one `nut_bridge` config entry per bridge: the "
        "NUT path) and through Debian's Mosquitto with the bridges' MQTT device discovery (one MQTT "
        "config entry); in the MQTT run Debian's Prometheus also scrapes every bridge's `/metrics`. "
        "Both with the defaults a user gets: over MQTT a UPS's state message goes out at once when "
        "its status, alarms, outlets or settings change, and at most every `MQTT_INTERVAL` (10 s) "
        "when only measured values do (docs/mqtt.md); the integration gets every change pushed at "
        "once and writes the entities whose values changed. "
        "Generated by `benchmarks/scale.py` (`make bench-scale`); do not edit by hand, re-run it."), ""]
    kind = "quick" if a.quick else "full"
    w += [f"- Date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()} ({kind} run, {total_s:.0f} s)",
          f"- Command: `{' '.join(argv)}`",
          f"- Code: {code_version()}",
          f"- Machine: {platform.system()} {platform.release()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the start; bridges on Python "
          f"{platform.python_version()} ({loop_name()}); Home Assistant {hass_version} "
          f"(`python -m homeassistant`, its own process); {tool_version([MOSQUITTO, '-h'])}; "
          f"{tool_version([PROMETHEUS, '--version'])}", ""]
    if missing:
        w += [fill("Not measured: " + "; ".join(missing) + "."), ""]
    w += ["### Method", ""]
    w += [fill(
        "Each bridge's UPSes are named `bNNuMM` (unique across bridges, so HA names every entity "
        "without suffixes) and seeded differently. Home Assistant gets a fresh configuration "
        "directory loading `http`, `api`, `websocket_api`, `config`, `onboarding` and `logger` "
        "besides HA's own always-loaded integrations (no recorder: it is not loaded without "
        "`default_config`), started with `--skip-pip`; it is onboarded through "
        "`POST /api/onboarding/users` + `POST /auth/token`, and the integrations are added through "
        "the config-flow API (`POST /api/config/config_entries/flow`), as the UI does: MQTT needs a "
        "config entry, and these are public APIs while `.storage` is private "
        "(benchmarks/scale_ha.py). "
        + ("HA's UI package (`home-assistant-frontend`) is not installed in this environment: a "
           "no-op stand-in for the `frontend` integration keeps HA out of recovery mode. "
           if any(r.note == "frontend stand-in" for r in results) else "")
        + "Integrations of HA's default set whose Python packages are not installed fail to load "
        "(logged, harmless here: nothing uses them)."), ""]
    w += [fill(
        f"Devices: HA's device registry (websocket `config/device_registry/list`) holds a device per "
        f"UPS (matched by its name in the device's name or identifiers); time counted from the first "
        f"config entry. CPU: user + sys time of all threads (`/proc/<pid>/task/*/schedstat`) over a "
        f"steady window of {a.window:g} s after {a.settle:g} s of settling, per second of wall time "
        f"(1000 ms/s = one core); RSS: the largest `VmRSS` of 2 s samples. Status change: "
        f"`INSTCMD <ups> test.failure.start` then `test.failure.stop` on one UPS after another "
        f"(spread over every bridge; 0.2-0.7 s random pause after each), from just before the "
        f"command is written to the UPS's bridge (a logged-in NUT connection) until this process "
        f"reads, from HA's websocket, the state change of that UPS's on-battery binary sensor "
        f"(`subscribe_trigger`, `state` trigger on the timed entities; both timestamps here, "
        f"`time.monotonic()`); not seen within {CHANGE_TIMEOUT:g} s = lost. Prometheus: "
        f"`scrape_interval` {a.scrape_interval:g} s; `up` from `/api/v1/targets`, scrape durations "
        f"as `avg_over_time` / `max_over_time` of `scrape_duration_seconds` over the window."), ""]

    by = {r.path: r for r in results}
    w += ["### Home Assistant sees every UPS", ""]
    w += ["| path | HA devices (of UPSes) | HA entities (enabled) | config entries made in "
          "| all devices in HA after | HA started in |", "|---|---|---|---|---|---|"]
    for r in results:
        after = f"not within {a.devices_timeout:.0f} s" if r.to_devices is None else f"{r.to_devices:.1f} s"
        w.append(f"| {PATHS[r.path]} | {r.devices} of {n_ups} | {r.entities} ({r.enabled}) "
                 f"| {r.entries_s:.1f} s | {after} | {r.ha_start_s:.1f} s |")
    w.append("")

    for r in results:
        if r.failed:
            w.append(f"- {PATHS[r.path]}: stopped early: {r.failed}")
        if r.flow_retries:
            w.append(f"- {PATHS[r.path]}: {r.flow_retries} config flows ended in an error (`cannot_connect`: "
                     f"HA too busy to connect in time) and were run again (at most {FLOW_TRIES} tries each)")
    if any(r.failed or r.flow_retries for r in results):
        w.append("")
    w += ["### Status change to the HA entity", ""]
    w += ["| path | changes timed | lost | p50 (ms) | p99 (ms) | max (ms) |", "|---|---|---|---|---|---|"]
    for r in results:
        lat = r.latency
        if lat.ms:
            w.append(f"| {PATHS[r.path]} | {len(lat.ms)} | {lat.lost} | {percentile(lat.ms, 50):.0f} "
                     f"| {percentile(lat.ms, 99):.0f} | {max(lat.ms):.0f} |")
        else:
            w.append(f"| {PATHS[r.path]} | 0 | {lat.lost} | — | — | — |")
    if "mqtt" in by and "integration" in by and by["mqtt"].latency.ms and by["integration"].latency.ms:
        m, i = by["mqtt"].latency.ms, by["integration"].latency.ms
        w.append(f"| MQTT / integration | | | {ratio(percentile(m, 50), percentile(i, 50))} "
                 f"| {ratio(percentile(m, 99), percentile(i, 99))} | {ratio(max(m), max(i))} |")
    w.append("")
    for r in results:
        if r.latency.ms:
            p99 = percentile(r.latency.ms, 99)
            w.append(f"- {PATHS[r.path]}: target p99 < {TARGET_P99_MS:.0f} ms "
                     + ("met" if p99 < TARGET_P99_MS and not r.latency.lost else "NOT met")
                     + (f" ({r.latency.lost} lost)" if r.latency.lost else "")
                     + (f"; {r.latency.skipped} UPSes had no on-battery entity" if r.latency.skipped else "")
                     + (f"; after the steady window {r.unavailable} of the {r.devices} UPSes' on-battery "
                        "entities were `unavailable` in HA (a message the broker dropped), "
                        + (f"all available again {r.mended_s:.0f} s later, before the changes were timed"
                           if r.mended_s is not None else
                           f"{r.still} still after {MEND_TIMEOUT:.0f} s") if r.unavailable else "")
                     + (f"; {r.latency.cut} UPSes not timed (--latency-budget {a.latency_budget:g} s used up)"
                        if r.latency.cut else "")
                     + ".")
    w.append("")

    w += ["### CPU and memory in a steady window", ""]
    w += ["| run | process | CPU (ms/s) | RSS (MiB) |", "|---|---|---|---|"]
    alone = {"integration": "bridges alone (NUT only, no client)",
             "mqtt": "bridges publishing to Mosquitto, no HA, no Prometheus"}
    for r in results:
        if r.alone:
            usage_rows(w, alone[r.path], r.alone)
    for r in results:
        if math.isfinite(r.ha_idle.cpu):  # a path that stopped before HA ran has no figures
            w.append(f"| {PATHS[r.path]}: HA before any entry | Home Assistant | {r.ha_idle.cpu:.1f} "
                     f"| {r.ha_idle.rss / 1024:.0f} |")
        usage_rows(w, PATHS[r.path], r.steady)
    w.append("")
    if "mqtt" in by and "integration" in by and by["mqtt"].steady and by["integration"].steady:
        hm, hi = by["mqtt"].steady.get("hass", Usage()), by["integration"].steady.get("hass", Usage())
        cm, rm = bridge_usage(by["mqtt"].steady)
        ci, ri = bridge_usage(by["integration"].steady)
        w += ["| MQTT path / integration path | CPU | RSS |", "|---|---|---|",
              f"| Home Assistant | {ratio(hm.cpu, hi.cpu)} | {ratio(hm.rss, hi.rss)} |"]
        if cm and ci:
            w.append(f"| each bridge (medians) | {ratio(statistics.median(cm), statistics.median(ci))} "
                     f"| {ratio(statistics.median(rm), statistics.median(ri))} |")
            total_m = sum(cm) + sum(v.cpu for k, v in by["mqtt"].steady.items() if k != "hass"
                                    and not k.startswith("bridge"))
            w.append(f"| everything but HA (bridges + broker + Prometheus vs bridges) "
                     f"| {ratio(total_m, sum(ci))} | |")
        w.append("")
    loads = [f"{PATHS[r.path]}: {u.load[0]:.2f} -> {u.load[1]:.2f}" for r in results
             for u in list(r.steady.values())[:1]]
    if loads:
        w += [fill("1-minute load average at the start and end of the steady window (the processes "
                   "measured count in it, and anything else this machine ran): "
                   + "; ".join(loads) + "."), ""]
    for r in results:
        if r.broker_rate:
            dropped = "none (not published)" if math.isnan(r.broker_dropped) else f"{r.broker_dropped:.0f}"
            w.append(fill(f"Mosquitto in the window ({PATHS[r.path]}): {r.broker_rate[0]:.0f} messages/s "
                          f"received, {r.broker_rate[1]:.0f} sent; publishes dropped (its "
                          f"`load/publish/dropped/15min`, a 15-minute moving count): "
                          f"{dropped}; "
                          f"`max_queued_messages` "
                          + ("Mosquitto's default (1000)" if a.broker_max_queued is None
                             else str(a.broker_max_queued)) + " (its `$SYS` counters)."))
            w.append("")

    prom = [r for r in results if r.prom is not None]
    if prom:
        w += ["### Prometheus scraping every bridge", ""]
        w += ["| targets up | scrape duration per target, mean over the window (median, max over "
              "targets) | slowest scrape | samples per scrape per target (median, max) | head series "
              "|", "|---|---|---|---|---|"]
        for r in prom:
            sc = r.prom
            assert sc is not None
            w.append(f"| {sc.up} of {sc.targets} | {med_max(sc.mean_ms, '.1f')} ms "
                     f"| {max(sc.max_ms, default=math.nan):.1f} ms | {med_max(sc.samples, '.0f')} "
                     f"| {sc.head_series:.0f} |")
            if sc.errors:
                w.append("")
                w.append(fill("Scrape errors: " + "; ".join(sc.errors[:3])))
        w.append("")
    for r in results:
        if r.died:
            w.append(f"- {PATHS[r.path]}: bridges that exited during the run: {r.died}")
    return "\n".join(w).rstrip("\n") + "\n"


def loop_name() -> str:
    if os.environ.get("NUTBRIDGE_UVLOOP", "") == "0":
        return "asyncio"
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    return f"uvloop {getattr(uvloop, '__version__', '?')}"


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return f"{Path(argv[0]).name} ?"
    line = (out.stdout + out.stderr).strip().splitlines()
    return line[0] if line else f"{Path(argv[0]).name} ?"


# ---- main ----------------------------------------------------------------------------------------


async def run(a: argparse.Namespace, paths: list[str], root: Path, t0: float) -> list[PathResult]:
    results = []
    for path in paths:
        print(f"{_t(t0)} path {path}: {PATHS[path]}", flush=True)
        try:
            results.append(await run_path(path, a, root, t0))
        except Exception as e:  # the other path is still worth measuring; the report says why
            print(f"{_t(t0)} path {path} failed: {e}", flush=True)
            results.append(PathResult(path, failed=f"{type(e).__name__}: {str(e)[:300]}"))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="5 bridges x 20 UPSes, 10 s windows, 20 changes (< 3 min)")
    ap.add_argument("--bridges", type=int, help="bridge processes (default 50; quick 5)")
    ap.add_argument("--ups", type=int, default=20, help="simulated UPSes per bridge (default 20)")
    ap.add_argument("--pollinterval", type=float, default=2.0, help="driver poll interval, s (default 2)")
    ap.add_argument("--window", type=float, help="steady window, s (default 60; quick 10)")
    ap.add_argument("--settle", type=float, help="s before each window (default 20; quick 5)")
    ap.add_argument("--changes", type=int, help="status changes timed per path (default 100; quick 20)")
    ap.add_argument("--scrape-interval", type=float, default=5.0,
                    help="Prometheus scrape_interval, s (default 5)")
    ap.add_argument("--latency-budget", type=float, default=600.0,
                    help="s at most for the status changes of one path (default 600)")
    ap.add_argument("--broker-max-queued", type=int,
                    help="Mosquitto's max_queued_messages (default: not set, Mosquitto's 1000; 0: no limit)")
    ap.add_argument("--devices-timeout", type=float, default=900.0, help="s to wait for every device in HA")
    ap.add_argument("--paths", default="mqtt,integration", help="which paths (default mqtt,integration)")
    ap.add_argument("--hass-python", help="a Python that runs Home Assistant (default: this one, or sid's)")
    ap.add_argument("--keep", action="store_true", help="keep the HA config dirs and the bridges' files")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    ap.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    a = ap.parse_args()
    q = a.quick
    a.bridges = a.bridges or (5 if q else 50)
    a.window = a.window if a.window is not None else 10.0 if q else 60.0
    a.settle = a.settle if a.settle is not None else 5.0 if q else 20.0
    a.changes = a.changes if a.changes is not None else 20 if q else 100
    paths = [p.strip() for p in a.paths.split(",") if p.strip()]
    if unknown := [p for p in paths if p not in PATHS]:
        ap.error(f"unknown paths {unknown}: choose from {list(PATHS)}")
    missing: list[str] = []
    if "mqtt" in paths:
        for exe in (MOSQUITTO, PROMETHEUS):
            if not Path(exe).exists():
                sys.exit(f"scale: missing {exe} (apt-get install mosquitto prometheus)")
        if not has_module("nutbridge.mqtt.publisher"):
            missing.append("the MQTT path (bridge/nutbridge/mqtt/publisher.py is not there yet)")
            paths.remove("mqtt")
        elif not has_module("nutbridge.web.server"):
            missing.append("Prometheus (bridge/nutbridge/web/server.py, the /metrics endpoint, "
                           "is not there yet)")
    if not paths:
        sys.exit("scale: nothing to measure: " + "; ".join(missing))
    started = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    t0 = time.monotonic()
    hv = ha_version(ha_command(a.hass_python)[0])
    tmp = tempfile.mkdtemp(prefix="nbscale-", dir="/tmp")
    try:
        results = asyncio.run(run(a, paths, Path(tmp), t0))
    finally:
        if a.keep:
            print(f"files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    argv = [os.path.relpath(sys.executable, REPO), "benchmarks/scale.py", *sys.argv[1:]]
    text = report(results, a, argv, started, time.monotonic() - t0, load, hv, missing)
    print(text)
    if not a.no_write:
        write_section(a.out, SECTION, text)
        print(f"{_t(t0)} wrote the section {SECTION!r} of {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
