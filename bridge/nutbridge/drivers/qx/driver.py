"""Megatec/Q1 serial UPSes: ``driver = nutdrv_qx`` and ``driver = blazer_ser``.

The protocol (see docs/serial.md): the host sends a short ASCII query ending in
CR and the UPS answers one CR-terminated line, e.g.::

    Q1\\r -> (226.0 195.0 226.0 014 49.0 27.5 30.0 00001001\\r   status
    F\\r  -> #220.0 000 024.0 50.0\\r                            ratings
    I\\r  -> #NOT_A_LIVE_UPS  TESTING    TESTING   \\r            identity

Mustek units answer ``QS`` with the same layout as ``Q1``. Voltronic units
(``QGS``/``QPI``, nutdrv_qx only) have their own tables, further down. Commands (``Q``,
``T``, ``S.5R0003``...) are usually not answered at all.

The first half of this module is sans-IO: the variable table (one row per NUT
variable, positions as in NUT's own tables: 0-based, inclusive, counting the
leading ``(``/``#``), the frame parsers, the status bits and the command
encoders. Parsers never raise: a malformed frame gives ``None`` and the driver
counts it as garbage. The second half is the :class:`MegatecDriver` on a
:class:`~nutbridge.drivers.serial.SerialLink`.

ups.conf options: ``port`` (required), ``pollinterval``, ``ondelay`` (s, default
180), ``offdelay`` (s, default 30), ``cablepower`` (normal/reverse/both/none:
the DTR/RTS levels some cables take their power from), ``protocol`` (voltronic,
mustek or megatec; default: detect, in that order; blazer_ser: mustek or
megatec), ``novendor``, ``norating``, ``ignoresab``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ...state import Device
from ..base import ConfigError, DeviceError, Driver, Status, finite_number

log = logging.getLogger(__name__)

#: a reply is one line; anything longer is noise
MAX_REPLY = 128
REPLY_TIMEOUT = 1.0  # s, as NUT's SER_WAIT_SEC
TRIES = 3  # per query, as NUT's MAXTRIES
DEFAULT_ONDELAY = 180
DEFAULT_OFFDELAY = 30

# ---- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One NUT variable read from one query's reply."""

    var: str
    query: str  # "status" = Q1 or QS (whichever the protocol uses), "F", "I"
    start: int  # first character, 0-based, counting the leading '(' or '#'
    end: int  # last character (inclusive)
    fmt: str = ""  # printf-like float format; "" = text (stripped)


@dataclass(frozen=True)
class Frame:
    """What a valid reply to a query looks like."""

    leading: str
    min_len: int  # without the CR


FRAMES: dict[str, Frame] = {
    "status": Frame("(", 46),
    "F": Frame("#", 21),
    "I": Frame("#", 38),
}

ITEMS: tuple[Item, ...] = (
    Item("input.voltage", "status", 1, 5, "%.1f"),
    Item("input.voltage.fault", "status", 7, 11, "%.1f"),
    Item("output.voltage", "status", 13, 17, "%.1f"),
    Item("ups.load", "status", 19, 21, "%.0f"),
    Item("input.frequency", "status", 23, 26, "%.1f"),
    Item("battery.voltage", "status", 28, 31, "%.2f"),
    Item("ups.temperature", "status", 33, 36, "%.1f"),
    Item("input.voltage.nominal", "F", 1, 5, "%.0f"),
    Item("input.current.nominal", "F", 7, 9, "%.1f"),
    Item("battery.voltage.nominal", "F", 11, 15, "%.1f"),
    Item("input.frequency.nominal", "F", 17, 20, "%.0f"),
    Item("device.mfr", "I", 1, 15),
    Item("device.model", "I", 17, 26),
    Item("ups.firmware", "I", 28, 37),
)
STATUS_BITS = slice(38, 46)  # b7 .. b0 of the status reply

# query bytes per protocol
STATUS_QUERY = {"megatec": b"Q1\r", "mustek": b"QS\r"}
PROTOCOL_NAMES = {"voltronic": "Voltronic", "mustek": "Mustek", "megatec": "Megatec"}


def check_frame(query: str, raw: bytes) -> str | None:
    """The reply as text (CR dropped) if it has the shape ``query`` expects, else None."""
    frame = FRAMES[query]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    # a reply is printable ASCII: anything else is line noise or a wrong baud rate
    if not raw or any(b < 0x20 or b > 0x7E for b in raw):
        return None
    text = raw.decode("ascii")
    if len(text) < frame.min_len or text[0] != frame.leading:
        return None
    if query == "status" and any(c not in "01" for c in text[STATUS_BITS]):
        return None
    return text


def parse(query: str, raw: bytes) -> dict[str, str] | None:
    """NUT variables from one reply; None if the frame is malformed.

    A field that is not a number (``---.-``) is left out, as NUT does, without
    rejecting the rest of the frame. Status bits come back as ``"_bits"``.
    """
    text = check_frame(query, raw)
    if text is None:
        return None
    out: dict[str, str] = {}
    for item in ITEMS:
        if item.query != query:
            continue
        field = text[item.start:item.end + 1]
        if item.fmt:
            value = finite_number(field)
            if value is not None:
                out[item.var] = item.fmt % value
        elif field.strip():
            out[item.var] = field.strip()
    if query == "status":
        out["_bits"] = text[STATUS_BITS]
    return out


@dataclass
class StatusInfo:
    tokens: list[str]
    alarms: list[str]
    beeper: str
    ups_type: str


def decode_status(bits: str, vin: float | None, vout: float | None, *, ignoresab: bool = False
                  ) -> StatusInfo:
    """The eight status bits (b7..b0) -> ups.status tokens, alarms, beeper, type."""
    b = [c == "1" for c in bits]
    tokens = ["OB" if b[0] else "OL"]
    alarms = []
    if b[1]:
        tokens.append("LB")
    if b[2]:
        # one bit for bypass, boost and buck: tell them apart by output/input ratio
        ratio = (vout / vin) if vin and vout is not None and vin > 0 else None
        if ratio is not None and 0.5 <= ratio < 1.5:
            tokens.append("TRIM" if ratio < 0.95 else "BYPASS" if ratio < 1.05 else "BOOST")
    if b[3]:
        alarms.append("UPS selftest failed!")
    if b[5]:
        tokens.append("CAL")
    if b[6] and not ignoresab:
        tokens.append("FSD")
        alarms.append("Shutdown imminent!")
    return StatusInfo(tokens, alarms, "enabled" if b[7] else "disabled",
                      "offline / line interactive" if b[4] else "online")


def battery_charge(voltage: float, nominal: float) -> tuple[float, float, int]:
    """(low, high, charge %) guessed from the nominal voltage, as NUT does when the
    UPS reports no charge: empty at 104/120 and full at 130/120 of nominal."""
    low, high = 104 * nominal / 120, 130 * nominal / 120
    frac = (voltage - low) / (high - low) if high > low else 0.0
    return low, high, round(100 * min(1.0, max(0.0, frac)))


# ---- commands ----------------------------------------------------------------------------

COMMANDS = (
    "beeper.toggle", "load.off", "load.on", "shutdown.return", "shutdown.stayoff", "shutdown.stop",
    "test.battery.start", "test.battery.start.deep", "test.battery.start.quick", "test.battery.stop",
)
# ups.delay.shutdown: 12..600 s; ups.delay.start: 0..599940 s (the UPS counts in 6 s /
# 1 min steps)
DELAY_RANGES = {"ups.delay.shutdown": (12, 600), "ups.delay.start": (0, 599940)}


def round_offdelay(seconds: int) -> int:
    """What the UPS can do: 6 s steps below a minute, whole minutes above."""
    return seconds // 6 * 6 if seconds < 60 else seconds // 60 * 60


def round_ondelay(seconds: int) -> int:
    return seconds // 60 * 60


def _off_field(offdelay: int) -> str:
    return f".{offdelay // 6}" if offdelay < 60 else f"{offdelay // 60:02d}"


class CommandError(ValueError):
    """The command's parameter is out of range."""


def encode_command(cmd: str, param: str | None, ondelay: int, offdelay: int, *,
                   minutes: bool = False) -> bytes | None:
    """The bytes for an instant command; None if unknown. Raises CommandError on a bad
    parameter. Delays are ups.delay.start / ups.delay.shutdown in seconds. The
    test.battery.start parameter is in seconds (nutdrv_qx: 60..5940) or, with
    ``minutes`` (blazer_ser), in minutes (1..99); 10 minutes by default."""
    cmd = cmd.lower()
    simple = {
        "beeper.toggle": "Q", "load.off": "S00R0000", "load.on": "C", "shutdown.stop": "C",
        "test.battery.start.quick": "T", "test.battery.start.deep": "TL", "test.battery.stop": "CT",
    }
    if cmd in simple:
        return simple[cmd].encode() + b"\r"
    if cmd == "shutdown.return":
        on = f"R{ondelay // 60:04d}" if ondelay >= 60 else ""
        return f"S{_off_field(offdelay)}{on}\r".encode()
    if cmd == "shutdown.stayoff":
        return f"S{_off_field(offdelay)}R0000\r".encode()
    if cmd == "test.battery.start":
        per_minute = 1 if minutes else 60  # parameter units in a minute
        value = 10 * per_minute
        if param not in (None, ""):
            try:
                value = int(str(param))
            except ValueError:
                raise CommandError(f"not a number: {param!r}") from None
        if not per_minute <= value <= 99 * per_minute:
            raise CommandError(f"test.battery.start takes {per_minute}..{99 * per_minute} "
                               + ("minutes" if minutes else "seconds"))
        return f"T{value // per_minute:02d}\r".encode()
    return None


def command_status(reply: bytes | None) -> Status:
    """How the UPS took a command. Most answer nothing (= done); some say ACK; clones
    that do not know a command echo it back or say NAK (= failed)."""
    if reply is None:
        return Status.HANDLED
    text = reply.strip(b"\r\n ")
    if text in (b"ACK", b"(ACK"):
        return Status.HANDLED
    return Status.FAILED if text else Status.HANDLED


# ---- Voltronic (QGS/QPI) ---------------------------------------------------------------
# Voltronic Power units (and their many rebrands) answer ``QPI`` with their protocol
# id, ``(PI<nn>``, and ``QGS`` with a longer status line; other queries give
# ratings, identity and the battery. Replies start with ``(``; an unsupported query
# is answered ``(NAK``, a carried-out command ``(ACK``. Layouts observed from NUT's
# nutdrv_qx (protocol "voltronic", 2.8.0 and 2.8.5) on a simulator::
#
#   QGS  (231.0 50.1 229.0 49.9 001.2 014 369.1 ---.- 027.0 ---.- 030.0 010000000000
#   QRI  (230.0 004 024.0 50.0            QMD  (#######OLHVT1K0 ###1000 80 1/1 230 230 02 12.0
#   QBV  (027.0 02 01 100 045              QMF  (#####VOLTRONIC   QVFW (VERFW:00322.02
#   QID  (12345678901234                   QMOD (L                QPI  (PI01


@dataclass(frozen=True)
class VItem:
    """One NUT variable read from one Voltronic reply; ``scale`` multiplies numbers."""

    var: str
    query: str
    start: int
    end: int | None  # inclusive; None = to the end of the reply
    fmt: str = ""  # "" = text, with the '#' padding removed
    scale: float = 1.0
    verbatim: bool = False  # text kept as sent, spaces included (NUT does for the firmware)


V_MIN_LEN = {"QGS": 75, "QPI": 5, "QRI": 21, "QMD": 31, "QMF": 2, "QVFW": 15, "QID": 2,
             "QBV": 20, "QMOD": 2}
V_ITEMS: tuple[VItem, ...] = (
    VItem("input.voltage", "QGS", 1, 5, "%.1f"),
    VItem("input.frequency", "QGS", 7, 10, "%.1f"),
    VItem("output.voltage", "QGS", 12, 16, "%.1f"),
    VItem("output.frequency", "QGS", 18, 21, "%.1f"),
    VItem("output.current", "QGS", 23, 27, "%.1f"),
    VItem("ups.load", "QGS", 29, 31, "%.0f"),
    VItem("battery.voltage", "QGS", 45, 49, "%.2f"),
    VItem("ups.temperature", "QGS", 57, 61, "%.1f"),
    VItem("output.voltage.nominal", "QRI", 1, 5, "%.1f"),
    VItem("output.current.nominal", "QRI", 7, 9, "%.0f"),
    VItem("battery.voltage.nominal", "QRI", 11, 15, "%.1f"),
    VItem("output.frequency.nominal", "QRI", 17, 20, "%.1f"),
    VItem("device.model", "QMD", 1, 15),
    VItem("ups.power.nominal", "QMD", 17, 23, "%.0f"),
    VItem("output.powerfactor", "QMD", 25, 26, "%.1f", 0.01),
    VItem("input.phases", "QMD", 28, 28, "%.0f"),
    VItem("output.phases", "QMD", 30, 30, "%.0f"),
    VItem("input.voltage.nominal", "QMD", 32, 34, "%.1f"),
    VItem("device.mfr", "QMF", 1, None),
    VItem("ups.firmware", "QVFW", 7, 14, verbatim=True),
    VItem("device.serial", "QID", 1, None),
    VItem("battery.packs", "QBV", 10, 11, "%.0f"),
    VItem("battery.charge", "QBV", 13, 15, "%.0f"),
    VItem("battery.runtime", "QBV", 17, 19, "%.0f", 60.0),
)
V_STATUS_BITS = slice(63, 75)
V_UPS_TYPES = {"00": "offline", "01": "line-interactive", "10": "online"}
#: queried once on connect; QGS, QBV and QMOD on every poll
V_STATIC = ("QPI", "QRI", "QMD", "QMF", "QVFW", "QID")
V_POLLED = ("QBV", "QMOD")


def is_nak(raw: bytes) -> bool:
    return raw.strip(b"\r\n ") in (b"(NAK", b"NAK")


def v_parse(query: str, raw: bytes) -> dict[str, str] | None:
    """NUT variables from one Voltronic reply; None if it is malformed (or NAK).

    ``QGS`` adds its twelve status characters as ``"_bits"``, ``QMOD`` gives the
    mode letter as ``"_mode"``.
    """
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw or any(b < 0x20 or b > 0x7E for b in raw) or is_nak(raw):
        return None
    text = raw.decode("ascii")
    if len(text) < V_MIN_LEN[query] or text[0] != "(":
        return None
    if query == "QPI" and not (text[1:3] == "PI" and text[3:5].isdigit()):
        return None
    if query == "QVFW" and not text.startswith("(VERFW:"):
        return None
    if query == "QGS" and any(c not in "01" for c in text[V_STATUS_BITS]):
        return None
    out: dict[str, str] = {}
    for item in V_ITEMS:
        if item.query != query:
            continue
        end = None if item.end is None else item.end + 1
        field = text[item.start:end]
        if item.verbatim:
            if field.strip():
                out[item.var] = field
            continue
        field = field.replace("#", "").strip()
        if item.fmt:
            value = finite_number(field)
            if value is not None:
                out[item.var] = item.fmt % (value * item.scale)
        elif field:
            out[item.var] = field
    if query == "QPI":
        out["ups.firmware.aux"] = "P" + text[3:5]  # as NUT shows it
    elif query == "QGS":
        out["_bits"] = text[V_STATUS_BITS]
    elif query == "QMOD":
        out["_mode"] = text[1]
    return out


def v_decode_status(bits: str, mode: str | None, *, ignoresab: bool = False) -> StatusInfo:
    """QGS's status characters (+ the QMOD letter) -> ups.status tokens, beeper, type.

    Characters, as NUT reads them: 0-1 type, 2 utility fail, 3 battery low, 4 bypass,
    5 fault, 7 test running, 8 shutdown active, 9 beeper off."""
    tokens = ["OB" if bits[2] == "1" else "OL"]
    if bits[3] == "1":
        tokens.append("LB")
    if bits[4] == "1" or mode == "Y":
        tokens.append("BYPASS")
    if mode == "S":  # standby: the output is off
        tokens.append("OFF")
    if bits[7] == "1":
        tokens.append("CAL")
    if bits[8] == "1" and not ignoresab:
        tokens.append("FSD")
    return StatusInfo(tokens, [], "disabled" if bits[9] == "1" else "enabled",
                      V_UPS_TYPES.get(bits[0:2], ""))


V_DELAY_RANGES = {"ups.delay.shutdown": (12, 5940), "ups.delay.start": (0, 599940)}
V_PACKS_RANGE = (1, 99)


def v_encode_command(cmd: str, param: str | None, ondelay: int, offdelay: int, *,
                     beeper_on: bool = True) -> bytes | None:
    """The bytes of a Voltronic instant command (None if unknown); CommandError on a
    bad parameter. ``beeper_on``: the present beeper state (there is no toggle)."""
    cmd = cmd.lower()
    simple = {
        "beeper.toggle": "BZOFF" if beeper_on else "BZON", "load.off": "SOFF", "load.on": "SON",
        "shutdown.stop": "CS", "test.battery.start.quick": "T", "test.battery.start.deep": "TL",
        "test.battery.stop": "CT",
    }
    if cmd in simple:
        return simple[cmd].encode() + b"\r"
    if cmd == "shutdown.stayoff":
        return f"S{_off_field(offdelay)}R0000\r".encode()
    if cmd in ("shutdown.return", "test.battery.start"):
        return encode_command(cmd, param, ondelay, offdelay)
    return None


# ---- the driver --------------------------------------------------------------------------

_CABLEPOWER = {"normal": (True, False), "reverse": (False, True), "both": (True, True),
               "none": (False, False)}


class MegatecDriver(Driver):
    names = ("nutdrv_qx", "blazer_ser")
    options = frozenset({
        "port", "pollinterval", "pollfreq", "ondelay", "offdelay", "cablepower", "protocol",
        "novendor", "norating", "ignoresab", "baudrate",
    })
    version = "0.1"

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        c = self.config
        self.port = c.get("port", "")
        if not self.port:
            raise ConfigError("megatec: 'port' is required")
        self.blazer = c.get("driver", "") == "blazer_ser"
        cable = c.get("cablepower", "normal").lower()
        if cable not in _CABLEPOWER:
            raise ConfigError(f"cablepower must be one of {', '.join(_CABLEPOWER)}")
        self.protocol: str | None = c.get("protocol") or None
        known = STATUS_QUERY if self.blazer else PROTOCOL_NAMES
        if self.protocol is not None and self.protocol not in known:
            raise ConfigError(f"protocol must be one of {', '.join(known)}")
        try:
            self.ondelay = round_ondelay(int(c.get("ondelay", DEFAULT_ONDELAY)))
            self.offdelay = round_offdelay(int(c.get("offdelay", DEFAULT_OFFDELAY)))
            baud = int(c.get("baudrate", "2400"))
        except ValueError as exc:
            raise ConfigError(f"megatec: bad option value ({exc})") from None
        # Voltronic units count up to 99 minutes, the others up to 10
        max_off = 600 if self.protocol in STATUS_QUERY else 5940
        if not 12 <= self.offdelay <= max_off or not 0 <= self.ondelay <= 599940:
            raise ConfigError(f"offdelay must be 12..{max_off} s and ondelay 0..599940 s")
        self.flags = {k for k in ("novendor", "norating", "ignoresab") if k in c}
        dtr, rts = _CABLEPOWER[cable]
        from ..serial import SerialLink

        self.link = SerialLink(self.port, baudrate=baud, dtr=dtr, rts=rts)
        # reopening a serial port is cheap: keep the worst-case recovery after a replug
        # well under 10 s
        self.retry_max = 5.0
        self._lock = asyncio.Lock()
        self._static: dict[str, str] = {}
        self._polled: tuple[str, ...] = ()  # the optional Voltronic queries the UPS answers
        self._published = False

    @property
    def counters(self) -> dict[str, int]:
        return self.link.counters

    # ---- transport -------------------------------------------------------------------
    async def _transact(self, request: bytes, timeout: float = REPLY_TIMEOUT) -> bytes | None:
        """Send one request and read one line; None if the UPS stays silent. Raises
        DeviceError when the port itself fails."""
        from ..serial import SerialTimeout

        async with self._lock:
            await self.link.flush_input()
            await self.link.write(request)
            try:
                return await self.link.read_until(b"\r", timeout, MAX_REPLY)
            except SerialTimeout:
                return None

    async def query(self, query: str, request: bytes, tries: int = TRIES) -> dict[str, str] | None:
        """Ask up to ``tries`` times for a well-formed reply; malformed ones are counted."""
        for _ in range(tries):
            try:
                raw = await self._transact(request)
            except DeviceError:
                if not self.link.is_open:
                    raise
                raw = b""  # an oversize line: already counted by the link
                continue
            if raw is None:
                continue
            if is_nak(raw):
                return None  # the UPS does not know this query: asking again will not help
            values = v_parse(query, raw) if query in V_MIN_LEN else parse(query, raw)
            if values is not None:
                return values
            self.link.counters["garbage"] += 1
            log.debug("UPS [%s]: dropped malformed reply to %r: %r", self.device.name, request, raw)
        return None

    # ---- life cycle ------------------------------------------------------------------
    async def connect(self) -> None:
        await self.link.open()
        await asyncio.sleep(0.1)  # let a cable powered from DTR/RTS come up
        if self.protocol is None:
            self.protocol = await self._detect()
        if self.protocol == "voltronic":
            await self._connect_voltronic()
            return
        if self.offdelay > 600:  # detected a unit that counts only up to 10 minutes
            self.offdelay = 600
        static: dict[str, str] = {}
        if "norating" not in self.flags:
            static.update(await self.query("F", b"F\r") or {})
        if "novendor" not in self.flags:
            static.update(await self.query("I", b"I\r", tries=2) or {})
        self._static = static

    async def _connect_voltronic(self) -> None:
        static: dict[str, str] = {}
        for query in V_STATIC:
            static.update(await self.query(query, f"{query}\r".encode(), tries=2) or {})
        self._static = static
        self._polled = tuple([q for q in V_POLLED
                              if await self.query(q, f"{q}\r".encode(), tries=2) is not None])

    async def _detect(self) -> str:
        # NUT's order: Voltronic (QGS, confirmed by QPI), then Mustek (units that answer
        # QS may answer Q1 with something else), then plain Megatec
        if not self.blazer and await self.query("QGS", b"QGS\r", tries=1) is not None \
                and await self.query("QPI", b"QPI\r", tries=1) is not None:
            log.info("UPS [%s]: using protocol Voltronic", self.device.name)
            return "voltronic"
        for name in ("mustek", "megatec"):
            if await self.query("status", STATUS_QUERY[name], tries=1) is not None:
                log.info("UPS [%s]: using protocol %s", self.device.name, PROTOCOL_NAMES[name])
                return name
        raise DeviceError(f"no Megatec/Q1 UPS answers on {self.port}")

    async def close(self) -> None:
        await self.link.close()

    async def update(self) -> None:
        assert self.protocol is not None
        if self.protocol == "voltronic":
            await self._update_voltronic()
            return
        values = await self.query("status", STATUS_QUERY[self.protocol])
        if values is None:
            raise DeviceError(f"no valid status reply from {self.port}")
        self._publish(values)

    async def _update_voltronic(self) -> None:
        values = await self.query("QGS", b"QGS\r")
        if values is None:
            raise DeviceError(f"no valid status reply from {self.port}")
        for query in self._polled:  # a missed optional reply keeps the last values
            values.update(await self.query(query, f"{query}\r".encode(), tries=1) or {})
        bits = values.pop("_bits")
        st = v_decode_status(bits, values.pop("_mode", None), ignoresab="ignoresab" in self.flags)
        dev = self.device
        with dev.batch():
            if not self._published:
                self.publish_driver_info()
                self.publish_core_extras()
                dev.set("driver.version.data", PROTOCOL_NAMES["voltronic"])
                dev.set("device.type", "ups")
                for cmd in COMMANDS:
                    dev.add_cmd(cmd)
                for var, delay in (("ups.delay.shutdown", self.offdelay),
                                   ("ups.delay.start", self.ondelay)):
                    dev.set(var, delay, rw=True)
                    dev.add_range(var, *V_DELAY_RANGES[var])
                self._published = True
            if st.ups_type:
                dev.set("ups.type", st.ups_type)
            for var, value in (self._static | values).items():
                if var == "battery.packs":
                    dev.set(var, value, rw=True)
                    dev.add_range(var, *V_PACKS_RANGE)
                else:
                    dev.set(var, value)
            dev.set("ups.beeper.status", st.beeper)
            dev.set_status(*st.tokens)

    def _publish(self, values: dict[str, str]) -> None:
        dev = self.device
        bits = values.pop("_bits")
        st = decode_status(bits, finite_number(values.get("input.voltage", "")),
                           finite_number(values.get("output.voltage", "")),
                           ignoresab="ignoresab" in self.flags)
        with dev.batch():
            if not self._published:
                self.publish_driver_info()
                self.publish_core_extras()
                if not self.blazer:
                    dev.set("driver.version.data", PROTOCOL_NAMES[self.protocol or "megatec"])
                dev.set("device.type", "ups")
                for cmd in COMMANDS:
                    dev.add_cmd(cmd)
                for var, delay in (("ups.delay.shutdown", self.offdelay),
                                   ("ups.delay.start", self.ondelay)):
                    # blazer_ser takes them from ups.conf only
                    dev.set(var, delay, rw=not self.blazer)
                    if not self.blazer:
                        dev.add_range(var, *DELAY_RANGES[var])
                dev.set("ups.type", st.ups_type)
                self._published = True
            for var, value in self._static.items():
                dev.set(var, value)
                if self.blazer and var in ("device.mfr", "device.model"):
                    dev.set("ups." + var.split(".")[1], value)
            for var, value in values.items():
                dev.set(var, value)
            nominal = finite_number(self._static.get("battery.voltage.nominal", ""))
            volts = finite_number(values.get("battery.voltage", ""))
            if nominal and volts is not None:
                low, high, charge = battery_charge(volts, nominal)
                dev.set("battery.voltage.low", f"{low:.2f}")
                dev.set("battery.voltage.high", f"{high:.2f}")
                dev.set("battery.charge", charge)
            dev.set("ups.beeper.status", st.beeper)
            if st.alarms:
                dev.set("ups.alarm", " ".join(st.alarms))
            else:
                dev.delete("ups.alarm")
            dev.set_status(*(["ALARM"] if st.alarms else []), *st.tokens)

    # ---- commands and settings ---------------------------------------------------------
    async def instcmd(self, cmd: str, param: str | None) -> Status:
        try:
            if self.protocol == "voltronic":
                request = v_encode_command(
                    cmd, param, self.ondelay, self.offdelay,
                    beeper_on=self.device.value("ups.beeper.status") != "disabled")
            else:
                request = encode_command(cmd, param, self.ondelay, self.offdelay,
                                         minutes=self.blazer)
        except CommandError as exc:
            log.warning("UPS [%s]: %s", self.device.name, exc)
            return Status.INVALID
        if request is None:
            return Status.UNKNOWN
        return await self._command(cmd, request)

    async def _command(self, cmd: str, request: bytes) -> Status:
        if not self.link.is_open:
            return Status.FAILED
        try:
            reply = await self._transact(request)
        except DeviceError as exc:
            log.warning("UPS [%s]: %s: %s", self.device.name, cmd, exc)
            return Status.FAILED
        status = command_status(reply)
        if status != Status.HANDLED:
            log.warning("UPS [%s]: %s refused (%r)", self.device.name, cmd, reply)
        self.poke()
        return status

    async def setvar(self, name: str, value: str) -> Status:
        name = name.lower()
        voltronic = self.protocol == "voltronic"
        if voltronic and name == "battery.packs" and self.device.value(name) is not None:
            try:
                packs = int(value)
            except ValueError:
                return Status.INVALID
            if not V_PACKS_RANGE[0] <= packs <= V_PACKS_RANGE[1]:
                return Status.INVALID
            # the UPS reports the new number in its next QBV reply
            return await self._command(name, f"BATGN{packs:02d}\r".encode())
        if name not in DELAY_RANGES or self.blazer:
            return Status.UNKNOWN
        try:
            seconds = int(value)
        except ValueError:
            return Status.INVALID
        lo, hi = (V_DELAY_RANGES if voltronic else DELAY_RANGES)[name]
        if not lo <= seconds <= hi:
            return Status.INVALID
        if name == "ups.delay.shutdown":
            self.offdelay = round_offdelay(seconds)
            self.device.set(name, self.offdelay)
        else:
            self.ondelay = round_ondelay(seconds)
            self.device.set(name, self.ondelay)
        return Status.HANDLED
