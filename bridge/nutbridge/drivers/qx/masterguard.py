"""Masterguard A and E series, sans-IO: nutdrv_qx's ``protocol = masterguard``.

Masterguard's own Megatec descendant (NUT's "masterguard" protocol 0.05; the units also
sit behind the Phoenixtec USB bridge 06da:0002). Replies start with ``(`` and the unit's
*slave address* (``00``); several requests name that address after a comma (``GS,00``).
NUT probes it after megatec and zinto: a unit that answers ``WH`` with a known model and
``MSO``.

=========  ==================================================================================
``WH``     ``(00 10.06 03.09 A  700  + 0 Bat Pack-19        0 230 50.00 012 02.30 006.00 ...``:
           slave address (ups.id), ups.firmware, ups.firmware.aux, the model (series ``A``
           or ``E``, device.model, ups.power.nominal and the battery.packs range follow
           from it), input.voltage/.frequency.nominal, cells and volts per cell
           (battery.voltage.nominal), ambient.0.temperature.low/.high, input.voltage
           .low/.high.critical, input.frequency.low/.high
``Q3``     ``(00 225.9 225.9 229.3 043 50.0 02.27 23.4 017.03 100 00000000 00000000``:
           input.voltage, output.voltage, ups.load (and ups.power, output.current from the
           model's power), input.frequency, battery.voltage (volts per cell x cells),
           ups.temperature = ambient.0.temperature, battery.runtime (mmm.ss), battery.charge,
           status bits B7..B1 (utility fail, battery low, bypass, UPS failed, offline type,
           test, shutdown active) and T6..T0 (parallel problem, battery to replace, no
           battery, test result)
``GS,XX``  ``(00,00 0 1``: battery.packs (set with ``SS--<n>-,XX``), ups.beeper.status
``GBS,XX`` battery.charge (the battery's own figure)
``GSN,XX`` device.part, device.serial;  ``DRC,XX``: device.uptime (TTTT:hh:mm:ss)
``MSO``    the output voltages the unit can be set to;  ``PNV``: output.voltage.nominal
           (set with ``PNV=<nnn>``) and output.current.nominal
=========  ==================================================================================

Commands: ``S<off>R<on>`` (shutdown.return: the restart delay is sent as NUT sends it, the
ups.delay.start seconds in four digits), ``S<off>`` (stayoff), ``C``, ``T`` (quick, and
test.battery.start with 10 s), ``T<mm>`` (test.battery.start with 60..5940 s), ``TL``
(test.battery.start.low), ``TUD,XX`` (deep), ``CT``, ``FCLR,XX`` (clear.fault.record),
``FOFF``/``FON`` (bypass.start/.stop), ``SS---1,XX``/``SS---0,XX`` (beeper.enable/.disable).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..base import finite_number
from .common import CommandError, Field, frame, read_fields, reply_text
from .device import DeviceProtocol, Reading, Writable

MIN_LEN = {"WH": 112, "Q3": 70, "GS": 10, "GBS": 42, "GSN": 24, "DRC": 17, "MSO": 4, "PNV": 8}
ITEMS: tuple[Field, ...] = (
    Field("ups.id", "WH", 1, 2),
    Field("ups.firmware", "WH", 4, 8),
    Field("ups.firmware.aux", "WH", 10, 14),
    Field("input.voltage.nominal", "WH", 49, 51, "%.0f"),
    Field("input.frequency.nominal", "WH", 53, 57, "%.2f"),
    Field("_cells", "WH", 59, 61, "%.0f"),
    Field("_cell_volts", "WH", 63, 67),
    Field("ambient.0.temperature.low", "WH", 87, 88, "%.0f"),
    Field("ambient.0.temperature.high", "WH", 90, 91, "%.0f"),
    Field("input.voltage.low.critical", "WH", 93, 95, "%.0f"),
    Field("input.voltage.high.critical", "WH", 97, 99, "%.0f"),
    Field("input.frequency.low", "WH", 101, 105, "%.2f"),
    Field("input.frequency.high", "WH", 107, 111, "%.2f"),
    Field("input.voltage", "Q3", 4, 8, "%.1f"),
    Field("output.voltage", "Q3", 16, 20, "%.1f"),
    Field("ups.load", "Q3", 22, 24, "%.0f"),
    Field("input.frequency", "Q3", 26, 29, "%.1f"),
    Field("_cell_now", "Q3", 31, 35),
    Field("ups.temperature", "Q3", 37, 40, "%.1f"),
    Field("ambient.0.temperature", "Q3", 37, 40, "%.1f"),
    Field("_runtime", "Q3", 42, 47),
    Field("battery.charge", "Q3", 49, 51, "%.0f"),
    Field("_bits", "Q3", 53, 69),
    Field("_packs", "GS", 7, 7),
    Field("_beeper", "GS", 9, 9),
    Field("_gbs_charge", "GBS", 4, 6, "%.0f"),
    Field("device.part", "GSN", 8, 18),
    Field("device.serial", "GSN", 20, 23),
    Field("_uptime", "DRC", 4, 16),
    Field("output.voltage.nominal", "PNV", 5, 7, "%.0f"),
)

#: model field prefix -> (device.model, ups.power.nominal, battery.packs range, rack range)
MODELS: dict[str, tuple[str, int, tuple[int, int], tuple[int, int]]] = {
    "A  700": ("A700", 700, (0, 0), (0, 0)),
    "A 1000": ("A1000", 1000, (0, 2), (0, 2)),
    "A 2000": ("A2000", 2000, (0, 2), (1, 5)),
    "A 3000": ("A3000", 3000, (0, 2), (1, 5)),
    "E 60": ("E60", 6000, (1, 1), (1, 1)),
    "E100": ("E100", 10000, (1, 1), (1, 1)),
    "E200": ("E200", 20000, (1, 1), (1, 1)),
}
TEST_RESULTS = {"000": "no test in progress", "001": "in progress", "010": "OK", "011": "failed",
                "100": "not possible", "101": "aborted",
                "110": "autonomy time calibration in progress", "111": "unknown"}
COMMANDS = (
    "shutdown.return", "shutdown.stayoff", "shutdown.stop", "test.battery.start",
    "test.battery.start.quick", "test.battery.start.low", "test.battery.start.deep",
    "test.battery.stop", "clear.fault.record", "bypass.start", "bypass.stop", "beeper.enable",
    "beeper.disable",
)
_MMM_SS = re.compile(r"\s*(\d+)\.(\d+)\s*")
_UPTIME = re.compile(r"(\d+):(\d+):(\d+):(\d+)")


def model_of(text: str) -> tuple[str, int, tuple[int, int]] | None:
    """(device.model, ups.power.nominal, battery.packs range) from WH's model field."""
    rack = "-19" in text
    for prefix, (name, power, packs, rack_packs) in MODELS.items():
        if text.startswith(prefix):
            return (name + "-19" if rack else name), power, (rack_packs if rack else packs)
    return None


class Masterguard(DeviceProtocol):
    name = "masterguard"
    label = "Masterguard"
    status_query = "Q3"
    other_static = ("WH", "MSO", "GSN", "DRC")
    optional = ("GS", "GBS", "PNV")
    commands = COMMANDS
    delay_ranges = {"ups.delay.shutdown": (0, 5940), "ups.delay.start": (0, 599940)}
    constants = {"device.mfr": "Masterguard", "load.high": "140", "battery.type": "PbAc"}

    def __init__(self, *, ignoresab: bool = False) -> None:
        super().__init__(ignoresab=ignoresab)
        self.address = "00"  # the slave address WH reports; commands name it

    def claim(self, novendor: bool) -> tuple[str, ...]:
        return ("WH", "MSO")

    def request(self, query: str) -> bytes:
        if query in ("GS", "GBS", "GSN", "DRC"):
            return frame(f"{query},{self.address}")
        return frame(query)

    def parse(self, query: str, raw: bytes) -> dict[str, str] | None:
        text = reply_text(raw)
        if text is None or query not in MIN_LEN or len(text) < MIN_LEN[query] \
                or text[0] != "(":
            return None
        if query == "MSO":
            choices = text[1:].split()
            if not choices or not all(v.isdigit() for v in choices):
                return None
            return {"_voltages": " ".join(choices)}
        if query == "PNV" and not text.startswith("(PNV="):
            return None
        out = read_fields(text, query, ITEMS)
        if query == "WH":
            model = model_of(text[16:46])
            address = text[1:3]
            if model is None or text[16] not in "AE" or not address.isdigit():
                return None
            self.address = address
            out["device.model"], power, (lo, hi) = model
            out["ups.power.nominal"] = str(power)
            out["_packs_range"] = f"{lo} {hi}"
            cells, volts = finite_number(out.pop("_cells", "")), finite_number(
                out.pop("_cell_volts", ""))
            if cells is not None and volts is not None:
                out["_cells"] = f"{cells:.0f}"
                out["battery.voltage.nominal"] = f"{cells * volts:.2f}"
        elif query == "Q3":
            bits = out.get("_bits", "")
            if len(bits) != 17 or any(c not in "01" for c in bits[:8] + bits[9:]):
                return None
            runtime = _MMM_SS.fullmatch(out.pop("_runtime", ""))
            if runtime:
                out["battery.runtime"] = str(60 * int(runtime.group(1)) + int(runtime.group(2)))
        elif query == "GS" and (out.get("_beeper") not in ("0", "1")
                                or not out.get("_packs", "").isdigit()):
            return None
        elif query == "DRC":
            up = _UPTIME.fullmatch(out.pop("_uptime", ""))
            if up is None:
                return None
            t, h, m, s = (int(g) for g in up.groups())
            out["device.uptime"] = str(86400 * t + 3600 * h + 60 * m + s)
        return out

    def read(self, static: Mapping[str, str], polled: Mapping[str, str]) -> Reading:
        values = dict(self.constants)
        values.update((k, v) for k, v in {**static, **polled}.items() if not k.startswith("_"))
        power = finite_number(static.get("ups.power.nominal", "")) or 0.0
        cells = finite_number(static.get("_cells", ""))
        cell_now = finite_number(polled.get("_cell_now", ""))
        if cells is not None and cell_now is not None:
            values["battery.voltage"] = f"{cells * cell_now:.2f}"
        load = finite_number(polled.get("ups.load", ""))
        vout = finite_number(polled.get("output.voltage", ""))
        if load is not None and power:
            values["ups.power"] = f"{load / 100 * power + 0.5:.0f}"
            if vout:
                values["output.current"] = f"{load / 100 * power / vout + 0.005:.2f}"
        if power and vout and "output.voltage.nominal" in values:
            values["output.current.nominal"] = f"{power / vout + 0.005:.2f}"
        if "_gbs_charge" in polled:
            values["battery.charge"] = polled["_gbs_charge"]
        if polled.get("_beeper") in ("0", "1"):
            values["ups.beeper.status"] = "enabled" if polled["_beeper"] == "1" else "disabled"
        if "_packs" in polled:
            values["battery.packs"] = polled["_packs"]
        b = polled["_bits"]  # B7..B0 (0-7), a blank, T7..T3 (9-13), T2..T0 (14-16)
        tokens = ["OB" if b[0] == "1" else "OL"]
        tokens += [t for t, bit in (("LB", b[1]), ("BYPASS", b[2]), ("CAL", b[5])) if bit == "1"]
        if b[6] == "1" and not self.ignoresab:
            tokens.append("FSD")
        if b[12] == "1":
            tokens.append("RB")
        alarms = [a for a, bit in (("UPS Failed", b[3]), ("problems in parallel operation mode",
                                                         b[10]), ("no battery connected", b[13]))
                  if bit == "1"]
        values["ups.type"] = "offline" if b[4] == "1" else "online"
        values["ups.test.result"] = TEST_RESULTS[b[14:17]]
        return Reading(values, tokens, alarms)

    def writable(self, static: Mapping[str, str]) -> dict[str, Writable]:
        out: dict[str, Writable] = {}
        lo, _, hi = static.get("_packs_range", "").partition(" ")
        if lo.isdigit() and hi.isdigit():
            out["battery.packs"] = Writable(int(lo), int(hi))
        volts = static.get("_voltages", "").split()
        if volts:
            out["output.voltage.nominal"] = Writable(enums=tuple(volts))
        return out

    def encode_setvar(self, name: str, value: str) -> bytes | None:
        if name == "battery.packs":
            if not (value.isdigit() and len(value) == 1):
                raise CommandError(f"battery.packs takes one digit, not {value!r}")
            return frame(f"SS--{value}-,{self.address}")
        if name == "output.voltage.nominal":
            if not value.isdigit() or int(value) > 999:
                raise CommandError(f"not a voltage: {value!r}")
            return frame(f"PNV={int(value):03d}")
        return None

    def encode_command(self, cmd: str, param: str | None, ondelay: int, offdelay: int
                       ) -> bytes | None:
        fixed = {
            "shutdown.stop": "C", "test.battery.start.quick": "T", "test.battery.start.low": "TL",
            "test.battery.start.deep": f"TUD,{self.address}", "test.battery.stop": "CT",
            "clear.fault.record": f"FCLR,{self.address}", "bypass.start": "FOFF",
            "bypass.stop": "FON", "beeper.enable": f"SS---1,{self.address}",
            "beeper.disable": f"SS---0,{self.address}",
        }
        cmd = cmd.lower()
        if cmd in fixed:
            return frame(fixed[cmd])
        if cmd in ("shutdown.return", "shutdown.stayoff"):
            off = f".{offdelay // 6}" if offdelay < 60 else f"{offdelay // 60:02d}"
            return frame(f"S{off}" if cmd == "shutdown.stayoff" else f"S{off}R{ondelay:04d}")
        if cmd == "test.battery.start":
            try:
                seconds = int(param or "")
            except ValueError:
                raise CommandError("test.battery.start needs a duration in seconds") from None
            if seconds == 10:
                return frame("T")
            if not 60 <= seconds <= 5940:
                raise CommandError("test.battery.start takes 10 or 60..5940 seconds")
            return frame(f"T{seconds // 60:02d}")
        return None
