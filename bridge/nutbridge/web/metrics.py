"""Prometheus metrics of the bridge's UPSes, read from the in-memory state (sans-IO).

The names are nut_exporter's (DRuggeri/nut_exporter, the exporter most NUT users scrape), so
its alerts and its Grafana dashboard keep working (docs/prometheus.md):

* ``network_ups_tools_<variable>``: every variable whose value is a number (``.`` and ``-`` and
  anything else a metric name cannot hold become ``_``), ``enabled``/``on``/``true``... as 1 and
  ``disabled``/``off``/``false``... as 0, as nut_exporter coerces them; HELP is
  ``"<description> (<variable>)"``;
* ``network_ups_tools_ups_status{flag=...}``: 1 per flag of ups.status, 0 for the flags
  nut_exporter always lists;
* ``network_ups_tools_device_info{model,mfr,serial,type,description,contact,location,part,
  macaddr}`` = 1.

A name ``promtool check metrics`` would refuse (its lint is what Prometheus users check
exporters with) is changed as little as possible, and only then: camelCase (a lower-case
letter followed by an upper-case one: ``driver.parameter.productID``) is written in lower
case; a metric type as a word (``..._discharge_counter``) gets an ``s``
(``..._discharge_counters``); a suffix Prometheus reserves for counters, histograms and
summaries (``outlet.count``) gets ``_value`` appended (``network_ups_tools_outlet_count_value``).
NUT's upper-case phase names stay as nut_exporter writes them
(``network_ups_tools_input_L1_N_voltage``).

``/metrics`` carries every UPS of the bridge, each series with a ``ups`` label (what
nut_exporter's users ask for), plus the bridge's view of each UPS (``nutbridge_ups_*``: driver
connected, data stale, driver state, data age, logins) and of itself (``nutbridge_*``, the
``process_*`` and ``python_*`` of prometheus_client). ``/ups_metrics?ups=NAME`` answers as
nut_exporter does: that UPS's series without a ``ups`` label (the scrape config adds it).

Two renderings of the same samples (:func:`ups_families`, :func:`state_families`):
:class:`UpsCollector` is a prometheus_client ``Collector`` (for a registry, and the tests'
oracle); :class:`Exposition` writes the text format itself and keeps each UPS's lines until the
UPS changes, because prometheus_client's generic exposition costs about half a second of the
event loop per scrape at 1,000 UPSes (measured: docs/prometheus.md, "Cost").
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ..server.frontend import Frontend
from ..state import Device, DriverState

NAMESPACE = "network_ups_tools"
STATUS_FAMILY = f"{NAMESPACE}_ups_status"
INFO_FAMILY = f"{NAMESPACE}_device_info"
INFO_HELP = "UPS Device information"
#: nut_exporter's device_info labels: the device.* variable of the same name, "" when absent
DEVICE_LABELS = ("model", "mfr", "serial", "type", "description", "contact", "location", "part",
                 "macaddr")
#: flags nut_exporter always exports (0 when not set): its --nut.statuses default
DEFAULT_STATUSES = ("OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "CAL", "OFF", "OVER",
                    "TRIM", "BOOST", "FSD", "SD")
#: suffixes promtool refuses on a gauge (they mean counter, histogram or summary)
RESERVED_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
NO_DESCRIPTION = "Description unavailable"  # what upsd answers to GET DESC without one
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# nut_exporter's number test (its NUT library's): digits and dots, at most one dot; its
# default on/off words, matched whole and case-insensitively
_NUMBER = re.compile(r"-?[0-9.]+")
_ON = re.compile(r"(?i)(enable|enabled|on|true|active|activated)")
_OFF = re.compile(r"(?i)(disable|disabled|off|false|inactive|deactivated)")
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")
_CAMEL = re.compile(r"[a-z][A-Z]")  # promtool's test for camelCase
_TYPE_WORD = re.compile(r"_(?:counter|gauge|histogram|summary)(?=_|$)", re.IGNORECASE)
_INT64 = 1 << 63

Labels = tuple[tuple[str, str], ...]
Describe = Callable[[str], "str | None"]


@dataclass(slots=True)
class Family:
    """One metric family of one UPS (or of the bridge): gauges only."""

    name: str
    help: str
    samples: list[tuple[Labels, float]]


def metric_name(var: str) -> str:
    """``network_ups_tools_<var>`` as nut_exporter names it (plus the two lint rules)."""
    name = f"{NAMESPACE}_{_NOT_NAME.sub('_', var)}"
    if _CAMEL.search(name):
        name = name.lower()
    name = _TYPE_WORD.sub(r"\g<0>s", name)
    return name + "_value" if name.endswith(RESERVED_SUFFIXES) else name


def nut_value(text: str) -> float | None:
    """The number nut_exporter makes of a NUT value, None when it exports none."""
    t = text.strip(" ")
    if _NUMBER.fullmatch(t):
        dots = t.count(".")
        if dots == 1:
            try:
                return float(t)
            except ValueError:  # "." or "-."
                return None
        if dots == 0:
            n = int(t)
            return float(n) if -_INT64 <= n < _INT64 else None
        return None
    if _ON.fullmatch(t):
        return 1.0
    if _OFF.fullmatch(t):
        return 0.0
    return None


def fmt_value(v: float) -> str:
    """A sample value in the text format: integers without a fraction, others shortest."""
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _help(describe: Describe, var: str) -> str:
    return f"{describe(var) or NO_DESCRIPTION} ({var})"


def ups_families(dev: Device, describe: Describe, *, values: bool = True,
                 variables: Collection[str] | None = None,
                 statuses: Iterable[str] = DEFAULT_STATUSES) -> list[Family]:
    """nut_exporter's series for one UPS, without a ``ups`` label.

    ``values`` False: only device_info (a UPS whose data upsd would not serve now still shows
    in the list of UPSes). ``variables``: the lower-case names to export (nut_exporter's
    ``variables=``), all when None; ``statuses``: the flags always exported."""
    out: list[Family] = []
    seen = {STATUS_FAMILY, INFO_FAMILY}
    info = dict.fromkeys(DEVICE_LABELS, "")
    status: str | None = None
    for var in dev.variables():
        name = var.name
        low = name.lower()
        if low.startswith("device.") and low[7:] in info:
            info[low[7:]] = var.value
        if not values or (variables is not None and low not in variables):
            continue
        if low == "ups.status":
            status = dev.served_status()
            continue
        value = nut_value(var.value)
        if value is None:
            continue
        family = metric_name(name)
        if family in seen:  # two variables that differ only in what naming replaces
            continue
        seen.add(family)
        out.append(Family(family, _help(describe, name), [((), value)]))
    if (values and status is None and (variables is None or "ups.status" in variables)
            and (dev.fsd or dev.driver_state is DriverState.WAIT)):
        status = dev.served_status()  # WAIT or FSD before the driver set a status
    if status is not None:
        samples: list[tuple[Labels, float]] = [((("flag", f),), float(n))
                                               for f, n in _flags(status.split(), statuses)]
        if samples:
            out.append(Family(STATUS_FAMILY, _help(describe, "ups.status"), samples))
    out.append(Family(INFO_FAMILY, INFO_HELP, [(tuple(info.items()), 1.0)]))
    return out


#: the bridge's view of each UPS (HELP texts); DRIVER_STATES in nutbridge_ups_driver_state
STATE_HELP = {
    "nutbridge_ups_driver_connected": "1 when a driver is connected to the UPS",
    "nutbridge_ups_data_stale": "1 when upsd answers DATA-STALE or DRIVER-NOT-CONNECTED for the UPS "
                                "(its other series are then left out)",
    "nutbridge_ups_driver_state": "1 for the driver's state: ok, wait (no full data yet), stale, "
                                  "not-connected",
    "nutbridge_ups_data_age_seconds": "Seconds since the driver last reported the UPS",
    "nutbridge_ups_logins": "Clients logged into the UPS (upsmon and others: LOGIN)",
}
DRIVER_STATES = tuple(s.value for s in DriverState)


AGE_FAMILY = "nutbridge_ups_data_age_seconds"


def state_families(dev: Device, maxage: float, now: float, *, with_age: bool = True,
                   unavailable: bool | None = None) -> list[Family]:
    """The bridge's view of one UPS, without a ``ups`` label (``unavailable``: what
    ``dev.availability(maxage, now)`` says, when the caller knows it already)."""
    st = dev.driver_state
    if unavailable is None:
        unavailable = dev.availability(maxage, now) is not None
    out = [
        Family("nutbridge_ups_driver_connected", STATE_HELP["nutbridge_ups_driver_connected"],
               [((), 0.0 if st is DriverState.NOT_CONNECTED else 1.0)]),
        Family("nutbridge_ups_data_stale", STATE_HELP["nutbridge_ups_data_stale"],
               [((), 1.0 if unavailable else 0.0)]),
        Family("nutbridge_ups_driver_state", STATE_HELP["nutbridge_ups_driver_state"],
               [((("state", s),), 1.0 if s == st.value else 0.0) for s in DRIVER_STATES]),
    ]
    if with_age and dev.last_heard:
        out.append(Family(AGE_FAMILY, STATE_HELP[AGE_FAMILY], [((), _age(dev, now))]))
    out.append(Family("nutbridge_ups_logins", STATE_HELP["nutbridge_ups_logins"],
                      [((), float(dev.numlogins))]))
    return out


def _age(dev: Device, now: float) -> float:
    return round(max(0.0, now - dev.last_heard), 3)


def _labels_text(labels: Labels) -> str:
    return ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)


def render_families(families: Iterable[Family]) -> str:
    """The text exposition format (0.0.4) of ``families`` (names unique)."""
    out: list[str] = []
    for fam in families:
        out.append(f"# HELP {fam.name} {escape_help(fam.help)}\n# TYPE {fam.name} gauge\n")
        for labels, value in fam.samples:
            lt = f"{{{_labels_text(labels)}}}" if labels else ""
            out.append(f"{fam.name}{lt} {fmt_value(value)}\n")
    return "".join(out)


class BridgeCollector(Collector):
    """The bridge's own figures: version and id, UPS count, upsd's sessions."""

    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        f = self.frontend
        info = GaugeMetricFamily("nutbridge_info", "The bridge: version and server id",
                                 labels=["version", "server_id"])
        info.add_metric([f.version, f.server_id()], 1.0)
        yield info
        yield GaugeMetricFamily("nutbridge_ups_devices", "UPSes the bridge serves",
                                value=len(f.core.devices))
        sessions = list(f.core.sessions)
        yield GaugeMetricFamily("nutbridge_upsd_sessions",
                                "Open upsd sessions (network clients and the bridge's front ends)",
                                value=len(sessions))
        yield GaugeMetricFamily("nutbridge_upsd_push_subscribers",
                                "Sessions subscribed to pushed updates (SUBSCRIBE)",
                                value=sum(1 for s in sessions if s.subscribed))
        yield CounterMetricFamily("nutbridge_upsd_connections",
                                  "upsd sessions opened since the bridge started",
                                  value=f.core.connections_total)


def bridge_registry(frontend: Frontend) -> CollectorRegistry:
    """A registry of the bridge's own figures and its process (one per endpoint: several
    bridges may share one Python process in benchmarks and tests)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(BridgeCollector(frontend))
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    return reg


class UpsCollector(Collector):
    """Every UPS of the bridge as prometheus_client metric families (``ups`` label first)."""

    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = self.frontend
        describe = f.core.descriptions.var
        maxage, now = f.upsd.maxage, time.monotonic()
        merged: dict[str, GaugeMetricFamily] = {}
        for dev in f.devices:
            available = dev.availability(maxage, now) is None
            for fam in [*ups_families(dev, describe, values=available), *state_families(dev, maxage, now)]:
                names = ["ups", *(k for k, _ in fam.samples[0][0])]
                g = merged.get(fam.name)
                if g is None:
                    g = merged[fam.name] = GaugeMetricFamily(fam.name, fam.help, labels=names)
                for labels, value in fam.samples:
                    g.add_metric([dev.name, *(v for _, v in labels)], value)
        yield from merged.values()


_MEMO_MAX = 65536
#: (device_info label it fills or None, family: "" for ups.status, "-" for none, HELP/TYPE lines)
VarMeta = tuple["str | None", str, str]


def var_meta(name: str, describe: Describe) -> VarMeta:
    """What a variable is in ``/metrics``: the same for every UPS that has it."""
    low = name.lower()
    label = low[7:] if low.startswith("device.") and low[7:] in DEVICE_LABELS else None
    if low == "ups.status":
        return label, "", ""
    family = metric_name(name)
    if family in (STATUS_FAMILY, INFO_FAMILY):
        return label, "-", ""
    return label, family, f"# HELP {family} {escape_help(_help(describe, name))}\n# TYPE {family} gauge\n"


class _DeviceLines:
    """One UPS's lines of ``/metrics`` (``ups`` label first), rebuilt when the UPS changes.

    What does not change with a value is shared by all UPSes: each variable name's family and
    HELP line (:func:`var_meta`) and the sample text of each value (the same "230.0" or "100"
    recurs), so a UPS that changed costs a few dict lookups per variable."""

    __slots__ = ("dev", "frags", "info", "key", "label", "status")

    def __init__(self, dev: Device) -> None:
        self.dev = dev
        self.key: tuple[object, ...] = ()
        self.label = f'ups="{escape_label(dev.name)}"'
        self.frags: dict[str, tuple[str, str]] = {}  # family -> (HELP/TYPE lines, samples)
        self.status: tuple[str, str] = ("", "")  # (served status, its lines)
        self.info: tuple[tuple[str, ...], str] = ((), "")

    def rebuild(self, describe: Describe, available: bool, values: dict[str, str | None],
                meta: dict[str, VarMeta]) -> None:
        dev = self.dev
        frags: dict[str, tuple[str, str]] = {}
        info = dict.fromkeys(DEVICE_LABELS, "")
        status: str | None = None
        ups = self.label
        for var in dev.variables():
            m = meta.get(var.name)
            if m is None:
                if len(meta) >= _MEMO_MAX:
                    meta.clear()
                m = meta[var.name] = var_meta(var.name, describe)
            label, family, head = m
            if label is not None:
                info[label] = var.value
            if not available or family == "-":
                continue
            if not family:
                status = dev.served_status()
                continue
            text = values.get(var.value, "")
            if text == "":
                if len(values) >= _MEMO_MAX:
                    values.clear()
                v = nut_value(var.value)
                text = values[var.value] = None if v is None else fmt_value(v)
            if text is not None and family not in frags:
                frags[family] = (head, f"{family}{{{ups}}} {text}\n")
        if available and status is None and (dev.fsd or dev.driver_state is DriverState.WAIT):
            status = dev.served_status()
        if status is not None:
            if self.status[0] != status:
                self.status = (status, "".join(
                    f'{STATUS_FAMILY}{{{self.label},flag="{escape_label(f)}"}} {n}\n'
                    for f, n in _flags(status.split(), DEFAULT_STATUSES)))
            frags[STATUS_FAMILY] = (
                f"# HELP {STATUS_FAMILY} {escape_help(_help(describe, 'ups.status'))}\n"
                f"# TYPE {STATUS_FAMILY} gauge\n", self.status[1])
        labels = tuple(info.values())
        if self.info[0] != labels:
            self.info = (labels, f"{INFO_FAMILY}{{{self.label},{_labels_text(tuple(info.items()))}}} 1\n")
        frags[INFO_FAMILY] = (f"# HELP {INFO_FAMILY} {INFO_HELP}\n# TYPE {INFO_FAMILY} gauge\n",
                              self.info[1])
        now = time.monotonic()
        for fam in state_families(dev, 0.0, now, with_age=False, unavailable=not available):
            frags[fam.name] = (
                f"# HELP {fam.name} {escape_help(fam.help)}\n# TYPE {fam.name} gauge\n",
                "".join(f"{fam.name}{{{self.label}{',' + _labels_text(labels) if labels else ''}}} "
                        f"{fmt_value(value)}\n" for labels, value in fam.samples))
        self.frags = frags


def _flags(flags: list[str], statuses: Iterable[str]) -> list[tuple[str, int]]:
    """(flag, 1) per flag set, then (flag, 0) per flag of ``statuses`` not set."""
    seen = list(dict.fromkeys(flags))
    return [(f, 1) for f in seen] + [(f, 0) for f in dict.fromkeys(statuses) if f not in seen]


class Exposition:
    """``/metrics`` and ``/ups_metrics`` as text, from the in-memory state only.

    Each UPS's lines are formatted once per change of the UPS (its generation, FSD latch,
    driver state, availability, logins): a scrape of 1,000 UPSes that did not change joins
    strings. The data age, which changes with time, is formatted anew."""

    def __init__(self, frontend: Frontend) -> None:
        self.frontend = frontend
        self.registry = bridge_registry(frontend)
        self._lines: dict[Device, _DeviceLines] = {}
        self._values: dict[str, str | None] = {}  # NUT value text -> sample text (None: no number)
        self._meta: dict[str, VarMeta] = {}  # variable name -> var_meta()

    def render(self) -> bytes:
        """Every UPS (``ups`` label), the bridge's view of each, the bridge's own figures."""
        f = self.frontend
        devices = f.devices
        describe = f.core.descriptions.var
        maxage, now = f.upsd.maxage, time.monotonic()
        if len(self._lines) > len(devices):  # UPSes removed by a reload
            keep = set(devices)
            self._lines = {d: v for d, v in self._lines.items() if d in keep}
        heads: dict[str, str] = {}
        bodies: dict[str, list[str]] = {}
        ages: list[str] = []
        for dev in devices:
            lines = self._lines.get(dev)
            if lines is None:
                lines = self._lines[dev] = _DeviceLines(dev)
            code = dev.availability(maxage, now)
            key = (dev.generation, dev.fsd, dev.driver_state, code, dev.numlogins)
            if lines.key != key:
                lines.rebuild(describe, code is None, self._values, self._meta)
                lines.key = key
            for name, (head, text) in lines.frags.items():
                body = bodies.get(name)
                if body is None:
                    heads[name] = head
                    body = bodies[name] = []
                body.append(text)
            if dev.last_heard:
                ages.append(f"{AGE_FAMILY}{{{lines.label}}} {fmt_value(_age(dev, now))}\n")
        out = [part for name, head in heads.items() for part in (head, *bodies[name])]
        if ages:
            out.append(f"# HELP {AGE_FAMILY} {STATE_HELP[AGE_FAMILY]}\n# TYPE {AGE_FAMILY} gauge\n")
            out += ages
        return "".join(out).encode("utf-8") + generate_latest(self.registry)

    def render_one(self, dev: Device, variables: Collection[str] | None = None,
                   statuses: Iterable[str] = DEFAULT_STATUSES) -> bytes:
        """One UPS as nut_exporter's ``/ups_metrics`` shows it (no ``ups`` label)."""
        return render_families(ups_families(dev, self.frontend.core.descriptions.var,
                                            variables=variables, statuses=statuses)).encode("utf-8")

    def ups_metrics(self, query: dict[str, str]) -> tuple[int, str, bytes]:
        """``/ups_metrics`` as nut_exporter answers it: (HTTP status, content type, body).

        ``ups`` names the UPS (may be left out when the bridge has exactly one);
        ``variables`` and ``statuses`` (comma-separated) narrow the series as nut_exporter's
        do (default: every numeric variable, nut_exporter's status list). nut_exporter's
        ``server``, ``serverport``, ``username`` and ``password`` have no use here: this
        endpoint is the NUT server, and reading needs no login."""
        f = self.frontend
        name = query.get("ups", "")
        if name:
            dev = f.core.find(name)
            if dev is None:  # nut_exporter refuses to build a collector for it
                return 500, "text/plain; charset=utf-8", b"500 - InternalServer Error"
        else:
            devices = f.devices
            if len(devices) > 1:
                return 500, "text/plain; charset=utf-8", (
                    b"An error has occurred while serving metrics:\n\nMultiple UPS devices were "
                    b"found from NUT. Please add a ups=<name> query string\n")
            if not devices:
                return 200, TEXT_CONTENT_TYPE, b""
            dev = devices[0]
        code = dev.availability(f.upsd.maxage)
        if code is not None:  # nut_exporter's scrape fails where upsd refuses the data
            return 500, "text/plain; charset=utf-8", (
                f"An error has occurred while serving metrics:\n\nUPS {dev.name}: {code}\n").encode()
        variables = _split(query.get("variables"))
        statuses = _split(query.get("statuses"))
        body = self.render_one(dev, frozenset(v.lower() for v in variables) if variables else None,
                               statuses if statuses else DEFAULT_STATUSES)
        return 200, TEXT_CONTENT_TYPE, body


def _split(text: str | None) -> list[str]:
    return [w.strip() for w in (text or "").split(",") if w.strip()]
