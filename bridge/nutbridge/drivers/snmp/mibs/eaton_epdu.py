"""Eaton ePDU G2 "Marlin" / G3 "Shark" (EATON-EPDU-MIB, ``.1.3.6.1.4.1.534.6.6.7``): NUT's
``eaton_epdu`` mapping.

Written from the EATON-EPDU-MIB object layout; variable names, scaling and lookups follow NUT's
``eaton_epdu`` table (drivers.md §4.5), checked against Debian's snmp-ups on
``tests/data/snmp/pdu-eaton-epdu.snmprec``.

Every table is indexed by the daisy-chain unit first (0 = the master or a stand-alone unit), then
by input / phase / group / outlet. This table serves unit 0; outlet and group OIDs are 2-index
templates (``<column>.<unit>.<n>``). Units measure in mV, mA, W, VA and 0.1 Hz.

Outlet commands write a delay in seconds to outletControl{Off,On,Reboot}Cmd (0 = now, -1 =
cancel); the ``.delay`` variants take the delay as the INSTCMD parameter.

Differences from NUT (docs/snmp.md): ``outlet.current`` is the unit current in A (NUT scales the
mA value by 0.01, i.e. 10x too high); daisy-chained units other than the master (NUT's
``device.N.*``), ``input.feed.*`` and ``outlet.group.N.phase`` are not published.
"""

from __future__ import annotations

from ..table import (
    ABSENT,
    ALARM,
    NEGINVALID,
    OUTLET,
    OUTLET_GROUP,
    RW,
    SEMI,
    STATIC,
    STRING,
    UNIQUE,
    Cmd,
    Mib,
    Row,
    SnmpValue,
)

VERSION = "0.69"

EPDU = "1.3.6.1.4.1.534.6.6.7."
UNIT = EPDU + "1.2.1."                # unitTable: <col>.<unit>
MODEL_OID = UNIT + "2.0"              # productName of unit 0

OUTLET_STATUS = {0: "off", 1: "on", 2: "pendingOff", 3: "pendingOn"}
GROUP_STATUS = {0: "off", 1: "on", 2: "rebooting", 3: "mixed"}
OUTLET_SWITCHABLE = {1: "yes", 2: "no"}
UNIT_SWITCHABLE = {0: "no", 1: "yes", 2: "no", 3: "yes", 4: "no"}   # unitType
G2_SWITCHABLE = {-1: "yes", 0: "yes"}   # old G2: an answering control OID means switchable
OUTLET_TYPE = {0: "unknown", 1: "iecC13", 2: "iecC19", 10: "uk", 11: "french", 12: "schuko", 20: "nema515",
               21: "nema51520", 22: "nema520", 23: "nemaL520", 24: "nemaL530", 25: "nema615", 26: "nema620",
               27: "nemaL620", 28: "nemaL630", 29: "nemaL715", 30: "rf203p277"}
GROUP_TYPE = {0: "unknown", 1: "breaker1pole", 2: "breaker2pole", 3: "breaker3pole", 4: "outlet-section",
              5: "user-defined"}
INPUT_TYPE = {1: "1", 2: "2", 3: "3", 4: "3"}   # single, split, 3-phase delta, 3-phase wye
PRESENCE = {-1: "unknown", 0: "no", 1: "yes"}
CONTACT = {-1: "unknown", 0: "open", 1: "closed"}
THRESHOLD = {0: "good", 1: "warning-low", 2: "critical-low", 3: "warning-high", 4: "critical-high"}
FREQ_STATUS = {0: "good", 1: "out-of-range"}


def _alarms(what: str) -> dict[int, str]:
    # value 0 (no threshold crossed) publishes nothing
    return {1: f"low {what} warning!", 2: f"low {what} critical!", 3: f"high {what} warning!",
            4: f"high {what} critical!"}


VOLTAGE_ALARMS, CURRENT_ALARMS = _alarms("voltage"), _alarms("current")
TEMPERATURE_ALARMS, HUMIDITY_ALARMS = _alarms("temperature"), _alarms("humidity")
FREQ_ALARMS = {1: "frequency out of range!"}

_LIMITS = (("low.warning", 0), ("low.critical", 1), ("high.warning", 2), ("high.critical", 3))


def _macaddr(value: SnmpValue) -> str | None:
    # net-snmp's hex rendering, which NUT publishes as is (upper case, one trailing space)
    raw = value.raw
    if not isinstance(raw, bytes) or not raw:
        return None
    return "".join(f"{b:02X} " for b in raw)


def _units(value: SnmpValue) -> str | None:
    # unitsPresent: "0,1,3" = the daisy-chain indexes that answer
    text = value.text.strip()
    return str(text.count(",") + 1) if text else None


def _measure(prefix: str, table: str, *, status_col: int, value_col: int, first_limit: int, mult: float,
             alarms: dict[int, str], alarm_var: str, nominal_col: int | None = None) -> tuple[Row, ...]:
    """value, status, alarm, nominal and the 4 RW thresholds of one measured quantity."""
    idx = f"0.1.{_phase(prefix)}"   # <unit>.<input>.<phase>
    out = [Row(prefix, f"{table}{value_col}.{idx}", mult)]
    if nominal_col is not None:
        out.append(Row(f"{prefix}.nominal", f"{table}{nominal_col}.{idx}", mult))
    out.append(Row(f"{prefix}.status", f"{table}{status_col}.{idx}", flags=STRING, lookup=THRESHOLD))
    out.append(Row(alarm_var, f"{table}{status_col}.{idx}", flags=ALARM | STRING, lookup=alarms))
    out += [Row(f"{prefix}.{name}", f"{table}{first_limit + k}.{idx}", mult, flags=RW | NEGINVALID)
            for name, k in _LIMITS]
    return tuple(out)


def _phase(prefix: str) -> str:
    for n in (1, 2, 3):
        if f".L{n}." in prefix + ".":
            return str(n)
    return "1"


VOLTAGE, CURRENT, POWER = EPDU + "3.2.1.", EPDU + "3.3.1.", EPDU + "3.4.1."

_INPUT_LINES: list[Row] = []
for _p in ("input", "input.L1", "input.L2", "input.L3"):
    _alarm = "ups.alarm" if _p == "input" else f"{_p.split('.')[1]}.alarm"
    _INPUT_LINES += _measure(f"{_p}.voltage", VOLTAGE, value_col=3, status_col=4, first_limit=5, mult=0.001,
                             alarms=VOLTAGE_ALARMS, alarm_var=_alarm)
    _INPUT_LINES += _measure(f"{_p}.current", CURRENT, value_col=4, status_col=5, first_limit=6, mult=0.001,
                             alarms=CURRENT_ALARMS, alarm_var=_alarm, nominal_col=3)

ROWS: tuple[Row, ...] = (
    # standard MIB-II objects (NUT: RW; SET of sysDescr is refused by real agents anyway)
    Row("device.description", "1.3.6.1.2.1.1.1.0", flags=STRING),
    Row("device.contact", "1.3.6.1.2.1.1.4.0", flags=RW | STRING, asn1="s", length=128),
    Row("device.location", "1.3.6.1.2.1.1.6.0", flags=RW | STRING, asn1="s", length=128),
    Row("device.mfr", None, flags=STATIC | ABSENT | STRING, default="EATON"),
    Row("device.model", MODEL_OID, flags=STATIC | STRING),
    Row("device.serial", UNIT + "4.0", flags=STATIC | STRING),
    Row("device.type", None, flags=STATIC | ABSENT | STRING, default="pdu"),
    Row("device.part", UNIT + "3.0", flags=STATIC | STRING),
    Row("device.macaddr", "1.3.6.1.2.1.2.2.1.6.2", flags=STATIC | STRING, convert=_macaddr),
    Row("device.count", None, flags=STATIC | ABSENT, default="1"),
    Row("device.count", EPDU + "1.1.0", flags=STATIC, convert=_units),   # unitsPresent (G3 >= 02.00.0051)
    Row("ups.mfr", None, flags=STATIC | ABSENT | STRING, default="EATON"),
    Row("ups.model", MODEL_OID, flags=STATIC | STRING),
    Row("ups.serial", UNIT + "4.0", flags=STATIC | STRING),
    Row("ups.firmware", UNIT + "5.0", flags=STRING),
    Row("ups.type", None, flags=STATIC | ABSENT | STRING, default="pdu"),
    Row("ups.status", None, flags=ABSENT | STRING, default=""),    # NUT publishes it empty for PDUs
    # input (inputTable / input{Voltage,Current,Power}Table: <col>.<unit>.<input>[.<phase>])
    Row("input.phases", EPDU + "3.1.1.2.0.1", flags=STATIC, lookup=INPUT_TYPE),
    Row("input.frequency", EPDU + "3.1.1.3.0.1", 0.1),
    Row("input.frequency.status", EPDU + "3.1.1.4.0.1", flags=STRING, lookup=FREQ_STATUS),
    Row("ups.alarm", EPDU + "3.1.1.4.0.1", flags=ALARM | STRING, lookup=FREQ_ALARMS),
    Row("input.load", CURRENT + "11.0.1.1", flags=NEGINVALID),
    Row("input.L1.load", CURRENT + "11.0.1.1", flags=NEGINVALID),
    Row("input.L2.load", CURRENT + "11.0.1.2", flags=NEGINVALID),
    Row("input.L3.load", CURRENT + "11.0.1.3", flags=NEGINVALID),
    *_INPUT_LINES,
    # total real / apparent power: G3 sum table first, then the Marlin 3-phase total, then phase 2 (1-phase)
    Row("input.realpower", EPDU + "3.5.1.4.0.1", flags=NEGINVALID | UNIQUE),
    Row("input.realpower", POWER + "4.0.1.4", flags=NEGINVALID | UNIQUE),
    Row("input.realpower", POWER + "4.0.1.2", flags=NEGINVALID),
    Row("input.L1.realpower", POWER + "4.0.1.1", flags=NEGINVALID),
    Row("input.L2.realpower", POWER + "4.0.1.2", flags=NEGINVALID),
    Row("input.L3.realpower", POWER + "4.0.1.3", flags=NEGINVALID),
    Row("input.power", EPDU + "3.5.1.3.0.1", flags=NEGINVALID | UNIQUE),
    Row("input.power", POWER + "3.0.1.4", flags=NEGINVALID | UNIQUE),
    Row("input.power", POWER + "3.0.1.2", flags=NEGINVALID),
    Row("input.L1.power", POWER + "3.0.1.1", flags=NEGINVALID),
    Row("input.L2.power", POWER + "3.0.1.2", flags=NEGINVALID),
    Row("input.L3.power", POWER + "3.0.1.3", flags=NEGINVALID),
    Row("input.power.nominal", POWER + "9.0.1.1", flags=NEGINVALID),
    # ambient (environment probe on the unit)
    Row("ambient.present", EPDU + "7.1.1.3.0.1", flags=STRING, lookup=PRESENCE),
    Row("ambient.temperature.status", EPDU + "7.1.1.5.0.1", flags=STRING, lookup=THRESHOLD),
    Row("ups.alarm", EPDU + "7.1.1.5.0.1", flags=ALARM | STRING, lookup=TEMPERATURE_ALARMS),
    Row("ambient.temperature", EPDU + "7.1.1.4.0.1", 0.1),
    Row("ambient.temperature.low", EPDU + "7.1.1.7.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.temperature.low.critical", EPDU + "7.1.1.7.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.temperature.low.warning", EPDU + "7.1.1.6.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.temperature.high", EPDU + "7.1.1.9.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.temperature.high.warning", EPDU + "7.1.1.8.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.temperature.high.critical", EPDU + "7.1.1.9.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.humidity.status", EPDU + "7.2.1.5.0.1", flags=STRING, lookup=THRESHOLD),
    Row("ups.alarm", EPDU + "7.2.1.5.0.1", flags=ALARM | STRING, lookup=HUMIDITY_ALARMS),
    Row("ambient.humidity", EPDU + "7.2.1.4.0.1", 0.1),
    Row("ambient.humidity.low", EPDU + "7.2.1.7.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.humidity.low.warning", EPDU + "7.2.1.6.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.humidity.low.critical", EPDU + "7.2.1.7.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.humidity.high", EPDU + "7.2.1.9.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.humidity.high.warning", EPDU + "7.2.1.8.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.humidity.high.critical", EPDU + "7.2.1.9.0.1", 0.1, flags=RW | NEGINVALID),
    Row("ambient.contacts.1.status", EPDU + "7.3.1.4.0.1", flags=STRING, lookup=CONTACT),
    Row("ambient.contacts.2.status", EPDU + "7.3.1.4.0.2", flags=STRING, lookup=CONTACT),
    # the outlet collection as a whole
    Row("outlet.count", UNIT + "22.0", flags=STATIC, default="0"),
    Row("outlet.id", None, flags=STATIC | ABSENT, default="0"),
    Row("outlet.desc", None, flags=STATIC | ABSENT | STRING, default="All outlets"),
    Row("outlet.switchable", UNIT + "10.0", flags=STATIC | STRING | UNIQUE, lookup=UNIT_SWITCHABLE),
    Row("outlet.switchable", EPDU + "6.6.1.3.0.1", flags=STATIC | STRING | UNIQUE, lookup=G2_SWITCHABLE),
    # legacy duplicates of input.* that NUT still publishes
    Row("outlet.frequency", EPDU + "3.1.1.3.0.1", 0.1),
    Row("outlet.voltage", VOLTAGE + "3.0.1.1", 0.001),
    Row("outlet.current", CURRENT + "4.0.1.1", 0.001),
    Row("outlet.realpower", POWER + "4.0.1.4"),
    Row("outlet.power", POWER + "3.0.1.4"),
    # per outlet: <column>.<unit>.<outlet>
    Row("outlet.%i.desc", EPDU + "6.1.1.3.%i.%i", flags=STATIC | RW | STRING | OUTLET, asn1="s", length=128),
    Row("outlet.%i.status", EPDU + "6.6.1.2.%i.%i", flags=STRING | OUTLET, lookup=OUTLET_STATUS),
    Row("outlet.%i.id", EPDU + "6.6.1.7.%i.%i", flags=STATIC | OUTLET),
    # physical name (G3), else outletID ("A1")
    Row("outlet.%i.name", EPDU + "6.1.1.6.%i.%i", flags=STATIC | STRING | UNIQUE | OUTLET),
    Row("outlet.%i.name", EPDU + "6.1.1.2.%i.%i", flags=STATIC | STRING | UNIQUE | OUTLET),
    Row("outlet.%i.current", EPDU + "6.4.1.3.%i.%i", 0.001, flags=OUTLET),
    Row("outlet.%i.current.status", EPDU + "6.4.1.4.%i.%i", flags=STRING | OUTLET, lookup=THRESHOLD),
    Row("outlet.%i.alarm", EPDU + "6.4.1.4.%i.%i", flags=STRING | OUTLET, lookup=CURRENT_ALARMS),
    # settings: semi-static (re-read every ``semistaticfreq`` polls) so a poll moves only measurements
    *(Row(f"outlet.%i.current.{name}", f"{EPDU}6.4.1.{5 + k}.%i.%i", 0.001,
          flags=SEMI | RW | NEGINVALID | OUTLET) for name, k in _LIMITS),
    Row("outlet.%i.realpower", EPDU + "6.5.1.3.%i.%i", flags=OUTLET),
    Row("outlet.%i.voltage", EPDU + "6.3.1.2.%i.%i", 0.001, flags=OUTLET),
    Row("outlet.%i.voltage.status", EPDU + "6.3.1.3.%i.%i", flags=STRING | OUTLET, lookup=THRESHOLD),
    Row("outlet.%i.power", EPDU + "6.5.1.2.%i.%i", flags=OUTLET),
    Row("outlet.%i.switchable", EPDU + "6.6.1.9.%i.%i", flags=SEMI | STRING | UNIQUE | OUTLET,
        lookup=OUTLET_SWITCHABLE),
    Row("outlet.%i.switchable", EPDU + "6.6.1.3.%i.%i", flags=STATIC | STRING | UNIQUE | OUTLET,
        lookup=G2_SWITCHABLE),
    Row("outlet.%i.type", EPDU + "6.1.1.5.%i.%i", flags=STATIC | STRING | OUTLET, lookup=OUTLET_TYPE),
    Row("outlet.%i.delay.shutdown", EPDU + "6.6.1.10.%i.%i", flags=SEMI | RW | NEGINVALID | OUTLET),
    # pending command timers (-1 = none)
    Row("outlet.%i.timer.shutdown", EPDU + "6.6.1.3.%i.%i", flags=OUTLET),
    Row("outlet.%i.timer.start", EPDU + "6.6.1.4.%i.%i", flags=OUTLET),
    # outlet groups (sections / breakers): <column>.<unit>.<group>
    Row("outlet.group.count", UNIT + "21.0", flags=STATIC, default="0"),
    Row("outlet.group.%i.id", EPDU + "5.1.1.2.%i.%i", flags=STATIC | STRING | OUTLET_GROUP),
    Row("outlet.group.%i.desc", EPDU + "5.1.1.3.%i.%i", flags=STATIC | RW | STRING | OUTLET_GROUP, asn1="s",
        length=128),
    Row("outlet.group.%i.name", EPDU + "5.1.1.8.%i.%i", flags=STATIC | STRING | OUTLET_GROUP),
    Row("outlet.group.%i.color", EPDU + "5.1.1.7.%i.%i", flags=STATIC | STRING | OUTLET_GROUP),
    Row("outlet.group.%i.type", EPDU + "5.1.1.4.%i.%i",
        flags=STATIC | STRING | OUTLET_GROUP, lookup=GROUP_TYPE),
    Row("outlet.group.%i.status", EPDU + "5.6.1.2.%i.%i", flags=STRING | OUTLET_GROUP, lookup=GROUP_STATUS),
    Row("outlet.group.%i.count", EPDU + "5.1.1.6.%i.%i", flags=OUTLET_GROUP),
    Row("outlet.group.%i.voltage", EPDU + "5.3.1.3.%i.%i", 0.001, flags=OUTLET_GROUP),
    Row("outlet.group.%i.voltage.status", EPDU + "5.3.1.4.%i.%i",
        flags=STRING | OUTLET_GROUP, lookup=THRESHOLD),
    Row("outlet.group.%i.alarm", EPDU + "5.3.1.4.%i.%i", flags=STRING | OUTLET_GROUP, lookup=VOLTAGE_ALARMS),
    Row("outlet.group.%i.current", EPDU + "5.4.1.3.%i.%i", 0.001, flags=OUTLET_GROUP),
    Row("outlet.group.%i.current.nominal", EPDU + "5.4.1.2.%i.%i", 0.001, flags=OUTLET_GROUP),
    Row("outlet.group.%i.current.status", EPDU + "5.4.1.4.%i.%i",
        flags=STRING | OUTLET_GROUP, lookup=THRESHOLD),
    Row("outlet.group.%i.alarm", EPDU + "5.4.1.4.%i.%i", flags=STRING | OUTLET_GROUP, lookup=CURRENT_ALARMS),
    Row("outlet.group.%i.load", EPDU + "5.4.1.10.%i.%i", flags=NEGINVALID | OUTLET_GROUP),
    *(Row(f"outlet.group.%i.current.{name}", f"{EPDU}5.4.1.{5 + k}.%i.%i", 0.001,
          flags=SEMI | RW | NEGINVALID | OUTLET_GROUP) for name, k in _LIMITS),
    Row("outlet.group.%i.realpower", EPDU + "5.5.1.3.%i.%i", flags=NEGINVALID | OUTLET_GROUP),
    Row("outlet.group.%i.power", EPDU + "5.5.1.2.%i.%i", flags=NEGINVALID | OUTLET_GROUP),
    Row("outlet.group.%i.input", EPDU + "5.1.1.9.%i.%i", flags=NEGINVALID | OUTLET_GROUP),
)

CMDS: tuple[Cmd, ...] = (
    # outletControl{Off,On,Reboot}Cmd: seconds until the command runs (0 = now)
    Cmd("outlet.%i.load.off", EPDU + "6.6.1.3.%i.%i", 0, flags=OUTLET),
    Cmd("outlet.%i.load.on", EPDU + "6.6.1.4.%i.%i", 0, flags=OUTLET),
    Cmd("outlet.%i.load.cycle", EPDU + "6.6.1.5.%i.%i", 0, flags=OUTLET),
    Cmd("outlet.%i.load.off.delay", EPDU + "6.6.1.3.%i.%i", 0, flags=OUTLET, param=True),
    Cmd("outlet.%i.load.on.delay", EPDU + "6.6.1.4.%i.%i", 0, flags=OUTLET, param=True),
    Cmd("outlet.%i.load.cycle.delay", EPDU + "6.6.1.5.%i.%i", 0, flags=OUTLET, param=True),
    # groupControl{Off,On,Reboot}Cmd
    Cmd("outlet.group.%i.load.off", EPDU + "5.6.1.3.%i.%i", 0, flags=OUTLET_GROUP),
    Cmd("outlet.group.%i.load.on", EPDU + "5.6.1.4.%i.%i", 0, flags=OUTLET_GROUP),
    Cmd("outlet.group.%i.load.cycle", EPDU + "5.6.1.5.%i.%i", 0, flags=OUTLET_GROUP),
)

EATON_EPDU = Mib(
    name="eaton_epdu",
    version=VERSION,
    rows=ROWS,
    cmds=CMDS,
    sysoid=("1.3.6.1.4.1.534.6.6.7",),
    auto_check=MODEL_OID,
    device_type="pdu",
    outlet_index_base=1,
    group_index_base=1,
    label="Eaton ePDU (Marlin/Shark)",
)

MIBS: tuple[Mib, ...] = (EATON_EPDU,)
