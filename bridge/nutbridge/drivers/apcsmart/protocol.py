"""The APC Smart protocol, sans-IO: command bytes, the variable table, reply parsing, alerts.

The wire: one command byte in, one ``text\\r\\n`` line out (2400 8N1). The UPS
may also send single *alert* characters at any moment, even in the middle of a
reply (``!`` on battery, ``$`` mains back, ``%``/``+`` low battery on/off, ``#``
replace battery, ``?``/``=`` overload on/off). :class:`LineReader` strips them
from the byte stream before lines are assembled; :func:`apply_alerts` turns them
into status tokens.

What the commands mean (observed from Debian's ``/lib/nut/apcsmart``, NUT 2.8.0,
against our simulator): ``Y`` enters smart mode (answer ``SM``), ``b`` is the
firmware (its last character the locale), ``a`` the command set, ``^Z`` the
capabilities (the enumerated values of each setting per locale), ``Q`` the status
register. A setting is changed by sending ``-`` ("next value") until the wanted
value comes up; an 8-character string is written as ``-`` + the text padded with
CRs. Values are published as the UPS sends them (``024.9``, ``020``), except the
minute/hour ones NUT converts to seconds and the transfer reason NUT spells out.

Nothing here reads or writes a port or a device: bytes and strings in, typed
values out, so every parser is tested directly (tests/test_apcsmart.py) and the
driver (:mod:`.driver`) only sequences commands and publishes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# ---- command bytes the driver sequences itself --------------------------------------------

SMART_MODE = "Y"  # answered by SMART_MODE_REPLY
SMART_MODE_REPLY = "SM"
FIRMWARE = "b"  # read even when the command set does not list it (the locale comes from it)
CMDSET = "a"
CAPABILITIES = "\x1a"  # ^Z
STATUS = "Q"
NEXT_VALUE = "-"  # step a setting to its next value; "-" + text writes a string setting
CALIBRATE = "D"  # a toggle: on when off, off when on
BYPASS = "^"  # a toggle too; the reply says which way it went

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
    Var(FIRMWARE, "ups.firmware"),
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
    # external battery packs (Smart-UPS XL, Matrix): SmartCell models count them, others
    # report what was set at the panel; "NA" where there are none. NUT reads both once at
    # start, unconverted; a setting only where ^Z enumerates it (none known does for "<")
    Var(">", "battery.packs", settable=True),
    Var("<", "battery.packs.bad"),
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
    if var is None or is_no_value(reply):
        return None
    try:
        return var.conv(reply)
    except (ValueError, OverflowError):
        return None


def is_no_value(reply: str) -> bool:
    """The UPS has no value for this variable (``NA`` or an empty line): not garbage."""
    return reply.strip() in ("NA", "")


def enum_values(var: Var, caps: list[str]) -> list[str]:
    """The NUT values of a setting's ``^Z`` choices (the ones that convert)."""
    return [e for e in (convert(var.cmd, c) for c in caps) if e]


def string_write(var: Var, value: str) -> str | None:
    """The bytes that write a string setting: ``-`` + the text padded with CRs to the
    full length, as NUT does; None when the text is too long or not printable."""
    if len(value) > var.string or not value.isprintable():
        return None
    return NEXT_VALUE + value.ljust(var.string, "\r")


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
    Cmd("calibrate.start", CALIBRATE),
    Cmd("calibrate.stop", CALIBRATE),
    Cmd("test.panel.start", "A"),
    Cmd("test.failure.start", "U"),
    Cmd("test.battery.start", "W"),
    Cmd("test.battery.stop", "W"),
    Cmd("bypass.start", BYPASS),
    Cmd("bypass.stop", BYPASS),
)
CMD_BY_NAME = {c.name: c for c in CMDS}
REPEAT_GAP = 1.3
BYPASS_REPLY = {"bypass.start": "BYP", "bypass.stop": "INV"}
OK_REPLIES = ("OK", "*")


def command_succeeded(cmd: Cmd, reply: str) -> bool:
    """Whether an instant command's reply says it was done. The bypass toggle answers
    which way it went (``BYP``/``INV``), every other command ``OK`` or ``*``."""
    if cmd.byte == BYPASS:
        return reply == BYPASS_REPLY[cmd.name]
    return reply in OK_REPLIES
