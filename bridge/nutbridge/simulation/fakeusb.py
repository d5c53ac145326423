"""A pyusb backend with simulated USB HID UPSes, for tests and dump replay.

:class:`FakeBackend` implements ``usb.backend.IBackend``, so the real pyusb core
(``usb.core.find``, ``Device.ctrl_transfer``, ``read``, claim/detach bookkeeping)
runs over it exactly as over libusb-1.0. The devices answer like hardware seen
through libusb on Linux:

* standard requests: device/configuration/string descriptors (string 0 = the
  language table), the HID class descriptor and the report descriptor;
* HID class requests: GET_REPORT (Feature/Input), SET_REPORT, SET_IDLE; report IDs
  the device does not have, or listed in :attr:`FakeHidDevice.stall`, STALL
  (``USBError`` EPIPE); anything else unknown STALLs too;
* the interrupt IN endpoint delivers what :meth:`FakeHidDevice.push_interrupt`
  queued, times out (``USBTimeoutError``) after the transfer's timeout, and
  answers EOVERFLOW when a report is larger than the read buffer;
* ``claim_interface`` fails with EBUSY while the kernel's usbhid driver is bound
  (detach it first) or another handle holds the interface;
* :meth:`FakeHidDevice.unplug` makes every transfer on open handles fail with
  ENODEV (blocked interrupt reads wake up with it) and removes the device from
  enumeration; :meth:`FakeHidDevice.replug` re-enumerates it at a new address
  with usbhid bound again, as the kernel does.

Errors carry libusb-1.0's codes and messages (``pyusb``'s libusb1 backend raises
the same ``USBError(strerror, code, errno)``).
"""

from __future__ import annotations

import array
import errno
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import usb.backend  # type: ignore[import-untyped]
import usb.core  # type: ignore[import-untyped]

# libusb-1.0 error codes / messages (libusb.h) as pyusb's libusb1 backend reports them
LIBUSB_ERROR_IO = -1
LIBUSB_ERROR_ACCESS = -3
LIBUSB_ERROR_NO_DEVICE = -4
LIBUSB_ERROR_NOT_FOUND = -5
LIBUSB_ERROR_BUSY = -6
LIBUSB_ERROR_TIMEOUT = -7
LIBUSB_ERROR_OVERFLOW = -8
LIBUSB_ERROR_PIPE = -9
_ERRORS = {
    LIBUSB_ERROR_IO: ("Input/output error", errno.EIO),
    LIBUSB_ERROR_ACCESS: ("Access denied (insufficient permissions)", errno.EACCES),
    LIBUSB_ERROR_NO_DEVICE: ("No such device (it may have been disconnected)", errno.ENODEV),
    LIBUSB_ERROR_NOT_FOUND: ("Entity not found", errno.ENOENT),
    LIBUSB_ERROR_BUSY: ("Resource busy", errno.EBUSY),
    LIBUSB_ERROR_TIMEOUT: ("Operation timed out", errno.ETIMEDOUT),
    LIBUSB_ERROR_OVERFLOW: ("Overflow", errno.EOVERFLOW),
    LIBUSB_ERROR_PIPE: ("Pipe error", errno.EPIPE),
}


def usb_error(code: int) -> Exception:
    """The exception pyusb's libusb1 backend raises for libusb error ``code``."""
    text, err = _ERRORS[code]
    if code == LIBUSB_ERROR_TIMEOUT:
        return usb.core.USBTimeoutError(text, code, err)  # type: ignore[no-any-return]
    return usb.core.USBError(text, code, err)  # type: ignore[no-any-return]


def _declares_report_ids(descriptor: bytes) -> bool:
    """Whether the report descriptor has a Report ID item (HID 1.11 §6.2.2.7)."""
    i = 0
    while i < len(descriptor):
        prefix = descriptor[i]
        if prefix == 0xFE:  # long item: size byte, tag byte, data
            i += 3 + (descriptor[i + 1] if i + 1 < len(descriptor) else 0)
            continue
        if prefix & 0xFC == 0x84:
            return True
        i += 1 + (0, 1, 2, 4)[prefix & 3]
    return False


# ---- descriptors (attribute bags, as pyusb reads them with getattr) ---------------


@dataclass
class _DeviceDescriptor:
    idVendor: int
    idProduct: int
    bcdDevice: int
    iManufacturer: int
    iProduct: int
    iSerialNumber: int
    bus: int
    address: int
    bLength: int = 18
    bDescriptorType: int = 1
    bcdUSB: int = 0x0110
    bDeviceClass: int = 0
    bDeviceSubClass: int = 0
    bDeviceProtocol: int = 0
    bMaxPacketSize0: int = 8
    bNumConfigurations: int = 1
    port_number: int | None = 1
    port_numbers: tuple[int, ...] | None = (1,)
    speed: int | None = 2  # LIBUSB_SPEED_FULL


@dataclass
class _ConfigDescriptor:
    wTotalLength: int
    bNumInterfaces: int = 1
    bLength: int = 9
    bDescriptorType: int = 2
    bConfigurationValue: int = 1
    iConfiguration: int = 0
    bmAttributes: int = 0xA0
    bMaxPower: int = 50
    extra_descriptors: list[int] = field(default_factory=list)


@dataclass
class _InterfaceDescriptor:
    bInterfaceNumber: int
    bNumEndpoints: int
    bInterfaceClass: int
    extra_descriptors: list[int]
    bLength: int = 9
    bDescriptorType: int = 4
    bAlternateSetting: int = 0
    bInterfaceSubClass: int = 0
    bInterfaceProtocol: int = 0
    iInterface: int = 0


@dataclass
class _EndpointDescriptor:
    bEndpointAddress: int
    wMaxPacketSize: int
    bLength: int = 7
    bDescriptorType: int = 5
    bmAttributes: int = 3  # interrupt
    bInterval: int = 10
    bRefresh: int = 0
    bSynchAddress: int = 0
    extra_descriptors: list[int] = field(default_factory=list)


# ---- the simulated device ------------------------------------------------------------


@dataclass(frozen=True)
class _DevRef:
    """What enumerate_devices yields: one enumeration of one device."""

    device: FakeHidDevice
    generation: int


class _Handle:
    def __init__(self, device: FakeHidDevice, generation: int) -> None:
        self.device = device
        self.generation = generation
        self.closed = False
        self.claimed: set[int] = set()


class FakeHidDevice:
    """One simulated USB HID UPS.

    ``features`` / ``inputs``: the current report per report ID (whole report, ID byte
    first when the descriptor uses IDs, as on the wire); tests change them to
    simulate the UPS. A report shorter than the descriptor says is returned short,
    as some APC firmware does. ``writes`` records every SET_REPORT as (report id,
    bytes). ``on_set(report_id, data)`` runs after each accepted write (return False
    to STALL it); without it an accepted write replaces the stored feature report.
    """

    def __init__(self, descriptor: bytes, *, vendor_id: int, product_id: int,
                 manufacturer: str | None = None, product: str | None = None, serial: str | None = None,
                 strings: Mapping[int, str] | None = None, bus: int = 1, address: int = 4,
                 features: Mapping[int, bytes] | None = None, inputs: Mapping[int, bytes] | None = None,
                 on_set: Callable[[int, bytes], bool | None] | None = None, release: int = 0x0100,
                 interface: int = 0, interface_class: int = 3, ep_in: int | None = 0x81,
                 packet_size: int = 64, string_indices: tuple[int, int, int] = (1, 2, 3),
                 kernel_driver: bool = True, uses_report_ids: bool | None = None) -> None:
        self.descriptor = bytes(descriptor)
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.release = release
        self.bus = bus
        self.address = address
        self.interface = interface
        self.interface_class = interface_class
        self.ep_in = ep_in
        self.packet_size = packet_size
        self.strings: dict[int, str] = {}
        self.i_manufacturer = self.i_product = self.i_serial = 0
        for attr, idx, text in (("i_manufacturer", string_indices[0], manufacturer),
                                ("i_product", string_indices[1], product),
                                ("i_serial", string_indices[2], serial)):
            if text is not None:
                setattr(self, attr, idx)
                self.strings[idx] = text
        self.strings.update(strings or {})
        self.features: dict[int, bytes] = {k: bytes(v) for k, v in (features or {}).items()}
        self.inputs: dict[int, bytes] = {k: bytes(v) for k, v in (inputs or {}).items()}
        self.on_set = on_set
        #: with report IDs the first byte of every report is its ID (guessed from the
        #: descriptor's first Report ID item unless given)
        self.uses_report_ids = (_declares_report_ids(self.descriptor) if uses_report_ids is None
                                else uses_report_ids)
        # ---- fault injection
        self.stall: set[int] = set()  #: report IDs answering STALL (both GET and SET)
        self.timeouts: set[int] = set()  #: report IDs whose GET/SET time out
        self.hang = False  #: every control and interrupt transfer times out
        self.access_denied = False  #: open fails with EACCES (no udev rule)
        self.interrupt_halted = False  #: interrupt IN answers EPIPE until clear_halt
        self.langids: bytes | None = b"\x04\x03\x09\x04"  #: None: string 0 STALLs
        # ---- observable state
        self.writes: list[tuple[int, bytes]] = []
        #: (bmRequestType, bRequest, wValue, wIndex, wLength) of every control transfer
        self.requests: list[tuple[int, int, int, int, int]] = []
        self.kernel_driver = kernel_driver  #: usbhid bound to the HID interface
        self.clear_halts = 0
        self.plugged = True
        self.generation = 0
        self._configuration = 1
        self._claimed_by: _Handle | None = None
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()

    def __repr__(self) -> str:
        state = "plugged" if self.plugged else "unplugged"
        return (f"<FakeHidDevice {self.vendor_id:04x}:{self.product_id:04x} bus {self.bus} "
                f"addr {self.address} {state}>")

    # ---- test controls
    def push_interrupt(self, data: bytes) -> None:
        """Queue one Input report for the interrupt IN endpoint."""
        with self._cond:
            self._queue.append(bytes(data))
            self._cond.notify_all()

    def set_input(self, data: bytes, *, interrupt: bool = True) -> None:
        """Store an Input report (ID byte first when IDs are used) and, by default,
        also send it on the interrupt endpoint, as a UPS does on a change."""
        rid = data[0] if self.uses_report_ids else 0
        with self._cond:
            self.inputs[rid] = bytes(data)
        if interrupt:
            self.push_interrupt(data)

    def unplug(self) -> None:
        """The cable is pulled: I/O fails with ENODEV and the device leaves enumeration."""
        with self._cond:
            self.plugged = False
            self._claimed_by = None
            self._queue.clear()
            self._cond.notify_all()

    def replug(self, *, address: int | None = None) -> None:
        """Plugged back: enumerated again (by default at the next free address, as a
        real bus does), usbhid bound again, nothing claimed, old handles stay dead."""
        with self._cond:
            if self.plugged:
                self.plugged = False
                self._cond.notify_all()
            self.generation += 1
            self.address = address if address is not None else (self.address % 127) + 1
            self.plugged = True
            self.kernel_driver = True
            self._claimed_by = None
            self._configuration = 1
            self._queue.clear()

    # ---- descriptors
    def hid_descriptor(self) -> bytes:
        n = len(self.descriptor)
        return bytes([9, 0x21, 0x11, 0x01, 0x00, 0x01, 0x22, n & 0xFF, n >> 8])

    def device_descriptor(self) -> _DeviceDescriptor:
        return _DeviceDescriptor(idVendor=self.vendor_id, idProduct=self.product_id, bcdDevice=self.release,
                                 iManufacturer=self.i_manufacturer, iProduct=self.i_product,
                                 iSerialNumber=self.i_serial, bus=self.bus, address=self.address)

    def _device_descriptor_bytes(self) -> bytes:
        d = self.device_descriptor()
        return bytes([18, 1, 0x10, 0x01, 0, 0, 0, 8, self.vendor_id & 0xFF, self.vendor_id >> 8,
                      self.product_id & 0xFF, self.product_id >> 8, self.release & 0xFF, self.release >> 8,
                      d.iManufacturer, d.iProduct, d.iSerialNumber, 1])

    def endpoints(self) -> list[_EndpointDescriptor]:
        """The interface's endpoints in order: the interrupt IN, if any (subclasses add more)."""
        return [] if self.ep_in is None else [_EndpointDescriptor(self.ep_in, self.packet_size)]

    def interface_descriptor(self) -> _InterfaceDescriptor:
        return _InterfaceDescriptor(bInterfaceNumber=self.interface,
                                    bNumEndpoints=len(self.endpoints()),
                                    bInterfaceClass=self.interface_class,
                                    extra_descriptors=list(self.hid_descriptor()))

    def _config_bytes(self) -> bytes:
        eps = self.endpoints()
        intf = bytes([9, 4, self.interface, 0, len(eps), self.interface_class, 0, 0, 0])
        body = intf + self.hid_descriptor()
        for ep in eps:
            body += bytes([7, 5, ep.bEndpointAddress, 3, ep.wMaxPacketSize & 0xFF,
                           ep.wMaxPacketSize >> 8, 10])
        total = 9 + len(body)
        return bytes([9, 2, total & 0xFF, total >> 8, 1, 1, 0, 0xA0, 50]) + body

    # ---- the wire (called by FakeBackend with the device lock not held)
    def _check(self, handle: _Handle) -> None:
        if handle.closed:
            raise usb_error(LIBUSB_ERROR_IO)
        if not self.plugged or handle.generation != self.generation:
            raise usb_error(LIBUSB_ERROR_NO_DEVICE)

    def _timeout(self, timeout: int) -> Exception:
        # a real timeout takes its time; wake early on unplug
        with self._cond:
            self._cond.wait_for(lambda: not self.plugged, timeout=timeout / 1000 if timeout else None)
            if not self.plugged:
                return usb_error(LIBUSB_ERROR_NO_DEVICE)
        return usb_error(LIBUSB_ERROR_TIMEOUT)

    def control(self, handle: _Handle, bm: int, req: int, value: int, index: int, data: array.array[int],
                timeout: int) -> int:
        length = len(data) * data.itemsize
        with self._cond:
            self._check(handle)
            self.requests.append((bm, req, value, index, length))
            hang = self.hang
        if hang:
            raise self._timeout(timeout)
        if bm & 0x80:
            answer = self._control_in(bm, req, value, index, length, timeout)
            n = min(len(answer), length)
            data[:n] = array.array("B", answer[:n])
            return n
        self._control_out(handle, bm, req, value, index, bytes(data), timeout)
        return length

    def _control_in(self, bm: int, req: int, value: int, index: int, length: int, timeout: int) -> bytes:
        kind, idx = value >> 8, value & 0xFF
        if bm == 0x80 and req == 0x06:  # GET_DESCRIPTOR (device)
            if kind == 1:
                return self._device_descriptor_bytes()
            if kind == 2 and idx == 0:
                return self._config_bytes()
            if kind == 3:
                if idx == 0:
                    if self.langids is None:
                        raise usb_error(LIBUSB_ERROR_PIPE)
                    return self.langids
                text = self.strings.get(idx)
                if text is not None:
                    raw = text.encode("utf-16-le")[:252]
                    return bytes([2 + len(raw), 3]) + raw
        elif bm == 0x80 and req == 0x00:  # GET_STATUS
            return b"\x00\x00"
        elif bm == 0x81 and req == 0x06 and index == self.interface:  # GET_DESCRIPTOR (interface)
            if value == 0x2100:
                return self.hid_descriptor()
            if value == 0x2200:
                return self.descriptor
        elif bm == 0xA1 and req == 0x01 and index == self.interface:  # GET_REPORT
            table = {1: self.inputs, 3: self.features}.get(kind)
            if table is not None:
                if idx in self.timeouts:
                    raise self._timeout(timeout)
                with self._cond:
                    report = table.get(idx)
                if report is not None and idx not in self.stall:
                    return report
        raise usb_error(LIBUSB_ERROR_PIPE)

    def _control_out(self, handle: _Handle, bm: int, req: int, value: int, index: int, data: bytes,
                     timeout: int) -> None:
        kind, idx = value >> 8, value & 0xFF
        if bm == 0x21 and index == self.interface:
            if req == 0x0A:  # SET_IDLE
                return
            if req == 0x09 and kind in (2, 3):  # SET_REPORT (Output/Feature)
                self.writes.append((idx, data))
                if idx in self.timeouts:
                    raise self._timeout(timeout)
                with self._cond:
                    known = idx in self.features or kind == 2 or self.on_set is not None
                if idx in self.stall or not known:
                    raise usb_error(LIBUSB_ERROR_PIPE)
                if self.on_set is not None:
                    if self.on_set(idx, data) is False:
                        raise usb_error(LIBUSB_ERROR_PIPE)
                elif kind == 3:
                    with self._cond:
                        self.features[idx] = data
                return
        raise usb_error(LIBUSB_ERROR_PIPE)

    def interrupt_out(self, handle: _Handle, ep: int, data: bytes, timeout: int) -> int:
        """An interrupt OUT transfer: a HID UPS has no such endpoint (subclasses may)."""
        raise usb_error(LIBUSB_ERROR_PIPE)

    def interrupt_in(self, handle: _Handle, ep: int, buff: array.array[int], timeout: int) -> int:
        with self._cond:
            self._check(handle)
            if self.ep_in is None or ep != self.ep_in:
                raise usb_error(LIBUSB_ERROR_PIPE)
            if self.interrupt_halted:
                raise usb_error(LIBUSB_ERROR_PIPE)
            deadline = time.monotonic() + timeout / 1000 if timeout else None
            while not self._queue or self.hang:
                self._check(handle)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise usb_error(LIBUSB_ERROR_TIMEOUT)
                self._cond.wait(left)
            self._check(handle)
            report = self._queue.popleft()
        size = len(buff) * buff.itemsize
        if len(report) > size:
            raise usb_error(LIBUSB_ERROR_OVERFLOW)
        buff[:len(report)] = array.array("B", report)
        return len(report)

    # ---- handle management
    def open(self, generation: int) -> _Handle:
        with self._cond:
            if not self.plugged or generation != self.generation:
                raise usb_error(LIBUSB_ERROR_NO_DEVICE)
            if self.access_denied:
                raise usb_error(LIBUSB_ERROR_ACCESS)
            return _Handle(self, generation)

    def close(self, handle: _Handle) -> None:
        with self._cond:
            handle.closed = True
            if self._claimed_by is handle:
                self._claimed_by = None
            self._cond.notify_all()

    def claim(self, handle: _Handle, intf: int) -> None:
        with self._cond:
            self._check(handle)
            if intf != self.interface:
                raise usb_error(LIBUSB_ERROR_NOT_FOUND)
            if self.kernel_driver or (self._claimed_by is not None and self._claimed_by is not handle):
                raise usb_error(LIBUSB_ERROR_BUSY)
            self._claimed_by = handle
            handle.claimed.add(intf)

    def unclaim(self, handle: _Handle, intf: int) -> None:
        with self._cond:
            self._check(handle)
            if self._claimed_by is not handle or intf not in handle.claimed:
                raise usb_error(LIBUSB_ERROR_NOT_FOUND)
            self._claimed_by = None
            handle.claimed.discard(intf)

    @property
    def claimed(self) -> bool:
        """Someone holds the HID interface."""
        return self._claimed_by is not None


class FakeBackend(usb.backend.IBackend):  # type: ignore[misc]
    """pyusb backend over :class:`FakeHidDevice` objects (``usb.core.find(backend=...)``)."""

    def __init__(self, devices: list[FakeHidDevice] | None = None) -> None:
        super().__init__()
        self.devices: list[FakeHidDevice] = list(devices or [])

    def add(self, device: FakeHidDevice) -> FakeHidDevice:
        self.devices.append(device)
        return device

    # ---- enumeration and descriptors
    def enumerate_devices(self) -> Iterator[_DevRef]:
        for d in list(self.devices):
            if d.plugged:
                yield _DevRef(d, d.generation)

    def get_parent(self, dev: _DevRef) -> None:
        return None

    def get_device_descriptor(self, dev: _DevRef) -> _DeviceDescriptor:
        return dev.device.device_descriptor()  # cached by the OS: works after unplug too

    def get_configuration_descriptor(self, dev: _DevRef, config: int) -> _ConfigDescriptor:
        if config != 0:
            raise IndexError(f"Invalid configuration index {config}")
        d = dev.device
        return _ConfigDescriptor(wTotalLength=len(d._config_bytes()))

    def get_interface_descriptor(self, dev: _DevRef, intf: int, alt: int,
                                 config: int) -> _InterfaceDescriptor:
        if config != 0 or intf != 0:
            raise IndexError(f"Invalid interface index {intf}")
        if alt != 0:
            raise IndexError(f"Invalid alternate setting index {alt}")
        return dev.device.interface_descriptor()

    def get_endpoint_descriptor(self, dev: _DevRef, ep: int, intf: int, alt: int,
                                config: int) -> _EndpointDescriptor:
        eps = dev.device.endpoints()
        if not 0 <= ep < len(eps) or intf != 0 or alt != 0 or config != 0:
            raise IndexError(f"Invalid endpoint index {ep}")
        return eps[ep]

    # ---- handles
    def open_device(self, dev: _DevRef) -> _Handle:
        return dev.device.open(dev.generation)

    def close_device(self, dev_handle: _Handle) -> None:
        dev_handle.device.close(dev_handle)

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        d = dev_handle.device
        d._check(dev_handle)
        if config_value not in (0, 1):
            raise usb_error(LIBUSB_ERROR_NOT_FOUND)
        if d.claimed:
            raise usb_error(LIBUSB_ERROR_BUSY)
        d._configuration = config_value

    def get_configuration(self, dev_handle: _Handle) -> int:
        dev_handle.device._check(dev_handle)
        return dev_handle.device._configuration

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        dev_handle.device._check(dev_handle)
        if intf != dev_handle.device.interface or altsetting != 0:
            raise usb_error(LIBUSB_ERROR_NOT_FOUND)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        dev_handle.device.claim(dev_handle, intf)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        dev_handle.device.unclaim(dev_handle, intf)

    # ---- transfers
    def ctrl_transfer(self, dev_handle: _Handle, bmRequestType: int, bRequest: int, wValue: int, wIndex: int,
                      data: array.array[int], timeout: int) -> int:
        return dev_handle.device.control(dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout)

    def intr_read(self, dev_handle: _Handle, ep: int, intf: int, buff: array.array[int], timeout: int) -> int:
        return dev_handle.device.interrupt_in(dev_handle, ep, buff, timeout)

    def intr_write(self, dev_handle: _Handle, ep: int, intf: int, data: array.array[int],
                   timeout: int) -> int:
        return dev_handle.device.interrupt_out(dev_handle, ep, bytes(data), timeout)

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        d = dev_handle.device
        with d._cond:
            d._check(dev_handle)
            d.interrupt_halted = False
            d.clear_halts += 1

    # ---- kernel driver
    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        d = dev_handle.device
        d._check(dev_handle)
        return intf == d.interface and d.kernel_driver

    def detach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        d = dev_handle.device
        with d._cond:
            d._check(dev_handle)
            if intf != d.interface or not d.kernel_driver:
                raise usb_error(LIBUSB_ERROR_NOT_FOUND)
            d.kernel_driver = False

    def attach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        d = dev_handle.device
        with d._cond:
            d._check(dev_handle)
            if intf != d.interface:
                raise usb_error(LIBUSB_ERROR_NOT_FOUND)
            if d._claimed_by is not None:
                raise usb_error(LIBUSB_ERROR_BUSY)
            d.kernel_driver = True

