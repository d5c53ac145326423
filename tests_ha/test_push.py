"""Push updates (the bridge's SUBSCRIBE extension) reach Home Assistant without polling."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import async_track_state_change_event

from custom_components.nut_bridge.const import DOMAIN
from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry
from nutbridge.client import NutClient
from tests.support.realnut import BridgeProcess, NutConfig

from .conftest import Bridge

ON_BATTERY = "binary_sensor.sim_on_battery"
# Mains loss/restore commands in the latency test; benchmarks/ha_push.py raises it.
CYCLES = int(os.environ.get("NUTBRIDGE_HA_PUSH_CYCLES", "20"))
# Poll so rarely that only push can explain a state change within a second.
SLOW = timedelta(seconds=60)


@pytest.fixture
def slow_polling() -> Iterator[None]:
    with (
        patch("custom_components.nut_bridge.coordinator.UPDATE_INTERVAL", SLOW),
        patch("custom_components.nut_bridge.coordinator.UPDATE_INTERVAL_ON_BATTERY", SLOW),
    ):
        yield


@pytest.fixture
def bridge_without_push(socket_enabled: None, tmp_path: Path) -> Iterator[Bridge]:
    """Like ``bridge`` (UPS ``sim`` only), with ``PUSH false``: SUBSCRIBE is unknown, as in upsd."""
    cfg = NutConfig(tmp_path, upsd_extra="PUSH false\n")
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto", serial="SIM-42")
    proc = BridgeProcess.start(cfg)
    try:
        yield Bridge(cfg, proc, tmp_path / "unused.dev")
    finally:
        proc.stop()


async def _setup(hass: HomeAssistant, port: int) -> NutBridgeConfigEntry:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: "127.0.0.1", CONF_PORT: port, CONF_USERNAME: "admin", CONF_PASSWORD: "s3cr3t"},
    )
    await hass.async_block_till_done()
    entry: NutBridgeConfigEntry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    return entry


async def _wait_push(entry: NutBridgeConfigEntry) -> None:
    coordinator = entry.runtime_data.coordinator
    for _ in range(500):
        if coordinator.push_active:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("push updates did not start")


async def _instcmd(port: int, cmd: str) -> None:
    async with NutClient("127.0.0.1", port) as client:
        await client.authenticate("admin", "s3cr3t")
        await client.instcmd("sim", cmd)


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def test_push_flips_on_battery_without_a_poll(
    hass: HomeAssistant, bridge: Bridge, slow_polling: None
) -> None:
    entry = await _setup(hass, bridge.port)
    coordinator = entry.runtime_data.coordinator
    await _wait_push(entry)
    assert coordinator.update_interval is not None
    assert coordinator.update_interval >= timedelta(seconds=30)
    assert _state(hass, ON_BATTERY) == "off"

    t0 = time.monotonic()
    await _instcmd(bridge.port, "test.failure.start")
    while _state(hass, ON_BATTERY) != "on":
        assert time.monotonic() - t0 < 1.0, "on-battery not pushed within 1 s"
        await asyncio.sleep(0.005)
    assert _state(hass, "binary_sensor.sim_online") == "off"

    # A pushed STATE other than OK/WAIT blanks only that UPS: the dummy's data file goes away.
    bridge.dummy_file.unlink()
    t0 = time.monotonic()
    while _state(hass, "sensor.dummy_battery_charge") != "unavailable":
        assert time.monotonic() - t0 < 20, "dummy never became unavailable"
        await asyncio.sleep(0.05)
    assert _state(hass, "sensor.sim_battery_charge") != "unavailable"
    assert _state(hass, ON_BATTERY) == "on"

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not coordinator.push_active


async def test_server_without_push_is_polled(hass: HomeAssistant, bridge_without_push: Bridge) -> None:
    entry = await _setup(hass, bridge_without_push.port)
    coordinator = entry.runtime_data.coordinator
    await asyncio.sleep(0.3)  # time for the subscription attempt to be refused
    assert not coordinator.push_active
    assert _state(hass, ON_BATTERY) == "off"

    await _instcmd(bridge_without_push.port, "test.failure.start")
    for _ in range(20):
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        if _state(hass, ON_BATTERY) == "on":
            break
        await asyncio.sleep(0.25)
    assert _state(hass, ON_BATTERY) == "on"
    assert not coordinator.push_active
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_push_latency_command_to_state(
    hass: HomeAssistant, bridge: Bridge, slow_polling: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mains loss/restore commanded on the simulated UPS: time until HA's state changes."""
    entry = await _setup(hass, bridge.port)
    await _wait_push(entry)
    changed = asyncio.Event()

    @callback
    def _changed(event: Event[EventStateChangedData]) -> None:
        changed.set()

    unsub = async_track_state_change_event(hass, ON_BATTERY, _changed)
    latencies: list[float] = []
    async with NutClient("127.0.0.1", bridge.port) as client:
        await client.authenticate("admin", "s3cr3t")
        for i in range(CYCLES):
            cmd, want = ("test.failure.start", "on") if i % 2 == 0 else ("test.failure.stop", "off")
            changed.clear()
            t0 = time.perf_counter()
            await client.instcmd("sim", cmd)
            while _state(hass, ON_BATTERY) != want:
                await asyncio.wait_for(changed.wait(), 5)
                changed.clear()
            latencies.append(time.perf_counter() - t0)
    unsub()
    assert await hass.config_entries.async_unload(entry.entry_id)

    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98]
    with capsys.disabled():
        print(f"\nHA push latency over {len(ms)} mains loss/restore cycles: "
              f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms")
    assert p99 < 500, ms


async def test_dropped_push_falls_back_to_polling_and_resubscribes(
    hass: HomeAssistant, bridge: Bridge, slow_polling: None
) -> None:
    entry = await _setup(hass, bridge.port)
    coordinator = entry.runtime_data.coordinator
    await _wait_push(entry)

    bridge.proc.stop()
    for _ in range(500):  # the push connection drops, and the catch-up poll finds the server down
        if not coordinator.push_active and not coordinator.last_update_success:
            break
        await asyncio.sleep(0.01)
    assert not coordinator.push_active
    assert not coordinator.last_update_success
    assert _state(hass, ON_BATTERY) == "unavailable"

    restarted = BridgeProcess.start(bridge.cfg)
    try:
        for _ in range(1500):  # retried with backoff: 1 s, 2 s, 4 s ...
            if coordinator.push_active:
                break
            await asyncio.sleep(0.01)
        assert coordinator.push_active
        await hass.async_block_till_done()
        assert coordinator.last_update_success
        assert _state(hass, ON_BATTERY) == "off"
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        restarted.stop()
