"""Phoenixtec / "PPC" SNMP cards (``.1.3.6.1.4.1.935``, sold under many brands, also in Tripp Lite
units): NUT's ``xppc`` mapping. No check OID: classic detection probes upsBaseIdentModel.

Written from the PPC MIB object definitions (upsBase* / upsSmart* groups); names follow NUT's xppc
mapping. Temperatures and voltages are in tenths.
"""

from __future__ import annotations

from ..table import ABSENT, STATIC, STATUS, STRING, Mib, Row

PPC = "1.3.6.1.4.1.935.1.1.1."
VERSION = "0.4"

BATTERY_STATUS = {1: "", 2: "", 3: "LB"}
OUTPUT_STATUS = {1: "", 2: "OL", 3: "OB", 4: "OL BOOST", 5: "OFF", 6: "BYPASS", 7: "", 8: "OFF", 9: "OL TRIM"}

ROWS: tuple[Row, ...] = (
    Row("ups.mfr", None, flags=STATIC | ABSENT | STRING, default="Tripp Lite / Phoenixtec"),
    Row("ups.model", PPC + "1.1.1.0", flags=STRING, default="Generic Phoenixtec SNMP device"),
    Row("ups.status", PPC + "2.1.1.0", flags=STATUS, lookup=BATTERY_STATUS),   # upsBaseBatteryStatus
    Row("battery.charge", PPC + "2.2.1.0"),                                      # upsSmartBatteryCapacity
    Row("ups.temperature", PPC + "2.2.3.0", 0.1),
    Row("input.voltage", PPC + "3.2.1.0", 0.1),
    Row("ups.status", PPC + "4.1.1.0", flags=STATUS, lookup=OUTPUT_STATUS),    # upsBaseOutputStatus
    Row("output.voltage", PPC + "4.2.1.0", 0.1),
    Row("output.frequency", PPC + "4.2.2.0", 0.1),
    Row("ups.load", PPC + "4.2.3.0"),
)

MIBS: tuple[Mib, ...] = (
    Mib("xppc", VERSION, ROWS, sysoid=("1.3.6.1.4.1.935",), version_2_8_5="0.40"),
)
