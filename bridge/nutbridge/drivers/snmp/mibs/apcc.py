"""APC PowerNet UPS (``.1.3.6.1.4.1.318.1.1.1``, Smart-UPS / Symmetra with a Network Management
Card): NUT's ``apcc`` mapping.

Written from the PowerNet MIB object definitions (upsBasic* / upsAdv* / upsHighPrec* groups);
variable names follow NUT's apcc mapping (drivers.md §4.4). High-precision (x0.1) objects come first
and win when the card has them (UNIQUE), the integer "Adv" objects are the fallback.
upsAdvBatteryRunTimeRemaining and the delays are TimeTicks (seconds x 100).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..table import ABSENT, NEGINVALID, RW, STATIC, STATUS, STRING, UNIQUE, Cmd, Flag, Mib, Row

UPS = "1.3.6.1.4.1.318.1.1.1."
VERSION = "1.6"

BATTERY_STATUS = {1: "", 2: "", 3: "LB", 4: "LB", 5: "LB"}
OUTPUT_STATUS = {
    1: "", 2: "OL", 3: "OB", 4: "OL BOOST", 5: "OFF", 6: "OFF", 7: "OFF", 8: "", 9: "BYPASS", 10: "BYPASS",
    11: "OFF", 12: "OL TRIM", 13: "OL ECO", 14: "OL", 15: "OL", 16: "BYPASS", 17: "BYPASS", 18: "", 19: "OL",
    20: "OL ECO", 21: "OL", 22: "OL", 23: "", 24: "OL", 25: "OL", 26: "", 27: "", 28: "OL",
}
CALIBRATION = {1: "", 2: "", 3: "CAL", 4: "", 5: "", 6: ""}
REPLACE_BATTERY = {1: "", 2: "RB"}
TEST_RESULT = {1: "Ok", 2: "Failed", 3: "InvalidTest", 4: "TestInProgress"}
SENSITIVITY = {1: "auto", 2: "low", 3: "medium", 4: "high"}
TRANSFER_REASON = {1: "noTransfer", 2: "highLineVoltage", 3: "brownout", 4: "blackout",
                   5: "smallMomentarySag", 6: "deepMomentarySag", 7: "smallMomentarySpike",
                   8: "largeMomentarySpike", 9: "selfTest", 10: "rateOfVoltageChange"}

IEM_TEMP = "1.3.6.1.4.1.318.1.1.10.2.3.2.1.4.1"
IEM_TEMP_UNIT = "1.3.6.1.4.1.318.1.1.10.2.3.2.1.5.1"   # 1 celsius, 2 fahrenheit
IEM_HUMIDITY = "1.3.6.1.4.1.318.1.1.10.2.3.2.1.6.1"


def _ticks_to_raw(text: str) -> int | None:
    """Seconds (SET VAR text) -> TimeTicks."""
    try:
        return round(float(text) * 100)
    except ValueError:
        return None


def _hp(var: str, hp: str, adv: str, *, neg: bool = True) -> tuple[Row, Row]:
    """A high-precision (x0.1) object and its integer fallback."""
    flags = UNIQUE | (NEGINVALID if neg else Flag.NONE)
    return Row(var, UPS + hp, 0.1, flags), Row(var, UPS + adv)


def _lines(fmt: str, col: str, mult: float, names: Iterable[str]) -> tuple[Row, ...]:
    return tuple(Row(fmt.format(n=name), f"{UPS}{col}.{i}", mult, NEGINVALID)
                 for i, name in enumerate(names, 1))


_LL = ("L1-L2", "L2-L3", "L3-L1")
_L = ("L1", "L2", "L3")


def _finish(values: dict[str, str]) -> None:
    """The IEM probe reports in the unit the card is set to: publish Celsius."""
    unit = values.pop("_iem.temperature.unit", None)
    temp = values.get("ambient.temperature")
    if unit == "2" and temp is not None and values.get("_iem.temperature") == temp:
        try:
            values["ambient.temperature"] = f"{(float(temp) - 32) * 5 / 9:.1f}"
        except ValueError:
            pass
    values.pop("_iem.temperature", None)


ROWS: tuple[Row, ...] = (
    Row("ups.mfr", None, flags=STATIC | ABSENT | STRING, default="APC"),
    Row("ups.model", UPS + "1.1.1.0", flags=STATIC | STRING, default="Generic Powernet SNMP device"),
    Row("ups.serial", UPS + "1.2.3.0", flags=STATIC | STRING),
    Row("ups.mfr.date", UPS + "1.2.2.0", flags=STATIC | STRING),
    *_hp("input.voltage", "3.3.1.0", "3.2.1.0"),
    *_hp("input.voltage.maximum", "3.3.2.0", "3.2.2.0"),
    *_hp("input.voltage.minimum", "3.3.3.0", "3.2.3.0"),
    Row("input.phases", UPS + "9.2.2.1.2.1", flags=STATIC),
    *_lines("input.{n}.voltage", "9.2.3.1.3.1.1", 1, _LL),
    *_lines("input.{n}.voltage.maximum", "9.2.3.1.4.1.1", 1, _LL),
    *_lines("input.{n}.voltage.minimum", "9.2.3.1.5.1.1", 1, _LL),
    *_lines("input.{n}.current", "9.2.3.1.6.1.1", 0.1, _L),
    *_lines("input.{n}.current.maximum", "9.2.3.1.7.1.1", 0.1, _L),
    *_lines("input.{n}.current.minimum", "9.2.3.1.8.1.1", 0.1, _L),
    Row("input.frequency", UPS + "9.2.2.1.4.1", 0.1, NEGINVALID | UNIQUE),
    *_hp("input.frequency", "3.3.4.0", "3.2.4.0"),
    Row("input.transfer.low", UPS + "5.2.3.0", flags=RW | STRING, length=3),
    Row("input.transfer.high", UPS + "5.2.2.0", flags=RW | STRING, length=3),
    Row("input.transfer.reason", UPS + "3.2.5.0", flags=STRING, lookup=TRANSFER_REASON),
    Row("input.sensitivity", UPS + "5.2.7.0", flags=RW | STRING, lookup=SENSITIVITY),
    Row("ups.power", UPS + "4.2.9.0"),
    Row("ups.realpower", UPS + "4.2.8.0"),
    Row("ups.status", UPS + "4.1.1.0", flags=STATUS, lookup=OUTPUT_STATUS),
    Row("ups.status", UPS + "2.1.1.0", flags=STATUS, lookup=BATTERY_STATUS),
    Row("ups.status", UPS + "7.2.6.0", flags=STATUS, lookup=CALIBRATION),
    Row("ups.status", UPS + "2.2.4.0", flags=STATUS, lookup=REPLACE_BATTERY),
    *_hp("ups.temperature", "2.3.2.0", "2.2.2.0", neg=False),
    *_hp("ups.load", "4.3.3.0", "4.2.3.0"),
    Row("ups.firmware", UPS + "1.2.1.0", flags=STATIC | STRING),
    Row("ups.delay.shutdown", UPS + "5.2.10.0", flags=RW, asn1="t", to_raw=_ticks_to_raw),
    Row("ups.delay.start", UPS + "5.2.9.0", flags=RW, asn1="t", to_raw=_ticks_to_raw),
    *_hp("battery.charge", "2.3.1.0", "2.2.1.0"),
    Row("battery.charge.restart", UPS + "5.2.6.0", flags=RW | STRING, length=3),
    Row("battery.runtime", UPS + "2.2.3.0"),
    Row("battery.runtime.low", UPS + "5.2.8.0", flags=RW | STRING, length=3, asn1="t", to_raw=_ticks_to_raw),
    *_hp("battery.voltage", "2.3.4.0", "2.2.8.0"),
    Row("battery.voltage.nominal", UPS + "2.2.7.0"),
    *_hp("battery.current", "2.3.5.0", "2.2.9.0", neg=False),
    Row("battery.current.total", UPS + "2.3.6.0", 0.1),
    Row("battery.packs", UPS + "2.2.5.0"),
    Row("battery.packs.bad", UPS + "2.2.6.0"),
    Row("battery.date", UPS + "2.1.3.0", flags=STATIC | RW | STRING, length=8, asn1="s"),
    Row("ups.id", UPS + "1.1.2.0", flags=STATIC | RW | STRING, length=8, asn1="s"),
    Row("ups.test.result", UPS + "7.2.3.0", flags=STRING, lookup=TEST_RESULT),
    Row("ups.test.date", UPS + "7.2.4.0", flags=STATIC | RW | STRING, length=8, asn1="s"),
    Row("output.voltage", UPS + "4.3.1.0", 0.1, UNIQUE),
    Row("output.voltage", UPS + "4.2.1.0"),
    Row("output.phases", UPS + "9.3.2.1.2.1", flags=STATIC),
    Row("output.frequency", UPS + "9.3.2.1.4.1", 0.1, NEGINVALID | UNIQUE),
    *_hp("output.frequency", "4.3.2.0", "4.2.2.0"),
    *_hp("output.current", "4.3.4.0", "4.2.4.0"),
    *_lines("output.{n}.voltage", "9.3.3.1.3.1.1", 1, _LL),
    *_lines("output.{n}.current", "9.3.3.1.4.1.1", 0.1, _L),
    *_lines("output.{n}.current.maximum", "9.3.3.1.5.1.1", 0.1, _L),
    *_lines("output.{n}.current.minimum", "9.3.3.1.6.1.1", 0.1, _L),
    *_lines("output.{n}.power", "9.3.3.1.7.1.1", 1, _L),
    *_lines("output.{n}.power.maximum", "9.3.3.1.8.1.1", 1, _L),
    *_lines("output.{n}.power.minimum", "9.3.3.1.9.1.1", 1, _L),
    *_lines("output.{n}.power.percent", "9.3.3.1.10.1.1", 1, _L),
    *_lines("output.{n}.power.maximum.percent", "9.3.3.1.11.1.1", 1, _L),
    *_lines("output.{n}.power.minimum.percent", "9.3.3.1.12.1.1", 1, _L),
    Row("output.voltage.nominal", UPS + "5.2.1.0", flags=RW | STRING, length=3),
    # Measure-UPS / AP9612TH environment sensors, then the NMC's integrated environment monitor
    Row("ambient.temperature", "1.3.6.1.4.1.318.1.1.2.1.1.0"),
    Row("ambient.1.temperature.alarm.high", "1.3.6.1.4.1.318.1.1.10.1.2.2.1.3.1"),
    Row("ambient.1.temperature.alarm.low", "1.3.6.1.4.1.318.1.1.10.1.2.2.1.4.1"),
    Row("ambient.humidity", "1.3.6.1.4.1.318.1.1.2.1.2.0"),
    Row("ambient.1.humidity.alarm.high", "1.3.6.1.4.1.318.1.1.10.1.2.2.1.6.1"),
    Row("ambient.1.humidity.alarm.low", "1.3.6.1.4.1.318.1.1.10.1.2.2.1.7.1"),
    Row("ambient.temperature", IEM_TEMP),
    Row("_iem.temperature", IEM_TEMP),
    Row("_iem.temperature.unit", IEM_TEMP_UNIT),
    Row("ambient.humidity", IEM_HUMIDITY),
)

CMDS: tuple[Cmd, ...] = (
    Cmd("load.off", UPS + "6.2.1.0", 2),            # upsAdvControlUpsOff: turnUpsOff
    Cmd("load.on", UPS + "6.2.6.0", 2),             # upsAdvControlTurnOnUPS
    Cmd("shutdown.stayoff", UPS + "6.2.1.0", 3),    # turnUpsOffGracefully
    Cmd("shutdown.return", UPS + "6.1.1.0", 2),     # upsBasicControlConserveBattery
    Cmd("test.failure.start", UPS + "6.2.4.0", 2),  # upsAdvControlSimulatePowerFail
    Cmd("test.panel.start", UPS + "6.2.5.0", 2),    # upsAdvControlFlashAndBeep
    Cmd("bypass.start", UPS + "6.2.7.0", 2),        # upsAdvControlBypassSwitch
    Cmd("bypass.stop", UPS + "6.2.7.0", 3),
    Cmd("test.battery.start", UPS + "7.2.2.0", 2),  # upsAdvTestDiagnostics: testDiagnostics
    Cmd("calibrate.start", UPS + "7.2.5.0", 2),     # upsAdvTestRuntimeCalibration
    Cmd("calibrate.stop", UPS + "7.2.5.0", 3),
    Cmd("reset.input.minmax", UPS + "9.1.1.0", 2),
)

MIBS: tuple[Mib, ...] = (
    # NUT lists the model OID as "sysOID" (it never equals a sysObjectID): classic detection finds it
    Mib("apcc", VERSION, ROWS, CMDS, sysoid=(UPS + "1.1.1.0",), auto_check=UPS + "1.1.1.0", finish=_finish,
        version_2_8_5="1.61"),
)
