"""The Voltronic Power protocol (QGS/QPI), sans-IO: nutdrv_qx's ``protocol = voltronic``.

Voltronic Power units (and their many rebrands) answer ``QPI`` with their protocol id,
``(PI<nn>``, and ``QGS`` with a longer status line than Q1; other queries give ratings,
identity and the battery. Replies start with ``(``; an unsupported query is answered
``(NAK``, a carried-out command ``(ACK``. Layouts observed from NUT's nutdrv_qx
(protocol "voltronic", 2.8.0 and 2.8.5) on a simulator::

  QGS  (231.0 50.1 229.0 49.9 001.2 014 369.1 ---.- 027.0 ---.- 030.0 010000000000
  QRI  (230.0 004 024.0 50.0            QMD  (#######OLHVT1K0 ###1000 80 1/1 230 230 02 12.0
  QBV  (027.0 02 01 100 045              QMF  (#####VOLTRONIC   QVFW (VERFW:00322.02
  QID  (12345678901234                   QMOD (L                QPI  (PI01

Here: the variable table (positions as in :mod:`.q1`; ``#`` pads text and numbers),
the frame checks, the status characters and the commands. Parsers never raise: a
malformed frame (or a NAK) gives ``None``. What Voltronic shares with Q1 is in
:mod:`.common`; the I/O in :mod:`.driver`.
"""

from __future__ import annotations

from .common import CommandError, Field, StatusInfo, frame, is_nak, read_fields, reply_text
from .common import encode_command as _encode

#: shortest valid reply to each query, without the CR
MIN_LEN = {"QGS": 75, "QPI": 5, "QRI": 21, "QMD": 31, "QMF": 2, "QVFW": 15, "QID": 2,
           "QBV": 20, "QMOD": 2}
ITEMS: tuple[Field, ...] = (
    Field("input.voltage", "QGS", 1, 5, "%.1f"),
    Field("input.frequency", "QGS", 7, 10, "%.1f"),
    Field("output.voltage", "QGS", 12, 16, "%.1f"),
    Field("output.frequency", "QGS", 18, 21, "%.1f"),
    Field("output.current", "QGS", 23, 27, "%.1f"),
    Field("ups.load", "QGS", 29, 31, "%.0f"),
    Field("battery.voltage", "QGS", 45, 49, "%.2f"),
    Field("ups.temperature", "QGS", 57, 61, "%.1f"),
    Field("output.voltage.nominal", "QRI", 1, 5, "%.1f"),
    Field("output.current.nominal", "QRI", 7, 9, "%.0f"),
    Field("battery.voltage.nominal", "QRI", 11, 15, "%.1f"),
    Field("output.frequency.nominal", "QRI", 17, 20, "%.1f"),
    Field("device.model", "QMD", 1, 15),
    Field("ups.power.nominal", "QMD", 17, 23, "%.0f"),
    Field("output.powerfactor", "QMD", 25, 26, "%.1f", 0.01),
    Field("input.phases", "QMD", 28, 28, "%.0f"),
    Field("output.phases", "QMD", 30, 30, "%.0f"),
    Field("input.voltage.nominal", "QMD", 32, 34, "%.1f"),
    Field("device.mfr", "QMF", 1, None),
    Field("ups.firmware", "QVFW", 7, 14, verbatim=True),
    Field("device.serial", "QID", 1, None),
    Field("battery.packs", "QBV", 10, 11, "%.0f"),
    Field("battery.charge", "QBV", 13, 15, "%.0f"),
    Field("battery.runtime", "QBV", 17, 19, "%.0f", 60.0),
)
#: NUT 2.8.5 publishes QGS's battery voltage as the UPS sends it ("027.0"; 2.8.0: "27.00");
#: it also adds battery.voltage.high/.low guesses (the driver's business, from QRI's nominal)
ITEMS_285: tuple[Field, ...] = tuple(
    Field("battery.voltage", "QGS", 45, 49) if f.var == "battery.voltage" else f for f in ITEMS)
STATUS_BITS = slice(63, 75)
UPS_TYPES = {"00": "offline", "01": "line-interactive", "10": "online"}
#: queried once on connect; QGS, and those of POLLED the UPS answers, on every poll
STATIC = ("QPI", "QRI", "QMD", "QMF", "QVFW", "QID")
POLLED = ("QBV", "QMOD")

#: the off-timer counts up to 99 minutes (Q1: 10)
DELAY_RANGES = {"ups.delay.shutdown": (12, 5940), "ups.delay.start": (0, 599940)}
PACKS_RANGE = (1, 99)


def request(query: str) -> bytes:
    """The bytes that ask ``query`` (a key of :data:`MIN_LEN`, or any other query name)."""
    return frame(query)


def parse(query: str, raw: bytes, items: tuple[Field, ...] = ITEMS) -> dict[str, str] | None:
    """NUT variables from one Voltronic reply; None if it is malformed (or NAK).

    ``QGS`` adds its twelve status characters as ``"_bits"``, ``QMOD`` gives the
    mode letter as ``"_mode"``.
    """
    text = reply_text(raw)
    if text is None or is_nak(raw) or len(text) < MIN_LEN[query] or text[0] != "(":
        return None
    if query == "QPI" and not (text[1:3] == "PI" and text[3:5].isdigit()):
        return None
    if query == "QVFW" and not text.startswith("(VERFW:"):
        return None
    if query == "QGS" and any(c not in "01" for c in text[STATUS_BITS]):
        return None
    out = read_fields(text, query, items, pad="#")
    if query == "QPI":
        out["ups.firmware.aux"] = "P" + text[3:5]  # as NUT shows it
    elif query == "QGS":
        out["_bits"] = text[STATUS_BITS]
    elif query == "QMOD":
        out["_mode"] = text[1]
    return out


def decode_status(bits: str, mode: str | None, *, ignoresab: bool = False) -> StatusInfo:
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
                      UPS_TYPES.get(bits[0:2], ""))


def encode_command(cmd: str, param: str | None, ondelay: int, offdelay: int, *,
                   beeper_on: bool = True) -> bytes | None:
    """The bytes of a Voltronic instant command (None if unknown); CommandError on a
    bad parameter. ``beeper_on``: the present beeper state (there is no toggle)."""
    fixed = {
        "beeper.toggle": "BZOFF" if beeper_on else "BZON", "load.off": "SOFF", "load.on": "SON",
        "shutdown.stop": "CS", "test.battery.start.quick": "T", "test.battery.start.deep": "TL",
        "test.battery.stop": "CT",
    }
    return _encode(cmd, param, fixed, ondelay, offdelay)


def set_packs(value: str) -> bytes:
    """The command that sets battery.packs (the UPS reports the new number in its next
    QBV reply); CommandError unless ``value`` is a whole number in :data:`PACKS_RANGE`."""
    try:
        packs = int(value)
    except ValueError:
        raise CommandError(f"not a number: {value!r}") from None
    if not PACKS_RANGE[0] <= packs <= PACKS_RANGE[1]:
        raise CommandError(f"battery.packs takes {PACKS_RANGE[0]}..{PACKS_RANGE[1]}")
    return frame(f"BATGN{packs:02d}")
