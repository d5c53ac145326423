"""``nutbridge upssched``: the client upsmon runs as NOTIFYCMD, and the timer daemon.

Client (one run per notification): reads ``UPSNAME``/``NOTIFYTYPE`` from the
environment and upssched.conf (``$NUT_CONFPATH``), then carries out each matching
AT line in order: EXECUTE runs ``CMDSCRIPT <command>`` itself and waits for it;
START-TIMER/CANCEL-TIMER go to the timer daemon over the PIPEFN Unix socket in
upstream's wire format, and the client waits for its ``OK``.

Starting the daemon: when PIPEFN has no listener (missing, or a stale socket
file), the client takes an ``flock`` on LOCKFN, checks again, binds and listens on
PIPEFN *itself*, then forks the daemon with that socket. So the socket listens
before the lock is released and the concurrent callers waiting on the lock find
it: exactly one daemon, and no request lost. Upstream uses ``O_EXCL`` creation of
LOCKFN, which a crash leaves behind; an ``flock`` dies with its holder, so a stale
LOCKFN file costs nothing (the file is left in place; upstream's client, finding
it, removes it and retries after 250 ms).

Daemon: one process, a select loop. Timers fire on time (not on upstream's 1 s
tick) and run ``/bin/sh -c "CMDSCRIPT <timername>"`` as upstream's ``system()``
does, with the UPSNAME/NOTIFYTYPE/NOTIFYMSG of the calls that started the timer
(NUT 2.8.5), without waiting for it, so a slow script never delays another timer or a
client. The timers are written to ``PIPEFN.timers`` on each change, so a daemon
killed with -9 loses nothing: the next call's daemon takes them over (upstream's
are gone with the process). It exits, removing PIPEFN, after 15 s without timers.

Options are NUT 2.8.5's (``-D``, ``-V``, ``-h``, ``-l``), parsed as its getopt
``+DVhl`` does: they stop at the first other argument, which is upsmon's message.
``-l`` asks the daemon for its timers (``LIST-TIMERS``) and prints them as 2.8.5 does;
``-D`` (and ``NUT_DEBUG_LEVEL``, ``DEBUG_MIN``) prints what happens on stderr, which
a daemon started then keeps, as 2.8.5's does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import socket
import stat
import subprocess
import sys
import syslog
import time
from dataclasses import dataclass

from .. import __version__
from ..config.parser import ConfigError
from ..protocol.tokenizer import Line, Tokenizer
from .config import UpsschedConf, confpath, parse_upssched_conf
from .plan import (
    Action,
    Caller,
    Cancel,
    Execute,
    ListTimers,
    Start,
    Timers,
    actions_for,
    decode,
    encode,
    needs_daemon,
    parse_listing,
)

MAX_TRIES = 30  # as upstream: 30 rounds of 250 ms before giving up
RETRY_SLEEP = 0.25
REPLY_TIMEOUT = 5.0  # for the daemon's OK (upstream waits forever)
EMPTY_WAIT = 15.0  # idle seconds without timers before the daemon exits (upstream: 15 passes of 1 s)
RESTORE_GRACE = 1.0  # an inherited overdue timer fires this long after the takeover
MAX_LINE = 1024  # a client sending more without a newline is dropped
MAX_CLIENTS = 64
MAX_LISTING = 1 << 20  # -l: a daemon's answer longer than this is refused, not kept growing
CLIENT_TIMEOUT = 10.0  # a connection is dropped this long after it was accepted

NUT_RELEASE = "2.8.5"  # whose upssched this one is (options, messages, -l format)
# 2.8.5's "upssched -h", byte for byte ({prog}: the name it runs under)
HELP = """\
upssched: upsmon's scheduling helper for offset timers
Practical behavior is managed by UPSNAME and NOTIFYTYPE envvars

Usage: {prog} [OPTIONS] [NOTIFYMSG]

  -D\t\traise debugging level (NOTE: keeps reporting when daemonized)
  -V\t\tdisplay the version of this software
  -h\t\tdisplay this help
  -l\t\tdisplay currently pending timers (if any)

For more information please Read The Fine Manual ('man 8 upssched') and/or see
\thttps://www.networkupstools.org/historic/v2.8.5/docs/man/upssched.html
Also check documentation and samples of upsmon.conf
"""


class _Debug:
    """The debug level (-D, NUT_DEBUG_LEVEL, DEBUG_MIN) and the start time of the
    ``seconds.micros<TAB>`` stamps, which a forked daemon carries on as 2.8.5's does."""

    level = 0
    started = time.monotonic()


def _stderr(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # a closed or full stderr never stops us
        sys.stderr.write(f"{time.monotonic() - _Debug.started:11.6f}\t{text}\n")
        sys.stderr.flush()


def debug(level: int, text: str) -> None:
    if _Debug.level >= level:
        _stderr(f"[D{level}] {text}")


def _log(prio: int, text: str) -> None:
    syslog.openlog("upssched", syslog.LOG_PID, syslog.LOG_DAEMON)
    syslog.syslog(prio, text)
    if _Debug.level > 0:  # 2.8.5 then also writes its log lines to stderr
        _stderr(text)


def state_file(conf: UpsschedConf) -> str:
    return conf.pipefn + ".timers"


#: what the daemon's own environment must not pass on (2.8.5 clears them: a timer gets its own)
CALLER_VARS = ("UPSNAME", "NOTIFYTYPE", "NOTIFYMSG")


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in CALLER_VARS}


def run_cmdscript(cmdscript: str, arg: str, wait: bool, env: dict[str, str] | None = None) -> None:
    """``system("CMDSCRIPT arg")`` as upstream: one shell line, words split by the shell."""
    argv = ["/bin/sh", "-c", f"{cmdscript} {arg}"]
    try:
        if wait:
            rc = subprocess.run(argv, stdin=subprocess.DEVNULL, check=False, env=env).returncode
            if rc:
                _log(syslog.LOG_INFO, f"exec_cmd({cmdscript} {arg}) returned {rc}")
        else:
            subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, close_fds=True, env=env)
    except OSError as exc:
        _log(syslog.LOG_ERR, f"Execute command failure: {cmdscript} {arg}: {exc}")


# ---- client ---------------------------------------------------------------------------------

def _connect(path: str) -> socket.socket | None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    return s


def _exchange(s: socket.socket, request: bytes) -> bool:
    """Send one request, True on the daemon's OK."""
    debug(2, f"sending {request!r}")
    with s:
        try:
            s.settimeout(REPLY_TIMEOUT)
            s.sendall(request)
            reply = s.recv(256)
        except OSError as exc:
            debug(2, f"no answer: {exc}")
            return False
    debug(2, f"answer {reply!r}")
    return reply.startswith(b"OK")


class _Lock:
    """An flock on LOCKFN, given up after ``timeout`` seconds of waiting."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path, self.timeout = path, timeout
        self.fd = -1

    def __enter__(self) -> bool:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the flock


def _listen(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a stale socket (nobody answered on it, and we hold the lock)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o007)
    try:
        s.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o660)
    s.listen(16)
    return s


def _start_daemon(conf: UpsschedConf, lock_fd: int) -> None:
    """Bind PIPEFN here, then fork the daemon (twice: it is nobody's child) with it.

    The daemon closes its copy of ``lock_fd``: an flock belongs to the open file, so
    a copy kept open would hold the lock for the daemon's whole life."""
    listener = _listen(conf.pipefn)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        listener.close()
        os.waitpid(pid, 0)
        return
    code = 0
    try:
        os.close(lock_fd)
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        # with -D the daemon keeps reporting on the caller's stderr, as 2.8.5's does
        for fd in (0, 1) if _Debug.level else (0, 1, 2):
            os.dup2(null, fd)
        debug(1, f"Keeping stderr open due to debug verbosity {_Debug.level}")
        # keep nothing else of the caller's (upsmon's sockets or pipes) for the daemon's life
        syslog.closelog()  # its socket is among them: never let libc write to a reused number
        lfd = listener.fileno()
        os.closerange(3, lfd)
        os.closerange(lfd + 1, os.sysconf("SC_OPEN_MAX"))
        Daemon(conf, listener).run()
    except BaseException as exc:  # nothing may escape into the caller's stack (a forked copy of it)
        with contextlib.suppress(Exception):
            _log(syslog.LOG_ERR, f"timer daemon failed: {exc!r}")
        code = 1
    os._exit(code)


def send(conf: UpsschedConf, action: Start | Cancel, caller: Caller) -> bool:
    """Hand one request to the daemon, starting it if needed (upstream's sendcmd)."""
    try:
        return _send(conf, encode(action, caller), needs_daemon(action))
    except OSError as exc:  # LOCKFN/PIPEFN unusable: a missing directory, no permission
        sys.stderr.write(f"upssched: cannot reach or start the timer daemon: {exc}\n")
        _log(syslog.LOG_ERR, f"cannot reach or start the timer daemon: {exc}")
        return False


def _send(conf: UpsschedConf, request: bytes, needed: bool) -> bool:
    for _ in range(MAX_TRIES):
        s = _connect(conf.pipefn)
        if s is not None:
            if _exchange(s, request):
                return True
            time.sleep(RETRY_SLEEP)  # a daemon exiting just now: try again
            continue
        if not needed and not os.path.exists(state_file(conf)):
            return True  # nothing runs, so nothing to cancel
        lock = _Lock(conf.lockfn, MAX_TRIES * RETRY_SLEEP)
        with lock as locked:
            if not locked:
                continue
            s = _connect(conf.pipefn)
            if s is None:
                _start_daemon(conf, lock.fd)
                continue
        if _exchange(s, request):
            return True
    _log(syslog.LOG_ERR, "Unable to connect to daemon and unable to start daemon")
    return False


@dataclass
class Options:
    debug: int = 0  # how many -D
    list_timers: bool = False  # -l
    message: str = ""  # upsmon's message, the first argument after the options


def parse_options(argv: list[str], argv0: str) -> Options | int:
    """2.8.5's options, or the exit code once -h, -V or a bad option has been answered.

    As its getopt ``+DVhl``: options end at the first other argument (or ``--``), each
    letter acts in turn (``-Dh`` helps, ``-Zh`` fails on Z) and a bad one is named by
    glibc's line and 2.8.5's own. The message is the argument after the options: 2.8.5
    counts option letters instead, so after ``-DD`` or ``--`` it loses or misreads it."""
    opts = Options()
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        i += 1
        if argv[i - 1] == "--":
            break
        for c in argv[i - 1][1:]:
            if c == "D":
                opts.debug += 1
            elif c == "l":
                opts.list_timers = True
            elif c == "h":
                sys.stdout.write(HELP.format(prog=os.path.basename(argv0)))
                return 0
            elif c == "V":
                # 2.8.5 prints nothing here (its version report waits for a debug level that
                # -V never reaches); ours says what it is, as NUT's other tools' -V do
                print(f"Network UPS Tools upssched (nutbridge {__version__}, NUT {NUT_RELEASE} compatible)")
                return 0
            else:
                sys.stderr.write(f"{argv0}: invalid option -- '{c}'\n"
                                 "Error: unknown option -?. Try -h for help.\n")
                return 1
    opts.message = argv[i] if i < len(argv) else ""
    return opts


def _debug_level(opts: Options) -> int:
    """-D, else NUT_DEBUG_LEVEL (2.8.5 says so on stderr)."""
    env = os.environ.get("NUT_DEBUG_LEVEL", "").strip()
    if opts.debug < 1 and env.lstrip("+-").isdigit() and int(env) > 0:
        sys.stderr.write(f"Defaulting debug verbosity to NUT_DEBUG_LEVEL={int(env)} "
                         "since none was requested by command-line options\n")
        return int(env)
    return opts.debug


def _describe(action: Action) -> str:
    if isinstance(action, Start):
        what = "START-TIMER-SHARED" if action.shared else "START-TIMER"
        return f"{what}\t[{action.name}]\t[{action.seconds}]"
    if isinstance(action, Cancel):
        what = "CANCEL-TIMER-MATCHED" if action.matched else "CANCEL-TIMER"
        return f"{what}\t[{action.name}]\t[{action.command or ''}]"
    return f"EXECUTE\t[{action.command}]"


def list_timers(conf: UpsschedConf, caller: Caller) -> int:
    """``upssched -l``: the daemon's timers on stdout, as 2.8.5 prints them. No daemon is
    started for it: none running is an error (exit 1), as there."""
    if not conf.pipefn:
        sys.stderr.write("upssched.conf: invalid configuration for timer listing: lacks PIPEFN\n")
        return 1
    debug(1, f"listing the timers of the daemon on {conf.pipefn}")
    s = _connect(conf.pipefn)
    if s is None:
        sys.stderr.write("upssched timer is not running\n")
        return 1
    data = b""
    with s:
        try:
            s.settimeout(REPLY_TIMEOUT)
            s.sendall(encode(ListTimers(), caller))
            # to the OK after the list, or the first line of anything else (2.8.0: ERR UNKNOWN)
            while (parse_listing(data) is None and len(data) < MAX_LISTING
                   and (data.startswith(b"BEGIN") or b"\n" not in data)):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            debug(1, f"listing: {exc}")
    debug(2, f"answer {data!r}")
    text = parse_listing(data)
    if text is None:
        sys.stderr.write("Unable to connect to daemon or connection was broken during listing\n")
        _log(syslog.LOG_ERR, f"timer listing failed, the daemon answered {data[:80]!r}")
        return 1
    sys.stdout.write(text)
    return 0


def main(argv: list[str], argv0: str = "upssched") -> int:
    """``argv0``: the name it was run as (a link called upssched: cli.py), for messages."""
    opts = parse_options(argv, argv0)
    if isinstance(opts, int):
        return opts
    _Debug.level = _debug_level(opts)
    upsname, ntype = os.environ.get("UPSNAME"), os.environ.get("NOTIFYTYPE")
    if not opts.list_timers and (upsname is None or ntype is None):
        print("Error: environment variables UPSNAME and NOTIFYTYPE must be set.\n"
              "This program should only be run from upsmon(8).")
        return 1
    debug(1, f"Handling NOTIFYTYPE='{ntype if ntype is not None else '(null)'}' "
             f"for UPSNAME='{upsname if upsname is not None else '(null)'}'")
    debug(1, f"Got a NOTIFYMSG from command line: {opts.message}" if opts.message
          else "Did not get any NOTIFYMSG from command line")
    try:
        conf = parse_upssched_conf(confpath())
    except ConfigError as exc:
        sys.stderr.write(f"upssched: {exc}\n")
        _log(syslog.LOG_ERR, str(exc))
        return 2
    if conf.debug_min > _Debug.level:
        _Debug.level = conf.debug_min
        debug(1, f"Applying debug_min={conf.debug_min} from upssched.conf")  # 2.8.5's words
    caller = Caller(ntype or "", upsname or "", opts.message)  # upsmon's message: NOTIFYMSG
    if opts.list_timers:  # only the timers: the AT lines are not acted on, as 2.8.5
        return list_timers(conf, caller)
    ok = True
    for action in actions_for(conf, caller.notifytype, caller.upsname):
        debug(1, f"processing {_describe(action)}")
        if isinstance(action, Execute):
            _log(syslog.LOG_INFO, f"Executing command: {action.command}")
            run_cmdscript(conf.cmdscript, action.command, wait=True)
        elif not send(conf, action, caller):
            ok = False
    debug(1, "Exiting upssched (CLI process)")
    return 0 if ok else 1


# ---- daemon ---------------------------------------------------------------------------------

class _Conn:
    __slots__ = ("buf", "since", "sock", "tok")

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.tok, self.buf = sock, Tokenizer(), 0
        self.since = time.monotonic()


class Daemon:
    """The timer daemon: requests from the socket, timers, CMDSCRIPT on expiry."""

    def __init__(self, conf: UpsschedConf, listener: socket.socket) -> None:
        self.conf, self.listener = conf, listener
        self.timers = Timers()
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}
        self.idle_since = time.monotonic()
        self.inode = os.stat(conf.pipefn).st_ino
        self.env = base_env()

    def run(self) -> None:
        self._restore()
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ)
        _log(syslog.LOG_INFO, "Timer daemon started")
        while True:
            now = time.monotonic()
            due = self.timers.next_due()
            timeout = 1.0 if due is None else max(0.0, min(1.0, due - now))
            for key, _ in self.sel.select(timeout):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._read(self.conns[key.fd])
            self._fire(time.monotonic())
            for c in [c for c in self.conns.values() if time.monotonic() - c.since > CLIENT_TIMEOUT]:
                self._close(c)  # a client that never finishes its line
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:  # reap finished CMDSCRIPTs
                    pass
            if self.timers or self.conns:
                self.idle_since = time.monotonic()
            elif time.monotonic() - self.idle_since >= EMPTY_WAIT:
                self._exit()
                return

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        if len(self.conns) >= MAX_CLIENTS:
            sock.close()
            return
        sock.setblocking(False)
        self.conns[sock.fileno()] = _Conn(sock)
        self.sel.register(sock, selectors.EVENT_READ)

    def _close(self, c: _Conn) -> None:
        self.sel.unregister(c.sock)
        del self.conns[c.sock.fileno()]
        c.sock.close()

    def _read(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        c.buf = 0 if b"\n" in data else c.buf + len(data)
        if not data or c.buf > MAX_LINE:
            self._close(c)
            return
        for ev in c.tok.feed(data):
            if isinstance(ev, Line) and ev.words:
                reply = self._handle(ev.words)
                try:  # a timer list may not fit one send on this non-blocking socket
                    c.sock.settimeout(1.0)
                    c.sock.sendall(reply)
                    c.sock.setblocking(False)
                except OSError:
                    self._close(c)
                    return

    def _handle(self, words: tuple[str, ...]) -> bytes:
        request = decode(words)
        if request is None:
            _log(syslog.LOG_INFO, f"Unknown command on socket: {' '.join(words)}")
            return b"ERR UNKNOWN\n"
        action, caller = request
        debug(2, f"request: {' '.join(words)}")
        if isinstance(action, ListTimers):
            return self.timers.listing(time.time())
        if isinstance(action, Start):
            if self.timers.start(action, caller, time.monotonic(), time.time()):
                _log(syslog.LOG_INFO, f"New timer: {action.name} ({action.seconds} seconds)")
            else:
                _log(syslog.LOG_INFO, "bogus offset for timer, ignoring")
        else:
            cmd = self.timers.cancel(action, caller)
            if cmd is None:
                _log(syslog.LOG_INFO, f"Cancelling timer: {action.name}")
            else:
                _log(syslog.LOG_INFO, f"Cancel {action.name}, event: {cmd}")
                run_cmdscript(self.conf.cmdscript, cmd, wait=False, env=self.env)
        self._save()
        return b"OK\n"

    def _fire(self, now: float) -> None:
        due = self.timers.expire(now)
        for t in due:
            _log(syslog.LOG_INFO, f"Event: {t.name}")
            run_cmdscript(self.conf.cmdscript, t.name, wait=False, env={**self.env, **t.env()})
        if due:
            self._save()

    def _save(self) -> None:
        path = state_file(self.conf)
        try:
            if not self.timers:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                return
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.timers.snapshot(), f)
            os.replace(tmp, path)
        except OSError as exc:
            _log(syslog.LOG_WARNING, f"cannot write {path}: {exc}")

    def _restore(self) -> None:
        path = state_file(self.conf)
        try:
            with open(path, encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, ValueError):
            return
        if not isinstance(saved, list):
            return
        n = self.timers.restore(saved, time.monotonic(), time.time(), RESTORE_GRACE)
        if n:
            _log(syslog.LOG_WARNING, f"took over {n} timer(s) of a daemon that died")

    def _exit(self) -> None:
        # remove PIPEFN only if it is still ours (not a socket a newer daemon bound)
        with contextlib.suppress(OSError):
            st = os.stat(self.conf.pipefn)
            if stat.S_ISSOCK(st.st_mode) and st.st_ino == self.inode:
                os.unlink(self.conf.pipefn)
        self.listener.close()
        _log(syslog.LOG_INFO, "Timer queue empty, exiting")

