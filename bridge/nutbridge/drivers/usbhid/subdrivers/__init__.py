"""The HID subdrivers and the choice among them (NUT's ``subdriver_list``).

The vendor modules import ``usbhid/table.py`` for the table vocabulary; this module imports them, so
neither the table vocabulary nor the mapper needs to know which vendors exist (and nothing
imports back up: table <- vendor modules <- this registry).
"""

from __future__ import annotations

from ..table import Subdriver
from . import apc, belkin, cps, generic, mge, tripplite

__all__ = ["choose_subdriver", "known_ids", "subdrivers"]


def subdrivers() -> list[Subdriver]:
    """All subdrivers in NUT's matching order (mge before apc ...), generic fallback last."""
    return [mge.SUBDRIVER, apc.SUBDRIVER, belkin.SUBDRIVER, cps.SUBDRIVER, tripplite.SUBDRIVER,
            generic.SUBDRIVER]


def _short(name: str) -> str:
    return name.split()[0].lower()


def choose_subdriver(vendor_id: int, product_id: int, forced: str | None = None) -> Subdriver:
    """The subdriver for a device: ``forced`` (ups.conf ``subdriver``, matched
    case-insensitively against the name, e.g. "APC HID", or its first word: "apc",
    "cyberpower", "mge", "tripplite", "generic") else the first whose VID/PID table
    matches, else the generic Power Device Class fallback. Raises ``KeyError`` for
    an unknown forced name."""
    subs = subdrivers()
    if forced:
        want = forced.strip().lower()
        for sub in subs:
            if want in (sub.name.lower(), _short(sub.name), sub.version_data.lower()):
                return sub
        raise KeyError(f"unknown subdriver '{forced}' (known: {', '.join(s.name for s in subs)})")
    for sub in subs:
        if sub.matches(vendor_id, product_id):
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
