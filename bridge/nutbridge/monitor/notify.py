"""upsmon notify types: stock messages, default flags, NOTIFYMSG/NOTIFYFLAG handling.

The stock texts are upstream's (NUT's ``clients/upsmon.h``, HEAD), because scripts
behind NOTIFYCMD and people grepping syslog match on them. ``%s`` is the MONITOR
"sys" string (``ups@host[:port]``); ALARM and OTHER take a second ``%s`` (the
``ups.alarm`` text / the unknown status tokens).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class NotifyFlag(enum.Flag):
    """NOTIFYFLAG words. IGNORE wins over everything else, as upstream."""

    IGNORE = 1
    SYSLOG = 2
    WALL = 4
    EXEC = 8


DEFAULT_FLAGS = NotifyFlag.SYSLOG | NotifyFlag.WALL
NO_FLAGS = NotifyFlag(0)


@dataclass(frozen=True)
class NotifyType:
    name: str
    message: str  # upstream's stock message
    since: str  # first NUT release that knows the type (for docs and warnings)


_TYPES = (
    # name, stock message, since
    ("ONLINE", "UPS %s on line power", "1.0"),
    ("ONBATT", "UPS %s on battery", "1.0"),
    ("LOWBATT", "UPS %s battery is low", "1.0"),
    ("FSD", "UPS %s: forced shutdown in progress", "1.0"),
    ("COMMOK", "Communications with UPS %s established", "1.0"),
    ("COMMBAD", "Communications with UPS %s lost", "1.0"),
    ("SHUTDOWN", "Auto logout and shutdown proceeding", "1.0"),
    ("SHUTDOWN_HOSTSYNC",
     "Shutdown initiated; primary system is waiting for secondaries to log out or time out", "2.8.5"),
    ("REPLBATT", "UPS %s battery needs to be replaced", "1.0"),
    ("NOCOMM", "UPS %s is unavailable", "1.0"),
    ("NOPARENT", "upsmon parent process died - shutdown impossible", "1.0"),
    ("CAL", "UPS %s: calibration in progress", "2.8.0"),
    ("NOTCAL", "UPS %s: calibration finished", "2.8.2"),
    ("OFF", "UPS %s: administratively OFF or asleep", "2.8.1"),
    ("NOTOFF", "UPS %s: no longer administratively OFF or asleep", "2.8.1"),
    ("BYPASS", "UPS %s: on bypass (powered, not protecting)", "2.8.1"),
    ("NOTBYPASS", "UPS %s: no longer on bypass", "2.8.1"),
    ("ECO", "UPS %s: in ECO mode (as defined by vendor)", "2.8.3"),
    ("NOTECO", "UPS %s: no longer in ECO mode", "2.8.3"),
    ("ALARM", "UPS %s: one or more active alarms: [%s]", "2.8.3"),
    ("NOTALARM", "UPS %s is no longer in an alarm state (no active alarms)", "2.8.3"),
    ("OVER", "UPS %s: overloaded", "2.8.3"),
    ("NOTOVER", "UPS %s: no longer overloaded", "2.8.3"),
    ("TRIM", "UPS %s: trimming incoming voltage", "2.8.3"),
    ("NOTTRIM", "UPS %s: no longer trimming incoming voltage", "2.8.3"),
    ("BOOST", "UPS %s: boosting incoming voltage", "2.8.3"),
    ("NOTBOOST", "UPS %s: no longer boosting incoming voltage", "2.8.3"),
    ("OTHER", "UPS %s: has at least one unclassified status token: [%s]", "2.8.3"),
    ("NOTOTHER", "UPS %s has no unclassified status tokens anymore", "2.8.3"),
    ("SUSPEND_STARTING", "OS is entering sleep/suspend/hibernate mode", "2.8.3"),
    ("SUSPEND_FINISHED", "OS just finished sleep/suspend/hibernate mode, de-activating obsolete UPS "
     "readings to avoid an unfortunate shutdown", "2.8.3"),
    ("SUSPEND_TIMEJUMP_UNEXPECTED", "Unexpected clock change by %s, treating as wake up from sleep",
     "2.8.6"),  # after 2.8.5 (HEAD)
)

NOTIFY_TYPES: dict[str, NotifyType] = {name: NotifyType(name, msg, since) for name, msg, since in _TYPES}


def lookup_type(name: str) -> NotifyType | None:
    """Notify type by name, case-insensitively (upstream uses strcasecmp here)."""
    return NOTIFY_TYPES.get(name.upper())


def parse_flags(text: str) -> NotifyFlag:
    """``SYSLOG+WALL+EXEC`` / ``IGNORE`` -> NotifyFlag; ValueError names the bad word.

    Words are upper case only, as upstream (it compares with strcmp).
    """
    flags = NO_FLAGS
    for word in text.split("+"):
        try:
            flags |= NotifyFlag[word]
        except KeyError:
            raise ValueError(word) from None
    return flags


def effective_flags(flags: NotifyFlag) -> NotifyFlag:
    """What to actually do: nothing if IGNORE is among the flags."""
    return NO_FLAGS if NotifyFlag.IGNORE in flags else flags


def flags_for(ntype: str, overrides: Mapping[str, NotifyFlag]) -> NotifyFlag:
    """Effective flags of a notify type given the NOTIFYFLAG settings."""
    return effective_flags(overrides.get(ntype.upper(), DEFAULT_FLAGS))


def format_message(template: str, *args: str) -> str:
    """Fill ``%s`` placeholders in order, ``%%`` -> ``%``; anything else is literal.

    Upstream hands NOTIFYMSG to printf; a user template with more ``%s`` than
    values (or ``%d``) must not crash us, so missing values become "".
    """
    out: list[str] = []
    values = iter(args)
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "%" and i + 1 < len(template):
            nxt = template[i + 1]
            if nxt == "s":
                out.append(next(values, ""))
                i += 2
                continue
            if nxt == "%":
                out.append("%")
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def message_for(ntype: str, ups: str, extra: str = "", overrides: Mapping[str, str] | None = None) -> str:
    """The text of one notification, honouring NOTIFYMSG overrides.

    SHUTDOWN and the other host-wide types have no UPS; their templates have no %s.
    """
    key = ntype.upper()
    template = (overrides or {}).get(key)
    if template is None:
        known = NOTIFY_TYPES.get(key)
        template = known.message if known else f"{key} %s"
    return format_message(template, ups, extra)


class NotifySettings(Protocol):
    """The NOTIFYMSG / NOTIFYFLAG settings (a :class:`.config.UpsmonConf`)."""

    @property
    def notifymsg(self) -> Mapping[str, str]: ...

    @property
    def notifyflag(self) -> Mapping[str, NotifyFlag]: ...


class Notification(Protocol):
    """One notification (a :class:`.machine.Notify`)."""

    @property
    def type(self) -> str: ...

    @property
    def ups(self) -> str: ...

    @property
    def extra(self) -> str: ...


def format_notify(conf: NotifySettings, n: Notification) -> tuple[str, set[str]]:
    """(message, names of the flags to act on) for one notification under ``conf``.

    The flag set is empty when the type is IGNOREd; its names are SYSLOG, WALL, EXEC.
    """
    flags = flags_for(n.type, conf.notifyflag)
    names = {f.name for f in NotifyFlag if f in flags and f.name is not None}
    return message_for(n.type, n.ups, n.extra, conf.notifymsg), names
