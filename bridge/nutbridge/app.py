"""``nutbridge app``: the entry point of the Home Assistant app (``nut_bridge_app/``).

What it does, in order:

1. reads the app's options (``/data/options.json``, written by the Supervisor from the
   Configuration tab) and checks them with the rules of ``config.yaml``'s ``schema`` (the same
   schema is in :data:`SCHEMA`; tests/test_app.py keeps the two equal) plus what NUT needs
   (names it can parse, drivers it can exec, ``key=value`` options). Anything wrong: every
   problem on stderr, one line each with its place (``ups[1].driver: ...``), exit code 2;
2. keeps a Home Assistant user in the data directory (``ha-user.json``, mode 0600): made once
   with a random password, the same across restarts and updates. It has the rights the
   integration uses: ``actions = SET FSD`` and ``instcmds = ALL`` (no ``upsmon``: Home
   Assistant never LOGINs, and a LOGIN would count it among the secondaries a primary waits
   for before cutting the power);
3. when the ``mqtt`` option is on, finds the broker: ``mqtt_url`` (with ``mqtt_username`` and
   ``mqtt_password``) when set, else the Supervisor's ``mqtt`` service (``GET
   $SUPERVISOR_URL/services/mqtt``, allowed by ``services: [mqtt:want]`` in config.yaml: the
   Mosquitto broker app's host, port and an account it made for apps), retried for up to
   :data:`MQTT_SERVICE_WAIT` seconds while the Supervisor is unreachable. No broker is an error
   in the log, not a reason to stop serving the UPSes;
4. writes NUT's ``ups.conf``, ``upsd.conf`` (0600: it may hold the broker's password) and
   ``upsd.users`` (0600) into ``<data>/nut`` (0700), anew at every start: the options are the
   one source. ``http`` adds ``HTTP_LISTEN`` on the addresses of ``listen`` (port 8493),
   ``mqtt`` the ``MQTT_*`` keywords, ``mqtt_commands`` ``MQTT_ACCOUNT homeassistant`` (MQTT
   commands and SETs get the Home Assistant user's rights; without it MQTT is read-only);
5. runs ``nutbridge serve`` on them with ``--state-dir <data>``: the server id, the event
   history and the self-signed TLS certificate live in ``/data`` and survive updates and
   restarts (``--no-zeroconf`` inside the app, where the Supervisor's discovery replaces mDNS,
   whose packets would not leave the app's network anyway; a container outside HA, without
   ``SUPERVISOR_TOKEN``, advertises over mDNS, which reaches the LAN on the host network);
6. once upsd answers, learns the TLS certificate's SHA-256 by doing STARTTLS against it (the
   fingerprint is what any client sees, whoever made the certificate) and, when
   ``SUPERVISOR_TOKEN`` is set, POSTs the discovery message to ``$SUPERVISOR_URL/discovery``
   (default ``http://supervisor``), retrying with backoff while the Supervisor is not
   reachable. The message is ``{"service": "nut_bridge", "config": {"host", "port",
   "username", "password", "tls_sha256", "id"}}``: ``host`` is the app's host name on the
   Supervisor's network (``hostname`` of ``GET /addons/self/info``, else
   ``/v2/apps/self/info``, else the container's host name, which the Supervisor sets to the
   same), ``tls_sha256`` is ``""`` when the server offers no STARTTLS (the key is always
   there, one shape for the integration; empty = nothing to pin), ``id`` the bridge's server
   id. Every start announces again (the Supervisor keeps one message per app and service and
   updates it), so a new password or certificate reaches Home Assistant. Without a UPS there
   is nothing to announce, and none is made.

Process structure. The app's container has no Docker init (``init: false``): PID 1 is the
image's entry point, tini (nut_bridge_app/Dockerfile), or this process itself when started as
the entry point directly. Either way this process stays small and runs ``nutbridge serve`` as
its one child (in its own process group), rather than exec'ing it or running the bridge
in-process:

* orphans must be reaped. NUT's C drivers that the bridge hosts die with it
  (``PR_SET_PDEATHSIG``) and are then re-parented; an asyncio bridge cannot ``waitpid(-1)``
  without stealing the exit statuses its own child watchers wait for. Here a plain
  ``waitpid(-1)`` loop reaps everything, and the process makes itself a child subreaper when
  it is not PID 1, so the drivers come back to it (not to tini or a shell) and are gone when
  it exits: one process tree, ended as a whole;
* PID 1 gets no signal it has no handler for: SIGTERM and SIGINT are caught here and passed
  on to the bridge, which stops cleanly (exit 0); if it has not stopped within
  :data:`STOP_TIMEOUT` (below the 10 s the Supervisor waits before it kills the container)
  it is killed. SIGHUP (reload), SIGUSR1 and SIGUSR2 are passed on as they are;
* ``nutbridge serve`` stays the one code path every install runs; this module adds no driver
  or server code, only the configuration and the announcement (a thread, which ends with the
  process);
* the exit code is the bridge's (0 after SIGTERM; 128+N if it died of signal N); what is
  left of the process tree is then terminated and reaped before this process exits.

Passwords are never logged: the log says which user was announced (and which broker user
MQTT uses), never a password.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from . import __version__
from .config.upsd_conf import DEFAULT_HTTP_PORT, parse_mqtt_url
from .protocol.wire import quote
from .statedir import StateDir

log = logging.getLogger("nutbridge.app")

DEFAULT_DATA = Path("/data")
DEFAULT_SUPERVISOR = "http://supervisor"
DISCOVERY_SERVICE = "nut_bridge"
HA_USERNAME = "homeassistant"
HA_USER_FILE = "ha-user.json"
CONF_SUBDIR = "nut"
DEFAULT_PORT = 3493
#: seconds the bridge has to stop after SIGTERM before it is killed (the Supervisor kills the
#: container 10 s after its own SIGTERM: config.yaml sets no longer ``timeout``)
STOP_TIMEOUT = 8.0
#: backoff between discovery attempts while the Supervisor is unreachable
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0

#: The options schema, exactly as in nut_bridge_app/config.yaml (tests/test_app.py compares).
SCHEMA: dict[str, Any] = {
    "ups": [{
        "name": r"match(^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$)",
        "driver": r"match(^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$)",
        "port": "str",
        "options": ["str?"],
        "hosted": "bool?",
    }],
    "users": [{
        "username": r"match(^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$)",
        "password": "password",
        "actions": ["list(SET|FSD)?"],
        "instcmds": ["str?"],
        "upsmon": "list(primary|secondary|none)?",
    }],
    "listen": "str",
    "log_level": "list(debug|info|warning|error)",
    "http": "bool?",
    "mqtt": "bool?",
    "mqtt_url": r"match(^mqtts?://[^\s/@]+/?$)?",
    "mqtt_username": "str?",
    "mqtt_password": "password?",
    "mqtt_commands": "bool?",
}

SIMULATED = "simulated"  # driver alias: the bridge's simulated UPS (nutbridge-sim)
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR}
# flags of `nutbridge serve` per log level (its default is INFO)
_SERVE_VERBOSITY = {"debug": ["-D"], "info": [], "warning": ["-q"], "error": ["-q", "-q"]}


def _pattern(schema_type: str) -> re.Pattern[str]:
    """The regular expression of a ``match(...)`` schema type."""
    assert schema_type.startswith("match(") and schema_type.endswith(")")
    return re.compile(schema_type[len("match("):-1])


UPS_NAME = _pattern(SCHEMA["ups"][0]["name"])
DRIVER_NAME = _pattern(SCHEMA["ups"][0]["driver"])
USERNAME = _pattern(SCHEMA["users"][0]["username"])
# ups.conf keys as NUT's parser reads them bare (drivers/external/locate.py writes the same)
OPTION_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
INSTCMD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
ACTIONS = ("SET", "FSD")
UPSMON_ROLES = ("primary", "secondary", "none")
# keys the options may not set: they have their own fields, or belong to the bridge
_RESERVED_KEYS = ("driver", "port")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: an MQTT broker's host as upsd.conf's MQTT_URL can carry it (a name or an IP address, IPv6
#: with a zone); nothing NUT's parser would split or take for a comment or a quote
BROKER_HOST = re.compile(r"^[A-Za-z0-9._:%-]{1,253}$")


class OptionsError(Exception):
    """The options cannot be used; ``problems`` has one line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__("\n".join(f"{path}: {p}" for p in problems))
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class UpsOption:
    name: str
    driver: str  # as ups.conf gets it ("simulated" is already nutbridge-sim)
    port: str
    options: list[tuple[str, str | None]]  # (key, value); None: a bare flag such as nolock
    hosted: bool = False


@dataclass(frozen=True)
class UserOption:
    username: str
    password: str
    actions: list[str]
    instcmds: list[str]
    upsmon: str = "none"


@dataclass(frozen=True)
class Options:
    ups: list[UpsOption]
    users: list[UserOption] = field(default_factory=list)
    listen: str = "0.0.0.0"
    log_level: str = "info"
    http: bool = False  # status page, /metrics and /api on the HTTP port
    mqtt: bool = False  # publish to MQTT with Home Assistant discovery
    mqtt_url: str | None = None  # the broker; None: the Supervisor's mqtt service
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    mqtt_commands: bool = False  # commands/SET over MQTT, as the Home Assistant user


@dataclass(frozen=True)
class Broker:
    """The MQTT broker the bridge publishes to, and where that came from (for the log)."""

    url: str  # mqtt[s]://host:port
    username: str | None
    password: str | None = field(repr=False)
    source: str


# ---- options ----------------------------------------------------------------------------------

class _Checker:
    """Collects every problem, each with where it is (``ups[0].name``)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def text(self, item: Mapping[str, Any], key: str, where: str, *,
             required: bool = True) -> str | None:
        """The text at ``key``; None when it is missing (a problem if ``required``) or not
        usable (reported)."""
        value = item.get(key)
        if value is None:
            if required:
                self.fail(f"{where}.{key}", "missing")
            return None
        if not isinstance(value, str):
            self.fail(f"{where}.{key}", f"must be text, not {json.dumps(value)}")
            return None
        if _CONTROL.search(value):
            self.fail(f"{where}.{key}", "must not contain control characters (line breaks, tabs)")
            return None
        return value

    def flag(self, item: Mapping[str, Any], key: str, where: str) -> bool:
        """An optional switch (absent: off)."""
        value = item.get(key, False)
        if not isinstance(value, bool):
            self.fail(f"{where}.{key}", "must be true or false")
            return False
        return value

    def strings(self, item: Mapping[str, Any], key: str, where: str) -> list[str]:
        value = item.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"{where}.{key}", "must be a list")
            return []
        out = []
        for i, v in enumerate(value):
            if not isinstance(v, str):
                self.fail(f"{where}.{key}[{i}]", f"must be text, not {json.dumps(v)}")
            elif _CONTROL.search(v):
                self.fail(f"{where}.{key}[{i}]", "must not contain control characters")
            else:
                out.append(v)
        return out

    def records(self, options: Mapping[str, Any], key: str) -> list[tuple[str, Mapping[str, Any]]]:
        value = options.get(key)
        if not isinstance(value, list):
            self.fail(key, "missing" if value is None else "must be a list")
            return []
        out: list[tuple[str, Mapping[str, Any]]] = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append((f"{key}[{i}]", item))
            else:
                self.fail(f"{key}[{i}]", "must be a mapping of the fields "
                          + ", ".join(SCHEMA[key][0]))
        return out


def _ups(c: _Checker, where: str, item: Mapping[str, Any]) -> UpsOption | None:
    before = len(c.problems)
    name = c.text(item, "name", where)
    if name is not None and not UPS_NAME.match(name):
        c.fail(f"{where}.name", f"{name!r} is not a UPS name NUT accepts (up to 40 letters, digits, "
               "'-', '_' or '.', starting with a letter or digit)")
    driver = c.text(item, "driver", where)
    if driver is not None and (not DRIVER_NAME.match(driver) or ".." in driver):
        c.fail(f"{where}.driver", f"{driver!r} is not a driver name (a NUT driver such as "
               f"usbhid-ups, nutdrv_qx, snmp-ups, or '{SIMULATED}')")
    port = c.text(item, "port", where)
    if port is not None and not port.strip():
        c.fail(f"{where}.port", "must not be empty (e.g. auto for USB, /dev/ttyUSB0, an IP address)")
    hosted = c.flag(item, "hosted", where)
    if hosted and driver == SIMULATED:
        c.fail(f"{where}.hosted", f"'{SIMULATED}' is the bridge's own: NUT has no such C driver to host")
    options: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for i, text in enumerate(c.strings(item, "options", where)):
        key, eq, value = text.partition("=")
        key = key.strip()
        at = f"{where}.options[{i}]"
        if not OPTION_KEY.match(key):
            c.fail(at, f"{text!r}: expected key=value (or a bare flag such as nolock) with a key "
                   "of letters, digits, '_', '-' or '.'")
        elif key.lower() in _RESERVED_KEYS:
            c.fail(at, f"'{key}' has its own field: set {where}.{key.lower()}")
        elif key.startswith("_") or key.lower().startswith("nutbridge_"):
            c.fail(at, f"'{key}' is reserved for the bridge")
        elif key.lower() in seen:
            c.fail(at, f"'{key}' is set twice")
        else:
            seen.add(key.lower())
            options.append((key, value.strip() if eq else None))
    if len(c.problems) > before or name is None or driver is None or port is None:
        return None
    if driver == SIMULATED:
        driver = "nutbridge-sim"
    return UpsOption(name, driver, port, options, hosted)


def _user(c: _Checker, where: str, item: Mapping[str, Any]) -> UserOption | None:
    before = len(c.problems)
    username = c.text(item, "username", where)
    if username is not None and not USERNAME.match(username):
        c.fail(f"{where}.username", f"{username!r} is not a user name upsd.users accepts (up to 64 "
               "letters, digits, '-', '_', '.' or '@')")
    elif username is not None and username.lower() == HA_USERNAME:
        c.fail(f"{where}.username", f"'{username}' is the user this app makes for Home Assistant "
               "(its password is generated and announced to Home Assistant): choose another name")
    password = c.text(item, "password", where)
    if password == "":
        c.fail(f"{where}.password", "must not be empty")
    actions = []
    for i, a in enumerate(c.strings(item, "actions", where)):
        if a.upper() not in ACTIONS:
            c.fail(f"{where}.actions[{i}]", f"{a!r}: one of {', '.join(ACTIONS)}")
        else:
            actions.append(a.upper())
    instcmds = []
    for i, cmd in enumerate(c.strings(item, "instcmds", where)):
        if not INSTCMD.match(cmd):
            c.fail(f"{where}.instcmds[{i}]", f"{cmd!r} is not an instant command name "
                   "(e.g. test.battery.start.quick, or all)")
        else:
            instcmds.append("ALL" if cmd.lower() == "all" else cmd)
    upsmon = c.text(item, "upsmon", where, required=False) or "none"
    if upsmon not in UPSMON_ROLES:
        c.fail(f"{where}.upsmon", f"{upsmon!r}: one of {', '.join(UPSMON_ROLES)}")
    if len(c.problems) > before or username is None or password is None:
        return None
    return UserOption(username, password, actions, instcmds, upsmon)


def validate_options(raw: object, path: Path = Path("options.json")) -> Options:
    """The app's options, checked; raises :class:`OptionsError` listing every problem."""
    c = _Checker()
    if not isinstance(raw, dict):
        raise OptionsError(path, ["the options must be a JSON object"])
    for key in raw:
        if key not in SCHEMA:
            # as the Supervisor: an option the schema does not know is dropped, with a warning
            log.warning("%s: unknown option '%s' ignored", path, key)
    ups: list[UpsOption] = []
    for where, item in c.records(raw, "ups"):
        if (u := _ups(c, where, item)) is not None:
            if any(u.name.lower() == other.name.lower() for other in ups):
                c.fail(f"{where}.name", f"'{u.name}' is used twice (NUT names ignore case)")
            else:
                ups.append(u)
    users: list[UserOption] = []
    if "users" in raw:
        for where, item in c.records(raw, "users"):
            if (user := _user(c, where, item)) is not None:
                if any(user.username == other.username for other in users):
                    c.fail(f"{where}.username", f"'{user.username}' is used twice")
                else:
                    users.append(user)
    listen = (c.text(raw, "listen", "options", required=False) or "0.0.0.0").strip()
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        c.fail("listen", f"{listen!r} is not an IP address (0.0.0.0: every IPv4 address, "
               ":: every address, 127.0.0.1 this host only)")
    log_level = c.text(raw, "log_level", "options", required=False) or "info"
    if log_level not in LOG_LEVELS:
        c.fail("log_level", f"{log_level!r}: one of {', '.join(LOG_LEVELS)}")
    http = c.flag(raw, "http", "options")
    mqtt, mqtt_commands = c.flag(raw, "mqtt", "options"), c.flag(raw, "mqtt_commands", "options")
    # an optional text the UI saved empty is not set
    mqtt_url = (c.text(raw, "mqtt_url", "options", required=False) or "").strip() or None
    if mqtt_url is not None and "@" in mqtt_url:  # not echoed: it may hold a password
        c.fail("mqtt_url", "must not hold a user name or password: set mqtt_username and "
               "mqtt_password")
    elif mqtt_url is not None:
        try:
            if not BROKER_HOST.match(parse_mqtt_url(mqtt_url).host):
                raise ValueError(f"{mqtt_url!r}: the host must be a name or an IP address")
        except ValueError as exc:
            c.fail("mqtt_url", f"{exc} (e.g. mqtt://192.168.1.10:1883, mqtts://broker.lan)")
    mqtt_username = c.text(raw, "mqtt_username", "options", required=False) or None
    mqtt_password = c.text(raw, "mqtt_password", "options", required=False) or None
    if mqtt_password is not None and mqtt_username is None:
        c.fail("mqtt_password", "set mqtt_username too (MQTT sends no password without a user name)")
    if c.problems:
        raise OptionsError(path, [p.removeprefix("options.") for p in c.problems])
    if not mqtt and (mqtt_url or mqtt_username or mqtt_commands):
        log.info("%s: mqtt is off: the other mqtt_* options are not used", path)
    return Options(ups, users, listen, log_level, http, mqtt, mqtt_url, mqtt_username,
                   mqtt_password, mqtt_commands)


def load_options(path: Path) -> Options:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OptionsError(path, [f"cannot read: {exc.strerror or exc}"]) from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise OptionsError(path, [f"not valid JSON: {exc}"]) from None
    return validate_options(raw, path)


# ---- files ------------------------------------------------------------------------------------

def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` atomically with a file created with ``mode`` (never readable by others
    in between, whatever the umask)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have taken bits away
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def ha_credentials(data: Path) -> tuple[str, str]:
    """The Home Assistant user (name, password): made once, kept in ``<data>/ha-user.json``."""
    path = data / HA_USER_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        password = saved.get("password") if isinstance(saved, dict) else None
        if isinstance(password, str) and len(password) >= 16 and not _CONTROL.search(password):
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
            return HA_USERNAME, password
        log.warning("%s holds no usable password: making a new one (Home Assistant gets it "
                    "with the next announcement)", path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s): making a new Home Assistant password", path, exc)
    password = secrets.token_urlsafe(24)
    _write_private(path, json.dumps({"username": HA_USERNAME, "password": password}) + "\n")
    log.info("Made the Home Assistant user '%s' (its password is kept in %s)", HA_USERNAME, path)
    return HA_USERNAME, password


HEADER = ("# Written by `nutbridge app` from the app's options at every start:\n"
          "# change the options in Home Assistant, not this file.\n")


def ups_conf(options: Options) -> str:
    lines = [HEADER]
    hosted = [u.name for u in options.ups if u.hosted]
    if hosted:
        lines.append(f"nutbridge_hosted = {' '.join(hosted)}\n")
    for u in options.ups:
        lines.append(f"[{u.name}]")
        lines.append(f"\tdriver = {quote(u.driver)}")
        lines.append(f"\tport = {quote(u.port)}")
        for key, value in u.options:
            lines.append(f"\t{key}" if value is None else f"\t{key} = {quote(value)}")
        lines.append("")
    return "\n".join(lines) + "\n"


def listen_addresses(listen: str) -> list[str]:
    """upsd.conf's LISTEN addresses for the ``listen`` option.

    ``::`` means every address, IPv4 too (upsd's IPv6 sockets are IPv6-only). A specific
    address that is not loopback gets 127.0.0.1 beside it: the image's health check and the
    fingerprinting here reach upsd there."""
    addr = ipaddress.ip_address(listen)
    if addr.is_unspecified:
        return ["0.0.0.0", "::"] if addr.version == 6 else ["0.0.0.0"]
    if addr.is_loopback:
        return [listen]
    return [listen, "127.0.0.1"]


def upsd_conf(options: Options, port: int, broker: Broker | None = None,
              http_port: int = DEFAULT_HTTP_PORT) -> str:
    """upsd.conf: LISTEN, and the HTTP endpoint and the MQTT publisher when they are on
    (``broker`` is where :func:`resolve_broker` found one; None: no MQTT)."""
    addresses = listen_addresses(options.listen)
    text = HEADER + "".join(f"LISTEN {a} {port}\n" for a in addresses)
    if not options.ups:
        text += "ALLOW_NO_DEVICE true\n"
    if options.http:
        # the same addresses as upsd: the endpoint follows `listen` (TLS with the bridge's
        # certificate whenever upsd has one)
        text += "".join(f"HTTP_LISTEN {a} {http_port}\n" for a in addresses)
    if broker is not None:
        text += f"MQTT_URL {broker.url}\n"
        if broker.username is not None:
            text += f"MQTT_USERNAME {quote(broker.username)}\n"
        if broker.password is not None:
            text += f"MQTT_PASSWORD {quote(broker.password)}\n"
        if options.mqtt_commands:
            # commands and SETs over MQTT get the rights of the Home Assistant user
            text += f"MQTT_ACCOUNT {HA_USERNAME}\n"
    return text


def upsd_users(options: Options, ha_user: tuple[str, str]) -> str:
    lines = [HEADER]
    name, password = ha_user
    lines += [f"[{name}]", f"\tpassword = {quote(password)}", "\tactions = SET FSD",
              "\tinstcmds = ALL", ""]
    for u in options.users:
        lines += [f"[{u.username}]", f"\tpassword = {quote(u.password)}"]
        if u.actions:
            lines.append(f"\tactions = {' '.join(u.actions)}")
        if u.instcmds:
            lines.append(f"\tinstcmds = {' '.join(u.instcmds)}")
        if u.upsmon != "none":
            lines.append(f"\tupsmon {u.upsmon}")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_nut_files(options: Options, confdir: Path, ha_user: tuple[str, str], port: int,
                    broker: Broker | None = None, http_port: int = DEFAULT_HTTP_PORT) -> None:
    """ups.conf (0644), upsd.conf and upsd.users (0600: the broker's password, the users'
    passwords) in a 0700 directory; the bridge runs as the same user and reads them all."""
    confdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(confdir, 0o700)
    _write_private(confdir / "ups.conf", ups_conf(options), 0o644)
    _write_private(confdir / "upsd.conf", upsd_conf(options, port, broker, http_port), 0o600)
    _write_private(confdir / "upsd.users", upsd_users(options, ha_user), 0o600)


# ---- the MQTT broker --------------------------------------------------------------------------

#: seconds ``nutbridge app`` waits for an unreachable Supervisor to name the MQTT broker
#: before it starts the bridge without MQTT (the Supervisor starts the app: it is there)
MQTT_SERVICE_WAIT = 30.0


class NoBroker(Exception):
    """MQTT is on, but no broker can be named; the message says what to do."""


def mqtt_url(host: str, port: int, tls: bool) -> str:
    """``mqtt[s]://host:port`` (an IPv6 address in brackets)."""
    return f"{'mqtts' if tls else 'mqtt'}://{f'[{host}]' if ':' in host else host}:{port}"


def supervisor_mqtt(base: str, token: str) -> Broker:
    """The broker of the Supervisor's ``mqtt`` service (``GET /services/mqtt``: ``host``,
    ``port``, ``ssl``, ``protocol``, ``username``, ``password``, ``addon``), which the app may
    read with ``services: [mqtt:want]`` in config.yaml. Retry: not reachable (yet); GiveUp:
    it cannot work (no broker app, or no access)."""
    try:
        data = _request(base.rstrip("/") + "/services/mqtt", token)
    except urllib.error.HTTPError as exc:
        detail = ""
        with contextlib.suppress(Exception):
            detail = str(json.loads(exc.read()).get("message", ""))
        said = f"HTTP {exc.code}{': ' if detail else ''}{detail}"
        if exc.code in (401, 403):
            raise GiveUp(f"the Supervisor refused the mqtt service ({said}); config.yaml must "
                         "list 'mqtt:want' under services") from None
        if exc.code in (400, 404) and "not ready" not in detail.lower():
            # "Service not enabled": no app provides an MQTT broker
            raise GiveUp(f"no MQTT broker app is installed and started ({said}): install the "
                         "Mosquitto broker app, or name a broker with mqtt_url") from None
        raise Retry(said) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Retry(f"Supervisor not reachable at {base}: {_reason(exc)}") from None
    if not isinstance(data, dict):
        raise GiveUp("the Supervisor's mqtt service has no data")
    host, port = data.get("host"), data.get("port")
    if not isinstance(host, str) or not BROKER_HOST.match(host):
        raise GiveUp("the Supervisor's mqtt service names no usable host")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise GiveUp("the Supervisor's mqtt service names no usable port")
    credentials: list[str | None] = []
    for key in ("username", "password"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or _CONTROL.search(value)):
            raise GiveUp(f"the Supervisor's mqtt service has an unusable {key}")
        credentials.append(value or None)
    provider = data.get("addon") or data.get("app") or "?"
    return Broker(mqtt_url(host, port, data.get("ssl") is True), credentials[0], credentials[1],
                  f"the Supervisor's mqtt service (app {provider})")


def resolve_broker(options: Options, base: str | None, token: str,
                   wait: float = MQTT_SERVICE_WAIT,
                   stop: Callable[[], bool] = lambda: False) -> Broker:
    """Where MQTT goes: ``mqtt_url`` (with ``mqtt_username``/``mqtt_password``) when set, else
    the Supervisor's mqtt service, whose credentials ``mqtt_username``/``mqtt_password``
    replace when set. Raises NoBroker saying why there is none."""
    if options.mqtt_url is not None:
        url = parse_mqtt_url(options.mqtt_url)  # checked with the options
        return Broker(mqtt_url(url.host, url.port, url.tls), options.mqtt_username,
                      options.mqtt_password, "the options (mqtt_url)")
    if not token or base is None:
        raise NoBroker("mqtt_url is not set, and outside Home Assistant there is no Supervisor to "
                       "name a broker: set mqtt_url")
    deadline = time.monotonic() + wait
    delay = BACKOFF_FIRST
    while True:
        try:
            broker = supervisor_mqtt(base, token)
            break
        except GiveUp as exc:
            raise NoBroker(str(exc)) from None
        except Retry as exc:
            left = deadline - time.monotonic()
            if stop():
                raise NoBroker("stopped before the Supervisor named the MQTT broker") from None
            if left <= 0:
                raise NoBroker(f"the Supervisor did not name the MQTT broker within {wait:.0f} s "
                               f"({exc})") from None
            log.warning("Asking the Supervisor for the MQTT broker: %s (next try in %.0f s)", exc,
                        min(delay, left))
            until = time.monotonic() + min(delay, left)
            while time.monotonic() < until and not stop():  # short naps: a SIGTERM ends the wait
                time.sleep(0.1)
            delay = min(delay * 2, BACKOFF_MAX)
    if options.mqtt_username is not None:
        return Broker(broker.url, options.mqtt_username, options.mqtt_password,
                      broker.source + ", with the options' user")
    return broker


# ---- discovery --------------------------------------------------------------------------------

class Retry(Exception):
    """Not now: try again later."""


class GiveUp(Exception):
    """Trying again will not help (e.g. the Supervisor refuses the service name)."""


def _local_address(listen: str) -> str:
    """Where this process reaches upsd: loopback, always among the LISTEN addresses
    (:func:`listen_addresses`)."""
    addr = ipaddress.ip_address(listen)
    return listen if addr.is_loopback else "127.0.0.1"


def tls_fingerprint(host: str, port: int, timeout: float = 5.0) -> str:
    """SHA-256 of the certificate upsd presents after STARTTLS (64 hex digits), or ``""`` when
    it offers no STARTTLS. Raises OSError while upsd does not answer."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"STARTTLS\n")
        answer = b""
        while not answer.endswith(b"\n") and len(answer) < 512:
            chunk = sock.recv(1)
            if not chunk:
                raise ConnectionError("upsd closed the connection after STARTTLS")
            answer += chunk
        if not answer.startswith(b"OK STARTTLS"):
            return ""  # ERR FEATURE-NOT-CONFIGURED: no certificate, clear text only
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # we only read the certificate: the pin is made from it
        with ctx.wrap_socket(sock, server_hostname=None) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise ConnectionError("upsd sent no certificate")
    return hashlib.sha256(der).hexdigest()


def _request(url: str, token: str, body: object | None = None, timeout: float = 10.0) -> Any:
    """One Supervisor API call; its ``data``. HTTPError and URLError pass through."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        answer = json.loads(resp.read() or b"{}")
    if not isinstance(answer, dict) or answer.get("result") not in (None, "ok"):
        raise Retry(f"unexpected answer from {url}: {str(answer)[:200]}")
    return answer.get("data")


def supervisor_hostname(base: str, token: str) -> str:
    """The app's host name on the Supervisor's network, as the Supervisor names it.

    ``/addons/self/info`` exists on every Supervisor (the legacy v1 API, kept after the rename
    to apps); ``/v2/apps/self/info`` is the newer one. Raises Retry when the Supervisor is not
    reachable; falls back to this container's host name (the Supervisor sets it to the same
    name) when it answers but neither gives one."""
    for path in ("/addons/self/info", "/v2/apps/self/info"):
        try:
            info = _request(base + path, token)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise Retry(f"{path}: HTTP {exc.code}") from None
            continue
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise Retry(f"Supervisor not reachable at {base}: {_reason(exc)}") from None
        if isinstance(info, dict) and isinstance(info.get("hostname"), str) and info["hostname"]:
            return str(info["hostname"])
    name = socket.gethostname()
    log.warning("The Supervisor did not tell this app's host name: announcing %s", name)
    return name


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc)


def post_discovery(base: str, token: str, config: Mapping[str, object]) -> str:
    """POST /discovery; the message's uuid. Retry: try again later; GiveUp: it cannot work."""
    try:
        data = _request(base + "/discovery", token, {"service": DISCOVERY_SERVICE, "config": dict(config)})
    except urllib.error.HTTPError as exc:
        detail = ""
        with contextlib.suppress(Exception):
            detail = json.loads(exc.read()).get("message", "")
        if exc.code in (401, 403):
            raise GiveUp(f"the Supervisor refused the discovery (HTTP {exc.code}{': ' if detail else ''}"
                         f"{detail}); config.yaml must list '{DISCOVERY_SERVICE}' under discovery") from None
        raise Retry(f"HTTP {exc.code}{': ' if detail else ''}{detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Retry(f"Supervisor not reachable at {base}: {_reason(exc)}") from None
    return str(data.get("uuid", "")) if isinstance(data, dict) else ""


class Announcer(threading.Thread):
    """Waits for upsd, reads its TLS fingerprint, then announces it to the Supervisor."""

    def __init__(self, base: str, token: str, upsd: tuple[str, int], port: int,
                 user: tuple[str, str], server_id: str) -> None:
        super().__init__(name="discovery", daemon=True)
        self.base = base.rstrip("/")
        self.token = token
        self.upsd = upsd
        self.port = port
        self.user = user
        self.server_id = server_id
        self.stopping = threading.Event()
        self.announced: dict[str, object] | None = None

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception:  # a bug here must not take the bridge down: it only loses discovery
            log.exception("Announcing to Home Assistant failed")

    def _run(self) -> None:
        fingerprint = self._fingerprint()
        if fingerprint is None:
            return
        delay = BACKOFF_FIRST
        while not self.stopping.is_set():
            try:
                host = supervisor_hostname(self.base, self.token)
                config: dict[str, object] = {
                    "host": host, "port": self.port, "username": self.user[0],
                    "password": self.user[1], "tls_sha256": fingerprint, "id": self.server_id,
                }
                uuid = post_discovery(self.base, self.token, config)
            except GiveUp as exc:
                log.error("Home Assistant will not discover this bridge: %s", exc)
                return
            except Retry as exc:
                log.warning("Announcing to Home Assistant: %s (next try in %.0f s)", exc, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            self.announced = config
            log.info("Announced to Home Assistant (discovery %s): %s:%d, user %s, %s", uuid or "?",
                     host, self.port, self.user[0],
                     f"TLS certificate SHA-256 {fingerprint}" if fingerprint else "no TLS")
            return

    def _fingerprint(self) -> str | None:
        """Polls until upsd answers STARTTLS (None: stopped first)."""
        started = time.monotonic()
        warned = False
        while not self.stopping.is_set():
            try:
                return tls_fingerprint(*self.upsd)
            except (OSError, ssl.SSLError) as exc:
                if not warned and time.monotonic() - started > 30:
                    warned = True
                    log.warning("upsd does not answer on %s port %d yet (%s): still waiting to "
                                "announce it", *self.upsd, exc)
            self.stopping.wait(0.2)
        return None


# ---- the process ------------------------------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of our tree come to us (as they come to PID 1), so we can reap them."""
    if os.getpid() == 1 or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's prctl
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            log.debug("PR_SET_CHILD_SUBREAPER: errno %d", ctypes.get_errno())
    except (OSError, AttributeError) as exc:
        log.debug("PR_SET_CHILD_SUBREAPER not available: %s", exc)


def _children() -> list[int]:
    """Our direct children, from /proc (orphans re-parented to us included); none when /proc
    is not of our PID namespace (its pids would be other processes)."""
    me = str(os.getpid())
    try:
        if os.readlink("/proc/self") != me:
            return []
    except OSError:
        return []
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == me:
            out.append(int(entry.name))
    return out


class Child:
    """The bridge process, its signals, and reaping everything that ends under us."""

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(argv, env=dict(env), process_group=0)
        self.lock = threading.RLock()  # also taken by the signal handler, in this thread
        self.exited = False
        self.stopping = False
        self.killer: threading.Timer | None = None

    def send(self, signum: int) -> None:
        with self.lock:
            if not self.exited:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signum)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        self.send(signum)
        if not self.stopping:
            self.stopping = True
            self.killer = threading.Timer(STOP_TIMEOUT, self._kill)
            self.killer.daemon = True
            self.killer.start()

    def _kill(self) -> None:
        log.warning("The bridge did not stop within %.0f s: killing it", STOP_TIMEOUT)
        self.send(signal.SIGKILL)

    def wait(self) -> int:
        """Reap until the bridge has exited; its exit code (128+N when killed by signal N)."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:  # cannot happen while the bridge runs; be safe anyway
                status = 256
                pid = self.proc.pid
            if pid != self.proc.pid:
                log.debug("reaped process %d", pid)
                continue
            with self.lock:
                self.exited = True
            if self.killer is not None:
                self.killer.cancel()
            code = os.waitstatus_to_exitcode(status)
            self.proc.returncode = code
            return code if code >= 0 else 128 - code

    def reap_rest(self, grace: float = 2.0) -> None:
        """End and reap whatever is left under us (drivers whose parent was the bridge)."""
        deadline = time.monotonic() + grace
        sig = signal.SIGTERM
        while True:
            try:
                while (pid := os.waitpid(-1, os.WNOHANG)[0]) != 0:
                    log.debug("reaped process %d", pid)
            except ChildProcessError:
                return  # no child left at all (waitpid knows; /proc may not: see _children)
            if time.monotonic() > deadline:
                if sig == signal.SIGKILL:
                    log.warning("processes %s did not end", _children() or "under us")
                    return
                sig, deadline = signal.SIGKILL, time.monotonic() + 1.0
            for pid in _children():  # what we can name; the rest ends with us, as PID 1
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(0.05)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nutbridge app",
        description="Entry point of the Home Assistant app: read the app's options, write NUT's "
        "files, run the bridge, announce it to Home Assistant (docs/ha-app.md).")
    p.add_argument("--options", type=Path, default=None, metavar="FILE",
                   help="the app's options (default: <data dir>/options.json)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, metavar="DIR",
                   help="persistent data directory: NUT files, Home Assistant user, server id, event "
                   "history, TLS certificate (default: /data)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help="the port upsd listens on inside the container (default: 3493)")
    p.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT,
                   help="the port of the status page and /metrics inside the container, when "
                   f"the http option is on (default: {DEFAULT_HTTP_PORT})")
    p.add_argument("-V", "--version", action="version", version=f"nutbridge {__version__}")
    return p


def _setup_logging(level: int) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: list[str]) -> int:
    early: list[int] = []  # SIGTERM/SIGINT before the bridge runs: stop there, exit 0

    def _early(signum: int, frame: FrameType | None) -> None:
        early.append(signum)  # (no lock may be taken in a signal handler)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _early)
    args = _parser().parse_args(argv)
    for flag, value in (("--port", args.port), ("--http-port", args.http_port)):
        if not 0 < value < 65536:
            sys.stderr.write(f"nutbridge app: {flag} {value}: not a port number\n")
            return 2
    data: Path = args.data
    options_path: Path = args.options or data / "options.json"
    _setup_logging(logging.INFO)  # until the options say otherwise
    token = os.environ.get("SUPERVISOR_TOKEN", "")
    try:
        options = load_options(options_path)
        if options.mqtt and options.mqtt_url is None and not token:
            raise OptionsError(options_path, [
                "mqtt_url: missing: outside Home Assistant there is no Supervisor to name the MQTT "
                "broker (e.g. mqtt://192.168.1.10:1883)"])
    except OptionsError as exc:
        sys.stderr.write(f"nutbridge app: the app's options cannot be used ({len(exc.problems)} "
                         f"problem{'s' if len(exc.problems) > 1 else ''}; fix them in the app's "
                         "Configuration tab):\n")
        for p in exc.problems:
            sys.stderr.write(f"nutbridge app: {options_path}: {p}\n")
        return 2
    logging.getLogger().setLevel(LOG_LEVELS[options.log_level])
    log.info("NUT Bridge %s app: %d UPS, %d user%s of your own, listening on %s port %d",
             __version__, len(options.ups), len(options.users), "" if len(options.users) == 1 else "s",
             options.listen, args.port)
    if options.http:
        log.info("Status page and /metrics: port %d (HTTPS with the bridge's certificate unless "
                 "listen is a loopback address)", args.http_port)
    broker = _broker(options, token, lambda: bool(early))
    if early:  # stopped while asking for the broker: nothing written, nothing started
        return 0
    if not options.ups:
        log.warning("No UPS configured: serving none. Add one under 'ups' in the app's "
                    "Configuration tab (e.g. name: ups, driver: usbhid-ups, port: auto for a "
                    "USB UPS; see the Documentation tab), then restart the app.")
    try:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        ha_user = ha_credentials(data)
        write_nut_files(options, data / CONF_SUBDIR, ha_user, args.port, broker, args.http_port)
        # resolved (and made) here, before the bridge starts, so both read the same file
        server_id = StateDir(data).server_id
    except OSError as exc:
        sys.stderr.write(f"nutbridge app: cannot write to {data}: {exc.strerror or exc}"
                         f"{' (' + exc.filename + ')' if exc.filename else ''}\n")
        return 1
    if early:
        return 0

    become_subreaper()
    argv_serve = [sys.executable, "-m", "nutbridge", "serve", "--config-dir", str(data / CONF_SUBDIR),
                  "--state-dir", str(data),
                  *(["--no-zeroconf"] if os.environ.get("SUPERVISOR_TOKEN") else []),
                  *_SERVE_VERBOSITY[options.log_level]]
    # the bridge and the drivers it hosts need no Supervisor token
    env = {k: v for k, v in os.environ.items() if k != "SUPERVISOR_TOKEN"}
    child = Child(argv_serve, env)

    def _forward(signum: int, frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            child.stop(signum)
        else:
            child.send(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, _forward)
    if early:
        child.stop(signal.SIGTERM)

    announcer = _announcer(options, args.port, ha_user, server_id)
    if announcer is not None:
        announcer.start()
    try:
        rc = child.wait()
    finally:
        if announcer is not None:
            announcer.stop()
        child.reap_rest()
    if child.stopping and rc != 0:
        log.warning("The bridge exited with code %d while stopping", rc)
    elif not child.stopping:
        log.error("The bridge ended by itself (exit code %d): the app stops", rc)
    return rc


def _broker(options: Options, token: str, stop: Callable[[], bool]) -> Broker | None:
    """The MQTT broker when MQTT is on; None (logged as an error) when there is none: the
    UPSes are still served, only not published."""
    if not options.mqtt:
        return None
    base = os.environ.get("SUPERVISOR_URL", DEFAULT_SUPERVISOR) or DEFAULT_SUPERVISOR
    try:
        broker = resolve_broker(options, base if token else None, token, stop=stop)
    except NoBroker as exc:
        if not stop():
            log.error("MQTT is on but not published to: %s. Restart the app once that is fixed.", exc)
        return None
    log.info("MQTT: publishing to %s as %s (%s); commands over MQTT: %s", broker.url,
             f"user {broker.username}" if broker.username else "anonymous", broker.source,
             f"on, as the user {HA_USERNAME}" if options.mqtt_commands else "off (read-only)")
    return broker


def _announcer(options: Options, port: int, ha_user: tuple[str, str],
               server_id: str) -> Announcer | None:
    token = os.environ.get("SUPERVISOR_TOKEN", "")
    if not token:
        log.info("No SUPERVISOR_TOKEN (not running as a Home Assistant app): no discovery. "
                 "Home Assistant's NUT Bridge integration can still add this bridge by address.")
        return None
    if not options.ups:
        log.info("Not announcing to Home Assistant until a UPS is configured")
        return None
    if ipaddress.ip_address(options.listen).is_loopback:
        log.warning("listen is %s: Home Assistant cannot reach the bridge there (use 0.0.0.0)",
                    options.listen)
    base = os.environ.get("SUPERVISOR_URL", DEFAULT_SUPERVISOR) or DEFAULT_SUPERVISOR
    return Announcer(base, token, (_local_address(options.listen), port), port, ha_user, server_id)


__all__ = ["SCHEMA", "Options", "OptionsError", "load_options", "main", "validate_options"]
