"""Arduino boards running the HIDPowerDevice library (USB vendors 2341 and 2a03: Leonardo 0036/8036,
Micro 0040/8040 ...) — NUT: "Arduino HID".

The library makes an ATmega32u4 board a HID Power Device with the spec's standard paths
under ``UPS.PowerSummary``; the sketch decides which values it fills. The capacities are
taken as percent (the library's CapacityMode 2). The board's HID interface is its third
(after the serial port's two), which the transport finds by its class as it does for any UPS.
"""

from __future__ import annotations

from ..table import (
    DEFAULT_OFFDELAY,
    DEFAULT_ONDELAY,
    QUICK,
    SEMI,
    STATIC,
    Row,
    Subdriver,
    UsbIdentity,
    absent_row,
    cmds,
    status_row,
)

ARDUINO, ARDUINO_ORG = 0x2341, 0x2A03

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"

ROWS: tuple[Row, ...] = (
    absent_row("ups.delay.start", f"{PS}.DelayBeforeStartup", DEFAULT_ONDELAY, "ondelay"),
    absent_row("ups.delay.shutdown", f"{PS}.DelayBeforeShutdown", DEFAULT_OFFDELAY, "offdelay"),
    Row("ups.timer.start", (f"{PS}.DelayBeforeStartup",), flags=QUICK),
    Row("ups.timer.shutdown", (f"{PS}.DelayBeforeShutdown",), flags=QUICK),
    Row("ups.timer.reboot", (f"{PS}.DelayBeforeReboot",), flags=QUICK),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", flags=STATIC, string_index=True),
    Row("battery.voltage.nominal", (f"{PS}.ConfigVoltage",), "%.2f", flags=QUICK),
    Row("battery.voltage", (f"{PS}.Voltage",), "%.2f", flags=QUICK),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",), flags=QUICK),
    Row("battery.runtime.low", (f"{PS}.RemainingTimeLimit",), flags=SEMI),
    Row("battery.charge", (f"{PS}.RemainingCapacity",)),
    Row("battery.charge.low", (f"{PS}.RemainingCapacityLimit",), flags=SEMI),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",), flags=SEMI),
    Row("ups.load", (f"{PS}.PercentLoad",)),
    Row("input.voltage", ("UPS.PowerConverter.Input.[1].Voltage",), "%.1f"),
    Row("output.voltage", ("UPS.PowerConverter.Output.Voltage",), "%.1f"),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm"),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    status_row(f"{PST}.Overload", "overload"),
    status_row(f"{PST}.RemainingTimeLimitExpired", "timelimitexp"),
    status_row(f"{PST}.BatteryPresent", "nobattery", invert=True),
    Row("BOOL", (f"{PST}.FullyCharged",), lookup={1: "fullycharged", 0: "notfullycharged"}, flags=QUICK),
    status_row(f"{PST}.FullyDischarged", "depleted", quick=True),
)

CMDS = (
    cmds("load.off.delay", f"{PS}.DelayBeforeShutdown", int(DEFAULT_OFFDELAY)),
    cmds("load.on.delay", f"{PS}.DelayBeforeStartup", int(DEFAULT_ONDELAY)),
    cmds("shutdown.stop", f"{PS}.DelayBeforeShutdown", -1),
    cmds("shutdown.reboot", f"{PS}.DelayBeforeReboot", 10),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "Arduino",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="Arduino HID",
    key="arduino",
    version="0.22",
    ids=((ARDUINO, 0x0036), (ARDUINO, 0x8036), (ARDUINO_ORG, 0x0036), (ARDUINO_ORG, 0x8036),
         (ARDUINO_ORG, 0x0040), (ARDUINO_ORG, 0x8040)),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
)
