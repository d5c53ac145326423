"""Phoenixtec (USB vendor 06da, product ffff) — NUT: "Phoenixtec/Liebert HID".

Phoenixtec builds the line-interactive units sold as PowerWalker VI ... SH/SHL, Liebert
PowerSure and under other brands. NUT named this subdriver before the vendor ID was known
to be Phoenixtec's; the Liebert units with Liebert's own ID (10af) are Belkin/Liebert's.
06da:ffff is shared: the MGE subdriver takes AEG units, iDowell's the GoldenMate battery
packs (both by their USB strings), this one everything else.

Standard PDC paths with MGE-style index nodes: the mains input is
``UPS.PowerConverter.Input.[1]``, the output ratings ``UPS.Flow.[4]``. The transfer
limits are on Phoenixtec's vendor page without names (``UPS.PowerConverter.Output.ffff0057``
...), as NUT reads them.
"""

from __future__ import annotations

from ..table import (
    BEEPER,
    DEFAULT_OFFDELAY,
    DEFAULT_ONDELAY,
    SEMI,
    TEST_READ,
    Row,
    Subdriver,
    UsbIdentity,
    absent_row,
    cmds,
    status_row,
)

VENDOR = 0x06DA

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
OUT = "UPS.PowerConverter.Output"
MAINS = "UPS.PowerConverter.Input.[1]"
RATING = "UPS.Flow.[4]"

ROWS: tuple[Row, ...] = (
    Row("battery.voltage", (f"{PS}.Voltage",), "%.2f"),
    Row("battery.charge", (f"{PS}.RemainingCapacity",)),
    Row("experimental.battery.capacity", (f"{PS}.FullChargeCapacity",)),
    Row("experimental.battery.capacity.nominal", (f"{PS}.DesignCapacity",)),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", string_index=True),
    Row("ups.load", (f"{PS}.PercentLoad",)),
    Row("ups.power.nominal", (f"{RATING}.ConfigApparentPower",), flags=SEMI),
    Row("ups.test.result", ("UPS.BatterySystem.Battery.Test",), "%s", TEST_READ),
    Row("ups.beeper.status", (f"{PS}.AudibleAlarmControl",), "%s", BEEPER, flags=SEMI),
    Row("output.voltage", (f"{OUT}.Voltage",), "%.1f"),
    Row("output.voltage.nominal", (f"{RATING}.ConfigVoltage",), flags=SEMI),
    Row("output.frequency", (f"{OUT}.Frequency",), "%.2f"),
    Row("output.frequency.nominal", (f"{RATING}.ConfigFrequency",), flags=SEMI),
    Row("output.transfer.high", (f"{OUT}.HighVoltageTransfer",), "%.1f", flags=SEMI),
    Row("output.transfer.low", (f"{OUT}.LowVoltageTransfer",), "%.1f", flags=SEMI),
    Row("input.voltage", (f"{MAINS}.Voltage",), "%.1f"),
    Row("input.frequency", (f"{MAINS}.Frequency",), "%.2f"),
    Row("input.transfer.low", (f"{OUT}.ffff0057",), flags=SEMI),
    Row("input.transfer.high", (f"{OUT}.ffff0058",), flags=SEMI),
    Row("input.frequency.transfer.low", (f"{OUT}.ffff00f9",), flags=SEMI),
    Row("input.frequency.transfer.high", (f"{OUT}.ffff00f8",), flags=SEMI),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.Overload", "overload", quick=True),
    status_row(f"{PST}.Good", "off", quick=True, invert=True),
    status_row(f"{PST}.InternalFailure", "commfault", quick=True),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm", quick=True),
    status_row(f"{MAINS}.PresentStatus.Buck", "trim"),
    status_row(f"{MAINS}.PresentStatus.Boost", "boost"),
    absent_row("ups.delay.start", f"{PS}.DelayBeforeStartup", DEFAULT_ONDELAY, "ondelay"),
    absent_row("ups.delay.shutdown", f"{PS}.DelayBeforeShutdown", DEFAULT_OFFDELAY, "offdelay"),
)

CMDS = (
    cmds("test.battery.start", "UPS.BatterySystem.Battery.Test", 1),
    cmds("load.off.delay", f"{PS}.DelayBeforeShutdown", int(DEFAULT_OFFDELAY)),
    cmds("load.on.delay", f"{PS}.DelayBeforeStartup", int(DEFAULT_ONDELAY)),
    cmds("shutdown.stop", f"{PS}.DelayBeforeShutdown", -1),
    cmds("beeper.toggle", f"{PS}.AudibleAlarmControl", 1),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "Liebert",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="Phoenixtec/Liebert HID",
    key="liebert",
    version="0.41",
    ids=((VENDOR, 0xFFFF),),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
)
