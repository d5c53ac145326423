"""upssched.conf -> UpsschedConf.

The file NUT's upssched reads (``docs/man/upssched.conf.txt``): ``CMDSCRIPT``,
``PIPEFN``, ``LOCKFN`` and ``AT <notifytype> <upsname|*> <command> <args>`` lines
with the usual NUT quoting (the shared tokenizer). Upstream acts on each AT line
while reading the file and only logs a malformed one; a line it would silently
skip or misread (``AT ONBATT * START-TIMER x`` without seconds makes the daemon
answer ERR and the client retry for seven seconds) is a ConfigError with
file:line here, as the other readers of this package do: a shutdown timer that
quietly does nothing is worse than a refusal. Unknown keywords only warn.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config.parser import Entry, read_entries

log = logging.getLogger(__name__)

DEFAULT_CONFPATH = "/etc/nut"
# START-TIMER-SHARED: NUT 2.8.5; CANCEL-TIMER-MATCHED: documented in 2.8.5, which only logs
# "Invalid command" for it (its daemon knows it; later clients send it)
COMMANDS = ("START-TIMER", "START-TIMER-SHARED", "CANCEL-TIMER", "CANCEL-TIMER-MATCHED", "EXECUTE")


@dataclass(frozen=True)
class AtRule:
    """One ``AT`` line. ``ups`` is ``*`` or an upsmon "sys" name (``ups@host[:port]``)."""

    notifytype: str
    ups: str
    command: str  # one of COMMANDS
    args: tuple[str, ...]  # START-TIMER*: (name, seconds); CANCEL-TIMER*: (name[, cmd]); EXECUTE: (cmd,)
    line: int = 0

    def matches(self, notifytype: str, upsname: str) -> bool:
        # upstream: the UPS name compared exactly (or "*"), the notify type case-insensitively
        return (self.ups == "*" or self.ups == upsname) and self.notifytype.upper() == notifytype.upper()


@dataclass
class UpsschedConf:
    path: Path | None = None
    cmdscript: str = ""
    pipefn: str = ""
    lockfn: str = ""
    debug_min: int = 0  # DEBUG_MIN (2.8.5): the least debug level, as if given that many -D
    rules: list[AtRule] = field(default_factory=list)


def confpath() -> Path:
    """Where upssched.conf is: ``$NUT_CONFPATH`` as every NUT program, else /etc/nut."""
    return Path(os.environ.get("NUT_CONFPATH") or DEFAULT_CONFPATH) / "upssched.conf"


def _at_rule(path: Path, e: Entry) -> AtRule:
    w = e.words
    if len(w) < 5:
        raise e.error(path, "AT needs <notifytype> <upsname|*> <command> <argument>")
    ntype, ups, cmd, args = w[1], w[2], w[3], w[4:]
    if cmd in ("START-TIMER", "START-TIMER-SHARED"):
        if len(args) != 2:
            raise e.error(path, f"{cmd} needs <timername> <seconds>")
        name, secs = args
        if not secs.isdigit():
            raise e.error(path, f"{cmd} {name}: seconds must be a whole number >= 0, not {secs!r}")
    elif cmd in ("CANCEL-TIMER", "CANCEL-TIMER-MATCHED"):
        if len(args) > 2:
            raise e.error(path, f"{cmd} takes <timername> [<command>]")
        if len(args) == 2 and not args[1]:
            args = args[:1]  # upstream: an empty command is no command
    elif cmd == "EXECUTE":
        if len(args) != 1 or not args[0]:
            raise e.error(path, "EXECUTE needs one non-empty <command>")
    else:
        raise e.error(path, f"unknown AT command {cmd!r} ({', '.join(COMMANDS)})")
    if not args[0]:
        raise e.error(path, f"{cmd}: empty timer name")
    return AtRule(ntype, ups, cmd, tuple(args), e.line)


def parse_entries(entries: list[Entry], path: Path) -> UpsschedConf:
    conf = UpsschedConf(path=path)
    for e in entries:
        key = e.words[0]
        if key in ("CMDSCRIPT", "PIPEFN", "LOCKFN"):
            if len(e.words) != 2 or not e.words[1]:
                raise e.error(path, f"{key} needs one value")
            setattr(conf, key.lower(), e.words[1])
        elif key == "AT":
            missing = [k for k in ("CMDSCRIPT", "PIPEFN", "LOCKFN") if not getattr(conf, k.lower())]
            if missing:  # upstream: fatal, "CMDSCRIPT must be set before any ATs in the config file!"
                raise e.error(path, f"{', '.join(missing)} must be set before any AT line")
            conf.rules.append(_at_rule(path, e))
        elif key == "DEBUG_MIN":  # NUT 2.8.5
            if len(e.words) != 2 or not e.words[1].isdigit():
                raise e.error(path, "DEBUG_MIN needs a number")
            conf.debug_min = int(e.words[1])
        else:
            log.warning("%s:%d: unknown keyword %s ignored", path, e.line, key)
    return conf


def parse_upssched_conf(path: Path) -> UpsschedConf:
    """Read and check ``path``; ConfigError (file:line) on anything upstream would misread."""
    return parse_entries(read_entries(path), path)
