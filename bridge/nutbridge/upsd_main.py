"""``nutbridge upsd``: NUT's upsd in an existing install, serving drivers that others started.

A drop-in for the C ``upsd`` (docs/upsd-role.md): the same command line (``-F``, ``-FF``, ``-B``,
``-D``, ``-q``, ``-u user``, ``-4``/``-6``, ``-c reload|stop`` with ``-P pid``, ``-V``, ``-h``; the
deprecated ``-p``/``-i`` are fatal), the same files (``$NUT_CONFPATH``/upsd.conf, upsd.users, and
ups.conf only for the list of UPS: a section with ``driver`` and ``port`` is served from the
socket ``<STATEPATH>/<driver>-<section>``), the same PID file (``<altpidpath>/upsd.pid``, written
in the background and with ``-FF``) and the same exit codes: 1 for a fatal start-up error (no
upsd.conf, ups.conf or upsd.users, no complete UPS without ALLOW_NO_DEVICE, no listener), 0 after
SIGTERM/SIGINT/SIGQUIT; SIGHUP (or ``-c reload``) re-reads the files but LISTEN.

It runs no driver: each section is attached (the external driver family's ``attach`` mode) to
the driver that upsdrvctl or systemd's nut-driver@ started, as the C upsd does: ``ERR
DRIVER-NOT-CONNECTED`` while its socket does not answer, ``WAIT`` until the first dump, ``ERR
DATA-STALE`` per MAXAGE. Everything else is the bridge's upsd, built by the composition root
(:mod:`nutbridge.serve`) with :attr:`~nutbridge.serve.BridgeConfig.attach` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import getopt
import logging
import logging.handlers
import os
import pwd
import signal
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__, sdnotify
from .config.parser import ConfigError, Entry, read_entries
from .config.ups_conf import UpsConf, UpsSection
from .config.upsd_conf import UpsdConf, parse_upsd_conf
from .config.users import Users, parse_users
from .serve import AttachSettings, Bridge, BridgeConfig
from .server.core import NUT_COMPAT
from .server.main import run_event_loop, status_line
from .server.upsd import ListenError

log = logging.getLogger("nutbridge")

# Debian's compiled-in defaults (the paths and user of the nut-server package)
DEFAULT_CONFPATH = "/etc/nut"
DEFAULT_STATEPATH = "/run/nut"
DEFAULT_USER = "nut"
PID_NAME = "upsd.pid"
BANNER = f"Network UPS Tools upsd {NUT_COMPAT} (NUT Bridge {__version__})"

HELP = f"""\
{BANNER}
NUT network data server: serves the drivers that upsdrvctl or systemd started.

usage: nutbridge upsd [OPTIONS]

  -c <command>\tsignal the running upsd (found by its PID file) and exit
\t\tcommands:
\t\t - reload: read the configuration files again
\t\t - stop: stop it
  -P <pid>\tsignal this process instead of the one in the PID file
  -D\t\tmore debug output (and stay in the foreground unless -B)
  -F\t\tstay in the foreground
  -FF\t\tstay in the foreground and write the PID file anyway
  -B\t\tgo to the background even with -D
  -h\t\tthis help
  -V\t\tthe version
  -r <dir>\tchroot into <dir> (not supported: refused)
  -q\t\tless log output
  -u <user>\trun as <user> when started as root (default: {DEFAULT_USER})
  -4\t\tIPv4 only
  -6\t\tIPv6 only

Files: $NUT_CONFPATH (default {DEFAULT_CONFPATH}) holds upsd.conf, upsd.users and ups.conf; driver
sockets are in upsd.conf's STATEPATH, else $NUT_STATEPATH, else {DEFAULT_STATEPATH}; the PID file is
$NUT_ALTPIDPATH/{PID_NAME} (else $NUT_STATEPATH, else {DEFAULT_STATEPATH}).
See docs/upsd-role.md.
"""

DEPRECATED = """\
Specifying a listening address with '-i <address>' and '-p <port>'
is deprecated: use 'LISTEN <address> [<port>]' in upsd.conf instead.
"""


class Fatal(Exception):
    """A start-up error: printed as upsd prints it, exit code 1."""


@dataclass
class Options:
    foreground: int | None = None  # None: not given (-D then implies the foreground); 2: -FF
    debug: int = 0
    quiet: int = 0
    user: str | None = None
    command: str | None = None
    pid: int | None = None
    chroot: str | None = None
    family: int = 0

    @property
    def stay_foreground(self) -> bool:
        if self.foreground is None:
            return self.debug > 0
        return self.foreground > 0

    @property
    def pid_file_wanted(self) -> bool:
        return not self.stay_foreground or self.foreground == 2


def parse_args(argv: list[str]) -> Options | int:
    """upsd's options (``+h46p:qr:i:fu:Vc:P:DFB``), in order; an int is the exit code to return
    at once (help and version: 0; like upsd, an unknown option or argument prints the help
    and exits 0; -p/-i: 1)."""
    opts = Options()
    try:
        pairs, rest = getopt.getopt(argv, "h46p:qr:i:fu:Vc:P:DFB")
    except getopt.GetoptError as exc:
        sys.stderr.write(f"nutbridge upsd: {exc.msg}\n")
        sys.stdout.write(HELP)
        return 0
    for flag, value in pairs:
        if flag == "-h":
            sys.stdout.write(HELP)
            return 0
        if flag == "-V":
            print(BANNER)
            return 0
        if flag in ("-p", "-i"):
            sys.stderr.write(DEPRECATED)
            return 1
        if flag == "-F":
            opts.foreground = 2 if opts.foreground == 1 else 1
        elif flag == "-B":
            opts.foreground = 0
        elif flag == "-D":
            opts.debug += 1
        elif flag == "-q":
            opts.quiet += 1
        elif flag == "-u":
            opts.user = value
        elif flag == "-r":
            opts.chroot = value
        elif flag == "-4":
            opts.family = socket.AF_INET
        elif flag == "-6":
            opts.family = socket.AF_INET6
        elif flag == "-c":
            if value not in ("reload", "stop"):
                sys.stderr.write(f"nutbridge upsd: unknown command '{value}' for -c (reload, stop)\n")
                sys.stdout.write(HELP)
                return 0
            opts.command = value
        elif flag == "-P":
            try:
                opts.pid = int(value)
            except ValueError:
                sys.stderr.write(f"nutbridge upsd: -P expects a process id, not '{value}'\n")
                return 1
        # -f: an old upsd option without effect, accepted
    if rest:
        sys.stderr.write(f"nutbridge upsd: unexpected argument '{rest[0]}'\n")
        sys.stdout.write(HELP)
        return 0
    return opts


# ---- paths ------------------------------------------------------------------------------------


def _env_path(*names: str) -> str | None:
    for name in names:
        if value := os.environ.get(name):
            return value
    return None


def confpath() -> Path:
    return Path(_env_path("NUT_CONFPATH") or DEFAULT_CONFPATH).absolute()


def pid_path() -> Path:
    """``<altpidpath>/upsd.pid``, altpidpath as NUT's: $NUT_ALTPIDPATH, else $NUT_STATEPATH, else
    the default state path."""
    return Path(_env_path("NUT_ALTPIDPATH", "NUT_STATEPATH") or DEFAULT_STATEPATH) / PID_NAME


def statepath(conf: UpsdConf) -> str:
    """Where the drivers' sockets are: upsd.conf's STATEPATH wins over $NUT_STATEPATH (as the
    C upsd, which reads it after the environment), then the default."""
    return conf.statepath or _env_path("NUT_STATEPATH") or DEFAULT_STATEPATH


# ---- -c reload|stop ------------------------------------------------------------------------


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_running(command: str, pid: int | None) -> int:
    """``-c reload|stop``: SIGHUP or SIGTERM to ``pid`` (``-P``) or the PID file's process."""
    sig = signal.SIGHUP if command == "reload" else signal.SIGTERM
    if pid is None:
        pid = read_pid(pid_path())
        if pid is None:
            sys.stderr.write(f"nutbridge upsd: no running upsd found (no PID in {pid_path()})\n"
                             "Failed to signal the currently running daemon (if any); try "
                             "'systemctl reload nut-server.service' or add '-P $PID'\n")
            return 1
    try:
        os.kill(pid, sig)
    except OSError as exc:
        sys.stderr.write(f"nutbridge upsd: cannot signal process {pid}: {exc.strerror}\n")
        return 1
    return 0


# ---- configuration ---------------------------------------------------------------------------


def _value(words: tuple[str, ...]) -> str:
    # "key = value", "key=value", "key value" or a bare flag "key"
    if len(words) >= 2 and words[1] == "=":
        return " ".join(words[2:])
    return " ".join(words[1:])


def read_ups_conf(path: Path) -> UpsConf:
    """ups.conf as upsd reads it: only the list of UPS. A section needs ``driver`` and ``port``
    (else "Warning: ignoring incomplete configuration for UPS [x]"); of two sections whose names
    differ only in case the later one is served (the C upsd walks the sections from the last,
    "UPS name [x] is already in use!"); nothing else is checked (drivers read their own
    options). Raises ConfigError when the file is missing or unreadable."""
    entries: list[Entry] = read_entries(path)
    conf = UpsConf(path)
    found: list[UpsSection] = []
    current: UpsSection | None = None
    for e in entries:
        first = e.words[0]
        if first.startswith("["):
            if not first.endswith("]") or len(e.words) != 1 or len(first) < 3:
                raise e.error(path, f"bad section header {' '.join(e.words)!r}")
            current = UpsSection(first[1:-1], e.line)
            found.append(current)
            continue
        key, value = first.lower(), _value(e.words)
        if current is None:
            conf.globals[key] = value
        else:
            current.options.setdefault(key, value)
            current.lines.setdefault(key, e.line)
    kept: set[int] = set()
    names: set[str] = set()
    for s in reversed(found):
        if not s.options.get("driver") or not s.options.get("port"):
            log.warning("Warning: ignoring incomplete configuration for UPS [%s]", s.name)
        elif s.name.lower() in names:
            log.warning("UPS name [%s] is already in use!", s.name)
        else:
            names.add(s.name.lower())
            kept.add(id(s))
    conf.sections = [s for s in found if id(s) in kept]
    return conf


def _env_bool(name: str) -> bool | None:
    v = os.environ.get(name)
    if v is None:
        return None
    return v.strip().lower() in ("1", "true", "yes", "on")


def read_upsd_conf(confdir: Path) -> UpsdConf:
    path = confdir / "upsd.conf"
    if not path.is_file():
        raise Fatal(f"stat {path}: No such file or directory")
    conf = parse_upsd_conf(path)
    env_allow = _env_bool("ALLOW_NO_DEVICE")  # the environment wins, as upstream
    if env_allow is not None:
        conf.allow_no_device = env_allow
    return conf


def read_users(confdir: Path) -> Users:
    """upsd.users; unlike ``nutbridge serve`` a missing file is fatal, as for the C upsd."""
    path = confdir / "upsd.users"
    if not path.is_file():
        raise Fatal(f"stat {path}: No such file or directory")
    return parse_users(path)


def load(confdir: Path) -> BridgeConfig:
    """The files upsd reads, in its order; Fatal or ConfigError when it would not start."""
    upsd = read_upsd_conf(confdir)
    ups_path = confdir / "ups.conf"
    if not ups_path.is_file():
        raise Fatal(f"Can't open {ups_path}: No such file or directory")
    ups = read_ups_conf(ups_path)
    if not ups.sections:
        if not upsd.allow_no_device:
            raise Fatal("Fatal error: at least one UPS must be defined in ups.conf")
        log.warning("Warning: no UPS definitions in ups.conf")
    users = read_users(confdir)
    state = statepath(upsd)
    if not os.path.isdir(state):
        raise Fatal(f"Can't chdir to {state}: No such file or directory")
    ups.maxage, ups.statepath = upsd.maxage, os.path.abspath(state)  # not read again by ups.conf
    if upsd.auto_tls is None:  # the C upsd offers STARTTLS only with a CERTFILE
        upsd.auto_tls = False
    return BridgeConfig(ups, upsd, users, confdir, sections=list(ups.sections),
                        zeroconf=False, monitor=False, hooks=False,
                        attach=AttachSettings(os.path.abspath(state), upsd.maxage))


# ---- privileges, background, PID file --------------------------------------------------------


def target_user(opts: Options) -> pwd.struct_passwd | None:
    """The account to switch to once listening: -u's, else ``nut``; None unless root."""
    if os.geteuid() != 0:
        if opts.user:
            log.debug("not root: -u %s has no effect", opts.user)
        return None
    name = opts.user or DEFAULT_USER
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise Fatal(f"Fatal error: user {name} not found (use -u <user>)") from None


def drop_privileges(pw: pwd.struct_passwd, hand_over: list[Path]) -> None:
    """Become ``pw`` for good; the files in ``hand_over`` (the event history's directory and
    what is in it) are given to it first, so it can keep writing there."""
    if pw.pw_uid == os.getuid() == os.geteuid():
        return
    for path in hand_over:
        with contextlib.suppress(OSError):
            os.chown(path, pw.pw_uid, pw.pw_gid)
            if path.is_dir():
                for child in path.iterdir():
                    os.chown(child, pw.pw_uid, pw.pw_gid)
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    log.debug("running as %s", pw.pw_name)


def already_running() -> int | None:
    """The PID of a live upsd named by the PID file (not us), as upsd checks before starting."""
    pid = read_pid(pid_path())
    if pid is None or pid == os.getpid() or not _alive(pid):
        return None
    return pid


def write_pid_file() -> Path | None:
    path = pid_path()
    try:
        path.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        log.warning("cannot write PID file %s: %s", path, exc.strerror)
        return None
    return path


def daemonize() -> int | None:
    """Fork into the background. In the parent: wait until the child is listening (0) or has
    failed (its exit code) and return that; in the child: None. The child keeps the terminal
    until :func:`ready`, so start-up errors (a port in use...) are still seen, as upsd's are."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(wfd)
        with os.fdopen(rfd, "rb") as r:
            ok = r.read(1) == b"\0"
        if ok:
            return 0
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) or 1
    os.close(rfd)
    os.setsid()
    global _ready_fd
    _ready_fd = wfd
    return None


_ready_fd: int | None = None


def ready() -> None:
    """Background mode, once listening: tell the waiting parent, leave the terminal
    (stdin/stdout/stderr to /dev/null) and log to syslog from now on."""
    global _ready_fd
    if _ready_fd is None:
        return
    root = logging.getLogger()
    try:
        handler: logging.Handler = logging.handlers.SysLogHandler(
            "/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON)
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("upsd[%(process)d]: %(message)s"))
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    with contextlib.suppress(OSError):
        os.write(_ready_fd, b"\0")
        os.close(_ready_fd)
    _ready_fd = None


# ---- running ----------------------------------------------------------------------------------


async def _serve(cfg: BridgeConfig, opts: Options, pw: pwd.struct_passwd | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_stop(sig: int) -> None:
        received.append(sig)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        loop.add_signal_handler(sig, on_stop, sig)
    try:
        bridge = Bridge(cfg, opts.family)
    except ConfigError as exc:
        sys.stderr.write(f"Fatal error: {exc}\n")
        return 1
    try:
        await bridge.start()
    except ListenError as exc:
        log.error("Fatal error: %s", exc)
        return 1
    pid_file = write_pid_file() if opts.pid_file_wanted else None
    if pid_file is None and opts.stay_foreground:
        log.info("Running as foreground process, not saving a PID file")
    if pw is not None:
        state_dir = bridge.state.path
        try:
            drop_privileges(pw, [state_dir] if state_dir is not None else [])
        except OSError as exc:
            log.error("Fatal error: cannot switch to user %s: %s", pw.pw_name, exc.strerror)
            await bridge.stop()
            return 1
    loop.add_signal_handler(signal.SIGHUP, _reload, bridge)
    ready()
    if not stop.is_set():
        log.info("%s serving %d UPS (config %s, driver sockets in %s)", BANNER, len(bridge.devices),
                 cfg.confdir, cfg.attach.statepath if cfg.attach else "?")
        # as NUT's upsd built with libsystemd (nut-server.service, Type=notify): ready when listening
        sdnotify.ready(status_line(bridge))
        await stop.wait()
    log.info("Signal %d: exiting", received[0] if received else signal.SIGTERM)
    sdnotify.stopping()
    await bridge.stop()
    if pid_file is not None:
        with contextlib.suppress(OSError):
            pid_file.unlink()
    return 0


_reloads: set[asyncio.Task[None]] = set()


def _reload(bridge: Bridge) -> None:
    """SIGHUP: systemd sees RELOADING=1 now and READY=1 once the files are applied or refused."""
    sdnotify.reloading()
    if not _reload_files(bridge):
        sdnotify.ready(status_line(bridge))


def _reload_files(bridge: Bridge) -> bool:
    """upsd.conf (all but LISTEN and TLS), upsd.users and ups.conf again. True when a task
    applying ups.conf was started (it sends READY=1), False when the reload is over."""
    cfg = bridge.cfg
    assert cfg.confdir is not None
    log.info("SIGHUP: reloading configuration")
    try:
        upsd = read_upsd_conf(cfg.confdir)
        ups = read_ups_conf(cfg.confdir / "ups.conf")
        users = read_users(cfg.confdir)
    except (ConfigError, Fatal) as exc:
        log.error("reload failed, keeping the running configuration: %s", exc)
        return False
    running = cfg.upsd  # the object the server reads: update it in place
    for name in ("maxage", "trackingdelay", "statepath", "allow_no_device", "allow", "debug_min"):
        setattr(running, name, getattr(upsd, name))
    bridge.core.users = users
    if bridge.core.hosts_access is not None:
        bridge.core.hosts_access.reload()
    cfg.attach = AttachSettings(os.path.abspath(statepath(upsd)), upsd.maxage)
    ups.maxage, ups.statepath = cfg.attach.maxage, cfg.attach.statepath

    async def apply() -> None:
        try:
            await bridge.reload_ups(ups)
        except ConfigError as exc:
            log.error("ups.conf not applied, keeping the running UPS: %s", exc)
            return
        finally:
            sdnotify.ready(status_line(bridge))
        bridge.history.record("server", None, "configuration reloaded")

    task = asyncio.get_running_loop().create_task(apply(), name="reload")
    _reloads.add(task)
    task.add_done_callback(_reloads.discard)
    return True


def _early_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _setup_logging(opts: Options, debug_min: int = 0) -> None:
    level = logging.INFO - 10 * max(opts.debug, debug_min) + 10 * opts.quiet
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(max(logging.DEBUG, min(logging.CRITICAL, level)))


def main(argv: list[str]) -> int:
    # Until the event loop takes the signals over, a SIGTERM ends start-up with exit 0 and a
    # SIGHUP (a reload asked for too early) is ignored rather than fatal.
    signal.signal(signal.SIGTERM, _early_exit)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parsed = parse_args(argv)
    if isinstance(parsed, int):
        return parsed
    opts = parsed
    print(BANNER, flush=True)
    if opts.command is not None:
        return signal_running(opts.command, opts.pid)
    _setup_logging(opts)
    try:
        if opts.chroot is not None:
            raise Fatal("Fatal error: -r (chroot) is not supported by nutbridge upsd")
        if (pid := already_running()) is not None:
            raise Fatal(f"Fatal error: A previous upsd instance is already running (PID {pid})!\n"
                        "Either stop the previous instance first, or use the 'reload' command.")
        cfg = load(confpath())
        pw = target_user(opts)
    except Fatal as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    except ConfigError as exc:
        sys.stderr.write(f"Fatal error: {exc}\n")
        return 1
    if cfg.upsd.debug_min:
        _setup_logging(opts, cfg.upsd.debug_min)
    assert cfg.attach is not None
    os.chdir(cfg.attach.statepath)  # as upsd: the drivers' sockets are relative to it
    if not opts.stay_foreground:
        rc = daemonize()
        if rc is not None:
            return rc
    try:
        return run_event_loop(_serve(cfg, opts, pw))
    except ssl.SSLError as exc:
        log.error("Fatal error: %s: CERTFILE %s: %s", cfg.upsd.path, cfg.upsd.certfile, exc)
        return 1
    except OSError as exc:
        log.error("Fatal error: %s", exc)
        return 1
    except KeyboardInterrupt:
        return 0
