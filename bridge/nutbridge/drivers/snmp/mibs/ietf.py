"""RFC 1628 UPS-MIB (``.1.3.6.1.2.1.33``): NUT's ``ietf`` mapping, and ``tripplite``, the same
table that NUT 2.8 lists first for Tripp Lite's sysObjectID (and so, in classic detection, for
any agent that answers upsIdentModel).

Written from RFC 1628's object definitions; variable names and scaling follow NUT's ietf table
(drivers.md §4.3). RFC 1628 units: 0.1 Hz, 0.1 A, volts, watts, minutes.
"""

from __future__ import annotations

from ..table import (
    BYPASS_1,
    BYPASS_3,
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

UPS = "1.3.6.1.2.1.33.1."
VERSION = "1.54"
VERSION_2_8_5 = "1.55"

BATTERY_STATUS = {1: "", 2: "", 3: "LB", 4: "LB"}           # upsBatteryStatus: unknown, normal, low, depleted
OUTPUT_SOURCE = {1: "", 2: "OFF", 3: "OL", 4: "OL BYPASS", 5: "OB", 6: "OL BOOST", 7: "OL TRIM"}
OVERLOAD = {1: "OVER"}
TEST_ACTIVE = {1: "", 2: "", 3: "TEST", 4: "TEST", 5: "CAL"}  # upsTestId (last sub-id of the OID value)
TEST_RESULT = {1: "done and passed", 2: "done and warning", 3: "done and error", 4: "aborted",
               5: "in progress", 6: "no test initiated"}
YES_NO = {1: "yes", 2: "no"}
BEEPER = {1: "disabled", 2: "enabled", 3: "muted"}


def _in(col: str, one: str, suffix: str, mult: float = 1.0, *, lines: tuple[str, ...] = ("L1", "L2", "L3"),
        prefix: str = "input", f1: Flag = INPUT_1, f3: Flag = INPUT_3) -> tuple[Row, ...]:
    """A single-phase row (line 1) plus one row per line of a 3-phase unit (table column ``col``)."""
    out = [Row(one, f"{UPS}{col}.1", mult, f1)]
    out += [Row(f"{prefix}.{line}{suffix}", f"{UPS}{col}.{n}", mult, f3)
            for n, line in enumerate(lines, start=1)]
    return tuple(out)


_LN = ("L1-N", "L2-N", "L3-N")

ROWS: tuple[Row, ...] = (
    Row("ups.mfr", UPS + "1.1.0", flags=STATIC | STRING, default="Generic"),
    Row("ups.model", UPS + "1.2.0", flags=STATIC | STRING, default="Generic SNMP UPS"),
    Row("ups.firmware", UPS + "1.3.0", flags=STATIC | STRING),
    Row("ups.firmware.aux", UPS + "1.4.0", flags=STATIC | STRING),
    Row("ups.status", UPS + "2.1.0", flags=STATUS, lookup=BATTERY_STATUS),
    Row("battery.runtime", UPS + "2.3.0", 60.0),
    Row("battery.charge", UPS + "2.4.0"),
    Row("battery.voltage", UPS + "2.5.0", 0.1),
    Row("battery.current", UPS + "2.6.0", 0.1),
    Row("battery.temperature", UPS + "2.7.0"),
    # the line counts carry both phase flags: NUT publishes 1 when the agent has no such object
    Row("input.phases", UPS + "3.2.0", flags=INPUT_1 | INPUT_3),
    *_in("3.3.1.2", "input.frequency", ".frequency", 0.1),
    *_in("3.3.1.3", "input.voltage", ".voltage", lines=_LN),
    *_in("3.3.1.4", "input.current", ".current", 0.1),
    *_in("3.3.1.5", "input.realpower", ".realpower"),
    Row("ups.status", UPS + "4.1.0", flags=STATUS, lookup=OUTPUT_SOURCE),
    Row("output.frequency", UPS + "4.2.0", 0.1),
    Row("output.phases", UPS + "4.3.0", flags=OUTPUT_1 | OUTPUT_3),
    *_in("4.4.1.2", "output.voltage", ".voltage", lines=_LN, prefix="output", f1=OUTPUT_1, f3=OUTPUT_3),
    *_in("4.4.1.3", "output.current", ".current", 0.1, prefix="output", f1=OUTPUT_1, f3=OUTPUT_3),
    *_in("4.4.1.4", "output.realpower", ".realpower", prefix="output", f1=OUTPUT_1, f3=OUTPUT_3),
    *_in("4.4.1.5", "ups.load", ".power.percent", prefix="output", f1=OUTPUT_1, f3=OUTPUT_3),
    Row("input.bypass.phases", UPS + "5.2.0", flags=BYPASS_1 | BYPASS_3),
    Row("input.bypass.frequency", UPS + "5.1.0", 0.1, BYPASS_1 | BYPASS_3),
    *_in("5.3.1.2", "input.bypass.voltage", ".voltage", lines=_LN, prefix="input.bypass", f1=BYPASS_1,
         f3=BYPASS_3),
    *_in("5.3.1.3", "input.bypass.current", ".current", 0.1, prefix="input.bypass", f1=BYPASS_1, f3=BYPASS_3),
    *_in("5.3.1.4", "input.bypass.realpower", ".realpower", prefix="input.bypass", f1=BYPASS_1, f3=BYPASS_3),
    # upsAlarmOutputOverload is a well-known alarm *type* OID: agents rarely answer it as an instance
    Row("ups.status", UPS + "6.3.8", flags=STATUS, lookup=OVERLOAD),
    Row("ups.status", UPS + "7.1.0", flags=STATUS, lookup=TEST_ACTIVE),
    Row("ups.test.result", UPS + "7.3.0", flags=STRING, lookup=TEST_RESULT),
    Row("ups.timer.shutdown", UPS + "8.2.0", flags=RW | STRING, length=8),
    Row("ups.timer.start", UPS + "8.3.0", flags=RW | STRING, length=8),
    Row("ups.timer.reboot", UPS + "8.4.0", flags=RW | STRING, length=8),
    Row("ups.start.auto", UPS + "8.5.0", flags=STRING, lookup=YES_NO),
    Row("input.voltage.nominal", UPS + "9.1.0"),
    Row("input.frequency.nominal", UPS + "9.2.0", 0.1),
    Row("output.voltage.nominal", UPS + "9.3.0"),
    Row("output.frequency.nominal", UPS + "9.4.0", 0.1),
    Row("output.power.nominal", UPS + "9.5.0"),
    Row("output.realpower.nominal", UPS + "9.6.0"),
    Row("battery.runtime.low", UPS + "9.7.0", 60.0),
    Row("ups.beeper.status", UPS + "9.8.0", flags=STRING, lookup=BEEPER),
    Row("input.transfer.low", UPS + "9.9.0"),
    Row("input.transfer.high", UPS + "9.10.0"),
)

# upsTestId takes an OBJECT IDENTIFIER per RFC 1628 (upsTestAbortTestInProgress = upsWellKnownTests.1 ...);
# NUT writes integer 0, which conforming agents reject. We write the RFC's OIDs.
_TESTS = UPS + "7.7."
CMDS: tuple[Cmd, ...] = (
    Cmd("test.battery.stop", UPS + "7.1.0", _TESTS + "2", "o"),
    Cmd("test.battery.start", UPS + "7.1.0", _TESTS + "3", "o"),
    Cmd("test.battery.start.quick", UPS + "7.1.0", _TESTS + "4", "o"),
    Cmd("test.battery.start.deep", UPS + "7.1.0", _TESTS + "5", "o"),
    # upsShutdownAfterDelay / upsStartupAfterDelay: seconds until off / on (0 = now)
    Cmd("load.off", UPS + "8.2.0", 0),
    Cmd("load.on", UPS + "8.3.0", 0),
    Cmd("beeper.disable", UPS + "9.8.0", 1),
    Cmd("beeper.enable", UPS + "9.8.0", 2),
    Cmd("beeper.mute", UPS + "9.8.0", 3),
)

MIBS: tuple[Mib, ...] = (
    # listed before ietf; no auto-check OID, so classic detection probes its ups.model OID
    Mib("tripplite", VERSION, ROWS, CMDS, sysoid=("1.3.6.1.4.1.850.1",), version_2_8_5=VERSION_2_8_5),
    Mib("ietf", VERSION, ROWS, CMDS, sysoid=("1.3.6.1.2.1.33",), auto_check=UPS + "1.1.0",
        version_2_8_5=VERSION_2_8_5),
)
