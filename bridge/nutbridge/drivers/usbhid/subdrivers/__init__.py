"""The HID subdrivers and the choice among them (NUT's ``subdriver_list`` and claim rules).

The vendor modules import ``usbhid/table.py`` for the table vocabulary; this module imports them, so
neither the table vocabulary nor the mapper needs to know which vendors exist (and nothing
imports back up: table <- vendor modules <- this registry).

The choice follows NUT's usbhid-ups: the subdrivers are asked in NUT's order and the first
that claims the device wins (:meth:`~..table.Subdriver.claims`: its listed VID:PIDs; another
product of a listed vendor only with ups.conf's ``productid``; a few vendors look at the USB
strings too, e.g. Phoenixtec's shared 06da:ffff). ``subdriver =`` in ups.conf overrides the
choice. A device nobody claims gets the generic Power Device Class table, which NUT lacks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..table import Subdriver
from . import (
    apc,
    arduino,
    belkin,
    cps,
    delta,
    ecoflow,
    ever,
    generic,
    idowell,
    legrand,
    liebert,
    mge,
    openups,
    powercom,
    powervar,
    salicru,
    tripplite,
)

__all__ = ["choose_subdriver", "known_ids", "subdrivers", "usb_ids"]


def subdrivers() -> list[Subdriver]:
    """All subdrivers in NUT's matching order (usbhid-ups.c ``subdriver_list``: mge, apc,
    arduino, belkin, cps, delta_ups, ecoflow, ever, idowell, legrand, liebert, openups,
    powercom, powervar, salicru, tripplite), the generic fallback last."""
    return [mge.SUBDRIVER, apc.SUBDRIVER, arduino.SUBDRIVER, belkin.SUBDRIVER, cps.SUBDRIVER,
            delta.SUBDRIVER, ecoflow.SUBDRIVER, ever.SUBDRIVER, idowell.SUBDRIVER, legrand.SUBDRIVER,
            liebert.SUBDRIVER, openups.SUBDRIVER, powercom.SUBDRIVER, powervar.SUBDRIVER,
            salicru.SUBDRIVER, tripplite.SUBDRIVER, generic.SUBDRIVER]


def _short(name: str) -> str:
    return name.split()[0].lower()


def _named(want: str, sub: Subdriver) -> bool:
    """ups.conf ``subdriver`` names ``sub``: NUT's rules (the exact name with its revision,
    else a case-insensitive regular expression matching the whole name, else the same with
    ``.*`` appended: "tripplite", "belkin/liebert", "phoenixtec") plus the first word of the
    name as a short form ("apc", "cyberpower", "delta")."""
    texts = (sub.version_data, sub.name)
    if want in texts or want.lower() in (sub.name.lower(), _short(sub.name)):
        return True
    try:
        patterns = [re.compile(want, re.IGNORECASE), re.compile(want + ".*", re.IGNORECASE)]
    except re.error:
        return False
    return any(p.fullmatch(t) for p in patterns for t in texts)


def choose_subdriver(vendor_id: int, product_id: int, forced: str | None = None, *,
                     manufacturer: str | None = None, product: str | None = None,
                     productid_option: bool = False) -> Subdriver:
    """The subdriver for a device: ``forced`` (ups.conf ``subdriver``, see :func:`_named`),
    else the first in NUT's order that claims it (``manufacturer``/``product``: its USB
    strings; ``productid_option``: ups.conf sets ``productid``), else the generic Power
    Device Class fallback. Raises ``KeyError`` for an unknown forced name."""
    subs = subdrivers()
    if forced:
        want = forced.strip()
        for sub in subs:
            if _named(want, sub):
                return sub
        raise KeyError(f"unknown subdriver '{forced}' (known: {', '.join(s.name for s in subs)})")
    for sub in subs:
        if sub.claims(vendor_id, product_id, manufacturer=manufacturer, product=product,
                      productid_option=productid_option):
            return sub
    return subs[-1]


def known_ids() -> list[tuple[int, int, str]]:
    """(vendor, product, subdriver name) of every explicitly supported device (for udev rules)."""
    out: list[tuple[int, int, str]] = []
    for sub in subdrivers():
        for vid, pid in sub.ids:
            if pid is not None:
                out.append((vid, pid, sub.name))
    return out


def usb_ids() -> Iterator[tuple[int, int | None, str]]:
    """(vendor, product or None for the whole vendor, label) of every device a subdriver
    claims: usbhid-ups' contribution to the udev rules. IDs several subdrivers list (NUT
    tells those apart by the USB strings, e.g. Phoenixtec's 06da:ffff) come last, once."""
    owners: dict[tuple[int, int | None], list[str]] = {}
    for sub in subdrivers():
        for ids in sub.ids:
            owners.setdefault(ids, []).append(sub.name)
    for (vid, pid), names in owners.items():
        if len(names) == 1:
            yield vid, pid, f"usbhid-ups: {names[0]}"
    for (vid, pid), names in owners.items():
        if len(names) > 1:
            yield vid, pid, f"usbhid-ups: {', '.join(names)} (by the USB strings)"
