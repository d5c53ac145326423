"""The status page and its JSON API (docs/status-page.md), against a real ``nutbridge serve --http``.

One bridge serves two simulated UPSes, a UPS it repeats from Debian's C upsd (dummy-ups) and a
repeated UPS whose server is gone. What is shown:

* the first HTML answer (no JavaScript, as ``curl`` sees it) lists every UPS with its status,
  and marks the unreachable one; no inline script or style;
* the JSON shapes, NUT's error names, reading without login, acting never without: a POST
  without a session or credentials is refused, a user without the right gets upsd's
  ACCESS-DENIED, an allowed one really reaches the simulated UPS;
* the live stream: an update within a second of the change, a full snapshot on reconnect, a
  client that does not read is dropped while another one keeps getting updates;
* sessions and failed logins are bounded;
* in Debian's headless Chromium: no console errors, the page flips to "on battery" within a
  second of the mains loss without a reload, commands are unusable without login and work
  after it, a user without the right sees no such command and a forged POST is refused.

``NUTBRIDGE_SCREENSHOTS=1`` makes the browser test also write docs/img/status-page.png
(desktop) and docs/img/status-page-phone.png (``make screenshots``).

The pure parts (summaries, the chart ring, sessions, the failure counter, SSE framing) are
tested directly at the end.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from nutbridge.state import Device
from nutbridge.web import api as webapi
from nutbridge.web import live as weblive
from tests.support import realnut
from tests.support.realnut import REPO, BridgeProcess, NutConfig

SIMS = ("sim", "sim2")
ADMIN = ("admin", "s3cr3t")
TESTER = ("tester", "t3st")  # instcmds test.battery.start/stop only
READER = ("reader", "r34d")  # no rights at all
SCREENSHOTS = os.environ.get("NUTBRIDGE_SCREENSHOTS", "") not in ("", "0")


# ---- the bridge under test -------------------------------------------------------------------


class Bridge:
    def __init__(self, proc: BridgeProcess, http_port: int, tls: bool = False) -> None:
        self.proc = proc
        self.port = proc.cfg.port
        self.http = http_port
        self.tls = tls
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{http_port}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, source: str | None = None,
                ) -> tuple[int, dict[str, str], bytes]:
        src = (source, 0) if source else None
        conn = http.client.HTTPSConnection("127.0.0.1", self.http, timeout=10, source_address=src,
                                           context=ssl._create_unverified_context()) if self.tls \
            else http.client.HTTPConnection("127.0.0.1", self.http, timeout=10, source_address=src)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            got: dict[str, str] = {}
            for k, v in r.getheaders():  # Set-Cookie may come more than once: one per line
                got[k.lower()] = f"{got[k.lower()]}\n{v}" if k.lower() in got else v
            return r.status, got, r.read()
        finally:
            conn.close()

    def get_json(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, _, body = self.request("GET", path, headers=headers)
        return status, json.loads(body)

    def post_json(self, path: str, payload: object, headers: dict[str, str] | None = None,
                  ) -> tuple[int, Any]:
        h = {"Content-Type": "application/json", **(headers or {})}
        status, _, body = self.request("POST", path, json.dumps(payload).encode(), h)
        return status, json.loads(body)

    def nut(self, *lines: str) -> str:
        return realnut.query(self.port, *lines).decode()

    def status(self, ups: str) -> str:
        return self.nut(f"GET VAR {ups} ups.status").split('"')[1]

    def instcmd(self, ups: str, cmd: str) -> str:
        """INSTCMD over NUT as admin (how the tests make the mains fail)."""
        answers = self.nut(f"USERNAME {ADMIN[0]}", f"PASSWORD {ADMIN[1]}", f"INSTCMD {ups} {cmd}")
        return answers.strip().splitlines()[-1]

    def wait_status(self, ups: str, want: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while want not in self.status(ups).split():
            assert time.monotonic() < deadline, f"{ups} never reached {want}: {self.status(ups)}"
            time.sleep(0.05)

    def login(self, user: str, password: str, source: str | None = None) -> tuple[int, str | None]:
        """The login form as a browser fills it in: (status, session cookie)."""
        _, headers, _ = self.request("GET", "/login", source=source)
        token = _cookie(headers, webapi.LOGIN_COOKIE)
        assert token
        body = urlencode({"token": token, "username": user, "password": password}).encode()
        status, headers, _ = self.request(
            "POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded",
                                     "Cookie": f"{webapi.LOGIN_COOKIE}={token}"}, source=source)
        return status, _cookie(headers, webapi.SESSION_COOKIE)


def _cookie(headers: dict[str, str], name: str) -> str | None:
    raw = headers.get("set-cookie", "")
    for part in raw.split("\n"):
        part = part.strip()
        if part.startswith(name + "="):
            value = part.split(";", 1)[0].split("=", 1)[1]
            return value or None
    return None


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bridge]:
    tmp = tmp_path_factory.mktemp("web")
    remote = NutConfig(tmp / "remote")
    remote.root.mkdir(parents=True)
    (remote.root / "far.dev").write_text(
        "ups.status: OL\nbattery.charge: 87\nbattery.runtime: 2400\nups.load: 21\n"
        "input.voltage: 229.0\noutput.voltage: 230.0\ndevice.model: Far Away 1500\n")
    remote.add_ups("far", driver="dummy-ups", port=str(remote.root / "far.dev"))
    cfg = NutConfig(tmp / "nut")
    # simspeed 10: on battery, the charge visibly falls within the screenshots' minute
    cfg.add_ups("sim", driver="nutbridge-sim", port="simulated", outlets="2", desc="Rack A", simspeed="10")
    cfg.add_ups("sim2", driver="nutbridge-sim", port="simulated", seed="7", load="600")
    cfg.add_ups("far", driver="dummy-ups", port=f"far@127.0.0.1:{remote.port}", desc="repeated")
    cfg.add_ups("gone", driver="dummy-ups", port=f"gone@127.0.0.1:{realnut.free_port()}")
    http_port = realnut.free_port()
    with realnut.c_upsd(remote):
        proc = BridgeProcess.start(cfg, ["--http", f"127.0.0.1:{http_port}"])
        with proc:
            realnut.wait_ready_ups(cfg.port, [*SIMS, "far"])
            realnut.wait_port(http_port)
            yield Bridge(proc, http_port)


# ---- HTML without JavaScript -------------------------------------------------------------------


class Cards(HTMLParser):
    """Each ``article.ups``: its data-ups, class and the text of its data-f fields."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, dict[str, str]] = {}
        self.scripts: list[dict[str, str | None]] = []
        self.styled: list[str] = []
        self._card: dict[str, str] | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "style" in a:
            self.styled.append(tag)
        if tag == "script":
            self.scripts.append(a)
        if tag == "article" and "ups" in (a.get("class") or "").split():
            self._card = {"class": a.get("class") or ""}
            self.cards[a.get("data-ups") or ""] = self._card
        elif self._card is not None and a.get("data-f"):
            self._field = key = a.get("data-f") or ""
            self._card[key] = ""
            if tag == "p" and "hidden" in a:
                self._card[key + ".hidden"] = "1"

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._card = None
        self._field = None

    def handle_data(self, data: str) -> None:
        if self._card is not None and self._field is not None:
            self._card[self._field] += data


def test_first_html_shows_every_ups_and_status_without_javascript(bridge: Bridge) -> None:
    bridge.wait_status("sim2", "OL")
    status, headers, body = bridge.request("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers.get("cache-control") == "no-store"
    assert "script-src 'self'" in headers["content-security-policy"]  # web/server.py's headers
    page = Cards()
    page.feed(body.decode())
    assert set(page.cards) == {"sim", "sim2", "far", "gone"}
    for name in (*SIMS, "far"):
        nut_status = bridge.status(name)
        card = page.cards[name]
        assert card["status"] == nut_status, name
        assert "sev-ok" in card["class"].split(), card
        assert card["status_text"] == "online", card
    far = page.cards["far"]  # repeated from the C upsd: its values, as upsc shows them
    assert far["charge"] == "87 %" and far["load"] == "21 %" and far["input_voltage"] == "229.0 V"
    gone = page.cards["gone"]
    assert {"sev-offline", "sev-stale"} & set(gone["class"].split()), gone
    assert "state_note.hidden" not in gone and gone["state_note"].startswith(("Offline", "Data stale"))
    # nothing inline that the Content-Security-Policy forbids, nothing from elsewhere
    assert page.styled == []
    assert page.scripts and all((s.get("src") or "").startswith("/static/") for s in page.scripts)
    assert b"http://" not in body.replace(b'"http://www.w3.org', b"").replace(bridge.base.encode(), b"")
    # every static file the page names is served, from the package
    for path in ("/static/app.js", "/static/style.css", "/static/favicon.svg"):
        st, _, data = bridge.request("GET", path)
        assert st == 200 and data, path
        assert (REPO / "bridge/nutbridge/web" / path.lstrip("/")).read_bytes() == data
    assert bridge.request("GET", "/static/../api.py")[0] == 404
    assert bridge.request("GET", "/static/nope.js")[0] == 404


# ---- JSON ---------------------------------------------------------------------------------------


def test_api_shapes(bridge: Bridge) -> None:
    status, body = bridge.get_json("/api/ups")
    assert status == 200
    assert body["bridge"]["version"] and body["bridge"]["id"]
    by_name = {u["name"]: u for u in body["ups"]}
    assert list(by_name) == ["sim", "sim2", "far", "gone"]
    sim = by_name["sim"]
    for key in ("status", "flags", "status_text", "severity", "state", "available", "error", "charge",
                "runtime", "load", "input_voltage", "output_voltage", "desc", "mfr", "model"):
        assert key in sim, key
    assert sim["desc"] == "Rack A" and sim["available"] is True and sim["error"] is None
    assert by_name["gone"]["available"] is False
    assert by_name["gone"]["error"] in ("DRIVER-NOT-CONNECTED", "DATA-STALE")

    status, one = bridge.get_json("/api/ups/sim")
    assert status == 200 and one["you"] is None
    listed = bridge.nut("LIST VAR sim").splitlines()
    nut_vars = {ln.split(" ", 3)[2]: ln.split('"')[1] for ln in listed if ln.startswith("VAR ")}
    volatile = {k for k in nut_vars if k.startswith(("battery.", "input.", "output.", "ups.load", "ups.real",
                                                      "ups.power", "ups.temperature"))}
    assert set(one["variables"]) == set(nut_vars)
    assert {k: v for k, v in one["variables"].items() if k not in volatile} == \
        {k: v for k, v in nut_vars.items() if k not in volatile}
    cmds = [c["name"] for c in one["commands"]]
    assert "test.failure.start" in cmds and "outlet.2.load.off" in cmds
    assert all(isinstance(c["desc"], str) for c in one["commands"])
    rw = {v["name"]: v for v in one["rw"]}
    assert rw["ups.beeper.status"]["type"] == "string" and "enum" in rw["ups.beeper.status"]
    assert any("range" in v for v in rw.values())
    assert rw["outlet.1.desc"]["maxlen"] == 20

    status, mine = bridge.get_json("/api/ups/sim", basic(*TESTER))
    # upsd.users gives tester test.battery.start and .stop; the simulated UPS has the latter
    assert mine["you"] == {"user": "tester", "commands": ["test.battery.stop"], "set": False}
    assert bridge.get_json("/api/ups/sim", basic("tester", "wrong"))[1]["you"] is None
    status, mine = bridge.get_json("/api/ups/sim", basic(*ADMIN))
    assert mine["you"]["set"] is True and mine["you"]["commands"] == cmds

    status, err = bridge.get_json("/api/ups/nope")
    assert (status, err["error"]) == (404, "UNKNOWN-UPS") and err["message"] == "Unknown UPS"

    status, hist = bridge.get_json("/api/ups/sim/history")
    assert status == 200 and hist["fields"] == ["t", "charge", "load", "runtime", "input_voltage",
                                                "output_voltage"]
    assert hist["window"] == 3600 and hist["points"]
    assert all(len(p) == 6 for p in hist["points"])
    assert abs(hist["points"][-1][0] - hist["now"]) < 3700

    status, ev = bridge.get_json("/api/events?count=5")
    assert status == 200 and 1 <= len(ev["events"]) <= 5
    assert all({"ts", "seq", "kind"} <= set(e) for e in ev["events"])
    assert bridge.get_json("/api/events?count=0")[1]["error"] == "INVALID-ARGUMENT"
    assert bridge.get_json("/api/events?ups=nope")[1]["error"] == "UNKNOWN-UPS"


def test_acting_needs_an_account_and_its_rights(bridge: Bridge) -> None:
    path = "/api/ups/sim/command"
    payload = {"command": "test.failure.start"}
    # no session, no credentials: refused (JSON API and the no-JavaScript form)
    status, body = bridge.post_json(path, payload)
    assert (status, body["error"]) == (401, "USERNAME-REQUIRED")
    st, _, _ = bridge.request("POST", "/ups/sim/command", b"command=test.failure.start",
                              {"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 401
    # a wrong password: upsd's own answer
    status, body = bridge.post_json(path, payload, basic("admin", "wrong"))
    assert (status, body["error"]) == (403, "ACCESS-DENIED")
    # credentials in a form body (what a cross-site HTML form could send): refused
    st, _, raw = bridge.request("POST", path, b"command=test.failure.start",
                                {"Content-Type": "application/x-www-form-urlencoded", **basic(*ADMIN)})
    assert st == 400 and json.loads(raw)["error"] == "INVALID-ARGUMENT"
    # a cross-origin request: refused whatever it carries
    status, body = bridge.post_json(path, payload, {**basic(*ADMIN), "Origin": "http://evil.example"})
    assert (status, body["error"]) == (403, "ACCESS-DENIED")
    status, body = bridge.post_json(path, payload, {**basic(*ADMIN), "Sec-Fetch-Site": "cross-site"})
    assert (status, body["error"]) == (403, "ACCESS-DENIED")
    # a user whose rights do not include the command: upsd's ACCESS-DENIED
    status, body = bridge.post_json(path, payload, basic(*TESTER))
    assert (status, body["error"]) == (403, "ACCESS-DENIED")
    status, body = bridge.post_json("/api/ups/sim/set", {"var": "ups.id", "value": "x"}, basic(*TESTER))
    assert (status, body["error"]) == (403, "ACCESS-DENIED")
    assert bridge.status("sim").split()[0] == "OL"  # none of that reached the UPS
    # a session without its CSRF token: refused; with it: done
    st, cookie = bridge.login(*TESTER)
    assert st == 303 and cookie
    jar = {"Cookie": f"{webapi.SESSION_COOKIE}={cookie}"}
    status, body = bridge.post_json(path, payload, jar)
    assert (status, body["error"]) == (403, "ACCESS-DENIED") and "CSRF" in body["message"]

    # admin over HTTP Basic: runs, through upsd's checks, and reaches the simulated UPS
    status, body = bridge.post_json(path, payload, basic(*ADMIN))
    assert status == 200 and body == {"ups": "sim", "command": "test.failure.start", "result": "SUCCESS"}
    assert "OB" in bridge.status("sim").split()
    status, body = bridge.post_json(path, {"command": "test.failure.stop"}, basic(*ADMIN))
    assert status == 200 and body["result"] == "SUCCESS"
    bridge.wait_status("sim", "OL")
    # the history says who did it (to a reader who may act; not to anonymous ones)
    _, ev = bridge.get_json("/api/events?ups=sim&count=20", basic(*ADMIN))
    mine = [e for e in ev["events"] if e["kind"] == "command" and e.get("command") == "test.failure.start"]
    assert mine and mine[-1]["user"] == "admin" and mine[-1]["addr"] == "127.0.0.1"
    _, ev = bridge.get_json("/api/events?ups=sim&count=20")
    assert all("user" not in e and "addr" not in e for e in ev["events"])

    # SET with NUT's checks: a value outside the range, an unknown variable, then a real one
    status, body = bridge.post_json("/api/ups/sim/set", {"var": "ups.beeper.status", "value": "loud"},
                                    basic(*ADMIN))
    assert (status, body["error"]) == (400, "INVALID-VALUE")
    status, body = bridge.post_json("/api/ups/sim/set", {"var": "no.such", "value": "1"}, basic(*ADMIN))
    assert (status, body["error"]) == (404, "VAR-NOT-SUPPORTED")
    status, body = bridge.post_json("/api/ups/sim/set", {"var": "outlet.1.desc", "value": "NAS"},
                                    basic(*ADMIN))
    assert status == 200 and body["result"] == "SUCCESS"
    assert bridge.nut("GET VAR sim outlet.1.desc").strip() == 'VAR sim outlet.1.desc "NAS"'
    status, body = bridge.post_json("/api/ups/nope/command", payload, basic(*ADMIN))
    assert (status, body["error"]) == (404, "UNKNOWN-UPS")
    status, body = bridge.post_json(path, {"command": 5}, basic(*ADMIN))
    assert (status, body["error"]) == (400, "INVALID-ARGUMENT")


def test_login_form_sessions_and_no_javascript_actions(bridge: Bridge) -> None:
    # an account with no right at all cannot log in (it could do nothing)
    assert bridge.login(*READER) == (401, None)
    assert bridge.login("admin", "nope") == (401, None)
    st, cookie = bridge.login(*ADMIN)
    assert st == 303 and cookie
    jar = {"Cookie": f"{webapi.SESSION_COOKIE}={cookie}"}
    _, _, html = bridge.request("GET", "/", headers=jar)
    text = html.decode()
    assert "Logged in as <b>admin</b>" in text
    csrf = text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    # the form a browser without JavaScript posts: run, then see the result after the redirect
    form = urlencode({"csrf": csrf, "command": "beeper.disable"}).encode()
    st, headers, _ = bridge.request("POST", "/ups/sim/command", form,
                                    {**jar, "Content-Type": "application/x-www-form-urlencoded"})
    assert st == 303 and headers["location"] == "/#ups-sim"
    assert bridge.nut("GET VAR sim ups.beeper.status").split('"')[1] == "disabled"
    _, _, html = bridge.request("GET", "/", headers=jar)
    assert "sim: beeper.disable: done" in html.decode()
    # a stolen cookie used from another address is no session
    _, _, html = bridge.request("GET", "/", headers=jar, source="127.0.0.3")
    assert b"Logged in as" not in html
    # log out: the cookie is void
    st, _, _ = bridge.request("POST", "/logout", urlencode({"csrf": csrf}).encode(),
                              {**jar, "Content-Type": "application/x-www-form-urlencoded"})
    assert st == 303
    _, _, html = bridge.request("GET", "/", headers=jar)
    assert b"Logged in as" not in html


def test_sessions_and_failed_logins_are_bounded(bridge: Bridge) -> None:
    cookies = []
    for _ in range(webapi.MAX_SESSIONS + 3):
        st, cookie = bridge.login(*TESTER, source="127.0.0.4")
        assert st == 303 and cookie
        cookies.append(cookie)

    def logged_in(cookie: str) -> bool:
        _, _, html = bridge.request("GET", "/", headers={"Cookie": f"{webapi.SESSION_COOKIE}={cookie}"},
                                    source="127.0.0.4")
        return b"Logged in as" in html

    assert not logged_in(cookies[0]) and not logged_in(cookies[2])  # the oldest were dropped
    assert logged_in(cookies[-1]) and logged_in(cookies[3])
    # five failures a minute from one address: the sixth try is refused, even a right one
    for _ in range(webapi.LOGIN_FAILURES):
        assert bridge.login("admin", "guess", source="127.0.0.5")[0] == 401
    assert bridge.login(*ADMIN, source="127.0.0.5")[0] == 429
    assert bridge.login(*ADMIN, source="127.0.0.6")[0] == 303  # others are not locked out


def test_over_tls_the_cookies_are_secure(tmp_path: Path) -> None:
    """A bridge with a certificate serves the page over HTTPS only; its cookies say Secure."""
    from nutbridge.server import selfsigned

    certfile = tmp_path / "cert.pem"
    certfile.write_bytes(selfsigned.generate("bridge", ["localhost"], []))
    certfile.chmod(0o600)
    cfg = NutConfig(tmp_path / "nut", upsd_extra=f"CERTFILE {certfile}\n")
    cfg.add_ups("sim", driver="nutbridge-sim", port="simulated")
    http_port = realnut.free_port()
    with BridgeProcess.start(cfg, ["--http", f"127.0.0.1:{http_port}"]) as proc:
        realnut.wait_ready_ups(cfg.port, ["sim"])
        realnut.wait_port(http_port)
        b = Bridge(proc, http_port, tls=True)
        status, _, body = b.request("GET", "/")
        assert status == 200 and b'data-ups="sim"' in body
        _, headers, _ = b.request("GET", "/login")
        assert "Secure" in headers["set-cookie"] and "HttpOnly" in headers["set-cookie"]
        token = _cookie(headers, webapi.LOGIN_COOKIE)
        body_ = urlencode({"token": token, "username": ADMIN[0], "password": ADMIN[1]}).encode()
        st, headers, _ = b.request("POST", "/login", body_, {
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"{webapi.LOGIN_COOKIE}={token}"})
        assert st == 303
        line = next(x for x in headers["set-cookie"].split("\n") if x.startswith(webapi.SESSION_COOKIE))
        attrs = {a.strip().split("=")[0].lower() for a in line.split(";")[1:]}
        assert {"httponly", "secure", "samesite", "path"} <= attrs and "samesite=strict" in line.lower()
        status, out = b.post_json("/api/ups/sim/command", {"command": "beeper.mute"}, basic(*ADMIN))
        assert status == 200 and out["result"] == "SUCCESS"


# ---- the live stream ------------------------------------------------------------------------------


class Sse:
    """A reader of /api/live: (event, data) pairs as they arrive."""

    def __init__(self, bridge: Bridge, headers: dict[str, str] | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", bridge.http, timeout=10)
        self.conn.request("GET", "/api/live", headers=headers or {})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        assert self.resp.getheader("Content-Type", "").startswith("text/event-stream")

    def next(self, timeout: float = 5.0) -> tuple[str, Any]:
        assert self.conn.sock is not None
        self.conn.sock.settimeout(timeout)
        event, data = "message", ""
        while True:
            line = self.resp.readline().decode()
            if not line:
                raise EOFError("stream closed")
            line = line.rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif line == "" and data:
                return event, json.loads(data)

    def wait(self, pred: Any, timeout: float = 5.0) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no matching event"
            ev, data = self.next(left)
            if pred(ev, data):
                return ev, data

    def close(self) -> None:
        self.conn.close()


def test_live_stream_updates_and_reconnect(bridge: Bridge) -> None:
    s = Sse(bridge)
    ev, snap = s.next()
    assert ev == "snapshot" and [u["name"] for u in snap["ups"]] == ["sim", "sim2", "far", "gone"]
    assert isinstance(snap["events"], list) and snap["now"] > 0
    t0 = time.monotonic()
    assert bridge.instcmd("sim2", "test.failure.start").strip() == "OK"
    _, upd = s.wait(lambda e, d: e == "ups" and d["name"] == "sim2" and "OB" in d["flags"], 2)
    assert time.monotonic() - t0 < 1.0
    assert upd["status_text"].startswith("on battery") and upd["severity"] == "warn"
    # the power event reaches the stream's history too
    s.wait(lambda e, d: e == "history" and d.get("ups") == "sim2" and d["kind"] == "power", 3)
    s.close()
    # while away: back on mains; a new connection starts from a snapshot that says so
    assert bridge.instcmd("sim2", "test.failure.stop").strip() == "OK"
    bridge.wait_status("sim2", "OL")
    s = Sse(bridge)
    ev, snap = s.next()
    assert ev == "snapshot"
    sim2 = next(u for u in snap["ups"] if u["name"] == "sim2")
    assert "OL" in sim2["flags"] and sim2["status_text"].startswith("online")
    assert any(e.get("ups") == "sim2" and e["kind"] == "power" for e in snap["events"])
    s.close()


def test_a_client_that_does_not_read_is_dropped_others_keep_going(bridge: Bridge) -> None:
    good = Sse(bridge)
    assert good.next()[0] == "snapshot"
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", bridge.http))
    slow.sendall(b"GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never reads
    received: list[float] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                ev, d = good.next(2)
            except (TimeoutError, EOFError, OSError):
                continue
            if ev == "ups" and d["name"] == "sim":
                received.append(d["realpower"] or 0)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    # changes as fast as the bridge takes them: two loads on the simulated UPS, over NUT
    lines = [f"USERNAME {ADMIN[0]}", f"PASSWORD {ADMIN[1]}"]
    deadline = time.monotonic() + 60
    n = 0
    try:
        with socket.create_connection(("127.0.0.1", bridge.port), timeout=5) as nut:
            nut.sendall("".join(x + "\n" for x in lines).encode())
            nut.recv(100)
            while "dropped a live client" not in bridge.proc.log():
                assert time.monotonic() < deadline, "the slow client was never dropped"
                for ups in SIMS:
                    nut.sendall(f"SET VAR {ups} experimental.sim.load {100 + n % 500}\n".encode())
                    nut.recv(100)
                n += 1
                time.sleep(0.02)
            before = len(received)
            nut.sendall(b"SET VAR sim experimental.sim.load 777\n")
            nut.recv(100)
            t_end = time.monotonic() + 5
            while time.monotonic() < t_end and (len(received) == before or received[-1] != 777):
                time.sleep(0.05)
    finally:
        stop.set()
        t.join(5)
    assert len(received) > before and received[-1] == 777, "the reading client stopped getting updates"
    # the dropped one's connection is closed by the bridge: what it has buffered, then the end
    slow.settimeout(5)
    total = 0
    try:
        while chunk := slow.recv(65536):
            total += len(chunk)
    except ConnectionResetError:
        pass
    slow.close()
    good.close()
    assert bridge.proc.proc.poll() is None
    # and new clients are welcome
    s = Sse(bridge)
    assert s.next()[0] == "snapshot"
    s.close()


# ---- the page in Debian's Chromium --------------------------------------------------------------


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    realnut.require_path(CHROMIUM, "Debian's chromium (apt install chromium)")
    realnut.require_path(CHROMEDRIVER, "Debian's chromedriver (apt install chromium-driver)")
    webdriver = realnut.require_module("selenium.webdriver", "the test extra: make install-test")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=1280,900", "--force-device-scale-factor=1", "--lang=en-US"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    drv = webdriver.Chrome(options=opts, service=service)
    try:
        yield drv
    finally:
        drv.quit()


def _console_errors(drv: Any) -> list[dict[str, Any]]:
    return [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def _card(drv: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return drv.find_element(By.CSS_SELECTOR, f'article.ups[data-ups="{name}"]')


def _wait(pred: Any, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout, f"timed out: {what}"
        time.sleep(0.02)
    return time.monotonic() - t0


def _login(drv: Any, bridge: Bridge, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    drv.get(bridge.base + "/login")
    drv.find_element(By.NAME, "username").send_keys(user)
    drv.find_element(By.NAME, "password").send_keys(password)
    drv.find_element(By.CSS_SELECTOR, "main.login button[type=submit]").click()
    _wait(lambda: drv.find_elements(By.CSS_SELECTOR, ".who b"), 5, "logged in")
    _wait(lambda: "on" in (drv.find_element(By.ID, "live").get_attribute("class") or ""), 5, "live")


def test_status_page_in_chromium(bridge: Bridge, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    drv = browser
    bridge.wait_status("sim", "OL")
    drv.get(bridge.base + "/")
    _wait(lambda: "on" in (drv.find_element(By.ID, "live").get_attribute("class") or ""), 5,
          "the live stream connects")
    names = [c.get_attribute("data-ups") for c in drv.find_elements(By.CSS_SELECTOR, "article.ups")]
    assert names == ["sim", "sim2", "far", "gone"]
    badge = _card(drv, "sim").find_element(By.CSS_SELECTOR, '[data-f="status_text"]')
    # earlier tests here ran "sim" on battery (simspeed 10), so it may still be recharging
    assert badge.text in ("online", "online, charging"), badge.text
    # the charts were drawn from /api/ups/<name>/history
    _wait(lambda: _card(drv, "sim").find_elements(By.CSS_SELECTOR, "svg.chart polyline.l-charge"), 5, "chart")
    assert _console_errors(drv) == []

    # mains loss: the page says so within a second, without a reload
    marker = drv.execute_script("window.__noReload = 1; return window.__noReload;")
    assert marker == 1
    assert bridge.instcmd("sim", "test.failure.start").strip() == "OK"
    took = _wait(lambda: badge.text.startswith("on battery"), 1.0, "on battery within 1 s")
    assert "sev-warn" in (_card(drv, "sim").get_attribute("class") or "")
    assert drv.execute_script("return window.__noReload;") == 1, "the page was reloaded"
    print(f"on battery shown {took * 1000:.0f} ms after the command returned")
    first_row = drv.find_element(By.CSS_SELECTOR, "#events tr")
    _wait(lambda: "on battery" in drv.find_element(By.CSS_SELECTOR, "#events tr").text, 3, "event row")
    assert first_row is not None

    # without login: the command buttons are there but unusable, and a POST is refused
    card = _card(drv, "sim")
    card.find_element(By.CSS_SELECTOR, "details.controls summary").click()
    buttons = card.find_elements(By.CSS_SELECTOR, "details.controls button")
    assert buttons and not any(b.is_enabled() for b in buttons)
    assert drv.find_elements(By.CSS_SELECTOR, 'meta[name="csrf-token"]') == []
    assert _console_errors(drv) == []
    status = drv.execute_async_script(
        "const done = arguments[0]; fetch('/api/ups/sim/command', {method: 'POST', "
        "headers: {'Content-Type': 'application/json'}, "
        "body: JSON.stringify({command: 'test.failure.stop'})}).then(r => done(r.status));")
    assert status == 401
    assert "OB" in bridge.status("sim").split()

    if SCREENSHOTS:
        _screenshots(drv, bridge)

    # logged in as admin: the command runs and really reaches the simulated UPS
    _login(drv, bridge, *ADMIN)
    card = _card(drv, "sim")
    card.find_element(By.CSS_SELECTOR, "details.controls summary").click()
    card.find_element(By.CSS_SELECTOR, 'button[name="command"][value="test.failure.stop"]').click()
    result = card.find_element(By.CSS_SELECTOR, "output.result")
    _wait(lambda: result.text == "test.failure.stop: done", 5, "the command's result")
    bridge.wait_status("sim", "OL", 2)
    badge = _card(drv, "sim").find_element(By.CSS_SELECTOR, '[data-f="status_text"]')
    _wait(lambda: badge.text.startswith("online"), 2, "back online on the page")
    # the event table names who did it (admin may act)
    _wait(lambda: "test.failure.stop (admin)" in drv.find_element(By.ID, "events").text, 3, "command event")
    card.find_element(By.CSS_SELECTOR, "form.rw input[name=var][value='outlet.2.desc']")

    # tester: no such command offered; a forged POST with a valid session and token is upsd's refusal
    drv.find_element(By.CSS_SELECTOR, "nav.account button").click()  # log out
    _wait(lambda: drv.find_elements(By.CSS_SELECTOR, "nav.account a.button"), 5, "logged out")
    _login(drv, bridge, *TESTER)
    card = _card(drv, "sim")
    card.find_element(By.CSS_SELECTOR, "details.controls summary").click()
    offered = [b.get_attribute("value") for b in card.find_elements(By.CSS_SELECTOR, "form.act button")]
    assert offered == ["test.battery.stop"]  # its one right that this UPS has; no SET forms
    answer = drv.execute_async_script(
        "const done = arguments[0]; const t = document.querySelector('meta[name=\"csrf-token\"]').content;"
        "fetch('/api/ups/sim/command', {method: 'POST', headers: {'Content-Type': 'application/json',"
        "'X-CSRF-Token': t}, body: JSON.stringify({command: 'test.failure.start'})})"
        ".then(r => r.json().then(b => done([r.status, b])));")
    assert answer[0] == 403 and answer[1]["error"] == "ACCESS-DENIED"
    assert bridge.status("sim").split()[0] == "OL"


def _screenshots(drv: Any, bridge: Bridge) -> None:
    """docs/img/status-page.png (desktop) and -phone.png, of the page as it is right now."""
    out = REPO / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    # a minute of life for the charts: sim discharges (on battery since the mains loss), sim2's
    # load changes as a server's would; all through the bridge, sampled by it as always
    loads = [600, 450, 700, 520, 620]
    for i, load in enumerate(loads):
        answer = bridge.nut(f"USERNAME {ADMIN[0]}", f"PASSWORD {ADMIN[1]}",
                            f"SET VAR sim2 experimental.sim.load {load}")
        assert answer.strip().endswith("OK"), answer
        if i < len(loads) - 1:
            time.sleep(weblive.SAMPLE_EVERY + 0.2)
    # the viewport set exactly (CDP device metrics, scrollbars hidden): a desktop screen, and a
    # phone (390 CSS px, 2x, mobile viewport rules) shown down to the start of the events
    shots = (("status-page.png", 1280, 1000, 1, False), ("status-page-phone.png", 390, 2300, 2, True))
    for name, width, max_height, scale, mobile in shots:
        drv.get(bridge.base + "/")
        _wait(lambda: "on" in (drv.find_element("id", "live").get_attribute("class") or ""), 5, "live")
        drv.execute_cdp_cmd("Emulation.setScrollbarsHidden", {"hidden": True})
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": 900, "deviceScaleFactor": scale, "mobile": mobile})
        time.sleep(1.0)  # charts fetched and drawn, layout settled
        height = int(drv.execute_script("return document.documentElement.scrollHeight"))
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": min(height, max_height), "deviceScaleFactor": scale, "mobile": mobile})
        time.sleep(0.3)
        png = drv.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(base64.b64decode(png))
        shutil.move(tmp, out / name)
    drv.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    drv.execute_cdp_cmd("Emulation.setScrollbarsHidden", {"hidden": False})
    drv.get(bridge.base + "/")


# ---- the pure parts -----------------------------------------------------------------------------


def _dev(status: str = "OL", **values: str) -> Device:
    d = Device("u1", "desc")
    d.set("ups.status", status)
    for k, v in values.items():
        d.set(k.replace("_", "."), v)
    d.data_ok()
    return d


def test_summary_words_and_severity() -> None:
    s = weblive.summarize(_dev("OB DISCHRG LB", battery_charge="12", ups_load="40"), 15)
    assert s["status_text"] == "on battery, low battery, discharging"
    assert s["severity"] == "alarm" and s["charge"] == 12.0 and s["load"] == 40.0
    assert s["runtime"] is None and s["state"] == "ok" and s["available"]
    assert weblive.summarize(_dev("OL CHRG"), 15)["severity"] == "ok"
    assert weblive.summarize(_dev("OL RB"), 15)["severity"] == "warn"
    assert weblive.summarize(_dev("OL XYZ"), 15)["status_text"] == "online, XYZ"
    stale = _dev("OL")
    stale.data_stale()
    assert weblive.summarize(stale, 15)["severity"] == "stale"
    old = _dev("OL")
    assert weblive.summarize(old, 15, now=old.last_heard + 17)["error"] == "DATA-STALE"
    gone = _dev("OL")
    gone.driver_gone()
    assert weblive.summarize(gone, 15)["state"] == "offline"
    assert weblive.number("nan") is None and weblive.number("x") is None and weblive.number(" 5 ") == 5.0


def test_chart_ring_is_bounded_and_sampled_at_most_every_interval() -> None:
    s = weblive.Series(interval=10, window=3600)
    assert s.capacity == 361
    assert s.offer(0.0, {"charge": 100.0, "load": 30.0}) is not None
    assert s.offer(5.0, {"charge": 99.0, "load": 30.0}) is None  # too soon
    assert s.offer(10.0, {"charge": 100.0, "load": 30.0}) is None  # unchanged
    assert s.offer(10.0, {"charge": 98.0, "load": 30.0}) == [10.0, 98.0, 30.0, None, None, None]
    for i in range(2, 1000):
        s.offer(i * 10.0, {"charge": float(i % 100), "load": 1.0})
    assert len(s) == 361
    pts = s.points(now=9990.0)
    assert len(pts) == 361 and pts[0][0] == 9990.0 - 3600 and pts[-1][0] == 9990.0
    times = [float(p[0] or 0) for p in pts]
    assert times == sorted(times)
    assert s.points(now=20000.0) == []  # older than the window


def test_sessions_store_expiry_and_bound() -> None:
    store = webapi.Sessions(limit=3, idle=10, lifetime=100)
    a = store.create("u", "p", "1.2.3.4", now=0)
    b = store.create("u", "p", "1.2.3.4", now=1)
    assert a.id != b.id and a.csrf != b.csrf and len(a.id) >= 40
    assert store.get(a.id, now=5) is a  # used: now b is the least recently used
    store.create("u", "p", "x", now=6)
    store.create("u", "p", "x", now=7)
    assert store.get(b.id, now=7) is None and store.get(a.id, now=8) is a and len(store) == 3
    assert store.get(a.id, now=19) is None  # idle too long
    c = store.create("u", "pa55word", "x", now=20)
    for t in range(25, 125, 5):
        store.get(c.id, now=t)
    assert store.get(c.id, now=125) is None  # past its lifetime however busy
    assert "pa55word" not in repr(c)  # the password is not in its repr


def test_failed_logins_counted_per_address() -> None:
    f = webapi.Failures()
    for i in range(webapi.LOGIN_FAILURES):
        assert not f.blocked("a", now=i)
        f.failed("a", now=i)
    assert f.blocked("a", now=10) and not f.blocked("b", now=10)
    assert not f.blocked("a", now=10 + webapi.LOGIN_WINDOW)
    f.succeeded("a")
    assert not f.blocked("a", now=10)


def test_sse_framing_and_client_queue_bound() -> None:
    assert weblive.sse("ups", {"a": "x\ny"}, 3) == b'id: 3\nevent: ups\ndata: {"a":"x\\ny"}\n\n'
    import asyncio

    async def fill() -> None:
        c = weblive.Client("addr", private=False)
        for _ in range(weblive.CLIENT_QUEUE):
            assert c.offer(b"m")
        assert not c.offer(b"m") and c.dropped.is_set()
        assert c.queue.qsize() == weblive.CLIENT_QUEUE

    asyncio.run(fill())


def test_request_words_are_checked() -> None:
    assert webapi.command_words("u", "beeper.toggle", None) == ("INSTCMD", "u", "beeper.toggle")
    assert webapi.command_words("u", "load.off.delay", "30") == ("INSTCMD", "u", "load.off.delay", "30")
    for bad in (None, 5, "", "a b", "x\ny", "x" * 300):
        assert webapi.command_words("u", bad, None) is None
    assert webapi.set_words("u", "ups.id", "a b") == ("SET", "VAR", "u", "ups.id", "a b")
    assert webapi.set_words("u", "ups.id", 5) is None
    assert webapi.set_words("u", "ups.id", "x\r") is None


def test_hub_coalesces_changes_and_notices_stale_data() -> None:
    """The fan-out with real device state and a real event loop (no sockets involved)."""
    import asyncio

    from nutbridge.config.upsd_conf import UpsdConf
    from nutbridge.config.users import Users
    from nutbridge.history import History
    from nutbridge.server.core import Core
    from nutbridge.server.frontend import Frontend

    async def run() -> None:
        dev = _dev("OL", battery_charge="100", ups_load="10")
        conf = UpsdConf()
        conf.maxage = 1
        history = History(None)
        history.watch([dev])
        fe = Frontend(Core([dev], Users(), conf), history, conf, lambda: "id", "test")
        hub = weblive.LiveHub(fe)
        await hub.start()
        try:
            c = hub.connect("a", private=False)
            assert c is not None
            assert c.queue.get_nowait().startswith(b"event: snapshot\n")
            t0 = time.monotonic()
            for i in range(200):  # a burst of changes: one or two updates, not 200
                dev.set("ups.load", 10 + i % 50)
                await asyncio.sleep(0.001)
            burst = time.monotonic() - t0
            await asyncio.sleep(weblive.COALESCE * 1.5)
            msgs = []
            while not c.queue.empty():
                msgs.append(c.queue.get_nowait())
            ups = [json.loads(m.split(b"data: ", 1)[1]) for m in msgs if m.startswith(b"event: ups")]
            assert 1 <= len(ups) <= burst / weblive.COALESCE + 2
            assert ups[-1]["load"] == float(10 + 199 % 50)  # the last state wins
            # mains loss: the status update and the power event (from the history) follow
            dev.set("ups.status", "OB DISCHRG")
            dev.data_ok()
            await asyncio.sleep(weblive.COALESCE * 1.5)
            msgs = [c.queue.get_nowait() for _ in range(c.queue.qsize())]
            assert any(b"event: ups\n" in m and b'"OB"' in m for m in msgs)
            assert any(b"event: history\n" in m and b"on battery" in m for m in msgs)
            # no driver news for longer than MAXAGE: marked stale by the tick, without a change
            deadline = time.monotonic() + conf.maxage + 1 + 2 * weblive.TICK + 1
            stale = None
            while stale is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                while not c.queue.empty():
                    m = c.queue.get_nowait()
                    if m.startswith(b"event: ups"):
                        d = json.loads(m.split(b"data: ", 1)[1])
                        stale = d if d["state"] == "stale" else None
            assert stale is not None and stale["error"] == "DATA-STALE" and stale["severity"] == "stale"
            hub.disconnect(c)
        finally:
            await hub.stop()
        assert len(dev._listeners) == 1  # the hub let go; the history's watcher remains

    asyncio.run(run())
