"""dummy-ups: a UPS whose data comes from a text file.

The file format (lines, TIMER, ALARM, the DDL comments, the flags C dummy-ups gives each
name) is :mod:`.protocol`; this module reads the file, replays it and publishes it.
Behaviour reproduced from observing NUT 2.8.0's dummy-ups under its upsd:

* ``port`` ending in ``.dev`` (or ``mode = dummy-once``): the file is read once,
  and read again only when its mtime changes. Re-reading overlays values; it
  never removes a variable, so values written by SET persist until the file
  sets them again.
* ``.seq`` (``dummy-loop``) and any other name (legacy ``dummy``): the file is
  replayed forever; ``TIMER <s>`` pauses the replay (the device still hears a
  heartbeat every poll interval, see :meth:`Driver.wait`), the end of the file
  waits one poll interval before starting over.
* A variable line with no value reuses the value of the previous non-status
  line (upstream quirk); an *empty* value deletes the variable. ``ups.status``
  lines replace the status.
* Flags: :func:`.protocol.known_flags` (NUMBER or STRING:n for known names,
  RW STRING:32 for anything else).
* Built-in data: device.type, ups.mfr/ups.model defaults, status OL, the
  ``load.off`` command (which answers "unknown"), and once the first read is
  done, device.mfr/model/serial copied from ups.mfr/model/serial.

Our extension (``ddlmeta``, on by default): the NUT DDL comments ``#RW:`` and
``#CMD:`` make the dumped device's writable variables and commands real: SET is
validated against them, the commands answer "handled". ``ddlmeta = no`` gives
upstream's behaviour exactly.

``ALARM <text>`` lines follow newer NUT (2.8.1+): the texts accumulate into
ups.alarm and the ALARM status token is appended (dummy-ups puts it last); a bare
``ALARM`` clears them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ...compat import driver_core_2_8_5
from ...protocol.wire import encode
from ...state import Device
from ..base import CORE_CMDS, ConfigError, DeviceError, Driver, Status, _bridge_version
from .protocol import (
    DEFAULT_STRING_LEN,
    DdlMeta,
    Entry,
    EntryKind,
    check_value,
    known_flags,
    parse_entries,
    parse_meta,
)

MODES = ("dummy-once", "dummy-loop", "dummy")

# Copied to device.* once the first read is done (upstream's driver core does it).
_MIRRORED = ("mfr", "model", "serial")
# ups.conf keys C dummy-ups echoes as driver.parameter.* / driver.flag.*
_PARAMS = ("mode", "pollinterval", "port", "synchronous", "ddlmeta")
_FLAGS = ("nolock", "ignorelb")


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

    async def wait(self, period: float | None = None) -> None:
        # until the next update is due: a TIMER's pause, else one poll interval
        await super().wait(self._delay if period is None else period)

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
            self.meta = parse_meta(data)
            self._apply_cmds()
        if not self._entries:
            # Empty file: nothing to replay; keep _entries non-empty-checkable.
            self._entries = [Entry(EntryKind.TIMER, seconds=0.0)]
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
            if e.kind is EntryKind.TIMER:
                if e.seconds > 0:
                    self._finish_chunk(status)
                    return e.seconds
            elif e.kind is EntryKind.ALARM:
                if self._alarms is None:
                    self._alarms = []
                if e.value:
                    self._alarms.append(e.value)
                else:
                    self._alarms.clear()
            elif e.kind is EntryKind.STATUS:
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
        if self._alarms is not None:
            # one text, joined here: dummy-ups keeps a repeated ALARM text, which
            # compose_status would drop as a duplicate
            self.publish_status(dev.status_tokens(), [" ".join(self._alarms)], alarm_last=True)
        elif driver_core_2_8_5():
            # 2.8.5's driver core commits its alarm buffer after every update:
            # with no ALARM line, a plain "ups.alarm:" from the file is wiped
            dev.delete("ups.alarm")
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
