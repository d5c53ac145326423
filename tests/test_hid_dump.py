"""NUT DDL usbhid-ups dumps: loading, our parser against NUT's decoding, replay over pyusb."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nutbridge.drivers.base import DeviceError
from nutbridge.drivers.usbhid import values
from nutbridge.drivers.usbhid.descriptor import parse
from nutbridge.drivers.usbhid.transport import Matcher, open_device
from nutbridge.drivers.usbhid.usages import names_for
from nutbridge.simulation.fakeusb import FakeBackend
from nutbridge.simulation.usbdump import (
    DumpError,
    encode_lsusb_item,
    fake_device_from_dump,
    load_dump,
    parse_dump,
)
from tests.support import realnut

DDL = realnut.DDL_DIR
BK650 = DDL / "APC" / "APC__Back-UPS_BK650M2-CH__usbhid-ups__2.8.0__01.dev"
X750 = DDL / "APC" / "APC__Smart-UPS_X_750__usbhid-ups__2.7.4__01.dev"

pytestmark = realnut.prerequisite(f"NUT DDL corpus ({BK650})", BK650.exists())


def test_bk650_loads() -> None:
    d = load_dump(BK650)
    assert d.descriptor is not None and len(d.descriptor) == 743 and d.descriptor_source == "debug"
    assert d.descriptor[:8] == bytes.fromhex("05840904a1010924")
    assert d.descriptor[-4:] == bytes.fromhex("b182c0c0")
    assert (d.vendor_id, d.product_id, d.release) == (0x051D, 0x0002, 0x0106)
    assert (d.manufacturer, d.product, d.serial, d.bus) == ("American Power Conversion", "BK650M2-CH",
                                                            "9B2019A14274", 1)
    assert len(d.paths) == 90
    assert d.values["battery.charge"] == "100"
    assert d.values["ups.status"] == "OL DISCHRG"
    assert d.values["driver.version.data"] == "APC HID 0.98"
    assert "device.mfr" in d.values and "# device.mfr" not in d.values  # commented upsc copy ignored
    # GET_REPORT answers as the device sent them; short ones stay short
    assert d.answers[0x0C] == b"\x0c\x64" and d.answers[0x16] == b"\x16\x0e\x00"
    assert d.answers[0x0F] == b"\x0f\x22\x0e"
    # ... and NUT's zero-padded buffer for decoding
    # ("expected 5 bytes, but got 3 instead", then "Report[err]: (3 bytes) => 16 0e 00")
    assert d.reports[("Input", 0x16)] == d.reports[("Feature", 0x16)] == b"\x16\x0e\x00\x00\x00"
    assert len(d.warnings) == 3 and all("LogMax is less than LogMin" in w for w in d.warnings)


def test_bk650_parser_matches_nut_for_every_path_line() -> None:
    d = load_dump(BK650)
    assert d.descriptor is not None
    # the dump is NUT's EXPLORE subdriver: only the standard usage names
    desc = parse(d.descriptor, names=names_for(None))
    ours = {(f.path, f.kind, f.report_id, f.offset, f.size): f for f in desc.fields}
    theirs = {(p.path, p.kind, p.report_id, p.offset, p.size) for p in d.paths}
    assert len(desc.fields) == 71  # "[D1] 71 HID objects found"
    assert set(ours) == theirs
    assert desc.warnings == d.warnings  # same LogMax < LogMin reinterpretations, same words
    checked = 0
    for p in d.paths:
        f = ours[(p.path, p.kind, p.report_id, p.offset, p.size)]
        assert p.report is not None, p
        raw = values.extract(f, p.report.ljust(desc.report_length(p.kind, p.report_id), b"\0"))
        assert raw is not None, p
        # NUT prints Value with %g
        assert float(f"{values.to_physical(f, raw):g}") == p.value, (p, raw)
        checked += 1
    assert checked == 90


def test_x750_lsusb_descriptor_reencodes() -> None:
    d = load_dump(X750)
    assert d.descriptor is not None and d.descriptor_source == "lsusb"
    assert len(d.descriptor) == 425  # "wDescriptorLength 425"
    assert d.descriptor[:6] == bytes.fromhex("05840904a101")
    desc = parse(d.descriptor)
    assert desc.uses_report_ids and desc.fields
    assert (d.vendor_id, d.product_id, d.release, d.bus, d.address) == (0x051D, 0x0003, 0x0106, 2, 6)
    assert d.manufacturer == "American Power Conversion "  # lsusb shows the string as the device has it
    assert d.string_indices == {"iManufacturer": 1, "iProduct": 2, "iSerial": 3}
    assert d.values["battery.runtime"] == "65535"  # "65535\t#BAD: overflow?": comment dropped
    assert d.values["ups.status"] == "OL CHRG"
    assert d.paths == [] and d.answers == {}


def test_lsusb_item_encoding() -> None:
    assert encode_lsusb_item("Global", "Report ID", b"\x01") == b"\x85\x01"
    assert encode_lsusb_item("Global", "Unit", bytes.fromhex("21d1f000")) == bytes.fromhex("6721d1f000")
    assert encode_lsusb_item("Main", "End Collection", b"") == b"\xc0"
    assert encode_lsusb_item("Main", "Feature", b"\xa2") == b"\xb1\xa2"
    assert encode_lsusb_item("Local", "String Index", b"\x02") == b"\x79\x02"
    assert encode_lsusb_item("Global", "Usage Page", b"\x86\xff") == b"\x06\x86\xff"


def test_malformed_dumps_name_file_and_line() -> None:
    text = ("battery.charge: 5\n"
            "#    0.1\t[D3] Report Descriptor: (6 bytes) => 05 84 09 04\n"
            "#    0.2\t[D3] Path: UPS.x, Type: Feature, ReportID: 0x01, Offset: 0, Size: 8, Value: 1\n")
    with pytest.raises(DumpError, match=r"^t\.dev:2: Report Descriptor: 6 bytes announced, 4 found"):
        parse_dump(text, "t.dev")
    with pytest.raises(DumpError, match=r"^u\.dev:3: cannot encode lsusb item 'Frobnicate'"):
        parse_dump("x: 1\n\n#             Item(Global): Frobnicate, data= [ 0x01 ] 1\n", "u.dev")
    with pytest.raises(DumpError, match=r"^u\.dev:1: cannot encode lsusb item 'Usage'"):
        parse_dump("#             Item(Local ): Usage, data= [ 0x01 0x02 0x03 ] 1\n", "u.dev")
    with pytest.raises(DumpError, match=r"nope\.dev"):
        load_dump("/nonexistent/nope.dev")
    # upsc quirks: empty values, quotes, comments
    d = parse_dump('a.b:\nc.d: "x  y" # note\ne.f: 1 2\n', "q.dev")
    assert d.values == {"a.b": "", "c.d": "x  y", "e.f": "1 2"}


def test_whole_usbhid_corpus_loads() -> None:
    files = sorted(DDL.glob("*/*usbhid-ups*.dev"))
    assert len(files) >= 100
    with_descriptor = 0
    for f in files:
        d = load_dump(f)  # no DumpError anywhere
        assert d.values, f
        if d.descriptor is not None:
            with_descriptor += 1
            parse(d.descriptor)
    assert with_descriptor >= 2


async def test_bk650_replay_over_pyusb() -> None:
    d = load_dump(BK650)
    dev = fake_device_from_dump(d, address=9)
    t = await open_device(Matcher.from_config({"vendorid": "051d", "productid": "0002",
                                               "serial": "9B2019A14274"}), backend=FakeBackend([dev]))
    try:
        assert t.info.product == "BK650M2-CH" and t.info.device == "009" and t.info.release == 0x0106
        assert await t.report_descriptor() == d.descriptor
        for rid, answer in d.answers.items():
            assert await t.get_feature(rid, 64) == answer
        assert await t.get_input(0x13, 2) == b"\x13\x01"  # a report with Input fields
        assert await t.get_feature(0x99, 2) is None  # not in the dump: STALL
        # string usages point where NUT read them: iDeviceChemistry = 4 -> battery.type
        chem = next(p for p in d.paths if p.path == "UPS.PowerSummary.iDeviceChemistry")
        assert await t.string(int(chem.value)) == d.values["battery.type"] == "PbAc"
        prod = next(p for p in d.paths if p.path == "UPS.PowerSummary.iProduct")
        assert await t.string(int(prod.value)) == "BK650M2-CH"
    finally:
        await t.close()


async def test_x750_replay_without_reports() -> None:
    d = load_dump(X750)
    dev = fake_device_from_dump(d)
    t = await open_device(Matcher(productid="0003"), backend=FakeBackend([dev]))
    try:
        assert t.info.manufacturer == "American Power Conversion "
        assert t.info.product == "Smart-UPS X 750  FW:COM 03.8 / UPS 03.8"
        assert (t.info.bus, t.info.device) == ("002", "006")
        assert await t.report_descriptor() == d.descriptor
        assert await t.get_feature(0x01, 2) is None  # no recorded reports: all unsupported
    finally:
        await t.close()
    d.descriptor = None
    with pytest.raises(DumpError, match="no report descriptor"):
        fake_device_from_dump(d)


async def test_replayed_device_unplug() -> None:
    dev = fake_device_from_dump(load_dump(BK650))
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    dev.unplug()
    with pytest.raises(DeviceError, match="disconnected"):
        await t.get_feature(0x0C, 2)
    await t.close()


# ---- fuzz: a replayed dump is user input (port = file.dev) --------------------------

_BK_LINES = BK650.read_text().splitlines() if BK650.exists() else [""]
_X_LINES = X750.read_text().splitlines() if X750.exists() else [""]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_dumps_only_raise_dump_error(data: st.DataObject) -> None:
    lines = list(data.draw(st.sampled_from([_BK_LINES, _X_LINES])))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["drop", "dup", "cut", "flip", "junk"]))
        if op == "drop":
            del lines[at]
        elif op == "dup":
            lines.insert(at, lines[at])
        elif op == "cut":
            lines[at] = lines[at][: data.draw(st.integers(0, max(0, len(lines[at]) - 1)))]
        elif op == "flip" and lines[at]:
            i = data.draw(st.integers(0, len(lines[at]) - 1))
            lines[at] = lines[at][:i] + data.draw(st.characters(max_codepoint=0x7F)) + lines[at][i + 1:]
        else:
            lines[at] = data.draw(st.text(max_size=80))
    try:
        d = parse_dump("\n".join(lines), "fuzz.dev")
    except DumpError as exc:
        assert str(exc).startswith("fuzz.dev:")
        return
    if d.descriptor is not None and d.vendor_id is not None and d.product_id is not None:
        fake_device_from_dump(d)  # never anything but a device


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_random_text_only_raises_dump_error(text: str) -> None:
    try:
        parse_dump(text, "r.dev")
    except DumpError:
        pass
