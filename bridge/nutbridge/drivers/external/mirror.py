"""A C driver's state as upsd keeps it, built from the driver socket's events, sans-IO.

:class:`Mirror` applies :data:`nutbridge.protocol.sock.DriverEvent` values the way the C upsd's
``sstate.c``/``state.c`` do (shared/docs/driver-socket.md §3): ``SETINFO`` creates or updates
(an update equal to the old value case-insensitively is ignored), ``SETFLAGS`` replaces the
flags (``RW``, ``STRING``, ``NUMBER``; others ignored), ``ADDENUM``/``ADDRANGE``/``SETAUX``/
``SETFLAGS`` need the variable to exist, ``DELINFO`` drops a variable with its enums and ranges,
commands are a set kept case-insensitively, ``DUMPDONE`` ends the dump, ``DATAOK``/
``DATASTALE`` say whether the driver trusts its data. Lines upsd does not recognise are counted
but do not count as "heard" (upsd's clock is not refreshed by them).

What C upsd does not have: bounds. A driver is a peer like a network client, so the number of
variables, commands, enum values and ranges is capped (:class:`Limits`; past them
:class:`Overflow`), and :class:`Budget` is a token bucket the driver module charges with the
bytes and lines a driver sends, so a flood is noticed before it costs the process its CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ...protocol import sock
from ...protocol.tokenizer import ParseError
from ...protocol.wire import MAX_VALUE


class Overflow(Exception):
    """The driver sent more state than any real UPS has (see :class:`Limits`)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Far above any real device (the largest NUT DDL dump has about 1000 variables)."""

    variables: int = 10000
    commands: int = 4096
    enums: int = 1024  # per variable
    ranges: int = 256  # per variable


@dataclass(slots=True)
class Var:
    name: str
    value: str
    rw: bool = False
    string: bool = False
    number: bool = False
    aux: int = 0
    enums: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class Changes:
    """What one batch of events did. Names are lower case (lookups are case-insensitive)."""

    vars: set[str] = field(default_factory=set)
    cmds: set[str] = field(default_factory=set)
    heard: int = 0  # recognised lines: the driver is alive
    ignored: int = 0  # lines upsd does not act on (unknown, too few words, PID, OK Goodbye)
    parse_errors: int = 0
    dumpdone: bool = False  # a DUMPDONE was in the batch
    tracking: list[sock.Tracking] = field(default_factory=list)


class Mirror:
    """The variables, commands and flags of one driver connection."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self.vars: dict[str, Var] = {}
        self.cmds: dict[str, str] = {}
        self.dumpdone = False
        self.data_ok = False

    def reset(self) -> None:
        """A new connection: nothing known until its dump (which says DATAOK or DATASTALE)."""
        self.vars.clear()
        self.cmds.clear()
        self.dumpdone = False
        self.data_ok = False

    @property
    def fresh(self) -> bool:
        """Dump complete and the driver says its data is good."""
        return self.dumpdone and self.data_ok

    def apply(self, events: Iterable[sock.DriverEvent | ParseError]) -> Changes:
        """Apply events in order; raises :class:`Overflow` past the limits (the events before
        it are applied)."""
        ch = Changes()
        for ev in events:
            if isinstance(ev, ParseError):
                ch.parse_errors += 1
            elif isinstance(ev, sock.Unknown | sock.Pid | sock.Goodbye):
                ch.ignored += 1
            else:
                ch.heard += 1
                self._apply(ev, ch)
        return ch

    def _apply(self, ev: sock.DriverEvent, ch: Changes) -> None:
        if isinstance(ev, sock.SetInfo):
            self._setinfo(ev.var, ev.value[:MAX_VALUE], ch)
            return
        if isinstance(ev, sock.AddCmd | sock.DelCmd):
            key = ev.cmd.lower()
            if isinstance(ev, sock.AddCmd) and key not in self.cmds:
                if len(self.cmds) >= self.limits.commands:
                    raise Overflow(f"more than {self.limits.commands} commands")
                self.cmds[key] = ev.cmd
                ch.cmds.add(key)
            elif isinstance(ev, sock.DelCmd) and self.cmds.pop(key, None) is not None:
                ch.cmds.add(key)
            return
        if isinstance(ev, sock.DumpDone):
            self.dumpdone = ch.dumpdone = True
        elif isinstance(ev, sock.DataOk):
            self.data_ok = True
        elif isinstance(ev, sock.DataStale):
            self.data_ok = False
        elif isinstance(ev, sock.Tracking):
            ch.tracking.append(ev)
        elif isinstance(ev, sock.Pong):
            pass
        else:
            self._var_event(ev, ch)

    def _var_event(self, ev: sock.DriverEvent, ch: Changes) -> None:
        name = getattr(ev, "var", "")
        key = name.lower()
        var = self.vars.get(key)
        if var is None:
            return  # upsd: the variable must exist (DELINFO of a missing one is a no-op too)
        if isinstance(ev, sock.DelInfo):
            del self.vars[key]
        elif isinstance(ev, sock.SetFlags):
            words = {f.upper() for f in ev.flags}
            flags = ("RW" in words, "STRING" in words, "NUMBER" in words)
            if flags == (var.rw, var.string, var.number):
                return
            var.rw, var.string, var.number = flags
        elif isinstance(ev, sock.SetAux):
            if ev.aux == var.aux:
                return
            var.aux = ev.aux
        elif isinstance(ev, sock.AddEnum):
            value = ev.value[:MAX_VALUE]
            if value in var.enums:
                return
            if len(var.enums) >= self.limits.enums:
                raise Overflow(f"more than {self.limits.enums} enum values for {var.name}")
            var.enums.append(value)
        elif isinstance(ev, sock.DelEnum):
            if ev.value[:MAX_VALUE] not in var.enums:
                return
            var.enums.remove(ev.value[:MAX_VALUE])
        elif isinstance(ev, sock.AddRange):
            # as the device state store: a range sharing its min or its max with one already
            # present is a duplicate
            if any(ev.min == lo or ev.max == hi for lo, hi in var.ranges):
                return
            if len(var.ranges) >= self.limits.ranges:
                raise Overflow(f"more than {self.limits.ranges} ranges for {var.name}")
            var.ranges.append((ev.min, ev.max))
        elif isinstance(ev, sock.DelRange):
            if (ev.min, ev.max) not in var.ranges:
                return
            var.ranges.remove((ev.min, ev.max))
        else:  # pragma: no cover - every variable event is handled above
            return
        ch.vars.add(key)

    def _setinfo(self, name: str, value: str, ch: Changes) -> None:
        key = name.lower()
        var = self.vars.get(key)
        if var is None:
            if len(self.vars) >= self.limits.variables:
                raise Overflow(f"more than {self.limits.variables} variables")
            self.vars[key] = Var(name, value)
        elif var.value.lower() == value.lower():
            return  # upsd compares with strcasecmp: a change of case only is no change
        else:
            var.value = value
        ch.vars.add(key)


class Budget:
    """A token bucket: ``burst`` units at most, refilled at ``rate`` per second.

    ``take(n, now)`` is False once a peer has sent more than ``burst`` units beyond what the
    rate allows since it started; the caller treats that as a flood."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def take(self, n: float, now: float) -> bool:
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= n
        return self._tokens >= 0
