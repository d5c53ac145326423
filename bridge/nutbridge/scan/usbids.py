"""Which driver takes a USB device, by its vendor/product id and strings (sans-IO).

Three sources, in this order: the bridge's usbhid-ups subdrivers (their id tables and NUT's
claim rules, the same :meth:`~nutbridge.drivers.usbhid.table.Subdriver.claims` the driver
uses), its Megatec-over-USB tables (nutdrv_qx, then blazer_usb as the alternative), and the
udev rules NUT installs (``62-nut-usbups.rules``), whose comment before each id names the
C driver(s) for it (``#  T500  - bcmxcp_usb``; 2.8.5 lists several, ``- blazer_usb nutdrv_qx``):
drivers the bridge hosts rather than implements.
A device in none of them is not a UPS as far as NUT knows, and is not proposed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..drivers.qx.usb import BLAZER_USB_IDS, NUTDRV_QX_IDS, choose
from ..drivers.usbhid.subdrivers import subdrivers

#: where distributions install NUT's udev rules (the first readable one is used)
UDEV_RULES = (Path("/etc/udev/rules.d/62-nut-usbups.rules"),
              Path("/lib/udev/rules.d/62-nut-usbups.rules"),
              Path("/usr/lib/udev/rules.d/62-nut-usbups.rules"))

#: drivers that do not take vendorid/productid/product/serial (nut-scanner comments them out)
NO_MATCH_OPTIONS = frozenset({"bcmxcp_usb", "nutdrv_atcl_usb"})

_ATTR = re.compile(r'ATTR\{idVendor\}=="([0-9A-Fa-f]{4})"(?:,\s*ATTR\{idProduct\}=="([0-9A-Fa-f]{4})")?')
#: "#  <model>  - <driver> [<driver>...]" (2.8.5 lists every driver, 2.8.0 one)
_COMMENT = re.compile(r"^#\s+(.*?)\s+-\s+([A-Za-z0-9_-]+(?:\s+[A-Za-z0-9_-]+)*)\s*$")


@dataclass(frozen=True)
class RuleId:
    """One id of NUT's udev rules: vendor, product (None: the whole vendor), the drivers the
    comment names (in its order), model."""

    vendor_id: int
    product_id: int | None
    drivers: tuple[str, ...]
    model: str


def parse_udev_rules(text: str) -> list[RuleId]:
    """The ids of a ``62-nut-usbups.rules`` text with the driver its preceding comment names.
    Lines that are neither are skipped (bad input never raises)."""
    out: list[RuleId] = []
    drivers: tuple[str, ...] = ()
    model = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            # a model comment names the drivers; any other comment (a vendor's name) ends them
            m = _COMMENT.match(line)
            model, drivers = (m.group(1), tuple(m.group(2).split())) if m else ("", ())
            continue
        a = _ATTR.search(line)
        if a and drivers:
            pid = int(a.group(2), 16) if a.group(2) else None
            out.append(RuleId(int(a.group(1), 16), pid, drivers, model))
    return out


def load_udev_rules(paths: tuple[Path, ...] = UDEV_RULES) -> list[RuleId]:
    """NUT's udev rules from the first readable file of ``paths`` (empty if none)."""
    for path in paths:
        try:
            return parse_udev_rules(path.read_text(errors="replace"))
        except OSError:
            continue
    return []


@dataclass(frozen=True)
class Match:
    """The drivers for a device, best first, and what told us (subdriver, table row, model)."""

    drivers: tuple[str, ...]
    why: str


def match(vendor_id: int, product_id: int, manufacturer: str | None = None,
          product: str | None = None, rules: list[RuleId] | None = None) -> Match | None:
    """The drivers that take this device (the bridge's own first), or None if none does."""
    drivers: list[str] = []
    why: list[str] = []

    def add(driver: str, reason: str) -> None:
        if driver not in drivers:
            drivers.append(driver)
            why.append(reason)

    for sub in subdrivers():
        if not sub.accepts_unknown and sub.claims(vendor_id, product_id, manufacturer=manufacturer,
                                                  product=product):
            add("usbhid-ups", f"usbhid-ups subdriver {sub.name}")
            break
    for name, table in (("nutdrv_qx", NUTDRV_QX_IDS), ("blazer_usb", BLAZER_USB_IDS)):
        row = choose(table, vendor_id, product_id, manufacturer, product)
        if row is not None and row.subdriver is not None:
            add(name, f"{name} subdriver {row.subdriver} ({row.what})")
    for rule in rules or ():
        if rule.vendor_id == vendor_id and rule.product_id in (None, product_id):
            for driver in rule.drivers:
                add(driver, f"NUT udev rules: {rule.model} - {driver}")
    if not drivers:
        return None
    return Match(tuple(drivers), "; ".join(why))


def known_vendors(rules: list[RuleId]) -> set[int]:
    """Every vendor id some driver lists (the USB scan does not even open other devices)."""
    out = {vid for sub in subdrivers() for vid, _ in sub.ids}
    out |= {row.vendor_id for row in (*NUTDRV_QX_IDS, *BLAZER_USB_IDS)}
    return out | {rule.vendor_id for rule in rules}
