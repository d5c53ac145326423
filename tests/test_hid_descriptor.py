"""HID report descriptor parser, value conversions and usage names (drivers/hid/).

The reference is NUT's own output: the APC BK650M2-CH DDL dump carries the raw
report descriptor, the raw report bytes NUT read, and NUT's decoded ``Path:`` /
``Value:`` lines, so the parser and the conversions are checked against what
usbhid-ups printed for a real device. Hand-built descriptors (tests/support/hidbuild)
cover what that device does not use; hypothesis checks hostile input only ever
raises HIDParseError.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nutbridge.drivers.usbhid import descriptor as hd
from nutbridge.drivers.usbhid import usages, values
from nutbridge.drivers.usbhid.descriptor import Field, HIDParseError, parse
from tests.support import hidbuild as hb
from tests.support import realnut
from tests.support.hidbuild import FieldSpec, build, pack_report

DDL = realnut.DDL_DIR
BK650 = DDL / "APC" / "APC__Back-UPS_BK650M2-CH__usbhid-ups__2.8.0__01.dev"

_BASE = settings(deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fuzz(examples: int) -> settings:
    return settings(_BASE, max_examples=examples)


# --- the BK650M2-CH dump ------------------------------------------------------

_PATH = re.compile(r"\[D1\] Path: (\S+), Type: (\w+), ReportID: 0x(\w\w), Offset: (\d+), Size: (\d+)"
                   r"(?:, Value: (\S+))?")
_REPORT = re.compile(r"Report\[(?:get|buf|err)\]: \(\d+ bytes\) => (.*)")
_CONT = re.compile(r"#\s+[\d.]+\t\[D3\]  (.*)")


def _bk650() -> tuple[bytes, list[tuple[str, str, int, int, int, str, bytes]], list[str]]:
    """(descriptor, [(path, kind, id, offset, size, value, report bytes)], HIDParse warnings)."""
    realnut.require_path(BK650, "NUT DDL corpus (BK650M2-CH dump)")
    lines = BK650.read_text().splitlines()
    desc_hex: list[str] = []
    objects = []
    warnings = []
    report = b""
    i = 0
    while i < len(lines):
        line = lines[i]
        if "Report Descriptor: (" in line:
            desc_hex.append(line.split("=> ", 1)[1])
            while (m := _CONT.match(lines[i + 1])):
                desc_hex.append(m.group(1))
                i += 1
        elif "HIDParse: " in line:
            warnings.append(line.split("HIDParse: ", 1)[1])
        elif (m := _REPORT.search(line)):
            parts = [m.group(1)]
            while (c := _CONT.match(lines[i + 1])):
                parts.append(c.group(1))
                i += 1
            report = bytes.fromhex(" ".join(parts))
        elif (m := _PATH.search(line)) and "[D1]" in line:
            path, kind, rid, off, size, value = m.groups()
            objects.append((path, kind, int(rid, 16), int(off), int(size), value, report))
        i += 1
    return bytes.fromhex(" ".join(desc_hex)), objects, warnings


def test_bk650_fields_equal_nut_paths_in_order() -> None:
    data, objects, _ = _bk650()
    assert len(data) == 743
    # the dump was taken with "-x explore": standard names only, vendor usages in hex
    desc = parse(data, names=usages.names_for("explore"))
    assert len(desc.fields) == 71 == len(objects)  # NUT: "71 HID objects found"
    assert [(f.path, f.kind, f.report_id, f.offset, f.size) for f in desc.fields] == \
        [o[:5] for o in objects]
    assert desc.uses_report_ids


def test_bk650_values_equal_nut_values() -> None:
    data, objects, _ = _bk650()
    desc = parse(data, names=usages.names_for("explore"))
    for path, kind, _rid, _off, _size, value, report in objects:
        fld = desc.find(path, kind)
        assert fld is not None, path
        raw = values.extract(fld, report)
        assert raw is not None, path
        # NUT prints the physical value with %g
        assert f"{values.to_physical(fld, raw):g}" == value, (path, report.hex(" "))
    volts = desc.find("UPS.Battery.Voltage")
    assert volts is not None and (volts.unit, volts.unit_exponent) == (0x00F0D121, 5)
    assert values.to_physical(volts, 1350) == 13.5          # exact, not 13.500000000000002
    assert values.to_logical(volts, 13.5) == 1350
    nominal = desc.find("UPS.Battery.ConfigVoltage")
    assert nominal is not None and values.to_physical(nominal, 0x04B0) == 12.0
    mains = desc.find("UPS.Input.ConfigVoltage")
    assert mains is not None and mains.unit_exponent == 7 and values.to_physical(mains, 220) == 220.0
    power = desc.find("UPS.PowerConverter.ConfigActivePower")
    assert power is not None and power.unit == 0xD121 and values.to_physical(power, 390) == 390.0


def test_bk650_warnings_and_lengths() -> None:
    data, _, warnings = _bk650()
    desc = parse(data)
    assert desc.warnings == warnings and len(warnings) == 3
    capacity = desc.find("UPS.PowerSummary.RemainingCapacity", "Input")
    assert capacity is not None and (capacity.logical_min, capacity.logical_max) == (0, 255)
    # 1 byte ID + 9 status bits + 23 padding bits
    assert desc.report_length("Input", 0x16) == 5 == desc.report_length("Feature", 0x16)
    # Report Count 23 still in force: 23 x 16 bits (NUT's uint8 offsets wrap and ask 33)
    assert desc.report_length("Feature", 0x20) == 47
    assert desc.report_length("Feature", 0x99) == 0
    assert desc.report_ids("Input") == [0x0C, 0x13, 0x14, 0x16, 0x20, 0x21, 0xE3]
    # string indices (Local String Index items) and default naming with vendor names
    iproduct = desc.find("UPS.PowerSummary.iProduct")
    assert iproduct is not None and iproduct.string_index == 2
    assert desc.find("UPS.Input.APCSensitivity") is not None
    assert desc.find("UPS.APCGeneralCollection.APCDelayBeforeReboot") is not None
    assert desc.find("ups.input.apcsensitivity") is not None      # case-insensitive like NUT
    explore = desc.with_names(usages.names_for("explore"))
    assert explore.find("UPS.Input.ff860061") is not None and explore.find("UPS.Input.APCSensitivity") is None


def test_bk650_mutations_only_raise_parse_errors() -> None:
    data, _, _ = _bk650()

    @fuzz(300)
    @given(st.data())
    def run(draw: st.DataObject) -> None:
        buf = bytearray(data)
        for _ in range(draw.draw(st.integers(1, 8))):
            op = draw.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
            pos = draw.draw(st.integers(0, max(len(buf) - 1, 0)))
            if op == "flip" and buf:
                buf[pos] = draw.draw(st.integers(0, 255))
            elif op == "insert":
                buf[pos:pos] = draw.draw(st.binary(min_size=1, max_size=6))
            elif op == "delete":
                del buf[pos:pos + draw.draw(st.integers(1, 4))]
            else:
                del buf[pos:]
        _parse_and_use(bytes(buf))

    run()


def _parse_and_use(data: bytes) -> None:
    """Parse hostile bytes; when they parse, every field must be usable."""
    try:
        desc = parse(data)
    except HIDParseError:
        return
    for fld in desc.fields[:200]:
        length = desc.report_length(fld.kind, fld.report_id)
        assert 0 < length <= hd.MAX_REPORT_BYTES or fld.size == 0
        report = bytearray(b"\xff" * length)
        raw = values.extract(fld, report)
        assert raw is not None
        if fld.logical_max >= fld.logical_min:
            assert fld.logical_min <= raw <= fld.logical_max
        values.to_physical(fld, raw)
        values.insert(fld, report, raw)
        assert len(report) == length


@fuzz(400)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_parse_errors(data: bytes) -> None:
    _parse_and_use(data)


@fuzz(200)
@given(st.lists(st.sampled_from([
    hb.usage_page(0x84), hb.usage(0x04), hb.collection(0x01), hb.collection(0x85), hb.end_collection(),
    hb.report_id(3), hb.report_size(8), hb.report_size(1), hb.report_count(3), hb.report_count(200),
    hb.logical_min(-1), hb.logical_max(100), hb.logical_max(-1, 1), hb.feature(), hb.input_(),
    hb.output(), hb.push(), hb.pop(), hb.usage_min(0x30), hb.usage_max(0x3F), hb.unit_exponent(-2),
    hb.physical_min(0), hb.physical_max(1000), hb.unit(hb.UNIT_VOLT), hb.long_item(1, b"xy"),
    b"\xff", b"\x0c",
]), max_size=80))
def test_item_soup_only_raises_parse_errors(items: list[bytes]) -> None:
    _parse_and_use(b"".join(items))


# --- items and structure -------------------------------------------------------------

def _one(desc: hd.ReportDescriptor) -> Field:
    assert len(desc.fields) == 1, desc.fields
    return desc.fields[0]


def test_item_sizes_long_items_and_reserved_items() -> None:
    # the same logical maximum in 1, 2 and 4 data bytes; a long item and a reserved
    # (type 3) item in between are skipped
    for lmax in (hb.logical_max(100, 1), hb.logical_max(100, 2), hb.logical_max(100, 4)):
        data = (hb.usage_page(0x84) + hb.usage(0x04) + hb.collection(1) + hb.logical_min(0)
                + lmax + hb.long_item(0x10, b"\x01\x02\x03") + b"\x0d\x00"
                + hb.report_size(8) + hb.report_count(1) + hb.usage(0x35) + hb.feature()
                + hb.end_collection())
        fld = _one(parse(data))
        assert (fld.path, fld.logical_max, fld.report_id) == ("UPS.PercentLoad", 100, 0)
    # an extended (4-byte) usage carries its own page
    data = hb.usage(0x00850066) + hb.report_size(8) + hb.report_count(1) + hb.logical_max(100) + hb.input_()
    assert _one(parse(data)).path == "RemainingCapacity"


def test_collections_index_nodes_and_unknown_usages() -> None:
    desc = parse(build([
        FieldSpec("UPS.OutletSystem.Outlet.[1].DelayBeforeShutdown", report_id=1, size=16,
                  logical_min=-1, logical_max=32767),
        FieldSpec("UPS.OutletSystem.Outlet.[2].DelayBeforeShutdown", report_id=2, size=16,
                  logical_min=-1, logical_max=32767),
        FieldSpec("UPS.OutletSystem.Outlet.PresentStatus.SwitchOn/Off", report_id=3, size=8, logical_max=1),
        FieldSpec("UPS.ff860099.ff86ff01", report_id=4, size=8),
    ]))
    assert [f.path for f in desc.fields] == [
        "UPS.OutletSystem.Outlet.[1].DelayBeforeShutdown",
        "UPS.OutletSystem.Outlet.[2].DelayBeforeShutdown",
        "UPS.OutletSystem.Outlet.PresentStatus.SwitchOn/Off",   # the index node left with its collection
        "UPS.ff860099.ff86ff01",
    ]
    assert desc.fields[0].nodes == (0x840004, 0x840018, 0x840020, 0x00FF0001, 0x840057)


def test_report_ids_offsets_padding_and_unnamed_slots() -> None:
    def bit(path: str, kind: str) -> FieldSpec:
        return FieldSpec(path, kind, report_id=0x16, size=1, logical_max=1)

    desc = parse(build([
        bit("UPS.PowerSummary.PresentStatus.Charging", "Input"),
        bit("UPS.PowerSummary.PresentStatus.Discharging", "Input"),
        FieldSpec("UPS.PowerSummary.PresentStatus", "Input", report_id=0x16, size=1, count=6, pad=True),
        # a second report interleaved, then report 0x16 continues where it stopped
        FieldSpec("UPS.PowerSummary.RemainingCapacity", "Feature", report_id=0x0C, size=8, logical_max=100),
        bit("UPS.PowerSummary.PresentStatus.ACPresent", "Input"),
        # Feature offsets of the same ID are counted separately from Input ones
        bit("UPS.PowerSummary.PresentStatus.ACPresent", "Feature"),
        # count 4 with one usage: one field, four slots (NUT's continuation)
        FieldSpec("UPS.PowerSummary.RunTimeToEmpty", "Feature", report_id=0x0F, size=16, count=4,
                  logical_max=65535),
        FieldSpec("UPS.PowerSummary.RemainingTimeLimit", "Feature", report_id=0x0F, size=16,
                  logical_max=65535),
    ]))
    got = {(f.path.rsplit(".", 1)[1], f.kind): (f.report_id, f.offset, f.size) for f in desc.fields}
    assert got == {
        ("Charging", "Input"): (0x16, 0, 1), ("Discharging", "Input"): (0x16, 1, 1),
        ("RemainingCapacity", "Feature"): (0x0C, 0, 8), ("ACPresent", "Input"): (0x16, 8, 1),
        ("ACPresent", "Feature"): (0x16, 0, 1), ("RunTimeToEmpty", "Feature"): (0x0F, 0, 16),
        ("RemainingTimeLimit", "Feature"): (0x0F, 64, 16),
    }
    assert desc.report_length("Input", 0x16) == 3       # ID + 9 bits
    assert desc.report_length("Feature", 0x0F) == 11    # ID + 5 x 16 bits
    assert desc.report_ids("Feature") == [0x0C, 0x0F, 0x16]
    assert desc.extents[("Input", 0x16)] == 9
    report = pack_report(desc, 0x16, "Input", {"UPS.PowerSummary.PresentStatus.Discharging": 1,
                                               "UPS.PowerSummary.PresentStatus.ACPresent": 1})
    assert report == bytes([0x16, 0b10, 0b1])
    with pytest.raises(KeyError):
        pack_report(desc, 0x16, "Input", {"UPS.PowerSummary.RemainingCapacity": 1})


def test_descriptor_without_report_ids() -> None:
    desc = parse(build([
        FieldSpec("UPS.PowerSummary.RemainingCapacity", "Input", size=8, logical_max=100),
        FieldSpec("UPS.PowerSummary.RunTimeToEmpty", "Input", size=16, logical_max=65535,
                  unit=hb.UNIT_SECOND),
    ]))
    assert not desc.uses_report_ids
    assert desc.report_length("Input", 0) == 3           # no ID byte
    assert desc.report_ids("Input") == [0]
    run = desc.find("UPS.PowerSummary.RunTimeToEmpty")
    assert run is not None and run.kind == "Input" and run.offset == 8
    report = bytes([0x55, 0x22, 0x0E])
    assert values.extract(run, report) == 3618
    assert values.to_physical(run, 3618) == 3618.0        # seconds: no unit shift
    assert pack_report(desc, 0, "Input", {"UPS.PowerSummary.RunTimeToEmpty": 3618}) == b"\x00\x22\x0e"


def test_find_prefers_feature_then_input_then_output() -> None:
    path = "UPS.PowerSummary.DelayBeforeShutdown"
    specs = [FieldSpec(path, k, report_id=i + 1, size=16, logical_max=65535)
             for i, k in enumerate(("Output", "Input", "Feature"))]
    desc = parse(build(specs))
    assert (f := desc.find(path)) is not None and f.kind == "Feature"
    assert (f := desc.find(path, "Output")) is not None and f.report_id == 1
    desc = parse(build(specs[:2]))
    assert (f := desc.find(path)) is not None and f.kind == "Input"
    assert desc.find(path + ".X") is None and desc.find(path, "Feature") is None


def test_push_and_pop_restore_global_state() -> None:
    data = (hb.usage_page(0x84) + hb.usage(0x04) + hb.collection(1)
            + hb.report_id(1) + hb.report_size(16) + hb.report_count(1) + hb.logical_max(1000)
            + hb.unit(hb.UNIT_VOLT) + hb.unit_exponent(5)
            + hb.push()
            + hb.usage_page(0x85) + hb.report_id(2) + hb.report_size(8) + hb.logical_max(100)
            + hb.unit(0) + hb.unit_exponent(0) + hb.usage(0x66) + hb.feature()
            + hb.pop()
            + hb.usage(0x30) + hb.feature() + hb.end_collection())
    capacity, voltage = parse(data).fields
    assert (capacity.path, capacity.report_id, capacity.size, capacity.logical_max) == \
        ("UPS.RemainingCapacity", 2, 8, 100)
    assert (voltage.path, voltage.report_id, voltage.size, voltage.logical_max, voltage.unit,
            voltage.unit_exponent) == ("UPS.Voltage", 1, 16, 1000, hb.UNIT_VOLT, 5)
    with pytest.raises(HIDParseError, match="Pop without Push at byte 2"):
        parse(hb.usage_page(0x84) + hb.pop())


def test_usage_minimum_maximum_ranges() -> None:
    # PresentStatus bits declared as a usage range, then more slots than usages
    data = (hb.usage_page(0x85) + hb.report_id(7) + hb.report_size(1) + hb.report_count(10)
            + hb.logical_max(1) + hb.usage_min(0x44) + hb.usage_max(0x47) + hb.usage(0xD0) + hb.input_())
    desc = parse(data)
    assert [(f.path, f.offset) for f in desc.fields] == [
        ("Charging", 0), ("Discharging", 1), ("FullyCharged", 2), ("FullyDischarged", 3), ("ACPresent", 4)]
    assert desc.report_length("Input", 7) == 3
    # a huge range stays lazy: only as many fields as slots
    data = (hb.report_size(1) + hb.report_count(3) + hb.logical_max(1)
            + hb.usage_min(0x00840000) + hb.usage_max(0x0084FFFF) + hb.input_())
    assert [f.path for f in parse(data).fields] == ["Undefined", "iName", "PresentStatus"]


def test_locals_do_not_outlive_their_main_item() -> None:
    # the unused second usage must not name the next control (HID 1.11 §6.2.2.8; APC
    # firmware repeats usages)
    data = (hb.usage_page(0x84) + hb.report_size(8) + hb.report_count(1) + hb.logical_max(100)
            + hb.usage(0x35) + hb.usage(0x35) + hb.feature() + hb.feature() + hb.usage(0x30) + hb.feature())
    desc = parse(data)
    assert [(f.path, f.offset) for f in desc.fields] == [("PercentLoad", 0), ("Voltage", 16)]


def test_logmax_below_logmin_is_read_unsigned_with_nut_warning() -> None:
    data = (hb.usage_page(0x85) + hb.report_id(0x0C) + hb.report_size(8) + hb.report_count(1)
            + hb.logical_min(0) + hb.logical_max(-1, 1) + hb.usage(0x66) + hb.feature())
    desc = parse(data)
    fld = _one(desc)
    assert (fld.logical_min, fld.logical_max) == (0, 255)
    assert desc.warnings == ["LogMax is less than LogMin. Vendor HID report descriptor may be incorrect; "
                             "interpreting LogMax -1 as 255 in ReportID: 0x0c"]
    assert values.extract(fld, b"\x0c\xc8") == 200
    # a genuinely signed range is left alone
    data = hb.logical_min(-1, 2) + hb.logical_max(32767, 2) + hb.report_size(16) + hb.report_count(1) \
        + hb.usage(0x00840057) + hb.feature()
    desc = parse(data)
    assert desc.warnings == [] and (_one(desc).logical_min, _one(desc).logical_max) == (-1, 32767)


def test_fix_hook_and_renaming() -> None:
    spec = FieldSpec("UPS.Input.Voltage", report_id=0x31, size=16, logical_max=255, unit=hb.UNIT_VOLT,
                     unit_exponent=7)

    def fix(fld: Field) -> Field:
        return replace(fld, logical_max=65535) if fld.path == "UPS.Input.Voltage" else fld

    fld = _one(parse(build([spec]), fix=fix))
    assert fld.logical_max == 65535
    assert values.extract(fld, b"\x31\xe8\x03") == 1000    # unclamped thanks to the fix-up
    tl = parse(build([FieldSpec("UPS.ffff0010.ffff0057", report_id=1)]))
    assert tl.fields[0].path == "UPS.Phase.LowVoltageBypassTransfer"          # MGE names win in NAMES
    renamed = tl.with_names(usages.names_for("tripplite"))
    assert renamed.fields[0].path == "UPS.TLCustom.TLLowVoltageTransferMax"
    assert parse(build([FieldSpec("UPS.TLCustom.TLLowVoltageTransferMax", report_id=1)]),
                 names=usages.names_for("tripplite")).fields[0].path == "UPS.TLCustom.TLLowVoltageTransferMax"


# --- hostile descriptors -----------------------------------------------------------

@pytest.mark.parametrize(("data", "message"), [
    (hb.usage_page(0x84) + b"\x26\xff", r"truncated item 0x26 at byte 2"),
    (b"\x05", r"truncated item 0x05 at byte 0"),
    (hb.usage_page(0x84) + b"\xfe\x10\x01abc", r"long item at byte 2 runs past"),
    (b"\xfe\x01", r"truncated long item at byte 0"),
    (hb.report_id(0), r"invalid Report ID 0 at byte 0"),
    (b"\x87\x00\x01\x00\x00", r"invalid Report ID 256 at byte 0"),
    ((hb.usage(0x04) + hb.collection(1)) * 33, r"nested deeper than 32 at byte 130"),
    (hb.push() * 17, r"more than 16 nested Push items at byte 16"),
    (hb.report_id(1) + hb.report_size(255) + hb.report_count(255) + hb.feature(),
     r"Feature report 0x01 exceeds 4096 bytes at byte 6"),
    (hb.report_size(8) + b"\x97\xff\xff\xff\xff" + hb.input_(), r"Input report 0x00 exceeds"),
    (hb.report_size(1) + hb.report_count(255) + (hb.usage_min(1) + hb.usage_max(255) + hb.input_()) * 17,
     r"more than 4096 fields"),
    (hb.usage(1) * 4097 + hb.feature(), r"more than 4096 usages before one main item"),
    (b"\x00" * (hd.MAX_DESCRIPTOR + 1), r"report descriptor too long"),
])
def test_hostile_descriptors_raise_clear_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(HIDParseError, match=message):
        parse(data)


def test_tolerated_oddities_are_warnings() -> None:
    data = (hb.end_collection() + hb.usage_max(3) + hb.usage_page(0x84) + hb.usage(0x04) + hb.collection(1)
            + hb.report_size(8) + hb.report_count(1) + hb.logical_max(100) + hb.usage(0x35) + hb.feature())
    desc = parse(data)
    assert _one(desc).path == "UPS.PercentLoad"
    assert desc.warnings == ["End Collection without Collection at byte 0 (ignored)",
                             "Usage Maximum without Usage Minimum at byte 1 (ignored)",
                             "1 collection(s) not closed at the end of the descriptor"]
    assert parse(b"").fields == []


# --- values ---------------------------------------------------------------------------

def _field(**kw: int | str) -> Field:
    base: dict[str, object] = dict(path="X", kind="Feature", report_id=1, offset=0, size=8, logical_min=0,
                                   logical_max=255, physical_min=0, physical_max=0, unit=0, unit_exponent=0,
                                   flags=2)
    base.update(kw)
    return Field(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "report", "raw"), [
    (dict(size=16, logical_min=-1, logical_max=32767), b"\x15\xff\xff", -1),
    (dict(size=16, logical_min=-32768, logical_max=32767), b"\x15\x00\x80", -32768),
    (dict(size=16, logical_min=0, logical_max=65535), b"\x15\x00\x80", 32768),
    (dict(size=8, logical_min=-100, logical_max=100), b"\x01\x9c", -100),
    # garbage above the bits the range needs is dropped (APC BF500, NUT's GetValue)
    (dict(size=32, logical_min=0, logical_max=0xFFFF), b"\x01\x00\x0a\x08\x80", 0x0A00),
    # out of range after masking: clamped
    (dict(size=8, logical_min=0, logical_max=100), b"\x01\x7f", 100),
    (dict(size=8, logical_min=10, logical_max=100), b"\x01\x05", 10),
    # bit fields across a byte boundary
    (dict(offset=6, size=4, logical_max=15), b"\x01\xc0\x02", 0b1011),
    # no ID byte when the report id is 0
    (dict(report_id=0, offset=8, size=8), b"\x00\x2a", 42),
    # nonsense range (max < min after all): the bits as they are
    (dict(size=8, logical_min=5, logical_max=1), b"\x01\xff", 255),
])
def test_extract_vectors(kw: dict[str, int], report: bytes, raw: int) -> None:
    assert values.extract(_field(**kw), report) == raw


def test_extract_short_reports() -> None:
    fld = _field(offset=8, size=16, logical_max=65535)
    assert values.extract(fld, b"\x01\x00\x34") is None       # needs 4 bytes
    assert values.extract(fld, b"\x01\x00\x34\x12") == 0x1234
    assert values.extract(fld, b"\x01\x00\x34\x12\xff\xff") == 0x1234
    assert values.extract(_field(size=0), b"") == 0


@pytest.mark.parametrize(("kw", "raw", "physical"), [
    (dict(unit=0x00F0D121, unit_exponent=5), 1350, 13.5),            # BK650 battery.voltage
    (dict(unit=0x00F0D121, unit_exponent=7), 230, 230.0),            # volts in SI units
    (dict(unit=0x00F0D121, unit_exponent=6), 2305, 230.5),
    (dict(unit=0x0000D121, unit_exponent=7), 390, 390.0),            # watts / VA
    (dict(unit=0x0000D121, unit_exponent=-8), 12, 12e-15),
    (dict(unit=0x00100001, unit_exponent=-2), 150, 1.5),             # amperes: no shift
    (dict(unit=0x0000F001, unit_exponent=-1), 500, 50.0),            # hertz
    (dict(unit=0x00010001, unit_exponent=0), 300, 300.0),            # kelvin
    (dict(unit=0x00001001, unit_exponent=1), 6, 60.0),               # seconds
    (dict(unit=0, unit_exponent=-2), 1234, 12.34),                   # no unit: exponent alone
    # physical scaling: both limits given
    (dict(logical_min=0, logical_max=255, physical_min=0, physical_max=510), 100, 200.0),
    (dict(logical_min=0, logical_max=100, physical_min=-50, physical_max=50, unit_exponent=-1), 75, 2.5),
    # physical 0/0 means "absent": identity
    (dict(logical_min=0, logical_max=100, physical_min=0, physical_max=0), 42, 42.0),
    # inverted physical range: NUT's paranoia check, identity
    (dict(logical_min=0, logical_max=100, physical_min=10, physical_max=5), 42, 42.0),
])
def test_physical_conversion_vectors(kw: dict[str, int], raw: int, physical: float) -> None:
    fld = _field(**{"size": 16, "logical_max": 65535, **kw})
    assert values.to_physical(fld, raw) == pytest.approx(physical, rel=1e-12)
    assert values.to_logical(fld, physical) == raw


def test_physical_clamp_and_logical_clamp_and_rounding() -> None:
    fld = _field(logical_min=0, logical_max=100, physical_min=0, physical_max=50)
    assert values.to_physical(fld, 100) == 50.0
    assert values.to_logical(fld, 500.0) == 100
    volts = _field(size=16, logical_max=65535, unit=0x00F0D121, unit_exponent=5)
    assert values.to_logical(volts, 13.5) == 1350     # NUT's truncation would give 1349
    assert values.to_logical(volts, 13.456) == 1346
    assert values.to_logical(volts, -3.0) == 0
    assert values.to_logical(volts, 1e9) == 65535


def test_unit_exponent_encodings() -> None:
    # spec nibble (0x0E) and full signed byte (0xFE) both mean -2; 0x07 is +7
    volts = hb.report_size(8) + hb.report_count(1) + hb.usage(0x00840030) + hb.feature()
    for item in (b"\x55\x0e", b"\x55\xfe", b"\x56\x0e\x00", hb.unit_exponent(-2),
                 hb.unit_exponent(-2, nibble=False)):
        assert _one(parse(item + volts)).unit_exponent == -2, item.hex()
    for exp in range(-8, 8):
        assert _one(parse(hb.unit_exponent(exp) + volts)).unit_exponent == exp


@fuzz(300)
@given(st.data())
def test_insert_extract_round_trip(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 40))
    offset = data.draw(st.integers(0, 40))
    signed = data.draw(st.booleans())
    lo, hi = (-(1 << (size - 1)), (1 << (size - 1)) - 1) if signed and size > 1 else (0, (1 << size) - 1)
    lo = data.draw(st.integers(lo, hi))
    hi = data.draw(st.integers(lo, hi))
    rid = data.draw(st.sampled_from([0, 1, 0xE3]))
    fld = _field(report_id=rid, offset=offset, size=size, logical_min=lo, logical_max=hi)
    value = data.draw(st.integers(lo, hi))
    before = bytearray(data.draw(st.binary(min_size=0, max_size=12)))
    report = bytearray(before)
    values.insert(fld, report, value)
    assert values.extract(fld, bytes(report)) == value
    # every other bit is untouched (bytes added for the field are zero outside it)
    start = offset + (8 if rid else 0)
    for bit in range(len(report) * 8):
        if start <= bit < start + size:
            continue
        old = (before[bit // 8] >> (bit % 8)) & 1 if bit // 8 < len(before) else 0
        assert (report[bit // 8] >> (bit % 8)) & 1 == old


@fuzz(200)
@given(st.data())
def test_to_logical_inverts_to_physical(data: st.DataObject) -> None:
    lo = data.draw(st.integers(-1000, 1000))
    hi = data.draw(st.integers(lo + 1, lo + 70000))
    scaled = data.draw(st.booleans())
    pmin = data.draw(st.integers(-1000, 1000)) if scaled else 0
    pmax = pmin + (hi - lo) * data.draw(st.sampled_from([1, 2, 10])) if scaled else 0
    fld = _field(size=32, logical_min=lo, logical_max=hi, physical_min=pmin, physical_max=pmax,
                 unit=data.draw(st.sampled_from([0, 0x00F0D121, 0xD121, 0x1001])),
                 unit_exponent=data.draw(st.integers(-8, 7)))
    raw = data.draw(st.integers(lo, hi))
    assert values.to_logical(fld, values.to_physical(fld, raw)) == raw


# --- builder round trip and usage names ----------------------------------------------------

@fuzz(100)
@given(st.lists(st.tuples(
    st.sampled_from(["UPS.PowerSummary.RemainingCapacity", "UPS.Battery.Voltage", "UPS.Input.Voltage",
                     "UPS.Output.PercentLoad", "UPS.OutletSystem.Outlet.[1].DelayBeforeShutdown",
                     "UPS.APCGeneralCollection.APCStatusFlag", "UPS.PowerSummary.PresentStatus.ACPresent"]),
    st.sampled_from(["Input", "Output", "Feature"]), st.integers(1, 0xFF), st.integers(1, 32),
    st.integers(-100, 100), st.integers(-8, 7)), min_size=1, max_size=12, unique_by=lambda s: s[:3]))
def test_builder_round_trip(specs: list[tuple[str, str, int, int, int, int]]) -> None:
    fields = []
    for path, kind, rid, size, lmin, exp in specs:
        half = 1 << (size - 1)
        lmin = max(min(lmin, 0), -half)
        lmax = min(abs(lmin) + 1, half - 1 if lmin < 0 else (1 << size) - 1)
        fields.append(FieldSpec(path, kind, report_id=rid, size=size, logical_min=lmin, logical_max=lmax,
                                unit=hb.UNIT_VOLT, unit_exponent=exp))
    desc = parse(build(fields))
    assert desc.warnings == []
    assert [(f.path, f.kind, f.report_id, f.size, f.logical_min, f.logical_max, f.unit_exponent)
            for f in desc.fields] == \
        [(s.path, s.kind, s.report_id, s.size, s.logical_min, s.logical_max, s.unit_exponent) for s in fields]
    for fld in desc.fields:
        report = pack_report(desc, fld.report_id, fld.kind, {fld.path: fld.logical_max})
        assert len(report) == desc.report_length(fld.kind, fld.report_id)
        assert values.extract(fld, report) == fld.logical_max


def test_usage_names() -> None:
    assert usages.usage_name(0x00840004) == "UPS"
    assert usages.usage_name(0x0084006B) == "SwitchOn/Off"
    assert usages.usage_name(0x00850063) == "Maxerror"
    assert usages.usage_name(0xFF860060) == "APCStatusFlag"
    assert usages.usage_name(0xFF860060, usages.names_for("explore")) == "ff860060"
    assert usages.usage_name(0xFF860060, usages.names_for("powercom")) == "POWERCOM2"
    assert usages.usage_name(0x00FF0003) == "[3]"
    assert usages.usage_name(0x12345678) == "12345678"
    assert usages.usage_of("presentstatus") == 0x00840002
    assert usages.usage_of("ff86007C") == 0xFF86007C
    assert usages.usage_of("[12]") == 0x00FF000C
    assert usages.usage_of("NoSuchUsage") is None
    assert usages.usage_of("TLCharging", usages.names_for("tripplite")) == 0x00840044
    assert usages.names_for("tripplite")[0x00840044] == "TLCharging"   # Tripp Lite overrides a standard code
    assert usages.names_for(None) == usages.STANDARD
    # every vendor name resolves back to its own code
    for table in usages.VENDOR_TABLES.values():
        for code, name in table.items():
            assert usages.usage_of(name) == code, name
