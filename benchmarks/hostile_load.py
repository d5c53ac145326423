#!/usr/bin/env python3
"""Load generators for the hostile-load benchmark (benchmarks/hostile.py) and its CI test
(tests/test_hostile.py): the bad-request payloads, the hostile clients, the poller and the
idle-connection holder. Standard library only; every target is 127.0.0.1.

Each generator also runs as its own process, so that the load does not share a process
(or a GIL) with the poller that measures the server:

    python benchmarks/hostile_load.py attack --port P --payload NAME [--threads 10] [--seconds 30]
    python benchmarks/hostile_load.py poll   --port P --ups ups --expect '"100"' [--seconds 30]
    python benchmarks/hostile_load.py idle   --port P --ups ups --count 5000 [--budget 30]

``attack`` and ``poll`` print one JSON object when done. ``idle`` prints one JSON line once
its connections are open, then one per ``check`` line read from stdin (how many are still
open), and closes everything at EOF on stdin (or after ``--max-life`` seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

HOST = "127.0.0.1"  # the only target: these are load generators for local servers
READ_WINDOW = 0.05  # a hostile client reads at most this long for an answer
SENDS_PER_CONN = 20  # then it reconnects (at once when the server closes the connection)
SEND_TIMEOUT = 1.0  # a send the server does not take within this long: reconnect
BURST_BYTES = 64 * 1024  # mode "burst": the payload repeated (pipelined) up to this size per send
BURST_POOL = 4  # distinct bursts per client, sent in turn
MODES = ("burst", "request")
CONNECT_TIMEOUT = 1.0


# ---------------------------------------------------------------- payloads
@dataclass(frozen=True)
class Payload:
    name: str
    description: str  # Markdown, for docs/benchmarks.md
    make: Callable[[random.Random], bytes]  # one send's worth of bytes


def _variants(n: int, build: Callable[[random.Random], bytes], seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [build(rng) for _ in range(n)]


_LETTERS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
_LONG = [b"GET VAR ups " + bytes(v) + b"\n"
         for v in _variants(4, lambda r: bytes(r.choices(_LETTERS, k=100_000)), 1)]
_MANY_ARGS = [b"GET VAR ups battery.charge " + b" ".join(b"arg%d" % i for i in range(37)) + b"\n",
              b" ".join(b"w%d" % i for i in range(40)) + b"\n"]
_CONTROL_SET = bytes([*range(0x00, 0x0A), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0)])
_CONTROL = _variants(16, lambda r: b"GET\x01VAR\x02ups\x00" + bytes(r.choices(_CONTROL_SET, k=256)) + b"\n",
                     2)
_NO_LOGIN = [b"INSTCMD ups test.battery.start\n", b"SET VAR ups ups.delay.shutdown 10\n", b"FSD ups\n"]

PAYLOADS: dict[str, Payload] = {p.name: p for p in (
    Payload("long-line", "100 kB request lines: `GET VAR ups ` + 100,000 letters + LF",
            lambda r: r.choice(_LONG)),
    Payload("open-quote", '`GET VAR "ups ups.status` + LF: an unterminated quote',
            lambda r: b'GET VAR "ups ups.status\n'),
    Payload("many-args", "40-word lines (`GET VAR ups battery.charge arg0 ... arg36`, `w0 ... w39`)",
            lambda r: r.choice(_MANY_ARGS)),
    Payload("control-bytes", "`GET^AVAR^Bups^@` + 256 control bytes (C0 without LF, DEL, C1) + LF",
            lambda r: r.choice(_CONTROL)),
    Payload("backslashes", "`GET VAR ups ` + 300 backslashes + LF",
            lambda r: b"GET VAR ups " + b"\\" * 300 + b"\n"),
    Payload("no-login", "`INSTCMD ups test.battery.start`, `SET VAR ups ups.delay.shutdown 10`, "
            "`FSD ups` without logging in (one per send, in turn)",
            lambda r: r.choice(_NO_LOGIN)),
    Payload("random-bytes", "1-32 random bytes (no LF added)",
            lambda r: r.randbytes(r.randint(1, 32))),
)}


# ---------------------------------------------------------------- hostile clients
@dataclass
class AttackStats:
    connects: int = 0
    connect_failed: int = 0
    sends: int = 0
    bytes_sent: int = 0
    answered: int = 0  # sends after which something came back within READ_WINDOW
    bytes_received: int = 0
    closed_by_server: int = 0  # EOF or reset seen
    send_timeouts: int = 0  # the server stopped reading
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, other: AttackStats) -> None:
        for k, v in asdict(other).items():
            if k == "errors":
                for e, n in v.items():
                    self.errors[e] = self.errors.get(e, 0) + n
            else:
                setattr(self, k, getattr(self, k) + v)

    def error(self, exc: BaseException) -> None:
        name = errno.errorcode.get(exc.errno, type(exc).__name__) if isinstance(exc, OSError) and exc.errno \
            else type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1


def _abort(s: socket.socket) -> None:
    """Close with a reset: a client that reconnects hundreds of times a second must not
    leave a TIME_WAIT socket (and an ephemeral port) behind each time."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _read_window(s: socket.socket, window: float, st: AttackStats) -> bool:
    """Read for at most `window` s or until an answer line ends; False when the server closed."""
    end = time.monotonic() + window
    got = False
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        except OSError as exc:
            st.error(exc)
            st.closed_by_server += 1
            return False
        if not chunk:
            st.closed_by_server += 1
            return False
        got = True
        st.bytes_received += len(chunk)
        if chunk.endswith(b"\n"):
            break
    if got:
        st.answered += 1
    return True


def burst(payload: Payload, rng: random.Random, size: int = BURST_BYTES) -> bytes:
    """The payload back to back (fresh draws) until at least `size` bytes."""
    parts: list[bytes] = []
    n = 0
    while n < size:
        parts.append(payload.make(rng))
        n += len(parts[-1])
    return b"".join(parts)


def attack_one(port: int, payload: Payload, seconds: float, seed: int,
               stop: threading.Event | None = None, sends_per_conn: int = SENDS_PER_CONN,
               mode: str = "burst") -> AttackStats:
    """One hostile client for `seconds`: connect, send (mode "request": the payload once; "burst":
    the payload pipelined up to BURST_BYTES) and read for at most READ_WINDOW, up to
    `sends_per_conn` times, reconnect."""
    rng = random.Random(seed)
    st = AttackStats()
    # bursts are drawn up front, so that sending costs the client next to no CPU
    pool = [burst(payload, rng) for _ in range(BURST_POOL)] if mode == "burst" else []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        try:
            s = socket.create_connection((HOST, port), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            st.connect_failed += 1
            st.error(exc)
            time.sleep(0.05)
            continue
        st.connects += 1
        try:
            for _ in range(sends_per_conn):
                if time.monotonic() >= deadline or (stop and stop.is_set()):
                    break
                data = payload.make(rng) if mode == "request" else pool[st.sends % BURST_POOL]
                s.settimeout(SEND_TIMEOUT)
                try:
                    s.sendall(data)
                except TimeoutError:
                    st.send_timeouts += 1
                    break
                except OSError as exc:
                    st.error(exc)
                    st.closed_by_server += 1
                    break
                st.sends += 1
                st.bytes_sent += len(data)
                if not _read_window(s, READ_WINDOW, st):
                    break
        finally:
            _abort(s)
    return st


def attack(port: int, payload: Payload, threads: int, seconds: float, seed: int = 0,
           stop: threading.Event | None = None, sends_per_conn: int = SENDS_PER_CONN,
           mode: str = "burst") -> AttackStats:
    """`threads` hostile clients in this process, for `seconds`."""
    results: list[AttackStats] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        r = attack_one(port, payload, seconds, seed * 1000 + i, stop, sends_per_conn, mode)
        with lock:
            results.append(r)

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + SEND_TIMEOUT + CONNECT_TIMEOUT + READ_WINDOW + 5)
    total = AttackStats()
    for r in results:
        total.add(r)
    return total


# ---------------------------------------------------------------- poller
def poll_once(port: int, ups: str, timeout: float) -> tuple[str | None, float]:
    """A fresh connection, ``GET VAR <ups> battery.charge``, the answer line (None: no answer)
    and the time from connect() to the end of the line."""
    t0 = time.monotonic()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(f"GET VAR {ups} battery.charge\n".encode())
            buf = b""
            while b"\n" not in buf:
                left = timeout - (time.monotonic() - t0)
                if left <= 0:
                    return None, time.monotonic() - t0
                s.settimeout(left)
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
    except OSError:
        return None, time.monotonic() - t0
    dt = time.monotonic() - t0
    if b"\n" not in buf:
        return None, dt
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace"), dt


@dataclass
class _Poll:
    sock: socket.socket
    start: float
    sent: bool = False
    buf: bytes = b""


def poll_loop(port: int, ups: str, expect: str, seconds: float, interval: float = 0.02,
              timeout: float = 1.0) -> dict[str, Any]:
    """A fresh connection every `interval` s for `seconds` (on a fixed schedule, several in
    flight when the server is slow), each sending ``GET VAR <ups> battery.charge`` and
    waiting up to `timeout` s for exactly the line `expect`. Latency: connect() to answer."""
    request = f"GET VAR {ups} battery.charge\n".encode()
    sel = selectors.DefaultSelector()
    inflight: dict[int, _Poll] = {}
    lat: list[float] = []
    fails: dict[str, int] = {}
    wrong: list[str] = []

    def fail(p: _Poll, why: str) -> None:
        fails[why] = fails.get(why, 0) + 1
        finish(p)

    def finish(p: _Poll) -> None:
        inflight.pop(p.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(p.sock)
        p.sock.close()

    t0 = time.monotonic()
    end = t0 + seconds
    nxt = t0
    started = 0
    while True:
        now = time.monotonic()
        if now >= end and not inflight:
            break
        if now > end + timeout + 1:  # cannot happen (deadlines below); a bound all the same
            for p in list(inflight.values()):
                fail(p, "timeout")
            break
        while nxt <= now and nxt < end:
            nxt += interval
            started += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            p = _Poll(s, time.monotonic())
            rc = s.connect_ex((HOST, port))
            if rc not in (0, errno.EINPROGRESS):
                fails[errno.errorcode.get(rc, str(rc))] = fails.get(errno.errorcode.get(rc, str(rc)), 0) + 1
                s.close()
                continue
            inflight[s.fileno()] = p
            sel.register(s, selectors.EVENT_WRITE, p)
        for p in [p for p in inflight.values() if now - p.start >= timeout]:
            fail(p, "timeout")
        wait = min([nxt - now if nxt < end else 1.0] + [p.start + timeout - now for p in inflight.values()])
        for key, _ in sel.select(max(0.0, wait)):
            p = key.data
            if p.sock.fileno() not in inflight:
                continue
            if not p.sent:
                err = p.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(p, errno.errorcode.get(err, str(err)))
                    continue
                try:
                    p.sock.send(request)  # 32 bytes into an empty socket buffer
                except OSError as exc:
                    fail(p, errno.errorcode.get(exc.errno or 0, "send"))
                    continue
                p.sent = True
                sel.modify(p.sock, selectors.EVENT_READ, p)
                continue
            try:
                chunk = p.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                fail(p, errno.errorcode.get(exc.errno or 0, "recv"))
                continue
            if not chunk:
                fail(p, "closed")
                continue
            p.buf += chunk
            if b"\n" in p.buf:
                line = p.buf.split(b"\n", 1)[0].decode("utf-8", "replace")
                if line == expect:
                    lat.append(time.monotonic() - p.start)
                    finish(p)
                else:
                    if len(wrong) < 5:
                        wrong.append(line[:200])
                    fail(p, "wrong answer")
            elif len(p.buf) > 65536:
                fail(p, "wrong answer")
    sel.close()
    lat.sort()
    return {"polls": started, "answered": len(lat), "failed": sum(fails.values()), "fail_kinds": fails,
            "wrong": wrong, "p50_ms": pct(lat, 0.5) * 1000, "p99_ms": pct(lat, 0.99) * 1000,
            "max_ms": (lat[-1] if lat else 0.0) * 1000, "seconds": time.monotonic() - t0}


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted list (0 when empty)."""
    if not xs:
        return 0.0
    return xs[min(len(xs) - 1, max(0, int(q * len(xs) + 0.999999) - 1))]


# ---------------------------------------------------------------- idle connections
@dataclass
class _Idle:
    sock: socket.socket
    start: float
    sent: bool = False
    buf: bytes = b""


def open_idle(port: int, ups: str, count: int, budget: float, inflight_max: int = 64,
              timeout: float = 5.0, give_up_after: int = 256) -> tuple[list[socket.socket], dict[str, Any]]:
    """Open up to `count` connections, each asking ``GET VAR <ups> battery.charge`` once:
    a connection counts as accepted when its answer arrives. At most `inflight_max` at a time,
    each given `timeout` s; stops after `budget` s or `give_up_after` failures in a row."""
    request = f"GET VAR {ups} battery.charge\n".encode()
    sel = selectors.DefaultSelector()
    inflight: dict[int, _Idle] = {}
    opened: list[socket.socket] = []
    fails: dict[str, int] = {}
    in_a_row = 0
    tried = 0
    t0 = time.monotonic()

    def fail(p: _Idle, why: str) -> None:
        nonlocal in_a_row
        fails[why] = fails.get(why, 0) + 1
        in_a_row += 1
        drop(p)
        _abort(p.sock)

    def drop(p: _Idle) -> None:
        inflight.pop(p.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(p.sock)

    while True:
        now = time.monotonic()
        over = now - t0 > budget or in_a_row >= give_up_after
        if over or tried >= count:
            if not inflight:
                break
            if over:
                for p in list(inflight.values()):
                    fail(p, "not answered in budget")
                break
        while not over and tried < count and len(inflight) < inflight_max:
            tried += 1
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as exc:
                fails[errno.errorcode.get(exc.errno or 0, "socket")] = 1 + fails.get(
                    errno.errorcode.get(exc.errno or 0, "socket"), 0)
                in_a_row += 1
                break
            s.setblocking(False)
            rc = s.connect_ex((HOST, port))
            p = _Idle(s, time.monotonic())
            if rc not in (0, errno.EINPROGRESS):
                fails[errno.errorcode.get(rc, str(rc))] = fails.get(errno.errorcode.get(rc, str(rc)), 0) + 1
                in_a_row += 1
                s.close()
                continue
            inflight[s.fileno()] = p
            sel.register(s, selectors.EVENT_WRITE, p)
        for p in [p for p in inflight.values() if now - p.start >= timeout]:
            fail(p, "not answered" if p.sent else "connect timeout")
        for key, _ in sel.select(0.05):
            p = key.data
            if p.sock.fileno() not in inflight:
                continue
            if not p.sent:
                err = p.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(p, errno.errorcode.get(err, str(err)))
                    continue
                try:
                    p.sock.send(request)
                except OSError as exc:
                    fail(p, errno.errorcode.get(exc.errno or 0, "send"))
                    continue
                p.sent = True
                sel.modify(p.sock, selectors.EVENT_READ, p)
                continue
            try:
                chunk = p.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                fail(p, errno.errorcode.get(exc.errno or 0, "recv"))
                continue
            if not chunk:
                fail(p, "closed")
                continue
            p.buf += chunk
            if b"\n" in p.buf:
                drop(p)
                opened.append(p.sock)
                in_a_row = 0
    sel.close()
    return opened, {"wanted": count, "tried": tried, "accepted": len(opened), "fail_kinds": fails,
                    "seconds": time.monotonic() - t0, "gave_up": in_a_row >= give_up_after}


def still_open(socks: list[socket.socket]) -> int:
    """How many of `socks` the server has not closed (nothing is sent)."""
    n = 0
    for s in socks:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            n += 1
            continue
        except OSError:
            continue
        if data:  # unexpected bytes, but the connection is open
            n += 1
    return n


# ---------------------------------------------------------------- command line
def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a1 = sub.add_parser("attack", help="hostile clients")
    a1.add_argument("--port", type=int, required=True)
    a1.add_argument("--payload", choices=sorted(PAYLOADS), required=True)
    a1.add_argument("--threads", type=int, default=10)
    a1.add_argument("--seconds", type=float, default=30.0)
    a1.add_argument("--seed", type=int, default=0)
    a1.add_argument("--sends-per-conn", type=int, default=SENDS_PER_CONN)
    a1.add_argument("--mode", choices=MODES, default="burst")
    a2 = sub.add_parser("poll", help="a fresh connection every --interval s")
    a2.add_argument("--port", type=int, required=True)
    a2.add_argument("--ups", default="ups")
    a2.add_argument("--expect", required=True, help="the exact answer line")
    a2.add_argument("--seconds", type=float, default=30.0)
    a2.add_argument("--interval", type=float, default=0.02)
    a2.add_argument("--timeout", type=float, default=1.0)
    a3 = sub.add_parser("idle", help="hold idle connections")
    a3.add_argument("--port", type=int, required=True)
    a3.add_argument("--ups", default="ups")
    a3.add_argument("--count", type=int, default=5000)
    a3.add_argument("--budget", type=float, default=30.0)
    a3.add_argument("--max-life", type=float, default=900.0)
    a = ap.parse_args(argv)
    if a.cmd == "attack":
        st = attack(a.port, PAYLOADS[a.payload], a.threads, min(a.seconds, 3600.0), a.seed,
                    sends_per_conn=a.sends_per_conn, mode=a.mode)
        _emit({**asdict(st), "cpu_s": time.process_time()})
    elif a.cmd == "poll":
        r = poll_loop(a.port, a.ups, a.expect, min(a.seconds, 3600.0), a.interval, a.timeout)
        _emit({**r, "cpu_s": time.process_time()})
    else:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # --max-life: the default action ends us
        signal.alarm(max(1, int(a.max_life)))
        socks, info = open_idle(a.port, a.ups, a.count, a.budget)
        _emit(info)
        for line in sys.stdin:  # "check" lines until EOF
            if line.strip() == "check":
                _emit({"open": still_open(socks), "accepted": len(socks)})
        for s in socks:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
