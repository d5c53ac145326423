"""USB HID transport: the real pyusb core over the fake libusb-like backend.

Every test goes through ``usb.core.find`` / ``Device.ctrl_transfer`` / ``Device.read``
(pyusb's own claim bookkeeping included); only libusb underneath is simulated.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import usb.core

from nutbridge.drivers.base import ConfigError, DeviceError
from nutbridge.drivers.usbhid.transport import (
    HidRefused,
    Matcher,
    UsbInfo,
    open_device,
    report_descriptor_length,
)
from nutbridge.simulation.fakeusb import FakeBackend, FakeHidDevice
from tests.support.hidbuild import FieldSpec, build

DESCRIPTOR = build([
    FieldSpec("UPS.PowerSummary.RemainingCapacity", "Feature", report_id=0x0C, size=8, logical_max=100),
    FieldSpec("UPS.PowerSummary.RunTimeToEmpty", "Feature", report_id=0x0F, size=16, logical_max=65535),
    FieldSpec("UPS.PowerSummary.DelayBeforeShutdown", "Feature", report_id=0x15, size=16,
              logical_min=-1, logical_max=32767),
    FieldSpec("UPS.PowerSummary.PresentStatus.ACPresent", "Input", report_id=0x16, size=8, logical_max=1),
])


def ups(**kw: object) -> FakeHidDevice:
    args: dict[str, object] = dict(
        vendor_id=0x051D, product_id=0x0002, manufacturer="American Power Conversion ",
        product="Back-UPS ES 700", serial="4B1234P56789", bus=1, address=4,
        features={0x0C: b"\x0c\x64", 0x0F: b"\x0f\x22\x0e", 0x15: b"\x15\xff\xff"},
        inputs={0x16: b"\x16\x01"},
    )
    args.update(kw)
    return FakeHidDevice(DESCRIPTOR, **args)  # type: ignore[arg-type]


def keyboard() -> FakeHidDevice:
    # an ordinary HID device on the same bus: must never be opened or detached
    return FakeHidDevice(b"\x05\x01\x09\x06\xa1\x01\xc0", vendor_id=0x046D, product_id=0xC52B,
                         manufacturer="Logitech", product="USB Receiver", bus=1, address=3)


def info(**kw: object) -> UsbInfo:
    args: dict[str, object] = dict(vendor_id=0x051D, product_id=0x0002,
                                   manufacturer="American Power Conversion ", product="Back-UPS ES 700",
                                   serial=None, bus="001", device="004", release=0x106)
    args.update(kw)
    return UsbInfo(**args)  # type: ignore[arg-type]


# ---- matching (NUT's regex rules) -------------------------------------------------


def test_matcher_follows_nut_regex_rules() -> None:
    assert Matcher.from_config({"vendorid": "051D"}).matches(info())  # IDs: case-insensitive hex
    assert Matcher.from_config({"vendorid": "051d", "productid": "000[0-3]"}).matches(info())
    assert not Matcher.from_config({"vendorid": "05"}).matches(info())  # whole value must match
    assert not Matcher.from_config({"productid": "2"}).matches(info())  # "0002", not "2"
    # strings: case-insensitive, surrounding blanks of the device's string ignored
    assert Matcher.from_config({"vendor": "american power conversion"}).matches(info())
    assert Matcher.from_config({"product": "Back-UPS.*"}).matches(info())
    assert not Matcher.from_config({"product": "Back"}).matches(info())
    assert Matcher.from_config({"product": "Back-UPS ES [[:digit:]]+"}).matches(info())  # POSIX ERE class
    # a device without a serial string counts as ""
    assert Matcher.from_config({"serial": ".*"}).matches(info())
    assert not Matcher.from_config({"serial": "4B.*"}).matches(info())
    assert Matcher.from_config({"serial": "4b.*"}).matches(info(serial="4B1234P56789"))
    assert Matcher.from_config({"bus": "001", "device": "00[0-9]"}).matches(info())
    assert not Matcher.from_config({"bus": "1"}).matches(info())
    # empty options are unset; unrelated options ignored
    assert Matcher.from_config({"vendorid": "", "port": "auto"}).matches(info())
    assert Matcher.from_config({}).describe() == "any device"
    assert Matcher.from_config({"vendorid": "051d", "serial": "X"}).describe() == "vendorid=051d, serial=X"
    with pytest.raises(ConfigError, match="product = 'Back-UPS \\(' is not a valid regular expression"):
        Matcher.from_config({"product": "Back-UPS ("})


def test_same_device_matcher_ignores_address_and_escapes() -> None:
    first = info(serial="AB+C", device="004")
    m = Matcher.same_device(first, Matcher(bus="001"))
    assert m.matches(info(serial="AB+C", device="009"))  # replugged at a new address
    assert not m.matches(info(serial="ABBC"))  # "+" taken literally
    assert not m.matches(info(serial="AB+C", bus="002"))  # the user's own bus option stays
    assert not m.matches(info(serial="AB+C", product_id=0x0003))


def test_hid_class_descriptor_length() -> None:
    # the BK650M2-CH's HID descriptor as NUT logged it: 743-byte report descriptor
    assert report_descriptor_length(bytes.fromhex("09211001210122e702")) == 743
    assert report_descriptor_length(bytes.fromhex("0921100121")) is None
    assert report_descriptor_length(bytes.fromhex("09221001210122e702")) is None


# ---- opening ---------------------------------------------------------------------


async def test_open_detaches_claims_and_gives_back() -> None:
    kbd, dev = keyboard(), ups()
    backend = FakeBackend([kbd, dev])
    t = await open_device(Matcher.from_config({"vendorid": "051d"}), backend=backend)
    try:
        assert t.info == UsbInfo(0x051D, 0x0002, "American Power Conversion ", "Back-UPS ES 700",
                                 "4B1234P56789", "001", "004", 0x0100)
        assert dev.claimed and not dev.kernel_driver  # usbhid detached, interface ours
        assert t.interrupt_endpoint == 0x81 and t.interrupt_packet_size == 64
        assert t.descriptor_length == len(DESCRIPTOR)  # from the HID class descriptor
        # the keyboard was filtered on its IDs: never opened, never detached
        assert kbd.requests == [] and kbd.kernel_driver and not kbd.claimed
    finally:
        await t.close()
    assert not dev.claimed and dev.kernel_driver  # handed back to usbhid
    await t.close()  # idempotent


async def test_accept_hook_skips_non_ups_devices() -> None:
    kbd, dev = keyboard(), ups()
    seen: list[UsbInfo] = []

    def accept(i: UsbInfo) -> bool:
        seen.append(i)
        return i.vendor_id == 0x051D

    t = await open_device(Matcher(), backend=FakeBackend([kbd, dev]), accept=accept)
    await t.close()
    assert [i.product for i in seen] == ["USB Receiver", "Back-UPS ES 700"]
    assert kbd.kernel_driver and not kbd.claimed  # looked at (strings), not taken


async def test_no_match_lists_what_was_seen() -> None:
    backend = FakeBackend([keyboard(), ups()])
    with pytest.raises(DeviceError) as exc:
        await open_device(Matcher.from_config({"vendorid": "051d", "serial": "NOPE"}), backend=backend)
    msg = str(exc.value)
    assert msg.startswith("no USB UPS matches vendorid=051d, serial=NOPE (seen: ")
    assert "046d:c52b bus 001 device 003" in msg
    assert ("051d:0002 vendor 'American Power Conversion' product 'Back-UPS ES 700' "
            "serial '4B1234P56789'") in msg
    with pytest.raises(DeviceError, match=r"\(seen: no USB HID devices at all\)"):
        await open_device(Matcher(), backend=FakeBackend([]))
    hub = FakeHidDevice(b"", vendor_id=0x1D6B, product_id=0x0002, interface_class=9)
    with pytest.raises(DeviceError, match="no USB HID devices at all"):
        await open_device(Matcher(), backend=FakeBackend([hub]))


async def test_permission_and_busy_errors_are_explained() -> None:
    dev = ups()
    dev.access_denied = True
    with pytest.raises(DeviceError,
                       match=r"051d:0002 bus 001 device 004 \(no permission: install the udev rule"):
        await open_device(Matcher(), backend=FakeBackend([dev]))
    dev.access_denied = False
    backend = FakeBackend([dev])
    t = await open_device(Matcher(), backend=backend)
    try:
        # a second driver (another nutbridge, NUT's usbhid-ups) cannot take it
        with pytest.raises(DeviceError, match="is in use by another program"):
            await open_device(Matcher(), backend=backend)
        assert dev.claimed
        assert await t.get_feature(0x0C, 2) == b"\x0c\x64"  # the owner is undisturbed
    finally:
        await t.close()


async def test_unconfigured_device_gets_configured() -> None:
    dev = ups()
    dev._configuration = 0
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    await t.close()
    assert dev._configuration == 1


async def test_real_libusb_backend_reports_no_match() -> None:
    # the default backend (libusb-1.0 through pyusb); CI machines have no such UPS
    with pytest.raises(DeviceError, match=r"no USB UPS matches vendorid=ffff, productid=fffe|libusb-1\.0"):
        await open_device(Matcher(vendorid="ffff", productid="fffe"))


# ---- control transfers -----------------------------------------------------------


async def test_descriptor_and_reports_exact_requests() -> None:
    dev = ups()
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    try:
        dev.requests.clear()
        assert await t.report_descriptor() == DESCRIPTOR
        assert dev.requests == [(0x81, 0x06, 0x2200, 0, len(DESCRIPTOR))]
        dev.requests.clear()
        assert await t.get_feature(0x0C, 2) == b"\x0c\x64"
        assert await t.get_input(0x16, 2) == b"\x16\x01"
        assert dev.requests == [(0xA1, 0x01, 0x030C, 0, 2), (0xA1, 0x01, 0x0116, 0, 2)]
        # a short answer is passed on as sent (the caller pads, like NUT)
        dev.features[0x0F] = b"\x0f\x22"
        assert await t.get_feature(0x0F, 3) == b"\x0f\x22"
        # STALL = unsupported: None, not an error; the device stays usable
        assert await t.get_feature(0x42, 2) is None
        dev.stall.add(0x0C)
        assert await t.get_feature(0x0C, 2) is None
        dev.stall.clear()
        assert await t.get_feature(0x0C, 2) == b"\x0c\x64"
        # SET_REPORT: exact bytes on the wire, the UPS keeps them
        dev.requests.clear()
        await t.set_feature(0x15, b"\x15\x14\x00")
        assert dev.requests == [(0x21, 0x09, 0x0315, 0, 3)]
        assert dev.writes == [(0x15, b"\x15\x14\x00")]
        assert await t.get_feature(0x15, 3) == b"\x15\x14\x00"
        # a refused write is HidRefused (still a DeviceError), and nothing broke
        with pytest.raises(HidRefused, match=r"refused report 0x99 \(99 01\)"):
            await t.set_feature(0x99, b"\x99\x01")
        assert dev.writes[-1] == (0x99, b"\x99\x01")
        assert await t.get_feature(0x0C, 2) == b"\x0c\x64"
        # no HID length known: NUT's method 2 asks for the HID class descriptor first
        t.descriptor_length = None
        dev.requests.clear()
        assert await t.report_descriptor() == DESCRIPTOR
        assert dev.requests == [(0x81, 0x06, 0x2100, 0, 9), (0x81, 0x06, 0x2200, 0, len(DESCRIPTOR))]
    finally:
        await t.close()


async def test_descriptor_without_report_ids() -> None:
    # no Report ID items: wValue's low byte is 0 and reports carry no ID byte
    desc = build([FieldSpec("UPS.PowerSummary.RemainingCapacity", "Feature", size=8, logical_max=100),
                  FieldSpec("UPS.PowerSummary.PresentStatus.ACPresent", "Input", size=8, logical_max=1)])
    dev = FakeHidDevice(desc, vendor_id=0x0764, product_id=0x0501, features={0: b"\x55"})
    assert not dev.uses_report_ids
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    try:
        dev.requests.clear()
        assert await t.get_feature(0, 1) == b"\x55"
        assert dev.requests == [(0xA1, 0x01, 0x0300, 0, 1)]
        dev.set_input(b"\x01")
        assert dev.inputs == {0: b"\x01"}
        assert await t.get_input(0, 1) == b"\x01"
        assert await t.read_interrupt(64, 1.0) == b"\x01"
        assert t.info.manufacturer is None and t.info.serial is None  # no string descriptors at all
    finally:
        await t.close()


async def test_on_set_hook_sees_writes_and_can_refuse() -> None:
    got: list[tuple[int, bytes]] = []

    def on_set(rid: int, data: bytes) -> bool:
        got.append((rid, data))
        return rid != 0x0F

    dev = ups(on_set=on_set)
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    try:
        await t.set_feature(0x15, b"\x15\x00\x00")
        with pytest.raises(HidRefused):
            await t.set_feature(0x0F, b"\x0f\x00\x00")
        assert got == [(0x15, b"\x15\x00\x00"), (0x0F, b"\x0f\x00\x00")]
        assert dev.features[0x15] == b"\x15\xff\xff"  # the hook owns the state
    finally:
        await t.close()


async def test_timeouts_skip_values_then_count_as_gone() -> None:
    dev = ups()
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    t.timeout = 0.05
    try:
        dev.timeouts.add(0x0C)
        start = time.monotonic()
        assert await t.get_feature(0x0C, 2) is None  # one timeout: skip the value
        assert time.monotonic() - start >= 0.045  # a real timeout takes its time
        assert await t.get_feature(0x0C, 2) is None
        assert await t.get_feature(0x0F, 3) == b"\x0f\x22\x0e"  # an answer resets the count
        assert await t.get_feature(0x0C, 2) is None
        assert await t.get_feature(0x0C, 2) is None
        with pytest.raises(DeviceError, match="stopped answering \\(3 GET_REPORT timeouts in a row\\)"):
            await t.get_feature(0x0C, 2)
        with pytest.raises(HidRefused, match="did not answer the write of report 0x0c"):
            await t.set_feature(0x0C, b"\x0c\x10")
    finally:
        await t.close()


# ---- interrupt pipe --------------------------------------------------------------


async def test_interrupt_reports_timeouts_and_pipe_errors() -> None:
    dev = ups(packet_size=8)
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    try:
        dev.set_input(b"\x16\x00")
        assert await t.read_interrupt(8, 1.0) == b"\x16\x00"
        assert dev.inputs[0x16] == b"\x16\x00"
        start = time.monotonic()
        assert await t.read_interrupt(8, 0.05) is None
        assert 0.04 <= time.monotonic() - start < 1.0
        # larger than the buffer: libusb's EOVERFLOW, the report is lost, the pipe still works
        dev.push_interrupt(bytes(9))
        dev.push_interrupt(b"\x16\x01")
        assert await t.read_interrupt(8, 1.0) is None
        assert await t.read_interrupt(8, 1.0) == b"\x16\x01"
        # halted pipe: cleared like usbhid-ups does, then reads go on
        dev.interrupt_halted = True
        assert await t.read_interrupt(8, 1.0) is None
        assert dev.clear_halts == 1 and not dev.interrupt_halted
        dev.push_interrupt(b"\x16\x01")
        assert await t.read_interrupt(8, 1.0) == b"\x16\x01"
    finally:
        await t.close()


async def test_pending_interrupt_read_does_not_block_polls() -> None:
    dev = ups()
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    try:
        reader = asyncio.create_task(t.read_interrupt(64, 2.0))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        assert await t.get_feature(0x0C, 2) == b"\x0c\x64"
        assert time.monotonic() - start < 0.5
        dev.push_interrupt(b"\x16\x00")
        assert await reader == b"\x16\x00"
    finally:
        await t.close()


async def test_cancelled_interrupt_read_loses_nothing() -> None:
    # a driver cancels its interrupt wait when a poll is due; the USB read goes on in its
    # thread, and the report it receives must reach the next read_interrupt call
    dev = ups()
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    try:
        reader = asyncio.create_task(t.read_interrupt(64, 1.0))
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        dev.push_interrupt(b"\x16\x00")
        await asyncio.sleep(0.05)  # taken off the pipe by the orphaned read
        assert await t.read_interrupt(64, 0.2) == b"\x16\x00"
        assert await t.read_interrupt(64, 0.05) is None
        # same for an error: the next caller sees it
        reader = asyncio.create_task(t.read_interrupt(64, 1.0))
        await asyncio.sleep(0.05)
        reader.cancel()
        dev.unplug()
        with pytest.raises(DeviceError, match="disconnected"):
            await t.read_interrupt(64, 0.2)
    finally:
        await t.close()


async def test_device_without_interrupt_endpoint() -> None:
    dev = ups(ep_in=None)
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    try:
        assert t.interrupt_endpoint is None
        start = time.monotonic()
        assert await t.read_interrupt(64, 0.05) is None
        assert time.monotonic() - start >= 0.045
        assert await t.get_feature(0x0C, 2) == b"\x0c\x64"
    finally:
        await t.close()


# ---- strings ---------------------------------------------------------------------


async def test_strings_and_broken_language_table() -> None:
    dev = ups(strings={4: "PbAc"})
    t = await open_device(Matcher(), backend=FakeBackend([dev]))
    try:
        assert await t.string(4) == "PbAc"
        assert await t.string(2) == "Back-UPS ES 700"
        assert await t.string(0) is None
        assert await t.string(9) is None  # STALL: no such string
        dev.langids = None  # string 0 stalls: assume en-US, as NUT does
        dev.requests.clear()
        assert await t.string(4) == "PbAc"
        assert (0x80, 0x06, 0x0304, 0x0409, 254) in dev.requests
    finally:
        await t.close()


# ---- unplug / replug -------------------------------------------------------------


async def test_unplug_fails_fast_with_device_error() -> None:
    dev = ups()
    backend = FakeBackend([dev])
    t = await open_device(Matcher(), backend=backend)
    reader = asyncio.create_task(t.read_interrupt(64, 5.0))
    await asyncio.sleep(0.05)
    start = time.monotonic()
    dev.unplug()
    with pytest.raises(DeviceError, match=r"USB UPS 051d:0002 .* disconnected \(reading the interrupt pipe: "
                                          r"No such device"):
        await reader
    assert time.monotonic() - start < 1.0  # woken by the unplug, not by the 5 s timeout
    for call in (t.get_feature(0x0C, 2), t.report_descriptor(), t.string(1),
                 t.set_feature(0x15, b"\x15\x00\x00")):
        with pytest.raises(DeviceError, match="disconnected") as exc:
            await call
        assert not isinstance(exc.value, HidRefused)  # gone, not refused: reconnect
    await t.close()  # never raises on a vanished device
    with pytest.raises(DeviceError, match="no USB UPS matches"):
        await open_device(Matcher(), backend=backend)


async def test_replug_is_found_again_at_new_address() -> None:
    # two UPSes of the same model: the reconnect must pick the one we had
    other = ups(serial="4B9999P00000", address=7)
    dev = ups()
    backend = FakeBackend([other, dev])
    user = Matcher.from_config({"vendorid": "051d", "serial": "4B1234.*"})
    t = await open_device(user, backend=backend)
    first = t.info
    assert first.device == "004"
    dev.unplug()
    with pytest.raises(DeviceError):
        await t.get_feature(0x0C, 2)
    await t.close()
    # the other UPS: only its strings were read (to see the serial); never claimed or detached
    assert {r[:2] for r in other.requests} == {(0x80, 0x06)} and other.kernel_driver
    dev.replug()
    assert dev.address == 5 and dev.kernel_driver  # new address, usbhid bound again
    t2 = await open_device(Matcher.same_device(first, user), backend=backend)
    try:
        assert t2.info.serial == first.serial and t2.info.device == "005"
        assert await t2.get_feature(0x0C, 2) == b"\x0c\x64"
        with pytest.raises(DeviceError, match="closed"):
            await t.get_feature(0x0C, 2)  # the old transport stays dead
        assert not other.claimed
    finally:
        await t2.close()
    dev.replug(address=42)
    t3 = await open_device(Matcher.same_device(first), backend=backend)
    assert t3.info.device == "042"
    await t3.close()


async def test_stale_pyusb_handle_after_replug_gets_enodev() -> None:
    # below the transport: a pyusb Device from before the replug never reaches the new one
    dev = ups()
    backend = FakeBackend([dev])
    old = usb.core.find(backend=backend)
    assert old is not None
    dev.replug()
    with pytest.raises(usb.core.USBError) as exc:
        old.ctrl_transfer(0x80, 0x06, 0x0100, 0, 18)
    assert exc.value.errno == 19 and exc.value.backend_error_code == -4
    new = usb.core.find(backend=backend)
    assert new.address == 5
    assert bytes(new.ctrl_transfer(0x80, 0x06, 0x0100, 0, 18))[8:12] == b"\x1d\x05\x02\x00"
    usb.util.dispose_resources(old)
    usb.util.dispose_resources(new)


def test_fake_backend_kernel_driver_rules_like_libusb() -> None:
    dev = ups()
    backend = FakeBackend([dev])
    d = usb.core.find(backend=backend, idVendor=0x051D)
    assert d is not None and d.manufacturer == "American Power Conversion "
    # usbhid bound: claiming fails like libusb on Linux (LIBUSB_ERROR_BUSY)
    with pytest.raises(usb.core.USBError) as exc:
        usb.util.claim_interface(d, 0)
    assert exc.value.backend_error_code == -6
    assert d.is_kernel_driver_active(0)
    d.detach_kernel_driver(0)
    with pytest.raises(usb.core.USBError) as exc:  # nothing bound any more: NOT_FOUND
        d.detach_kernel_driver(0)
    assert exc.value.backend_error_code == -5
    usb.util.claim_interface(d, 0)
    with pytest.raises(usb.core.USBError):  # cannot give it back while claimed
        d.attach_kernel_driver(0)
    # a HID class request on endpoint 0, and an interrupt read, through pyusb's own paths
    assert bytes(d.ctrl_transfer(0xA1, 0x01, 0x030C, 0, 8)) == b"\x0c\x64"
    with pytest.raises(usb.core.USBTimeoutError):
        d.read(0x81, 64, 20)
    dev.push_interrupt(b"\x16\x01")
    assert bytes(d.read(0x81, 64, 20)) == b"\x16\x01"
    usb.util.release_interface(d, 0)
    d.attach_kernel_driver(0)
    assert dev.kernel_driver
    usb.util.dispose_resources(d)
