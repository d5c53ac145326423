"""iDowell (USB vendor 075d, product 0300) and GoldenMate LiFePO4 packs on Phoenixtec's
06da:ffff — NUT: "iDowell HID".

A battery management board (firmware strings "-BMS-" / "Smart-Battery") with the standard
``UPS.PowerSummary`` paths and MGE-style ``UPS.Flow.[4]`` ratings; device.mfr/model/serial
come from the string usages of the PowerSummary. On 06da:ffff only devices whose USB strings
name that firmware are taken (the Phoenixtec/Liebert and MGE subdrivers share the ID).

Descriptor fix (NUT's idowell_fix_report_desc): the firmware writes the 4-byte Logical
Maximum of report 0x02's RunTimeToEmpty byte-swapped, and the following Voltage inherits it;
when such a maximum is below the minimum it is replaced by what the same usages declare in
report 0x01 (0x75FFFFFF and 65535).
"""

from __future__ import annotations

from ..descriptor import ReportDescriptor
from ..table import (
    DEFAULT_OFFDELAY,
    DEFAULT_ONDELAY,
    PREFER,
    QUICK,
    STATIC,
    Claim,
    Row,
    Subdriver,
    UsbIdentity,
    absent_row,
    cmds,
    find_by_id,
    replace_limits,
    status_row,
)

VENDOR = 0x075D
PHOENIXTEC = 0x06DA

RUNTIME_LOGMAX = 0x75FFFFFF
VOLTAGE_LOGMAX = 65535

PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"

ROWS: tuple[Row, ...] = (
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.BatteryPresent", "nobattery", invert=True),
    status_row(f"{PST}.BelowRemainingCapacityLimit", "lowbatt", quick=True),
    status_row(f"{PST}.Charging", "chrg", quick=True),
    status_row(f"{PST}.CommunicationLost", "commfault"),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.Good", "off", invert=True),
    status_row(f"{PST}.InternalFailure", "commfault"),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    status_row(f"{PST}.Overload", "overload"),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm"),
    Row("device.mfr", (f"{PS}.iManufacturer",), "%s", flags=STATIC | PREFER, string_index=True),
    Row("device.model", (f"{PS}.iProduct",), "%s", flags=STATIC | PREFER, string_index=True),
    Row("device.serial", (f"{PS}.iSerialNumber",), "%s", flags=STATIC | PREFER, string_index=True),
    Row("battery.capacity.design", (f"{PS}.DesignCapacity",), flags=STATIC),
    Row("battery.charge", (f"{PS}.RemainingCapacity",)),
    Row("battery.charge.low", (f"{PS}.RemainingCapacityLimit", f"{PS}.WarningCapacityLimit"), flags=STATIC),
    Row("battery.capacity.full", (f"{PS}.FullChargeCapacity",)),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    Row("battery.type", (f"{PS}.iDeviceChemistry",), "%s", flags=STATIC, string_index=True),
    absent_row("ups.delay.start", f"{PS}.DelayBeforeStartup", DEFAULT_ONDELAY, "ondelay"),
    absent_row("ups.delay.shutdown", f"{PS}.DelayBeforeShutdown", DEFAULT_OFFDELAY, "offdelay"),
    Row("ups.timer.start", (f"{PS}.DelayBeforeStartup",), flags=QUICK),
    Row("ups.timer.shutdown", (f"{PS}.DelayBeforeShutdown",), flags=QUICK),
    Row("ups.load", (f"{PS}.PercentLoad",)),
    Row("ups.power.nominal", ("UPS.Flow.[4].ConfigApparentPower",), flags=STATIC),
    Row("input.transfer.high", ("UPS.PowerConverter.Output.HighVoltageTransfer",), flags=STATIC),
    Row("input.transfer.low", ("UPS.PowerConverter.Output.LowVoltageTransfer",), flags=STATIC),
    Row("output.voltage", ("UPS.PowerConverter.Output.Voltage",), "%.1f"),
    Row("battery.voltage", (f"{PS}.Voltage",), "%.1f"),
    Row("output.voltage.nominal", ("UPS.Flow.[4].ConfigVoltage",), flags=STATIC),
    Row("battery.voltage.nominal", (f"{PS}.ConfigVoltage",), "%.1f", flags=STATIC),
    Row("output.frequency.nominal", ("UPS.Flow.[4].ConfigFrequency",), flags=STATIC),
)

CMDS = (
    cmds("load.off.delay", f"{PS}.DelayBeforeShutdown", int(DEFAULT_OFFDELAY)),
    cmds("load.on.delay", f"{PS}.DelayBeforeStartup", int(DEFAULT_ONDELAY)),
    cmds("shutdown.stop", f"{PS}.DelayBeforeShutdown", -1),
)


def is_goldenmate(manufacturer: str | None, product: str | None) -> bool:
    return "BMS" in (manufacturer or "") or "Smart-Battery" in (product or "")


def claim(c: Claim) -> bool:
    """NUT's idowell_claim: the usual rule, but on Phoenixtec's ID only GoldenMate packs."""
    if c.vendor_id == PHOENIXTEC:
        return c.listed and is_goldenmate(c.manufacturer, c.product)
    return c.listed or c.productid_option


def fix_descriptor(desc: ReportDescriptor, vendor_id: int, product_id: int) -> ReportDescriptor:
    """See the module docstring; only maxima below their minimum are touched."""
    if (vendor_id, product_id) not in ((PHOENIXTEC, 0xFFFF), (VENDOR, 0x0300)):
        return desc
    for leaf, logmax in (("RunTimeToEmpty", RUNTIME_LOGMAX), ("Voltage", VOLTAGE_LOGMAX)):
        found = find_by_id(desc, 0x02, leaf)
        if found and found[0].logical_max < found[0].logical_min:
            target = found[0]
            desc = replace_limits(desc, lambda f, t=target: f is t, logical_max=logmax)  # type: ignore[misc]
    return desc


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "iDowell",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="iDowell HID",
    key="idowell",
    version="0.22",
    ids=((VENDOR, 0x0300), (PHOENIXTEC, 0xFFFF)),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
    claim=claim,
    fix=fix_descriptor,
)
