"""The HTTP endpoint's JSON API, the status page's logins, and acting through upsd's checks.

Reading needs no login, as over NUT (``LIST VAR`` needs none): ``GET /api/ups``,
``/api/ups/<name>``, ``/api/ups/<name>/history``, ``/api/events`` and the live stream
``/api/live`` (Server-Sent Events). Acting (``POST /api/ups/<name>/command`` and ``/set``) needs
an upsd.users account, given either as the status page's session cookie (plus its CSRF token
in ``X-CSRF-Token``) or, for scripts, as HTTP Basic credentials (then the body must be
``application/json``, which no cross-site HTML form can send). Never without.

Nothing here checks rights by itself: every action runs through a
:class:`~nutbridge.server.core.Core` session logged in as that user, so it gets upsd's
checks in upsd's order, upsd's error names, tracking and the event history's record of
who did it. Logging in to the page checks the credentials with the same
:class:`~nutbridge.config.users.Users` methods upsd uses; NUT itself only finds a wrong
password when an action is tried, so an account is accepted when it holds at least one right
those methods confirm (an account with no right could do nothing after logging in anyway).

Sessions are server-side (:class:`Sessions`: random ids, idle and absolute expiry, a bound
on their number, the least recently used dropped first); the password stays in memory
only, because upsd checks it again on every action, and is never logged or sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import secrets
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..history import public
from ..protocol.errors import CLIENT_ERROR_TEXT, Err
from ..server.frontend import Frontend
from ..state import Device
from .live import SERIES_FIELDS, LiveHub, summarize

log = logging.getLogger("nutbridge.web")

SESSION_COOKIE = "nutbridge_session"
LOGIN_COOKIE = "nutbridge_login"  # the login form's CSRF token (double submit)
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 64
SESSION_IDLE = 3600.0  # a session unused this long is gone
SESSION_LIFETIME = 12 * 3600.0  # and any session after this long
LOGIN_FAILURES = 5  # failed logins from one address within LOGIN_WINDOW: then refused
LOGIN_WINDOW = 60.0
LOGIN_TRACKED = 4096  # addresses whose failures are remembered (oldest forgotten)
ACT_WAIT = 5.0  # how long an action waits for the driver's tracking result
MAX_BODY = 4096
MAX_WORD = 256
KEEPALIVE = 15.0  # an SSE comment this often keeps proxies and the browser's connection alive
SSE_SNDBUF = 32768  # small kernel buffer for live streams: a stuck client shows up soon

# NUT error name -> HTTP status
HTTP_STATUS: dict[str, int] = {
    Err.USERNAME_REQUIRED: 401,
    Err.PASSWORD_REQUIRED: 401,
    Err.ACCESS_DENIED: 403,
    Err.UNKNOWN_UPS: 404,
    Err.CMD_NOT_SUPPORTED: 404,
    Err.VAR_NOT_SUPPORTED: 404,
    Err.READONLY: 409,
    Err.INVALID_ARGUMENT: 400,
    Err.INVALID_VALUE: 400,
    Err.TOO_LONG: 400,
    Err.DATA_STALE: 503,
    Err.DRIVER_NOT_CONNECTED: 503,
    Err.INSTCMD_FAILED: 502,
    Err.SET_FAILED: 502,
    Err.FAILED: 502,
    Err.UNKNOWN: 502,
}


def error_text(code: str) -> str:
    return CLIENT_ERROR_TEXT.get(code, code.replace("-", " ").capitalize())


def json_error(code: str, message: str | None = None, status: int | None = None) -> web.Response:
    """An error as JSON, named as NUT names it: ``{"error": "ACCESS-DENIED", "message": ...}``."""
    return web.json_response({"error": code, "message": message or error_text(code)},
                             status=status or HTTP_STATUS.get(code, 400))


# ---- who is asking --------------------------------------------------------------------------


@dataclass(eq=False)
class WebSession:
    id: str
    user: str
    password: str = field(repr=False)
    addr: str
    csrf: str
    created: float
    used: float
    flash: str | None = None  # the result of a no-JavaScript form action, shown once


@dataclass(frozen=True)
class Identity:
    """An upsd.users account a request acts as (from a session, or HTTP Basic)."""

    user: str
    password: str = field(repr=False)
    addr: str
    session: WebSession | None = None


class Sessions:
    """Logged-in browsers, bounded: at most ``limit``, the least recently used dropped first."""

    def __init__(self, limit: int = MAX_SESSIONS, idle: float = SESSION_IDLE,
                 lifetime: float = SESSION_LIFETIME) -> None:
        self.limit = limit
        self.idle = idle
        self.lifetime = lifetime
        self._by_id: OrderedDict[str, WebSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def _expired(self, s: WebSession, now: float) -> bool:
        return now - s.used > self.idle or now - s.created > self.lifetime

    def get(self, sid: str | None, now: float | None = None) -> WebSession | None:
        if not sid:
            return None
        s = self._by_id.get(sid)
        if s is None:
            return None
        now = time.monotonic() if now is None else now
        if self._expired(s, now):
            del self._by_id[sid]
            return None
        s.used = now
        self._by_id.move_to_end(sid)
        return s

    def create(self, user: str, password: str, addr: str, now: float | None = None) -> WebSession:
        now = time.monotonic() if now is None else now
        for sid in [k for k, v in self._by_id.items() if self._expired(v, now)]:
            del self._by_id[sid]
        while len(self._by_id) >= self.limit:
            self._by_id.popitem(last=False)
        s = WebSession(secrets.token_urlsafe(32), user, password, addr, secrets.token_urlsafe(32), now, now)
        self._by_id[s.id] = s
        return s

    def drop(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)


class Failures:
    """Failed logins per address: more than :data:`LOGIN_FAILURES` a minute are refused."""

    def __init__(self) -> None:
        self._by_addr: OrderedDict[str, list[float]] = OrderedDict()

    def blocked(self, addr: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        times = [t for t in self._by_addr.get(addr, []) if now - t < LOGIN_WINDOW]
        return len(times) >= LOGIN_FAILURES

    def failed(self, addr: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        times = [t for t in self._by_addr.pop(addr, []) if now - t < LOGIN_WINDOW][-LOGIN_FAILURES:]
        self._by_addr[addr] = [*times, now]
        while len(self._by_addr) > LOGIN_TRACKED:
            self._by_addr.popitem(last=False)

    def succeeded(self, addr: str) -> None:
        self._by_addr.pop(addr, None)


class Auth:
    """Sessions, credentials and rights, all decided by the bridge's upsd.users."""

    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend
        self.sessions = Sessions()
        self.failures = Failures()

    # -- rights: the Users checks upsd makes, with the request's address --------------------
    def _permitted(self, addr: str) -> bool:
        ha = self.frontend.core.hosts_access
        return ha is None or ha.permits(addr)

    def valid(self, user: str, password: str, addr: str) -> bool:
        """Credentials upsd would accept for at least one action or command (see module doc)."""
        users = self.frontend.core.users
        rec = users.users.get(user)
        if rec is None or not self._permitted(addr):
            return False
        if any(users.check_action(user, password, addr, a) for a in sorted(rec.actions)):
            return True
        return any(users.check_instcmd(user, password, addr, c) for c in sorted(rec.instcmds)[:1])

    def may_act(self, who: Identity | None) -> bool:
        """May see who did what in the history (upsd's rule for LIST EVENT)."""
        return who is not None and self.valid(who.user, who.password, who.addr)

    def commands(self, who: Identity | None, dev: Device) -> list[str]:
        """The instant commands of ``dev`` this account may run (INSTCMD's check)."""
        if who is None or not self._permitted(who.addr):
            return []
        users = self.frontend.core.users
        return [c for c in dev.commands() if users.check_instcmd(who.user, who.password, who.addr, c)]

    def may_set(self, who: Identity | None) -> bool:
        if who is None or not self._permitted(who.addr):
            return False
        return self.frontend.core.users.check_action(who.user, who.password, who.addr, "set")

    # -- requests ----------------------------------------------------------------------------
    def session_of(self, request: web.Request) -> WebSession | None:
        s = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        # a session is bound to the address that logged in (a stolen cookie elsewhere is void)
        return s if s is not None and s.addr == remote(request) else None

    def identify(self, request: web.Request) -> Identity | None:
        """The account of the request: Basic credentials when sent, else the session."""
        basic = basic_credentials(request)
        if basic is not None:
            user, password = basic
            return Identity(user, password, remote(request))
        s = self.session_of(request)
        return Identity(s.user, s.password, s.addr, s) if s is not None else None


def remote(request: web.Request) -> str:
    """The peer's address as upsd's checks take it (an IPv4-mapped IPv6 address as IPv4;
    the same rule as server.peer_address, which cannot be imported from here)."""
    addr = request.remote or "?"
    if addr.startswith("::ffff:") and "." in addr:
        addr = addr[7:]
    return addr


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep and user else None


def same_origin(request: web.Request) -> bool:
    """Not sent by another site's page (a check on top of SameSite cookies and CSRF tokens).

    ``Sec-Fetch-Site`` (every current browser) must be ``same-origin`` or ``none`` (typed by the
    user); an ``Origin`` must be this one. ``Origin: null`` is what a browser sends for our own
    forms under ``Referrer-Policy: no-referrer``, so it proves nothing either way: the tokens
    decide. curl and scripts send neither header.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def csrf_ok(session: WebSession, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), (token or "").encode())


# ---- acting through upsd ------------------------------------------------------------------


@dataclass
class Outcome:
    """What upsd said (``error``: its ERR name) and what the driver did (``result``)."""

    error: str | None = None
    result: str | None = None  # SUCCESS, PENDING, or an ERR name from GET TRACKING

    @property
    def ok(self) -> bool:
        return self.error is None and self.result in (None, "SUCCESS", "PENDING")


async def act(frontend: Frontend, who: Identity, words: tuple[str, ...]) -> Outcome:
    """Run one INSTCMD or SET VAR as ``who`` in a Core session of its own, with tracking on,
    and wait up to :data:`ACT_WAIT` for the driver's result."""
    core = frontend.core
    s = core.connect(who.addr)
    try:
        core.handle(s, ("USERNAME", who.user))
        core.handle(s, ("PASSWORD", who.password))
        core.handle(s, ("SET", "TRACKING", "ON"))
        answer = core.handle(s, words).strip()
        if answer.startswith("ERR"):
            parts = answer.split()
            return Outcome(error=parts[1] if len(parts) > 1 else "UNKNOWN")
        parts = answer.split()
        if len(parts) < 3 or parts[1] != "TRACKING":
            return Outcome()
        deadline = time.monotonic() + ACT_WAIT
        while True:
            state = core.handle(s, ("GET", "TRACKING", parts[2])).strip()
            if state != "PENDING" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        return Outcome(result=state.split()[1] if state.startswith("ERR ") else state)
    finally:
        core.disconnect(s)


def outcome_response(out: Outcome, body: dict[str, Any]) -> web.Response:
    if out.error is not None:
        return json_error(out.error)
    result = out.result or "SUCCESS"
    if result in ("SUCCESS", "PENDING"):
        return web.json_response({**body, "result": result})
    return web.json_response({**body, "result": result, "error": result, "message": error_text(result)},
                             status=HTTP_STATUS.get(result, 502))


def describe_outcome(out: Outcome, what: str) -> str:
    """One line for the page: ``beeper.toggle: done`` / ``...: Access denied (ACCESS-DENIED)``."""
    if out.error is not None:
        return f"{what}: {error_text(out.error)} ({out.error})"
    if out.result in (None, "SUCCESS"):
        return f"{what}: done"
    if out.result == "PENDING":
        return f"{what}: sent, no result from the driver yet"
    return f"{what}: the driver reported {out.result}"


def _word(value: object) -> str | None:
    """A request field usable as one protocol word (a string, 1..256 characters, no newline)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_WORD or "\n" in value or "\r" in value:
        return None
    return value


def command_words(dev_name: str, command: object, param: object) -> tuple[str, ...] | None:
    cmd = _word(command)
    if cmd is None or " " in cmd:
        return None
    if param in (None, ""):
        return ("INSTCMD", dev_name, cmd)
    p = _word(param)
    return ("INSTCMD", dev_name, cmd, p) if p is not None else None


def set_words(dev_name: str, var: object, value: object) -> tuple[str, ...] | None:
    name = _word(var)
    if name is None or " " in name or not isinstance(value, str) or len(value) > MAX_WORD \
            or "\n" in value or "\r" in value:
        return None
    return ("SET", "VAR", dev_name, name, value)


# ---- JSON views -----------------------------------------------------------------------------


def rw_view(dev: Device) -> list[dict[str, Any]]:
    out = []
    for v in dev.variables():
        if not v.rw:
            continue
        item: dict[str, Any] = {"name": v.name, "value": v.value, "type": "string" if v.string else "number"}
        if v.string:
            item["maxlen"] = v.aux
        if v.enums:
            item["enum"] = list(v.enums)
        if v.ranges:
            item["range"] = [list(r) for r in v.ranges]
        out.append(item)
    return out


def ups_detail(frontend: Frontend, auth: Auth, dev: Device, who: Identity | None) -> dict[str, Any]:
    desc = frontend.core.descriptions
    body = summarize(dev, float(frontend.upsd.maxage))
    body["variables"] = {v.name: (dev.served_status() if v.name.lower() == "ups.status" else v.value)
                         for v in dev.variables()}
    body["commands"] = [{"name": c, "desc": desc.cmd(c) or ""} for c in dev.commands()]
    body["rw"] = rw_view(dev)
    body["you"] = None if who is None else {
        "user": who.user, "commands": auth.commands(who, dev), "set": auth.may_set(who)}
    return body


class Api:
    """The ``/api`` routes."""

    def __init__(self, frontend: Frontend, live: LiveHub, auth: Auth) -> None:
        self.frontend = frontend
        self.live = live
        self.auth = auth

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/ups", self.list_ups)
        app.router.add_get("/api/ups/{name}", self.get_ups)
        app.router.add_get("/api/ups/{name}/history", self.get_history)
        app.router.add_get("/api/events", self.get_events)
        app.router.add_get("/api/live", self.live_stream)
        app.router.add_post("/api/ups/{name}/command", self.post_command)
        app.router.add_post("/api/ups/{name}/set", self.post_set)

    def _reader(self, request: web.Request) -> Identity | None:
        """Who is reading, if the credentials hold (GETs never fail for bad ones)."""
        who = self.auth.identify(request)
        return who if self.auth.may_act(who) else None

    async def list_ups(self, request: web.Request) -> web.Response:
        maxage = float(self.frontend.upsd.maxage)
        return web.json_response({
            "bridge": {"version": self.frontend.version, "id": self.frontend.server_id()},
            "ups": [summarize(d, maxage) for d in self.frontend.devices],
        })

    async def get_ups(self, request: web.Request) -> web.Response:
        dev = self.frontend.core.find(request.match_info["name"])
        if dev is None:
            return json_error(Err.UNKNOWN_UPS)
        return web.json_response(ups_detail(self.frontend, self.auth, dev, self._reader(request)))

    async def get_history(self, request: web.Request) -> web.Response:
        dev = self.frontend.core.find(request.match_info["name"])
        if dev is None:
            return json_error(Err.UNKNOWN_UPS)
        series = self.live.series.get(dev.name)
        return web.json_response({
            "name": dev.name, "now": round(time.time(), 1), "interval": self.live.interval,
            "window": series.window if series else 0, "fields": ["t", *SERIES_FIELDS],
            "points": series.points() if series else [],
        })

    async def get_events(self, request: web.Request) -> web.Response:
        ups = request.query.get("ups")
        if ups is not None and self.frontend.core.find(ups) is None:
            return json_error(Err.UNKNOWN_UPS)
        text = request.query.get("count", "100")
        if not (text.isascii() and text.isdigit()) or not int(text) >= 1:
            return json_error(Err.INVALID_ARGUMENT, "count must be a positive number")
        recs = self.frontend.history.records(ups, count=min(int(text), 1000))
        if self._reader(request) is None:
            recs = [public(r) for r in recs]
        return web.json_response({"events": recs})

    async def live_stream(self, request: web.Request) -> web.StreamResponse:
        client = self.live.connect(remote(request), private=self._reader(request) is not None)
        if client is None:
            return json_error("BUSY", "too many live clients", 503)
        try:
            resp = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-store",
                "X-Accel-Buffering": "no"})
            await resp.prepare(request)
            transport = request.transport
            if transport is not None:
                client.abort = transport.abort
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SSE_SNDBUF)
            await resp.write(b"retry: 2000\n\n")
            while not client.dropped.is_set():
                try:
                    msg = await asyncio.wait_for(client.queue.get(), KEEPALIVE)
                except TimeoutError:
                    msg = b": keep-alive\n\n"
                await resp.write(msg)
        except (ConnectionError, RuntimeError):
            pass  # the browser went away (or was dropped): nothing to answer
        finally:
            self.live.disconnect(client)
        return resp

    # -- actions ------------------------------------------------------------------------------
    async def _actor(self, request: web.Request) -> Identity | web.Response:
        """The account a POST acts as, or the refusal (never anonymous)."""
        if not same_origin(request):
            return json_error(Err.ACCESS_DENIED, "cross-origin request refused")
        if basic_credentials(request) is not None:
            if request.content_type != "application/json":
                return json_error(Err.INVALID_ARGUMENT, "the body must be application/json")
            if self.auth.failures.blocked(remote(request)):
                return json_error(Err.ACCESS_DENIED, "too many failed logins; wait a minute", 429)
            who = self.auth.identify(request)
            assert who is not None
            return who
        session = self.auth.session_of(request)
        if session is None:
            return json_error(Err.USERNAME_REQUIRED, "log in first (session cookie or HTTP Basic)")
        if not csrf_ok(session, request.headers.get(CSRF_HEADER)):
            return json_error(Err.ACCESS_DENIED, f"missing or wrong {CSRF_HEADER}")
        return Identity(session.user, session.password, session.addr, session)

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return json_error(Err.INVALID_ARGUMENT, "body too large", 413)
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return json_error(Err.INVALID_ARGUMENT, "body too large", 413)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            return json_error(Err.INVALID_ARGUMENT, "the body is not JSON")
        if not isinstance(body, dict):
            return json_error(Err.INVALID_ARGUMENT, "the body must be a JSON object")
        return body

    async def _run(self, request: web.Request, words: tuple[str, ...] | None, who: Identity,
                   echo: dict[str, Any]) -> web.Response:
        if words is None:
            return json_error(Err.INVALID_ARGUMENT)
        out = await act(self.frontend, who, words)
        if out.error == Err.ACCESS_DENIED and who.session is None:
            self.auth.failures.failed(who.addr)  # Basic: a wrong password counts as a failed login
        return outcome_response(out, echo)

    async def post_command(self, request: web.Request) -> web.Response:
        who = await self._actor(request)
        if isinstance(who, web.Response):
            return who
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        name = request.match_info["name"]
        words = command_words(name, body.get("command"), body.get("param"))
        return await self._run(request, words, who, {"ups": name, "command": body.get("command")})

    async def post_set(self, request: web.Request) -> web.Response:
        who = await self._actor(request)
        if isinstance(who, web.Response):
            return who
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        name = request.match_info["name"]
        value = body.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        words = set_words(name, body.get("var"), value)
        return await self._run(request, words, who, {"ups": name, "var": body.get("var"), "value": value})
