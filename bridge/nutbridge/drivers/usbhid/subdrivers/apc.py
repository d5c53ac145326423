"""APC (USB vendor 051d) — Back-UPS, Back-UPS Pro, Smart-UPS (NUT: "APC HID").

Paths follow the HID PDC usage tables plus APC's vendor page 0xFF86
(APCGeneralCollection, APCStatusFlag, APCLineFailCause, APCSensitivity,
APCPanelTest, APCDelayBefore*, APCBattReplaceDate). Alternative rows exist for
the model families that place the same usage elsewhere (e.g. Back-UPS 500 puts
the status booleans directly under UPS.PowerSummary).
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
    Ctx,
    Row,
    Subdriver,
    UsbIdentity,
    absent_row,
    beeper_cmds,
    bits_row,
    cmds,
    find_by_id,
    kelvin_to_celsius,
    pdc_date,
    pdc_date_raw,
    replace_limits,
    rw_row,
    split_firmware,
    status_row,
)

VENDOR = 0x051D

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
GEN = "UPS.APCGeneralCollection"


def apc_date(value: float, ctx: Ctx) -> str | None:
    """APC's hex-as-decimal dates: 0x102202 = 2002/10/22 (MMDDYY nibbles)."""
    v = int(value)
    if v == 0:
        return "not set"

    def two(shift: int) -> int:
        return ((v >> (shift + 4)) & 0xF) * 10 + ((v >> shift) & 0xF)

    year, month, day = two(0), two(16), two(8)
    year += 1900 if year >= 70 else 2000
    return f"{year:04d}/{month:02d}/{day:02d}"


def _delays(prefix: str, names: tuple[str, str, str]) -> list[Row]:
    start, shutdown, reboot = (f"{prefix}.{n}" for n in names)
    return [
        absent_row("ups.delay.start", start, DEFAULT_ONDELAY, "ondelay"),
        absent_row("ups.delay.shutdown", shutdown, DEFAULT_OFFDELAY, "offdelay"),
        Row("ups.timer.start", (start,), flags=QUICK),
        Row("ups.timer.shutdown", (shutdown,), flags=QUICK),
        Row("ups.timer.reboot", (reboot,), flags=QUICK),
    ]


_STD_DELAYS = ("DelayBeforeStartup", "DelayBeforeShutdown", "DelayBeforeReboot")
_APC_DELAYS = ("APCDelayBeforeStartup", "APCDelayBeforeShutdown", "APCDelayBeforeReboot")

ROWS: tuple[Row, ...] = (
    Row("battery.charge", (f"{PS}.RemainingCapacity",)),
    rw_row("battery.charge.low", f"{PS}.RemainingCapacityLimit"),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",)),
    Row("battery.runtime", ("UPS.Battery.RunTimeToEmpty", f"{PS}.RunTimeToEmpty")),
    rw_row("battery.runtime.low", ("UPS.Battery.RemainingTimeLimit", f"{PS}.RemainingTimeLimit")),
    Row("battery.voltage", ("UPS.Battery.Voltage", f"{PS}.Voltage"), "%.1f"),
    Row("battery.voltage.nominal", ("UPS.Battery.ConfigVoltage", f"{PS}.ConfigVoltage"), "%.1f"),
    Row("battery.temperature", ("UPS.Battery.Temperature",), kelvin_to_celsius),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", string_index=True),
    Row("battery.mfr.date", ("UPS.Battery.ManufacturerDate",), pdc_date, flags=RW | STRING | SEMI,
        length=10, to_raw=pdc_date_raw),
    Row("battery.mfr.date", (f"{PS}.APCBattReplaceDate",), apc_date),
    Row("battery.date", ("UPS.Battery.APCBattReplaceDate",), apc_date),
    Row("ups.load", ("UPS.Output.PercentLoad",), "%.1f"),
    Row("ups.load", ("UPS.PowerConverter.PercentLoad",)),
    *_delays(PS, _STD_DELAYS),
    *_delays("UPS.Output", _STD_DELAYS),
    *_delays(GEN, _APC_DELAYS),
    Row("ups.test.result", ("UPS.Battery.Test",), "%s", TEST_READ),
    Row("ups.beeper.status", (f"{PS}.AudibleAlarmControl",), "%s", BEEPER),
    Row("ups.mfr.date", ("UPS.ManufacturerDate", f"{PS}.ManufacturerDate"), pdc_date),
    Row("ups.realpower.nominal", ("UPS.PowerConverter.ConfigActivePower", "UPS.Output.ConfigActivePower")),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm"),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    status_row(f"{PST}.Overload", "overload"),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    status_row(f"{PST}.RemainingTimeLimitExpired", "timelimitexp"),
    status_row(f"{PST}.BatteryPresent", "nobattery", invert=True),
    # Back-UPS 500 family: the same booleans directly under PowerSummary
    status_row(f"{PS}.Charging", "chrg", quick=True),
    status_row(f"{PS}.Discharging", "dischrg", quick=True),
    status_row(f"{PS}.ACPresent", "online", quick=True),
    status_row(f"{PS}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    status_row(f"{PS}.ShutdownImminent", "shutdownimm"),
    # Back-UPS LS 500: 8 and 16 = normal operation, 0 = off
    bits_row(f"{PS}.APCStatusFlag", {8: "!off", 16: "!off", 0: "off"}, quick=True),
    # why the last transfer happened: voltage causes vs. frequency (7)
    bits_row("UPS.Input.APCLineFailCause", {1: "vrange", 2: "vrange", 4: "vrange", 8: "vrange", 9: "vrange",
                                            0: "!vrange"}),
    bits_row("UPS.Input.APCLineFailCause", {7: "frange", 0: "!frange"}),
    Row("input.voltage", ("UPS.Input.Voltage",), "%.1f"),
    Row("input.voltage.nominal", ("UPS.Input.ConfigVoltage",)),
    rw_row("input.transfer.low", ("UPS.Output.LowVoltageTransfer", "UPS.Input.LowVoltageTransfer")),
    rw_row("input.transfer.high", ("UPS.Output.HighVoltageTransfer", "UPS.Input.HighVoltageTransfer")),
    rw_row("input.sensitivity", "UPS.Input.APCSensitivity", "%s", lookup={0: "low", 1: "medium", 2: "high"}),
    Row("output.voltage", ("UPS.Output.Voltage",), "%.1f"),
    Row("output.voltage.nominal", ("UPS.Output.ConfigVoltage",), "%.1f"),
    Row("output.current", ("UPS.Output.Current",), "%.2f"),
    Row("output.frequency", ("UPS.Output.Frequency",), "%.1f"),
    Row("ambient.temperature", ("UPS.APCEnvironment.APCProbe1.Temperature",), kelvin_to_celsius),
    Row("ambient.humidity", ("UPS.APCEnvironment.APCProbe1.Humidity",), "%.1f"),
)

_TEST = ("UPS.BatterySystem.Battery.Test", "UPS.Battery.Test")
_DELAY_PATHS = {
    name: (f"{PS}.{std}", f"UPS.Output.{std}", f"{GEN}.{apc}")
    for name, std, apc in (("start", "DelayBeforeStartup", "APCDelayBeforeStartup"),
                           ("shutdown", "DelayBeforeShutdown", "APCDelayBeforeShutdown"),
                           ("reboot", "DelayBeforeReboot", "APCDelayBeforeReboot"))
}
_ALARM = f"{PS}.AudibleAlarmControl"

CMDS = (
    cmds("test.battery.start.quick", _TEST, 1),
    cmds("test.battery.start.deep", _TEST, 2),
    cmds("test.battery.stop", _TEST, 3),
    cmds("test.panel.start", ("UPS.APCPanelTest", f"{PS}.APCPanelTest"), 1),
    cmds("test.panel.stop", ("UPS.APCPanelTest", f"{PS}.APCPanelTest"), 0),
    cmds("load.off.delay", _DELAY_PATHS["shutdown"], int(DEFAULT_OFFDELAY)),
    cmds("load.on.delay", _DELAY_PATHS["start"], int(DEFAULT_ONDELAY)),
    cmds("shutdown.stop", _DELAY_PATHS["shutdown"], -1),
    cmds("shutdown.reboot", _DELAY_PATHS["reboot"], 10),
    # some Smart-UPS: one usage that both shuts down and restarts on mains return
    cmds("shutdown.return", "UPS.Output.APCDelayBeforeReboot", 1),
    *beeper_cmds(_ALARM),
)


def fix_descriptor(desc: ReportDescriptor, vendor_id: int, product_id: int) -> ReportDescriptor:
    """Back-UPS (051d:0002) in 220-240 V regions declare an input voltage LogMax below the
    high transfer voltage: widen input Voltage (report 0x31) to 0..2*HVT and the nominal
    ConfigVoltage (0x30, one byte) to 255, as NUT does."""
    if (vendor_id, product_id) != (VENDOR, 0x0002):
        return desc
    hvts = find_by_id(desc, 0x33, "HighVoltageTransfer")
    if not hvts:
        return desc
    hvt_max = hvts[0].logical_max
    volt = find_by_id(desc, 0x31, "Voltage")
    if volt and hvt_max > volt[0].logical_max:
        target = volt[0]
        desc = replace_limits(desc, lambda f: f is target, logical_min=0, logical_max=hvt_max * 2)
    conf = find_by_id(desc, 0x30, "ConfigVoltage")
    if conf and hvt_max > conf[0].logical_max:
        target2 = conf[0]
        desc = replace_limits(desc, lambda f: f is target2, logical_max=255)
    return desc


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    out = split_firmware(info.product)
    out["ups.mfr"] = (info.manufacturer or "APC").strip()
    out["ups.serial"] = (info.serial or "").strip()
    return out


SUBDRIVER = Subdriver(
    name="APC HID",
    key="apc",
    version="0.101",
    ids=((VENDOR, 0x0000), (VENDOR, 0x0002), (VENDOR, 0x0003), (VENDOR, 0x0004), (VENDOR, 0x0005)),
    rows=ROWS,
    cmds=CMDS,
    fix=fix_descriptor,
    identity=identity,
    # 5G Smart-UPS (0003) and SMT firmware 04.3+ (0004): NUT disables the interrupt pipe
    product_defaults={0x0003: {"pollonly": ""}, 0x0004: {"pollonly": ""}},
)
