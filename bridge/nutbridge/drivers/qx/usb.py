"""Megatec/Q1 over USB, sans-IO: how each of nutdrv_qx's USB subdrivers carries a request.

Cheap Megatec UPSes put a USB bridge chip in front of the firmware that speaks Q1 on
RS-232, and the bridges disagree on how the bytes travel. A subdriver turns one request
(``Q1\\r``) into USB transfers and what comes back into one reply line. It is written as a
generator (an :data:`Exchange`): it yields the transfers (:class:`ControlOut`,
:class:`ControlIn`, :class:`InterruptOut`, :class:`InterruptIn`, :class:`Pause`), is sent
each one's outcome (the bytes moved, or ``None`` when the transfer timed out or was
refused) and returns the reply (``b"(230.0 ...\\r"``), or ``None`` when there is none.
:mod:`.usblink` runs the transfers on pyusb; the Q1/Voltronic parsing is the serial
path's (:mod:`.q1`, :mod:`.voltronic`).

The framings, from NUT's nutdrv_qx/blazer_usb behaviour (timeouts as NUT's):

``cypress``  the request in 8-byte HID SET_REPORTs (Output, id 0: ``21 09 0200 0000``,
             zero padded, 5 s); the reply in 8-byte interrupt IN reports from 0x81
             (1 s each) until a CR arrives.
``phoenix``  as cypress (1 s writes), after draining up to 8 stale reports: the bridge
             keeps old bytes, so a drain read that times out (1 s) precedes every request.
``ippon``    8-byte SET_REPORTs with wValue 0x0002 (1 s); the whole reply in one 64-byte
             interrupt report, zero padded (``00 0d`` = nothing to say).
``gtec``     as ippon's writes (5 s); the reply in 128-byte interrupt reads until a CR.
``sgs``      7-byte pieces, each after its length byte, in 8-byte SET_REPORTs; the reply
             in 8-byte reports carrying the same length byte, read until the UPS stops
             sending (a read times out); a missing CR is added.
``fuji``     one 8-byte interrupt OUT report on endpoint 2: ``80 06 <n+1> 03 <request
             without CR, at most 3 characters> <padding> <expected reply length>``; the
             reply in zero-padded 8-byte reports. Longer requests are not sent (echoed, as
             a Megatec clone does) except ``SnRm`` with m > 0, which becomes ``Sn``.
``krauler``  nothing is written: each known request is the index of a USB string
             descriptor whose text is the reply (Q1 3, F 13, I 12, T 4, TL 5, Q 7,
             C and CT 11); its first character is replaced by the expected one (``(``,
             ``#``; CR for commands, so they read as not answered); "UPS No Ack" means
             ask again (10 tries); other requests are echoed.
``fabula``   string descriptors too (Q1 3, F 13, I 12, Q 7, C 10); a shutdown ``Sn[Rm]``
             puts its delay (0.5..10 min) and return/stay-off in the index; "UPS No Ack"
             is its answer to commands: no reply.
``hunnox``   fabula's table and BL (0xF3), in lock-step: before each request it reads the
             string the firmware expects next (13, 3, 12 in turn; before the very first
             request 0, 0 and 1), and reads at most 102 bytes.
``snr``      krauler's Q1/F/I (no commands), each after an interrupt read of up to 102
             bytes (1 s) that keeps the firmware awake; always in one language.
``armac``    (Richcomm "PowerManagerII" bridges) the request and a NUL in 3-byte pieces,
             each in a 4-byte SET_REPORT ``a0+n <data>``, after draining stale reports
             (10 reads of 100 ms); the reply in 8-byte reports whose first byte's low six
             bits count the bytes behind it, until a CR. Units with 64-byte interrupt
             endpoints 0x82/0x02 take ``a0+n <request> 00`` on 0x02 and answer on 0x82.
             QGS, QS, QPI, M and D are not sent (the firmware ignores them: echoed).
``phoenixtec`` (Masterguard's cable) the request as the data of a vendor control write
             (``42 0d 0000 0000``, 1 s); the reply in interrupt reads from 0x81 (1 s each)
             until a CR. Commands the UPS does not answer (T, TL, S, C, CT, M, N, O, SRC,
             FCLR, SS, TUD, SSN, by their command word) are not waited for.
``ablerex``  the request in a 47-byte SET_REPORT (Feature 5: ``05 00 <n+1> <request>``);
             0.5 s later GET_REPORT (Feature 5) holds the reply; Q1/F/I replies of the
             wrong length are asked again (3 tries); the binary Q5 (22 bytes) and At
             replies of protocol ablerex are taken whole, NULs included.

String descriptors are read as libusb does (the first language of string 0, then the
string, UTF-16 to ASCII with ``?`` for the rest) unless ``langid_fix`` names the language
(krauler, hunnox; snr always needs one, 0x0409 by default): then the descriptor is
taken only if its length byte matches what arrived, as NUT checks.

Replies are C strings in NUT: :func:`reply_line` keeps what comes before a NUL, up to
and including the first CR (one is added when missing); an empty line is no reply. The
binary replies of protocol ablerex (``Q5``, ``At``) are kept whole up to their CR, NULs
included, by the cypress family (cypress, phoenix, gtec) and the ablerex bridge.

Which subdriver a device gets: :data:`NUTDRV_QX_IDS` and :data:`BLAZER_USB_IDS` in NUT's
order, first match wins (IDs, then the manufacturer/product strings where given).
"""

from __future__ import annotations

import math
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import ClassVar

# ---- the transfers a subdriver asks for ---------------------------------------------------

_OUT_CLASS_INTERFACE = 0x21  # host to device, class request, interface
_IN_CLASS_INTERFACE = 0xA1
_IN_STANDARD_DEVICE = 0x80
SET_REPORT = 0x09
GET_REPORT = 0x01
GET_DESCRIPTOR = 0x06
DT_STRING = 0x03
LANGID_EN_US = 0x0409
#: NUT's reply buffer (SMALLBUF - 1): no reply is read beyond it
MAX_REPLY = 511


@dataclass(frozen=True)
class ControlOut:
    """A control transfer with data to the device (SET_REPORT)."""

    request_type: int
    request: int
    value: int
    index: int
    data: bytes
    timeout: float  # seconds


@dataclass(frozen=True)
class ControlIn:
    """A control transfer reading up to ``length`` bytes (GET_REPORT, GET_DESCRIPTOR)."""

    request_type: int
    request: int
    value: int
    index: int
    length: int
    timeout: float


@dataclass(frozen=True)
class InterruptOut:
    endpoint: int
    data: bytes
    timeout: float


@dataclass(frozen=True)
class InterruptIn:
    """One interrupt IN read of at most ``size`` bytes (a stalled pipe is cleared by the link)."""

    endpoint: int
    size: int
    timeout: float


@dataclass(frozen=True)
class Pause:
    seconds: float


Step = ControlOut | ControlIn | InterruptOut | InterruptIn | Pause
#: what a step gave: the bytes read or accepted; None = timed out, stalled or refused
Outcome = bytes | None
#: one request: yields steps, is sent their outcomes, returns the reply line (or None)
Exchange = Generator[Step, Outcome, bytes | None]


@dataclass(frozen=True)
class Endpoints:
    """The claimed interface's interrupt endpoints as (address, wMaxPacketSize)."""

    interrupt_in: tuple[int, int] | None = (0x81, 8)
    interrupt_out: tuple[int, int] | None = None


@dataclass(frozen=True)
class Setup:
    """What a subdriver is told when the device is opened."""

    langid_fix: int | None = None  # ups.conf langid_fix
    novendor: bool = False  # ups.conf novendor (hunnox then skips the I string)
    endpoints: Endpoints = Endpoints()


# ---- helpers ---------------------------------------------------------------------------------

def reply_line(raw: bytes | None) -> bytes | None:
    """One reply line as NUT reads it: a C string (what precedes a NUL) up to and including
    the first CR, a CR added when missing; None when that leaves nothing."""
    if raw is None:
        return None
    text = raw.split(b"\0", 1)[0]
    cr = text.find(b"\r")
    text = text[:cr] if cr >= 0 else text
    return text + b"\r" if text else None


#: requests whose reply is binary (protocol ablerex): numbers in bytes, NULs included
BINARY = (b"Q5\r", b"At\r")


def binary_line(raw: bytes | None) -> bytes | None:
    """A binary reply as the bytes up to and including the first CR (NULs kept); None
    without a CR."""
    if raw is None or (cr := raw.find(b"\r")) < 0:
        return None
    return bytes(raw[:cr + 1])


def chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` in ``size``-byte pieces, the last zero padded (at least one piece)."""
    padded = data.ljust(max(1, -(-len(data) // size)) * size, b"\0")
    return [padded[i:i + size] for i in range(0, len(padded), size)]


def _set_report(value: int, data: bytes, timeout: float) -> ControlOut:
    return ControlOut(_OUT_CLASS_INTERFACE, SET_REPORT, value, 0, data, timeout)


def _string_request(index: int, langid: int, length: int) -> ControlIn:
    return ControlIn(_IN_STANDARD_DEVICE, GET_DESCRIPTOR, (DT_STRING << 8) | index, langid, length,
                     1.0)


def _ascii(descriptor: bytes, *, strict: bool) -> bytes:
    """The UTF-16LE text of a string descriptor as bytes, ``?`` for what is not ASCII
    (``strict``: libusb's rule, bytes >= 0x80 too; else NUT's, only a high byte)."""
    out = bytearray()
    for i in range(2, min(descriptor[0], len(descriptor)) - 1, 2):
        lo, hi = descriptor[i], descriptor[i + 1]
        out.append(0x3F if hi or (strict and lo & 0x80) else lo)
    return bytes(out)


def read_string_simple(index: int) -> Generator[Step, Outcome, bytes | None]:
    """A string descriptor as libusb's ASCII read gives it: the first language of
    string 0, then the string in it. None when either read fails or is malformed."""
    table = yield _string_request(0, 0, 255)
    if table is None or len(table) < 4:
        return None
    raw = yield _string_request(index, table[2] | (table[3] << 8), 255)
    if raw is None or len(raw) < 2 or raw[1] != DT_STRING or raw[0] > len(raw):
        return None
    return _ascii(raw, strict=True)


class _SizeMismatch:
    """A descriptor whose length byte disagrees with what arrived (langid_fix reads)."""


SIZE_MISMATCH = _SizeMismatch()


def read_string_fixed(index: int, langid: int, length: int
                      ) -> Generator[Step, Outcome, bytes | _SizeMismatch | None]:
    """A string descriptor in language ``langid`` (the langid_fix way): None when the read
    fails, :data:`SIZE_MISMATCH` when the descriptor's length byte is not what arrived."""
    raw = yield _string_request(index, langid, length)
    if not raw:
        return None
    if raw[0] != len(raw):
        return SIZE_MISMATCH
    return _ascii(raw, strict=False)


def scan_langid() -> Generator[Step, Outcome, int | None]:
    """The first language ID string 0 offers (NUT logs it unless ``noscanlangid``)."""
    table = yield _string_request(0, 0, 255)
    if table is None or len(table) < 4:
        return None
    return table[2] | (table[3] << 8)


def _no_ack(text: bytes) -> bool:
    """The string-descriptor firmware's "UPS No Ack" (a line of exactly those 10 characters)."""
    return text.split(b"\r", 1)[0].lower() == b"ups no ack"


_SHUTDOWN = re.compile(rb"^S(\d*\.?\d+)(?:R(\d+))?")


def shutdown_index(request: bytes) -> int | None:
    """Fabula's (and hunnox's) string index for ``Sn[Rm]``: 0x10 steps per delay (0.5..0.9
    minutes in tenths, then 1..10 whole minutes), +8 unless it stays off (m = 0). None if
    ``request`` is not a shutdown."""
    m = _SHUTDOWN.match(request)
    if m is None:
        return None
    delay = min(10.0, max(0.5, float(m.group(1))))
    index = 16 + math.floor((delay - 0.5) * 10 + 0.5) * 16 if delay < 1 else int(96 + (delay - 1) * 16)
    if m.group(2) is None or int(m.group(2)) != 0:
        index += 8  # shutdown.return: back on with the mains
    return index


# ---- the subdrivers ----------------------------------------------------------------------------

class Subdriver:
    """One USB framing; :meth:`exchange` carries one request (CR-terminated ASCII)."""

    name: ClassVar[str] = ""

    def __init__(self, setup: Setup = Setup()) -> None:
        self.setup = setup

    def exchange(self, request: bytes) -> Exchange:
        raise NotImplementedError
        yield  # pragma: no cover - makes this a generator


class Cypress(Subdriver):
    """8-byte SET_REPORTs out, 8-byte interrupt reports in until a CR (the most common bridge)."""

    name = "cypress"
    wvalue = 0x0200  # SET_REPORT wValue: Output report, id 0
    write_timeout = 5.0
    read_size = 8

    def _write(self, request: bytes) -> Exchange:
        for piece in chunks(request, 8):
            if (yield _set_report(self.wvalue, piece, self.write_timeout)) is None:
                return None
        return b""

    def _read_until_cr(self, endpoint: int = 0x81, binary: bool = False) -> Exchange:
        buf = b""
        while b"\r" not in buf and len(buf) <= MAX_REPLY - self.read_size:
            data = yield InterruptIn(endpoint, self.read_size, 1.0)
            if not data:
                return None
            buf += data
        return binary_line(buf) if binary else reply_line(buf)

    def exchange(self, request: bytes) -> Exchange:
        if (yield from self._write(request)) is None:
            return None
        return (yield from self._read_until_cr(binary=request in BINARY))


class Phoenix(Cypress):
    """Cypress framing after draining the bytes the bridge kept from earlier replies."""

    name = "phoenix"
    write_timeout = 1.0

    def exchange(self, request: bytes) -> Exchange:
        for _ in range(8):  # the bridge keeps stale bytes: drain them first
            if (yield InterruptIn(0x81, 8, 1.0)) is None:
                break
        return (yield from super().exchange(request))


class Gtec(Cypress):
    """Ippon-style writes, 128-byte interrupt reads."""

    name = "gtec"
    wvalue = 0x0002
    read_size = 128


class Ippon(Cypress):
    """SET_REPORT wValue 0x0002; the whole reply in one 64-byte interrupt report."""

    name = "ippon"
    wvalue = 0x0002
    write_timeout = 1.0

    def exchange(self, request: bytes) -> Exchange:
        if (yield from self._write(request)) is None:
            return None
        return reply_line((yield InterruptIn(0x81, 64, 1.0)) or None)


class Sgs(Subdriver):
    """Length-prefixed 7-byte pieces both ways; the reply ends when the UPS stops sending."""

    name = "sgs"

    def exchange(self, request: bytes) -> Exchange:
        for i in range(0, len(request), 7):
            piece = request[i:i + 7]
            if (yield _set_report(0x0200, bytes([len(piece)]) + piece + bytes(7 - len(piece)),
                                  5.0)) is None:
                return None
        buf = b""
        for _ in range(MAX_REPLY // 8):  # until the UPS stops sending
            data = yield InterruptIn(0x81, 8, 1.0)
            if data is None:
                break
            if data:
                buf += data[1:1 + min(data[0], 7)]
        return reply_line(buf)


class Fuji(Cypress):
    """One 8-byte interrupt OUT report per request (3 characters at most), Cypress-style replies."""

    name = "fuji"
    #: how long each reply is: the bridge is told in the last byte of the request
    ANSWER_LEN = {b"Q1": 47, b"F": 22, b"I": 39}

    def exchange(self, request: bytes) -> Exchange:
        command = request.split(b"\r", 1)[0]
        m = _SHUTDOWN.match(command)
        if m is not None and m.group(2) is not None and int(m.group(2)) != 0:
            command = command[:3]  # no room for Rm: Sn, back on with the mains
        if len(command) > 3:
            return request  # refused, the Megatec way: echoed
        packet = bytes([0x80, 0x06, len(command) + 1, 0x03]) + command
        packet += bytes(7 - len(packet)) + bytes([self.ANSWER_LEN.get(command, 0)])
        if (yield InterruptOut(0x02, packet, 5.0)) is None:
            return None
        return (yield from self._read_until_cr())


class Krauler(Subdriver):
    """Requests are string descriptor indices; the string is the reply."""

    name = "krauler"
    #: request -> (string index, the character the reply must start with)
    TABLE: ClassVar[dict[bytes, tuple[int, bytes]]] = {
        b"Q1\r": (0x03, b"("), b"F\r": (0x0D, b"#"), b"I\r": (0x0C, b"#"), b"T\r": (0x04, b"\r"),
        b"TL\r": (0x05, b"\r"), b"Q\r": (0x07, b"\r"), b"C\r": (0x0B, b"\r"), b"CT\r": (0x0B, b"\r"),
    }
    tries = 10
    fixed_length = MAX_REPLY  # wLength of a langid_fix read

    def _langid(self) -> int | None:
        return self.setup.langid_fix

    def _read(self, index: int) -> Generator[Step, Outcome, bytes | _SizeMismatch | None]:
        langid = self._langid()
        if langid is None:
            return (yield from read_string_simple(index))
        return (yield from read_string_fixed(index, langid, self.fixed_length))

    def exchange(self, request: bytes) -> Exchange:
        entry = self.TABLE.get(request)
        if entry is None:
            return request  # not a string this firmware has: echoed
        index, prefix = entry
        for _ in range(self.tries):
            text = yield from self._read(index)
            if isinstance(text, _SizeMismatch):
                continue
            if not text:
                return None
            if _no_ack(text):
                continue
            return reply_line(prefix + text[1:])
        return None


class Snr(Krauler):
    """Krauler's Q1/F/I in a fixed language, each after a wake-up interrupt read."""

    name = "snr"
    TABLE = {k: v for k, v in Krauler.TABLE.items() if k in (b"Q1\r", b"F\r", b"I\r")}
    fixed_length = 102

    def _langid(self) -> int:
        return LANGID_EN_US if self.setup.langid_fix is None else self.setup.langid_fix

    def exchange(self, request: bytes) -> Exchange:
        yield InterruptIn(0x81, 102, 1.0)  # wakes the firmware; what it says does not matter
        return (yield from super().exchange(request))


class Fabula(Subdriver):
    """String descriptors; shutdowns encode their delay in the index; "UPS No Ack" = no reply."""

    name = "fabula"
    TABLE: ClassVar[dict[bytes, int]] = {b"Q1\r": 0x03, b"F\r": 0x0D, b"I\r": 0x0C, b"Q\r": 0x07,
                                         b"C\r": 0x0A}

    def index(self, request: bytes) -> int | None:
        index = self.TABLE.get(request)
        return shutdown_index(request) if index is None else index

    def _read(self, index: int) -> Generator[Step, Outcome, bytes | _SizeMismatch | None]:
        return (yield from read_string_simple(index))

    def exchange(self, request: bytes) -> Exchange:
        index = self.index(request)
        if index is None:
            return request  # echoed
        yield from self._before(index)
        text = yield from self._read(index)
        if not text or isinstance(text, _SizeMismatch) or _no_ack(text):
            return None  # "UPS No Ack" answers every command, done or not
        return reply_line(text)

    def _before(self, index: int) -> Generator[Step, Outcome, None]:
        return
        yield  # pragma: no cover - makes this a generator


class Hunnox(Fabula):
    """Fabula's strings, read in the order the firmware expects (lock-step)."""

    name = "hunnox"
    TABLE = {**Fabula.TABLE, b"BL\r": 0xF3}
    #: the strings the firmware wants read, in turn, before each request
    SEQUENCE = (0x0D, 0x03, 0x0C)

    def __init__(self, setup: Setup = Setup()) -> None:
        super().__init__(setup)
        self.step = -1  # -1: nothing asked yet on this connection

    def _before(self, index: int) -> Generator[Step, Outcome, None]:
        langid = LANGID_EN_US if self.setup.langid_fix is None else self.setup.langid_fix
        if self.step < 0:
            yield _string_request(0, langid, 1026)
            yield _string_request(0, langid, 1026)
            yield _string_request(1, langid, 1026)
            yield Pause(0.01)
        else:
            expected = self.SEQUENCE[self.step]
            if index != expected and not (expected == 0x0C and self.setup.novendor):
                yield _string_request(expected, langid, 102)
        self.step = (self.step + 1) % len(self.SEQUENCE)

    def _read(self, index: int) -> Generator[Step, Outcome, bytes | _SizeMismatch | None]:
        if self.setup.langid_fix is None:
            return (yield from read_string_simple(index))
        return (yield from read_string_fixed(index, self.setup.langid_fix, 102))


class Armac(Subdriver):
    """Richcomm bridges: ``a0+n``-prefixed pieces out, count-prefixed reports in."""

    name = "armac"
    #: queries this firmware ignores (it would only cost a timeout each)
    IGNORED = (b"QGS\r", b"QS\r", b"QPI\r", b"M\r", b"D\r")

    def _interrupt_path(self) -> bool:
        ep = self.setup.endpoints
        return (ep.interrupt_in is not None and ep.interrupt_out is not None
                and ep.interrupt_in == (0x82, 64) and ep.interrupt_out[0] == 0x02)

    def exchange(self, request: bytes) -> Exchange:
        if request in self.IGNORED:
            return request
        data = request + b"\0"  # the NUL travels too
        if self._interrupt_path() and len(data) < 64:
            endpoint, size = 0x82, 64
            if (yield InterruptOut(0x02, bytes([0xA0 + len(data)]) + data, 5.0)) is None:
                return None
        else:
            endpoint, size = 0x81, 8
            for _ in range(10):  # drain stale reports
                if not (yield InterruptIn(0x81, 8, 0.1)):
                    break
            for i in range(0, len(data), 3):
                piece = data[i:i + 3]
                out = bytes([0xA0 + len(piece)]) + piece + bytes(3 - len(piece))
                if (yield _set_report(0x0200, out, 5.0)) is None:
                    return None
        yield Pause(0.002)
        buf = bytearray()
        while len(buf) + size + 1 < MAX_REPLY:
            got = yield InterruptIn(endpoint, size, 1.0)
            if got is None:
                return None
            if not got:
                return reply_line(bytes(buf))
            count = min(got[0] & 0x3F, len(got) - 1)
            if count == 0:
                break
            for byte in got[1:1 + count]:
                if byte == 0:
                    if not buf:
                        return None  # a UPS switched off answers NULs
                    if len(buf) >= 38:  # some firmware sends NUL for a status bit
                        buf.append(ord("0"))
                        continue
                    return reply_line(bytes(buf))
                buf.append(byte)
                if byte == 0x0D:
                    return reply_line(bytes(buf))
            if count <= 2:
                yield Pause(0.01)  # let the UPS buffer more
        else:
            return None  # more than a reply can be
        return reply_line(bytes(buf))


class Ablerex(Subdriver):
    """Feature report 5 written with the request and read back with the reply."""

    name = "ablerex"
    REPLY_LEN = {b"Q1\r": 47, b"I\r": 39, b"F\r": 22}
    settle = 0.5  # s between writing the request and reading the reply

    def exchange(self, request: bytes) -> Exchange:
        command = request.split(b"\r", 1)[0] + b"\r"
        report = (bytes([0x05, 0x00, len(command)]) + command).ljust(47, b"\0")[:47]
        for _ in range(3):
            yield ControlOut(_OUT_CLASS_INTERFACE, SET_REPORT, 0x0305, 0, report, 1.0)
            yield Pause(self.settle)
            raw = yield ControlIn(_IN_CLASS_INTERFACE, GET_REPORT, 0x0305, 0, 47, 1.0)
            if not raw:
                return None
            cr = raw.find(b"\r", 0, 47)
            length = cr + 1 if cr >= 0 else 0
            if request in BINARY:
                # binary replies (protocol ablerex) are taken whole, NULs included; a Q5
                # reply whose CR is not its 22nd byte is not one (NUT: zeros)
                if not length or (request == b"Q5\r" and length != 22):
                    return None
                return bytes(raw[:length])
            want = self.REPLY_LEN.get(request)
            if want is not None and length != want:
                continue
            return reply_line(raw[:length]) if length else None
        return None


class Phoenixtec(Subdriver):
    """Masterguard's cable: the request in a vendor control write, the reply in interrupt
    reads until a CR; the commands that have no reply are not waited for."""

    name = "phoenixtec"
    #: requests (by their leading command word) the UPS does not answer
    SILENT = ("T", "TL", "S", "C", "CT", "M", "N", "O", "SRC", "FCLR", "SS", "TUD", "SSN")
    request_type = 0x42  # host to device, vendor, endpoint
    request = 0x0D

    @classmethod
    def silent(cls, request: bytes) -> bool:
        """Whether ``request`` is one of :data:`SILENT`: its command word, not followed by
        another capital letter ("M" is not "MSO")."""
        for word in cls.SILENT:
            rest = request[len(word):]
            if request.startswith(word.encode()) and not (rest and 0x41 <= rest[0] <= 0x5A):
                return True
        return False

    def exchange(self, request: bytes) -> Exchange:
        if (yield ControlOut(self.request_type, self.request, 0, 0, request, 1.0)) is None:
            return None
        if self.silent(request):
            return None
        buf = b""
        while len(buf) < MAX_REPLY:
            data = yield InterruptIn(0x81, MAX_REPLY - len(buf), 1.0)
            if not data:
                return None
            buf += data
            if b"\r" in data:
                return binary_line(buf) if request in BINARY else reply_line(buf)
        return None


#: ``subdriver =`` values of nutdrv_qx
SUBDRIVERS: dict[str, type[Subdriver]] = {cls.name: cls for cls in (
    Cypress, Phoenix, Ippon, Krauler, Fabula, Hunnox, Fuji, Sgs, Snr, Ablerex, Armac, Gtec,
    Phoenixtec)}
#: ``subdriver =`` values of blazer_usb
BLAZER_SUBDRIVERS = ("cypress", "phoenix", "ippon", "krauler")
#: NUT's other names, which the bridge does not implement
UNSUPPORTED = {"omron": "OMRON's own protocol"}


# ---- which subdriver a device gets ------------------------------------------------------------

@dataclass(frozen=True)
class UsbId:
    """One row of NUT's device table: IDs, optional iManufacturer/iProduct strings (compared
    whole, case-insensitively) and the subdriver (None: a device NUT names but has no
    subdriver for, or one the bridge does not implement)."""

    vendor_id: int
    product_id: int
    vendor: str | None
    product: str | None
    subdriver: str | None
    what: str

    def matches(self, vendor_id: int, product_id: int, vendor: str | None, product: str | None
                ) -> bool:
        def same(want: str | None, got: str | None) -> bool:
            return want is None or (got or "").strip().lower() == want.lower()

        return ((self.vendor_id, self.product_id) == (vendor_id, product_id)
                and same(self.vendor, vendor) and same(self.product, product))


NUTDRV_QX_IDS: tuple[UsbId, ...] = (
    UsbId(0x05B8, 0x0000, None, None, "cypress", "Agiler UPS"),
    UsbId(0xFFFF, 0x0000, None, None, "ablerex", "Ablerex 625L USB"),
    UsbId(0x1CB0, 0x0035, None, None, "krauler", "Legrand Daker DK / DK Plus"),
    UsbId(0x0665, 0x5161, None, None, "cypress", "Belkin F6C1200-UNV, Voltronic Power UPSes"),
    UsbId(0x06DA, 0x0002, "Phoenixtec Power", "USB Cable (V2.00)", "phoenixtec",
          "Masterguard A Series"),
    UsbId(0x06DA, 0x0002, None, None, "cypress", "Online Yunto YQ450"),
    UsbId(0x06DA, 0x0003, None, None, "ippon", "Mustek Powermust"),
    UsbId(0x06DA, 0x0004, None, None, "cypress", "Phoenixtec Innova 3/1 T"),
    UsbId(0x06DA, 0x0005, None, None, "cypress", "Phoenixtec Innova RT"),
    UsbId(0x06DA, 0x0201, None, None, "cypress", "Phoenixtec Innova T"),
    UsbId(0x06DA, 0x0601, None, None, "phoenix", "Online Zinto A"),
    UsbId(0x0F03, 0x0001, None, None, "cypress", "Unitek Alpha 1200Sx"),
    UsbId(0x14F0, 0x00C9, None, None, "phoenix", "GE EP series"),
    UsbId(0x1A86, 0x7523, None, None, None,
          "QinHeng CH340 serial bridge (also in non-UPS devices; NUT has no handler)"),
    UsbId(0x0483, 0x0035, None, None, "sgs", "TS Shara"),
    UsbId(0x0590, 0x00B7, None, None, None, "OMRON BN150T (omron subdriver)"),
    UsbId(0x0001, 0x0000, "MEC", "MEC0003", "fabula", "Fideltronik/MEC LUPUS 500 USB"),
    UsbId(0x0001, 0x0000, None, "MEC0003", "hunnox", "Hunnox HNX 850, Powercool"),
    UsbId(0x0001, 0x0000, "ATCL FOR UPS", "ATCL FOR UPS", "fuji", "Fuji UPSes"),
    UsbId(0x0001, 0x0000, None, None, "krauler", "Krauler UP-M500VA"),
    # after krauler's catch-all, as in NUT: never chosen by itself
    UsbId(0x0001, 0x0000, None, "MEC0003", "snr", "SNR-UPS-LID-XXXX"),
    UsbId(0x0925, 0x1234, None, None, "armac", "Armac, other Richcomm-based UPSes"),
)

BLAZER_USB_IDS: tuple[UsbId, ...] = (
    UsbId(0x05B8, 0x0000, None, None, "cypress", "Agiler UPS"),
    UsbId(0x0001, 0x0000, None, None, "krauler", "Krauler UP-M500VA"),
    UsbId(0xFFFF, 0x0000, None, None, "krauler", "Ablerex 625L USB"),
    UsbId(0x0665, 0x5161, None, None, "cypress", "Belkin F6C1200-UNV"),
    UsbId(0x06DA, 0x0002, None, None, "cypress", "Online Yunto YQ450"),
    UsbId(0x06DA, 0x0003, None, None, "ippon", "Mustek Powermust"),
    UsbId(0x06DA, 0x0004, None, None, "cypress", "Phoenixtec Innova 3/1 T"),
    UsbId(0x06DA, 0x0005, None, None, "cypress", "Phoenixtec Innova RT"),
    UsbId(0x06DA, 0x0201, None, None, "cypress", "Phoenixtec Innova T"),
    UsbId(0x06DA, 0x0601, None, None, "phoenix", "Online Zinto A"),
    UsbId(0x0F03, 0x0001, None, None, "cypress", "Unitek Alpha 1200Sx"),
    UsbId(0x14F0, 0x00C9, None, None, "phoenix", "GE EP series"),
)


def choose(table: tuple[UsbId, ...], vendor_id: int, product_id: int, vendor: str | None,
           product: str | None) -> UsbId | None:
    """The first row of ``table`` that fits the device, as NUT picks it; None if none does."""
    for row in table:
        if row.matches(vendor_id, product_id, vendor, product):
            return row
    return None


def usb_ids() -> list[tuple[int, int]]:
    """Every VID:PID the bridge's Megatec-over-USB drivers take (for udev rules)."""
    out: list[tuple[int, int]] = []
    for row in (*NUTDRV_QX_IDS, *BLAZER_USB_IDS):
        ids = (row.vendor_id, row.product_id)
        if row.subdriver is not None and ids not in out:
            out.append(ids)
    return out
