"""SNMP OID -> NUT variable mapping: the table model shared by all MIB modules.

A MIB module (``ietf.py``, ``apcc.py``, ``mge.py``, ``apc_pdu.py``, ``eaton_epdu.py`` ...) is pure
data: one or more :class:`Mib` objects (NUT's ``mib2nut_info_t``) with a :class:`Row` table (NUT's
``snmp_info_t`` rows for variables) and a :class:`Cmd` table (the ``SU_TYPE_CMD`` rows). Each module
exposes ``MIBS: tuple[Mib, ...]``; :mod:`.registry` imports the modules, lists their MIBs in NUT's
detection order and picks the one for an agent (the modules import this one for the vocabulary).

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

This module has no I/O: :class:`Mapper` expands a :class:`Mib` for one device and turns
``{oid: SnmpValue}`` answers into NUT variables; the driver (``drivers/snmpups.py``) does the
GETs/walks through :mod:`.session`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeAlias

from .session import SnmpValue

__all__ = [
    "ABSENT", "ALARM", "BYPASS_1", "BYPASS_3", "DAISY", "INPUT_1", "INPUT_3", "NEGINVALID", "OUTLET",
    "OUTLET_GROUP", "OUTPUT_1", "OUTPUT_3", "RW", "SEMI", "STATIC", "STATUS", "STRING", "UNIQUE",
    "ZEROINVALID", "Cmd", "Converter", "Flag", "Mapper", "Mib", "Row", "check_oid", "format_number",
]


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

_PHASE_FLAGS = (
    ("input.phases", Flag.INPUT_1, Flag.INPUT_3),
    ("output.phases", Flag.OUTPUT_1, Flag.OUTPUT_3),
    ("input.bypass.phases", Flag.BYPASS_1, Flag.BYPASS_3),
)

_PHASE_VARS = frozenset(v for v, _one, _three in _PHASE_FLAGS)

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


# ---- detection ------------------------------------------------------------------------------

def check_oid(mib: Mib) -> str | None:
    """The OID whose presence confirms ``mib`` (auto_check, else its model row)."""
    if mib.auto_check:
        return mib.auto_check
    for var in ("ups.model", "device.model"):
        for row in mib.rows:
            if row.var == var and row.oid and "%i" not in row.oid:
                return row.oid
    return None


# ---- value conversion ----------------------------------------------------------------------

#: NUT keeps SNMP strings in SU_INFOSIZE (128) byte buffers: 127 characters reach upsd
MAX_TEXT = 127
#: Most outlets (or outlet groups) a template expands to. Real PDUs have up to 48 per unit;
#: an agent announcing a billion must not make a billion OIDs to ask for.
MAX_OUTLETS = 1024


def format_number(value: float, fmt: str | None = None) -> str:
    """NUT's rule: an integer when integral, else two decimals (or the row's printf ``fmt``)."""
    if fmt is not None:
        return fmt % value
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:.2f}"


def convert(row: Row, value: SnmpValue) -> str | None:
    """One answer -> the NUT text for ``row`` (None = not available)."""
    if row.convert is not None:
        return row.convert(value)
    if value.kind == "oid" and row.lookup is not None:
        # an OBJECT IDENTIFIER value (upsTestId ...) is looked up by its last sub-identifier
        last = value.text.rsplit(".", 1)[-1]
        return row.lookup.get(int(last)) if last.isdigit() else None
    if value.is_number:
        raw = int(value.number)
        if row.lookup is not None:
            return row.lookup.get(raw)
        if row.flags & Flag.NEGINVALID and raw < 0:
            return None
        if row.flags & Flag.ZEROINVALID and raw == 0:
            return None
        num = value.number / 100 if value.kind == "timeticks" else float(value.number)
        if row.flags & Flag.STRING:
            return format_number(num, row.fmt)  # string rows carry no multiplier
        return format_number(num * row.mult, row.fmt)
    text = value.text[:MAX_TEXT]
    if row.flags & Flag.NAINVALID and text == "N/A":
        return None
    if row.lookup is not None:
        # some agents answer numbers as strings
        try:
            return row.lookup.get(int(text))
        except ValueError:
            return None
    if not (row.flags & Flag.STRING) and row.mult != 1.0:
        try:
            return format_number(float(text) * row.mult, row.fmt)
        except ValueError:
            return None
    return text


def to_raw(row: Row, text: str) -> int | str | None:
    """SET VAR text -> the raw value to write (None = not acceptable)."""
    if row.to_raw is not None:
        return row.to_raw(text)
    if row.lookup is not None:
        for raw, name in row.lookup.items():
            if name == text:
                return raw
        return None
    if row.flags & Flag.STRING or row.asn1 == "s":
        return text if not row.length or len(text) <= row.length else None
    try:
        num = float(text)
    except ValueError:
        return None
    raw = round(num / row.mult) if row.mult else round(num)
    if row.rw_range is not None and not row.rw_range[0] <= raw <= row.rw_range[1]:
        return None
    return raw


# ---- one device's expanded table ------------------------------------------------------------

@dataclass
class Bound:
    """A row (or command) with its template expanded: a concrete var and OID."""

    var: str
    oid: str | None
    row: Row
    ok: bool = True          # still polled (False once it failed at init or lost to a UNIQUE row)


@dataclass
class BoundCmd:
    cmd: str
    oid: str
    spec: Cmd


def _fill(template: str, idx: int, unit: int | None = None) -> str:
    if template.count("%i") >= 2:
        return template.replace("%i", str(0 if unit is None else unit), 1).replace("%i", str(idx), 1)
    return template.replace("%i", str(idx))


def expand_row(row: Row, count: int, base: int, unit: int | None = None) -> list[Bound]:
    """A template row for N = 1..count (var index N, OID index N - 1 + base)."""
    out: list[Bound] = []
    for n in range(1, count + 1):
        var = row.var.replace("%i", str(n))
        oid = None if row.oid is None else _fill(row.oid, n - 1 + base, unit)
        out.append(Bound(var, oid, row))
    return out


def expand_cmd(cmd: Cmd, count: int, base: int, unit: int | None = None) -> list[BoundCmd]:
    return [BoundCmd(cmd.cmd.replace("%i", str(n)), _fill(cmd.oid, n - 1 + base, unit), cmd)
            for n in range(1, count + 1)]


def is_template(flags: Flag) -> bool:
    return bool(flags & (Flag.OUTLET | Flag.OUTLET_GROUP))


@dataclass
class Mapper:
    """A :class:`Mib` bound to one device: which OIDs to read, answers -> variables.

    Life cycle (the driver does the I/O)::

        m = Mapper(mib, options)
        answers = await session.get(m.oids(init=True))           # plain (non-template) rows
        m.learn_counts(m.apply(answers, init=True))               # outlet.count etc. -> expand templates
        answers |= await session.get(m.template_oids())           # (or bulk-walk the template columns)
        values = m.apply(answers, init=True)                      # init: rows that did not answer are dropped
        cmds = [c for c in m.commands() if c.spec.always or answers_for(c.oid)]
        # each poll: m.oids(semi=...) -> get -> m.apply(answers)
    """

    mib: Mib
    options: Mapping[str, str] = field(default_factory=dict)
    outlet_count: int = 0
    group_count: int = 0
    outlet_base: int = 1
    group_base: int = 1
    unit: int | None = None
    phases: dict[str, int] = field(default_factory=dict)
    bound: list[Bound] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outlet_base = self.mib.outlet_index_base if self.mib.outlet_index_base is not None else 1
        self.group_base = self.mib.group_index_base if self.mib.group_index_base is not None else 1
        self.bound = [Bound(r.var, r.oid, r) for r in self.mib.rows if not is_template(r.flags)]

    # -- what to read --
    def _wanted(self, b: Bound, *, init: bool, semi: bool) -> bool:
        if not b.ok or b.oid is None or b.row.flags & Flag.ABSENT:
            return False
        if init:
            return True
        if b.row.flags & Flag.STATIC:
            return False
        if b.row.flags & Flag.SEMI and not semi:
            return False
        return self._phase_ok(b.row.flags)

    def _phase_ok(self, flags: Flag) -> bool:
        for var, one, three in _PHASE_FLAGS:
            if var == "input.bypass.phases":
                continue  # NUT 2.8 checks the bypass line count but never skips a bypass row
            if flags & (one | three):
                # as NUT: unknown -> 1; counts other than 1 and 3 (0 = no bypass...) filter nothing
                n = self.phases.get(var, 1)
                if (n == 1 and not flags & one) or (n == 3 and not flags & three):
                    return False
        return True

    def oids(self, *, init: bool = False, semi: bool = False) -> list[str]:
        """Plain (non-template) OIDs to GET on this poll (init: every row, to learn which exist)."""
        seen: dict[str, None] = {}
        for b in self.bound:
            if not is_template(b.row.flags) and self._wanted(b, init=init, semi=semi) and b.oid is not None:
                seen[b.oid] = None
        return list(seen)

    def template_oids(self, *, init: bool = True, semi: bool = True) -> list[str]:
        """The OIDs of the expanded template rows to read on this poll (after :meth:`learn_counts`);
        by default all of them (the init read)."""
        return [b.oid for b in self.bound
                if is_template(b.row.flags) and b.oid is not None and self._wanted(b, init=init, semi=semi)]

    def template_columns(self, *, init: bool = True, semi: bool = True) -> list[tuple[str, int]]:
        """(column OID prefix, rows) of the template rows read on this poll whose OID ends in the
        index: a driver may GETBULK these columns instead of GETting each instance. Columns whose
        rows all failed at init are left out."""
        cols: dict[str, int] = {}
        for b in self.bound:
            row = b.row
            if (row.oid is None or not is_template(row.flags) or not row.oid.endswith(".%i")
                    or not self._wanted(b, init=init, semi=semi)):
                continue
            count = self.outlet_count if row.flags & Flag.OUTLET else self.group_count
            if count:
                cols[_fill(row.oid[:-3], 0, self.unit)] = count
        return list(cols.items())

    def learn_counts(self, values: Mapping[str, str]) -> None:
        """Expand the templates once ``outlet.count`` / ``outlet.group.count`` / phases are known."""
        for var, _one, _three in _PHASE_FLAGS:
            try:
                self.phases[var] = int(float(values[var]))
            except (KeyError, ValueError, OverflowError):
                pass
        outlets = min(_int(values.get("outlet.count")), MAX_OUTLETS)
        groups = min(_int(values.get("outlet.group.count")), MAX_OUTLETS)
        if outlets == self.outlet_count and groups == self.group_count:
            return
        self.outlet_count, self.group_count = outlets, groups
        self.bound = [b for b in self.bound if not is_template(b.row.flags)]
        for row in self.mib.rows:
            if row.flags & Flag.OUTLET:
                self.bound.extend(expand_row(row, outlets, self.outlet_base, self.unit))
            elif row.flags & Flag.OUTLET_GROUP:
                self.bound.extend(expand_row(row, groups, self.group_base, self.unit))

    # -- answers -> variables --
    def apply(self, answers: Mapping[str, SnmpValue | None], *, init: bool = False) -> dict[str, str]:
        """Rows in table order -> {var: text}, incl. ``ups.status`` / ``ups.alarm`` from STATUS/ALARM
        rows and ABSENT defaults. ``init``: rows without an answer are dropped for the session."""
        out: dict[str, str] = {}
        status: list[str] = []
        alarms: list[str] = []
        have_status = False
        unique_done: set[str] = set()
        # phase counts first, wherever their rows sit in the table (NUT looks them up on demand)
        for b in self.bound:
            if b.var in _PHASE_VARS and b.ok and b.oid is not None and answers.get(b.oid) is not None:
                text = convert(b.row, answers[b.oid])  # type: ignore[arg-type]
                if text is not None:
                    self.phases[b.var] = _int(text)
        for b in self.bound:
            row = b.row
            if not b.ok:
                continue
            if row.flags & Flag.ABSENT:
                if not init:
                    continue  # published once; SET VAR may change it afterwards
                value = self.options.get(row.option) if row.option else None
                if value is None:
                    value = row.default
                if value is not None:
                    out[b.var] = value
                continue
            if b.var in unique_done or b.oid is None or b.oid not in answers:
                continue
            if init:
                self._default_phases(row.flags, out)
            if not self._phase_ok(row.flags):
                continue
            ans = answers[b.oid]
            text = None if ans is None else convert(row, ans)
            if text is None:
                if init and ans is None and not row.flags & (Flag.STATUS | Flag.ALARM):
                    b.ok = False
                if row.default is not None and b.var not in out:
                    out[b.var] = row.default
                continue
            if row.flags & Flag.STATUS:
                have_status = True
                status.extend(t for t in text.split() if t not in status)
                continue
            if row.flags & Flag.ALARM:
                if text and text not in alarms:
                    alarms.append(text)
                continue
            out[b.var] = text
            if b.var in _PHASE_VARS:
                # later rows of this same pass depend on it (input.phases precedes the input rows)
                self.phases[b.var] = _int(text)
            if row.flags & Flag.UNIQUE:
                unique_done.add(b.var)
                if init:
                    for other in self.bound:
                        if other is not b and other.var == b.var:
                            other.ok = False
        if have_status:
            out["ups.status"] = " ".join(status)
        if alarms:
            out["ups.alarm"] = " ".join(alarms)
        if self.mib.finish is not None:
            self.mib.finish(out)
        for key in [k for k in out if k.startswith("_")]:
            del out[key]  # helper rows for ``finish`` ("_iem.temperature.unit")
        if init:
            self.learn_phases(out)
        return out

    def _default_phases(self, flags: Flag, out: dict[str, str]) -> None:
        """A row flagged for both 1 and 3 lines (the ``*.phases`` rows themselves, bypass frequency)
        needs the line count: when the agent has none, NUT assumes and publishes 1."""
        for var, one, three in _PHASE_FLAGS:
            if flags & one and flags & three and var not in self.phases:
                self.phases[var] = 1
                out.setdefault(var, "1")

    def learn_phases(self, values: Mapping[str, str]) -> None:
        for var, _one, _three in _PHASE_FLAGS:
            n = _int(values.get(var))
            if n:
                self.phases[var] = n

    # -- writes --
    def rw_rows(self) -> list[Bound]:
        return [b for b in self.bound if b.ok and b.row.flags & Flag.RW]

    def find_rw(self, var: str) -> Bound | None:
        for b in self.bound:
            if b.ok and b.var == var and b.row.flags & Flag.RW:
                return b
        return None

    def commands(self) -> list[BoundCmd]:
        """Every command with its template expanded (the driver checks which OIDs exist)."""
        out: list[BoundCmd] = []
        for c in self.mib.cmds:
            if c.flags & Flag.OUTLET:
                out.extend(expand_cmd(c, self.outlet_count, self.outlet_base, self.unit))
            elif c.flags & Flag.OUTLET_GROUP:
                out.extend(expand_cmd(c, self.group_count, self.group_base, self.unit))
            else:
                out.append(BoundCmd(c.cmd, _fill(c.oid, 0, self.unit) if "%i" in c.oid else c.oid, c))
        return out


def _int(text: str | None) -> int:
    try:
        return int(float(text)) if text else 0
    except (ValueError, OverflowError):  # not a number, or inf
        return 0


def rows(*items: Row | Iterable[Row]) -> tuple[Row, ...]:
    """Flatten rows and row groups (helpers for MIB modules)."""
    out: list[Row] = []
    for item in items:
        if isinstance(item, Row):
            out.append(item)
        else:
            out.extend(item)
    return tuple(out)


def with_flags(row: Row, flags: Flag) -> Row:
    return replace(row, flags=row.flags | flags)
