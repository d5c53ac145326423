"""The driver socket protocol (protocol/sock.py): each writer read back by its reader, the
shapes C drivers accept or refuse, NUT's dump order, and hostile bytes on both readers."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from nutbridge.protocol import sock
from nutbridge.protocol.tokenizer import MAX_ARGS, ParseError

NAMES = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz.0123456789_"), min_size=1, max_size=40)
VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)


@given(NAMES, VALUES, st.integers(-10**6, 10**6), st.integers(-10**6, 10**6))
def test_every_driver_message_reads_back(name: str, value: str, lo: int, hi: int) -> None:
    data = b"".join([
        sock.setinfo(name, value), sock.delinfo(name), sock.addenum(name, value),
        sock.delenum(name, value), sock.addrange(name, lo, hi), sock.delrange(name, lo, hi),
        sock.setaux(name, lo), sock.setflags(name, ["RW", "STRING"]), sock.addcmd(name),
        sock.delcmd(name), sock.tracking(name, 3), sock.pid(abs(lo)), sock.DUMPDONE, sock.PONG,
        sock.DATAOK, sock.DATASTALE, sock.GOODBYE])
    clipped = value[:255]
    assert sock.DriverReader().feed(data) == [
        sock.SetInfo(name, clipped), sock.DelInfo(name), sock.AddEnum(name, clipped),
        sock.DelEnum(name, clipped), sock.AddRange(name, lo, hi), sock.DelRange(name, lo, hi),
        sock.SetAux(name, lo), sock.SetFlags(name, ("RW", "STRING")), sock.AddCmd(name),
        sock.DelCmd(name), sock.Tracking(name, 3), sock.Pid(abs(lo)), sock.DumpDone(), sock.Pong(),
        sock.DataOk(), sock.DataStale(), sock.Goodbye()]


@given(NAMES, VALUES, st.none() | VALUES, st.none() | NAMES)
def test_every_server_message_reads_back(name: str, value: str, param: str | None,
                                         tid: str | None) -> None:
    data = b"".join([sock.DUMPALL, sock.PING, sock.instcmd(name, param, tid),
                     sock.setvar(name, value, tid), sock.NOBROADCAST, sock.broadcast(False),
                     sock.broadcast(True), sock.GETPID, sock.dumpvalue(name), sock.LOGOUT])
    assert sock.ServerReader().feed(data) == [
        sock.DumpAll(), sock.Ping(), sock.InstCmd(name, None if param is None else param[:255], tid),
        sock.SetVar(name, value[:255], tid), sock.NoBroadcast(), sock.Broadcast(False),
        sock.Broadcast(True), sock.GetPid(), sock.DumpValue(name), sock.Logout()]


def test_upsd_wire_forms_as_observed() -> None:
    """The exact lines a C upsd writes (driver-socket.md §4) and how a C driver takes them."""
    r = sock.ServerReader()
    assert r.feed(b"INSTCMD test.panel.start TRACKING 2DDC5036-F665-4D29-BE4C-0374D091D263\n"
                  b"INSTCMD load.off 7 TRACKING 2DDC5036-F665-4D29-BE4C-0374D091D263\n"
                  b"INSTCMD load.off\n"
                  b'SET ups.id "new id" TRACKING 98C489FD-821C-4132-9D93-4F6590B55E63\n'
                  b'SET ups.id "a\\"b"\n') == [
        sock.InstCmd("test.panel.start", None, "2DDC5036-F665-4D29-BE4C-0374D091D263"),
        sock.InstCmd("load.off", "7", "2DDC5036-F665-4D29-BE4C-0374D091D263"),
        sock.InstCmd("load.off"),
        sock.SetVar("ups.id", "new id", "98C489FD-821C-4132-9D93-4F6590B55E63"),
        sock.SetVar("ups.id", 'a"b')]
    # a C upsd's bare, encoded parameter with a space: 4 words, refused by the driver
    assert r.feed(b"INSTCMD load.off 5 x\n") == [sock.Malformed(("INSTCMD", "load.off", "5", "x"))]
    # SET: a 4th word is ignored, 5 words need TRACKING in 4th place, 6 and more are an
    # untracked SET of the first two (observed on 2.8.0 and 2.8.5, TRACKING or not)
    assert r.feed(b"SET a b c\nSET a b c d\nSET a\nSET a b c d e\nSET a b x TRACKING t\n") == [
        sock.SetVar("a", "b"), sock.Malformed(("SET", "a", "b", "c", "d")),
        sock.Malformed(("SET", "a")), sock.SetVar("a", "b"), sock.SetVar("a", "b")]
    # command words are case-insensitive; unknown ones are just that
    assert r.feed(b"dumpall\nPiNg\ndumpstatus\nFROB x\n") == [
        sock.DumpAll(), sock.Ping(), sock.DumpValue("ups.status"), sock.Unknown(("FROB", "x"))]
    assert r.feed(b"BROADCAST\nBROADCAST -3\nBROADCAST 2\n") == [
        sock.Broadcast(True), sock.Broadcast(False), sock.Broadcast(True)]


def test_driver_lines_with_too_few_words_are_unknown() -> None:
    assert sock.DriverReader().feed(b"SETINFO x\nADDRANGE x 1\nSETAUX x\nTRACKING id\nDELINFO\n") == [
        sock.Unknown(("SETINFO", "x")), sock.Unknown(("ADDRANGE", "x", "1")),
        sock.Unknown(("SETAUX", "x")), sock.Unknown(("TRACKING", "id")), sock.Unknown(("DELINFO",))]
    # numbers as C's atoi reads them
    assert sock.DriverReader().feed(b"ADDRANGE x 12abc -7\nSETAUX y junk\nTRACKING t +4\n") == [
        sock.AddRange("x", 12, -7), sock.SetAux("y", 0), sock.Tracking("t", 4)]


def test_dump_in_a_c_drivers_order() -> None:
    """The 2.8.0 dummy-ups transcript of driver-socket.md §4, rebuilt from its parts."""
    variables = [
        sock.VarDump("ups.status", "OL", ("RW", "STRING"), aux=32),
        sock.VarDump("battery.charge", "100", ("RW",)),
        sock.VarDump("ups.id", 'a "quoted" value', ("RW", "STRING"), aux=16),
        sock.VarDump("device.mfr", "Dummy Manufacturer"),
    ]
    assert sock.dump(variables, ["load.off"], data_ok=True) == (
        b'SETINFO battery.charge "100"\n'
        b"SETFLAGS battery.charge RW\n"
        b'SETINFO device.mfr "Dummy Manufacturer"\n'
        b'SETINFO ups.id "a \\"quoted\\" value"\n'
        b"SETAUX ups.id 16\n"
        b"SETFLAGS ups.id RW STRING\n"
        b'SETINFO ups.status "OL"\n'
        b"SETAUX ups.status 32\n"
        b"SETFLAGS ups.status RW STRING\n"
        b"ADDCMD load.off\n"
        b"DATAOK\n"
        b"DUMPDONE\n")
    stale = sock.dump([sock.VarDump("x", "1", enums=["1", "2"], ranges=[(0, 5)])], ["b", "A"], False)
    assert stale == (b'DATASTALE\nSETINFO x "1"\nADDENUM x "1"\nADDENUM x "2"\nADDRANGE x 0 5\n'
                     b"ADDCMD A\nADDCMD b\nDUMPDONE\n")


def test_a_parse_error_drops_the_rest_of_that_read() -> None:
    r = sock.DriverReader()
    events = r.feed(b'SETINFO a "x#y"\nSETINFO b "2"\n' + b"PONG\n" * 200)
    # the error, then nothing of the first 512-byte read, then the PONGs of the next reads
    assert isinstance(events[0], ParseError)
    assert sock.SetInfo("b", "2") not in events
    pongs = sum(1 for e in events if e == sock.Pong())
    total = len(b'SETINFO a "x#y"\nSETINFO b "2"\n' + b"PONG\n" * 200)
    assert pongs == (total - sock.READ_SIZE) // 5
    assert r.feed(b"DUMPDONE\n") == [sock.DumpDone()]


@settings(max_examples=300)
@given(st.binary(max_size=4000), st.integers(1, 700))
def test_hostile_bytes_never_raise_and_stay_bounded(data: bytes, chunk: int) -> None:
    for reader in (sock.DriverReader(), sock.ServerReader()):
        for i in range(0, len(data), chunk):
            for ev in reader.feed(data[i:i + chunk]):
                words = getattr(ev, "words", ())
                assert len(words) <= MAX_ARGS
                assert all(len(w) <= 512 for w in words)


def test_a_flood_is_read_at_c_speed() -> None:
    """A driver that floods one endless line (or endless garbage) costs bytes scanned, not
    Python steps per byte: 8 MiB in well under the seconds a per-byte loop would take."""
    r = sock.DriverReader()
    junk = (b"x" * 65536)
    t = time.process_time()
    for _ in range(128):
        assert r.feed(junk) == []
    assert time.process_time() - t < 2.0
