"""``nutbridge driver``: one of our native drivers as a NUT driver process, for a C upsd.

The composition root of the driver role (docs/driver-process.md): NUT's driver command line
(``-a <ups>`` and the flags upsdrvctl passes), ``ups.conf`` from ``$NUT_CONFPATH``, one of our
drivers (:mod:`nutbridge.drivers`) writing a :class:`~nutbridge.state.Device`, and
:class:`~nutbridge.server.sockserver.SockServer` serving that device on the socket a C upsd
connects to, ``$NUT_STATEPATH/<progname>-<ups>``. What NUT's driver core does, in the same
order (``shared/docs/driver-socket.md`` §1.4, §7.1):

1. read the section; refuse one whose ``driver`` is not this program ("UPS [x] is for driver
   X, but I'm Y!", exit 1);
2. drop privileges (``-r``, ``-u``/``-g``, ``user``/``group`` of ups.conf; as root without one
   of them: the ``nut`` user, as Debian's drivers), ``chdir`` to the state path;
3. fork into the background unless ``-F``/``-FF``/``-D`` (the parent exits 0 once the socket is
   ready, or 1 if the child failed, so a 2.8.0 upsdrvctl that waits for it works) and write
   the PID file ``<altpidpath>/<progname>-<ups>.pid`` (also with ``-FF``); a running twin named
   in it gets SIGTERM first;
4. open the device and read it once: if that fails, exit 1 without a socket, as C drivers do;
5. create the socket (and tell systemd ``READY=1`` when it runs us as a notify unit, as NUT
   2.8.5's nut-driver@ does through ``upsdrvctl -FF``), serve until SIGTERM/SIGINT/SIGQUIT (or
   ``INSTCMD driver.exit``), then close the connections, unlink the socket and the PID file,
   exit 0.

Unlike a C driver, once running ours never exits for a lost device: the driver base marks
the data stale (``DATASTALE`` on the socket: upsd says ``DATA-STALE``) and reconnects with
backoff until the device is back. SIGHUP, SIGUSR1 (reload-or-exit) or ``INSTCMD driver.reload*``
re-read ups.conf and restart the driver in the process if its options changed.

Run under the name of a driver we implement (a link ``dummy-ups`` -> ``nutbridge``, see
``nutbridge.cli``), the program *is* that driver; ``nutbridge driver -a <ups>`` takes the
driver from the section.
"""

from __future__ import annotations

import asyncio
import contextlib
import getopt
import grp
import logging
import logging.handlers
import os
import pwd
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, sdnotify
from .config.parser import ConfigError
from .config.ups_conf import UpsConf, UpsSection, parse_ups_conf
from .drivers import Driver, driver_class, is_native, known_drivers
from .drivers.base import ConfigError as DriverConfigError
from .drivers.base import Status
from .protocol import sock
from .server.sockserver import SockServer
from .state import Device, DriverState

log = logging.getLogger("nutbridge.driver")

DEFAULT_CONFPATH = "/etc/nut"
DEFAULT_STATEPATH = "/run/nut"  # Debian's compiled STATEPATH and ALTPIDPATH
DEFAULT_USER = "nut"  # what Debian's drivers switch to when started as root
MAXAGE = 15.0  # upsd's default; our data is stale after max(MAXAGE, 3 polls) without news
TWIN_TRIES = 3  # SIGTERMs to a running twin, TWIN_WAIT s apart, before giving up
TWIN_WAIT = 5.0
COMMAND_TIMEOUT = 15.0  # -c: how long to wait for the running driver's answer
CORE_COMMANDS = ("driver.exit", "driver.reload", "driver.reload-or-error", "driver.reload-or-exit")
_OPTSTRING = "a:s:kFBDd:hx:Lqr:u:g:Vi:c:"

USAGE = """\
usage: {prog} -a <ups> [OPTIONS]
       (as nutbridge: nutbridge driver [--name DRIVER] -a <ups> [OPTIONS])

Run one of NUT Bridge's native drivers as a NUT driver process: it reads the section <ups> of
$NUT_CONFPATH/ups.conf and serves the UPS on $NUT_STATEPATH/<driver>-<ups> for a C upsd.

  -a <ups>        the section of ups.conf to drive (required, or -s)
  -s <ups>        run without ups.conf (give the options with -x port=... etc.)
  -x <var>=<val>  set a driver option (overrides ups.conf)
  -i <seconds>    poll interval (the pollinterval option)
  -u <user>       run as this user (as root, the default is 'nut')
  -g <group>      run with this group; the socket gets it (g+rw)
  -r <dir>        chroot to <dir> once the driver is loaded
  -F              stay in the foreground; -FF: and write the PID file
  -B              go to the background even with -D
  -D              more logging (repeatable); implies -F unless -B
  -q              less logging (repeatable)
  -k              kill the power: tell the UPS to shut its output off (and come back on mains),
                  then exit (upsdrvctl shutdown)
  -d <n>          read the UPS for <n> poll intervals, print its data and exit (no socket)
  -c <command>    ask the running driver for this UPS: reload, reload-or-error,
                  reload-or-exit, exit or dump
  -L              list the driver's ups.conf options
  -V              print the version and exit
  -h              this help
  --name DRIVER   act as driver DRIVER (what a link named DRIVER to nutbridge does)

Native drivers: {drivers}
"""


class Fatal(Exception):
    """A start-up error: printed, exit 1 (as NUT's ``fatalx``)."""


@dataclass
class Options:
    ups: str | None = None
    standalone: bool = False  # -s: no ups.conf
    extra: dict[str, str] = field(default_factory=dict)
    interval: str | None = None
    user: str | None = None
    group: str | None = None
    chroot: str | None = None
    foreground: int = 0
    background: bool = False
    debug: int = 0
    quiet: int = 0
    killpower: bool = False
    dump_loops: int | None = None
    command: str | None = None
    list_options: bool = False
    version: bool = False
    help: bool = False
    name: str | None = None


def parse_args(argv: list[str]) -> Options:
    """NUT's driver options (getopt ``+a:s:kFBDd:hx:Lqr:u:g:Vi:c:``) plus ``--name``."""
    try:
        pairs, rest = getopt.getopt(argv, _OPTSTRING, ["name="])
    except getopt.GetoptError as exc:
        raise Fatal(f"Error: {exc}. Try -h for help.") from None
    o = Options()
    for opt, val in pairs:
        if opt in ("-a", "-s"):
            o.ups, o.standalone = val, opt == "-s"
        elif opt == "-x":
            key, eq, value = val.partition("=")
            if not key:
                raise Fatal(f"Error: -x {val}: use -x var=value")
            o.extra[key.strip().lower()] = value if eq else "enabled"
        elif opt == "-i":
            o.interval = val
        elif opt == "-u":
            o.user = val
        elif opt == "-g":
            o.group = val
        elif opt == "-r":
            o.chroot = val
        elif opt == "-F":
            o.foreground += 1
        elif opt == "-B":
            o.background = True
        elif opt == "-D":
            o.debug += 1
        elif opt == "-q":
            o.quiet += 1
        elif opt == "-k":
            o.killpower = True
        elif opt == "-d":
            try:
                o.dump_loops = max(1, int(val))
            except ValueError:
                raise Fatal(f"Error: -d {val}: not a number") from None
        elif opt == "-c":
            o.command = val
        elif opt == "-L":
            o.list_options = True
        elif opt == "-V":
            o.version = True
        elif opt == "-h":
            o.help = True
        elif opt == "--name":
            o.name = val
    if rest:
        log.warning("ignoring extra arguments: %s", " ".join(rest))
    return o


# ---- configuration ------------------------------------------------------------------------------

def confpath() -> Path:
    return Path(os.environ.get("NUT_CONFPATH") or DEFAULT_CONFPATH)


@dataclass
class Setup:
    """Everything the driver process needs, read from the command line and ups.conf."""

    progname: str
    ups: str
    config: dict[str, str]
    desc: str | None
    statepath: Path
    pidpath: Path
    user: str | None
    group: str | None

    @property
    def socket_path(self) -> Path:
        return self.statepath / f"{self.progname}-{self.ups}"

    @property
    def pid_file(self) -> Path:
        return self.pidpath / f"{self.progname}-{self.ups}.pid"


def load_setup(o: Options, progname: str | None) -> Setup:
    """Read ups.conf (unless -s) and settle the driver's name, options and paths. Raises Fatal."""
    if not o.ups:
        raise Fatal("Error: specifying '-a id' is now mandatory. Try -h for help.")
    ups_conf: UpsConf | None = None
    section: UpsSection | None = None
    if o.standalone:
        if not progname:
            raise Fatal("Error: -s needs the driver's name (run it as a link named like the "
                        "driver, or with --name)")
        options = {"driver": progname}
    else:
        path = confpath() / "ups.conf"
        try:
            ups_conf = parse_ups_conf(path)
        except ConfigError as exc:
            raise Fatal(f"Error: {exc}") from None
        section = next((s for s in ups_conf.sections if s.name == o.ups), None)  # case-sensitive, as C
        if section is None:
            raise Fatal(f"Error: Section {o.ups} not found in {path}")
        if progname and section.driver != progname:
            raise Fatal(f"Error: UPS [{o.ups}] is for driver {section.driver}, but I'm {progname}!")
        progname = section.driver
        options = ups_conf.driver_config(section)
    assert progname
    if not is_native(progname):
        raise Fatal(f"Error: UPS [{o.ups}]: nutbridge has no native driver '{progname}' "
                    f"(native: {', '.join(n for n in known_drivers() if is_native(n))})")
    options.update(o.extra)
    # our own driver even where ups.conf's nutbridge_hosted/nutbridge_attach would have the
    # bridge run NUT's (this process *is* the driver those would start or attach to)
    options["_mode"] = "native"
    if o.interval is not None:
        options["pollinterval"] = o.interval
    if not options.get("port"):
        raise Fatal(f"Error: UPS [{o.ups}]: no port given")
    glob = ups_conf.globals if ups_conf is not None else {}
    statepath = Path(os.environ.get("NUT_STATEPATH") or glob.get("statepath") or DEFAULT_STATEPATH)
    pidpath = Path(os.environ.get("NUT_ALTPIDPATH") or os.environ.get("NUT_STATEPATH")
                   or DEFAULT_STATEPATH)
    return Setup(progname, o.ups, options, section.desc if section else None, statepath, pidpath,
                 o.user or glob.get("user") or None, o.group or glob.get("group") or None)


def make_driver(setup: Setup) -> Driver:
    device = Device(setup.ups, setup.desc, setup.progname)
    try:
        return driver_class(setup.progname, setup.config)(device, setup.config)
    except DriverConfigError as exc:
        raise Fatal(f"Error: UPS [{setup.ups}]: {exc}") from None


# ---- the process: privileges, background, PID file --------------------------------------------

def drop_privileges(setup: Setup, chroot: str | None) -> int | None:
    """chroot and switch user as NUT's driver core does; returns the socket's group (or None)."""
    gid: int | None = None
    if setup.group:
        try:
            gid = grp.getgrnam(setup.group).gr_gid
        except KeyError:
            raise Fatal(f"Error: group {setup.group} not found") from None
    if os.geteuid() != 0:
        if chroot:
            raise Fatal("Error: -r needs root")
        return gid
    name = setup.user
    if name is None:
        try:
            pwd.getpwnam(DEFAULT_USER)
            name = DEFAULT_USER
        except KeyError:
            log.warning("no user '%s': staying root (use -u)", DEFAULT_USER)
    pw = None
    if name is not None:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise Fatal(f"Error: user {name} not found") from None
    if chroot:
        try:
            os.chroot(chroot)
            os.chdir("/")
        except OSError as exc:
            raise Fatal(f"Error: chroot {chroot}: {exc.strerror}") from None
    if pw is not None and pw.pw_uid != 0:
        group_id = gid if gid is not None else pw.pw_gid
        os.initgroups(pw.pw_name, group_id)
        os.setgid(group_id)
        os.setuid(pw.pw_uid)
    return gid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited already
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    except (OSError, IndexError):
        return True


def write_pid_file(path: Path) -> None:
    """Write our PID; a live twin named in an old file gets SIGTERM first (as NUT's drivers)."""
    try:
        old = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        old = 0
    if old > 1 and old != os.getpid() and _alive(old):
        log.warning("Duplicate driver instance detected (PID file %s exists)! Terminating the "
                    "other driver (PID %d)", path, old)
        for _ in range(TWIN_TRIES):
            with contextlib.suppress(OSError):
                os.kill(old, signal.SIGTERM)
            deadline = time.monotonic() + TWIN_WAIT
            while _alive(old) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not _alive(old):
                break
        else:
            raise Fatal(f"Error: the other driver (PID {old}) does not stop")
    try:
        path.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        raise Fatal(f"Error: cannot write PID file {path}: {exc.strerror}") from None


def remove_pid_file(path: Path) -> None:
    try:
        if int(path.read_text().split()[0]) == os.getpid():
            path.unlink()
    except (OSError, ValueError, IndexError):
        pass


def background() -> int | None:
    """Fork. The parent waits for the child's word and returns its exit code (0 once the
    socket is up); the child returns None and holds the write end of the pipe (fd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        with os.fdopen(r, "rb") as f:
            word = f.read(1)
        if word == b"0":
            return 0
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return 1
    os.close(r)
    os.setsid()
    global _ready_fd
    _ready_fd = w
    return None


_ready_fd: int | None = None


def detach(progname: str) -> None:
    """Tell the waiting parent we are up, then leave the terminal: stdio to /dev/null, logging
    to syslog."""
    global _ready_fd
    if _ready_fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(_ready_fd, b"0")
        os.close(_ready_fd)
    _ready_fd = None
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    if os.path.exists("/dev/log"):
        with contextlib.suppress(OSError):
            h = logging.handlers.SysLogHandler("/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON)
            h.ident = f"{progname}[{os.getpid()}]: "
            root.addHandler(h)
    if not root.handlers:
        root.addHandler(logging.NullHandler())


# ---- the running driver ------------------------------------------------------------------------

class DriverHost:
    """Runs the driver (restarting it in place on reload) and answers INSTCMD/SET."""

    def __init__(self, setup: Setup, options: Options, drv: Driver, stop: asyncio.Event) -> None:
        self.setup = setup
        self.options = options
        self.drv = drv
        self.device = drv.device
        self.stop = stop
        self.task: asyncio.Task[None] | None = None
        self.server: SockServer | None = None  # set once the socket is up

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.drv.run(), name="driver")

    async def first_data(self) -> str | None:
        """Start the driver and wait for its first complete read of the device: None, or why
        it failed."""
        # before the socket exists a failure is fatal: the base's "(retrying)" would mislead
        with _quiet("nutbridge.drivers.base", "(retrying)"):
            self.start()
            while True:
                if self.device.driver_state is DriverState.OK:
                    return None
                if self.drv.failures or (self.task is not None and self.task.done()):
                    return self.drv.last_error or "the driver stopped"
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        """Stop the driver (the base then calls the data stale: not worth a warning here)."""
        drv, task = self.drv, self.task
        drv.stop()
        with _quiet("nutbridge.state", "is stale - check driver"):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            try:
                await drv.close()
            except Exception:
                log.exception("UPS [%s]: closing the driver failed", self.device.name)

    async def handle(self, kind: str, name: str, param: str | None) -> int:
        """The socket's INSTCMD/SET (SockServer's handler)."""
        dev = self.device
        if kind == "INSTCMD" and name.lower() in CORE_COMMANDS:
            return await self._core(name.lower())
        if kind == "SET":
            var = dev.get(name)
            status = await self.drv.setvar(var.name if var is not None else name, param or "")
        else:
            status = await self.drv.instcmd(dev.canonical_cmd(name), param)
        if status != Status.HANDLED:
            log.info("UPS [%s]: %s %s -> %s", dev.name, kind, name, Status(status).name)
        self.drv.poke()
        return int(status)

    async def _core(self, cmd: str) -> int:
        if cmd == "driver.exit":
            log.info("UPS [%s]: exiting on request (driver.exit)", self.device.name)
            self.stop.set()
            return int(Status.HANDLED)
        return await self.reload(cmd.removeprefix("driver."))

    async def reload(self, mode: str = "reload") -> int:
        """Re-read ups.conf: restart the driver in place if its options changed. ``mode``:
        ``reload`` (a section now for another driver is ignored), ``reload-or-error``
        (that is an error), ``reload-or-exit`` (then exit, so upsdrvctl or systemd can start
        the other one). An unreadable file or a bad option is an error and the running driver
        stays. systemd (``Type=notify-reload``) hears RELOADING=1, then READY=1."""
        sdnotify.reloading()
        try:
            return await self._reload(mode)
        finally:
            if not self.stop.is_set():
                sdnotify.ready()

    async def _reload(self, mode: str) -> int:
        name = self.device.name
        try:
            setup = load_setup(self.options, self.setup.progname if self.options.standalone else None)
        except Fatal as exc:
            log.error("UPS [%s]: reload: %s; keeping the running driver", name,
                      str(exc).removeprefix("Error: "))
            return int(Status.FAILED)
        if setup.progname != self.setup.progname:
            msg = f"UPS [{name}] is now for driver {setup.progname}, not {self.setup.progname}"
            if mode == "reload-or-exit":
                log.warning("%s: exiting", msg)
                self.stop.set()
                return int(Status.HANDLED)
            log.warning("%s: %s", msg, "refused" if mode == "reload-or-error" else "ignored")
            return int(Status.FAILED if mode == "reload-or-error" else Status.HANDLED)
        if setup.config == self.setup.config:
            log.info("UPS [%s]: reload: nothing changed", name)
            return int(Status.HANDLED)
        try:
            drv = driver_class(setup.progname, setup.config)(self.device, setup.config)
        except DriverConfigError as exc:
            log.error("UPS [%s]: reload: %s; keeping the running driver", name, exc)
            return int(Status.FAILED)
        log.info("UPS [%s]: reload: options changed, restarting the driver", name)
        was_ok = self.device.driver_state is DriverState.OK
        with self.server.steady() if self.server is not None else contextlib.nullcontext():
            await self.close()
            if was_ok:
                self.device.data_ok()  # the data stays valid until the new driver says otherwise
        self.drv, self.setup = drv, setup
        self.start()
        return int(Status.HANDLED)

    def reload_soon(self, mode: str = "reload") -> None:
        """SIGHUP (reload) and SIGUSR1 (reload-or-exit), as NUT 2.8.5's drivers."""
        task = asyncio.get_running_loop().create_task(self.reload(mode))
        _background.add(task)
        task.add_done_callback(_background.discard)


_background: set[asyncio.Task[int]] = set()


@contextlib.contextmanager
def _quiet(logger: str, suffix: str) -> Iterator[None]:
    """Drop the messages of ``logger`` that end with ``suffix`` meanwhile."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().endswith(suffix)

    target = logging.getLogger(logger)
    target.addFilter(keep)
    try:
        yield
    finally:
        target.removeFilter(keep)


def stale_after(drv: Driver) -> float:
    return max(MAXAGE, 3 * drv.pollinterval)


async def serve(setup: Setup, o: Options, drv: Driver, gid: int | None) -> int:
    """Steps 4 and 5 of the module docstring, in the (possibly backgrounded) process."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        loop.add_signal_handler(sig, _stop_on(stop, sig))
    host = DriverHost(setup, o, drv, stop)
    first = loop.create_task(host.first_data())
    stopper = loop.create_task(stop.wait())
    await asyncio.wait({first, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if not first.done():
        first.cancel()
        await host.close()
        return 0
    stopper.cancel()
    error = first.result()
    if error is not None:
        await host.close()
        log.error("UPS [%s]: %s: cannot reach the device, exiting", setup.ups, error)
        return 1
    server = SockServer(drv.device, setup.socket_path, host.handle, stale_after=stale_after(drv),
                        group=gid)
    try:
        await server.start()
    except OSError as exc:
        await host.close()
        log.error("Error: cannot create the driver socket %s: %s", setup.socket_path,
                  exc.strerror or exc)
        return 1
    host.server = server
    loop.add_signal_handler(signal.SIGHUP, host.reload_soon)
    loop.add_signal_handler(signal.SIGUSR1, host.reload_soon, "reload-or-exit")
    log.info("UPS [%s]: %s serving %s", setup.ups, setup.progname, setup.socket_path)
    detach(setup.progname)
    sdnotify.ready(f"serving {setup.socket_path}")
    await stop.wait()
    sdnotify.stopping()
    await server.close()
    await host.close()
    return 0


def _stop_on(stop: asyncio.Event, sig: int) -> Callable[[], None]:
    def handler() -> None:
        if not stop.is_set():
            log.info("Signal %d: exiting", sig)
        stop.set()

    return handler


def _early_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


# ---- the other modes: -k, -d, -c, -L -------------------------------------------------------------

async def killpower(drv: Driver) -> int:
    """``-k``: read the UPS once, then ask it to cut (and restore) its output."""
    from .drivers.base import DeviceError
    from .monitor.killpower import killpower_drivers

    dev = drv.device
    try:
        await drv.connect()
        dev.driver_connected()
        await drv.update()
        dev.data_ok()
    except (DeviceError, OSError, TimeoutError, EOFError) as exc:
        log.error("UPS [%s]: killpower: cannot reach the device: %s", dev.name, exc)
        await drv.close()
        return 1
    try:
        results = await killpower_drivers([drv])
    finally:
        await drv.close()
    return 0 if all(r.ok for r in results) else 1


async def dump_data(drv: Driver, loops: int) -> int:
    """``-d n``: run ``n`` poll intervals, print the data (``var: value``), exit."""
    host = DriverHost(Setup(drv.device.driver_name, drv.device.name, {}, None, Path("."), Path("."),
                            None, None), Options(), drv, asyncio.Event())
    error = await host.first_data()
    if error is None:
        await asyncio.sleep((loops - 1) * drv.pollinterval)
        for var in drv.device.variables():
            print(f"{var.name}: {var.value}")
    else:
        log.error("UPS [%s]: %s: cannot reach the device", drv.device.name, error)
    await host.close()
    return 0 if error is None else 1


_COMMANDS = {"reload": "driver.reload", "reload-or-error": "driver.reload-or-error",
             "reload-or-exit": "driver.reload-or-exit", "exit": "driver.exit"}
_SIGNALS = {"reload": signal.SIGHUP, "reload-or-error": signal.SIGHUP,
            "reload-or-exit": signal.SIGHUP, "exit": signal.SIGTERM}


def send_command(setup: Setup, command: str) -> int:
    """``-c``: ask the running driver over its socket (as 2.8.5's upsdrvquery does); without
    a socket, signal the PID of its PID file."""
    if command != "dump" and command not in _COMMANDS:
        raise Fatal(f"Error: unknown command '{command}' (reload, reload-or-error, "
                    f"reload-or-exit, exit, dump)")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(COMMAND_TIMEOUT)
            s.connect(str(setup.socket_path))
            return _converse(s, command)
    except OSError as exc:
        if command == "dump":
            raise Fatal(f"Error: cannot reach the driver at {setup.socket_path}: "
                        f"{exc.strerror or exc}") from None
        try:
            pid = int(setup.pid_file.read_text().split()[0])
            os.kill(pid, _SIGNALS[command])
        except (OSError, ValueError, IndexError):
            raise Fatal(f"Error: no driver for UPS [{setup.ups}] is running (no {setup.socket_path}, "
                        f"no {setup.pid_file})") from None
        return 0


def _converse(s: socket.socket, command: str) -> int:
    reader = sock.DriverReader()
    if command == "dump":
        s.sendall(sock.DUMPALL)
        out: list[str] = []
        while True:
            data = s.recv(65536)
            if not data:
                return 1
            for ev in reader.feed(data):
                if isinstance(ev, sock.SetInfo):
                    out.append(f"{ev.var}: {ev.value}")
                elif isinstance(ev, sock.DumpDone):
                    print("\n".join(out))
                    s.sendall(sock.LOGOUT)
                    return 0
    tid = str(uuid.uuid4()).upper()
    s.sendall(sock.NOBROADCAST + sock.instcmd(_COMMANDS[command], None, tid))
    while True:
        data = s.recv(65536)
        if not data:
            return 0 if command == "exit" else 1
        for ev in reader.feed(data):
            if isinstance(ev, sock.Tracking) and ev.id == tid:
                with contextlib.suppress(OSError):
                    s.sendall(sock.LOGOUT)
                if ev.code != 0:
                    sys.stderr.write(f"{command}: the driver answered {_status_name(ev.code)}\n")
                return 0 if ev.code == 0 else 1


def _status_name(code: int) -> str:
    try:
        return Status(code).name
    except ValueError:
        return str(code)


# ---- main -----------------------------------------------------------------------------------------

def _setup_logging(o: Options) -> None:
    level = logging.INFO - 10 * o.debug + 10 * o.quiet
    logging.basicConfig(level=max(logging.DEBUG, min(logging.CRITICAL, level)), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str], progname: str | None = None) -> int:
    """``nutbridge driver ARGS`` (``progname`` None) or a link named like a driver."""
    signal.signal(signal.SIGTERM, _early_exit)
    prog = progname or "nutbridge driver"
    try:
        o = parse_args(argv)
    except Fatal as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    progname = o.name or progname
    if o.help:
        natives = ", ".join(n for n in known_drivers() if is_native(n))
        sys.stdout.write(USAGE.format(prog=progname or prog, drivers=natives))
        return 0
    if o.version:
        print(f"Network UPS Tools - {progname or 'nutbridge driver'} (NUT Bridge {__version__}, "
              f"native driver)")
        return 0
    _setup_logging(o)
    try:
        if o.list_options:
            if not progname or not is_native(progname):
                raise Fatal("Error: -L needs the driver's name (a link named like it, or --name)")
            for opt in sorted(driver_class(progname, {}).options):
                print(f"VAR {opt}")
            return 0
        setup = load_setup(o, progname)
        if o.command is not None:
            return send_command(setup, o.command)
        drv = make_driver(setup)
        if not o.quiet:
            sys.stderr.write(f"Network UPS Tools - {setup.progname} (NUT Bridge {__version__}, "
                             f"native driver {drv.version})\n")
        if o.killpower:
            return asyncio.run(killpower(drv))
        if o.dump_loops is not None:
            return asyncio.run(dump_data(drv, o.dump_loops))
        return run(setup, o, drv)
    except Fatal as exc:
        sys.stderr.write(f"{exc}\n")
        return 1


def run(setup: Setup, o: Options, drv: Driver) -> int:
    """The driver process: privileges, background, PID file, serve."""
    foreground = o.foreground > 0 or (o.debug > 0 and not o.background)
    pid_file = not foreground or o.foreground > 1
    if len(os.fsencode(str(setup.socket_path))) > 107:
        raise Fatal(f"Error: socket path {setup.socket_path} is too long for a Unix socket")
    gid = drop_privileges(setup, o.chroot)
    try:
        os.chdir(setup.statepath)
    except OSError as exc:
        raise Fatal(f"Error: can't chdir to {setup.statepath}: {exc.strerror}") from None
    if not foreground:
        code = background()
        if code is not None:
            return code  # the parent
    signal.signal(signal.SIGQUIT, _early_exit)
    signal.signal(signal.SIGINT, _early_exit)
    for sig in (signal.SIGHUP, signal.SIGUSR1):  # until the event loop takes them (reload)
        signal.signal(sig, signal.SIG_IGN)
    try:
        if pid_file:
            write_pid_file(setup.pid_file)
        return asyncio.run(serve(setup, o, drv, gid))
    finally:
        if pid_file:
            remove_pid_file(setup.pid_file)


__all__ = ["Fatal", "Options", "Setup", "load_setup", "main", "parse_args"]
