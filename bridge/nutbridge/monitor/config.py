"""upsmon.conf -> UpsmonConf.

Same file format and keywords as upstream upsmon (NUT 2.8.x, ``docs/man/upsmon.conf.txt``).
Where upstream silently guesses on a malformed value (``atoi("abc")`` = 0, a
mistyped ``primray`` = secondary, a non-numeric power value = "monitoring
only") we raise ConfigError with file:line instead: a shutdown daemon that
quietly runs with a config different from the one written is worse than one
that refuses to start. Unknown keywords only warn, as upstream, so an
/etc/nut/upsmon.conf written for a newer NUT still loads.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config.parser import BOOL_WORDS, ConfigError, Entry, read_entries
from .notify import NotifyFlag, lookup_type, parse_flags

log = logging.getLogger(__name__)

DEFAULT_PORT = 3493


@dataclass(frozen=True)
class MonitorSpec:
    sys: str  # "ups@host[:port]" exactly as written on the MONITOR line
    ups: str
    host: str
    port: int
    power_value: int
    user: str
    password: str
    primary: bool
    line: int = 0


@dataclass
class UpsmonConf:
    path: Path | None = None
    monitors: list[MonitorSpec] = field(default_factory=list)
    minsupplies: int = 1
    pollfreq: int = 5
    pollfreqalert: int = 5
    deadtime: int = 15
    hostsync: int = 15
    finaldelay: int = 5
    rbwarntime: int = 43200
    nocommwarntime: int = 300
    oblbduration: int = 0  # <= 0: OB+LB is critical at once
    offduration: int = 30  # < 0: OFF never critical; 0: at once
    overduration: int = -1  # < 0: OVER never critical; only matters while not communicating
    alarmcritical: bool = True
    shutdowncmd: str | None = None  # a shell command line (run with /bin/sh -c)
    shutdowncmd_argv: tuple[str, ...] = ()  # the words as written
    notifycmd: str | None = None  # a shell command line; the message is appended quoted
    notifycmd_argv: tuple[str, ...] = ()
    powerdownflag: str | None = None
    notifymsg: dict[str, str] = field(default_factory=dict)  # TYPE -> template
    notifyflag: dict[str, NotifyFlag] = field(default_factory=dict)  # TYPE -> flags as written
    # TLS: kept for the runner; upstream's NSS-only settings (CERTIDENT, CERTHOST) are ignored
    certpath: str | None = None
    certfile: str | None = None
    certverify: bool = False
    forcessl: bool = False
    shutdownexit: int = 0  # HEAD: 0 exit right after SHUTDOWNCMD, -1 never, N seconds later
    run_as_user: str | None = None
    debug_min: int | None = None
    pollfail_log_throttle_max: int = -1

    @property
    def total_power(self) -> int:
        return sum(m.power_value for m in self.monitors)

    def check(self) -> None:
        """Refuse a config that can never keep the host up (upstream: "insufficient power configured")."""
        if self.total_power < self.minsupplies:
            raise ConfigError(
                f"insufficient power configured: the power values of the MONITOR lines add up to "
                f"{self.total_power}, less than MINSUPPLIES {self.minsupplies}", self.path)


def split_sys(sys: str) -> tuple[str, str, int]:
    """``ups[@host[:port]]`` -> (ups, host, port); IPv6 literals need brackets: ``ups@[::1]:3493``.

    ValueError with a reason on malformed input (rules of upstream's upscli_splitname).
    """
    ups, at, hostport = sys.partition("@")
    if not ups:
        raise ValueError("empty UPS name")
    if not at:
        if ":" in ups:
            raise ValueError("port specified, but not a hostname")
        return ups, "localhost", DEFAULT_PORT
    if not hostport:
        raise ValueError("empty hostname after '@'")
    if "@" in hostport:
        raise ValueError("more than one '@'")
    if hostport.startswith("["):
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket:
            raise ValueError("missing closing bracket in [address]")
        if not host:
            raise ValueError("empty hostname")
        if not tail:
            return ups, host, DEFAULT_PORT
        if not tail.startswith(":"):
            raise ValueError(f"unexpected {tail!r} after [{host}]")
        port_text = tail[1:]
    else:
        if hostport.count(":") > 1:
            raise ValueError("IPv6 addresses must be written in brackets, e.g. ups@[::1]:3493")
        host, colon, port_text = hostport.partition(":")
        if not host:
            raise ValueError("empty hostname")
        if not colon:
            return ups, host, DEFAULT_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port {port_text!r}")
    return ups, host, int(port_text)


_PRIMARY_WORDS = {"primary": True, "master": True, "secondary": False, "slave": False}

# keyword -> (attribute, minimum); None: any integer
_INT_KEYWORDS: dict[str, tuple[str, int | None]] = {
    "MINSUPPLIES": ("minsupplies", 0),
    "POLLFREQ": ("pollfreq", 1),
    "POLLFREQALERT": ("pollfreqalert", 1),
    "DEADTIME": ("deadtime", 0),
    "HOSTSYNC": ("hostsync", 0),
    "FINALDELAY": ("finaldelay", 0),
    "RBWARNTIME": ("rbwarntime", 0),
    "NOCOMMWARNTIME": ("nocommwarntime", 0),
    "OBLBDURATION": ("oblbduration", None),
    "OFFDURATION": ("offduration", None),
    "OVERDURATION": ("overduration", None),
}

# Accepted for compatibility; the bridge does not act on them (debug log only).
_IGNORED = frozenset({"CERTIDENT", "CERTHOST"})


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conf = UpsmonConf(path)

    def error(self, e: Entry, message: str) -> ConfigError:
        return e.error(self.path, message)

    def args(self, e: Entry, n: int, usage: str) -> tuple[str, ...]:
        args = e.words[1:]
        if len(args) < n:
            raise self.error(e, f"{e.words[0]} expects {usage}")
        if len(args) > n:
            log.warning("%s:%d: %s: extra words %s ignored", self.path, e.line, e.words[0],
                        " ".join(args[n:]))
        return args[:n]

    def integer(self, e: Entry, text: str, minimum: int | None, what: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise self.error(e, f"{what} expects a whole number, not {text!r}") from None
        if minimum is not None and value < minimum:
            raise self.error(e, f"{what} must be at least {minimum}, not {value}")
        return value

    def boolean(self, e: Entry, text: str) -> bool:
        try:
            return BOOL_WORDS[text.lower()]
        except KeyError:
            raise self.error(e, f"{e.words[0]} expects 0 or 1, not {text!r}") from None

    def monitor(self, e: Entry) -> None:
        args = e.words[1:]
        if len(args) == 4:
            raise self.error(e, "MONITOR without a username is not supported (old 5-word syntax); "
                                "use: MONITOR ups@host powervalue user password primary|secondary")
        if len(args) < 5:
            raise self.error(e, "MONITOR expects: ups[@host[:port]] powervalue user password "
                                "primary|secondary")
        sys, pv, user, password, kind = self.args(e, 5, "")
        try:
            ups, host, port = split_sys(sys)
        except ValueError as exc:
            raise self.error(e, f"MONITOR: bad UPS {sys!r}: {exc} "
                                "(expected upsname[@hostname[:port]])") from None
        power = self.integer(e, pv, 0, "MONITOR power value")
        try:
            primary = _PRIMARY_WORDS[kind.lower()]
        except KeyError:
            # upstream treats any unknown word as secondary; a typo must not demote a primary
            raise self.error(e, f"MONITOR: type must be primary or secondary (or master/slave), "
                                f"not {kind!r}") from None
        if any(m.sys == sys for m in self.conf.monitors):
            log.warning("%s:%d: ignoring duplicate MONITOR %s", self.path, e.line, sys)
            return
        self.conf.monitors.append(MonitorSpec(sys, ups, host, port, power, user, password, primary, e.line))

    def command(self, e: Entry) -> tuple[str, tuple[str, ...]]:
        words = e.words[1:]
        if not words:
            raise self.error(e, f"{e.words[0]} expects a command")
        # 2.8.0 takes one (quoted) word as a shell command line; HEAD also accepts more words,
        # each one argument: quote those so /bin/sh sees them as written.
        line = words[0] if len(words) == 1 else " ".join([words[0], *map(shlex.quote, words[1:])])
        return line, tuple(words)

    def notifymsg(self, e: Entry) -> None:
        ntype, msg = self.args(e, 2, "a notify type and a message")
        known = lookup_type(ntype)
        if known is None:
            log.warning("%s:%d: '%s' is not a valid notify event name; line ignored",
                        self.path, e.line, ntype)
            return
        self.conf.notifymsg[known.name] = msg

    def notifyflag(self, e: Entry) -> None:
        ntype, text = self.args(e, 2, "a notify type and flags (SYSLOG+WALL+EXEC or IGNORE)")
        try:
            flags = parse_flags(text)
        except ValueError as exc:
            raise self.error(e, f"NOTIFYFLAG: invalid flag {str(exc)!r} in {text!r} "
                                "(use SYSLOG, WALL, EXEC joined with '+', or IGNORE)") from None
        known = lookup_type(ntype)
        if known is None:
            log.warning("%s:%d: invalid notify type [%s]; line ignored", self.path, e.line, ntype)
            return
        if NotifyFlag.IGNORE in flags and flags != NotifyFlag.IGNORE:
            log.warning("%s:%d: NOTIFYFLAG %s: IGNORE together with other flags means IGNORE",
                        self.path, e.line, ntype)
        self.conf.notifyflag[known.name] = flags

    def shutdownexit(self, e: Entry, text: str) -> int:
        word = text.lower()
        if word in ("on", "yes", "true"):
            return 0
        if word in ("off", "no", "false"):
            return -1
        try:
            return int(word)
        except ValueError:
            log.warning("%s:%d: SHUTDOWNEXIT value not recognized, using 'yes'", self.path, e.line)
            return 0

    def entry(self, e: Entry) -> None:
        c = self.conf
        key = e.words[0]
        if key.upper() == "DEBUG_MIN":  # the only case-insensitive keyword upstream
            (text,) = self.args(e, 1, "a number")
            c.debug_min = self.integer(e, text, 0, "DEBUG_MIN")
            log.debug("%s:%d: DEBUG_MIN is not used by the bridge (use -D)", self.path, e.line)
            return
        if key in _INT_KEYWORDS:
            attr, minimum = _INT_KEYWORDS[key]
            (text,) = self.args(e, 1, "a number")
            setattr(c, attr, self.integer(e, text, minimum, key))
            return
        handlers: dict[str, Callable[[Entry], None]] = {
            "MONITOR": self.monitor,
            "NOTIFYMSG": self.notifymsg,
            "NOTIFYFLAG": self.notifyflag,
        }
        if key in handlers:
            handlers[key](e)
            return
        if key == "SHUTDOWNCMD":
            c.shutdowncmd, c.shutdowncmd_argv = self.command(e)
        elif key == "NOTIFYCMD":
            c.notifycmd, c.notifycmd_argv = self.command(e)
        elif key in ("POWERDOWNFLAG", "RUN_AS_USER", "CERTPATH", "CERTFILE"):
            (value,) = self.args(e, 1, "one value")
            setattr(c, key.lower(), value)
            if key == "RUN_AS_USER":
                log.debug("%s:%d: RUN_AS_USER is not used (the bridge does not switch users)",
                          self.path, e.line)
        elif key in ("CERTVERIFY", "FORCESSL", "ALARMCRITICAL"):
            (value,) = self.args(e, 1, "0 or 1")
            setattr(c, key.lower(), self.boolean(e, value))
        elif key == "SHUTDOWNEXIT":
            (value,) = self.args(e, 1, "yes, no or a number of seconds")
            c.shutdownexit = self.shutdownexit(e, value)
        elif key == "POLLFAIL_LOG_THROTTLE_MAX":
            (value,) = self.args(e, 1, "a number")
            c.pollfail_log_throttle_max = self.integer(e, value, None, key)
        elif key in _IGNORED:
            log.debug("%s:%d: %s (NSS certificate database) is not used by the bridge; ignored",
                      self.path, e.line, key)
        else:
            hint = " (keywords are upper case)" if key.upper() in _ALL_KEYWORDS else ""
            log.warning("%s:%d: unknown upsmon.conf keyword '%s' ignored%s", self.path, e.line, key, hint)


_ALL_KEYWORDS = frozenset({
    *_INT_KEYWORDS, *_IGNORED, "MONITOR", "NOTIFYMSG", "NOTIFYFLAG", "SHUTDOWNCMD", "NOTIFYCMD",
    "POWERDOWNFLAG", "RUN_AS_USER", "CERTPATH", "CERTFILE", "CERTVERIFY", "FORCESSL", "ALARMCRITICAL",
    "SHUTDOWNEXIT", "POLLFAIL_LOG_THROTTLE_MAX", "DEBUG_MIN",
})


def parse_upsmon_conf(path: Path, entries: list[Entry] | None = None, *, check: bool = True) -> UpsmonConf:
    """Read upsmon.conf. ``check`` also refuses MONITOR power values below MINSUPPLIES (as upstream
    does at start-up); pass False to only read the file (e.g. to show or edit it)."""
    entries = read_entries(path) if entries is None else entries
    parser = _Parser(path)
    for e in entries:
        parser.entry(e)
    if check:
        parser.conf.check()
    return parser.conf
