"""Topics and payloads of the MQTT publisher: Home Assistant device discovery, state, requests.

Sans-IO and pure: everything here is a function of a :class:`~nutbridge.state.Device` (read
only), the bridge's identity and the rights of the MQTT account, so it is tested without a
broker and the publisher (``publisher.py``) only moves the results (docs/mqtt.md).

The contract is HA's *device-based* discovery (HA 2024.11+): one retained message per UPS on
``<prefix>/device/<device id>/config`` holding ``dev`` (the device), ``o`` (origin) and ``cmps``
(its entities). Every entity reads the UPS's one JSON state topic through a ``value_template``,
so a change costs one message per UPS whatever the number of entities. ``object_id`` is never
emitted (deprecated; HA names entities from the device and entity names).

Identity: a UPS's device id is ``nutbridge_<server id>_<UPS name slug>``. The server id (32 hex
digits, kept in the bridge's state directory) makes the same UPS name on two bridges two
devices; it survives restarts, so the ids do too. The UPS serial number is deliberately NOT
part of it: it is missing on many devices, and replacing a UPS (or its electronics) behind the
same name would orphan the entities' history, which is not what a NUT user expects; the serial
is shown as the device's ``serial_number`` instead.

Bounds: at most :data:`MAX_COMPONENTS` entities per UPS, option lists and names are cut, and a
state message holds at most :data:`MAX_STATE_BYTES` (the variables the entities read first).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from ..state import Device, DriverState, Variable

ORIGIN_NAME = "NUT Bridge"
ORIGIN_URL = "https://github.com/nut-bridge/nut-bridge"

MAX_COMPONENTS = 256
MAX_OUTLETS = 32  # per-outlet entities are made for outlet.1 .. outlet.32 only
MAX_OPTIONS = 64  # select options
MAX_NAME = 64  # entity names, option texts
MAX_STATE_BYTES = 16384
MAX_PAYLOAD = 256  # command parameters and SET values taken from MQTT (upsd's value limit)

ONLINE, OFFLINE = "online", "offline"
#: state-topic keys of the bridge's own (NUT variable names never start with "nutbridge.")
KEY_DRIVER = "nutbridge.driver"
#: the UPS's availability (``online``/``offline``) in its state message: HA reads it from there,
#: so a state message lost on the way (a broker drops QoS 1 messages past its queue limit) is
#: mended by the next one, where a separate retained availability message sent once would not be
KEY_AVAILABLE = "nutbridge.availability"

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # variable and command names we route
_OUTLET_SWITCH = re.compile(r"^outlet\.(\d{1,3})\.load\.(on|off)$")
_OUTLET_VAR = re.compile(r"^outlet\.(\d{1,3})\.(.+)$")


@dataclass(frozen=True)
class BridgeIdentity:
    """Who publishes: the bridge's stable id and the topic roots (upsd.conf ``MQTT_*``)."""

    server_id: str
    version: str
    hostname: str = ""
    discovery_prefix: str = "homeassistant"
    base_topic: str = "nut-bridge"


@dataclass(frozen=True)
class Rights:
    """What the MQTT account (``MQTT_ACCOUNT``) may do; the default: nothing (read-only).

    Only commands and variables it may use are announced as buttons, switches and numbers;
    upsd's own checks still decide every request (the announcement is a convenience)."""

    instcmds: frozenset[str] = frozenset()  # lowercase; "all" = every command
    may_set: bool = False

    def may_run(self, cmd: str) -> bool:
        return "all" in self.instcmds or cmd.lower() in self.instcmds

    @property
    def any(self) -> bool:
        return bool(self.instcmds) or self.may_set


READ_ONLY = Rights()


# ---- topics -------------------------------------------------------------------------------------

def segment(ups: str) -> str:
    """A UPS name as one topic level: characters MQTT or people would trip on are %-escaped."""
    return quote(ups, safe="") if ups else "%00"


def bridge_root(b: BridgeIdentity) -> str:
    return f"{b.base_topic}/{b.server_id}"


def bridge_status_topic(b: BridgeIdentity) -> str:
    """The bridge's last will: ``online`` while connected, ``offline`` (retained) otherwise."""
    return f"{bridge_root(b)}/status"


def ups_root(b: BridgeIdentity, ups: str) -> str:
    return f"{bridge_root(b)}/{segment(ups)}"


def state_topic(b: BridgeIdentity, ups: str) -> str:
    return f"{ups_root(b, ups)}/state"


def availability_topic(b: BridgeIdentity, ups: str) -> str:
    return f"{ups_root(b, ups)}/availability"


def result_topic(b: BridgeIdentity, ups: str) -> str:
    return f"{ups_root(b, ups)}/result"


def birth_topic(b: BridgeIdentity) -> str:
    """Where HA says ``online`` when it (re)starts: discovery is sent again then."""
    return f"{b.discovery_prefix}/status"


def request_subscriptions(b: BridgeIdentity) -> list[str]:
    root = bridge_root(b)
    return [f"{root}/+/cmd/+", f"{root}/+/set/+", f"{root}/+/outlet/+"]


def slug(text: str) -> str:
    """An HA object id part: lowercase ``[a-z0-9_-]``; a lossy mapping gets a short hash of the
    original so that ``ups.a`` and ``ups_a`` stay apart."""
    low = text.lower()
    out = re.sub(r"[^a-z0-9_-]", "_", low)
    if out != low or not out:
        out = f"{out}_{hashlib.sha256(low.encode()).hexdigest()[:8]}"
    return out


def bridge_device_id(b: BridgeIdentity) -> str:
    return f"nutbridge_{slug(b.server_id)}"


def device_id(b: BridgeIdentity, ups: str) -> str:
    """Stable across restarts, different for the same UPS name on another bridge. UPS names are
    case-insensitive in NUT, so are these ids."""
    return f"{bridge_device_id(b)}_{slug(ups)}"


def discovery_topic(b: BridgeIdentity, ups: str) -> str:
    return f"{b.discovery_prefix}/device/{device_id(b, ups)}/config"


def bridge_discovery_topic(b: BridgeIdentity) -> str:
    return f"{b.discovery_prefix}/device/{bridge_device_id(b)}/config"


# ---- what the usual NUT variables are -----------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    name: str
    device_class: str | None = None
    unit: str | None = None
    state_class: str | None = "measurement"
    diagnostic: bool = False
    enabled: bool = True
    icon: str | None = None


def _v(name: str, unit: str = "V", **kw: Any) -> Spec:
    return Spec(name, "voltage", unit, **kw)


SENSORS: dict[str, Spec] = {
    "battery.charge": Spec("Battery charge", "battery", "%"),
    "battery.charge.low": Spec("Low battery charge", None, "%", None, diagnostic=True),
    "battery.runtime": Spec("Battery runtime", "duration", "s"),
    "battery.runtime.low": Spec("Low battery runtime", "duration", "s", None, diagnostic=True),
    "battery.voltage": _v("Battery voltage"),
    "battery.voltage.nominal": _v("Nominal battery voltage", state_class=None, diagnostic=True),
    "battery.current": Spec("Battery current", "current", "A"),
    "battery.temperature": Spec("Battery temperature", "temperature", "°C"),
    "battery.type": Spec("Battery type", None, None, None, diagnostic=True),
    "battery.date": Spec("Battery date", None, None, None, diagnostic=True, enabled=False),
    "battery.mfr.date": Spec("Battery manufacture date", None, None, None, diagnostic=True, enabled=False),
    "ups.load": Spec("Load", None, "%", icon="mdi:gauge"),
    "ups.realpower": Spec("Real power", "power", "W"),
    "ups.power": Spec("Apparent power", "apparent_power", "VA"),
    "ups.realpower.nominal": Spec("Nominal real power", "power", "W", None, diagnostic=True),
    "ups.power.nominal": Spec("Nominal apparent power", "apparent_power", "VA", None, diagnostic=True),
    "ups.temperature": Spec("Temperature", "temperature", "°C"),
    "ups.efficiency": Spec("Efficiency", None, "%"),
    "ups.beeper.status": Spec("Beeper", None, None, None, diagnostic=True),
    "ups.test.result": Spec("Self-test result", None, None, None, diagnostic=True),
    "ups.timer.shutdown": Spec("Shutdown timer", "duration", "s", None, diagnostic=True, enabled=False),
    "ups.timer.start": Spec("Start timer", "duration", "s", None, diagnostic=True, enabled=False),
    "ups.delay.shutdown": Spec("Shutdown delay", "duration", "s", None, diagnostic=True),
    "ups.delay.start": Spec("Start delay", "duration", "s", None, diagnostic=True),
    "input.voltage": _v("Input voltage"),
    "input.voltage.nominal": _v("Nominal input voltage", state_class=None, diagnostic=True),
    "input.current": Spec("Input current", "current", "A"),
    "input.frequency": Spec("Input frequency", "frequency", "Hz"),
    "input.realpower": Spec("Input real power", "power", "W"),
    "input.transfer.low": _v("Low transfer voltage", state_class=None, diagnostic=True),
    "input.transfer.high": _v("High transfer voltage", state_class=None, diagnostic=True),
    "output.voltage": _v("Output voltage"),
    "output.voltage.nominal": _v("Nominal output voltage", state_class=None, diagnostic=True),
    "output.current": Spec("Output current", "current", "A"),
    "output.frequency": Spec("Output frequency", "frequency", "Hz"),
    "output.realpower": Spec("Output real power", "power", "W"),
    "ambient.temperature": Spec("Ambient temperature", "temperature", "°C"),
    "ambient.humidity": Spec("Ambient humidity", "humidity", "%"),
}

OUTLET_SENSORS: dict[str, Spec] = {
    "realpower": Spec("real power", "power", "W"),
    "power": Spec("apparent power", "apparent_power", "VA"),
    "current": Spec("current", "current", "A"),
    "voltage": Spec("voltage", "voltage", "V"),
}

#: ups.status flag -> (entity name, device class, enabled by default)
FLAGS: dict[str, tuple[str, str | None, bool]] = {
    "OL": ("Online", "power", True),
    "OB": ("On battery", None, True),
    "LB": ("Low battery", "battery", True),
    "RB": ("Replace battery", "problem", True),
    "OVER": ("Overload", "problem", True),
    "CHRG": ("Charging", "battery_charging", True),
    "DISCHRG": ("Discharging", None, False),
    "BYPASS": ("On bypass", None, False),
    "OFF": ("Output off", None, False),
    "FSD": ("Forced shutdown", "problem", False),
    "ALARM": ("Alarm", "problem", False),
    "CAL": ("Calibrating", None, False),
    "TRIM": ("Trimming voltage", None, False),
    "BOOST": ("Boosting voltage", None, False),
    "HB": ("High battery", None, False),
    "ECO": ("Eco mode", None, False),
}

#: commands that cut power: their buttons are announced disabled (a person enables them)
_POWER_CUTTING = re.compile(r"^(load\.off|shutdown\.|outlet\.\d+\.load\.off|calibrate\.)")

_BUTTON_NAMES = {
    "test.battery.start": "Start battery test",
    "test.battery.start.quick": "Start quick battery test",
    "test.battery.start.deep": "Start deep battery test",
    "test.battery.stop": "Stop battery test",
    "beeper.enable": "Enable beeper",
    "beeper.disable": "Disable beeper",
    "beeper.mute": "Mute beeper",
    "beeper.toggle": "Toggle beeper",
    "load.off": "Switch load off",
    "load.on": "Switch load on",
}


def _cut(text: str, n: int = MAX_NAME) -> str:
    return text if len(text) <= n else text[:n]


def _cid(text: str) -> str:
    """A component id (unique within the device; part of the unique id)."""
    return re.sub(r"[^a-z0-9_]", "_", text.lower())


def _tpl(expr: str) -> str:
    return "{{ " + expr + " }}"


def _value_template(var: str) -> str:
    return _tpl(f"value_json.get({json.dumps(var)})")


def _flag_template(flag: str) -> str:
    return _tpl(f"'ON' if {json.dumps(flag)} in (value_json.get('ups.status') or '').split() else 'OFF'")


def _on_template(var: str) -> str:
    return _tpl(f"'ON' if value_json.get({json.dumps(var)}) == 'on' else 'OFF'")


# ---- discovery ----------------------------------------------------------------------------------

def shape(dev: Device, rights: Rights) -> tuple[object, ...]:
    """What the discovery message depends on besides names: compared by the publisher, so the
    message is rebuilt only when a variable or command appears, goes or changes type."""
    return (
        dev.name,
        tuple(
            (v.name, v.rw, v.string, v.aux, tuple(v.enums), tuple(v.ranges)) if v.rw else v.name
            for v in dev.variables()
        ),
        tuple(dev.commands()),
        dev.value("device.mfr"), dev.value("ups.mfr"), dev.value("device.model"), dev.value("ups.model"),
        dev.value("device.serial"), dev.value("ups.serial"), dev.value("ups.firmware"),
        rights,
    )


def _device_info(b: BridgeIdentity, dev: Device) -> dict[str, Any]:
    def first(*names: str) -> str | None:
        for n in names:
            value = dev.value(n)
            if value and value.strip():
                return _cut(value.strip(), 128)
        return None

    info: dict[str, Any] = {"identifiers": [device_id(b, dev.name)], "name": _cut(dev.name)}
    for key, names in (("manufacturer", ("device.mfr", "ups.mfr")),
                       ("model", ("device.model", "ups.model")),
                       ("serial_number", ("device.serial", "ups.serial")),
                       ("sw_version", ("ups.firmware", "device.firmware")),
                       ("hw_version", ("ups.firmware.aux",))):
        value = first(*names)
        if value is not None:
            info[key] = value
    info["via_device"] = bridge_device_id(b)
    return info


def origin(b: BridgeIdentity) -> dict[str, str]:
    return {"name": ORIGIN_NAME, "sw_version": b.version, "support_url": ORIGIN_URL}


@dataclass
class _Builder:
    b: BridgeIdentity
    dev: Device
    rights: Rights
    uid: str
    cmps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, cid: str, platform: str, name: str, **options: Any) -> None:
        if len(self.cmps) >= MAX_COMPONENTS or cid in self.cmps:
            return
        comp: dict[str, Any] = {"p": platform, "name": _cut(name), "unique_id": f"{self.uid}_{cid}"}
        comp.update({k: v for k, v in options.items() if v is not None})
        self.cmps[cid] = comp

    def sensor(self, var: Variable, spec: Spec, name: str | None = None) -> None:
        self.add(_cid(var.name), "sensor", name or spec.name,
                 value_template=_value_template(var.name), device_class=spec.device_class,
                 unit_of_measurement=spec.unit, state_class=spec.state_class,
                 entity_category="diagnostic" if spec.diagnostic else None,
                 enabled_by_default=None if spec.enabled else False, icon=spec.icon)

    def control(self, var: Variable) -> None:
        """A writable variable: select (enums), text (strings), number (the rest)."""
        spec = SENSORS.get(var.name.lower())
        name = spec.name if spec else var.name
        common: dict[str, Any] = {
            "command_topic": f"{ups_root(self.b, self.dev.name)}/set/{var.name}",
            "value_template": _value_template(var.name), "entity_category": "config",
        }
        cid = _cid(var.name)
        if var.enums:
            self.add(cid, "select", name, options=[_cut(e) for e in var.enums[:MAX_OPTIONS]], **common)
        elif var.string:
            self.add(cid, "text", name, max=max(1, min(var.aux, 255)), **common)
        else:
            if var.ranges:
                lo, hi = min(r[0] for r in var.ranges), max(r[1] for r in var.ranges)
            else:
                lo, hi = -1_000_000_000, 1_000_000_000
            self.add(cid, "number", name, min=lo, max=max(hi, lo + 1), step=1, mode="box",
                     unit_of_measurement=spec.unit if spec else None,
                     device_class=spec.device_class if spec and spec.device_class in (
                         "duration", "voltage", "battery", "temperature", "power") else None,
                     **common)


def device_config(b: BridgeIdentity, dev: Device, rights: Rights = READ_ONLY) -> dict[str, Any]:
    """The retained discovery payload for one UPS (before JSON encoding)."""
    uid = device_id(b, dev.name)
    build = _Builder(b, dev, rights, uid)
    # what everyone sees first: status, the flags people automate on, the driver's state
    build.add("status", "sensor", "Status", value_template=_value_template("ups.status"),
              icon="mdi:information-outline")
    build.add("driver", "sensor", "Driver state", value_template=_value_template(KEY_DRIVER),
              entity_category="diagnostic", device_class="enum",
              options=[s.value for s in DriverState],
              # readable while the UPS's data are not: only the bridge's own availability
              availability=[{"topic": bridge_status_topic(b)}])
    for flag, (name, dclass, enabled) in FLAGS.items():
        build.add(f"flag_{flag.lower()}", "binary_sensor", name, value_template=_flag_template(flag),
                  device_class=dclass, enabled_by_default=None if enabled else False)

    switches: set[str] = set()
    if rights.instcmds:
        for cmd in dev.commands():
            m = _OUTLET_SWITCH.match(cmd.lower())
            if not m or int(m.group(1)) > MAX_OUTLETS or m.group(2) != "on":
                continue
            n = m.group(1)
            off = f"outlet.{n}.load.off"
            if dev.has_cmd(off) and rights.may_run(cmd) and rights.may_run(off) and \
                    dev.get(f"outlet.{n}.status") is not None:
                build.add(f"outlet_{n}", "switch", f"Outlet {n}", device_class="outlet",
                          command_topic=f"{ups_root(b, dev.name)}/outlet/{n}",
                          value_template=_on_template(f"outlet.{n}.status"))
                switches.update((cmd.lower(), off))

    for var in dev.variables():
        low = var.name.lower()
        if not _NAME_RE.match(var.name):
            continue
        if var.rw and rights.may_set:
            build.control(var)
            continue
        spec = SENSORS.get(low)
        if spec is not None:
            build.sensor(var, spec)
            continue
        m = _OUTLET_VAR.match(low)
        if m and int(m.group(1)) <= MAX_OUTLETS:
            n, rest = m.groups()
            if rest in OUTLET_SENSORS:
                build.sensor(var, OUTLET_SENSORS[rest], f"Outlet {n} {OUTLET_SENSORS[rest].name}")
            elif rest == "status" and f"outlet_{n}" not in build.cmps:
                build.add(f"outlet_{n}_status", "binary_sensor", f"Outlet {n}", device_class="power",
                          value_template=_on_template(var.name))

    for cmd in dev.commands():
        if cmd.lower() in switches or not _NAME_RE.match(cmd) or not rights.may_run(cmd):
            continue
        build.add(f"cmd_{_cid(cmd)}", "button", _BUTTON_NAMES.get(cmd.lower(), cmd),
                  command_topic=f"{ups_root(b, dev.name)}/cmd/{cmd}", entity_category="config",
                  enabled_by_default=False if _POWER_CUTTING.match(cmd.lower()) else None)

    return {
        "dev": _device_info(b, dev),
        "o": origin(b),
        "cmps": build.cmps,
        "state_topic": state_topic(b, dev.name),
        # the bridge's last will AND the UPS's own data: unavailable when either is offline
        "availability": [{"topic": bridge_status_topic(b)},
                         {"topic": state_topic(b, dev.name),
                          "value_template": _value_template(KEY_AVAILABLE)}],
        "availability_mode": "all",
        "qos": 1,
    }


def with_removals(config: dict[str, Any], previous: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``config`` plus, for each (component id, platform) announced before and gone now, the
    bare ``{"p": platform}`` HA takes as "remove this entity"."""
    cmps = dict(config["cmps"])
    for cid, platform in previous:
        if cid not in cmps:
            cmps[cid] = {"p": platform}
    return {**config, "cmps": cmps}


def components_of(config: dict[str, Any]) -> list[tuple[str, str]]:
    return [(cid, str(c["p"])) for cid, c in config["cmps"].items() if len(c) > 1]


def bridge_config(b: BridgeIdentity) -> dict[str, Any]:
    """The bridge itself as a device: the ``via_device`` of every UPS, with its connectivity."""
    uid = bridge_device_id(b)
    name = f"NUT Bridge {b.hostname}".strip()
    return {
        "dev": {"identifiers": [uid], "name": _cut(name), "manufacturer": ORIGIN_NAME,
                "model": "NUT Bridge", "sw_version": b.version},
        "o": origin(b),
        "cmps": {"connectivity": {"p": "binary_sensor", "name": "Connected",
                                  "unique_id": f"{uid}_connectivity",
                                  "device_class": "connectivity", "state_topic": bridge_status_topic(b),
                                  "payload_on": ONLINE, "payload_off": OFFLINE,
                                  "entity_category": "diagnostic"}},
    }


# ---- state --------------------------------------------------------------------------------------

def is_available(dev: Device, maxage: float, now: float | None = None) -> bool:
    """upsd would serve this UPS's data (not stale, driver there)."""
    return dev.availability(maxage, now) is None


def state_payload(dev: Device, priority: Iterable[str] = (), available: bool = True) -> dict[str, str]:
    """The UPS's state message: its variables by NUT name (``ups.status`` as upsd serves it,
    FSD latch included), the driver state and the availability; the ``priority`` names (what
    the entities read) first, the rest as long as the message stays under :data:`MAX_STATE_BYTES`."""
    out: dict[str, str] = {KEY_DRIVER: dev.driver_state.value,
                           KEY_AVAILABLE: ONLINE if available else OFFLINE,
                           "ups.status": dev.served_status()}
    size = 64
    first = [v for v in (dev.get(n) for n in priority) if v is not None]
    for var in [*first, *dev.variables()]:
        if var.name in out:
            continue
        size += len(var.name) + len(var.value) + 8  # json quotes, colon, comma (escapes aside)
        if size > MAX_STATE_BYTES:
            break
        out[var.name] = var.value
    return out


def referenced(config: dict[str, Any]) -> list[str]:
    """The variable names the entities of a discovery payload read (state priority)."""
    names = []
    for comp in config["cmps"].values():
        tpl = comp.get("value_template", "")
        for m in re.finditer(r'value_json\.get\(("(?:[^"\\]|\\.)*")\)', tpl):
            names.append(json.loads(m.group(1)))
    return names


def encode(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# ---- requests (command topics) ------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """A request received on a command topic, as the NUT request line it becomes."""

    ups: str
    words: tuple[str, ...]

    def describe(self) -> str:
        return " ".join(self.words)


def _clean(payload: bytes) -> str | None:
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if len(text) > MAX_PAYLOAD or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return None
    return text


def parse_request(b: BridgeIdentity, topic: str, payload: bytes) -> Request | None:
    """``<base>/<id>/<ups>/cmd/<command>`` (payload ``PRESS``/empty, or a parameter),
    ``<base>/<id>/<ups>/outlet/<n>`` (``ON``/``OFF``), ``<base>/<id>/<ups>/set/<variable>``
    (the value). None for anything else: malformed input is dropped, never raised."""
    prefix = bridge_root(b) + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    if len(parts) != 3 or not parts[0]:
        return None
    ups, kind, name = unquote(parts[0]), parts[1], parts[2]
    text = _clean(payload)
    if text is None or not ups or any(ord(c) < 32 for c in ups):
        return None
    if kind == "cmd" and _NAME_RE.match(name):
        if text in ("", "PRESS"):
            return Request(ups, ("INSTCMD", ups, name))
        if " " in text or '"' in text:
            return None
        return Request(ups, ("INSTCMD", ups, name, text))
    if kind == "outlet" and name.isascii() and name.isdigit() and 0 < len(name) <= 3:
        action = {"ON": "on", "OFF": "off"}.get(text.upper())
        return Request(ups, ("INSTCMD", ups, f"outlet.{int(name)}.load.{action}")) if action else None
    if kind == "set" and _NAME_RE.match(name):
        return Request(ups, ("SET", "VAR", ups, name, text))
    return None
