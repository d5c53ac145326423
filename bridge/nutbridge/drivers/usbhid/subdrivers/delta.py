"""Delta Electronics (USB vendor 05dd, product 041b: RT and Amplon R series) — NUT: "Delta UPS HID".

Standard paths under ``UPS.PowerConverter``, ``UPS.OutletSystem.Outlet`` and
``UPS.BatterySystem``, plus Delta's vendor page 0xffff (``DeltaCustom.[1]``: sensitivity,
UPS type, restart on mains return, model name; the transfer limits' ranges; the output
source). The model name in ``DeltaModelName`` (a string descriptor) replaces the USB
product string when the UPS has one. 05dd's other products are Tripp Lite OEM units.
"""

from __future__ import annotations

from ..table import (
    BEEPER,
    DEFAULT_OFFDELAY,
    DEFAULT_ONDELAY,
    NUMBER,
    PREFER,
    QUICK,
    SEMI,
    STATIC,
    TEST_READ,
    YES_NO,
    Ctx,
    Row,
    Subdriver,
    UsbIdentity,
    beeper_cmds,
    cmds,
    kelvin_to_celsius,
    rw_row,
    status_row,
)

VENDOR = 0x05DD

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
PCS = "UPS.PowerConverter.PresentStatus"
OUTLET = "UPS.OutletSystem.Outlet"
CUSTOM = "UPS.DeltaCustom.[1]"
OUT = "UPS.PowerConverter.Output"

SENSITIVITY = {0: "normal", 1: "reduced", 2: "low"}
OUTPUT_SOURCE = {0: "normal", 1: "battery", 2: "bypass/reserve", 3: "reducing", 4: "boosting",
                 5: "manual bypass", 6: "other", 7: "no output", 8: "on eco"}
UPS_TYPES = ("online", "offline", "line-interactive", "3-phase", "split-phase")


def ups_type(value: float, ctx: Ctx) -> str | None:
    """DeltaUPSType's low nibble: 0 online, 1 and 3 offline, 2 and 4 line-interactive,
    5 three-phase, 6 split-phase."""
    code = int(value) & 0x0F
    if code == 6:
        code = 4
    elif 2 < code <= 5:
        code -= 2
    return UPS_TYPES[code] if 0 <= code < len(UPS_TYPES) else None


ROWS: tuple[Row, ...] = (
    Row("ups.model", (f"{CUSTOM}.DeltaModelName",), "%s", flags=PREFER, string_index=True),
    rw_row("input.sensitivity", f"{CUSTOM}.DeltaConfigSensitivity", "%s", lookup=SENSITIVITY, flags=NUMBER),
    Row("input.voltage.nominal", (f"{PS}.Input.ConfigVoltage",), "%.1f", flags=SEMI),
    Row("input.voltage", (f"{PS}.Input.Voltage", "UPS.PowerConverter.Input.Voltage"), "%.1f", flags=QUICK),
    rw_row("input.transfer.low", f"{OUT}.LowVoltageTransfer", "%.1f", flags=NUMBER),
    rw_row("input.transfer.high", f"{OUT}.HighVoltageTransfer", "%.1f", flags=NUMBER),
    Row("input.transfer.low.min", (f"{OUT}.DeltaConfigTransferLowMin",), "%.1f", flags=STATIC),
    Row("input.transfer.low.max", (f"{OUT}.DeltaConfigTransferLowMax",), "%.1f", flags=STATIC),
    Row("input.transfer.high.min", (f"{OUT}.DeltaConfigTransferHighMin",), "%.1f", flags=STATIC),
    Row("input.transfer.high.max", (f"{OUT}.DeltaConfigTransferHighMax",), "%.1f", flags=STATIC),
    Row("input.source", (f"{OUTLET}.DeltaOutputSource",), "%s", OUTPUT_SOURCE),
    Row("input.frequency", ("UPS.PowerConverter.Input.Frequency",), "%.1f", flags=QUICK),
    Row("battery.voltage.nominal", ("UPS.BatterySystem.Battery.ConfigVoltage",), "%.1f", flags=STATIC),
    Row("battery.voltage", ("UPS.BatterySystem.Battery.Voltage",), "%.1f", flags=QUICK),
    Row("battery.charge", (f"{PS}.RemainingCapacity",), flags=QUICK),
    Row("battery.charge", ("UPS.BatterySystem.Battery.RemainingCapacity",)),
    rw_row("battery.charge.low", f"{PS}.RemainingCapacityLimit", length=5, flags=SEMI),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",), flags=SEMI),
    Row("battery.temperature", ("UPS.BatterySystem.Temperature",), kelvin_to_celsius, flags=QUICK),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",), flags=QUICK),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", flags=STATIC, string_index=True),
    Row("battery.capacity", (f"{PS}.DesignCapacity", f"{PS}.FullChargeCapacity"), flags=SEMI),
    Row("output.voltage.nominal", ("UPS.Flow.ConfigVoltage",), "%.1f", flags=SEMI),
    Row("output.frequency.nominal", ("UPS.Flow.ConfigFrequency",), "%.1f", flags=SEMI),
    Row("output.voltage", (f"{OUT}.Voltage",), "%.1f", flags=QUICK),
    Row("output.frequency", (f"{OUT}.Frequency",), "%.1f", flags=QUICK),
    Row("output.current", (f"{OUT}.Current",), "%.1f", flags=QUICK),
    Row("ups.beeper.status", (f"{PS}.AudibleAlarmControl",), "%s", BEEPER, flags=QUICK),
    Row("ups.test.result", ("UPS.BatterySystem.Test",), "%s", TEST_READ),
    Row("ups.type", (f"{CUSTOM}.DeltaUPSType",), ups_type, flags=STATIC),
    rw_row("ups.start.auto", f"{CUSTOM}.DeltaConfigStartPowerRestore", "%s", lookup=YES_NO, flags=NUMBER),
    Row("ups.power.nominal", ("UPS.Flow.ConfigApparentPower",), flags=STATIC),
    Row("ups.realpower", (f"{OUTLET}.ActivePower", f"{OUT}.ActivePower"), "%.1f", flags=QUICK),
    Row("ups.load", (f"{OUTLET}.PercentLoad",), "%.1f", flags=QUICK),
    rw_row("ups.delay.start", f"{OUTLET}.DeltaConfigStartPowerRestoreDelay", flags=NUMBER),
    Row("ups.timer.start", (f"{OUTLET}.DelayBeforeStartup",), flags=QUICK),
    Row("ups.timer.shutdown", (f"{OUTLET}.DelayBeforeShutdown",), flags=QUICK),
    Row("ups.timer.reboot", (f"{OUTLET}.DelayBeforeReboot",), flags=QUICK),
    status_row(f"{PST}.Good", "off", quick=True, invert=True),
    status_row(f"{PST}.InternalFailure", "commfault", quick=True),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm", quick=True),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    Row("BOOL", (f"{PST}.FullyCharged",), lookup={1: "fullycharged", 0: "notfullycharged"}, flags=QUICK),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.FullyDischarged", "depleted", quick=True),
    status_row(f"{PST}.NeedReplacement", "replacebatt", quick=True),
    status_row(f"{PCS}.VoltageOutOfRange", "vrange", quick=True),
    status_row(f"{PCS}.Buck", "trim", quick=True),
    status_row(f"{PCS}.Boost", "boost", quick=True),
    status_row(f"{PCS}.Overload", "overload", quick=True),
    # "Used" is the battery's presence here
    status_row(f"{PCS}.Used", "nobattery", quick=True, invert=True),
    status_row(f"{PCS}.OverTemperature", "overheat", quick=True),
    status_row(f"{PCS}.InternalFailure", "commfault", quick=True),
    status_row(f"{PCS}.AwaitingPower", "awaitingpower", quick=True),
)

CMDS = (
    *beeper_cmds(f"{PS}.AudibleAlarmControl"),
    cmds("test.battery.start.quick", "UPS.BatterySystem.Test", 1),
    cmds("test.battery.start.deep", "UPS.BatterySystem.Test", 2),
    cmds("test.battery.stop", "UPS.BatterySystem.Test", 3),
    cmds("load.on.delay", f"{OUTLET}.DelayBeforeStartup", int(DEFAULT_ONDELAY)),
    cmds("load.off.delay", f"{OUTLET}.DelayBeforeShutdown", int(DEFAULT_OFFDELAY)),
    cmds("shutdown.stop", f"{OUTLET}.DelayBeforeShutdown", -1),
    cmds("shutdown.reboot", f"{OUTLET}.DelayBeforeReboot", 10),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "Delta",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="Delta UPS HID",
    key="delta_ups",
    version="0.6",
    ids=((VENDOR, 0x041B),),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
)
