"""powerman-pdu: the powermand client protocol, our driver against the real powermand, and
NUT's own powerman-pdu on the same daemon.

The real peer is Debian's powermand (2.3.27 on Debian 12, 2.4.4 in sid) with a virtual
power controller behind it (tests/support/powerman.py: vpcd where packaged, else a
stand-in speaking vpcd's protocol). Plug states are checked with powerman's own
``pm -q``, never through our code. Protocol corner cases a real daemon will not produce
on demand (no ``exprange``, replies split anywhere, silence, garbage) use a small
scripted server in this file.

test_differential_vs_nut compares upsd's answers for NUT's powerman-pdu and ours on the
same powermand (variables, commands, RW list, types, command description, INSTCMD answers,
the plugs' states afterwards). Normalisations, and nothing else:

* driver.* variables are not compared (versions, parameters);
* NUT's ``ups.status`` "WAIT" is removed (the C upsd's placeholder, never replaced since
  powerman-pdu sends no status); ours must have no ``ups.status`` at all (docs/powerman.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nutbridge.drivers import driver_class
from nutbridge.drivers.base import ConfigError, DeviceError, Status
from nutbridge.drivers.powerman import protocol as pw
from nutbridge.drivers.powerman.driver import PowermanClient, PowermanPDU
from nutbridge.state import Device
from tests.support import powerman as rig
from tests.support import realnut, serialsim

# ---- sans-IO ------------------------------------------------------------------------------

STATUS_COMPRESSED = (b"302 on:      t3\r\n302 off:     t[0-2,4-15]\r\n302 unknown: \r\n"
                     b"103 Query complete\r\npowerman> ")


def test_parse_reply() -> None:
    r = pw.parse_reply(STATUS_COMPRESSED)
    assert (r.code, r.text, r.ok) == (103, "Query complete", True)
    assert r.lines(302) == ["on:      t3", "off:     t[0-2,4-15]", "unknown: "]
    r = pw.parse_reply(b"209 No such nodes: nosuch\r\npowerman> ")
    assert (r.code, r.ok, r.info) == (209, False, ())
    assert pw.parse_reply(b"001 2.3.27\r\npowerman> ").text == "2.3.27"
    assert pw.parse_reply(b"105 Hostrange expansion ON\npowerman> ").code == 105  # CR optional


@pytest.mark.parametrize("raw", [b"powerman> ", b"303 t0: on\r\npowerman> ", b"hello\r\npowerman> ",
                                 b"12 short\r\npowerman> "])
def test_parse_reply_rejects(raw: bytes) -> None:
    with pytest.raises(pw.PowermanError):
        pw.parse_reply(raw)


@pytest.mark.parametrize(("text", "nodes"), [
    ("t[0-2,4-6]", ["t0", "t1", "t2", "t4", "t5", "t6"]),
    ("t3", ["t3"]),
    ("", []),
    ("  ", []),
    ("a,b[08-10],c", ["a", "b08", "b09", "b10", "c"]),
    ("n[1-2]-ib,x[7]", ["n1-ib", "n2-ib", "x7"]),
    ("node[0-1],node[5]", ["node0", "node1", "node5"]),
    ("rack[9-11]", ["rack9", "rack10", "rack11"]),
])
def test_expand_hostlist(text: str, nodes: list[str]) -> None:
    assert pw.expand_hostlist(text) == nodes


@pytest.mark.parametrize("bad", ["t[", "t]", "t[1-", "t[a-b]", "t[5-1]", "t[[1]]", "t[1][2]"])
def test_expand_hostlist_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        pw.expand_hostlist(bad)


def test_parse_status_both_forms() -> None:
    compressed = pw.parse_status(pw.parse_reply(STATUS_COMPRESSED))
    assert compressed["t3"] == "on" and len(compressed) == 16
    assert {k for k, v in compressed.items() if v == "off"} == {f"t{i}" for i in range(16)} - {"t3"}
    expanded = pw.parse_status(pw.parse_reply(
        b"303 t0: off\r\n303 t3: on\r\n303 t9: unknown\r\n303 t10: bogus\r\n103 Query complete\r\n"
        b"powerman> "))
    assert expanded == {"t0": "off", "t3": "on", "t9": "unknown", "t10": "unknown"}


def test_parse_nodes_both_forms() -> None:
    assert pw.parse_nodes(pw.parse_reply(b"306 t[0-3]\r\n103 Query complete\r\npowerman> ")) == [
        "t0", "t1", "t2", "t3"]
    assert pw.parse_nodes(pw.parse_reply(
        b"307 t0\r\n307 t1\r\n307 pdu-a\r\n103 Query complete\r\npowerman> ")) == ["t0", "t1", "pdu-a"]


@pytest.mark.parametrize(("port", "addr"), [
    ("localhost", ("localhost", 10101)), ("127.0.0.1:10200", ("127.0.0.1", 10200)),
    ("[::1]:10102", ("::1", 10102)), ("[::1]", ("::1", 10101)), (" pm.lan:1 ", ("pm.lan", 1)),
])
def test_parse_address(port: str, addr: tuple[str, int]) -> None:
    assert pw.parse_address(port) == addr


@pytest.mark.parametrize("port", ["", "host:", "host:0", "host:99999", "a b", "::1"])
def test_parse_address_rejects(port: str) -> None:
    with pytest.raises(ConfigError):
        pw.parse_address(port)


def test_registered() -> None:
    assert driver_class("powerman-pdu", {"port": "localhost"}) is PowermanPDU
    with pytest.raises(ConfigError):
        PowermanPDU(Device("p"), {"driver": "powerman-pdu", "port": "a b"})


# ---- a scripted powermand for what the real one will not do on demand --------------------------

class FakePowermand:
    """Answers like powermand 2.3 over TCP; knobs break it in the ways a real one can."""

    def __init__(self, nodes: list[str], *, exprange: bool = True, chunk: int = 0,
                 answers: dict[str, bytes] | None = None) -> None:
        self.nodes = nodes
        self.state = dict.fromkeys(nodes, "off")
        self.exprange_ok = exprange
        self.chunk = chunk  # >0: write replies in pieces of this size, slowly
        self.answers = answers or {}  # request -> canned raw reply
        self.silent = False
        self.received: list[str] = []
        self.clients: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FakePowermand:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.clients:  # like a killed daemon: drop every connection
            w.close()
        await self.server.wait_closed()

    async def _send(self, w: asyncio.StreamWriter, data: bytes) -> None:
        step = self.chunk or len(data)
        for i in range(0, len(data), step):
            w.write(data[i:i + step])
            await w.drain()
            if self.chunk:
                await asyncio.sleep(0.001)

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.clients.append(w)
        try:
            await self._dialogue(r, w)
        except ConnectionError:
            pass  # the client hung up first
        w.close()

    async def _dialogue(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        expanded = False
        await self._send(w, b"001 2.3.27\r\npowerman> ")
        while line := await r.readline():
            req = line.decode().strip()
            self.received.append(req)
            if self.silent:
                continue
            word, _, arg = req.partition(" ")
            if req in self.answers:
                out = self.answers[req]
            elif word == "exprange" and self.exprange_ok:
                expanded = not expanded
                out = f"105 Hostrange expansion {'ON' if expanded else 'OFF'}\r\n".encode()
            elif word == "nodes":
                out = (b"".join(f"307 {n}\r\n".encode() for n in self.nodes) if expanded
                       else f"306 {','.join(self.nodes)}\r\n".encode()) + b"103 Query complete\r\n"
            elif word == "status" and not arg:
                if expanded:
                    out = b"".join(f"303 {n}: {s}\r\n".encode() for n, s in self.state.items())
                else:
                    out = b"".join(
                        f"302 {st}: {','.join(n for n, s in self.state.items() if s == st)}\r\n".encode()
                        for st in ("on", "off", "unknown"))
                out += b"103 Query complete\r\n"
            elif word in ("on", "off", "cycle"):
                if arg not in self.state:
                    out = f"209 No such nodes: {arg}\r\n".encode()
                else:
                    self.state[arg] = "off" if word == "off" else "on"
                    out = b"102 Command completed successfully\r\n"
            elif word == "quit":
                await self._send(w, b"101 Goodbye\r\n")
                return
            else:
                out = b"201 Unknown command\r\n"
            await self._send(w, out + b"powerman> ")


async def _driver(port: int, **opts: str) -> PowermanPDU:
    drv = PowermanPDU(Device("p", driver_name="powerman-pdu"),
                      {"driver": "powerman-pdu", "port": f"127.0.0.1:{port}", **opts})
    await drv.connect()
    return drv


async def test_without_exprange_compressed_lists() -> None:
    # a server that does not know exprange (201) still lists and reports every node
    async with FakePowermand(["n01", "n02", "n03", "sw1"], exprange=False) as srv:
        srv.answers["nodes"] = b"306 n[01-03],sw1\r\n103 Query complete\r\n"
        drv = await _driver(srv.port)
        try:
            assert drv.client is not None and not drv.client.expanded
            srv.state["n02"] = "on"
            await drv.update()
            dev = drv.device
            assert [dev.value(f"outlet.{n}.desc") for n in range(1, 5)] == ["n01", "n02", "n03", "sw1"]
            assert [dev.value(f"outlet.{n}.status") for n in range(1, 5)] == ["off", "on", "off", "off"]
            assert await drv.instcmd("outlet.4.load.on", None) == Status.HANDLED
            assert srv.received[-1] == "on sw1"
        finally:
            await drv.close()
        assert srv.received[0] == "exprange" and srv.received[-1] == "quit"


async def test_replies_split_anywhere() -> None:
    # TCP may cut a reply anywhere, even inside the prompt: read up to the prompt
    async with FakePowermand([f"t{i}" for i in range(40)], chunk=3) as srv:
        drv = await _driver(srv.port)
        try:
            srv.state["t33"] = "on"
            await drv.update()
            assert drv.device.value("outlet.34.status") == "on"
            assert drv.device.value("outlet.40.desc") == "t39"
        finally:
            await drv.close()


@pytest.mark.parametrize(("code", "status"), [
    (b"209 No such nodes: t1", Status.INVALID),
    (b"213 Command cannot be handled by power control device(s)", Status.FAILED),
    (b"210 Command completed with errors", Status.FAILED),
    (b"208 Command in progress", Status.FAILED),
])
async def test_command_error_codes(code: bytes, status: Status) -> None:
    async with FakePowermand(["t0", "t1"]) as srv:
        drv = await _driver(srv.port)
        try:
            srv.answers["cycle t1"] = code + b"\r\n"
            assert await drv.instcmd("outlet.2.load.cycle", None) == status
            # the connection is still good afterwards
            await drv.update()
            assert await drv.instcmd("outlet.1.load.on", None) == Status.HANDLED
            assert await drv.instcmd("outlet.3.load.on", None) == Status.UNKNOWN  # no such outlet
            assert await drv.instcmd("outlet.1.load.toggle", None) == Status.UNKNOWN
            assert await drv.instcmd("load.off", None) == Status.UNKNOWN
            assert srv.received[-1] == "on t0"
        finally:
            await drv.close()


async def test_query_error_and_garbage_make_stale() -> None:
    async with FakePowermand(["t0"]) as srv:
        drv = await _driver(srv.port)
        try:
            srv.answers["status"] = b"211 Query completed with errors\r\n"
            with pytest.raises(DeviceError, match="211"):
                await drv.update()
            srv.answers["status"] = b"303 t0: on\r\nthis is not powerman\r\n"
            with pytest.raises(DeviceError):
                await drv.update()
        finally:
            await drv.close()


async def test_silent_daemon_times_out_and_resyncs() -> None:
    async with FakePowermand(["t0", "t1"]) as srv:
        drv = PowermanPDU(Device("p"), {"port": f"127.0.0.1:{srv.port}"})
        client = PowermanClient("127.0.0.1", srv.port, timeout=0.3)
        await client.connect()
        drv.client = client
        drv.nodes = ["t0", "t1"]
        srv.silent = True
        t0 = time.monotonic()
        with pytest.raises(DeviceError):
            await drv.update()
        assert time.monotonic() - t0 < 2
        # the connection is dropped, so a late reply can never answer a later request
        assert drv.client._writer is None
        assert await drv.instcmd("outlet.1.load.on", None) == Status.FAILED
        await drv.close()


async def test_bad_greeting_and_no_nodes() -> None:
    async with FakePowermand([]) as srv:
        with pytest.raises(DeviceError, match="no nodes"):
            await _driver(srv.port)
    async with FakePowermand(["t0"]) as srv:
        srv.answers["nodes"] = b"306 t[0-\r\n103 Query complete\r\n"
        with pytest.raises(pw.PowermanError, match="hostlist"):
            await _driver(srv.port)
    with pytest.raises(DeviceError):
        await _driver(realnut.free_port())  # nobody listening


async def test_run_loop_goes_stale_and_recovers() -> None:
    async with FakePowermand(["t0", "t1"]) as srv:
        port = srv.port
        drv = PowermanPDU(Device("p"), {"port": f"127.0.0.1:{port}", "pollinterval": "0.2"})
        task = asyncio.create_task(drv.run())
        try:
            for _ in range(50):
                if drv.device.value("outlet.2.status") == "off" and drv.device.driver_state.name == "OK":
                    break
                await asyncio.sleep(0.05)
            assert drv.device.driver_state.name == "OK"
            await srv.__aexit__()
            for _ in range(50):
                if drv.device.driver_state.name != "OK":
                    break
                await asyncio.sleep(0.05)
            assert drv.device.driver_state.name == "STALE"
            srv2 = FakePowermand(["t0", "t1", "t2"])
            srv2.server = await asyncio.start_server(srv2._serve, "127.0.0.1", port)
            t0 = time.monotonic()
            while drv.device.driver_state.name != "OK" and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.05)
            assert drv.device.driver_state.name == "OK"
            assert drv.device.value("outlet.3.desc") == "t2"  # the new node list
            assert drv.device.has_cmd("outlet.3.load.cycle")
            await srv2.__aexit__()
        finally:
            drv.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# ---- against the real powermand ----------------------------------------------------------------

@pytest.fixture
def powermand(tmp_path: Path) -> Iterator[rig.PowermanRig]:
    realnut.require("powermand (apt-get install powerman)", rig.powermand())
    realnut.require("pm (apt-get install powerman)", rig.pm_client())
    with rig.PowermanRig(tmp_path / "powerman") as r:
        yield r


@pytest.mark.interop
def test_rig_protocol_transcript(powermand: rig.PowermanRig) -> None:
    """What our parser relies on, as the installed powermand says it."""
    hello, exp, nodes, status, nosuch, bogus, exp_off, comp = powermand.raw(
        "exprange", "nodes", "status", "on nosuch", "bogus", "exprange", "status")
    assert hello.startswith(b"001 ") and hello.endswith(b"\r\npowerman> ")
    assert exp == b"105 Hostrange expansion ON\r\npowerman> "
    assert pw.parse_nodes(pw.parse_reply(nodes)) == powermand.nodes
    assert set(pw.parse_status(pw.parse_reply(status)).values()) == {"off"}
    assert pw.parse_reply(nosuch).code == pw.CP_NOSUCHNODES
    assert pw.parse_reply(bogus).code == pw.CP_UNKNOWN
    assert exp_off.startswith(b"105 Hostrange expansion OFF")
    assert pw.parse_status(pw.parse_reply(comp)) == pw.parse_status(pw.parse_reply(status))


@pytest.mark.interop
async def test_driver_against_powermand(powermand: rig.PowermanRig) -> None:
    await asyncio.to_thread(powermand.pm, "-1", "t3")
    drv = await _driver(powermand.port)
    try:
        await drv.update()
        dev = drv.device
        want = powermand.states()
        assert len(want) == 16
        for n, node in enumerate(powermand.nodes, 1):
            assert dev.value(f"outlet.{n}.desc") == node
            assert dev.value(f"outlet.{n}.id") == str(n)
            assert dev.value(f"outlet.{n}.switchable") == "yes"
            assert dev.value(f"outlet.{n}.status") == want[node], node
        assert dev.value("device.type") == "pdu"
        for action, state in (("on", "on"), ("off", "off"), ("cycle", "on")):
            assert await drv.instcmd(f"outlet.8.load.{action}", None) == Status.HANDLED
            got = await asyncio.to_thread(powermand.states)
            assert got["t7"] == state, action
            await drv.update()
            assert dev.value("outlet.8.status") == state
    finally:
        await drv.close()


def _upsc(port: int, ups: str) -> dict[str, str]:
    exe = realnut.require_client("upsc")
    p = realnut.run_tool([exe, f"{ups}@127.0.0.1:{port}"])
    assert p.returncode == 0, p.stderr
    return dict(line.split(": ", 1) for line in p.stdout.decode().splitlines() if ": " in line)


def _upscmd(port: int, ups: str, cmd: str) -> str:
    exe = realnut.require_client("upscmd")
    p = realnut.run_tool([exe, "-u", "admin", "-p", "s3cr3t", f"{ups}@127.0.0.1:{port}", cmd])
    return (p.stdout + p.stderr).decode().strip()


def _wait_pm(powermand: rig.PowermanRig, node: str, state: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while powermand.states()[node] != state:
        assert time.monotonic() < deadline, f"{node} never became {state}"
        time.sleep(0.1)


@pytest.mark.interop
def test_bridge_status_and_upscmd(powermand: rig.PowermanRig,
                                  bridge_server: Callable[..., object], tmp_path: Path) -> None:
    powermand.pm("-1", "t[2,5]")
    cfg = realnut.NutConfig(tmp_path / "py")
    cfg.add_ups("pdu", driver="powerman-pdu", port=powermand.address, pollinterval="1")
    bridge_server(cfg)
    serialsim.wait_var(cfg.port, "pdu", "outlet.16.status", "off", timeout=10)
    v = _upsc(cfg.port, "pdu")
    want = powermand.states()
    assert {v[f"outlet.{n}.desc"]: v[f"outlet.{n}.status"] for n in range(1, 17)} == want
    assert "outlet.17.desc" not in v
    for cmd, state in (("outlet.1.load.on", "on"), ("outlet.3.load.off", "off"),
                       ("outlet.10.load.cycle", "on")):
        assert "OK" in _upscmd(cfg.port, "pdu", cmd)
        node = v[f"outlet.{cmd.split('.')[1]}.desc"]
        _wait_pm(powermand, node, state)  # the real daemon did it
        serialsim.wait_var(cfg.port, "pdu", f"outlet.{cmd.split('.')[1]}.status", state, timeout=5)
    assert "ERR" in _upscmd(cfg.port, "pdu", "outlet.17.load.on")


def _served(port: int, ups: str) -> dict[str, object]:
    def lines(req: str) -> list[str]:
        return [x for x in realnut.query(port, req).decode().splitlines()
                if not x.startswith(("BEGIN", "END"))]

    variables = {}
    for line in lines(f"LIST VAR {ups}"):
        _, _, name, value = line.split(" ", 3)
        if not name.startswith("driver."):
            variables[name] = value
    return {
        "vars": variables,
        "cmds": lines(f"LIST CMD {ups}"),
        "rw": lines(f"LIST RW {ups}"),
        "types": [realnut.query(port, f"GET TYPE {ups} {n}").decode() for n in
                  ("outlet.1.desc", "outlet.1.status", "device.type")],
        "desc": realnut.query(port, f"GET CMDDESC {ups} outlet.1.load.on").decode(),
    }


def _script(port: int, ups: str, powermand: rig.PowermanRig) -> dict[str, object]:
    """Commands through upsd, then what powermand's plugs and upsd show."""
    login = ("USERNAME admin", "PASSWORD s3cr3t")
    answers = [realnut.query(port, *login, f"INSTCMD {ups} {c}").decode() for c in (
        "outlet.1.load.on", "outlet.2.load.cycle", "outlet.16.load.on", "outlet.16.load.off",
        "outlet.17.load.on", "outlet.0.load.on", "load.off")]
    _wait_pm(powermand, "t1", "on")
    serialsim.wait_var(port, ups, "outlet.2.status", "on", timeout=10)
    time.sleep(2.5)  # NUT's driver polls every 2 s
    return {"answers": answers, "plugs": powermand.states(), **_served(port, ups)}


def _reset(powermand: rig.PowermanRig) -> None:
    powermand.pm("-0", f"t[0-{powermand.plugs - 1}]")
    powermand.pm("-1", "t[4,9]")


@pytest.mark.interop
@pytest.mark.slow
def test_differential_vs_nut(powermand: rig.PowermanRig, bridge_server: Callable[..., object],
                             tmp_path: Path) -> None:
    realnut.require_daemon("upsd")
    nut_driver = rig.nut_powerman_pdu()
    realnut.require("NUT powerman-pdu (apt-get install nut-powerman-pdu)", nut_driver)
    _reset(powermand)
    cfg = realnut.NutConfig(tmp_path / "c")
    cfg.add_ups("pdu", driver="powerman-pdu", port=powermand.address)
    with realnut.c_upsd(cfg, wait_ready=False):
        # no ups.status from this driver: wait for the last outlet instead
        serialsim.wait_var(cfg.port, "pdu", "outlet.10.status", "on", timeout=15)
        theirs = _script(cfg.port, "pdu", powermand)
    _reset(powermand)
    ours_cfg = realnut.NutConfig(tmp_path / "py")
    ours_cfg.add_ups("pdu", driver="powerman-pdu", port=powermand.address)
    bridge_server(ours_cfg)
    serialsim.wait_var(ours_cfg.port, "pdu", "outlet.10.status", "on", timeout=15)
    ours = _script(ours_cfg.port, "pdu", powermand)
    # C upsd puts ups.status "WAIT" in its tree when a driver connects and only a driver's
    # status update replaces it; powerman-pdu never sends one, so NUT serves WAIT for good.
    # A PDU has no UPS status: we serve none (docs/powerman.md, "Differences").
    assert theirs["vars"].pop("ups.status") == '"WAIT"'  # type: ignore[attr-defined]
    assert "ups.status" not in ours["vars"]  # type: ignore[operator]
    for key in ("vars", "cmds", "rw", "types", "desc", "answers", "plugs"):
        assert ours[key] == theirs[key], f"{key}:\nours  {ours[key]}\nNUT's {theirs[key]}"
    assert len(theirs["vars"]) == 5 + 16 * 4  # type: ignore[arg-type]


@pytest.mark.interop
@pytest.mark.slow
def test_powermand_restart_recovery(powermand: rig.PowermanRig,
                                    bridge_server: Callable[..., object], tmp_path: Path) -> None:
    cfg = realnut.NutConfig(tmp_path / "py")
    cfg.add_ups("pdu", driver="powerman-pdu", port=powermand.address)  # default pollinterval 2
    srv = bridge_server(cfg)
    serialsim.wait_var(cfg.port, "pdu", "outlet.1.status", "off", timeout=10)
    powermand.stop()
    stale = serialsim.wait_var(cfg.port, "pdu", "outlet.1.status", None, timeout=10)
    assert "DATA-STALE" in realnut.query(cfg.port, "GET VAR pdu outlet.1.status").decode()
    time.sleep(4)  # several failed reconnects: the backoff grows
    t0 = time.monotonic()
    powermand.start()  # returns once `pm -q` works; vpc plugs start off again
    powermand.pm("-1", "t0")
    serialsim.wait_var(cfg.port, "pdu", "outlet.1.status", "on", timeout=15)
    took = time.monotonic() - t0
    print(f"\npowerman-pdu: stale after {stale:.1f} s; recovered {took:.1f} s after powermand "
          f"was started again ({powermand.kind})")
    assert took < 10, f"recovery took {took:.1f}s"
    assert "communication restored" in srv.log()  # type: ignore[attr-defined]


@pytest.mark.interop
def test_fewer_plugs_after_reconfiguration(bridge_server: Callable[..., object], tmp_path: Path) -> None:
    realnut.require("powermand (apt-get install powerman)", rig.powermand())
    realnut.require("pm (apt-get install powerman)", rig.pm_client())
    big = rig.PowermanRig(tmp_path / "big", plugs=16)
    cfg = realnut.NutConfig(tmp_path / "py")
    cfg.add_ups("pdu", driver="powerman-pdu", port=big.address, pollinterval="1")
    with big:
        bridge_server(cfg)
        serialsim.wait_var(cfg.port, "pdu", "outlet.16.status", "off", timeout=10)
    small = rig.PowermanRig(tmp_path / "small", plugs=4, stand_in=True)
    small.port = big.port
    with small:
        serialsim.wait_var(cfg.port, "pdu", "outlet.16.status", None, timeout=15)
        serialsim.wait_var(cfg.port, "pdu", "outlet.4.status", "off", timeout=15)
        v = _upsc(cfg.port, "pdu")
        assert sorted(k for k in v if k.startswith("outlet.")) == sorted(
            f"outlet.{n}.{leaf}" for n in range(1, 5) for leaf in ("desc", "id", "status", "switchable"))
        cmds = realnut.query(cfg.port, "LIST CMD pdu").decode()
        assert "outlet.4.load.cycle" in cmds and "outlet.5." not in cmds
