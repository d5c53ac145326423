"""Huawei UPS5000 / UPS2000 with a GSE200M-class card (``hwUps`` tree ``.1.3.6.1.4.1.2011.6.174.1``):
NUT's ``huawei`` mapping (sysObjectID is net-snmp's generic Linux ``.1.3.6.1.4.1.8072.3.2.10``, so the
model OID confirms it).

Written from the HUAWEI-UPS-MIB object definitions; variable names follow NUT's huawei mapping,
including its quirks (kept so both drivers publish the same tree): the three output "realpower"
columns all feed output.L1.realpower (the last one answering wins) and the third output power-factor
column is published as output.L2.powerfactor.
"""

from __future__ import annotations

from ..table import ABSENT, STATIC, STATUS, STRING, Mib, Row

HW = "1.3.6.1.4.1.2011.6.174.1."
VERSION = "0.4"

SUPPLY = {1: "", 2: "OL BYPASS", 3: "OL", 4: "OB", 5: "", 6: "OL ECO", 7: "OB ECO"}
BATTERY_STATE = {1: "", 2: "", 3: "", 4: "", 5: "CHRG", 6: "DISCHRG"}
PHASES = {1: "1", 2: "3"}
VOLT_RATING = {1: "200", 2: "208", 3: "220", 4: "380", 5: "400", 6: "415", 7: "480", 8: "600", 9: "690"}
FREQ_RATING = {1: "50", 2: "60"}
POWER_RATING = {1: "80000", 2: "100000", 3: "120000", 4: "160000", 5: "200000", 6: "30000", 7: "40000",
                8: "60000", 9: "2400000", 10: "2500000", 11: "2800000", 12: "3000000"}
TEST_RESULT = {1: "done and passed", 2: "done and warning", 3: "done and error", 4: "aborted",
               5: "in progress", 6: "no test initiated"}


def _col(var: str, table: str, col: int, mult: float) -> Row:
    return Row(var, f"{HW}{table}.100.1.{col}.1", mult)


ROWS: tuple[Row, ...] = (
    Row("ups.mfr", None, flags=ABSENT | STRING, default="Huawei"),
    Row("ups.model", HW + "2.100.1.2.1", flags=STATIC | STRING, default="Generic SNMP UPS"),
    Row("ups.id", HW + "1.1.2.0", flags=STATIC | STRING),
    Row("ups.time", HW + "11.1.0"),                                  # seconds since the epoch
    Row("ups.firmware", HW + "2.100.1.3.1", flags=STATIC | STRING),
    Row("ups.serial", HW + "2.100.1.5.1", flags=STATIC | STRING),
    Row("ups.status", HW + "2.101.1.1.1", flags=STATUS, lookup=SUPPLY),       # hwUpsSystemSupplyMethod
    Row("ups.status", HW + "2.101.1.3.1", flags=STATUS, lookup=BATTERY_STATE),  # hwUpsBatteryState
    Row("ups.test.result", "1.3.6.1.2.1.33.1.7.3.0", flags=STRING, lookup=TEST_RESULT),
    # hwUpsCtrlInputStandard is in the MIB but not on the cards seen: NUT publishes a fixed 3
    Row("input.phases", None, flags=ABSENT | STRING, default="3"),
    _col("input.L1-N.voltage", "3", 1, 0.1),
    _col("input.L2-N.voltage", "3", 2, 0.1),
    _col("input.L3-N.voltage", "3", 3, 0.1),
    _col("input.frequency", "3", 4, 0.01),
    _col("input.L1.current", "3", 5, 0.1),
    _col("input.L2.current", "3", 6, 0.1),
    _col("input.L3.current", "3", 7, 0.1),
    _col("input.L1.powerfactor", "3", 8, 0.01),
    _col("input.L2.powerfactor", "3", 9, 0.01),
    _col("input.L3.powerfactor", "3", 10, 0.01),
    _col("input.bypass.L1-N.voltage", "5", 1, 0.1),
    _col("input.bypass.L2-N.voltage", "5", 2, 0.1),
    _col("input.bypass.L3-N.voltage", "5", 3, 0.1),
    _col("input.bypass.frequency", "5", 4, 0.01),
    Row("output.phases", None, flags=ABSENT | STRING, default="3"),
    _col("output.L1-N.voltage", "4", 1, 0.1),
    _col("output.L2-N.voltage", "4", 2, 0.1),
    _col("output.L3-N.voltage", "4", 3, 0.1),
    _col("output.L1.current", "4", 4, 0.1),
    _col("output.L2.current", "4", 5, 0.1),
    _col("output.L3.current", "4", 6, 0.1),
    _col("output.frequency", "4", 7, 0.01),
    _col("output.L1.realpower", "4", 8, 0.1),
    _col("output.L1.realpower", "4", 9, 0.1),
    _col("output.L1.realpower", "4", 10, 0.1),
    _col("output.L1.power", "4", 11, 0.1),
    _col("output.L2.power", "4", 12, 0.1),
    _col("output.L3.power", "4", 13, 0.1),
    _col("output.L1.power.percent", "4", 14, 0.1),
    _col("output.L2.power.percent", "4", 15, 0.1),
    _col("output.L3.power.percent", "4", 16, 0.1),
    Row("output.voltage.nominal", HW + "4.100.1.17.1", flags=STATIC | STRING, lookup=VOLT_RATING),
    Row("output.frequency.nominal", HW + "4.100.1.18.1", flags=STATIC | STRING, lookup=FREQ_RATING),
    Row("output.power.nominal", HW + "2.100.1.6.1", flags=STATIC | STRING, lookup=POWER_RATING),
    _col("output.L1.powerfactor", "4", 19, 0.01),
    _col("output.L2.powerfactor", "4", 20, 0.01),
    _col("output.L2.powerfactor", "4", 21, 0.01),
    _col("battery.voltage", "6", 1, 0.1),
    _col("battery.current", "6", 2, 0.1),
    _col("battery.charge", "6", 3, 1),
    _col("battery.runtime", "6", 4, 1),
)

MIBS: tuple[Mib, ...] = (
    Mib("huawei", VERSION, ROWS, sysoid=("1.3.6.1.4.1.8072.3.2.10",), auto_check=HW + "2.100.1.2.1",
        version_2_8_5="0.40"),
)
