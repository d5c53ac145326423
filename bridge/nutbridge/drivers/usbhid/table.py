"""HID path -> NUT variable mapping: the table model shared by all subdrivers.

A subdriver (``apc.py``, ``belkin.py``, ``cps.py``, ``mge.py``, ``tripplite.py``, ``generic.py``)
is pure data: a :class:`Subdriver` with its USB IDs, its :class:`Row` table (one
row per NUT variable; several rows - or several paths of one row - for the same
variable are alternatives in table order: the first that exists in the device's
descriptor *and* yields a value wins for good, as in NUT), its :class:`Cmd` table
and a few hooks for vendor quirks. :class:`Mapper` binds a subdriver to one
device's parsed descriptor and does everything that needs no I/O:

* which reports to read on a full / quick poll (:meth:`Mapper.poll_reports`),
* report bytes -> NUT variables incl. ``ups.status``/``ups.alarm``
  (:meth:`Mapper.apply`, with the status computation :func:`compute_status`),
* RW variable metadata (:meth:`Mapper.rw_vars`), instant commands
  (:meth:`Mapper.commands`),
* SET VAR / INSTCMD -> a list of :data:`Step` (report writes, sleeps and local
  variable updates) that the driver executes in order (:meth:`Mapper.setvar`,
  :meth:`Mapper.instcmd`), and the exact SET_REPORT bytes of a write
  (:meth:`Mapper.render_write`).

The subdriver tables and the choice among them live in :mod:`.registry` (which imports the
vendor modules; they import this module for the table vocabulary). Typical driver use
(``drivers/usbhid.py``)::

    sub = registry.choose_subdriver(info.vendor_id, info.product_id, config.get("subdriver"))
    desc = descriptor.parse(raw, names=usages.names_for(sub.key))   # vendor usage names differ
    options = {**sub.default_options(info.product_id), **config}      # CPS delays, APC pollonly
    mapper = Mapper(sub, desc, options, info=info)
    # mapper.desc is the descriptor after the subdriver's fix-up: use it for lengths
    for kind, rid in mapper.poll_reports(quick_only=False):
        reports[(kind, rid)] = await get_feature/get_input(rid, mapper.desc.report_length(kind, rid))
    for idx in mapper.string_indices(reports):   # i* usages are string descriptor indices
        strings[idx] = await transport.string(idx)
    for var, value in mapper.apply(reports, strings).items(): device.set(var, value)
    # interrupt: mapper.apply({("Input", data[0] or 0): data}, strings) -> same dict shape
    steps = mapper.instcmd("shutdown.return", None, current_values)   # or mapper.setvar(...)
    for step in steps:   # Write -> SET_REPORT mapper.render_write(step, last bytes), Sleep, LocalSet
        ...

The mapping rules follow NUT's documented usbhid-ups behaviour (docs/man/usbhid-ups,
drivers.md §3); the tables are written from the HID PDC usage names.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from typing import Protocol, TypeAlias

from ..base import Status, finite_number
from .descriptor import Field, ReportDescriptor

__all__ = [
    "ABSENT",
    "ENUM",
    "QUICK",
    "RW",
    "SEMI",
    "STATIC",
    "STRING",
    "Cmd",
    "Converter",
    "Ctx",
    "Flag",
    "LocalSet",
    "Mapper",
    "Row",
    "RwInfo",
    "Sleep",
    "Step",
    "Subdriver",
    "UsbIdentity",
    "Write",
    "compute_status",
]


class Flag(enum.IntFlag):
    """Row flags (NUT's ST_FLAG_* / HU_FLAG_* equivalents)."""

    NONE = 0
    RW = 1        # writable with SET VAR (publish RW; enum from ``lookup`` or range from ``rw_range``)
    QUICK = 2     # refreshed on every quick poll (pollinterval), not only on full polls
    STATIC = 4    # read once (first full poll), never refreshed
    ABSENT = 8    # not read from the device: a driver-side variable with ``default`` (ups.delay.shutdown)
    STRING = 16   # published as a string variable (RW strings)
    ENUM = 32     # RW with the ``lookup`` names as enum values
    SEMI = 64     # semi-static (NUT's HU_FLAG_SEMI_STATIC): read on full polls only (same as no flag here)


RW, QUICK, STATIC, ABSENT, STRING, ENUM, SEMI = (Flag.RW, Flag.QUICK, Flag.STATIC, Flag.ABSENT, Flag.STRING,
                                                 Flag.ENUM, Flag.SEMI)


class UsbIdentity(Protocol):
    """What the mapper needs of the transport's ``UsbInfo``."""

    vendor_id: int
    product_id: int
    manufacturer: str | None
    product: str | None
    serial: str | None


@dataclass
class Ctx:
    """Passed to converters: the device and the options (for vendor quirks)."""

    vendor_id: int = 0
    product_id: int = 0
    options: Mapping[str, str] = dc_field(default_factory=dict)
    strings: Mapping[int, str] = dc_field(default_factory=dict)
    field: Field | None = None
    #: variables produced so far in this apply() (rows run in table order)
    values: dict[str, str] = dc_field(default_factory=dict)
    #: per-device memory of converters (e.g. CyberPower's battery scale, decided once)
    memo: dict[str, object] = dc_field(default_factory=dict)


#: physical value -> NUT text (None = publish nothing for this value)
Converter: TypeAlias = Callable[[float, Ctx], "str | None"]


@dataclass(frozen=True, slots=True)
class Row:
    """One NUT variable (or one status boolean) read from one HID path.

    ``var`` is the NUT name, or ``"BOOL"`` for a status row: then ``bit`` names the
    internal status bit set while the value is non-zero (``invert``: while zero),
    e.g. ACPresent -> bit "online", BatteryPresent -> "nobattery" inverted.
    ``paths`` are alternatives (the first that exists and yields a value wins; for
    BOOL rows every existing path counts).
    ``fmt`` is a printf format for the physical value ("%.0f", "%.1f", "%s"), or a
    :data:`Converter`; ``lookup`` maps raw integer values to text (then ``fmt`` is
    ignored; unknown values publish nothing). ``default`` is the value of ABSENT
    rows, ``option`` the ups.conf option overriding it (e.g. "offdelay").
    """

    var: str
    paths: tuple[str, ...]
    fmt: str | Converter = "%.0f"
    lookup: Mapping[int, str] | None = None
    flags: Flag = Flag.NONE
    bit: str = ""
    invert: bool = False
    default: str | None = None
    option: str | None = None
    length: int = 0                      # RW string length (STRING rows)
    rw_range: tuple[int, int] | None = None   # RW range published with the variable
    string_index: bool = False           # the value is a USB string descriptor index (i* usages)
    mask: int = 0                        # BOOL rows: the bit is set while raw & mask (0: raw != 0)
    to_raw: Callable[[str, Ctx], float | None] | None = None  # SET VAR text -> physical value


@dataclass(frozen=True, slots=True)
class Cmd:
    """An instant command writing one value to one HID path (first existing path wins).

    ``value`` (physical units, e.g. seconds) is written when INSTCMD has no parameter;
    a parameter replaces it (NUT: ``upscmd ups load.off.delay 60``), for every command.
    """

    cmd: str
    paths: tuple[str, ...]
    value: int


@dataclass(frozen=True, slots=True)
class Write:
    """Write ``raw`` (a logical value) into ``field`` with SET_REPORT (Feature)."""

    field: Field
    raw: int


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class LocalSet:
    """Set a driver-side variable (ABSENT rows such as ``ups.delay.shutdown``)."""

    var: str
    value: str


Step: TypeAlias = Write | Sleep | LocalSet


@dataclass(frozen=True, slots=True)
class RwInfo:
    """How to publish a writable variable: ``enums`` or ``ranges`` or a string of ``length``."""

    enums: tuple[str, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()
    string: bool = False
    length: int = 0


#: descriptor fix-up: (descriptor, vendor_id, product_id) -> descriptor (NUT's fix_report_desc)
FixDescriptor: TypeAlias = Callable[[ReportDescriptor, int, int], ReportDescriptor]


@dataclass(frozen=True)
class Subdriver:
    """One vendor's mapping (NUT subdriver). ``version_data`` = NUT's driver.version.data."""

    name: str                      # "APC HID"
    version: str                   # "0.101"
    #: usage-name table key for ``descriptor.parse(raw, names=usages.names_for(key))`` ("apc", "mge", ...)
    key: str
    ids: tuple[tuple[int, int | None], ...]   # (vendor, product); product None = any product of vendor
    rows: tuple[Row, ...]
    cmds: tuple[Cmd, ...] = ()
    #: option defaults: pollfreq, ondelay, offdelay
    defaults: Mapping[str, str] = dc_field(default_factory=dict)
    fix: FixDescriptor | None = None
    #: (manufacturer, product, serial) USB strings -> extra variables (ups.mfr, ups.model, ups.firmware...)
    identity: Callable[[UsbIdentity | None], dict[str, str]] | None = None
    #: post-processing of the published variables (vendor value quirks that need several values)
    finish: Callable[[dict[str, str], Ctx], None] | None = None
    #: the generic fallback: used for devices no table names, when their descriptor has a UPS collection
    accepts_unknown: bool = False
    #: for ``accepts_unknown``: does a descriptor describe a device this table can make sense of?
    #: (:meth:`Mapper.supported`; None: any descriptor)
    recognizes: Callable[[ReportDescriptor], bool] | None = None
    #: per product ID: ups.conf option defaults (e.g. {"pollonly": ""} where NUT disables the interrupt pipe)
    product_defaults: Mapping[int, Mapping[str, str]] = dc_field(default_factory=dict)

    @property
    def version_data(self) -> str:
        return f"{self.name} {self.version}"

    def default_options(self, product_id: int) -> dict[str, str]:
        """Option defaults for this device (keys: pollfreq, ondelay, offdelay, pollonly):
        the driver uses them where ups.conf does not set the option."""
        out = dict(self.defaults)
        out.update(self.product_defaults.get(product_id, {}))
        return out

    def matches(self, vendor_id: int, product_id: int) -> bool:
        return any(v == vendor_id and (p is None or p == product_id) for v, p in self.ids)


# ---- lookups shared by all subdrivers (NUT's usbhid-ups value tables) ----------------------

TEST_READ = {1: "Done and passed", 2: "Done and warning", 3: "Done and error", 4: "Aborted",
             5: "In progress", 6: "No test initiated", 7: "Test scheduled"}
BEEPER = {1: "disabled", 2: "enabled", 3: "muted"}
YES_NO = {0: "no", 1: "yes"}
ON_OFF = {0: "off", 1: "on"}

#: NUT's default delays (usbhid-ups.h) and poll frequency
DEFAULT_ONDELAY = "30"
DEFAULT_OFFDELAY = "20"
DEFAULT_POLLFREQ = "30"
#: composite commands wait this long between their two writes (some Tripp Lite units drop a
#: second command that arrives too fast; NUT sleeps 125 ms too)
COMPOSITE_GAP = 0.125

#: status bits reported as ups.alarm text, in NUT's order
_ALARMS = (
    ("replacebatt", "Replace battery!"), ("shutdownimm", "Shutdown imminent!"), ("fanfail", "Fan failure!"),
    ("nobattery", "No battery installed!"), ("battvoltlo", "Battery voltage too low!"),
    ("battvolthi", "Battery voltage too high!"), ("chargerfail", "Battery charger fail!"),
    ("overheat", "Temperature too high!"), ("commfault", "Internal UPS fault!"),
    ("awaitingpower", "Awaiting power!"), ("bypassauto", "Automatic bypass mode!"),
    ("bypassman", "Manual bypass mode!"),
)


def status_row(path: str | tuple[str, ...], bit: str, *, quick: bool = False, invert: bool = False,
               mask: int = 0) -> Row:
    """A BOOL row: ``bit`` while the value is non-zero (``invert``: while zero; ``mask``:
    while those bits of the value are set)."""
    paths = (path,) if isinstance(path, str) else path
    return Row("BOOL", paths, flags=QUICK if quick else Flag.NONE, bit=bit, invert=invert, mask=mask)


def bits_row(path: str, table: Mapping[int, str], *, quick: bool = False) -> Row:
    """A BOOL row with an explicit value -> "bit" / "!bit" table (NUT's info_lkp_t for BOOL)."""
    return Row("BOOL", (path,), lookup=table, flags=QUICK if quick else Flag.NONE)


def absent_row(var: str, path: str | tuple[str, ...], default: str, option: str) -> Row:
    """A driver-side RW variable published when ``path`` exists (ups.delay.start/shutdown)."""
    paths = (path,) if isinstance(path, str) else path
    return Row(var, paths, flags=ABSENT | RW | STRING, default=default, option=option, length=10)


def rw_row(var: str, path: str | tuple[str, ...], fmt: str | Converter = "%.0f", *,
           lookup: Mapping[int, str] | None = None, length: int = 10, enum: bool = False,
           flags: Flag = Flag.NONE) -> Row:
    """A writable variable read from (and written to) a Feature path. Published as a
    string of ``length`` like NUT, or with ``enum`` (NUT's HU_FLAG_ENUM) as the
    ``lookup`` names; either way SET VAR only accepts the lookup's names."""
    paths = (path,) if isinstance(path, str) else path
    extra = ENUM if enum and lookup is not None else STRING
    return Row(var, paths, fmt, lookup=lookup, flags=RW | extra | flags, length=length)


def cmds(name: str, paths: str | tuple[str, ...], value: int) -> Cmd:
    return Cmd(name, (paths,) if isinstance(paths, str) else paths, value)


def beeper_cmds(paths: str | tuple[str, ...]) -> tuple[Cmd, ...]:
    """NUT's five beeper commands on an AudibleAlarmControl usage (1 disabled, 2 enabled,
    3 muted); ``beeper.on``/``off`` are the old names of enable/mute."""
    return (cmds("beeper.on", paths, 2), cmds("beeper.off", paths, 3),
            cmds("beeper.enable", paths, 2), cmds("beeper.disable", paths, 1),
            cmds("beeper.mute", paths, 3))


# ---- converters ---------------------------------------------------------------------------

def kelvin_to_celsius(value: float, ctx: Ctx) -> str | None:
    """Kelvin -> Celsius; values outside 273..373 are taken as Celsius already (some HP
    firmware reports them so, NUT checks the same range)."""
    return f"{value - 273.15:.1f}" if 273 <= value <= 373 else f"{value:.1f}"


def divide_by_10(value: float, ctx: Ctx) -> str | None:
    return f"{value * 0.1:.1f}"


def divide_by_100(value: float, ctx: Ctx) -> str | None:
    return f"{value * 0.01:.1f}"


def pdc_date(value: float, ctx: Ctx) -> str | None:
    """PDC ManufacturerDate: (year - 1980) * 512 + month * 32 + day."""
    v = int(value)
    if v == 0:
        return "not set"
    return f"{1980 + (v >> 9):04d}/{(v >> 5) & 0x0F:02d}/{v & 0x1F:02d}"


def pdc_date_raw(text: str, ctx: Ctx) -> float | None:
    try:
        year, month, day = (int(p) for p in text.split("/"))
    except ValueError:
        return None
    if not (1980 <= year < 2108 and 1 <= month <= 12 and 1 <= day <= 31):
        return None
    return float((year - 1980) * 512 + month * 32 + day)


def fmt_value(fmt: str, value: float) -> str:
    """printf-style formatting of a physical value (NUT formats doubles with %.Nf / %s)."""
    if fmt == "%s":
        return f"{value:g}"
    try:
        return fmt % value
    except (TypeError, ValueError):
        return str(value)


# ---- status -------------------------------------------------------------------------------

def compute_status(bits: Mapping[str, bool], charge: float | None = None,
                   options: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """NUT's ups.status / ups.alarm from the internal status bits (drivers.md §3.5).

    ``bits`` holds the bits seen so far (absent or False = not set): online, offline,
    dischrg, chrg, lowbatt, timelimitexp, shutdownimm, overload, replacebatt, trim,
    boost, bypassauto, bypassman, off, cal, overheat, commfault, depleted,
    fullycharged, notfullycharged, awaitingpower, fanfail, nobattery, battvoltlo,
    battvolthi, chargerfail, vrange, frange. ``charge`` = battery.charge (CHRG is
    only trusted between 1 and 99 % when the UPS reports no Fully* state).
    ``options``: onlinedischarge_calibration / onlinedischarge_onbattery (flags).
    Returns (status, alarm or None); status starts with "ALARM" while an alarm is on.
    """
    opts = options or {}
    on = bits.get
    tokens: list[str] = []

    def add(token: str) -> None:
        if token not in tokens:
            tokens.append(token)

    # CAL first: calibration looks like OB to many firmwares, say it is a drill first
    if on("cal"):
        add("CAL")
    if not on("online"):
        if on("offline") or on("dischrg"):
            add("OB")
    elif on("offline"):
        add("OB")
    elif on("dischrg"):
        # OL+DISCHRG: calibration or odd firmware (CyberPower UT, APC BK650M2); user hints decide
        cal_hint = _flag(opts, "onlinedischarge_calibration")
        ob_hint = _flag(opts, "onlinedischarge_onbattery")
        if cal_hint:
            add("CAL")
        if ob_hint:
            add("OB")
        if not cal_hint and not ob_hint:
            add("OL")
    else:
        add("OL")
    if on("dischrg") and not on("depleted"):
        add("DISCHRG")
    # CHRG: trust it when the UPS says "not full"; without Fully* info only between 1 and 99 %
    plausible = charge is not None and 0 < int(charge) < 100
    if on("chrg") and (on("notfullycharged") or (not on("fullycharged") and plausible)):
        add("CHRG")
    if on("lowbatt") or on("timelimitexp") or on("shutdownimm"):
        add("LB")
    if on("overload"):
        add("OVER")
    if on("replacebatt") or on("nobattery"):
        add("RB")
    if on("trim"):
        add("TRIM")
    if on("boost"):
        add("BOOST")
    if on("bypassauto") or on("bypassman"):
        add("BYPASS")
    if on("off"):
        add("OFF")
    alarms = [text for bit, text in _ALARMS if on(bit)]
    alarm = " ".join(alarms) if alarms else None
    status = " ".join(tokens)
    if alarm:
        status = f"ALARM {status}".rstrip()
    return status, alarm


def _flag(opts: Mapping[str, str], name: str) -> bool:
    """ups.conf flags are present with an empty value (or "true"/"yes"/"1")."""
    if name not in opts:
        return False
    return opts[name].strip().lower() not in ("0", "no", "false", "off")


def transfer_reason(bits: Mapping[str, bool]) -> str | None:
    if bits.get("vrange"):
        return "input voltage out of range"
    if bits.get("frange"):
        return "input frequency out of range"
    return None


# ---- the mapper ---------------------------------------------------------------------------

@dataclass
class _Bound:
    row: Row
    path: str
    field: Field | None     # None only for ABSENT rows whose path is missing (never bound)


class Mapper:
    """A subdriver bound to one device's descriptor. Stateful only in that it
    remembers the last value of every path (interrupt Input reports update a few
    paths; status needs all bits) and the driver-side (ABSENT) variables."""

    def __init__(self, sub: Subdriver, desc: ReportDescriptor, options: Mapping[str, str],
                 *, info: UsbIdentity | None = None) -> None:
        """Apply the subdriver's descriptor fix-up (unless option
        ``disable_fix_report_desc``) and resolve which rows/commands exist."""
        self.sub = sub
        self.options = dict(options)
        self.info = info
        vid = info.vendor_id if info is not None else 0
        pid = info.product_id if info is not None else 0
        if sub.fix is not None and "disable_fix_report_desc" not in self.options:
            desc = sub.fix(desc, vid, pid)
        self.desc = desc
        self.ctx = Ctx(vid, pid, self.options)
        self._raw: dict[str, int] = {}        # path -> last raw value
        self._phys: dict[str, float] = {}     # path -> last physical value
        self._local: dict[str, str] = {}      # ABSENT variables set with SET VAR
        self._bits: dict[str, bool] = {}
        self._static_done: set[str] = set()
        self.rows: list[_Bound] = []
        # Every row whose path exists is kept: rows for the same variable are alternatives in
        # table order; the first that yields a value wins for good (NUT does the same at start-up,
        # so a model whose preferred report STALLs falls back to the next path).
        self._winner: dict[str, _Bound] = {}
        for row in sub.rows:
            self.rows.extend(self._bind(row))
        self.cmds: dict[str, tuple[Cmd, Field]] = {}
        for cmd in sub.cmds:
            if cmd.cmd in self.cmds:
                continue
            for path in cmd.paths:
                f = self._feature(path)
                if f is not None:
                    self.cmds[cmd.cmd] = (cmd, f)
                    break
        # which (kind, rid) report carries which watched paths
        watched = {b.path for b in self.rows if not (b.row.flags & ABSENT)}
        self._by_report: dict[tuple[str, int], list[Field]] = {}
        for f in desc.fields:
            if f.path in watched and f.kind in ("Feature", "Input"):
                self._by_report.setdefault((f.kind, f.report_id), []).append(f)

    def supported(self) -> bool:
        """False when the generic fallback got a descriptor that is no UPS (a keyboard, a
        vendor gadget): the driver should refuse such a device rather than publish nothing."""
        if not self.sub.accepts_unknown:
            return True
        recognized = self.sub.recognizes is None or self.sub.recognizes(self.desc)
        return recognized and any(not b.row.flags & ABSENT for b in self.rows)

    def _feature(self, path: str) -> Field | None:
        return self.desc.find(path, "Feature")

    def _bind(self, row: Row) -> list[_Bound]:
        """One binding per path of the row that exists (a row's paths are alternatives too)."""
        out = []
        for path in row.paths:
            f = self.desc.find(path)
            if f is not None:
                out.append(_Bound(row, path, f))
        return out

    # ---- reading ----------------------------------------------------------------------------

    def poll_reports(self, quick_only: bool = False) -> list[tuple[str, int]]:
        """(kind, report_id) pairs to GET on a poll: "Feature" for rows whose path
        exists as Feature, "Input" for paths only declared as Input. ``quick_only``:
        only reports holding QUICK rows. STATIC rows are included only until they
        have a value."""
        out: set[tuple[str, int]] = set()
        for b in self.rows:
            row, f = b.row, b.field
            if f is None or row.flags & ABSENT or self._beaten(b):
                continue
            if quick_only and not row.flags & QUICK:
                continue
            if row.flags & STATIC and b.path in self._static_done:
                continue
            out.add((f.kind, f.report_id))
        return sorted(out, key=lambda k: (k[0] != "Feature", k[1]))

    def _beaten(self, b: _Bound) -> bool:
        """Another alternative for this variable already won."""
        won = self._winner.get(b.row.var)
        return won is not None and won is not b

    def feature_ids(self, quick_only: bool = False) -> list[int]:
        """Feature report IDs of :meth:`poll_reports` (convenience)."""
        return [rid for kind, rid in self.poll_reports(quick_only) if kind == "Feature"]

    def _ingest(self, reports: Mapping[tuple[str, int], bytes | None]) -> None:
        from .values import extract, to_physical

        for key, data in reports.items():
            if not data:
                continue
            for f in self._by_report.get(key, ()):
                raw = extract(f, data)
                if raw is None:
                    continue
                self._raw[f.path] = raw
                self._phys[f.path] = to_physical(f, raw)

    def string_indices(self, reports: Mapping[tuple[str, int], bytes]) -> list[int]:
        """USB string descriptor indices referenced by string rows (iDeviceChemistry,
        iOEMInformation, ...) in these reports (0 = no string, left out)."""
        self._ingest(reports)
        out: set[int] = set()
        for b in self.rows:
            if b.row.string_index and b.path in self._raw and self._raw[b.path] > 0:
                out.add(self._raw[b.path])
        return sorted(out)

    def identity(self) -> dict[str, str]:
        """ups.mfr/model/serial (+ device.*), ups.vendorid/productid, driver.version.data."""
        out: dict[str, str] = {"device.type": "ups", "driver.version.data": self.sub.version_data}
        info = self.info
        if info is None:
            return out
        out["ups.vendorid"] = f"{info.vendor_id:04x}"
        out["ups.productid"] = f"{info.product_id:04x}"
        ident = self.sub.identity(info) if self.sub.identity else _default_identity(info)
        for key in ("mfr", "model", "serial"):
            if ident.get(f"ups.{key}"):
                ident.setdefault(f"device.{key}", ident[f"ups.{key}"])
        out.update({k: v for k, v in ident.items() if v})
        return out

    def apply(self, reports: Mapping[tuple[str, int], bytes | None],
              strings: Mapping[int, str] | None = None) -> dict[str, str]:
        """Take new report bytes (key (kind, report_id); bytes include the ID byte
        when the descriptor uses IDs; short/empty reports are skipped) and return
        every variable the device currently publishes: mapped values, ABSENT
        defaults, identity (ups.mfr/model/serial, ups.vendorid/productid,
        driver.version.data), ``ups.status`` and ``ups.alarm`` (absent when no
        alarm), ``input.transfer.reason`` while a vrange/frange bit is set."""
        self._ingest(reports)
        ctx = self.ctx
        ctx.strings = strings or {}
        out = self.identity()
        ctx.values = out
        for b in self.rows:
            row = b.row
            if row.var in out and row.var != "BOOL":
                continue  # an earlier alternative (or the identity) gave it
            if row.flags & ABSENT:
                value = self._local.get(row.var)
                if value is None and row.option:
                    value = self.options.get(row.option)
                if value is None:
                    value = self.sub.defaults.get(row.option or "", row.default)
                if value is not None:
                    out[row.var] = value
                continue
            if b.path not in self._phys:
                continue
            raw, phys = self._raw[b.path], self._phys[b.path]
            if row.var == "BOOL":
                self._set_bits(row, raw)
                continue
            if self._beaten(b):
                continue
            ctx.field = b.field
            text = self._format(row, raw, phys, ctx, out)
            if text is not None:
                out[row.var] = text
                self._winner.setdefault(row.var, b)
                if row.flags & STATIC:
                    self._static_done.add(b.path)
        if self.sub.finish is not None:
            self.sub.finish(out, ctx)
        charge = finite_number(out.get("battery.charge"))
        status, alarm = compute_status(self._bits, charge, self.options)
        out["ups.status"] = status
        if alarm:
            out["ups.alarm"] = alarm
        reason = transfer_reason(self._bits)
        if reason:
            out["input.transfer.reason"] = reason
        return out

    def _set_bits(self, row: Row, raw: int) -> None:
        if row.lookup is not None:
            token = row.lookup.get(raw)
            if token is not None:
                self._token(token)
            return
        active = (raw & row.mask if row.mask else raw) != 0
        active = active != row.invert
        if row.bit == "online":
            # ACPresent = 0 says "explicitly on battery" (NUT's online_info: 0 -> offline)
            self._token("online" if active else "offline")
        else:
            self._token(row.bit if active else f"!{row.bit}")

    def _token(self, token: str) -> None:
        """Apply one "bit" / "!bit" token; a positive online/offline or (not)fullycharged
        also clears its opposite, as NUT does (a device may report only one of them)."""
        name = token.lstrip("!")
        if name == token:
            opposite = _OPPOSITE.get(name)
            if opposite is not None:
                self._bits[opposite] = False
        self._bits[name] = name == token

    def _format(self, row: Row, raw: int, phys: float, ctx: Ctx, out: dict[str, str]) -> str | None:
        ctx.values = out
        if row.string_index:
            idx = int(phys)
            return ctx.strings.get(idx) if idx > 0 else None
        if row.lookup is not None:
            return row.lookup.get(round(phys))
        try:
            if callable(row.fmt):
                return row.fmt(phys, ctx)
            return fmt_value(row.fmt, phys)
        except (ArithmeticError, ValueError):  # a garbage value must not stop the whole update
            return None

    @property
    def bits(self) -> dict[str, bool]:
        """The internal status bits seen so far (for diagnostics/tests)."""
        return dict(self._bits)

    # ---- writing ----------------------------------------------------------------------------

    def rw_vars(self) -> dict[str, RwInfo]:
        """Writable variables present on this device and how to publish them."""
        out: dict[str, RwInfo] = {}
        for b in self.rows:
            row = b.row
            if row.var in out or self._row_for(row.var) is not b or not row.flags & RW:
                continue
            if not row.flags & ABSENT and (b.field is None or b.field.kind != "Feature"):
                continue
            if row.flags & ENUM and row.lookup is not None:
                out[row.var] = RwInfo(enums=tuple(row.lookup.values()))
            elif row.rw_range is not None:
                out[row.var] = RwInfo(ranges=(row.rw_range,))
            else:
                out[row.var] = RwInfo(string=True, length=row.length or 10)
        return out

    def commands(self) -> list[str]:
        """Instant commands this device supports (incl. the composites load.off,
        load.on, shutdown.return, shutdown.stayoff) — sorted."""
        names = set(self.cmds)
        if "load.off.delay" in names:
            names.add("load.off")
        if "load.on.delay" in names:
            names.add("load.on")
        if "load.off.delay" in names and "load.on.delay" in names:
            names.update(("shutdown.return", "shutdown.stayoff"))
        return sorted(names)

    def _row_for(self, name: str) -> _Bound | None:
        """The row serving variable ``name``: the alternative that won, else the first."""
        key = name.lower()
        for b in self.rows:
            if b.row.var.lower() == key and not self._beaten(b):
                return b
        return None

    def setvar(self, name: str, value: str) -> list[Step] | Status:
        """Steps for SET VAR, or Status.UNKNOWN (not writable here) /
        Status.INVALID (value not accepted: not in enum/range, not a number)."""
        b = self._row_for(name)
        if b is None or not b.row.flags & RW:
            return Status.UNKNOWN
        row = b.row
        if row.flags & ABSENT:
            # a driver-side value (e.g. ups.delay.shutdown): used by the composite commands
            if finite_number(row.default) is not None and finite_number(value) is None:
                return Status.INVALID
            self._local[row.var] = value.strip()
            return [LocalSet(row.var, value.strip())]
        f = b.field
        if f is None or f.kind != "Feature":
            return Status.UNKNOWN
        phys: float | None
        if row.lookup is not None:
            rev = {v.lower(): k for k, v in row.lookup.items()}
            code = rev.get(value.strip().lower())
            if code is None:
                return Status.CONVERSION_FAILED  # NUT: the lookup has no such name
            phys = float(code)
        elif row.to_raw is not None:
            phys = row.to_raw(value, self.ctx)
        else:
            phys = finite_number(value)
        if phys is None:
            return Status.INVALID
        if row.rw_range is not None and not row.rw_range[0] <= phys <= row.rw_range[1]:
            return Status.INVALID
        raw = self.physical_to_raw(f, phys)
        if raw is None:
            return Status.INVALID
        return [Write(f, raw)]

    def physical_to_raw(self, f: Field, value: float) -> int | None:
        """Invert the field's (linear) conversion without clamping, so that -1
        (cancel a countdown) is written as -1 like NUT does, not clamped to 0.
        None when the value does not fit the field's bits."""
        from .values import to_physical

        lo, hi = f.logical_min, f.logical_max
        if hi == lo:
            hi = lo + 1
        p_lo, p_hi = to_physical(f, lo), to_physical(f, hi)
        if p_hi == p_lo:
            return None
        raw = lo + (value - p_lo) * (hi - lo) / (p_hi - p_lo)
        if not math.isfinite(raw):
            return None
        r = round(raw)
        if not -(1 << (f.size - 1)) <= r < (1 << f.size):
            return None
        return r

    def instcmd(self, cmd: str, param: str | None, current: Mapping[str, str]) -> list[Step] | Status:
        """Steps for INSTCMD (``current``: published variables, for the delays of
        the composite shutdown commands), or Status.UNKNOWN / INVALID."""
        name = cmd.lower()
        # NUT's compatibility aliases, checked before the table
        if name == "beeper.off":
            name, param = "beeper.disable", None
        elif name == "beeper.on":
            name, param = "beeper.enable", None
        if name in self.cmds:
            entry, f = self.cmds[name]
            value: float | None = float(entry.value)
            if param is not None and param.strip():
                value = finite_number(param)
                if value is None:
                    return Status.INVALID
            assert value is not None
            raw = self.physical_to_raw(f, value)
            if raw is None:
                return Status.INVALID
            return [Write(f, raw)]
        if name == "load.off" and "load.off.delay" in self.cmds:
            return self.instcmd("load.off.delay", "0", current)
        if name == "load.on" and "load.on.delay" in self.cmds:
            return self.instcmd("load.on.delay", "0", current)
        if name in ("shutdown.return", "shutdown.stayoff") and \
                "load.on.delay" in self.cmds and "load.off.delay" in self.cmds:
            steps: list[Step] = []
            if "ups.start.auto" in current:
                auto = self.setvar("ups.start.auto", "yes" if name == "shutdown.return" else "no")
                if isinstance(auto, list):
                    steps.extend(auto)
            start = current.get("ups.delay.start") if name == "shutdown.return" else "-1"
            first = self.instcmd("load.on.delay", start, current)
            if not isinstance(first, list):
                return first
            second = self.instcmd("load.off.delay", current.get("ups.delay.shutdown"), current)
            if not isinstance(second, list):
                return second
            return [*steps, *first, Sleep(COMPOSITE_GAP), *second]
        return Status.UNKNOWN

    def render_write(self, step: Write, current: bytes | None) -> bytes:
        """The SET_REPORT payload (ID byte first when IDs are used) for a write:
        ``current`` = the report's last bytes (other fields kept), or None = zeros."""
        from .values import insert

        f = step.field
        length = self.desc.report_length("Feature", f.report_id)
        # Broken descriptors over-declare reports (BK650M2-CH: a stale Report Count
        # of 23 makes 3-byte reports 47 bytes); the device's own reply length wins
        # when it covers the field, so the write is the size the firmware expects.
        end = (f.offset + f.size + 7) // 8 + (1 if f.report_id else 0)
        if current and end <= len(current) < length:
            length = len(current)
        buf = bytearray(length)
        if current:
            n = min(len(current), length)
            buf[:n] = current[:n]
        if f.report_id:
            buf[0] = f.report_id
        insert(f, buf, step.raw)
        return bytes(buf)


_OPPOSITE = {"online": "offline", "offline": "online", "fullycharged": "notfullycharged",
             "notfullycharged": "fullycharged"}


def _default_identity(info: UsbIdentity) -> dict[str, str]:
    return {"ups.mfr": (info.manufacturer or "").strip(), "ups.model": (info.product or "").strip(),
            "ups.serial": (info.serial or "").strip()}


def split_firmware(product: str | None) -> dict[str, str]:
    """APC product strings carry firmware: "Back-UPS RS 1500 FW:8.g9 .D USB FW:g9" ->
    model, ups.firmware, ups.firmware.aux."""
    model = (product or "unknown")
    out: dict[str, str] = {}
    idx = model.find("FW:")
    if idx >= 0:
        fw = model[idx + 3:]
        model = model[:max(idx - 1, 0)]
        usb = fw.find("USB FW:")
        if usb >= 0:
            out["ups.firmware.aux"] = fw[usb + 7:].strip()
            fw = fw[:max(usb - 1, 0)]
        out["ups.firmware"] = fw.strip()
    out["ups.model"] = model.strip()
    return out


def replace_limits(desc: ReportDescriptor, match: Callable[[Field], bool],
                   **changes: int) -> ReportDescriptor:
    """A copy of ``desc`` with ``changes`` (logical_min/logical_max) applied to matching fields."""
    fields = [replace(f, **changes) if match(f) else f for f in desc.fields]  # type: ignore[arg-type]
    return ReportDescriptor(fields, desc.uses_report_ids, [*desc.warnings], dict(desc.extents))


def find_by_id(desc: ReportDescriptor, report_id: int, leaf: str) -> list[Field]:
    """Fields of one report whose last path element is ``leaf`` (NUT's FindObject_with_ID_Node)."""
    return [f for f in desc.fields if f.report_id == report_id and f.path.rsplit(".", 1)[-1] == leaf]
