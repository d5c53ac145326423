"""upsd's network layer: listeners, connections, TLS upgrade, idle shedding.

Thin by design: bytes go through the sans-IO tokenizer into :class:`Core` and
its answers go back in one ``write`` per received chunk, so a LIST VAR leaves in
one segment (upstream's per-line writes meet Nagle + delayed ACK).
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
from ..state import Device
from .core import Core, Session

log = logging.getLogger("nutbridge.upsd")

IDLE_TIMEOUT = float(os.environ.get("NUTBRIDGE_IDLE_TIMEOUT", "60"))  # upstream: 60 s
SWEEP_INTERVAL = 2.0  # upstream's main loop granularity
WRITE_HIGH_WATER = 256 * 1024
PUSH_BUFFER_LIMIT = 1024 * 1024  # a push subscriber this far behind is dropped


class ListenError(Exception):
    pass


class Connection(asyncio.Protocol):
    __slots__ = ("_busy", "_early", "_inbuf", "_inpos", "_paused", "_unsubs", "last", "server", "session",
                 "tok", "transport")

    def __init__(self, server: Upsd) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.tok = Tokenizer()
        self.last = time.monotonic()
        self._paused = False  # the client is not reading its answers
        self._busy = False  # a TLS upgrade is running
        self._early = b""  # decrypted data that arrived before start_tls() returned
        self._inbuf = b""  # received, not yet handled (only while paused)
        self._inpos = 0
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
            log.warning("Rejecting TCP connection from %s (not in ALLOW networks)", addr)
            transport.abort()
            return
        if srv.maxconn and len(srv.connections) >= srv.maxconn:
            log.warning("Maximum number of connections (%d) reached; refusing %s", srv.maxconn, addr)
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
            # end of its handshake; keep it for when the upgrade completes
            self._early += data
            return
        if self.session is None or self.transport is None:
            return
        self.last = time.monotonic()
        if self._paused or self._inpos < len(self._inbuf):
            self._inbuf = self._inbuf[self._inpos :] + data
            self._inpos = 0
            if not self._paused:
                self._drain()
            return
        if self.transport.get_write_buffer_size() == 0 and data.count(b"\n") <= 64:
            self._answer(data)  # the usual case: a few requests, answered at once
        else:
            self._inbuf, self._inpos = data, 0
            self._drain()

    def _answer(self, data: bytes) -> None:
        """Handle every complete line in ``data`` and send the answers in one write."""
        s, t = self.session, self.transport
        assert s is not None and t is not None
        handle = self.server.core.handle
        out: list[str] = []
        for ev in self.tok.feed(data):
            if isinstance(ev, ParseError):
                # upstream logs it, answers nothing and drops the rest of the read
                log.info("Parse error on sock from %s: %s", s.addr, ev.message)
                self.tok.reset()
                self._inbuf, self._inpos = b"", 0
                break
            out.append(handle(s, ev.words))
            if s.close_after or s.start_tls:
                self.tok.reset()
                self._inbuf, self._inpos = b"", 0
                break
        if out:
            t.write("".join(out).encode("utf-8", "replace"))
        if s.subscribe_to:
            self._subscribe(s.subscribe_to)
            s.subscribe_to = []
        if s.close_after:
            t.close()
        elif s.start_tls:
            s.start_tls = False
            self._busy = True
            asyncio.get_running_loop().create_task(self._upgrade())

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

    def _drain(self) -> None:
        """Answer buffered requests while the client reads its answers.

        A client that pipelines requests but never reads gets at most one
        write-buffer's worth of answers; the rest of its input waits (and its
        socket is not read) until it catches up, so memory stays bounded.
        """
        t = self.transport
        while t is not None and self.session is not None and self._inpos < len(self._inbuf):
            if t.get_write_buffer_size() > WRITE_HIGH_WATER or t.is_closing() or self._busy:
                break
            i = self._inbuf.find(b"\n", self._inpos, self._inpos + 65536)
            end = len(self._inbuf) if i < 0 else i + 1
            if i < 0 and end - self._inpos > 65536:
                end = self._inpos + 65536
            # about 64 requests at a time: one write each, without a big join
            for _ in range(63):
                j = self._inbuf.find(b"\n", end, end + 4096)
                if j < 0:
                    break
                end = j + 1
            piece = self._inbuf[self._inpos : end]
            self._inpos = end
            self._answer(piece)
            t = self.transport
        if self._inpos >= len(self._inbuf):
            self._inbuf, self._inpos = b"", 0

    def pause_writing(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is None or not self._paused:
            return
        self._paused = False
        self._drain()
        if not self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

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


def make_ssl_context(conf: UpsdConf) -> ssl.SSLContext | None:
    """Server TLS context from CERTFILE (PEM: certificate chain and key)."""
    if not conf.certfile:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(conf.certfile)  # raises: upsd must refuse to start
    if conf.certrequest and conf.certpath:
        p = conf.certpath
        if os.path.isdir(p):
            ctx.load_verify_locations(capath=p)
        else:
            ctx.load_verify_locations(cafile=p)
        ctx.verify_mode = ssl.CERT_REQUIRED if conf.certrequest == 2 else ssl.CERT_OPTIONAL
    return ctx
