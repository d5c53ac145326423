"""APC Smart protocol (NUT's ``apcsmart``), sans-IO parsing plus a small driver.

The protocol: one command byte in, one ``text\\r\\n`` line out (2400 8N1).
The UPS may also send single *alert* characters at any moment, even in the
middle of a reply (``!`` on battery, ``$`` mains back, ``%``/``+`` low battery
on/off, ``#`` replace battery, ``?``/``=`` overload on/off). :class:`LineReader`
strips them from the byte stream before lines are assembled.

Behaviour follows observing Debian's ``/lib/nut/apcsmart`` (NUT 2.8.0) against
our simulator: handshake ``Y`` (expect ``SM``), ``b``, ``a`` (command set),
``^A`` model, ``^Z`` (capabilities: the enumerated values of settings), then
a read of every supported variable, then a poll of the dynamic ones. Settings
are changed by re-reading the variable and sending ``-`` (next value) until the
wanted value comes up; 8-character strings are written as ``-`` + the text
padded with CRs. Values are published as the UPS sends them (``024.9``,
``020``), except the minute/hour ones NUT converts to seconds and the transfer
reason NUT spells out. Firmware without the ``a`` command set is probed variable
by variable; what answers ``NA`` is not polled again.

Known differences from NUT's apcsmart: ``sdtype``, ``advorder``, ``awd`` and
``cshdelay`` are accepted but the shutdown follows the bridge's common
``killpower`` plan; no firmware compatibility table (``V``); no dual-byte
(``0x9F``) commands; ``bypass.start``/``.stop`` succeed when the UPS answers
``BYP``/``INV`` (NUT reports those answers as a failure).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ...state import Device
from ..base import ConfigError, DeviceError, Driver, Status
from ..serial import SerialLink

log = logging.getLogger(__name__)

# ---- alerts and line assembly -------------------------------------------------------

#: alert character -> (status tokens set, status tokens cleared)
ALERTS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ord("!"): (("OB",), ("OL",)),
    ord("$"): (("OL",), ("OB",)),
    ord("%"): (("LB",), ()),
    ord("+"): ((), ("LB",)),
    ord("#"): (("RB",), ()),
    ord("?"): (("OVER",), ()),
    ord("="): ((), ("OVER",)),
}
#: bytes that carry no data for us anywhere: CR, "EEPROM changed", "check alarm register"
IGNORED = frozenset(b"\r|&")
#: longest reply line; APC's longest (the ^Z capabilities) are a few hundred bytes
MAX_LINE = 512
#: alert characters kept between two reads of them; a UPS sends one per event, so only a
#: flood hits this (then the newest win: they carry the latest state)
MAX_ALERTS = 64


def _bytes_except(keep: bytes) -> bytes:
    return bytes(sorted(set(range(256)) - set(keep)))


def _mode(ignored: bytes, alerts: bytes, ends: bytes) -> tuple[bytes, bytes, bytes, re.Pattern[bytes]]:
    """(bytes to delete, the alert bytes, every byte but the alerts, line-end pattern)."""
    return ignored + alerts, alerts, _bytes_except(alerts), re.compile(b"[" + re.escape(ends) + b"]")


_ALL_ALERTS = bytes(sorted(ALERTS))
# per mode, see LineReader: what is dropped, what is an alert, what ends a line
_MODES = {
    "normal": _mode(bytes(sorted(IGNORED)), _ALL_ALERTS, b"\n*"),
    "caps": _mode(bytes(sorted(IGNORED)), _ALL_ALERTS.replace(b"#", b""), b"\n*"),
    "raw": _mode(b"\r", b"", b"\n"),
}


class LineReader:
    """Feed raw bytes, get reply lines and alert characters out.

    ``caps`` mode is for the ``^Z`` reply, whose text legitimately contains
    ``#`` and the other alert characters. ``raw`` mode (for ``a``) keeps them
    too. Lines longer than ``MAX_LINE`` are dropped and counted. The bytes are
    scanned with ``bytes.translate`` and a regex, so the cost per byte is C's;
    Python runs once per line.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.alerts: list[int] = []
        self.dropped = 0
        self._skipping = False
        self.mode = "normal"  # "normal", "caps" (^Z reply), "raw" (a reply)

    def feed(self, data: bytes) -> list[str]:
        drop, alert_bytes, not_alerts, ends = _MODES[self.mode]
        if alert_bytes:
            found = data.translate(None, not_alerts)
            if found:
                self.alerts += found
                if len(self.alerts) > MAX_ALERTS:
                    del self.alerts[:-MAX_ALERTS]
        data = data.translate(None, drop)
        lines: list[str] = []
        start = 0
        for m in ends.finditer(data):
            self._add(data[start:m.start()])
            start = m.end()
            star = data[m.start()] == 0x2A  # "*" ends a line; alone it means "OK"
            if star and self.buf:
                self.buf.append(0x2A)
            text = self.buf.decode("latin-1")
            self.buf.clear()
            if self._skipping:  # the tail of an oversize frame
                self._skipping = False
                continue
            lines.append("OK" if star and text in ("", "*") else text)
        self._add(data[start:])
        return lines

    def _add(self, chunk: bytes) -> None:
        if self._skipping or not chunk:
            return
        if len(self.buf) + len(chunk) > MAX_LINE:
            self.buf.clear()
            self.dropped += 1
            self._skipping = True
            return
        self.buf += chunk

    def take_alerts(self) -> list[int]:
        out, self.alerts = self.alerts, []
        return out


def apply_alerts(tokens: list[str], alerts: list[int]) -> list[str]:
    """Status tokens after alert characters, in order of arrival."""
    out = list(tokens)
    for a in alerts:
        add, remove = ALERTS.get(a, ((), ()))
        out = [t for t in out if t not in remove and t != "OFF"]
        out += [t for t in add if t not in out]
    return out


# ---- status byte -----------------------------------------------------------------------

STATUS_BITS: tuple[tuple[int, str], ...] = (
    (0x01, "CAL"), (0x02, "TRIM"), (0x04, "BOOST"), (0x08, "OL"),
    (0x10, "OB"), (0x20, "OVER"), (0x40, "LB"), (0x80, "RB"),
)
_HEX_RE = re.compile(r"^[0-9A-Fa-f]{1,2}$")


def parse_status(reply: str) -> list[str] | None:
    """Tokens of a ``Q`` reply (two hex digits); None for anything else."""
    reply = reply.strip()
    if not _HEX_RE.match(reply):
        return None
    value = int(reply, 16)
    if value == 0:
        return ["OFF"]
    return [name for mask, name in STATUS_BITS if value & mask]


# ---- command set and capabilities ---------------------------------------------------------

_CMDSET_RE = re.compile(r"^[0-9]\.[^.]*\.[^.]+(\.[^.]+)?$", re.S)
_FW_RE = re.compile(r"^[0-9A-Za-z]+\.[0-9A-Za-z]+\.[0-9A-Za-z]+$")


@dataclass(frozen=True, slots=True)
class CmdSet:
    protocol: int
    alerts: str
    cmds: frozenset[str]


def parse_cmdset(reply: str) -> CmdSet | None:
    """``a`` reply ``protocol.alertchars.cmdchars[.dualbyte]``; None if malformed."""
    if not _CMDSET_RE.match(reply):
        return None
    parts = reply.split(".")
    return CmdSet(int(parts[0]), parts[1], frozenset(parts[2]))


def firmware_locale(fw: str) -> str | None:
    """Last character of a ``b`` reply like ``925.T2.I`` (the locale)."""
    return fw[-1] if _FW_RE.match(fw) else None


def parse_capabilities(reply: str, locale: str | None) -> dict[str, list[str]] | None:
    """``^Z`` reply -> {command char: [raw values]} for ``locale`` (``4`` = every locale).

    Groups are ``<cmd><locale><count><len><count*len chars>``; a doubled ``#``
    before a group marks Matrix-UPS models. None when the text does not parse.
    """
    if not reply.startswith("#"):
        return None
    out: dict[str, list[str]] = {}
    i, n = 1, len(reply)
    while i < n:
        if reply[i] == "#":
            i += 1
            continue
        if i + 4 > n:
            return None
        cmd, loc, cnt, ln = reply[i], reply[i + 1], reply[i + 2], reply[i + 3]
        if not (cnt.isdigit() and ln.isdigit()):
            return None
        size = int(cnt) * int(ln)
        body = reply[i + 4:i + 4 + size]
        if len(body) != size:
            return None
        i += 4 + size
        if loc == "4" or loc == locale:
            vals = [body[k:k + int(ln)] for k in range(0, size, int(ln))] if int(ln) else []
            known = out.setdefault(cmd, [])
            known += [v for v in dict.fromkeys(vals) if v not in known]
    return out


# ---- variables ------------------------------------------------------------------------------


def _raw(text: str) -> str | None:
    """The reply as the UPS sent it (NUT keeps ``024.9``, ``020``... unchanged)."""
    t = text.strip()
    return t if t and t.isprintable() else None


def _scaled(factor: int, strip: str = "") -> Callable[[str], str | None]:
    def conv(text: str) -> str | None:
        t = text.strip().rstrip(strip)
        try:
            return str(int(float(t) * factor))
        except (ValueError, OverflowError):
            return None
    return conv


def _hours(text: str) -> str | None:
    t = text.strip()
    if t.upper() == "OFF":
        return "0"
    if t.upper() == "ON":
        return None  # "at power-on only" has no seconds value; NUT leaves it out too
    return _scaled(3600)(t)


TRANSFER_REASONS = {
    "O": "no transfers yet since turnon",
    "R": "unacceptable utility voltage rate of change",
    "H": "high utility voltage",
    "L": "low utility voltage",
    "T": "line voltage notch or spike",
    "S": "simulated power failure",
}


def _reason(text: str) -> str | None:
    t = text.strip()
    return TRANSFER_REASONS.get(t, _raw(t))


@dataclass(frozen=True, slots=True)
class Var:
    """One row: a command byte and what its reply becomes."""

    cmd: str
    name: str
    conv: Callable[[str], str | None] = _raw
    poll: bool = False  # read every update (else once at connect)
    string: int = 0  # writable string of this length (c, x)
    settable: bool = False  # value cycled with "-" (enumerated in ^Z)


VARS: tuple[Var, ...] = (
    Var("\x01", "ups.model"),
    Var("b", "ups.firmware"),
    Var("v", "ups.firmware.aux"),
    Var("n", "ups.serial"),
    Var("m", "ups.mfr.date"),
    Var("x", "battery.date", string=8),
    Var("c", "ups.id", string=8),
    Var("f", "battery.charge", poll=True),
    Var("B", "battery.voltage", poll=True),
    Var("g", "battery.voltage.nominal"),
    Var("j", "battery.runtime", _scaled(60, ":"), poll=True),
    Var("q", "battery.runtime.low", _scaled(60), settable=True),
    Var("e", "battery.charge.restart", settable=True),
    Var("k", "battery.alarm.threshold", settable=True),
    Var("L", "input.voltage", poll=True),
    Var("M", "input.voltage.maximum", poll=True),
    Var("N", "input.voltage.minimum", poll=True),
    Var("F", "input.frequency", poll=True),
    Var("l", "input.transfer.low", settable=True),
    Var("u", "input.transfer.high", settable=True),
    Var("s", "input.sensitivity", settable=True),
    Var("9", "input.quality", poll=True),
    Var("G", "input.transfer.reason", _reason, poll=True),
    Var("O", "output.voltage", poll=True),
    Var("o", "output.voltage.nominal", settable=True),
    Var("P", "ups.load", poll=True),
    Var("C", "ups.temperature", poll=True),
    Var("E", "ups.test.interval", _hours, settable=True),
    Var("X", "ups.test.result", poll=True),
    Var("r", "ups.delay.start", settable=True),
    Var("p", "ups.delay.shutdown", settable=True),
)
VAR_BY_CMD = {v.cmd: v for v in VARS}
VAR_BY_NAME = {v.name: v for v in VARS}


def convert(cmd: str, reply: str) -> str | None:
    """NUT value for a variable reply; None for ``NA`` or nonsense."""
    var = VAR_BY_CMD.get(cmd)
    if var is None or reply.strip() in ("NA", ""):
        return None
    try:
        return var.conv(reply)
    except (ValueError, OverflowError):
        return None


# ---- instant commands -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cmd:
    name: str
    byte: str
    repeat: bool = False  # send, wait 1.3 s, send again (the UPS ignores a single byte)


CMDS: tuple[Cmd, ...] = (
    Cmd("load.off", "Z", repeat=True),
    Cmd("load.on", "\x0e", repeat=True),
    Cmd("shutdown.stayoff", "K", repeat=True),
    Cmd("shutdown.return", "S"),
    Cmd("calibrate.start", "D"),
    Cmd("calibrate.stop", "D"),
    Cmd("test.panel.start", "A"),
    Cmd("test.failure.start", "U"),
    Cmd("test.battery.start", "W"),
    Cmd("test.battery.stop", "W"),
    Cmd("bypass.start", "^"),
    Cmd("bypass.stop", "^"),
)
CMD_BY_NAME = {c.name: c for c in CMDS}
REPEAT_GAP = 1.3
BYPASS_REPLY = {"bypass.start": "BYP", "bypass.stop": "INV"}
OK_REPLIES = ("OK", "*")


# ---- the driver ------------------------------------------------------------------------------


@dataclass
class Session:
    """What the handshake learnt."""

    cmds: frozenset[str] = frozenset()
    vars: set[str] = field(default_factory=set)  # variables that answered at connect
    caps: dict[str, list[str]] = field(default_factory=dict)
    locale: str | None = None


class ApcSmart(Driver):
    names = ("apcsmart",)
    options = frozenset({"cable", "ttymode", "sdtype", "awd", "advorder", "cshdelay"})
    version = "3.2"
    timeout = 1.5

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        self.port = self.config.get("port", "")
        if not self.port:
            raise ConfigError("apcsmart needs 'port' (a serial device)")
        cable = self.config.get("cable", "")
        self._dtr_rts: tuple[bool | None, bool | None] = (
            (True, False) if cable.upper() == "940-0095B" else (None, None))
        self.link: SerialLink | None = None
        self.reader = LineReader()
        self.retry_max = 5.0  # reopening a port is cheap: recover from a replug well under 10 s
        self.session = Session()
        self._lock = asyncio.Lock()
        self._tokens: list[str] = []
        self.garbage = 0

    # ---- low level ------------------------------------------------------------------
    def _link(self) -> SerialLink:
        if self.link is None or not self.link.is_open:
            raise DeviceError("serial port closed")
        return self.link

    async def _ask(self, cmd: str, mode: str = "normal", timeout: float | None = None) -> str:
        """Send one command byte (or bytes) and return its reply line."""
        link = self._link()
        # anything unread now is a late reply or noise: drop it (keeping its alerts),
        # so that the reply we read next belongs to this command
        stale = self.reader.feed(await link.read_available(0))
        if stale or self.reader.buf:
            self.reader.buf.clear()
            self._bad()
        self.reader.mode = mode
        try:
            await link.write(cmd.encode("latin-1"))
            deadline = time.monotonic() + (timeout or self.timeout)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeviceError(f"no reply to {cmd!r}")
                lines = self.reader.feed(await link.read_available(min(left, 0.2)))
                if self.reader.dropped:  # oversize frames
                    for _ in range(self.reader.dropped):
                        self._bad()
                    self.reader.dropped = 0
                if lines:
                    if len(lines) > 1:  # one command, one line: the rest is noise
                        self._bad()
                    return lines[0]
        finally:
            self.reader.mode = "normal"
            self._handle_alerts()

    def _bad(self) -> None:
        """Count a reply we had to drop (also on the link, for diagnostics)."""
        self.garbage += 1
        if self.link is not None:
            self.link.counters["garbage"] = self.link.counters.get("garbage", 0) + 1

    def _handle_alerts(self) -> None:
        alerts = self.reader.take_alerts()
        if alerts and self._tokens:
            self._tokens = apply_alerts(self._tokens, alerts)
            self.device.set_status(*self._tokens)
            self.poke()

    # ---- life cycle ---------------------------------------------------------------------
    async def connect(self) -> None:
        if self.link is None:
            dtr, rts = self._dtr_rts
            self.link = SerialLink(self.port, baudrate=2400, dtr=dtr, rts=rts)
        await self.link.open()
        self.reader = LineReader()
        async with self._lock:
            await self._handshake()

    async def _handshake(self) -> None:
        link = self._link()
        await link.flush_input()
        for _ in range(3):
            try:
                if await self._ask("Y") == "SM":
                    break
            except DeviceError:
                continue
        else:
            raise DeviceError("no APC Smart UPS answers (Y -> SM)")
        fw = await self._ask("b")
        s = Session(locale=firmware_locale(fw))
        cmdset = parse_cmdset(await self._ask("a", mode="raw"))
        if cmdset is None:
            # older firmware: no command list; try every variable and keep what answers
            log.info("UPS [%s]: no command set ('a'); probing every variable", self.device.name)
            s.cmds = frozenset(v.cmd for v in VARS) | frozenset(c.byte for c in CMDS)
        else:
            s.cmds = cmdset.cmds
        if "\x1a" in s.cmds:
            caps = parse_capabilities(await self._ask("\x1a", mode="caps", timeout=5.0), s.locale)
            if caps is None:
                self._bad()
            s.caps = caps or {}
        self.session = s
        dev = self.device
        with dev.batch():
            self.publish_driver_info()
            dev.set("driver.parameter.synchronous", self.config.get("synchronous", "auto"))
            dev.set("device.type", "ups")
            dev.set("ups.mfr", "APC")
            dev.set("device.mfr", "APC")
            for var in VARS:
                if (var.cmd in s.cmds or var.cmd == "b") and await self._read_var(var):
                    s.vars.add(var.cmd)
            for key in ("model", "serial"):
                v = dev.value(f"ups.{key}")
                if v is not None:
                    dev.set(f"device.{key}", v)
            for c in CMDS:
                if c.byte in s.cmds:
                    dev.add_cmd(c.name)
            self.publish_core_extras()

    async def _read_var(self, var: Var) -> bool:
        """Read one variable into the device; False when the UPS has no value for it."""
        reply = await self._ask(var.cmd)
        value = convert(var.cmd, reply)
        dev = self.device
        if value is None:
            if reply.strip() not in ("NA", ""):
                self._bad()
            return False
        if var.string:
            dev.set(var.name, value, rw=True, string=True, aux=var.string)
        elif var.settable and var.cmd in self.session.caps:
            dev.set(var.name, value, rw=True, string=False)
            enums = [e for e in (convert(var.cmd, c) for c in self.session.caps[var.cmd]) if e]
            dev.set_enums(var.name, enums)
        else:
            dev.set(var.name, value)
        return True

    async def update(self) -> None:
        async with self._lock:
            tokens = parse_status(await self._ask("Q"))
            if tokens is None:
                self._bad()
                raise DeviceError("bad status reply")
            self._tokens = tokens
            with self.device.batch():
                for var in VARS:
                    if var.poll and var.cmd in self.session.vars:
                        await self._read_var(var)
                self.device.set_status(*tokens)

    async def wait(self) -> None:
        """Poll, but wake up at once when an alert character arrives."""
        deadline = time.monotonic() + self.pollinterval
        while not self._wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            async with self._lock:
                data = await self._link().read_available(min(left, 0.25))
                self.reader.feed(data)
                self._handle_alerts()
        self._wake.clear()

    async def close(self) -> None:
        link = self.link
        if link is not None and link.is_open:
            try:
                await link.close()
            except Exception:  # close must not raise
                log.debug("apcsmart: close failed", exc_info=True)

    # ---- commands ---------------------------------------------------------------------
    async def instcmd(self, cmd: str, param: str | None) -> Status:
        c = CMD_BY_NAME.get(cmd)
        if c is None or c.byte not in self.session.cmds:
            return Status.UNKNOWN
        try:
            return await self._instcmd(c)
        except DeviceError as exc:  # the poll loop notices a dead port by itself
            log.warning("UPS [%s]: %s failed: %s", self.device.name, cmd, exc)
            return Status.FAILED

    async def _instcmd(self, c: Cmd) -> Status:
        cmd = c.name
        async with self._lock:
            link = self._link()
            if c.byte == "D":
                # "D" toggles: only send it when it moves calibration the wanted way
                calibrating = "CAL" in (parse_status(await self._ask("Q")) or [])
                if calibrating == (cmd == "calibrate.start"):
                    log.warning("UPS [%s]: %s: calibration is %srunning", self.device.name,
                                cmd, "already " if calibrating else "not ")
                    return Status.FAILED
            if c.repeat:
                await link.write(c.byte.encode("latin-1"))
                early = self.reader.feed(await link.read_available(0.2))
                self._handle_alerts()
                if early:
                    return Status.FAILED
                await asyncio.sleep(REPEAT_GAP)
            reply = await self._ask(c.byte, timeout=3.0)
        self.poke()
        if c.byte == "^":  # the UPS says which way the toggle went
            return Status.HANDLED if reply == BYPASS_REPLY[cmd] else Status.FAILED
        return Status.HANDLED if reply in OK_REPLIES else Status.FAILED

    async def setvar(self, name: str, value: str) -> Status:
        var = VAR_BY_NAME.get(name)
        if var is None or var.cmd not in self.session.cmds:
            return Status.UNKNOWN
        try:
            return await self._setvar(var, value)
        except DeviceError as exc:
            log.warning("UPS [%s]: SET %s failed: %s", self.device.name, name, exc)
            return Status.FAILED

    async def _setvar(self, var: Var, value: str) -> Status:
        if var.string:
            if len(value) > var.string or not value.isprintable():
                return Status.INVALID
            async with self._lock:
                await self._ask(var.cmd)
                # padded with CRs to the full length, as NUT does
                reply = await self._ask("-" + value.ljust(var.string, "\r"), timeout=3.0)
                await self._read_var(var)
            return Status.HANDLED if reply in OK_REPLIES else Status.FAILED
        caps = self.session.caps.get(var.cmd)
        if not var.settable or caps is None:
            return Status.UNKNOWN
        if value not in [convert(var.cmd, c) for c in caps]:
            return Status.INVALID
        async with self._lock:
            for _ in range(32):
                if convert(var.cmd, await self._ask(var.cmd)) == value:
                    await self._read_var(var)
                    return Status.HANDLED
                if await self._ask("-", timeout=3.0) not in OK_REPLIES:
                    return Status.FAILED
        return Status.FAILED

