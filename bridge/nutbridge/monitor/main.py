"""``nutbridge monitor``: NUT's upsmon, reading the same ``upsmon.conf``.

    nutbridge monitor [--config-dir DIR]     run (foreground) until SIGTERM or shutdown
    nutbridge monitor -c fsd|stop|reload     signal the running monitor
    nutbridge monitor -K                     exit 0 iff POWERDOWNFLAG holds upsmon's magic

Signals, as upsmon's: SIGUSR1 forces a shutdown, SIGHUP re-reads upsmon.conf,
SIGTERM/SIGINT stop. The same monitor also runs inside ``nutbridge serve`` when
its configuration directory has an upsmon.conf; ``-c`` then signals that bridge.

Exit codes: 0 stopped or shut the host down (``-K``: flag set; ``-c``: signal
sent); 1 ``-K`` flag not set, ``-c`` no monitor running; 2 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from .. import __version__
from ..config.parser import ConfigError
from .config import UpsmonConf
from .killpower import (
    MONITOR_PID_FILE,
    PID_FILE,
    find_pid_dir,
    pid_dir,
    read_pid,
    remove_pid,
    write_pid,
)
from .runner import Runner, powerdown_flag_set

log = logging.getLogger("nutbridge.monitor")

DEFAULT_CONFDIR = Path("/etc/nut")
_SIGNALS = {"fsd": signal.SIGUSR1, "stop": signal.SIGTERM, "reload": signal.SIGHUP}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nutbridge monitor",
        description="Monitor UPSes as NUT's upsmon does (primary or secondary, from "
        "upsmon.conf) and shut this host down safely when power runs out.")
    p.add_argument("--config-dir", type=Path, default=None, metavar="DIR",
                   help="directory with upsmon.conf (default: $NUT_CONFPATH, else /etc/nut)")
    p.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                   help="state directory: event history and pid file (default: the bridge's "
                   "state directory; the pid file goes to $NUT_PIDPATH when that is set)")
    p.add_argument("-c", dest="command", choices=sorted(_SIGNALS),
                   help="send a command to the running monitor: fsd (shut down now), stop, reload")
    p.add_argument("-K", dest="check_flag", action="store_true",
                   help="exit 0 if POWERDOWNFLAG says the host went down for a power failure")
    p.add_argument("-D", dest="debug", action="count", default=0, help="more log output (repeatable)")
    p.add_argument("-q", dest="quiet", action="count", default=0, help="less log output (repeatable)")
    p.add_argument("-F", dest="foreground", action="store_true",
                   help="stay in the foreground (always; accepted for upsmon compatibility)")
    p.add_argument("-B", dest="background", action="store_true",
                   help="accepted for upsmon compatibility; the monitor never daemonizes")
    p.add_argument("-p", dest="privileged", action="store_true",
                   help="accepted for upsmon compatibility (one process, no privilege split)")
    p.add_argument("-u", dest="user", default=None, help="accepted for upsmon compatibility; ignored")
    p.add_argument("-V", "--version", action="version", version=f"nutbridge {__version__}")
    return p


def load(confdir: Path, check: bool = True) -> UpsmonConf:
    from .config import parse_upsmon_conf

    return parse_upsmon_conf(confdir / "upsmon.conf", check=check)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    level = logging.INFO - 10 * args.debug + 10 * args.quiet
    logging.basicConfig(level=max(logging.DEBUG, min(logging.CRITICAL, level)), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command:
        return _send(find_pid_dir(args.state_dir, MONITOR_PID_FILE), args.command)
    confdir = args.config_dir or Path(os.environ.get("NUT_CONFPATH") or DEFAULT_CONFDIR)
    try:
        conf = load(confdir, check=not args.check_flag)  # -K only needs POWERDOWNFLAG
    except ConfigError as exc:
        sys.stderr.write(f"nutbridge: {exc}\n")
        return 2
    if args.check_flag:
        return _check_flag(conf)
    return asyncio.run(_run(conf, pid_dir(args.state_dir), args.state_dir))


def _check_flag(conf: UpsmonConf) -> int:
    if not conf.powerdownflag:
        print("POWERDOWNFLAG is not set in upsmon.conf")
        return 1
    if powerdown_flag_set(conf.powerdownflag):
        print(f"Power down flag is set ({conf.powerdownflag})")
        return 0
    print(f"Power down flag is not set ({conf.powerdownflag})")
    return 1


def _send(directory: Path | None, command: str) -> int:
    pid = read_pid(directory / MONITOR_PID_FILE) if directory is not None else None
    if pid is None or directory is None:
        sys.stderr.write(f"nutbridge monitor: no running monitor found (no live "
                         f"{MONITOR_PID_FILE} in {directory or 'any state directory'})\n")
        return 1
    if command == "stop" and read_pid(directory / PID_FILE) == pid:
        sys.stderr.write(f"nutbridge monitor: the monitor runs inside 'nutbridge serve' (pid {pid}); "
                         "stop the bridge, or start it with --no-monitor\n")
        return 1
    os.kill(pid, _SIGNALS[command])
    return 0


async def _run(conf: UpsmonConf, directory: Path | None, state_dir: Path | None) -> int:
    from ..history import History
    from ..statedir import StateDir

    # Its own file next to a bridge's (which holds the lock on events.jsonl); `nutbridge events` merges them.
    history = History(StateDir(state_dir), name="monitor-events")
    runner = Runner(conf, record=history.monitor_recorder())
    stopped = asyncio.Event()

    def stop() -> None:
        stopped.set()
        runner.request_stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    loop.add_signal_handler(signal.SIGUSR1, runner.request_fsd)
    loop.add_signal_handler(signal.SIGHUP, runner.request_reload)
    pidfile = directory / MONITOR_PID_FILE if directory is not None else None
    if pidfile is not None:
        write_pid(pidfile)
    log.info("NUT Bridge %s monitor started, config %s", __version__, conf.path)
    try:
        await runner.run()
        if runner.done and conf.shutdownexit != 0:
            # SHUTDOWNEXIT no / N: stay (idle) so the service manager does not see us leave early
            wait = None if conf.shutdownexit < 0 else conf.shutdownexit
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stopped.wait()
    finally:
        if pidfile is not None:
            remove_pid(pidfile)
        history.close()
    if runner.done:
        log.info("shutdown command issued; exiting")
    return 0
