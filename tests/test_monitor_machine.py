"""The sans-IO upsmon state machine (nutbridge.monitor.machine).

Table tests pin each notification and each shutdown rule to a concrete poll
sequence; the hypothesis tests compare the machine with a reference predicate
written separately from the rule text, over random poll sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nutbridge.config.parser import ConfigError
from nutbridge.monitor.config import MonitorSpec, UpsmonConf
from nutbridge.monitor.machine import Action, BeginShutdown, Machine, Notify

T0 = 1000.0


def spec(sys: str = "ups@h", pv: int = 1, primary: bool = True) -> MonitorSpec:
    return MonitorSpec(sys, sys.split("@")[0], "h", 3493, pv, "u", "p", primary)


def make_conf(*specs: MonitorSpec, **kw: int | bool) -> UpsmonConf:
    return UpsmonConf(monitors=list(specs) or [spec()], **kw)  # type: ignore[arg-type]


class Sim:
    """Drives a Machine like the runner does: poll every UPS, then recalc."""

    def __init__(self, conf: UpsmonConf, t: float = T0) -> None:
        self.conf = conf
        self.t = t
        self.m = Machine(conf, t)

    def round(self, *statuses: str | None, dt: float = 5.0, alarm: str | None = None) -> list[Action]:
        """One poll round ``dt`` seconds after the last; one status per MONITOR line."""
        self.t += dt
        acts: list[Action] = []
        for m, status in zip(self.conf.monitors, statuses, strict=True):
            acts += self.m.polled(m.sys, status, self.t, alarm)
        return acts + self.m.recalc(self.t)

    def notifies(self, *statuses: str | None, dt: float = 5.0, alarm: str | None = None) -> list[str]:
        return [a.type for a in self.round(*statuses, dt=dt, alarm=alarm) if isinstance(a, Notify)]

    def shuts_down(self, *statuses: str | None, dt: float = 5.0) -> bool:
        return any(isinstance(a, BeginShutdown) for a in self.round(*statuses, dt=dt))


# -- notifications: one row per sequence; a monitoring-only UPS so no shutdown interferes ---------

NOTIFY_TABLE: list[tuple[str, list[str | None], list[list[str]]]] = [
    ("first OL is silent", ["OL", "OL"], [[], []]),
    ("COMMOK only after a loss", ["OL", None, None, "OL"], [[], ["COMMBAD"], [], ["COMMOK"]]),
    ("first contact failed", [None, "OL"], [["COMMBAD"], ["COMMOK"]]),
    ("empty status counts as a failure", ["OL", "", "  ", "OL"], [[], ["COMMBAD"], [], ["COMMOK"]]),
    ("ONBATT then ONLINE", ["OL", "OB", "OB DISCHRG", "OL CHRG"], [[], ["ONBATT"], [], ["ONLINE"]]),
    ("start on battery", ["OB", "OL"], [["ONBATT"], ["ONLINE"]]),
    ("no repeat after a comm loss", ["OB", None, "OB", "OL", None, "OL"],
     [["ONBATT"], ["COMMBAD"], ["COMMOK"], ["ONLINE"], ["COMMBAD"], ["COMMOK"]]),
    ("OB wins over OL", ["OL", "OL OB", "OB OL"], [[], ["ONBATT"], []]),
    ("status without OL/OB keeps the line state", ["OB", "CHRG", "OB"], [["ONBATT"], [], []]),
    ("LOWBATT on transitions", ["OB", "OB LB", "OB LB", "OB", "OB LB"],
     [["ONBATT"], ["LOWBATT"], [], [], ["LOWBATT"]]),
    ("tokens are case-insensitive", ["ol", "ob lb"], [[], ["ONBATT", "LOWBATT"]]),
    ("FSD once per appearance", ["OL", "FSD OL", "OL FSD", "OL", "FSD OL"], [[], ["FSD"], [], [], ["FSD"]]),
    ("known quiet tokens", ["OL CHRG HB", "OB DISCHRG"], [[], ["ONBATT"]]),
    ("unknown tokens: OTHER / NOTOTHER", ["OL FOO", "OL FOO", "OL BAR FOO", "OL BAR", "OL"],
     [["OTHER"], [], ["OTHER"], ["OTHER"], ["NOTOTHER"]]),
    ("WAIT is not a token upsmon knows", ["WAIT", "OL"], [["OTHER"], ["NOTOTHER"]]),
    ("NOT<x> before new flags", ["OL TRIM", "OL BOOST"], [["TRIM"], ["NOTTRIM", "BOOST"]]),
    ("flags survive a comm loss", ["OL BYPASS", None, "OL BYPASS", "OL"],
     [["BYPASS"], ["COMMBAD"], ["COMMOK"], ["NOTBYPASS"]]),
]


@pytest.mark.parametrize(("statuses", "expected"), [pytest.param(s, e, id=i) for i, s, e in NOTIFY_TABLE])
def test_notify_table(statuses: list[str | None], expected: list[list[str]]) -> None:
    sim = Sim(make_conf(spec(pv=0), minsupplies=0))
    assert [sim.notifies(s) for s in statuses] == expected


FLAG_PAIRS = [("CAL", "CAL", "NOTCAL"), ("OFF", "OFF", "NOTOFF"), ("BYPASS", "BYPASS", "NOTBYPASS"),
              ("ECO", "ECO", "NOTECO"), ("ALARM", "ALARM", "NOTALARM"), ("OVER", "OVER", "NOTOVER"),
              ("TRIM", "TRIM", "NOTTRIM"), ("BOOST", "BOOST", "NOTBOOST")]


@pytest.mark.parametrize(("token", "on", "off"), FLAG_PAIRS)
def test_flag_pairs(token: str, on: str, off: str) -> None:
    sim = Sim(make_conf(spec(pv=0), minsupplies=0))
    seq = ["OL", f"OL {token}", f"OL {token}", None, f"{token.lower()} OL", "OL", "OL"]
    assert [sim.notifies(s) for s in seq] == [[], [on], [], ["COMMBAD"], ["COMMOK"], [off], []]


def test_notify_carries_sys_and_extra() -> None:
    sim = Sim(make_conf(spec("ups@[::1]:3493", pv=0), minsupplies=0))
    assert sim.round("OL FOO bar") == [Notify("OTHER", "ups@[::1]:3493", "FOO bar")]
    assert sim.round("OL ALARM") == [Notify("ALARM", "ups@[::1]:3493", "n/a"),
                                     Notify("NOTOTHER", "ups@[::1]:3493")]


def test_alarm_text_changes_notify_again() -> None:
    sim = Sim(make_conf(spec(pv=0), minsupplies=0))
    assert sim.round("OL ALARM", alarm="Replace battery!") == [Notify("ALARM", "ups@h", "Replace battery!")]
    assert sim.round("OL ALARM", alarm="Replace battery!") == []
    assert sim.round("OL ALARM") == []  # runner did not read ups.alarm this time
    assert sim.round("OL ALARM", alarm="Overheat") == [Notify("ALARM", "ups@h", "Overheat")]
    assert sim.round("OL") == [Notify("NOTALARM", "ups@h")]


def test_replbatt_throttled_by_rbwarntime() -> None:
    sim = Sim(make_conf(spec(pv=0), minsupplies=0, rbwarntime=60))
    got = [(i * 5, sim.notifies("OL RB")) for i in range(1, 30)]
    assert [t for t, n in got if n] == [5, 70, 135]  # then only after more than RBWARNTIME
    assert all(n in ([], ["REPLBATT"]) for _, n in got)


def test_nocomm_every_nocommwarntime() -> None:
    sim = Sim(make_conf(spec(pv=0), minsupplies=0, nocommwarntime=20))
    assert sim.notifies("OL") == []  # t=5
    got = [(5 + i * 5, sim.notifies(None)) for i in range(1, 16)]
    assert [(t, n) for t, n in got if n] == [(10, ["COMMBAD"]), (25, ["NOCOMM"]), (50, ["NOCOMM"]),
                                             (75, ["NOCOMM"])]
    assert sim.notifies("OL") == ["COMMOK"]


def test_nocomm_for_a_ups_never_reached_counts_from_start() -> None:
    sim = Sim(make_conf(spec(pv=0), minsupplies=0, nocommwarntime=12))
    assert [sim.notifies(None, dt=4) for _ in range(5)] == [["COMMBAD"], [], ["NOCOMM"], [], []]


def test_off_notified_at_once_critical_after_offduration() -> None:
    sim = Sim(make_conf(offduration=30))
    assert sim.round("OL OFF") == [Notify("OFF", "ups@h")]
    for _ in range(6):  # up to 30 s in OFF: not yet
        assert not sim.shuts_down("OL OFF")
    assert sim.m.view()["ups@h"].critical is False
    assert sim.shuts_down("OL OFF")  # 35 s > OFFDURATION
    assert "OFF" in sim.m.view()["ups@h"].why


@pytest.mark.parametrize(("offduration", "rounds_to_shutdown"), [(0, 1), (12, 4), (-1, None)])
def test_offduration(offduration: int, rounds_to_shutdown: int | None) -> None:
    sim = Sim(make_conf(offduration=offduration))
    results = [sim.shuts_down("OFF") for _ in range(20)]
    assert (results.index(True) + 1 if any(results) else None) == rounds_to_shutdown


def test_off_glitch_resets_the_timer() -> None:
    sim = Sim(make_conf(offduration=12))
    assert not any(sim.shuts_down(s) for s in ["OFF", "OFF", "OL", "OFF CAL", "OFF CAL", "OL"])


# -- criticality and shutdown ------------------------------------------------------------------

def test_primary_ob_lb_shuts_down_at_once() -> None:
    sim = Sim(make_conf(spec(primary=True)))
    assert not sim.shuts_down("OL")
    assert not sim.shuts_down("OB DISCHRG")
    acts = sim.round("OB LB")
    assert acts[0] == Notify("LOWBATT", "ups@h")
    assert isinstance(acts[-1], BeginShutdown)
    assert "ups@h: on battery with a low battery" in acts[-1].reason
    assert "power value 0 < MINSUPPLIES 1" in acts[-1].reason


@pytest.mark.parametrize("status", ["FSD OL", "OL FSD CHRG", "FSD", "OB FSD"])
@pytest.mark.parametrize("primary", [True, False])
def test_fsd_is_always_critical(status: str, primary: bool) -> None:
    sim = Sim(make_conf(spec(primary=primary)))
    assert not sim.shuts_down("OL")
    assert sim.shuts_down(status)
    assert sim.m.view()["ups@h"].why == "forced shutdown (FSD)"


def test_latched_fsd_at_start_shuts_down_at_once() -> None:
    sim = Sim(make_conf(spec(primary=False)))
    assert sim.shuts_down("FSD OB LB")


def test_ob_lb_with_cal_is_not_critical() -> None:
    sim = Sim(make_conf())
    assert not sim.shuts_down("OB LB CAL")
    assert not sim.shuts_down("OB LB CAL")
    assert sim.shuts_down("OB LB")


def test_secondary_waits_hostsync_for_the_primary() -> None:
    sim = Sim(make_conf(spec(primary=False), hostsync=15))
    assert not sim.shuts_down("OB")  # t+5: last poll outside OB+LB
    assert [sim.shuts_down("OB LB") for _ in range(4)] == [False, False, False, True]  # 20 - 5 > 15
    assert "no FSD from the primary within HOSTSYNC" in sim.m.view()["ups@h"].why


def test_secondary_follows_the_primarys_fsd_before_hostsync() -> None:
    sim = Sim(make_conf(spec(primary=False), hostsync=15))
    assert not sim.shuts_down("OB")
    assert not sim.shuts_down("OB LB")
    assert sim.shuts_down("FSD OB LB")


def test_secondary_short_ob_lb_blip_is_ignored() -> None:
    sim = Sim(make_conf(spec(primary=False), hostsync=15))
    seq = ["OB", "OB LB", "OB LB", "OB", "OB LB", "OB LB", "OL", "OB LB", "OB LB", "OB LB"]
    assert not any(sim.shuts_down(s) for s in seq)


def test_minsupplies_two_ups() -> None:
    a, b = spec("a@h"), spec("b@h")
    sim = Sim(make_conf(a, b, minsupplies=1))
    assert not sim.shuts_down("OL", "OL")
    assert not sim.shuts_down("OB LB", "OL")  # a critical, b still feeds 1 >= 1
    assert [v.critical for v in sim.m.view().values()] == [True, False]
    assert sim.shuts_down("OB LB", "OB LB")
    sim = Sim(make_conf(a, b, minsupplies=2))  # redundant supplies: one lost is too many
    assert sim.shuts_down("OB LB", "OL")


def test_ups_never_heard_from_counts_as_healthy() -> None:
    sim = Sim(make_conf(spec("a@h"), spec("b@h"), minsupplies=2))
    assert not any(sim.shuts_down(None, "OL") for _ in range(30))


def test_power_value_zero_never_counts() -> None:
    sim = Sim(make_conf(spec("a@h"), spec("mon@h", pv=0), minsupplies=1))
    assert not sim.shuts_down("OL", "FSD OB LB")
    assert sim.m.view()["mon@h"].critical is True
    sim = Sim(make_conf(spec("a@h", pv=0), spec("mon@h", pv=0), minsupplies=0))
    assert not sim.shuts_down("FSD", "FSD")


def test_deadtime_comm_lost_while_on_battery() -> None:
    sim = Sim(make_conf(deadtime=15))
    assert not sim.shuts_down("OB")  # t=5, last good poll
    assert [sim.shuts_down(None) for _ in range(4)] == [False, False, False, True]  # 25 - 5 > 15
    view = sim.m.view()["ups@h"]
    assert view.low and view.on_battery and not view.comm_ok
    assert view.why == "not answering for longer than DEADTIME, last seen on battery with a low battery"


def test_deadtime_secondary_gives_up_too() -> None:
    sim = Sim(make_conf(spec(primary=False), deadtime=15, hostsync=15))
    assert not sim.shuts_down("OB")
    assert [sim.shuts_down(None) for _ in range(4)] == [False, False, False, True]


def test_deadtime_comm_lost_while_online_never_shuts_down() -> None:
    sim = Sim(make_conf(deadtime=15))
    assert not sim.shuts_down("OL")
    assert not any(sim.shuts_down(None) for _ in range(200))


def test_comm_back_before_deadtime() -> None:
    sim = Sim(make_conf(deadtime=15))
    seq = ["OB", None, None, "OB", None, None, None, "OL", None, None, None, None]
    assert not any(sim.shuts_down(s) for s in seq)


@pytest.mark.parametrize(("token", "conf_kw", "critical"), [
    ("CAL", {}, True), ("BYPASS", {}, True), ("OFF", {}, True), ("OFF", {"offduration": -1}, False),
    ("ALARM", {}, True), ("ALARM", {"alarmcritical": False}, False),
    ("OVER", {}, False), ("OVER", {"overduration": 0}, True), ("TRIM", {}, False), ("ECO", {}, False),
])
def test_volatile_states_are_critical_once_dead(token: str, conf_kw: dict[str, int], critical: bool) -> None:
    """HEAD treats a UPS lost in these states as dead; we wait DEADTIME first (see docs)."""
    sim = Sim(make_conf(deadtime=15, **conf_kw))
    assert not sim.shuts_down(f"OL {token}")
    assert [sim.shuts_down(None) for _ in range(3)] == [False, False, False]
    assert sim.shuts_down(None) is critical


def test_overduration_counts_from_the_first_over() -> None:
    sim = Sim(make_conf(deadtime=5, overduration=20))
    assert not sim.shuts_down("OL OVER")  # t=5: OVER since 5
    assert [sim.shuts_down(None) for _ in range(4)] == [False, False, False, True]  # 25 - 5 >= 20


def test_oblbduration_glitch_shorter_than_it_is_ignored() -> None:
    sim = Sim(make_conf(oblbduration=10))
    seq = ["OB", "OB LB", "OB LB", "OB", "OB LB", "OB LB", "OL LB", "OB LB"]
    assert not any(sim.shuts_down(s) for s in seq)
    assert not sim.shuts_down("OB LB")
    assert sim.shuts_down("OB LB")  # held for 10 s at recalcs


def test_oblbduration_polls_faster() -> None:
    sim = Sim(make_conf(oblbduration=4, pollfreq=30, pollfreqalert=6))
    sim.round("OL")
    assert sim.m.sleep_interval() == 30
    sim.round("OB")
    assert sim.m.sleep_interval() == 6
    sim.round("OB LB")
    assert sim.m.sleep_interval() == 2  # gcd(6, 4), as HEAD
    for state in ("OL BYPASS", "OL CAL", "OL OFF", "OL ALARM", "OL OVER"):
        sim.round(state)
        assert sim.m.sleep_interval() == 6, state
    for state in ("OL TRIM", "OL ECO", "OL"):
        sim.round(state)
        assert sim.m.sleep_interval() == 30, state


def test_begin_shutdown_at_most_once() -> None:
    sim = Sim(make_conf())
    assert sim.shuts_down("OB LB")
    assert sim.m.shutting_down
    assert not any(sim.shuts_down("FSD OB LB") for _ in range(5))
    assert sim.m.force() == []


def test_force() -> None:
    sim = Sim(make_conf())
    sim.round("OL")
    assert sim.m.force() == [BeginShutdown("user")]
    assert sim.m.force("again") == []
    assert not sim.shuts_down("OB LB")


def test_fsd_set_notifies_once() -> None:
    sim = Sim(make_conf())
    sim.round("OL")
    assert sim.m.fsd_set("ups@h") == [Notify("FSD", "ups@h")]
    assert sim.m.fsd_set("ups@h") == []
    assert sim.m.view()["ups@h"].fsd
    assert sim.notifies("FSD OL") == []  # upsd now reports the latch: no second FSD notify
    assert sim.notifies("OL") == []
    assert sim.notifies("FSD OL") == ["FSD"]


def test_view() -> None:
    sim = Sim(make_conf(spec("a@h", pv=1, primary=True), spec("b@h", pv=2, primary=False)))
    sim.round("OB LB", None)
    a, b = sim.m.view()["a@h"], sim.m.view()["b@h"]
    assert (a.tokens, a.comm_ok, a.last_ok, a.on_battery, a.low, a.fsd, a.critical) == (
        ("OB", "LB"), True, T0 + 5, True, True, False, True)
    assert (a.primary, a.power_value) == (True, 1)
    assert (b.tokens, b.comm_ok, b.last_ok, b.critical, b.primary, b.power_value) == (
        (), False, None, False, False, 2)


def test_insufficient_power_is_refused() -> None:
    with pytest.raises(ConfigError, match="less than MINSUPPLIES 2"):
        Machine(make_conf(minsupplies=2), T0)
    m = Machine(make_conf(), T0)
    with pytest.raises(ConfigError):
        m.reconfigure(make_conf(spec(pv=0)), T0)


def test_unknown_ups_is_an_error() -> None:
    m = Machine(make_conf(), T0)
    with pytest.raises(KeyError):
        m.polled("nope@h", "OL", T0)


def test_reconfigure_keeps_state() -> None:
    conf = make_conf(spec("a@h", primary=False), hostsync=15)
    sim = Sim(conf)
    sim.round("OB")
    sim.round("OB LB")
    new = make_conf(spec("a@h", primary=False), spec("b@h"), hostsync=15, minsupplies=2)
    sim.m.reconfigure(new, sim.t)
    sim.conf = new
    assert sim.notifies("OB LB", "OL") == []  # no ONBATT again, b's first OL is silent
    assert not sim.shuts_down("OB LB", "OL")
    assert sim.shuts_down("OB LB", "OL")  # a's HOSTSYNC timer kept running: 25 - 5 > 15


# -- property-based: the machine against a reference written from the rules --------------------

TOKENS = ["OL", "OB", "LB", "CAL", "FSD", "RB", "CHRG", "DISCHRG", "HB", "BYPASS", "OFF", "ALARM",
          "OVER", "TRIM", "BOOST", "ECO", "WAIT", "FOO", "ob", "lb"]
# weights: mains and battery states dominate, so sequences reach interesting states
token_st = st.one_of(st.sampled_from(["OL", "OB", "LB"]), st.sampled_from(["OL", "OB", "LB"]),
                     st.sampled_from(TOKENS))
status_st = st.one_of(
    st.lists(token_st, min_size=0, max_size=4).map(" ".join),
    st.lists(token_st, min_size=1, max_size=3).map(" ".join),
    st.none(),
)


@dataclass(frozen=True)
class Scenario:
    conf: UpsmonConf
    rounds: list[tuple[float, list[str | None]]]  # (seconds since the last round, status per UPS)


DT = st.sampled_from([0.5, 1.0, 3.0, 5.0, 7.0, 16.0])


@st.composite
def scenarios(draw: st.DrawFn, status: st.SearchStrategy[str | None] = status_st,
              dt: st.SearchStrategy[float] = DT) -> Scenario:
    n = draw(st.integers(1, 3))
    specs = [spec(f"u{i}@h", pv=draw(st.sampled_from([0, 1, 1, 2])), primary=draw(st.booleans()))
             for i in range(n)]
    total = sum(m.power_value for m in specs)
    conf = make_conf(
        *specs,
        # what UpsmonConf.check() lets through; 0 (monitoring only) now and then
        minsupplies=draw(st.integers(1, total)) if total and draw(st.integers(0, 7)) else 0,
        deadtime=draw(st.integers(0, 30)),
        hostsync=draw(st.integers(0, 30)),
        oblbduration=draw(st.sampled_from([0, 0, -1, 3, 10, 20])),
        offduration=draw(st.sampled_from([30, -1, 0, 8])),
        overduration=draw(st.sampled_from([-1, 0, 6])),
        alarmcritical=draw(st.booleans()),
    )
    # UPS states last a while: each round repeats the previous status of a UPS more often than not
    rounds: list[tuple[float, list[str | None]]] = []
    current = draw(st.lists(status, min_size=n, max_size=n))
    for _ in range(draw(st.integers(1, 30))):
        current = [s if draw(st.integers(0, 2)) else draw(status) for s in current]
        rounds.append((draw(dt), list(current)))
    return Scenario(conf, rounds)


# The reference: recomputes everything from the full history at each recalc, directly from the
# rule text in machine.py's docstring. Deliberately naive (quadratic, no incremental state).

@dataclass(frozen=True)
class Poll:
    t: float
    tokens: tuple[str, ...] | None  # upper-cased; None: failed (or empty status)


def ref_critical(c: UpsmonConf, m: MonitorSpec, polls: Sequence[Poll], recalcs: Sequence[float],
                 t: float, start: float) -> bool:
    good = [p for p in polls if p.tokens]
    if not good:
        return False  # never heard from: fine

    def state_after(i: int) -> tuple[bool, set[str]]:
        """(on battery, tokens) right after good poll i."""
        ob = False
        for p in reversed(good[: i + 1]):
            assert p.tokens is not None
            if "OB" in p.tokens or "OL" in p.tokens:
                ob = "OB" in p.tokens
                break
        return ob, set(good[i].tokens or ())

    def since(token: str, upto: int) -> float | None:
        """Start of the run of good polls (ending at ``upto``) that all show ``token``."""
        start_t = None
        for p in reversed(good[: upto + 1]):
            if token not in (p.tokens or ()):
                break
            start_t = p.t
        return start_t

    def at(when: float) -> tuple[bool, bool, set[str], bool, int]:
        """(on battery, low, tokens, stale, index of last good poll) as of time ``when``."""
        idx = max(i for i, p in enumerate(good) if p.t <= when)
        ob, toks = state_after(idx)
        stale = when - good[idx].t > c.deadtime
        return ob, "LB" in toks or (ob and stale), toks, stale, idx

    ob, low, toks, stale, last = at(t)
    if "FSD" in toks:
        return True
    off = since("OFF", last)
    if off is not None and c.offduration >= 0 and (c.offduration == 0 or t - off > c.offduration):
        return True
    if stale:
        over = since("OVER", last)
        if ("CAL" in toks or "BYPASS" in toks or ("OFF" in toks and c.offduration >= 0)
                or ("ALARM" in toks and c.alarmcritical)
                or (over is not None and c.overduration >= 0 and t - over >= c.overduration)):
            return True
    if not (ob and low and "CAL" not in toks):
        return False
    if c.oblbduration > 0:
        oblb_since = None
        for r in recalcs:
            if r < good[0].t:
                continue
            r_ob, r_low, r_toks, _, _ = at(r)
            if r_ob and r_low:
                if oblb_since is None and "CAL" not in r_toks:
                    oblb_since = r
            else:
                oblb_since = None
        if oblb_since is None or t - oblb_since < c.oblbduration:
            return False
    if m.primary:
        return True
    last_noncrit = start
    for i, p in enumerate(good):
        p_ob, p_toks = state_after(i)
        if not (p_ob and "LB" in p_toks and "CAL" not in p_toks):
            last_noncrit = p.t
    return t - last_noncrit > c.hostsync


def run_scenario(sc: Scenario, start: float = T0) -> tuple[list[bool], list[bool], list[list[bool]],
                                                          list[list[bool]]]:
    """Returns per recalc: machine shut down?, reference says shut down?, criticality (machine, ref)."""
    c = sc.conf
    m = Machine(c, start)
    polls: dict[str, list[Poll]] = {s.sys: [] for s in c.monitors}
    recalcs: list[float] = []
    t = start
    got, want, crit_m, crit_r = [], [], [], []
    for dt, statuses in sc.rounds:
        t += dt
        acts: list[Action] = []
        for s, status in zip(c.monitors, statuses, strict=True):
            acts += m.polled(s.sys, status, t)
            toks = tuple(w.upper() for w in status.split()) if status else None
            polls[s.sys].append(Poll(t, toks or None))
        acts += m.recalc(t)
        recalcs.append(t)
        crit = [ref_critical(c, s, polls[s.sys], recalcs, t, start) for s in c.monitors]
        got.append(any(isinstance(a, BeginShutdown) for a in acts))
        want.append(sum(s.power_value for s, cr in zip(c.monitors, crit, strict=True) if not cr)
                    < c.minsupplies)
        crit_m.append([v.critical for v in m.view().values()])
        crit_r.append(crit)
    return got, want, crit_m, crit_r


PROPERTY = settings(max_examples=1000, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios())
def test_property_shutdown_iff_the_rule_holds(sc: Scenario) -> None:
    got, want, crit_m, crit_r = run_scenario(sc)
    first = want.index(True) if True in want else None
    # never BeginShutdown unless the rule holds; always at the first recalc where it holds; once
    assert got == [i == first for i in range(len(want))], (got, want)
    # and until then, the machine's view of each UPS agrees with the reference
    end = len(want) if first is None else first + 1
    assert crit_m[:end] == crit_r[:end]


FLAP_TOKENS = st.sampled_from(["CHRG", "DISCHRG", "RB", "TRIM", "BOOST", "ECO", "HB", "FOO"])


@st.composite
def flapping(draw: st.DrawFn) -> Scenario:
    base = draw(scenarios(status=st.none()))
    n = len(base.conf.monitors)
    rounds = []
    for i in range(draw(st.integers(2, 40))):
        statuses: list[str | None] = []
        for _ in range(n):
            mains = "OL" if (i + draw(st.integers(0, 1))) % 2 else "OB"
            extra = draw(st.lists(FLAP_TOKENS, max_size=2))
            statuses.append(" ".join([mains, *extra]))
        rounds.append((draw(st.sampled_from([0.5, 1.0, 5.0, 30.0])), statuses))
    return replace(base, rounds=rounds)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(flapping())
def test_property_flapping_mains_never_shuts_down(sc: Scenario) -> None:
    got, _, crit_m, _ = run_scenario(sc)
    assert not any(got)
    assert not any(any(c) for c in crit_m)


SAFE_ALPHABET = st.sampled_from(["OL", "OB", "OB", "CHRG", "DISCHRG", "RB", "CAL", "BYPASS", "ALARM",
                                 "OVER", "TRIM", "BOOST", "ECO", "WAIT", "FOO", "ob"])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(scenarios(status=st.one_of(st.none(), st.lists(SAFE_ALPHABET, max_size=3).map(" ".join)),
                 dt=st.sampled_from([0.5, 1.0, 2.0, 5.0])))
def test_property_comm_loss_shorter_than_deadtime_never_shuts_down(sc: Scenario) -> None:
    """Outages (and empty answers) never last longer than DEADTIME; no LB, FSD or OFF is reported."""
    c = sc.conf
    t = T0
    last_ok: dict[int, float] = {}
    rounds = []
    for dt, statuses in sc.rounds:
        t += dt
        fixed: list[str | None] = []
        for i, s in enumerate(statuses):
            if not (s and s.split()) and i in last_ok and t - last_ok[i] > c.deadtime:
                s = "OL"  # the UPS answers again in time
            if s and s.split():
                last_ok[i] = t
            fixed.append(s)
        rounds.append((dt, fixed))
    got, _, crit_m, _ = run_scenario(replace(sc, rounds=rounds))
    assert not any(got)
    assert not any(any(cr) for cr in crit_m)
