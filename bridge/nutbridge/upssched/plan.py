"""The sans-IO part of upssched: what a notification asks for, and the timer table.

* :func:`actions_for` — the actions a (NOTIFYTYPE, UPSNAME) pair selects, in file order;
* :class:`Timers` -- the daemon's timer table with NUT 2.8.5's semantics, checked
  against the real programs in tests/test_upssched.py: a START of a name already
  running adds a second timer (both fire); START-SHARED joins the first timer of
  that name instead; a CANCEL removes every timer of that name (2.8.0: the oldest
  only) and runs its command only when it removed none; a timer runs CMDSCRIPT with
  the UPSNAME/NOTIFYTYPE/NOTIFYMSG of the calls that started it;
* the wire format of the PIPEFN socket, NUT's own (``START "name" "secs" "type"
  "ups" "msg"``, ``CANCEL "name" "cmd" ...``, answer ``OK`` or ``ERR UNKNOWN``;
  2.8.5's ``LIST-TIMERS`` for ``upssched -l``, answered by a ``BEGIN LIST TIMERS``
  ... ``END LIST TIMERS`` block and ``OK``), so either program's client can talk to
  either daemon.

Clocks are passed in: ``now`` is a monotonic time (when timers fire) and ``wall``
the matching wall-clock time (for the state file a restarted daemon reads back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import UpsschedConf


@dataclass(frozen=True)
class Start:
    name: str
    seconds: int
    shared: bool = False  # START-TIMER-SHARED (2.8.5): one timer per name, callers merged into it


@dataclass(frozen=True)
class Cancel:
    name: str
    command: str | None = None  # run (CMDSCRIPT command) when no timer was cancelled
    matched: bool = False  # CANCEL-TIMER-MATCHED: only timers started for this UPSNAME and NOTIFYTYPE


@dataclass(frozen=True)
class Execute:
    command: str


@dataclass(frozen=True)
class ListTimers:
    """``upssched -l`` (NUT 2.8.5): the daemon's pending timers."""


Action = Start | Cancel | Execute


@dataclass(frozen=True)
class Caller:
    """Who asked: upsmon's NOTIFYTYPE, UPSNAME and message (NUT 2.8.5 sends them along)."""

    notifytype: str = ""
    upsname: str = ""
    message: str = ""


def actions_for(conf: UpsschedConf, notifytype: str, upsname: str) -> list[Action]:
    """The actions of every AT line matching the notification, in file order."""
    out: list[Action] = []
    for rule in conf.rules:
        if not rule.matches(notifytype, upsname):
            continue
        cmd, args = rule.command, rule.args
        if cmd in ("START-TIMER", "START-TIMER-SHARED"):
            out.append(Start(args[0], int(args[1]), shared=cmd == "START-TIMER-SHARED"))
        elif cmd in ("CANCEL-TIMER", "CANCEL-TIMER-MATCHED"):
            out.append(Cancel(args[0], args[1] if len(args) > 1 else None,
                              matched=cmd == "CANCEL-TIMER-MATCHED"))
        else:
            out.append(Execute(args[0]))
    return out


def needs_daemon(action: Start | Cancel) -> bool:
    """A CANCEL without a command has nothing to do when no daemon runs (upstream)."""
    return not (isinstance(action, Cancel) and action.command is None)


# ---- wire format --------------------------------------------------------------------------

def _quote(word: str) -> str:
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode(action: Start | Cancel | ListTimers, caller: Caller) -> bytes:
    """One request line as NUT 2.8.5's client writes it. The caller's three values ride
    along; a 2.8.0 daemon ignores them, and an empty command means none to both."""
    if isinstance(action, Start):
        words = ["START-SHARED" if action.shared else "START", action.name, str(action.seconds)]
    elif isinstance(action, ListTimers):
        words = ["LIST-TIMERS", "", ""]
    else:
        words = ["CANCEL-MATCHED" if action.matched else "CANCEL", action.name, action.command or ""]
    words += [caller.notifytype, caller.upsname, caller.message]
    return (" ".join([words[0], *map(_quote, words[1:])]) + "\n").encode("utf-8", "replace")


def decode(words: tuple[str, ...]) -> tuple[Start | Cancel | ListTimers, Caller] | None:
    """A request line's words -> (action, caller); None for what upstream answers
    ``ERR UNKNOWN``. Takes 2.8.0's short forms (``START name secs``) too.

    A START with a bad or negative number of seconds is answered OK and ignored, as
    upstream does ("bogus offset for timer"): :class:`Start` with seconds -1.
    """
    caller = Caller(*words[3:6]) if len(words) >= 6 else Caller()
    if words[:1] == ("LIST-TIMERS",):
        return ListTimers(), caller
    if len(words) >= 2 and words[0] in ("CANCEL", "CANCEL-MATCHED"):
        cmd = words[2] if len(words) > 2 and words[2] else None
        return Cancel(words[1], cmd, matched=words[0] == "CANCEL-MATCHED"), caller
    if len(words) >= 3 and words[0] in ("START", "START-SHARED"):
        text = words[2].strip()
        digits = text[1:] if text[:1] in "+-" else text
        secs = int(text) if digits.isdigit() else -1
        return Start(words[1], secs if secs >= 0 else -1, shared=words[0] == "START-SHARED"), caller
    return None


LIST_BEGIN, LIST_END, LIST_OK = b"BEGIN LIST TIMERS\n", b"END LIST TIMERS\n", b"OK\n"


def parse_listing(data: bytes) -> str | None:
    """The timer lines of a complete LIST-TIMERS answer; None for anything else (a
    2.8.0 daemon's ``ERR UNKNOWN``, an answer cut short)."""
    if not data.startswith(LIST_BEGIN) or not data.endswith(LIST_END + LIST_OK):
        return None
    return data[len(LIST_BEGIN):-len(LIST_END + LIST_OK)].decode("utf-8", "replace")


# ---- the timer table ----------------------------------------------------------------------

@dataclass
class Timer:
    name: str
    due: float  # monotonic
    wall: float  # the same instant on the wall clock (persisted)
    notifytypes: list[str] = field(default_factory=list)  # of the callers that started it
    upsnames: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def add_caller(self, c: Caller) -> None:
        for values, v in ((self.notifytypes, c.notifytype), (self.upsnames, c.upsname),
                          (self.messages, c.message)):
            if v and v not in values:
                values.append(v)

    def env(self) -> dict[str, str]:
        """What CMDSCRIPT gets when the timer fires (2.8.5: the starting calls' values,
        comma-separated; the messages separated by ".<TAB>")."""
        out = {}
        for key, values, sep in (("UPSNAME", self.upsnames, ","), ("NOTIFYTYPE", self.notifytypes, ","),
                                 ("NOTIFYMSG", self.messages, ".\t")):
            if values:
                out[key] = sep.join(values)
        return out


class Timers:
    """The daemon's timers, oldest first."""

    def __init__(self) -> None:
        self.timers: list[Timer] = []

    def __len__(self) -> int:
        return len(self.timers)

    def start(self, action: Start, caller: Caller, now: float, wall: float) -> bool:
        """Add a timer (even when one of that name runs, as upstream), or with ``shared``
        join the first one of that name; False if ignored (negative seconds)."""
        if action.seconds < 0:
            return False
        if action.shared:
            for t in self.timers:
                if t.name == action.name:
                    t.add_caller(caller)
                    return True
        t = Timer(action.name, now + action.seconds, wall + action.seconds)
        t.add_caller(caller)
        self.timers.append(t)
        return True

    def cancel(self, action: Cancel, caller: Caller) -> str | None:
        """Remove every timer called ``name`` (2.8.5; 2.8.0 removed the oldest only) --
        with ``matched``, only those the caller's NOTIFYTYPE and UPSNAME started. The
        command to run when none was removed."""
        def hit(t: Timer) -> bool:
            if t.name != action.name:
                return False
            if not action.matched or not (caller.notifytype or caller.upsname):
                return True
            return ((not caller.notifytype or caller.notifytype in t.notifytypes)
                    and (not caller.upsname or caller.upsname in t.upsnames))
        keep = [t for t in self.timers if not hit(t)]
        if len(keep) < len(self.timers):
            self.timers = keep
            return None
        return action.command

    def expire(self, now: float) -> list[Timer]:
        """Remove and return the timers due at ``now``, in start order."""
        due = [t for t in self.timers if t.due <= now]
        if due:
            self.timers = [t for t in self.timers if t.due > now]
        return due

    def listing(self, wall: float) -> bytes:
        """The LIST-TIMERS answer as NUT 2.8.5's daemon sends it: per timer, in start
        order, ``name, due, seconds left, types, UPS names, messages`` separated by TABs
        (each list joined as in :meth:`Timer.env`, ``""`` when empty). 2.8.5 stamps a
        timer with whole seconds and prints the difference with ``%g``: so do we, so
        both daemons list a timer started in the same second alike."""
        lines = []
        for t in self.timers:
            due = int(t.wall)
            env = t.env()
            values = [env.get(k) or '""' for k in ("NOTIFYTYPE", "UPSNAME", "NOTIFYMSG")]
            lines.append("\t".join([t.name, str(due), format(float(due - int(wall)), "g"), *values]) + "\n")
        return LIST_BEGIN + "".join(lines).encode("utf-8", "replace") + LIST_END + LIST_OK

    def next_due(self) -> float | None:
        return min((t.due for t in self.timers), default=None)

    def snapshot(self) -> list[dict[str, Any]]:
        """The timers with wall-clock due times, for the state file (JSON)."""
        return [{"name": t.name, "wall": t.wall, "notifytypes": t.notifytypes,
                 "upsnames": t.upsnames, "messages": t.messages} for t in self.timers]

    def restore(self, saved: list[dict[str, Any]], now: float, wall: float, grace: float) -> int:
        """Take over a dead daemon's timers; how many. One already overdue fires ``grace``
        seconds from now, not at once: the call that started this daemon may cancel it."""
        n = 0
        for item in saved:
            try:
                name, due_wall = str(item["name"]), float(item["wall"])
                lists = [[str(v) for v in item.get(k, [])] for k in ("notifytypes", "upsnames", "messages")]
            except (KeyError, TypeError, ValueError, AttributeError):
                continue  # a damaged entry is skipped, the others kept
            left = due_wall - wall
            if left <= 0:
                left = grace
            self.timers.append(Timer(name, now + left, wall + left, *lists))
            n += 1
        return n
