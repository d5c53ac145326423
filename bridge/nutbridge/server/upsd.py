"""upsd's network layer: listeners, connections, TLS upgrade, idle shedding.

Thin by design: bytes go through the sans-IO tokenizer into :class:`Core` and
its answers go back in one ``write`` per turn, so a LIST VAR leaves in one
segment (upstream's per-line writes meet Nagle + delayed ACK).

No peer can silence the others (docs/architecture.md, "Hostile clients"):

* a small read on an idle connection (a real client's requests) is answered at
  once; big reads and backlogs are served in *turns* (SLICE_LINES requests,
  SLICE_BYTES or SLICE_SECONDS) from one round-robin queue that gets at most
  HEAVY_SECONDS per pass of the event loop, their sockets not read meanwhile,
  so flooding clients share a small part of each pass and everyone else is
  served in the rest;
* nothing grows without bound: the backlog is at most one read, answers at most
  one write buffer (reading stops while the client does not read), decrypted
  data during a TLS handshake at most EARLY_LIMIT;
* input that upstream discards or refuses (parse errors, lines without an end,
  unknown commands, commands sent without credentials) draws on a per-connection
  WASTE budget; a client that keeps flooding past it is disconnected;
* everything a peer can trigger per line is logged once per peer per minute.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import cast

from ..config.upsd_conf import Listen, UpsdConf
from ..protocol.tokenizer import ParseError, Tokenizer
from ..ratelog import RateLimitedLog
from ..state import Device
from .core import ANSWER_CACHE_MAX, Core, Session
from .turns import RoundRobin, WasteBudget, set_reading

log = logging.getLogger("nutbridge.upsd")
peer_log = RateLimitedLog(log)

IDLE_TIMEOUT = float(os.environ.get("NUTBRIDGE_IDLE_TIMEOUT", "60"))  # upstream: 60 s
SWEEP_INTERVAL = 2.0  # upstream's main loop granularity
WRITE_HIGH_WATER = 256 * 1024
PUSH_BUFFER_LIMIT = 1024 * 1024  # a push subscriber this far behind is dropped
# One turn of a connection: at most SLICE_LINES requests, SLICE_BYTES scanned or
# SLICE_SECONDS of work, checked after every CHUNK bytes (the tokenizer's worst
# case, a token every few bytes, is several MB/s: a chunk is then about 1 ms).
SLICE_LINES = 64
SLICE_BYTES = 64 * 1024
SLICE_SECONDS = 0.0005
CHUNK = 8 * 1024
# A read of at most LIGHT_BYTES on a connection with nothing pending (what real
# clients send) is answered at once. Bigger reads and backlogs wait in one
# round-robin queue that gets HEAVY_SECONDS of each pass of the event loop in all,
# so fifty flooding clients cost a poller a few milliseconds, not fifty turns.
LIGHT_BYTES = 4096
HEAVY_SECONDS = 0.002
# Waste budget (bytes): a burst, refilled at a rate. A real client wastes a few
# bytes a minute (a typo, a stale UPS name); upstream answers even a 1 MiB line
# correctly, so one such line must pass (tests/test_fuzz.py); a client that keeps
# sending lines like it, or garbage at any rate, is cut off within seconds.
WASTE_BURST = 4 * 1024 * 1024
WASTE_RATE = 64 * 1024  # per second
EARLY_LIMIT = 64 * 1024  # requests a client may send before its TLS handshake completes
# Answers that mean the client sent something upstream refuses whatever the
# state of the UPS: they draw on the waste budget like unparsable input.
_WASTE_ANSWERS = ("ERR UNKNOWN-COMMAND", "ERR INVALID-ARGUMENT", "ERR USERNAME-REQUIRED",
                  "ERR PASSWORD-REQUIRED", "ERR ACCESS-DENIED", "ERR ALREADY-")


class ListenError(Exception):
    pass


class Connection(asyncio.Protocol):
    __slots__ = ("_busy", "_early", "_inbuf", "_inpos", "_paused", "_reading", "_unsubs", "_waste",
                 "last", "queued", "server", "session", "tok", "transport")

    def __init__(self, server: Upsd) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.tok = Tokenizer()
        self.last = time.monotonic()
        self._paused = False  # the client is not reading its answers
        self._busy = False  # a TLS upgrade is running
        self._early = b""  # decrypted data that arrived before start_tls() returned
        self._inbuf = b""  # received, not yet handled (waiting for its next turn)
        self._inpos = 0
        self.queued = False  # waiting for a turn in the server's round robin
        self._reading = True
        self._waste = WasteBudget(WASTE_BURST, WASTE_RATE, self.last)
        self._unsubs: list[Callable[[], None]] = []  # push subscriptions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance(): uvloop's transports do not derive from asyncio.Transport
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        addr = str(peer[0]) if peer else "unknown"
        if addr.startswith("::ffff:") and "." in addr:
            addr = addr[7:]
        srv = self.server
        if not srv.conf.client_allowed(addr):
            peer_log.log(logging.WARNING, addr, "allow",
                         "Rejecting TCP connection from %s (not in ALLOW networks)", addr)
            transport.abort()
            return
        if srv.maxconn and len(srv.connections) >= srv.maxconn:
            peer_log.log(logging.WARNING, "*", "maxconn",
                         "Maximum number of connections (%d) reached; refusing %s", srv.maxconn, addr)
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.session = srv.core.connect(addr)
        srv.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._busy:
            # the client may send its first request in the same flight as the
            # end of its handshake; keep it (bounded) for when the upgrade completes
            if len(self._early) + len(data) > EARLY_LIMIT:
                self._flooded("before its TLS handshake completed")
                return
            self._early += data
            return
        if self.session is None or self.transport is None:
            return
        self.last = now = time.monotonic()
        if not self.queued and not self._paused and self._inpos >= len(self._inbuf):
            # A lone repeated GET VAR line: its answer from the cache (Core.answers).
            hit = self.server.core.answers.get(data)
            if hit is not None and hit[2] == hit[1].generation and now <= hit[3] and not self.tok.pending:
                self.transport.write(hit[0])
                return
        if self._inpos < len(self._inbuf):
            # a backlog waits for its turn; reading is paused, so this is at most
            # the read that was under way
            self._inbuf = self._inbuf[self._inpos :] + data
        else:
            self._inbuf = data
        self._inpos = 0
        if self.queued or self._paused:
            return
        if len(self._inbuf) <= LIGHT_BYTES:
            self.turn()
        else:
            self.server.queue(self)

    def turn(self) -> None:
        """Answer up to one slice of the buffered requests, then yield the loop."""
        self.queued = False
        s, t = self.session, self.transport
        if s is None or t is None or t.is_closing():
            return
        core = self.server.core
        handle = core.handle
        by_words = self.server.answers_by_words
        now = time.monotonic()
        cacheable: tuple[Device, float] | None = None  # of the last line answered
        out: list[str] = []
        buf, pos = self._inbuf, self._inpos
        clean_start = pos == 0 and not self.tok.pending  # buf may be a whole request line
        lines_left, scanned = SLICE_LINES, 0
        deadline = time.perf_counter() + SLICE_SECONDS
        while pos < len(buf) and lines_left > 0 and scanned < SLICE_BYTES and not self._busy:
            if scanned and time.perf_counter() > deadline:
                break
            chunk = buf if pos == 0 and len(buf) <= CHUNK else buf[pos : pos + CHUNK]
            events, used = self.tok.feed_some(chunk, lines_left)
            pos += used
            scanned += used
            lines_left -= len(events)
            wasted = 0
            stop = False
            for ev in events:
                if isinstance(ev, ParseError):
                    # upstream logs it, answers nothing and drops the rest of the read
                    peer_log.log(logging.INFO, s.addr, "parse", "Parse error on sock from %s: %s",
                                 s.addr, ev.message)
                    self.tok.reset()
                    wasted += 1
                    pos = len(buf)
                    break
                words = ev.words
                hit = by_words.get(words)
                if (hit is not None and hit[2] == hit[1].generation and now <= hit[3]
                        and core.find(words[2]) is hit[1]):
                    out.append(hit[0])  # a GET VAR of a pipelining client (see Upsd.answers_by_words)
                    cacheable = (hit[1], hit[3])
                    continue
                answer = handle(s, words)
                out.append(answer)
                cacheable = core.cacheable
                if cacheable is not None:
                    if len(by_words) >= ANSWER_CACHE_MAX:
                        by_words.clear()
                    dev, until = cacheable
                    by_words[words] = (answer, dev, dev.generation, until)
                if answer.startswith(_WASTE_ANSWERS):
                    wasted += 1
                if s.close_after or s.start_tls:
                    self.tok.reset()
                    pos = len(buf)
                    stop = True
                    break
            # bytes of this chunk that went to refused lines; a chunk without any
            # complete line (a line too long, or never ended) counts whole
            wasted_bytes = used * wasted // len(events) if events else used
            if wasted_bytes and not self._spend(wasted_bytes):
                return
            if stop:
                break
        self._inbuf, self._inpos = (b"", 0) if pos >= len(buf) else (buf, pos)
        if out:
            data = "".join(out).encode("utf-8", "replace")
            if (clean_start and len(out) == 1 and pos == len(buf) and len(buf) < 1024
                    and cacheable is not None and buf[-1:] == b"\n" and not self.tok.pending):
                core.remember(buf, data, *cacheable)  # exactly one whole line in, one answer out
            t.write(data)
        if s.subscribe_to:
            self._subscribe(s.subscribe_to)
            s.subscribe_to = []
        if s.close_after:
            t.close()
            return
        if s.start_tls:
            s.start_tls = False
            self._busy = True
            self.set_reading(True)  # the handshake needs the socket read
            asyncio.get_running_loop().create_task(self._upgrade())
            return
        if self._inpos < len(self._inbuf) and not self._paused and not t.is_closing():
            self.server.queue(self)  # more to do: in the shared queue
        else:
            self.set_reading(not self._paused and self._inpos >= len(self._inbuf))

    def set_reading(self, on: bool) -> None:
        self._reading = set_reading(self.transport, self._reading, on)

    def _spend(self, nbytes: int) -> bool:
        """Draw on the waste budget; False (and the connection dropped) when it is gone."""
        if self._waste.spend(nbytes):
            return True
        self._flooded("with input upsd refuses")
        return False

    def _flooded(self, how: str) -> None:
        addr = self.session.addr if self.session else "?"
        peer_log.log(logging.WARNING, addr, "flood", "Disconnecting %s: it kept sending %s past its budget",
                     addr, how)
        self._inbuf, self._inpos, self._early = b"", 0, b""
        if self.transport is not None:
            self.transport.abort()

    def _subscribe(self, devices: list[Device]) -> None:
        """Push extension: a snapshot now, then one batch per device change."""
        core = self.server.core
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is not None:
            try:  # no request traffic to notice a vanished peer: let TCP do it
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError:
                pass

        def push(dev: Device, changed: frozenset[str]) -> None:
            t = self.transport
            if t is None or t.is_closing():
                return
            if t.get_write_buffer_size() > PUSH_BUFFER_LIMIT:
                log.warning("Push subscriber %s is not reading; disconnecting it",
                            self.session.addr if self.session else "?")
                t.close()
                return
            t.write(core.update_batch(dev, changed or frozenset({"ups.status"})).encode("utf-8", "replace"))

        for dev in devices:
            self._unsubs.append(dev.subscribe(push))
            if self.transport is not None:
                self.transport.write(core.update_batch(dev, None).encode("utf-8", "replace"))

    def pause_writing(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.set_reading(False)

    def resume_writing(self) -> None:
        if self.transport is None or not self._paused:
            return
        self._paused = False
        if self.queued:
            return
        if self._inpos < len(self._inbuf):
            self.server.queue(self)
        else:
            self.set_reading(True)

    def connection_lost(self, exc: Exception | None) -> None:
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        if self.session is not None:
            self.server.core.disconnect(self.session)
            self.session = None
        self._inbuf, self._inpos = b"", 0
        self.server.connections.discard(self)

    async def _upgrade(self) -> None:
        assert self.transport is not None and self.session is not None
        ctx = self.server.ssl_context
        assert ctx is not None
        loop = asyncio.get_running_loop()
        try:
            new = await loop.start_tls(self.transport, self, ctx, server_side=True,
                                       ssl_handshake_timeout=10)
        except (OSError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.warning("TLS handshake with %s failed: %s", self.session.addr, exc)
            self.transport.abort()
            return
        if new is None:
            return
        self.transport = new
        self.session.tls = True
        self._busy = False
        self._reading = True
        if self._early:
            early, self._early = self._early, b""
            self.data_received(early)


class Upsd:
    def __init__(self, core: Core, conf: UpsdConf, ssl_context: ssl.SSLContext | None = None,
                 family: int = 0) -> None:
        self.core = core
        self.conf = conf
        self.ssl_context = ssl_context
        self.family = family
        self.maxconn = conf.maxconn
        self.connections: set[Connection] = set()
        self.servers: list[asyncio.base_events.Server] = []
        self.bound: list[tuple[str, int]] = []
        self._sweeper: asyncio.Task[None] | None = None
        self.heavy: RoundRobin[Connection] = RoundRobin(HEAVY_SECONDS)  # connections with work left
        # GET VAR answers by request words, for lines that come several to a read (the
        # lone-line cache, Core.answers, is keyed by bytes before tokenizing). A hit is
        # checked like Core.answers' and also that the UPS name still maps to the device
        # (a reload may have removed it).
        self.answers_by_words: dict[tuple[str, ...], tuple[str, Device, int, float]] = {}

    def queue(self, conn: Connection) -> None:
        """Give ``conn`` turns from the shared queue; its socket is not read meanwhile."""
        self.heavy.queue(conn)

    def _factory(self) -> Callable[[], Connection]:
        return lambda: Connection(self)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        failures: list[tuple[Listen, str]] = []
        for lst in self.conf.listeners():
            hosts = ["0.0.0.0", "::"] if lst.host == "*" else [lst.host]
            for host in hosts:
                try:
                    infos = await loop.getaddrinfo(host, lst.port, family=self.family,
                                                   type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
                except socket.gaierror as exc:
                    failures.append((lst, f"cannot resolve {host}: {exc.strerror}"))
                    continue
                seen: set[tuple[str, int]] = set()
                for fam, _, _, _, sa in infos:
                    addr = (str(sa[0]), int(sa[1]))
                    if addr in seen or addr in self.bound:
                        continue
                    seen.add(addr)
                    try:
                        srv = await loop.create_server(self._factory(), addr[0], addr[1], family=fam,
                                                       reuse_address=True, backlog=1024)
                    except OSError as exc:
                        failures.append((lst, f"cannot listen on {_fmt(addr)}: {exc.strerror or exc}"))
                        continue
                    self.servers.append(srv)
                    self.bound.append(addr)
                    log.info("listening on %s port %d", addr[0], addr[1])
        if not self.servers:
            await self.close()
            detail = "; ".join(msg for _, msg in failures) or "no LISTEN address"
            raise ListenError(f"no listening interface available ({detail})")
        fatal = [msg for lst, msg in failures if not _is_localhost_alias(lst.host)]
        if fatal and not self.conf.allow_not_all_listeners:
            await self.close()
            raise ListenError("; ".join(fatal) + " (set ALLOW_NOT_ALL_LISTENERS true to carry on)")
        for _, msg in failures:
            log.warning("%s", msg)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            cutoff = time.monotonic() - IDLE_TIMEOUT
            # push subscribers listen without talking: not idle in upsd's sense
            for c in [c for c in self.connections
                      if c.last < cutoff and not (c.session and c.session.subscribed)]:
                if c.transport is not None:
                    log.debug("Disconnect %s (idle timeout)", c.session.addr if c.session else "?")
                    c.transport.close()

    async def close(self) -> None:
        self.heavy.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for srv in self.servers:
            srv.close()
        for c in list(self.connections):
            if c.transport is not None:
                c.transport.close()
        for srv in self.servers:
            await srv.wait_closed()
        self.servers.clear()


def _is_localhost_alias(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1", "ip6-localhost")


def _fmt(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def make_ssl_context(conf: UpsdConf, certfile: str | os.PathLike[str] | None = None) -> ssl.SSLContext | None:
    """Server TLS context from CERTFILE (PEM: certificate chain and key), or from ``certfile``
    (the bridge's generated certificate, server/selfsigned.py) with CERTFILE's companions
    (CERTREQUEST, CERTPATH) applied all the same."""
    certfile = certfile or conf.certfile
    if not certfile:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile)  # raises: upsd must refuse to start
    if conf.certrequest and conf.certpath:
        p = conf.certpath
        if os.path.isdir(p):
            ctx.load_verify_locations(capath=p)
        else:
            ctx.load_verify_locations(cafile=p)
        ctx.verify_mode = ssl.CERT_REQUIRED if conf.certrequest == 2 else ssl.CERT_OPTIONAL
    return ctx
