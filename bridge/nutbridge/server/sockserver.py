"""The driver's end of NUT's driver socket: one :class:`~nutbridge.state.Device` for a C upsd.

A NUT driver is the server of a Unix socket ``<STATEPATH>/<driver>-<ups>`` that upsd (and
upsdrvctl) connect to (``shared/docs/driver-socket.md``). :class:`SockServer` plays that part
for one of our drivers, as ``nutbridge driver`` runs it. It serves the device state store and
its change notifications, never the driver object: what a C upsd sees is exactly what
``nutbridge serve`` would serve from the same :class:`~nutbridge.state.Device`.

* ``DUMPALL``: the variables (value, enums, ranges, aux, flags), the commands, ``DATAOK`` or
  ``DATASTALE`` and ``DUMPDONE`` (:func:`nutbridge.protocol.sock.dump`, a C driver's order);
  ``PING`` -> ``PONG``.
* Every real change is broadcast as ``SETINFO``/``DELINFO``/``ADDENUM``/``DELENUM``/``ADDRANGE``/
  ``DELRANGE``/``SETAUX``/``SETFLAGS``/``ADDCMD``/``DELCMD`` to each connection that did not
  send ``NOBROADCAST``; ``DATAOK``/``DATASTALE`` only on transitions. :class:`Shadow` keeps
  what was announced and computes the difference (sans-IO), so a dump and the broadcasts after
  it always agree. Values are what a C upsd can store: printable ASCII, at most 255
  characters. Two changes a C upsd cannot take as updates (a value changing only in case,
  which it ignores, and flags dropping to none) are sent as ``DELINFO`` plus the whole
  variable.
* ``INSTCMD``/``SET`` (with the word-count rules of a C driver; a malformed one gets silence)
  go to the ``handler`` callback, which returns upstream's STAT_* code; a tracked request is
  answered ``TRACKING <id> <code>`` once the handler is done. A connection's requests are
  handled one at a time, in order, as a C driver handles them synchronously: the changes a SET
  makes are broadcast before its ``TRACKING``, and a ``LOGOUT`` comes after the answers before
  it. A peer that shuts its side still gets the answers to what it sent.
* For NUT 2.8.5's upsdrvctl: ``GETPID`` -> ``PID``, ``DUMPSTATUS``/``DUMPVALUE``,
  ``NOBROADCAST``/``BROADCAST [n]``, ``LOGOUT`` -> ``OK Goodbye`` and close. Anything else is
  ignored, as a C driver does (logged, rate-limited).
* Data staleness: the device's own state (the driver base marks it stale when the device is
  lost), and, with ``stale_after``, a driver that has not reported for that long (a C
  driver that hangs stops answering ``PING``; ours answers from the event loop, so it says
  ``DATASTALE`` instead).

No peer can starve the driver or grow memory (the rules of docs/architecture.md, "Hostile
clients", on a smaller scale): requests are handled in turns of at most SLICE_EVENTS events
or SLICE_SECONDS, busy connections share PASS_SECONDS of each pass of the event loop, a
connection's socket is not read while it has a backlog, answers it does not read (past the
transport's high-water mark), or a request in its handler; a broadcast to a peer
more than BROADCAST_LIMIT behind drops it (a C driver drops a peer on its first failed
write); input a C driver would refuse draws on a waste budget, past which the peer is
disconnected; at most MAX_CONNECTIONS peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import cast

from ..protocol import sock
from ..protocol.wire import MAX_VALUE
from ..ratelog import RateLimitedLog
from ..state import Device, DriverState, Variable
from .turns import RoundRobin, WasteBudget, set_reading

log = logging.getLogger("nutbridge.sockserver")
peer_log = RateLimitedLog(log)

#: ``(kind, name, param)`` -> upstream's STAT_* code; kind is "INSTCMD" (name = command,
#: param = its parameter or None) or "SET" (name = variable, param = the new value)
Handler = Callable[[str, str, str | None], Awaitable[int]]

BACKLOG = 16  # DS_LISTEN_BACKLOG
SUN_PATH_MAX = 107  # bytes of a path that fit sockaddr_un.sun_path (108 with the NUL) on Linux
WRITE_HIGH_WATER = 256 * 1024  # a peer's unread answers before its socket is no longer read
BROADCAST_LIMIT = 1024 * 1024  # a peer this far behind is dropped when a broadcast comes
SLICE_EVENTS = 64  # requests handled per turn of a connection
SLICE_SECONDS = 0.001
PASS_SECONDS = 0.002  # turns of all busy connections per pass of the event loop
MAX_INFLIGHT = 1  # INSTCMD/SET of a connection are handled one at a time, in order (as C)
MAX_CONNECTIONS = 64
# Waste budget (bytes): upsd and upsdrvctl never send anything a driver refuses; a peer that
# keeps sending garbage, unknown commands or lines without an end is cut off.
WASTE_BURST = 1024 * 1024
WASTE_RATE = 64 * 1024  # per second
TICK = 2.0  # how often ``stale_after`` is checked
CLOSE_GRACE = 2.0  # seconds a closing server gives handlers and peers to finish
STAT_FAILED = 3

_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
_PEERCRED = struct.Struct("3i")


def clean(text: str) -> str:
    """A value as a C upsd can store it: printable ASCII (a C upsd's tokenizer drops control
    and 8-bit bytes anyway), at most 255 characters."""
    return _UNPRINTABLE.sub("", text)[:MAX_VALUE]


def snapshot(var: Variable) -> sock.VarDump:
    """What a C driver would hold for ``var``: a copy, values cleaned, flags ``RW``/``STRING``
    (upsd shows ``NUMBER`` for a variable without ``STRING``)."""
    flags = (("RW",) if var.rw else ()) + (("STRING",) if var.string else ())
    return sock.VarDump(var.name, clean(var.value), flags, var.aux,
                        list(dict.fromkeys(clean(e) for e in var.enums)), list(var.ranges))


def _ordered_change(old: list[object], new: list[object]) -> bool:
    """True when ``old`` -> ``new`` can be sent as removals plus appends (upsd keeps enums and
    ranges in insertion order)."""
    kept = [x for x in old if x in new]
    return kept + [x for x in new if x not in old] == new


def new_var(var: sock.VarDump) -> bytes:
    """A variable that appears, in the order a C driver broadcasts one (``dstate_setinfo``,
    ``setflags``, ``setaux``, then its enums and ranges; the dump has another order)."""
    out = [sock.setinfo(var.name, var.value)]
    if var.flags:
        out.append(sock.setflags(var.name, var.flags))
    if var.aux:
        out.append(sock.setaux(var.name, var.aux))
    out += [sock.addenum(var.name, e) for e in var.enums]
    out += [sock.addrange(var.name, lo, hi) for lo, hi in var.ranges]
    return b"".join(out)


def var_diff(old: sock.VarDump | None, new: sock.VarDump | None) -> bytes:
    """The lines that take a C upsd from ``old`` to ``new`` (None: absent)."""
    if new is None:
        return sock.delinfo(old.name) if old is not None else b""
    if old is None:
        return new_var(new)
    if old == new:
        return b""
    if (old.name != new.name or (old.flags and not new.flags)
            or (old.value != new.value and old.value.lower() == new.value.lower())
            or not _ordered_change(cast(list[object], old.enums), cast(list[object], new.enums))
            or not _ordered_change(cast(list[object], old.ranges), cast(list[object], new.ranges))):
        # upsd ignores a SETINFO equal but for case, and cannot clear all flags or reorder
        return sock.delinfo(old.name) + new_var(new)
    out: list[bytes] = []
    if old.value != new.value:
        out.append(sock.setinfo(new.name, new.value))
    out += [sock.delenum(new.name, e) for e in old.enums if e not in new.enums]
    out += [sock.addenum(new.name, e) for e in new.enums if e not in old.enums]
    out += [sock.delrange(new.name, lo, hi) for lo, hi in old.ranges if (lo, hi) not in new.ranges]
    out += [sock.addrange(new.name, lo, hi) for lo, hi in new.ranges if (lo, hi) not in old.ranges]
    if old.aux != new.aux:
        out.append(sock.setaux(new.name, new.aux))
    if old.flags != new.flags:
        out.append(sock.setflags(new.name, new.flags))
    return b"".join(out)


class Shadow:
    """What the peers of the socket were told about ``device``, and the lines that tell them
    what changed (sans-IO: bytes out, nothing sent).

    Built from the device when the socket opens; :meth:`changed` takes the names of one change
    notification of the device and returns the lines that bring a C upsd from the old to the
    new state (and updates itself); :meth:`check_ok` the ``DATAOK``/``DATASTALE`` of a
    transition. Dumps are answered from the shadow, so a dump and the broadcasts after it
    always agree, even while a driver is half-way through a batch.
    """

    def __init__(self, device: Device, stale_after: float | None = None) -> None:
        self.device = device
        self.stale_after = stale_after
        self.vars = {v.name.lower(): snapshot(v) for v in device.variables()}
        self.cmds = {c.lower(): c for c in device.commands()}
        self.data_ok = self.ok_now()
        self._dump: bytes | None = None  # DUMPALL answer, built on demand

    def ok_now(self) -> bool:
        """The device's data is fresh: the driver says so, and (with ``stale_after``) it was
        heard from lately."""
        dev = self.device
        if dev.driver_state is not DriverState.OK:
            return False
        return self.stale_after is None or time.monotonic() - dev.last_heard <= self.stale_after

    def changed(self, names: Iterable[str]) -> bytes:
        """The lines announcing a change of these variables/commands of the device."""
        dev = self.device
        out: list[bytes] = []
        for name in sorted(names, key=str.lower):
            key = name.lower()
            var = dev.get(name)
            old, new = self.vars.get(key), (snapshot(var) if var is not None else None)
            lines = var_diff(old, new)
            if lines:
                out.append(lines)
                if new is None:
                    del self.vars[key]
                else:
                    self.vars[key] = new
            had, has = key in self.cmds, dev.has_cmd(name)
            if has and not had:
                self.cmds[key] = dev.canonical_cmd(name)
                out.append(sock.addcmd(self.cmds[key]))
            elif had and not has:
                out.append(sock.delcmd(self.cmds.pop(key)))
        if out:
            self._dump = None
        return b"".join(out)

    def check_ok(self) -> bytes:
        """``DATAOK``/``DATASTALE`` if the data's freshness changed since last told, else b""."""
        ok = self.ok_now()
        if ok == self.data_ok:
            return b""
        self.data_ok = ok
        self._dump = None
        return sock.DATAOK if ok else sock.DATASTALE

    def dump(self) -> bytes:
        """The answer to ``DUMPALL``."""
        if self._dump is None:
            self._dump = sock.dump(self.vars.values(), self.cmds.values(), self.data_ok)
        return self._dump

    def dump_value(self, name: str) -> bytes:
        """The answer to ``DUMPVALUE name`` (``DUMPSTATUS``: ups.status)."""
        var = self.vars.get(name.lower())
        out = [] if self.data_ok else [sock.DATASTALE]
        if var is not None:
            out.append(var.lines())
        if self.data_ok:
            out.append(sock.DATAOK)
        out.append(sock.DUMPDONE)
        return b"".join(out)


class SockServer:
    """Serve ``device`` on the Unix socket ``path`` (see the module docstring)."""

    def __init__(self, device: Device, path: str | os.PathLike[str], handler: Handler, *,
                 stale_after: float | None = None, group: int | None = None) -> None:
        self.device = device
        self.path = os.fspath(path)
        self.handler = handler
        self.stale_after = stale_after
        self.group = group
        self.connections: set[Connection] = set()
        self.shadow = Shadow(device, stale_after)
        self._server: asyncio.base_events.Server | None = None
        self._inode: int | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._turns: RoundRobin[Connection] = RoundRobin(PASS_SECONDS)
        self._steady = 0  # > 0: availability changes are not announced (steady())
        self.closing = False

    # ---- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the socket as a C driver does: unlink, umask 007, bind, chmod 0660 (and the
        group, if given), listen 16. Raises OSError.

        Unlike a C driver, the socket is bound under a temporary name and renamed into place
        once it listens: a client that connects as soon as the file appears (upsd, upsdrvctl,
        a test) is never refused in between. (A path too long for the extra suffix is bound
        in place, as NUT does.)"""
        path = self.path
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, f"socket path too long ({len(os.fsencode(path))} "
                          f"bytes, at most {SUN_PATH_MAX})", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        where = f"{path}.{os.getpid()}"
        if len(os.fsencode(where)) > SUN_PATH_MAX:
            where = path
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o007)
            try:
                s.bind(where)
            finally:
                os.umask(old)
            self._inode = os.stat(where).st_ino
            os.chmod(where, 0o660)
            if self.group is not None:
                os.chown(where, -1, self.group)
            s.listen(BACKLOG)
            if where != path:
                os.replace(where, path)
            s.setblocking(False)
            self.shadow = Shadow(self.device, self.stale_after)
            loop = asyncio.get_running_loop()
            self._server = await loop.create_unix_server(lambda: Connection(self), sock=s,
                                                         backlog=BACKLOG)
        except BaseException:
            s.close()
            if where != path:
                with contextlib.suppress(OSError):
                    os.unlink(where)
            self._unlink()
            raise
        self._unsubscribe = self.device.subscribe(self._changed)
        if self.stale_after is not None:
            self._ticker = loop.create_task(self._tick())

    async def close(self) -> None:
        """Stop: let running handlers finish (their TRACKING answers go out), close every
        connection after its pending answers, unlink the socket (if it is still ours)."""
        if self.closing:
            return
        self.closing = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current]
        if pending:
            _, late = await asyncio.wait(pending, timeout=CLOSE_GRACE)
            for t in late:
                t.cancel()
        self._turns.clear()
        conns = list(self.connections)
        for c in conns:
            c.close()
        waits = [c.closed for c in conns if not c.closed.done()]
        if waits:
            await asyncio.wait(waits, timeout=CLOSE_GRACE)
        for c in list(self.connections):
            c.abort()
        self._unlink()

    def _unlink(self) -> None:
        # only our own file: a newer instance may have replaced it meanwhile
        try:
            if self._inode is None or os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass

    # ---- broadcasts ----------------------------------------------------------------------------
    def _changed(self, dev: Device, names: frozenset[str]) -> None:
        self._send(self.shadow.changed(names) + self._check_ok())

    @contextlib.contextmanager
    def steady(self) -> Iterator[None]:
        """Announce no availability change meanwhile, only the state at the end: a driver
        restarted in place (a reload) briefly calls its data stale, which is not news."""
        self._steady += 1
        try:
            yield
        finally:
            self._steady -= 1
            self._send(self._check_ok())

    def _check_ok(self) -> bytes:
        return b"" if self._steady else self.shadow.check_ok()

    def _send(self, data: bytes) -> None:
        if data:
            for c in list(self.connections):
                if c.broadcast:
                    c.push(data)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self._send(self._check_ok())

    def request(self, conn: Connection, kind: str, name: str, param: str | None,
                tid: str | None) -> None:
        """Run the handler for one INSTCMD/SET of ``conn`` as a task."""
        conn.inflight += 1
        task = asyncio.get_running_loop().create_task(self._run(conn, kind, name, param, tid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, conn: Connection, kind: str, name: str, param: str | None,
                   tid: str | None) -> None:
        try:
            try:
                code = int(await self.handler(kind, name, param))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("UPS [%s]: %s %s failed", self.device.name, kind, name)
                code = STAT_FAILED
            if tid is not None:
                conn.write(sock.tracking(tid, code))
        finally:
            conn.inflight -= 1
            conn.resume()

    # ---- fair turns ------------------------------------------------------------------------------
    def queue(self, conn: Connection) -> None:
        """Give ``conn`` a turn in the shared round robin; its socket is not read meanwhile."""
        self._turns.queue(conn)


_WASTE = (sock.ParseError, sock.Unknown, sock.Malformed)


class Connection(asyncio.Protocol):
    """One peer of the driver socket (upsd, upsdrvctl, a driver's twin)."""

    def __init__(self, server: SockServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.reader = sock.ServerReader()
        self.peer = "?"
        self.broadcast = True
        self.inflight = 0
        self.queued = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in = b""  # received, not yet tokenized
        self._inpos = 0
        self._events: deque[sock.ServerEvent | sock.ParseError] = deque()
        self._paused = False  # the peer does not read its answers
        self._reading = True
        self._done = False  # LOGOUT answered or dropped: nothing more is handled
        self._eof = False  # the peer will send nothing more: close once its requests are done
        self._waste = WasteBudget(WASTE_BURST, WASTE_RATE)

    # ---- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)
        srv = self.server
        raw = t.get_extra_info("socket")
        if raw is not None:
            with contextlib.suppress(OSError, AttributeError):
                pid, uid, _ = _PEERCRED.unpack(raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                              _PEERCRED.size))
                self.peer = f"pid {pid} (uid {uid})"
        if srv.closing or len(srv.connections) >= MAX_CONNECTIONS:
            peer_log.log(logging.WARNING, "*", "maxconn", "UPS [%s]: refusing a connection on the "
                         "driver socket (%d open)", srv.device.name, len(srv.connections))
            self._done = True
            t.abort()
            return
        t.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        srv.connections.add(self)
        log.debug("UPS [%s]: connection on the driver socket from %s", srv.device.name, self.peer)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._in = self._in[self._inpos:] + data if self._inpos < len(self._in) else data
        self._inpos = 0
        if not self.queued:
            self.turn()

    def eof_received(self) -> bool | None:
        # what was received is still handled and answered (a C driver handles each read whole
        # before it sees the end), then the connection closes
        self._eof = True
        self._close_if_finished()
        return True

    def _close_if_finished(self) -> None:
        if (self._eof and not self._done and self.inflight == 0 and not self._events
                and self._inpos >= len(self._in)):
            self.close()

    def pause_writing(self) -> None:
        self._paused = True
        self.set_reading(False)

    def resume_writing(self) -> None:
        self._paused = False
        self.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self.server.connections.discard(self)
        self._in, self._inpos = b"", 0
        self._events.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    # ---- output ----------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def push(self, data: bytes) -> None:
        """A broadcast: dropped with the connection when the peer is far behind."""
        t = self.transport
        if t is None or t.is_closing():
            return
        if t.get_write_buffer_size() > BROADCAST_LIMIT:
            peer_log.log(logging.WARNING, self.peer, "behind", "UPS [%s]: %s does not read the "
                         "driver socket; disconnecting it", self.server.device.name, self.peer)
            self.abort()
            return
        t.write(data)

    def close(self) -> None:
        self._done = True
        if self.transport is not None:
            self.transport.close()  # after what is buffered

    def abort(self) -> None:
        self._done = True
        self._in, self._inpos = b"", 0
        self._events.clear()
        if self.transport is not None:
            self.transport.abort()

    # ---- input -----------------------------------------------------------------------------------
    def set_reading(self, on: bool) -> None:
        self._reading = set_reading(self.transport, self._reading, on)

    def resume(self) -> None:
        """Carry on after a pause (answers read, a handler done)."""
        if self._done or self.queued or self._paused or self.inflight >= MAX_INFLIGHT:
            return
        if self._events or self._inpos < len(self._in):
            self.server.queue(self)
        else:
            self.set_reading(True)
            self._close_if_finished()

    def turn(self) -> None:
        """Handle up to one slice of the buffered input; queue the rest for a later turn."""
        srv = self.server
        deadline = time.perf_counter() + SLICE_SECONDS
        handled = 0
        while (handled < SLICE_EVENTS and not self._done and not self._paused
               and self.inflight < MAX_INFLIGHT):
            if handled and time.perf_counter() > deadline:
                break
            if self._events:
                self._handle(self._events.popleft())
                handled += 1
                continue
            if self._inpos >= len(self._in):
                break
            # one C driver's read at a time (a parse error drops the rest of it)
            chunk = self._in[self._inpos:self._inpos + sock.READ_SIZE]
            self._inpos += len(chunk)
            events = self.reader.feed(chunk)
            wasted = sum(isinstance(e, _WASTE) for e in events)
            if (wasted or not events) and not self._spend(
                    len(chunk) * wasted // len(events) if events else len(chunk)):
                return
            self._events.extend(events)
        if self._inpos >= len(self._in):
            self._in, self._inpos = b"", 0
        if self._done:
            return
        more = bool(self._events) or self._inpos < len(self._in)
        if more and not self._paused and self.inflight < MAX_INFLIGHT:
            srv.queue(self)
        else:
            self.set_reading(not more and not self._paused)
            self._close_if_finished()

    def _spend(self, nbytes: int) -> bool:
        if self._waste.spend(nbytes):
            return True
        peer_log.log(logging.WARNING, self.peer, "flood", "UPS [%s]: disconnecting %s from the "
                     "driver socket: it kept sending what a driver refuses",
                     self.server.device.name, self.peer)
        self.abort()
        return False

    def _handle(self, ev: sock.ServerEvent | sock.ParseError) -> None:
        srv = self.server
        name = srv.device.name
        if isinstance(ev, sock.DumpAll):
            self.write(srv.shadow.dump())
        elif isinstance(ev, sock.Ping):
            self.write(sock.PONG)
        elif isinstance(ev, sock.InstCmd):
            srv.request(self, "INSTCMD", ev.cmd, ev.param, ev.tracking)
        elif isinstance(ev, sock.SetVar):
            srv.request(self, "SET", ev.var, ev.value, ev.tracking)
        elif isinstance(ev, sock.NoBroadcast):
            self.broadcast = False
        elif isinstance(ev, sock.Broadcast):
            self.broadcast = ev.on
        elif isinstance(ev, sock.GetPid):
            self.write(sock.pid(os.getpid()))
        elif isinstance(ev, sock.DumpValue):
            self.write(srv.shadow.dump_value(ev.var))
        elif isinstance(ev, sock.Logout):
            self.write(sock.GOODBYE)
            self.close()
        elif isinstance(ev, sock.Malformed):
            peer_log.log(logging.INFO, self.peer, "malformed", "UPS [%s]: malformed %s request "
                         "from %s", name, ev.words[0].upper(), self.peer)
        elif isinstance(ev, sock.ParseError):
            peer_log.log(logging.INFO, self.peer, "parse", "UPS [%s]: parse error on the driver "
                         "socket from %s: %s", name, self.peer, ev.message)
        else:
            peer_log.log(logging.INFO, self.peer, "unknown", "UPS [%s]: unknown command on the "
                         "driver socket from %s: %s", name, self.peer, _show(ev.words))


def _show(words: Iterable[str]) -> str:
    return clean(" ".join(words))[:80]


__all__ = ["Connection", "Handler", "Shadow", "SockServer", "clean", "new_var", "snapshot", "var_diff"]
