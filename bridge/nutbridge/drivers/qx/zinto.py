"""Online Zinto and Hunnox units, sans-IO: nutdrv_qx's ``protocol = zinto`` and ``hunnox``.

Both are Megatec Q1 units whose identity query is ``FW?`` instead of ``I`` (same reply
layout: ``#<mfr 15> <model 10> <firmware 10>``); the status (``Q1``), ratings (``F``),
status bits and commands are Megatec's (:mod:`.q1`). Hunnox firmware (the "MEC0003" USB
bridges, Powercool and other rebrands) also answers ``BL`` with the battery charge
(``BL100``) and its NUT table starts with a 60 s shutdown delay and no restart delay.

From NUT's nutdrv_qx documentation and behaviour (protocols "zinto" 0.07, "hunnox" 0.03);
NUT probes zinto after megatec (a Q1 unit that does not answer ``I`` but ``FW?``); hunnox
answers the same probe and is only used when named.
"""

from __future__ import annotations

import re

from .device import Q1Like

_BL = re.compile(r"BL(\d{1,3})")


class Zinto(Q1Like):
    name = "zinto"
    label = "Zinto"
    vendor_query = "FW?"


class Hunnox(Zinto):
    name = "hunnox"
    label = "Hunnox"
    optional = ("BL",)
    default_delays = (60, 0)

    def parse(self, query: str, raw: bytes) -> dict[str, str] | None:
        if query != "BL":
            return super().parse(query, raw)
        match = _BL.fullmatch(raw.rstrip(b"\r").decode("ascii", "replace"))
        if match is None or int(match.group(1)) > 100:
            return None
        return {"battery.charge": str(int(match.group(1)))}
