"""upsd.conf: listeners, limits, TLS, and the bridge's extensions (host-based access control,
push, zeroconf, the self-signed certificate's opt-out ``AUTO_TLS false``)."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import voluptuous as vol

from .parser import BOOL_WORDS, ConfigError, Entry, read_entries

log = logging.getLogger(__name__)

DEFAULT_PORT = 3493
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_int = vol.All(vol.Coerce(int), vol.Range(min=1))


@dataclass
class Listen:
    host: str
    port: int
    line: int = 0


#: the HTTP endpoint's port when HTTP_LISTEN or --http names none (3493's neighbour in spirit;
#: nut_exporter's 9199 is left to nut_exporter, which may run beside us)
DEFAULT_HTTP_PORT = 8493
MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_MQTT_INTERVAL = 10.0
MAX_MQTT_INTERVAL = 3600.0


@dataclass
class MqttSettings:
    """Where and how the MQTT publisher connects (``MQTT_*`` keywords of upsd.conf)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None  # MQTT_CAFILE: the broker's CA (default: the system's)
    #: the upsd.users account whose rights MQTT commands and SETs get (none: read-only)
    account: str | None = None
    discovery_prefix: str = "homeassistant"
    base_topic: str = "nut-bridge"
    #: MQTT_INTERVAL: seconds between two state messages of a UPS whose change is only in
    #: measured values; status, alarms, availability and writable settings go out at once
    interval: float = DEFAULT_MQTT_INTERVAL


def _number(args: Sequence[str]) -> float | None:
    """One finite number, or None."""
    if len(args) != 1:
        return None
    try:
        value = float(args[0])
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_mqtt_url(text: str) -> MqttSettings:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]`` (credentials are separate keywords, so
    they never appear in a URL that gets logged); ValueError with the reason otherwise."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in MQTT_SCHEMES:
        raise ValueError(f"{text!r} is not an mqtt:// or mqtts:// URL")
    if "@" in rest or "/" in rest.rstrip("/"):
        raise ValueError(f"{text!r}: only host[:port] after the scheme (credentials: "
                         "MQTT_USERNAME/MQTT_PASSWORD)")
    host, port = rest.rstrip("/"), MQTT_SCHEMES[scheme.lower()]
    if host.startswith("["):
        host, _, tail = host[1:].partition("]")
        if tail:
            port = _port(tail.lstrip(":"), text)
    elif host.count(":") == 1:
        host, p = host.split(":")
        port = _port(p, text)
    if not host:
        raise ValueError(f"{text!r} names no host")
    return MqttSettings(host, port, scheme.lower() == "mqtts")


def _listen(e: Entry, path: Path, key: str, default_port: int) -> Listen:
    """``LISTEN``/``HTTP_LISTEN``: an address (IPv6 in brackets or not) and an optional port."""
    args = e.words[1:]
    if not 1 <= len(args) <= 2:
        raise e.error(path, f"{key} expects an address and an optional port")
    port = default_port
    if len(args) == 2:
        try:
            port = vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))(args[1])
        except vol.Invalid:
            raise e.error(path, f"invalid port {args[1]!r}") from None
    host = args[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return Listen(host, port, e.line)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r}: invalid port {text!r}")
    return int(text)


@dataclass
class UpsdConf:
    path: Path | None = None
    listen: list[Listen] = field(default_factory=list)
    maxage: int = 15
    maxconn: int = 0  # 0: limited by the OS file limit
    statepath: str | None = None
    datapath: str | None = None
    trackingdelay: int = 3600
    allow_no_device: bool = False
    allow_not_all_listeners: bool = False
    certfile: str | None = None
    certpath: str | None = None
    certrequest: int = 0
    disable_weak_ssl: bool = False
    debug_min: int = 0
    # Bridge extension: networks allowed to connect at all (empty: anyone who
    # reaches a LISTEN address, as upstream).
    allow: list[Network] = field(default_factory=list)
    # Bridge extensions: push subscriptions and zeroconf advertisement.
    push: bool = True
    advertise: bool = False
    # Bridge extension: without CERTFILE, a bridge listening beyond loopback makes its own
    # self-signed certificate and offers STARTTLS (docs/tls.md); AUTO_TLS false: it does not.
    # None (not in the file): the role decides, on for `nutbridge serve`, off for the drop-in
    # `nutbridge upsd`, which must answer STARTTLS as the C upsd it replaces.
    auto_tls: bool | None = None
    # Bridge extensions, off unless set (docs/http.md, docs/mqtt.md): the HTTP endpoint
    # (status page, /metrics, /api) and the MQTT publisher. Secrets stay out of logs.
    http_listen: list[Listen] = field(default_factory=list)
    mqtt: MqttSettings | None = None

    def listeners(self) -> list[Listen]:
        if self.listen:
            return self.listen
        return [Listen("127.0.0.1", DEFAULT_PORT), Listen("::1", DEFAULT_PORT)]

    def client_allowed(self, addr: str) -> bool:
        return not self.allow or addr_in(addr, self.allow)


_MQTT_FIELDS = {"MQTT_USERNAME": "username", "MQTT_PASSWORD": "password", "MQTT_CAFILE": "cafile",
                "MQTT_ACCOUNT": "account", "MQTT_DISCOVERY_PREFIX": "discovery_prefix",
                "MQTT_BASE_TOPIC": "base_topic"}


def addr_in(addr: str, networks: list[Network]) -> bool:
    """Is a peer address (IPv4, IPv6, v4-mapped, with or without %scope) in networks?"""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def parse_network(text: str) -> Network:
    if text.lower() == "localhost":
        text = "127.0.0.0/8"
    return ipaddress.ip_network(text, strict=False)


def _bool(e: Entry, path: Path, value: str) -> bool:
    try:
        return BOOL_WORDS[value.lower()]
    except KeyError:
        raise e.error(path, f"{e.words[0]} expects true or false, not {value!r}") from None


def parse_upsd_conf(path: Path, entries: list[Entry] | None = None) -> UpsdConf:
    entries = read_entries(path) if entries is None else entries
    conf = UpsdConf(path)
    for e in entries:
        key, args = e.words[0], e.words[1:]
        if key in ("ACL", "ACCEPT", "REJECT"):
            log.warning("%s:%d: %s is no longer supported - switch to LISTEN (and ALLOW for "
                        "client networks); line ignored", path, e.line, key)
            continue
        if key in ("LISTEN", "HTTP_LISTEN"):
            target = conf.listen if key == "LISTEN" else conf.http_listen
            target.append(_listen(e, path, key, DEFAULT_PORT if key == "LISTEN" else DEFAULT_HTTP_PORT))
            continue
        if key == "MQTT_URL":
            if len(args) != 1:
                raise e.error(path, "MQTT_URL expects one URL (mqtt://host[:port] or mqtts://...)")
            try:
                settings = parse_mqtt_url(args[0])
            except ValueError as exc:
                raise e.error(path, f"MQTT_URL: {exc}") from None
            if conf.mqtt is not None:  # keywords before MQTT_URL already filled these in
                settings = dataclasses.replace(conf.mqtt, host=settings.host, port=settings.port,
                                               tls=settings.tls)
            conf.mqtt = settings
            continue
        if key == "MQTT_INTERVAL":
            interval = _number(args)
            if interval is None or not 0 <= interval <= MAX_MQTT_INTERVAL:
                raise e.error(path, f"MQTT_INTERVAL expects seconds from 0 to {MAX_MQTT_INTERVAL:.0f}")
            if conf.mqtt is None:
                conf.mqtt = MqttSettings("", e.line, False)  # completed by MQTT_URL
            conf.mqtt.interval = interval
            continue
        if key in _MQTT_FIELDS:
            if len(args) != 1:
                raise e.error(path, f"{key} expects one value")
            if conf.mqtt is None:
                conf.mqtt = MqttSettings("", e.line, False)  # completed by MQTT_URL
            setattr(conf.mqtt, _MQTT_FIELDS[key], args[0])
            continue
        if key == "ALLOW":
            if not args:
                raise e.error(path, "ALLOW expects one or more networks (e.g. 192.168.1.0/24)")
            for a in args:
                try:
                    conf.allow.append(parse_network(a))
                except ValueError:
                    raise e.error(path, f"ALLOW: {a!r} is not an IP address or network") from None
            continue
        if key.upper() == "DEBUG_MIN" or key in (
            "MAXAGE", "MAXCONN", "TRACKINGDELAY", "CERTREQUEST"
        ):
            if len(args) != 1:
                raise e.error(path, f"{key} expects one value")
            if key == "CERTREQUEST":
                words = {"0": 0, "NO": 0, "1": 1, "REQUEST": 1, "2": 2, "REQUIRE": 2}
                if args[0].upper() not in words:
                    raise e.error(path, "CERTREQUEST expects NO, REQUEST or REQUIRE")
                conf.certrequest = words[args[0].upper()]
                continue
            try:
                value = _int(args[0]) if key != "DEBUG_MIN" else int(args[0])
            except (vol.Invalid, ValueError):
                raise e.error(path, f"{key} expects a positive number, not {args[0]!r}") from None
            setattr(conf, key.lower(), value)
            continue
        if key in ("STATEPATH", "DATAPATH", "CERTFILE", "CERTPATH"):
            if len(args) != 1:
                raise e.error(path, f"{key} expects one value")
            setattr(conf, key.lower(), args[0])
            continue
        if key in ("ALLOW_NO_DEVICE", "ALLOW_NOT_ALL_LISTENERS", "DISABLE_WEAK_SSL", "PUSH", "ADVERTISE",
                   "AUTO_TLS"):
            if len(args) != 1:
                raise e.error(path, f"{key} expects true or false")
            setattr(conf, key.lower(), _bool(e, path, args[0]))
            continue
        if key == "CERTIDENT":
            log.warning("%s:%d: CERTIDENT (NSS certificate database) is not supported; "
                        "use CERTFILE with a PEM file holding certificate and key", path, e.line)
            continue
        # upstream warns and carries on; so do we, so an /etc/nut that runs there runs here
        log.warning("%s:%d: unknown upsd.conf keyword '%s' ignored", path, e.line, key)
    if conf.mqtt is not None and not conf.mqtt.host:  # port: the line of the first MQTT_ keyword
        raise ConfigError("MQTT_* settings without MQTT_URL (mqtt://host or mqtts://host)",
                          path, conf.mqtt.port)
    return conf
