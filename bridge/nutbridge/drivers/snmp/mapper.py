"""The SNMP mapper: a MIB table bound to one device, answers in, NUT variables out.

:class:`Mapper` holds what one device needs beyond its :class:`~.table.Mib`: the outlet / group
counts and phase counts the agent reported, the rows expanded from templates, and which rows are
still polled (a row that did not answer at init is dropped for the session). It tells the driver
which OIDs to read on each poll and turns ``{oid: SnmpValue}`` answers into ``{var: text}``,
including ``ups.status`` (the STATUS rows' tokens, concatenated in table order) and ``ups.alarm``
(the ALARM rows' texts). The two are joined here rather than with
:func:`~nutbridge.drivers.base.compose_status`: that one leads the status with ``ALARM`` while an
alarm is on, which the SNMP driver does not do for its alarm rows (an Eaton ePDU's threshold
alarms), and the published values must not change. The other direction is
here too: SET VAR text -> the raw value to write (:func:`write_value`), INSTCMD parameter ->
value (:func:`command_value`).

Sans-IO: nothing here reads or writes the network or the device state; :mod:`.driver` does the
GETs, walks and SETs through :mod:`.session` and publishes what this module returns. The rules
applied are the row semantics documented in :mod:`.table`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..base import finite_number
from .table import Cmd, Flag, Mib, Row, SnmpValue

__all__ = [
    "MAX_OUTLETS", "MAX_TEXT", "MIRRORED", "SYSTEM_ROWS", "Bound", "BoundCmd", "Mapper", "command_value",
    "convert", "format_number", "to_raw", "write_value",
]

#: SNMPv2-MIB system group: what NUT 2.8 publishes as device.* for every MIB
SYSTEM_ROWS = (
    ("device.description", "1.3.6.1.2.1.1.1.0"),
    ("device.contact", "1.3.6.1.2.1.1.4.0"),
    ("device.location", "1.3.6.1.2.1.1.6.0"),
)
#: ups.* values NUT's core mirrors as device.* (device.type ups)
MIRRORED = (("ups.mfr", "device.mfr"), ("ups.model", "device.model"), ("ups.serial", "device.serial"))

#: each line-count variable and the row flags that need it to be 1 / 3
_PHASE_FLAGS = (
    ("input.phases", Flag.INPUT_1, Flag.INPUT_3),
    ("output.phases", Flag.OUTPUT_1, Flag.OUTPUT_3),
    ("input.bypass.phases", Flag.BYPASS_1, Flag.BYPASS_3),
)

_PHASE_VARS = frozenset(v for v, _one, _three in _PHASE_FLAGS)

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


def write_value(row: Row, text: str) -> int | str | None:
    """SET VAR text -> what to write to ``row``'s OID (None = not acceptable): :func:`to_raw`, and
    NUT's RW "string" timers (STRING rows without a lookup, written as INTEGER) are numbers on
    the wire."""
    raw = to_raw(row, text)
    if raw is None:
        return None
    if row.flags & Flag.STRING and row.lookup is None and row.asn1 == "i":
        value = finite_number(text)
        return None if value is None else int(value)
    return raw


def command_value(spec: Cmd, param: str | None) -> int | str | None:
    """What an INSTCMD writes: the command's own ``value`` without a parameter; with one, the
    parameter as an integer (a delay) for commands that take one. None = not acceptable."""
    if param in (None, ""):
        return spec.value
    if not spec.param:
        return None
    value = finite_number(param or "0")  # not a number, nan, inf: INVALID, not a crash
    return None if value is None else int(value)


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
        answers |= await session.get(m.command_probes(answers))
        offered = m.offered_commands(answers)                     # commands whose OID answered
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

    def find_cmd(self, cmd: str) -> BoundCmd | None:
        for c in self.commands():
            if c.cmd == cmd:
                return c
        return None

    def command_probes(self, answers: Mapping[str, SnmpValue | None]) -> list[str]:
        """The command OIDs still to GET at init: a command is offered only when its OID answers
        (NUT's ``su_addcmd``), unless it is ``always`` offered."""
        return [c.oid for c in self.commands() if not c.spec.always and c.oid not in answers]

    def offered_commands(self, answers: Mapping[str, SnmpValue | None]) -> list[str]:
        """The commands to offer, sorted, once :meth:`command_probes` were read into ``answers``."""
        return sorted({c.cmd for c in self.commands() if c.spec.always or answers.get(c.oid) is not None})

    # -- what NUT publishes for every MIB --
    def system_rows(self) -> list[tuple[str, str]]:
        """The system group's (var, OID) pairs for the device.* the MIB's own table does not define."""
        own = {r.var for r in self.mib.rows}
        return [(var, oid) for var, oid in SYSTEM_ROWS if var not in own]

    def system_values(self, answers: Mapping[str, SnmpValue | None]) -> dict[str, str]:
        out: dict[str, str] = {}
        for var, oid in self.system_rows():
            v = answers.get(oid)
            if v is not None:
                out[var] = v.text[:MAX_TEXT]
        return out

    def mirrored(self, values: Mapping[str, str]) -> dict[str, str]:
        """The device.* copies of ups.* values that NUT's core adds for a UPS."""
        if self.mib.device_type != "ups":
            return {}
        return {dst: values[src] for src, dst in MIRRORED if src in values}


def _int(text: str | None) -> int:
    try:
        return int(float(text)) if text else 0
    except (ValueError, OverflowError):  # not a number, or inf
        return 0
