"""usbhid-ups: ``ups.mfr``/``device.mfr`` are the USB manufacturer string, as NUT shows it.

NUT's usbhid-ups publishes the device's iManufacturer string descriptor (trailing blanks
trimmed), and the subdriver's short name (``APC``, ``CPS``, ``Liebert``...) only when the device
has no such string. Every usbhid-ups dump of the NUT DDL whose debug lines record the USB
strings (``- Manufacturer: PPC``, lsusb's ``iManufacturer 1 American Power Conversion ``) is
replayed here as a fake pyusb device carrying those strings, read by our driver as it would read
real hardware, and what it publishes must equal the ``device.mfr``/``ups.mfr`` NUT recorded:

* dumps with a report descriptor: the driver's own replay (``port = <dump>``);
* dumps without one: the layout NUT logged (Path lines) or the vendor's layout
  (tests/test_hid_subdrivers.py builds them), the USB strings taken from the dump.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from nutbridge.drivers import create_driver
from nutbridge.drivers.usbhid.subdrivers import subdrivers
from nutbridge.drivers.usbhid.table import Subdriver
from nutbridge.simulation.usbdump import Dump, load_dump
from nutbridge.state import Device
from tests import test_hid_subdrivers as ths
from tests.support import realnut
from tests.support.hidbuild import FieldSpec

DDL = ths.DDL


def recorded() -> list[Path]:
    """usbhid-ups dumps whose debug lines name the USB manufacturer string."""
    if not DDL.is_dir():
        return []
    return [f for f in sorted(DDL.glob("*/*usbhid-ups*.dev")) if load_dump(f).manufacturer is not None]


def _want(dump: Dump) -> dict[str, str]:
    return {k: dump.values[k] for k in ("device.mfr", "ups.mfr") if k in dump.values}


async def _replay(path: Path) -> dict[str, str]:
    drv = create_driver(Device("ups", driver_name="usbhid-ups"), {"driver": "usbhid-ups", "port": str(path)})
    try:
        await drv.connect()
        await drv.update()
        return {v.name: v.value for v in drv.device.variables()}
    finally:
        await drv.close()


def _bench(dump: Dump) -> ths.Bench:
    """A fake device for a dump without a report descriptor, with the dump's USB strings."""
    assert dump.vendor_id is not None and dump.product_id is not None and dump.manufacturer is not None
    mfr, product, serial = dump.manufacturer, dump.product or "UPS", dump.serial
    if dump.paths:  # the layout NUT logged
        specs, raw = ths.specs_from_path_lines(dump)
        return ths.Bench(specs, dump.vendor_id, dump.product_id, raw=raw, mfr=mfr,
                         product=product, serial=serial)
    if dump.vendor_id == 0x0D9F:  # PowerCOM's layout, as its own test builds it
        v = dump.values
        return ths.Bench(ths.powercom_specs(beeper="ups.beeper.status" in v), dump.vendor_id,
                         dump.product_id, string_indices=(3, 1, 2), strings={4: v["battery.type"]},
                         raw=ths.powercom_raw(v), extra={0xA4: ths.POWERCOM_A4},
                         mfr=mfr, product=product, serial=serial)
    # nothing but the strings recorded: the smallest UPS the vendor's table reads
    specs = [FieldSpec("UPS.PowerSummary.RemainingCapacity", report_id=1),
             FieldSpec("UPS.PowerSummary.PresentStatus.ACPresent", "Input", report_id=2, size=1,
                       logical_max=1),
             FieldSpec("UPS.PowerSummary.PresentStatus", "Input", report_id=2, size=7, pad=True)]
    return ths.Bench(specs, dump.vendor_id, dump.product_id,
                     raw={"RemainingCapacity": 100, "ACPresent": 1}, mfr=mfr, product=product,
                     serial=serial)


def test_corpus_has_recorded_strings() -> None:
    realnut.require(f"NUT DDL corpus ({DDL})", DDL.is_dir())
    files = recorded()
    assert len(files) >= 6, files
    # the lsusb form keeps the device's trailing blank; NUT's mfr has it trimmed
    x750 = next(load_dump(f) for f in files if "X_750" in f.name)
    assert x750.manufacturer == "American Power Conversion "
    assert _want(x750) == {"device.mfr": "American Power Conversion", "ups.mfr": "American Power Conversion"}


@pytest.mark.parametrize("path", recorded(), ids=lambda p: p.name.split("__usbhid")[0])
async def test_mfr_is_the_usb_string_nut_showed(path: Path) -> None:
    dump = load_dump(path)
    want = _want(dump)
    assert want, "the dump records no mfr"
    if dump.descriptor is not None:
        ours = await _replay(path)
    else:
        bench = _bench(dump)
        try:
            ours = await bench.start()
        finally:
            await bench.close()
    assert {k: ours.get(k) for k in want} == want
    # and it is the USB string, not a table name that happens to be equal
    assert want["ups.mfr"] == (dump.manufacturer or "").rstrip()


@dataclass
class _Usb:
    vendor_id: int
    product_id: int
    manufacturer: str | None
    product: str | None
    serial: str | None = None


@pytest.mark.parametrize("sub", [s for s in subdrivers() if s.ids], ids=lambda s: s.key)
def test_every_subdriver_prefers_the_usb_string(sub: Subdriver) -> None:
    """NUT's format_mfr: the device's string when it has one (trailing blanks trimmed), else
    the vendor's short name."""
    vid, pid = sub.ids[0]
    pid = 1 if pid is None else pid
    if sub.identity is None:  # the mapper's default: the USB strings as they are
        return
    ident = sub.identity(_Usb(vid, pid, "Some Maker Inc.  ", "Model X"))
    assert ident["ups.mfr"] == "Some Maker Inc.", sub.key
    assert sub.identity(_Usb(vid, pid, None, None)).get("ups.mfr"), f"{sub.key}: no short name"


def test_served_replays_show_the_usb_string(tmp_path: Path) -> None:
    """The same through ``nutbridge serve`` and upsd: ups.conf ``port = <dump>``."""
    files = [f for f in recorded() if load_dump(f).descriptor is not None]
    realnut.require("DDL dumps with a report descriptor and USB strings", len(files) >= 2)
    cfg = realnut.NutConfig(tmp_path / "nut")
    names = {}
    for i, f in enumerate(files):
        names[f"u{i}"] = load_dump(f)
        cfg.add_ups(f"u{i}", driver="usbhid-ups", port=str(f))
    with realnut.BridgeProcess.start(cfg):
        realnut.wait_ready_ups(cfg.port, list(names))
        for ups, dump in names.items():
            for var, value in _want(dump).items():
                assert realnut.query(cfg.port, f"GET VAR {ups} {var}") == \
                    f'VAR {ups} {var} "{value}"\n'.encode()
