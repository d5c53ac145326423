"""NUT DDL dumps of usbhid-ups devices: load them, and replay them as a fake USB UPS.

A DDL ``.dev`` file holds the ``upsc`` output of a real device (``name: value``
lines, read with NUT's config-file rules, as dummy-ups does) and, in ``#``
comment blocks, some of the driver's debug log. From that log we take:

* the report descriptor, either as usbhid-ups prints it
  (``[D3] Report Descriptor: (743 bytes) => 05 84 ...`` with continuation lines)
  or as ``lsusb -v`` decodes it (``Item(Global): Report ID, data= [ 0x01 ] 1``),
  which is encoded back into bytes (HID 1.11 §6.2.2.2 short items);
* report bytes: ``Report[get]`` (a GET_REPORT answer; ``Report[err]`` is a short
  answer) and ``Report[buf]`` (the driver's buffer, zero padded);
* ``Path: <path>, Type: <kind>, ReportID: 0x.., Offset: n, Size: n, Value: v`` lines;
* the USB identity (``- VendorID: 051d``, ``- Manufacturer: ...``, lsusb's
  ``idVendor`` / ``iManufacturer 1 ...`` lines).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..protocol.tokenizer import split_line
from .fakeusb import FakeHidDevice


class DumpError(ValueError):
    """The dump is malformed (message is ``file:line: what``)."""


@dataclass(frozen=True, slots=True)
class PathLine:
    """One ``Path:`` line of the driver log (what NUT decoded from the report bytes)."""

    path: str
    kind: str  # "Input" | "Output" | "Feature"
    report_id: int
    offset: int
    size: int
    value: float
    text: str  # the value as printed
    line: int  # 1-based line number in the dump
    report: bytes | None  # the report bytes logged just before this line (NUT's buffer)


@dataclass
class Dump:
    path: str
    values: dict[str, str] = field(default_factory=dict)
    descriptor: bytes | None = None
    #: "debug" (usbhid-ups hex dump) or "lsusb" (decoded items re-encoded), None without one
    descriptor_source: str | None = None
    #: (kind, report id) -> the buffer NUT decoded the first Path line of that kind from
    #: (zero padded to the expected length after a short read, as NUT pads)
    reports: dict[tuple[str, int], bytes] = field(default_factory=dict)
    #: report id -> the device's first GET_REPORT(Feature) answer, as sent (may be short)
    answers: dict[int, bytes] = field(default_factory=dict)
    paths: list[PathLine] = field(default_factory=list)
    #: the driver's ``HIDParse: ...`` descriptor warnings (e.g. LogMax < LogMin)
    warnings: list[str] = field(default_factory=list)
    vendor_id: int | None = None
    product_id: int | None = None
    manufacturer: str | None = None
    product: str | None = None
    serial: str | None = None
    bus: int | None = None
    address: int | None = None
    release: int | None = None
    #: USB string descriptor indices of the device descriptor (from lsusb), if known
    string_indices: dict[str, int] = field(default_factory=dict)


# ---- regular expressions for the log lines -----------------------------------------

_LOG = r"^#\s+(?:[\d.]+\s+)?(?:\[D\d\]\s+)?"
_HEX_HEAD = re.compile(_LOG + r"(Report Descriptor|Report\[(get|buf|err)\]): \((\d+) bytes\) =>(.*)$")
_HEX_CONT = re.compile(_LOG + r"((?:[0-9a-fA-F]{2}\s*)+)$")
_EXPECTED = re.compile(r"expected (\d+) bytes, but got (\d+) instead")
_PATH = re.compile(_LOG + r"Path: (\S+), Type: (\w+), ReportID: 0x([0-9a-fA-F]+), "
                   r"Offset: (\d+), Size: (\d+), Value: (\S+)\s*$")
_HIDPARSE = re.compile(_LOG + r"HIDParse: (.*?)\s*$")
_IDENT = re.compile(_LOG + r"- (VendorID|ProductID|Manufacturer|Product|Serial Number|Bus|Device|"
                    r"Device release number): ?(.*)$")
_LSUSB_ITEM = re.compile(r"^#\s+Item\((Main|Global|Local) *\): ([A-Za-z ]+?), data=\s*(none|\[([^\]]*)\])")
_LSUSB_BUS = re.compile(r"^#\s*Bus (\d+) Device (\d+): ID ([0-9a-fA-F]{4}):([0-9a-fA-F]{4})")
_LSUSB_FIELD = re.compile(r"^#\s+(idVendor|idProduct|bcdDevice|iManufacturer|iProduct|iSerial)"
                          r"\s+(\S+) ?(.*)$")

# HID 1.11 §6.2.2.4-6.2.2.8 item tags by lsusb's item names
_TAGS: dict[str, dict[str, int]] = {
    "Main": {"Input": 0x8, "Output": 0x9, "Feature": 0xB, "Collection": 0xA, "End Collection": 0xC},
    "Global": {"Usage Page": 0x0, "Logical Minimum": 0x1, "Logical Maximum": 0x2, "Physical Minimum": 0x3,
               "Physical Maximum": 0x4, "Unit Exponent": 0x5, "Unit": 0x6, "Report Size": 0x7,
               "Report ID": 0x8, "Report Count": 0x9, "Push": 0xA, "Pop": 0xB},
    "Local": {"Usage": 0x0, "Usage Minimum": 0x1, "Usage Maximum": 0x2, "Designator Index": 0x3,
              "Designator Minimum": 0x4, "Designator Maximum": 0x5, "String Index": 0x7,
              "String Minimum": 0x8, "String Maximum": 0x9, "Delimiter": 0xA},
}
_TYPES = {"Main": 0, "Global": 1, "Local": 2}
_SIZE_CODES = {0: 0, 1: 1, 2: 2, 4: 3}


def encode_lsusb_item(kind: str, name: str, data: bytes) -> bytes:
    """One short item from lsusb's decoded form (``Item(Global): Report ID, data= [ 0x01 ]``)."""
    tag = _TAGS[kind][name]  # KeyError: unknown item name
    code = _SIZE_CODES[len(data)]  # KeyError: impossible size
    return bytes([(tag << 4) | (_TYPES[kind] << 2) | code]) + data


def _unknown(text: str | None) -> str | None:
    return None if text is None or text == "unknown" else text


def load_dump(path: str | Path) -> Dump:
    """Parse a DDL ``.dev`` file; :class:`DumpError` (``file:line: ...``) when malformed."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise DumpError(f"{p}: {exc.strerror or exc}") from exc
    return parse_dump(text, str(p))


def parse_dump(text: str, name: str = "<dump>") -> Dump:
    dump = Dump(path=name)
    lines = text.splitlines()

    def fail(lineno: int, what: str) -> DumpError:
        return DumpError(f"{name}:{lineno}: {what}")

    hex_target: tuple[str, int, int, list[int]] | None = None  # (what, total, first line, bytes)
    last_report: tuple[str, bytes, int] | None = None  # (get|buf|err, bytes, line)
    expected: int | None = None
    lsusb: list[bytes] = []
    lsusb_line = 0
    ident: dict[str, str] = {}
    ident_done = False

    def finish_hex(lineno: int) -> None:
        nonlocal hex_target, last_report, expected
        assert hex_target is not None
        what, total, first, got = hex_target
        hex_target = None
        if len(got) != total:
            raise fail(first, f"{what}: {total} bytes announced, {len(got)} found")
        data = bytes(got)
        if what == "Report Descriptor":
            if dump.descriptor is None:
                dump.descriptor, dump.descriptor_source = data, "debug"
            return
        kind = what[7:10]
        if kind == "err" and expected is not None and len(data) < expected:
            padded = data + bytes(expected - len(data))
        else:
            padded = data
        if kind in ("get", "err") and data and data[0] not in dump.answers and expected_ok(data):
            dump.answers[data[0]] = data
        last_report = (kind, padded, first)
        expected = None

    def expected_ok(data: bytes) -> bool:
        # a 512-byte "err" is an interrupt read of garbage, not a GET_REPORT answer
        return len(data) <= 64 or expected is None or len(data) <= expected

    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if hex_target is not None:
            m = _HEX_CONT.match(line)
            if m and len(hex_target[3]) < hex_target[1]:
                hex_target[3].extend(int(b, 16) for b in m.group(1).split())
                if len(hex_target[3]) >= hex_target[1]:
                    finish_hex(lineno)
                continue
            finish_hex(lineno)
        if not line.startswith("#"):
            _value_line(dump, line)
            continue
        m = _HEX_HEAD.match(line)
        if m:
            total = int(m.group(3))
            try:
                first = [int(b, 16) for b in m.group(4).split()]
            except ValueError as exc:
                raise fail(lineno, f"bad hex: {m.group(4).strip()!r}") from exc
            hex_target = (m.group(1), total, lineno, first)
            if len(first) >= total:
                finish_hex(lineno)
            continue
        m = _EXPECTED.search(line)
        if m:
            expected = int(m.group(1))
            continue
        m = _PATH.match(line)
        if m:
            try:
                value = float(m.group(6))
            except ValueError as exc:
                raise fail(lineno, f"bad value {m.group(6)!r}") from exc
            kind, rid = m.group(2), int(m.group(3), 16)
            report = last_report[1] if last_report is not None else None
            pl = PathLine(m.group(1), kind, rid, int(m.group(4)), int(m.group(5)), value, m.group(6),
                          lineno, report)
            dump.paths.append(pl)
            if report is not None and (kind, rid) not in dump.reports and (not report or report[0] == rid
                                                                           or rid == 0):
                dump.reports[(kind, rid)] = report
            continue
        m = _HIDPARSE.match(line)
        if m:
            dump.warnings.append(m.group(1))
            continue
        m = _IDENT.match(line)
        if m and not ident_done:
            if m.group(1) == "VendorID":
                ident = {}  # a new "Checking device" block
            ident[m.group(1)] = m.group(2).rstrip("\n")
            continue
        if "Device matches" in line and ident:
            ident_done = True
            continue
        m = _LSUSB_ITEM.match(line)
        if m:
            kind, item, body = m.group(1), m.group(2).strip(), m.group(4)
            try:
                data = bytes(int(b, 16) for b in body.split()) if body is not None else b""
                lsusb.append(encode_lsusb_item(kind, item, data))
            except (KeyError, ValueError) as exc:
                raise fail(lineno, f"cannot encode lsusb item {item!r} with data {body!r}") from exc
            lsusb_line = lsusb_line or lineno
            continue
        m = _LSUSB_BUS.match(line)
        if m:
            dump.bus, dump.address = int(m.group(1)), int(m.group(2))
            dump.vendor_id = dump.vendor_id if dump.vendor_id is not None else int(m.group(3), 16)
            dump.product_id = dump.product_id if dump.product_id is not None else int(m.group(4), 16)
            continue
        m = _LSUSB_FIELD.match(line)
        if m:
            _lsusb_field(dump, m.group(1), m.group(2), m.group(3))
            continue
    if hex_target is not None:
        finish_hex(len(lines))
    if dump.descriptor is None and lsusb:
        dump.descriptor, dump.descriptor_source = b"".join(lsusb), "lsusb"
    _apply_ident(dump, ident)
    return dump


def _value_line(dump: Dump, line: str) -> None:
    # upsc output read with NUT's config-file rules (quotes, '#' comments), like dummy-ups
    try:
        words = split_line(line)
    except ValueError:
        return  # dummy-ups drops unparsable lines too
    if not words:
        return
    name = words[0][:-1] if words[0].endswith(":") else words[0]
    if name and not name.startswith("#"):
        dump.values[name] = " ".join(words[1:])


def _lsusb_field(dump: Dump, key: str, first: str, rest: str) -> None:
    try:
        if key in ("idVendor", "idProduct"):
            setattr(dump, "vendor_id" if key == "idVendor" else "product_id", int(first, 16))
        elif key == "bcdDevice":
            major, _, minor = first.partition(".")
            dump.release = int(major, 16) << 8 | int(minor or "0", 16)
        else:
            index = int(first)
            dump.string_indices[key] = index
            if index:
                attr = {"iManufacturer": "manufacturer", "iProduct": "product", "iSerial": "serial"}[key]
                if getattr(dump, attr) is None:
                    setattr(dump, attr, rest)
    except ValueError:
        pass  # an odd lsusb line is no reason to reject the dump


def _apply_ident(dump: Dump, ident: dict[str, str]) -> None:
    def hexnum(key: str) -> int | None:
        try:
            return int(ident[key], 16)
        except (KeyError, ValueError):
            return None

    dump.vendor_id = hexnum("VendorID") if hexnum("VendorID") is not None else dump.vendor_id
    dump.product_id = hexnum("ProductID") if hexnum("ProductID") is not None else dump.product_id
    if "Device release number" in ident and hexnum("Device release number") is not None:
        dump.release = hexnum("Device release number")
    for key, attr in (("Manufacturer", "manufacturer"), ("Product", "product"), ("Serial Number", "serial")):
        if key in ident:
            setattr(dump, attr, _unknown(ident[key]))
    try:
        dump.bus = int(ident["Bus"])
    except (KeyError, ValueError):
        pass
    try:
        dump.address = int(ident["Device"])
    except (KeyError, ValueError):
        pass
    # fall back on the upsc values for the IDs
    for attr, var in (("vendor_id", "ups.vendorid"), ("product_id", "ups.productid")):
        if getattr(dump, attr) is None:
            try:
                setattr(dump, attr, int(dump.values.get(var, ""), 16))
            except ValueError:
                pass


# string usages of the Power Device / Battery System pages -> what NUT publishes from them
_STRING_VARS = {
    "iManufacturer": "manufacturer", "iProduct": "product", "iSerialNumber": "serial",
    "iDeviceChemistry": "battery.type",
}


def fake_device_from_dump(dump: Dump, *, bus: int | None = None, address: int | None = None) -> FakeHidDevice:
    """A :class:`FakeHidDevice` that answers as the dumped UPS did: its descriptor, its
    GET_REPORT answers (Input GETs too, for reports with Input fields), its strings
    at the indices the descriptor's string usages (``iProduct`` = 2 ...) or lsusb give."""
    if dump.descriptor is None:
        raise DumpError(f"{dump.path}: the dump has no report descriptor")
    if dump.vendor_id is None or dump.product_id is None:
        raise DumpError(f"{dump.path}: the dump has no USB vendor/product ID")
    strings: dict[int, str] = {}
    texts = {"manufacturer": dump.manufacturer, "product": dump.product, "serial": dump.serial}
    for pl in dump.paths:
        leaf = pl.path.rsplit(".", 1)[-1]
        what = _STRING_VARS.get(leaf)
        if what is None or not math.isfinite(pl.value) or not 0 < pl.value <= 255:
            continue
        index = int(pl.value)
        if index in strings:
            continue
        text = texts.get(what) if what in texts else dump.values.get(what)
        if text:
            strings[index] = text
    indices = []
    for key, usage, default in (("iManufacturer", "iManufacturer", 1), ("iProduct", "iProduct", 2),
                                ("iSerial", "iSerialNumber", 3)):
        idx = dump.string_indices.get(key)
        if idx is None:
            idx = next((int(pl.value) for pl in dump.paths if pl.path.endswith("." + usage)
                        and 0 < pl.value <= 255), default)
        indices.append(idx)
    input_ids = {pl.report_id for pl in dump.paths if pl.kind == "Input"}
    return FakeHidDevice(
        dump.descriptor,
        vendor_id=dump.vendor_id,
        product_id=dump.product_id,
        manufacturer=dump.manufacturer,
        product=dump.product,
        serial=dump.serial,
        strings=strings,
        string_indices=(indices[0], indices[1], indices[2]),
        bus=bus if bus is not None else (dump.bus or 1),
        address=address if address is not None else (dump.address or 2),
        features=dict(dump.answers),
        inputs={rid: data for rid, data in dump.answers.items() if rid in input_ids},
        release=dump.release if dump.release is not None else 0x0100,
    )
