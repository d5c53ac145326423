"""The table vocabulary of the HID subdrivers: what a vendor mapping is made of.

A subdriver (one module per vendor family in ``subdrivers/``: ``apc.py``, ``mge.py``,
``powercom.py`` ... and ``generic.py``) is pure data: a :class:`Subdriver` with its USB
IDs, its :class:`Row` table (one row per NUT variable; several rows - or several paths
of one row - for the same variable are alternatives in table order: the first that
exists in the device's descriptor *and* yields a value wins for good, as in NUT), its
:class:`Cmd` table, the rule by which it claims a device (:class:`Claim`) and a few
hooks for vendor quirks. This module holds those types, the shared value lookups and
converters, and the small helpers that build rows and fix descriptors.
It also names the steps a write becomes (:class:`Write`, :class:`Sleep`,
:class:`LocalSet`), which the mapper produces and the driver executes.

Nothing here reads a report: :mod:`.mapper` binds a table to one device's descriptor,
:mod:`.status` turns the status bits into ``ups.status``, :mod:`.subdrivers` lists the
tables and chooses among them. The subdrivers import only this module (and
:mod:`.descriptor` for fix-ups), so the engine never imports its tables' vocabulary
back from them.

The tables are written from the HID PDC usage names, after NUT's documented
usbhid-ups behaviour (docs/man/usbhid-ups, drivers.md §3).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from typing import Protocol, TypeAlias

from .descriptor import Field, ReportDescriptor

__all__ = [
    "ABSENT",
    "ENUM",
    "NUMBER",
    "PREFER",
    "QUICK",
    "RW",
    "SEMI",
    "STATIC",
    "STRING",
    "Claim",
    "Cmd",
    "Converter",
    "Ctx",
    "Encoder",
    "Flag",
    "LocalSet",
    "Row",
    "Sleep",
    "Step",
    "Subdriver",
    "UsbIdentity",
    "Write",
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
    NUMBER = 128  # RW published as a number (NUT's ST_FLAG_RW alone): no string length, no enum
    PREFER = 256  # replaces what the USB identity gave (ups.model from a vendor string usage)


RW, QUICK, STATIC, ABSENT, STRING, ENUM, SEMI = (Flag.RW, Flag.QUICK, Flag.STATIC, Flag.ABSENT, Flag.STRING,
                                                 Flag.ENUM, Flag.SEMI)
NUMBER, PREFER = Flag.NUMBER, Flag.PREFER


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
    #: the last bytes received for each report ID, Feature or Input, ID byte first when IDs are
    #: used (NUT's report buffer): for the few converters that decode a whole report, as Ever's
    #: and PowerCOM's tables do
    reports: Mapping[int, bytes] = dc_field(default_factory=dict)


#: physical value -> NUT text (None = publish nothing for this value); on a BOOL row the text
#: is a status token ("trim", "!trim") instead
Converter: TypeAlias = Callable[[float, Ctx], "str | None"]

#: what an instant command writes, computed: (parameter or None, ctx, published variables) ->
#: physical value, or None when the parameter is not acceptable
Encoder: TypeAlias = Callable[["str | None", Ctx, Mapping[str, str]], "float | None"]


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
    ``encode`` computes the value instead, for vendors whose commands pack delays into
    their own formats (PowerCOM); it sees the parameter (None without one).
    """

    cmd: str
    paths: tuple[str, ...]
    value: int
    encode: Encoder | None = None


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


#: descriptor fix-up: (descriptor, vendor_id, product_id) -> descriptor (NUT's fix_report_desc)
FixDescriptor: TypeAlias = Callable[[ReportDescriptor, int, int], ReportDescriptor]


@dataclass(frozen=True, slots=True)
class Claim:
    """What a subdriver is shown when it is asked to claim a device (NUT's claim functions).

    ``listed``: the exact VID:PID is in the subdriver's table (NUT: SUPPORTED); otherwise only
    the vendor is (POSSIBLY_SUPPORTED), which NUT takes only when ups.conf sets ``productid``
    (``productid_option``). ``manufacturer``/``product`` are the USB strings, for vendors whose
    claim depends on them (Phoenixtec's 06da:ffff is shared by three subdrivers).
    """

    vendor_id: int
    product_id: int
    listed: bool
    manufacturer: str | None = None
    product: str | None = None
    productid_option: bool = False


#: a subdriver's own claim rule: Claim -> take the device? (None: NUT's usual rule, see
#: :meth:`Subdriver.claims`)
ClaimRule: TypeAlias = Callable[[Claim], bool]


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
    #: (:meth:`.mapper.Mapper.supported`; None: any descriptor)
    recognizes: Callable[[ReportDescriptor], bool] | None = None
    #: per product ID: ups.conf option defaults (e.g. {"pollonly": ""} where NUT disables the interrupt pipe)
    product_defaults: Mapping[int, Mapping[str, str]] = dc_field(default_factory=dict)
    #: the vendor's claim rule (None: take listed IDs, other products of the vendor with ``productid``)
    claim: ClaimRule | None = None
    #: reports to GET on full polls although no field of the descriptor is in them:
    #: (kind, report id, length in bytes, path): read while ``path`` exists in the descriptor;
    #: a converter decodes them from ``Ctx.reports`` (PowerCOM's battery voltage in 0xa4)
    extra_reports: tuple[tuple[str, int, int, str], ...] = ()

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

    def claims(self, vendor_id: int, product_id: int, *, manufacturer: str | None = None,
               product: str | None = None, productid_option: bool = False) -> bool:
        """Does this subdriver take the device, by NUT's rules? Listed IDs: yes; another
        product of a listed vendor: only with ups.conf's ``productid`` (NUT's "possibly
        supported"); the vendor's own :attr:`claim` rule may refine both."""
        if not any(v == vendor_id for v, _ in self.ids):
            return False
        listed = self.matches(vendor_id, product_id)
        if self.claim is not None:
            return self.claim(Claim(vendor_id, product_id, listed, manufacturer, product, productid_option))
        return listed or productid_option


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
    string of ``length`` like NUT, with ``enum`` (NUT's HU_FLAG_ENUM) as the ``lookup``
    names, or with ``flags=NUMBER`` as a plain RW number; with a lookup, SET VAR only
    accepts the lookup's names."""
    paths = (path,) if isinstance(path, str) else path
    extra = ENUM if enum and lookup is not None else Flag.NONE if flags & NUMBER else STRING
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
