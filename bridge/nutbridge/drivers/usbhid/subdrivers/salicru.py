"""Salicru (USB vendor 2e66) — NUT: "Salicru HID".

SPS Home / SPS ADV (standard PDC paths under ``UPS.Input``/``UPS.Output``) and the Twin Pro
2/3 and Twin RT on-line units (``UPS.PowerConverter`` with MGE-style index nodes,
``UPS.Flow.[4]`` for the ratings). Read-only apart from the battery limits; NUT exposes the
battery test commands of the Twin units only (the SPS commands are untested there).
"""

from __future__ import annotations

from ..table import (
    BEEPER,
    SEMI,
    STATIC,
    TEST_READ,
    Row,
    Subdriver,
    UsbIdentity,
    cmds,
    rw_row,
    status_row,
)

VENDOR = 0x2E66

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"

ROWS: tuple[Row, ...] = (
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", string_index=True),
    Row("battery.charge", (f"{PS}.RemainingCapacity",)),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",)),
    rw_row("battery.charge.low", f"{PS}.RemainingCapacityLimit", flags=SEMI),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    rw_row("battery.runtime.low", f"{PS}.RemainingTimeLimit", flags=SEMI),
    Row("battery.voltage.nominal", (f"{PS}.ConfigVoltage",)),
    Row("battery.voltage", (f"{PS}.Voltage",), "%.2f"),
    Row("ups.load", ("UPS.Output.PercentLoad",)),
    Row("ups.beeper.status", (f"{PS}.AudibleAlarmControl",), "%s", BEEPER),
    Row("ups.test.result", ("UPS.Output.Test",), "%s", TEST_READ),
    Row("ups.realpower.nominal", ("UPS.Output.ConfigActivePower",)),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    Row("BOOL", (f"{PST}.FullyCharged",), lookup={1: "fullycharged", 0: "notfullycharged"}),
    status_row(f"{PST}.RemainingTimeLimitExpired", "timelimitexp"),
    status_row("UPS.Output.CommunicationLost", "commfault"),
    status_row("UPS.Output.Boost", "boost"),
    status_row("UPS.Output.Overload", "overload"),
    Row("input.frequency", ("UPS.Input.Frequency",), "%.1f"),
    Row("input.voltage.nominal", ("UPS.Input.ConfigVoltage",)),
    Row("input.voltage", ("UPS.Input.Voltage",), "%.1f"),
    Row("input.transfer.high", ("UPS.PowerConverter.Output.HighVoltageTransfer",), flags=STATIC),
    Row("input.transfer.low", ("UPS.PowerConverter.Output.LowVoltageTransfer",), flags=STATIC),
    Row("output.frequency", ("UPS.Output.Frequency",), "%.1f"),
    Row("output.voltage", ("UPS.Output.Voltage",), "%.1f"),
    Row("output.voltage.nominal", ("UPS.Output.ConfigVoltage",)),
    # Twin Pro / Twin RT
    Row("ups.load", (f"{PS}.PercentLoad",)),
    Row("ups.test.result", ("UPS.BatterySystem.Battery.Test",), "%s", TEST_READ),
    Row("ups.realpower.nominal", ("UPS.Flow.[4].ConfigActivePower",)),
    Row("ups.realpower", ("UPS.PowerConverter.Output.ActivePower",)),
    status_row(f"{PST}.Overload", "overload"),
    status_row(f"{PST}.OverTemperature", "overheat"),
    Row("input.frequency", ("UPS.PowerConverter.Input.[1].Frequency",), "%.1f"),
    Row("input.voltage", ("UPS.PowerConverter.Input.[1].Voltage",), "%.1f"),
    Row("output.frequency", ("UPS.PowerConverter.Output.Frequency",), "%.1f"),
    Row("output.voltage", ("UPS.PowerConverter.Output.Voltage",), "%.1f"),
    Row("output.voltage.nominal", (f"{PS}.ConfigVoltage",)),
)

_TEST = "UPS.BatterySystem.Battery.Test"
CMDS = (
    cmds("test.battery.start.quick", _TEST, 1),
    cmds("test.battery.start.deep", _TEST, 2),
    cmds("test.battery.stop", _TEST, 3),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "Salicru",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="Salicru HID",
    key="salicru",
    version="0.4",
    ids=tuple((VENDOR, pid) for pid in (0x0101, 0x0201, 0x0202, 0x0203, 0x0300, 0x0302)),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
)
