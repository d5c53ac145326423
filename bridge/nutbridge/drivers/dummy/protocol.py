"""The dummy-ups file format (``.dev`` / ``.seq``), sans-IO: the bytes of a file in, typed
entries and DDL metadata out. No file I/O and no :class:`~nutbridge.state.Device` here; the
driver (:mod:`.driver`) reads the file and applies what this module finds in it.

Lines follow NUT's parseconf rules (:mod:`nutbridge.protocol.tokenizer`); a line the
tokenizer rejects is dropped, as upstream's parser does. What each line means, as observed
from NUT's C dummy-ups:

* ``var: words...``: the first word loses one trailing ``:``; the value is the other
  words joined by single spaces, cut to 127 characters (upstream joins into a 128-byte
  buffer). A line with no value words has value ``None`` (the driver reuses the previous
  value: an upstream quirk); an empty value (``k: ""``) deletes the variable.
* ``driver.*`` lines are skipped (the driver describes itself); ``ups.status`` lines
  (any case) are status entries.
* ``TIMER <s>`` pauses a replay; a TIMER without a number is dropped.
* ``ALARM <text>`` (NUT 2.8.1+) adds an alarm text, a bare ``ALARM`` clears them (2.8.0 read
  ``ALARM`` as an ordinary variable name).

The DDL comments ``#RW:<var>:STRING:<n>``, ``#RW:<var>:NUMBER``,
``#RW:<var>:RANGE:"<min>" "<max>"``, ``#RW:<var>:ENUM:"<v>"`` and ``#CMD:<cmd>`` are NUT's
device dump metadata: upstream ignores them, our ``ddlmeta`` extension reads them
(:func:`parse_meta`, :func:`check_value`).

:func:`known_flags` is the type C dummy-ups gives a variable a file sets, by name.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from ...protocol.tokenizer import Line, Tokenizer

# Flags C dummy-ups gives known names, observed by loading every variable name of
# the DDL corpus and NUT's cmdvartab into it and asking upsd GET TYPE. None means
# NUMBER, an int means STRING of that length; all are RW. Unlisted names get
# RW STRING:32. (Data gathered from the binary's behaviour; see tests/test_dummy.py.)
_KNOWN_FLAGS: dict[str, int | None] = {
    **dict.fromkeys(
        (
            "ambient.humidity", "ambient.humidity.alarm", "ambient.humidity.high",
            "ambient.humidity.low", "ambient.temperature", "ambient.temperature.alarm",
            "ambient.temperature.high", "ambient.temperature.low", "battery.charge",
            "battery.charge.low", "battery.charge.restart", "battery.current", "battery.runtime",
            "battery.runtime.low", "battery.temperature", "battery.voltage",
            "battery.voltage.nominal", "input.frequency", "input.transfer.boost.high",
            "input.transfer.boost.low", "input.transfer.high", "input.transfer.low",
            "input.transfer.trim.high", "input.transfer.trim.low", "input.voltage",
            "input.voltage.maximum", "input.voltage.minimum", "input.voltage.nominal",
            "output.current", "output.frequency", "output.voltage", "ups.delay.reboot",
            "ups.delay.shutdown", "ups.delay.start", "ups.load", "ups.temperature",
            "ups.test.interval",
        ),
        None,
    ),
    "input.quality": 6,
    "input.sensitivity": 1,
    "input.transfer.reason": 1,
    "ups.date": 16,
    "ups.firmware": 16,
    "ups.firmware.aux": 16,
    "ups.id": 16,
    "ups.mfr.date": 16,
    "ups.test.result": 16,
    "ups.time": 16,
}
DEFAULT_STRING_LEN = 32
MAX_FILE_VALUE = 127

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_META_RE = re.compile(rf"^\s*#(RW|CMD):({_NAME})(?::([A-Za-z]+)(?::?(.*))?)?")
_QUOTED_RE = re.compile(r'"([^"]*)"')


def known_flags(name: str) -> tuple[bool, int | None]:
    """(string?, aux) that C dummy-ups gives ``name`` when a file sets it."""
    key = name.lower()
    if key in _KNOWN_FLAGS:
        aux = _KNOWN_FLAGS[key]
        return (aux is not None, aux)
    return (True, DEFAULT_STRING_LEN)


# ---- entries -------------------------------------------------------------------------------


class EntryKind(enum.StrEnum):
    """What a meaningful line of a dummy file does."""

    VAR = "var"  # sets (or, with an empty value, deletes) a variable
    STATUS = "status"  # replaces ups.status
    TIMER = "timer"  # pauses the replay for ``seconds``
    ALARM = "alarm"  # adds an alarm text; an empty one clears them


@dataclass(frozen=True, slots=True)
class Entry:
    """One meaningful line of a dummy file."""

    kind: EntryKind
    name: str = ""
    value: str | None = None  # None: the line had no value words
    seconds: float = 0.0


def parse_entries(data: bytes) -> list[Entry]:
    """Split a dummy file into entries with NUT's parseconf rules."""
    tok = Tokenizer()
    events = tok.feed(data if data.endswith(b"\n") else data + b"\n")
    out: list[Entry] = []
    for ev in events:
        if not isinstance(ev, Line) or not ev.words:
            continue  # parse errors drop the line, as upstream's parser does
        first, rest = ev.words[0], ev.words[1:]
        if first == "TIMER":
            try:
                out.append(Entry(EntryKind.TIMER, seconds=max(0.0, float(rest[0]))))
            except (IndexError, ValueError):
                pass
            continue
        if first == "ALARM":
            out.append(Entry(EntryKind.ALARM, value=" ".join(rest)))
            continue
        name = first[:-1] if first.endswith(":") else first
        if not name or name.lower().startswith("driver."):
            continue
        value = " ".join(rest)[:MAX_FILE_VALUE] if rest else None  # upstream's 128-byte buffer
        kind = EntryKind.STATUS if name.lower() == "ups.status" else EntryKind.VAR
        out.append(Entry(kind, name, value))
    return out


# ---- DDL metadata (our ddlmeta extension) -------------------------------------------------------


@dataclass(slots=True)
class VarMeta:
    """DDL ``#RW`` metadata of one variable."""

    string: bool | None = None  # None: keep the base type (bare "STRING" in old dumps)
    aux: int | None = None
    enums: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class DdlMeta:
    """Every ``#RW`` / ``#CMD`` comment of a dump."""

    rw: dict[str, VarMeta] = field(default_factory=dict)  # lowercased name -> meta
    cmds: list[str] = field(default_factory=list)


def parse_meta(data: bytes | str) -> DdlMeta:
    """Collect the DDL ``#RW:`` / ``#CMD:`` comment metadata (bytes are read as latin-1)."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    meta = DdlMeta()
    for line in text.splitlines():
        m = _META_RE.match(line)
        if not m:
            continue
        what, name, kind, opts = m.group(1), m.group(2), (m.group(3) or "").upper(), m.group(4) or ""
        if what == "CMD":
            if name not in meta.cmds:
                meta.cmds.append(name)
            continue
        vm = meta.rw.setdefault(name.lower(), VarMeta())
        opts = opts.split("#", 1)[0]  # trailing "#BAD..." / "#COMMENT..."
        if kind == "STRING":
            n = re.match(r"\s*(\d+)", opts)
            if n:
                vm.string, vm.aux = True, int(n.group(1))
        elif kind == "NUMBER":
            vm.string = False
        elif kind == "ENUM":
            vals = _QUOTED_RE.findall(opts)
            if vals and vals[0] not in vm.enums:
                vm.enums.append(vals[0])
        elif kind == "RANGE":
            vals = _QUOTED_RE.findall(opts)
            try:
                lo, hi = int(vals[0]), int(vals[1])
            except (IndexError, ValueError):
                continue
            vm.ranges.append((lo, hi))
            if vm.string is None:
                vm.string = False
    return meta


def check_value(vm: VarMeta, value: str) -> bool:
    """Does ``value`` satisfy the metadata (enum, range, length)?"""
    if vm.enums and value not in vm.enums:
        return False
    if vm.ranges:
        try:
            v = int(value)
        except ValueError:
            return False
        if not any(lo <= v <= hi for lo, hi in vm.ranges):
            return False
    return not (vm.string and vm.aux is not None and len(value) > vm.aux)
