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

from ..config.parser import ConfigError
from ..protocol.tokenizer import Line, Tokenizer
from .config import UpsschedConf, confpath, parse_upssched_conf
from .plan import Caller, Cancel, Execute, Start, Timers, actions_for, decode, encode, needs_daemon

MAX_TRIES = 30  # as upstream: 30 rounds of 250 ms before giving up
RETRY_SLEEP = 0.25
REPLY_TIMEOUT = 5.0  # for the daemon's OK (upstream waits forever)
EMPTY_WAIT = 15.0  # idle seconds without timers before the daemon exits (upstream: 15 passes of 1 s)
RESTORE_GRACE = 1.0  # an inherited overdue timer fires this long after the takeover
MAX_LINE = 1024  # a client sending more without a newline is dropped
MAX_CLIENTS = 64
CLIENT_TIMEOUT = 10.0  # a connection is dropped this long after it was accepted

USAGE = """\
usage: nutbridge upssched [MESSAGE]

NUT's upssched: set as upsmon's NOTIFYCMD. Reads NOTIFYTYPE and UPSNAME from the
environment and $NUT_CONFPATH/upssched.conf (default /etc/nut), then starts or
cancels timers in the timer daemon or runs CMDSCRIPT, as its AT lines say. The
argument (upsmon's message) is ignored. See docs/upssched.md.
"""


def _log(prio: int, text: str) -> None:
    syslog.openlog("upssched", syslog.LOG_PID, syslog.LOG_DAEMON)
    syslog.syslog(prio, text)


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
    with s:
        try:
            s.settimeout(REPLY_TIMEOUT)
            s.sendall(request)
            reply = s.recv(256)
        except OSError:
            return False
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
        for fd in (0, 1, 2):
            os.dup2(null, fd)
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


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    upsname, ntype = os.environ.get("UPSNAME"), os.environ.get("NOTIFYTYPE")
    if upsname is None or ntype is None:
        print("Error: UPSNAME and NOTIFYTYPE must be set.\nThis program should only be run from upsmon.")
        return 1
    try:
        conf = parse_upssched_conf(confpath())
    except ConfigError as exc:
        sys.stderr.write(f"upssched: {exc}\n")
        _log(syslog.LOG_ERR, str(exc))
        return 2
    caller = Caller(ntype, upsname, argv[0] if argv else "")  # upsmon's message: NOTIFYMSG
    ok = True
    for action in actions_for(conf, ntype, upsname):
        if isinstance(action, Execute):
            _log(syslog.LOG_INFO, f"Executing command: {action.command}")
            run_cmdscript(conf.cmdscript, action.command, wait=True)
        elif not send(conf, action, caller):
            ok = False
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
                with contextlib.suppress(OSError):
                    c.sock.send(reply)

    def _handle(self, words: tuple[str, ...]) -> bytes:
        request = decode(words)
        if request is None:
            _log(syslog.LOG_INFO, f"Unknown command on socket: {' '.join(words)}")
            return b"ERR UNKNOWN\n"
        action, caller = request
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

