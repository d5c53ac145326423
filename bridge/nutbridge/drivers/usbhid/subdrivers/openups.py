"""Mini-Box openUPS (USB vendor 04d8, products d004 and d005) — NUT: "openUPS HID".

A DC UPS board for small computers. Everything sits under ``UPS.PowerSummary``; the
input/output voltages and currents are raw ADC counts the host scales per product
(d004: input x3.545, output x2.571, charge current x0.08274, discharge current x1.6113;
d005: x0.1 each), and the battery temperature is a thermistor reading turned into °C
through the manufacturer's calibration table (-40..125 °C in 5 °C steps, linear in between).
"""

from __future__ import annotations

import bisect

from ..table import (
    QUICK,
    STATIC,
    Ctx,
    Row,
    Subdriver,
    UsbIdentity,
    bits_row,
    status_row,
)

VENDOR = 0x04D8

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"

#: product -> (input voltage, output voltage, charge current, discharge current) scale
SCALES: dict[int, tuple[float, float, float, float]] = {
    0xD004: (0.03545 * 100, 0.02571 * 100, 0.8274 / 10, 16.113 / 10),
    0xD005: (0.1, 0.1, 0.1, 0.1),
}

#: thermistor readings (x100) at -40, -35, ... 125 °C
THERMISTOR = (
    0x031, 0x040, 0x053, 0x068, 0x082, 0x0A0, 0x0C3, 0x0E9, 0x113, 0x13F, 0x16E, 0x19F, 0x1CF, 0x200,
    0x22F, 0x25C, 0x286, 0x2AE, 0x2D3, 0x2F4, 0x312, 0x32D, 0x345, 0x35A, 0x36D, 0x37E, 0x38C, 0x399,
    0x3A5, 0x3AF, 0x3B7, 0x3BF, 0x3C6, 0x3CC,
)
T_MIN, T_STEP = -40, 5


def _scale(ctx: Ctx, which: int) -> float:
    return SCALES.get(ctx.product_id, (1.0, 1.0, 1.0, 1.0))[which] if ctx.vendor_id == VENDOR else 1.0


def input_voltage(value: float, ctx: Ctx) -> str | None:
    return f"{value * _scale(ctx, 0):.2f}"


def output_voltage(value: float, ctx: Ctx) -> str | None:
    return f"{value * _scale(ctx, 1):.2f}"


def input_current(value: float, ctx: Ctx) -> str | None:
    return f"{value * _scale(ctx, 2):.3f}"


def output_current(value: float, ctx: Ctx) -> str | None:
    return f"{value * _scale(ctx, 3):.3f}"


def temperature(value: float, ctx: Ctx) -> str | None:
    """Thermistor reading -> °C: whole degrees at a table point, else interpolated."""
    reading = int(value * 100)
    if reading <= THERMISTOR[0]:
        return str(T_MIN)
    if reading >= THERMISTOR[-1]:
        return str(T_MIN + T_STEP * (len(THERMISTOR) - 1))
    pos = bisect.bisect_right(THERMISTOR, reading) - 1
    low = T_MIN + T_STEP * pos
    if reading == THERMISTOR[pos]:
        return str(low)
    span = THERMISTOR[pos + 1] - THERMISTOR[pos]
    return f"{(reading - THERMISTOR[pos]) * T_STEP / span + low:.2f}"


ROWS: tuple[Row, ...] = (
    Row("ups.serial", (f"{PS}.iSerialNumber",), "%s", string_index=True),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", flags=STATIC, string_index=True),
    Row("battery.mfr.date", (f"{PS}.iOEMInformation",), "%s", flags=STATIC, string_index=True),
    Row("battery.voltage", (f"{PS}.Voltage",), "%.2f", flags=QUICK),
    Row("battery.current", (f"{PS}.Current",), "%.3f", flags=QUICK),
    Row("battery.capacity", (f"{PS}.DesignCapacity",), flags=STATIC),
    Row("battery.charge", (f"{PS}.RemainingCapacity",), flags=QUICK),
    Row("battery.charge.low", (f"{PS}.RemainingCapacityLimit",), flags=QUICK),
    Row("battery.charge.warning", (f"{PS}.WarningCapacityLimit",)),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",), flags=QUICK),
    Row("battery.temperature", (f"{PS}.Temperature",), temperature, flags=QUICK),
    Row("output.voltage", (f"{PS}.Output.Voltage",), output_voltage, flags=QUICK),
    Row("output.current", (f"{PS}.Output.Current",), output_current, flags=QUICK),
    Row("input.voltage", (f"{PS}.Input.Voltage",), input_voltage, flags=QUICK),
    Row("input.current", (f"{PS}.Input.Current",), input_current, flags=QUICK),
    status_row(f"{PST}.Good", "off", quick=True, invert=True),
    status_row(f"{PST}.InternalFailure", "commfault", quick=True),
    status_row(f"{PST}.Overload", "overload", quick=True),
    status_row(f"{PST}.OverTemperature", "overheat", quick=True),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm", quick=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    status_row(f"{PST}.RemainingTimeLimitExpired", "timelimitexp", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    # 0 is "not online" only (not "on battery"): Discharging says that
    bits_row(f"{PST}.ACPresent", {1: "online", 0: "!online"}, quick=True),
    status_row(f"{PST}.BatteryPresent", "nobattery", quick=True, invert=True),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "openUPS",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="openUPS HID",
    key="openups",
    version="0.50",
    ids=((VENDOR, 0xD004), (VENDOR, 0xD005)),
    rows=ROWS,
    identity=identity,
)
