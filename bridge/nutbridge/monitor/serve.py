"""What ``nutbridge serve`` adds for safe shutdowns.

* a pid file (``nutbridge.pid``, and ``nutbridge-monitor.pid`` while the monitor
  runs here) so ``nutbridge killpower`` and ``nutbridge monitor -c`` find us;
* the monitor of ``upsmon.conf`` when the configuration directory has one
  (``--no-monitor`` turns it off);
* killpower on SIGUSR2, and by itself when the bridge stops while the
  POWERDOWNFLAG holds upsmon's magic (the host is going down for a power failure).

The bridge (:class:`nutbridge.serve.Bridge`, the composition root) creates the hooks with what
they need of it: its drivers, its configuration directory and its event history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.parser import ConfigError
from .killpower import (
    MONITOR_PID_FILE,
    PID_FILE,
    killpower_drivers,
    pid_dir,
    read_request,
    remove_pid,
    write_pid,
)
from .killpower import write_result as write_killpower_result
from .runner import Runner, powerdown_flag_set

if TYPE_CHECKING:
    from ..drivers import Driver
    from .config import UpsmonConf

log = logging.getLogger("nutbridge.monitor")


def _parse(path: Path, check: bool = True) -> UpsmonConf:
    from .config import parse_upsmon_conf

    return parse_upsmon_conf(path, check=check)


class ServeHooks:
    """``drivers``: the bridge's drivers at the time of the call (killpower); ``confdir``: where
    upsmon.conf may be (None: the embedded configuration); ``state_dir``: ``--state-dir``;
    ``embedded``: no pid files; ``monitor``: False for ``--no-monitor``; ``record``: where the
    monitor's and killpower's events go (the event history's ``monitor_recorder()``)."""

    def __init__(self, drivers: Callable[[], Iterable[Driver]], *, confdir: Path | None,
                 state_dir: Path | None = None, embedded: bool = False, monitor: bool = True,
                 record: Callable[..., None] | None = None) -> None:
        self.drivers = drivers
        self.state_dir = state_dir
        self.embedded = embedded
        self.recorder = record
        self.upsmon_path = confdir / "upsmon.conf" if confdir is not None else None
        # parsed now so a broken upsmon.conf stops `serve` with file:line, exit 2
        # (with --no-monitor the file may belong to another monitor: only its flag is read)
        self.conf: UpsmonConf | None = None
        if monitor and self.upsmon_path is not None and self.upsmon_path.is_file():
            self.conf = _parse(self.upsmon_path)
        self.runner = Runner(self.conf, record=self._record) if self.conf is not None else None
        self.pid_dir: Path | None = None
        self.killed = False
        self._started = False
        self._task: asyncio.Task[None] | None = None
        self._killing: asyncio.Task[None] | None = None

    def _record(self, event: str, **fields: object) -> None:
        # the one place the monitor's and killpower's events reach the bridge's history
        if self.recorder is not None:
            self.recorder(event, **fields)

    async def start(self) -> None:
        self._started = True
        if not self.embedded:
            self.pid_dir = pid_dir(self.state_dir)
            if self.pid_dir is not None and not write_pid(self.pid_dir / PID_FILE):
                self.pid_dir = None
        if self.runner is not None:
            if self.pid_dir is not None:
                write_pid(self.pid_dir / MONITOR_PID_FILE)
            self._task = asyncio.get_running_loop().create_task(self._monitor(), name="monitor")

    async def _monitor(self) -> None:
        assert self.runner is not None
        try:
            await self.runner.run()
        except Exception:
            log.exception("the monitor failed")
        if self.runner.done:
            log.warning("the monitor shut the host down; the bridge keeps serving until stopped")
        if self.pid_dir is not None:
            remove_pid(self.pid_dir / MONITOR_PID_FILE)

    # ---- signals ---------------------------------------------------------------------------
    def fsd(self) -> None:
        if self.runner is None:
            log.warning("SIGUSR1: no monitor runs in this bridge (no upsmon.conf, or --no-monitor)")
            return
        self.runner.request_fsd()

    def reload(self) -> None:
        if self.runner is None or self.upsmon_path is None:
            return
        self.runner.request_reload()

    def killpower(self) -> None:
        """SIGUSR2 (from ``nutbridge killpower``): kill the power now, then answer."""
        if self._killing is None or self._killing.done():
            self._killing = asyncio.get_running_loop().create_task(self._killpower())

    async def _killpower(self, requested: bool = True) -> None:
        only = read_request(self.pid_dir) if requested else None
        log.warning("killpower requested%s", f" for {', '.join(only)}" if only else "")
        results = await killpower_drivers(self.drivers(), only)
        self.killed = self.killed or any(r.ok for r in results)
        for r in results:
            self._record("killpower", ups=r.ups, ok=r.ok,
                         message=f"killpower {'sent' if r.ok else 'failed'}: {r.detail}")
        write_killpower_result(self.pid_dir, results)

    # ---- stopping --------------------------------------------------------------------------
    async def stop(self) -> None:
        """Before the bridge stops: end the monitor; killpower if the host is going down
        for a power failure (and it was not done yet)."""
        if not self._started:
            return  # the bridge never came up (e.g. its port was taken)
        if self.runner is not None and self._task is not None:
            self.runner.request_stop()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            except TimeoutError:
                self._task.cancel()
        if self._killing is not None:
            with contextlib.suppress(Exception):
                await self._killing  # a SIGUSR2 killpower still running
        flag = self._flag_path()
        if not self.killed and powerdown_flag_set(flag):
            log.warning("power-down flag %s is set: killing the power before exiting", flag)
            await self._killpower(requested=False)
        if self.pid_dir is not None:
            remove_pid(self.pid_dir / PID_FILE)
            remove_pid(self.pid_dir / MONITOR_PID_FILE)

    def _flag_path(self) -> str | None:
        # read again: upsmon.conf may be used by a separate monitor (ours or NUT's)
        if self.upsmon_path is None or not self.upsmon_path.is_file():
            return None
        try:
            return _parse(self.upsmon_path, check=False).powerdownflag
        except ConfigError as exc:
            log.error("%s", exc)
            return self.conf.powerdownflag if self.conf is not None else None
