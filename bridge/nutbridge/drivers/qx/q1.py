"""The Megatec Q1 protocol and Mustek's QS dialect, sans-IO (``nutdrv_qx``, ``blazer_ser``).

The host sends a short ASCII query ending in CR and the UPS answers one CR-terminated
line (see docs/serial.md)::

    Q1\\r -> (226.0 195.0 226.0 014 49.0 27.5 30.0 00001001\\r   status
    F\\r  -> #220.0 000 024.0 50.0\\r                            ratings
    I\\r  -> #NOT_A_LIVE_UPS  TESTING    TESTING   \\r            identity

Mustek units answer ``QS`` with the same layout as ``Q1``. Commands (``Q``, ``T``,
``S.5R0003``...) are usually not answered at all.

Here: the variable table (one row per NUT variable, positions as in NUT's own tables:
0-based, inclusive, counting the leading ``(``/``#``), the frame checks, the status
bits, the battery-charge guess and the command table. Parsers never raise: a malformed
frame gives ``None`` and the driver counts it as garbage. What Q1 shares with Voltronic
is in :mod:`.common`; the I/O in :mod:`.driver`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import Field, StatusInfo, frame, read_fields, reply_text
from .common import encode_command as _encode


@dataclass(frozen=True)
class Frame:
    """What a valid reply to a query looks like."""

    leading: str
    min_len: int  # without the CR


#: "status" is Q1 or QS, whichever the dialect uses
FRAMES: dict[str, Frame] = {
    "status": Frame("(", 46),
    "F": Frame("#", 21),
    "I": Frame("#", 38),
}

ITEMS: tuple[Field, ...] = (
    Field("input.voltage", "status", 1, 5, "%.1f"),
    Field("input.voltage.fault", "status", 7, 11, "%.1f"),
    Field("output.voltage", "status", 13, 17, "%.1f"),
    Field("ups.load", "status", 19, 21, "%.0f"),
    Field("input.frequency", "status", 23, 26, "%.1f"),
    Field("battery.voltage", "status", 28, 31, "%.2f"),
    Field("ups.temperature", "status", 33, 36, "%.1f"),
    Field("input.voltage.nominal", "F", 1, 5, "%.0f"),
    Field("input.current.nominal", "F", 7, 9, "%.1f"),
    Field("battery.voltage.nominal", "F", 11, 15, "%.1f"),
    Field("input.frequency.nominal", "F", 17, 20, "%.0f"),
    Field("device.mfr", "I", 1, 15),
    Field("device.model", "I", 17, 26),
    Field("ups.firmware", "I", 28, 37),
)
STATUS_BITS = slice(38, 46)  # b7 .. b0 of the status reply

#: NUT 2.8.5's nutdrv_qx (megatec and mustek subdrivers; not blazer_*) prints
#: ``battery.voltage`` with one decimal; its megatec subdriver also reads ``I`` with the
#: "Megatec IC" layout, which cuts a classic reply apart (``#NUT Bridge      SimQ1 ...`` ->
#: mfr "NUT Bri", serial "dge     ", model "SimQ1"); serial and runtime keep their blanks,
#: as NUT's untrimmed fields do. Observed with Debian's nutdrv_qx 2.8.5 on our simulator.
ITEMS_MUSTEK_285: tuple[Field, ...] = tuple(
    Field("battery.voltage", "status", 28, 31, "%.1f") if f.var == "battery.voltage" else f
    for f in ITEMS)
ITEMS_MEGATEC_285: tuple[Field, ...] = (
    *(f for f in ITEMS_MUSTEK_285 if f.query != "I"),
    Field("device.mfr", "I", 1, 7),
    Field("ups.serial", "I", 8, 15, verbatim=True),
    Field("device.model", "I", 17, 21),
    Field("battery.runtime", "I", 22, 26, verbatim=True),
    Field("ups.firmware", "I", 28, 37),
)


def items_for(dialect: str, blazer: bool, nut_285: bool) -> tuple[Field, ...]:
    """The variable table NUT's driver of the profile's release uses for this dialect."""
    if not nut_285 or blazer:
        return ITEMS
    return ITEMS_MEGATEC_285 if dialect == "megatec" else ITEMS_MUSTEK_285

#: the status query of each dialect (ups.conf ``protocol``)
STATUS_QUERY = {"megatec": b"Q1\r", "mustek": b"QS\r"}
#: ups.delay.shutdown: 12..600 s; ups.delay.start: 0..599940 s (the UPS counts in 6 s /
#: 1 min steps)
DELAY_RANGES = {"ups.delay.shutdown": (12, 600), "ups.delay.start": (0, 599940)}


def request(query: str, dialect: str = "megatec") -> bytes:
    """The bytes that ask ``query`` (a key of :data:`FRAMES`)."""
    return STATUS_QUERY[dialect] if query == "status" else frame(query)


def check_frame(query: str, raw: bytes) -> str | None:
    """The reply as text (CR dropped) if it has the shape ``query`` expects, else None."""
    f = FRAMES[query]
    text = reply_text(raw)
    if text is None or len(text) < f.min_len or text[0] != f.leading:
        return None
    if query == "status" and any(c not in "01" for c in text[STATUS_BITS]):
        return None
    return text


def parse(query: str, raw: bytes, items: tuple[Field, ...] = ITEMS) -> dict[str, str] | None:
    """NUT variables from one reply; None if the frame is malformed.

    A field that is not a number (``---.-``) is left out, as NUT does, without
    rejecting the rest of the frame. Status bits come back as ``"_bits"``.
    """
    text = check_frame(query, raw)
    if text is None:
        return None
    out = read_fields(text, query, items)
    if query == "status":
        out["_bits"] = text[STATUS_BITS]
    return out


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


#: the commands Q1 spells its own way (the others: :func:`.common.encode_command`)
_FIXED = {
    "beeper.toggle": "Q", "load.off": "S00R0000", "load.on": "C", "shutdown.stop": "C",
    "test.battery.start.quick": "T", "test.battery.start.deep": "TL", "test.battery.stop": "CT",
}


def encode_command(cmd: str, param: str | None, ondelay: int, offdelay: int, *,
                   minutes: bool = False) -> bytes | None:
    """The bytes for an instant command; None if unknown. Raises CommandError on a bad
    parameter. ``minutes``: blazer_ser's test.battery.start counts minutes, not seconds."""
    return _encode(cmd, param, _FIXED, ondelay, offdelay, minutes=minutes)
