"""APC rack PDUs (PowerNet-MIB, enterprise 318): NUT's ``apc_pdu`` mapping plus outlet commands.

Written from the PowerNet-MIB object definitions; the variable set follows NUT's ``apc_pdu`` table
(drivers.md §4.5) so that ``snmp-ups`` and this driver agree on the same agent:

* identity and outlet state come from the MasterSwitch ``sPDU`` group (``.318.1.1.4``), which
  MasterSwitch (AP79xx) and Rack PDU 2G (AP86xx/AP89xx) firmware both still answer;
* input current / power / nominal voltage from the ``rPDU`` group (``.318.1.1.12``).

Additions over NUT (listed in docs/snmp.md):

* ``outlet.N.load.off`` / ``load.on`` / ``load.cycle`` write sPDUOutletCtl = 2 outletOff /
  1 outletOn / 3 outletReboot -- the very OID NUT reads (and SETs) for ``outlet.N.status``, so a
  command shows up in the next poll. NUT offers no outlet commands for this MIB (only SET VAR
  ``outlet.N.status on|off``, which works here too).
* ``outlet.N.current`` / ``outlet.N.realpower`` from rPDU2OutletMeteredStatusTable (current in
  0.1 A, power in W) on metered-by-outlet models (AP86xx); absent columns are simply not published.
* the breaker banks of Rack PDU 2G models as ``outlet.group.N.{id,current,current.status}``
  (rPDU2BankStatusTable; ``outlet.group.count`` = rPDU2BankTableSize).

sysObjectIDs: rPDU .318.1.3.4.4, rPDU2 .318.1.3.4.5, MasterSwitch Plus / Rack PDU 2G .318.1.3.4.6.
Others (AP7902B answers .318.1.3.4.8) fall through to the classic probe of sPDUIdentModelNumber.
"""

from __future__ import annotations

from ..table import ABSENT, NEGINVALID, OUTLET, OUTLET_GROUP, RW, STATIC, STRING, Cmd, Mib, Row

VERSION = "0.4"

SPDU = "1.3.6.1.4.1.318.1.1.4."       # sPDU: MasterSwitch group
RPDU = "1.3.6.1.4.1.318.1.1.12."      # rPDU: rack PDU group
RPDU2 = "1.3.6.1.4.1.318.1.1.26."     # rPDU2: Rack PDU 2G group
SYSTEM = "1.3.6.1.2.1.1."

MODEL_OID = SPDU + "1.4.0"            # sPDUIdentModelNumber ("AP8641")
OUTLET_CTL = SPDU + "4.2.1.3.%i"      # sPDUOutletCtl: 1 outletOn, 2 outletOff, 3 outletReboot, 4 unknown ...

#: sPDUOutletCtl read back: NUT knows on/off only (4 outletUnknown, 5-7 "with delay" publish nothing)
OUTLET_STATE = {1: "on", 2: "off"}
#: the control OID exists = the outlet is switchable (NUT's convention for this MIB)
SWITCHABLE = {1: "yes", 2: "yes"}
#: rPDU2BankStatusLoadState lowLoad / normal / nearOverload / overload, in NUT's threshold words
BANK_LOAD = {1: "warning-low", 2: "good", 3: "warning-high", 4: "critical-high"}

ROWS: tuple[Row, ...] = (
    Row("device.mfr", None, flags=STATIC | ABSENT | STRING, default="APC"),
    Row("device.model", MODEL_OID, flags=STATIC | STRING),
    Row("device.type", None, flags=STATIC | ABSENT | STRING, default="pdu"),
    # NUT publishes an empty ups.status for this MIB (it has no status rows)
    Row("ups.status", None, flags=ABSENT | STRING, default=""),
    Row("device.contact", SYSTEM + "4.0", flags=STRING),
    Row("device.description", SYSTEM + "5.0", flags=STRING),       # sysName, as NUT
    Row("device.location", SYSTEM + "6.0", flags=STRING),
    Row("device.uptime", SYSTEM + "3.0", flags=NEGINVALID, fmt="%d"),  # TimeTicks -> whole seconds, as NUT
    Row("device.serial", SPDU + "1.5.0", flags=STATIC | STRING),
    Row("device.part", MODEL_OID, flags=STATIC | STRING),
    Row("device.version", SPDU + "1.1.0", flags=STATIC | STRING),  # hardware revision
    Row("ups.firmware", SPDU + "1.2.0", flags=STRING),
    Row("ups.date", SPDU + "1.3.0", flags=STRING),                 # date of manufacture
    Row("input.realpower", RPDU + "1.16.0"),                       # rPDUIdentDevicePowerWatts
    Row("input.current", RPDU + "2.3.1.1.2.1", 0.1),               # rPDULoadStatusLoad.1 (phase 1), 0.1 A
    Row("input.voltage.nominal", RPDU + "1.15.0", flags=NEGINVALID),  # rPDUIdentDeviceLinetoLineVoltage
    Row("outlet.count", SPDU + "4.1.0", flags=STATIC),             # sPDUOutletControlTableSize
    Row("outlet.%i.id", SPDU + "4.2.1.1.%i", flags=STATIC | OUTLET),
    Row("outlet.%i.desc", SPDU + "4.2.1.4.%i", flags=RW | STRING | OUTLET, asn1="s", length=128),
    Row("outlet.%i.status", OUTLET_CTL, flags=RW | STRING | OUTLET, lookup=OUTLET_STATE),
    Row("outlet.%i.switchable", OUTLET_CTL, flags=STATIC | STRING | OUTLET, lookup=SWITCHABLE),
    # rPDU2OutletMeteredStatusCurrent (0.1 A) / Power (W): metered-by-outlet models only
    Row("outlet.%i.current", RPDU2 + "9.4.3.1.6.%i", 0.1, flags=NEGINVALID | OUTLET),
    Row("outlet.%i.realpower", RPDU2 + "9.4.3.1.7.%i", flags=NEGINVALID | OUTLET),
    # breaker banks (rPDU2BankStatusTable) as outlet groups: number, current (0.1 A), load state
    Row("outlet.group.count", RPDU2 + "7.0", flags=STATIC),                # rPDU2BankTableSize
    Row("outlet.group.%i.id", RPDU2 + "8.3.1.3.%i", flags=STATIC | OUTLET_GROUP),
    Row("outlet.group.%i.current", RPDU2 + "8.3.1.5.%i", 0.1, flags=NEGINVALID | OUTLET_GROUP),
    Row("outlet.group.%i.current.status", RPDU2 + "8.3.1.4.%i", flags=STRING | OUTLET_GROUP,
        lookup=BANK_LOAD),
)

CMDS: tuple[Cmd, ...] = (
    Cmd("outlet.%i.load.off", OUTLET_CTL, 2, flags=OUTLET),
    Cmd("outlet.%i.load.on", OUTLET_CTL, 1, flags=OUTLET),
    Cmd("outlet.%i.load.cycle", OUTLET_CTL, 3, flags=OUTLET),
)

APC_PDU = Mib(
    name="apc_pdu",
    version=VERSION,
    version_2_8_5="0.40",            # NUT 2.8.5 prints the same table's version as 0.40
    rows=ROWS,
    cmds=CMDS,
    sysoid=("1.3.6.1.4.1.318.1.3.4.4", "1.3.6.1.4.1.318.1.3.4.5", "1.3.6.1.4.1.318.1.3.4.6"),
    auto_check=MODEL_OID,
    device_type="pdu",
    outlet_index_base=1,
    label="APC PDU (PowerNet sPDU/rPDU)",
)

MIBS: tuple[Mib, ...] = (APC_PDU,)
