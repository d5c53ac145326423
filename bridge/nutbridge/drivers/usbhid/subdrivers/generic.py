"""Generic USB HID Power Device Class fallback (no NUT counterpart: NUT refuses
unknown vendors unless told which subdriver to use).

Used for a device no vendor table names, when its report descriptor describes a
UPS (:func:`is_power_device`). Only standard usages from "USB Usage Tables for HID
Power Devices" 1.0 are mapped, at the places the spec's examples and most
vendors put them (UPS.PowerSummary.*, UPS.Input/Output.*, UPS.Battery.*,
UPS.BatterySystem.*). ``subdriver = generic`` forces it.
"""

from __future__ import annotations

from ..descriptor import ReportDescriptor
from ..table import (
    BEEPER,
    DEFAULT_OFFDELAY,
    DEFAULT_ONDELAY,
    QUICK,
    RW,
    SEMI,
    STRING,
    TEST_READ,
    Row,
    Subdriver,
    absent_row,
    cmds,
    kelvin_to_celsius,
    pdc_date,
    pdc_date_raw,
    rw_row,
    status_row,
)

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
BPS = "UPS.BatterySystem.Battery.PresentStatus"


def is_power_device(desc: ReportDescriptor) -> bool:
    """True when the descriptor has a UPS (or PowerSupply) collection with a PowerSummary
    or Battery — the minimum the generic table can make sense of."""
    for f in desc.fields:
        parts = f.path.split(".")
        if parts and parts[0] in ("UPS", "PowerSupply") and len(parts) > 1 and \
                parts[1] in ("PowerSummary", "Battery", "BatterySystem"):
            return True
    return False


_DELAY = {
    "start": (f"{PS}.DelayBeforeStartup", "UPS.Output.DelayBeforeStartup"),
    "shutdown": (f"{PS}.DelayBeforeShutdown", "UPS.Output.DelayBeforeShutdown"),
    "reboot": (f"{PS}.DelayBeforeReboot", "UPS.Output.DelayBeforeReboot"),
}
_TEST = ("UPS.BatterySystem.Battery.Test", "UPS.Battery.Test", "UPS.BatterySystem.Test", "UPS.Output.Test")

ROWS: tuple[Row, ...] = (
    Row("battery.charge", (f"{PS}.RemainingCapacity", "UPS.Battery.RemainingCapacity",
                           "UPS.BatterySystem.Battery.RemainingCapacity")),
    rw_row("battery.charge.low", f"{PS}.RemainingCapacityLimit"),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",)),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty", "UPS.Battery.RunTimeToEmpty")),
    rw_row("battery.runtime.low", (f"{PS}.RemainingTimeLimit", "UPS.Battery.RemainingTimeLimit")),
    Row("battery.voltage", (f"{PS}.Voltage", "UPS.Battery.Voltage", "UPS.BatterySystem.Battery.Voltage"),
        "%.1f"),
    Row("battery.voltage.nominal", (f"{PS}.ConfigVoltage", "UPS.Battery.ConfigVoltage",
                                    "UPS.BatterySystem.Battery.ConfigVoltage"), "%.1f"),
    Row("battery.temperature", ("UPS.Battery.Temperature", "UPS.BatterySystem.Battery.Temperature"),
        kelvin_to_celsius),
    Row("battery.type", (f"{PS}.iDeviceChemistry", "UPS.Battery.iDeviceChemistry"), "%s", string_index=True),
    Row("battery.mfr.date", ("UPS.Battery.ManufacturerDate", f"{PS}.ManufacturerDate"), pdc_date,
        flags=RW | STRING | SEMI, length=10, to_raw=pdc_date_raw),
    Row("ups.load", (f"{PS}.PercentLoad", "UPS.Output.PercentLoad", "UPS.PowerConverter.PercentLoad")),
    absent_row("ups.delay.start", _DELAY["start"], DEFAULT_ONDELAY, "ondelay"),
    absent_row("ups.delay.shutdown", _DELAY["shutdown"], DEFAULT_OFFDELAY, "offdelay"),
    Row("ups.timer.start", _DELAY["start"], flags=QUICK),
    Row("ups.timer.shutdown", _DELAY["shutdown"], flags=QUICK),
    Row("ups.timer.reboot", _DELAY["reboot"], flags=QUICK),
    Row("ups.test.result", _TEST, "%s", TEST_READ),
    Row("ups.beeper.status", (f"{PS}.AudibleAlarmControl",), "%s", BEEPER),
    Row("ups.temperature", (f"{PS}.Temperature",), kelvin_to_celsius),
    Row("ups.power", ("UPS.Output.ApparentPower",)),
    Row("ups.power.nominal", ("UPS.Output.ConfigApparentPower", f"{PS}.ConfigApparentPower")),
    Row("ups.realpower", ("UPS.Output.ActivePower",)),
    Row("ups.realpower.nominal", ("UPS.Output.ConfigActivePower", f"{PS}.ConfigActivePower")),
    status_row((f"{PST}.ACPresent", f"{PS}.ACPresent", f"{BPS}.ACPresent"), "online", quick=True),
    status_row((f"{PST}.Discharging", f"{PS}.Discharging", f"{BPS}.Discharging"), "dischrg", quick=True),
    status_row((f"{PST}.Charging", f"{PS}.Charging", f"{BPS}.Charging"), "chrg", quick=True),
    status_row((f"{PST}.BelowRemainingCapacityLimit", f"{PS}.BelowRemainingCapacityLimit",
                f"{BPS}.BelowRemainingCapacityLimit"), "lowbatt", quick=True),
    status_row((f"{PST}.ShutdownImminent", f"{PS}.ShutdownImminent"), "shutdownimm"),
    status_row((f"{PST}.RemainingTimeLimitExpired", f"{BPS}.RemainingTimeLimitExpired"), "timelimitexp"),
    status_row((f"{PST}.NeedReplacement", f"{BPS}.NeedReplacement"), "replacebatt"),
    status_row((f"{PST}.Overload", "UPS.Output.Overload", "UPS.PowerConverter.PresentStatus.Overload"),
               "overload"),
    status_row((f"{PST}.BatteryPresent", f"{BPS}.BatteryPresent"), "nobattery", invert=True),
    Row("BOOL", (f"{PST}.FullyCharged", f"{BPS}.FullyCharged"),
        lookup={1: "fullycharged", 0: "notfullycharged"}),
    status_row((f"{PST}.FullyDischarged", f"{BPS}.FullyDischarged"), "depleted"),
    status_row((f"{PST}.Good",), "off", invert=True),
    status_row((f"{PST}.OverTemperature",), "overheat"),
    status_row((f"{PST}.InternalFailure",), "commfault"),
    status_row(("UPS.Output.Boost", "UPS.Input.Boost", "UPS.PowerConverter.PresentStatus.Boost"), "boost"),
    status_row(("UPS.Output.Buck", "UPS.Input.Buck", "UPS.PowerConverter.PresentStatus.Buck"), "trim"),
    Row("input.voltage", ("UPS.Input.Voltage", "UPS.PowerConverter.Input.Voltage"), "%.1f"),
    Row("input.voltage.nominal", ("UPS.Input.ConfigVoltage",)),
    Row("input.frequency", ("UPS.Input.Frequency", "UPS.PowerConverter.Input.Frequency"), "%.1f"),
    rw_row("input.transfer.low", ("UPS.Input.LowVoltageTransfer", "UPS.Output.LowVoltageTransfer")),
    rw_row("input.transfer.high", ("UPS.Input.HighVoltageTransfer", "UPS.Output.HighVoltageTransfer")),
    Row("output.voltage", ("UPS.Output.Voltage", "UPS.PowerConverter.Output.Voltage"), "%.1f"),
    Row("output.voltage.nominal", ("UPS.Output.ConfigVoltage",)),
    Row("output.frequency", ("UPS.Output.Frequency", "UPS.PowerConverter.Output.Frequency"), "%.1f"),
    Row("output.current", ("UPS.Output.Current", "UPS.PowerConverter.Output.Current"), "%.2f"),
)

_ALARM = f"{PS}.AudibleAlarmControl"
CMDS = (
    cmds("test.battery.start.quick", _TEST, 1),
    cmds("test.battery.start.deep", _TEST, 2),
    cmds("test.battery.stop", _TEST, 3),
    cmds("load.off.delay", _DELAY["shutdown"], int(DEFAULT_OFFDELAY)),
    cmds("load.on.delay", _DELAY["start"], int(DEFAULT_ONDELAY)),
    cmds("shutdown.stop", _DELAY["shutdown"], -1),
    cmds("shutdown.reboot", _DELAY["reboot"], 10),
    cmds("beeper.enable", _ALARM, 2),
    cmds("beeper.disable", _ALARM, 1),
    cmds("beeper.mute", _ALARM, 3),
)

SUBDRIVER = Subdriver(
    name="Generic HID",
    key="generic",
    version="0.1",
    ids=(),
    rows=ROWS,
    cmds=CMDS,
    accepts_unknown=True,
    recognizes=is_power_device,
)
