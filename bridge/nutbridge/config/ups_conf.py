"""ups.conf: global driver settings and one section per UPS."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import voluptuous as vol

from .parser import ConfigError, Entry, read_entries

log = logging.getLogger(__name__)

# Upstream refuses names it cannot use on the wire or in socket file names.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
GLOBALS = frozenset(
    {"chroot", "driverpath", "maxstartdelay", "maxretry", "retrydelay", "pollinterval", "user",
     "group", "synchronous", "nowait", "debug_min", "statepath"}
)
_positive = vol.All(vol.Coerce(float), vol.Range(min=0.05, max=86400))
_OPTION_SCHEMAS: dict[str, vol.Schema] = {
    "pollinterval": vol.Schema(_positive),
    "pollfreq": vol.Schema(_positive),
    "maxretry": vol.Schema(vol.All(vol.Coerce(int), vol.Range(min=0))),
    "retrydelay": vol.Schema(vol.All(vol.Coerce(int), vol.Range(min=0))),
    "sdorder": vol.Schema(vol.Coerce(int)),
    "ondelay": vol.Schema(vol.Coerce(int)),
    "offdelay": vol.Schema(vol.Coerce(int)),
}


@dataclass
class UpsSection:
    name: str
    line: int
    options: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # option -> line, for errors

    @property
    def driver(self) -> str:
        return self.options.get("driver", "")

    @property
    def desc(self) -> str | None:
        return self.options.get("desc")


@dataclass
class UpsConf:
    path: Path
    globals: dict[str, str] = field(default_factory=dict)
    sections: list[UpsSection] = field(default_factory=list)

    def driver_config(self, section: UpsSection) -> dict[str, str]:
        """Options a driver sees: globals it understands, overridden per section."""
        cfg = {k: v for k, v in self.globals.items() if k in ("pollinterval", "synchronous")}
        cfg.update(section.options)
        cfg["_confdir"] = str(self.path.parent)
        return cfg


def _value(words: tuple[str, ...]) -> str | None:
    # "key = value", "key=value" or a bare flag "key"
    if len(words) == 1:
        return None
    if len(words) >= 3 and words[1] == "=":
        return " ".join(words[2:])
    if len(words) == 2 and words[1] == "=":
        return ""
    return " ".join(words[1:])


def parse_ups_conf(path: Path, entries: list[Entry] | None = None) -> UpsConf:
    entries = read_entries(path) if entries is None else entries
    conf = UpsConf(path)
    current: UpsSection | None = None
    seen: dict[str, int] = {}
    for e in entries:
        first = e.words[0]
        if first.startswith("["):
            if not first.endswith("]") or len(e.words) != 1 or len(first) < 3:
                raise e.error(path, f"bad section header {' '.join(e.words)!r}")
            name = first[1:-1]
            if not _NAME_RE.match(name):
                raise e.error(path, f"invalid UPS name [{name}]: use letters, digits, '_', '-' or '.'")
            if name.lower() in seen:
                raise e.error(path, f"UPS name [{name}] is already in use (line {seen[name.lower()]})")
            seen[name.lower()] = e.line
            current = UpsSection(name, e.line)
            conf.sections.append(current)
            continue
        key = first.lower()
        value = _value(e.words)
        if value is None:
            value = "enabled"  # a flag such as "nolock" or "synchronous"
        schema = _OPTION_SCHEMAS.get(key)
        if schema is not None:
            try:
                schema(value)
            except vol.Invalid:
                raise e.error(path, f"invalid value {value!r} for '{key}'") from None
        if current is None:
            if key not in GLOBALS:
                log.warning("%s:%d: unknown global setting '%s' ignored", path, e.line, first)
            conf.globals[key] = value
        else:
            current.options[key] = value
            current.lines[key] = e.line
    for s in conf.sections:
        missing = [k for k in ("driver", "port") if not s.options.get(k)]
        if missing:
            raise ConfigError(f"UPS [{s.name}] has no '{missing[0]}' setting", path, s.line)
    return conf


def validate_drivers(conf: UpsConf) -> None:
    """Check every section names a driver we have and that it accepts the options."""
    from ..drivers import ConfigError as DriverConfigError
    from ..drivers import driver_class

    for s in conf.sections:
        try:
            driver_class(s.driver, s.options)
        except DriverConfigError as exc:
            raise ConfigError(str(exc), conf.path, s.lines.get("driver", s.line)) from None
