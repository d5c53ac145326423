"""USB transport of the HID driver: find the UPS, talk HID class requests to it.

pyusb is blocking, so every transfer runs in a worker thread. Two single-thread
lanes keep them apart: control transfers (descriptor, GET/SET_REPORT, strings) are
serialised on one, the interrupt IN endpoint is read on the other, so a poll never
waits behind a pending interrupt read (libusb allows concurrent transfers).

Error policy, as usbhid-ups (libusb1.c / usbhid-ups.c) behaves:

* GET_REPORT answered with a STALL (EPIPE) means "this report is not supported":
  ``None``, the caller skips the value. A timeout also skips the value, but
  ``max_timeouts`` consecutive timeouts mean the UPS stopped answering.
* SET_REPORT refused (STALL/timeout) raises :class:`HidRefused` (a DeviceError the
  driver turns into a failed command, not a reconnect).
* Everything that means the device is gone or unusable (ENODEV after an unplug,
  EIO, EACCES, EBUSY, a STALL on the report descriptor) raises
  :class:`~nutbridge.drivers.base.DeviceError` with a clear message; the driver
  base then marks the data stale and reconnects.

Device matching follows NUT's USB options (``vendorid``, ``productid``, ``vendor``,
``product``, ``serial``, ``bus``, ``device``): extended regular expressions,
case-insensitive, that must match the whole value; IDs are matched as 4 lowercase
hex digits, strings with surrounding blanks stripped, a missing string as "".
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..base import ConfigError, DeviceError

try:  # pyusb is the optional "usb" extra
    import usb.backend.libusb1  # type: ignore[import-untyped]
    import usb.core  # type: ignore[import-untyped]
    import usb.util  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - exercised only without the extra
    usb = None

log = logging.getLogger(__name__)

T = TypeVar("T")

HID_CLASS = 3
# bmRequestType / bRequest values (USB 2.0 §9.3, HID 1.11 §7.2)
_STD_IN_DEVICE = 0x80
_STD_IN_INTERFACE = 0x81
_CLASS_IN_INTERFACE = 0xA1
_CLASS_OUT_INTERFACE = 0x21
_GET_DESCRIPTOR = 0x06
_GET_REPORT = 0x01
_SET_REPORT = 0x09
_DT_STRING = 0x03
_DT_HID = 0x21
_DT_REPORT = 0x22
REPORT_INPUT = 1
REPORT_OUTPUT = 2
REPORT_FEATURE = 3
_LANGID_EN_US = 0x0409
_MAX_DESCRIPTOR = 0xFFFF  # wLength is 16 bits
_FALLBACK_DESCRIPTOR = 4096  # when the HID class descriptor does not say
_STRING_TRIES = 3  # NUT retries string descriptors for Tripp Lite (#414)

# errno values that mean "the device is gone or unusable: reconnect"
_GONE = {errno.ENODEV, errno.EIO, errno.ENOENT, errno.EACCES, errno.EPERM, errno.EBUSY,
         errno.ENXIO, errno.ESHUTDOWN, errno.EPROTO}

MATCH_KEYS = ("vendorid", "productid", "vendor", "product", "serial", "bus", "device")

# POSIX bracket classes (ERE) that Python's re lacks
_POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z", "[:digit:]": "0-9", "[:alnum:]": "a-zA-Z0-9", "[:upper:]": "A-Z",
    "[:lower:]": "a-z", "[:space:]": r" \t\n\r\f\v", "[:blank:]": r" \t", "[:xdigit:]": "0-9A-Fa-f",
    "[:punct:]": r"!-/:-@\[-`{-~", "[:print:]": r" -~", "[:graph:]": r"!-~", "[:cntrl:]": r"\x00-\x1f\x7f",
}


class HidRefused(DeviceError):
    """The UPS refused a SET_REPORT (STALL) or did not answer it; the device is still there."""


# ---- device identity and matching ------------------------------------------


@dataclass(slots=True)
class UsbInfo:
    """What NUT prints as ``- VendorID: ... - Device release number`` for a device."""

    vendor_id: int
    product_id: int
    manufacturer: str | None
    product: str | None
    serial: str | None
    bus: str  # "001" as NUT formats it
    device: str  # the address, "004"
    release: int  # bcdDevice

    def describe(self) -> str:
        parts = [f"{self.vendor_id:04x}:{self.product_id:04x}"]
        for label, value in (("vendor", self.manufacturer), ("product", self.product),
                             ("serial", self.serial)):
            if value:
                parts.append(f"{label} {value.strip()!r}")
        parts.append(f"bus {self.bus} device {self.device}")
        return " ".join(parts)


def _posix_regex(pattern: str) -> str:
    for posix, py in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, py)
    return pattern


@dataclass
class Matcher:
    """NUT's USB matching options; every one is optional (unset matches anything)."""

    vendorid: str | None = None
    productid: str | None = None
    vendor: str | None = None
    product: str | None = None
    serial: str | None = None
    bus: str | None = None
    device: str | None = None
    _compiled: dict[str, re.Pattern[str]] = field(default_factory=dict, init=False, repr=False,
                                                  compare=False)

    def __post_init__(self) -> None:
        for key in MATCH_KEYS:
            pattern = getattr(self, key)
            if pattern is None:
                continue
            try:
                self._compiled[key] = re.compile(_posix_regex(pattern), re.IGNORECASE)
            except re.error as exc:
                raise ConfigError(f"{key} = {pattern!r} is not a valid regular expression: {exc}") from exc

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> Matcher:
        """The matcher of a ups.conf section; empty values count as unset."""
        kwargs = {key: config[key] for key in MATCH_KEYS if config.get(key)}
        return cls(**kwargs)

    @classmethod
    def same_device(cls, info: UsbInfo, base: Matcher | None = None) -> Matcher:
        """Match exactly the device ``info`` describes, wherever it re-enumerates: NUT's
        reconnect matcher (IDs, vendor/product strings and serial; not bus/device, which
        change on replug). ``base``'s own patterns stay in force."""
        b = base or cls()

        def exact(text: str | None) -> str:
            return re.escape((text or "").strip(" \t\n"))

        return cls(
            vendorid=f"{info.vendor_id:04x}",
            productid=f"{info.product_id:04x}",
            vendor=exact(info.manufacturer) if info.manufacturer else b.vendor,
            product=exact(info.product) if info.product else b.product,
            serial=exact(info.serial) if info.serial else b.serial,
            bus=b.bus,
            device=b.device,
        )

    def describe(self) -> str:
        given = [f"{key}={getattr(self, key)}" for key in MATCH_KEYS if getattr(self, key) is not None]
        return ", ".join(given) if given else "any device"

    def matches_ids(self, vendor_id: int, product_id: int) -> bool:
        """The ID part alone (checked before opening a device)."""
        return (self._match("vendorid", f"{vendor_id:04x}")
                and self._match("productid", f"{product_id:04x}"))

    def matches(self, info: UsbInfo) -> bool:
        return (self.matches_ids(info.vendor_id, info.product_id)
                and self._match("vendor", info.manufacturer)
                and self._match("product", info.product)
                and self._match("serial", info.serial)
                and self._match("bus", info.bus)
                and self._match("device", info.device))

    def _match(self, key: str, value: str | None) -> bool:
        pattern = self._compiled.get(key)
        if pattern is None:
            return True
        return pattern.fullmatch((value or "").strip(" \t\n")) is not None


# ---- error classification -------------------------------------------------


def _errno(exc: BaseException) -> int | None:
    if usb is not None and isinstance(exc, usb.core.USBTimeoutError):
        return errno.ETIMEDOUT
    return getattr(exc, "errno", None)


def _is_usb_error(exc: BaseException) -> bool:
    return usb is not None and isinstance(exc, usb.core.USBError)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# ---- the transport -------------------------------------------------------------


class HidTransport:
    """An opened, claimed HID interface of one USB UPS."""

    def __init__(self, dev: Any, info: UsbInfo, *, interface: int, interrupt_endpoint: int | None,
                 interrupt_packet_size: int, descriptor_length: int | None, detached: bool,
                 timeout: float) -> None:
        self.dev = dev  # usb.core.Device
        self.info = info
        self.interface = interface
        #: address of the interrupt IN endpoint (None: the device has none; poll only)
        self.interrupt_endpoint = interrupt_endpoint
        self.interrupt_packet_size = interrupt_packet_size
        #: report descriptor length from the HID class descriptor (None: not declared)
        self.descriptor_length = descriptor_length
        #: control transfer timeout, seconds
        self.timeout = timeout
        #: consecutive GET_REPORT timeouts tolerated before the UPS counts as gone
        self.max_timeouts = 3
        self._timeouts = 0
        self._detached = detached
        self._closed = False
        self._ctrl = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usbhid-ctrl")
        self._intr = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usbhid-intr")
        self._close_lock = threading.Lock()
        self._intr_pending: Future[bytes | None] | None = None

    # -- plumbing
    def __repr__(self) -> str:
        return f"<HidTransport {self.info.describe()}>"

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        if self._closed:
            raise DeviceError(f"USB device {self.info.describe()} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, fn)
        except RuntimeError as exc:  # executor shut down by a concurrent close()
            raise DeviceError(f"USB device {self.info.describe()} is closed") from exc

    def _gone(self, what: str, exc: BaseException) -> DeviceError:
        code = _errno(exc)
        if code == errno.ENODEV:
            msg = f"USB UPS {self.info.describe()} disconnected ({what}: {_reason(exc)})"
        elif code in (errno.EACCES, errno.EPERM):
            msg = f"USB UPS {self.info.describe()}: {what}: permission denied ({_reason(exc)})"
        else:
            msg = f"USB UPS {self.info.describe()}: {what} failed: {_reason(exc)}"
        return DeviceError(msg)

    def _ms(self, seconds: float | None = None) -> int:
        # libusb treats 0 as "wait forever": never pass it
        return max(1, round(1000 * (self.timeout if seconds is None else seconds)))

    # -- report descriptor
    async def report_descriptor(self) -> bytes:
        """The HID report descriptor (GET_DESCRIPTOR 0x22 on the interface)."""
        return await self._run(self._ctrl, self._report_descriptor)

    def _report_descriptor(self) -> bytes:
        length = self.descriptor_length
        if length is None:
            length = self._hid_descriptor_length()
        try:
            data = self.dev.ctrl_transfer(_STD_IN_INTERFACE, _GET_DESCRIPTOR, _DT_REPORT << 8,
                                          self.interface, min(length or _FALLBACK_DESCRIPTOR,
                                                              _MAX_DESCRIPTOR), self._ms())
        except Exception as exc:
            if not _is_usb_error(exc):
                raise
            raise self._gone("reading the HID report descriptor", exc) from exc
        out = bytes(data)
        if length is not None and len(out) < length:
            log.warning("USB UPS %s: report descriptor is %d bytes, %d announced",
                        self.info.describe(), len(out), length)
        return out

    def _hid_descriptor_length(self) -> int | None:
        # NUT's "method 2": ask for the HID class descriptor itself
        try:
            data = bytes(self.dev.ctrl_transfer(_STD_IN_INTERFACE, _GET_DESCRIPTOR, _DT_HID << 8,
                                                self.interface, 9, self._ms()))
        except Exception as exc:
            if not _is_usb_error(exc):
                raise
            if _errno(exc) in _GONE - {errno.EIO}:
                raise self._gone("reading the HID descriptor", exc) from exc
            return None
        return report_descriptor_length(data)

    # -- reports
    async def get_feature(self, report_id: int, length: int) -> bytes | None:
        """GET_REPORT(Feature). Bytes as the device sent them (ID byte first when report
        IDs are used; may be shorter than ``length``); None when unsupported (STALL) or
        not answered this time."""
        return await self._run(self._ctrl, lambda: self._get_report(REPORT_FEATURE, report_id, length))

    async def get_input(self, report_id: int, length: int) -> bytes | None:
        """GET_REPORT(Input) over the control pipe, same conventions as :meth:`get_feature`."""
        return await self._run(self._ctrl, lambda: self._get_report(REPORT_INPUT, report_id, length))

    def _get_report(self, kind: int, report_id: int, length: int) -> bytes | None:
        if not 0 <= report_id <= 0xFF or not 0 < length <= _MAX_DESCRIPTOR:
            raise ValueError(f"bad report request: id {report_id}, length {length}")
        try:
            data = self.dev.ctrl_transfer(_CLASS_IN_INTERFACE, _GET_REPORT, (kind << 8) | report_id,
                                          self.interface, length, self._ms())
        except Exception as exc:
            if not _is_usb_error(exc):
                raise
            code = _errno(exc)
            if code == errno.EPIPE:
                self._timeouts = 0
                return None  # STALL: report not supported
            if code == errno.ETIMEDOUT:
                self._timeouts += 1
                if self._timeouts >= self.max_timeouts:
                    raise DeviceError(f"USB UPS {self.info.describe()} stopped answering "
                                      f"({self._timeouts} GET_REPORT timeouts in a row)") from exc
                return None
            if code == errno.EOVERFLOW:  # babble: sent more than asked; skip the value
                log.debug("USB UPS %s: report 0x%02x overflow", self.info.describe(), report_id)
                return None
            raise self._gone(f"GET_REPORT 0x{report_id:02x}", exc) from exc
        self._timeouts = 0
        return bytes(data)

    async def set_feature(self, report_id: int, data: bytes) -> None:
        """SET_REPORT(Feature); ``data`` is the whole report (ID byte first when IDs are
        used). :class:`HidRefused` when the UPS stalls or does not answer."""
        await self._run(self._ctrl, lambda: self._set_report(REPORT_FEATURE, report_id, bytes(data)))

    async def set_output(self, report_id: int, data: bytes) -> None:
        """SET_REPORT(Output), as :meth:`set_feature`."""
        await self._run(self._ctrl, lambda: self._set_report(REPORT_OUTPUT, report_id, bytes(data)))

    def _set_report(self, kind: int, report_id: int, data: bytes) -> None:
        if not 0 <= report_id <= 0xFF or not data:
            raise ValueError(f"bad report write: id {report_id}, {len(data)} bytes")
        try:
            sent = self.dev.ctrl_transfer(_CLASS_OUT_INTERFACE, _SET_REPORT, (kind << 8) | report_id,
                                          self.interface, data, self._ms())
        except Exception as exc:
            if not _is_usb_error(exc):
                raise
            code = _errno(exc)
            if code == errno.EPIPE:
                raise HidRefused(f"USB UPS {self.info.describe()} refused report 0x{report_id:02x} "
                                 f"({data.hex(' ')})") from exc
            if code == errno.ETIMEDOUT:
                raise HidRefused(f"USB UPS {self.info.describe()} did not answer the write of "
                                 f"report 0x{report_id:02x}") from exc
            raise self._gone(f"SET_REPORT 0x{report_id:02x}", exc) from exc
        if sent != len(data):
            raise HidRefused(f"USB UPS {self.info.describe()} took {sent} of {len(data)} bytes of "
                             f"report 0x{report_id:02x}")

    # -- interrupt IN
    async def read_interrupt(self, size: int, timeout: float) -> bytes | None:
        """One Input report from the interrupt endpoint; None after ``timeout`` seconds
        without one (or at once-per-timeout when the device has no such endpoint).

        Safe to cancel: the USB read in flight is not lost. The next call picks up that
        same read (and the report it got) instead of queueing a second one behind it."""
        if self.interrupt_endpoint is None:
            await asyncio.sleep(timeout)
            return None
        if self._closed:
            raise DeviceError(f"USB device {self.info.describe()} is closed")
        fut = self._intr_pending
        if fut is None:
            try:
                fut = self._intr.submit(self._read_interrupt, size, timeout)
            except RuntimeError as exc:  # shut down by a concurrent close()
                raise DeviceError(f"USB device {self.info.describe()} is closed") from exc
            self._intr_pending = fut
        waiter = asyncio.wrap_future(fut)
        # a cancelled caller leaves the waiter behind: fetch its outcome so asyncio
        # does not log "exception never retrieved"
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            result = await asyncio.shield(waiter)
        except asyncio.CancelledError:
            raise
        except BaseException:
            if self._intr_pending is fut:
                self._intr_pending = None
            raise
        if self._intr_pending is fut:
            self._intr_pending = None
        return result

    def _read_interrupt(self, size: int, timeout: float) -> bytes | None:
        ep = self.interrupt_endpoint
        try:
            data = self.dev.read(ep, size, self._ms(timeout))
        except Exception as exc:
            if not _is_usb_error(exc):
                raise
            code = _errno(exc)
            if code == errno.ETIMEDOUT:
                return None
            if code == errno.EPIPE:  # halted pipe: clear it, as usbhid-ups does
                try:
                    self.dev.clear_halt(ep)
                except Exception as exc2:
                    if not _is_usb_error(exc2):
                        raise
                    raise self._gone("clearing the interrupt pipe halt", exc2) from exc2
                return None
            if code == errno.EOVERFLOW:
                log.debug("USB UPS %s: interrupt report larger than %d bytes dropped",
                          self.info.describe(), size)
                return None
            raise self._gone("reading the interrupt pipe", exc) from exc
        return bytes(data)

    # -- strings
    async def string(self, index: int) -> str | None:
        """USB string descriptor ``index`` (None for 0 or when the device has none)."""
        if index <= 0 or index > 0xFF:
            return None
        return await self._run(self._ctrl, lambda: _read_string(self.dev, index, self._ms(), self._gone))

    # -- teardown
    async def close(self) -> None:
        """Release the interface (and give it back to the kernel driver); never raises."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        with self._close_lock:
            # pending transfers end within their timeouts; then nobody else uses dev
            self._intr.shutdown(wait=True)
            self._ctrl.shutdown(wait=True)
            try:
                usb.util.release_interface(self.dev, self.interface)
                if self._detached:
                    self.dev.attach_kernel_driver(self.interface)
            except Exception as exc:  # unplugged, or no kernel driver support
                log.debug("USB UPS %s: release: %s", self.info.describe(), exc)
            try:
                usb.util.dispose_resources(self.dev)
            except Exception as exc:
                log.debug("USB UPS %s: dispose: %s", self.info.describe(), exc)


def report_descriptor_length(hid_descriptor: bytes) -> int | None:
    """wDescriptorLength of the report descriptor in a HID class descriptor
    (``09 21 10 01 21 01 22 e7 02`` -> 743), or None."""
    d = hid_descriptor
    if len(d) < 6 or d[1] != _DT_HID:
        return None
    for k in range(d[5]):
        at = 6 + 3 * k
        if at + 3 > len(d):
            break
        if d[at] == _DT_REPORT:
            return d[at + 1] | (d[at + 2] << 8)
    return None


def _hid_length_from_extra(extra: Any) -> int | None:
    data = bytes(extra or b"")
    i = 0
    while i + 2 <= len(data):
        blen = data[i]
        if blen < 2:
            break
        if data[i + 1] == _DT_HID:
            return report_descriptor_length(data[i:i + blen])
        i += blen
    return None


def _read_string(dev: Any, index: int, timeout_ms: int,
                 gone: Callable[[str, BaseException], DeviceError] | None) -> str | None:
    """String descriptor ``index``; broken language tables assume en-US, as NUT does.
    None when unreadable; ``gone`` turns a vanished device into a DeviceError."""

    def transfer(value: int, langid: int, length: int) -> bytes | None:
        last: BaseException | None = None
        for _ in range(_STRING_TRIES):
            try:
                return bytes(dev.ctrl_transfer(_STD_IN_DEVICE, _GET_DESCRIPTOR, value, langid, length,
                                               timeout_ms))
            except Exception as exc:
                if not _is_usb_error(exc):
                    raise
                last = exc
                if _errno(exc) in (errno.ENODEV, errno.EACCES, errno.EPERM):
                    break
        if last is not None and _errno(last) in (errno.ENODEV, errno.EACCES, errno.EPERM):
            if gone is None:
                raise last
            raise gone(f"reading string {index}", last) from last
        return None

    langs = transfer(_DT_STRING << 8, 0, 4)
    if langs is not None and len(langs) >= 4 and langs[0] >= 4 and langs[1] == _DT_STRING:
        langid = langs[2] | (langs[3] << 8)
    else:
        langid = _LANGID_EN_US
    raw = transfer((_DT_STRING << 8) | index, langid, 254)
    if raw is None or len(raw) < 2 or raw[1] != _DT_STRING:
        return None
    end = min(raw[0], len(raw)) & ~1
    return raw[2:end].decode("utf-16-le", errors="replace")


# ---- finding and opening ---------------------------------------------------------


def _hid_interface(dev: Any) -> Any | None:
    try:
        cfg = dev[0]
        for intf in cfg:
            if intf.bInterfaceClass == HID_CLASS and intf.bAlternateSetting == 0:
                return intf
    except Exception as exc:
        if not (_is_usb_error(exc) or isinstance(exc, (IndexError, ValueError))):
            raise
    return None


def _info(dev: Any, timeout_ms: int) -> UsbInfo:
    def text(index: int) -> str | None:
        return _read_string(dev, index, timeout_ms, None) if index else None

    return UsbInfo(
        vendor_id=dev.idVendor,
        product_id=dev.idProduct,
        manufacturer=text(dev.iManufacturer),
        product=text(dev.iProduct),
        serial=text(dev.iSerialNumber),
        bus=f"{dev.bus or 0:03d}",
        device=f"{dev.address or 0:03d}",
        release=dev.bcdDevice,
    )


def _open_blocking(matcher: Matcher, backend: Any, accept: Callable[[UsbInfo], bool] | None,
                   timeout: float) -> HidTransport:
    if usb is None:
        raise DeviceError("USB support needs pyusb: pip install 'nutbridge-ups[usb]'")
    if backend is None:
        backend = usb.backend.libusb1.get_backend()
        if backend is None:
            raise DeviceError("libusb-1.0 was not found (install the libusb-1.0-0 package)")
    timeout_ms = max(1, round(timeout * 1000))
    seen: list[str] = []
    try:
        devices = list(usb.core.find(find_all=True, backend=backend))
    except Exception as exc:
        if not _is_usb_error(exc):
            raise
        raise DeviceError(f"cannot list USB devices: {_reason(exc)}") from exc
    for dev in devices:
        intf = _hid_interface(dev)
        if intf is None:
            continue
        ids = f"{dev.idVendor:04x}:{dev.idProduct:04x}"
        where = f"bus {dev.bus or 0:03d} device {dev.address or 0:03d}"
        if not matcher.matches_ids(dev.idVendor, dev.idProduct):
            seen.append(f"{ids} {where}")
            continue
        try:
            info = _info(dev, timeout_ms)
        except Exception as exc:
            if not _is_usb_error(exc):
                raise
            note = ("no permission: install the udev rule, see docs/usb.md"
                    if _errno(exc) in (errno.EACCES, errno.EPERM) else _reason(exc))
            seen.append(f"{ids} {where} ({note})")
            usb.util.dispose_resources(dev)
            continue
        if not matcher.matches(info) or (accept is not None and not accept(info)):
            seen.append(info.describe())
            usb.util.dispose_resources(dev)
            continue
        return _claim(dev, intf, info, timeout)
    what = ", ".join(seen) if seen else "no USB HID devices at all"
    raise DeviceError(f"no USB UPS matches {matcher.describe()} (seen: {what})")


def _claim(dev: Any, intf: Any, info: UsbInfo, timeout: float) -> HidTransport:
    number = intf.bInterfaceNumber
    detached = False
    try:
        try:
            if dev.is_kernel_driver_active(number):
                dev.detach_kernel_driver(number)
                detached = True
        except NotImplementedError:  # not on this platform (macOS, Windows)
            pass
        try:
            dev.get_active_configuration()
        except Exception as exc:
            if not _is_usb_error(exc) or _errno(exc) in _GONE:
                raise
            dev.set_configuration()
        usb.util.claim_interface(dev, number)
    except Exception as exc:
        if not _is_usb_error(exc):
            raise
        usb.util.dispose_resources(dev)
        code = _errno(exc)
        if code == errno.EBUSY:
            msg = (f"USB UPS {info.describe()} is in use by another program "
                   "(a NUT usbhid-ups driver?)")
        elif code in (errno.EACCES, errno.EPERM):
            msg = f"USB UPS {info.describe()}: permission denied (install the udev rule, see docs/usb.md)"
        elif code == errno.ENODEV:
            msg = f"USB UPS {info.describe()} disconnected while opening it"
        else:
            msg = f"USB UPS {info.describe()}: cannot claim interface {number}: {_reason(exc)}"
        raise DeviceError(msg) from exc
    ep_in, packet = None, 8
    for ep in intf:
        if (usb.util.endpoint_direction(ep.bEndpointAddress) == usb.util.ENDPOINT_IN
                and usb.util.endpoint_type(ep.bmAttributes) == usb.util.ENDPOINT_TYPE_INTR):
            ep_in, packet = ep.bEndpointAddress, ep.wMaxPacketSize
            break
    log.debug("USB UPS %s: claimed interface %d (kernel driver %s)", info.describe(), number,
              "detached" if detached else "not bound")
    return HidTransport(dev, info, interface=number, interrupt_endpoint=ep_in,
                        interrupt_packet_size=packet,
                        descriptor_length=_hid_length_from_extra(intf.extra_descriptors),
                        detached=detached, timeout=timeout)


def pyusb_version() -> str:
    """``pyusb 1.3.1`` (for driver.version.usb), or ``pyusb (not installed)``."""
    if usb is None:
        return "pyusb (not installed)"
    return f"pyusb {getattr(usb, '__version__', '?')}"


async def open_device(matcher: Matcher, *, backend: object | None = None,
                      accept: Callable[[UsbInfo], bool] | None = None,
                      timeout: float = 5.0) -> HidTransport:
    """Find the first HID device ``matcher`` (and ``accept``, e.g. "a subdriver knows
    this VID:PID") agrees on, detach the kernel driver from its HID interface and
    claim it. ``backend``: a pyusb backend (default libusb-1.0; tests pass a
    :class:`~nutbridge.simulation.fakeusb.FakeBackend`). DeviceError when nothing
    matches, listing what was seen."""
    return await asyncio.to_thread(_open_blocking, matcher, backend, accept, timeout)
