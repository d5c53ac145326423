"""PowerCOM (USB vendor 0d9f) — NUT: "PowerCOM HID".

Two generations share the vendor ID:

* the current units (Raptor, Smart KING Pro, Vanguard, BNT ...AP, 0d9f:0004 and 00a2-00a6) use
  the standard PDC paths, with PowerCOM's own delay formats: ``DelayBeforeStartup`` holds
  minutes in a byte-swapped 16-bit word; ``DelayBeforeShutdown`` holds minutes in the high
  byte and seconds in the low byte, and on write bit 6 of the seconds byte asks the UPS to
  restart when mains returns (``shutdown.return``), bit 7 to stay off (``shutdown.stayoff``);
  0 seconds means "the longest delay", so it is written as 1. The newest firmware ("SKP"
  protocol, option ``powercom_sdcmd_discrete_delay``) takes delays only as an index into
  a fixed table (12 s .. 10 min) and the start-up delay in whole minutes. Option
  ``powercom_sdcmd_byte_order_fallback`` swaps the two delay bytes back, as NUT's
  subdrivers before 0.7 wrote them (bit 14 / bit 15 then carry the restart choice);
* the older units (0d9f:0001) put everything on the vendor page 0x0002
  (``PowercomUPS.PowercomPowerConverter...``): line voltages in 4 V steps, and two status
  bytes (``PowercomPrimaryBatterySupport``: bit 0 on battery, bit 1 low battery, bits 3-4
  trim/boost, bit 5 overload; ``PowercomInternalChargeController``: bit 0 UPS fault, bit 1
  replace battery, bit 2 self-test, bit 4 shutdown pending). NUT reads them from the
  interrupt pipe only (``interruptonly``, 8-byte reports), so do we by default.

The battery voltage of the current units is in no HID usage: the UPS answers a GET_REPORT
for Feature report 0xa4 with ASCII text (" 13.7 2"); it is read on every full poll while the
device has the PresentStatus block (as NUT does), and the last good reading is kept.

Intentional differences from NUT: the old units' "on battery" bit means on battery (OB) here;
NUT since 2.8.1 reads it as "not online" only, which gives no OL/OB at all. A UPS that never
answers report 0xa4 publishes no ``battery.voltage``, where NUT publishes "0.0". Delays
that are no number or out of range are refused (CONVERSION-FAILED); NUT writes 0 then.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...base import finite_number
from ..table import (
    DEFAULT_OFFDELAY,
    QUICK,
    STATIC,
    STRING,
    TEST_READ,
    Claim,
    Cmd,
    Ctx,
    Encoder,
    Flag,
    Row,
    Subdriver,
    UsbIdentity,
    cmds,
    pdc_date,
    status_row,
)

VENDOR = 0x0D9F

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
UST = "UPS.PresentStatus"
OLD = "PowercomUPS.PowercomPowerConverter"
OLD_OUT = f"{OLD}.PowercomOutput"

#: beeper as PowerCOM reports it (and writes it: enable 1, disable 0)
BEEPER = {1: "enabled", 2: "disabled"}

#: the SKP protocol's shutdown delays: index 1..18 -> the longest delay (seconds) it stands for
DISCRETE_DELAYS = (12, 18, 24, 30, 36, 42, 48, 54, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600)

BATTERY_REPORT = 0xA4
BATTERY_REPORT_LENGTH = 8

START_DEFAULT_MINUTES = 2
SHUTDOWN_DEFAULT_SECONDS = 60
RESTART_ON_MAINS = 0x0040   # in the seconds byte: restart when mains returns
STAY_OFF = 0x0080           # in the seconds byte: stay off


def _flag(options: Mapping[str, str], name: str) -> bool:
    value = options.get(name)
    return value is not None and value.strip().lower() not in ("no", "off", "false", "0")


def _swap16(value: int) -> int:
    return ((value & 0xFF) << 8) | ((value >> 8) & 0xFF)


# ---- reading ---------------------------------------------------------------------------------

def startup_timer(value: float, ctx: Ctx) -> str | None:
    """DelayBeforeStartup: minutes, byte-swapped -> seconds."""
    return str(60 * _swap16(int(value) & 0xFFFF))


def shutdown_timer(value: float, ctx: Ctx) -> str | None:
    """DelayBeforeShutdown: minutes in the high byte, seconds in the low one -> seconds."""
    word = int(value) & 0xFFFF
    high, low = word >> 8, word & 0xFF
    if _flag(ctx.options, "powercom_sdcmd_byte_order_fallback"):
        high, low = low, high
    return str(60 * high + low)


def line_voltage(value: float, ctx: Ctx) -> str | None:
    """The old units count line voltage in 4 V steps."""
    return f"{value * 4:.0f}"


def battery_voltage(value: float, ctx: Ctx) -> str | None:
    """Report 0xa4's text (" 13.7 2" after the ID byte): the first decimal number with a
    point; the last good one while the answer is missing or garbled."""
    data = ctx.reports.get(BATTERY_REPORT, b"")
    text = data[1:BATTERY_REPORT_LENGTH].decode("ascii", "replace")
    start = 0
    while start < len(text) and not (text[start].isdigit() or text[start] == "."):
        start += 1
    end = start
    while end < len(text) and (text[end].isdigit() or text[end] == "."):
        end += 1
    number = text[start:end]
    if number and "." in number:
        ctx.memo["battery_voltage"] = number
    last = ctx.memo.get("battery_voltage")
    return last if isinstance(last, str) else None


def _bit(path: str, mask: int, token: str, *, equal: int | None = None) -> Row:
    """A status row on one of the old units' status bytes: ``token`` while ``raw & mask``
    is set (with ``equal``: while ``raw & mask == equal``)."""
    want = mask if equal is None else equal

    def convert(value: float, ctx: Ctx) -> str:
        return token if int(value) & mask == want else f"!{token}"

    return Row("BOOL", (path,), convert, flags=QUICK)


def _on_battery(value: float, ctx: Ctx) -> str:
    return "offline" if int(value) & 0x01 else "online"


_SUPPORT = f"{OLD_OUT}.PowercomPrimaryBatterySupport"
_CHARGER = f"{OLD_OUT}.PowercomInternalChargeController"

ROWS: tuple[Row, ...] = (
    status_row(f"{PST}.ACPresent", "online"),
    status_row(f"{PST}.BatteryPresent", "nobattery", invert=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt"),
    status_row(f"{PST}.Charging", "chrg"),
    status_row(f"{PST}.CommunicationLost", "commfault"),
    status_row(f"{PST}.Discharging", "dischrg"),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    status_row(f"{PST}.Overload", "overload"),
    status_row(f"{PST}.RemainingTimeLimitExpired", "timelimitexp"),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm"),
    status_row(f"{UST}.ACPresent", "online"),
    status_row(f"{UST}.BatteryPresent", "nobattery", invert=True),
    status_row(f"{UST}.BelowRemainingCapacityLimit", "lowbatt"),
    status_row(f"{UST}.Boost", "boost"),
    status_row(f"{UST}.Buck", "trim"),
    status_row(f"{UST}.Charging", "chrg"),
    status_row(f"{UST}.CommunicationLost", "commfault"),
    status_row(f"{UST}.Discharging", "dischrg"),
    status_row(f"{UST}.NeedReplacement", "replacebatt"),
    status_row(f"{UST}.Overload", "overload"),
    status_row(f"{UST}.RemainingTimeLimitExpired", "timelimitexp"),
    status_row(f"{UST}.ShutdownImminent", "shutdownimm"),
    # no HID usage for it: report 0xa4, read while the PresentStatus block exists
    Row("battery.voltage", (f"{PST}.ACPresent",), battery_voltage),
    Row("battery.charge", (f"{PS}.RemainingCapacity", "UPS.Battery.RemainingCapacity")),
    Row("battery.charge.low", (f"{PS}.RemainingCapacityLimit",)),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",)),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    Row("battery.mfr.date", ("UPS.Battery.ManufacturerDate",), pdc_date, flags=STATIC),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", flags=STATIC, string_index=True),
    Row("ups.beeper.status", (f"{PS}.AudibleAlarmControl", "UPS.AudibleAlarmControl"), "%s", BEEPER),
    Row("ups.load", ("UPS.Output.PercentLoad",)),
    Row("ups.date", (f"{PS}.ManufacturerDate",), pdc_date, flags=STATIC),
    Row("ups.test.result", ("UPS.Battery.Test",), "%s", TEST_READ),
    Row("ups.delay.start", (f"{PS}.DelayBeforeStartup",), flags=Flag.ABSENT | Flag.RW | STRING,
        default="60", option="ondelay", length=8),
    Row("ups.timer.start", (f"{PS}.DelayBeforeStartup",), startup_timer),
    Row("ups.delay.shutdown", (f"{PS}.DelayBeforeShutdown", f"{PS}.PCMDelayBeforeShutdown"),
        flags=Flag.ABSENT | Flag.RW | STRING, default=DEFAULT_OFFDELAY, option="offdelay", length=8),
    Row("ups.timer.shutdown", (f"{PS}.DelayBeforeShutdown", f"{PS}.PCMDelayBeforeShutdown"), shutdown_timer,
        flags=QUICK),
    Row("input.voltage", ("UPS.Input.Voltage",), "%.1f"),
    Row("input.voltage.nominal", ("UPS.Input.ConfigVoltage",), flags=STATIC),
    Row("input.frequency", ("UPS.Input.Frequency",), "%.1f"),
    Row("output.voltage", ("UPS.Output.Voltage",), "%.1f"),
    Row("output.voltage.nominal", ("UPS.Output.ConfigVoltage",), flags=STATIC),
    Row("output.frequency", ("UPS.Output.Frequency",), "%.1f"),
    # the older units, vendor page 0x0002
    Row("ups.serial", ("PowercomUPS.PowercomSerialNumber",), "%s", string_index=True),
    Row("ups.mfr", ("PowercomUPS.PowercomManufacturerName",), "%s", string_index=True),
    Row("ups.mfr.date", ("PowercomUPS.PowercomManufacturerDate",), pdc_date),
    Row("battery.temperature", ("PowercomUPS.PowercomBatterySystem.PowercomTemperature",)),
    Row("battery.temperature", ("UPS.Battery.Temperature",), "%.1f"),
    Row("battery.charge", ("PowercomUPS.PowercomBatterySystem.PowercomVoltage",)),
    Row("input.frequency", (f"{OLD}.PowercomInput.PowercomFrequency",)),
    Row("input.voltage", (f"{OLD}.PowercomInput.PowercomVoltage",), line_voltage),
    Row("output.voltage", (f"{OLD_OUT}.PowercomVoltage",), line_voltage),
    Row("ups.load", (f"{OLD_OUT}.PowercomPercentLoad",)),
    _bit(_CHARGER, 0x01, "fanfail"),
    _bit(_CHARGER, 0x02, "replacebatt"),
    _bit(_CHARGER, 0x04, "cal"),
    _bit(_CHARGER, 0x10, "shutdownimm"),
    Row("BOOL", (_SUPPORT,), _on_battery, flags=QUICK),
    _bit(_SUPPORT, 0x02, "lowbatt"),
    _bit(_SUPPORT, 0x18, "trim", equal=0x08),
    _bit(_SUPPORT, 0x18, "boost", equal=0x18),
    _bit(_SUPPORT, 0x20, "overload"),
    Row("output.frequency", (f"{OLD_OUT}.PowercomFrequency",)),
    Row("ups.test.result", (f"{OLD}.PowercomTest",), "%s", TEST_READ),
    Row("ups.delay.shutdown", (f"{OLD}.PowercomDelayBeforeShutdown",)),
    Row("ups.delay.start", (f"{OLD}.PowercomDelayBeforeStartup",)),
)


# ---- writing ---------------------------------------------------------------------------------

def _seconds(param: str | None, ctx: Ctx, current: Mapping[str, str], option: str, var: str,
             default: int) -> int | None:
    """The delay to use: the command's parameter, else ups.conf's option, else the published
    variable, else the default (NUT's order); None when the chosen text is no number."""
    for text in (param, ctx.options.get(option), current.get(var)):
        if text is not None and text.strip():
            value = finite_number(text)
            return None if value is None else int(value)
    return default


def start_delay(param: str | None, ctx: Ctx, current: Mapping[str, str]) -> float | None:
    """``load.on.delay``/``load.on``: whole minutes, byte-swapped (SKP protocol: as is)."""
    seconds = _seconds(param, ctx, current, "ondelay", "ups.delay.start", 60 * START_DEFAULT_MINUTES)
    if seconds is None or not 0 <= seconds < 60 * 0x10000:
        return None
    minutes = seconds // 60
    if _flag(ctx.options, "powercom_sdcmd_discrete_delay"):
        return float(minutes)
    return float(_swap16(minutes & 0xFFFF))


def _shutdown_word(seconds: int, ctx: Ctx, restart_bit: int) -> float:
    """Minutes and seconds in the two bytes of the word, the restart choice in the seconds one."""
    seconds = seconds or 1  # 0 would mean the longest delay
    minutes, rest = divmod(seconds, 60)
    if _flag(ctx.options, "powercom_sdcmd_byte_order_fallback"):
        return float(((rest << 8) + minutes) | (restart_bit << 8))
    return float(((minutes << 8) + rest) | restart_bit)


def shutdown_return(param: str | None, ctx: Ctx, current: Mapping[str, str]) -> float | None:
    """Off after the delay, back on with mains (SKP protocol: the delay table's index)."""
    seconds = _seconds(param, ctx, current, "offdelay", "ups.delay.shutdown", SHUTDOWN_DEFAULT_SECONDS)
    if seconds is None or not 0 <= seconds <= 0xFFFF:
        return None
    if _flag(ctx.options, "powercom_sdcmd_discrete_delay"):
        return float(next((i for i, top in enumerate(DISCRETE_DELAYS, 1) if seconds <= top),
                          len(DISCRETE_DELAYS)))
    return _shutdown_word(seconds, ctx, RESTART_ON_MAINS)


def shutdown_stayoff(param: str | None, ctx: Ctx, current: Mapping[str, str]) -> float | None:
    """Off after the delay, and stay off."""
    seconds = _seconds(param, ctx, current, "offdelay", "ups.delay.shutdown", SHUTDOWN_DEFAULT_SECONDS)
    if seconds is None or not 0 <= seconds <= 0xFFFF:
        return None
    return _shutdown_word(seconds, ctx, STAY_OFF)


def _now(encode: Encoder) -> Encoder:
    """The same encoder with "0" in place of a missing parameter (``load.on``/``load.off``)."""
    def encoder(param: str | None, ctx: Ctx, current: Mapping[str, str]) -> float | None:
        return encode(param or "0", ctx, current)
    return encoder


_START = f"{PS}.DelayBeforeStartup"
_OFF = f"{PS}.DelayBeforeShutdown"
_PCM_START = f"{PS}.PCMDelayBeforeStartup"
_PCM_OFF = f"{PS}.PCMDelayBeforeShutdown"

CMDS = (
    cmds("beeper.toggle", f"{PS}.AudibleAlarmControl", 1),
    cmds("beeper.enable", f"{PS}.AudibleAlarmControl", 1),
    cmds("beeper.disable", f"{PS}.AudibleAlarmControl", 0),
    cmds("test.battery.start.quick", "UPS.Battery.Test", 1),
    Cmd("load.on.delay", (_START,), 0, start_delay),
    Cmd("shutdown.return", (_OFF, _PCM_OFF), 0, shutdown_return),
    Cmd("shutdown.stayoff", (_OFF, _PCM_OFF), 0, shutdown_stayoff),
    Cmd("load.on", (_PCM_START,), 0, _now(start_delay)),
    Cmd("load.off", (_PCM_OFF,), 0, _now(shutdown_stayoff)),
    cmds("load.off", f"{OLD}.PowercomDelayBeforeShutdown", 0),
)


def claim(c: Claim) -> bool:
    """NUT's powercom_claim: the usual rule, but 0d9f:0002 (a serial-protocol unit for the
    ``powercom`` driver) never."""
    if (c.vendor_id, c.product_id) == (VENDOR, 0x0002):
        return False
    return c.listed or c.productid_option


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "PowerCOM",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="PowerCOM HID",
    key="powercom",
    version="0.75",
    ids=tuple((VENDOR, pid) for pid in (0x00A2, 0x00A3, 0x00A4, 0x00A5, 0x00A6, 0x0004, 0x0001)),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
    claim=claim,
    product_defaults={0x0001: {"interruptonly": "", "interruptsize": "8"}},
    extra_reports=(("Feature", BATTERY_REPORT, BATTERY_REPORT_LENGTH, f"{PST}.ACPresent"),),
)
