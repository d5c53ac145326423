"""Powervar (USB vendor 4234, product 0002) — NUT: "Powervar HID".

Powervar's Security Series on-line UPSes: the battery summary and the status bits of the
standard ``UPS.PowerSummary``, nothing writable, no commands. (NUT's table also maps
InternalFailure and Good to yes/no tokens no status rule reads; they are left out.)
"""

from __future__ import annotations

from ..table import (
    Row,
    Subdriver,
    UsbIdentity,
    status_row,
)

VENDOR = 0x4234

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"

ROWS: tuple[Row, ...] = (
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", string_index=True),
    Row("battery.charge", (f"{PS}.RemainingCapacity",)),
    Row("battery.capacity", (f"{PS}.FullChargeCapacity",)),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm"),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt"),
    status_row(f"{PST}.Overload", "overload"),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    status_row(f"{PST}.RemainingTimeLimitExpired", "timelimitexp"),
    status_row(f"{PST}.OverTemperature", "overheat"),
    Row("BOOL", (f"{PST}.FullyCharged",), lookup={1: "fullycharged", 0: "notfullycharged"}),
    status_row(f"{PST}.FullyDischarged", "depleted"),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "Powervar",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="Powervar HID",
    key="powervar",
    version="0.21",
    ids=((VENDOR, 0x0002),),
    rows=ROWS,
    identity=identity,
)
