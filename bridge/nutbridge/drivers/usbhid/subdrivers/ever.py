"""EVER (USB vendor 2e51; also 0483:a113, an STMicroelectronics ID EVER uses) — NUT: "Ever HID".

EVER's UPSes (ECO PRO, Sinline, Powerline) describe the standard parts with PDC usages and
the rest on vendor page 0xff00 under ``UPS.EVER1`` (NUT names the usages EVER1..EVER104 after
their place in EVER's list): firmware and hardware versions, temperatures, statistics
counters, the network card's settings, configuration switches, and three status reports
read whole, by report ID: the work mode (report 74: 4 online, 8 on battery, 2 stopped, ...),
the messages (75: boost, buck, charging, fan ...) and the alarms (76: overload, short circuit,
overheat ...); the network card's MAC address (210), IP addresses (211, 230-232) and packet
counters (215-218). Many variables keep NUT's ``experimental.`` names: NUT has no standard
names for them yet.
"""

from __future__ import annotations

from ..table import (
    DEFAULT_OFFDELAY,
    NUMBER,
    QUICK,
    YES_NO,
    Cmd,
    Converter,
    Ctx,
    Row,
    Subdriver,
    UsbIdentity,
    absent_row,
    cmds,
    kelvin_to_celsius,
    rw_row,
    status_row,
)

VENDOR = 0x2E51
STMICRO = 0x0483

E = "UPS.EVER1"
PS = "UPS.PowerSummary"
PST = "UPS.PowerSummary.PresentStatus"
OUTLET = "UPS.OutletSystem.Outlet"

WORKMODE_REPORT, MESSAGES_REPORT, ALARMS_REPORT = 74, 75, 76
MAC_REPORT = 210

WORKMODES = {1: "UNKNOWN", 2: "STOP", 4: "ONLINE", 8: "ONBATTERY", 16: "WATCH", 32: "WAITING",
             64: "EMERGENCY"}
#: messages report bits (the two duplicates of ups.status, overload and battery low, left out)
MESSAGES = ((0x04, "BOOST"), (0x08, "BUCK"), (0x10, "BOOST_BLOCKED"), (0x20, "BUCK_BLOCKED"),
            (0x40, "CHARGING"), (0x80, "FAN_ON"), (0x100, "EPO_BLOCKED"), (0x200, "NEED_REPLACMENT"),
            (0xC00, "OVERHEAT"), (0x1000, "WAITING_FOR_MIN_CHARGE"), (0x2000, "MAINS_OUT_OF_RANGE"))
ALARMS = ((0x01, "OVERLOAD"), (0x02, "SHORT-CIRCUIT"), (0x0C, "OVERHEAT"), (0x10, "EPO"),
          (0x20, "INERNAL_ERROR"), (0x40, "REVERSE_POWER_SUPPLY"), (0x80, "NO_INETERNAL_COMM"),
          (0x100, "CRITICAL_BATT_VOLTAGE"))
HARDWARE_REVISIONS = "0ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def version(value: float, ctx: Ctx) -> str | None:
    """Firmware/protocol version word: major nibble, minor nibble, build byte -> "v1.2b03"."""
    v = int(value)
    return f"v{(v >> 12) & 0xF:X}.{(v >> 8) & 0xF:X}b{v & 0xFF:02d}"


def hardware(value: float, ctx: Ctx) -> str | None:
    """Hardware revision word: letter index, number -> "rev.Bv01"."""
    v = int(value)
    letter = (v >> 8) & 0xFF
    if letter >= len(HARDWARE_REVISIONS):
        return None
    return f"rev.{HARDWARE_REVISIONS[letter]}v{v & 0xFF:02d}"


def _report(ctx: Ctx, rid: int) -> bytes | None:
    return ctx.reports.get(rid) or None


def _word(ctx: Ctx, rid: int) -> int | None:
    data = _report(ctx, rid)
    if data is None or len(data) < 2:
        return None
    return data[1] | (data[2] << 8 if len(data) > 2 else 0)


def workmode(value: float, ctx: Ctx) -> str | None:
    data = _report(ctx, WORKMODE_REPORT)
    if data is None or len(data) < 2:
        return None
    return WORKMODES.get(data[1], "UNKNOWN")


def off_unless_working(value: float, ctx: Ctx) -> str | None:
    """Status token: "off" unless the work mode is online or on battery."""
    data = _report(ctx, WORKMODE_REPORT)
    if data is None or len(data) < 2:
        return None
    return "!off" if data[1] in (4, 8) else "off"


def _flags(rid: int, names: tuple[tuple[int, str], ...]) -> Converter:
    def convert(value: float, ctx: Ctx) -> str | None:
        word = _word(ctx, rid)
        if word is None:
            return None
        return " ".join(name for mask, name in names if word & mask)
    return convert


def _bytes_text(rid: int, fmt: str, sep: str) -> Converter:
    def convert(value: float, ctx: Ctx) -> str | None:
        data = _report(ctx, rid)
        return None if data is None else sep.join(fmt % b for b in data[1:])
    return convert


def _counter(rid: int) -> Converter:
    def convert(value: float, ctx: Ctx) -> str | None:
        data = _report(ctx, rid)
        if data is None:
            return None
        if len(data) < 5:
            return ""
        return str(int.from_bytes(data[1:5], "little", signed=True))
    return convert


def _ip(rid: int) -> Converter:
    return _bytes_text(rid, "%d", ".")


def _exp(name: str, path: str, fmt: str | Converter = "%.0f") -> Row:
    return Row(f"experimental.{name}", (path,), fmt)


def _control(name: str, path: str) -> Row:
    return rw_row(f"experimental.control.{name}", path, flags=NUMBER)


ROWS: tuple[Row, ...] = (
    _exp("battery.batteryid", "UPS.BatterySystem.Battery.BatteryID"),
    _exp("battery.systemid", "UPS.BatterySystem.BatterySystemID"),
    _exp("battery.chargerid", "UPS.BatterySystem.Charger.ChargerID"),
    _exp("battery.input_flowid", "UPS.BatterySystem.Input.FlowID"),
    _exp("battery.input_id", "UPS.BatterySystem.Input.InputID"),
    _exp("battery.output_flowid", "UPS.BatterySystem.Output.FlowID"),
    _exp("battery.output_id", "UPS.BatterySystem.Output.OutputID"),
    _exp("id.firmware_version_inverter", f"{E}.EVER13", version),
    _exp("id.firmware_version_interfaces", f"{E}.EVER14", version),
    _exp("id.hardware_version", f"{E}.EVER15", hardware),
    _exp("id.protocol_version_inverter", f"{E}.EVER16", version),
    _exp("id.protocol_version_interfaces", f"{E}.EVER17", version),
    Row("ups.temperature", (f"{E}.EVER42",), kelvin_to_celsius),
    Row("battery.temperature", (f"{E}.EVER43",), kelvin_to_celsius),
    Row("output.powerfactor", (f"{E}.EVER44",)),
    _control("ups_on", f"{E}.EVER45.EVER46"),
    _control("clear_fault", f"{E}.EVER45.EVER47"),
    _control("clear_battery_fault", f"{E}.EVER45.EVER48"),
    _control("epo_blocked", f"{E}.EVER49.EVER50"),
    _control("green_mode", f"{E}.EVER49.EVER51"),
    _control("button_sound", f"{E}.EVER49.EVER52"),
    _control("audible_alarm", f"{E}.EVER49.EVER53"),
    rw_row("output.voltage", f"{E}.EVER54", length=3),
    rw_row("experimental.config.overload_clearance_threshold", f"{E}.EVER59", length=2),
    rw_row("experimental.config.stb_charge", f"{E}.EVER60", length=2),
    rw_row("battery.packs.external", f"{E}.EVER61", length=1),
    _exp("statistics.mains_loss_counter", f"{E}.EVER62"),
    _exp("statistics.lowering_AVR_trigger_counter", f"{E}.EVER63"),
    _exp("statistics.rising_AVR_trigger_counter", f"{E}.EVER64"),
    _exp("statistics.overload_counter", f"{E}.EVER65"),
    _exp("statistics.short_circuit_counter", f"{E}.EVER66"),
    _exp("statistics.discharge_counter", f"{E}.EVER67"),
    _exp("statistics.overheat_counter", f"{E}.EVER68"),
    _exp("statistics.mains_operation_time", f"{E}.EVER69"),
    _exp("statistics.autonomous_operation_time", f"{E}.EVER70"),
    _exp("statistics.overload_operation_time", f"{E}.EVER71"),
    _exp("networkcard.mac_address", f"{E}.EVER72", _bytes_text(MAC_REPORT, "%02x", ":")),
    _exp("networkcard.notification_destination_ip", f"{E}.EVER73", _ip(211)),
    _exp("networkcard.send_packets", f"{E}.EVER77", _counter(215)),
    _exp("networkcard.received_packets", f"{E}.EVER78", _counter(216)),
    _exp("networkcard.send_packets_err", f"{E}.EVER79", _counter(217)),
    _exp("networkcard.received_packets_err", f"{E}.EVER80", _counter(218)),
    _exp("networkcard.config_dhcp_enabled", f"{E}.EVER85.EVER86"),
    _exp("networkcard.config_ethernet_enabled", f"{E}.EVER85.EVER87"),
    _exp("networkcard.config_http_enabled", f"{E}.EVER85.EVER88"),
    _exp("networkcard.config_snmp_enabled", f"{E}.EVER85.EVER89"),
    _exp("networkcard.config_snmp_trap_enabled", f"{E}.EVER85.EVER90"),
    _exp("networkcard.config_readonly", f"{E}.EVER85.EVER91"),
    _exp("networkcard.config_restart_eth", f"{E}.EVER85.EVER96"),
    _exp("networkcard.ip_address", f"{E}.EVER93", _ip(230)),
    _exp("networkcard.network_mask", f"{E}.EVER94", _ip(231)),
    _exp("networkcard.default_gateway", f"{E}.EVER95", _ip(232)),
    Row("ups.realpower.nominal", ("UPS.Flow.ConfigActivePower",)),
    Row("ups.power.nominal", ("UPS.Flow.ConfigApparentPower",)),
    Row("output.frequency.nominal", ("UPS.Flow.ConfigFrequency",)),
    Row("output.voltage.nominal", ("UPS.Flow.ConfigVoltage",)),
    _exp("ups.flow_id", "UPS.Flow.FlowID"),
    Row("outlet.1.id", (f"{OUTLET}.OutletID",)),
    Row("experimental.outlet.1.present", (f"{OUTLET}.PresentStatus.Present",), "%s", YES_NO),
    Row("outlet.1.switchable", (f"{OUTLET}.PresentStatus.Switchable",), "%s", YES_NO),
    Row("outlet.1.status", (f"{OUTLET}.PresentStatus.SwitchOn/Off",)),
    _exp("outlet.1.undefined", f"{OUTLET}.PresentStatus.Undefined"),
    _exp("outlet.1.system_id", "UPS.OutletSystem.OutletSystemID"),
    rw_row("experimental.outlet.1.switch_off_control", f"{OUTLET}.SwitchOffControl", flags=NUMBER),
    rw_row("experimental.outlet.1.switch_on_control", f"{OUTLET}.SwitchOnControl", flags=NUMBER),
    _exp("powerconverter.input_flow_id", "UPS.PowerConverter.Input.FlowID"),
    Row("input.frequency", ("UPS.PowerConverter.Input.Frequency",)),
    _exp("powerconverter.input_id", "UPS.PowerConverter.Input.InputID"),
    Row("input.voltage", ("UPS.PowerConverter.Input.Voltage",)),
    Row("ups.realpower", ("UPS.PowerConverter.Output.ActivePower",)),
    Row("ups.power", ("UPS.PowerConverter.Output.ApparentPower",)),
    Row("output.current", ("UPS.PowerConverter.Output.Current",)),
    _exp("powerconverter.output_flowid", "UPS.PowerConverter.Output.FlowID"),
    Row("output.frequency", ("UPS.PowerConverter.Output.Frequency",)),
    _exp("powerconverter.output_id", "UPS.PowerConverter.Output.OutputID"),
    Row("ups.load", ("UPS.PowerConverter.Output.PercentLoad",)),
    Row("output.voltage", ("UPS.PowerConverter.Output.Voltage",)),
    _exp("powerconverter.powerconverterid", "UPS.PowerConverter.PowerConverterID"),
    _exp("powersummary.capacity_granularity_1", f"{PS}.CapacityGranularity1"),
    _exp("powersummary.capacity_granularity_2", f"{PS}.CapacityGranularity2"),
    _exp("powersummary.capacity_mode", f"{PS}.CapacityMode"),
    absent_row("ups.delay.shutdown", f"{PS}.DelayBeforeShutdown", DEFAULT_OFFDELAY, "offdelay"),
    Row("battery.capacity", (f"{PS}.DesignCapacity", f"{PS}.FullChargeCapacity")),
    _exp("powersummary.flow_id", f"{PS}.FlowID"),
    # NUT publishes the string descriptor's index here, not its text
    Row("battery.type", (f"{PS}.iDeviceChemistry",)),
    Row("ups.load", (f"{PS}.PercentLoad",)),
    _exp("powersummary.rechargeable", f"{PS}.Rechargeable"),
    Row("battery.charge", (f"{PS}.RemainingCapacity",)),
    rw_row("battery.runtime.low", f"{PS}.RemainingTimeLimit", flags=NUMBER),
    Row("battery.runtime", (f"{PS}.RunTimeToEmpty",)),
    Row("battery.voltage", (f"{PS}.Voltage",)),
    Row("ups.timer.shutdown", (f"{PS}.DelayBeforeShutdown",), flags=QUICK),
    status_row(f"{PST}.ACPresent", "online", quick=True),
    status_row(f"{PST}.AwaitingPower", "awaitingpower", quick=True),
    status_row(f"{PST}.BatteryPresent", "nobattery", invert=True),
    status_row(f"{PST}.CommunicationLost", "commfault"),
    status_row(f"{PST}.Discharging", "dischrg", quick=True),
    status_row(f"{PST}.NeedReplacement", "replacebatt"),
    status_row(f"{PST}.Overload", "overload", quick=True),
    status_row(f"{PST}.OverTemperature", "overheat"),
    status_row(f"{PST}.ShutdownImminent", "shutdownimm"),
    status_row(f"{E}.EVER18.EVER19", "overload"),
    status_row(f"{E}.EVER18.EVER20", "lowbatt"),
    status_row(f"{E}.EVER18.EVER21", "boost"),
    status_row(f"{E}.EVER18.EVER22", "trim"),
    status_row(f"{E}.EVER18.EVER25", "chrg"),
    status_row(f"{E}.EVER18.EVER28", "replacebatt"),
    status_row(f"{E}.EVER32.EVER33", "overload"),
    status_row(f"{E}.EVER32.EVER40", "commfault"),
    Row("BOOL", (f"{E}.EVER97.EVER102",), off_unless_working),
    _exp("status.workmode", f"{E}.EVER97.EVER98", workmode),
    _exp("status.messages", f"{E}.EVER18.EVER28", _flags(MESSAGES_REPORT, MESSAGES)),
    _exp("status.alarms", f"{E}.EVER32.EVER33", _flags(ALARMS_REPORT, ALARMS)),
)

CMDS: tuple[Cmd, ...] = (
    cmds("load.off.delay", f"{PS}.DelayBeforeShutdown", int(DEFAULT_OFFDELAY)),
    cmds("shutdown.return", f"{PS}.DelayBeforeShutdown", int(DEFAULT_OFFDELAY)),
)


def identity(info: UsbIdentity | None) -> dict[str, str]:
    if info is None:
        return {}
    return {"ups.mfr": (info.manufacturer or "").strip() or "Ever",
            "ups.model": (info.product or "").strip(), "ups.serial": (info.serial or "").strip()}


SUBDRIVER = Subdriver(
    name="Ever HID",
    key="ever",
    version="0.10",
    ids=((STMICRO, 0xA113), (VENDOR, 0xFFFF), (VENDOR, 0x0000)),
    rows=ROWS,
    cmds=CMDS,
    identity=identity,
)
