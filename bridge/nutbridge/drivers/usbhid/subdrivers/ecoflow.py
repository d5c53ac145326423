"""EcoFlow portable power stations (USB vendor 3746, product ffff: River 3 Plus, Delta 3 Plus) —
NUT: "EcoFlow HID".

Standard ``UPS.PowerSummary`` paths. The capacities are percent; ``RunTimeToEmpty`` counts
minutes (published in seconds, as NUT's names say). The discharge limit set in EcoFlow's app
is ``battery.charge.low`` (writable). NUT maps no commands: the beeper and delay usages do
not act on these units.
"""

from __future__ import annotations

from ..table import (
    BEEPER,
    QUICK,
    SEMI,
    STATIC,
    Ctx,
    Row,
    Subdriver,
    UsbIdentity,
    pdc_date,
    rw_row,
    status_row,
)

VENDOR = 0x3746

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
OUTLET = "UPS.OutletSystem.Outlet"


def minutes_to_seconds(value: float, ctx: Ctx) -> str | None:
    return f"{value * 60:.0f}" if value >= 0 else None


ROWS: tuple[Row, ...] = (
    Row("ups.beeper.status", (f"{PS}.AudibleAlarmControl",), "%s", BEEPER, flags=QUICK),
    Row("ups.power.nominal", ("UPS.Flow.[4].ConfigActivePower",), flags=STATIC),
    Row("battery.voltage.nominal", (f"{PS}.ConfigVoltage",), "%.1f", flags=SEMI),
    Row("ups.timer.reboot", (f"{OUTLET}.DelayBeforeReboot",), flags=QUICK),
    Row("ups.timer.shutdown", (f"{OUTLET}.DelayBeforeShutdown",), flags=QUICK),
    Row("battery.capacity.nominal", (f"{PS}.DesignCapacity",), flags=SEMI),
    Row("battery.capacity", (f"{PS}.FullChargeCapacity",), flags=SEMI),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", flags=STATIC, string_index=True),
    Row("experimental.ups.powersummary.ioeminformation", (f"{PS}.iOEMInformation",), "%s", flags=STATIC,
        string_index=True),
    Row("ups.mfr.date", (f"{PS}.ManufacturerDate",), pdc_date),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.BatteryPresent", "nobattery", quick=True, invert=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    status_row(f"{PST}.CommunicationLost", "commfault", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    Row("BOOL", (f"{PST}.FullyCharged",), lookup={1: "fullycharged", 0: "notfullycharged"}, flags=QUICK),
    status_row(f"{PST}.FullyDischarged", "depleted", quick=True),
    status_row(f"{PST}.NeedReplacement", "replacebatt", quick=True),
    status_row(f"{PST}.Overload", "overload", quick=True),
    status_row(f"{PST}.RemainingTimeLimitExpired", "timelimitexp", quick=True),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm", quick=True),
    Row("experimental.ups.powersummary.presentstatus.shutdownrequested", (f"{PST}.ShutdownRequested",)),
    Row("experimental.ups.powersummary.presentstatus.voltagenotregulated", (f"{PST}.VoltageNotRegulated",)),
    Row("experimental.ups.powersummary.rechargeable", (f"{PS}.Rechargeable",)),
    Row("battery.charge", (f"{PS}.RemainingCapacity",), flags=QUICK),
    rw_row("battery.charge.low", f"{PS}.RemainingCapacityLimit", length=5, flags=SEMI),
    Row("battery.runtime.low", (f"{PS}.RemainingTimeLimit",), flags=SEMI),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",), minutes_to_seconds, flags=QUICK),
    Row("battery.voltage", (f"{PS}.Voltage",), "%.1f", flags=QUICK),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",), flags=SEMI),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "EcoFlow",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="EcoFlow HID",
    key="ecoflow",
    version="0.01",
    ids=((VENDOR, 0xFFFF),),
    rows=ROWS,
    identity=identity,
)
