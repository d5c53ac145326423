"""What a scan found, and how nut-scanner prints it (sans-IO).

NUT 2.8.x's nut-scanner names the sections ``[nutdev-<bus>N]`` with one counter across all
buses (so names stay unique when several buses are scanned), writes ``key = "value"`` lines
indented by a tab, comments options it only reports (``# device = "003"``, or
``###TAG### name = "value"``), adds ``# alternately: <driver>`` after the driver line when
another driver could serve the device, and (its default ``-Q`` display) ends with
``# WARNING:`` comment lines about suspicious ``serial`` values: missing, empty, trailing
blanks, one repeated character, the same serial in several sections (each ends its line
here; nut-scanner leaves the trailing-blank one unterminated, which would glue the next
warning to it in a file). ``-P`` prints one line
per device, ``BUS:driver="...",port="...",opt="..."`` without the commented options.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: bus name in section names -> nut-scanner's upper-case type name (parsable output)
BUS_TYPES = {"usb": "USB", "snmp": "SNMP", "xml": "XML", "nut": "NUT", "serial": "serial",
             "avahi": "Avahi", "simulation": "NUT_SIMULATION"}


@dataclass(frozen=True)
class Option:
    """One option line: active (``comment`` None), commented (``""``) or tagged (``###TAG###``)."""

    name: str
    value: str | None
    comment: str | None = None


@dataclass(frozen=True)
class Found:
    """One device the scan found: a ups.conf section without its name."""

    bus: str
    driver: str
    port: str
    options: tuple[Option, ...] = ()
    alternates: tuple[str, ...] = ()
    #: what the scan learnt that is not a ups.conf option (JSON only), e.g. a matched model
    info: dict[str, str] = field(default_factory=dict)

    def option(self, name: str) -> str | None:
        for opt in self.options:
            if opt.name == name and opt.comment is None:
                return opt.value
        return None


def quote(value: str) -> str:
    """A ups.conf value in double quotes (NUT's parseconf escapes: backslash, quote, hash)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#")
    return f'"{escaped}"'


def section_names(found: Sequence[Found], start: int = 1) -> list[str]:
    """``nutdev-<bus>N`` for each device, one counter across buses (nut-scanner's naming)."""
    return [f"nutdev-{dev.bus}{start + i}" for i, dev in enumerate(found)]


def _option_line(opt: Option) -> str:
    prefix = "" if opt.comment is None else ("# " if opt.comment == "" else f"###{opt.comment}### ")
    text = opt.name if opt.value is None else f"{opt.name} = {quote(opt.value)}"
    return f"\t{prefix}{text}\n"


def ups_conf(found: Sequence[Found], *, sanity: bool = True) -> str:
    """The ups.conf text nut-scanner prints for ``found`` (``-Q`` when ``sanity``, else ``-N``)."""
    out: list[str] = []
    names = section_names(found)
    for name, dev in zip(names, found, strict=True):
        alt = f"\t# alternately: {', '.join(dev.alternates)}" if dev.alternates else ""
        out.append(f"[{name}]\n\tdriver = {quote(dev.driver)}{alt}\n\tport = {quote(dev.port)}\n")
        out.extend(_option_line(opt) for opt in dev.options)
    if sanity:
        out.extend(serial_warnings(names, found))
    return "".join(out)


def serial_warnings(names: Sequence[str], found: Sequence[Found]) -> list[str]:
    """nut-scanner's ``-Q`` comments about the ``serial`` options (sections with one only)."""
    by_serial: dict[str, list[str]] = {}
    for name, dev in zip(names, found, strict=True):
        for opt in dev.options:
            if opt.name == "serial":
                key = "<null>" if opt.value is None else (opt.value or "<empty>")
                by_serial.setdefault(key, []).append(name)
    out: list[str] = []
    for serial, where in by_serial.items():
        devs = ",".join(where)
        if serial in ("<null>", "<empty>"):
            out.append(f'\n# WARNING: {serial} "serial" reported in some devices: {devs}\n')
            continue
        if serial[-1] in " \t":
            out.append(f'\n# WARNING: trailing blank space in "serial" value "{serial}" '
                       f"reported in device configuration(s): {devs}\n")
        if len(set(serial)) == 1:
            out.append(f'\n# WARNING: all-same character "serial" with {len(serial)} copies of '
                       f"'{serial[0]}' (0x{ord(serial[0]):02X}) reported in some devices: {devs}\n")
        if len(where) > 1:
            out.append(f'\n# WARNING: same "serial" value "{serial}" reported in several device '
                       "configurations (maybe okay if multiple drivers for same device, likely a "
                       f"vendor bug if reported by same driver for many devices): {devs}\n")
    return out


def parsable(found: Iterable[Found]) -> str:
    """nut-scanner's ``-P`` lines: ``USB:driver="usbhid-ups",port="auto",vendorid="051D",...``."""
    lines = []
    for dev in found:
        parts = [f'{BUS_TYPES.get(dev.bus, dev.bus)}:driver="{dev.driver}"', f'port="{dev.port}"']
        parts += [opt.name if opt.value is None else f'{opt.name}="{opt.value}"'
                  for opt in dev.options if opt.comment is None]
        lines.append(",".join(parts) + "\n")
    return "".join(lines)


def as_json(found: Sequence[Found]) -> str:
    """The scan as JSON: a list of sections (name, bus, driver, port, active and commented
    options, alternative drivers, extra facts), for programs such as the HA app's options."""
    items = []
    for name, dev in zip(section_names(found), found, strict=True):
        items.append({
            "name": name,
            "bus": dev.bus,
            "driver": dev.driver,
            "port": dev.port,
            "options": {o.name: o.value for o in dev.options if o.comment is None},
            "commented": {o.name: o.value for o in dev.options if o.comment is not None},
            "alternates": list(dev.alternates),
            "info": dict(dev.info),
        })
    return json.dumps({"devices": items}, indent=2, ensure_ascii=False) + "\n"
