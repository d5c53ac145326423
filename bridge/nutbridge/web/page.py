"""The status page: every UPS of the bridge, rendered on the server, kept live by SSE.

``GET /`` answers complete HTML: every UPS with its status in words and colour, charge,
runtime, load, input/output voltage, a chart of the last hour (inline SVG), stale or
offline marked, and the recent events. It works without JavaScript and in ``curl``;
``/static/app.js`` then follows ``/api/live`` and updates the page in place. No inline
script and no inline style (the endpoint's Content-Security-Policy forbids them), nothing
from another origin.

Reading needs no login. Logging in (``/login``, an upsd.users account) shows the instant
commands and writable variables that account may use; the forms post to ``/ups/<name>/...``
without JavaScript (result shown after a redirect) or, with it, to the JSON API. Either
way the action runs through a Core session as that user (:func:`.api.act`).

:func:`setup` is what the HTTP server (``web/server.py``) calls to register all this.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from datetime import datetime
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from ..history import Event, public
from ..server.frontend import Frontend
from ..state import Device, Variable
from .api import (
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Api,
    Auth,
    Identity,
    act,
    command_words,
    csrf_ok,
    describe_outcome,
    remote,
    same_origin,
    set_words,
)
from .live import HISTORY_SHOWN, WINDOW, LiveHub, summarize

LIVE = web.AppKey("nutbridge_web_live", LiveHub)
AUTH = web.AppKey("nutbridge_web_auth", Auth)

STATIC = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
MAX_FORM = 4096


def setup(app: web.Application, frontend: Frontend) -> None:
    """Register the status page, its static files and the JSON API on ``app``."""
    live = LiveHub(frontend)
    auth = Auth(frontend)
    app[LIVE] = live
    app[AUTH] = auth
    page = Page(frontend, live, auth)

    async def on_startup(_: web.Application) -> None:
        await live.start()

    async def on_shutdown(_: web.Application) -> None:
        live.close_clients()  # SSE handlers return now instead of holding the shutdown

    async def on_cleanup(_: web.Application) -> None:
        await live.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/", page.index)
    app.router.add_get("/login", page.login_form)
    app.router.add_post("/login", page.login)
    app.router.add_post("/logout", page.logout)
    app.router.add_post("/ups/{name}/command", page.form_command)
    app.router.add_post("/ups/{name}/set", page.form_set)
    app.router.add_get("/static/{file}", page.static)
    Api(frontend, live, auth).add_routes(app)


# ---- formatting (the same rules as app.js) ------------------------------------------------


def fmt_number(v: float | None, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "\u2014"
    text = f"{v:.{digits}f}"
    return f"{text} {unit}".rstrip()


def fmt_runtime(v: float | None) -> str:
    if v is None:
        return "\u2014"
    s = int(v)
    if s < 60:
        return f"{s} s"
    h, m = divmod(s // 60, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def fmt_ts(ts: str) -> str:
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return ts
    return t.strftime("%Y-%m-%d %H:%M:%S")


STATE_TEXT = {
    "stale": "Data stale: the values shown are the last ones received",
    "offline": "Offline: the driver is not connected",
    "wait": "Waiting for the first data from the driver",
}


def slug(name: str) -> str:
    return "ups-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


MIN_SPAN = 60.0  # a chart spans the data it has (a fresh bridge), at least a minute, at most WINDOW


def chart_span(first: float | None, now: float) -> float:
    """Seconds the chart covers: the last hour, or less while the bridge has less."""
    return WINDOW if first is None else min(WINDOW, max(MIN_SPAN, now - first))


def chart_caption(span: float) -> str:
    return "Last hour" if span >= WINDOW else f"Last {max(1, round(span / 60))} min"


def chart_svg(points: list[list[float | None]], now: float) -> str:
    """Charge and load (0-100 %) as two polylines over :func:`chart_span`, drawn without
    JavaScript (app.js redraws it the same way as samples arrive)."""
    span = chart_span(float(points[0][0] or 0) if points else None, now)
    lines: dict[str, list[str]] = {"charge": [], "load": []}
    for row in points:
        x = max(0.0, 360.0 - (now - float(row[0] or 0)) / span * 360.0)
        for key, v in (("charge", row[1]), ("load", row[2])):
            if v is not None:
                y = 95.0 - max(0.0, min(100.0, float(v))) * 0.9  # 5 % margins: 0 and 100 stay visible
                lines[key].append(f"{x:.1f},{y:.1f}")
    for pts in lines.values():
        if pts:  # the last value holds until now: a steady UPS still draws a line
            pts.append(f"360.0,{pts[-1].split(',')[1]}")
    parts = [f'<polyline class="l-{k}" points="{" ".join(pts)}"/>' for k, pts in lines.items() if pts]
    return ('<svg class="chart" viewBox="0 0 360 100" preserveAspectRatio="none" role="img" '
            'aria-label="charge and load">'
            '<line class="grid" x1="0" y1="50" x2="360" y2="50"/>' + "".join(parts) + "</svg>")


class Page:
    def __init__(self, frontend: Frontend, live: LiveHub, auth: Auth) -> None:
        self.frontend = frontend
        self.live = live
        self.auth = auth
        self._static: dict[str, tuple[bytes, str]] = {}
        pkg = resources.files(__package__ or "nutbridge.web") / "static"
        for name in STATIC:
            data = (pkg / name).read_bytes()
            self._static[name] = (data, hashlib.sha256(data).hexdigest()[:16])

    # ---- static files ------------------------------------------------------------------------
    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        hit = self._static.get(name)
        if hit is None:
            raise web.HTTPNotFound()
        data, etag = hit
        if request.headers.get("If-None-Match") == f'"{etag}"':
            return web.Response(status=304, headers={"ETag": f'"{etag}"'})
        return web.Response(body=data, content_type=STATIC[name], headers={
            "ETag": f'"{etag}"', "Cache-Control": "no-cache"})

    def _asset(self, name: str) -> str:
        return f"/static/{name}?v={self._static[name][1]}"

    # ---- the page ------------------------------------------------------------------------------
    def _identity(self, request: web.Request) -> Identity | None:
        s = self.auth.session_of(request)
        return Identity(s.user, s.password, s.addr, s) if s is not None else None

    async def index(self, request: web.Request) -> web.Response:
        who = self._identity(request)
        flash = None
        if who is not None and who.session is not None:
            flash, who.session.flash = who.session.flash, None
        return self._html(self.render(who, flash))

    def render(self, who: Identity | None, flash: str | None = None) -> str:
        maxage = float(self.frontend.upsd.maxage)
        now = time.time()
        devices = self.frontend.devices
        summaries = [summarize(d, maxage) for d in devices]
        cards = "".join(self._card(d, s, who, now) for d, s in zip(devices, summaries, strict=True))
        private = self.auth.may_act(who)
        recs = self.frontend.history.records(count=HISTORY_SHOWN)
        events = "".join(_event_row(r if private else public(r)) for r in reversed(recs))
        head_extra = ""
        if who is not None and who.session is not None:
            head_extra = f'<meta name="csrf-token" content="{escape(who.session.csrf)}">'
        account = (
            f'<span class="who">Logged in as <b>{escape(who.user)}</b></span>'
            f'<form class="inline" method="post" action="/logout">{_csrf_field(who)}'
            '<button type="submit">Log out</button></form>'
            if who is not None else '<a class="button" href="/login">Log in</a>')
        flash_html = f'<p class="flash" role="status">{escape(flash)}</p>' if flash else ""
        empty = "" if devices else '<p class="empty">This bridge serves no UPS.</p>'
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{head_extra}<title>NUT Bridge status</title>"
            f'<link rel="icon" type="image/svg+xml" href="{self._asset("favicon.svg")}">'
            f'<link rel="stylesheet" href="{self._asset("style.css")}">'
            f'<script src="{self._asset("app.js")}" defer></script>'
            "</head><body>"
            '<header class="top"><h1>NUT Bridge</h1>'
            f'<p class="overview" id="overview">{escape(_overview(summaries))}</p>'
            '<span id="live" class="live off" title="live updates">static</span>'
            f'<nav class="account">{account}</nav></header>'
            f"<main>{flash_html}{empty}"
            f'<div class="grid" id="ups-list">{cards}</div>'
            '<section class="events"><h2>Events</h2>'
            '<table><thead><tr><th>Time</th><th>UPS</th><th>Event</th></tr></thead>'
            f'<tbody id="events">{events}</tbody></table></section></main>'
            f'<footer>NUT Bridge {escape(self.frontend.version)} \u00b7 '
            '<a href="/api/ups">JSON</a> \u00b7 <a href="/metrics">metrics</a></footer>'
            "</body></html>\n")

    def _card(self, dev: Device, s: dict[str, Any], who: Identity | None, now: float) -> str:
        name = dev.name
        series = self.live.series.get(name)
        points = series.points(now) if series else []
        span = chart_span(float(points[0][0] or 0) if points else None, now)
        state_note = STATE_TEXT.get(s["state"], "")
        model = " ".join(x for x in (s["mfr"], s["model"]) if x)
        charge = s["charge"]
        meter = (f'<meter min="0" max="100" low="30" high="60" optimum="100" value="{charge:g}" '
                 'data-f="charge-meter"></meter>' if charge is not None else
                 '<meter min="0" max="100" data-f="charge-meter" hidden></meter>')
        figures = (
            _figure("Battery", "charge", fmt_number(charge, "%"), meter)
            + _figure("Runtime", "runtime", fmt_runtime(s["runtime"]))
            + _figure("Load", "load", fmt_number(s["load"], "%"))
            + _figure("Input", "input_voltage", fmt_number(s["input_voltage"], "V", 1))
            + _figure("Output", "output_voltage", fmt_number(s["output_voltage"], "V", 1)))
        return (
            f'<article class="ups sev-{s["severity"]}" id="{slug(name)}" data-ups="{escape(name)}">'
            f'<header><h2>{escape(name)}</h2><p class="desc" data-f="desc">'
            f'{escape(s["desc"] or model)}</p></header>'
            f'<p class="status"><span class="badge" data-f="status_text">{escape(s["status_text"])}</span>'
            f' <code data-f="status">{escape(s["status"])}</code></p>'
            f'<p class="state-note" data-f="state_note"{"" if state_note else " hidden"}>'
            f"{escape(state_note)}</p>"
            f'<dl class="figures">{figures}</dl>'
            f'<figure class="chart-box">{chart_svg(points, now)}'
            f'<figcaption><span data-f="chart_caption">{chart_caption(span)}</span>: '
            '<span class="k-charge">charge</span> '
            '<span class="k-load">load</span> (0\u2013100 %)</figcaption></figure>'
            f"{self._controls(dev, who)}</article>")

    def _controls(self, dev: Device, who: Identity | None) -> str:
        action = f"/ups/{quote(dev.name, safe='')}"
        desc = self.frontend.core.descriptions
        if who is None:
            if not dev.commands():
                return ""
            buttons = "".join(f'<button type="button" disabled title="{escape(desc.cmd(c) or c)}">'
                              f"{escape(c)}</button>" for c in dev.commands())
            return ('<details class="controls"><summary>Commands</summary>'
                    '<p class="hint"><a href="/login">Log in</a> with an upsd.users account to run '
                    f'commands.</p><div class="buttons">{buttons}</div></details>')
        cmds = self.auth.commands(who, dev)
        rw = [v for v in dev.variables() if v.rw] if self.auth.may_set(who) else []
        if not cmds and not rw:
            return ('<p class="hint">This account may not run commands or change settings '
                    "on this UPS.</p>")
        out = ['<details class="controls"><summary>Commands and settings</summary>']
        if cmds:
            buttons = "".join(
                f'<button type="submit" name="command" value="{escape(c)}" '
                f'title="{escape(desc.cmd(c) or c)}">{escape(c)}</button>' for c in cmds)
            out.append(f'<form class="act" method="post" action="{action}/command" data-kind="command">'
                       f'{_csrf_field(who)}<div class="buttons">{buttons}</div>'
                       '<label class="param">Parameter <input name="param" maxlength="64" '
                       'placeholder="optional"></label></form>')
        for v in rw:
            out.append(f'<form class="act rw" method="post" action="{action}/set" data-kind="set">'
                       f'{_csrf_field(who)}<input type="hidden" name="var" value="{escape(v.name)}">'
                       f"<label>{escape(v.name)} {_rw_input(v)}</label>"
                       '<button type="submit">Set</button></form>')
        out.append('<output class="result" data-f="result"></output></details>')
        return "".join(out)

    # ---- login -----------------------------------------------------------------------------
    async def login_form(self, request: web.Request) -> web.Response:
        return self._login_page(request, None)

    def _login_page(self, request: web.Request, error: str | None, status: int = 200) -> web.Response:
        token = request.cookies.get(LOGIN_COOKIE) or ""
        fresh = len(token) < 32
        if fresh:
            token = secrets.token_urlsafe(32)
        err = f'<p class="flash error" role="alert">{escape(error)}</p>' if error else ""
        body = (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Log in \u2013 NUT Bridge</title>"
            f'<link rel="icon" type="image/svg+xml" href="{self._asset("favicon.svg")}">'
            f'<link rel="stylesheet" href="{self._asset("style.css")}"></head><body>'
            '<header class="top"><h1><a href="/">NUT Bridge</a></h1></header>'
            f'<main class="login">{err}<form method="post" action="/login">'
            f'<input type="hidden" name="token" value="{escape(token)}">'
            '<label>User (upsd.users) <input name="username" autocomplete="username" required '
            'maxlength="256"></label>'
            '<label>Password <input name="password" type="password" autocomplete="current-password" '
            'required maxlength="256"></label><button type="submit">Log in</button></form>'
            '<p class="hint">Reading needs no login. Logged in, you see the commands and settings '
            "your upsd.users account may use.</p></main></body></html>\n")
        resp = self._html(body, status)
        if fresh:
            resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", secure=request.secure,
                            path="/login")
        return resp

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await _form(request)
        addr = remote(request)
        token = request.cookies.get(LOGIN_COOKIE)
        if form is None or not same_origin(request) or not token \
                or not hmac.compare_digest(form.get("token", "").encode(), token.encode()):
            return self._login_page(request, "The form expired; try again.", 403)
        if self.auth.failures.blocked(addr):
            return self._login_page(request, "Too many failed logins; wait a minute.", 429)
        user, password = form.get("username", ""), form.get("password", "")
        if not user or not password or not self.auth.valid(user, password, addr):
            self.auth.failures.failed(addr)
            return self._login_page(
                request, "Login failed: wrong user name or password, or the account has no "
                "rights on this bridge from your address.", 401)
        self.auth.failures.succeeded(addr)
        old = request.cookies.get(SESSION_COOKIE)
        self.auth.sessions.drop(old)  # a new id on every login (no session fixation)
        s = self.auth.sessions.create(user, password, addr)
        resp = web.HTTPSeeOther("/")
        resp.set_cookie(SESSION_COOKIE, s.id, httponly=True, samesite="Strict", secure=request.secure,
                        path="/")
        resp.del_cookie(LOGIN_COOKIE, path="/login")
        return resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        form = await _form(request)
        s = self.auth.session_of(request)
        if s is None or form is None or not same_origin(request) or not csrf_ok(s, form.get("csrf")):
            raise web.HTTPForbidden(text="Logout refused: not logged in, or the form expired.")
        self.auth.sessions.drop(s.id)
        resp = web.HTTPSeeOther("/")
        resp.del_cookie(SESSION_COOKIE, path="/")
        return resp

    # ---- actions without JavaScript ------------------------------------------------------------
    async def _form_actor(self, request: web.Request) -> tuple[Identity, dict[str, str]]:
        form = await _form(request)
        s = self.auth.session_of(request)
        if s is None:
            raise web.HTTPUnauthorized(text="Log in first (/login).")
        if form is None or not same_origin(request) or not csrf_ok(s, form.get("csrf")):
            raise web.HTTPForbidden(text="Refused: the form expired; reload the page.")
        return Identity(s.user, s.password, s.addr, s), form

    async def form_command(self, request: web.Request) -> web.StreamResponse:
        who, form = await self._form_actor(request)
        name = request.match_info["name"]
        words = command_words(name, form.get("command"), form.get("param"))
        return await self._form_act(who, name, words, f"{name}: {form.get('command', '?')}")

    async def form_set(self, request: web.Request) -> web.StreamResponse:
        who, form = await self._form_actor(request)
        name = request.match_info["name"]
        words = set_words(name, form.get("var"), form.get("value", ""))
        what = f"{name}: {form.get('var', '?')} = {form.get('value', '')}"
        return await self._form_act(who, name, words, what)

    async def _form_act(self, who: Identity, name: str, words: tuple[str, ...] | None,
                        what: str) -> web.StreamResponse:
        assert who.session is not None
        if words is None:
            who.session.flash = f"{what}: invalid request"
        else:
            who.session.flash = describe_outcome(await act(self.frontend, who, words), what)
        return web.HTTPSeeOther(f"/#{slug(name)}")

    @staticmethod
    def _html(body: str, status: int = 200) -> web.Response:
        # the page carries a CSRF token: never cached
        return web.Response(text=body, status=status, content_type="text/html",
                            headers={"Cache-Control": "no-store"})


async def _form(request: web.Request) -> dict[str, str] | None:
    """A small urlencoded form's fields, or None for anything else."""
    if request.content_type != "application/x-www-form-urlencoded":
        return None
    if request.content_length is not None and request.content_length > MAX_FORM:
        return None
    raw = await request.content.read(MAX_FORM + 1)
    if len(raw) > MAX_FORM:
        return None
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)


def _csrf_field(who: Identity | None) -> str:
    if who is None or who.session is None:
        return ""
    return f'<input type="hidden" name="csrf" value="{escape(who.session.csrf)}">'


def _figure(label: str, key: str, text: str, extra: str = "") -> str:
    return f'<div><dt>{label}</dt><dd><span data-f="{key}">{escape(text)}</span>{extra}</dd></div>'


def _rw_input(v: Variable) -> str:
    if v.enums:
        opts = "".join(f'<option{" selected" if e == v.value else ""}>{escape(e)}</option>' for e in v.enums)
        return f'<select name="value">{opts}</select>'
    if v.string:
        return f'<input name="value" value="{escape(v.value)}" maxlength="{max(1, v.aux)}">'
    if len(v.ranges) == 1:
        lo, hi = v.ranges[0]
        return f'<input name="value" type="number" min="{lo}" max="{hi}" value="{escape(v.value)}">'
    return f'<input name="value" inputmode="decimal" value="{escape(v.value)}" maxlength="64">'


def _overview(summaries: Iterable[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    total = 0
    for s in summaries:
        total += 1
        counts[s["severity"]] = counts.get(s["severity"], 0) + 1
    words = {"ok": "ok", "warn": "attention", "alarm": "alarm", "stale": "stale",
             "offline": "offline", "wait": "waiting", "unknown": "no status"}
    parts = [f"{counts[k]} {w}" for k, w in words.items() if counts.get(k)]
    return f"{total} UPS" + (": " + ", ".join(parts) if parts else "")


def _event_row(rec: Event) -> str:
    who = f' <span class="by">({escape(str(rec["user"]))})</span>' if rec.get("user") else ""
    return (f'<tr class="ev-{escape(str(rec.get("kind", "")))}" data-seq="{int(rec.get("seq", 0))}">'
            f'<td>{escape(fmt_ts(str(rec.get("ts", ""))))}</td><td>{escape(str(rec.get("ups") or ""))}</td>'
            f'<td>{escape(str(rec.get("detail", "")))}{who}</td></tr>')


__all__ = ["AUTH", "CSRF_HEADER", "LIVE", "setup"]
