"""Gtec units, sans-IO: nutdrv_qx's ``protocol = gtec``.

Megatec's ``F`` ratings, ``I`` identity and commands (:mod:`.q1`), but the status comes
from ``Q4``, a longer line whose state is a run of letters instead of eight bits
(NUT's "gtec" protocol 0.01)::

  Q4 -> (236.7 243.2 212.1 220.1 230.4 002 001 50.0 371 372 041.3 22.9 IM
        input.voltage 1-5, input.voltage.fault 19-23, output.voltage 25-29, ups.load
        35-37, input.frequency 39-42, battery.voltage 52-56, ups.temperature 58-61,
        status letters from 63 on

Letters: A utility fail (OB), M normal (OL), C bypass/boost (BYPASS); the last of these
three counts, and none of them means the output is off (OFF). B battery low (LB), F
shutdown active (FSD), N overload (OVER), J battery test failed (RB); D, G, H, P raise
alarms (UPS failed, site fault, EPROM fail, battery disconnected); E, I, J, K, L tell
the battery test's state (battery.test.status). NUT probes gtec near the end (a unit
that answers ``Q4`` and ``I``, after every Q1 protocol).
"""

from __future__ import annotations

from collections.abc import Mapping

from . import q1
from .common import Field, read_fields, reply_text
from .device import Q1Like, Reading, battery_guess

ITEMS: tuple[Field, ...] = (
    Field("input.voltage", "Q4", 1, 5, "%.1f"),
    Field("input.voltage.fault", "Q4", 19, 23, "%.1f"),
    Field("output.voltage", "Q4", 25, 29, "%.1f"),
    Field("ups.load", "Q4", 35, 37, "%.0f"),
    Field("input.frequency", "Q4", 39, 42, "%.1f"),
    Field("battery.voltage", "Q4", 52, 56, "%.1f"),
    Field("ups.temperature", "Q4", 58, 61, "%.1f"),
    *(f for f in q1.ITEMS if f.query in ("F", "I")),
)
MIN_LEN = 63  # Q4 without its CR, up to the blank before the letters
LETTERS = 63

#: letters that add a status token / an alarm / a battery.test.status
TOKENS = {"B": "LB", "F": "FSD", "J": "RB", "N": "OVER"}
ALARMS = {"D": "UPS failed", "G": "Site fault", "H": "EPROM fail", "P": "Battery disconnected"}
TESTS = {"E": "Test in progress", "I": "Test passed - Result: OK",
         "J": "Test passed - Result: Failed", "K": "Battery disconnected",
         "L": "Test status unknown"}
#: the letters that say where the load is fed from
POWER = {"A": "OB", "C": "BYPASS", "M": "OL"}


class Gtec(Q1Like):
    name = "gtec"
    label = "Gtec"
    status_query = "Q4"
    vendor_query = "I"
    items = ITEMS

    def parse(self, query: str, raw: bytes) -> dict[str, str] | None:
        if query != "Q4":
            return super().parse(query, raw)
        text = reply_text(raw)
        if text is None or len(text) < MIN_LEN or text[0] != "(":
            return None
        out = read_fields(text, "Q4", ITEMS)
        out["_letters"] = text[LETTERS:].strip()
        return out

    def read(self, static: Mapping[str, str], polled: Mapping[str, str]) -> Reading:
        values = {k: v for k, v in {**static, **polled}.items() if not k.startswith("_")}
        letters = polled["_letters"]
        power = "OFF"
        extra: list[str] = []
        alarms: list[str] = []
        for c in letters:
            power = POWER.get(c, power)
            token = TOKENS.get(c)
            if token == "FSD" and self.ignoresab:
                token = None
            if token is not None and token not in extra:
                extra.append(token)
            if c in ALARMS:
                alarms.append(ALARMS[c])
            if c in TESTS:
                values["battery.test.status"] = TESTS[c]
        tokens = ["OB" if power == "OB" else "OL"]
        if power in ("BYPASS", "OFF"):
            tokens.append(power)
        battery_guess(values, static.get("battery.voltage.nominal"))
        return Reading(values, tokens + extra, alarms)
