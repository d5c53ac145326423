"""``nutbridge killpower``: tell the UPS to cut its output and restore it on mains.

This is NUT's ``upsdrvctl shutdown``, meant for the very end of the host's
shutdown, after ``nutbridge monitor -K`` said the monitor shut the host down
for a power failure (see docs/shutdown.md)::

    nutbridge monitor -K && nutbridge killpower

If a bridge is running (its pid file in the state directory), it is asked with
SIGUSR2 to do it with the drivers it already has, and its answer is awaited.
Otherwise the drivers of ups.conf are started here just for this.

Exit codes: 0 every local UPS accepted, 1 one or more did not (or no UPS),
2 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config.parser import ConfigError
from ..drivers import Driver
from ..drivers.base import KillpowerError

log = logging.getLogger("nutbridge.killpower")

PID_FILE = "nutbridge.pid"  # a running `nutbridge serve`
MONITOR_PID_FILE = "nutbridge-monitor.pid"  # whoever runs the monitor (serve or `nutbridge monitor`)
RESULT_FILE = "nutbridge-killpower.json"  # the bridge's answer to SIGUSR2
REQUEST_FILE = "nutbridge-killpower.request"  # which UPS (JSON list; absent: all)
DEFAULT_CONFDIR = Path("/etc/nut")


@dataclass
class Result:
    ups: str
    ok: bool
    detail: str


def is_remote(drv: Driver) -> bool:
    """A repeater mirrors a UPS that another host's primary powers off, not us."""
    return drv.remote_source


async def killpower_drivers(drivers: Iterable[Driver], only: list[str] | None = None) -> list[Result]:
    """killpower on every local driver (or those of the UPS named in ``only``)."""
    wanted = {n.lower() for n in only} if only else None
    results = []
    for drv in drivers:
        name = drv.device.name
        if wanted is not None and name.lower() not in wanted:
            continue
        if is_remote(drv):
            log.info("UPS [%s]: a repeater of a remote UPS: killpower is up to its own host", name)
            continue
        try:
            detail = await drv.killpower()
        except KillpowerError as exc:
            log.error("UPS [%s]: killpower failed: %s", name, exc)
            results.append(Result(name, False, str(exc)))
        except Exception as exc:
            log.exception("UPS [%s]: killpower failed", name)
            results.append(Result(name, False, str(exc) or type(exc).__name__))
        else:
            log.warning("UPS [%s]: killpower: %s", name, detail)
            results.append(Result(name, True, detail))
        drv.poke()
    return results


# ---- pid files ----------------------------------------------------------------------------
def pid_dir(explicit: Path | None) -> Path | None:
    """Where pid files are written: --state-dir, else $NUT_PIDPATH, else the state directory."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("NUT_PIDPATH"):
        return Path(env)
    from ..statedir import StateDir

    return StateDir(None).path


def find_pid_dir(explicit: Path | None, name: str) -> Path | None:
    """Where to look for pid file ``name``: like :func:`pid_dir`, but without creating or
    needing a writable directory (at the end of a shutdown everything is read-only)."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("NUT_PIDPATH"):
        return Path(env)
    from ..statedir import _candidates

    for d in _candidates(None):
        if (d / name).is_file():
            return d
    return None


def write_pid(path: Path) -> bool:
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(f"{os.getpid()}\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot write %s: %s", path, exc.strerror or exc)
        return False
    return True


def remove_pid(path: Path) -> None:
    """Remove ``path`` if it still names this process."""
    if read_pid(path, check_alive=False) == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def read_pid(path: Path, check_alive: bool = True) -> int | None:
    """The pid in ``path`` if that process is alive and is a nutbridge (stale files ignored)."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not check_alive:
        return pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid  # no /proc: trust the live pid
    return pid if b"nutbridge" in cmdline else None


# ---- the bridge's side ------------------------------------------------------------------------
def read_request(directory: Path | None) -> list[str] | None:
    """The UPS names `nutbridge killpower` asked for (None: all), consuming the request."""
    if directory is None:
        return None
    path = directory / REQUEST_FILE
    try:
        names = json.loads(path.read_text())
        path.unlink()
    except (OSError, ValueError):
        return None
    return [str(n) for n in names] if isinstance(names, list) and names else None


def write_result(directory: Path | None, results: list[Result]) -> None:
    if directory is None:
        return
    path = directory / RESULT_FILE
    tmp = path.with_name(f".{RESULT_FILE}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps({"pid": os.getpid(), "time": time.time(),
                                   "results": [asdict(r) for r in results]}))
        os.replace(tmp, path)
    except OSError as exc:
        log.error("cannot write %s: %s", path, exc.strerror or exc)


# ---- the command ---------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nutbridge killpower",
        description="Tell every local UPS to cut its output after its shutdown delay and to "
        "restore it when mains returns (a power cycle if mains is already back). Run it at the "
        "end of the host's shutdown, only if 'nutbridge monitor -K' succeeds.")
    p.add_argument("-c", "--config-dir", type=Path, default=None,
                   help="directory with ups.conf (default: $NUT_CONFPATH, else /etc/nut)")
    p.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                   help="where a running bridge keeps its pid file (as given to 'serve')")
    p.add_argument("-t", "--timeout", type=float, default=30.0,
                   help="seconds to wait for a running bridge to answer (default 30)")
    p.add_argument("-D", dest="debug", action="count", default=0, help="more log output")
    p.add_argument("ups", nargs="*", help="only these UPS (default: every local UPS, as "
                   "'upsdrvctl shutdown')")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    directory = find_pid_dir(args.state_dir, PID_FILE)
    pid = read_pid(directory / PID_FILE) if directory is not None else None
    if pid is not None and directory is not None:
        results = _via_bridge(pid, directory, args.timeout, args.ups)
    else:
        confdir = args.config_dir or Path(os.environ.get("NUT_CONFPATH") or DEFAULT_CONFDIR)
        try:
            results = asyncio.run(_direct(confdir, args.ups))
        except ConfigError as exc:
            sys.stderr.write(f"nutbridge: {exc}\n")
            return 2
    if results is None:
        return 1
    for r in results:
        print(f"{r.ups}: {'OK' if r.ok else 'FAILED'}: {r.detail}")
    if not results:
        sys.stderr.write("nutbridge killpower: no local UPS to power off"
                         + (f" named {', '.join(args.ups)}" if args.ups else "") + "\n")
        return 1
    return 0 if all(r.ok for r in results) else 1


def _via_bridge(pid: int, directory: Path, timeout: float, only: list[str]) -> list[Result] | None:
    path = directory / RESULT_FILE
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    request = directory / REQUEST_FILE
    try:
        if only:
            request.write_text(json.dumps(only))
        else:
            request.unlink(missing_ok=True)
    except OSError as exc:
        sys.stderr.write(f"nutbridge killpower: cannot write {request}: {exc.strerror or exc}\n")
        return None
    log.info("asking the running bridge (pid %d) to kill the power", pid)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        return [Result(str(r["ups"]), bool(r["ok"]), str(r["detail"])) for r in data["results"]]
    sys.stderr.write(f"nutbridge killpower: the bridge (pid {pid}) did not answer within "
                     f"{timeout:g} s\n")
    return None


async def _direct(confdir: Path, only: list[str]) -> list[Result]:
    """No bridge running: start the ups.conf drivers just long enough to send killpower."""
    from ..config.ups_conf import parse_ups_conf, validate_drivers
    from ..drivers import create_driver
    from ..drivers.base import ConfigError as DriverConfigError
    from ..state import Device

    ups = parse_ups_conf(confdir / "ups.conf")
    validate_drivers(ups)
    wanted = {n.lower() for n in only}
    drivers: list[Driver] = []
    for s in ups.sections:
        if wanted and s.name.lower() not in wanted:
            continue
        try:
            drivers.append(create_driver(Device(s.name, s.desc, s.driver), ups.driver_config(s)))
        except DriverConfigError as exc:
            raise ConfigError(f"UPS [{s.name}]: {exc}", ups.path, s.line) from None
    results: list[Result] = []
    ready: list[Driver] = []
    for drv in drivers:
        if is_remote(drv):
            continue
        try:
            await asyncio.wait_for(drv.connect(), 15)
            await asyncio.wait_for(drv.update(), 15)
            ready.append(drv)
        except Exception as exc:
            log.error("UPS [%s]: cannot reach the UPS: %s", drv.device.name, exc)
            results.append(Result(drv.device.name, False, f"cannot reach the UPS: {exc}"))
    try:
        results += await killpower_drivers(ready)
    finally:
        for drv in drivers:
            with contextlib.suppress(Exception):
                await drv.close()
    return results
