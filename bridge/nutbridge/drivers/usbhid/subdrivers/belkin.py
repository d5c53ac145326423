"""Belkin (USB vendor 050d) and Liebert (10af) — NUT: "Belkin/Liebert HID".

Older Belkin firmware puts everything on vendor page 0x0086 (BELKINConfig,
BELKINControls, BELKINPowerState, BELKINStatus...) with values in 0.1 units and
the status as bit fields (BELKINPowerStatus: bit0 AC failure, bit4 overload,
bit6 overheat, bit7 UPS fault, bit13 awaiting power; BELKINBatteryStatus: bit2
low battery, bit6 depleted, bit7 replace battery). Liebert PSI/GXT units use the
standard PDC paths but some firmware declares voltage exponents 10^-7 too small;
the multiplier is guessed once from the first implausible reading, as NUT does.

Intentional difference: NUT maps "AC failure" / ACPresent = 0 to "not online"
only, which (since NUT 2.8.1) gives neither OL nor OB while the battery
discharging bit is unknown; here it means on battery (OB), as for other vendors.
"""

from __future__ import annotations

from ..table import (
    BEEPER,
    DEFAULT_OFFDELAY,
    DEFAULT_ONDELAY,
    QUICK,
    STATIC,
    Claim,
    Ctx,
    Row,
    Subdriver,
    UsbIdentity,
    absent_row,
    beeper_cmds,
    cmds,
    divide_by_10,
    divide_by_100,
    pdc_date,
    rw_row,
    status_row,
)

BELKIN = 0x050D
LIEBERT = 0x10AF

CFG = "UPS.BELKINConfig"
CTL = "UPS.BELKINControls"
DEV = "UPS.BELKINDevice"
PWR = "UPS.BELKINPowerState"
STS = "UPS.BELKINStatus"
PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"

TEST_RESULT = {0: "No test initiated", 1: "Done and passed", 2: "Done and warning", 3: "Done and error",
               4: "Aborted", 5: "In progress"}
SENSITIVITY = {0: "normal", 1: "reduced", 2: "low"}
UPS_TYPE = {1: "offline", 2: "line-interactive", 3: "simple online", 4: "simple offline",
            5: "simple line-interactive"}


def firmware(value: float, ctx: Ctx) -> str | None:
    return str(int(value) >> 4)


def ups_type(value: float, ctx: Ctx) -> str | None:
    return UPS_TYPE.get(int(value) & 0x0F, "online")


def _mult(ctx: Ctx, key: str) -> float:
    value = ctx.memo.get(key, 1.0)
    return value if isinstance(value, float) else 1.0


def config_voltage(value: float, ctx: Ctx) -> str | None:
    """Liebert nominal voltages declared 10^-8 too small (24 V read as 2.4e-7)."""
    if value < 1 and abs(value - 1e-7) < 1e-9:
        ctx.memo["config_mult"] = 1e8
        ctx.memo["line_mult"] = 1e7
    return f"{value * _mult(ctx, 'config_mult'):.1f}"


def line_voltage(value: float, ctx: Ctx) -> str | None:
    """Liebert line/battery voltages with a wrong exponent: 2.201e-05 = 220.1 V,
    0.001212 = 121.2 V."""
    if value < 1:
        if abs(value - 1e-5) < 4e-5:
            ctx.memo["line_mult"] = 1e7
        elif abs(value - 1e-3) < 4e-3:
            ctx.memo["line_mult"] = 1e5
    return f"{value * _mult(ctx, 'line_mult'):.1f}"


ROWS: tuple[Row, ...] = (
    Row("battery.charge", ("UPS.BELKINBatterySystem.BELKINCharge",)),
    Row("battery.charge.low", (f"{PS}.RemainingCapacityLimit",)),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",)),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", string_index=True),
    Row("battery.voltage", ("UPS.BELKINBatterySystem.BELKINVoltage",), divide_by_10),
    Row("battery.voltage.nominal", (f"{CFG}.BELKINConfigBatteryVoltage",)),
    Row("input.frequency", (f"{PWR}.BELKINInput.BELKINFrequency",), divide_by_10),
    Row("input.frequency.nominal", (f"{CFG}.BELKINConfigFrequency",)),
    # NUT reads unknown codes as "normal" and cannot write this one; here the names are writable
    rw_row("input.sensitivity", f"{DEV}.BELKINVoltageSensitivity", "%s", lookup=SENSITIVITY),
    rw_row("input.transfer.high", f"{CFG}.BELKINHighVoltageTransfer"),
    Row("input.transfer.high.max", (f"{CFG}.BELKINHighVoltageTransferMax",)),
    Row("input.transfer.high.min", (f"{CFG}.BELKINHighVoltageTransferMin",)),
    rw_row("input.transfer.low", f"{CFG}.BELKINLowVoltageTransfer"),
    Row("input.transfer.low.max", (f"{CFG}.BELKINLowVoltageTransferMax",)),
    Row("input.transfer.low.min", (f"{CFG}.BELKINLowVoltageTransferMin",)),
    Row("input.voltage", (f"{PWR}.BELKINInput.BELKINVoltage",), divide_by_10),
    Row("input.voltage.nominal", (f"{CFG}.BELKINConfigVoltage",)),
    Row("output.frequency", (f"{PWR}.BELKINOutput.BELKINFrequency",), divide_by_10),
    Row("output.voltage", (f"{PWR}.BELKINOutput.BELKINVoltage",), divide_by_10),
    Row("ups.beeper.status", (f"{CTL}.BELKINAudibleAlarmControl",), "%s", BEEPER),
    absent_row("ups.delay.start", f"{CTL}.BELKINDelayBeforeStartup", DEFAULT_ONDELAY, "ondelay"),
    absent_row("ups.delay.shutdown", f"{CTL}.BELKINDelayBeforeShutdown", DEFAULT_OFFDELAY, "offdelay"),
    Row("ups.timer.start", (f"{CTL}.BELKINDelayBeforeStartup",), flags=QUICK),
    Row("ups.timer.shutdown", (f"{CTL}.BELKINDelayBeforeShutdown",), flags=QUICK),
    Row("ups.timer.reboot", (f"{CTL}.BELKINDelayBeforeReboot",), flags=QUICK),
    Row("ups.firmware", (f"{DEV}.BELKINUPSType",), firmware),
    Row("ups.load", (f"{PWR}.BELKINOutput.BELKINPercentLoad",)),
    Row("ups.load.high", (f"{CFG}.BELKINConfigOverloadTransfer",)),
    Row("ups.mfr.date", (f"{PS}.ManufacturerDate",), pdc_date),
    Row("ups.power.nominal", (f"{CFG}.BELKINConfigApparentPower",)),
    Row("ups.serial", (f"{PS}.iSerialNumber",), "%s", string_index=True),
    Row("ups.test.result", (f"{CTL}.BELKINTest",), "%s", TEST_RESULT),
    Row("ups.type", (f"{DEV}.BELKINUPSType",), ups_type),
    # Liebert: standard paths, some with broken exponents
    Row("battery.charge", (f"{PS}.RemainingCapacity",), flags=QUICK),
    Row("input.frequency", ("UPS.Input.Frequency",), divide_by_10),
    Row("input.voltage", ("UPS.Input.Voltage",), line_voltage),
    Row("output.voltage", ("UPS.Output.Voltage",), line_voltage),
    Row("battery.voltage", (f"{PS}.Voltage",), line_voltage),
    Row("battery.voltage.nominal", (f"{PS}.ConfigVoltage",), config_voltage, flags=STATIC),
    Row("ups.load", ("UPS.Output.PercentLoad",)),
    Row("input.voltage.nominal", ("UPS.Flow.ConfigVoltage",)),
    Row("input.frequency", ("UPS.PowerConverter.Input.Frequency",), divide_by_100),
    Row("input.voltage", ("UPS.PowerConverter.Input.Voltage",), line_voltage),
    Row("output.voltage.nominal", ("UPS.Flow.ConfigVoltage",)),
    Row("output.frequency", ("UPS.PowerConverter.Output.Frequency",), divide_by_100),
    Row("output.voltage", ("UPS.PowerConverter.Output.Voltage",), line_voltage),
    Row("ups.load", ("UPS.OutletSystem.Outlet.PercentLoad",)),
    Row("battery.voltage", ("UPS.BatterySystem.Battery.Voltage",), line_voltage),
    Row("battery.voltage.nominal", ("UPS.BatterySystem.Battery.ConfigVoltage",)),
    Row("battery.capacity", ("UPS.Flow.ConfigApparentPower",)),
    status_row((f"{PS}.Discharging", f"{PST}.Discharging"), "dischrg", quick=True),
    status_row((f"{PS}.Charging", f"{PST}.Charging"), "chrg", quick=True),
    status_row((f"{PS}.ShutdownImminent", f"{PST}.ShutdownImminent"), "shutdownimm"),
    status_row((f"{PS}.ACPresent", f"{PST}.ACPresent"), "online", quick=True),
    status_row(f"{PST}.NeedReplacement", "replacebatt", quick=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    # old Belkin firmware: bit fields
    status_row(f"{STS}.BELKINPowerStatus", "overload", mask=0x0010),
    status_row(f"{STS}.BELKINPowerStatus", "overheat", mask=0x0040),
    status_row(f"{STS}.BELKINPowerStatus", "commfault", mask=0x0080),
    status_row(f"{STS}.BELKINPowerStatus", "awaitingpower", mask=0x2000),
    status_row(f"{STS}.BELKINPowerStatus", "online", quick=True, mask=0x0001, invert=True),
    status_row(f"{STS}.BELKINBatteryStatus", "depleted", quick=True, mask=0x0040),
    status_row(f"{STS}.BELKINBatteryStatus", "replacebatt", mask=0x0080),
    status_row(f"{STS}.BELKINBatteryStatus", "lowbatt", quick=True, mask=0x0004),
)

_ALARM = f"{CTL}.BELKINAudibleAlarmControl"
CMDS = (
    cmds("test.battery.start.quick", f"{CTL}.BELKINTest", 1),
    cmds("test.battery.start.deep", f"{CTL}.BELKINTest", 2),
    cmds("test.battery.stop", f"{CTL}.BELKINTest", 3),
    *beeper_cmds(_ALARM),
    # Belkin: 1 starts the action with the UPS's own delay
    cmds("load.off", f"{CTL}.BELKINDelayBeforeShutdown", 1),
    cmds("load.on", f"{CTL}.BELKINDelayBeforeStartup", 1),
    cmds("load.off.delay", f"{CTL}.BELKINDelayBeforeShutdown", int(DEFAULT_OFFDELAY)),
    cmds("load.on.delay", f"{CTL}.BELKINDelayBeforeStartup", int(DEFAULT_ONDELAY)),
    cmds("shutdown.stop", f"{CTL}.BELKINDelayBeforeShutdown", -1),
    cmds("shutdown.reboot", f"{CTL}.BELKINDelayBeforeReboot", 10),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "Belkin",
            "ups.model": (info.product or "").strip() or "unknown",
            "ups.serial": (info.serial or "").strip()}


def claim(c: Claim) -> bool:
    """NUT's belkin_claim: the usual rule, but Belkin's F5U218 USB hub (050d:0218) never."""
    if (c.vendor_id, c.product_id) == (BELKIN, 0x0218):
        return False
    return c.listed or c.productid_option


SUBDRIVER = Subdriver(
    name="Belkin/Liebert HID",
    key="belkin",
    version="0.23",
    ids=(*((BELKIN, pid) for pid in (0x0980, 0x0900, 0x0910, 0x0912, 0x0551, 0x0750, 0x0751, 0x0375, 0x0F51,
                                      0x1100)),
         *((LIEBERT, pid) for pid in (0x0000, 0x0001, 0x0002, 0x0004, 0x0008))),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
    claim=claim,
)
