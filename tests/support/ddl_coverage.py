"""The NUT Device Dump Library against the bridge's drivers: which recorded devices the bridge runs
natively, which through a hosted NUT C driver, which not at all; and the usbhid-ups dumps by
HID subdriver.

Run from the repository root (prints the two Markdown tables docs/usb.md shows)::

    .venv-3.11/bin/python -m tests.support.ddl_coverage [--ddl DIR] [--nut-dir DIR ...]

One dump (a ``.dev`` file) counts as one device. Its driver is the ``driver.name`` NUT recorded,
under its current name when NUT renamed or merged it since (:data:`RENAMED`). A device runs

* **natively** when the bridge has a driver of that name (``nutbridge.drivers.is_native``) and, for
  a family that speaks both serial and USB (nutdrv_qx), the native driver takes USB matching
  options when the dump is of a USB device;
* **hosted** otherwise, when a NUT C driver of that name is installed where the bridge looks
  (``drivers/external/locate.py``'s directories, plus ``--nut-dir``);
* **not at all** else (the driver is not in the NUT build searched, or NUT dropped it).

usbhid-ups dumps are also grouped by the HID subdriver NUT 2.8 would choose for them today (the
bridge's registry, which follows NUT's claim rules, given the dump's vendor/product IDs and
manufacturer/model strings), next to the subdriver names the dumps recorded.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nutbridge.drivers import driver_class, is_native
from nutbridge.drivers.external.locate import SEARCH_DIRS
from nutbridge.drivers.usbhid.subdrivers import choose_subdriver
from nutbridge.simulation.usbdump import parse_dump

DEFAULT_DDL = Path(__file__).resolve().parents[3] / "shared" / "data" / "ddl"

#: driver names in old dumps -> the NUT driver that serves those devices now (NUT's NEWS and
#: UPGRADING: newhidups became usbhid-ups, the kernel-hiddev hidups was dropped for it, megatec
#: and megatec_usb (which had absorbed fentonups, mustek, powermust) became blazer_ser/blazer_usb,
#: the serial CyberPower drivers became powerpanel, newmge-shut became mge-shut; the DDL files
#: themselves file liebertgxt2 under liebert-esp2 and nutdrv_qx_cyber under nutdrv_qx)
RENAMED = {
    "newhidups": "usbhid-ups", "hidups": "usbhid-ups", "megatec": "blazer_ser", "megatec_usb": "blazer_usb",
    "fentonups": "blazer_ser", "mustek": "blazer_ser", "powermust": "blazer_ser", "cyberpower": "powerpanel",
    "cpsups": "powerpanel", "newmge-shut": "mge-shut", "liebertgxt2": "liebert-esp2",
    "nutdrv_qx_cyber": "nutdrv_qx",
}
#: families whose native driver may or may not speak USB besides serial
DUAL_TRANSPORT = ("nutdrv_qx",)
_SERIAL_PORT = re.compile(r"^(/dev/(tty|cu\.)|COM\d)", re.IGNORECASE)

NATIVE, HOSTED, NONE = "native", "hosted", "not at all"
NO_IDS = "(no USB IDs recorded)"


@dataclass(frozen=True)
class Device:
    """What the coverage needs of one dump."""

    file: str
    recorded: str            # driver.name as recorded
    driver: str              # the current NUT name
    usb: bool                # a USB device (port auto / a vendor ID given / no serial port path)
    vendor_id: int | None
    product_id: int | None
    manufacturer: str | None
    model: str | None
    productid_option: bool
    subdriver: str | None    # usbhid-ups: NUT's driver.version.data without the revision


def _hex(text: str | None) -> int | None:
    try:
        return int(text or "", 16)
    except ValueError:
        return None


def read_device(path: Path) -> Device | None:
    """One dump, or None when it names no driver."""
    values = parse_dump(path.read_bytes().decode("utf-8", "replace"), str(path)).values
    recorded = values.get("driver.name", "").strip()
    if not recorded:
        return None
    port = values.get("driver.parameter.port", "")
    vendor = values.get("ups.vendorid") or values.get("driver.parameter.vendorid")
    usb = bool(vendor) or not _SERIAL_PORT.match(port)
    data = values.get("driver.version.data", "").strip()
    return Device(
        file=path.name, recorded=recorded, driver=RENAMED.get(recorded, recorded), usb=usb,
        vendor_id=_hex(values.get("ups.vendorid")), product_id=_hex(values.get("ups.productid")),
        manufacturer=values.get("ups.mfr"), model=values.get("ups.model"),
        productid_option="driver.parameter.productid" in values,
        subdriver=re.sub(r"\s+[\d.]+( \(experimental\))?$", "", data) or None)


def scan(ddl: Path) -> list[Device]:
    out = []
    for path in sorted(ddl.glob("*/*.dev")):
        dev = read_device(path)
        if dev is not None:
            out.append(dev)
    return out


def installed_drivers(extra_dirs: Iterable[str | Path] = ()) -> tuple[set[str], list[Path]]:
    """NUT C drivers (executables) in the bridge's search directories and ``extra_dirs``."""
    names: set[str] = set()
    used: list[Path] = []
    for d in (*SEARCH_DIRS, *extra_dirs):
        path = Path(d)
        if not path.is_dir() or path.resolve() in (p.resolve() for p in used):
            continue
        used.append(path)
        names.update(f.name for f in path.iterdir() if f.is_file() and os.access(f, os.X_OK))
    return names - {"upsd", "upsmon", "upsdrvctl", "upssched"}, used


def native_usb(driver: str) -> bool:
    """Does the bridge's own ``driver`` take USB devices (its options include USB matching)?"""
    return "vendorid" in getattr(driver_class(driver, {}), "options", frozenset())


def classify(dev: Device, hosted: set[str]) -> str:
    if is_native(dev.driver) and (dev.driver not in DUAL_TRANSPORT or not dev.usb or native_usb(dev.driver)):
        return NATIVE
    if dev.driver in hosted:
        return HOSTED
    return NONE


def coverage_rows(devices: Sequence[Device], hosted: set[str]) -> list[tuple[str, Counter[str], set[str]]]:
    """Per current driver name (Markdown, "over USB" for the USB devices of a dual-transport
    family): counts by class, and the recorded names folded into it."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    names: dict[str, set[str]] = defaultdict(set)
    for dev in devices:
        key = f"`{dev.driver}`" + (" over USB" if dev.driver in DUAL_TRANSPORT and dev.usb else "")
        counts[key][classify(dev, hosted)] += 1
        if dev.recorded != dev.driver:
            names[key].add(dev.recorded)
    return sorted(((k, c, names[k]) for k, c in counts.items()), key=lambda r: (-sum(r[1].values()), r[0]))


def coverage_table(devices: Sequence[Device], hosted: set[str]) -> str:
    rows = coverage_rows(devices, hosted)
    total: Counter[str] = Counter()
    lines = ["| driver (as recorded) | dumps | native | hosted | not at all |", "|---|---:|---:|---:|---:|"]
    for name, count, old in rows:
        total.update(count)
        shown = name + (f" ({', '.join(f'`{o}`' for o in sorted(old))})" if old else "")
        lines.append(f"| {shown} | {sum(count.values())} | {count[NATIVE] or ''} | {count[HOSTED] or ''} "
                     f"| {count[NONE] or ''} |")
    n = sum(total.values())

    def share(key: str) -> str:
        return f"{total[key]} ({100 * total[key] / n:.0f} %)" if n else "0"

    lines.append(f"| **all** | **{n}** | **{share(NATIVE)}** | **{share(HOSTED)}** | **{share(NONE)}** |")
    return "\n".join(lines)


def hid_rows(devices: Sequence[Device]) -> list[tuple[str, int, set[str], set[str]]]:
    """usbhid-ups dumps per subdriver chosen today: (name, dumps, VID:PIDs, recorded names)."""
    groups: dict[str, list[Device]] = defaultdict(list)
    for dev in devices:
        if dev.driver != "usbhid-ups":
            continue
        if dev.vendor_id is None or dev.product_id is None:
            groups[NO_IDS].append(dev)
            continue
        sub = choose_subdriver(dev.vendor_id, dev.product_id, manufacturer=dev.manufacturer,
                               product=dev.model, productid_option=dev.productid_option)
        groups[sub.name].append(dev)
    out = []
    for name, devs in groups.items():
        ids = {f"{d.vendor_id:04x}:{d.product_id:04x}" for d in devs if d.vendor_id is not None
               and d.product_id is not None}
        out.append((name, len(devs), ids, {d.subdriver or "?" for d in devs}))
    return sorted(out, key=lambda r: (r[0] == NO_IDS, -r[1], r[0]))


def hid_table(devices: Sequence[Device]) -> str:
    lines = ["| subdriver today | dumps | USB IDs in the dumps | recorded as |", "|---|---:|---|---|"]
    for name, count, ids, recorded in hid_rows(devices):
        lines.append(f"| `{name}` | {count} | {', '.join(sorted(ids))} | "
                     f"{', '.join(f'`{r}`' for r in sorted(recorded))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.support.ddl_coverage",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ddl", type=Path, default=DEFAULT_DDL, help=f"the DDL checkout (default {DEFAULT_DDL})")
    ap.add_argument("--nut-dir", action="append", default=[], help="more directories with NUT's C drivers")
    args = ap.parse_args(argv)
    devices = scan(args.ddl)
    hosted, dirs = installed_drivers(args.nut_dir)
    out = sys.stdout
    out.write(f"<!-- {len(devices)} dumps in {args.ddl.name}/; hosted = NUT C drivers in "
              f"{', '.join(map(str, dirs)) or 'none found'} -->\n\n")
    out.write(coverage_table(devices, hosted) + "\n\n")
    out.write(hid_table(devices) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
