"""The HTTP endpoint's server: listeners, TLS, access rules, security headers (docs/http.md).

One aiohttp application on an :class:`~aiohttp.web.AppRunner`, one TCP site per address
``HTTP_LISTEN`` (or ``--http``) resolves to, bound like upsd's LISTEN (``*`` is every IPv4 and
IPv6 address; a port in use is :class:`~nutbridge.server.upsd.ListenError`, so the bridge exits
1 saying which).

Secure by default:

* **TLS only** when the bridge has a certificate (CERTFILE, or the one it makes when upsd
  listens beyond loopback: docs/tls.md): the same context as STARTTLS, so browsers and
  Prometheus see the fingerprint zeroconf and the app announce. A bridge without one speaks
  plain HTTP (it then listens on loopback unless told otherwise, as upsd does).
* **The same peers as upsd**: upsd.conf's ALLOW networks and, when hosts.allow/hosts.deny name
  upsd, their verdict, for every request (403 otherwise). Reading needs no login; what acts
  (the status page's commands) goes through Core sessions with upsd.users' checks.
* **No peer can take the endpoint (or the bridge's file descriptors) away from the others**:
  at most :data:`MAX_CONNECTIONS` connections, :data:`MAX_PER_PEER` of them from one address
  (refused ones are closed at once); a connection that sends no complete request is closed
  after the keep-alive time, a TLS handshake that does not finish after :data:`TLS_HANDSHAKE`;
  the bridge lifts its soft limit on open files at start.
* Bounded requests (line, header and body sizes), a short keep-alive, strict headers
  (Content-Security-Policy without inline script or style, ``nosniff``, no framing, no
  referrer), no proxy headers trusted (the peer is the socket's).
* Access logging at debug level only, path without query string (nut_exporter's scrape
  parameters may carry a password); refusals once per peer per minute.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from ..config.upsd_conf import Listen
from ..ratelog import RateLimitedLog
from ..server.frontend import Frontend
from ..server.upsd import ListenError
from . import page
from .metrics import TEXT_CONTENT_TYPE, Exposition

log = logging.getLogger("nutbridge.web")
access_log = logging.getLogger("nutbridge.web.access")
peer_log = RateLimitedLog(log)

#: request limits: a status page, an API and a scrape endpoint need little
MAX_BODY = 64 * 1024
MAX_LINE = 8 * 1024
MAX_FIELD = 8 * 1024
MAX_HEADERS = 64
KEEPALIVE = 15.0  # seconds an idle keep-alive connection is kept
SHUTDOWN_GRACE = 2.0  # seconds in-flight requests get when the bridge stops
BACKLOG = 256
#: connections at once (a status page holds one for its live stream, a browser up to six, a
#: Prometheus one), and from one address (a reverse proxy is one address for all its users)
MAX_CONNECTIONS = 256
MAX_PER_PEER = 32
TLS_HANDSHAKE = 10.0  # seconds

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def peer_address(request: BaseRequest) -> str:
    """The peer's address as upsd's checks take it (an IPv4-mapped IPv6 address as IPv4)."""
    addr = request.remote or ""
    if addr.startswith("::ffff:") and "." in addr:
        addr = addr[7:]
    return addr


class DebugAccessLogger(AbstractAccessLogger):
    """aiohttp's access log at debug level, without query strings (they may hold secrets)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.debug("%s %s %s %d %.1f ms", peer_address(request), request.method,
                          request.path, response.status, time * 1000)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


def make_app(frontend: Frontend) -> web.Application:
    """The application: access rules and headers, /metrics and /ups_metrics, the status page."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        addr = peer_address(request)
        hosts = frontend.core.hosts_access
        if not frontend.upsd.client_allowed(addr):
            peer_log.log(logging.WARNING, addr, "http-allow",
                         "HTTP: refusing %s (not in ALLOW networks)", addr)
            return _refuse()
        if hosts is not None and not hosts.permits(addr):
            peer_log.log(logging.WARNING, addr, "http-hosts",
                         "HTTP: access denied to %s by hosts.allow/hosts.deny", addr)
            return _refuse()
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # 404, 405... get the headers too
            _secure(exc)
            raise
        _secure(response)
        return response

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    exposition = Exposition(frontend)

    async def metrics(request: web.Request) -> web.Response:
        # rendered in the loop: the state is in memory and the render is cheap (cached per
        # UPS; docs/prometheus.md "Cost")
        response = web.Response(body=exposition.render(),
                                headers={"Content-Type": TEXT_CONTENT_TYPE, "Cache-Control": "no-store"})
        response.enable_compression()  # large bodies are compressed in an executor thread
        return response

    async def ups_metrics(request: web.Request) -> web.Response:
        status, ctype, body = exposition.ups_metrics({k: request.query.get(k, "") for k in
                                                      ("ups", "variables", "statuses")})
        response = web.Response(status=status, body=body,
                                headers={"Content-Type": ctype, "Cache-Control": "no-store"})
        response.enable_compression()
        return response

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/ups_metrics", ups_metrics)
    page.setup(app, frontend)
    return app


def _refuse() -> web.Response:
    response = web.Response(status=403, text="403: Forbidden\n")
    _secure(response)
    return response


def _secure(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


class Connections:
    """Who holds the endpoint's connections; each new one is admitted or dropped here, before
    aiohttp sees a byte of it."""

    def __init__(self) -> None:
        self.per_peer: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return self.per_peer.total()

    def admit(self, addr: str) -> bool:
        # ALLOW and hosts.allow are the middleware's (a refused browser gets a 403 that says
        # so, not a reset); a refused peer's connections count here like anyone's
        if self.total >= MAX_CONNECTIONS:
            peer_log.log(logging.WARNING, "*", "http-maxconn",
                         "HTTP: %d connections open; refusing %s", self.total, addr)
        elif self.per_peer[addr] >= MAX_PER_PEER:
            peer_log.log(logging.WARNING, addr, "http-peer",
                         "HTTP: %s holds %d connections; refusing another", addr, self.per_peer[addr])
        else:
            self.per_peer[addr] += 1
            return True
        return False

    def release(self, addr: str) -> None:
        self.per_peer[addr] -= 1
        if self.per_peer[addr] <= 0:
            del self.per_peer[addr]


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol behind :class:`Connections`: admitted connections are handed to it
    whole, the others aborted at once."""

    def __init__(self, book: Connections, factory: Callable[[], asyncio.Protocol]) -> None:
        self.book = book
        self.factory = factory
        self.inner: asyncio.Protocol | None = None
        self.addr = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        addr = str(peer[0]) if peer else "unknown"
        if addr.startswith("::ffff:") and "." in addr:
            addr = addr[7:]
        if not self.book.admit(addr):
            cast(asyncio.Transport, transport).abort()
            return
        self.addr = addr
        self.inner = self.factory()
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        inner, self.inner = self.inner, None
        if inner is not None:
            self.book.release(self.addr)
            inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class WebServer:
    """The endpoint's life cycle (a :class:`~nutbridge.server.frontend.FrontendService`)."""

    def __init__(self, frontend: Frontend, listens: list[Listen], family: int = 0) -> None:
        self.frontend = frontend
        self.listens = listens
        self.family = family
        self.runner: web.AppRunner | None = None
        self.servers: list[asyncio.AbstractServer] = []
        self.bound: list[tuple[str, int]] = []
        self.tls = frontend.ssl_context is not None
        self.connections = Connections()

    async def start(self) -> None:
        app = make_app(self.frontend)
        runner = web.AppRunner(
            app, access_log_class=DebugAccessLogger, access_log=access_log,
            keepalive_timeout=KEEPALIVE, shutdown_timeout=SHUTDOWN_GRACE,
            max_line_size=MAX_LINE, max_field_size=MAX_FIELD, max_headers=MAX_HEADERS)
        await runner.setup()
        self.runner = runner
        loop = asyncio.get_running_loop()
        failures: list[tuple[Listen, str]] = []
        # our own listening sockets (not aiohttp's TCPSite): each connection passes Connections
        # first; aiohttp's server still owns the admitted ones and closes them on cleanup
        handler = cast(Callable[[], asyncio.Protocol], runner.server)
        ctx = self.frontend.ssl_context

        def guarded() -> asyncio.Protocol:
            return _Guarded(self.connections, handler)

        for lst in self.listens:
            for host in ["0.0.0.0", "::"] if lst.host == "*" else [lst.host]:
                try:
                    infos = await loop.getaddrinfo(host, lst.port, family=self.family,
                                                   type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
                except (socket.gaierror, UnicodeError) as exc:
                    failures.append((lst, f"cannot resolve {host}: "
                                          f"{getattr(exc, 'strerror', None) or exc}"))
                    continue
                for _, _, _, _, sa in infos:
                    addr = (str(sa[0]), int(sa[1]))
                    if addr in self.bound:
                        continue
                    try:
                        self.servers.append(await loop.create_server(
                            guarded, addr[0], addr[1], ssl=ctx, backlog=BACKLOG, reuse_address=True,
                            ssl_handshake_timeout=TLS_HANDSHAKE if ctx is not None else None))
                    except OSError as exc:
                        reason = os.strerror(exc.errno) if exc.errno else str(exc)
                        failures.append((lst, f"cannot listen on {_fmt(addr)}: {reason}"))
                        continue
                    self.bound.append(addr)
                    log.info("HTTP%s: listening on %s (status page, /metrics)",
                             "S" if self.tls else "", _fmt(addr))
        # upsd's rules (server/upsd.py): nothing bound is fatal, and so is any address but a
        # localhost alias unless ALLOW_NOT_ALL_LISTENERS
        if not self.bound:
            await self.stop()
            detail = "; ".join(msg for _, msg in failures) or "no HTTP_LISTEN address"
            raise ListenError(f"HTTP: no listening interface available ({detail})")
        fatal = [msg for lst, msg in failures if not _is_localhost_alias(lst.host)]
        if fatal and not self.frontend.upsd.allow_not_all_listeners:
            await self.stop()
            raise ListenError("HTTP: " + "; ".join(fatal) +
                              " (set ALLOW_NOT_ALL_LISTENERS true to carry on)")
        for _, msg in failures:
            log.warning("HTTP: %s", msg)

    async def stop(self) -> None:
        servers, self.servers = self.servers, []
        for srv in servers:
            srv.close()  # no new connections; aiohttp's shutdown closes the open ones
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.cleanup()
        for srv in servers:
            await srv.wait_closed()


def _is_localhost_alias(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1", "ip6-localhost")


def _fmt(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"
