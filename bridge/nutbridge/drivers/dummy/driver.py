"""dummy-ups: a UPS whose data comes from a text file.

Behaviour reproduced from observing NUT 2.8.0's dummy-ups under its upsd:

* ``port`` ending in ``.dev`` (or ``mode = dummy-once``): the file is read once,
  and read again only when its mtime changes. Re-reading overlays values; it
  never removes a variable, so values written by SET persist until the file
  sets them again.
* ``.seq`` (``dummy-loop``) and any other name (legacy ``dummy``): the file is
  replayed forever; ``TIMER <s>`` pauses the replay, the end of the file waits
  one poll interval before starting over.
* ``var: words...``: the first word loses one trailing ``:``; the value is the
  other words joined by single spaces. An *empty* value deletes the variable.
  Quirk kept from upstream: a line with no value at all reuses the value of the
  previous non-status line.
* ``driver.*`` lines are skipped; ``ups.status`` lines replace the status.
* Flags: a small table of known names (observed with GET TYPE, see
  ``_KNOWN_FLAGS``) gives NUMBER or STRING:n; anything else is RW STRING:32.
* Built-in data: device.type, ups.mfr/ups.model defaults, status OL, the
  ``load.off`` command (which answers "unknown"), and once the first read is
  done, device.mfr/model/serial copied from ups.mfr/model/serial.

Our extension (``ddlmeta``, on by default): the NUT DDL comments
``#RW:<var>:STRING:<n>``, ``#RW:<var>:RANGE:"<min>" "<max>"``,
``#RW:<var>:ENUM:"<v>"`` and ``#CMD:<cmd>`` make the dumped device's writable
variables and commands real: SET is validated against them, the commands
answer "handled". ``ddlmeta = no`` gives upstream's behaviour exactly.

``ALARM <text>`` lines follow newer NUT (2.8.1+): the texts accumulate into
ups.alarm and add the ALARM status token; a bare ``ALARM`` clears them.
(2.8.0 treated ``ALARM`` as an ordinary variable name.)
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...compat import driver_core_2_8_5
from ...protocol.tokenizer import Line, Tokenizer
from ...protocol.wire import encode
from ...state import Device
from ..base import CORE_CMDS, ConfigError, DeviceError, Driver, Status, _bridge_version

MODES = ("dummy-once", "dummy-loop", "dummy")

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

# Copied to device.* once the first read is done (upstream's driver core does it).
_MIRRORED = ("mfr", "model", "serial")
# ups.conf keys C dummy-ups echoes as driver.parameter.* / driver.flag.*
_PARAMS = ("mode", "pollinterval", "port", "synchronous", "ddlmeta")
_FLAGS = ("nolock", "ignorelb")

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


# ---- file model --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One meaningful line of a dummy file."""

    kind: str  # "var", "status", "timer", "alarm"
    name: str = ""
    value: str | None = None  # None: the line had no value words
    seconds: float = 0.0


@dataclass(slots=True)
class VarMeta:
    """DDL ``#RW`` metadata of one variable."""

    string: bool | None = None  # None: keep the base type (bare "STRING" in old dumps)
    aux: int | None = None
    enums: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class DdlMeta:
    rw: dict[str, VarMeta] = field(default_factory=dict)  # lowercased name -> meta
    cmds: list[str] = field(default_factory=list)


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
                out.append(Entry("timer", seconds=max(0.0, float(rest[0]))))
            except (IndexError, ValueError):
                pass
            continue
        if first == "ALARM":
            out.append(Entry("alarm", value=" ".join(rest)))
            continue
        name = first[:-1] if first.endswith(":") else first
        if not name or name.lower().startswith("driver."):
            continue
        # upstream joins the value into a 128-byte buffer: longer values are cut
        value = " ".join(rest)[:MAX_FILE_VALUE] if rest else None
        kind = "status" if name.lower() == "ups.status" else "var"
        out.append(Entry(kind, name, value))
    return out


def parse_meta(text: str) -> DdlMeta:
    """Collect the DDL ``#RW:`` / ``#CMD:`` comment metadata."""
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


def guess_mode(port: str) -> str:
    if port.endswith(".dev"):
        return "dummy-once"
    if port.endswith(".seq"):
        return "dummy-loop"
    return "dummy"


def _yes(value: str) -> bool:
    return value.strip().lower() not in ("no", "off", "false", "0", "disabled")


# ---- the driver ---------------------------------------------------------------


class DummyUPS(Driver):
    names = ("dummy-ups",)
    options = frozenset({"mode", "ddlmeta", "synchronous", "nolock", "ignorelb"})
    version = "0.15"  # the upstream dummy-ups revision whose behaviour this follows

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        port = self.config.get("port", "")
        if not port:
            raise ConfigError("dummy-ups needs 'port' (a .dev or .seq file)")
        self.mode = self.config.get("mode") or guess_mode(port)
        if self.mode not in MODES:
            raise ConfigError(f"dummy-ups: invalid mode '{self.mode}' (use {', '.join(MODES)})")
        self.path = self._resolve(port)
        self.ddlmeta = _yes(self.config.get("ddlmeta", "yes"))
        self.meta = DdlMeta()
        self._entries: list[Entry] = []
        self._pos = 0  # next entry to apply; 0 with no entries = (re)read the file
        self._mtime: int | None = None
        self._delay = self.pollinterval  # until the next update() is due
        self._lastval = ""  # upstream reuses it for lines without a value
        self._alarms: list[str] | None = None  # None: no ALARM line seen yet
        self._initialised = False

    def _resolve(self, port: str) -> Path:
        p = Path(port)
        if p.is_absolute():
            return p
        base = self.config.get("_confdir") or os.environ.get("NUT_CONFPATH") or "/etc/nut"
        return Path(base) / p

    # ---- life cycle -----------------------------------------------------------
    async def connect(self) -> None:
        if not self.path.is_file():
            raise DeviceError(f"cannot open {self.path}")
        # After an outage start the file over, like a freshly started driver.
        self._entries, self._pos, self._mtime = [], 0, None

    async def update(self) -> None:
        dev = self.device
        with dev.batch():
            if not self._initialised:
                self._init_data()
            if self._pos >= len(self._entries) and not self._load():
                return  # dummy-once: file unchanged since the last read
            self._delay = self._run_chunk()
            if not self._initialised:
                for key in _MIRRORED:
                    v = dev.value(f"ups.{key}")
                    if v is not None:
                        # upstream's driver core copies the already-escaped
                        # value, so clients see it escaped twice; we match that
                        dev.set(f"device.{key}", encode(v))
                self._initialised = True

    async def wait(self) -> None:
        # Heartbeat every poll interval even during a long TIMER, so upsd does
        # not call the data stale (upstream's loop keeps polling meanwhile).
        remaining = self._delay
        while remaining > 0 and not self._stopping:
            step = min(remaining, self.pollinterval)
            try:
                await asyncio.wait_for(self._wake.wait(), step)
            except TimeoutError:
                pass
            if self._wake.is_set():
                break
            remaining -= step
            self.device.heard()
        self._wake.clear()

    # ---- file reading -----------------------------------------------------------
    def _load(self) -> bool:
        """(Re)read the file when due. False when a dummy-once file is unchanged."""
        try:
            st = self.path.stat()
            if self.mode == "dummy-once" and self._mtime == st.st_mtime_ns and self._entries:
                self._delay = self.pollinterval
                return False
            data = self.path.read_bytes()
        except OSError as exc:
            raise DeviceError(f"cannot read {self.path}: {exc}") from exc
        self._mtime = st.st_mtime_ns
        self._entries = parse_entries(data)
        self._pos = 0
        self._lastval = ""
        if self.ddlmeta:
            self.meta = parse_meta(data.decode("latin-1"))
            self._apply_cmds()
        if not self._entries:
            # Empty file: nothing to replay; keep _entries non-empty-checkable.
            self._entries = [Entry("timer", seconds=0.0)]
        return True

    def _run_chunk(self) -> float:
        """Apply entries up to the next TIMER or the end; return the pause."""
        dev = self.device
        # 2.8.5's driver core builds ups.status from tokens, each set once; a
        # file that never sets a status commits "" over the built-in "OL"
        status: list[str] | None = None
        if driver_core_2_8_5() and not self._initialised:
            status = []
        while self._pos < len(self._entries):
            e = self._entries[self._pos]
            self._pos += 1
            if e.kind == "timer":
                if e.seconds > 0:
                    self._finish_chunk(status)
                    return e.seconds
            elif e.kind == "alarm":
                if self._alarms is None:
                    self._alarms = []
                if e.value:
                    self._alarms.append(e.value)
                else:
                    self._alarms.clear()
            elif e.kind == "status":
                if driver_core_2_8_5():
                    status = list(dict.fromkeys((e.value or "").split()))
                else:
                    dev.set("ups.status", e.value or "", rw=True, string=True, aux=DEFAULT_STRING_LEN)
            else:
                value = self._lastval if e.value is None else e.value
                if e.value is not None:
                    self._lastval = e.value
                self._set_from_file(e.name, value)
        self._finish_chunk(status)
        if self.mode != "dummy-once":
            self._entries, self._pos = [], 0  # replay: re-read the file next time
        return self.pollinterval

    def _finish_chunk(self, status: list[str] | None = None) -> None:
        dev = self.device
        if status is not None:
            dev.set("ups.status", " ".join(status), rw=True, string=True, aux=DEFAULT_STRING_LEN)
        if self._alarms is None and driver_core_2_8_5() and dev.get("ups.alarm") is not None:
            # 2.8.5's driver core commits its alarm buffer after every update:
            # with no ALARM line, a plain "ups.alarm:" from the file is wiped
            dev.delete("ups.alarm")
        if self._alarms is not None:
            tokens = [t for t in dev.status_tokens() if t != "ALARM"]
            if self._alarms:
                dev.set("ups.alarm", " ".join(self._alarms))
                tokens.append("ALARM")
            else:
                dev.delete("ups.alarm")
            dev.set_status(*tokens)
        if self.ddlmeta:
            self._apply_meta()

    def _flags(self, name: str) -> tuple[bool, int | None]:
        """(string?, aux) for a variable: DDL metadata first, then upstream's table."""
        string, aux = known_flags(name)
        vm = self.meta.rw.get(name.lower()) if self.ddlmeta else None
        if vm is not None and vm.string is not None:
            string, aux = vm.string, vm.aux if vm.aux is not None else aux
        return string, (aux or DEFAULT_STRING_LEN) if string else None

    def _set_from_file(self, name: str, value: str) -> None:
        if value == "":
            self.device.delete(name)
            return
        string, aux = self._flags(name)
        self.device.set(name, value, rw=True, string=string, aux=aux)

    # ---- built-in data --------------------------------------------------------
    def _init_data(self) -> None:
        dev = self.device
        self.publish_driver_info()
        dev.set("device.type", "ups")
        self._set_from_file("ups.mfr", "Dummy Manufacturer")
        self._set_from_file("ups.model", "Dummy UPS")
        dev.set("ups.status", "OL", rw=True, string=True, aux=DEFAULT_STRING_LEN)
        dev.add_cmd("load.off")
        self.publish_core_extras()

    def publish_driver_info(self) -> None:
        dev, cfg = self.device, self.config
        with dev.batch():
            dev.set("driver.name", "dummy-ups")
            dev.set("driver.version", _bridge_version())
            dev.set("driver.version.internal", self.version if not driver_core_2_8_5() else "0.25")
            params = {"mode": self.mode, "pollinterval": cfg.get("pollinterval", "2"),
                      "synchronous": cfg.get("synchronous", "auto")}
            for key in _PARAMS:
                value = params.get(key, cfg.get(key))
                if value is not None:
                    dev.set(f"driver.parameter.{key}", value)
            for key in _FLAGS:
                if key in cfg:
                    dev.set(f"driver.flag.{key}", "enabled")

    # ---- DDL metadata (our extension) -------------------------------------------
    def _apply_cmds(self) -> None:
        if not self.meta.cmds:
            return
        dev = self.device
        for cmd in list(dev.commands()):
            if cmd not in self.meta.cmds and cmd not in CORE_CMDS:
                dev.delete_cmd(cmd)  # the dump's own list replaces the placeholder
        for cmd in self.meta.cmds:
            dev.add_cmd(cmd)

    def _apply_meta(self) -> None:
        dev = self.device
        for key, vm in self.meta.rw.items():
            var = dev.get(key)
            if var is None:
                continue
            string, aux = self._flags(var.name)
            dev.set(var.name, var.value, rw=True, string=string, aux=aux)
            if vm.enums:
                dev.set_enums(var.name, vm.enums)
            for lo, hi in vm.ranges:
                dev.add_range(var.name, lo, hi)

    # ---- commands and writes --------------------------------------------------
    async def instcmd(self, cmd: str, param: str | None) -> Status:
        if self.ddlmeta and any(c.lower() == cmd.lower() for c in self.meta.cmds):
            return Status.HANDLED  # the dumped device has it; nothing to simulate
        return Status.UNKNOWN  # upstream's load.off answers "unknown" too

    async def setvar(self, name: str, value: str) -> Status:
        dev = self.device
        vm = self.meta.rw.get(name.lower()) if self.ddlmeta else None
        if vm is not None and not check_value(vm, value):
            return Status.INVALID
        if value == "" and name.lower() != "ups.status":
            # as the C driver: an empty SET deletes the variable (upsd may
            # briefly serve "" before the driver applies it); ups.status stays, empty
            dev.delete(name)
            return Status.HANDLED
        var = dev.get(name)
        if var is None:
            self._set_from_file(name, value)
        else:
            dev.set(var.name, value)
        return Status.HANDLED
