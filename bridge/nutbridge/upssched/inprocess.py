"""upssched inside an asyncio process: our monitor without a process per notification.

When the monitor's NOTIFYCMD names upssched (NUT's ``/sbin/upssched``, ``upssched``
or ``nutbridge upssched``), :class:`InProcessUpssched` can take the notification
instead: the same upssched.conf (read again at every notification, as each run of
the program does), the same AT semantics (:mod:`.plan`), CMDSCRIPT run the same way
(``/bin/sh -c "CMDSCRIPT arg"``), but the timers live in this process on the event
loop. They are lost when the process exits, which for the monitor is the end of a
shutdown or a restart; the PIPEFN daemon is not involved. CMDSCRIPT gets the same
environment as from the programs (NUT 2.8.5's): EXECUTE the caller's, a timer the
UPSNAME/NOTIFYTYPE/NOTIFYMSG of the calls that started it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import time
from pathlib import Path

from ..config.parser import ConfigError
from .config import UpsschedConf, confpath, parse_upssched_conf
from .plan import Caller, Execute, Start, Timers, actions_for

log = logging.getLogger("nutbridge.upssched")


def names_upssched(notifycmd: str | None) -> bool:
    """True when a NOTIFYCMD line runs upssched itself (not through a wrapper script)."""
    try:
        words = shlex.split(notifycmd or "")
    except ValueError:
        return False
    if not words:
        return False
    first = os.path.basename(words[0])
    return (first == "upssched" and len(words) == 1) or (
        first == "nutbridge" and words[1:] == ["upssched"])


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("UPSNAME", "NOTIFYTYPE", "NOTIFYMSG")}


class InProcessUpssched:
    """The client and the timer daemon in one object, on the running event loop."""

    def __init__(self, conf_path: Path | None = None) -> None:
        self.conf_path = conf_path or confpath()
        self.timers = Timers()
        self._handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self, notifytype: str, upsname: str, message: str = "") -> bool:
        """Carry out the AT lines of one notification; False when upssched.conf is unusable."""
        try:
            conf = parse_upssched_conf(self.conf_path)
        except ConfigError as exc:
            log.error("upssched: %s", exc)
            return False
        caller = Caller(notifytype, upsname, message)
        now, wall = time.monotonic(), time.time()
        for action in actions_for(conf, notifytype, upsname):
            if isinstance(action, Execute):  # as run by the client: the caller's environment
                self._run(conf, action.command, dict(_base_env(), NOTIFYTYPE=notifytype, UPSNAME=upsname))
            elif isinstance(action, Start):
                self.timers.start(action, caller, now, wall)
                log.info("upssched: new timer %s (%d seconds)", action.name, action.seconds)
            else:
                cmd = self.timers.cancel(action, caller)
                if cmd is not None:  # as run by the daemon: without the caller's variables
                    self._run(conf, cmd, _base_env())
                else:
                    log.info("upssched: cancelled timer %s", action.name)
        self._reschedule(conf)
        return True

    def _reschedule(self, conf: UpsschedConf) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        due = self.timers.next_due()
        if due is not None:
            loop = asyncio.get_running_loop()
            # TimerHandle times are loop.time(), which is time.monotonic() on every loop we use
            self._handle = loop.call_at(loop.time() + max(0.0, due - time.monotonic()), self._expire, conf)

    def _expire(self, conf: UpsschedConf) -> None:
        self._handle = None
        for t in self.timers.expire(time.monotonic()):
            log.info("upssched: timer %s expired", t.name)
            self._run(conf, t.name, {**_base_env(), **t.env()})
        self._reschedule(conf)

    def _run(self, conf: UpsschedConf, arg: str, env: dict[str, str]) -> None:
        task = asyncio.get_running_loop().create_task(self._exec(f"{conf.cmdscript} {arg}", env))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _exec(self, line: str, env: dict[str, str]) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", line, env=env, stdin=asyncio.subprocess.DEVNULL)
            rc = await proc.wait()
        except OSError as exc:
            log.error("upssched: cannot run %s: %s", line, exc)
            return
        if rc:
            log.info("upssched: %s returned %d", line, rc)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Drop the timers and wait (a while) for the CMDSCRIPTs still running."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.timers = Timers()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
