"""``nutbridge scan`` (nut-scanner's job) against what runs here.

* output: nut-scanner 2.8.5's ups.conf (``[nutdev-<bus>N]``, tab-indented quoted options,
  commented options, ``# alternately:``, the ``-Q`` serial warnings), its ``-P`` lines and
  our JSON; compared byte for byte with the real nut-scanner where it can see the same thing
  (NUT servers);
* USB: the fake pyusb backend with several vendors' devices (DDL dumps replayed, identities
  from dumps, a Megatec bridge, a device only NUT's udev rules know, a mouse); the scanned
  ups.conf is loaded by ``nutbridge serve`` and every section reaches its device (upsc reads
  it), and a separate ``nutbridge serve`` process runs a scanned section against a replay;
* NUT servers: two ``nutbridge serve`` and a C upsd on loopback ports, found over a TCP range
  and over mDNS; the sections are accepted by ``nutbridge serve`` and by the C upsd + NUT's
  dummy-ups, which both reach every UPS through them;
* SNMP: snmpsim agents (v1, v2c, v3) on loopback; each section compared byte for byte with NUT
  2.8.5's nut-scanner on the same agent (through a relay on port 161, the only one it scans),
  and run by ``nutbridge serve`` and by the C upsd + NUT's snmp-ups.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

from nutbridge.drivers.qx import driver as qxd
from nutbridge.drivers.usbhid import driver as usbhid
from nutbridge.scan import model, ranges, usbids
from nutbridge.scan.main import run
from nutbridge.scan.model import Found, Option
from nutbridge.scan.nut import nut_port
from nutbridge.scan.usb import describe
from nutbridge.serve import Bridge, load_config
from nutbridge.simulation import fakeqx
from nutbridge.simulation.fakeusb import FakeBackend, FakeHidDevice
from nutbridge.simulation.usbdump import Dump, fake_device_from_dump, load_dump
from tests.support import realnut

DDL = realnut.DDL_DIR
BK650 = DDL / "APC" / "APC__Back-UPS_BK650M2-CH__usbhid-ups__2.8.0__01.dev"
SMX750 = DDL / "APC" / "APC__Smart-UPS_X_750__usbhid-ups__2.7.4__01.dev"
#: dumps without a report descriptor: their USB identity only (on BK650's descriptor)
IDENTITIES = [DDL / "Powercom" / "Powercom__Raptor_2000__usbhid-ups__2.7.4__01.dev",
              DDL / "PowerWalker" / "PowerWalker__VI_2200_SH__usbhid-ups__2.7.4__01.dev",
              DDL / "Cyber_Power_Systems" / "Cyber_Power_Systems__UT2200E__usbhid-ups__2.7.4__01.dev"]
needs_ddl = realnut.prerequisite("NUT DDL corpus (../shared/data/ddl)",
                                 all(p.is_file() for p in (BK650, SMX750, *IDENTITIES)))


def scan(argv: list[str], backend: object | None = None,
         rules: list[usbids.RuleId] | None = None) -> tuple[int, str]:
    """``nutbridge scan ARGV`` in this process (so it can see a fake USB backend); ``rules``:
    NUT's udev rules to use instead of the installed ones."""
    buf = StringIO()
    with redirect_stdout(buf):
        rc = run(["-q", *argv], usb_backend=backend, udev_rules=rules)
    return rc, buf.getvalue()


def nutbridge(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(realnut.REPO / "bridge"))
    return subprocess.run([sys.executable, "-m", "nutbridge", *argv], capture_output=True,
                          text=True, env=env, timeout=timeout)


# ---- output (sans-IO) ----------------------------------------------------------------------


def test_ups_conf_format_is_nut_scanners() -> None:
    found = [
        Found("usb", "nutdrv_qx", "auto",
              (Option("vendorid", "0665"), Option("serial", "AAAA"), Option("device", "004", ""),
               Option("bcdDevice", "0100", "NOTMATCHED-YET")),
              alternates=("blazer_usb",)),
        Found("nut", "dummy-ups", "ups@10.0.0.1"),
        Found("usb", "usbhid-ups", "auto", (Option("serial", 'A"B#1 '),)),
        Found("usb", "usbhid-ups", "auto", (Option("serial", "AAAA"), Option("explore", None))),
    ]
    assert model.ups_conf(found, sanity=False) == (
        '[nutdev-usb1]\n\tdriver = "nutdrv_qx"\t# alternately: blazer_usb\n\tport = "auto"\n'
        '\tvendorid = "0665"\n\tserial = "AAAA"\n\t# device = "004"\n'
        '\t###NOTMATCHED-YET### bcdDevice = "0100"\n'
        '[nutdev-nut2]\n\tdriver = "dummy-ups"\n\tport = "ups@10.0.0.1"\n'
        '[nutdev-usb3]\n\tdriver = "usbhid-ups"\n\tport = "auto"\n\tserial = "A\\"B\\#1 "\n'
        '[nutdev-usb4]\n\tdriver = "usbhid-ups"\n\tport = "auto"\n\tserial = "AAAA"\n\texplore\n')
    warnings = model.ups_conf(found).split("[nutdev-usb4]")[1].split("\texplore\n")[1]
    assert warnings == (
        '\n# WARNING: all-same character "serial" with 4 copies of \'A\' (0x41) reported in some '
        'devices: nutdev-usb1,nutdev-usb4\n'
        '\n# WARNING: same "serial" value "AAAA" reported in several device configurations (maybe '
        'okay if multiple drivers for same device, likely a vendor bug if reported by same driver '
        'for many devices): nutdev-usb1,nutdev-usb4\n'
        '\n# WARNING: trailing blank space in "serial" value "A"B#1 " reported in device '
        'configuration(s): nutdev-usb3\n')
    assert model.parsable(found[:2]) == ('USB:driver="nutdrv_qx",port="auto",vendorid="0665",serial="AAAA"\n'
                                         'NUT:driver="dummy-ups",port="ups@10.0.0.1"\n')
    doc = json.loads(model.as_json(found[:1]))
    assert doc["devices"][0] == {
        "name": "nutdev-usb1", "bus": "usb", "driver": "nutdrv_qx", "port": "auto",
        "options": {"vendorid": "0665", "serial": "AAAA"},
        "commented": {"device": "004", "bcdDevice": "0100"}, "alternates": ["blazer_usb"], "info": {}}


def test_the_written_ups_conf_reads_back_the_same(tmp_path: Path) -> None:
    """Values with quotes, backslashes, hashes and spaces survive the bridge's ups.conf parser."""
    from nutbridge.config.ups_conf import parse_ups_conf

    tricky = 'a "b" \\c #d  '
    found = [Found("usb", "usbhid-ups", "auto", (Option("product", tricky), Option("device", "1", "")))]
    (tmp_path / "ups.conf").write_text(model.ups_conf(found))
    conf = parse_ups_conf(tmp_path / "ups.conf")
    assert [(s.name, s.options) for s in conf.sections] == [
        ("nutdev-usb1", {"driver": "usbhid-ups", "port": "auto", "product": tricky})]


def test_nut_port_spelling() -> None:
    assert nut_port("ups", "10.0.0.1", 3493) == "ups@10.0.0.1"
    assert nut_port("ups", "10.0.0.1", 3494) == "ups@10.0.0.1:3494"
    assert nut_port("ups", "::1", 3493) == "ups@[::1]"
    assert nut_port("ups", "fe80::1", 10000) == "ups@[fe80::1]:10000"


def test_ranges_are_bounded() -> None:
    assert [str(a) for a in ranges.span("10.0.0.3", "10.0.0.1")] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert len(ranges.cidr("192.168.1.77/24")) == 256
    assert ranges.addresses([ranges.span("10.0.0.1", "10.0.0.2"), ranges.cidr("10.0.0.0/31")]) == [
        "10.0.0.1", "10.0.0.2", "10.0.0.0"]
    for bad in (lambda: ranges.cidr("10.0.0.0/8"), lambda: ranges.span("10.0.0.0", "10.0.255.255"),
                lambda: ranges.span("10.0.0.1", "::1"), lambda: ranges.span("nonsense"),
                lambda: ranges.cidr("10.0.0.0/33"),
                lambda: ranges.addresses([ranges.cidr("10.0.0.0/22"), ranges.cidr("10.0.4.0/23")])):
        with pytest.raises(ranges.RangeError):
            bad()


def test_network_scans_are_never_the_default_and_refuse_big_ranges(
        capsys: pytest.CaptureFixture[str]) -> None:
    backend = FakeBackend([])
    assert scan([], backend) == (0, "")  # USB only: nothing plugged, nothing probed
    assert scan(["-O"], backend)[0] == 2  # no addresses given
    assert "-O and -S need addresses" in capsys.readouterr().err
    assert scan(["-O", "-m", "10.0.0.0/16"], backend)[0] == 2
    assert "more than the limit of 1024" in capsys.readouterr().err
    assert scan(["-O", "-m", "10.0.0.0/15", "--max-addresses", "10000000"], backend)[0] == 2
    assert "more than the limit of 65536" in capsys.readouterr().err
    assert scan(["-O", "-m", "10.0.0.0/22", "-p", "1", "-p", "2"], backend)[0] == 2
    assert "1024 addresses x 2 ports" in capsys.readouterr().err


# ---- USB ----------------------------------------------------------------------------------

UDEV_SAMPLE = """\
# Hewlett Packard
#  T500  - bcmxcp_usb
ATTR{idVendor}=="03f0", ATTR{idProduct}=="1f01", MODE="664", GROUP="nut"
#  e.g. ?  - usbhid-ups
ATTR{idVendor}=="03f0", ATTR{idProduct}=="0001", MODE="664", GROUP="nut"
garbage ATTR{idVendor}=="zz"
# Sysgration Ltd.
ATTR{idVendor}=="0bad", ATTR{idProduct}=="0001", MODE="664", GROUP="nut"
#  Tripp Lite UPSes  - tripplite_usb
ATTR{idVendor}=="09ae", ATTR{idProduct}=="0001", MODE="664", GROUP="nut"
#  Agiler UPS  - blazer_usb nutdrv_qx
ATTR{idVendor}=="05b8", ATTR{idProduct}=="0000", MODE="664", GROUP="nut"
#  Back-UPS over Modbus  - apc_modbus
ATTR{idVendor}=="051d", ATTR{idProduct}=="0002", MODE="664", GROUP="nut"
"""


def test_udev_rules_name_the_c_drivers() -> None:
    rules = usbids.parse_udev_rules(UDEV_SAMPLE)
    # a vendor's comment ends the previous model's drivers (0bad:0001 has none); 2.8.5 lists
    # several drivers on one comment
    assert [(r.vendor_id, r.product_id, r.drivers) for r in rules] == [
        (0x03F0, 0x1F01, ("bcmxcp_usb",)), (0x03F0, 0x0001, ("usbhid-ups",)),
        (0x09AE, 0x0001, ("tripplite_usb",)), (0x05B8, 0x0000, ("blazer_usb", "nutdrv_qx")),
        (0x051D, 0x0002, ("apc_modbus",))]
    m = usbids.match(0x05B8, 0x0000, rules=rules)
    assert m is not None and m.drivers == ("nutdrv_qx", "blazer_usb")
    # the bridge's own drivers come first; NUT's rules add the C drivers as alternatives
    m = usbids.match(0x051D, 0x0002, rules=rules)
    assert m is not None and m.drivers == ("usbhid-ups", "apc_modbus")
    m = usbids.match(0x09AE, 0x0001, rules=rules)  # old Tripp Lite protocol: not HID PDC
    assert m is not None and m.drivers == ("tripplite_usb",)
    m = usbids.match(0x03F0, 0x1F01, rules=rules)
    assert m is not None and m.drivers == ("bcmxcp_usb",)
    assert usbids.match(0x046D, 0xC52B, rules=rules) is None  # a mouse
    # bcmxcp_usb does not match on the ids: nut-scanner comments them out
    dev = describe(0x03F0, 0x1F01, "HP", "T500", "X1", 1, 2, rules)
    assert dev is not None
    assert [(o.name, o.comment) for o in dev.options] == [
        ("vendorid", ""), ("productid", ""), ("product", ""), ("serial", ""), ("vendor", ""),
        ("bus", None), ("device", "")]


#: ids NUT's udev rules give usbhid-ups or nutdrv_qx that the bridge's own tables do not take
KNOWN_TABLE_GAPS = {
    # NUT 2.8.5 added it to usbhid-ups ("6000 VA LCD 4U Rack UPS; 5396-1Kx"); the bridge's
    # subdriver tables lack it, so the scan proposes it only through the installed rules
    (0x09D6, 0x0001): "usbhid-ups",
    # a QinHeng CH340 serial converter: NUT's rules name nutdrv_qx, but NUT has no USB
    # subdriver for it (drivers/qx/usb.py's table says so)
    (0x1A86, 0x7523): "nutdrv_qx",
}


def test_debians_udev_rules_agree_with_our_tables() -> None:
    """Every id NUT's installed udev rules give to usbhid-ups or nutdrv_qx is one the bridge's
    tables claim for that driver (else only the rules name a driver for it), but for the
    known gaps; with the rules, the scan proposes each rule's drivers."""
    rules = usbids.load_udev_rules()
    realnut.require("NUT's udev rules (62-nut-usbups.rules, nut-server)", rules)
    for rule in rules:
        if rule.product_id is None:
            continue
        with_rules = usbids.match(rule.vendor_id, rule.product_id, rules=rules)
        assert with_rules is not None and set(rule.drivers) <= set(with_rules.drivers)
        for driver in set(rule.drivers) & {"usbhid-ups", "nutdrv_qx"}:
            m = usbids.match(rule.vendor_id, rule.product_id, rules=[])
            if KNOWN_TABLE_GAPS.get((rule.vendor_id, rule.product_id)) != driver:
                assert m is not None and driver in m.drivers, (rule, m)


def _dump(path: Path) -> Dump:
    return load_dump(path)


def usb_devices() -> list[FakeHidDevice]:
    """Several vendors: two APC dumps replayed, Powercom/PowerWalker(Phoenixtec)/CyberPower
    identities, a Megatec-over-USB Cypress bridge and a mouse (not proposed)."""
    bk = _dump(BK650)
    assert bk.descriptor is not None
    devices = [fake_device_from_dump(bk, bus=1, address=10),
               fake_device_from_dump(_dump(SMX750), bus=1, address=11)]
    for i, path in enumerate(IDENTITIES):
        d = _dump(path)
        assert d.vendor_id is not None and d.product_id is not None
        devices.append(FakeHidDevice(bk.descriptor, vendor_id=d.vendor_id, product_id=d.product_id,
                                     manufacturer=d.manufacturer, product=d.product, serial=d.serial,
                                     bus=1, address=12 + i))
    devices.append(fakeqx.CypressDevice(fakeqx.megatec_ups(), vendor_id=0x0665, product_id=0x5161,
                                        manufacturer="INNO TECH", product="USB to Serial", bus=2, address=3))
    devices.append(FakeHidDevice(bk.descriptor, vendor_id=0x046D, product_id=0xC52B, product="USB Receiver",
                                 bus=2, address=4))
    return devices


EXPECTED_USB = """\
[nutdev-usb1]
\tdriver = "usbhid-ups"\t# alternately: apc_modbus
\tport = "auto"
\tvendorid = "051D"
\tproductid = "0002"
\tproduct = "BK650M2-CH"
\tserial = "9B2019A14274"
\tvendor = "American Power Conversion"
\tbus = "001"
\t# device = "010"
[nutdev-usb2]
\tdriver = "usbhid-ups"
\tport = "auto"
\tvendorid = "051D"
\tproductid = "0003"
\tproduct = "Smart-UPS X 750  FW:COM 03.8 / UPS 03.8"
\tserial = "<serial>"
\tvendor = "American Power Conversion"
\tbus = "001"
\t# device = "011"
[nutdev-usb3]
\tdriver = "usbhid-ups"
\tport = "auto"
\tvendorid = "0D9F"
\tproductid = "0004"
\tproduct = "HID UPS Battery"
\tserial = "004-0D9F-000"
\tvendor = "POWERCOM Co.,LTD"
\tbus = "001"
\t# device = "012"
[nutdev-usb4]
\tdriver = "usbhid-ups"
\tport = "auto"
\tvendorid = "06DA"
\tproductid = "FFFF"
\tproduct = "Offline UPS"
\tserial = "000000000"
\tvendor = "PPC"
\tbus = "001"
\t# device = "013"
[nutdev-usb5]
\tdriver = "usbhid-ups"
\tport = "auto"
\tvendorid = "0764"
\tproductid = "0501"
\tproduct = "UT2200E"
\tvendor = "CPS"
\tbus = "001"
\t# device = "014"
[nutdev-usb6]
\tdriver = "nutdrv_qx"\t# alternately: blazer_usb
\tport = "auto"
\tvendorid = "0665"
\tproductid = "5161"
\tproduct = "USB to Serial"
\tvendor = "INNO TECH"
\tbus = "002"
\t# device = "003"

# WARNING: all-same character "serial" with 9 copies of '0' (0x30) reported in some devices: nutdev-usb4
"""


@needs_ddl
def test_usb_scan_names_each_vendors_driver() -> None:
    backend = FakeBackend(usb_devices())
    rules = usbids.parse_udev_rules(UDEV_SAMPLE)
    rc, text = scan([], backend, rules)
    assert rc == 0
    assert text == EXPECTED_USB
    rc, js = scan(["-U", "--json"], backend, rules)
    doc = json.loads(js)["devices"]
    assert [(d["name"], d["driver"], d["info"]["matched"].split(";")[0]) for d in doc] == [
        ("nutdev-usb1", "usbhid-ups", "usbhid-ups subdriver APC HID"),
        ("nutdev-usb2", "usbhid-ups", "usbhid-ups subdriver APC HID"),
        ("nutdev-usb3", "usbhid-ups", "usbhid-ups subdriver PowerCOM HID"),
        ("nutdev-usb4", "usbhid-ups", "usbhid-ups subdriver Phoenixtec/Liebert HID"),
        ("nutdev-usb5", "usbhid-ups", "usbhid-ups subdriver CyberPower HID"),
        ("nutdev-usb6", "nutdrv_qx",
         "nutdrv_qx subdriver cypress (Belkin F6C1200-UNV, Voltronic Power UPSes)")]
    assert scan(["-U", "-P"], backend, rules)[1].splitlines()[5] == (
        'USB:driver="nutdrv_qx",port="auto",vendorid="0665",productid="5161",product="USB to Serial",'
        'vendor="INNO TECH",bus="002"')


@needs_ddl
def test_usb_scan_with_a_device_only_nut_knows() -> None:
    """An id none of the bridge's drivers take but NUT's udev rules give a C driver (hosted)."""
    bk = _dump(BK650)
    assert bk.descriptor is not None
    backend = FakeBackend([FakeHidDevice(bk.descriptor, vendor_id=0x03F0, product_id=0x1F01, product="T500")])
    rules = usbids.load_udev_rules()
    realnut.require("NUT's udev rules with bcmxcp_usb (nut-server)",
                    any("bcmxcp_usb" in r.drivers and r.product_id == 0x1F01 for r in rules))
    assert scan([], backend)[1] == ('[nutdev-usb1]\n\tdriver = "bcmxcp_usb"\n\tport = "auto"\n'
                                    '\t# vendorid = "03F0"\n\t# productid = "1F01"\n\t# product = "T500"\n'
                                    '\tbus = "001"\n\t# device = "004"\n')


class InProcessBridge:
    """``nutbridge serve`` on a config dir, in this process (its drivers see the fake USB)."""

    def __init__(self, etc: Path, tmp: Path) -> None:
        self.cfg = load_config(etc)
        self.cfg.zeroconf = False
        self.cfg.monitor = False
        self.cfg.state_dir = tmp / "state"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.bridge: Bridge | None = None

    def __enter__(self) -> InProcessBridge:
        self.thread.start()

        async def make() -> Bridge:
            b = Bridge(self.cfg)
            await b.start()
            return b

        self.bridge = asyncio.run_coroutine_threadsafe(make(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bridge is not None:
            asyncio.run_coroutine_threadsafe(self.bridge.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def write_conf(root: Path, ups_conf: str) -> realnut.NutConfig:
    """A NUT config dir whose ups.conf is exactly ``ups_conf`` (what the scan printed)."""
    cfg = realnut.NutConfig(root)
    cfg.write()
    (cfg.etc / "ups.conf").write_text(ups_conf)
    return cfg


def upsc(port: int, ups: str, var: str) -> str:
    """Real NUT upsc reading one variable (its exit status checked)."""
    tool = realnut.require_client("upsc")
    r = realnut.run_tool([tool, f"{ups}@127.0.0.1:{port}", var])
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


@pytest.fixture
def fake_usb() -> Iterator[FakeBackend]:
    saved = usbhid.backend, qxd.backend
    backend = FakeBackend(usb_devices())
    usbhid.backend = qxd.backend = backend
    try:
        yield backend
    finally:
        usbhid.backend, qxd.backend = saved


@needs_ddl
def test_scanned_usb_sections_reach_their_devices(tmp_path: Path, fake_usb: FakeBackend) -> None:
    """The scan's ups.conf, as printed, is what ``nutbridge serve`` runs: each section finds
    its own device (two APC units told apart by productid, the Megatec bridge by its ids)
    and upsc reads it through the bridge."""
    rc, text = scan([], fake_usb)
    assert rc == 0
    cfg = write_conf(tmp_path, text)
    with InProcessBridge(cfg.etc, tmp_path):
        names = [f"nutdev-usb{i}" for i in range(1, 7)]
        realnut.wait_ready_ups(cfg.port, names, timeout=30)
        assert upsc(cfg.port, "nutdev-usb1", "ups.model") == "BK650M2-CH"
        assert upsc(cfg.port, "nutdev-usb1", "ups.serial") == "9B2019A14274"
        assert upsc(cfg.port, "nutdev-usb2", "ups.productid") == "0003"
        for name in names[2:5]:  # the identities: each section got the device with its ids
            vid = text.split(f"[{name}]")[1].split('vendorid = "')[1][:4]
            assert upsc(cfg.port, name, "ups.vendorid") == vid.lower()
        assert upsc(cfg.port, "nutdev-usb6", "driver.name") == "nutdrv_qx"
        assert upsc(cfg.port, "nutdev-usb6", "input.voltage")


@needs_ddl
def test_a_scanned_section_runs_in_a_separate_bridge_process(tmp_path: Path) -> None:
    """Out of process the fake USB is not reachable, so the section's port becomes the dump
    replay: the scanned matching options (vendorid, productid, product, serial, vendor, bus)
    must select the replayed device in a real ``nutbridge serve``."""
    rc, text = scan([], FakeBackend([fake_device_from_dump(_dump(BK650), bus=1, address=10)]))
    assert rc == 0 and 'port = "auto"' in text
    cfg = write_conf(tmp_path, text.replace('port = "auto"', f'port = "{BK650}"'))
    proc = subprocess.Popen([sys.executable, "-m", "nutbridge", "serve", "--config-dir", str(cfg.etc),
                             "--no-zeroconf"], env={**cfg.env(), "PYTHONPATH": str(realnut.REPO / "bridge")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        realnut.wait_port(cfg.port, timeout=20)
        realnut.wait_ready_ups(cfg.port, ["nutdev-usb1"], timeout=20)
        assert upsc(cfg.port, "nutdev-usb1", "ups.model") == "BK650M2-CH"
        assert upsc(cfg.port, "nutdev-usb1", "ups.vendorid") == "051d"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


# ---- NUT servers ----------------------------------------------------------------------------


@pytest.fixture
def short_path() -> Iterator[Path]:
    """Where the configurations run by the C upsd live: its drivers' socket paths must fit in
    108 bytes, which tmp_path under xdist does not guarantee (CI's did not)."""
    with realnut.short_root() as root:
        yield root


class RawConf(realnut.NutConfig):
    """A NutConfig whose ups.conf is exactly :attr:`raw` (the scan's output); :attr:`ups` still
    names the sections, so that :func:`realnut.c_upsd` starts a driver for each."""

    raw = ""

    def write(self) -> Path:
        etc = super().write()
        (etc / "ups.conf").write_text(self.raw)
        return etc


def dev_file(root: Path, charge: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"ups-{charge}.dev"
    path.write_text(f"ups.status: OL\nbattery.charge: {charge}\ndevice.mfr: Scan test\n")
    return path


def nut_server(root: Path, ups: dict[str, str]) -> realnut.NutConfig:
    """A config with one dummy-ups section per (name, battery.charge) of ``ups``."""
    cfg = realnut.NutConfig(root)
    for name, charge in ups.items():
        cfg.add_ups(name, driver="dummy-ups", port=str(dev_file(root, charge)), desc=f"UPS {name}")
    return cfg


def nut_scanner_285() -> list[str] | None:
    """A nut-scanner of NUT 2.8.5 (the release whose output ``scan`` reproduces): the host's,
    else the sid userland's (same network namespace)."""
    sid = realnut.REPO.parent / "shared" / "tools" / "sid"
    for argv in (["nut-scanner"], [str(sid), "nut-scanner"]):
        if argv[0] != "nut-scanner" and not Path(argv[0]).is_file():
            continue
        try:
            r = subprocess.run([*argv, "-V"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "2.8.5" in r.stdout + r.stderr:
            return argv
    return None


def test_nut_servers_found_on_a_range_and_the_sections_run_everywhere(
        tmp_path: Path, short_path: Path) -> None:
    """Two bridges and a C upsd on loopback ports: ``-O`` finds every UPS of each, printed as
    NUT 2.8.5's nut-scanner prints them; the result, as ups.conf, is run by ``nutbridge serve``
    (its repeater) and by the C upsd with NUT's dummy-ups, and both reach every UPS."""
    b1 = nut_server(tmp_path / "b1", {"alpha": "91", "beta": "92"})
    b2 = nut_server(tmp_path / "b2", {"gamma": "93"})
    c1 = nut_server(tmp_path / "c1", {"delta": "94", "epsilon": "95"})
    with (realnut.BridgeProcess.start(b1, ["--no-zeroconf"]),
          realnut.BridgeProcess.start(b2, ["--no-zeroconf"]), realnut.c_upsd(c1)):
        for server, names in ((b1, ["alpha", "beta"]), (b2, ["gamma"]), (c1, ["delta", "epsilon"])):
            realnut.wait_ready_ups(server.port, names)
        ports = [b1.port, b2.port, c1.port]
        unused = realnut.free_port()
        argv = ["-O", "-s", "127.0.0.1", "-e", "127.0.0.2", "-t", "2", "-T", "4"]
        for p in (*ports, unused):
            argv += ["-p", str(p)]
        rc, text = scan(argv)
        assert rc == 0
        expected = [("alpha", b1.port), ("beta", b1.port), ("gamma", b2.port), ("delta", c1.port),
                    ("epsilon", c1.port)]
        assert text == "".join(f'[nutdev-nut{i}]\n\tdriver = "dummy-ups"\n\tport = "{u}@127.0.0.1:{p}"\n'
                               for i, (u, p) in enumerate(expected, 1))
        doc = json.loads(scan([*argv, "--json"])[1])["devices"]
        assert [d["info"]["desc"] for d in doc] == [f"UPS {u}" for u, _ in expected]

        # the same as NUT 2.8.5's nut-scanner, server by server (it takes one port per run)
        oracle = nut_scanner_285()
        realnut.require("NUT 2.8.5's nut-scanner (here or in the sid userland)", oracle)
        assert oracle is not None
        for p in ports:
            r = subprocess.run([*oracle, "-O", "-s", "127.0.0.1", "-p", str(p), "-q", "-t", "2"],
                               capture_output=True, text=True, timeout=60)
            assert scan(["-O", "-s", "127.0.0.1", "-p", str(p)]) == (0, r.stdout), r.stderr

        # the scan's ups.conf, as printed, run by nutbridge serve and by the C upsd + dummy-ups
        names = [f"nutdev-nut{i}" for i in range(1, 6)]
        charges = ["91", "92", "93", "94", "95"]
        for runner in ("bridge", "c"):
            cfg = RawConf(short_path / f"rerun-{runner}")
            cfg.raw = text
            cfg.ups = {n: {"driver": "dummy-ups"} for n in names}
            if runner == "bridge":
                with realnut.BridgeProcess.start(cfg, ["--no-zeroconf"]):
                    realnut.wait_ready_ups(cfg.port, names, timeout=30)
                    assert [upsc(cfg.port, n, "battery.charge") for n in names] == charges
            else:
                with realnut.c_upsd(cfg):
                    assert [upsc(cfg.port, n, "battery.charge") for n in names] == charges


def test_nut_servers_announced_over_mdns(tmp_path: Path) -> None:
    """``-A``: two bridges listening on the LAN address announce ``_nut._tcp``; the scan
    browses, asks each for its UPSes and proposes them (other bridges on the LAN may show up
    too: ours must be among them)."""
    from tests.support.mdns import lan_ipv4

    realnut.require_module("zeroconf")
    lan = lan_ipv4()
    b1 = nut_server(tmp_path / "m1", {"north": "81"})
    b2 = nut_server(tmp_path / "m2", {"south": "82", "west": "83"})
    for cfg in (b1, b2):
        cfg.upsd_extra = f"LISTEN {lan} {cfg.port}\n"
    with realnut.BridgeProcess.start(b1), realnut.BridgeProcess.start(b2):
        # (ups, upsd port): the address is the first IPv4 one each bridge announces, which
        # on a host with several interfaces need not be the one the test chose
        want = {("north", b1.port), ("south", b2.port), ("west", b2.port)}
        got: set[tuple[str, int]] = set()
        for _ in range(3):  # announcements may take a moment after start
            rc, js = scan(["-A", "--mdns-time", "3", "-t", "3", "--json"])
            assert rc == 0
            got = {(d["info"]["ups"], int(d["info"]["server"].rsplit(":", 1)[1]))
                   for d in json.loads(js)["devices"]}
            if want <= got:
                break
        assert want <= got, js
        assert all(d["driver"] == "dummy-ups" for d in json.loads(js)["devices"])


# ---- serial ports -------------------------------------------------------------------------


class Simulators:
    """``nutbridge simulate KIND --link PATH`` processes (the pty simulators), stopped on exit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, kind: str, name: str, *options: str) -> str:
        link = self.root / name
        env = dict(os.environ, PYTHONPATH=str(realnut.REPO / "bridge"))
        opts = [a for o in options for a in ("-o", o)]
        self.procs.append(subprocess.Popen([sys.executable, "-m", "nutbridge", "simulate", kind, *opts,
                                            "--link", str(link)], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 15
        while not link.exists():
            assert time.monotonic() < deadline, f"simulator {kind} did not create {link}"
            time.sleep(0.05)
        return str(link)

    def __enter__(self) -> Simulators:
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(10)


def test_serial_ports_probed_and_the_sections_run_everywhere(
        tmp_path: Path, short_path: Path) -> None:
    """Only the named ports are probed, briefly: a Megatec/Q1, a Voltronic and an APC Smart
    simulator are told apart; a missing port and /dev/null give nothing. The ups.conf runs in
    ``nutbridge serve`` and in the C upsd with NUT's nutdrv_qx and apcsmart, on the same ptys."""
    realnut.require_module("serial_asyncio_fast")
    with Simulators(tmp_path) as sims:
        q1 = sims.start("megatec", "q1")
        volt = sims.start("megatec", "volt", "protocol=voltronic")
        apc = sims.start("apcsmart", "apc")
        start = time.monotonic()
        rc, text = scan(["--serial", f"{q1},{tmp_path / 'missing'}", "--serial", f"{volt},/dev/null,{apc}",
                         "--serial-timeout", "0.5"])
        assert time.monotonic() - start < 8  # 0.5 s per silent answer, ports in parallel
        assert rc == 0
        assert text == (f'[nutdev-serial1]\n\tdriver = "nutdrv_qx"\t# alternately: blazer_ser\n'
                        f'\tport = "{q1}"\n\tprotocol = "megatec"\n'
                        f'[nutdev-serial2]\n\tdriver = "nutdrv_qx"\n\tport = "{volt}"\n'
                        '\tprotocol = "voltronic"\n'
                        f'[nutdev-serial3]\n\tdriver = "apcsmart"\n\tport = "{apc}"\n')
        names = ["nutdev-serial1", "nutdev-serial2", "nutdev-serial3"]
        for runner in ("bridge", "c"):
            cfg = RawConf(short_path / f"serial-{runner}")
            cfg.raw = text
            cfg.ups = {n: {"driver": d} for n, d in zip(names, ("nutdrv_qx", "nutdrv_qx", "apcsmart"),
                                                         strict=True)}
            if runner == "bridge":
                with realnut.BridgeProcess.start(cfg, ["--no-zeroconf"]):
                    realnut.wait_ready_ups(cfg.port, names, timeout=30)
                    got = {n: upsc(cfg.port, n, "ups.status") for n in names}
            else:
                with realnut.c_upsd(cfg):  # protocol given: no 30 s autodetection in 2.8.5
                    got = {n: upsc(cfg.port, n, "ups.status") for n in names}
            assert all(v.startswith("OL") for v in got.values()), (runner, got)


# ---- SNMP ---------------------------------------------------------------------------------

#: recording -> the MIB NUT's detection picks for it (tests/test_snmp.py checks those picks)
SNMP_AGENTS = {"apc-smartups-nmc": "apcc", "eaton-93e-80": "mge", "huawei-gse200m": "huawei"}


@pytest.mark.parametrize("version", ["v1", "v2c"])
def test_snmp_agents_found_and_the_sections_run_everywhere(
        tmp_path: Path, version: str, short_path: Path) -> None:
    """Three snmpsim agents (APC, Eaton, Huawei recordings, each as community "public") on
    loopback ports, and addresses where nothing answers: each agent gets the MIB snmp-ups
    would pick; the ups.conf runs in ``nutbridge serve`` and in the C upsd with NUT's snmp-ups."""
    from tests.support import snmpsim

    realnut.require_module("pysnmp", "nutbridge-ups[snmp]")
    with ExitStack() as stack:
        agents = [stack.enter_context(snmpsim.running(tmp_path / rec, [("public", rec)]))
                  for rec in SNMP_AGENTS]
        argv = ["-S", "-s", "127.0.0.1", "-e", "127.0.0.2", "-t", "1", "--snmp-version", version]
        for a in agents:
            argv += ["--snmp-port", str(a.port)]
        argv += ["--snmp-port", str(realnut.free_port(socket.SOCK_DGRAM))]
        rc, js = scan([*argv, "--json"])
        assert rc == 0
        doc = json.loads(js)["devices"]
        assert [(d["port"], d["options"]["mibs"]) for d in doc] == [
            (f"127.0.0.1:{a.port}", mib) for a, mib in zip(agents, SNMP_AGENTS.values(), strict=True)]
        for d in doc:
            assert d["driver"] == "snmp-ups" and d["options"]["community"] == "public"
            assert d["options"].get("snmp_version") == (None if version == "v1" else "v2c")
        text = scan(argv)[1]
        names = [d["name"] for d in doc]
        assert names == ["nutdev-snmp1", "nutdev-snmp2", "nutdev-snmp3"]
        for runner in ("bridge", "c"):
            cfg = RawConf(short_path / f"snmp-{runner}")
            cfg.raw = text
            cfg.ups = {n: {"driver": "snmp-ups"} for n in names}
            if runner == "bridge":
                with realnut.BridgeProcess.start(cfg, ["--no-zeroconf"]):
                    realnut.wait_ready_ups(cfg.port, names, timeout=30)
                    got = {n: upsc(cfg.port, n, "ups.status") for n in names}
            else:
                with realnut.c_upsd(cfg):
                    got = {n: upsc(cfg.port, n, "ups.status") for n in names}
            assert all(got.values()), (runner, got)


def first_section(text: str) -> str:
    """The first ``[name]`` section of a ups.conf text."""
    head, sep, _rest = text.partition("\n[")
    return head + "\n" if sep else text


def nut_scanner_snmp(address: str, args: list[str]) -> str:
    """NUT 2.8.5's nut-scanner's ``-S -N`` output for one address (it scans port 161 only)."""
    oracle = nut_scanner_285()
    realnut.require("NUT 2.8.5's nut-scanner (here or in the sid userland)", oracle)
    assert oracle is not None
    r = subprocess.run([*oracle, "-S", "-s", address, "-e", address, "-t", "2", "-N", "-q", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("[nutdev-snmp1]"), (r.stdout, r.stderr)
    return r.stdout


@pytest.mark.parametrize("rec", list(SNMP_AGENTS))
def test_snmp_section_is_nut_scanners(tmp_path: Path, rec: str) -> None:
    """The same agent scanned by NUT 2.8.5's nut-scanner (through a relay on port 161) and by
    us: our section is its first one byte for byte (the MIB snmp-ups picks, ``desc`` the model
    its check OID reads, the community). nut-scanner goes on with a section per further MIB
    whose check answers (the APC card: ``ietf`` as well, the same UPS twice); we do not."""
    from tests.support import snmpsim

    realnut.require_module("pysnmp", "nutbridge-ups[snmp]")
    with snmpsim.running(tmp_path, [("public", rec)]) as agent, \
            snmpsim.on_port_161(agent.port) as address:
        theirs = nut_scanner_snmp(address, ["-c", "public"])
        rc, ours = scan(["-S", "-s", address, "-t", "2", "-N"])
    assert rc == 0
    assert ours == first_section(theirs), theirs
    assert f'mibs = "{SNMP_AGENTS[rec]}"' in ours


#: an SNMPv3 user of the agent, and nut-scanner's options naming it
V3_USER = ("nutscan", "authpass-123", "SHA256", "privpass-456", "AES")
V3_ARGS = ["-l", "authPriv", "-u", "nutscan", "-w", "SHA256", "-W", "authpass-123",
           "-x", "AES", "-X", "privpass-456"]


def test_snmpv3_agent_found_as_nut_scanner_finds_it_and_the_section_runs_everywhere(
        tmp_path: Path, short_path: Path) -> None:
    """nut-scanner's v3 options (-l/-u/-w/-W/-x/-X): the section equals NUT 2.8.5's first one
    byte for byte (snmp_version, secLevel, secName, the passwords and protocols in its order, no
    community); wrong credentials find nothing; the printed ups.conf reaches the UPS in
    ``nutbridge serve`` and in the C upsd with NUT's snmp-ups."""
    from tests.support import snmpsim

    realnut.require_module("pysnmp", "nutbridge-ups[snmp]")
    user = snmpsim.V3User(V3_USER[0], V3_USER[1], V3_USER[2], V3_USER[3], V3_USER[4])
    with snmpsim.running(tmp_path, ["apc-smartups-nmc"], v3_users=[user],
                         v3_contextless="apc-smartups-nmc") as agent:
        with snmpsim.on_port_161(agent.port) as address:
            theirs = nut_scanner_snmp(address, V3_ARGS)
            rc, ours = scan(["-S", "-s", address, "-t", "2", "-N", *V3_ARGS])
        assert rc == 0
        assert ours == first_section(theirs), theirs
        assert 'snmp_version = "v3"' in ours and "community" not in ours
        wrong = [*V3_ARGS[:-1], "not-the-key"]
        assert scan(["-S", "-s", "127.0.0.1", "--snmp-port", str(agent.port), "-t", "1", "-N", *wrong]) \
            == (0, "")
        rc, text = scan(["-S", "-s", "127.0.0.1", "--snmp-port", str(agent.port), "-t", "2", "-N",
                         *V3_ARGS])
        assert rc == 0 and text.count("[nutdev-snmp") == 1
        for runner in ("bridge", "c"):
            cfg = RawConf(short_path / f"snmpv3-{runner}")
            cfg.raw = text
            cfg.ups = {"nutdev-snmp1": {"driver": "snmp-ups"}}
            if runner == "bridge":
                with realnut.BridgeProcess.start(cfg, ["--no-zeroconf"]):
                    realnut.wait_ready_ups(cfg.port, ["nutdev-snmp1"], timeout=30)
                    got = upsc(cfg.port, "nutdev-snmp1", "ups.model")
            else:
                with realnut.c_upsd(cfg):
                    got = upsc(cfg.port, "nutdev-snmp1", "ups.model")
            assert got == "Smart-UPS 1500", runner


def test_snmpv3_options_are_checked_before_any_probe() -> None:
    """Bad v3 options exit 2 with what is wrong (never the password); v3 options with
    ``--snmp-version v1`` are refused too."""
    cases = [(["-l", "authPriv", "-u", "u", "-W", "authpass-123"], "privPassword"),
             (["-l", "bogus", "-u", "u"], "secLevel 'bogus'"),
             (["-l", "authNoPriv", "-u", "u", "-W", "short"], "authPassword"),
             (["-l", "authNoPriv", "-u", "u", "-W", "authpass-123", "-w", "SHA1024"], "authProtocol"),
             (["-l", "noAuthNoPriv"], "secName"),
             (["--snmp-version", "v1", "-u", "u"], "SNMPv3 options")]
    for extra, said in cases:
        err = StringIO()
        with redirect_stderr(err):
            rc, out = scan(["-S", "-s", "127.0.0.1", *extra])
        assert (rc, out) == (2, ""), extra
        assert said in err.getvalue(), (extra, err.getvalue())
        assert "authpass-123" not in err.getvalue()
