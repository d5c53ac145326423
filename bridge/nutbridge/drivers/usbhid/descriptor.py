"""HID report descriptor parser (HID 1.11 §6.2.2) producing NUT-style fields.

Every Input/Output/Feature value that has a usage becomes a :class:`Field` whose
``path`` is the chain of collection usages plus its own usage, named the way NUT's
usbhid-ups names them (see :mod:`.usages`), so ``Path:`` lines of NUT debug dumps
and our fields compare one to one. Behaviour deliberately shared with NUT:

* a main item with Report Count > number of usages yields fields only for the
  usages it has; the rest (padding, unused array slots) only advance the offset;
* a Collection whose data is >= 0x80 (vendor-defined type) adds an index node
  ``[n]`` (n = data & 0x7F) after its usage;
* a short usage takes the Usage Page in force when the Usage item is read;
* a Logical Maximum below the Logical Minimum (a firmware that encoded 255 in one
  signed byte as -1) is re-read unsigned, with NUT's warning;
* physical limits count only when both were given and are not both 0.

Unlike NUT, offsets do not wrap at 256 bits, Usage Minimum/Maximum ranges are
expanded, and Push/Pop work. Hostile input (oversized descriptor, deep nesting,
huge reports, too many fields, truncated items, Pop without Push) raises
:class:`HIDParseError` with the byte offset; nothing else is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dc_field

from .usages import NAMES, usage_name

MAX_DESCRIPTOR = 0xFFFF       # wDescriptorLength is 16 bits
MAX_DEPTH = 32                # collection nesting
MAX_PUSH = 16                 # Push without Pop
MAX_FIELDS = 4096
MAX_REPORT_BYTES = 4096       # one report, ID byte included

KINDS = {0x8: "Input", 0x9: "Output", 0xB: "Feature"}
_KIND_ORDER = ("Feature", "Input", "Output")
_INDEX_PAGE = 0x00FF0000


class HIDParseError(ValueError):
    """The report descriptor is malformed or exceeds our limits (message has the byte offset)."""


@dataclass(frozen=True, slots=True)
class Field:
    """One value in a report, as NUT's ``Path: ..., Type: ..., ReportID: ..., Offset: ..., Size: ...``."""

    path: str                 # "UPS.PowerSummary.PresentStatus.ACPresent"
    kind: str                 # "Input" | "Output" | "Feature"
    report_id: int            # 0 when the descriptor declares no report IDs
    offset: int               # bit offset in the report payload (the ID byte not counted)
    size: int                 # bits
    logical_min: int
    logical_max: int
    physical_min: int         # 0/0 when absent
    physical_max: int
    unit: int
    unit_exponent: int        # sign-decoded (-8..7)
    flags: int                # main item data bits (bit0 constant, bit1 variable, ...)
    string_index: int | None = None
    #: the numeric path (usages; index nodes 0x00FF00nn), so paths can be re-named per subdriver
    nodes: tuple[int, ...] = ()


#: subdriver fix-up hook: called for every parsed field, returns it (possibly replaced)
FixHook = Callable[[Field], Field]


@dataclass
class ReportDescriptor:
    fields: list[Field]
    uses_report_ids: bool
    warnings: list[str] = dc_field(default_factory=list)
    #: bits per (kind, report id), padding and unnamed slots included
    extents: dict[tuple[str, int], int] = dc_field(default_factory=dict)
    _index: dict[str, list[Field]] | None = dc_field(default=None, repr=False, compare=False)

    def _by_path(self) -> dict[str, list[Field]]:
        if self._index is None:
            index: dict[str, list[Field]] = {}
            for fld in self.fields:
                index.setdefault(fld.path.lower(), []).append(fld)
            self._index = index
        return self._index

    def find(self, path: str, kind: str | None = None) -> Field | None:
        """The field at ``path`` (case-insensitive, like NUT); with ``kind`` None prefer
        Feature, then Input, then Output."""
        found = self._by_path().get(path.lower(), [])
        for want in (kind,) if kind is not None else _KIND_ORDER:
            for fld in found:
                if fld.kind == want:
                    return fld
        return None

    def report_length(self, kind: str, report_id: int) -> int:
        """Report size in bytes, including the ID byte when the descriptor uses report IDs
        (0 when there is no such report)."""
        bits = self.extents.get((kind, report_id), 0)
        for fld in self.fields:  # a fix-up may have moved or grown a field
            if fld.kind == kind and fld.report_id == report_id:
                bits = max(bits, fld.offset + fld.size)
        if not bits and (kind, report_id) not in self.extents:
            return 0
        return (bits + 7) // 8 + (1 if self.uses_report_ids else 0)

    def report_ids(self, kind: str) -> list[int]:
        """Sorted report IDs that carry ``kind`` fields."""
        return sorted({f.report_id for f in self.fields if f.kind == kind})

    def with_names(self, names: Mapping[int, str]) -> ReportDescriptor:
        """The same descriptor with paths named by another usage table (``usages.names_for(sub)``)."""
        fields = [replace(f, path=_path(f.nodes, names)) if f.nodes else f for f in self.fields]
        return ReportDescriptor(fields, self.uses_report_ids, list(self.warnings), dict(self.extents))


def _path(nodes: tuple[int, ...], names: Mapping[int, str]) -> str:
    return ".".join(usage_name(n, names) for n in nodes)


@dataclass
class _Globals:
    page: int = 0
    logical_min: int = 0
    logical_max: int = 0
    physical_min: int = 0
    physical_max: int = 0
    have_pmin: bool = False
    have_pmax: bool = False
    unit: int = 0
    unit_exponent: int = 0
    size: int = 0
    count: int = 0
    report_id: int = 0


def _signed(raw: int, nbytes: int) -> int:
    if nbytes == 0:
        return 0
    bits = 8 * nbytes
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def _exponent(raw: int) -> int:
    # HID 1.11 §6.2.2.7: a 4-bit two's complement nibble; devices also send a full
    # signed byte (0xFE for -2), whose low nibble decodes the same.
    nibble = raw & 0x0F
    return nibble - 16 if nibble >= 8 else nibble


class _Usages:
    """Pending local usages as inclusive ranges, consumed one by one (ranges stay lazy)."""

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.pending_min: int | None = None
        self.string_index: int | None = None

    def add(self, first: int, last: int) -> None:
        if len(self.ranges) >= MAX_FIELDS:
            raise OverflowError
        self.ranges.append([first, last])

    def take(self) -> int | None:
        while self.ranges:
            rng = self.ranges[0]
            if rng[0] <= rng[1]:
                rng[0] += 1
                return rng[0] - 1
            self.ranges.pop(0)
        return None


def parse(data: bytes, *, fix: FixHook | None = None, names: Mapping[int, str] | None = None
          ) -> ReportDescriptor:
    """Parse a report descriptor; raises :class:`HIDParseError` on malformed or hostile input.

    ``names``: usage names for the paths (default :data:`.usages.NAMES`; pass
    ``usages.names_for(subdriver)`` to name paths as that NUT subdriver does).
    ``fix``: a subdriver hook applied to every field after parsing.
    """
    data = bytes(data)
    if len(data) > MAX_DESCRIPTOR:
        raise HIDParseError(f"report descriptor too long ({len(data)} bytes, limit {MAX_DESCRIPTOR})")
    table = NAMES if names is None else names
    g = _Globals()
    stack: list[_Globals] = []
    local = _Usages()
    path: list[int] = []
    depth: list[int] = []          # nodes each open collection added (1, or 2 with an index node)
    extents: dict[tuple[str, int], int] = {}
    fields: list[Field] = []
    warnings: list[str] = []
    uses_ids = False
    pos = 0
    n = len(data)
    while pos < n:
        start = pos
        prefix = data[pos]
        if prefix == 0xFE:  # long item: skipped, as HID 1.11 defines no long item tags
            if pos + 3 > n:
                raise HIDParseError(f"truncated long item at byte {start}")
            pos += 3 + data[pos + 1]
            if pos > n:
                raise HIDParseError(f"long item at byte {start} runs past the end of the descriptor")
            continue
        nbytes = (0, 1, 2, 4)[prefix & 3]
        itype = (prefix >> 2) & 3
        tag = prefix >> 4
        if pos + 1 + nbytes > n:
            raise HIDParseError(f"truncated item 0x{prefix:02x} at byte {start}")
        raw = int.from_bytes(data[pos + 1:pos + 1 + nbytes], "little")
        pos += 1 + nbytes

        if itype == 0:  # main
            if tag in KINDS:
                kind = KINDS[tag]
                key = (kind, g.report_id)
                offset = extents.get(key, 0)
                end = offset + g.size * g.count
                if (end + 7) // 8 + (1 if uses_ids else 0) > MAX_REPORT_BYTES:
                    raise HIDParseError(
                        f"{kind} report 0x{g.report_id:02x} exceeds {MAX_REPORT_BYTES} bytes at byte {start}")
                pmin, pmax = ((g.physical_min, g.physical_max) if g.have_pmin and g.have_pmax else (0, 0))
                for i in range(g.count):
                    usage = local.take()
                    if usage is None or usage == 0:
                        # NUT keeps only slots that have a usage: the rest is padding or
                        # continuation and only takes room in the report
                        if usage is None:
                            break
                        continue
                    if len(fields) >= MAX_FIELDS:
                        raise HIDParseError(f"more than {MAX_FIELDS} fields at byte {start}")
                    nodes = (*path, usage)
                    fields.append(Field(
                        path=_path(nodes, table), kind=kind, report_id=g.report_id,
                        offset=offset + i * g.size, size=g.size,
                        logical_min=g.logical_min, logical_max=g.logical_max,
                        physical_min=pmin, physical_max=pmax, unit=g.unit, unit_exponent=g.unit_exponent,
                        flags=raw, string_index=local.string_index, nodes=nodes))
                extents[key] = end
            elif tag == 0xA:  # Collection
                if len(depth) >= MAX_DEPTH:
                    raise HIDParseError(f"collections nested deeper than {MAX_DEPTH} at byte {start}")
                usage = local.take()
                path.append(usage or 0)
                if raw >= 0x80:  # vendor-defined collection type: NUT's index node
                    path.append(_INDEX_PAGE | (raw & 0x7F))
                    depth.append(2)
                else:
                    depth.append(1)
            elif tag == 0xC:  # End Collection
                if depth:
                    del path[len(path) - depth.pop():]
                else:
                    warnings.append(f"End Collection without Collection at byte {start} (ignored)")
            local = _Usages()  # local items never outlive a main item (HID 1.11 §6.2.2.8)
        elif itype == 1:  # global
            if tag == 0x0:
                g.page = raw & 0xFFFF
            elif tag == 0x1:
                g.logical_min = _signed(raw, nbytes)
            elif tag == 0x2:
                g.logical_max = _signed(raw, nbytes)
                if g.logical_max < g.logical_min:
                    msg = ("LogMax is less than LogMin. Vendor HID report descriptor may be incorrect; "
                           f"interpreting LogMax {g.logical_max} as {raw} in ReportID: 0x{g.report_id:02x}")
                    warnings.append(msg)
                    g.logical_max = raw
            elif tag == 0x3:
                g.physical_min, g.have_pmin = _signed(raw, nbytes), True
            elif tag == 0x4:
                g.physical_max, g.have_pmax = _signed(raw, nbytes), True
            elif tag == 0x5:
                g.unit_exponent = _exponent(raw)
            elif tag == 0x6:
                g.unit = raw
            elif tag == 0x7:
                g.size = raw
            elif tag == 0x8:
                if not 1 <= raw <= 0xFF:
                    raise HIDParseError(f"invalid Report ID {raw} at byte {start}")
                if not uses_ids and fields:
                    warnings.append(f"Report ID declared after fields without one, at byte {start}")
                g.report_id = raw
                uses_ids = True
            elif tag == 0x9:
                g.count = raw
            elif tag == 0xA:  # Push
                if len(stack) >= MAX_PUSH:
                    raise HIDParseError(f"more than {MAX_PUSH} nested Push items at byte {start}")
                stack.append(replace(g))
            elif tag == 0xB:  # Pop
                if not stack:
                    raise HIDParseError(f"Pop without Push at byte {start}")
                g = stack.pop()
        elif itype == 2:  # local
            usage = raw if nbytes == 4 else (g.page << 16) | (raw & 0xFFFF)
            try:
                if tag == 0x0:
                    local.add(usage, usage)
                elif tag == 0x1:
                    local.pending_min = usage
                elif tag == 0x2:
                    if local.pending_min is None:
                        warnings.append(f"Usage Maximum without Usage Minimum at byte {start} (ignored)")
                    else:
                        local.add(local.pending_min, usage)
                        local.pending_min = None
                elif tag == 0x7:
                    local.string_index = raw
            except OverflowError:
                raise HIDParseError(f"more than {MAX_FIELDS} usages before one main item at byte {start}"
                                    ) from None
        # itype 3 (reserved) and unknown tags: ignored, as HID 1.11 asks of parsers
    if depth:
        warnings.append(f"{len(depth)} collection(s) not closed at the end of the descriptor")
    if fix is not None:
        fields = [fix(f) for f in fields]
    return ReportDescriptor(fields, uses_ids, warnings, extents)
