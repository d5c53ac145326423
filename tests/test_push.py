"""The SUBSCRIBE push extension: snapshot, change batches, availability, fallback."""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import aclosing
from pathlib import Path

import pytest

from nutbridge.client import NutClient
from nutbridge.client.push import PushNotSupported, Update, UpsState, UpsStates, subscribe
from tests.support import realnut
from tests.support.realnut import BridgeProcess, NutConfig


def _cfg(tmp_path: Path) -> NutConfig:
    cfg = NutConfig(tmp_path / "nut")
    cfg.root.mkdir(parents=True, exist_ok=True)
    (cfg.root / "d.dev").write_text("ups.status: OL\nbattery.charge: 90\n")
    cfg.add_ups("sim", driver="nutbridge-sim", port="simulated")
    cfg.add_ups("dummy", driver="dummy-ups", port=str(cfg.root / "d.dev"))
    return cfg


async def _next(it: object, ups: str, timeout: float = 10.0) -> Update:
    async def go() -> Update:
        async for u in it:  # type: ignore[attr-defined]
            if u.ups == ups:
                return u
        raise AssertionError("stream ended")

    return await asyncio.wait_for(go(), timeout)


def test_snapshot_then_changes_then_availability(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with BridgeProcess.start(cfg, env={"NUTBRIDGE_IDLE_TIMEOUT": "1"}):
        realnut.wait_ready_ups(cfg.port, ["sim", "dummy"])

        async def go() -> None:
            it = subscribe("127.0.0.1", cfg.port, ["dummy"])
            snap = await _next(it, "dummy")
            assert snap.values["battery.charge"] == "90" and snap.values["ups.status"] == "OL"
            assert snap.state == "OK"
            async with NutClient("127.0.0.1", cfg.port) as c:
                await c.authenticate("admin", "s3cr3t")
                await c.set_var("dummy", "battery.charge", "42")
            upd = await _next(it, "dummy")
            assert upd.values == {"battery.charge": "42"}  # only what changed
            # idle drop does not apply to a listening subscriber (timeout is 1 s here)
            await asyncio.sleep(3)
            async with NutClient("127.0.0.1", cfg.port) as c:
                await c.authenticate("monprimary", "mp")
                await c.fsd("dummy")
            upd = await _next(it, "dummy")
            assert upd.values["ups.status"] == "FSD OL"
            (cfg.root / "d.dev").unlink()  # the device goes away: pushed as a state change
            upd = await _next(it, "dummy", timeout=20)
            while upd.state == "OK":
                upd = await _next(it, "dummy", timeout=20)
            assert upd.state == "DATA-STALE" and not upd.available
            await it.aclose()  # type: ignore[attr-defined]

        asyncio.run(go())


def test_push_latency_command_to_update(tmp_path: Path) -> None:
    """Mains loss commanded on the simulated UPS reaches a subscriber in well under 500 ms."""
    cfg = _cfg(tmp_path)
    with BridgeProcess.start(cfg):
        realnut.wait_ready_ups(cfg.port, ["sim"])

        async def go() -> list[float]:
            lat = []
            it = subscribe("127.0.0.1", cfg.port, ["sim"])
            await _next(it, "sim")
            async with NutClient("127.0.0.1", cfg.port) as c:
                await c.authenticate("admin", "s3cr3t")
                for i in range(6):
                    cmd, want = ("test.failure.start", "OB") if i % 2 == 0 else ("test.failure.stop", "OL")
                    t0 = time.perf_counter()
                    await c.instcmd("sim", cmd)
                    while True:
                        u = await _next(it, "sim")
                        if want in u.values.get("ups.status", "").split():
                            break
                    lat.append(time.perf_counter() - t0)
            await it.aclose()  # type: ignore[attr-defined]
            return lat

        lat = asyncio.run(go())
    assert max(lat) < 0.5, lat
    print(f"push latency p50 {statistics.median(lat) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms")


def test_unknown_ups_and_other_servers(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with BridgeProcess.start(cfg):
        assert realnut.query(cfg.port, "SUBSCRIBE nope") == b"ERR UNKNOWN-UPS\n"
        assert realnut.query(cfg.port, "SUBSCRIBE") == b"ERR INVALID-ARGUMENT\n"

    # a C upsd does not know the extension: the client falls back to polling
    c_cfg = NutConfig(tmp_path / "c")
    c_cfg.root.mkdir(parents=True)
    (c_cfg.root / "d.dev").write_text("ups.status: OL\n")
    c_cfg.add_ups("dummy", driver="dummy-ups", port=str(c_cfg.root / "d.dev"))
    with realnut.c_upsd(c_cfg):
        async def go() -> None:
            with pytest.raises(PushNotSupported):
                async for _ in subscribe("127.0.0.1", c_cfg.port, ["dummy"]):
                    pass

        asyncio.run(go())


def test_states_outlive_a_subscription(tmp_path: Path) -> None:
    """One UpsStates across reconnections, as the HA coordinator keeps it: each new
    subscription starts every UPS over from its snapshot, and a snapshot without
    variables (the driver is not connected yet) keeps the last known ones, unavailable."""
    cfg = _cfg(tmp_path)
    states = UpsStates()

    async def first(ups: str, timeout: float = 10.0) -> UpsState:
        async def go() -> UpsState:
            async with aclosing(states.follow("127.0.0.1", cfg.port, [ups])) as it:
                async for s in it:
                    return s
            raise AssertionError("stream ended")

        return await asyncio.wait_for(go(), timeout)

    with BridgeProcess.start(cfg) as proc:
        realnut.wait_ready_ups(cfg.port, ["dummy"])
        before = asyncio.run(first("dummy"))
        assert before.snapshot and before.available and before.variables["battery.charge"] == "90"

        async def set_charge() -> None:
            async with NutClient("127.0.0.1", cfg.port) as c:
                await c.authenticate("admin", "s3cr3t")
                await c.set_var("dummy", "battery.charge", "42")

        asyncio.run(set_charge())
        again = asyncio.run(first("dummy"))
        assert again.snapshot and again.variables["battery.charge"] == "42"
        assert states["dummy"] is again and again is not before
        proc.stop()

    (cfg.root / "d.dev").unlink()  # restarted without its data: dummy-ups cannot connect
    with BridgeProcess.start(cfg):
        gone = asyncio.run(first("dummy"))
    assert gone.snapshot and not gone.changed and not gone.available
    assert gone.error in ("DRIVER-NOT-CONNECTED", "DATA-STALE")
    assert gone.variables == again.variables
