"""Tripp Lite (USB vendor 09ae), some HP (03f0) and Delta/Minuteman (05dd) OEM units —
NUT: "TrippLite HID".

Tripp Lite puts most values under UPS.PowerConverter / UPS.OutletSystem.Outlet /
UPS.BatterySystem and has vendor usages on page 0xFFFF (TLCustom, TLACPresent...).
Per-product quirk: the battery voltage's unit exponent is wrong on many models;
the scale comes from the product ID table (0.1 for the older 1xxx/2xxx models,
1.0 for the others, and the SMART1500LCDT family is off by 10^5 on voltages and
10^-2 on frequency/current, as NUT found). 09ae:0001 is the older serial-over-USB
protocol (``tripplite_usb``), not HID, and is not claimed.
"""

from __future__ import annotations

from ..table import (
    BEEPER,
    DEFAULT_OFFDELAY,
    DEFAULT_ONDELAY,
    QUICK,
    STATIC,
    TEST_READ,
    Claim,
    Ctx,
    Row,
    Subdriver,
    absent_row,
    beeper_cmds,
    cmds,
    kelvin_to_celsius,
    rw_row,
    status_row,
)

VENDOR = 0x09AE
HP = 0x03F0
DELTA = 0x05DD

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
PCS = "UPS.PowerConverter.PresentStatus"
OUTLET = "UPS.OutletSystem.Outlet"

_SCALE_01 = (0x1003, 0x1007, 0x1008, 0x1009, 0x1010, 0x2005, 0x2007, 0x2008, 0x2009, 0x2010, 0x2011, 0x2012,
             0x2013, 0x2014)
_SCALE_1 = (0x1330, 0x3008, 0x3009, 0x3010, 0x3011, 0x3012, 0x3013, 0x3014, 0x3015, 0x4001, 0x4002, 0x4003,
            0x4004, 0x4005, 0x4006, 0x4007, 0x4008)
_SMART1500LCDT = (0x3016, 0x3024)

#: product -> (battery, I/O voltage, I/O frequency, I/O current) scale
SCALES: dict[int, tuple[float, float, float, float]] = {
    **{pid: (0.1, 1.0, 1.0, 1.0) for pid in _SCALE_01},
    **{pid: (1.0, 1.0, 1.0, 1.0) for pid in _SCALE_1},
    **{pid: (100000.0, 100000.0, 0.01, 0.01) for pid in _SMART1500LCDT},
}


def _scales(ctx: Ctx) -> tuple[float, float, float, float]:
    if ctx.vendor_id != VENDOR:
        return (1.0, 1.0, 1.0, 1.0)
    return SCALES.get(ctx.product_id, (1.0, 1.0, 1.0, 1.0))


def battery_voltage(value: float, ctx: Ctx) -> str | None:
    return f"{_scales(ctx)[0] * value:.1f}"


def io_voltage(value: float, ctx: Ctx) -> str | None:
    return f"{_scales(ctx)[1] * value:.1f}"


def io_frequency(value: float, ctx: Ctx) -> str | None:
    return f"{_scales(ctx)[2] * value:.1f}"


def io_current(value: float, ctx: Ctx) -> str | None:
    return f"{_scales(ctx)[3] * value:.1f}"


ROWS: tuple[Row, ...] = (
    Row("device.part", ("UPS.TLCustom.[1].iUPSPartNumber",), "%s", flags=STATIC, string_index=True),
    Row("battery.charge", (f"{PS}.RemainingCapacity", "UPS.BatterySystem.Battery.RemainingCapacity")),
    rw_row("battery.charge.low", f"{PS}.RemainingCapacityLimit", length=5),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",)),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    Row("battery.voltage.nominal", ("UPS.BatterySystem.Battery.ConfigVoltage",), "%.1f", flags=STATIC),
    Row("battery.voltage", ("UPS.BatterySystem.Battery.Voltage",), battery_voltage),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", flags=STATIC, string_index=True),
    Row("battery.temperature", ("UPS.BatterySystem.Temperature",), kelvin_to_celsius),
    absent_row("ups.delay.start", (f"{OUTLET}.DelayBeforeStartup", f"{OUTLET}.TLDelayBeforeStartup"),
               DEFAULT_ONDELAY, "ondelay"),
    absent_row("ups.delay.shutdown", f"{OUTLET}.DelayBeforeShutdown", DEFAULT_OFFDELAY, "offdelay"),
    Row("ups.timer.start", (f"{OUTLET}.DelayBeforeStartup", f"{OUTLET}.TLDelayBeforeStartup"), flags=QUICK),
    Row("ups.timer.shutdown", (f"{OUTLET}.DelayBeforeShutdown",), flags=QUICK),
    Row("ups.timer.reboot", (f"{OUTLET}.DelayBeforeReboot",), flags=QUICK),
    Row("ups.test.result", ("UPS.BatterySystem.Test",), "%s", TEST_READ),
    Row("ups.beeper.status", (f"{PS}.AudibleAlarmControl",), "%s", BEEPER),
    Row("ups.power.nominal", ("UPS.Flow.ConfigApparentPower",), flags=STATIC),
    Row("ups.power", (f"{OUTLET}.ActivePower", "UPS.PowerConverter.Output.ActivePower"), "%.1f"),
    Row("ups.load", (f"{OUTLET}.PercentLoad",)),
    Row("ups.firmware", ("UPS.TLCustom.[1].UPSFirmwareVersion",), flags=STATIC),
    Row("ups.watchdog.status", (f"{OUTLET}.TLWatchdog",)),
    status_row(f"{PST}.InternalFailure", "commfault"),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm"),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    Row("BOOL", (f"{PST}.FullyCharged",), lookup={1: "fullycharged", 0: "notfullycharged"}, flags=QUICK),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.FullyDischarged", "depleted", quick=True),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    # OMNI1000LCD-like firmware: page 0x84 codes where 0x85 was meant
    status_row(f"{PST}.TLACPresent", "online", quick=True),
    status_row(f"{PST}.TLDischarging", "dischrg", quick=True),
    Row("ups.load.nominal", ("UPS.Flow.ConfigPercentLoad",)),
    status_row(f"{PST}.TLCharging", "chrg", quick=True),
    status_row(f"{PST}.TLNeedReplacement", "replacebatt"),
    status_row(f"{PCS}.VoltageOutOfRange", "vrange"),
    status_row(f"{PCS}.Buck", "trim"),
    status_row(f"{PCS}.Boost", "boost"),
    status_row(f"{PCS}.Overload", "overload"),
    status_row(f"{PCS}.OverTemperature", "overheat"),
    status_row(f"{PCS}.InternalFailure", "commfault"),
    status_row(f"{PCS}.AwaitingPower", "awaitingpower"),
    Row("input.voltage.nominal", (f"{PS}.Input.ConfigVoltage",), flags=STATIC),
    Row("input.voltage", (f"{PS}.Input.Voltage", "UPS.PowerConverter.Input.Voltage"), io_voltage),
    Row("input.frequency", ("UPS.PowerConverter.Input.Frequency",), io_frequency),
    rw_row("input.transfer.low", "UPS.PowerConverter.Output.LowVoltageTransfer", "%.1f", length=5),
    Row("input.transfer.low.max", ("UPS.PowerConverter.Output.TLLowVoltageTransferMax",), flags=STATIC),
    Row("input.transfer.low.min", ("UPS.PowerConverter.Output.TLLowVoltageTransferMin",), flags=STATIC),
    rw_row("input.transfer.high", "UPS.PowerConverter.Output.HighVoltageTransfer", "%.1f", length=5),
    Row("input.transfer.high.max", ("UPS.PowerConverter.Output.TLHighVoltageTransferMax",), flags=STATIC),
    Row("input.transfer.high.min", ("UPS.PowerConverter.Output.TLHighVoltageTransferMin",), flags=STATIC),
    Row("output.voltage.nominal", ("UPS.Flow.ConfigVoltage",), flags=STATIC),
    Row("output.voltage", ("UPS.PowerConverter.Output.Voltage", f"{PS}.Voltage"), io_voltage),
    Row("output.current", ("UPS.PowerConverter.Output.Current",), io_current),
    Row("output.frequency.nominal", ("UPS.Flow.ConfigFrequency",), flags=STATIC),
    Row("output.frequency", ("UPS.PowerConverter.Output.Frequency",), io_frequency),
)

_ALARM = f"{PS}.AudibleAlarmControl"
CMDS = (
    cmds("test.battery.start.quick", "UPS.BatterySystem.Test", 1),
    cmds("test.battery.start.deep", "UPS.BatterySystem.Test", 2),
    cmds("test.battery.stop", "UPS.BatterySystem.Test", 3),
    cmds("load.off.delay", f"{OUTLET}.DelayBeforeShutdown", int(DEFAULT_OFFDELAY)),
    cmds("load.on.delay", (f"{OUTLET}.DelayBeforeStartup", f"{OUTLET}.TLDelayBeforeStartup"),
         int(DEFAULT_ONDELAY)),
    cmds("shutdown.stop", f"{OUTLET}.DelayBeforeShutdown", -1),
    cmds("shutdown.reboot", (f"{OUTLET}.DelayBeforeReboot", f"{OUTLET}.TLWatchdog"), 10),
    cmds("reset.watchdog", f"{OUTLET}.TLWatchdog", 60),
    *beeper_cmds(_ALARM),
)


def finish(values: dict[str, str], ctx: Ctx) -> None:
    # the chemistry string of these two models is garbage
    if ctx.vendor_id == VENDOR and ctx.product_id in (0x1003, 0x2005) and "battery.type" in values:
        values["battery.type"] = "unknown"


_HP_IDS = (0x0001, 0x1FE0, 0x1FE1, 0x1FE2, 0x1FE3, 0x1F06, 0x1F08, 0x1F09, 0x1F0A)

def claim(c: Claim) -> bool:
    """NUT's tripplite_claim: the usual rule, but 09ae:0001 (the older protocol of
    ``tripplite_usb``) never, and of Delta's 05dd only the listed products."""
    if (c.vendor_id, c.product_id) == (VENDOR, 0x0001):
        return False
    if c.vendor_id == DELTA:
        return c.listed
    return c.listed or c.productid_option


SUBDRIVER = Subdriver(
    name="TrippLite HID",
    key="tripplite",
    version="0.85",
    ids=(*((VENDOR, pid) for pid in (*_SCALE_01, *_SCALE_1, *_SMART1500LCDT)),
         *((HP, pid) for pid in _HP_IDS), (DELTA, 0xA011), (DELTA, 0xA0A0)),
    rows=ROWS,
    cmds=CMDS,
    finish=finish,
    claim=claim,
)
