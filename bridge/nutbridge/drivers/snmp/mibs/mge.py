"""MGE UPS SYSTEMS / Eaton (Network Management Card "MGE" MIB, ``.1.3.6.1.4.1.705.1``): NUT's ``mge``.

Eaton 93E / 9PX cards (sysObjectID ``.705.1``) answer this enterprise tree plus parts of RFC 1628
(beeper, test result, timers). Written from the MGE-UPS MIB object definitions; variable names,
scaling and status tokens follow NUT's mge mapping (drivers.md §4). The MIB's yes(1)/no(2)
booleans become status tokens.
"""

from __future__ import annotations

from ..table import (
    ABSENT,
    INPUT_1,
    INPUT_3,
    OUTPUT_1,
    OUTPUT_3,
    RW,
    STATIC,
    STATUS,
    STRING,
    Cmd,
    Flag,
    Mib,
    Row,
)

MGE = "1.3.6.1.4.1.705.1."
IETF = "1.3.6.1.2.1.33.1."
VERSION = "0.55"


def _yes(token: str) -> dict[int, str]:
    """upsmg* yes(1)/no(2) flag -> a status token while yes."""
    return {1: token, 2: ""}


POWER_SOURCE = {1: "", 2: "OFF", 4: "BYPASS", 5: "OB", 6: "BOOST", 7: "TRIM"}   # RFC 1628 upsOutputSource
TRANSFER_REASON = {1: "", 2: "input voltage out of range", 3: "input frequency out of range",
                   4: "utility off"}
TEST_RESULT = {1: "done and passed", 2: "done and warning", 3: "done and error", 4: "aborted",
               5: "in progress", 6: "no test initiated"}
BEEPER = {1: "disabled", 2: "enabled", 3: "muted"}
YES_NO = {1: "yes", 2: "no"}
DRY_CONTACT = {-1: "unknown", 1: "closed", 2: "opened"}


def _lines(var1: str, var3: str, col: str, mult: float, f1: Flag, f3: Flag) -> tuple[Row, ...]:
    """Single-phase row from line 1 of table column ``col``, and ``var3`` with {n} for each line."""
    return (Row(var1, f"{MGE}{col}.1", mult, f1),
            *(Row(var3.format(n=n), f"{MGE}{col}.{n}", mult, f3) for n in (1, 2, 3)))


ROWS: tuple[Row, ...] = (
    Row("ups.mfr", None, flags=STATIC | ABSENT | STRING, default="Eaton"),
    Row("ups.model", MGE + "1.1.0", flags=STATIC | STRING, default="Generic SNMP UPS"),
    Row("ups.serial", MGE + "1.7.0", flags=STATIC | STRING),
    Row("ups.firmware", MGE + "1.4.0", flags=STATIC | STRING),
    Row("ups.firmware.aux", MGE + "12.12.0", flags=STATIC | STRING),
    Row("ups.load", MGE + "7.2.1.4.1", flags=OUTPUT_1),
    Row("ups.beeper.status", IETF + "9.8.0", flags=STRING, lookup=BEEPER),
    *(Row(f"ups.L{n}.load", f"{MGE}7.2.1.4.{n}", flags=OUTPUT_3) for n in (1, 2, 3)),
    Row("ups.test.result", IETF + "7.3.0", flags=STRING, lookup=TEST_RESULT),
    Row("ups.delay.shutdown", None, flags=ABSENT | RW | STRING, default="20", option="offdelay", length=6),
    Row("ups.delay.start", None, flags=ABSENT | RW | STRING, default="30", option="ondelay", length=6),
    Row("ups.timer.shutdown", IETF + "8.2.0"),
    Row("ups.timer.start", IETF + "8.3.0"),
    Row("ups.timer.reboot", IETF + "8.4.0"),
    Row("ups.start.auto", IETF + "8.5.0", flags=RW, lookup=YES_NO),
    Row("ups.status", MGE + "5.11.0", flags=STATUS, lookup=_yes("RB")),     # upsmgBatteryReplacement
    Row("ups.status", MGE + "5.14.0", flags=STATUS, lookup=_yes("LB")),     # upsmgBatteryLowBattery
    Row("ups.status", MGE + "5.16.0", flags=STATUS, lookup=_yes("LB")),     # upsmgBatteryLowCondition
    Row("ups.status", MGE + "7.3.0", flags=STATUS, lookup={1: "OB", 2: "OL"}),  # upsmgOutputOnBattery
    Row("ups.status", MGE + "7.4.0", flags=STATUS, lookup=_yes("BYPASS")),  # upsmgOutputOnByPass
    Row("ups.status", MGE + "7.7.0", flags=STATUS, lookup=_yes("OFF")),     # upsmgOutputUtilityOff
    Row("ups.status", MGE + "7.8.0", flags=STATUS, lookup=_yes("BOOST")),   # upsmgOutputOnBoost
    Row("ups.status", MGE + "7.10.0", flags=STATUS, lookup=_yes("OVER")),   # upsmgOutputOverLoad
    Row("ups.status", MGE + "7.12.0", flags=STATUS, lookup=_yes("TRIM")),   # upsmgOutputOnBuck
    Row("ups.status", IETF + "4.1.0", flags=STATUS, lookup=POWER_SOURCE),
    Row("input.phases", MGE + "6.1.0"),
    *_lines("input.voltage", "input.L{n}-N.voltage", "6.2.1.2", 0.1, INPUT_1, INPUT_3),
    *_lines("input.frequency", "input.L{n}.frequency", "6.2.1.3", 0.1, INPUT_1, INPUT_3),
    *_lines("input.voltage.minimum", "input.L{n}-N.voltage.minimum", "6.2.1.4", 0.1, INPUT_1, INPUT_3),
    *_lines("input.voltage.maximum", "input.L{n}-N.voltage.maximum", "6.2.1.5", 0.1, INPUT_1, INPUT_3),
    *_lines("input.current", "input.L{n}.current", "6.2.1.6", 0.1, INPUT_1, INPUT_3),
    Row("input.transfer.reason", MGE + "6.4.0", flags=STRING, lookup=TRANSFER_REASON),
    Row("output.phases", MGE + "7.1.0"),
    *_lines("output.voltage", "output.L{n}-N.voltage", "7.2.1.2", 0.1, OUTPUT_1, OUTPUT_3),
    *_lines("output.frequency", "output.L{n}.frequency", "7.2.1.3", 0.1, OUTPUT_1, OUTPUT_3),
    *_lines("output.current", "output.L{n}.current", "7.2.1.5", 0.1, OUTPUT_1, OUTPUT_3),
    Row("battery.charge", MGE + "5.2.0"),
    Row("battery.runtime", MGE + "5.1.0"),
    Row("battery.runtime.low", MGE + "4.7.0"),
    Row("battery.charge.low", MGE + "4.8.0", flags=RW | STRING, length=2),
    Row("battery.voltage", MGE + "5.5.0", 0.1),
    Row("ambient.temperature", MGE + "8.1.0", 0.1, fmt="%.1f"),  # NUT 2.8.0 prints one decimal
    Row("ambient.humidity", MGE + "8.2.0", 0.1),
    Row("ambient.contacts.1.status", MGE + "8.7.1.9.1", flags=STRING, lookup=DRY_CONTACT),
    Row("ambient.contacts.2.status", MGE + "8.7.1.10.1", flags=STRING, lookup=DRY_CONTACT),
    Row("outlet.id", None, flags=STATIC | ABSENT, default="0"),
    Row("outlet.desc", None, flags=STATIC | ABSENT | RW | STRING, default="Main Outlet", length=20),
)

CMDS: tuple[Cmd, ...] = (
    Cmd("test.battery.start", MGE + "10.4.0", 2),       # upsmgTestBatterySchedule: start (2)
    Cmd("beeper.disable", IETF + "9.8.0", 1),
    Cmd("beeper.enable", IETF + "9.8.0", 2),
    Cmd("beeper.mute", IETF + "9.8.0", 3),
    # seconds until the output goes off / comes on: the parameter, else ups.delay.shutdown / .start
    Cmd("load.off.delay", IETF + "8.2.0", 20, param=True, value_from="ups.delay.shutdown"),
    Cmd("load.on.delay", IETF + "8.3.0", 30, param=True, value_from="ups.delay.start"),
)

def _finish(values: dict[str, str]) -> None:
    """NUT 2.8.5's mge table names the maker in capitals."""
    from ....compat import driver_core_2_8_5

    if driver_core_2_8_5() and values.get("ups.mfr") == "Eaton":
        values["ups.mfr"] = "EATON"


MIBS: tuple[Mib, ...] = (
    Mib("mge", VERSION, ROWS, CMDS, sysoid=("1.3.6.1.4.1.705.1",), auto_check=MGE + "1.1.0",
        finish=_finish),
)
