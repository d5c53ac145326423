"""ups.conf: global driver settings and one section per UPS.

Two globals of the bridge's own choose how a section's driver runs (C drivers refuse unknown
keys inside a section but ignore unknown globals, so the same file still works with upsdrvctl):
``nutbridge_hosted = <ups> [<ups>...]`` (or ``*``) runs NUT's C driver for those sections even
where the bridge has its own, ``nutbridge_attach = <ups> [<ups>...]`` (or ``*``) connects to
drivers that upsdrvctl or systemd started. A name given in one list wins over ``*`` in the
other. Sections whose driver the bridge does not have run hosted anyway. The choice reaches the
driver as ``_mode`` (drivers/external/__init__.py has the whole contract).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import voluptuous as vol

from .parser import ConfigError, Entry, read_entries

log = logging.getLogger(__name__)

HOSTED = "nutbridge_hosted"
ATTACH = "nutbridge_attach"
# Upstream refuses names it cannot use on the wire or in socket file names.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
GLOBALS = frozenset(
    {"chroot", "driverpath", "maxstartdelay", "maxretry", "retrydelay", "pollinterval", "user",
     "group", "synchronous", "nowait", "debug_min", "statepath", HOSTED, ATTACH}
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
    flags: set[str] = field(default_factory=set)  # options written bare ("nolock")

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
    #: lower-case UPS name -> "hosted" | "attach" (nutbridge_hosted / nutbridge_attach)
    modes: dict[str, str] = field(default_factory=dict)
    #: the mode of ``*`` (every section not named in the other list), if any
    default_mode: str | None = None
    #: upsd.conf's MAXAGE and STATEPATH, for drivers that talk to C drivers; the composition
    #: root sets them, else they are read from upsd.conf beside ups.conf when first needed
    maxage: int | None = None
    statepath: str | None = None
    _upsd_read: bool = field(default=False, repr=False)

    def mode_of(self, section: UpsSection) -> str | None:
        """"hosted" or "attach" as the nutbridge_* globals choose, else None."""
        return self.modes.get(section.name.lower(), self.default_mode)

    def driver_config(self, section: UpsSection, mode: str | None = None) -> dict[str, str]:
        """Options a driver sees: globals it understands, overridden per section; plus the
        loader's own ``_`` keys (never published). ``mode`` forces ``_mode`` (``nutbridge upsd``
        attaches to every driver); else the nutbridge_* globals choose, else a driver the bridge
        does not have runs hosted."""
        cfg = {k: v for k, v in self.globals.items() if k in ("pollinterval", "synchronous")}
        cfg.update(section.options)
        cfg["_confdir"] = str(self.path.parent)
        chosen = mode or self.mode_of(section)
        if chosen is None:
            from ..drivers import is_native

            if is_native(section.driver):
                return cfg  # the bridge's own driver: nothing more to say
            # else hosted, without naming the mode: the registry's error for a name NUT has no
            # binary for either is then "unknown driver"
        else:
            cfg["_mode"] = chosen
        if chosen == "native":
            return cfg
        if self.globals.get("driverpath"):
            cfg["_driverpath"] = self.globals["driverpath"]
        if section.flags:
            cfg["_flags"] = " ".join(sorted(section.flags))
        self._read_upsd_conf()
        if self.maxage is not None:
            cfg["_maxage"] = str(self.maxage)
        if self.statepath:
            cfg["_statepath"] = self.statepath
        return cfg

    def _read_upsd_conf(self) -> None:
        """MAXAGE and STATEPATH from upsd.conf beside ups.conf, unless already known (quietly:
        upsd.conf is parsed and reported elsewhere; a broken one leaves the defaults)."""
        if self._upsd_read or self.maxage is not None or self.statepath is not None:
            return
        self._upsd_read = True
        try:
            entries = read_entries(self.path.parent / "upsd.conf")
        except ConfigError:
            return
        for e in entries:
            if e.words[0] == "MAXAGE" and len(e.words) == 2 and e.words[1].isdigit():
                self.maxage = max(1, int(e.words[1]))
            elif e.words[0] == "STATEPATH" and len(e.words) == 2:
                self.statepath = e.words[1]


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
    choices: dict[str, list[tuple[str, int]]] = {HOSTED: [], ATTACH: []}
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
        if current is not None and key in choices:
            raise e.error(path, f"{key} is a global setting: put it before the first [section]")
        if current is None and key in choices:
            if not value:
                raise e.error(path, f"{key} expects UPS names (or *)")
            choices[key] += [(word, e.line) for word in value.split()]
            conf.globals[key] = " ".join(w for w, _ in choices[key])
            continue
        if value is None:
            value = "enabled"  # a flag such as "nolock" or "synchronous"
            if current is not None:
                current.flags.add(key)
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
    _choose_modes(conf, choices)
    return conf


def _choose_modes(conf: UpsConf, choices: dict[str, list[tuple[str, int]]]) -> None:
    """Check nutbridge_hosted / nutbridge_attach and record the modes they choose."""
    names = {s.name.lower() for s in conf.sections}
    stars: dict[str, int] = {}
    for key, mode in ((HOSTED, "hosted"), (ATTACH, "attach")):
        for word, line in choices[key]:
            if word == "*":
                stars[mode] = line
                continue
            if word.lower() not in names:
                raise ConfigError(f"{key}: there is no UPS [{word}] in this file", conf.path, line)
            other = conf.modes.get(word.lower())
            if other is not None and other != mode:
                raise ConfigError(f"{key}: UPS [{word}] is also in {HOSTED}: it is either hosted "
                                  "or attached to", conf.path, line)
            conf.modes[word.lower()] = mode
    if len(stars) == 2:
        raise ConfigError(f"{ATTACH} = * and {HOSTED} = * contradict each other", conf.path,
                          stars["attach"])
    conf.default_mode = next(iter(stars), None)


def validate_drivers(conf: UpsConf) -> None:
    """Check every section names a driver we have and that it accepts the options."""
    from ..drivers import ConfigError as DriverConfigError
    from ..drivers import driver_class

    for s in conf.sections:
        try:
            driver_class(s.driver, conf.driver_config(s))
        except DriverConfigError as exc:
            raise ConfigError(str(exc), conf.path, s.lines.get("driver", s.line)) from None
