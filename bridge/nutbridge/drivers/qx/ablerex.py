"""Ablerex units, sans-IO: nutdrv_qx's ``protocol = ablerex``.

Megatec Q1 with Ablerex's additions (NUT's "ablerex" protocol, 0.02; the GRs/MARS
series, on a serial port or behind the Ablerex USB bridge ffff:0000):

* ``F`` gives *output* ratings (``#240.0 004 024.0 60.0``: output.voltage.nominal,
  output.current.nominal, battery.voltage.nominal, output.frequency.nominal);
* ``Q5`` answers 22 binary bytes: ``(``, then big-endian 16-bit words at bytes 1-2
  output frequency x10, 7-8 battery voltage in 1/1200 of nominal ("1370" = 27.40 V on a
  24 V unit), 9-10 the cut-off voltage on the same scale, 13-14 an error code, 15-16
  output current x10, and the CR;
* ``At`` answers ``(`` and the remaining runtime as a 32-bit big-endian number;
  ``TR`` answers ``#`` and four characters of battery test result;
* the Q1 battery field is the voltage per cell on online units (``2.27``) or per 12 V
  block (``13.7``); battery.charge comes from Ablerex's discharge curves (below), not
  from NUT's generic guess; battery.voltage.low/.high are 960/1200 (or Q5's cut-off)
  and 1365/1200 of nominal;
* status bit 5 (bypass/boost/buck) means BYPASS on an online unit and is told apart by
  the output/input ratio on a standby one; bit 4 (UPS failed) is also a battery to
  replace (RB); an output below 50 V is OFF;
* ``load.off`` is ``S.2`` (12 s), the other commands are Megatec's.

A ``Q5``/``At`` reply is binary: it is read whole (NULs included) up to its CR.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..base import finite_number
from . import q1
from .common import Field, encode_command, reply_text
from .device import Q1Like, Reading

ITEMS: tuple[Field, ...] = (
    *(f for f in q1.ITEMS if f.query in ("status", "I") and f.var != "battery.voltage"),
    Field("_battery", "status", 28, 31),
    Field("output.voltage.nominal", "F", 1, 5, "%.1f"),
    Field("output.current.nominal", "F", 7, 9, "%.1f"),
    Field("battery.voltage.nominal", "F", 11, 15, "%.1f"),
    Field("output.frequency.nominal", "F", 17, 20, "%.1f"),
)

#: discharge curves: (lowest voltage, charge %) from full down; below the last: 0 %.
#: Per cell (online units report 1.67..2.22 V) and per 12 V block (10.0..13.5 V).
PER_CELL: tuple[tuple[float, int], ...] = tuple(zip(
    [(222 - i) / 100 for i in range(55)],
    (100, 90, 88, 87, 85, 83, 82, 80, 78, 77, 75, 73, 72, 70, 68, 65, 65, 62, 62, 58, 58, 55,
     55, 53, 52, 50, 48, 47, 45, 43, 42, 40, 38, 37, 35, 33, 32, 30, 28, 27, 25, 23, 22, 20,
     18, 17, 15, 13, 12, 10, 8, 7, 5, 3, 2), strict=True))
PER_BLOCK: tuple[tuple[float, int], ...] = tuple(zip(
    [13.5, *((133 - i) / 10 for i in range(33))],
    (100, 90, 88, 86, 83, 80, 77, 74, 72, 69, 66, 63, 61, 58, 55, 52, 49, 47, 44, 41, 38, 36,
     33, 30, 27, 24, 22, 19, 16, 13, 11, 8, 5, 2), strict=True))

_FIXED = {
    "beeper.toggle": "Q", "load.off": "S.2", "load.on": "C", "shutdown.stop": "C",
    "test.battery.start.quick": "T", "test.battery.start.deep": "TL", "test.battery.stop": "CT",
}


def charge(volts: float, nominal: float) -> int:
    """battery.charge from the Q1 battery field: per cell below 3 V, else scaled to a
    12 V block."""
    if volts >= 3.0:
        curve = PER_BLOCK
        volts = volts / (nominal / 12) if nominal > 0 else volts
    else:
        curve = PER_CELL
    return next((pct for lowest, pct in curve if volts >= lowest), 0)


def _word(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 2], "big")


class Ablerex(Q1Like):
    name = "ablerex"
    label = "Ablerex"
    vendor_query = "I"
    optional = ("Q5", "At", "TR")
    items = ITEMS

    def parse(self, query: str, raw: bytes) -> dict[str, str] | None:
        body = raw[:-1] if raw.endswith(b"\r") else raw
        if query == "Q5":
            if len(body) < 21 or body[:1] != b"(":
                return None
            return {"_fout": str(_word(body, 1)), "_vb": str(_word(body, 7)),
                    "_vbc": str(_word(body, 9)), "_err": str(_word(body, 13)),
                    "_iout": str(_word(body, 15))}
        if query == "At":
            if len(body) < 5 or body[:1] != b"(":
                return None
            return {"battery.runtime": str(int.from_bytes(body[1:5], "big"))}
        if query == "TR":
            text = reply_text(raw)
            if text is None or len(text) < 5 or text[0] != "#":
                return None
            return {"ups.test.result": text[1:5]}
        return super().parse(query, raw)

    def read(self, static: Mapping[str, str], polled: Mapping[str, str]) -> Reading:
        values = {k: v for k, v in {**static, **polled}.items() if not k.startswith("_")}
        nominal = finite_number(static.get("battery.voltage.nominal", ""))
        battery = finite_number(polled.get("_battery", ""))
        vb = int(polled.get("_vb", "0"))
        vbc = int(polled.get("_vbc", "0"))
        if battery is not None:
            if not nominal:
                values["battery.voltage"] = f"{battery:.2f}"
                values["battery.charge"] = "100"
            else:
                volts = (vb * nominal / 1200 if vb > 0 else battery if battery > 3.0
                         else battery * 6 * nominal / 12)
                values["battery.voltage"] = f"{volts:.2f}"
                values["battery.charge"] = str(charge(battery, nominal))
        if nominal:
            values["battery.voltage.low"] = f"{(vbc if vbc > 0 else 960) * nominal / 1200:.2f}"
            values["battery.voltage.high"] = f"{1365 * nominal / 1200:.2f}"
        alarms: list[str] = []
        if "_fout" in polled:
            values["output.frequency"] = f"{int(polled['_fout']) * 0.1:.1f}"
            values["output.current"] = f"{int(polled['_iout']) * 0.1:.1f}"
            if polled["_err"] != "0":  # the UPS's error number, as NUT shows it
                alarms.append(polled["_err"])
        st = self.status(polled)
        bits = polled["_bits"]
        vout = finite_number(polled.get("output.voltage", ""))
        tokens = [t for t in st.tokens if t not in ("TRIM", "BYPASS", "BOOST")]
        if bits[2] == "1":
            if bits[4] == "0":  # an online unit: the bit is its bypass
                tokens.append("BYPASS")
            else:
                tokens += [t for t in st.tokens if t in ("TRIM", "BYPASS", "BOOST")]
        if bits[3] == "1":
            tokens.append("RB")
        if vout is not None and vout < 50.0:
            tokens.append("OFF")
        values["ups.type"] = st.ups_type
        values["ups.beeper.status"] = st.beeper
        return Reading(values, tokens, st.alarms + alarms)

    def encode_command(self, cmd: str, param: str | None, ondelay: int, offdelay: int
                       ) -> bytes | None:
        return encode_command(cmd, param, _FIXED, ondelay, offdelay)
