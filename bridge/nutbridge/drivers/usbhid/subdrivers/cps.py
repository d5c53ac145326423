"""CyberPower (USB vendor 0764, and the Cyber Energy 0483:a430) — NUT: "CyberPower HID".

Standard PDC paths. Quirks handled here:

* battery voltage: many 0764:0501 units report it 1.5x too high; when the first
  reading is above 1.4x the nominal voltage every reading is scaled by 2/3;
* frequencies: some firmwares report 0.1 Hz units without saying so (499 = 49.9 Hz);
  the scale is decided once per direction from the value's plausible range;
* battery.charge is capped at 100;
* descriptor fix-ups for 0501/0601: output/input voltage LogMax equal to the high
  transfer voltage's range is widened to 0..511, and a too small ConfigActivePower
  LogMax (report 0x18) is raised to 2048;
* defaults: ondelay 120, offdelay 60, pollfreq 12 (NUT's CPS defaults).
"""

from __future__ import annotations

from ...base import finite_number
from ..descriptor import ReportDescriptor
from ..table import (
    BEEPER,
    QUICK,
    RW,
    SEMI,
    STATIC,
    STRING,
    TEST_READ,
    Ctx,
    Row,
    Subdriver,
    absent_row,
    beeper_cmds,
    cmds,
    find_by_id,
    kelvin_to_celsius,
    pdc_date,
    pdc_date_raw,
    replace_limits,
    rw_row,
    status_row,
)

VENDOR = 0x0764
STMICRO = 0x0483
ONDELAY, OFFDELAY = "120", "60"
VOLTAGE_LOGMAX = 511
NOMINAL_POWER_LOGMAX = 2048
#: battery voltage above nominal * this -> the firmware's 1.5x error, scale by 2/3
BATTERY_SANITY = 1.4

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"


def battery_charge(value: float, ctx: Ctx) -> str | None:
    return f"{min(value, 100.0):.0f}"


def battery_voltage(value: float, ctx: Ctx) -> str | None:
    scale = ctx.memo.get("battery_scale")
    if scale is None and ctx.product_id == 0x0501:
        nominal = finite_number(ctx.values.get("battery.voltage.nominal"))
        if nominal:
            scale = 2.0 / 3 if value / nominal > BATTERY_SANITY else 1.0
            ctx.memo["battery_scale"] = scale
    factor = scale if isinstance(scale, float) else 1.0
    return f"{factor * value:.1f}"


def battery_status(value: float, ctx: Ctx) -> str | None:
    return f"{value:.0f}%"


def _freq_scale(value: float, ctx: Ctx, side: str) -> float:
    key = f"{side}_freq_scale"
    known = ctx.memo.get(key)
    if isinstance(known, float):
        return known
    if ctx.product_id != 0x0501:
        return 1.0
    nominal = finite_number(ctx.values.get(f"{side}.frequency.nominal")) or 0.0
    low = finite_number(ctx.values.get(f"{side}.frequency.low")) or 0.0
    high = finite_number(ctx.values.get(f"{side}.frequency.high")) or 0.0
    if not nominal:
        if 45 < low <= 50 or 50 <= high <= 55 or 45 < value <= 55 or 450 < value <= 550:
            nominal = 50
        elif 55 < low <= 60 or 60 <= high <= 65 or 55 < value <= 65 or 550 < value <= 650:
            nominal = 60
    if not low:
        low = nominal * 0.95 if nominal else 45.0
    if not high:
        high = nominal * 1.05 if nominal else 65.0
    if low <= value <= high:
        ctx.memo[key] = 1.0
        return 1.0
    if low <= value / 10 <= high:
        ctx.memo[key] = 0.1
        return 0.1
    return 1.0  # undecided: report as is, maybe a later reading tells


def input_frequency(value: float, ctx: Ctx) -> str | None:
    return f"{_freq_scale(value, ctx, 'input') * value:.1f}"


def output_frequency(value: float, ctx: Ctx) -> str | None:
    return f"{_freq_scale(value, ctx, 'output') * value:.1f}"


ROWS: tuple[Row, ...] = (
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", string_index=True),
    Row("battery.mfr.date", ("UPS.Battery.ManufacturerDate",), pdc_date, flags=RW | STRING | SEMI, length=10,
        to_raw=pdc_date_raw),
    Row("battery.mfr.date", (f"{PS}.iOEMInformation",), "%s", string_index=True),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",)),
    rw_row("battery.charge.low", f"{PS}.RemainingCapacityLimit"),
    Row("battery.charge", (f"{PS}.RemainingCapacity",), battery_charge),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    rw_row("battery.runtime.low", f"{PS}.RemainingTimeLimit"),
    Row("battery.voltage.nominal", (f"{PS}.ConfigVoltage",)),
    Row("battery.voltage", (f"{PS}.Voltage",), battery_voltage),
    Row("battery.status", (f"{PS}.FullChargeCapacity",), battery_status),
    Row("ups.load", ("UPS.Output.PercentLoad",)),
    Row("ups.beeper.status", (f"{PS}.AudibleAlarmControl",), "%s", BEEPER),
    Row("ups.test.result", ("UPS.Output.Test",), "%s", TEST_READ),
    Row("ups.power", ("UPS.Output.ApparentPower",)),
    Row("ups.power.nominal", ("UPS.Output.ConfigApparentPower",)),
    Row("ups.realpower", ("UPS.Output.ActivePower",)),
    Row("ups.realpower.nominal", ("UPS.Output.ConfigActivePower",)),
    absent_row("ups.delay.start", "UPS.Output.DelayBeforeStartup", ONDELAY, "ondelay"),
    absent_row("ups.delay.shutdown", "UPS.Output.DelayBeforeShutdown", OFFDELAY, "offdelay"),
    Row("ups.timer.start", ("UPS.Output.DelayBeforeStartup",), flags=QUICK),
    Row("ups.timer.shutdown", ("UPS.Output.DelayBeforeShutdown",), flags=QUICK),
    Row("ups.timer.reboot", ("UPS.Output.DelayBeforeReboot",), flags=QUICK),
    Row("ups.firmware", (f"{PS}.CPSFirmwareVersion",), "%s", flags=STATIC, string_index=True),
    Row("ups.temperature", (f"{PS}.Temperature",), kelvin_to_celsius),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    # FullyCharged 0 means "not fully charged" (not just "unknown")
    Row("BOOL", (f"{PST}.FullyCharged",), lookup={1: "fullycharged", 0: "notfullycharged"}),
    status_row(f"{PST}.RemainingTimeLimitExpired", "timelimitexp"),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    status_row("UPS.Output.Boost", "boost"),
    status_row("UPS.Output.Overload", "overload"),
    Row("input.frequency", ("UPS.Input.Frequency",), input_frequency),
    Row("input.voltage.nominal", ("UPS.Input.ConfigVoltage",)),
    Row("input.voltage", ("UPS.Input.Voltage",), "%.1f"),
    rw_row("input.transfer.low", ("UPS.Input.LowVoltageTransfer", "UPS.Output.LowVoltageTransfer")),
    rw_row("input.transfer.high", ("UPS.Input.HighVoltageTransfer", "UPS.Output.HighVoltageTransfer")),
    rw_row("input.sensitivity", "UPS.Output.CPSInputSensitivity", "%s",
           lookup={0: "low", 1: "normal", 2: "high"}, enum=True),
    Row("output.frequency", ("UPS.Output.Frequency",), output_frequency),
    Row("output.voltage", ("UPS.Output.Voltage",), "%.1f"),
    Row("output.voltage.nominal", ("UPS.Output.ConfigVoltage",)),
)

_ALARM = f"{PS}.AudibleAlarmControl"
CMDS = (
    cmds("test.battery.start.quick", "UPS.Output.Test", 1),
    cmds("test.battery.start.deep", "UPS.Output.Test", 2),
    cmds("test.battery.stop", "UPS.Output.Test", 3),
    cmds("load.off.delay", "UPS.Output.DelayBeforeShutdown", int(OFFDELAY)),
    cmds("load.on.delay", "UPS.Output.DelayBeforeStartup", int(ONDELAY)),
    cmds("shutdown.stop", "UPS.Output.DelayBeforeShutdown", -1),
    cmds("shutdown.reboot", "UPS.Output.DelayBeforeReboot", 10),
    *beeper_cmds(_ALARM),
)


def fix_descriptor(desc: ReportDescriptor, vendor_id: int, product_id: int) -> ReportDescriptor:
    """CP1500PFCLCD-like firmware copies the HighVoltageTransfer limits (report 0x10) into
    the output (0x12) and input (0x0f) Voltage fields, clipping real voltages; NUT widens
    them to 0..511. A ConfigActivePower (0x18) LogMax below 2048 clips the nominal power."""
    if vendor_id != VENDOR or product_id not in (0x0501, 0x0601):
        return desc
    hvt = find_by_id(desc, 0x10, "HighVoltageTransfer")
    out_v = find_by_id(desc, 0x12, "Voltage")
    if hvt and out_v:
        h, o = hvt[0], out_v[0]
        if (h.logical_min, h.logical_max) == (o.logical_min, o.logical_max):
            in_v = find_by_id(desc, 0x0F, "Voltage")
            limits = (h.logical_min, h.logical_max)
            fix_in = bool(in_v) and limits == (in_v[0].logical_min, in_v[0].logical_max)
            targets = {id(o)} | ({id(in_v[0])} if fix_in else set())
            desc = replace_limits(desc, lambda f: id(f) in targets, logical_min=0, logical_max=VOLTAGE_LOGMAX)
    power = find_by_id(desc, 0x18, "ConfigActivePower")
    if power and power[0].logical_max < NOMINAL_POWER_LOGMAX:
        target = power[0]
        desc = replace_limits(desc, lambda f: f is target, logical_max=NOMINAL_POWER_LOGMAX)
    return desc


SUBDRIVER = Subdriver(
    name="CyberPower HID",
    key="cps",
    version="0.85",
    ids=((VENDOR, 0x0005), (VENDOR, 0x0501), (VENDOR, 0x0601), (STMICRO, 0xA430)),
    rows=ROWS,
    cmds=CMDS,
    defaults={"pollfreq": "12", "ondelay": ONDELAY, "offdelay": OFFDELAY},
    fix=fix_descriptor,
    identity=lambda info: {} if info is None else {
        "ups.mfr": (info.manufacturer or "CPS").strip(), "ups.model": (info.product or "").strip(),
        "ups.serial": (info.serial or "").strip()},
)
