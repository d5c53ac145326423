"""Legrand (USB vendor 1cb0) — NUT: "Legrand HID".

Keor PDU (1cb0:0038) and Keor SP (1cb0:0032). Their firmware declares wrong unit exponents,
which NUT corrects per path with fixed factors: the PowerConverter voltages read 10^6 / 10^7
too small, the battery voltage on ``UPS.BatterySystem.Battery`` 10^5 too small, the
PowerSummary battery voltages 10 times too large, one transfer limit 10 times too small.
The interrupt pipe is off by default for both products (NUT disables it: ``pollonly``).

The Keor PDU dump of the DDL shows the factors are not right for every firmware (its 2.7.4
report publishes ``battery.voltage: 1.4`` and ``output.voltage: 6``); they are NUT's, and
so ours.
"""

from __future__ import annotations

from ..table import (
    DEFAULT_OFFDELAY,
    DEFAULT_ONDELAY,
    STATIC,
    Converter,
    Ctx,
    Row,
    Subdriver,
    UsbIdentity,
    absent_row,
    cmds,
    divide_by_10,
    status_row,
)

VENDOR = 0x1CB0
PDU, SP = 0x0038, 0x0032

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
OUTLET = "UPS.OutletSystem.Outlet"


def _times(factor: float) -> Converter:
    """The value times ``factor``, one decimal (the firmware's exponent is off by it)."""
    def convert(value: float, ctx: Ctx) -> str | None:
        return f"{value * factor:.1f}"
    return convert


times10, times100k, times1m, times10m = (_times(10), _times(1e5), _times(1e6), _times(1e7))

ROWS: tuple[Row, ...] = (
    Row("input.voltage", ("UPS.Input.Voltage",)),
    Row("input.voltage", ("UPS.PowerConverter.Input.Voltage",), times1m),
    Row("input.transfer.high", ("UPS.Input.HighVoltageTransfer",), flags=STATIC),
    Row("input.transfer.high", ("UPS.PowerConverter.Output.HighVoltageTransfer",), times10,
        flags=STATIC),
    Row("input.transfer.low", ("UPS.Input.LowVoltageTransfer",
                               "UPS.PowerConverter.Output.LowVoltageTransfer"), flags=STATIC),
    Row("input.voltage.nominal", ("UPS.Input.ConfigVoltage", "UPS.Flow.ConfigVoltage"), flags=STATIC),
    Row("battery.voltage.nominal", (f"{PS}.ConfigVoltage",), divide_by_10, flags=STATIC),
    Row("battery.voltage.nominal", ("UPS.BatterySystem.Battery.ConfigVoltage",), flags=STATIC),
    Row("battery.voltage", (f"{PS}.Voltage",), divide_by_10),
    Row("battery.voltage", ("UPS.BatterySystem.Battery.Voltage",), times100k),
    Row("battery.charge", (f"{PS}.RemainingCapacity",)),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",), flags=STATIC),
    Row("battery.charge.low", (f"{PS}.RemainingCapacityLimit",), flags=STATIC),
    Row("output.voltage", ("UPS.Output.Voltage",)),
    Row("output.voltage", ("UPS.PowerConverter.Output.Voltage",), times10m),
    Row("output.frequency", ("UPS.Output.Frequency",)),
    Row("ups.load", ("UPS.Output.PercentLoad", f"{OUTLET}.PercentLoad")),
    Row("ups.realpower.nominal", ("UPS.Output.ConfigActivePower", "UPS.Flow.ConfigApparentPower"),
        flags=STATIC),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row("UPS.Output.Overload", "overload", quick=True),
    absent_row("ups.delay.shutdown", (f"{OUTLET}.DelayBeforeShutdown", "UPS.Output.DelayBeforeShutdown"),
               DEFAULT_OFFDELAY, "offdelay"),
    absent_row("ups.delay.start", (f"{OUTLET}.DelayBeforeStartup", "UPS.Output.DelayBeforeStartup"),
               DEFAULT_ONDELAY, "ondelay"),
)

_TEST = ("UPS.BatterySystem.Battery.Test", "UPS.Output.Test")
CMDS = (
    cmds("load.off.delay", (f"{OUTLET}.DelayBeforeShutdown", "UPS.Output.DelayBeforeShutdown"),
         int(DEFAULT_OFFDELAY)),
    cmds("load.on.delay", (f"{OUTLET}.DelayBeforeStartup", "UPS.Output.DelayBeforeStartup"),
         int(DEFAULT_ONDELAY)),
    cmds("test.battery.start.quick", _TEST, 1),
    cmds("test.battery.start.deep", _TEST, 2),
    cmds("test.battery.stop", _TEST, 3),
    cmds("beeper.enable", f"{PS}.AudibleAlarmControl", 2),
    cmds("beeper.disable", f"{PS}.AudibleAlarmControl", 3),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "Legrand",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="Legrand HID",
    key="legrand",
    version="0.2",
    ids=((VENDOR, PDU), (VENDOR, SP)),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
    product_defaults={PDU: {"pollonly": ""}, SP: {"pollonly": ""}},
)
