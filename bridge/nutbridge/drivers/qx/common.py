"""What the two qx protocols, Megatec Q1/QS (:mod:`.q1`) and Voltronic (:mod:`.voltronic`), share.

Voltronic firmware grew out of Megatec's, so both keep the same line discipline and
part of the same command set, and NUT's nutdrv_qx treats them alike there:

* a request is a few ASCII letters and a CR; a reply is one CR-terminated line of
  printable ASCII, its fields at fixed columns (:func:`reply_text`, :class:`Field`,
  :func:`read_fields`); an unknown query may be answered ``NAK`` (:func:`is_nak`);
* the same ten instant commands (:data:`COMMANDS`); the shutdown commands
  (``S.5R0003``: 6 s steps below a minute, whole minutes above, restart in minutes)
  and the timed battery test (``T10``) are spelled alike (:func:`encode_command`);
* a command is either not answered or answered ``ACK`` when carried out
  (:func:`command_status`).

Sans-IO like the protocol modules: bytes and strings in, typed values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..base import Status, finite_number

#: the instant commands both protocols offer
COMMANDS = (
    "beeper.toggle", "load.off", "load.on", "shutdown.return", "shutdown.stayoff", "shutdown.stop",
    "test.battery.start", "test.battery.start.deep", "test.battery.start.quick", "test.battery.stop",
)


# ---- replies -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One NUT variable read from one query's reply, at fixed columns."""

    var: str
    query: str
    start: int  # first character, 0-based, counting the leading '(' or '#'
    end: int | None  # last character (inclusive); None = to the end of the reply
    fmt: str = ""  # printf-like float format; "" = text (stripped)
    scale: float = 1.0  # multiplies a number before it is formatted
    verbatim: bool = False  # text kept as sent, spaces included (NUT does for Voltronic's firmware)


def reply_text(raw: bytes) -> str | None:
    """A reply line as text, its CR dropped; None unless it is non-empty printable ASCII
    (anything else is line noise or a wrong baud rate)."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw or any(b < 0x20 or b > 0x7E for b in raw):
        return None
    return raw.decode("ascii")


def is_nak(raw: bytes) -> bool:
    """The UPS does not know the query or refuses the command."""
    return raw.strip(b"\r\n ") in (b"(NAK", b"NAK")


def read_fields(text: str, query: str, fields: Iterable[Field], pad: str = "") -> dict[str, str]:
    """NUT variables from the ``fields`` of ``query`` in a checked reply. ``pad``: a padding
    character removed from fields first (Voltronic's ``#``). A number field that does not
    read as one (``---.-``) is left out, as NUT does, without rejecting the others."""
    out: dict[str, str] = {}
    for f in fields:
        if f.query != query:
            continue
        raw = text[f.start:None if f.end is None else f.end + 1]
        if f.verbatim:
            if raw.strip():
                out[f.var] = raw
            continue
        value = (raw.replace(pad, "") if pad else raw).strip()
        if not f.fmt:
            if value:
                out[f.var] = value
        elif (number := finite_number(value)) is not None:
            out[f.var] = f.fmt % (number * f.scale)
    return out


@dataclass
class StatusInfo:
    """What a status reply says beyond its numbers."""

    tokens: list[str]  # ups.status tokens, ALARM aside
    alarms: list[str]  # ups.alarm texts
    beeper: str  # ups.beeper.status
    ups_type: str  # ups.type; "" = not told


# ---- commands ----------------------------------------------------------------------------

class CommandError(ValueError):
    """The command's parameter is out of range."""


def frame(text: str) -> bytes:
    """A request or command on the wire."""
    return text.encode("ascii") + b"\r"


def round_offdelay(seconds: int) -> int:
    """What the UPS can do: 6 s steps below a minute, whole minutes above."""
    return seconds // 6 * 6 if seconds < 60 else seconds // 60 * 60


def round_ondelay(seconds: int) -> int:
    """The restart delay counts whole minutes."""
    return seconds // 60 * 60


def _off_field(offdelay: int) -> str:
    return f".{offdelay // 6}" if offdelay < 60 else f"{offdelay // 60:02d}"


def encode_command(cmd: str, param: str | None, fixed: Mapping[str, str], ondelay: int,
                   offdelay: int, *, minutes: bool = False) -> bytes | None:
    """The bytes for an instant command: ``fixed`` maps the commands a protocol spells its
    own way, without a parameter; the shutdown and battery-test commands are common. None
    if unknown; :class:`CommandError` on a bad parameter.

    Delays are ups.delay.start / ups.delay.shutdown in seconds. The test.battery.start
    parameter is in seconds (nutdrv_qx: 60..5940) or, with ``minutes`` (blazer_ser), in
    minutes (1..99); 10 minutes by default."""
    cmd = cmd.lower()
    if cmd in fixed:
        return frame(fixed[cmd])
    if cmd == "shutdown.return":
        on = f"R{ondelay // 60:04d}" if ondelay >= 60 else ""
        return frame(f"S{_off_field(offdelay)}{on}")
    if cmd == "shutdown.stayoff":
        return frame(f"S{_off_field(offdelay)}R0000")
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
        return frame(f"T{value // per_minute:02d}")
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
