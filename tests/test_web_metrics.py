"""The HTTP endpoint's core and its Prometheus side (web/server.py, web/metrics.py).

Against the real things on loopback: real ``nutbridge serve`` processes with ``--http``,
Debian's Prometheus (2.42) scraping them, ``promtool check metrics``, NUT's ``upsc`` and
``upscmd`` as the oracle of the values, Python's ``ssl`` for the certificate the HTTPS port
presents, source addresses in 127.0.0.0/8 for upsd.conf's ALLOW and hosts.deny. In-process
(no sockets): the text rendering against prometheus_client's own (the Collector), every
dump of NUT's DDL corpus through promtool, the cost of 1,000 simulated UPSes, and the
Grafana dashboard's queries against the names we export.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from nutbridge.config.upsd_conf import UpsdConf
from nutbridge.config.users import Users
from nutbridge.drivers import create_driver
from nutbridge.drivers.dummy.protocol import EntryKind, parse_entries
from nutbridge.drivers.simulated.driver import SimulatedUPS
from nutbridge.history import History
from nutbridge.server.core import Core
from nutbridge.server.descriptions import Descriptions
from nutbridge.server.frontend import Frontend
from nutbridge.state import Device
from nutbridge.web.metrics import (
    DEFAULT_STATUSES,
    DEVICE_LABELS,
    Exposition,
    UpsCollector,
    metric_name,
    nut_value,
)
from tests.support import realnut
from tests.support.realnut import REPO, BridgeProcess, NutConfig

DASHBOARD = REPO / "docs" / "grafana" / "nut-bridge-dashboard.json"
SIMS = ("sim1", "sim2", "sim3")
DUMMY_DEV = """\
device.mfr: Acme
device.model: Backup 1500
device.serial: AB123
device.type: ups
device.location: "Rack \\"4\\""
battery.charge: 87
battery.runtime: 1520
battery.voltage: 13.5
input.voltage: 229.5
input.frequency: 50.0
ups.load: 23
ups.temperature: -3.5
ups.beeper.status: enabled
outlet.count: 2
outlet.1.status: off
ups.status: OL CHRG
ups.test.result: Done and passed
"""


# ---- helpers -------------------------------------------------------------------------------


def _get(port: int, path: str, *, source: str | None = None, host: str = "127.0.0.1",
         ctx: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP(S) request from ``source`` (an address of 127.0.0.0/8: upsd.conf's ALLOW and
    hosts.deny see it as the peer); with ``ctx``, HTTPS checking the certificate for ``host``."""
    conn: http.client.HTTPConnection
    src = (source, 0) if source else None
    if ctx is None:
        conn = http.client.HTTPConnection(host, port, timeout=10, source_address=src)
    else:
        conn = http.client.HTTPSConnection(host, port, timeout=10, source_address=src, context=ctx)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def _upsc(port: int, ups: str) -> dict[str, str]:
    upsc = realnut.require_client("upsc")
    p = realnut.run_tool([upsc, f"{ups}@127.0.0.1:{port}"])
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.decode().splitlines():
        name, _, value = line.partition(": ")
        out[name] = value
    return out


def _bridge_cfg(tmp: Path, name: str = "nut") -> NutConfig:
    cfg = NutConfig(tmp / name)
    cfg.root.mkdir(parents=True, exist_ok=True)
    (cfg.root / "d.dev").write_text(DUMMY_DEV)
    for i, ups in enumerate(SIMS):
        cfg.add_ups(ups, driver="nutbridge-sim", port="auto", seed=str(i), outlets="2")
    cfg.add_ups("dummy", driver="dummy-ups", port=str(cfg.root / "d.dev"))
    return cfg


def _serve_rc(cfg: NutConfig, args: list[str]) -> subprocess.CompletedProcess[str]:
    """``nutbridge serve`` expected to exit by itself (a refused configuration)."""
    cfg.write()
    env = cfg.env()
    env["PYTHONPATH"] = str(REPO / "bridge") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "nutbridge", "serve", "--config-dir", str(cfg.etc),
                           "--no-zeroconf", *args], env=env, capture_output=True, text=True,
                          timeout=60)


class Prometheus:
    """Debian's prometheus on a free port, in a temp dir, scraping every second."""

    def __init__(self, root: Path, scrape_configs: list[dict[str, Any]]) -> None:
        exe = shutil.which("prometheus", path="/usr/bin:/usr/sbin:/bin")
        realnut.require("Prometheus (apt-get install prometheus)", exe)
        assert exe
        root.mkdir(parents=True, exist_ok=True)
        self.port = realnut.free_port()
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                             "evaluation_interval": "1s"},
                  "scrape_configs": scrape_configs}
        (root / "prometheus.yml").write_text(json.dumps(config, indent=1))  # JSON is YAML
        self.log_path = root / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [exe, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'db'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(self.port, "/-/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "Prometheus not ready:\n" + self.log()
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def api(self, path: str, **params: str) -> Any:
        status, _, body = _get(self.port, f"/api/v1/{path}?{urllib.parse.urlencode(params)}")
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def wait(self, expr: str, what: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The result of ``expr`` once it is not empty."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            assert time.monotonic() < deadline, f"{what}: {expr} stayed empty\n{self.log()}"
            time.sleep(0.25)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def prometheus(root: Path, scrape_configs: list[dict[str, Any]]) -> Iterator[Prometheus]:
    p = Prometheus(root, scrape_configs)
    try:
        yield p
    finally:
        p.stop()


def _frontend(devices: list[Device]) -> Frontend:
    core = Core(devices, Users(), UpsdConf(), Descriptions.load())
    return Frontend(core, History(None), core.conf, lambda: "test-id", "0.0-test")


def _sim_devices(n: int, outlets: int = 2) -> tuple[list[Device], list[SimulatedUPS]]:
    devs, drivers = [], []
    for i in range(n):
        dev = Device(f"ups{i:04d}", None, "nutbridge-sim")
        drv = create_driver(dev, {"driver": "nutbridge-sim", "seed": str(i), "outlets": str(outlets)})
        assert isinstance(drv, SimulatedUPS)
        drv._publish()  # what the driver's poll does, without its loop
        dev.data_ok()
        devs.append(dev)
        drivers.append(drv)
    return devs, drivers


def _promtool() -> str:
    exe = shutil.which("promtool", path="/usr/bin:/usr/sbin:/bin")
    realnut.require("promtool (apt-get install prometheus)", exe)
    assert exe
    return exe


def _promtool_check(text: bytes) -> None:
    p = subprocess.run([_promtool(), "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        (p.stdout + p.stderr).decode()[:3000]


# ---- (1) Prometheus scrapes a real bridge ------------------------------------------------------


def test_prometheus_scrapes_every_ups_and_values_equal_upsc(tmp_path: Path) -> None:
    upscmd = realnut.require_client("upscmd")
    cfg = _bridge_cfg(tmp_path)
    http_port = realnut.free_port()
    target = f"127.0.0.1:{http_port}"
    with BridgeProcess.start(cfg, ["--http", target, "--no-zeroconf"]) as bridge:
        realnut.wait_ready_ups(cfg.port, [*SIMS, "dummy"])
        realnut.wait_port(http_port)
        scrape: list[dict[str, Any]] = [
            # one job for the whole bridge: every UPS, labelled by the bridge
            {"job_name": "nut-bridge", "static_configs": [{"targets": [target]}]},
            # nut_exporter's documented shape: one UPS per job, the scrape config adds `ups`
            {"job_name": "nut-exporter-style", "metrics_path": "/ups_metrics",
             "params": {"ups": ["sim2"]},
             "static_configs": [{"targets": [target], "labels": {"ups": "sim2"}}]},
        ]
        with prometheus(tmp_path / "prom", scrape) as prom:
            prom.wait('count(up == 1) == 2', "every target up")
            up = prom.query('up')
            assert {(r["metric"]["job"], r["value"][1]) for r in up} == \
                {("nut-bridge", "1"), ("nut-exporter-style", "1")}, up
            targets = prom.api("targets")["activeTargets"]
            assert [t["health"] for t in targets] == ["up", "up"], targets

            # values per `ups` label equal what upsc prints (static ones: the simulation's
            # voltages wander; the dummy's file is static, so every numeric variable of it)
            prom.wait('count(network_ups_tools_device_info{job="nut-bridge"}) == 4', "all UPSes")
            for ups in SIMS:
                seen = _upsc(cfg.port, ups)
                for var in ("battery.charge", "ups.load", "battery.voltage.nominal",
                            "ups.realpower.nominal", "input.voltage.nominal", "outlet.count"):
                    _assert_value(prom, ups, var, seen[var], cfg.port)
            seen = _upsc(cfg.port, "dummy")
            numeric = {k: v for k, v in seen.items() if nut_value(v) is not None}
            assert {"battery.charge", "ups.beeper.status", "outlet.1.status", "ups.temperature",
                    "outlet.count"} <= set(numeric)
            assert "ups.test.result" not in numeric and "device.model" not in numeric
            for var, value in numeric.items():
                if var != "ups.status":
                    _assert_value(prom, "dummy", var, value, cfg.port)
            info = prom.query('network_ups_tools_device_info{job="nut-bridge",ups="dummy"}')
            assert len(info) == 1
            labels = info[0]["metric"]
            for k in DEVICE_LABELS:  # Prometheus drops labels with empty values
                assert labels.get(k, "") == seen.get(f"device.{k}", ""), (k, labels)
            assert (labels["serial"], labels["location"]) == ("AB123", 'Rack "4"')
            flags = {r["metric"]["flag"]: r["value"][1]
                     for r in prom.query('network_ups_tools_ups_status{job="nut-bridge",ups="dummy"}')}
            assert flags == {**dict.fromkeys(DEFAULT_STATUSES, "0"), "OL": "1", "CHRG": "1"}

            # the bridge's view and its own figures
            state = prom.query('nutbridge_ups_driver_state{job="nut-bridge",state="ok"} == 1')
            assert {r["metric"]["ups"] for r in state} == {*SIMS, "dummy"}
            assert prom.query('nutbridge_ups_data_stale{job="nut-bridge"} == 1') == []
            assert prom.wait('process_resident_memory_bytes{job="nut-bridge"}', "process")
            assert prom.wait('nutbridge_ups_devices{job="nut-bridge"} == 4', "device count")

            # nut_exporter's shape, as its dashboard queries it
            one = prom.wait('network_ups_tools_battery_charge{job="nut-exporter-style",ups="sim2"}',
                            "/ups_metrics")
            assert one[0]["value"][1] == _upsc(cfg.port, "sim2")["battery.charge"]

            # a mains loss reaches the ups_status flag series
            p = realnut.run_tool([upscmd, "-u", "admin", "-p", "s3cr3t", f"sim1@127.0.0.1:{cfg.port}",
                                  "test.failure.start"])
            assert p.returncode == 0, p.stderr
            prom.wait('network_ups_tools_ups_status{job="nut-bridge",ups="sim1",flag="OB"} == 1',
                      "on battery")
            prom.wait('network_ups_tools_ups_status{job="nut-bridge",ups="sim1",flag="OL"} == 0',
                      "not on line")
            assert prom.query('network_ups_tools_ups_status{job="nut-bridge",ups="sim2",flag="OB"}'
                              )[0]["value"][1] == "0"
            assert "OB" in _upsc(cfg.port, "sim1")["ups.status"].split()

            # every query of the shipped dashboard is valid PromQL that finds data here
            for expr in dashboard_exprs():
                prom.api("query", query=_instantiate(expr))
            names = set(_referenced_names(" ".join(dashboard_exprs())))
            for name in names:
                prom.wait(f'count({{__name__="{name}"}})', f"dashboard metric {name}")

            # what (2) checks in-process, on what the real endpoint served
            status, headers, body = _get(http_port, "/metrics")
            assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
            _promtool_check(body)
        assert "Traceback" not in bridge.log()


def _assert_value(prom: Prometheus, ups: str, var: str, printed: str, port: int) -> None:
    """Prometheus's latest sample of ``var`` for ``ups`` equals upsc's value (the number
    nut_exporter makes of it); a few tries, in case the value changed between the two reads."""
    name = metric_name(var)
    deadline = time.monotonic() + 10
    while True:
        result = prom.query(f'{name}{{job="nut-bridge",ups="{ups}"}}')
        assert len(result) <= 1, result
        if result and float(result[0]["value"][1]) == nut_value(printed):
            return
        assert time.monotonic() < deadline, f"{ups} {var}: upsc {printed!r}, Prometheus {result}"
        time.sleep(0.5)
        printed = _upsc(port, ups)[var]


# ---- (3) nut_exporter's request shape ----------------------------------------------------------


def test_ups_metrics_answers_as_nut_exporter(tmp_path: Path) -> None:
    cfg = _bridge_cfg(tmp_path)
    http_port = realnut.free_port()
    with BridgeProcess.start(cfg, ["--http", f"127.0.0.1:{http_port}", "--no-zeroconf"]):
        realnut.wait_ready_ups(cfg.port, [*SIMS, "dummy"])
        realnut.wait_port(http_port)
        status, headers, body = _get(http_port, "/ups_metrics?ups=dummy")
        assert status == 200 and headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = body.decode()
        fams = _families(text)
        # no `ups` label: nut_exporter's scrape config adds it
        assert all("ups" not in labels for samples in fams.values() for labels, _ in samples)
        # names and labels as docs/scaleout.md §2.1 records them
        assert fams["network_ups_tools_battery_charge"] == [({}, 87.0)]
        assert fams["network_ups_tools_input_voltage"] == [({}, 229.5)]
        assert fams["network_ups_tools_ups_temperature"] == [({}, -3.5)]
        assert fams["network_ups_tools_ups_beeper_status"] == [({}, 1.0)]  # "enabled"
        assert fams["network_ups_tools_outlet_1_status"] == [({}, 0.0)]  # "off"
        assert "network_ups_tools_ups_test_result" not in fams  # a string: not exported
        status_flags = {labels["flag"]: v for labels, v in fams["network_ups_tools_ups_status"]}
        assert status_flags == {**dict.fromkeys(DEFAULT_STATUSES, 0.0), "OL": 1.0, "CHRG": 1.0}
        [(info, one)] = fams["network_ups_tools_device_info"]
        seen = _upsc(cfg.port, "dummy")
        assert one == 1.0 and info == {k: seen.get(f"device.{k}", "") for k in DEVICE_LABELS}
        assert info["serial"] == "AB123" and info["location"] == 'Rack "4"' and info["contact"] == ""
        assert "# HELP network_ups_tools_battery_charge Battery charge (percent of full) " \
               "(battery.charge)\n" in text
        assert "# TYPE network_ups_tools_battery_charge gauge\n" in text

        # nut_exporter's per-scrape overrides
        _, _, body = _get(http_port, "/ups_metrics?ups=dummy&variables=battery.charge,ups.status"
                                     "&statuses=OB,LB")
        fams = _families(body.decode())
        assert set(fams) == {"network_ups_tools_battery_charge", "network_ups_tools_ups_status",
                             "network_ups_tools_device_info"}
        assert {lb["flag"]: v for lb, v in fams["network_ups_tools_ups_status"]} == \
            {"OL": 1.0, "CHRG": 1.0, "OB": 0.0, "LB": 0.0}

        # what nut_exporter answers: an unknown UPS and a missing ups= on a server with several
        status, _, body = _get(http_port, "/ups_metrics?ups=nosuch")
        assert (status, body) == (500, b"500 - InternalServer Error")
        status, _, body = _get(http_port, "/ups_metrics")
        assert status == 500 and b"ups=<name>" in body

        # the multi-UPS endpoint: everything with a `ups` label
        status, _, body = _get(http_port, "/metrics")
        fams = _families(body.decode())
        assert {lb["ups"] for lb, _ in fams["network_ups_tools_battery_charge"]} == {*SIMS, "dummy"}
        assert {lb["ups"] for lb, _ in fams["network_ups_tools_device_info"]} == {*SIMS, "dummy"}
        assert ({"ups": "dummy"}, 87.0) in fams["network_ups_tools_battery_charge"]


# ---- (4) access, TLS, bind errors -------------------------------------------------------------


def test_allow_and_hosts_deny_refuse_peers_with_403(tmp_path: Path) -> None:
    cfg = _bridge_cfg(tmp_path)
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("")
    deny.write_text("upsd: 127.0.0.3\n")
    # upsd.conf's ALLOW: 127.0.0.1 is outside; hosts.deny refuses 127.0.0.3 on top
    cfg.upsd_extra = "ALLOW 127.0.0.2/32 127.0.0.3/32\n"
    http_port = realnut.free_port()
    env = {"NUTBRIDGE_HOSTS_ALLOW": str(allow), "NUTBRIDGE_HOSTS_DENY": str(deny)}
    with BridgeProcess.start(cfg, ["--http", f"127.0.0.1:{http_port}", "--no-zeroconf", "-D"],
                             env=env) as bridge:
        realnut.wait_port(http_port)
        deadline = time.monotonic() + 15
        while b'ups="sim1"' not in _get(http_port, "/metrics", source="127.0.0.2")[2]:
            assert time.monotonic() < deadline, bridge.log()
            time.sleep(0.2)
        status, _, body = _get(http_port, "/metrics", source="127.0.0.2")
        assert status == 200 and b"network_ups_tools_device_info{" in body
        for source in ("127.0.0.1", "127.0.0.3"):
            for path in ("/metrics", "/ups_metrics?ups=sim1", "/", "/nosuch"):
                status, h, body = _get(http_port, path, source=source)
                assert (status, body) == (403, b"403: Forbidden\n"), (source, path)
                assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
        # security headers on every answer, a 404 included
        for path in ("/metrics", "/nosuch"):
            status, h, _ = _get(http_port, path, source="127.0.0.2")
            csp = h["content-security-policy"]
            assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
            assert "frame-ancestors 'none'" in csp
            assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
        # bounded requests: a 100 kB header line is refused, the server carries on
        with socket.create_connection(("127.0.0.1", http_port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
            answer = s.recv(200)
        assert re.match(rb"HTTP/1\.[01] (400|431) ", answer), answer
        # a password in nut_exporter's query string never reaches the log (access log: debug)
        _get(http_port, "/ups_metrics?ups=sim1&username=u&password=hunter2", source="127.0.0.2")
        time.sleep(0.3)
        log = bridge.log()
        assert "GET /ups_metrics 200" in log  # the access log line, at debug level (-D)
        assert "hunter2" not in log
        assert "HTTP: refusing 127.0.0.1 (not in ALLOW networks)" in log
        assert "HTTP: access denied to 127.0.0.3 by hosts.allow/hosts.deny" in log


def _hold(port: int, source: str, n: int) -> list[socket.socket]:
    """``n`` idle connections from ``source``, each accepted by the kernel."""
    return [socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
            for _ in range(n)]


def _closed_at_once(port: int, source: str) -> bool:
    """A connection the server closes without a byte (refused) rather than keeps open."""
    with socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(source, 0)) as s:
        try:
            return s.recv(10) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True


def test_http_connection_caps_keep_the_endpoint_and_upsd_for_others(tmp_path: Path) -> None:
    """Idle connections from one address stop at MAX_PER_PEER, from everyone at
    MAX_CONNECTIONS; the rest of the LAN (and upsd) is served meanwhile; the bridge lifted
    its soft open-files limit (started with 1024 here, as systemd gives services)."""
    import resource

    from nutbridge.web import server as websrv

    cfg = _bridge_cfg(tmp_path)
    http_port = realnut.free_port()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        bridge_cm = BridgeProcess.start(cfg, ["--http", f"127.0.0.1:{http_port}", "--no-zeroconf"])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    held: list[socket.socket] = []
    with bridge_cm as bridge:
        realnut.wait_port(http_port)
        limits = Path(f"/proc/{bridge.proc.pid}/limits").read_text()
        row = next(line for line in limits.splitlines() if line.startswith("Max open files")).split()
        want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
        assert int(row[3]) == want, row
        try:
            per, total = websrv.MAX_PER_PEER, websrv.MAX_CONNECTIONS
            held += _hold(http_port, "127.0.0.2", per)
            time.sleep(0.3)
            assert _closed_at_once(http_port, "127.0.0.2")  # one more from that address
            assert _get(http_port, "/metrics", source="127.0.0.3")[0] == 200  # others are served
            for i in range(total // per - 1):  # fill every slot from other addresses
                held += _hold(http_port, f"127.0.1.{i + 1}", per)
            time.sleep(0.3)
            assert _closed_at_once(http_port, "127.0.0.4")
            assert _upsc(cfg.port, "sim1")["ups.status"]  # upsd is another door: open
            for s in held:
                s.close()
            held = []
            deadline = time.monotonic() + 5  # the server sees the closes, frees the slots
            while True:
                try:
                    if _get(http_port, "/metrics", source="127.0.0.2")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "slots not freed"
                time.sleep(0.1)
        finally:
            for s in held:
                s.close()
        log = bridge.log()
        assert f"HTTP: 127.0.0.2 holds {per} connections; refusing another" in log
        assert f"HTTP: {total} connections open; refusing 127.0.0.4" in log


def test_https_with_the_bridge_certificate(tmp_path: Path) -> None:
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto")
    state = tmp_path / "state"
    http_port = realnut.free_port()
    # upsd beyond loopback: the bridge makes its certificate (docs/tls.md), and the HTTP
    # port (here on loopback) then speaks TLS only, with the same certificate
    args = ["--state-dir", str(state), "--listen", f"127.0.0.1:{cfg.port}", "--listen",
            f"0.0.0.0:{realnut.free_port()}", "--http", f"127.0.0.1:{http_port}", "--no-zeroconf"]
    with BridgeProcess.start(cfg, args) as bridge:
        realnut.wait_port(http_port)
        pem = state / "tls" / "nutbridge.pem"
        m = re.search(r"TLS: made a self-signed certificate \S+, SHA-256 ([0-9a-f]{64})", bridge.log())
        assert m, bridge.log()
        fingerprint = m.group(1)
        assert "HTTPS: listening on 127.0.0.1" in bridge.log()
        # the certificate the HTTPS port presents is the bridge's (frontend.tls_sha256)
        ctx = ssl.create_default_context(cafile=str(pem))
        with socket.create_connection(("127.0.0.1", http_port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None and hashlib.sha256(der).hexdigest() == fingerprint
        deadline = time.monotonic() + 15
        while True:
            status, _, body = _get(http_port, "/metrics", ctx=ctx, host="localhost")
            if b'network_ups_tools_battery_charge{ups="sim"}' in body:
                break
            assert time.monotonic() < deadline, body[:500]
            time.sleep(0.2)
        assert status == 200
        # no clear-text HTTP on that port
        with socket.create_connection(("127.0.0.1", http_port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(5)
            try:
                answer = s.recv(100)
            except OSError:
                answer = b""
        assert not answer.startswith(b"HTTP/"), answer


def test_bind_conflict_exits_1_and_broken_http_listen_exits_2(tmp_path: Path) -> None:
    cfg = NutConfig(tmp_path / "nut")
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto")
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = _serve_rc(cfg, ["--http", f"127.0.0.1:{port}"])
    assert p.returncode == 1, p.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in p.stderr
    assert "nutbridge: HTTP: " in p.stderr

    cfg.upsd_extra = "HTTP_LISTEN 127.0.0.1 notaport\n"
    p = _serve_rc(cfg, [])
    assert p.returncode == 2, p.stderr
    assert f"{cfg.etc / 'upsd.conf'}:2" in p.stderr and "notaport" in p.stderr


# ---- in-process: the rendering, its cost, the corpus, the dashboard ---------------------------


def test_rendering_equals_prometheus_client_and_passes_promtool() -> None:
    devs, _ = _sim_devices(4)
    devs[2].data_stale()  # stale: its values are left out, its state is not
    odd = Device('odd "name"\\x')  # never connected, a name that needs escaping
    devs.append(odd)
    fe = _frontend(devs)
    ours = Exposition(fe).render()
    reg = CollectorRegistry()
    reg.register(UpsCollector(fe))

    def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        return {(s.name, tuple(sorted(s.labels.items())), s.value)
                for f in text_string_to_metric_families(text) for s in f.samples
                if s.name.startswith(("network_ups_tools_", "nutbridge_ups_"))
                and s.name not in ("nutbridge_ups_devices", "nutbridge_ups_data_age_seconds")}

    a, b = samples(ours.decode()), samples(generate_latest(reg).decode())
    assert a == b and len(a) > 150
    ups_of = {lb for name, labels, _ in a for k, lb in labels if k == "ups"}
    assert ups_of == {"ups0000", "ups0001", "ups0002", "ups0003", 'odd "name"\\x'}
    charge = {dict(lb)["ups"] for n, lb, _ in a if n == "network_ups_tools_battery_charge"}
    assert charge == {"ups0000", "ups0001", "ups0003"}  # not the stale one, nor the absent one
    assert ("nutbridge_ups_data_stale", (("ups", "ups0002"),), 1.0) in a
    assert ("nutbridge_ups_driver_connected", (("ups", 'odd "name"\\x'),), 0.0) in a
    _promtool_check(ours)


def test_every_ddl_dump_renders_promtool_clean() -> None:
    files = realnut.ddl_files(realnut.require_path(realnut.DDL_DIR, "NUT's DDL corpus"))
    realnut.require("DDL dumps", files)
    devs = []
    for name, f in realnut.ddl_ups_names(files).items():
        dev = Device(name)
        for e in parse_entries(f.read_bytes()):
            if e.kind in (EntryKind.VAR, EntryKind.STATUS) and e.value:
                dev.set(e.name, e.value)
        dev.data_ok()
        devs.append(dev)
    text = Exposition(_frontend(devs)).render()
    _promtool_check(text)
    names = {f.name for f in text_string_to_metric_families(text.decode())}
    assert {"network_ups_tools_input_L1_N_voltage", "network_ups_tools_outlet_count_value",
            "network_ups_tools_experimental_statistics_rising_AVR_trigger_counters"} <= names


def test_metric_names_and_values_as_nut_exporter() -> None:
    assert metric_name("battery.charge") == "network_ups_tools_battery_charge"
    assert metric_name("input.L1-N.voltage") == "network_ups_tools_input_L1_N_voltage"
    assert metric_name("outlet.count") == "network_ups_tools_outlet_count_value"
    assert metric_name("x.discharge_counter") == "network_ups_tools_x_discharge_counters"
    assert metric_name("odd/name") == "network_ups_tools_odd_name"
    cases = {"100": 100.0, "-3.5": -3.5, ".5": 0.5, "5.": 5.0, " 42 ": 42.0, "enabled": 1.0,
             "Disabled": 0.0, "on": 1.0, "OFF": 0.0, "1.2.3": None, ".": None, "-": None,
             "0x10": None, "1e3": None, "muted": None, "": None, str(1 << 63): None}
    assert {k: nut_value(k) for k in cases} == cases


def test_1000_ups_render_once_and_again_when_changed() -> None:
    """The scrape of 1,000 simulated UPSes (each with 2 outlets): every UPS in it, the cached
    lines of an unchanged UPS are reused as they were, a changed UPS's are new. (What it costs:
    benchmarks/metrics_render.py, docs/benchmarks.md.)"""
    devs, drivers = _sim_devices(1000)
    ex = Exposition(_frontend(devs))
    first = ex.render()
    series = first.count(b"\n") - first.count(b"\n#")
    assert series > 50_000
    assert all(f'ups="{d.name}"'.encode() in first for d in devs)

    def lines(text: bytes) -> set[bytes]:  # the UPSes' series, but for their data's age
        return {x for x in text.split(b"\n")
                if b'ups="' in x and not x.startswith(b"nutbridge_ups_data_age_seconds")}

    assert lines(ex.render()) == lines(first)  # nothing changed: the same series and values
    drivers[7].model.advance(600.0)
    drivers[7]._publish()
    changed = lines(ex.render()) - lines(first)
    assert changed and all(b'ups="ups0007"' in line for line in changed)


def _timed(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---- the Grafana dashboard ----------------------------------------------------------------------


def dashboard_exprs(panels_only: bool = False) -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and templating queries."""
    doc = json.loads(DASHBOARD.read_text())
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc.get("panels", []))
    if panels_only:
        return out
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            text = q.get("query") if isinstance(q, dict) else q
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", text or "")
            assert m, text
            out.append(m.group(1))
    return out


def _instantiate(expr: str) -> str:
    """Grafana's variables as the test's Prometheus can take them."""
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
            .replace('"$ups"', '"sim1"').replace("$ups", ".*").replace("$job", ".*")
            .replace("$instance", ".*"))


_NAME = re.compile(r"\b(network_ups_tools_[A-Za-z0-9_]+|nutbridge_[a-z0-9_]+|process_[a-z_]+|"
                   r"python_[a-z_]+|up)\b(?!\s*\()")


def _referenced_names(text: str) -> list[str]:
    return _NAME.findall(re.sub(r'"[^"]*"', '""', text))  # not inside label values


def test_dashboard_queries_only_metrics_we_export() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["title"] and doc["uid"] and {v["name"] for v in doc["templating"]["list"]} >= {"ups"}
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    devs, _ = _sim_devices(2)
    text = Exposition(_frontend(devs)).render().decode()
    exported = {f.name for f in text_string_to_metric_families(text)} | {
        s.name for f in text_string_to_metric_families(text) for s in f.samples} | {"up"}
    for expr in exprs:
        names = _referenced_names(expr)
        assert names, expr
        assert set(names) <= exported, (expr, set(names) - exported)
    # every per-UPS panel follows the UPS selection
    for expr in dashboard_exprs(panels_only=True):
        if any(n.startswith(("network_ups_tools_", "nutbridge_ups_")) for n in _referenced_names(expr)):
            assert 'ups=~"$ups"' in expr, expr
