"""The driver socket protocol (NUT's ``docs/sock-protocol.txt``), sans-IO, both ends.

A NUT driver is the *server* of a Unix stream socket ``<STATEPATH>/<driver>-<ups>``; upsd (or
upsdrvctl) is its client. Both directions are text lines split by the same tokenizer as the
network protocol (:mod:`.tokenizer`), so quoting, escapes, the 32-word and 512-byte limits and
the treatment of garbage are the same. Observed behaviour of NUT 2.8.0 … 2.8.5
(``shared/docs/driver-socket.md``):

* **driver → upsd** (:data:`DriverEvent`): the state as ``SETINFO``/``DELINFO``/``ADDENUM``/
  ``DELENUM``/``ADDRANGE``/``DELRANGE``/``SETAUX``/``SETFLAGS``/``ADDCMD``/``DELCMD`` lines,
  ``DATAOK``/``DATASTALE``, ``DUMPDONE`` after a dump, ``PONG``, ``TRACKING <id> <code>``; 2.8.3+
  drivers also answer ``PID <n>`` and ``OK Goodbye``. upsd never answers these. A line that is
  not recognised or has too few words is :class:`Unknown` and does *not* count as "heard from
  the driver" (upsd ignores it without refreshing its clock).
* **upsd → driver** (:data:`ServerEvent`): ``DUMPALL`` once after connecting, ``PING`` after
  MAXAGE/3 of silence, ``INSTCMD <cmd> [<param>] [TRACKING <id>]`` and ``SET <var> "<value>"
  [TRACKING <id>]``. For upsdrvctl, 2.8.1+/2.8.3+ drivers add ``NOBROADCAST``,
  ``BROADCAST [n]``, ``GETPID``, ``DUMPSTATUS``, ``DUMPVALUE <var>`` and ``LOGOUT``. A C driver
  accepts ``INSTCMD`` with 2 to 5 words of the shapes above and ``SET`` with 3 words, 4 (the
  last ignored), 5 whose 4th is ``TRACKING``, or 6 and more (observed on 2.8.0 and 2.8.5: an
  untracked SET of the first two arguments, even with a ``TRACKING`` among the rest);
  anything else is :class:`Malformed`.
* Command words are matched case-insensitively on both sides.
* A parse error (an unescaped ``#`` inside quotes) drops the rest of that ``read()``: both C
  ends read at most 512 bytes at a time, so the readers here cut their input into 512-byte
  reads and drop the rest of the one that failed.

Writers encode values as ``pconf_encode`` does (backslash before ``\\``, ``"`` and ``#``), always
quoted, clipped to the 255 characters a C driver keeps (``ST_MAX_VALUE_LEN``); names, numbers
and flags are sent bare. Nothing here raises on input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .tokenizer import Line, ParseError, Tokenizer
from .wire import MAX_VALUE, encode

#: what one C end reads per readiness event (SMALLBUF): a parse error drops the rest of it
READ_SIZE = 512

# ---- driver -> upsd ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetInfo:
    var: str
    value: str


@dataclass(frozen=True, slots=True)
class DelInfo:
    var: str


@dataclass(frozen=True, slots=True)
class AddEnum:
    var: str
    value: str


@dataclass(frozen=True, slots=True)
class DelEnum:
    var: str
    value: str


@dataclass(frozen=True, slots=True)
class AddRange:
    var: str
    min: int
    max: int


@dataclass(frozen=True, slots=True)
class DelRange:
    var: str
    min: int
    max: int


@dataclass(frozen=True, slots=True)
class SetAux:
    var: str
    aux: int


@dataclass(frozen=True, slots=True)
class SetFlags:
    """Replaces the flags; upsd keeps only ``RW``, ``STRING`` and ``NUMBER``."""

    var: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AddCmd:
    cmd: str


@dataclass(frozen=True, slots=True)
class DelCmd:
    cmd: str


@dataclass(frozen=True, slots=True)
class DumpDone:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


@dataclass(frozen=True, slots=True)
class DataOk:
    pass


@dataclass(frozen=True, slots=True)
class DataStale:
    pass


@dataclass(frozen=True, slots=True)
class Tracking:
    """The result of a tracked INSTCMD/SET: upstream's STAT_* code (0 handled, 1 unknown,
    2 invalid, 3 failed, 4 conversion failed)."""

    id: str
    code: int


@dataclass(frozen=True, slots=True)
class Pid:
    pid: int


@dataclass(frozen=True, slots=True)
class Goodbye:
    pass


@dataclass(frozen=True, slots=True)
class Unknown:
    """A line the reader does not act on (unknown command, or too few words)."""

    words: tuple[str, ...]


DriverEvent = (SetInfo | DelInfo | AddEnum | DelEnum | AddRange | DelRange | SetAux | SetFlags
               | AddCmd | DelCmd | DumpDone | Pong | DataOk | DataStale | Tracking | Pid | Goodbye
               | Unknown)


def atoi(text: str) -> int:
    """C's ``atoi``/``strtol(…, 10)``: optional blanks and sign, leading digits, else 0."""
    m = _LEADING_INT(text)
    return int(m.group(1)) if m else 0


_LEADING_INT = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)").match


def _driver_event(words: tuple[str, ...]) -> DriverEvent:
    n = len(words)
    cmd = words[0].upper() if words else ""
    if cmd in _NO_ARGS:
        return _NO_ARGS[cmd]
    if cmd == "OK" and n >= 2 and words[1].upper() == "GOODBYE":
        return Goodbye()
    if n >= 2:
        a = words[1]
        if cmd == "ADDCMD":
            return AddCmd(a)
        if cmd == "DELCMD":
            return DelCmd(a)
        if cmd == "DELINFO":
            return DelInfo(a)
        if cmd == "PID":
            return Pid(atoi(a))
    if n >= 3:
        a, b = words[1], words[2]
        if cmd == "SETINFO":
            return SetInfo(a, b)
        if cmd == "ADDENUM":
            return AddEnum(a, b)
        if cmd == "DELENUM":
            return DelEnum(a, b)
        if cmd == "SETAUX":
            return SetAux(a, atoi(b))
        if cmd == "SETFLAGS":
            return SetFlags(a, words[2:])
        if cmd == "TRACKING":
            return Tracking(a, atoi(b))
    if n >= 4:
        if cmd == "ADDRANGE":
            return AddRange(words[1], atoi(words[2]), atoi(words[3]))
        if cmd == "DELRANGE":
            return DelRange(words[1], atoi(words[2]), atoi(words[3]))
    return Unknown(words)


_NO_ARGS: dict[str, DriverEvent] = {
    "DUMPDONE": DumpDone(), "PONG": Pong(), "DATAOK": DataOk(), "DATASTALE": DataStale()}


# ---- upsd -> driver ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DumpAll:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class InstCmd:
    cmd: str
    param: str | None = None
    tracking: str | None = None


@dataclass(frozen=True, slots=True)
class SetVar:
    var: str
    value: str
    tracking: str | None = None


@dataclass(frozen=True, slots=True)
class NoBroadcast:
    pass


@dataclass(frozen=True, slots=True)
class Broadcast:
    """``BROADCAST [n]``: broadcasts back on unless ``n`` is given and <= 0."""

    on: bool = True


@dataclass(frozen=True, slots=True)
class GetPid:
    pass


@dataclass(frozen=True, slots=True)
class DumpValue:
    """``DUMPVALUE <var>``; ``DUMPSTATUS`` is ``DumpValue("ups.status")``."""

    var: str


@dataclass(frozen=True, slots=True)
class Logout:
    pass


@dataclass(frozen=True, slots=True)
class Malformed:
    """An INSTCMD or SET of a shape a C driver refuses ("Malformed INSTCMD request")."""

    words: tuple[str, ...]


ServerEvent = (DumpAll | Ping | InstCmd | SetVar | NoBroadcast | Broadcast | GetPid | DumpValue
               | Logout | Malformed | Unknown)


def _server_event(words: tuple[str, ...]) -> ServerEvent:
    n = len(words)
    cmd = words[0].upper() if words else ""
    if cmd == "DUMPALL":
        return DumpAll()
    if cmd == "PING":
        return Ping()
    if cmd == "NOBROADCAST":
        return NoBroadcast()
    if cmd == "BROADCAST":
        return Broadcast(n < 2 or atoi(words[1]) > 0)
    if cmd == "GETPID":
        return GetPid()
    if cmd == "DUMPSTATUS":
        return DumpValue("ups.status")
    if cmd == "DUMPVALUE" and n >= 2:
        return DumpValue(words[1])
    if cmd == "LOGOUT":
        return Logout()
    if cmd == "INSTCMD":
        if n == 2:
            return InstCmd(words[1])
        if n == 3:
            return InstCmd(words[1], words[2])
        if n == 4 and words[2].upper() == "TRACKING":
            return InstCmd(words[1], None, words[3])
        if n == 5 and words[3].upper() == "TRACKING":
            return InstCmd(words[1], words[2], words[4])
        return Malformed(words)
    if cmd == "SET":
        if n in (3, 4):
            return SetVar(words[1], words[2])
        if n == 5 and words[3].upper() == "TRACKING":
            return SetVar(words[1], words[2], words[4])
        if n >= 6:
            return SetVar(words[1], words[2])
        return Malformed(words)
    return Unknown(words)


# ---- readers ---------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("_tok",)

    def __init__(self) -> None:
        self._tok = Tokenizer()

    def _lines(self, data: bytes) -> list[Line | ParseError]:
        out: list[Line | ParseError] = []
        for start in range(0, len(data), READ_SIZE):
            for ev in self._tok.feed(data[start:start + READ_SIZE]):
                out.append(ev)
                if isinstance(ev, ParseError):
                    self._tok.reset()  # the rest of this read is dropped
                    break
        return out


class DriverReader(_Reader):
    """upsd's end: bytes a driver sent -> :data:`DriverEvent` (and :class:`ParseError`)."""

    __slots__ = ()

    def feed(self, data: bytes) -> list[DriverEvent | ParseError]:
        return [ev if isinstance(ev, ParseError) else _driver_event(ev.words)
                for ev in self._lines(data) if not isinstance(ev, Line) or ev.words]


class ServerReader(_Reader):
    """The driver's end: bytes upsd (or upsdrvctl) sent -> :data:`ServerEvent`."""

    __slots__ = ()

    def feed(self, data: bytes) -> list[ServerEvent | ParseError]:
        return [ev if isinstance(ev, ParseError) else _server_event(ev.words)
                for ev in self._lines(data) if not isinstance(ev, Line) or ev.words]


# ---- writers -------------------------------------------------------------------------------


def _value(text: str) -> str:
    # the driver keeps at most 255 characters, printable ASCII (what a C driver can store)
    text = text[:MAX_VALUE]
    return '"' + encode(text) + '"'


def _line(*words: str) -> bytes:
    return (" ".join(words) + "\n").encode("ascii", "replace")


def setinfo(var: str, value: str) -> bytes:
    return _line("SETINFO", var, _value(value))


def delinfo(var: str) -> bytes:
    return _line("DELINFO", var)


def addenum(var: str, value: str) -> bytes:
    return _line("ADDENUM", var, _value(value))


def delenum(var: str, value: str) -> bytes:
    return _line("DELENUM", var, _value(value))


def addrange(var: str, lo: int, hi: int) -> bytes:
    return _line("ADDRANGE", var, str(lo), str(hi))


def delrange(var: str, lo: int, hi: int) -> bytes:
    return _line("DELRANGE", var, str(lo), str(hi))


def setaux(var: str, aux: int) -> bytes:
    return _line("SETAUX", var, str(aux))


def setflags(var: str, flags: Iterable[str]) -> bytes:
    return _line("SETFLAGS", var, *flags)


def addcmd(cmd: str) -> bytes:
    return _line("ADDCMD", cmd)


def delcmd(cmd: str) -> bytes:
    return _line("DELCMD", cmd)


def tracking(tid: str, code: int) -> bytes:
    return _line("TRACKING", tid, str(code))


def pid(n: int) -> bytes:
    return _line("PID", str(n))


DUMPDONE = b"DUMPDONE\n"
PONG = b"PONG\n"
DATAOK = b"DATAOK\n"
DATASTALE = b"DATASTALE\n"
GOODBYE = b"OK Goodbye\n"

DUMPALL = b"DUMPALL\n"
PING = b"PING\n"
NOBROADCAST = b"NOBROADCAST\n"
GETPID = b"GETPID\n"
LOGOUT = b"LOGOUT\n"


def instcmd(cmd: str, param: str | None = None, tid: str | None = None) -> bytes:
    """What upsd forwards. The parameter is quoted (a C upsd sends it encoded but bare, which
    splits a parameter with a space into words a driver refuses; a C driver's tokenizer takes
    the quoted form as one word)."""
    words = ["INSTCMD", cmd]
    if param is not None:
        words.append(_value(param))
    if tid is not None:
        words += ["TRACKING", tid]
    return _line(*words)


def setvar(var: str, value: str, tid: str | None = None) -> bytes:
    words = ["SET", var, _value(value)]
    if tid is not None:
        words += ["TRACKING", tid]
    return _line(*words)


def broadcast(on: bool = True) -> bytes:
    return _line("BROADCAST", "1" if on else "0")


def dumpvalue(var: str) -> bytes:
    return _line("DUMPVALUE", var)


@dataclass
class VarDump:
    """One variable as a driver dumps it (the driver's side of the state)."""

    name: str
    value: str
    flags: tuple[str, ...] = ()
    aux: int = 0
    enums: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)

    def lines(self) -> bytes:
        """``SETINFO``, its ``ADDENUM``s and ``ADDRANGE``s, ``SETAUX`` if non-zero, ``SETFLAGS``
        if any flag: the order of a C driver's dump."""
        out = [setinfo(self.name, self.value)]
        out += [addenum(self.name, e) for e in self.enums]
        out += [addrange(self.name, lo, hi) for lo, hi in self.ranges]
        if self.aux:
            out.append(setaux(self.name, self.aux))
        if self.flags:
            out.append(setflags(self.name, self.flags))
        return b"".join(out)


def dump(variables: Iterable[VarDump], commands: Iterable[str], data_ok: bool) -> bytes:
    """The answer to ``DUMPALL``: ``DATASTALE`` first when stale, the variables sorted by name
    case-insensitively (a C driver's tree order), the commands likewise, ``DATAOK`` when not
    stale, ``DUMPDONE``."""
    out = [] if data_ok else [DATASTALE]
    out += [v.lines() for v in sorted(variables, key=lambda v: v.name.lower())]
    out += [addcmd(c) for c in sorted(commands, key=str.lower)]
    if data_ok:
        out.append(DATAOK)
    out.append(DUMPDONE)
    return b"".join(out)


__all__ = [
    "DATAOK", "DATASTALE", "DUMPALL", "DUMPDONE", "GETPID", "GOODBYE", "LOGOUT", "NOBROADCAST",
    "PING", "PONG", "READ_SIZE",
    "AddCmd", "AddEnum", "AddRange", "Broadcast", "DataOk", "DataStale", "DelCmd", "DelEnum",
    "DelInfo", "DelRange", "DriverEvent", "DriverReader", "DumpAll", "DumpDone", "DumpValue",
    "GetPid", "Goodbye", "InstCmd", "Logout", "Malformed", "NoBroadcast", "ParseError", "Pid",
    "Ping", "Pong", "ServerEvent", "ServerReader", "SetAux", "SetFlags", "SetInfo", "SetVar",
    "Tracking", "Unknown", "VarDump",
    "addcmd", "addenum", "addrange", "atoi", "broadcast", "delcmd", "delenum", "delinfo",
    "delrange", "dump", "dumpvalue", "instcmd", "pid", "setaux", "setflags", "setinfo",
    "setvar", "tracking",
]
