"""The Home Assistant app: nut_bridge_app/ against the app rules, and ``nutbridge app`` run for real.

(a) The app's files, checked with the rules the Supervisor and the app linter apply
(docs/ha-app.md; re-expressed here from the Supervisor's documented config keys and schema
types, nothing copied): required keys, only keys the Supervisor knows, no key at its default
value, arch within {aarch64, amd64}, ``discovery`` names the integration, ``init: false``, no
build.yaml, schema types from the allowed set, default options valid for the schema and for
``nutbridge app``, translations for every option and port, the version the package's, no
other ``config.(yaml|yml|json)`` the Supervisor would take for an app, executable s6 scripts
under rootfs/ if there are any, repository.yaml, icon and logo.

(b) ``nutbridge app`` with an options.json describing a simulated UPS and a hosted C
``dummy-ups``, and ``SUPERVISOR_URL`` pointing at a stand-in Supervisor (http.server, started
late so that the announcement has to be retried): real ``upsc`` reads both UPSes; the recorded
discovery has the agreed keys, the bearer token, the app's host name from ``/addons/self/info``,
the server id, a password that works in a real NUT session, and the fingerprint of the
certificate the server presents after STARTTLS (= the one kept in ``<data>/tls``); SIGTERM
ends it with exit 0 and no process of its tree left. A restart on the same data announces the
same password, id and fingerprint (d).

(c) Broken options: exit code 2, each problem named with its place, no traceback, nothing
written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nutbridge import __version__, app
from nutbridge.protocol.wire import request
from tests.support import realnut
from tests.support.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "nut_bridge_app"
SERVICE = "nut_bridge"

# ---- (a) the app's files -------------------------------------------------------------------

#: The Supervisor's app config keys with their defaults (docs/apps/configuration.md and the
#: Supervisor's validator): a key set to its default is an error for the app linter.
DEFAULTS: dict[str, Any] = {
    "startup": "application", "boot": "auto", "init": True, "advanced": False, "stage": "stable",
    "ingress": False, "ingress_port": 8099, "ingress_stream": False, "panel_icon": "mdi:puzzle",
    "panel_admin": True, "host_network": False, "host_pid": False, "host_ipc": False,
    "host_uts": False, "host_dbus": False, "udev": False, "tmpfs": False, "map": [],
    "apparmor": True, "full_access": False, "audio": False, "video": False, "gpio": False,
    "usb": False, "uart": False, "devicetree": False, "kernel_modules": False, "realtime": False,
    "hassio_api": False, "hassio_role": "default", "homeassistant_api": False, "stdin": False,
    "legacy": False, "docker_api": False, "auth_api": False, "backup": "hot", "options": {},
    "schema": {}, "ulimits": {}, "timeout": 10, "journald": False, "breaking_versions": [],
}
#: keys without a default
OTHER_KEYS = {
    "name", "version", "slug", "description", "arch", "machine", "url", "ports",
    "ports_description", "watchdog", "webui", "ingress_entry", "panel_title", "homeassistant",
    "devices", "environment", "privileged", "services", "discovery", "backup_exclude",
    "backup_pre", "backup_post", "image",
}
REQUIRED = {"name", "version", "slug", "description", "arch"}
ARCHES = {"aarch64", "amd64"}  # armhf, armv7, i386: deprecated, 32-bit HA is unsupported
#: the option types the Supervisor accepts (docs/apps/configuration.md "Options / Schema"),
#: each optionally ending in "?"
SCHEMA_TYPE = re.compile(
    r"^(?:bool|email|url|port|device(?:\(subsystem=[a-z]+\))?"
    r"|(?:str|password)(?:\(\d*,\d*\))?"
    r"|(?:int|float)(?:\(-?[\d.]*,-?[\d.]*\))?"
    r"|match\(.+\)|list\([^|)]+(?:\|[^|)]+)*\))\??$"
)
APP_FILES = ("config.yaml", "DOCS.md", "README.md", "CHANGELOG.md", "icon.png", "logo.png",
             "translations/en.yaml")


def _yaml(path: Path) -> Any:
    yaml = realnut.require_module("yaml", hint="PyYAML, in the test extra")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = _yaml(APP_DIR / "config.yaml")
    assert isinstance(data, dict)
    return data


def test_app_folder_has_the_files_of_an_app() -> None:
    for name in APP_FILES:
        assert (APP_DIR / name).is_file(), name
    assert (REPO / "repository.yaml").is_file()


def test_config_keys(config: dict[str, Any]) -> None:
    assert set(config) >= REQUIRED, REQUIRED - set(config)
    unknown = set(config) - set(DEFAULTS) - OTHER_KEYS
    assert not unknown, f"keys the Supervisor does not know (it drops them): {unknown}"
    at_default = {k for k, v in config.items() if k in DEFAULTS and v == DEFAULTS[k]}
    assert not at_default, f"keys set to their default value (the linter refuses them): {at_default}"
    for key in ("name", "version", "slug", "description", "url"):
        assert isinstance(config[key], str) and config[key].strip(), key
    for key, default in DEFAULTS.items():
        if key in config and isinstance(default, bool):
            assert isinstance(config[key], bool), key
    assert re.fullmatch(r"[-_.A-Za-z0-9]+", config["slug"])
    assert config["slug"] == "nut_bridge"
    assert config["url"].startswith("https://")


def test_config_values_this_app_needs(config: dict[str, Any]) -> None:
    arch = config["arch"]
    assert isinstance(arch, list) and arch and set(arch) <= ARCHES and len(set(arch)) == len(arch)
    assert SERVICE in config["discovery"]
    assert config["init"] is False  # its own entry point (under tini) reaps and forwards signals
    assert config["usb"] is True and config["uart"] is True and config["udev"] is True
    # 3493 published; the status page's 8493 only when the user gives it a host port
    assert config["ports"] == {"3493/tcp": 3493, "8493/tcp": None}
    assert set(config["ports_description"]) == set(config["ports"])
    # the Mosquitto broker app's address and account for the mqtt option; "want": the app
    # installs and runs without a broker
    assert config["services"] == ["mqtt:want"]
    # no ingress, no webui: the endpoint is HTTPS-only and refuses framing (docs/ha-app.md),
    # and a webui on an unpublished port would point at "[HOST]:None"
    assert "ingress" not in config and "webui" not in config
    assert config["startup"] in ("initialize", "system", "services", "application", "once")
    # what the linter refuses outright
    assert "watchdog" not in config and "full_access" not in config
    assert all(":" not in d for d in config.get("devices", []))
    for port, host in config["ports"].items():
        assert re.fullmatch(r"\d+/(tcp|udp)", port) and (host is None or isinstance(host, int))


def test_no_build_yaml() -> None:
    """build.yaml is deprecated (Supervisor 2026.04 no longer passes BUILD_FROM with it absent;
    with it present it logs a deprecation): the Dockerfile alone says how to build."""
    assert not [p.name for p in APP_DIR.glob("build.*")]


def test_version_is_the_packages(config: dict[str, Any]) -> None:
    assert isinstance(config["version"], str)
    assert config["version"] == __version__


def test_url_is_the_projects(config: dict[str, Any]) -> None:
    manifest = json.loads((REPO / "custom_components/nut_bridge/manifest.json").read_text())
    assert config["url"] == manifest["documentation"]
    repository = _yaml(REPO / "repository.yaml")
    assert repository["name"] and repository["maintainer"]
    assert repository["url"] == manifest["documentation"]


def _check_schema(schema: Any, where: str, depth: int = 0) -> None:
    if isinstance(schema, str):
        assert SCHEMA_TYPE.match(schema), f"{where}: type {schema!r} is not one the Supervisor accepts"
    elif isinstance(schema, list):
        assert len(schema) == 1, f"{where}: a list schema has exactly one element"
        assert not isinstance(schema[0], list), f"{where}: a list may not directly hold a list"
        _check_schema(schema[0], f"{where}[]", depth + 1)
    elif isinstance(schema, dict):
        assert schema, f"{where}: empty mapping"
        for key, sub in schema.items():
            _check_schema(sub, f"{where}.{key}", depth + 1)
    else:
        raise AssertionError(f"{where}: {schema!r} is no schema element")
    for m in re.finditer(r"match\((.+)\)", schema if isinstance(schema, str) else ""):
        re.compile(m.group(1))


def _valid(value: Any, schema: Any, where: str) -> None:
    """The options against the schema, by the Supervisor's documented rules: every key the
    schema has is required unless its type ends in '?' (for a list: its element's type)."""
    if isinstance(schema, list):
        assert isinstance(value, list), where
        for i, v in enumerate(value):
            _valid(v, schema[0], f"{where}[{i}]")
    elif isinstance(schema, dict):
        assert isinstance(value, dict), where
        assert set(value) <= set(schema), f"{where}: options the schema does not have"
        for key, sub in schema.items():
            if key in value:
                _valid(value[key], sub, f"{where}.{key}")
            else:
                leaf = sub[0] if isinstance(sub, list) else sub
                assert isinstance(leaf, str) and leaf.endswith("?"), f"{where}.{key}: required"
    else:
        typ = schema.rstrip("?")
        if typ == "bool":
            assert isinstance(value, bool), where
        elif typ.startswith(("str", "password")):
            assert isinstance(value, str), where
        elif typ.startswith("match("):
            assert isinstance(value, str) and re.match(typ[6:-1], value), where
        elif typ.startswith("list("):
            assert value in typ[5:-1].split("|"), where
        else:
            raise AssertionError(f"{where}: type {typ} unused here, add its check")


def _optional(schema: Any) -> bool:
    leaf = schema[0] if isinstance(schema, list) else schema
    return isinstance(leaf, str) and leaf.endswith("?")


def test_schema_types_and_default_options(config: dict[str, Any]) -> None:
    _check_schema(config["schema"], "schema")
    _valid(config["options"], config["schema"], "options")
    # every required option has a default (an install is valid as it comes); optional ones
    # may have none (the UI lists them under "unused optional configuration options")
    required = {k for k, v in config["schema"].items() if not _optional(v)}
    assert required <= set(config["options"]) <= set(config["schema"])
    # the options added after 0.1.0's first release are all optional: the options of an
    # existing install stay valid when the app is updated
    for key in ("http", "mqtt", "mqtt_url", "mqtt_username", "mqtt_password", "mqtt_commands"):
        assert _optional(config["schema"][key]), key
    # switches are shown, off; where the broker is comes from the Supervisor unless set
    assert {k: config["options"][k] for k in ("http", "mqtt", "mqtt_commands")} == dict.fromkeys(
        ("http", "mqtt", "mqtt_commands"), False)
    assert config["schema"]["mqtt_password"].startswith("password")  # masked in the UI


def test_schema_is_the_entry_points(config: dict[str, Any]) -> None:
    """One set of rules: config.yaml's schema (the Supervisor's check, in the UI) is the one
    ``nutbridge app`` enforces."""
    assert config["schema"] == app.SCHEMA


def test_default_options_are_a_usb_ups(config: dict[str, Any]) -> None:
    opts = app.validate_options(config["options"])
    assert [(u.name, u.driver, u.port) for u in opts.ups] == [("ups", "usbhid-ups", "auto")]
    assert opts.users == [] and opts.listen == "0.0.0.0" and opts.log_level == "info"
    assert not opts.http and not opts.mqtt and not opts.mqtt_commands and opts.mqtt_url is None


def test_translations_cover_every_option_and_port(config: dict[str, Any]) -> None:
    en = _yaml(APP_DIR / "translations" / "en.yaml")
    assert set(en) == {"configuration", "network"}
    conf = en["configuration"]
    assert set(conf) == set(config["schema"])
    for key, schema in config["schema"].items():
        assert conf[key]["name"] and conf[key]["description"], key
        inner = schema[0] if isinstance(schema, list) else schema
        if isinstance(inner, dict):
            assert set(conf[key]["fields"]) == set(inner), key
            for sub, text in conf[key]["fields"].items():
                assert text["name"] and text["description"], f"{key}.{sub}"
    assert set(en["network"]) == set(config["ports"])


def test_docs_explain_every_option(config: dict[str, Any]) -> None:
    docs = (APP_DIR / "DOCS.md").read_text()
    for key, schema in config["schema"].items():
        assert f"`{key}`" in docs, key
        inner = schema[0] if isinstance(schema, list) else schema
        for sub in inner if isinstance(inner, dict) else ():
            assert f"`{sub}`" in docs, f"{key}.{sub}"
    changelog = (APP_DIR / "CHANGELOG.md").read_text()
    assert f"## {config['version']}" in changelog


def _tree_files() -> list[str]:
    """The repository's files as a clone has them (tracked, and new ones not ignored)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_no_other_config_file_looks_like_an_app() -> None:
    """The Supervisor takes every config.(yaml|yml|json) outside dot-dirs and rootfs for an
    app's: there must be exactly ours."""
    found = []
    for rel in _tree_files():
        parts = Path(rel).parts
        if any(p.startswith(".") or p == "rootfs" for p in parts[:-1]):
            continue
        if parts[-1] in ("config.yaml", "config.yml", "config.json") and (REPO / rel).exists():
            found.append(rel)
    assert found == ["nut_bridge_app/config.yaml"]


def test_rootfs_scripts_are_executable() -> None:
    """s6 runs rootfs scripts only with their executable bit, in the checkout and in git."""
    modes = {}
    out = subprocess.run(["git", "ls-files", "-s", "--", "nut_bridge_app/rootfs"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        meta, name = line.split("\t", 1)
        modes[name] = meta.split()[0]
    root = APP_DIR / "rootfs"
    for path in root.rglob("*") if root.exists() else ():
        if path.is_file() and path.read_bytes()[:2] == b"#!":
            rel = str(path.relative_to(REPO))
            assert os.access(path, os.X_OK), rel
            assert modes.get(rel, "100755") == "100755", rel


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_icon_and_logo() -> None:
    w, h = _png_size(APP_DIR / "icon.png")
    assert w == h and w in (128, 256)  # square; 128 px recommended, 256 px sharper
    w, h = _png_size(APP_DIR / "logo.png")
    assert w >= h > 0


def test_dockerfile_runs_the_entry_point() -> None:
    """nut_bridge_app/Dockerfile (written elsewhere) must start ``nutbridge app``."""
    text = (APP_DIR / "Dockerfile").read_text()
    assert re.search(r'^(CMD|ENTRYPOINT)\s.*"nutbridge",\s*"app"', text, re.M)


# ---- entry point pieces, in-process ---------------------------------------------------------

def test_listen_addresses() -> None:
    assert app.listen_addresses("0.0.0.0") == ["0.0.0.0"]
    assert app.listen_addresses("::") == ["0.0.0.0", "::"]  # upsd's IPv6 sockets are v6-only
    assert app.listen_addresses("127.0.0.1") == ["127.0.0.1"]
    assert app.listen_addresses("192.168.1.5") == ["192.168.1.5", "127.0.0.1"]


def test_ha_credentials_made_once_and_private(tmp_path: Path) -> None:
    old = os.umask(0)  # the file is 0600 whatever the umask
    try:
        user = app.ha_credentials(tmp_path)
    finally:
        os.umask(old)
    assert user[0] == "homeassistant" and len(user[1]) >= 24
    path = tmp_path / app.HA_USER_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert app.ha_credentials(tmp_path) == user
    path.chmod(0o644)
    assert app.ha_credentials(tmp_path) == user and path.stat().st_mode & 0o777 == 0o600
    path.write_text("{broken")
    new = app.ha_credentials(tmp_path)
    assert new[1] != user[1] and path.stat().st_mode & 0o777 == 0o600


def test_upsd_users_quotes_what_it_writes(tmp_path: Path) -> None:
    from nutbridge.config.users import parse_users

    opts = app.validate_options({
        "ups": [], "users": [{"username": "nas", "password": 'a "b" #c \\d', "upsmon": "primary",
                              "instcmds": ["all"], "actions": ["set"]}],
        "listen": "0.0.0.0", "log_level": "info"})
    (tmp_path / "upsd.users").write_text(app.upsd_users(opts, ("homeassistant", "x" * 32)))
    users = parse_users(tmp_path / "upsd.users").users
    assert users["nas"].password == 'a "b" #c \\d'
    assert {"set", "fsd", "master", "login"} <= users["nas"].actions and users["nas"].instcmds == {"all"}
    ha = users["homeassistant"]
    assert ha.password == "x" * 32 and ha.actions == {"set", "fsd"} and ha.instcmds == {"all"}


# ---- a stand-in Supervisor ------------------------------------------------------------------

@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class StandInSupervisor:
    """What the app uses of the Supervisor's API: /addons/self/info, /v2/apps/self/info,
    POST /discovery and GET /services/<service>; every request recorded.

    ``services`` holds what a provider registered (the Supervisor answers it as ``data``; an
    unregistered service is its 400 "Service not enabled"); ``services_status`` answers every
    service request with that status instead (403: the app has no ``services:`` role)."""

    port: int = field(default_factory=realnut.free_port)
    info: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "/addons/self/info": {"hostname": "abc12345-nut-bridge", "slug": "abc12345_nut_bridge"}})
    discovery_status: int = 200
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    services_status: int = 200
    requests: list[Recorded] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self) -> Recorded:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                rec = Recorded(self.command, self.path, dict(self.headers.items()),
                               json.loads(raw) if raw else None)
                with outer.cond:
                    outer.requests.append(rec)
                    outer.cond.notify_all()
                return rec

            def do_GET(self) -> None:
                self._record()
                if self.path.startswith("/services/"):
                    name = self.path.removeprefix("/services/")
                    if outer.services_status != 200:
                        self._answer(outer.services_status, {
                            "result": "error", "message": f"No access to {name} service!"})
                    elif name in outer.services:
                        self._answer(200, {"result": "ok", "data": outer.services[name]})
                    else:
                        self._answer(400, {"result": "error", "message": "Service not enabled"})
                elif self.path in outer.info:
                    self._answer(200, {"result": "ok", "data": outer.info[self.path]})
                else:
                    self._answer(404, {"result": "error", "message": "not found"})

            def do_POST(self) -> None:
                self._record()
                if self.path != "/discovery":
                    self._answer(404, {"result": "error", "message": "not found"})
                elif outer.discovery_status != 200:
                    self._answer(outer.discovery_status, {"result": "error", "message": "refused"})
                else:
                    self._answer(200, {"result": "ok", "data": {"uuid": "f" * 32}})

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def discoveries(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/discovery"]

    def wait_discovery(self, count: int = 1, timeout: float = 30.0) -> Recorded:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.discoveries()) >= count, timeout), \
                f"no discovery POST within {timeout} s; requests: {self.requests}"
            return self.discoveries()[-1]


@contextlib.contextmanager
def supervisor(**kw: Any) -> Iterator[StandInSupervisor]:
    s = StandInSupervisor(**kw)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_supervisor_hostname_falls_back() -> None:
    with supervisor(info={"/v2/apps/self/info": {"hostname": "v2-host"}}) as s:
        assert app.supervisor_hostname(s.url, "t") == "v2-host"
        assert [r.path for r in s.requests] == ["/addons/self/info", "/v2/apps/self/info"]
        assert all(r.headers["Authorization"] == "Bearer t" for r in s.requests)
    with supervisor(info={}) as s:
        assert app.supervisor_hostname(s.url, "t") == socket.gethostname()
    with pytest.raises(app.Retry):  # nobody there yet: try again later
        app.supervisor_hostname(f"http://127.0.0.1:{realnut.free_port()}", "t")


def test_discovery_refused_is_final() -> None:
    with supervisor(discovery_status=403) as s, pytest.raises(app.GiveUp, match="discovery"):
        app.post_discovery(s.url, "t", {"host": "h"})
    with supervisor(discovery_status=400) as s, pytest.raises(app.Retry):  # "System is not ready"
        app.post_discovery(s.url, "t", {"host": "h"})


# ---- the status page and MQTT options -> upsd.conf ------------------------------------------

#: what the Mosquitto broker app registers as the mqtt service (host: its name on the
#: Supervisor's network; an account it made for apps), as GET /services/mqtt (v1) answers it
MQTT_SERVICE: dict[str, Any] = {
    "host": "core-mosquitto", "port": 1883, "ssl": False, "protocol": "3.1.1", "username": "addons",
    "password": 'broker "pw" #1', "addon": "core_mosquitto"}


def _conf(tmp_path: Path, options: dict[str, Any], broker: app.Broker | None = None,
          http_port: int = 8493) -> Any:
    """``options`` through ``nutbridge app``'s validation and file writing, read back with the
    bridge's own upsd.conf parser."""
    from nutbridge.config.upsd_conf import parse_upsd_conf

    opts = app.validate_options({"ups": [GOOD_UPS], **options})
    confdir = tmp_path / "nut"
    app.write_nut_files(opts, confdir, ("homeassistant", "x" * 32), 3493, broker, http_port)
    return parse_upsd_conf(confdir / "upsd.conf")


def test_without_the_new_options_upsd_conf_has_no_http_or_mqtt(tmp_path: Path) -> None:
    """An install from before the options (none of them set): nothing new is served."""
    conf = _conf(tmp_path, {"listen": "0.0.0.0"})
    assert [(x.host, x.port) for x in conf.listen] == [("0.0.0.0", 3493)]
    assert conf.http_listen == [] and conf.mqtt is None
    # off switches and an unused URL change nothing either
    conf = _conf(tmp_path, {"http": False, "mqtt": False, "mqtt_url": "mqtt://b"})
    assert conf.http_listen == [] and conf.mqtt is None


@pytest.mark.parametrize(("listen", "expected"), [
    ("0.0.0.0", [("0.0.0.0", 8493)]),
    ("::", [("0.0.0.0", 8493), ("::", 8493)]),
    ("192.168.1.5", [("192.168.1.5", 8493), ("127.0.0.1", 8493)]),
    ("127.0.0.1", [("127.0.0.1", 8493)]),
])
def test_http_listens_where_upsd_does(tmp_path: Path, listen: str, expected: list[tuple[str, int]]) -> None:
    conf = _conf(tmp_path, {"listen": listen, "http": True})
    assert [(x.host, x.port) for x in conf.http_listen] == expected
    assert [x.host for x in conf.listen] == [h for h, _ in expected]
    conf = _conf(tmp_path, {"listen": listen, "http": True}, http_port=18493)
    assert {x.port for x in conf.http_listen} == {18493}


def test_mqtt_settings_in_upsd_conf(tmp_path: Path) -> None:
    password = 'p "q" #r \\s'
    opts = app.validate_options({"ups": [GOOD_UPS], "mqtt": True, "mqtt_url": "mqtts://[fd00::5]:8884",
                                 "mqtt_username": "nut bridge", "mqtt_password": password})
    assert password not in repr(opts)
    broker = app.resolve_broker(opts, None, "")
    assert (broker.url, broker.username, broker.password) == (
        "mqtts://[fd00::5]:8884", "nut bridge", password)
    assert password not in repr(broker)
    conf = _conf(tmp_path, {"mqtt": True, "mqtt_url": "mqtts://[fd00::5]:8884",
                            "mqtt_username": "nut bridge", "mqtt_password": password}, broker)
    m = conf.mqtt
    assert (m.host, m.port, m.tls, m.username, m.password) == ("fd00::5", 8884, True, "nut bridge", password)
    assert m.account is None  # read-only unless mqtt_commands
    assert (m.discovery_prefix, m.base_topic) == ("homeassistant", "nut-bridge")
    # it holds a password now: 0600, like upsd.users, in the 0700 directory
    assert (tmp_path / "nut" / "upsd.conf").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "nut").stat().st_mode & 0o777 == 0o700

    # commands over MQTT run as the app's Home Assistant user (SET, FSD, every command)
    conf = _conf(tmp_path, {"mqtt": True, "mqtt_url": "mqtt://broker.lan", "mqtt_commands": True},
                 app.Broker("mqtt://broker.lan:1883", None, None, "test"))
    assert conf.mqtt.account == "homeassistant" and conf.mqtt.username is None
    assert (conf.mqtt.host, conf.mqtt.port, conf.mqtt.tls) == ("broker.lan", 1883, False)
    # mqtt on but no broker found: the UPSes are served, nothing is published
    assert _conf(tmp_path, {"mqtt": True, "mqtt_commands": True}, None).mqtt is None


def test_broker_from_the_supervisors_mqtt_service() -> None:
    opts = app.validate_options({"ups": [GOOD_UPS], "mqtt": True})
    with supervisor(services={"mqtt": MQTT_SERVICE}) as s:
        broker = app.resolve_broker(opts, s.url, "t")
        assert [(r.method, r.path, r.headers["Authorization"]) for r in s.requests] == [
            ("GET", "/services/mqtt", "Bearer t")]
    assert (broker.url, broker.username, broker.password) == (
        "mqtt://core-mosquitto:1883", "addons", MQTT_SERVICE["password"])
    assert "core_mosquitto" in broker.source
    # TLS when the provider says so; an IPv6 address in brackets
    with supervisor(services={"mqtt": {**MQTT_SERVICE, "ssl": True, "host": "fd00::7", "port": 8883}}) as s:
        assert app.resolve_broker(opts, s.url, "t").url == "mqtts://[fd00::7]:8883"
    # the options' user replaces the broker app's account, on the broker app's host
    mine = app.validate_options({"ups": [GOOD_UPS], "mqtt": True, "mqtt_username": "nut",
                                 "mqtt_password": "pw"})
    with supervisor(services={"mqtt": MQTT_SERVICE}) as s:
        broker = app.resolve_broker(mine, s.url, "t")
    assert (broker.url, broker.username, broker.password) == ("mqtt://core-mosquitto:1883", "nut", "pw")
    # mqtt_url: the Supervisor is not asked
    explicit = app.validate_options({"ups": [GOOD_UPS], "mqtt": True, "mqtt_url": "mqtt://10.0.0.2"})
    with supervisor(services={"mqtt": MQTT_SERVICE}) as s:
        broker = app.resolve_broker(explicit, s.url, "t")
        assert s.requests == []
    assert (broker.url, broker.username, broker.password) == ("mqtt://10.0.0.2:1883", None, None)


def test_no_broker_says_why() -> None:
    opts = app.validate_options({"ups": [GOOD_UPS], "mqtt": True})
    with supervisor() as s, pytest.raises(app.NoBroker, match="install the Mosquitto broker app"):
        app.resolve_broker(opts, s.url, "t")  # no provider: "Service not enabled"
    with supervisor(services_status=403) as s, pytest.raises(app.NoBroker, match="mqtt:want"):
        app.resolve_broker(opts, s.url, "t")
    with supervisor(services={"mqtt": {**MQTT_SERVICE, "host": "a\nb"}}) as s, \
            pytest.raises(app.NoBroker, match="no usable host"):
        app.resolve_broker(opts, s.url, "t")
    with pytest.raises(app.NoBroker, match="set mqtt_url"):
        app.resolve_broker(opts, None, "")  # outside Home Assistant
    # a Supervisor that does not answer is asked again, for a bounded time
    t0 = time.monotonic()
    with pytest.raises(app.NoBroker, match="did not name the MQTT broker"):
        app.resolve_broker(opts, f"http://127.0.0.1:{realnut.free_port()}", "t", wait=1.5)
    assert 1.4 < time.monotonic() - t0 < 5


# ---- (b), (d) nutbridge app, for real -------------------------------------------------------

DEV = "ups.status: OL\nups.model: AppTest\nbattery.charge: 87\n"
USER_PASSWORD = 'secret "with" #specials'


def _proc_stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[1]), fields[0], fields[19]


def _tree(root: int) -> dict[int, str]:
    """Every process under ``root`` (root included): pid -> start time."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _proc_stat(int(entry))) is not None:
            parents.setdefault(st[0], []).append(int(entry))
    out: dict[int, str] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if (st := _proc_stat(pid)) is not None:
            out[pid] = st[2]
            todo.extend(parents.get(pid, []))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class AppRun:
    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.proc.poll() is None, f"app exited with {self.proc.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{self.log()}"
            time.sleep(0.1)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"app did not exit on SIGTERM:\n{self.log()}") from None


@contextlib.contextmanager
def run_app(tmp_path: Path, options: dict[str, Any], *, data: Path, name: str,
            supervisor_url: str | None, port: int | None = None,
            wrapper: tuple[str, ...] = (), args: tuple[str, ...] = ()) -> Iterator[AppRun]:
    options_path = tmp_path / f"{name}-options.json"
    options_path.write_text(json.dumps(options))
    port = port or realnut.free_port()
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO / "bridge") + os.pathsep + env.get("PYTHONPATH", ""),
               NUT_QUIET_INIT_SSL="true", TZ="UTC", LANG="C")
    env.pop("SUPERVISOR_TOKEN", None)
    if supervisor_url is not None:
        env.update(SUPERVISOR_URL=supervisor_url, SUPERVISOR_TOKEN="test-token-123")
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "wb") as log:
        argv = [*wrapper, sys.executable, "-m", "nutbridge", "app", "--options", str(options_path),
                "--data", str(data), "--port", str(port), *args]
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    run = AppRun(proc, log_path, port)
    try:
        yield run
    finally:
        if proc.poll() is None:  # a failed test: the bridge under the app must not outlive it
            for pid in _tree(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()


def _session(port: int, *lines: bytes) -> list[str]:
    """One NUT session, one answer line per request."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s, s.makefile("rb") as f:
        for line in lines:
            s.sendall(line)
            answers.append(f.readline().decode().rstrip("\n"))
    return answers


def _server_fingerprint(port: int) -> str | None:
    """The SHA-256 of the certificate after STARTTLS, as a client sees it; None: no STARTTLS."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"STARTTLS\n")
        answer = s.makefile("rb").readline()
        if not answer.startswith(b"OK STARTTLS"):
            return None
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(s) as t:
            der = t.getpeercert(binary_form=True)
    assert der
    return hashlib.sha256(der).hexdigest()


def _pem_fingerprint(path: Path) -> str:
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", path.read_text(), re.S)
    assert pem, path
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.group(0))).hexdigest()


def _options(dev: Path) -> dict[str, Any]:
    return {
        "ups": [
            {"name": "sim", "driver": "simulated", "port": "simulated"},
            {"name": "dummy", "driver": "dummy-ups", "port": str(dev), "hosted": True,
             "options": ["desc=Hosted C dummy-ups", "pollinterval=1"]},
        ],
        "users": [{"username": "nas", "password": USER_PASSWORD, "upsmon": "secondary"}],
        # beyond loopback: the bridge makes its certificate and offers STARTTLS
        "listen": "0.0.0.0",
        "log_level": "info",
    }


@pytest.mark.interop
@pytest.mark.slow
def test_app_serves_announces_and_stops(tmp_path: Path) -> None:
    realnut.require_daemon("dummy-ups")
    upsc = realnut.require_client("upsc")
    dev = tmp_path / "dummy.dev"
    dev.write_text(DEV)
    data = tmp_path / "data"
    sup = StandInSupervisor()  # not started yet: the Supervisor is "not reachable"
    try:
        with run_app(tmp_path, _options(dev), data=data, name="first", supervisor_url=sup.url) as run:
            # the announcement waits for the Supervisor, retrying, then arrives (checked below)
            run.wait_log("next try in")
            sup.start()
            realnut.wait_port(run.port, timeout=20)
            realnut.wait_ready_ups(run.port, ["sim", "dummy"], timeout=30)
            # real upsc reads both UPSes: the bridge's simulated one and NUT's C dummy-ups
            listed = realnut.run_tool([upsc, "-l", f"127.0.0.1:{run.port}"])
            assert listed.stdout.decode().split() == ["sim", "dummy"], listed
            model = realnut.run_tool([upsc, f"dummy@127.0.0.1:{run.port}", "ups.model"])
            assert model.stdout.decode().strip() == "AppTest", model
            status = realnut.run_tool([upsc, f"sim@127.0.0.1:{run.port}", "ups.status"])
            assert "OL" in status.stdout.decode(), status

            posted = sup.wait_discovery(timeout=30)
            run.wait_log("Announced to Home Assistant")

            assert posted.headers["Authorization"] == "Bearer test-token-123"
            assert posted.body["service"] == SERVICE
            cfg = posted.body["config"]
            assert set(cfg) == {"host", "port", "username", "password", "tls_sha256", "id"}
            assert cfg["host"] == "abc12345-nut-bridge"
            assert cfg["port"] == run.port and isinstance(cfg["port"], int)
            assert cfg["username"] == "homeassistant"
            assert cfg["id"] == (data / "server-id").read_text().strip()
            assert re.fullmatch(r"[0-9a-f]{32}", cfg["id"])
            saved = json.loads((data / app.HA_USER_FILE).read_text())
            assert cfg["password"] == saved["password"]

            # TLS: the fingerprint is the certificate's a client sees after STARTTLS, which is
            # the one the bridge keeps in the app's data
            seen = _server_fingerprint(run.port)
            assert seen is not None, "a bridge listening on 0.0.0.0 offers STARTTLS"
            assert cfg["tls_sha256"] == seen
            assert re.fullmatch(r"[0-9a-f]{64}", seen)
            assert _pem_fingerprint(data / "tls" / "nutbridge.pem") == seen

            # the announced password works in a real session, with the rights the integration
            # uses: SET (its credentials probe), every instant command, FSD
            pw = cfg["password"]
            answers = _session(run.port, request("USERNAME", "homeassistant"), request("PASSWORD", pw),
                               b"SET VAR sim nut.bridge.probe 0\n", b"INSTCMD sim beeper.disable\n",
                               b"FSD sim\n")
            assert answers[:2] == ["OK", "OK"]
            assert answers[2] != "ERR ACCESS-DENIED"
            assert answers[3].startswith("OK"), answers
            assert answers[4] == "OK FSD-SET"
            wrong = _session(run.port, request("USERNAME", "homeassistant"),
                             request("PASSWORD", pw + "x"), b"INSTCMD sim beeper.enable\n")
            assert wrong[2] == "ERR ACCESS-DENIED"
            # the user of the options, with its special characters, is an upsmon secondary
            mine = _session(run.port, request("USERNAME", "nas"), request("PASSWORD", USER_PASSWORD),
                            b"LOGIN dummy\n")
            assert mine == ["OK", "OK", "OK"]

            # secrets: 0600, never in the log
            assert (data / app.HA_USER_FILE).stat().st_mode & 0o777 == 0o600
            assert (data / "nut" / "upsd.users").stat().st_mode & 0o777 == 0o600
            assert (data / "nut").stat().st_mode & 0o777 == 0o700

            # SIGTERM: exit 0, the whole process tree gone (the bridge and the C driver it hosts)
            tree = _tree(run.proc.pid)
            assert any("nutbridge serve" in _cmdline(p) for p in tree), tree
            assert any("dummy-ups" in _cmdline(p) for p in tree), {p: _cmdline(p) for p in tree}
            assert run.terminate() == 0, run.log()
            log = run.log()
            for pid, started in tree.items():
                st = _proc_stat(pid)
                assert st is None or st[2] != started, f"process {pid} ({_cmdline(pid)}) outlived the app"
            assert pw not in log and USER_PASSWORD not in log
            assert "Traceback" not in log

        # (d) a restart on the same data: the same password, server id and certificate
        with run_app(tmp_path, _options(dev), data=data, name="second", supervisor_url=sup.url) as run2:
            again = sup.wait_discovery(count=2, timeout=30)
            assert again.body["config"] == {**cfg, "port": run2.port}
            assert (data / app.HA_USER_FILE).stat().st_mode & 0o777 == 0o600
            assert run2.terminate() == 0, run2.log()
    finally:
        sup.stop()


def _pid_namespace() -> tuple[str, ...]:
    """``unshare`` making the app PID 1 of a new PID namespace, as in a container without an
    init; skips (locally) where that is not permitted. /proc stays the outer one (a new mount
    namespace fails in a chroot, and this test reads the processes from outside): the app
    then must not take /proc's pids for its own (app._children)."""
    wrapper = ("unshare", "--pid", "--fork", "--kill-child")
    try:
        probe = subprocess.run([*wrapper, "sh", "-c", "echo $$"], capture_output=True, text=True, timeout=10)
        works = probe.returncode == 0 and probe.stdout.strip() == "1"
    except (OSError, subprocess.TimeoutExpired):
        works = False
    realnut.require("unshare --pid --fork (util-linux, as root)", works)
    return wrapper


def _wait_tree(root: int, needle: str, timeout: float = 20.0) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        tree = _tree(root)
        if any(needle in _cmdline(p) for p in tree) or time.monotonic() > deadline:
            return tree
        time.sleep(0.1)


@pytest.mark.interop
@pytest.mark.slow
def test_app_as_pid_1(tmp_path: Path) -> None:
    """As PID 1 of its namespace (no init): SIGTERM is handled (PID 1 ignores signals it has no
    handler for) and ends it with 0; when the bridge dies, the C driver it hosted is orphaned
    to PID 1 and reaped there (nothing is left as a zombie), and the app exits 128+9."""
    wrapper = _pid_namespace()
    realnut.require_daemon("dummy-ups")
    dev = tmp_path / "dummy.dev"
    dev.write_text(DEV)
    options = {**_options(dev), "log_level": "debug"}

    def app_pid(run: AppRun) -> int:  # the app, seen from here: the child of unshare
        tree = _wait_tree(run.proc.pid, "dummy-ups")
        return next(p for p in tree if p != run.proc.pid and "nutbridge app" in _cmdline(p))

    with run_app(tmp_path, options, data=tmp_path / "data", name="pid1-term", supervisor_url=None,
                 wrapper=wrapper) as run:
        realnut.wait_ready_ups(run.port, ["sim", "dummy"], timeout=30)
        os.kill(app_pid(run), signal.SIGTERM)
        assert run.proc.wait(15) == 0, run.log()
        assert "Signal received, exiting" in run.log()

    with run_app(tmp_path, options, data=tmp_path / "data", name="pid1-kill", supervisor_url=None,
                 wrapper=wrapper) as run:
        realnut.wait_ready_ups(run.port, ["sim", "dummy"], timeout=30)
        tree = _tree(app_pid(run))
        serve = next(p for p in tree if "nutbridge serve" in _cmdline(p))
        driver = next(p for p in tree if "dummy-ups" in _cmdline(p))
        os.kill(serve, signal.SIGKILL)
        assert run.proc.wait(15) == 128 + signal.SIGKILL, run.log()
        # the driver (SIGTERM from PR_SET_PDEATHSIG) was reaped by the app, as PID 1
        assert re.search(r"DEBUG nutbridge\.app: reaped process \d+", run.log()), run.log()
        assert _proc_stat(driver) is None


@pytest.mark.slow
def test_app_without_a_ups_serves_nothing_and_says_so(tmp_path: Path) -> None:
    """An install whose UPS entry was removed: the bridge runs, the log says what to
    configure, and nothing is announced to Home Assistant."""
    # and an option of an older version, which is dropped with a warning (as the Supervisor does)
    options = {"ups": [], "users": [], "listen": "127.0.0.1", "log_level": "info", "mode": "netserver"}
    with supervisor() as sup, run_app(tmp_path, options, data=tmp_path / "data", name="empty",
                                      supervisor_url=sup.url) as run:
        realnut.wait_port(run.port, timeout=20)
        assert _session(run.port, b"LIST UPS\n") == ["BEGIN LIST UPS"]
        log = run.log()
        assert "No UPS configured" in log and "driver: usbhid-ups, port: auto" in log
        assert "Not announcing to Home Assistant" in log
        assert "unknown option 'mode' ignored" in log
        assert run.terminate() == 0, run.log()
        assert sup.requests == []


# ---- the status page and MQTT, for real ------------------------------------------------------

def _https_get(port: int, path: str) -> tuple[int, str, str]:
    """(status, body, SHA-256 of the server's certificate) of GET https://127.0.0.1:port/path."""
    import http.client

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the app's self-signed certificate: compared below instead
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)
        assert der
        return resp.status, body, hashlib.sha256(der).hexdigest()
    finally:
        conn.close()


@pytest.mark.interop
@pytest.mark.slow
def test_app_with_http_serves_the_status_page_and_metrics(tmp_path: Path) -> None:
    """``http: true``: the status page and /metrics on the HTTP port, over HTTPS with the
    certificate upsd offers after STARTTLS (the one the app announces)."""
    realnut.require_module("aiohttp", "a dependency of nutbridge-ups")
    realnut.require_module("prometheus_client", "a dependency of nutbridge-ups")
    realnut.require_path(REPO / "bridge/nutbridge/web/server.py", "the HTTP endpoint")
    options = {"ups": [{"name": "sim", "driver": "simulated", "port": "simulated"}],
               "listen": "0.0.0.0", "log_level": "info", "http": True}
    http_port = realnut.free_port()
    data = tmp_path / "data"
    with run_app(tmp_path, options, data=data, name="http", supervisor_url=None,
                 args=("--http-port", str(http_port))) as run:
        realnut.wait_ready_ups(run.port, ["sim"], timeout=30)
        realnut.wait_port(http_port, timeout=20)
        status, page, cert = _https_get(http_port, "/")
        assert status == 200, page
        assert "sim" in page and "NUT Bridge" in page  # the first HTML lists the UPS
        assert cert == _server_fingerprint(run.port) == _pem_fingerprint(data / "tls" / "nutbridge.pem")
        status, metrics, _ = _https_get(http_port, "/metrics")
        assert status == 200
        assert re.search(r'^network_ups_tools_ups_status\{[^}]*ups="sim"', metrics, re.M), metrics[:2000]
        conf = (data / "nut" / "upsd.conf").read_text()
        assert f"HTTP_LISTEN 0.0.0.0 {http_port}" in conf and "MQTT" not in conf
        assert run.terminate() == 0, run.log()
        assert "Traceback" not in run.log()


class Subscriber:
    """A paho-mqtt client on the test's side: every message, kept by topic."""

    def __init__(self, port: int, user: tuple[str, str], topics: list[str], name: str) -> None:
        mqtt = realnut.require_module("paho.mqtt.client", "paho-mqtt, with aiomqtt")
        self.messages: dict[str, list[tuple[bytes, bool]]] = {}
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        self.client.username_pw_set(*user)

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            for t in topics:
                client.subscribe(t)

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            with self.cond:
                self.messages.setdefault(msg.topic, []).append((bytes(msg.payload), bool(msg.retain)))
                self.cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def wait(self, match: Any, timeout: float = 30.0) -> tuple[str, bytes, bool]:
        """The first (topic, payload, retained) for which ``match`` is true."""
        def found() -> tuple[str, bytes, bool] | None:
            for topic, msgs in self.messages.items():
                for payload, retained in msgs:
                    if match(topic, payload):
                        return topic, payload, retained
            return None

        with self.cond:
            assert self.cond.wait_for(lambda: found() is not None, timeout), \
                f"no such message within {timeout} s; topics: {sorted(self.messages)}"
            hit = found()
            assert hit is not None
            return hit

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.interop
@pytest.mark.slow
def test_app_with_mqtt_publishes_to_the_supervisors_broker(tmp_path: Path) -> None:
    """``mqtt: true`` without ``mqtt_url``: the broker and its account come from the stand-in
    Supervisor's mqtt service (as the Mosquitto broker app registers them); a real Mosquitto
    that accepts only that account receives a retained Home Assistant device discovery
    message; with ``mqtt_commands`` a command button on MQTT really runs (as the app's Home
    Assistant user) and the state topic follows the mains loss."""
    realnut.require_module("aiomqtt", "a dependency of nutbridge-ups")
    realnut.require_path(REPO / "bridge/nutbridge/mqtt/publisher.py", "the MQTT publisher")
    account = ("addons", MQTT_SERVICE["password"])
    watcher = ("watcher", "watcher-pw")
    broker = Mosquitto(tmp_path / "broker", users=dict([account, watcher]))
    broker.start()
    data = tmp_path / "data"
    options = {"ups": [{"name": "sim", "driver": "simulated", "port": "simulated"}],
               "listen": "0.0.0.0", "log_level": "info", "mqtt": True, "mqtt_commands": True}
    sub: Subscriber | None = None
    try:
        sub = Subscriber(broker.port, watcher, ["homeassistant/device/+/config", "nut-bridge/#"], "live")
        service = {**MQTT_SERVICE, "host": "127.0.0.1", "port": broker.port}
        with supervisor(services={"mqtt": service}) as sup, \
                run_app(tmp_path, options, data=data, name="mqtt", supervisor_url=sup.url) as run:
            realnut.wait_ready_ups(run.port, ["sim"], timeout=30)
            server_id = (data / "server-id").read_text().strip()

            def discovery_of_sim(topic: str, payload: bytes) -> bool:
                # the device id: nutbridge_<server id>_<UPS>
                return topic == f"homeassistant/device/nutbridge_{server_id}_sim/config"

            topic, payload, _ = sub.wait(discovery_of_sim)
            # retained: a subscriber that comes later (HA after a restart) gets it from the broker
            late = Subscriber(broker.port, watcher, [topic], "late")
            try:
                assert late.wait(discovery_of_sim)[1:] == (payload, True)
            finally:
                late.close()
            config = json.loads(payload)
            assert {"dev", "o", "cmps"} <= set(config)
            assert [r.path for r in sup.requests if r.method == "GET"].count("/services/mqtt") == 1
            # MQTT_ACCOUNT homeassistant: the command buttons are announced ...
            commands = {c.get("command_topic") for c in config["cmps"].values()} - {None}
            start = next(t for t in commands if t.endswith("/cmd/test.failure.start"))
            # ... and run: the simulated mains fail, and the state topic says so
            sub.publish(start, "PRESS")
            sub.wait(lambda t, p: t.startswith("nut-bridge/") and t.endswith("/sim/state")
                     and "OB" in json.loads(p).get("ups.status", "").split())
            conf = (data / "nut" / "upsd.conf").read_text()
            assert f"MQTT_URL mqtt://127.0.0.1:{broker.port}" in conf and "MQTT_ACCOUNT homeassistant" in conf
            assert (data / "nut" / "upsd.conf").stat().st_mode & 0o777 == 0o600
            assert run.terminate() == 0, run.log()
            log = run.log()
            assert f"MQTT: publishing to mqtt://127.0.0.1:{broker.port} as user addons" in log
            assert MQTT_SERVICE["password"] not in log and "Traceback" not in log
    finally:
        if sub is not None:
            sub.close()
        broker.stop()


def test_sigterm_while_asking_for_the_broker(tmp_path: Path) -> None:
    """A Supervisor that does not answer delays the start by at most MQTT_SERVICE_WAIT; a
    SIGTERM meanwhile ends the app at once, with 0, before anything is started."""
    options = {"ups": [GOOD_UPS], "mqtt": True}
    nobody = f"http://127.0.0.1:{realnut.free_port()}"
    with run_app(tmp_path, options, data=tmp_path / "data", name="waiting", supervisor_url=nobody) as run:
        run.wait_log("Asking the Supervisor for the MQTT broker")
        t0 = time.monotonic()
        assert run.terminate() == 0, run.log()
        assert time.monotonic() - t0 < 3
        assert "nutbridge serve" not in run.log() and "Traceback" not in run.log()
    assert not (tmp_path / "data").exists()


def test_mqtt_outside_home_assistant_needs_a_broker_url(tmp_path: Path) -> None:
    """Without a Supervisor nobody can name the broker: the options are refused up front."""
    path = tmp_path / "options.json"
    path.write_text(json.dumps({"ups": [GOOD_UPS], "mqtt": True}))
    env = {k: v for k, v in os.environ.items() if k != "SUPERVISOR_TOKEN"}
    env["PYTHONPATH"] = str(REPO / "bridge")
    p = subprocess.run([sys.executable, "-m", "nutbridge", "app", "--options", str(path), "--data",
                        str(tmp_path / "data")], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2, p
    assert f"{path}: mqtt_url: missing: outside Home Assistant" in p.stderr
    assert not (tmp_path / "data").exists()


# ---- (c) broken options ---------------------------------------------------------------------

GOOD_UPS = {"name": "ups", "driver": "usbhid-ups", "port": "auto"}
BROKEN: list[tuple[str, Any, list[str]]] = [
    ("not-json", "{ups: [", ["not valid JSON"]),
    ("not-an-object", [], ["the options must be a JSON object"]),
    ("no-ups", {"listen": "0.0.0.0"}, ["ups: missing"]),
    ("ups-name", {"ups": [{**GOOD_UPS, "name": "my ups"}]}, ["ups[0].name: 'my ups' is not a UPS name"]),
    ("driver-path", {"ups": [{**GOOD_UPS, "driver": "../../bin/sh"}]}, ["ups[0].driver:"]),
    ("missing-port", {"ups": [{"name": "a", "driver": "usbhid-ups"}]}, ["ups[0].port: missing"]),
    ("option-syntax", {"ups": [{**GOOD_UPS, "options": ["vendor id=051d"]}]}, ["ups[0].options[0]:"]),
    ("option-reserved", {"ups": [{**GOOD_UPS, "options": ["port=/dev/ttyS0"]}]},
     ["ups[0].options[0]: 'port' has its own field"]),
    ("same-name", {"ups": [GOOD_UPS, {**GOOD_UPS, "name": "UPS"}]}, ["ups[1].name: 'UPS' is used twice"]),
    ("hosted-simulated", {"ups": [{"name": "s", "driver": "simulated", "port": "x", "hosted": True}]},
     ["ups[0].hosted:"]),
    ("reserved-user", {"ups": [GOOD_UPS], "users": [{"username": "homeassistant", "password": "pw"}]},
     ["users[0].username: 'homeassistant' is the user this app makes"]),
    ("password-newline", {"ups": [GOOD_UPS], "users": [{"username": "a", "password": "line1\nline2"}]},
     ["users[0].password: must not contain control characters"]),
    ("bad-action", {"ups": [GOOD_UPS], "users": [{"username": "a", "password": "p", "actions": ["ALL"]}]},
     ["users[0].actions[0]: 'ALL': one of SET, FSD"]),
    ("listen", {"ups": [GOOD_UPS], "listen": "everywhere"}, ["listen: 'everywhere' is not an IP address"]),
    ("two-problems", {"ups": [{**GOOD_UPS, "name": ""}], "log_level": "verbose"},
     ["ups[0].name:", "log_level: 'verbose': one of debug, info, warning, error"]),
    ("http-not-bool", {"ups": [GOOD_UPS], "http": "yes"}, ["http: must be true or false"]),
    ("mqtt-url-scheme", {"ups": [GOOD_UPS], "mqtt": True, "mqtt_url": "http://broker:1883"},
     ["mqtt_url: 'http://broker:1883' is not an mqtt:// or mqtts:// URL"]),
    ("mqtt-url-credentials", {"ups": [GOOD_UPS], "mqtt": True, "mqtt_url": "mqtt://u:line2@b"},
     ["mqtt_url: must not hold a user name or password: set mqtt_username and mqtt_password"]),
    ("mqtt-url-port", {"ups": [GOOD_UPS], "mqtt": True, "mqtt_url": "mqtt://b:99999"},
     ["mqtt_url: 'mqtt://b:99999': invalid port '99999'"]),
    ("mqtt-url-host", {"ups": [GOOD_UPS], "mqtt": True, "mqtt_url": "mqtt://a b#c"},
     ["mqtt_url: 'mqtt://a b#c': the host must be a name or an IP address"]),
    ("mqtt-password-alone", {"ups": [GOOD_UPS], "mqtt": True, "mqtt_password": "line2"},
     ["mqtt_password: set mqtt_username too"]),
    ("mqtt-three-problems", {"ups": [GOOD_UPS], "mqtt": 1, "mqtt_commands": "on",
                             "mqtt_username": "a\nb"},
     ["mqtt: must be true or false", "mqtt_commands: must be true or false",
      "mqtt_username: must not contain control characters"]),
]


@pytest.mark.parametrize(("options", "expected"), [pytest.param(o, e, id=i) for i, o, e in BROKEN])
def test_broken_options_exit_2(tmp_path: Path, options: Any, expected: list[str]) -> None:
    path = tmp_path / "options.json"
    path.write_text(options if isinstance(options, str) else json.dumps(options))
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO / "bridge"), "SUPERVISOR_TOKEN": "t"}
    argv = [sys.executable, "-m", "nutbridge", "app", "--options", str(path), "--data", str(data)]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2, p
    assert "Traceback" not in p.stderr
    assert "fix them in the app's Configuration tab" in p.stderr
    for text in expected:
        assert f"{path}: {text}" in p.stderr, p.stderr
    assert "line2" not in p.stderr  # a password is never echoed
    assert not data.exists()  # nothing written before the options are good


@pytest.mark.slow
async def test_outside_home_assistant_the_app_advertises_over_mdns(tmp_path: Path) -> None:
    """A container outside HA (no SUPERVISOR_TOKEN, so no Supervisor discovery) advertises
    ``_nut._tcp`` with its certificate's fingerprint, so Home Assistant Container on the same
    LAN discovers it; inside HA (a token) mDNS stays off and the Supervisor announces it."""
    mdns = realnut.require_module("tests.support.mdns", "zeroconf")
    options = {"ups": [{"name": "sim", "driver": "simulated", "port": "simulated"}],
               "users": [], "listen": "0.0.0.0", "log_level": "info"}
    async with mdns.NutBrowser() as browser:
        with run_app(tmp_path, options, data=tmp_path / "outside", name="outside",
                     supervisor_url=None) as run:
            await asyncio.to_thread(realnut.wait_ready_ups, run.port, ["sim"], 30)
            t0 = time.monotonic()
            info = await browser.find(lambda i: i.port == run.port, timeout=15)
            assert time.monotonic() - t0 < 3, "found, but slower than the inside run waits"
            txt = info.decoded_properties
            assert txt["tls_sha256"] == _pem_fingerprint(tmp_path / "outside" / "tls" / "nutbridge.pem")
            assert run.terminate() == 0
        sup = StandInSupervisor()
        sup.start()
        try:
            with run_app(tmp_path, options, data=tmp_path / "inside", name="inside",
                         supervisor_url=sup.url) as run:
                await asyncio.to_thread(lambda: sup.wait_discovery(timeout=30))
                await asyncio.sleep(3)  # the outside run was found within a second
                assert not [i for i in await browser.services() if i.port == run.port]
                assert "--no-zeroconf" in " ".join(_cmdline(pid) for pid in _tree(run.proc.pid))
                assert run.terminate() == 0
        finally:
            sup.stop()
