"""Megatec/Q1 UPSes behind USB bridge chips, for the fake pyusb backend.

Each class here is a :class:`~nutbridge.simulation.fakeusb.FakeHidDevice` whose HID
interface does not carry HID reports but a Megatec serial line, framed the way one family
of bridges does it (the framings nutdrv_qx's USB subdrivers speak, written here from the
descriptions of those bridges, independently of the driver's side):

==================  =======================================================================
``CypressDevice``   request in 8-byte SET_REPORTs (wValue 0x0200; ``wvalue=0x0002``: the
                    Ippon/Mustek and Gtec bridges), NULs dropped; reply in 8-byte interrupt
                    reports on 0x81, zero padded. ``PhoenixDevice``: the same, and
                    :meth:`PhoenixDevice.stale` leaves old bytes in the bridge.
``IpponDevice``     as Cypress with wValue 0x0002; the whole reply in one 64-byte report,
                    ``00 0d`` when there is nothing to say.
``SgsDevice``       length byte + up to 7 bytes per 8-byte report, both ways.
``FujiDevice``      the request in one interrupt OUT report on 0x02 (``80 06 n+1 03 <cmd>
                    ... <reply length>``); reply in zero-padded 8-byte reports.
``KraulerDevice``   string descriptors: index -> request (3 Q1, 13 F, 12 I, 4 T, 5 TL, 7 Q,
                    11 C); the string is the reply. Answers only in :attr:`langid`, while
                    string 0 may advertise another (the devices that need ``langid_fix``).
``FabulaDevice``    string descriptors (3 Q1, 13 F, 12 I, 7 Q, 10 C, shutdown ``Sn[Rm]`` in
                    0x10 steps); commands are answered "UPS No Ack". ``HunnoxDevice``: the
                    same plus 0xF3 (BL).
``SnrDevice``       Krauler's Q1/F/I strings, NULs unless an interrupt read woke it.
``ArmacDevice``     ``a0+n`` + 3 bytes per 4-byte SET_REPORT; reply in 6-byte reports
                    ``80+n`` + 5 bytes (``interrupt_path``: both ways on 64-byte interrupt
                    endpoints 0x02/0x82).
``AblerexDevice``   SET_REPORT Feature 5 (``05 00 n <cmd>``, 47 bytes); GET_REPORT Feature 5
                    holds the reply.
==================  =======================================================================

``PhoenixtecDevice`` is Masterguard's cable: the request in a vendor control write
(bRequest 0x0D), the reply in 8-byte interrupt reports on 0x81.

Behind the bridge sits a *UPS*: anything with ``handle(request) -> reply | None`` that
answers CR-terminated requests: :func:`megatec_ups` (the Megatec/Voltronic simulator's
replies and commands on the :mod:`.model` physics, the same as on a pty) or
:class:`ReplayedUPS` (fixed replies, e.g. :func:`dump_replies` from a DDL dump). What
reached the UPS is in :attr:`FakeQxDevice.received`.

All of them run on :class:`~nutbridge.simulation.fakeusb.FakeBackend` (it asks a device for
its endpoints and forwards interrupt writes); :data:`FakeQxBackend` is another name for it.
"""

from __future__ import annotations

import array
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .fakeusb import LIBUSB_ERROR_PIPE, FakeBackend, FakeHidDevice, _EndpointDescriptor, usb_error
from .megatec import MegatecSimulator
from .model import Params, SimUPS

#: a vendor-page report descriptor of 8-byte Input and Output reports, as these bridges
#: declare (nothing reads it: the bytes are not HID usages)
BRIDGE_DESCRIPTOR = bytes.fromhex("0600ff 0901 a101 1500 26ff00 7508 9508 0901 8102 0901 9102 c0")


class UPS(Protocol):
    """The UPS behind the bridge: one CR-terminated request in, its reply (or None) out."""

    def handle(self, data: bytes) -> bytes | None: ...


def megatec_ups(model: SimUPS | None = None, *, protocol: str = "megatec",
                echo_unknown: bool = False, mfr: str = "NUT Bridge", ups_model: str = "SimQ1",
                firmware: str = "SIM-1.0", serial: str = "SIM0000001") -> MegatecSimulator:
    """The pty simulator's UPS (replies, commands, :attr:`~MegatecSimulator.commands`), used
    without its pty: only its ``handle`` runs. Its clock is stopped (``speed=0``): tests
    change ``.model`` to script an outage."""
    return MegatecSimulator(os.devnull, model=model or SimUPS(Params(seed=1)), speed=0,
                            protocol=protocol, echo_unknown=echo_unknown, mfr=mfr,
                            ups_model=ups_model, firmware=firmware, serial=serial)


@dataclass
class ReplayedUPS:
    """Fixed replies (request -> reply line); anything else is a command, recorded, unanswered."""

    replies: Mapping[bytes, bytes]
    commands: list[str] = field(default_factory=list)

    def handle(self, data: bytes) -> bytes | None:
        reply = self.replies.get(data)
        if reply is None:
            self.commands.append(data.rstrip(b"\r").decode("ascii", "replace"))
        return reply


def _number(values: Mapping[str, str], key: str) -> float | None:
    try:
        return float(values[key])
    except (KeyError, ValueError):
        return None


def dump_replies(values: Mapping[str, str]) -> dict[bytes, bytes]:
    """The Q1, F and I lines a UPS sent to produce a DDL dump's values (``upsc`` names):
    NUT's Megatec columns filled from the dump, ``--.-`` where it has no number, the
    status bits from ``ups.status``/``ups.alarm``/``ups.type``/``ups.beeper.status``. F
    and I only when the dump shows a rating / an identity (else the UPS did not answer)."""
    def num(key: str, width: int, decimals: int = 1) -> str:
        v = _number(values, key)
        if v is None:  # "--.-": no number, the field is left out
            return "-" * width if not decimals else "-" * (width - decimals - 1) + "." + "-" * decimals
        return f"{v:0{width}.{decimals}f}"

    status = values.get("ups.status", "").split()
    alarm = values.get("ups.alarm", "")
    beeper = values.get("ups.beeper.status", values.get("beeper.status", ""))
    bits = "".join("1" if b else "0" for b in (
        "OB" in status, "LB" in status, bool({"TRIM", "BOOST", "BYPASS"} & set(status)),
        "selftest failed" in alarm, values.get("ups.type", "").startswith("offline"),
        "CAL" in status, "FSD" in status, beeper == "enabled"))
    batt = _number(values, "battery.voltage")
    battery = num("battery.voltage", 4, 2 if batt is not None and batt < 10 else 1)
    q1 = (f"({num('input.voltage', 5)} {num('input.voltage.fault', 5)} "
          f"{num('output.voltage', 5)} {num('ups.load', 3, 0)} "
          f"{num('input.frequency', 4)} {battery} {num('ups.temperature', 4)} {bits}\r")
    amps = values.get("input.current.nominal", "")
    amps = amps if len(amps) == 3 else num("input.current.nominal", 3, 0)
    f = (f"#{num('input.voltage.nominal', 5)} {amps} {num('battery.voltage.nominal', 5)} "
         f"{num('input.frequency.nominal', 4)}\r")
    ident = (values.get("device.mfr", values.get("ups.mfr", "")),
             values.get("device.model", values.get("ups.model", "")), values.get("ups.firmware", ""))
    i = f"#{ident[0][:15]:<15} {ident[1][:10]:<10} {ident[2][:10]:<10}\r"
    out = {b"Q1\r": q1.encode()}
    if any(k.endswith(".nominal") and values.get(k) for k in values):
        out[b"F\r"] = f.encode()
    if any(ident):  # a UPS that printed no identity did not answer I
        out[b"I\r"] = i.encode()
    return out


def _string_descriptor(text: bytes) -> bytes:
    raw = text.decode("latin-1").encode("utf-16-le")[:252]
    return bytes([2 + len(raw), 3]) + raw


class FakeQxDevice(FakeHidDevice):
    """A Megatec UPS behind a USB bridge; subclasses frame the bytes.

    ``ups`` answers the requests; :attr:`received` lists them as the UPS got them."""

    def __init__(self, ups: UPS, *, vendor_id: int, product_id: int,
                 manufacturer: str | None = None, product: str | None = None,
                 serial: str | None = None, bus: int = 1, address: int = 5,
                 ep_in: int | None = 0x81, packet_size: int = 8, ep_out: int | None = None,
                 out_packet_size: int = 8, kernel_driver: bool = True) -> None:
        super().__init__(BRIDGE_DESCRIPTOR, vendor_id=vendor_id, product_id=product_id,
                         manufacturer=manufacturer, product=product, serial=serial, bus=bus,
                         address=address, ep_in=ep_in, packet_size=packet_size,
                         kernel_driver=kernel_driver, uses_report_ids=False)
        self.ups = ups
        self.ep_out = ep_out
        self.out_packet_size = out_packet_size
        self.received: list[bytes] = []  #: the requests the UPS got, CR included
        self.interrupt_writes: list[tuple[int, bytes]] = []  #: (endpoint, bytes) written
        self.vendor_writes: list[tuple[int, bytes]] = []  #: (bRequest, bytes) written
        self._line = bytearray()

    # ---- the UPS side
    def _ask(self, request: bytes) -> bytes | None:
        """Hand one request to the UPS (under the device lock: tests change it meanwhile)."""
        with self._cond:
            self.received.append(request)
            return self.ups.handle(request)

    def _feed(self, data: bytes) -> list[bytes]:
        """Bytes as the bridge's UART sends them to the UPS (NULs are padding): the
        complete requests they finish."""
        self._line += data.replace(b"\0", b"")
        done = []
        while (cr := self._line.find(b"\r")) >= 0:
            done.append(bytes(self._line[:cr + 1]))
            del self._line[:cr + 1]
        return done

    def _queue_chunks(self, reply: bytes, size: int) -> None:
        for i in range(0, len(reply), size):
            self.push_interrupt(reply[i:i + size].ljust(size, b"\0"))

    # ---- USB: endpoints beyond fakeusb's single interrupt IN
    def endpoints(self) -> list[_EndpointDescriptor]:
        eps = super().endpoints()
        if self.ep_out is not None:
            eps.append(_EndpointDescriptor(self.ep_out, self.out_packet_size))
        return eps

    def interrupt_out(self, handle: Any, ep: int, data: bytes, timeout: int) -> int:
        with self._cond:
            self._check(handle)
            if self.ep_out is None or ep != self.ep_out:
                raise usb_error(LIBUSB_ERROR_PIPE)
            hang = self.hang
        if hang:
            raise self._timeout(timeout)
        self.interrupt_writes.append((ep, bytes(data)))
        self.on_interrupt_out(bytes(data))
        return len(data)

    def on_interrupt_out(self, data: bytes) -> None:
        raise usb_error(LIBUSB_ERROR_PIPE)

    # ---- USB: class requests go to the bridge
    def _control_out(self, handle: Any, bm: int, req: int, value: int, index: int, data: bytes,
                     timeout: int) -> None:
        if bm == 0x21 and req == 0x09 and index == self.interface:
            self.writes.append((value, data))
            if self.on_set_report(value, data):
                return
        elif bm == 0x21 and req == 0x0A and index == self.interface:  # SET_IDLE
            return
        elif bm == 0x42:  # vendor request to an endpoint
            self.vendor_writes.append((req, data))
            if self.on_vendor_out(req, data):
                return
        raise usb_error(LIBUSB_ERROR_PIPE)

    def on_vendor_out(self, req: int, data: bytes) -> bool:
        """A vendor control write (``req`` = bRequest); False to STALL it."""
        return False

    def on_set_report(self, value: int, data: bytes) -> bool:
        """A SET_REPORT (``value`` = wValue); False to STALL it."""
        return False


class CypressDevice(FakeQxDevice):
    """Cypress-style bridge (also Phoenix, Ippon/Gtec writes with ``wvalue=0x0002``)."""

    def __init__(self, ups: UPS, *, vendor_id: int = 0x0665, product_id: int = 0x5161,
                 wvalue: int = 0x0200, **kw: Any) -> None:
        super().__init__(ups, vendor_id=vendor_id, product_id=product_id, **kw)
        self.wvalue = wvalue

    def on_set_report(self, value: int, data: bytes) -> bool:
        if value != self.wvalue or len(data) != 8:
            return False
        for request in self._feed(data):
            self.reply(self._ask(request))
        return True

    def reply(self, reply: bytes | None) -> None:
        if reply:
            self._queue_chunks(reply, 8)


class PhoenixDevice(CypressDevice):
    def __init__(self, ups: UPS, *, vendor_id: int = 0x06DA, product_id: int = 0x0601,
                 **kw: Any) -> None:
        super().__init__(ups, vendor_id=vendor_id, product_id=product_id, **kw)

    def stale(self, data: bytes) -> None:
        """Old bytes left in the bridge (a reply nobody read)."""
        self._queue_chunks(data, 8)


class IpponDevice(CypressDevice):
    def __init__(self, ups: UPS, *, vendor_id: int = 0x06DA, product_id: int = 0x0003,
                 **kw: Any) -> None:
        super().__init__(ups, vendor_id=vendor_id, product_id=product_id, wvalue=0x0002,
                         packet_size=64, **kw)

    def reply(self, reply: bytes | None) -> None:
        self.push_interrupt((reply or b"\0\r").ljust(64, b"\0")[:64])


class SgsDevice(CypressDevice):
    def __init__(self, ups: UPS, *, vendor_id: int = 0x0483, product_id: int = 0x0035,
                 **kw: Any) -> None:
        super().__init__(ups, vendor_id=vendor_id, product_id=product_id, **kw)

    def on_set_report(self, value: int, data: bytes) -> bool:
        if value != 0x0200 or len(data) != 8 or data[0] > 7:
            return False
        for request in self._feed(data[1:1 + data[0]]):
            reply = self._ask(request) or b""
            for i in range(0, len(reply), 7):
                piece = reply[i:i + 7]
                self.push_interrupt(bytes([len(piece)]) + piece.ljust(7, b"\0"))
        return True


class FujiDevice(FakeQxDevice):
    def __init__(self, ups: UPS, *, vendor_id: int = 0x0001, product_id: int = 0x0000,
                 manufacturer: str | None = "ATCL FOR UPS", product: str | None = "ATCL FOR UPS",
                 **kw: Any) -> None:
        super().__init__(ups, vendor_id=vendor_id, product_id=product_id,
                         manufacturer=manufacturer, product=product, ep_out=0x02, **kw)
        self.reply_lengths: list[int] = []  #: the reply length each request announced

    def on_interrupt_out(self, data: bytes) -> None:
        if len(data) != 8 or data[:2] != b"\x80\x06" or data[3] != 0x03 or not 1 <= data[2] <= 4:
            raise usb_error(LIBUSB_ERROR_PIPE)
        self.reply_lengths.append(data[7])
        reply = self._ask(data[4:4 + data[2] - 1] + b"\r")
        if reply:
            self._queue_chunks(reply, 8)


class _StringDevice(FakeQxDevice):
    """A bridge that answers through string descriptors (index -> request)."""

    #: string index -> the request it stands for
    INDEX: Mapping[int, bytes] = {}
    #: what a command (a request the UPS does not answer) reads as
    COMMAND_TEXT = b"ACK"

    def __init__(self, ups: UPS, *, vendor_id: int = 0x0001, product_id: int = 0x0000,
                 langid: int = 0x0409, **kw: Any) -> None:
        super().__init__(ups, vendor_id=vendor_id, product_id=product_id, **kw)
        self.langid = langid  #: the only language the firmware answers in
        self.langids = bytes([4, 3, langid & 0xFF, langid >> 8])
        self.no_ack = 0  #: answer the next n reads "UPS No Ack"

    def request_for(self, index: int) -> bytes | None:
        return self.INDEX.get(index)

    def _control_in(self, bm: int, req: int, value: int, index: int, length: int,
                    timeout: int) -> bytes:
        string = value & 0xFF
        if bm == 0x80 and req == 0x06 and value >> 8 == 3 and string:
            request = self.request_for(string)
            if request is not None:
                if index != self.langid:
                    raise usb_error(LIBUSB_ERROR_PIPE)
                return _string_descriptor(self.string_reply(request))[:length]
        return super()._control_in(bm, req, value, index, length, timeout)

    def string_reply(self, request: bytes) -> bytes:
        if self.no_ack > 0:
            self.no_ack -= 1
            return b"UPS No Ack"
        reply = self._ask(request)
        return reply.rstrip(b"\r") if reply else self.COMMAND_TEXT


class KraulerDevice(_StringDevice):
    INDEX = {0x03: b"Q1\r", 0x0D: b"F\r", 0x0C: b"I\r", 0x04: b"T\r", 0x05: b"TL\r", 0x07: b"Q\r",
             0x0B: b"C\r"}


class SnrDevice(_StringDevice):
    """Krauler's Q1/F/I strings; the firmware answers NULs unless an interrupt read woke
    it since the last string (its interrupt endpoint always has a report at once)."""

    INDEX = {0x03: b"Q1\r", 0x0D: b"F\r", 0x0C: b"I\r"}

    def __init__(self, ups: UPS, **kw: Any) -> None:
        super().__init__(ups, **kw)
        self.awake = False

    def interrupt_in(self, handle: Any, ep: int, buff: array.array[int], timeout: int) -> int:
        with self._cond:
            self._check(handle)
            self.awake = True
        return 0

    def string_reply(self, request: bytes) -> bytes:
        with self._cond:
            awake, self.awake = self.awake, False
        return super().string_reply(request) if awake else bytes(47)


class FabulaDevice(_StringDevice):
    INDEX = {0x03: b"Q1\r", 0x0D: b"F\r", 0x0C: b"I\r", 0x07: b"Q\r", 0x0A: b"C\r"}
    COMMAND_TEXT = b"UPS No Ack"

    def __init__(self, ups: UPS, *, manufacturer: str | None = "MEC",
                 product: str | None = "MEC0003", **kw: Any) -> None:
        super().__init__(ups, manufacturer=manufacturer, product=product, **kw)

    def request_for(self, index: int) -> bytes | None:
        known = self.INDEX.get(index)
        if known is not None or index < 0x10 or index & 0x07:
            return known
        step = index >> 4  # 1..5: 0.5..0.9 min; 6..15: 1..10 min
        delay = f".{step + 4}" if step < 6 else f"{step - 5:02d}"
        return f"S{delay}{'' if index & 0x08 else 'R0000'}\r".encode()


class HunnoxDevice(FabulaDevice):
    INDEX = {**FabulaDevice.INDEX, 0xF3: b"BL\r"}

    def __init__(self, ups: UPS, *, manufacturer: str | None = "HNX", **kw: Any) -> None:
        super().__init__(ups, manufacturer=manufacturer, **kw)

    def string_reads(self) -> list[int]:
        """The string indices asked for, in order (the lock-step is visible here)."""
        return [v & 0xFF for bm, req, v, _, _ in self.requests if (bm, req) == (0x80, 6)
                and v >> 8 == 3]


class ArmacDevice(FakeQxDevice):
    def __init__(self, ups: UPS, *, vendor_id: int = 0x0925, product_id: int = 0x1234,
                 interrupt_path: bool = False, **kw: Any) -> None:
        if interrupt_path:
            kw.update(ep_in=0x82, packet_size=64, ep_out=0x02, out_packet_size=64)
        super().__init__(ups, vendor_id=vendor_id, product_id=product_id, **kw)
        self.interrupt_path = interrupt_path

    def _take(self, data: bytes) -> None:
        for request in self._feed(data):
            reply = self._ask(request)
            if reply:
                size = 63 if self.interrupt_path else 5
                for i in range(0, len(reply), size):
                    piece = reply[i:i + size]
                    self.push_interrupt(bytes([0x80 | len(piece)]) + piece.ljust(size, b"\0"))

    def on_set_report(self, value: int, data: bytes) -> bool:
        if self.interrupt_path or value != 0x0200 or len(data) != 4 or not 0xA1 <= data[0] <= 0xA3:
            return False
        self._take(data[1:1 + data[0] - 0xA0])
        return True

    def on_interrupt_out(self, data: bytes) -> None:
        if not data or data[0] - 0xA0 != len(data) - 1:
            raise usb_error(LIBUSB_ERROR_PIPE)
        self._take(data[1:])


class AblerexDevice(FakeQxDevice):
    def __init__(self, ups: UPS, *, vendor_id: int = 0xFFFF, product_id: int = 0x0000,
                 **kw: Any) -> None:
        super().__init__(ups, vendor_id=vendor_id, product_id=product_id, **kw)
        self.features[5] = bytes(47)

    def on_set_report(self, value: int, data: bytes) -> bool:
        if value != 0x0305 or len(data) != 47 or data[0] != 0x05:
            return False
        reply = self._ask(data[3:3 + data[2]]) or b""
        with self._cond:
            self.features[5] = reply[:47].ljust(47, b"\0")
        return True


class PhoenixtecDevice(FakeQxDevice):
    """Masterguard's cable (06da:0002 "Phoenixtec Power" / "USB Cable (V2.00)"): the
    request is the data of a vendor control write (bRequest 0x0D), the reply comes in
    8-byte interrupt reports on 0x81."""

    def __init__(self, ups: UPS, *, vendor_id: int = 0x06DA, product_id: int = 0x0002,
                 manufacturer: str | None = "Phoenixtec Power",
                 product: str | None = "USB Cable (V2.00)", **kw: Any) -> None:
        super().__init__(ups, vendor_id=vendor_id, product_id=product_id,
                         manufacturer=manufacturer, product=product, **kw)

    def on_vendor_out(self, req: int, data: bytes) -> bool:
        if req != 0x0D:
            return False
        for request in self._feed(data):
            reply = self._ask(request)
            if reply:
                self._queue_chunks(reply, 8)
        return True


#: Another name for :class:`FakeBackend`, which serves HID UPSes and bridges alike.
FakeQxBackend = FakeBackend


__all__ = [
    "AblerexDevice", "ArmacDevice", "CypressDevice", "FabulaDevice", "FakeQxBackend",
    "FakeQxDevice", "FujiDevice", "HunnoxDevice", "IpponDevice", "KraulerDevice", "PhoenixDevice",
    "PhoenixtecDevice",
    "ReplayedUPS", "SgsDevice", "SnrDevice", "dump_replies", "megatec_ups",
]
