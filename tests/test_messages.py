"""protocol/messages.py: every answer's writer and reader, side by side.

* writers give the exact bytes upsd (and the bridge before this module) sends;
* every writer/reader pair round-trips through the client's tokenizer, for values
  with quotes, backslashes, '#', empty strings and the longest values upsd stores;
* readers refuse malformed answers the way the client library does;
* the client library maps reader errors to NutError; ERR codes become ``Err``;
* the whole-state push API (``client.push.UpsStates`` / ``watch``), sans-IO and
  against a real bridge.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nutbridge.client import NutClient, NutError, check_err
from nutbridge.client.push import Update, UpsState, UpsStates, watch
from nutbridge.protocol import messages as m
from nutbridge.protocol.errors import Err
from nutbridge.protocol.wire import MAX_ANSWER, MAX_VALUE, encode
from tests.support import realnut
from tests.support.realnut import BridgeProcess, NutConfig

PROPS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])

# What a value may hold on the wire: the tokenizer keeps 0x20-0x7F (DEL included).
chars = st.characters(min_codepoint=0x20, max_codepoint=0x7F)
special = st.sampled_from(['"', "\\", "#", " ", "=", "'", "\x7f"])
any_text = st.text(st.one_of(chars, special), max_size=300)
# upsd stores values escaped in at most 255 bytes (MAX_VALUE)
value = any_text.filter(lambda v: len(encode(v)) <= MAX_VALUE)
name = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._-"), min_size=1, max_size=40)
ups = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_-"), min_size=1, max_size=30)
# DESC texts go out unescaped (as upstream): texts without the three special bytes
desc_text = st.text(chars.filter(lambda c: c not in '"\\#'), max_size=200)


def read(line: str) -> tuple[str, ...]:
    assert line.endswith("\n") and line.count("\n") == 1 and len(line) <= MAX_ANSWER
    return m.split(line[:-1])


# ---- exact bytes ---------------------------------------------------------------------


def test_writers_give_upsds_bytes() -> None:
    assert m.err(Err.UNKNOWN_UPS) == "ERR UNKNOWN-UPS\n"
    assert m.err(Err.ACCESS_DENIED, '"SSL handshake failed"') == 'ERR ACCESS-DENIED "SSL handshake failed"\n'
    assert m.var("ups", "ups.status", "OL") == 'VAR ups ups.status "OL"\n'
    assert m.var("u", "x", 'a "q" #1 \\ z') == 'VAR u x "a \\"q\\" \\#1 \\\\ z"\n'
    assert m.var("u", "x", "") == 'VAR u x ""\n'
    assert m.vartype("u", "x", ["RW", "ENUM", "STRING:16"]) == "TYPE u x RW ENUM STRING:16\n"
    assert m.vartype("u", "x", ["NUMBER"]) == "TYPE u x NUMBER\n"
    assert m.desc("u", "x", "Battery charge (percent)") == 'DESC u x "Battery charge (percent)"\n'
    assert m.cmddesc("u", "load.off", "Turn off the load") == 'CMDDESC u load.off "Turn off the load"\n'
    assert m.upsdesc("u", 'a "b"') == 'UPSDESC u "a \\"b\\""\n'
    assert m.numlogins("u", 2) == "NUMLOGINS u 2\n"
    assert m.list_begin("VAR", "u") == "BEGIN LIST VAR u\n"
    assert m.list_end("UPS") == "END LIST UPS\n"
    assert m.ups_item("u", "#1") == 'UPS u "\\#1"\n'
    assert m.rw_item("u", "x", "1") == 'RW u x "1"\n'
    assert m.cmd_item("u", "load.off") == "CMD u load.off\n"
    assert m.enum_item("u", "x", "on") == 'ENUM u x "on"\n'
    assert m.range_item("u", "x", 10, 90) == 'RANGE u x "10" "90"\n'
    assert m.client_item("u", "127.0.0.1") == "CLIENT u 127.0.0.1\n"
    assert m.event_item("*", '{"a":"b"}') == 'EVENT * "{\\"a\\":\\"b\\"}"\n'
    assert m.list_block(("CMD", "u"), [m.cmd_item("u", "a"), m.cmd_item("u", "b")]) == (
        "BEGIN LIST CMD u\nCMD u a\nCMD u b\nEND LIST CMD u\n")
    assert m.list_block(("CLIENT", "u"), []) == "BEGIN LIST CLIENT u\nEND LIST CLIENT u\n"
    assert (m.OK, m.OK_GOODBYE, m.OK_STARTTLS, m.OK_FSD_SET, m.OK_SUBSCRIBED) == (
        "OK\n", "OK Goodbye\n", "OK STARTTLS\n", "OK FSD-SET\n", "OK SUBSCRIBED\n")
    assert m.granted("PRIMARY") == "OK PRIMARY-GRANTED\n"
    assert m.ok(None) == "OK\n"
    tid = "0B5A4E9C-1111-2222-3333-444455556666"
    assert m.ok(tid) == f"OK TRACKING {tid}\n"
    assert (m.tracking_flag(True), m.tracking_flag(False)) == ("ON\n", "OFF\n")
    assert [m.tracking_result(s) for s in (-1, 0, 1, 2, 3, 4, 99, None)] == [
        "PENDING\n", "SUCCESS\n", "ERR UNKNOWN\n", "ERR INVALID-ARGUMENT\n", "ERR FAILED\n",
        "ERR INVALID-ARGUMENT\n", "ERR UNKNOWN\n", "ERR UNKNOWN\n"]
    assert m.update_begin("u") == "BEGIN UPDATE u\n"
    assert m.delvar("u", "x") == "DELVAR u x\n"
    assert m.update_state("u", "DATA-STALE") == "STATE u DATA-STALE\n"
    assert m.update_end("u") == "END UPDATE u\n"
    assert m.event_room("*") == 512 - len("EVENT *") - 4


def test_every_err_code() -> None:
    for code in Err:
        line = m.err(code)
        assert line == f"ERR {code.value}\n" == code.line()
        reply = m.parse_err(line[:-1])
        assert reply is not None and reply.code is code and reply.extra == ""


def test_core_spells_no_answer_by_hand() -> None:
    from nutbridge.server import core

    source = Path(core.__file__).read_text()
    assert "ERR " not in source and "clip(" not in source and "encode(" not in source


def test_lines_stay_within_the_answer_buffer() -> None:
    # exactly 512 bytes is sent whole; one more is cut, keeping the newline
    v = "v" * MAX_VALUE
    room = MAX_ANSWER - len(m.var("", "x", v))  # for the UPS name
    line = m.var("u" * room, "x", v)
    assert len(line) == MAX_ANSWER and read(line) == ("VAR", "u" * room, "x", v)
    line = m.var("u" * (room + 1), "x", v)
    assert len(line) == MAX_ANSWER and line.endswith('v\n')
    for writer in (m.list_begin, m.list_end):
        assert len(writer("VAR", "u" * 600)) == MAX_ANSWER
    assert len(m.client_item("u" * 600, "::1")) == MAX_ANSWER


# ---- round trips ---------------------------------------------------------------------


@PROPS
@given(ups, name, value)
def test_var_round_trip(u: str, n: str, v: str) -> None:
    assert m.parse_var(read(m.var(u, n, v))) == (u, n, v)
    assert m.parse_list_item(read(m.rw_item(u, n, v)), ("RW", u)) == (n, v)
    assert m.parse_list_item(read(m.enum_item(u, n, v)), ("ENUM", u, n)) == (v,)
    assert m.parse_push(read(m.var(u, n, v))) == m.UpdateVar(u, n, v)


@PROPS
@given(ups, value)
def test_desc_round_trips(u: str, v: str) -> None:
    assert m.parse_upsdesc(read(m.upsdesc(u, v))) == (u, v)
    assert m.parse_list_item(read(m.ups_item(u, v)), ("UPS",)) == (u, v)
    text = json.dumps({"d": v})
    assume(len(m.event_item(u, text)) < MAX_ANSWER)
    assert m.parse_event_item(read(m.event_item(u, text)), u) == {"d": v}


@PROPS
@given(ups, name, desc_text)
def test_unescaped_desc_round_trip(u: str, n: str, text: str) -> None:
    assert m.parse_desc(read(m.desc(u, n, text))) == (u, n, text)
    assert m.parse_cmddesc(read(m.cmddesc(u, n, text))) == (u, n, text)


@PROPS
@given(ups, name, st.lists(st.sampled_from(["RW", "ENUM", "RANGE", "NUMBER", "STRING:32"]), min_size=1,
                           max_size=5),
       st.integers(0, 10**6), st.integers(-10**6, 10**6), st.integers(-10**6, 10**6))
def test_typed_round_trips(u: str, n: str, types: list[str], count: int, lo: int, hi: int) -> None:
    assert m.parse_vartype(read(m.vartype(u, n, types))) == (u, n, tuple(types))
    assert m.parse_numlogins(read(m.numlogins(u, count))) == (u, count)
    assert m.parse_list_item(read(m.range_item(u, n, lo, hi)), ("RANGE", u, n)) == (str(lo), str(hi))
    assert m.parse_list_item(read(m.cmd_item(u, n)), ("CMD", u)) == (n,)
    assert m.parse_list_item(read(m.client_item(u, n)), ("CLIENT", u)) == (n,)
    m.parse_list_begin(read(m.list_begin("VAR", u)), ("VAR", u.upper()))  # names match in any case
    assert m.is_list_end(read(m.list_end("VAR", u)))
    assert m.parse_push(read(m.update_begin(u))) == m.UpdateBegin(u)
    assert m.parse_push(read(m.delvar(u, n))) == m.UpdateDelvar(u, n)
    assert m.parse_push(read(m.update_state(u, "WAIT"))) == m.UpdateState(u, "WAIT")
    assert m.parse_push(read(m.update_end(u))) == m.UpdateEnd(u)


@PROPS
@given(st.sampled_from(list(Err)), st.text(chars, max_size=40))
def test_err_round_trip(code: Err, extra: str) -> None:
    reply = m.parse_err(m.err(code, extra)[:-1])
    assert reply == m.ErrReply(code, extra)


@PROPS
@given(st.text(st.sampled_from("0123456789ABCDEF-"), min_size=1, max_size=36), st.booleans())
def test_tracking_round_trips(tid: str, on: bool) -> None:
    assert m.parse_ok(m.ok(tid)[:-1]) == tid
    assert m.parse_ok(m.ok(None)[:-1]) is None
    assert m.parse_tracking_flag(m.tracking_flag(on)[:-1]) is on
    assert m.parse_tracking_result(m.tracking_result(-1)[:-1]) == "PENDING"
    assert m.parse_tracking_result(m.tracking_result(0)[:-1]) == "SUCCESS"
    with pytest.raises(m.ErrorAnswer) as exc:
        m.parse_tracking_result(m.tracking_result(3)[:-1])
    assert exc.value.code is Err.FAILED


# ---- readers refuse what the client refuses ------------------------------------------


def test_err_reading_is_the_clients() -> None:
    assert m.parse_err("OK") is None
    assert m.parse_err("VAR u x \"ERR\"") is None
    assert m.parse_err("ERR") == m.ErrReply("", "")
    assert m.parse_err("ERR DATA-STALE") == m.ErrReply(Err.DATA_STALE, "")
    assert m.parse_err("ERR NEW-CODE some more words") == m.ErrReply("NEW-CODE", "some more words")
    assert m.parse_err("ERRATIC") == m.ErrReply("", "")  # NUT's client: any line starting ERR
    with pytest.raises(NutError) as exc:
        check_err("ERR UNKNOWN-UPS")
    assert exc.value.code is Err.UNKNOWN_UPS and exc.value.code == "UNKNOWN-UPS"
    assert exc.value.text == "Unknown UPS" and exc.value.answer == "ERR UNKNOWN-UPS"
    with pytest.raises(NutError) as exc:
        check_err("ERR PASSWORD-INCORRECT")  # older servers' code: kept as text
    assert type(exc.value.code) is str and exc.value.text == "Password incorrect"
    check_err("OK")


@pytest.mark.parametrize(("reader", "words"), [
    (m.parse_var, ("VAR", "u", "x")),
    (m.parse_var, ("RW", "u", "x", "1")),
    (m.parse_var, ()),
    (m.parse_vartype, ("TYPE", "u", "x")),
    (m.parse_desc, ("CMDDESC", "u", "x", "d")),
    (m.parse_cmddesc, ("CMDDESC", "u", "x")),
    (m.parse_upsdesc, ("UPSDESC", "u")),
    (m.parse_numlogins, ("NUMLOGINS", "u", "two")),
    (m.parse_numlogins, ("NUMLOGINS", "u")),
])
def test_readers_refuse_malformed_answers(reader: object, words: tuple[str, ...]) -> None:
    with pytest.raises(m.MalformedAnswer):
        reader(words)  # type: ignore[operator]


def test_get_and_list_reading() -> None:
    assert m.parse_var(("var", "u", "x", "1", "extra")) == ("u", "x", "1")  # as the client: case, extras
    assert m.reply_tail(("VAR", "UPS", "X", "1"), ("VAR", "ups", "x")) == ("1",)
    for words in [("VAR", "ups", "x"), ("VAR", "other", "x", "1"), ("TYPE", "ups", "x", "1")]:
        with pytest.raises(m.MalformedAnswer):
            m.reply_tail(words, ("VAR", "ups", "x"))
    with pytest.raises(m.MalformedAnswer):
        m.parse_list_begin(("BEGIN", "LIST", "VAR", "other"), ("VAR", "ups"))
    with pytest.raises(m.MalformedAnswer):
        m.parse_list_begin(("VAR", "ups", "x", "1"), ("VAR", "ups"))
    with pytest.raises(m.MalformedAnswer):
        m.parse_list_item(("RW", "ups", "x", "1"), ("VAR", "ups"))
    assert m.parse_list_item(("VAR", "ups"), ("VAR", "ups")) == ()  # the caller decides
    assert m.is_list_end(("END", "LIST")) and not m.is_list_end(("END",))
    bad_events = [("EVENT", "*", "[1]"), ("EVENT", "*", "{"), ("EVENT", "u", "{}"), ("EVENT", "*", "{}", "x")]
    for words in bad_events:
        with pytest.raises(m.MalformedAnswer):
            m.parse_event_item(words, "*")
    for line in ['VAR u x "unterminated', 'VAR u x "a#b"']:
        with pytest.raises(m.MalformedAnswer):
            m.split(line)
    with pytest.raises(m.MalformedAnswer):
        m.parse_ok("VAR u x 1")
    assert m.parse_ok("OK Goodbye") is None
    with pytest.raises(m.MalformedAnswer):
        m.parse_tracking_flag("on")
    assert m.parse_starttls("OK STARTTLS") and not m.parse_starttls("OK")


def test_push_reading() -> None:
    m.parse_subscribed(("OK", "SUBSCRIBED"))
    for words, code in [(("ERR", "UNKNOWN-COMMAND"), Err.UNKNOWN_COMMAND), (("ERR",), "UNKNOWN"),
                        (("ERR", "WHAT"), "WHAT")]:
        with pytest.raises(m.ErrorAnswer) as exc:
            m.parse_subscribed(words)
        assert exc.value.code == code
    with pytest.raises(m.MalformedAnswer):
        m.parse_subscribed(("OK",))
    # tolerant as the client always was: short or unknown lines are skipped
    assert m.parse_push(()) is None
    assert m.parse_push(("VAR", "u", "x")) is None
    assert m.parse_push(("DELVAR", "u")) is None
    assert m.parse_push(("NOISE", "u", "x")) is None
    assert m.parse_push(("END",)) == m.UpdateEnd("")


# ---- the client reads through the readers ----------------------------------------------


async def _serve(answers: dict[bytes, bytes]) -> tuple[asyncio.Server, int]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while line := await r.readline():
            w.write(answers.get(line, b"ERR UNKNOWN-COMMAND\n"))
            await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_client_reads_typed_answers() -> None:
    server, port = await _serve({
        b"GET VAR u x\n": b'VAR u x "a \\"b\\" \\#"\n',
        b"GET TYPE u x\n": b"TYPE u x RW STRING:8\n",
        b"GET NUMLOGINS u\n": b"NUMLOGINS u 3\n",
        b"GET NUMLOGINS v\n": b"NUMLOGINS v lots\n",
        b"GET UPSDESC u\n": b'UPSDESC u "Main"\n',
        b"GET DESC u x\n": b"ERR DATA-STALE\n",
        b"GET TRACKING\n": b"ON\n",
        b"GET TRACKING T1\n": b"ERR FAILED\n",
        b"LIST RANGE u x\n": b'BEGIN LIST RANGE u x\nRANGE u x "1" "9"\nEND LIST RANGE u x\n',
        b"SET VAR u x 1\n": b"OK TRACKING T1\n",
    })
    async with server, NutClient("127.0.0.1", port, timeout=2) as c:
        assert await c.get_var("u", "x") == 'a "b" #'
        assert await c.get_type("u", "x") == ("RW", "STRING:8")
        assert await c.get_numlogins("u") == 3
        with pytest.raises(NutError) as exc:
            await c.get_numlogins("v")
        assert exc.value.code == "PROTOCOL-ERROR" and exc.value.answer == "NUMLOGINS v lots"
        assert await c.get_upsdesc("u") == "Main"
        with pytest.raises(NutError) as exc:
            await c.get_desc("u", "x")
        assert exc.value.code is Err.DATA_STALE
        assert await c.get_tracking() is True
        with pytest.raises(NutError) as exc:
            await c.tracking_status("T1")
        assert exc.value.code is Err.FAILED
        assert await c.list_range("u", "x") == [("1", "9")]
        assert await c.set_var("u", "x", "1") == "T1"


# ---- whole UPS states ----------------------------------------------------------------


def test_states_merge_batches() -> None:
    states = UpsStates()
    s = states.apply(Update("u", {"a": "1", "b": "2"}), snapshot=True)
    assert dict(s.variables) == {"a": "1", "b": "2"} and s.snapshot and s.available and s.error is None
    s = states.apply(Update("u", {"b": "3"}, {"a"}))
    assert dict(s.variables) == {"b": "3"} and s.changed == {"b"} and s.deleted == {"a"}
    assert not s.snapshot
    s = states.apply(Update("u", {}, set(), "DATA-STALE"))
    assert dict(s.variables) == {"b": "3"} and not s.available and s.error == "DATA-STALE"
    # a new connection's snapshot replaces the variables; an empty one keeps the last known
    s = states.apply(Update("u", {}, set(), "DRIVER-NOT-CONNECTED"), snapshot=True)
    assert dict(s.variables) == {"b": "3"} and s.error == "DRIVER-NOT-CONNECTED"
    s = states.apply(Update("u", {"c": "4"}, set(), "WAIT"), snapshot=True)
    assert dict(s.variables) == {"c": "4"} and s.available
    states.apply(Update("v", {"x": "1"}), snapshot=True)
    assert set(states) == {"u", "v"} and states["u"] is s and len(states) == 2
    old = states["v"]
    states.apply(Update("v", {"x": "2"}))
    assert old.variables == {"x": "1"}  # a state once yielded does not change
    with pytest.raises(TypeError):
        old.variables["x"] = "3"  # type: ignore[index]
    states.forget("v")
    assert "v" not in states


def _cfg(tmp_path: Path) -> NutConfig:
    cfg = NutConfig(tmp_path / "nut")
    cfg.root.mkdir(parents=True, exist_ok=True)
    (cfg.root / "d.dev").write_text("ups.status: OL\nbattery.charge: 90\nups.note: hello\n")
    cfg.add_ups("dummy", driver="dummy-ups", port=str(cfg.root / "d.dev"))
    cfg.add_ups("other", driver="dummy-ups", port=str(cfg.root / "d.dev"))
    return cfg


def test_watch_yields_whole_states_from_a_bridge(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with BridgeProcess.start(cfg):
        realnut.wait_ready_ups(cfg.port, ["dummy", "other"])

        async def next_state(it: object, want: str) -> UpsState:
            async def go() -> UpsState:
                async for s in it:  # type: ignore[attr-defined]
                    if s.ups == want:
                        return s
                raise AssertionError("stream ended")
            return await asyncio.wait_for(go(), 20)

        async def go() -> None:
            states = UpsStates()
            it = states.follow("127.0.0.1", cfg.port)
            first = await next_state(it, "dummy")
            assert first.snapshot and first.available and first.state == "OK"
            assert first.variables["battery.charge"] == "90" and first.variables["ups.note"] == "hello"
            assert "dummy" in states
            async with NutClient("127.0.0.1", cfg.port) as c:
                await c.authenticate("admin", "s3cr3t")
                await c.set_var("dummy", "battery.charge", "42")
                s = await next_state(it, "dummy")
                assert not s.snapshot and s.changed == {"battery.charge"}
                # the whole state: what did not change is there too
                assert s.variables == {**first.variables, "battery.charge": "42"}
                await c.set_var("dummy", "ups.note", "")  # dummy-ups deletes the variable
                while "ups.note" in s.variables:
                    s = await next_state(it, "dummy")
                assert "ups.note" in s.deleted and s.variables["battery.charge"] == "42"
                assert states["dummy"] is s and states["other"].variables["battery.charge"] == "90"
            (cfg.root / "d.dev").unlink()  # the device goes away: pushed as a state change
            while s.available:
                s = await next_state(it, "dummy")
            assert s.error == "DATA-STALE" and s.variables["battery.charge"] == "42"
            await it.aclose()  # type: ignore[attr-defined]

            # watch(): the same without keeping the states object
            w = watch("127.0.0.1", cfg.port, ["other"])
            s = await next_state(w, "other")
            assert s.snapshot and s.variables["battery.charge"] == "90"
            await w.aclose()  # type: ignore[attr-defined]

        asyncio.run(go())
