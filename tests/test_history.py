"""The event history (docs/events.md) against real bridge processes and real NUT clients.

Events are made the way users make them: mains loss and return on the simulated UPS,
``upscmd``/``upsrw`` by NUT's own tools, FSD by a client, a dummy-ups device that goes
away. The history is then read the three ways it can be: the file, ``nutbridge events``
and the ``LIST EVENT`` extension (client method ``list_events``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nutbridge.client import NutClient, NutError
from tests.support import realnut
from tests.support.realnut import REPO, BridgeProcess, NutConfig

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PASSWORDS = ("s3cr3t", "r34d", "t3st", "mp")


def _cfg(tmp: Path, name: str = "nut", dummy: bool = False, extra: str = "") -> NutConfig:
    cfg = NutConfig(tmp / name)
    cfg.root.mkdir(parents=True, exist_ok=True)
    cfg.add_ups("sim", driver="nutbridge-sim", port="simulated")
    if dummy:
        (cfg.root / "d.dev").write_text("ups.status: OL\nbattery.charge: 90\n")
        cfg.add_ups("dummy", driver="dummy-ups", port=str(cfg.root / "d.dev"))
    cfg.upsd_extra = extra
    return cfg


def _start(cfg: NutConfig, state: Path, env: dict[str, str] | None = None) -> BridgeProcess:
    proc = BridgeProcess.start(cfg, ["--state-dir", str(state)], env=env)
    realnut.wait_ready_ups(cfg.port, list(cfg.ups))
    return proc


def _lines(state: Path) -> list[str]:
    out = []
    for f in (state / "events.jsonl.1", state / "events.jsonl"):
        if f.exists():
            out += f.read_text().splitlines()
    return out


def _records(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(state)]


def _wait_for(state: Path, pred: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        recs = _records(state)
        if pred(recs):
            return recs
        assert time.monotonic() < deadline, f"not recorded in time: {recs}"
        time.sleep(0.05)


def _events_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, PYTHONPATH=str(REPO / "bridge"), TZ="UTC")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "nutbridge", "events", *args], capture_output=True,
                          text=True, env=e, timeout=30)


async def _admin(port: int, user: str = "admin", password: str = "s3cr3t") -> NutClient:
    c = NutClient("127.0.0.1", port)
    await c.connect()
    await c.authenticate(user, password)
    return c


def _power(recs: list[dict[str, Any]], ups: str = "sim") -> list[dict[str, Any]]:
    return [r for r in recs if r["kind"] == "power" and r["ups"] == ups]


def test_mains_loss_and_return_recorded(tmp_path: Path) -> None:
    cfg, state = _cfg(tmp_path), tmp_path / "state"
    with _start(cfg, state):
        before = datetime.now(UTC)

        async def go() -> None:
            c = await _admin(cfg.port)
            await c.instcmd("sim", "test.failure.start")
            _wait_for(state, lambda r: len(_power(r)) == 1)
            await asyncio.sleep(0.3)
            await c.instcmd("sim", "test.failure.stop")
            await c.close()

        asyncio.run(go())
        _wait_for(state, lambda r: len(_power(r)) == 2)
        after = datetime.now(UTC)
    recs = _records(state)
    ob, ol = _power(recs)
    assert (ob["detail"], ob["set"], ob["cleared"]) == ("on battery", ["OB"], ["OL"])
    assert ob["status"].split()[0] == "OB"
    assert (ol["detail"], ol["set"], ol["cleared"]) == ("on line power", ["OL"], ["OB"])
    for r in (ob, ol):
        assert TS_RE.match(r["ts"]), r["ts"]
        assert before <= datetime.fromisoformat(r["ts"]) <= after
    assert datetime.fromisoformat(ol["ts"]) - datetime.fromisoformat(ob["ts"]) >= timedelta(seconds=0.3)
    # the commands that caused them, with who ran them, each just before its effect
    kinds = [(r["kind"], r.get("command")) for r in recs if r["kind"] in ("command", "power")]
    assert kinds == [("command", "test.failure.start"), ("power", None),
                     ("command", "test.failure.stop"), ("power", None)]
    # the life cycle around them; seq counts up by one
    assert recs[0]["kind"] == "server" and recs[0]["detail"].endswith("started")
    assert (recs[-1]["kind"], recs[-1]["detail"]) == ("server", "NUT Bridge stopping")
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert {"kind": "driver", "ups": "sim", "detail": "connected"}.items() <= recs[1].items()


def test_real_tools_recorded_with_user_and_address_never_password(tmp_path: Path) -> None:
    upscmd, upsrw = realnut.require_client("upscmd"), realnut.require_client("upsrw")
    cfg, state = _cfg(tmp_path), tmp_path / "state"
    target = f"sim@127.0.0.1:{cfg.port}"
    with _start(cfg, state):
        for argv in ([upscmd, "-u", "admin", "-p", "s3cr3t", target, "beeper.disable"],
                     [upscmd, "-u", "admin", "-p", "s3cr3t", target, "load.on.delay", "5"],
                     [upsrw, "-s", "battery.charge.low=25", "-u", "admin", "-p", "s3cr3t", target],
                     # refused: not recorded (the log has it)
                     [upscmd, "-u", "tester", "-p", "t3st", target, "beeper.enable"]):
            p = realnut.run_tool(argv, env={"NUT_QUIET_OK_NOTRACKING": "true"})
            assert (p.returncode == 0) == ("admin" in argv), (argv, p.stderr)
        # FSD by a client (what upsmon primary does)
        async def fsd() -> None:
            c = await _admin(cfg.port, "monprimary", "mp")
            await c.fsd("sim")
            await c.close()

        asyncio.run(fsd())
        recs = _wait_for(state, lambda r: any(x["kind"] == "fsd" for x in r)
                         and any("FSD" in x.get("set", ()) for x in r))
    acts = [r for r in recs if r["kind"] in ("command", "set", "fsd")]
    assert [(r["kind"], r["detail"], r["user"], r["addr"]) for r in acts] == [
        ("command", "beeper.disable", "admin", "127.0.0.1"),
        ("command", "load.on.delay 5", "admin", "127.0.0.1"),
        ("set", "battery.charge.low = 25", "admin", "127.0.0.1"),
        ("fsd", "FSD set", "monprimary", "127.0.0.1"),
    ]
    assert acts[1]["command"] == "load.on.delay" and acts[1]["param"] == "5"
    assert acts[2]["var"] == "battery.charge.low" and acts[2]["value"] == "25"
    fsd_power = [r for r in _power(recs) if "FSD" in r["set"]]
    assert len(fsd_power) == 1 and fsd_power[0]["status"].startswith("FSD ")
    text = "".join(p.read_text() for p in state.iterdir() if p.name.startswith("events"))
    for secret in PASSWORDS:
        assert secret not in text
    assert "password" not in text.lower()


def test_restart_keeps_history_and_seq_continues(tmp_path: Path) -> None:
    cfg, state = _cfg(tmp_path), tmp_path / "state"
    with _start(cfg, state):
        asyncio.run(_one_command(cfg.port, "beeper.disable"))
        _wait_for(state, lambda r: any(x["kind"] == "command" for x in r))
    first = _records(state)
    assert first[-1]["detail"] == "NUT Bridge stopping"
    with _start(cfg, state):
        asyncio.run(_one_command(cfg.port, "beeper.enable"))
        recs = _wait_for(state, lambda r: sum(x["kind"] == "command" for x in r) == 2)
    assert recs[: len(first)] == first
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert recs[len(first)]["kind"] == "server" and recs[len(first)]["detail"].endswith("started")
    assert [r["detail"] for r in recs if r["kind"] == "command"] == ["beeper.disable", "beeper.enable"]


async def _one_command(port: int, cmd: str, user: str = "admin", password: str = "s3cr3t") -> None:
    c = await _admin(port, user, password)
    await c.instcmd("sim", cmd)
    await c.close()


async def _commands(port: int, n: int) -> None:
    c = await _admin(port)
    for i in range(n):
        await c.instcmd("sim", "beeper.disable" if i % 2 else "beeper.enable")
    await c.close()


def test_bounded_oldest_dropped(tmp_path: Path) -> None:
    cfg, state = _cfg(tmp_path), tmp_path / "state"
    env = {"NUTBRIDGE_EVENTS_MAX": "6"}
    with _start(cfg, state, env=env):
        asyncio.run(_commands(cfg.port, 20))
        time.sleep(0.3)
        live = (state / "events.jsonl").read_text().splitlines()
        old = (state / "events.jsonl.1").read_text().splitlines()
        assert 1 <= len(live) <= 3 and len(old) == 3  # rotated at half the bound
        recs = _records(state)
        seqs = [r["seq"] for r in recs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # the newest, contiguous
        assert seqs[0] > 10  # start, connected and 20 commands: the early ones are gone
        assert recs[-1]["kind"] == "command"

        async def listed() -> list[dict[str, Any]]:
            async with NutClient("127.0.0.1", cfg.port) as c:
                return await c.list_events(count=100)

        # memory mirrors the files: LIST EVENT serves exactly what is on disk
        assert [r["seq"] for r in asyncio.run(listed())] == seqs
    assert len(_lines(state)) <= 6
    # a lower bound at the next start: the files shrink to it at once
    with _start(cfg, state, env={"NUTBRIDGE_EVENTS_MAX": "4"}):
        lines = _lines(state)
        assert len(lines) <= 4
        assert json.loads(lines[-1])["detail"] == "connected"
    assert len(_lines(state)) <= 4


def test_torn_last_line_tolerated(tmp_path: Path) -> None:
    cfg, state = _cfg(tmp_path), tmp_path / "state"
    with _start(cfg, state):
        asyncio.run(_one_command(cfg.port, "beeper.disable"))
        _wait_for(state, lambda r: any(x["kind"] == "command" for x in r))
    good = _records(state)
    # a crash in the middle of a write leaves half a line
    with open(state / "events.jsonl", "a") as f:
        f.write('{"ts":"2026-01-01T00:00:00.000Z","seq":99,"kind":"po')
    p = _events_cli("--state-dir", str(state), "--json", "-n", "0")
    assert p.returncode == 0, p.stderr
    assert [json.loads(x) for x in p.stdout.splitlines()] == good
    with _start(cfg, state):
        asyncio.run(_one_command(cfg.port, "beeper.enable"))
        _wait_for(state, lambda r: sum(x["kind"] == "command" for x in r) == 2)
    text = (state / "events.jsonl").read_text()
    assert '"kind":"po\n' not in text and text.endswith("\n")
    recs = _records(state)  # every line parses again
    assert recs[: len(good)] == good
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert "dropped an incomplete last line" in (cfg.run / "bridge.log").read_text()


def test_events_cli_finds_the_history_by_configuration(tmp_path: Path) -> None:
    """Without --state-dir the state directory follows the configuration (here upsd.conf's
    STATEPATH, docs/discovery.md): ``nutbridge events -c DIR`` finds that bridge's history,
    and another configuration's bridge is not mixed in."""
    statepath = tmp_path / "statepath"
    statepath.mkdir()
    cfg = _cfg(tmp_path, extra=f"STATEPATH {statepath}\n")
    with BridgeProcess.start(cfg):
        realnut.wait_ready_ups(cfg.port, list(cfg.ups))
        _wait_for(statepath / "nut-bridge", lambda r: any(x["kind"] == "server" for x in r))
    env = {k: "" for k in ("NUT_STATEPATH", "STATE_DIRECTORY", "NUT_CONFPATH")}
    p = _events_cli("-c", str(cfg.etc), "--json", "-n", "0", env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == _lines(statepath / "nut-bridge")
    assert "NUT Bridge stopping" in p.stdout


def test_events_cli(tmp_path: Path) -> None:
    cfg, state = _cfg(tmp_path, dummy=True), tmp_path / "state"
    with _start(cfg, state):
        asyncio.run(_one_command(cfg.port, "test.failure.start"))
        _wait_for(state, lambda r: len(_power(r)) == 1)
        time.sleep(0.05)
        middle = datetime.now(UTC)
        time.sleep(0.05)
        asyncio.run(_one_command(cfg.port, "test.failure.stop"))
        _wait_for(state, lambda r: len(_power(r)) == 2)
        # the dummy device goes away and comes back: driver availability events
        dev = cfg.root / "d.dev"
        content = dev.read_text()
        dev.unlink()
        _wait_for(state, lambda r: any(x["kind"] == "driver" and x["detail"] == "data stale" for x in r),
                  timeout=30)
        dev.write_text(content)
        _wait_for(state, lambda r: any(x["kind"] == "driver" and x["detail"] == "recovered" for x in r),
                  timeout=30)
        running = _events_cli("--state-dir", str(state), "-n", "0")  # while the bridge runs
    recs = _records(state)
    assert running.returncode == 0 and running.stdout.count("\n") == len(recs)  # header, all but stop

    # --json: the stored lines, unchanged
    p = _events_cli("--state-dir", str(state), "--json", "-n", "0")
    assert p.returncode == 0 and p.stdout.splitlines() == _lines(state)

    # the table: aligned columns, oldest first, the last 50 by default
    p = _events_cli("--state-dir", str(state))
    assert p.returncode == 0, p.stderr
    rows = p.stdout.splitlines()
    assert rows[0].split() == ["SEQ", "TIME", "KIND", "UPS", "BY", "DETAIL"]
    assert len(rows) == 1 + len(recs)
    col = rows[0].index("KIND")
    assert all(r[col - 2:col] == "  " for r in rows[1:])  # every row aligned under KIND
    cmd_row = next(r for r in rows if "test.failure.start" in r)
    ts = datetime.fromisoformat(next(r["ts"] for r in recs if r.get("command") == "test.failure.start"))
    assert cmd_row.split()[1:] == [ts.strftime("%Y-%m-%d"), ts.strftime("%H:%M:%S"), "command", "sim",
                                   "admin@127.0.0.1", "test.failure.start"]
    assert rows[-1].split()[3:] == ["server", "-", "-", "NUT", "Bridge", "stopping"]

    # filters
    def seqs(*args: str) -> list[int]:
        p = _events_cli("--state-dir", str(state), "--json", *args)
        assert p.returncode == 0, p.stderr
        return [json.loads(x)["seq"] for x in p.stdout.splitlines()]

    assert seqs("--kind", "power") == [r["seq"] for r in recs if r["kind"] == "power"]
    assert seqs("--kind", "power,driver", "--ups", "DUMMY") == [
        r["seq"] for r in recs if r["kind"] in ("power", "driver") and r["ups"] == "dummy"]
    assert seqs("--kind", "command", "--kind", "server") == [
        r["seq"] for r in recs if r["kind"] in ("command", "server")]
    since = [r["seq"] for r in recs if datetime.fromisoformat(r["ts"]) >= middle]
    assert 0 < len(since) < len(recs)
    assert seqs("--since", middle.isoformat()) == since
    assert seqs("-n", "2") == [r["seq"] for r in recs[-2:]]
    assert seqs("--ups", "nosuch") == []
    assert _events_cli("--state-dir", str(state), "--ups", "nosuch").stdout == "No events.\n"

    # another history in the directory (a separate `nutbridge monitor`'s) is merged in by time
    mon = {"ts": middle.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "seq": 1,
           "kind": "monitor", "ups": "sim@127.0.0.1", "detail": "UPS sim@127.0.0.1 on battery"}
    (state / "monitor-events.jsonl").write_text(json.dumps(mon) + "\n")
    p = _events_cli("--state-dir", str(state), "--json", "-n", "0")
    merged = [json.loads(x) for x in p.stdout.splitlines()]
    pos = len(recs) - len(since)
    assert merged == [*recs[:pos], mon, *recs[pos:]]
    assert seqs("--ups", "sim", "--kind", "monitor") == [1]
    (state / "monitor-events.jsonl").unlink()

    # errors: a message and exit code 1, never a traceback
    for args, msg in [
        (["--state-dir", str(tmp_path / "missing")], "not found"),
        (["--state-dir", str(state), "--kind", "bogus"], "unknown kind bogus"),
        (["--state-dir", str(state), "--since", "yesterday"], "not an ISO 8601 time"),
        (["--state-dir", str(state), "-n", "x"], "invalid int value"),
    ]:
        p = _events_cli(*args)
        assert p.returncode == 1 and msg in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
        assert p.stdout == ""
    # no --state-dir: the places `serve` uses; none holds a history here
    empty = tmp_path / "empty"
    empty.mkdir()
    p = _events_cli(env={"STATE_DIRECTORY": str(empty)})
    assert p.returncode == 1 and "no event history in" in p.stderr and "Traceback" not in p.stderr
    p = _events_cli("--kind", "power", env={"STATE_DIRECTORY": str(state)})
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1 + len(_power(recs))
    # `nutbridge -h` lists the command
    h = subprocess.run([sys.executable, "-m", "nutbridge", "-h"], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO / "bridge")))
    assert re.search(r"^  events +list the event history", h.stdout, re.M)


def test_list_event_extension(tmp_path: Path) -> None:
    cfg, state = _cfg(tmp_path, dummy=True), tmp_path / "state"
    with _start(cfg, state):
        asyncio.run(_one_command(cfg.port, "test.failure.start"))
        _wait_for(state, lambda r: len(_power(r)) == 1)

        async def go() -> None:
            file_recs = _records(state)
            # anonymous (no login needed, like LIST VAR): everything but who did it
            async with NutClient("127.0.0.1", cfg.port) as c:
                every = await c.list_events()
                assert every == [{k: v for k, v in r.items() if k not in ("user", "addr")}
                                 for r in file_recs]
                assert await c.list_events("SIM", 2) == [x for x in every if x["ups"] == "sim"][-2:]
                assert [x["ups"] for x in await c.list_events("dummy")] == ["dummy"]  # connected
                with pytest.raises(NutError) as e:
                    await c.list_events("nosuch")
                assert e.value.code == "UNKNOWN-UPS"
                with pytest.raises(ValueError):
                    await c.list_events(count=0)
            # a user without actions: still anonymous; wrong password: likewise
            for user, password in (("reader", "r34d"), ("admin", "wrong")):
                c = await _admin(cfg.port, user, password)
                assert all("user" not in x for x in await c.list_events())
                await c.close()
            # a user who may act sees who acted, from where
            for user, password in (("admin", "s3cr3t"), ("tester", "t3st")):
                c = await _admin(cfg.port, user, password)
                cmd = [x for x in await c.list_events("sim") if x["kind"] == "command"]
                assert [(x["user"], x["addr"]) for x in cmd] == [("admin", "127.0.0.1")]
                await c.close()

        asyncio.run(go())

        # a record that does not fit a 512-byte line once escaped: core fields, shortened detail
        nasty = '"#\\' * 80
        async def long_value() -> dict[str, Any]:
            c = await _admin(cfg.port)
            await c.set_var("dummy", "battery.charge", nasty)
            rec = (await c.list_events("dummy", 1))[0]
            await c.close()
            return rec

        rec = asyncio.run(long_value())
        stored = _records(state)[-1]
        # strings are cut at 256 characters in the file already
        assert stored["value"] == nasty and stored["detail"] == f"battery.charge = {nasty}"[:253] + "..."
        assert rec["truncated"] is True and rec["seq"] == stored["seq"] and rec["user"] == "admin"
        assert 100 < len(rec["detail"]) < len(stored["detail"])
        assert stored["detail"].startswith(rec["detail"])
        line = realnut.query(cfg.port, "LIST EVENT dummy 1").split(b"\n")[1]
        assert 400 < len(line) + 1 <= 512

        # raw wire: framing, quoting and errors
        raw = realnut.query(cfg.port, "LIST EVENT sim 1").decode()
        lines = raw.splitlines()
        assert lines[0] == "BEGIN LIST EVENT sim" and lines[-1] == "END LIST EVENT sim" and len(lines) == 3
        assert lines[1].startswith('EVENT sim "{\\"ts\\":')
        for bad in ("LIST EVENT sim 0", "LIST EVENT sim -1", "LIST EVENT sim x", "LIST EVENT",
                    "LIST EVENT sim 1 2"):
            assert realnut.query(cfg.port, bad) == b"ERR INVALID-ARGUMENT\n", bad
        assert realnut.query(cfg.port, "LIST EVENT nosuch") == b"ERR UNKNOWN-UPS\n"


def test_standard_clients_unaffected(tmp_path: Path) -> None:
    """Real upsc sees nothing new; with PUSH false LIST EVENT is answered like C upsd."""
    upsc = realnut.require_client("upsc")
    cfg, state = _cfg(tmp_path, extra="PUSH false\n"), tmp_path / "state"
    with _start(cfg, state):
        asyncio.run(_one_command(cfg.port, "beeper.disable"))
        p = realnut.run_tool([upsc, f"sim@127.0.0.1:{cfg.port}"])
        assert p.returncode == 0 and b"ups.status: OL" in p.stdout and b"EVENT" not in p.stdout
        p = realnut.run_tool([upsc, "-l", f"127.0.0.1:{cfg.port}"])
        assert p.stdout == b"sim\n"
        ours = realnut.query(cfg.port, "LIST EVENT sim", "LIST EVENT * 5", "LIST EVENT")

        async def go() -> None:
            async with NutClient("127.0.0.1", cfg.port) as c:
                with pytest.raises(NutError) as e:
                    await c.list_events()
                assert e.value.code == "UNKNOWN-COMMAND"
                assert (await c.get_var("sim", "ups.status")).startswith("OL")

        asyncio.run(go())
        # still recorded: the switch only hides the extension
        assert any(r["kind"] == "command" for r in _records(state))

    # the C upsd: same answers; the client method reports UNKNOWN-COMMAND
    realnut.require_daemon("upsd")
    ccfg = NutConfig(tmp_path / "c")
    ccfg.root.mkdir()
    (ccfg.root / "d.dev").write_text("ups.status: OL\n")
    ccfg.add_ups("sim", driver="dummy-ups", port=str(ccfg.root / "d.dev"))
    with realnut.c_upsd(ccfg):
        assert realnut.query(ccfg.port, "LIST EVENT sim", "LIST EVENT * 5", "LIST EVENT") == ours

        async def c_upsd() -> None:
            async with NutClient("127.0.0.1", ccfg.port) as c:
                with pytest.raises(NutError) as e:
                    await c.list_events("sim", 5)
                assert e.value.code == "UNKNOWN-COMMAND" and e.value.answer == "ERR INVALID-ARGUMENT"

        asyncio.run(c_upsd())


def test_full_disk_degrades_to_memory(tmp_path: Path) -> None:
    """Writes fail (EFBIG from RLIMIT_FSIZE, as ENOSPC would): one warning, memory only."""
    cfg, state = _cfg(tmp_path), tmp_path / "state"
    state.mkdir()
    # a big history, so the file size limit bites on it and not on the (small) log file
    (state / "events.jsonl").write_text("".join(
        json.dumps({"ts": "2026-01-01T00:00:00.000Z", "seq": i, "kind": "server", "ups": None,
                    "detail": f"old record {i:04d}" + "." * 100}, separators=(",", ":")) + "\n"
        for i in range(1, 501)))
    # room for the start records and part of the first command's; the bridge inherits it
    limit = (state / "events.jsonl").stat().st_size + 300
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        bridge = BridgeProcess.start(cfg, ["--state-dir", str(state)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    with bridge:
        realnut.wait_ready_ups(cfg.port, ["sim"])
        asyncio.run(_commands(cfg.port, 5))

        async def listed() -> list[dict[str, Any]]:
            async with NutClient("127.0.0.1", cfg.port) as c:
                return await c.list_events(count=1000)

        recs = asyncio.run(listed())
        assert [r["detail"] for r in recs[-5:]] == ["beeper.enable", "beeper.disable"] * 2 + ["beeper.enable"]
        assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
        assert realnut.query(cfg.port, "GET VAR sim ups.status").startswith(b'VAR sim ups.status "OL')
        assert (state / "events.jsonl").stat().st_size == limit
    log = bridge.log()
    assert log.count("event history:") == 1, log
    assert "events are now kept in memory only" in log
    # what reached the disk is still readable (the torn tail is skipped)
    p = _events_cli("--state-dir", str(state), "--json", "-n", "0")
    assert p.returncode == 0
    on_disk = [json.loads(x)["seq"] for x in p.stdout.splitlines()]
    assert on_disk == list(range(1, len(on_disk) + 1)) and 502 <= len(on_disk) < 507


def test_second_bridge_on_same_state_dir_keeps_memory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    a_cfg, b_cfg = _cfg(tmp_path, "a"), _cfg(tmp_path, "b")
    with _start(a_cfg, state) as a, _start(b_cfg, state) as b:
        asyncio.run(_one_command(b_cfg.port, "beeper.disable"))

        async def listed(port: int) -> list[dict[str, Any]]:
            async with NutClient("127.0.0.1", port) as c:
                return await c.list_events()

        assert [r["detail"] for r in asyncio.run(listed(b_cfg.port)) if r["kind"] == "command"] == [
            "beeper.disable"]
        assert not any(r["kind"] == "command" for r in _records(state))  # only a writes the files
    assert b.log().count("is in use by another process") == 1
    assert "event history" not in a.log()


def test_monitor_events_recorded(tmp_path: Path) -> None:
    """The monitor running inside `serve` (upsmon.conf) records its notifications."""
    cfg, state = _cfg(tmp_path), tmp_path / "state"
    cfg.write()  # BridgeProcess.start writes it again but leaves other files alone
    (cfg.etc / "upsmon.conf").write_text(
        f"MONITOR sim@127.0.0.1:{cfg.port} 1 monprimary mp primary\n"
        "MINSUPPLIES 1\nPOLLFREQ 1\nPOLLFREQALERT 1\n"
        f"SHUTDOWNCMD \"touch {tmp_path / 'shutdown'}\"\n"
        "NOTIFYFLAG ONBATT SYSLOG\nNOTIFYFLAG ONLINE SYSLOG\n")
    with _start(cfg, state):
        asyncio.run(_one_command(cfg.port, "test.failure.start"))
        recs = _wait_for(state, lambda r: any(x["kind"] == "monitor" for x in r))
        asyncio.run(_one_command(cfg.port, "test.failure.stop"))
    mon = [r for r in recs if r["kind"] == "monitor"]
    assert mon[0]["event"] == "notify" and mon[0]["type"] == "ONBATT"
    assert mon[0]["ups"] == f"sim@127.0.0.1:{cfg.port}"
    assert "battery" in mon[0]["detail"].lower()
    p = _events_cli("--state-dir", str(state), "--json", "--kind", "monitor", "--ups", "sim")
    assert p.returncode == 0 and json.loads(p.stdout.splitlines()[0])["type"] == "ONBATT"
