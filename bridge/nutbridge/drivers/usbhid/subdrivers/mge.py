"""Eaton / MGE Office Protection Systems (USB vendor 0463) and OEM twins (Dell 047c,
Powerware 0592, HP 03f0:1fe5-1fe8, AEG 2b2d, Phoenixtec 06da, IBM 04b3, KSTAR 09d6) —
NUT: "MGE HID".

Claim rule (NUT's mge_claim): Phoenixtec's 06da:ffff is taken only when a USB string
names AEG (PROTECT NAS), the rest goes to the Phoenixtec/Liebert subdriver; 09d6 only
when the manufacturer string says KSTAR; HP, Dell and Eaton products not listed only
with ups.conf's ``productid``.

MGE descriptors use vendor-type collections, so paths carry index nodes:
UPS.PowerConverter.Input.[1] is the mains input, [2] the bypass input, [3] the
battery "input", [4] manual bypass; UPS.Flow.[1]/[4] are the input/output ratings.
The vendor page 0xFFFF supplies names such as RemainingCapacityLimitSetting,
AutomaticRestart, StartOnBattery, SensitivityMode (usages.names_for("mge")).

Not carried over from NUT (model-type specific): ABM charger state machine,
ups.date/ups.time from UPS.PowerSummary.Time, outlet protection/ECO status,
battery.voltage hidden on some model families, the eco/ESS mode commands.
"""

from __future__ import annotations

from ..table import (
    BEEPER,
    DEFAULT_OFFDELAY,
    DEFAULT_ONDELAY,
    ON_OFF,
    QUICK,
    STATIC,
    TEST_READ,
    YES_NO,
    Claim,
    Cmd,
    Ctx,
    Row,
    Subdriver,
    UsbIdentity,
    absent_row,
    bits_row,
    cmds,
    kelvin_to_celsius,
    rw_row,
    status_row,
)

VENDOR = 0x0463
PHOENIXTEC = 0x06DA
KSTAR = 0x09D6

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
IN1 = "UPS.PowerConverter.Input.[1]"
OUT = "UPS.PowerConverter.Output"

SENSITIVITY = {0: "normal", 1: "high", 2: "low"}
ENABLE = {0: "disabled", 1: "enabled"}
UPS_TYPE = {1: "offline / line interactive", 2: "online", 3: "online - unitary/parallel",
            4: "online - parallel with hot standy", 5: "online - hot standby redundancy"}


def _outlet_rows(n: int) -> list[Row]:
    """PowerShare outlet group n (UPS.OutletSystem.Outlet.[n+1])."""
    base, var = f"UPS.OutletSystem.Outlet.[{n + 1}]", f"outlet.{n}"
    return [
        Row(f"{var}.id", (f"{base}.OutletID",), flags=STATIC),
        absent_row(f"{var}.desc", f"{base}.OutletID", f"PowerShare Outlet {n}", f"{var}.desc"),
        Row(f"{var}.switchable", (f"{base}.PresentStatus.Switchable",), "%s", YES_NO, flags=STATIC),
        Row(f"{var}.status", (f"{base}.PresentStatus.SwitchOn/Off", f"{PST}.ACPresent"), "%s", ON_OFF),
        rw_row(f"{var}.autoswitch.charge.low", f"{base}.RemainingCapacityLimit", length=3),
        rw_row(f"{var}.delay.shutdown", f"{base}.ShutdownTimer", length=5),
        rw_row(f"{var}.delay.start", f"{base}.StartupTimer", length=5),
        Row(f"{var}.power", (f"{base}.ApparentPower",)),
        Row(f"{var}.realpower", (f"{base}.ActivePower",)),
        Row(f"{var}.current", (f"{base}.Current",), "%.2f"),
        Row(f"{var}.powerfactor", (f"{base}.PowerFactor",), "%.2f"),
    ]


def _outlet_cmds(n: int) -> list[Cmd]:
    base = f"UPS.OutletSystem.Outlet.[{n + 1}]"
    return [cmds(f"outlet.{n}.load.off", f"{base}.DelayBeforeShutdown", 0),
            cmds(f"outlet.{n}.load.on", f"{base}.DelayBeforeStartup", 0)]


def battery_capacity(value: float, ctx: Ctx) -> str | None:
    """DesignCapacity is in As (ampere-seconds); NUT publishes Ah."""
    return f"{value / 3600:.2f}"


def power_factor(value: float, ctx: Ctx) -> str | None:
    return f"{value / 100:.2f}"


ROWS: tuple[Row, ...] = (
    Row("battery.charge", (f"{PS}.RemainingCapacity",)),
    rw_row("battery.charge.low", f"{PS}.RemainingCapacityLimitSetting", length=5),
    Row("battery.charge.low", (f"{PS}.RemainingCapacityLimit",), flags=STATIC),
    rw_row("battery.charge.restart", f"{PS}.RestartLevel", length=3),
    Row("battery.capacity", ("UPS.BatterySystem.Battery.DesignCapacity",), battery_capacity, flags=STATIC),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    rw_row("battery.runtime.low", f"{PS}.RemainingTimeLimit"),
    Row("battery.temperature", ("UPS.BatterySystem.Battery.Temperature",), kelvin_to_celsius),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", flags=STATIC, string_index=True),
    Row("battery.voltage", ("UPS.BatterySystem.Voltage", f"{PS}.Voltage"), "%.1f"),
    Row("battery.voltage.nominal", ("UPS.BatterySystem.ConfigVoltage", f"{PS}.ConfigVoltage"), flags=STATIC),
    rw_row("battery.protection", "UPS.BatterySystem.Battery.DeepDischargeProtection", "%s", lookup=YES_NO),
    rw_row("battery.energysave", "UPS.PowerConverter.Input.[3].EnergySaving", "%s", lookup=YES_NO),
    Row("ups.efficiency", (f"{OUT}.Efficiency",)),
    Row("ups.firmware", (f"{PS}.iVersion",), "%s", flags=STATIC, string_index=True),
    Row("ups.load", (f"{PS}.PercentLoad",)),
    rw_row("ups.load.high", "UPS.Flow.[4].ConfigPercentLoad", length=5),
    absent_row("ups.delay.start", f"{PS}.DelayBeforeStartup", DEFAULT_ONDELAY, "ondelay"),
    absent_row("ups.delay.shutdown", f"{PS}.DelayBeforeShutdown", DEFAULT_OFFDELAY, "offdelay"),
    Row("ups.timer.start", (f"{PS}.DelayBeforeStartup",), flags=QUICK),
    Row("ups.timer.shutdown", (f"{PS}.DelayBeforeShutdown",), flags=QUICK),
    Row("ups.timer.reboot", (f"{PS}.DelayBeforeReboot",), flags=QUICK),
    Row("ups.test.result", ("UPS.BatterySystem.Battery.Test",), "%s", TEST_READ),
    rw_row("ups.test.interval", "UPS.BatterySystem.Battery.TestPeriod", length=8),
    Row("ups.beeper.status", ("UPS.BatterySystem.Battery.AudibleAlarmControl", f"{PS}.AudibleAlarmControl",
                              "UPS.AudibleAlarmControl"), "%s", BEEPER),
    Row("ups.temperature", (f"{PS}.Temperature",), kelvin_to_celsius),
    Row("ups.power", (f"{OUT}.ApparentPower",)),
    Row("ups.power.nominal", ("UPS.Flow.[4].ConfigApparentPower",), flags=STATIC),
    Row("ups.realpower", (f"{OUT}.ActivePower",)),
    Row("ups.realpower.nominal", ("UPS.Flow.[4].ConfigActivePower",), flags=STATIC),
    rw_row("ups.start.auto", f"{IN1}.AutomaticRestart", "%s", lookup=YES_NO),
    rw_row("ups.start.battery", "UPS.PowerConverter.Input.[3].StartOnBattery", "%s", lookup=YES_NO),
    rw_row("ups.start.reboot", f"{OUT}.ForcedReboot", "%s", lookup=YES_NO),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    # the battery "input" [3] in use means not on line; the mains input [1] in use means on line
    bits_row("UPS.PowerConverter.Input.[3].PresentStatus.Used", {1: "!online", 0: "online"}),
    bits_row(f"{IN1}.PresentStatus.Used", {1: "online", 0: "offline"}),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    status_row(f"{OUT}.Overload.[1].PresentStatus.OverThreshold", "overload"),
    status_row(f"{PST}.Overload", "overload"),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    status_row(f"{IN1}.PresentStatus.Buck", "trim"),
    status_row(f"{IN1}.PresentStatus.Boost", "boost"),
    status_row(f"{IN1}.PresentStatus.VoltageOutOfRange", "vrange"),
    status_row(f"{IN1}.PresentStatus.FrequencyOutOfRange", "frange"),
    status_row(f"{PST}.Good", "off", invert=True),
    status_row("UPS.PowerConverter.Input.[2].PresentStatus.Used", "bypassauto"),
    status_row("UPS.PowerConverter.Input.[4].PresentStatus.Used", "bypassman"),
    status_row(f"{PST}.FanFailure", "fanfail"),
    status_row("UPS.BatterySystem.Battery.PresentStatus.Present", "nobattery", invert=True),
    status_row("UPS.BatterySystem.Charger.PresentStatus.InternalFailure", "chargerfail"),
    status_row("UPS.BatterySystem.Charger.PresentStatus.VoltageTooHigh", "battvolthi"),
    status_row("UPS.BatterySystem.Battery.PresentStatus.VoltageTooHigh", "battvolthi"),
    status_row("UPS.BatterySystem.Charger.PresentStatus.VoltageTooLow", "battvoltlo"),
    status_row(f"{PST}.InternalFailure", "commfault"),
    status_row(f"{PST}.OverTemperature", "overheat"),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm"),
    Row("input.voltage", (f"{IN1}.Voltage",), "%.1f"),
    Row("input.voltage.nominal", ("UPS.Flow.[1].ConfigVoltage",), flags=STATIC),
    Row("input.current", (f"{IN1}.Current",), "%.2f"),
    Row("input.current.nominal", ("UPS.Flow.[1].ConfigCurrent",), "%.2f", flags=STATIC),
    Row("input.frequency", (f"{IN1}.Frequency",), "%.1f"),
    Row("input.frequency.nominal", ("UPS.Flow.[1].ConfigFrequency",), flags=STATIC),
    rw_row("input.transfer.low", f"{OUT}.LowVoltageTransfer", length=5),
    rw_row("input.transfer.high", f"{OUT}.HighVoltageTransfer", length=5),
    rw_row("input.transfer.boost.low", f"{OUT}.LowVoltageBoostTransfer", length=5),
    rw_row("input.transfer.boost.high", f"{OUT}.HighVoltageBoostTransfer", length=5),
    rw_row("input.transfer.trim.low", f"{OUT}.LowVoltageBuckTransfer", length=5),
    rw_row("input.transfer.trim.high", f"{OUT}.HighVoltageBuckTransfer", length=5),
    rw_row("input.sensitivity", f"{OUT}.SensitivityMode", "%s", lookup=SENSITIVITY),
    rw_row("input.voltage.extended", f"{OUT}.ExtendedVoltageMode", "%s", lookup=YES_NO),
    rw_row("input.frequency.extended", f"{OUT}.ExtendedFrequencyMode", "%s", lookup=YES_NO),
    Row("input.bypass.voltage", ("UPS.PowerConverter.Input.[2].Voltage",), "%.1f", flags=QUICK),
    Row("input.bypass.frequency", ("UPS.PowerConverter.Input.[2].Frequency",), "%.1f", flags=QUICK),
    Row("output.voltage", (f"{OUT}.Voltage",), "%.1f"),
    Row("output.voltage.nominal", ("UPS.Flow.[4].ConfigVoltage",)),
    Row("output.current", (f"{OUT}.Current",), "%.2f"),
    Row("output.current.nominal", ("UPS.Flow.[4].ConfigCurrent",), "%.2f"),
    Row("output.frequency", (f"{OUT}.Frequency",), "%.1f"),
    Row("output.frequency.nominal", ("UPS.Flow.[4].ConfigFrequency",), flags=STATIC),
    Row("output.powerfactor", (f"{OUT}.PowerFactor",), power_factor),
    Row("outlet.id", ("UPS.OutletSystem.Outlet.[1].OutletID",), flags=STATIC),
    absent_row("outlet.desc", "UPS.OutletSystem.Outlet.[1].OutletID", "Main Outlet", "outlet.desc"),
    Row("outlet.switchable", ("UPS.OutletSystem.Outlet.[1].PresentStatus.Switchable",), "%s", YES_NO,
        flags=STATIC),
    Row("outlet.power", ("UPS.OutletSystem.Outlet.[1].ApparentPower",)),
    Row("outlet.realpower", ("UPS.OutletSystem.Outlet.[1].ActivePower",)),
    Row("outlet.current", ("UPS.OutletSystem.Outlet.[1].Current",), "%.2f"),
    Row("outlet.powerfactor", ("UPS.OutletSystem.Outlet.[1].PowerFactor",), "%.2f"),
    *_outlet_rows(1),
    *_outlet_rows(2),
    Row("ups.type", ("UPS.PowerConverter.ConverterType",), "%s", UPS_TYPE, flags=STATIC),
    rw_row("ups.shutdown", f"{PST}.Switchable", "%s", lookup=ENABLE, enum=True),
)

_BEEP = ("UPS.BatterySystem.Battery.AudibleAlarmControl", f"{PS}.AudibleAlarmControl",
         "UPS.AudibleAlarmControl")
_TEST = "UPS.BatterySystem.Battery.Test"
CMDS = (
    cmds("test.battery.start.quick", _TEST, 1),
    cmds("test.battery.start.deep", _TEST, 2),
    cmds("test.battery.stop", _TEST, 3),
    cmds("load.off.delay", f"{PS}.DelayBeforeShutdown", int(DEFAULT_OFFDELAY)),
    cmds("load.on.delay", f"{PS}.DelayBeforeStartup", int(DEFAULT_ONDELAY)),
    cmds("shutdown.stop", f"{PS}.DelayBeforeShutdown", -1),
    cmds("shutdown.reboot", f"{PS}.DelayBeforeReboot", 10),
    cmds("beeper.off", f"{PS}.AudibleAlarmControl", 1),
    cmds("beeper.on", f"{PS}.AudibleAlarmControl", 2),
    cmds("beeper.mute", _BEEP[:2], 3),
    cmds("beeper.disable", _BEEP, 1),
    cmds("beeper.enable", _BEEP, 2),
    cmds("bypass.start", "UPS.PowerConverter.Input.[2].SwitchOnControl", 1),
    cmds("bypass.stop", "UPS.PowerConverter.Input.[2].SwitchOffControl", 1),
    *_outlet_cmds(1),
    *_outlet_cmds(2),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "Eaton").strip(), "ups.model": (info.product or "").strip(),
            "ups.serial": (info.serial or "").strip()}


def claim(c: Claim) -> bool:
    """NUT's mge_claim (see the module docstring)."""
    if c.vendor_id == PHOENIXTEC:
        return any("AEG" in (text or "") for text in (c.manufacturer, c.product))
    if c.vendor_id == KSTAR:
        return "KSTAR" in (c.manufacturer or "")
    return c.listed or c.productid_option


SUBDRIVER = Subdriver(
    name="MGE HID",
    key="mge",
    version="1.59",
    ids=((VENDOR, 0x0001), (VENDOR, 0xFFFF), (0x047C, 0xFFFF), (0x0592, 0x0004), (0x03F0, 0x1FE5),
         (0x03F0, 0x1FE6), (0x03F0, 0x1FE7), (0x03F0, 0x1FE8), (0x2B2D, 0xFFFF), (0x06DA, 0xFFFF),
         (0x04B3, 0x0001), (0x09D6, 0x0001)),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
    claim=claim,
)
