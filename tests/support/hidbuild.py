"""Build HID report descriptors for tests, from the HID 1.11 item encoding (§6.2.2).

Low-level encoders return the bytes of one item; :func:`build` turns a list of
:class:`FieldSpec` (NUT-style paths) into a whole descriptor::

    from tests.support.hidbuild import FieldSpec, build, pack_report
    from nutbridge.drivers.usbhid.descriptor import parse

    desc = parse(build([
        FieldSpec("UPS.PowerSummary.RemainingCapacity", "Feature", report_id=0x0c, size=8,
                  logical_min=0, logical_max=100),
        FieldSpec("UPS.PowerSummary.PresentStatus.ACPresent", "Input", report_id=0x16, size=1,
                  logical_max=1),
        FieldSpec("UPS.PowerSummary.PresentStatus", "Input", report_id=0x16, size=7, pad=True),
    ]))
    report = pack_report(desc, 0x0c, "Feature", {"UPS.PowerSummary.RemainingCapacity": 87})

Path components are usage names from :mod:`nutbridge.drivers.usbhid.usages` or 8 hex
digits (``ff860060``). The first component opens an Application collection, the
others Physical ones; a ``[n]`` component makes the collection before it a vendor
collection type ``0x80 | n`` (how NUT's index nodes arise). Fields are emitted in
list order; consecutive fields share collections while their paths share a prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nutbridge.drivers.usbhid import values as hidvalues
from nutbridge.drivers.usbhid.descriptor import ReportDescriptor
from nutbridge.drivers.usbhid.usages import usage_of

MAIN, GLOBAL, LOCAL = 0, 1, 2

# main item flag bits (HID 1.11 §6.2.2.5)
CONSTANT = 0x01
VARIABLE = 0x02
RELATIVE = 0x04
VOLATILE = 0x80
DATA_VAR_ABS = VARIABLE

KIND_TAGS = {"Input": 0x8, "Output": 0x9, "Feature": 0xB}
COLLECTION_PHYSICAL = 0x00
COLLECTION_APPLICATION = 0x01
COLLECTION_LOGICAL = 0x02


def _unsigned_bytes(value: int, size: int | None) -> bytes:
    if size is None:
        size = 0 if value == 0 else 1 if value <= 0xFF else 2 if value <= 0xFFFF else 4
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little") if size else b""


def _signed_bytes(value: int, size: int | None) -> bytes:
    if size is None:
        size = (0 if value == 0 else 1 if -0x80 <= value <= 0x7F else 2 if -0x8000 <= value <= 0x7FFF else 4)
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little") if size else b""


def short_item(kind: int, tag: int, data: bytes = b"") -> bytes:
    """One short item: prefix byte (tag, type, size code) + 0/1/2/4 data bytes."""
    code = {0: 0, 1: 1, 2: 2, 4: 3}[len(data)]
    return bytes([(tag << 4) | (kind << 2) | code]) + data


def long_item(tag: int, data: bytes) -> bytes:
    """A long item (0xFE, size, tag, data); parsers must skip it."""
    return bytes([0xFE, len(data), tag]) + data


def _u(kind: int, tag: int, value: int, size: int | None = None) -> bytes:
    return short_item(kind, tag, _unsigned_bytes(value, size))


def _s(kind: int, tag: int, value: int, size: int | None = None) -> bytes:
    return short_item(kind, tag, _signed_bytes(value, size))


# --- main items
def input_(flags: int = DATA_VAR_ABS, size: int | None = None) -> bytes:
    return _u(MAIN, 0x8, flags, size)


def output(flags: int = DATA_VAR_ABS, size: int | None = None) -> bytes:
    return _u(MAIN, 0x9, flags, size)


def feature(flags: int = DATA_VAR_ABS, size: int | None = None) -> bytes:
    return _u(MAIN, 0xB, flags, size)


def main_item(kind: str, flags: int = DATA_VAR_ABS) -> bytes:
    return _u(MAIN, KIND_TAGS[kind], flags)


def collection(ctype: int = COLLECTION_PHYSICAL) -> bytes:
    return _u(MAIN, 0xA, ctype, 1)


def end_collection() -> bytes:
    return short_item(MAIN, 0xC)


# --- global items
def usage_page(page: int, size: int | None = None) -> bytes:
    return _u(GLOBAL, 0x0, page, size)


def logical_min(value: int, size: int | None = None) -> bytes:
    return _s(GLOBAL, 0x1, value, size)


def logical_max(value: int, size: int | None = None) -> bytes:
    return _s(GLOBAL, 0x2, value, size)


def physical_min(value: int, size: int | None = None) -> bytes:
    return _s(GLOBAL, 0x3, value, size)


def physical_max(value: int, size: int | None = None) -> bytes:
    return _s(GLOBAL, 0x4, value, size)


def unit_exponent(exp: int, *, nibble: bool = True) -> bytes:
    """Spec form: a 4-bit two's complement nibble (-2 -> 0x0E);
    ``nibble=False``: a full signed byte (0xFE), as some firmware sends."""
    return short_item(GLOBAL, 0x5, bytes([exp & (0x0F if nibble else 0xFF)]))


def unit(value: int, size: int | None = None) -> bytes:
    return _u(GLOBAL, 0x6, value, size)


def report_size(bits: int) -> bytes:
    return _u(GLOBAL, 0x7, bits, 1 if bits <= 0xFF else None)


def report_id(rid: int) -> bytes:
    return _u(GLOBAL, 0x8, rid, 1)


def report_count(count: int) -> bytes:
    return _u(GLOBAL, 0x9, count, 1 if count <= 0xFF else None)


def push() -> bytes:
    return short_item(GLOBAL, 0xA)


def pop() -> bytes:
    return short_item(GLOBAL, 0xB)


# --- local items
def usage(u: int) -> bytes:
    """A 16-bit usage id (page from the global Usage Page), or a 32-bit extended usage when > 0xFFFF."""
    return _u(LOCAL, 0x0, u, 4 if u > 0xFFFF else None if u else 1)


def usage_min(u: int) -> bytes:
    return _u(LOCAL, 0x1, u, 4 if u > 0xFFFF else None if u else 1)


def usage_max(u: int) -> bytes:
    return _u(LOCAL, 0x2, u, 4 if u > 0xFFFF else None if u else 1)


def string_index(index: int) -> bytes:
    return _u(LOCAL, 0x7, index, 1)


def delimiter(open_: bool) -> bytes:
    return _u(LOCAL, 0xA, 1 if open_ else 0, 1)


# units (HID 1.11 §6.2.2.7): SI linear system nibble 1, exponents per nibble
UNIT_VOLT = 0x00F0D121
UNIT_AMPERE = 0x00100001
UNIT_WATT = 0xD121
UNIT_VA = 0xD121
UNIT_HERTZ = 0xF001
UNIT_SECOND = 0x1001
UNIT_KELVIN = 0x00010001
UNIT_CELSIUS = 0x00010001  # Power Device spec: temperature in K
UNIT_AMP_SECOND = 0x00101001


@dataclass(frozen=True)
class FieldSpec:
    """One field to put in a test descriptor (see the module docstring)."""

    path: str
    kind: str = "Feature"
    report_id: int = 0
    size: int = 8
    logical_min: int = 0
    logical_max: int = 255
    unit: int = 0
    unit_exponent: int = 0
    count: int = 1
    physical_min: int | None = None
    physical_max: int | None = None
    flags: int = DATA_VAR_ABS
    #: padding: ``path`` is the collection path, no usage is emitted, flags default constant
    pad: bool = False


def _component_usage(name: str) -> int:
    u = usage_of(name)
    if u is None:
        raise ValueError(f"unknown usage name {name!r}")
    return u


def _split(path: str) -> list[tuple[int, int]]:
    """Path -> [(usage, collection type)]; a following ``[n]`` sets the type 0x80|n."""
    out: list[tuple[int, int]] = []
    for part in path.split("."):
        if part.startswith("[") and part.endswith("]"):
            if not out:
                raise ValueError(f"{path}: index node without a collection")
            u, _ = out[-1]
            out[-1] = (u, 0x80 | int(part[1:-1]))
        else:
            out.append((_component_usage(part), -1))
    return out


def build(fields: list[FieldSpec], *, explicit_report_ids: bool | None = None) -> bytes:
    """A report descriptor holding ``fields`` (report ID items emitted when any ``report_id`` != 0)."""
    use_ids = any(f.report_id for f in fields) if explicit_report_ids is None else explicit_report_ids
    out = bytearray()
    page: int | None = None
    cur: dict[str, int | None] = {}
    open_stack: list[tuple[int, int]] = []

    def emit_usage(u: int) -> None:
        nonlocal page
        if (u >> 16) != page:
            page = u >> 16
            out.extend(usage_page(page))
        out.extend(usage(u & 0xFFFF))

    def glob(name: str, value: int | None, enc: bytes) -> None:
        if cur.get(name, "unset") != value:
            cur[name] = value
            out.extend(enc)

    for spec in fields:
        nodes = _split(spec.path)
        colls = nodes if spec.pad else nodes[:-1]
        wanted = [(u, (COLLECTION_APPLICATION if i == 0 else COLLECTION_PHYSICAL) if t < 0 else t)
                  for i, (u, t) in enumerate(colls)]
        common = 0
        while common < min(len(wanted), len(open_stack)) and wanted[common] == open_stack[common]:
            common += 1
        while len(open_stack) > common:
            open_stack.pop()
            out.extend(end_collection())
        for u, t in wanted[common:]:
            emit_usage(u)
            out.extend(collection(t))
            open_stack.append((u, t))
        if use_ids:
            glob("id", spec.report_id, report_id(spec.report_id))
        glob("size", spec.size, report_size(spec.size))
        glob("count", spec.count, report_count(spec.count))
        glob("lmin", spec.logical_min, logical_min(spec.logical_min))
        glob("lmax", spec.logical_max, logical_max(spec.logical_max))
        glob("pmin", spec.physical_min or 0, physical_min(spec.physical_min or 0))
        glob("pmax", spec.physical_max or 0, physical_max(spec.physical_max or 0))
        glob("unit", spec.unit, unit(spec.unit))
        glob("exp", spec.unit_exponent, unit_exponent(spec.unit_exponent))
        if not spec.pad:
            emit_usage(nodes[-1][0])
        flags = spec.flags if not spec.pad or spec.flags != DATA_VAR_ABS else CONSTANT | VARIABLE
        out.extend(_u(MAIN, KIND_TAGS[spec.kind], flags))
    for _ in open_stack:
        out.extend(end_collection())
    return bytes(out)


def pack_report(desc: ReportDescriptor, report_id: int, kind: str, values: Mapping[str, int]) -> bytes:
    """The bytes of one report (ID byte first when the descriptor uses IDs) with raw ``values`` by path.

    Fields of that report not in ``values`` are 0; an unknown path raises KeyError.
    """
    buf = bytearray(desc.report_length(kind, report_id))
    if desc.uses_report_ids:
        buf[0] = report_id
    for path, raw in values.items():
        fld = next((f for f in desc.fields
                    if f.path == path and f.kind == kind and f.report_id == report_id), None)
        if fld is None:
            raise KeyError(f"{path} is not a {kind} field of report {report_id:#04x}")
        hidvalues.insert(fld, buf, raw)
    return bytes(buf)
