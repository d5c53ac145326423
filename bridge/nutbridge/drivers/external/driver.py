"""NUT's C drivers behind the driver API: attached to (a driver started elsewhere) or hosted.

:class:`AttachedDriver` plays the C upsd's ``sstate.c`` on one driver socket
(shared/docs/driver-socket.md §5, §8(a)): it connects to ``<statepath>/<driver>-<ups>``, sends
``DUMPALL``, and mirrors what the driver says (:class:`.mirror.Mirror`) into the Device: the
dump at once when ``DUMPDONE`` arrives (``WAIT`` until then), every later change as it comes.
``DATASTALE`` or more than MAXAGE + 1 s of silence (2.8.5's grace) make the data stale; after
MAXAGE // 3 s of silence it sends ``PING``. It keeps one connection for as long as the driver
lives (a 2.8.0 driver busy-loops on a connection its client closed). EOF, a refused or missing
socket raise :class:`DeviceError`: the base class marks the data stale (``DRIVER-NOT-CONNECTED``
until the first dump) and reconnects every 2 s at most, as upsd. ``INSTCMD``/``SET`` go out with
a ``TRACKING`` id and wait, bounded, for the driver's ``TRACKING <id> <code>``. A driver is a
peer like a network client: one that floods its socket, sends more state than any UPS has or
stops reading is cut off (:class:`Misbehaviour`), reconnected after 2^n s, and its data is not
fresh again before its new connection behaved for :data:`PROBATION` s. Reads are 8 KB at a
time with the loop yielded in between, so the other UPSes keep being served.

:class:`HostedDriver` starts the C binary itself (``-a <ups> -F -u <our user>``) with a private
state and configuration directory, and supervises it: a driver that exits, closes its socket,
floods it or stops answering ``PING`` for 2 MAXAGE + 1 s is stopped (SIGTERM, then SIGKILL) and
started again with backoff; the UPS is stale meanwhile and fresh after the new dump. What the
driver prints goes to our log, rate-limited. ``killpower`` is ``upsdrvctl shutdown``: stop the
running driver, run ``<driver> -a <ups> -k``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from ...protocol import sock
from ...ratelog import RateLimitedLog
from ...state import Device, DriverState
from ..base import ConfigError, DeviceError, Driver, KillpowerError, Status
from . import locate
from .mirror import Budget, Mirror, Overflow

log = logging.getLogger(__name__)

#: bytes read from a driver socket at a time; the loop is yielded between reads
CHUNK = 8192
#: the longest wait between two looks at the clock (PING, staleness): upsd's loop takes 2 s
TICK = 1.0
QUIET_MAX = 60.0  # the longest wait() sleeps without looking at the clock
CONNECT_TIMEOUT = 5.0
#: how long INSTCMD/SET wait for the driver's TRACKING answer (a driver without a handler for
#: the request never answers: 2.8.0 for both, 2.8.5 for SET)
COMMAND_TIMEOUT = 10.0
MAX_PENDING = 64  # tracked requests in flight per driver
WRITE_BACKLOG = 64 * 1024  # unsent bytes to a driver that does not read
# flood budgets per connection: a real dump is a few thousand lines and ~100 KB at once, then a
# few lines per poll
BYTES_RATE, BYTES_BURST = 128 * 1024, 1 << 20
LINES_RATE, LINES_BURST = 2000, 20000
#: after a driver flooded or overflowed: its next connection must behave this long before its
#: data counts as fresh (so a flooding driver stays stale instead of flapping), and each
#: reconnection waits 2^n s (n violations in a row, at most PENALTY_MAX)
PROBATION = 10.0
PENALTY_MAX = 60.0
# hosted drivers
STOP_TIMEOUT = 5.0  # SIGTERM -> SIGKILL
REATTACH_MAX = 3  # hang-ups in a row of a running driver before it is restarted
KILLPOWER_TIMEOUT = 120.0
OUTPUT_LINE_MAX = 1024
OUTPUT_BURST, OUTPUT_RATE = 50, 1.0  # driver output lines logged: burst, then per second
PRIVATE_PREFIX = "nutbridge-"  # private directories, in tempfile.gettempdir()
OWNER_FILE = "owner"  # in each: the bridge's pid and PID namespace, so a later bridge can remove a dead one's
# lines that say nothing about why a driver stopped (2.8.5 tells it is not a systemd unit)
_NOISE = ("upsnotify:",)


class Misbehaviour(DeviceError):
    """The driver broke the bounds a real one keeps (flood, too much state, not reading)."""


class HungUp(DeviceError):
    """The driver closed our connection. A NUT driver does when a write to it fails: in its
    default ``synchronous = auto`` mode on EAGAIN (its reader fell behind, e.g. during a big
    dump or broadcast), after which it serves the next connection synchronously."""


class AttachedDriver(Driver):
    """A C driver (or ``nutbridge driver``) that something else started, by its socket."""

    names = ()  # any ``driver =`` name: the registry picks this class by ``_mode``
    version = "0.1"
    #: what a lost driver leaves behind. Attached: nothing, as upsd's sstate_disconnect drops the
    #: UPS's data (clients read DRIVER-NOT-CONNECTED until the driver is back); a hosted driver
    #: being restarted by us keeps its data, marked stale.
    stale_while_gone: ClassVar[bool] = False

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        self.driver = self.config.get("driver", "")
        if not locate.valid_driver_name(self.driver):
            raise ConfigError(f"'{self.driver}' is not a driver name NUT could use")
        self.maxage = locate.maxage(self.config)
        self.retry_min, self.retry_max = 0.5, 2.0  # upsd retries a missing driver every 2 s
        self.socket_path = self._socket_path()
        self.mirror = Mirror()
        self._parser = sock.DriverReader()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._published = False  # this connection's dump is in the Device
        self._last_heard = self._last_ping = 0.0
        self._bytes = Budget(BYTES_RATE, BYTES_BURST, 0.0)
        self._lines = Budget(LINES_RATE, LINES_BURST, 0.0)
        self._pending: dict[str, asyncio.Future[int]] = {}
        self._hung_after: float | None = None  # silence that ends the connection (hosted)
        self._ratelog = RateLimitedLog(log)
        self._violations = 0  # misbehaving connections in a row
        self._probation_until = 0.0
        # one read outstanding per connection, kept across waits: an idle driver then costs a
        # timer per PING period, not a task created and cancelled per tick
        self._read_task: asyncio.Future[bytes] | None = None
        self._waiter: asyncio.Future[None] | None = None  # what wait() sleeps on; poke() ends it

    def _socket_path(self) -> str:
        statepath = locate.attach_statepath(self.config, os.environ)
        try:
            return locate.socket_path(statepath, self.driver, self.device.name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    # ---- life cycle ---------------------------------------------------------------------
    async def connect(self) -> None:
        await self._penalty()
        await self._open()

    async def _penalty(self) -> None:
        if self._violations:
            await asyncio.sleep(min(PENALTY_MAX, 2.0 ** self._violations))

    async def _open(self) -> None:
        path = self.socket_path
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(path, limit=4 * CHUNK), CONNECT_TIMEOUT)
        except FileNotFoundError:
            self._gone()
            raise DeviceError(f"driver not running: no socket {path}") from None
        except ConnectionRefusedError:
            self._gone()
            raise DeviceError(f"driver not running: {path} refuses connections") from None
        except TimeoutError:
            raise DeviceError(f"{path}: connect timed out") from None
        except OSError as exc:
            raise DeviceError(f"{path}: {exc.strerror or exc}") from None
        now = time.monotonic()
        self._reader, self._writer = reader, writer
        self._read_task = None
        self.mirror.reset()
        self._parser = sock.DriverReader()
        self._published = False
        self._last_heard = self._last_ping = now  # upsd: last_heard = now on connect
        self._bytes = Budget(BYTES_RATE, BYTES_BURST, now)
        self._lines = Budget(LINES_RATE, LINES_BURST, now)
        self._probation_until = now + PROBATION if self._violations else 0.0
        writer.write(sock.DUMPALL)

    async def update(self) -> None:
        """Read until the driver's data is complete and fresh (the first time: its dump);
        meanwhile the UPS is marked stale when the driver says so or falls silent."""
        while True:
            now = time.monotonic()
            if self._fresh(now):
                if now >= self._probation_until:
                    self._violations = 0
                    return
            elif self.mirror.dumpdone and not self.mirror.data_ok:
                self._stale("the driver reports its data stale (DATASTALE)")
            elif now - self._last_heard > self.maxage + 1:
                self._stale(f"no word from the driver for {now - self._last_heard:.0f} s")
            await self._read_some(TICK)

    async def wait(self, period: float | None = None) -> None:
        """Take in what the driver pushes until something needs the driver loop: the data is no
        longer fresh (then :meth:`update` waits for it to recover), :meth:`poke`, stop, or
        ``period`` s when given. Pollinterval means nothing here (the C driver polls; it
        pushes what changes), so an idle driver wakes us only when a PING is due."""
        deadline = None if period is None else time.monotonic() + period
        while not self._stopping and not self._wake.is_set():
            now = time.monotonic()
            if not self._fresh(now) or (deadline is not None and now >= deadline):
                break
            await self._read_some(self._quiet_for(now, deadline))
        self._wake.clear()

    def _quiet_for(self, now: float, deadline: float | None) -> float:
        """How long nothing is due if the driver stays silent: the next PING, the end of
        freshness (MAXAGE + 1 s of silence), a hung driver's limit, ``deadline``."""
        every = max(1, self.maxage // 3)
        due = [max(self._last_heard, self._last_ping) + every, self._last_heard + self.maxage + 1]
        if self._hung_after is not None:
            due.append(self._last_heard + self._hung_after)
        if deadline is not None:
            due.append(deadline)
        return min(max(min(due) - now, 0.01), QUIET_MAX)

    def poke(self) -> None:
        super().poke()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        # the outstanding read is not cancelled: closing the transport ends it with EOF, which
        # a driver loop still waiting on it (close() from killpower) takes as the hang-up it is
        self._read_task = None
        self._published = False
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result(int(Status.FAILED))
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    # ---- commands -------------------------------------------------------------------------
    async def instcmd(self, cmd: str, param: str | None) -> Status:
        return await self._request(f"INSTCMD {cmd}", lambda tid: sock.instcmd(cmd, param, tid))

    async def setvar(self, name: str, value: str) -> Status:
        return await self._request(f"SET {name}", lambda tid: sock.setvar(name, value, tid))

    async def _request(self, what: str, line: Callable[[str], bytes]) -> Status:
        writer = self._writer
        if writer is None or not self._published:
            return Status.FAILED
        if len(self._pending) >= MAX_PENDING:
            log.warning("UPS [%s]: %s refused: %d requests already wait for the driver",
                        self.device.name, what, MAX_PENDING)
            return Status.FAILED
        tid = str(uuid.uuid4()).upper()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[tid] = fut
        try:
            writer.write(line(tid))
            code = await asyncio.wait_for(fut, COMMAND_TIMEOUT)
        except TimeoutError:
            log.info("UPS [%s]: %s: no TRACKING answer from the driver within %g s (drivers "
                     "without a handler for it never answer)", self.device.name, what,
                     COMMAND_TIMEOUT)
            return Status.UNKNOWN
        finally:
            self._pending.pop(tid, None)
        try:
            return Status(code)
        except ValueError:
            return Status.FAILED

    # ---- the socket -----------------------------------------------------------------------
    def _fresh(self, now: float) -> bool:
        return self.mirror.fresh and now - self._last_heard <= self.maxage + 1

    def _stale(self, reason: str) -> None:
        if self.device.driver_state in (DriverState.OK, DriverState.WAIT):
            log.warning("UPS [%s]: %s", self.device.name, reason)
            self.device.data_stale()

    async def _read_some(self, timeout: float) -> None:
        """One read (at most :data:`CHUNK` bytes, at most ``timeout`` s), then PING if due."""
        reader = self._reader
        if reader is None:
            raise DeviceError("not connected")
        task = self._read_task
        if task is None:
            task = self._read_task = asyncio.ensure_future(reader.read(CHUNK))
        if not task.done() and timeout > 0:
            await self._until_done(task, timeout)
        data: bytes | None = None
        if task.done():
            self._read_task = None
            try:
                data = b"" if task.cancelled() else task.result()
            except ConnectionResetError:  # closed with our requests unread: hung up all the same
                data = b""
        now = time.monotonic()
        if data is not None:
            if not data:
                self._gone()
                raise HungUp("the driver closed its socket")
            self._receive(data, now)
            await asyncio.sleep(0)  # a flooding driver must not starve the other UPSes
        self._keepalive(now)

    async def _until_done(self, task: asyncio.Future[bytes], timeout: float) -> None:
        """Sleep until ``task`` is done, ``timeout`` s passed or :meth:`poke` (asyncio.wait
        without the task set and with the poke)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        handle = loop.call_later(timeout, wake)
        task.add_done_callback(wake)
        self._waiter = waiter
        try:
            await waiter
        finally:
            handle.cancel()
            task.remove_done_callback(wake)
            self._waiter = None

    def _receive(self, data: bytes, now: float) -> None:
        if not self._bytes.take(len(data), now):
            raise self._misbehaves(f"the driver floods its socket (more than {BYTES_BURST} bytes "
                              f"beyond {BYTES_RATE} bytes/s)")
        events = self._parser.feed(data)
        if not self._lines.take(len(events), now):
            raise self._misbehaves(f"the driver floods its socket (more than {LINES_BURST} lines "
                              f"beyond {LINES_RATE} lines/s)")
        try:
            ch = self.mirror.apply(events)
        except Overflow as exc:
            raise self._misbehaves(f"the driver sent more than any UPS has: {exc}") from None
        if ch.heard:
            self._last_heard = now
            self.device.heard()
        if ch.parse_errors or ch.ignored:
            self._ratelog.log(logging.INFO, self.device.name, "garbage",
                              "UPS [%s]: ignored %d unknown and %d unparsable lines from the driver",
                              self.device.name, ch.ignored, ch.parse_errors)
        for t in ch.tracking:
            fut = self._pending.get(t.id.upper())
            if fut is not None and not fut.done():
                fut.set_result(t.code)
        if not self.mirror.dumpdone:
            return  # the dump goes to the Device in one piece
        if not self._published:
            self._publish_all()
            self._published = True
        elif ch.vars or ch.cmds:
            with self.device.batch():
                for key in ch.vars:
                    self._publish_var(key)
                for key in ch.cmds:
                    self._publish_cmd(key)

    def _gone(self) -> None:
        if not self.stale_while_gone:
            self.device.clear()
            self.device.driver_gone()

    def _misbehaves(self, reason: str) -> Misbehaviour:
        self._violations += 1
        return Misbehaviour(reason)

    def _keepalive(self, now: float) -> None:
        writer = self._writer
        if writer is None:
            raise DeviceError("not connected")
        silent = now - self._last_heard
        every = max(1, self.maxage // 3)
        if silent > every and now - self._last_ping > every:
            writer.write(sock.PING)
            self._last_ping = now
        if writer.transport.get_write_buffer_size() > WRITE_BACKLOG:
            raise self._misbehaves("the driver does not read its socket")
        if self._hung_after is not None and silent > self._hung_after:
            raise DeviceError(f"the driver has not answered PING for {silent:.0f} s")

    # ---- mirror -> Device -----------------------------------------------------------------
    def _publish_all(self) -> None:
        """The dump replaces what the Device holds (changed names only are announced)."""
        dev = self.device
        with dev.batch():
            for key in {v.name.lower() for v in dev.variables()} | set(self.mirror.vars):
                self._publish_var(key)
            for key in {c.lower() for c in dev.commands()} | set(self.mirror.cmds):
                self._publish_cmd(key)

    def _publish_var(self, key: str) -> None:
        dev = self.device
        mv = self.mirror.vars.get(key)
        dv = dev.get(key)
        if mv is None:
            if dv is not None:
                dev.delete(key)
            return
        if dv is not None and (dv.name != mv.name or dv.ranges != mv.ranges[:len(dv.ranges)]):
            dev.delete(key)  # renamed, or a range went away: rebuild (one announcement, batched)
            dv = None
        dev.set(mv.name, mv.value, rw=mv.rw, string=mv.string, aux=mv.aux)
        dev.set_enums(mv.name, mv.enums)
        have = len(dv.ranges) if dv is not None else 0
        for lo, hi in mv.ranges[have:]:
            dev.add_range(mv.name, lo, hi)

    def _publish_cmd(self, key: str) -> None:
        name = self.mirror.cmds.get(key)
        if name is None:
            self.device.delete_cmd(key)
        else:
            self.device.add_cmd(name)


class HostedDriver(AttachedDriver):
    """A C driver binary run and supervised by the bridge, in a private state directory."""

    stale_while_gone = True

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        binary = locate.find_driver(self.config)
        if binary is None:
            raise ConfigError(locate.not_found_message(self.config))
        self.binary = binary
        self.user = self.config.get("_user") or _current_user()
        self.retry_max = 30.0
        self._hung_after = 2 * self.maxage + 1
        self._dir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._output: list[asyncio.Task[None]] = []
        # the last lines of stderr (NUT's messages; stdout has the banner, block-buffered in a
        # pipe, so it arrives late) and of stdout
        self._tail: deque[str] = deque(maxlen=8)
        self._tail_out: deque[str] = deque(maxlen=8)
        self._outlog = RateLimitedLog(log)
        self._out_budget = Budget(OUTPUT_RATE, OUTPUT_BURST, time.monotonic())
        self._out_dropped = 0
        self._lock: asyncio.Lock | None = None
        self._killing = False  # killpower runs: no restart
        self._expected_exit = False
        # hang-ups in a row by a driver that kept running: reconnected to, as upsd does, up to
        # REATTACH_MAX times before it is restarted
        self._hangups = 0
        self._reattach = False

    def _socket_path(self) -> str:
        # the real directory is made at each start; check now that its kind of name fits
        try:
            locate.socket_path(os.path.join(tempfile.gettempdir(), "nutbridge-xxxxxxxx"),
                               self.driver, self.device.name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return ""

    def _proc_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    # ---- life cycle ---------------------------------------------------------------------
    async def connect(self) -> None:
        """Start the driver and connect to its socket once it is there; connect again to a
        driver that hung up on us but runs on (see :class:`HungUp`)."""
        await self._penalty()
        proc = self._proc
        if self._reattach and proc is not None and proc.returncode is None:
            self._reattach = False
            try:
                await self._open()
                return
            except DeviceError:
                pass  # it was on its way out after all: start it afresh
        self._reattach = False
        await self._stop_process()
        proc = await self._spawn(kill=False)
        deadline = time.monotonic() + locate.start_timeout(self.config)
        while True:
            if proc.returncode is not None:
                await self._drain_output()
                self._expected_exit = True  # reported by the DeviceError, not again on close
                raise DeviceError(f"{self.driver} exited with status {_status(proc.returncode)} "
                                  f"before it was ready{self._last_words()}")
            if os.path.exists(self.socket_path):
                try:
                    await self._open()
                    self._expected_exit = False
                    return
                except DeviceError:
                    pass  # bound, not yet listening
            if time.monotonic() > deadline:
                raise DeviceError(f"{self.driver} did not create its socket within "
                                  f"{locate.start_timeout(self.config):g} s{self._last_words()}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Drop the connection and stop the driver, unless it hung up on us and runs on (then
        the next :meth:`connect` connects again, as upsd does, at most :data:`REATTACH_MAX`
        times in a row); a driver that flooded, hung or exited is started afresh."""
        await super().close()
        if not self._reattach or self._stopping:
            self._reattach = False
            await self._stop_process()

    async def update(self) -> None:
        await super().update()
        self._hangups = 0  # fresh again: the connection works

    async def _read_some(self, timeout: float) -> None:
        try:
            await super()._read_some(timeout)
        except HungUp:
            proc = self._proc
            self._hangups += 1
            self._reattach = (proc is not None and proc.returncode is None
                              and self._hangups <= REATTACH_MAX)
            raise

    async def _spawn(self, kill: bool, extra: tuple[str, ...] = ()) -> asyncio.subprocess.Process:
        async with self._proc_lock():
            if self._killing and not kill:
                raise DeviceError("killpower in progress: the driver stays stopped")
            directory = self._prepare()
            argv = locate.driver_argv(self.binary, self.device.name, self.user, kill=kill,
                                      extra=extra)
            env = locate.driver_env(os.environ, directory, directory / "etc")
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, env=env, cwd=directory,
                    start_new_session=True, preexec_fn=_die_with_parent)
            except OSError as exc:
                self._remove_dir()
                raise DeviceError(f"cannot run {self.binary}: {exc.strerror or exc}") from None
            self._proc = proc
            self._tail.clear()
            self._tail_out.clear()
            self._expected_exit = kill
            assert proc.stdout is not None and proc.stderr is not None
            loop = asyncio.get_running_loop()
            self._output = [loop.create_task(self._read_output(proc.stderr, self._tail)),
                            loop.create_task(self._read_output(proc.stdout, self._tail_out))]
            log.info("UPS [%s]: started %s (pid %d)", self.device.name, " ".join(argv), proc.pid)
            return proc

    def _prepare(self) -> Path:
        """A fresh private directory: the socket, and etc/ with the private ups.conf beside
        links to everything else in the user's configuration directory (relative paths in the
        section, such as dummy-ups' port, resolve as they do under upsdrvctl)."""
        self._remove_dir()
        _sweep_leftovers()
        directory = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX))
        (directory / OWNER_FILE).write_text(f"{os.getpid()} {_pid_namespace()}\n")
        try:
            path = locate.socket_path(directory, self.driver, self.device.name)
        except ValueError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise DeviceError(str(exc)) from None
        self._dir = directory
        self.socket_path = path
        etc = directory / "etc"
        etc.mkdir()
        confdir = self.config.get("_confdir")
        if confdir:
            with contextlib.suppress(OSError):
                for entry in Path(confdir).iterdir():
                    if entry.name != "ups.conf":
                        with contextlib.suppress(OSError):
                            (etc / entry.name).symlink_to(entry.resolve())
        (etc / "ups.conf").write_text(locate.ups_conf_text(self.device.name, self.config))
        return directory

    def _remove_dir(self) -> None:
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    async def _stop_process(self) -> None:
        """SIGTERM, wait, SIGKILL; reap it, log why it ended if it ended by itself, remove the
        private directory (socket, ups.conf)."""
        async with self._proc_lock():
            proc, self._proc = self._proc, None
            if proc is not None:
                by_us = proc.returncode is None
                if by_us:
                    _signal_group(proc.pid, signal.SIGTERM)
                    _signal_group(proc.pid, signal.SIGCONT)  # a stopped driver cannot exit
                    try:
                        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
                    except asyncio.CancelledError:
                        _signal_group(proc.pid, signal.SIGKILL)  # no time left to be polite
                        raise
                    except TimeoutError:
                        log.warning("UPS [%s]: %s did not stop on SIGTERM within %g s: SIGKILL",
                                    self.device.name, self.driver, STOP_TIMEOUT)
                        _signal_group(proc.pid, signal.SIGKILL)
                        await proc.wait()
                _signal_group(proc.pid, signal.SIGKILL)  # anything it left in its group
                await self._drain_output()
                if not by_us and not self._expected_exit:
                    log.warning("UPS [%s]: %s (pid %d) exited with status %s%s",
                                self.device.name, self.driver, proc.pid,
                                _status(proc.returncode), self._last_words())
            self._remove_dir()

    async def _drain_output(self) -> None:
        tasks, self._output = self._output, []
        for task in tasks:
            try:
                await asyncio.wait_for(task, 2)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()

    # ---- the driver's output ---------------------------------------------------------------
    async def _read_output(self, stream: asyncio.StreamReader, tail: deque[str]) -> None:
        pending = b""
        while True:
            try:
                chunk = await stream.read(4096)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()[-OUTPUT_LINE_MAX:]
            for raw in lines:
                self._output_line(raw[:OUTPUT_LINE_MAX], tail)
        if pending:
            self._output_line(pending, tail)

    def _output_line(self, raw: bytes, tail: deque[str]) -> None:
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            return
        tail.append(line)
        if not self._out_budget.take(1, time.monotonic()):
            self._out_dropped += 1
            return
        if self._out_dropped:
            log.info("UPS [%s]: %s: (%d lines of output left out)", self.device.name, self.driver,
                     self._out_dropped)
            self._out_dropped = 0
        kind = re.sub(r"[0-9]+", "#", line)[:120]  # the same message with other numbers
        self._outlog.log(logging.INFO, self.device.name, kind, "UPS [%s]: %s: %s",
                         self.device.name, self.driver, line)

    def _last_words(self) -> str:
        """The driver's last message (stderr before stdout), for errors and results."""
        for tail in (self._tail, self._tail_out):
            for line in reversed(tail):
                if not line.startswith(_NOISE):
                    return f": {line}"
        return ""

    # ---- killpower -----------------------------------------------------------------------
    async def killpower(self, ondelay: float | None = None, offdelay: float | None = None) -> str:
        """``upsdrvctl shutdown``: stop the running driver, run ``<driver> -a <ups> -k``
        (``-x ondelay=…``/``-x offdelay=…`` when given), report its last words. The driver is
        started again afterwards (the base loop), in case the host does not go down."""
        self._killing = True
        try:
            await AttachedDriver.close(self)
            await self._stop_process()
            extra = tuple(f"{k}={round(v)}" for k, v in (("ondelay", ondelay), ("offdelay", offdelay))
                          if v is not None)
            try:
                proc = await self._spawn(kill=True, extra=extra)
            except DeviceError as exc:
                raise KillpowerError(str(exc)) from None
            try:
                rc = await asyncio.wait_for(proc.wait(), KILLPOWER_TIMEOUT)
            except TimeoutError:
                await self._stop_process()
                raise KillpowerError(f"{self.driver} -k did not finish within "
                                     f"{KILLPOWER_TIMEOUT:g} s{self._last_words()}") from None
            await self._drain_output()
            words = self._last_words()
            await self._stop_process()
            if rc != 0:
                raise KillpowerError(f"{self.driver} -a {self.device.name} -k exited with "
                                     f"status {_status(rc)}{words}")
            return f"{self.driver} -a {self.device.name} -k{words or ': done'}"
        finally:
            self._killing = False
            self.poke()


_swept = False


def _sweep_leftovers() -> None:
    """Once per process: remove the private directories of bridges that died without cleaning
    up (SIGKILL; their drivers died with them, see :func:`_die_with_parent`)."""
    global _swept
    if _swept:
        return
    _swept = True
    ours = _pid_namespace()
    for directory in Path(tempfile.gettempdir()).glob(PRIVATE_PREFIX + "*"):
        try:
            if directory.stat().st_uid != os.geteuid():
                continue
            words = (directory / OWNER_FILE).read_text().split()
            # a pid means something only in the namespace it was written in: a bridge in
            # another one (a container or `unshare --pid` sharing this /tmp) may well live
            if len(words) != 2 or words[1] != ours:
                continue
            os.kill(int(words[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except (OSError, ValueError, IndexError):
            continue  # not one of ours, or its owner lives


def _pid_namespace() -> str:
    """This process's PID namespace (``pid:[4026531836]``), or "?" where /proc does not say."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "?"


def _status(rc: int | None) -> str:
    if rc is None:
        return "?"
    if rc < 0:
        try:
            return f"{rc} ({signal.Signals(-rc).name})"
        except ValueError:
            return str(rc)
    return str(rc)


def _signal_group(pid: int, sig: int) -> None:
    # the driver leads its own session (start_new_session): its group id is its pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


_PRCTL = _load_prctl()  # resolved here: the child must not load anything between fork and exec
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the bridge dies, so no driver outlives it
    holding the UPS (a restarted bridge could not open the device)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
