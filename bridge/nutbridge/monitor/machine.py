"""The upsmon decision logic, sans-IO: poll results and the time go in, actions come out.

The runner owns sockets, clocks and processes. Per poll round it calls
``polled()`` once per MONITOR line (``status=None`` when the poll failed), then
``recalc()``, executes the returned actions, and sleeps ``sleep_interval()``.

Rules (upstream upsmon semantics, ``nut-protocol.md`` §3.3/3.4, NUT 2.8.0 and HEAD):

* Notifications. COMMBAD on the first failed poll, NOCOMM every NOCOMMWARNTIME
  while the UPS stays unreachable, COMMOK when it answers again (not at first
  contact). ONBATT when OB appears; ONLINE when OL appears, except the first OL
  after start. LOWBATT, FSD, CAL, OFF, BYPASS, ECO, ALARM, OVER, TRIM, BOOST when
  their token appears, NOT<x> when it goes away (``_FLAGS``). REPLBATT at most
  every RBWARNTIME. OTHER lists the unknown tokens whenever that set changes,
  NOTOTHER when it becomes empty. An empty status counts as a failed poll.
* A UPS is *on battery* if the last status holding OB or OL held OB (OB wins
  over OL). It is *low* if its last status holds LB, or it is on battery and
  has not answered for more than DEADTIME ("dead while OB = OB+LB").
* A UPS is *critical* at a recalc if
  1. its last status holds FSD (or the runner set FSD on it), or
  2. it has reported OFF for more than OFFDURATION (0: at once, < 0: never), or
  3. it has not answered for more than DEADTIME and was last seen in a state
     upstream calls volatile: CAL, BYPASS, OFF (OFFDURATION >= 0), ALARM
     (ALARMCRITICAL), OVER for OVERDURATION or longer (OVERDURATION >= 0), or
  4. it is on battery and low, not calibrating (CAL), has been so at recalcs
     for at least OBLBDURATION (when > 0), and we are its primary - or, as a
     secondary, no poll has shown it outside OB+LB(-CAL) for more than
     HOSTSYNC (the primary should have set FSD by then: give up on it).
* Shutdown: as soon as the power values of the non-critical UPSes add up to
  less than MINSUPPLIES. A UPS never heard from counts as fine; power value
  0 never counts. BeginShutdown is emitted at most once.

Deliberate differences from upstream:

* Rule 3 is HEAD's (2.8.0 has only the OB case), but HEAD applies it at the
  first failed poll; we wait DEADTIME like the OB case, so a network blip or a
  upsd restart never shuts hosts down (DEADTIME is the documented tolerance).
* Rule 2 (HEAD >= 2.8.1) is kept: a UPS that says its output is off cannot be
  feeding us. OFFDURATION -1 turns it off.
* OB together with OL counts as OB; upstream lets the token order decide.
* The secondary's HOSTSYNC timer starts at the last poll outside OB+LB;
  upstream's token-by-token bookkeeping can start it one poll later.
* NOCOMM for a UPS never reached counts from our start, not from 1970 (upstream
  sends it at the second failed poll already).
* LB reported after a DEADTIME-forced LB is notified (LOWBATT); upstream stays
  silent because it cannot tell the forced flag from a reported one.
* ECO comes from the ECO token only (HEAD also reads ups.mode.buzzwords).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Protocol

from .config import MonitorSpec, UpsmonConf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notify:
    type: str
    ups: str  # the MONITOR "sys" string; "" for SHUTDOWN
    extra: str = ""  # second %s of ALARM (ups.alarm) and OTHER (the unknown tokens)


@dataclass(frozen=True)
class BeginShutdown:
    reason: str


Action = Notify | BeginShutdown


@dataclass(frozen=True)
class UpsView:
    tokens: tuple[str, ...]  # last good ups.status, split, as received
    comm_ok: bool  # the last poll succeeded
    last_ok: float | None  # time of the last good poll
    on_battery: bool
    low: bool  # LB, or forced by DEADTIME while on battery
    fsd: bool
    critical: bool  # as of the last recalc()
    primary: bool = False
    power_value: int = 0
    online: bool = False
    why: str = ""  # why it is critical


class _NotifyFn(Protocol):
    def __call__(self, ntype: str, extra: str = "") -> None: ...


@dataclass(frozen=True)
class _Flag:
    token: str
    on: str  # notify type when the token appears
    off: str | None  # ... and when it goes away
    alert: bool  # poll at POLLFREQALERT while it is set (upstream bumps the rate for these)


# One row per status flag with a notify pair; OL/OB, RB and unknown tokens are handled apart.
_FLAGS: tuple[_Flag, ...] = (
    _Flag("LB", "LOWBATT", None, False),
    _Flag("FSD", "FSD", None, False),
    _Flag("CAL", "CAL", "NOTCAL", True),
    _Flag("OFF", "OFF", "NOTOFF", True),
    _Flag("BYPASS", "BYPASS", "NOTBYPASS", True),
    _Flag("ECO", "ECO", "NOTECO", False),
    _Flag("ALARM", "ALARM", "NOTALARM", True),
    _Flag("OVER", "OVER", "NOTOVER", True),
    _Flag("TRIM", "TRIM", "NOTTRIM", False),
    _Flag("BOOST", "BOOST", "NOTBOOST", False),
)
_BY_TOKEN = {f.token: f for f in _FLAGS}
_ALERT = frozenset(f.token for f in _FLAGS if f.alert)
# Standard tokens upsmon knows and does not react to (HEAD); WAIT is not one of them upstream.
_QUIET = frozenset({"OL", "OB", "RB", "HB", "CHRG", "DISCHRG"})


@dataclass
class _Ups:
    spec: MonitorSpec
    last_noncrit: float  # last good poll outside OB+LB(-CAL); start time until then
    tokens: tuple[str, ...] = ()
    flags: set[str] = field(default_factory=set)  # tokens of _FLAGS currently set
    comm: int = -1  # -1: never polled, 0: lost, 1: ok (COMMOK only on 0 -> 1)
    line: int = -1  # -1 until the first OL/OB: the first OL is not notified
    on_battery: bool = False
    online: bool = False
    last_ok: float | None = None
    last_rbwarn: float | None = None
    last_ncwarn: float | None = None
    fsd_notified: bool = False
    alarm: str | None = None
    others: tuple[str, ...] = ()
    off_since: float | None = None
    over_since: float | None = None
    oblb_since: float | None = None
    dead_low: bool = False  # LB forced by DEADTIME until the next good poll
    critical: bool = False
    why: str = ""

    @property
    def low(self) -> bool:
        return "LB" in self.flags or self.dead_low

    @property
    def oblb(self) -> bool:
        """On battery, low, not calibrating: what OBLBDURATION and HOSTSYNC look at."""
        return self.on_battery and self.low and "CAL" not in self.flags


class Machine:
    def __init__(self, conf: UpsmonConf, now: float) -> None:
        conf.check()  # ConfigError: power values below MINSUPPLIES would shut down at once
        self.conf = conf
        self.started = now
        self.shutting_down = False
        self._ups: dict[str, _Ups] = {m.sys: _Ups(m, last_noncrit=now) for m in conf.monitors}

    # -- inputs ---------------------------------------------------------------------------------

    def polled(self, sys: str, status: str | None, now: float, alarm: str | None = None) -> list[Action]:
        """One poll result. ``status``: the ups.status value, None if the poll failed.

        ``alarm``: the ups.alarm value if the runner read it (for the ALARM message).
        """
        u = self._ups[sys]
        tokens = tuple(status.split()) if status else ()
        if not tokens:
            return self._gone(u, now)
        acts: list[Action] = []

        def notify(ntype: str, extra: str = "") -> None:
            acts.append(Notify(ntype, sys, extra))

        u.last_ok = now
        u.dead_low = False
        if u.comm == 0:
            notify("COMMOK")
        u.comm = 1

        present = {t.upper() for t in tokens}
        for f in _FLAGS:  # flags that went away first, as upstream
            if f.token in u.flags and f.token not in present:
                u.flags.discard(f.token)
                if f.off:
                    notify(f.off)
        if "FSD" not in present:
            u.fsd_notified = False
        if "OFF" not in present:
            u.off_since = None
        if "OVER" not in present:
            u.over_since = None
        if "ALARM" not in present:
            u.alarm = None

        if "OB" in present:  # OB wins over a contradictory OL
            if not u.on_battery:
                notify("ONBATT")
            u.on_battery, u.online, u.line = True, False, 0
        elif "OL" in present:
            if not u.online and u.line != -1:
                notify("ONLINE")
            u.on_battery, u.online, u.line = False, True, 1

        unknown: list[str] = []
        for word in tokens:
            token = word.upper()
            flag = _BY_TOKEN.get(token)
            if flag is not None:
                self._flag_seen(u, flag, now, alarm, notify)
            elif token == "RB":
                if u.last_rbwarn is None or now - u.last_rbwarn > self.conf.rbwarntime:
                    notify("REPLBATT")
                    u.last_rbwarn = now
            elif token not in _QUIET and word not in unknown:
                unknown.append(word)
        if set(unknown) != set(u.others):
            if unknown:
                notify("OTHER", " ".join(unknown))
            else:
                notify("NOTOTHER")
        u.others = tuple(unknown)

        u.tokens = tokens
        if not u.oblb:
            u.last_noncrit = now
        return acts

    def _flag_seen(self, u: _Ups, f: _Flag, now: float, alarm: str | None,
                   notify: _NotifyFn) -> None:
        if f.token == "ALARM":
            text = alarm if alarm is not None else "n/a"
            # HEAD notifies again when the ups.alarm text changes
            if "ALARM" not in u.flags or (alarm is not None and alarm != u.alarm):
                notify("ALARM", text)
            if alarm is not None:
                u.alarm = alarm
        elif f.token not in u.flags:
            if f.token == "FSD":
                if not u.fsd_notified:
                    notify("FSD")
                u.fsd_notified = True
            else:
                notify(f.on)
            if f.token == "OFF":
                u.off_since = now
            elif f.token == "OVER":
                u.over_since = now
        u.flags.add(f.token)

    def _gone(self, u: _Ups, now: float) -> list[Action]:
        if u.comm != 0:
            u.comm = 0
            return [Notify("COMMBAD", u.spec.sys)]
        # a UPS never reached counts from our start (upstream: from 1970, so NOCOMM at once)
        since = u.last_ok if u.last_ok is not None else self.started
        wait = self.conf.nocommwarntime
        if now - since >= wait and (u.last_ncwarn is None or now - u.last_ncwarn > wait):
            u.last_ncwarn = now
            return [Notify("NOCOMM", u.spec.sys)]
        return []

    def fsd_set(self, sys: str) -> list[Action]:
        """The runner set FSD on that UPS (we are its primary). Returns the FSD notify (as HEAD)
        unless it was already notified; callers written for ``-> None`` may ignore it."""
        u = self._ups[sys]
        u.flags.add("FSD")
        if u.fsd_notified:
            return []
        u.fsd_notified = True
        return [Notify("FSD", sys)]

    def recalc(self, now: float) -> list[Action]:
        """After each poll round: DEADTIME, OBLBDURATION, HOSTSYNC, then the MINSUPPLIES sum."""
        healthy = 0
        for u in self._ups.values():
            stale = u.last_ok is not None and now - u.last_ok > self.conf.deadtime
            if stale and u.on_battery and not u.dead_low:
                log.info("UPS %s: no answer for more than DEADTIME while on battery: "
                         "assuming low battery", u.spec.sys)
                u.dead_low = True
            if u.on_battery and u.low:
                if u.oblb_since is None and "CAL" not in u.flags:
                    u.oblb_since = now
            else:
                u.oblb_since = None
            u.why = self._critical(u, now, stale)
            u.critical = bool(u.why)
            if not u.critical:
                healthy += u.spec.power_value
        if healthy >= self.conf.minsupplies or self.shutting_down:
            return []
        self.shutting_down = True
        crit = "; ".join(f"{u.spec.sys}: {u.why}" for u in self._ups.values() if u.critical)
        reason = (f"too few UPS(es) are healthy: power value {healthy} < MINSUPPLIES "
                  f"{self.conf.minsupplies}" + (f" ({crit})" if crit else ""))
        log.warning("%s, initiating forced shutdown", reason)
        return [BeginShutdown(reason)]

    def _critical(self, u: _Ups, now: float, stale: bool) -> str:
        """Why the UPS is critical now, "" if it is not."""
        c = self.conf
        if "FSD" in u.flags:
            return "forced shutdown (FSD)"
        if "OFF" in u.flags and c.offduration >= 0 and u.off_since is not None and (
                c.offduration == 0 or now - u.off_since > c.offduration):
            return "administratively OFF for longer than OFFDURATION"
        if stale:
            dead = "not answering for longer than DEADTIME"
            if "CAL" in u.flags:
                return f"{dead}, last seen calibrating"
            if "BYPASS" in u.flags:
                return f"{dead}, last seen on bypass"
            if "OFF" in u.flags and c.offduration >= 0:
                return f"{dead}, last seen OFF"
            if "ALARM" in u.flags and c.alarmcritical:
                return f"{dead}, last seen with an alarm (ALARMCRITICAL)"
            if ("OVER" in u.flags and c.overduration >= 0 and u.over_since is not None
                    and now - u.over_since >= c.overduration):
                return f"{dead}, last seen overloaded (OVERDURATION)"
        if not u.oblb:
            return ""
        if c.oblbduration > 0 and (u.oblb_since is None or now - u.oblb_since < c.oblbduration):
            return ""
        what = f"{'not answering for longer than DEADTIME, last seen ' if u.dead_low else ''}" \
               "on battery with a low battery"
        if u.spec.primary:
            return what
        if now - u.last_noncrit > c.hostsync:
            log.warning("Giving up on the primary for UPS [%s] after %d sec", u.spec.sys,
                        now - u.last_noncrit)
            return f"{what}, and no FSD from the primary within HOSTSYNC"
        return ""

    def force(self, reason: str = "user") -> list[Action]:
        """``upsmon -c fsd`` / SIGUSR1: shut down now, whatever the UPSes say."""
        if self.shutting_down:
            return []
        self.shutting_down = True
        return [BeginShutdown(reason)]

    def reconfigure(self, conf: UpsmonConf, now: float) -> None:
        """Reload (SIGHUP): keep what we know about UPSes still listed, as upstream."""
        conf.check()
        old = self._ups
        self.conf = conf
        self._ups = {}
        for m in conf.monitors:
            u = old.get(m.sys) or _Ups(m, last_noncrit=now)
            u.spec = m
            self._ups[m.sys] = u

    # -- outputs --------------------------------------------------------------------------------

    def sleep_interval(self) -> float:
        """POLLFREQ; POLLFREQALERT while any UPS is on battery (or OFF, BYPASS, ALARM, CAL, OVER);
        shorter while OBLBDURATION runs, so its end is seen in time (as HEAD)."""
        c = self.conf
        if c.oblbduration > 0 and any(u.oblb for u in self._ups.values()):
            return float(math.gcd(c.pollfreqalert, c.oblbduration))
        if any(u.on_battery or u.flags & _ALERT for u in self._ups.values()):
            return float(c.pollfreqalert)
        return float(c.pollfreq)

    def view(self) -> dict[str, UpsView]:
        return {
            sys: UpsView(
                tokens=u.tokens, comm_ok=u.comm == 1, last_ok=u.last_ok, on_battery=u.on_battery,
                low=u.low, fsd="FSD" in u.flags, critical=u.critical, primary=u.spec.primary,
                power_value=u.spec.power_value, online=u.online, why=u.why,
            )
            for sys, u in self._ups.items()
        }
