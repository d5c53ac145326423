"""upslog: log UPS variables periodically (NUT's upslog, byte-compatible output).

Format escapes as observed on NUT 2.8.0/2.8.5: ``%%``, ``%t`` (2.8.3+), and
``%CMD...%`` where CMD is matched case-insensitively by prefix against HOST,
UPSHOST, PID, "TIME ", "VAR ", ETIME in that order. A ``%VAR x%`` that fails
prints ``NA``; an unknown command, a variable without a dot or a ``%`` without
its closing ``%`` prints ``INVALID``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from ..client import NutClient, NutError
from .common import INVALID_UPS_ONELINE, Profile, connect, err, getopt, out, profile, split_ups
from .helptext import DEFAULT_FORMAT, HELP

NO_UPS_OLD = "No UPS defined for monitoring - use -s <system>"
NO_UPS_NEW = (
    "No UPS defined for monitoring - use -s <system> -l <logfile>, or use -m <ups,logfile>; "
    "consider -m '*,-' to view updates of all known local devices"
)
NO_FILE_OLD = "No filename defined for logging - use -l <file>"
NO_FILE_NEW = (
    "No filename defined for logging - use -l <file> when using -s <system>, "
    "or use -m <ups,logfile>; consider -m '*,-' to view updates of all known local devices"
)
UPSNOTIFY = (
    "upsnotify: notify about state NOTIFY_STATE_READY_WITH_PID with libsystemd: was requested, "
    "but not running as a service unit now, will not spam more about it\n"
    "upsnotify: failed to notify about state NOTIFY_STATE_READY_WITH_PID: no notification tech "
    "defined, will not spam more about it\n"
)

_COMMANDS = ("HOST", "UPSHOST", "PID", "TIME ", "VAR ", "ETIME")


@dataclass
class Item:
    """A parsed format piece: literal text or a command."""

    text: str
    command: str = ""


def parse_format(fmt: str, tab_escape: bool) -> list[Item]:
    items: list[Item] = []
    i = 0
    lit = ""
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            lit += c
            i += 1
            continue
        nxt = fmt[i + 1] if i + 1 < len(fmt) else ""
        if nxt == "%":
            lit += "%"
            i += 2
            continue
        if nxt == "t" and tab_escape:
            lit += "\t"
            i += 2
            continue
        end = fmt.find("%", i + 1)
        if end < 0:
            lit += "INVALID"
            i += 1
            continue
        if lit:
            items.append(Item(lit))
            lit = ""
        items.append(Item("", fmt[i + 1:end]))
        i = end + 1
    if lit:
        items.append(Item(lit))
    return items


@dataclass
class Logger:
    """One monitored UPS and where its lines go."""

    spec: str
    ups: str
    host: str
    port: int
    stream: IO[str]
    items: list[Item]
    prof: Profile
    client: NutClient | None = None
    hostname: str = field(default_factory=socket.gethostname)

    async def ensure(self) -> NutClient | None:
        if self.client is None or not self.client.connected:
            try:
                self.client = await connect(self.host, self.port, self.prof, tryssl=True)
            except NutError:
                self.client = None
        return self.client

    async def var(self, name: str) -> str:
        if "." not in name:
            return "INVALID"
        c = await self.ensure()
        if c is None:
            return "NA"
        try:
            return await c.get_var(self.ups, name)
        except NutError:
            return "NA"

    async def line(self) -> str:
        now = time.time()
        parts: list[str] = []
        for it in self.items:
            if not it.command:
                parts.append(it.text)
                continue
            cmd = it.command
            key = next((k for k in _COMMANDS if cmd[: len(k)].upper() == k), "")
            if key == "HOST":
                parts.append(self.hostname)
            elif key == "UPSHOST":
                parts.append(self.spec)
            elif key == "PID":
                parts.append(str(os.getpid()))
            elif key == "TIME ":
                parts.append(time.strftime(cmd[5:].replace("@", "%"), time.localtime(now)))
            elif key == "VAR ":
                parts.append(await self.var(cmd[4:]))
            elif key == "ETIME":
                parts.append(str(int(now)))
            else:
                parts.append("INVALID")
        return "".join(parts)

    async def log(self) -> None:
        text = await self.line()
        self.stream.write(text + "\n")
        self.stream.flush()


def _fatal(msg: str) -> int:
    err(msg + "\n")
    return 1


def main(argv: list[str]) -> int:
    prof = profile()
    out(prof.banner("upslog") + "\n")
    spec_new = "hs:l:i:f:u:Vp:FBd:NDm:W:"
    opts, _, bad = getopt("upslog", argv, spec_new if prof.new else "hs:l:i:f:u:Vp:FB")
    if bad and prof.new:
        return _fatal("Error: unknown option -?. Try -h for help.")
    monitor: str | None = None
    logfile: str | None = None
    interval = 30
    fmt = DEFAULT_FORMAT
    count = 0
    prefix = False
    foreground: bool | None = None
    tuples: list[tuple[str, str]] = []
    for o, v in opts:
        if o == "h":
            out(HELP[("upslog", prof.version)])
            return 0
        if o == "V":
            return 0
        if o == "s":
            monitor = v
        elif o == "l":
            logfile = v
        elif o == "i":
            interval = _int(v, 30)
        elif o == "f":
            fmt = v
        elif o == "d":
            count = _int(v, 0)
        elif o == "N":
            prefix = True
        elif o == "F":
            foreground = True
        elif o == "B":
            foreground = False
        elif o == "m":
            ups, _, lf = v.partition(",")
            tuples.append((ups, lf))
    if monitor is not None:
        if logfile is None:
            return _fatal(NO_FILE_NEW if prof.new else NO_FILE_OLD)
        tuples.insert(0, (monitor, logfile))
    if not tuples:
        return _fatal(NO_UPS_NEW if prof.new else NO_UPS_OLD)
    if prefix:
        fmt = "%UPSHOST%%t" + fmt
    items = parse_format(fmt, prof.new)

    loggers: list[Logger] = []
    to_stdout = False
    for ups_spec, lf in tuples:
        where = "stdout" if (lf == "-" and prof.new) else lf
        out(f"logging status of {ups_spec} to {where} ({interval}s intervals)\n")
        t = split_ups(ups_spec, prof)
        if t is None:
            return _fatal(f"Error: {INVALID_UPS_ONELINE}\n")
        if lf == "-":
            stream: IO[str] = sys.stdout
            to_stdout = True
        else:
            try:
                stream = open(lf, "a", encoding="latin-1")  # noqa: SIM115 - lives until exit
            except OSError as exc:
                return _fatal(f"could not open logfile {lf}: {exc.strerror}")
        loggers.append(Logger(ups_spec, t.ups, t.host, t.port, stream, items, prof))

    background = not to_stdout if foreground is None else not foreground
    if background and os.fork() > 0:
        return 0
    return asyncio.run(_loop(loggers, prof, interval, count))


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


async def _loop(loggers: list[Logger], prof: Profile, interval: int, count: int) -> int:
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    stop: list[int] = []

    def on(sig: int) -> Callable[[], None]:
        def handler() -> None:
            if sig != signal.SIGUSR1:
                stop.append(sig)
            wake.set()

        return handler

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
        loop.add_signal_handler(sig, on(sig))
    for lg in loggers:
        try:
            lg.client = await connect(lg.host, lg.port, prof, tryssl=True)
        except NutError as exc:
            err(f"Warning: initial connect failed: {exc.text}\n")
    if prof.new and not os.environ.get("NOTIFY_SOCKET"):
        err(UPSNOTIFY)
    loops = 0
    while True:
        for lg in loggers:
            await lg.log()
        loops += 1
        if stop:
            err(f"Signal {stop[0]}: exiting\n")
            break
        if count and loops >= count:
            # 2.8.5 ends a counted run by raising SIGHUP's exit path.
            err(f"{loops} loops have elapsed\nSignal {int(signal.SIGHUP)}: exiting\n")
            break
        wake.clear()
        try:
            async with asyncio.timeout(interval):
                await wake.wait()
        except TimeoutError:
            pass
    for lg in loggers:
        if lg.client is not None:
            await lg.client.close()
    return 0
