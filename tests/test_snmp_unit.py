"""SNMP table engine without a network: conversions, row rules, templates, MIB selection, options.

The agent-facing behaviour (same variables as Debian's snmp-ups, v3, faults) is in test_snmp.py.
"""

from __future__ import annotations

import asyncio

import pytest

from nutbridge.drivers.base import ConfigError
from nutbridge.drivers.snmp.driver import SnmpUps, parse_port
from nutbridge.drivers.snmp.mapper import Mapper, command_value, convert, format_number, to_raw
from nutbridge.drivers.snmp.mibs import check_oid, ietf, mib_by_name, registry, select_mib
from nutbridge.drivers.snmp.session import SnmpValue, v3_from_options
from nutbridge.drivers.snmp.table import (
    ABSENT,
    INPUT_1,
    INPUT_3,
    NEGINVALID,
    OUTLET,
    RW,
    STATUS,
    STRING,
    UNIQUE,
    Cmd,
    Mib,
    Row,
)
from tests.support import realnut

realnut.require_module("pysnmp", "nutbridge-ups[snmp]")  # imported lazily by the driver


def i(n: int) -> SnmpValue:
    return SnmpValue("int", n)


def s(text: str) -> SnmpValue:
    return SnmpValue("str", text.encode())


# ---- conversions ----------------------------------------------------------------------------

def test_numbers_follow_nuts_int_or_two_decimals_rule() -> None:
    assert format_number(230.0) == "230"
    assert format_number(538.5) == "538.50"
    assert format_number(0.93) == "0.93"
    assert format_number(0.0, "%.1f") == "0.0"


def test_convert_scales_and_timeticks_are_hundredths() -> None:
    assert convert(Row("v", "1", 0.1), i(2301)) == "230.10"
    assert convert(Row("v", "1", 60.0), i(5)) == "300"
    assert convert(Row("battery.runtime", "1"), SnmpValue("timeticks", 360000)) == "3600"
    assert convert(Row("v", "1", 0.1), SnmpValue("uint", 500)) == "50"


def test_convert_lookup_neginvalid_and_strings() -> None:
    row = Row("ups.status", "1", flags=STATUS, lookup=ietf.OUTPUT_SOURCE)
    assert convert(row, i(5)) == "OB"
    assert convert(row, i(99)) is None                      # unknown values publish nothing
    assert convert(Row("v", "1", 0.1, NEGINVALID), i(-1)) is None
    assert convert(Row("ups.model", "1", flags=STRING), s("EA9080    ")) == "EA9080    "   # kept as is (NUT)
    # upsTestId is an OBJECT IDENTIFIER: looked up by its last sub-identifier
    oid_row = Row("ups.status", "1", flags=STATUS, lookup=ietf.TEST_ACTIVE)
    assert convert(oid_row, SnmpValue("oid", "1.3.6.1.2.1.33.1.7.7.5")) == "CAL"


def test_binary_octet_strings_render_as_hex() -> None:
    assert SnmpValue("str", b"\x00\xc0\xb7\x01").text == "00 C0 B7 01"
    assert SnmpValue("str", b"Smart-UPS 1500\x00").text == "Smart-UPS 1500"


def test_to_raw_reverses_lookup_and_scale() -> None:
    assert to_raw(Row("ups.start.auto", "1", flags=RW, lookup={1: "yes", 2: "no"}), "no") == 2
    assert to_raw(Row("ups.start.auto", "1", flags=RW, lookup={1: "yes", 2: "no"}), "maybe") is None
    assert to_raw(Row("battery.charge.low", "1", 0.1, RW), "20") == 200
    assert to_raw(Row("x", "1", flags=RW, rw_range=(0, 10)), "11") is None
    assert to_raw(Row("ups.id", "1", flags=RW | STRING, length=8, asn1="s"), "rack-a-ups") is None
    assert to_raw(Row("ups.id", "1", flags=RW | STRING, length=8, asn1="s"), "rack-a") == "rack-a"


# ---- rows --------------------------------------------------------------------------------------

def _mib(*rows: Row, cmds: tuple[Cmd, ...] = (), **kw: object) -> Mib:
    return Mib("t", "0.1", rows, cmds, **kw)  # type: ignore[arg-type]


def test_unique_first_answer_wins_and_missing_rows_are_dropped_at_init() -> None:
    m = Mapper(_mib(Row("battery.charge", "1.1", 0.1, UNIQUE | NEGINVALID), Row("battery.charge", "1.2"),
                    Row("ups.temperature", "1.3")))
    out = m.apply({"1.1": i(995), "1.2": i(99), "1.3": None}, init=True)
    assert out == {"battery.charge": "99.50"}
    # the fallback and the absent row are not asked for again
    assert m.oids() == ["1.1"]


def test_without_unique_a_later_row_overwrites() -> None:
    m = Mapper(_mib(Row("output.L1.realpower", "1.1"), Row("output.L1.realpower", "1.2")))
    assert m.apply({"1.1": i(5), "1.2": i(6)}, init=True) == {"output.L1.realpower": "6"}


def test_status_rows_concatenate_in_table_order() -> None:
    m = Mapper(_mib(Row("ups.status", "1.1", flags=STATUS, lookup={2: "OL", 3: "OB"}),
                    Row("ups.status", "1.2", flags=STATUS, lookup={2: "", 3: "LB"}),
                    Row("ups.status", "1.3", flags=STATUS, lookup={1: "", 2: "RB"})))
    assert m.apply({"1.1": i(3), "1.2": i(3), "1.3": i(2)}, init=True)["ups.status"] == "OB LB RB"
    assert m.apply({"1.1": i(2), "1.2": i(2), "1.3": i(1)})["ups.status"] == "OL"


def test_phase_rows_follow_the_phase_count_wherever_it_sits_in_the_table() -> None:
    rows = (Row("ups.load", "9.1", flags=INPUT_1), Row("ups.L1.load", "9.1", flags=INPUT_3),
            Row("input.phases", "9.0"))
    three = Mapper(_mib(*rows))
    assert three.apply({"9.0": i(3), "9.1": i(21)}, init=True) == {"ups.L1.load": "21", "input.phases": "3"}
    one = Mapper(_mib(*rows))
    assert one.apply({"9.0": i(1), "9.1": i(21)}, init=True) == {"ups.load": "21", "input.phases": "1"}
    # no phase count at all: single phase, as NUT assumes
    assert Mapper(_mib(*rows[:2])).apply({"9.1": i(7)}, init=True) == {"ups.load": "7"}


def test_missing_line_count_defaults_to_one_and_bypass_rows_are_never_filtered() -> None:
    m = Mapper(ietf.MIBS[1])
    bypass = "1.3.6.1.2.1.33.1.5."
    answers = {oid: None for oid in m.oids(init=True)}
    answers.update({bypass + "3.1.2.1": i(227), bypass + "3.1.2.2": i(230)})
    out = m.apply(answers, init=True)
    # no upsBypassNumLines / upsInputNumLines: NUT publishes 1 ...
    assert out["input.bypass.phases"] == "1" and out["input.phases"] == "1"
    # ... yet reads the per-line bypass rows all the same
    lines = (out["input.bypass.voltage"], out["input.bypass.L1-N.voltage"], out["input.bypass.L2-N.voltage"])
    assert lines == ("227", "227", "230")


def test_absent_rows_publish_defaults_and_options_override() -> None:
    row = Row("ups.delay.shutdown", None, flags=ABSENT | RW, default="20", option="offdelay")
    assert Mapper(_mib(row)).apply({}, init=True) == {"ups.delay.shutdown": "20"}
    assert Mapper(_mib(row), {"offdelay": "60"}).apply({}, init=True) == {"ups.delay.shutdown": "60"}
    # published once: a later SET VAR is not overwritten by the next poll
    assert Mapper(_mib(row)).apply({}) == {}


def test_outlet_templates_expand_from_outlet_count() -> None:
    m = Mapper(_mib(Row("outlet.count", "4.1.0"),
                    Row("outlet.%i.status", "4.2.1.3.%i", flags=OUTLET, lookup={1: "on", 2: "off"}),
                    cmds=(Cmd("outlet.%i.load.off", "4.2.1.3.%i", 2, flags=OUTLET),)))
    m.learn_counts(m.apply({"4.1.0": i(3)}, init=True))
    assert m.template_oids() == ["4.2.1.3.1", "4.2.1.3.2", "4.2.1.3.3"]
    assert m.template_columns() == [("4.2.1.3", 3)]
    out = m.apply({"4.1.0": i(3), "4.2.1.3.1": i(1), "4.2.1.3.2": i(2), "4.2.1.3.3": i(1)})
    assert out == {"outlet.count": "3", "outlet.1.status": "on", "outlet.2.status": "off",
                   "outlet.3.status": "on"}
    assert [(c.cmd, c.oid) for c in m.commands()][1] == ("outlet.2.load.off", "4.2.1.3.2")


def test_regular_polls_skip_static_and_missing_outlet_columns() -> None:
    from nutbridge.drivers.snmp.table import SEMI, STATIC

    m = Mapper(_mib(Row("outlet.count", "4.1.0", flags=STATIC),
                    Row("outlet.%i.desc", "4.3.%i", flags=OUTLET | STATIC | STRING),
                    Row("outlet.%i.status", "4.2.%i", flags=OUTLET, lookup={1: "on", 2: "off"}),
                    Row("outlet.%i.current", "4.4.%i", 0.1, flags=OUTLET),
                    Row("outlet.%i.current.high", "4.5.%i", 0.1, flags=OUTLET | SEMI)))
    m.learn_counts(m.apply({"4.1.0": i(2)}, init=True))
    answers = {"4.1.0": i(2), "4.3.1": s("a"), "4.3.2": s("b"), "4.2.1": i(1), "4.2.2": i(2),
               "4.4.1": None, "4.4.2": None, "4.5.1": i(80), "4.5.2": i(80)}
    m.apply(answers, init=True)            # the agent has no outlet current column
    assert m.oids() == []
    assert m.template_columns(init=False, semi=False) == [("4.2", 2)]
    assert m.template_oids(init=False, semi=False) == ["4.2.1", "4.2.2"]
    assert m.template_columns(init=False, semi=True) == [("4.2", 2), ("4.5", 2)]


def test_zero_based_and_daisy_chain_templates() -> None:
    zero = Mapper(_mib(Row("outlet.count", "1"), Row("outlet.%i.name", "5.%i", flags=OUTLET | STRING),
                       outlet_index_base=0))
    zero.learn_counts({"outlet.count": "2"})
    assert zero.template_oids() == ["5.0", "5.1"]
    # Eaton ePDU: <column>.<unit>.<outlet>, unit 0 = the master
    daisy = Mapper(_mib(Row("outlet.count", "1"), Row("outlet.%i.status", "6.6.1.2.%i.%i", flags=OUTLET)))
    daisy.learn_counts({"outlet.count": "2"})
    assert daisy.template_oids() == ["6.6.1.2.0.1", "6.6.1.2.0.2"]


# ---- MIB selection -------------------------------------------------------------------------

def _probe(present: set[str]):  # type: ignore[no-untyped-def]
    async def probe(oid: str) -> bool:
        return oid.lstrip(".") in present
    return probe


def test_registry_order_and_versions_follow_the_nut_release(monkeypatch: pytest.MonkeyPatch) -> None:
    from nutbridge.compat import COMPAT_ENV

    names = [m.name for m in registry()]
    for earlier, later in (("apcc", "mge"), ("huawei", "mge"), ("xppc", "tripplite"), ("tripplite", "ietf")):
        assert names.index(earlier) < names.index(later)
    monkeypatch.setenv(COMPAT_ENV, "2.8.0")
    versions = {m.name: m.version_data for m in registry()}
    assert (versions["ietf"], versions["mge"], versions["apcc"]) == ("ietf MIB 1.54", "mge MIB 0.55",
                                                                      "apcc MIB 1.6")
    monkeypatch.setenv(COMPAT_ENV, "2.8.5")
    versions = {m.name: m.version_data for m in registry()}
    assert (versions["ietf"], versions["apcc"], versions["huawei"]) == ("ietf MIB 1.55", "apcc MIB 1.61",
                                                                        "huawei MIB 0.40")


def test_select_by_sysoid_needs_the_check_oid_too() -> None:
    # Eaton Network-MS cards report .705.1 (mge); answering the MGE model OID confirms it
    got = asyncio.run(select_mib("1.3.6.1.4.1.705.1", _probe({"1.3.6.1.4.1.705.1.1.1.0"})))
    assert got is not None and got.name == "mge"
    # Huawei's card reports net-snmp's generic Linux sysObjectID: without the hwUps model OID it is not Huawei
    got = asyncio.run(select_mib("1.3.6.1.4.1.8072.3.2.10", _probe({"1.3.6.1.2.1.33.1.1.1.0",
                                                                     "1.3.6.1.2.1.33.1.1.2.0"})))
    assert got is not None and got.name == "tripplite"


def test_classic_detection_order() -> None:
    ups_mib = {"1.3.6.1.2.1.33.1.1.1.0", "1.3.6.1.2.1.33.1.1.2.0"}
    apc = {"1.3.6.1.4.1.318.1.1.1.1.1.1.0"} | ups_mib
    assert asyncio.run(select_mib("1.3.6.1.4.1.318.1.3.2.12", _probe(apc))).name == "apcc"  # type: ignore[union-attr]
    # any RFC 1628 agent: NUT 2.8.0 lists "tripplite" (the ietf table) first
    assert asyncio.run(select_mib("1.3.6.1.4.1.40614", _probe(ups_mib))).name == "tripplite"  # type: ignore[union-attr]
    assert asyncio.run(select_mib("1.3.6.1.4.1.40614", _probe(ups_mib), "ietf")).name == "ietf"  # type: ignore[union-attr]
    assert asyncio.run(select_mib("1.3.6.1.4.1.9999", _probe(set()))) is None
    assert check_oid(mib_by_name("xppc")[0]) == "1.3.6.1.4.1.935.1.1.1.1.1.1.0"


# ---- options -------------------------------------------------------------------------------

def test_v3_options_are_validated_and_secrets_stay_out_of_repr() -> None:
    p = v3_from_options({"seclevel": "authPriv", "secname": "nut", "authpassword": "secret-auth",
                         "privpassword": "secret-priv", "authprotocol": "sha256", "privprotocol": "AES"})
    assert (p.sec_level, p.auth_protocol, p.priv_protocol) == ("authPriv", "SHA256", "AES")
    assert "secret" not in repr(p)
    for bad in ({"seclevel": "authPriv", "secname": "n", "authpassword": "12345678"},   # no privPassword
                {"seclevel": "authNoPriv", "secname": "n", "authpassword": "short"},
                {"seclevel": "everything", "secname": "n"},
                {"secname": "n", "authprotocol": "SHA1024"},
                {"seclevel": "noAuthNoPriv"}):
        with pytest.raises(ConfigError):
            v3_from_options(bad)


def test_port_parsing() -> None:
    assert parse_port("10.0.0.5") == ("10.0.0.5", 161)
    assert parse_port("ups.lan:1161") == ("ups.lan", 1161)
    assert parse_port("[fe80::1]:1161") == ("fe80::1", 1161)
    assert parse_port("fe80::1") == ("fe80::1", 161)
    with pytest.raises(ConfigError):
        parse_port("ups.lan:snmp")


# ---- driver (no agent needed) --------------------------------------------------------------

def _driver(**options: str):  # type: ignore[no-untyped-def]
    from nutbridge.drivers.snmp.driver import SnmpUps
    from nutbridge.state import Device

    cfg = {"driver": "snmp-ups", "port": "127.0.0.1:1161", **options}
    return SnmpUps(Device("u", driver_name="snmp-ups"), cfg)


def test_driver_rejects_bad_options() -> None:
    for bad in ({"mibs": "nosuchmib"}, {"snmp_version": "v4"}, {"snmp_version": "v3"},
                {"pollfreq": "soon"}, {"port": "ups:snmp"}):
        with pytest.raises(ConfigError):
            _driver(**bad)
    assert _driver(mibs="mge", snmp_version="v2c").mibs == "mge"


def test_wait_heartbeats_between_polls_and_wakes_on_poke() -> None:
    import time

    async def run() -> None:
        d = _driver()
        d.pollfreq, d.pollinterval = 0.4, 0.05
        # the first period after connecting is random (spreads drivers started together)
        d._last_poll = t0 = time.monotonic()
        await d.wait()
        assert 0.04 <= time.monotonic() - t0 < 0.7
        d._last_poll = time.monotonic()
        heard = d.device.last_heard
        t0 = time.monotonic()
        await d.wait()
        # then a whole pollfreq, telling upsd the data is still current meanwhile (NUT's dataok)
        assert 0.35 <= time.monotonic() - t0 < 1.0
        assert d.device.last_heard > heard
        d._last_poll = time.monotonic()
        asyncio.get_running_loop().call_later(0.05, d.poke)
        t0 = time.monotonic()
        await d.wait()
        assert time.monotonic() - t0 < 0.3

    asyncio.run(run())


def test_first_poll_period_spreads_drivers_started_together() -> None:
    """100 UPSes configured together must not poll in one burst forever: each driver's first
    period after connecting is random between pollinterval and pollfreq."""
    import time

    async def run() -> list[float]:
        drivers = [_driver() for _ in range(20)]
        start = time.monotonic()
        for d in drivers:
            d.pollfreq, d.pollinterval = 1.0, 0.05
            d._last_poll = start

        async def first(d: SnmpUps) -> float:
            await d.wait()
            return time.monotonic() - start

        return list(await asyncio.gather(*(first(d) for d in drivers)))

    done = asyncio.run(run())
    assert all(0.04 <= t < 1.3 for t in done), done
    assert max(done) - min(done) > 0.3, done  # not one burst


def test_command_parameter_that_is_no_finite_number_is_refused() -> None:
    """An INSTCMD delay of inf/nan/garbage is not acceptable (INVALID), never an OverflowError."""
    spec = Cmd("load.off.delay", "1.3.6.1.4.1.1.1.0", param=True)
    assert command_value(spec, "20") == 20
    assert command_value(spec, None) == 1
    for bad in ("inf", "-inf", "nan", "1e999", "soon"):
        assert command_value(spec, bad) is None, bad
    assert command_value(Cmd("test.x", "1.3.6.1.4.1.1.2.0"), "5") is None  # takes no parameter
