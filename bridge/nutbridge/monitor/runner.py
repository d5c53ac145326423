"""The asyncio side of the monitor: sockets, clocks, processes.

:class:`Runner` keeps one client connection per MONITOR line, polls
``ups.status`` every round, feeds the answers to the sans-IO
:class:`~.machine.Machine` and carries out what it decides:

* ``Notify``: log it (SYSLOG), ``wall`` it (WALL), run NOTIFYCMD (EXEC) with
  ``NOTIFYTYPE`` / ``UPSNAME`` in the environment and the message as its one
  argument, as upsmon does;
* ``BeginShutdown``: as a primary, ``FSD`` every UPS we are primary for and wait
  until the secondaries logged out (``NUMLOGINS`` <= 1, every 0.25 s) or HOSTSYNC
  ran out; then the SHUTDOWN notify, FINALDELAY, the POWERDOWNFLAG (primary
  only) and SHUTDOWNCMD. Connections are then dropped without LOGOUT, as an
  exiting upsmon's are, so the primary's NUMLOGINS falls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

from ..client import NutClient, NutError, TLSMode, TLSOptions
from ..config.parser import ConfigError
from ..upssched.inprocess import InProcessUpssched, names_upssched
from .config import MonitorSpec, UpsmonConf
from .machine import Action, BeginShutdown, Machine, Notify
from .notify import format_notify

log = logging.getLogger("nutbridge.monitor")

# What upsmon writes into POWERDOWNFLAG; `upsmon -K` and our killpower look for it.
POWERDOWN_MAGIC = "upsmon-shutdown-file"
NET_TIMEOUT = 10.0  # upsmon's limit for one exchange with upsd
SYNC_INTERVAL = 0.25  # how often the primary re-reads NUMLOGINS while waiting
SHUTDOWN_MSG = "Executing automatic power-fail shutdown"

# record(event, **fields): where monitor events go besides the log (the event history)
Recorder = Callable[..., None]


def powerdown_flag_set(path: str | os.PathLike[str] | None) -> bool:
    """True when ``path`` holds upsmon's magic (what ``upsmon -K`` checks)."""
    if not path:
        return False
    try:
        with open(path, encoding="latin-1") as f:
            return f.read(len(POWERDOWN_MAGIC) + 64).strip() == POWERDOWN_MAGIC
    except OSError:
        return False


def _tls_options(conf: UpsmonConf) -> TLSOptions:
    """STARTTLS as upsmon: tried, plaintext if the server has none (FORCESSL: required);
    the certificate is checked only with CERTVERIFY (against CERTPATH, else the system CAs)."""
    mode = TLSMode.REQUIRE if conf.forcessl else TLSMode.TRY
    if conf.certverify:
        path = conf.certpath
        is_dir = bool(path) and os.path.isdir(path or "")
        ctx = ssl.create_default_context(cafile=None if is_dir else path, capath=path if is_dir else None)
        ctx.check_hostname = False  # upstream verifies the chain; CERTHOST is NSS-only
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return TLSOptions(mode, context=ctx)


class Link:
    """One MONITOR line: a connection to its upsd, logged in to its UPS."""

    def __init__(self, spec: MonitorSpec, tls: TLSOptions) -> None:
        self.spec = spec
        self.tls_options = tls
        self.client: NutClient | None = None
        self.authed = False
        self.tls = True  # dropped for good after a failed handshake (upsmon's TRYSSL)
        self._auth_failed = False  # on this connection: log in again on a fresh one
        self._last_error = ""

    def _complain(self, text: str) -> None:
        # one log line per distinct problem, not one per poll round
        if text != self._last_error:
            self._last_error = text
            log.warning("%s", text)

    async def _connect(self) -> NutClient:
        s = self.spec
        opts = self.tls_options if self.tls else TLSOptions()
        client = NutClient(s.host, s.port, timeout=NET_TIMEOUT, tls=opts)
        try:
            await client.connect()
        except NutError as exc:
            if exc.code == "TLS-ERROR" and self.tls and opts.mode is TLSMode.TRY:
                self.tls = False
                log.warning("UPS [%s]: STARTTLS failed (%s); continuing without TLS", s.sys, exc)
                return await self._connect()
            raise
        self.client, self.authed, self._auth_failed = client, False, False
        return client

    async def _auth(self, client: NutClient) -> None:
        s = self.spec
        try:
            await client.username(s.user)
            await client.password(s.password)
            await client.login(s.ups)
            if s.primary:
                await client.primary(s.ups)
        except NutError as exc:
            if exc.disconnected:
                raise
            self._complain(f"Login on UPS [{s.sys}] failed - got [{exc.answer or exc.text}]")
            self._auth_failed = True  # still polled; the next round retries on a new connection
            return
        self.authed = True
        self._last_error = ""
        log.info("UPS [%s]: logged in as %s (%s)", s.sys, s.user,
                 "primary" if s.primary else "secondary")

    async def ensure(self) -> NutClient:
        """The connected, logged-in client (connecting and logging in as needed)."""
        if self._auth_failed:
            await self.drop()  # USERNAME cannot be sent twice on one connection
        client = self.client if self.client is not None and self.client.connected else None
        if client is None:
            client = await self._connect()
        if not self.authed:
            await self._auth(client)
        return client

    async def poll(self) -> tuple[str | None, str | None]:
        """``GET VAR <ups> ups.status`` (and ups.alarm with ALARM): None when it failed."""
        s = self.spec
        alarm = None
        try:
            client = await self.ensure()
            status = await client.get_var(s.ups, "ups.status")
            if "ALARM" in status.upper().split():
                try:
                    alarm = await client.get_var(s.ups, "ups.alarm")
                except NutError as exc:
                    if exc.local:
                        raise
        except NutError as exc:
            self._complain(f"Poll UPS [{s.sys}] failed - {exc.text}")
            if exc.disconnected or exc.local:
                await self.drop()
            return None, None
        except (OSError, TimeoutError) as exc:
            self._complain(f"Poll UPS [{s.sys}] failed - {exc}")
            await self.drop()
            return None, None
        if self._last_error.startswith("Poll"):
            self._last_error = ""
        return status, alarm

    async def fsd(self) -> bool:
        s = self.spec
        try:
            client = await self.ensure()
            await client.fsd(s.ups)
        except (NutError, OSError, TimeoutError) as exc:
            log.error("UPS [%s]: FSD failed: %s", s.sys, exc)
            return False
        log.warning("UPS [%s]: forced shutdown (FSD) set", s.sys)
        return True

    async def numlogins(self) -> int | None:
        try:
            client = await self.ensure()
            return await client.get_numlogins(self.spec.ups)
        except (NutError, OSError, TimeoutError, ValueError):
            return None

    async def drop(self) -> None:
        """Close the socket without LOGOUT (an exiting upsmon does not say goodbye)."""
        client, self.client, self.authed = self.client, None, False
        if client is not None:
            with contextlib.suppress(Exception):
                await client._drop()  # NutClient.close() would send LOGOUT


class Runner:
    """Run one upsmon.conf until stopped or until the host was told to shut down."""

    def __init__(self, conf: UpsmonConf, *, record: Recorder | None = None) -> None:
        self.conf = conf
        self.links = [Link(m, _tls_options(conf)) for m in conf.monitors]
        self.record = record or (lambda event, **fields: None)
        self.machine: Machine | None = None
        self.shutdown_reason: str | None = None  # set once the shutdown sequence began
        self.done = False  # SHUTDOWNCMD ran
        self._wake = asyncio.Event()
        self._fsd_requested = False
        self._reload_requested = False
        self._stop_requested = False
        self._children: set[asyncio.Task[None]] = set()
        # NOTIFYCMD naming upssched itself: its timers run here, no process per notification
        self.upssched = _upssched_for(conf)

    # ---- requests from signals / the serve process ---------------------------------
    def request_fsd(self) -> None:
        self._fsd_requested = True
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def request_stop(self) -> None:
        self._stop_requested = True
        self._wake.set()

    # ---- main loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """Poll until :meth:`request_stop`, or until the shutdown sequence is over."""
        flag = self.conf.powerdownflag
        if flag and os.path.exists(flag):
            # a leftover from the last shutdown: this boot is not one to kill power in
            with contextlib.suppress(OSError):
                os.unlink(flag)
                log.info("removed the leftover power-down flag %s", flag)
        self.machine = Machine(self.conf, time.monotonic())
        log.info("monitoring %d UPS (%s)", len(self.links),
                 ", ".join(f"{lk.spec.sys} {'primary' if lk.spec.primary else 'secondary'}"
                           for lk in self.links) or "none")
        try:
            while not self._stop_requested:
                self._wake.clear()  # a signal during the round below cuts the next sleep short
                if self._reload_requested:
                    self._reload()
                actions: list[Action] = []
                if self._fsd_requested:
                    self._fsd_requested = False
                    log.warning("forced shutdown requested")
                    actions += self.machine.force("user")
                await self._poll_round(actions)
                if self.shutdown_reason is not None or self._stop_requested:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.machine.sleep_interval()):
                        await self._wake.wait()
        finally:
            if self.upssched is not None:
                await self.upssched.aclose()
            for link in self.links:
                await link.drop()
            if self._children:
                await asyncio.wait(self._children, timeout=5)

    async def _poll_round(self, actions: list[Action]) -> None:
        machine = self.machine
        assert machine is not None
        if not actions:  # a forced shutdown does not wait for a poll
            results = await asyncio.gather(*(lk.poll() for lk in self.links))
            now = time.monotonic()
            for link, (status, alarm) in zip(self.links, results, strict=True):
                actions += machine.polled(link.spec.sys, status, now, alarm)
            actions += machine.recalc(now)
        await self._execute(actions)

    async def _execute(self, actions: Iterable[Action]) -> None:
        shutdown: BeginShutdown | None = None
        for action in actions:
            if isinstance(action, Notify):
                self.notify(action)
            elif shutdown is None and self.shutdown_reason is None:
                shutdown = action
        if shutdown is not None:
            await self.shutdown(shutdown.reason)

    def _reload(self) -> None:
        self._reload_requested = False
        path = self.conf.path
        if path is None:
            return
        from .config import parse_upsmon_conf

        try:
            conf = parse_upsmon_conf(Path(path))
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        # a connection is kept when the MONITOR line it serves did not change
        old = {lk.spec: lk for lk in self.links}
        tls = _tls_options(conf)
        links = [old.pop(spec) if spec in old else Link(spec, tls) for spec in conf.monitors]
        for gone in old.values():
            self._spawn(gone.drop())
        if names_upssched(conf.notifycmd) != (self.upssched is not None):
            if self.upssched is not None:
                self._spawn(self.upssched.aclose())
            self.upssched = _upssched_for(conf)
        self.conf, self.links = conf, links
        assert self.machine is not None
        self.machine.reconfigure(conf, time.monotonic())
        log.info("configuration reloaded (%s)", path)

    # ---- shutdown ----------------------------------------------------------------------
    async def shutdown(self, reason: str) -> None:
        """upsmon's forceshutdown + doshutdown: FSD, wait for secondaries, notify,
        FINALDELAY, POWERDOWNFLAG, SHUTDOWNCMD."""
        assert self.machine is not None
        self.shutdown_reason = reason
        conf = self.conf
        log.critical("%s (%s)", SHUTDOWN_MSG, reason)
        self.record("shutdown", step="begin", reason=reason)
        primaries = [lk for lk in self.links if lk.spec.primary]
        for link in primaries:
            if await link.fsd():
                self.record("shutdown", step="fsd", ups=link.spec.sys)
                for action in self.machine.fsd_set(link.spec.sys):
                    if isinstance(action, Notify):
                        self.notify(action)
        if primaries:
            await self._sync_secondaries(primaries)
        self._wall(SHUTDOWN_MSG)
        self.notify(Notify("SHUTDOWN", ""))
        if conf.finaldelay > 0:
            await asyncio.sleep(conf.finaldelay)
        if primaries and conf.powerdownflag:
            self._write_flag(conf.powerdownflag)
        await self._run_shutdowncmd()
        self.done = True
        for link in self.links:
            await link.drop()

    async def _sync_secondaries(self, primaries: list[Link]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.conf.hostsync
        waiting = list(primaries)
        first = True
        while True:
            counts = await asyncio.gather(*(lk.numlogins() for lk in waiting))
            # None: that server cannot be asked any more, so nobody is left to wait for there
            waiting = [lk for lk, n in zip(waiting, counts, strict=True) if n is not None and n > 1]
            if waiting and first:
                self.notify(Notify("SHUTDOWN_HOSTSYNC", ""))  # as upsmon 2.8.5
            first = False
            if not waiting:
                log.info("all secondaries logged out")
                self.record("shutdown", step="secondaries_gone")
                return
            if loop.time() >= deadline:
                log.warning("Host sync timer expired, forcing shutdown")
                self.record("shutdown", step="hostsync_expired",
                            ups=[lk.spec.sys for lk in waiting])
                return
            await asyncio.sleep(SYNC_INTERVAL)

    def _write_flag(self, path: str) -> None:
        try:
            with open(path, "w", encoding="latin-1") as f:
                f.write(POWERDOWN_MAGIC)
        except OSError as exc:
            log.error("cannot write the power-down flag %s: %s", path, exc.strerror or exc)
            return
        log.info("power-down flag %s written", path)
        self.record("shutdown", step="powerdownflag", path=path)

    async def _run_shutdowncmd(self) -> None:
        cmd = self.conf.shutdowncmd
        if not cmd:
            log.error("SHUTDOWNCMD is not set in upsmon.conf: nothing to run")
            self.record("shutdown", step="shutdowncmd", command=None, rc=None)
            return
        log.critical("running SHUTDOWNCMD: %s", cmd)
        self.record("shutdown", step="shutdowncmd", command=cmd)
        rc = await _run_sh("SHUTDOWNCMD", cmd)
        if rc:
            log.error("SHUTDOWNCMD exited with %d", rc)

    # ---- notifications ---------------------------------------------------------------
    def notify(self, n: Notify) -> None:
        message, flags = format_notify(self.conf, n)
        if not flags:
            log.debug("%s (notify %s ignored)", message, n.type)
            return
        log.log(logging.WARNING if "SYSLOG" in flags else logging.DEBUG, "%s", message)
        self.record("notify", type=n.type, ups=n.ups or None, message=message)
        if "WALL" in flags:
            self._wall(message)
        if "EXEC" in flags and self.conf.notifycmd:
            if self.upssched is not None:
                self.upssched.notify(n.type, n.ups or "", message)
            else:
                self._spawn(self._notifycmd(self.conf.notifycmd, n, message))

    async def _notifycmd(self, cmd: str, n: Notify, message: str) -> None:
        # upsmon 2.8 runs system('NOTIFYCMD "message"'); the message is passed as "$1"
        # instead so text from the UPS (ALARM, OTHER) can never be read as shell syntax
        env = dict(os.environ, NOTIFYTYPE=n.type, UPSNAME=n.ups)
        rc = await _run_sh("NOTIFYCMD", f'{cmd} "$1"', message, env=env)
        if rc:
            log.warning("NOTIFYCMD exited with %d for %s", rc, n.type)

    def _wall(self, message: str) -> None:
        wall = shutil.which("wall")
        if wall:
            self._spawn(self._run_quiet(wall, message))

    async def _run_quiet(self, *argv: str) -> None:
        with contextlib.suppress(OSError):
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            await proc.wait()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        # child processes run beside the poll loop, as upsmon forks them; reaped at the end
        task = asyncio.get_running_loop().create_task(coro)
        self._children.add(task)
        task.add_done_callback(self._children.discard)


async def _run_sh(what: str, script: str, *args: str, env: dict[str, str] | None = None) -> int | None:
    """Run ``/bin/sh -c script sh args...``; its exit code, None if it could not start."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", script, "sh", *args, env=env, stdin=asyncio.subprocess.DEVNULL)
        return await proc.wait()
    except OSError as exc:
        log.error("%s failed to start: %s", what, exc)
        return None


def _upssched_for(conf: UpsmonConf) -> InProcessUpssched | None:
    """In-process upssched when NOTIFYCMD is upssched, reading upssched.conf beside upsmon.conf."""
    if not names_upssched(conf.notifycmd):
        return None
    return InProcessUpssched(Path(conf.path).parent / "upssched.conf" if conf.path else None)
