"""SNMP OID -> NUT variable tables: the vocabulary every MIB module is written in.

A MIB module (``mibs/ietf.py``, ``mibs/apcc.py``, ``mibs/eaton_epdu.py`` ...) is pure data: one or
more :class:`Mib` objects (NUT's ``mib2nut_info_t``) with a :class:`Row` table (NUT's
``snmp_info_t`` rows for variables) and a :class:`Cmd` table (the ``SU_TYPE_CMD`` rows). Each module
exposes ``MIBS: tuple[Mib, ...]`` and imports only this module; :mod:`.mibs` lists them in NUT's
detection order and picks the one for an agent. :class:`SnmpValue`, the typed answer a row's
``convert`` receives, lives here too, so that neither the tables nor :mod:`.mapper` (which applies
them) import the transport.

Row semantics (transcribed from NUT's documented snmp-ups behaviour, drivers.md §4):

* Several rows for the same ``var`` are alternatives in table order. A row whose OID does not
  answer during the first (init) poll is dropped for the session (NUT clears ``SU_FLAG_OK``);
  with :data:`UNIQUE` the first answering row also disables the later rows of that variable.
  Without UNIQUE a later answering row overwrites an earlier one (NUT behaviour).
* Numbers: INTEGER/Gauge32/Counter32 value x ``mult``; TimeTicks are hundredths of a second and
  are divided by 100 first. Published as an integer when integral, else with two decimals
  (NUT's ``%.2f``), unless ``fmt`` is given. ``lookup`` maps the raw integer to text (unknown
  values publish nothing); ``convert`` replaces all of that with a function of the raw value.
* :data:`STATUS` rows: the lookup text is a space-separated list of ``ups.status`` tokens
  ("OL", "OB", "LB", "OL BOOST", "" ...), concatenated over all status rows in table order.
  :data:`ALARM` rows likewise add their text to ``ups.alarm``.
* Templates: a ``var``/``oid`` with ``%i`` and flag :data:`OUTLET` (or :data:`OUTLET_GROUP`)
  is expanded for N = 1 .. ``outlet.count`` (``outlet.group.count``): the var gets N, the OID gets
  ``N - 1 + base`` where base is :attr:`Mib.outlet_index_base` (0 or 1; None = probe). An OID with
  two ``%i`` is a daisy-chain OID (Eaton ePDU): the first ``%i`` is the unit (0 = the master /
  a single unit), the second the outlet / group index.
* Phase rows: :data:`INPUT_1` / :data:`INPUT_3` (and OUTPUT_*, BYPASS_*) rows are only used when
  ``input.phases`` (``output.phases``, ``input.bypass.phases``) is 1 / 3 (a row with neither flag
  is always used). The phase count comes from the ``*.phases`` row(s) of the table itself.
* RW rows (:data:`RW`): SET VAR maps the text back through ``lookup`` (reverse) or divides by
  ``mult`` and writes it with ASN.1 type ``asn1`` ("i" INTEGER, "u" Gauge32/Unsigned32, "s"
  OCTET STRING, "t" TimeTicks). :data:`STRING` RW rows publish ``length`` as the max length.
* :data:`ABSENT` rows publish ``default`` without reading anything (``ups.delay.shutdown``
  ...); ``option`` names a ups.conf option that overrides the default (e.g. "offdelay").
* Commands: :class:`Cmd` writes ``value`` (type ``asn1``) to ``oid``. A command is offered only
  when its OID answers a GET at init (NUT's ``su_addcmd``), unless ``always`` is set. Outlet
  commands (``outlet.%i.load.off``) are templates like rows. ``param`` = True: INSTCMD's
  parameter (a delay) replaces ``value``.

This module holds data types only (no I/O, no mapping logic): :mod:`.mapper` turns answers into
NUT variables with a table, :mod:`.driver` does the GETs/walks through :mod:`.session`.
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "ABSENT", "ALARM", "BYPASS_1", "BYPASS_3", "DAISY", "INPUT_1", "INPUT_3", "NAINVALID", "NEGINVALID",
    "OUTLET", "OUTLET_GROUP", "OUTPUT_1", "OUTPUT_3", "RW", "SEMI", "STATIC", "STATUS", "STRING", "UNIQUE",
    "ZEROINVALID", "Cmd", "Converter", "Flag", "Mib", "Row", "SnmpValue",
]

# anything but string.printable without VT and FF: such text is shown as hex
_NOT_PRINTABLE = re.compile("[^" + re.escape("".join(sorted(set(string.printable) - set("\x0b\x0c")))) + "]")


@dataclass(frozen=True, slots=True)
class SnmpValue:
    """One answered varbind value with its ASN.1 kind.

    ``kind``: "int" (INTEGER/Integer32), "uint" (Gauge32/Unsigned32), "counter" (Counter32),
    "counter64", "timeticks" (hundredths of a second), "str" (OCTET STRING, ``raw`` is bytes),
    "oid" (``raw`` is dotted text without a leading dot), "ip" (dotted text), "opaque", "null".
    """

    kind: str
    raw: int | bytes | str

    @property
    def is_number(self) -> bool:
        return isinstance(self.raw, int)

    @property
    def number(self) -> int:
        """The integer value (raises ValueError for non-numbers)."""
        if isinstance(self.raw, int):
            return self.raw
        raise ValueError(f"not a number: {self.kind}")

    @property
    def text(self) -> str:
        """Display text: numbers in decimal, printable strings as such (trailing NULs cut), binary
        octet strings as hex bytes separated by spaces ("00 C0 B7 ..", like net-snmp)."""
        if isinstance(self.raw, int):
            return str(self.raw)
        if isinstance(self.raw, str):
            return self.raw
        data = self.raw.rstrip(b"\x00")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        if not _NOT_PRINTABLE.search(text):
            return text
        return self.raw.hex(" ").upper()

    @classmethod
    def of(cls, kind: str, raw: int | bytes | str) -> SnmpValue:
        return cls(kind, raw)


class Flag(enum.IntFlag):
    """Row/command flags (NUT's ST_FLAG_* / SU_FLAG_* / SU_* template flags)."""

    NONE = 0
    STATIC = 1 << 0        # read once at init (SU_FLAG_STATIC)
    SEMI = 1 << 1          # semi-static: re-read every ``semistaticfreq`` polls (SU_FLAG_SEMI_STATIC)
    ABSENT = 1 << 2        # not read: publish ``default`` (SU_FLAG_ABSENT)
    RW = 1 << 3            # writable with SET VAR (ST_FLAG_RW)
    STRING = 1 << 4        # a string variable (ST_FLAG_STRING); RW strings publish ``length``
    NEGINVALID = 1 << 5    # negative values are "not available" (SU_FLAG_NEGINVALID)
    UNIQUE = 1 << 6        # first answering row of this var disables the others (SU_FLAG_UNIQUE)
    STATUS = 1 << 7        # lookup text = ups.status tokens (SU_STATUS_*)
    ALARM = 1 << 8         # lookup text = ups.alarm text
    OUTLET = 1 << 9        # %i template over outlets (SU_OUTLET)
    OUTLET_GROUP = 1 << 10  # %i template over outlet groups (SU_OUTLET_GROUP)
    INPUT_1 = 1 << 11      # only when input.phases == 1 (SU_INPUT_1)
    INPUT_3 = 1 << 12      # only when input.phases == 3 (SU_INPUT_3)
    OUTPUT_1 = 1 << 13
    OUTPUT_3 = 1 << 14
    BYPASS_1 = 1 << 15
    BYPASS_3 = 1 << 16
    ZEROINVALID = 1 << 17  # zero is "not available" (SU_FLAG_ZEROINVALID)
    DAISY = 1 << 18        # device-level row of a daisy-chained PDU (first %i = unit)
    NAINVALID = 1 << 19    # the string "N/A" is "not available" (SU_FLAG_NAINVALID)


(STATIC, SEMI, ABSENT, RW, STRING, NEGINVALID, UNIQUE, STATUS, ALARM, OUTLET, OUTLET_GROUP, INPUT_1, INPUT_3,
 OUTPUT_1, OUTPUT_3, BYPASS_1, BYPASS_3, ZEROINVALID, DAISY, NAINVALID) = (
    Flag.STATIC, Flag.SEMI, Flag.ABSENT, Flag.RW, Flag.STRING, Flag.NEGINVALID, Flag.UNIQUE, Flag.STATUS,
    Flag.ALARM, Flag.OUTLET, Flag.OUTLET_GROUP, Flag.INPUT_1, Flag.INPUT_3, Flag.OUTPUT_1, Flag.OUTPUT_3,
    Flag.BYPASS_1, Flag.BYPASS_3, Flag.ZEROINVALID, Flag.DAISY, Flag.NAINVALID)

#: raw answer -> NUT text (None = publish nothing). Gets the whole value (type and raw).
Converter: TypeAlias = Callable[[SnmpValue], "str | None"]


@dataclass(frozen=True, slots=True)
class Row:
    """One NUT variable read from one OID (see the module docstring for the rules)."""

    var: str
    oid: str | None
    mult: float = 1.0
    flags: Flag = Flag.NONE
    lookup: Mapping[int, str] | None = None
    fmt: str | None = None               # printf format for numbers ("%.1f"); None = NUT's int-or-%.2f
    default: str | None = None           # ABSENT rows: the value; others: published when the OID is absent
    option: str | None = None            # ups.conf option overriding ``default`` (ABSENT rows)
    length: int = 0                      # RW STRING rows: max length
    convert: Converter | None = None     # replaces mult/lookup/fmt (NUT's fun_* helpers)
    asn1: str = "i"                      # SET VAR type: i INTEGER, u Gauge32, s OCTET STRING, t TimeTicks
    rw_range: tuple[int, int] | None = None
    to_raw: Callable[[str], int | str | None] | None = None   # SET VAR text -> raw value (own conversion)


@dataclass(frozen=True, slots=True)
class Cmd:
    """An instant command: SET ``oid`` = ``value`` (type ``asn1``)."""

    cmd: str
    oid: str
    value: int | str = 1
    asn1: str = "i"
    flags: Flag = Flag.NONE              # OUTLET / OUTLET_GROUP templates
    param: bool = False                  # INSTCMD's parameter (e.g. a delay) replaces ``value``
    always: bool = False                 # offer it without checking the OID exists
    value_from: str | None = None        # without a parameter, write this variable's value (ups.delay.*)


@dataclass(frozen=True)
class Mib:
    """One mapping (NUT ``mib2nut_info_t``). ``version_data`` = NUT's ``driver.version.data``."""

    name: str                            # the ``mibs =`` name ("ietf", "apcc", "mge", "apc_pdu", ...)
    version: str                         # "1.54"
    rows: tuple[Row, ...]
    cmds: tuple[Cmd, ...] = ()
    sysoid: tuple[str, ...] = ()         # exact sysObjectID.0 values selecting this MIB (mibs=auto, step 1)
    auto_check: str | None = None        # OID whose presence selects this MIB (classic detection, step 2)
    device_type: str = "ups"             # device.type ("ups", "pdu", "ats")
    outlet_index_base: int | None = 1    # first OID index of outlet templates (None = probe 0 then 1)
    group_index_base: int | None = 1
    #: last chance to fix the published variables (vendor quirks that need several values)
    finish: Callable[[dict[str, str]], None] | None = None
    #: display name in logs (defaults to name)
    label: str = ""
    #: the table's version in NUT 2.8.5 when it differs (published under that release profile)
    version_2_8_5: str | None = None

    @property
    def version_data(self) -> str:
        from ...compat import driver_core_2_8_5

        version = self.version_2_8_5 if self.version_2_8_5 and driver_core_2_8_5() else self.version
        return f"{self.name} MIB {version}"
