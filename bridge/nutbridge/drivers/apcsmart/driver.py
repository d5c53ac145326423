"""apcsmart: APC Smart-UPS on a serial line (NUT's ``apcsmart``), I/O and publishing.

The wire format, the variable table and every parser live in :mod:`.protocol`;
this module sequences the commands over a :class:`~nutbridge.drivers.serial.SerialLink`
and keeps the device current, on the life cycle of :mod:`..base`.

Sequence (as Debian's ``/lib/nut/apcsmart``, NUT 2.8.0, does it against our
simulator): handshake ``Y`` (expect ``SM``), ``b``, ``a`` (command set), ``^A``
model, ``^Z`` (capabilities), then a read of every supported variable, then a
poll of ``Q`` and the dynamic variables; between polls the line is watched so an
alert character updates ``ups.status`` at once. Firmware without the ``a``
command set is probed variable by variable; what answers ``NA`` is not polled
again. One command is in flight at a time (a lock): a reply belongs to the
command just sent, and anything unread before it is dropped as noise.

Known differences from NUT's apcsmart: ``sdtype``, ``advorder``, ``awd`` and
``cshdelay`` are accepted but the shutdown follows the bridge's common
``killpower`` plan; no firmware compatibility table (``V``); no dual-byte
(``0x9F``) commands; ``bypass.start``/``.stop`` succeed when the UPS answers
``BYP``/``INV`` (NUT reports those answers as a failure).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...state import Device
from ..base import ConfigError, DeviceError, Driver, Status
from ..serial import SerialLink
from .protocol import (
    CALIBRATE,
    CAPABILITIES,
    CMD_BY_NAME,
    CMDS,
    CMDSET,
    FIRMWARE,
    NEXT_VALUE,
    OK_REPLIES,
    REPEAT_GAP,
    SMART_MODE,
    SMART_MODE_REPLY,
    STATUS,
    VAR_BY_NAME,
    VARS,
    Cmd,
    LineReader,
    Var,
    apply_alerts,
    command_succeeded,
    convert,
    enum_values,
    firmware_locale,
    is_no_value,
    parse_capabilities,
    parse_cmdset,
    parse_status,
    string_write,
)

log = logging.getLogger(__name__)


# ---- the driver ------------------------------------------------------------------------------


@dataclass
class Session:
    """What the handshake learnt."""

    cmds: frozenset[str] = frozenset()
    vars: set[str] = field(default_factory=set)  # variables that answered at connect
    caps: dict[str, list[str]] = field(default_factory=dict)
    locale: str | None = None


class ApcSmart(Driver):
    names = ("apcsmart",)
    options = frozenset({"cable", "ttymode", "sdtype", "awd", "advorder", "cshdelay"})
    version = "3.2"
    timeout = 1.5

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        self.port = self.config.get("port", "")
        if not self.port:
            raise ConfigError("apcsmart needs 'port' (a serial device)")
        cable = self.config.get("cable", "")
        self._dtr_rts: tuple[bool | None, bool | None] = (
            (True, False) if cable.upper() == "940-0095B" else (None, None))
        self.link: SerialLink | None = None
        self.reader = LineReader()
        self.retry_max = 5.0  # reopening a port is cheap: recover from a replug well under 10 s
        self.session = Session()
        self._lock = asyncio.Lock()
        self._tokens: list[str] = []
        self.garbage = 0

    # ---- low level ------------------------------------------------------------------
    def _link(self) -> SerialLink:
        if self.link is None or not self.link.is_open:
            raise DeviceError("serial port closed")
        return self.link

    async def _ask(self, cmd: str, mode: str = "normal", timeout: float | None = None) -> str:
        """Send one command byte (or bytes) and return its reply line."""
        link = self._link()
        # anything unread now is a late reply or noise: drop it (keeping its alerts),
        # so that the reply we read next belongs to this command
        stale = self.reader.feed(await link.read_available(0))
        if stale or self.reader.buf:
            self.reader.buf.clear()
            self._bad()
        self.reader.mode = mode
        try:
            await link.write(cmd.encode("latin-1"))
            deadline = time.monotonic() + (timeout or self.timeout)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeviceError(f"no reply to {cmd!r}")
                lines = self.reader.feed(await link.read_available(min(left, 0.2)))
                if self.reader.dropped:  # oversize frames
                    for _ in range(self.reader.dropped):
                        self._bad()
                    self.reader.dropped = 0
                if lines:
                    if len(lines) > 1:  # one command, one line: the rest is noise
                        self._bad()
                    return lines[0]
        finally:
            self.reader.mode = "normal"
            self._handle_alerts()

    def _bad(self) -> None:
        """Count a reply we had to drop (also on the link, for diagnostics)."""
        self.garbage += 1
        if self.link is not None:
            self.link.counters["garbage"] = self.link.counters.get("garbage", 0) + 1

    def _handle_alerts(self) -> None:
        alerts = self.reader.take_alerts()
        if alerts and self._tokens:
            self._tokens = apply_alerts(self._tokens, alerts)
            self.publish_status(self._tokens)
            self.poke()

    # ---- life cycle ---------------------------------------------------------------------
    async def connect(self) -> None:
        if self.link is None:
            dtr, rts = self._dtr_rts
            self.link = SerialLink(self.port, baudrate=2400, dtr=dtr, rts=rts)
        await self.link.open()
        self.reader = LineReader()
        async with self._lock:
            await self._handshake()

    async def _handshake(self) -> None:
        link = self._link()
        await link.flush_input()
        for _ in range(3):
            try:
                if await self._ask(SMART_MODE) == SMART_MODE_REPLY:
                    break
            except DeviceError:
                continue
        else:
            raise DeviceError("no APC Smart UPS answers (Y -> SM)")
        fw = await self._ask(FIRMWARE)
        s = Session(locale=firmware_locale(fw))
        cmdset = parse_cmdset(await self._ask(CMDSET, mode="raw"))
        if cmdset is None:
            # older firmware: no command list; try every variable and keep what answers
            log.info("UPS [%s]: no command set ('a'); probing every variable", self.device.name)
            s.cmds = frozenset(v.cmd for v in VARS) | frozenset(c.byte for c in CMDS)
        else:
            s.cmds = cmdset.cmds
        if CAPABILITIES in s.cmds:
            caps = parse_capabilities(await self._ask(CAPABILITIES, mode="caps", timeout=5.0),
                                      s.locale)
            if caps is None:
                self._bad()
            s.caps = caps or {}
        self.session = s
        dev = self.device
        with dev.batch():
            self.publish_driver_info()
            dev.set("driver.parameter.synchronous", self.config.get("synchronous", "auto"))
            dev.set("device.type", "ups")
            dev.set("ups.mfr", "APC")
            dev.set("device.mfr", "APC")
            for var in VARS:
                if (var.cmd in s.cmds or var.cmd == FIRMWARE) and await self._read_var(var):
                    s.vars.add(var.cmd)
            for key in ("model", "serial"):
                v = dev.value(f"ups.{key}")
                if v is not None:
                    dev.set(f"device.{key}", v)
            for c in CMDS:
                if c.byte in s.cmds:
                    dev.add_cmd(c.name)
            self.publish_core_extras()

    async def _read_var(self, var: Var) -> bool:
        """Read one variable into the device; False when the UPS has no value for it."""
        reply = await self._ask(var.cmd)
        value = convert(var.cmd, reply)
        dev = self.device
        if value is None:
            if not is_no_value(reply):
                self._bad()
            return False
        if var.string:
            dev.set(var.name, value, rw=True, string=True, aux=var.string)
        elif var.settable and var.cmd in self.session.caps:
            dev.set(var.name, value, rw=True, string=False)
            dev.set_enums(var.name, enum_values(var, self.session.caps[var.cmd]))
        else:
            dev.set(var.name, value)
        return True

    async def update(self) -> None:
        async with self._lock:
            tokens = parse_status(await self._ask(STATUS))
            if tokens is None:
                self._bad()
                raise DeviceError("bad status reply")
            self._tokens = tokens
            with self.device.batch():
                for var in VARS:
                    if var.poll and var.cmd in self.session.vars:
                        await self._read_var(var)
                self.publish_status(tokens)

    async def wait(self, period: float | None = None) -> None:
        """Sleep ``period`` (default ``pollinterval``) reading the line, and wake up at once
        when an alert character arrives (or on :meth:`poke`)."""
        deadline = time.monotonic() + (self.pollinterval if period is None else period)
        while not self._wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            async with self._lock:
                data = await self._link().read_available(min(left, 0.25))
                self.reader.feed(data)
                self._handle_alerts()
        self._wake.clear()

    async def close(self) -> None:
        link = self.link
        if link is not None and link.is_open:
            try:
                await link.close()
            except Exception:  # close must not raise
                log.debug("apcsmart: close failed", exc_info=True)

    # ---- commands ---------------------------------------------------------------------
    async def instcmd(self, cmd: str, param: str | None) -> Status:
        c = CMD_BY_NAME.get(cmd)
        if c is None or c.byte not in self.session.cmds:
            return Status.UNKNOWN
        try:
            return await self._instcmd(c)
        except DeviceError as exc:  # the poll loop notices a dead port by itself
            log.warning("UPS [%s]: %s failed: %s", self.device.name, cmd, exc)
            return Status.FAILED

    async def _instcmd(self, c: Cmd) -> Status:
        cmd = c.name
        async with self._lock:
            link = self._link()
            if c.byte == CALIBRATE:
                # a toggle: only send it when it moves calibration the wanted way
                calibrating = "CAL" in (parse_status(await self._ask(STATUS)) or [])
                if calibrating == (cmd == "calibrate.start"):
                    log.warning("UPS [%s]: %s: calibration is %srunning", self.device.name,
                                cmd, "already " if calibrating else "not ")
                    return Status.FAILED
            if c.repeat:
                await link.write(c.byte.encode("latin-1"))
                early = self.reader.feed(await link.read_available(0.2))
                self._handle_alerts()
                if early:
                    return Status.FAILED
                await asyncio.sleep(REPEAT_GAP)
            reply = await self._ask(c.byte, timeout=3.0)
        self.poke()
        return Status.HANDLED if command_succeeded(c, reply) else Status.FAILED

    async def setvar(self, name: str, value: str) -> Status:
        var = VAR_BY_NAME.get(name)
        if var is None or var.cmd not in self.session.cmds:
            return Status.UNKNOWN
        try:
            return await self._setvar(var, value)
        except DeviceError as exc:
            log.warning("UPS [%s]: SET %s failed: %s", self.device.name, name, exc)
            return Status.FAILED

    async def _setvar(self, var: Var, value: str) -> Status:
        if var.string:
            write = string_write(var, value)
            if write is None:
                return Status.INVALID
            async with self._lock:
                await self._ask(var.cmd)
                reply = await self._ask(write, timeout=3.0)
                await self._read_var(var)
            return Status.HANDLED if reply in OK_REPLIES else Status.FAILED
        caps = self.session.caps.get(var.cmd)
        if not var.settable or caps is None:
            return Status.UNKNOWN
        if value not in enum_values(var, caps):
            return Status.INVALID
        async with self._lock:
            for _ in range(32):
                if convert(var.cmd, await self._ask(var.cmd)) == value:
                    await self._read_var(var)
                    return Status.HANDLED
                if await self._ask(NEXT_VALUE, timeout=3.0) not in OK_REPLIES:
                    return Status.FAILED
        return Status.FAILED

