"""The HID mapper: one subdriver's table bound to one device's report descriptor (sans-IO).

:class:`Mapper` does everything between report bytes and NUT variables that needs no I/O:

* which reports to read on a full / quick poll (:meth:`Mapper.poll_reports`),
* report bytes -> NUT variables incl. ``ups.status``/``ups.alarm``
  (:meth:`Mapper.apply`; the status rules are :mod:`.status`),
* RW variable metadata (:meth:`Mapper.rw_vars`), instant commands
  (:meth:`Mapper.commands`),
* SET VAR / INSTCMD -> a list of :data:`~.table.Step` (report writes, sleeps and local
  variable updates) that the driver executes in order (:meth:`Mapper.setvar`,
  :meth:`Mapper.instcmd`), and the exact SET_REPORT bytes of a write
  (:meth:`Mapper.render_write`).

The tables themselves are data in :mod:`.subdrivers`, written in the vocabulary of
:mod:`.table`; neither imports this module. Typical driver use (``driver.py``)::

    sub = choose_subdriver(info.vendor_id, info.product_id, config.get("subdriver"))
    desc = descriptor.parse(raw, names=usages.names_for(sub.key))   # vendor usage names differ
    options = {**sub.default_options(info.product_id), **config}      # CPS delays, APC pollonly
    mapper = Mapper(sub, desc, options, info=info)
    # mapper.desc is the descriptor after the subdriver's fix-up; report_length also knows
    # the subdriver's extra reports (PowerCOM's 0xa4), which no descriptor declares
    for kind, rid in mapper.poll_reports(quick_only=False):
        reports[(kind, rid)] = await get_feature/get_input(rid, mapper.report_length(kind, rid))
    for idx in mapper.string_indices(reports):   # i* usages are string descriptor indices
        strings[idx] = await transport.string(idx)
    for var, value in mapper.apply(reports, strings).items(): device.set(var, value)
    # interrupt: mapper.apply({("Input", data[0] or 0): data}, strings) -> same dict shape
    steps = mapper.instcmd("shutdown.return", None, current_values)   # or mapper.setvar(...)
    for step in steps:   # Write -> SET_REPORT mapper.render_write(step, last bytes), Sleep, LocalSet
        ...

The mapping rules follow NUT's documented usbhid-ups behaviour (docs/man/usbhid-ups,
drivers.md §3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..base import Status, finite_number
from .descriptor import Field, ReportDescriptor
from .status import apply_token, compute_status, transfer_reason
from .table import (
    ABSENT,
    ENUM,
    NUMBER,
    PREFER,
    QUICK,
    RW,
    STATIC,
    Cmd,
    Ctx,
    LocalSet,
    Row,
    Sleep,
    Step,
    Subdriver,
    UsbIdentity,
    Write,
)
from .values import extract, insert, to_physical

__all__ = ["COMPOSITE_GAP", "Mapper", "RwInfo", "fmt_value"]

#: composite commands wait this long between their two writes (some Tripp Lite units drop a
#: second command that arrives too fast; NUT sleeps 125 ms too)
COMPOSITE_GAP = 0.125


@dataclass(frozen=True, slots=True)
class RwInfo:
    """How to publish a writable variable: ``enums`` or ``ranges`` or a string of ``length``."""

    enums: tuple[str, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()
    string: bool = False
    length: int = 0


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
        self._reports: dict[int, bytes] = {}  # report ID -> last bytes, any kind
        self.ctx.reports = self._reports
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
        if not quick_only:
            out.update((kind, rid) for kind, rid, _, path in self.sub.extra_reports if self.desc.find(path))
        return sorted(out, key=lambda k: (k[0] != "Feature", k[1]))

    def report_length(self, kind: str, report_id: int) -> int:
        """Bytes to ask for when reading a report: the descriptor's length, or for the
        subdriver's extra reports (not in the descriptor) the length its table gives."""
        length = self.desc.report_length(kind, report_id)
        if length:
            return length
        return next((n for k, rid, n, _ in self.sub.extra_reports if (k, rid) == (kind, report_id)), 0)

    def _beaten(self, b: _Bound) -> bool:
        """Another alternative for this variable already won."""
        won = self._winner.get(b.row.var)
        return won is not None and won is not b

    def feature_ids(self, quick_only: bool = False) -> list[int]:
        """Feature report IDs of :meth:`poll_reports` (convenience)."""
        return [rid for kind, rid in self.poll_reports(quick_only) if kind == "Feature"]

    def _ingest(self, reports: Mapping[tuple[str, int], bytes | None]) -> None:
        for key, data in reports.items():
            if not data:
                continue
            self._reports[key[1]] = bytes(data)
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
        from_identity = set(out)   # PREFER rows may replace these
        ctx.values = out
        for b in self.rows:
            row = b.row
            if row.var in out and row.var != "BOOL" and not (row.flags & PREFER and row.var in from_identity):
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
            ctx.field = b.field
            if row.var == "BOOL":
                self._set_bits(row, raw, phys)
                continue
            if self._beaten(b):
                continue
            text = self._format(row, raw, phys, ctx, out)
            if text is not None:
                if row.var in from_identity:
                    from_identity.discard(row.var)
                    # the vendor's string replaces the USB one: its device.* copy too
                    twin = "device." + row.var[4:] if row.var.startswith("ups.") else ""
                    if twin in from_identity:
                        out[twin] = text
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

    def _set_bits(self, row: Row, raw: int, phys: float) -> None:
        if callable(row.fmt):
            # a converter gives the token itself (bit fields, values read from whole reports)
            try:
                token = row.fmt(phys, self.ctx)
            except (ArithmeticError, ValueError, IndexError):
                token = None
            if token:
                apply_token(self._bits, token)
            return
        if row.lookup is not None:
            token = row.lookup.get(raw)
            if token is not None:
                apply_token(self._bits, token)
            return
        active = (raw & row.mask if row.mask else raw) != 0
        active = active != row.invert
        if row.bit == "online":
            # ACPresent = 0 says "explicitly on battery" (NUT's online_info: 0 -> offline)
            apply_token(self._bits, "online" if active else "offline")
        else:
            apply_token(self._bits, row.bit if active else f"!{row.bit}")

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
            elif row.flags & NUMBER:
                out[row.var] = RwInfo()
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
            given = param.strip() if param is not None and param.strip() else None
            if entry.encode is not None:
                value = entry.encode(given, self.ctx, current)
                if value is None:
                    return Status.CONVERSION_FAILED
            elif given is not None:
                value = finite_number(given)
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


def _default_identity(info: UsbIdentity) -> dict[str, str]:
    return {"ups.mfr": (info.manufacturer or "").strip(), "ups.model": (info.product or "").strip(),
            "ups.serial": (info.serial or "").strip()}


def fmt_value(fmt: str, value: float) -> str:
    """printf-style formatting of a physical value (NUT formats doubles with %.Nf / %s)."""
    if fmt == "%s":
        return f"{value:g}"
    try:
        return fmt % value
    except (TypeError, ValueError):
        return str(value)

