"""Megatec/Q1 over USB (nutdrv_qx's USB subdrivers, blazer_usb) on the fake pyusb backend.

The driver runs its real USB link (usbhid's device search and claim, pyusb transfers) over
:mod:`nutbridge.simulation.fakeqx`: USB bridge chips framing the bytes as each family does,
in front of the Megatec/Voltronic simulator's UPS (the physics of the pty tests). What a
test asserts:

* which subdriver a device gets (NUT's table: IDs, then strings), or ``subdriver =``;
* the Q1/F/I exchange (Voltronic's where the framing can carry it): the values equal what
  the serial parser reads from the same UPS's replies; status through OL -> OB -> OB LB -> OL;
* every instant command: the USB payload the bridge chip got, byte for byte, what reached
  the UPS behind it, and the status upsd would answer;
* unplug -> stale -> replug at a new address -> data again, the same driver running;
* the quirks: langid_fix/noscanlangid, "UPS No Ack", hunnox's lock-step, phoenix's drain,
  a wedged Cypress bridge (overflows);
* DDL corpus dumps of real devices: the values NUT published from that UPS's replies, read
  back through our subdriver for that device.

Exchange timeouts run 50 times faster than NUT's (``link.time_scale``): a UPS that does not
answer costs 20 ms, not 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nutbridge.drivers import driver_class
from nutbridge.drivers.base import ConfigError, DeviceError, Status
from nutbridge.drivers.qx import driver as qxd
from nutbridge.drivers.qx import q1, usb, voltronic
from nutbridge.drivers.qx.driver import MegatecDriver
from nutbridge.drivers.qx.usblink import UsbLink
from nutbridge.drivers.serial import SerialLink
from nutbridge.drivers.usbhid.transport import UsbInfo
from nutbridge.serve import Bridge, load_config
from nutbridge.simulation import fakeqx
from nutbridge.simulation.fakeusb import FakeHidDevice
from nutbridge.simulation.megatec import MegatecSimulator
from nutbridge.state import Device, DriverState
from tests.support import realnut
from tests.support.serialsim import OUTAGE

REPO = Path(__file__).resolve().parent.parent
DDL = realnut.DDL_DIR
FAST = 0.02  # exchange timeouts: 20 ms instead of NUT's 1 s
LOGIN = ("USERNAME admin", "PASSWORD s3cr3t")

needs_ddl = realnut.prerequisite(f"NUT DDL corpus ({DDL})", DDL.is_dir())


# ---- the USB payloads, written out independently of the driver's framing code ---------------

def cypress_frames(cmd: bytes, wvalue: int = 0x0200) -> list[tuple[int, bytes]]:
    return [(wvalue, cmd[i:i + 8].ljust(8, b"\0")) for i in range(0, len(cmd), 8)]


def sgs_frames(cmd: bytes) -> list[tuple[int, bytes]]:
    return [(0x0200, bytes([len(p)]) + p.ljust(7, b"\0"))
            for p in (cmd[i:i + 7] for i in range(0, len(cmd), 7))]


def armac_frames(cmd: bytes) -> list[tuple[int, bytes]]:
    data = cmd + b"\0"
    return [(0x0200, bytes([0xA0 + len(p)]) + p.ljust(3, b"\0"))
            for p in (data[i:i + 3] for i in range(0, len(data), 3))]


def ablerex_frames(cmd: bytes) -> list[tuple[int, bytes]]:
    return [(0x0305, (bytes([5, 0, len(cmd)]) + cmd).ljust(47, b"\0"))]


def phoenixtec_frames(cmd: bytes) -> list[tuple[int, bytes]]:
    """Masterguard's cable: the request, whole, as a vendor write (bRequest 0x0D)."""
    return [(0x0D, cmd)]


def test_framing_helpers_match_the_bridges_layouts() -> None:
    """The helpers above, pinned to literal bytes (the layouts in drivers/qx/usb.py)."""
    assert cypress_frames(b"S.5R0003\r") == [(0x200, b"S.5R0003"), (0x200, b"\r" + bytes(7))]
    assert cypress_frames(b"Q1\r", 2) == [(2, bytes.fromhex("5131 0d 0000000000"))]
    assert sgs_frames(b"S.5R0003\r") == [(0x200, b"\x07S.5R000"), (0x200, b"\x023\r" + bytes(5))]
    assert armac_frames(b"Q1\r") == [(0x200, b"\xa3Q1\r"), (0x200, b"\xa1\0\0\0")]
    assert ablerex_frames(b"Q1\r")[0][1][:6] == bytes.fromhex("050003 51310d")


# ---- the subdrivers under test --------------------------------------------------------------

# the Megatec bytes of each instant command (ondelay 180, offdelay 30), as the serial
# path sends them (tests/test_megatec.py checks those against NUT's own drivers)
MEGATEC = {
    "beeper.toggle": b"Q\r", "load.off": b"S00R0000\r", "load.on": b"C\r",
    "shutdown.return": b"S.5R0003\r", "shutdown.stayoff": b"S.5R0000\r", "shutdown.stop": b"C\r",
    "test.battery.start": b"T10\r", "test.battery.start.deep": b"TL\r",
    "test.battery.start.quick": b"T\r", "test.battery.stop": b"CT\r",
}
ECHOED = "echoed"  # the subdriver refuses the request the Megatec way: FAILED, nothing sent


@dataclass(frozen=True)
class Spec:
    """One subdriver and the fake bridge it talks to."""

    name: str
    make: Callable[..., fakeqx.FakeQxDevice]
    ids: tuple[int, int]
    auto: bool = True  # NUT's table picks it for this device
    voltronic: bool = False  # its framing carries Voltronic's long replies
    kw: dict[str, Any] = field(default_factory=dict)
    #: command -> the USB payload (what :func:`usb_payload` shows), or ECHOED
    commands: dict[str, object] = field(default_factory=dict)
    #: command -> what the UPS carried out, where it differs from the Megatec bytes
    carried: dict[str, str] = field(default_factory=dict)


def _pipe(frames: Callable[[bytes], list[tuple[int, bytes]]]) -> dict[str, object]:
    return {cmd: frames(raw) for cmd, raw in MEGATEC.items()}


def _table(table: dict[bytes, int]) -> dict[str, object]:
    """String-descriptor subdrivers: the index each command reads, or ECHOED."""
    return {cmd: table.get(raw, ECHOED) for cmd, raw in MEGATEC.items()}


def _fuji(cmd: bytes) -> object:
    text = cmd.rstrip(b"\r")
    if text.startswith(b"S") and not text.endswith(b"R0000"):
        text = text[:3]
    if len(text) > 3:
        return ECHOED
    return [(2, bytes([0x80, 6, len(text) + 1, 3]) + text.ljust(3, b"\0") + b"\0")]


KRAULER = {b"Q\r": 0x07, b"C\r": 0x0B, b"TL\r": 0x05, b"T\r": 0x04, b"CT\r": 0x0B}
FABULA = {b"Q\r": 0x07, b"C\r": 0x0A, b"S00R0000\r": 0x10, b"S.5R0003\r": 0x18,
          b"S.5R0000\r": 0x10}

SPECS = [
    Spec("cypress", fakeqx.CypressDevice, (0x0665, 0x5161), voltronic=True,
         commands=_pipe(cypress_frames)),
    Spec("phoenix", fakeqx.PhoenixDevice, (0x06DA, 0x0601), voltronic=True,
         commands=_pipe(cypress_frames)),
    Spec("ippon", fakeqx.IpponDevice, (0x06DA, 0x0003),
         commands=_pipe(lambda c: cypress_frames(c, 0x0002))),
    Spec("gtec", fakeqx.CypressDevice, (0x1234, 0x0001), auto=False, voltronic=True,
         kw={"wvalue": 0x0002}, commands=_pipe(lambda c: cypress_frames(c, 0x0002))),
    Spec("sgs", fakeqx.SgsDevice, (0x0483, 0x0035), voltronic=True, commands=_pipe(sgs_frames)),
    Spec("fuji", fakeqx.FujiDevice, (0x0001, 0x0000),
         commands={cmd: _fuji(raw) for cmd, raw in MEGATEC.items()},
         carried={"shutdown.return": "S.5"}),
    Spec("krauler", fakeqx.KraulerDevice, (0x0001, 0x0000), commands=_table(KRAULER),
         carried={"test.battery.stop": "C", "shutdown.stop": "C", "load.on": "C"}),
    Spec("fabula", fakeqx.FabulaDevice, (0x0001, 0x0000), commands=_table(FABULA),
         carried={"load.off": "S.5R0000", "shutdown.return": "S.5"}),
    Spec("hunnox", fakeqx.HunnoxDevice, (0x0001, 0x0000), commands=_table(FABULA),
         carried={"load.off": "S.5R0000", "shutdown.return": "S.5"}),
    Spec("snr", fakeqx.SnrDevice, (0x0001, 0x0000), auto=False,
         commands=dict.fromkeys(MEGATEC, ECHOED)),
    Spec("armac", fakeqx.ArmacDevice, (0x0925, 0x1234), commands=_pipe(armac_frames)),
    Spec("ablerex", fakeqx.AblerexDevice, (0xFFFF, 0x0000), commands=_pipe(ablerex_frames)),
    Spec("phoenixtec", fakeqx.PhoenixtecDevice, (0x06DA, 0x0002), voltronic=True,
         commands=_pipe(phoenixtec_frames)),
]
BY_NAME = {s.name: s for s in SPECS}
param_specs = pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])


def usb_payload(dev: fakeqx.FakeQxDevice, since: tuple[int, int, int]) -> object:
    """What the host sent the bridge since ``mark(dev)``: SET_REPORTs as (wValue, bytes),
    interrupt writes as (endpoint, bytes), vendor writes as (bRequest, bytes), or the string
    indices read (GET_DESCRIPTOR)."""
    writes, intr, reqs, vendor = since
    if dev.writes[writes:]:
        return dev.writes[writes:]
    if dev.vendor_writes[vendor:]:
        return dev.vendor_writes[vendor:]
    if dev.interrupt_writes[intr:]:
        return dev.interrupt_writes[intr:]
    strings = [v & 0xFF for bm, r, v, _, _ in dev.requests[reqs:] if (bm, r) == (0x80, 6)
               and v >> 8 == 3 and v & 0xFF]
    return strings[-1] if strings else None


def mark(dev: fakeqx.FakeQxDevice) -> tuple[int, int, int, int]:
    return len(dev.writes), len(dev.interrupt_writes), len(dev.requests), len(dev.vendor_writes)


# ---- the driver on the fake backend ------------------------------------------------------------

@pytest.fixture(autouse=True)
def _restore_backend() -> Iterator[None]:
    saved = qxd.backend
    yield
    qxd.backend = saved


def make_driver(devices: list[FakeHidDevice], *, driver: str = "nutdrv_qx",
                **opts: str) -> MegatecDriver:
    qxd.backend = fakeqx.FakeQxBackend(devices)
    cfg = {"driver": driver, "port": "auto", **opts}
    drv = MegatecDriver(Device("ups", driver_name=driver), cfg)
    assert isinstance(drv.link, UsbLink)
    drv.link.time_scale = FAST
    return drv


@contextlib.asynccontextmanager
async def connected(devices: list[FakeHidDevice], **opts: str) -> AsyncIterator[MegatecDriver]:
    drv = make_driver(devices, **opts)
    await drv.connect()
    try:
        yield drv
    finally:
        await drv.close()


def spec_device(spec: Spec, ups: Any, **kw: Any) -> fakeqx.FakeQxDevice:
    return spec.make(ups, vendor_id=spec.ids[0], product_id=spec.ids[1], **{**spec.kw, **kw})


def spec_opts(spec: Spec) -> dict[str, str]:
    """ups.conf for the spec's device: auto, or subdriver + its IDs (NUT wants both)."""
    if spec.auto:
        return {}
    return {"subdriver": spec.name, "vendorid": f"{spec.ids[0]:04x}",
            "productid": f"{spec.ids[1]:04x}"}


def link(drv: MegatecDriver) -> UsbLink:
    assert isinstance(drv.link, UsbLink)
    return drv.link


def subdriver(drv: MegatecDriver) -> str:
    sub = link(drv).subdriver
    assert sub is not None
    return sub.name


def info(drv: MegatecDriver) -> UsbInfo:
    found = link(drv).info
    assert found is not None
    return found


# ---- configuration and registry -----------------------------------------------------------------

def test_blazer_usb_registered() -> None:
    assert driver_class("blazer_usb", {}) is MegatecDriver
    assert driver_class("nutdrv_qx", {}) is MegatecDriver


@pytest.mark.parametrize(("opts", "error"), [
    ({"subdriver": "cypress"}, "'vendorid' and 'productid' are mandatory"),
    ({"subdriver": "cypress", "vendorid": "0665"}, "mandatory"),
    ({"subdriver": "belkin", "vendorid": "1", "productid": "2"}, "unknown subdriver"),
    ({"subdriver": "omron", "vendorid": "0590", "productid": "00b7"}, "nutbridge_hosted"),
    ({"langid_fix": "english"}, "langid_fix"),
    ({"langid_fix": "0x10000"}, "langid_fix"),
    ({"vendorid": "06[da"}, "vendorid"),
])
def test_config_errors(opts: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        MegatecDriver(Device("u"), {"driver": "nutdrv_qx", "port": "auto", **opts})


def test_blazer_usb_knows_only_its_four_subdrivers() -> None:
    with pytest.raises(ConfigError, match="unknown subdriver 'fabula'"):
        MegatecDriver(Device("u"), {"driver": "blazer_usb", "port": "auto", "subdriver": "fabula",
                                    "vendorid": "0001", "productid": "0000"})


def test_usb_or_serial_as_nut_decides() -> None:
    def kind(**c: str) -> type:
        return type(MegatecDriver(Device("u"), c).link)

    assert kind(driver="nutdrv_qx", port="/dev/ttyS0") is SerialLink
    assert kind(driver="nutdrv_qx", port="auto") is UsbLink
    assert kind(driver="nutdrv_qx", port="/dev/ttyS0", vendorid="0665") is UsbLink  # NUT warns
    assert kind(driver="nutdrv_qx", port="/dev/ttyS0", langid_fix="0x409") is UsbLink
    assert kind(driver="blazer_usb") is UsbLink  # port defaults to auto
    assert kind(driver="blazer_ser", port="/dev/ttyS0", vendorid="0665") is SerialLink
    drv = MegatecDriver(Device("u"), {"driver": "blazer_usb", "port": "auto", "langid_fix": "0x4095"})
    assert link(drv).setup.langid_fix == 0x4095


# ---- the subdriver table --------------------------------------------------------------------------

@pytest.mark.parametrize(("ids", "strings", "qx", "blazer"), [
    ((0x0665, 0x5161), (None, None), "cypress", "cypress"),
    ((0x05B8, 0x0000), (None, None), "cypress", "cypress"),
    ((0x0F03, 0x0001), ("UNITEK", "Alpha"), "cypress", "cypress"),
    ((0x06DA, 0x0002), ("Phoenixtec Power", "USB Cable (V2.00)"), "phoenixtec", "cypress"),
    ((0x06DA, 0x0002), ("PPC", "UPS"), "cypress", "cypress"),
    ((0x06DA, 0x0003), (None, None), "ippon", "ippon"),
    ((0x06DA, 0x0601), (None, None), "phoenix", "phoenix"),
    ((0x14F0, 0x00C9), (None, None), "phoenix", "phoenix"),
    ((0x0483, 0x0035), (None, None), "sgs", None),
    ((0x0001, 0x0000), ("mec", "mec0003"), "fabula", "krauler"),  # strings: case-insensitive
    ((0x0001, 0x0000), ("HNX", "MEC0003"), "hunnox", "krauler"),
    ((0x0001, 0x0000), ("ATCL FOR UPS", "ATCL FOR UPS"), "fuji", "krauler"),
    ((0x0001, 0x0000), (None, None), "krauler", "krauler"),
    ((0x1CB0, 0x0035), (None, None), "krauler", None),
    ((0xFFFF, 0x0000), (None, None), "ablerex", "krauler"),  # blazer_usb kept the old choice
    ((0x0925, 0x1234), (None, None), "armac", None),
    ((0x1A86, 0x7523), (None, None), None, None),  # CH340: also in non-UPS devices
    ((0x0590, 0x00B7), (None, None), None, None),  # OMRON's own protocol
    ((0x051D, 0x0002), ("APC", "Back-UPS"), None, None),  # a HID UPS: usbhid-ups's
])
def test_table_picks_as_nut(ids: tuple[int, int], strings: tuple[str | None, str | None],
                            qx: str | None, blazer: str | None) -> None:
    def pick(table: tuple[usb.UsbId, ...]) -> str | None:
        row = usb.choose(table, *ids, *strings)
        return None if row is None else row.subdriver

    assert (pick(usb.NUTDRV_QX_IDS), pick(usb.BLAZER_USB_IDS)) == (qx, blazer)


def test_every_table_subdriver_is_implemented() -> None:
    for row in (*usb.NUTDRV_QX_IDS, *usb.BLAZER_USB_IDS):
        assert row.subdriver is None or row.subdriver in usb.SUBDRIVERS, row
    assert set(usb.BLAZER_SUBDRIVERS) <= set(usb.SUBDRIVERS)
    ids = usb.usb_ids()  # what the udev rules must cover
    assert (0x0665, 0x5161) in ids and (0x0001, 0x0000) in ids and (0x1A86, 0x7523) not in ids
    assert len(ids) == len(set(ids))


@param_specs
async def test_detection_auto_by_id_or_explicit(spec: Spec) -> None:
    """``port = auto`` alone takes the device for the subdriver NUT's table gives its IDs;
    a device the table does not know (gtec, snr here) needs ``subdriver =`` and its IDs."""
    ups = fakeqx.megatec_ups()
    apc = FakeHidDevice(b"\x05\x84\x09\x04\xa1\x01\xc0", vendor_id=0x051D, product_id=0x0002,
                        manufacturer="APC", address=2)  # a HID UPS first on the bus: not ours
    dev = spec_device(spec, ups)
    async with connected([apc, dev], **spec_opts(spec)) as drv:
        assert subdriver(drv) == spec.name
        assert not apc.claimed and dev.claimed and not dev.kernel_driver  # usbhid detached
        await drv.update()
        assert drv.device.value("ups.vendorid") == f"{spec.ids[0]:04x}"
        assert drv.device.value("ups.productid") == f"{spec.ids[1]:04x}"
    assert not dev.claimed and dev.kernel_driver  # given back on close
    if not spec.auto:  # the table alone takes it for another subdriver, or not at all
        row = usb.choose(usb.NUTDRV_QX_IDS, *spec.ids, None, None)
        if row is None:
            drv = make_driver([spec_device(spec, fakeqx.megatec_ups(), address=7)])
            with pytest.raises(DeviceError, match="no USB UPS matches"):
                await drv.connect()
        else:  # snr's bridge under krauler's ID: krauler does not wake it, no data
            drv = make_driver([spec_device(spec, fakeqx.megatec_ups(), address=8)],
                              protocol="megatec")
            await drv.connect()
            assert subdriver(drv) == row.subdriver != spec.name
            with pytest.raises(DeviceError, match="no valid status reply"):
                await drv.update()
            await drv.close()


async def test_explicit_subdriver_overrides_the_table() -> None:
    """A Cypress-framed unit on an ID the table gives to ablerex, as NUT: subdriver wins."""
    dev = fakeqx.CypressDevice(fakeqx.megatec_ups(), vendor_id=0xFFFF, product_id=0x0000)
    async with connected([dev], subdriver="cypress", vendorid="ffff", productid="0000") as drv:
        assert subdriver(drv) == "cypress"
        await drv.update()
        assert drv.device.value("ups.status") == "OL"


async def test_unsupported_table_rows_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    """0590:00b7 is NUT's omron (own protocol): not taken (said once in the log)."""
    caplog.set_level(logging.WARNING)
    omron = fakeqx.CypressDevice(fakeqx.megatec_ups(), vendor_id=0x0590, product_id=0x00B7)
    drv = make_driver([omron])
    for _ in range(2):
        with pytest.raises(DeviceError, match="no USB UPS matches"):
            await drv.connect()
    assert caplog.text.count("omron") == 1 and not omron.claimed


async def test_phoenixtec_by_strings_cypress_otherwise() -> None:
    """06da:0002 with Masterguard's strings is NUT's phoenixtec; the same IDs with other
    strings are a Cypress bridge (Online Yunto), as NUT's table orders them."""
    guard = fakeqx.PhoenixtecDevice(fakeqx.megatec_ups())
    yunto = fakeqx.CypressDevice(fakeqx.megatec_ups(), vendor_id=0x06DA, product_id=0x0002,
                                 manufacturer="PPC", address=9)
    async with connected([yunto]) as drv:
        assert subdriver(drv) == "cypress"
    async with connected([guard]) as drv:
        assert subdriver(drv) == "phoenixtec"


def test_phoenixtec_silent_commands() -> None:
    """The commands Masterguard's cable does not wait a reply for, by command word."""
    silent = usb.Phoenixtec.silent
    assert all(silent(c) for c in (b"T\r", b"TL\r", b"T02\r", b"S.5R0180\r", b"S01\r", b"C\r",
                                   b"CT\r", b"TUD,00\r", b"FCLR,00\r", b"SS---1,00\r",
                                   b"SS--2-,00\r"))
    assert not any(silent(c) for c in (b"Q1\r", b"Q3\r", b"WH\r", b"MSO\r", b"GS,00\r",
                                       b"GSN,00\r", b"PNV\r", b"FOFF\r", b"Q\r"))


async def test_masterguard_over_phoenixtec() -> None:
    """A Masterguard behind its cable: found by its strings, the masterguard protocol
    detected (Q1 answered, I and FW? not, WH and MSO), OL -> OB -> OB LB -> OL, a command's
    bytes in the vendor write, no reply awaited for it."""
    ups = fakeqx.megatec_ups(protocol="masterguard")
    dev = fakeqx.PhoenixtecDevice(ups)
    async with connected([dev]) as drv:
        assert subdriver(drv) == "phoenixtec" and drv.protocol == "masterguard"
        for status, act in OUTAGE:
            act(ups.model)
            ups.model.tick()
            await drv.update()
            assert drv.device.value("ups.status") == status
        assert drv.device.value("device.model") == "A1000"
        before = mark(dev)
        reads = len(dev.requests)
        assert await drv.instcmd("test.battery.start.deep", None) == Status.HANDLED
        assert usb_payload(dev, before) == [(0x0D, b"TUD,00\r")]
        assert ups.commands[-1] == "TUD,00"
        assert len(dev.requests) == reads + 1  # the write alone


async def test_matching_options_select_among_units() -> None:
    """NUT's regex options (case-insensitive, whole value) pick one of two identical units."""
    a = fakeqx.CypressDevice(fakeqx.megatec_ups(), serial="AAA111", address=3)
    b = fakeqx.CypressDevice(fakeqx.megatec_ups(), serial="BBB222", address=4)
    async with connected([a, b], serial="bbb[0-9]+") as drv:
        assert b.claimed and not a.claimed
    async with connected([a, b], bus="001", device="003") as drv:
        assert a.claimed
        assert info(drv).serial == "AAA111"


# ---- the Q1/F/I exchange, status, commands --------------------------------------------------



@param_specs
async def test_megatec_exchange_and_outage(spec: Spec) -> None:
    """Detection (Voltronic and Mustek probed first, as NUT does), F and I once, then Q1 per
    poll: every value is what the serial parser reads from the same UPS's reply."""
    ups = fakeqx.megatec_ups()
    dev = spec_device(spec, ups)
    async with connected([dev], **spec_opts(spec)) as drv:
        assert drv.protocol == "megatec"
        items = q1.items_for(drv.protocol, drv.blazer, drv.nut_285)  # the profile's table
        rating, ident = q1.parse("F", ups.rating_line(), items), q1.parse("I", ups.info_line(), items)
        assert rating is not None and ident is not None
        for status, change in OUTAGE:
            change(ups.model)
            await drv.update()
            want = q1.parse("status", ups.status_line(), items)
            assert want is not None
            want.pop("_bits")
            got = {k: drv.device.value(k) for k in (*want, *rating, *ident)}
            assert got == {**want, **rating, **ident}, spec.name
            assert drv.device.value("ups.status") == status
        assert drv.device.value("ups.type") == "offline / line interactive"
        assert drv.device.value("driver.version.data") == "Megatec"
        probes = [r for r in dev.received if r in (b"QGS\r", b"QS\r")]
        if spec.name in ECHOING:  # refused by the subdriver: the UPS never sees them
            assert (probes, drv.counters["garbage"]) == ([], 2)
        else:  # sent, not answered by a Megatec UPS
            assert (probes, drv.counters["garbage"]) == ([b"QGS\r", b"QS\r"], 0)


#: subdrivers that answer a request they cannot carry by echoing it (NUT's convention)
ECHOING = {"krauler", "fabula", "hunnox", "snr", "armac"}


@pytest.mark.parametrize("spec", [s for s in SPECS if s.voltronic], ids=lambda s: s.name)
async def test_voltronic_exchange_and_outage(spec: Spec) -> None:
    """A Voltronic Power unit behind the bridges whose framing carries its 76-byte QGS:
    detected by QGS + QPI, the static queries once, QGS/QBV/QMOD per poll."""
    ups = fakeqx.megatec_ups(protocol="voltronic")
    dev = spec_device(spec, ups)
    async with connected([dev], **spec_opts(spec)) as drv:
        assert drv.protocol == "voltronic"
        for status, change in OUTAGE:
            change(ups.model)
            await drv.update()
            table = voltronic.ITEMS_285 if drv.nut_285 else voltronic.ITEMS  # the profile's
            qgs = voltronic.parse("QGS", ups.qgs_line().encode() + b"\r", table)
            qbv = voltronic.parse("QBV", (ups.voltronic_reply("QBV") or "").encode() + b"\r")
            assert qgs is not None and qbv is not None
            qgs.pop("_bits")
            want = {**qgs, **qbv}
            assert {k: drv.device.value(k) for k in want} == want
            assert drv.device.value("ups.status") == status
        assert drv.device.value("device.mfr") == "NUT Bridge"
        assert drv.device.value("ups.firmware.aux") == "P01"
        assert dev.received[:2] == [b"QGS\r", b"QPI\r"]


VOLTRONIC_COMMANDS = {
    "beeper.toggle": b"BZOFF\r", "load.off": b"SOFF\r", "load.on": b"SON\r",
    "shutdown.return": b"S.5R0003\r", "shutdown.stayoff": b"S.5R0000\r", "shutdown.stop": b"CS\r",
    "test.battery.start": b"T10\r", "test.battery.start.deep": b"TL\r",
    "test.battery.start.quick": b"T\r", "test.battery.stop": b"CT\r",
}


async def test_voltronic_commands_over_cypress() -> None:
    """Voltronic's command bytes in Cypress frames; the unit's (ACK makes each HANDLED."""
    ups = fakeqx.megatec_ups(protocol="voltronic")
    dev = fakeqx.CypressDevice(ups)
    async with connected([dev]) as drv:
        await drv.update()
        for cmd, raw in VOLTRONIC_COMMANDS.items():
            before = mark(dev)
            assert await drv.instcmd(cmd, None) == Status.HANDLED, cmd
            assert usb_payload(dev, before) == cypress_frames(raw), cmd
            assert dev.received[-1] == raw
        assert [c.encode() + b"\r" for c in ups.commands] == list(VOLTRONIC_COMMANDS.values())


@param_specs
async def test_every_instant_command(spec: Spec) -> None:
    """Each of the ten commands: the USB payload the bridge got (byte for byte), what the
    UPS behind it carried out, and the answer. Unanswered commands are HANDLED (as
    blazer_usb and the serial path say; see docs/usb-megatec.md); requests a subdriver
    cannot carry are refused without touching the bus (FAILED, as NUT's echo is)."""
    ups = fakeqx.megatec_ups()
    dev = spec_device(spec, ups)
    async with connected([dev], **spec_opts(spec)) as drv:
        await drv.update()
        for cmd, raw in MEGATEC.items():
            before, carried = mark(dev), len(ups.commands)
            status = await drv.instcmd(cmd, None)
            expected = spec.commands[cmd]
            if expected == ECHOED:
                assert status == Status.FAILED, cmd
                assert ups.commands[carried:] == [] and mark(dev) == before, cmd
                continue
            assert status == Status.HANDLED, cmd
            assert usb_payload(dev, before) == expected, cmd
            want = spec.carried.get(cmd, raw.rstrip(b"\r").decode())
            assert ups.commands[carried:] == [want], cmd


async def test_blazer_usb_counts_test_minutes() -> None:
    """blazer_usb, like blazer_ser: test.battery.start's parameter is in minutes."""
    ups = fakeqx.megatec_ups()
    dev = fakeqx.CypressDevice(ups)
    async with connected([dev], driver="blazer_usb") as drv:
        await drv.update()
        assert await drv.instcmd("test.battery.start", "2") == Status.HANDLED
        assert dev.received[-1] == b"T02\r"
        assert await drv.instcmd("test.battery.start", "120") == Status.INVALID
        assert drv.device.value("ups.mfr") == "NUT Bridge"  # blazer's duplicates
        assert b"QGS\r" not in dev.received  # no Voltronic probe


# ---- unplug, replug ------------------------------------------------------------------------------

async def _until(what: Callable[[], bool], timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not what():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


@param_specs
async def test_unplug_stale_replug_at_new_address(spec: Spec) -> None:
    """The driver's own loop: unplugged -> stale at the next poll; plugged back (at a new
    address, the kernel driver bound again, on battery meanwhile) -> the same driver finds
    it and its data are fresh, no restart."""
    ups = fakeqx.megatec_ups()
    dev = spec_device(spec, ups)
    drv = make_driver([dev], pollinterval="0.1", **spec_opts(spec))
    task = asyncio.create_task(drv.run())
    try:
        await _until(lambda: drv.device.value("ups.status") == "OL")
        address = dev.address
        dev.unplug()
        await _until(lambda: drv.device.driver_state is DriverState.STALE)
        ups.model.set_mains(False)
        dev.replug()
        assert dev.address != address and dev.kernel_driver
        await _until(lambda: drv.device.driver_state is DriverState.OK
                     and drv.device.value("ups.status") == "OB")
        assert info(drv).device == f"{dev.address:03d}"
        assert drv.counters["reopens"] == 1 and dev.claimed
    finally:
        drv.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await drv.close()


async def test_reconnect_takes_only_the_same_ups() -> None:
    """After an unplug only that UPS (IDs, strings, serial) is taken, wherever it comes
    back; an identical model with another serial is left alone (usbhid-ups's rule)."""
    mine = fakeqx.CypressDevice(fakeqx.megatec_ups(), serial="MINE0001", address=3)
    other = fakeqx.CypressDevice(fakeqx.megatec_ups(), serial="OTHER002", address=4)
    other.unplug()
    drv = make_driver([mine, other])
    await drv.connect()
    await drv.update()
    mine.unplug()
    with pytest.raises(DeviceError):
        await drv.update()
    await drv.close()
    other.replug()
    with pytest.raises(DeviceError, match="no USB UPS matches"):
        await drv.connect()
    assert not other.claimed
    mine.replug()
    await drv.connect()
    assert mine.claimed and info(drv).serial == "MINE0001"
    await drv.close()


async def test_hung_bridge_goes_stale_then_recovers() -> None:
    """A bridge that stops answering (every transfer times out, still on the bus): the
    status poll fails after NUT's three tries, the data go stale, answers bring them back."""
    dev = fakeqx.CypressDevice(fakeqx.megatec_ups())
    async with connected([dev], protocol="megatec") as drv:
        await drv.update()
        dev.hang = True
        with pytest.raises(DeviceError, match="no valid status reply"):
            await drv.update()
        assert drv.counters["timeouts"] >= 3
        dev.hang = False
        await drv.update()
        assert drv.device.value("ups.status") == "OL"


async def test_wedged_cypress_bridge_is_reset() -> None:
    """NUT #598: a Cypress bridge that sends oversized interrupt reports keeps doing so;
    three overflows in a row mean a reset and a reconnect, not an endless no-reply."""
    dev = fakeqx.CypressDevice(fakeqx.megatec_ups())
    async with connected([dev], protocol="megatec") as drv:
        await drv.update()
        dev.reply = lambda reply: dev.push_interrupt(bytes(9))  # type: ignore[method-assign]
        with pytest.raises(DeviceError, match="overflow 3 times in a row"):
            await drv.update()
        assert not link(drv).is_open


# ---- the quirks --------------------------------------------------------------------------------

def _string_zero_reads(dev: fakeqx.FakeQxDevice) -> int:
    return sum(1 for bm, r, v, _, _ in dev.requests if (bm, r, v) == (0x80, 6, 0x0300))


async def test_langid_fix_and_noscanlangid(caplog: pytest.LogCaptureFixture) -> None:
    """A Krauler bridge whose string 0 offers a language (0x4095) it does not answer in:
    libusb's way (first offered language) reads nothing; ``langid_fix = 0x0409`` reads the
    replies. NUT then reads string 0 once to log the first language, unless noscanlangid."""
    caplog.set_level(logging.INFO)

    def krauler() -> fakeqx.KraulerDevice:
        dev = fakeqx.KraulerDevice(fakeqx.megatec_ups(), langid=0x0409)
        dev.langids = bytes([4, 3, 0x95, 0x40])
        return dev

    async with connected([krauler()], protocol="megatec") as drv:
        with pytest.raises(DeviceError, match="no valid status reply"):
            await drv.update()
    dev = krauler()
    async with connected([dev], langid_fix="0x0409", protocol="megatec") as drv:
        assert _string_zero_reads(dev) == 1
        assert "first language ID the device offers: 0x4095" in caplog.text
        await drv.update()
        assert drv.device.value("ups.status") == "OL"
        assert _string_zero_reads(dev) == 1  # the replies are read in 0x0409 only
        assert {idx for bm, r, v, idx, _ in dev.requests if v in (0x0303, 0x030D)} == {0x0409}
    dev = krauler()
    async with connected([dev], langid_fix="0x0409", noscanlangid="", protocol="megatec"):
        assert _string_zero_reads(dev) == 0


async def test_krauler_asks_again_after_no_ack() -> None:
    """Krauler's "UPS No Ack" means ask again (up to 10 reads per request)."""
    dev = fakeqx.KraulerDevice(fakeqx.megatec_ups())
    async with connected([dev], protocol="megatec") as drv:
        dev.no_ack = 4
        before = len(dev.received)
        await drv.update()
        assert drv.device.value("ups.status") == "OL"
        assert dev.received[before:] == [b"Q1\r"]  # 4 No Acks, then the reply
        dev.no_ack = 30  # more than 10: no reply to this try
        with pytest.raises(DeviceError, match="no valid status reply"):
            await drv.update()


async def test_hunnox_lock_step() -> None:
    """Hunnox firmware wants strings read in its order: before the first request strings
    0, 0, 1; then, before each request, the next of 13 (F), 3 (Q1), 12 (I) unless that is
    the one asked; with novendor 12 is never read."""
    dev = fakeqx.HunnoxDevice(fakeqx.megatec_ups())
    async with connected([dev], protocol="megatec") as drv:
        reads = dev.string_reads()
        assert reads[:4] == [0, 1, 0, 2]  # the search reads iManufacturer, iProduct
        # F: prelude 0 0 1, then F's own read (libusb's way: string 0, then 13); I: 13 was
        # expected, so read first, then 0, 12
        assert reads[4:] == [0, 0, 1, 0, 0x0D, 0x0D, 0, 0x0C]
        for extra in ([], [0x0C], [0x0D], []):  # Q1 at steps 3 (expected), 12, 13, 3...
            before = len(dev.string_reads())
            await drv.update()
            assert dev.string_reads()[before:] == [*extra, 0, 0x03]
    dev = fakeqx.HunnoxDevice(fakeqx.megatec_ups())
    async with connected([dev], protocol="megatec", novendor="") as drv:
        await drv.update()
        assert 0x0C not in dev.string_reads()


async def test_phoenix_drains_stale_bytes() -> None:
    """The Phoenix bridge keeps bytes nobody read; the subdriver drains them first, so a
    stale reply never passes for the answer (Cypress framing alone would take it)."""
    ups = fakeqx.megatec_ups()
    dev = fakeqx.PhoenixDevice(ups)
    async with connected([dev], protocol="megatec") as drv:
        await drv.update()
        old = ups.status_line()
        ups.model.set_mains(False)
        dev.stale(old)
        await drv.update()
        assert drv.device.value("ups.status") == "OB"
        assert drv.counters["garbage"] == 0


async def test_fuji_tells_the_bridge_the_reply_length() -> None:
    """Fuji's 8-byte request report ends with the length of the reply it expects (0 for
    commands and for queries it has no length for)."""
    dev = fakeqx.FujiDevice(fakeqx.megatec_ups())
    async with connected([dev]) as drv:
        await drv.update()
        writes = [data for _, data in dev.interrupt_writes]
        assert writes[:2] == [bytes.fromhex("800604 03 514753 00"), bytes.fromhex("800603 03 5153 00 00")]
        assert bytes.fromhex("800603 03 5131 00 2f") in writes  # Q1: 47 bytes
        assert bytes.fromhex("800602 03 46 0000 16") in writes  # F: 22
        assert bytes.fromhex("800602 03 49 0000 27") in writes  # I: 39


async def test_armac_newer_units_use_the_interrupt_endpoints() -> None:
    """Armac units with 64-byte interrupt endpoints 0x82/0x02 take the request in one
    interrupt write; the queries the firmware ignores are not sent."""
    ups = fakeqx.megatec_ups()
    dev = fakeqx.ArmacDevice(ups, interrupt_path=True)
    async with connected([dev]) as drv:
        await drv.update()
        assert drv.device.value("ups.status") == "OL" and drv.protocol == "megatec"
        assert dev.writes == []
        # detection asks Q1 and I (NUT's megatec claim), then the ratings
        assert dev.interrupt_writes[:3] == [(2, b"\xa4Q1\r\0"), (2, b"\xa3I\r\0"),
                                            (2, b"\xa3F\r\0")]
        assert b"QGS\r" not in dev.received and b"QS\r" not in dev.received
        assert await drv.instcmd("beeper.toggle", None) == Status.HANDLED
        assert dev.interrupt_writes[-1] == (2, b"\xa3Q\r\0")


def test_string_reads_sans_io() -> None:
    """The langid_fix read checks the descriptor's length byte (a mismatch is asked again
    by krauler, up to 10 times); libusb's ASCII read turns non-ASCII into '?'."""
    sub = usb.Krauler(usb.Setup(langid_fix=0x0409))
    ex = sub.exchange(b"Q1\r")
    step = next(ex)
    assert step == usb.ControlIn(0x80, 6, 0x0303, 0x0409, 511, 1.0)
    good = "(230.0".encode("utf-16-le")
    step = ex.send(bytes([40, 3]) + good)  # length byte says 40, 14 bytes came: again
    assert step == usb.ControlIn(0x80, 6, 0x0303, 0x0409, 511, 1.0)
    with pytest.raises(StopIteration) as done:
        ex.send(bytes([2 + len(good), 3]) + good)
    assert done.value.value == b"(230.0\r"
    ex = usb.Fabula().exchange(b"I\r")
    assert next(ex) == usb.ControlIn(0x80, 6, 0x0300, 0, 255, 1.0)  # string 0: languages
    assert ex.send(b"\x04\x03\x09\x04") == usb.ControlIn(0x80, 6, 0x030C, 0x0409, 255, 1.0)
    with pytest.raises(StopIteration) as done:
        ex.send(b"\x0a\x03#\x00\xe9\x00A\x01B\x00")
    assert done.value.value == b"#??B\r"


@pytest.mark.parametrize(("request_", "index"), [
    (b"S.5R0003\r", 0x18), (b"S.5R0000\r", 0x10), (b"S.5\r", 0x18), (b"S.2R0001\r", 0x18),
    (b"S.7R0000\r", 0x30), (b"S01R0002\r", 0x68), (b"S10R0000\r", 0xF0), (b"S12\r", 0xF8),
    (b"S00R0000\r", 0x10), (b"T\r", None),
])
def test_fabula_shutdown_index(request_: bytes, index: int | None) -> None:
    assert usb.shutdown_index(request_) == index


@pytest.mark.parametrize(("raw", "line"), [
    (b"(230.0 1\r\0\0\0", b"(230.0 1\r"), (b"\0\r" + bytes(62), None), (b"#V3.7", b"#V3.7\r"),
    (b"", None), (None, None), (b"AB\0CD\r", b"AB\r"), (b"\rjunk", None),
])
def test_reply_line_is_a_c_string(raw: bytes | None, line: bytes | None) -> None:
    assert usb.reply_line(raw) == line


# ---- corpus: real devices' values through their subdriver -------------------------------------

@dataclass(frozen=True)
class Dump:
    path: str
    device: Callable[..., fakeqx.FakeQxDevice]
    ids: tuple[int, int]
    subdriver: str
    kw: dict[str, Any] = field(default_factory=dict)
    skip: tuple[str, ...] = ()  # variables NUT computed its own way (see the case)


DUMPS = [
    Dump("Salicru/Salicru__SPS_One_700VA__blazer_usb__2.6.4__01.dev", fakeqx.CypressDevice,
         (0x0665, 0x5161), "cypress"),
    Dump("UNITEK/UNITEK__Alpha_1200Sx__blazer_usb__2.6.1__01.dev", fakeqx.CypressDevice,
         (0x0F03, 0x0001), "cypress", {"manufacturer": "UNITEK"}),
    Dump("Online/Online__Zinto_A_1000__blazer_usb__2.4.3__01.dev", fakeqx.PhoenixDevice,
         (0x06DA, 0x0601), "phoenix"),
    Dump("Eaton/Eaton__5E2200USB-LA__nutdrv_qx__2.7.4.1__01.dev", fakeqx.IpponDevice,
         (0x06DA, 0x0003), "ippon"),
    # blazer_usb 2.6.5 guessed the battery's limits its own way
    Dump("Novex/Novex__NUPS-650__blazer_usb__2.6.5__01.dev", fakeqx.KraulerDevice,
         (0x0001, 0x0000), "krauler", skip=("battery.voltage.high", "battery.voltage.low")),
    # blazer_usb 2.7.4 guessed per-cell limits from a 0 V nominal: not read from the UPS
    Dump("DEXP/DEXP__MIX_850VA__blazer_usb__2.7.4__01.dev", fakeqx.KraulerDevice,
         (0x0001, 0x0000), "krauler", {"langids": b"\x04\x03\x00\x00"},
         skip=("battery.voltage.high", "battery.voltage.low", "battery.runtime", "battery.charge")),
    Dump("Atlantis_Land/Atlantis_Land__OnePower_551_A03-P551_v1.2__blazer_usb__2.6.4__01.dev",
         fakeqx.KraulerDevice, (0xFFFF, 0x0000), "krauler", {"langids": None}),
    Dump("Digitus/Digitus__DN-170076__nutdrv_qx__2.7.4__02.dev", fakeqx.FabulaDevice,
         (0x0001, 0x0000), "fabula", skip=("battery.voltage.high",)),  # from its runtimecal
    # protocol = hunnox: its delays (60 s, 0) and 0.00 limits from a 0 V nominal, as NUT
    Dump("Powercool/Powercool__1500VA__nutdrv_qx__2.7.4.1__01.dev", fakeqx.HunnoxDevice,
         (0x0001, 0x0000), "hunnox"),
    Dump("2E/2E__PS1000L__nutdrv_qx__2.8.1__01.dev", fakeqx.FujiDevice, (0x0001, 0x0000), "fuji",
         skip=("battery.charge", "battery.runtime", "battery.voltage.high", "battery.voltage.low",
               "battery.voltage.nominal")),  # overrides and runtimecal in its ups.conf
]
COMPARED = (
    "input.voltage", "input.voltage.fault", "output.voltage", "ups.load", "input.frequency",
    "battery.voltage", "ups.temperature", "input.voltage.nominal", "input.current.nominal",
    "battery.voltage.nominal", "input.frequency.nominal", "device.mfr", "device.model",
    "ups.firmware", "ups.mfr", "ups.model", "ups.status", "ups.alarm", "ups.type",
    "ups.beeper.status", "ups.vendorid", "ups.productid", "ups.delay.shutdown", "ups.delay.start",
    "battery.voltage.low", "battery.voltage.high", "battery.charge",
)


def _read_dump(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            out[key.strip()] = value.split("#COMMENT")[0].strip()
    return out


def _same(ours: str | None, theirs: str) -> bool:
    """Equal as NUT prints it; numbers compare by value (2.8.x prints battery.voltage %.1f)."""
    if ours == theirs:
        return True
    try:
        return ours is not None and float(ours) == float(theirs)
    except ValueError:
        return False


@needs_ddl
@pytest.mark.parametrize("case", DUMPS, ids=[d.path.split("/")[0] for d in DUMPS])
async def test_corpus_device_values(case: Dump) -> None:
    """The UPS of a DDL dump, behind its bridge (its IDs, the subdriver NUT chose, the
    dump's ups.conf options): what we publish equals what NUT published from it."""
    values = _read_dump(DDL / case.path)
    params = {k.removeprefix("driver.parameter."): v for k, v in values.items()
              if k.startswith("driver.parameter.") and k != "driver.parameter.port"}
    params.update({k.removeprefix("driver.flag."): "" for k in values if k.startswith("driver.flag.")})
    driver = "nutdrv_qx" if values.get("driver.name", "").startswith("nutdrv_qx") else "blazer_usb"
    opts = {k: v for k, v in params.items() if k in ("langid_fix", "novendor", "noscanlangid",
                                                     "protocol", "vendor", "product")}
    assert opts.get("protocol") in (None, *qxd.PROTOCOL_NAMES, *qxd.DEVICE_PROTOCOLS)
    ups = fakeqx.ReplayedUPS(fakeqx.dump_replies(values))
    langids = case.kw.get("langids", b"\x04\x03\x09\x04")
    kw = {k: v for k, v in case.kw.items() if k != "langids"}
    dev = case.device(ups, vendor_id=case.ids[0], product_id=case.ids[1], **kw)
    dev.langids = langids
    async with connected([dev], driver=driver, **opts) as drv:
        assert subdriver(drv) == case.subdriver
        await drv.update()
        compared = [k for k in COMPARED if values.get(k) and k not in case.skip]
        assert len(compared) >= 10
        ours = {k: drv.device.value(k) for k in compared}
        differ = {k: (ours[k], values[k]) for k in compared if not _same(ours[k], values[k])}
        assert not differ, f"ours vs the dump: {differ}"


# ---- through upsd, with NUT's protocol ---------------------------------------------------------

class InProcessBridge:
    """``nutbridge serve`` on a thread of this process, so its drivers use our fake backend."""

    def __init__(self, cfg: realnut.NutConfig, tmp: Path) -> None:
        self.cfg = cfg
        bcfg = load_config(cfg.write())
        bcfg.zeroconf = False
        bcfg.monitor = False
        bcfg.state_dir = tmp / "state"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.bridge = Bridge(bcfg)
        asyncio.run_coroutine_threadsafe(self.bridge.start(), self.loop).result(20)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.bridge.stop(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_blazer_usb_through_upsd(tmp_path: Path) -> None:
    """``driver = blazer_usb`` in ups.conf: a Krauler-bridged UPS served by our upsd;
    upscmd's INSTCMD reaches the UPS as the Krauler string read it maps to."""
    ups = fakeqx.megatec_ups()
    dev = fakeqx.KraulerDevice(ups)
    qxd.backend = fakeqx.FakeQxBackend([dev])
    cfg = realnut.NutConfig(tmp_path / "c")
    cfg.add_ups("ups", driver="blazer_usb", port="auto", pollinterval="0.5")
    b = InProcessBridge(cfg, tmp_path)
    try:
        realnut.wait_ready_ups(cfg.port, ["ups"])
        answer = realnut.query(cfg.port, "LIST VAR ups").decode()
        assert 'VAR ups ups.vendorid "0001"' in answer
        assert 'VAR ups driver.name "blazer_usb"' in answer
        assert 'VAR ups ups.status "OL"' in answer
        assert b"OK" in realnut.query(cfg.port, *LOGIN, "INSTCMD ups beeper.toggle")
        for _ in range(100):
            if ups.commands:
                break
            threading.Event().wait(0.05)
        assert ups.commands == ["Q"]
        assert 0x0307 in [v for _, _, v, _, _ in dev.requests]
    finally:
        b.stop()


def test_simulator_in_fake_device_is_the_pty_one() -> None:
    """The fake UPS is the pty simulator's (same replies from the same physics)."""
    ups = fakeqx.megatec_ups()
    assert isinstance(ups, MegatecSimulator)
    assert ups.handle(b"F\r") == ups.rating_line()
