"""Push updates (the bridge's SUBSCRIBE extension) reach Home Assistant without polling."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import timedelta

import pytest
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import async_track_state_change_event

from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry
from nutbridge.client import NutClient
from tests.support.realnut import BridgeProcess

from .conftest import Bridge, instcmd, refresh_until, setup_entry, state_of, wait_for

ON_BATTERY = "binary_sensor.sim_on_battery"
# Mains loss/restore commands in the latency test; benchmarks/ha_push.py raises it.
CYCLES = int(os.environ.get("NUTBRIDGE_HA_PUSH_CYCLES", "20"))


async def _wait_push(entry: NutBridgeConfigEntry) -> None:
    coordinator = entry.runtime_data.coordinator
    await wait_for("push updates", lambda: coordinator.push_active, timeout=5)


async def test_push_flips_on_battery_without_a_poll(
    hass: HomeAssistant, bridge: Bridge, slow_polling: None
) -> None:
    entry = await setup_entry(hass, bridge)
    coordinator = entry.runtime_data.coordinator
    await _wait_push(entry)
    assert coordinator.update_interval is not None
    assert coordinator.update_interval >= timedelta(seconds=30)
    assert state_of(hass, ON_BATTERY) == "off"

    t0 = time.monotonic()
    await instcmd(bridge, "test.failure.start")
    while state_of(hass, ON_BATTERY) != "on":
        assert time.monotonic() - t0 < 1.0, "on-battery not pushed within 1 s"
        await asyncio.sleep(0.005)
    assert state_of(hass, "binary_sensor.sim_online") == "off"

    # A pushed STATE other than OK/WAIT blanks only that UPS: the dummy's data file goes away.
    bridge.dummy_file.unlink()
    await wait_for(
        "dummy unavailable", lambda: state_of(hass, "sensor.dummy_battery_charge") == "unavailable", 20
    )
    assert state_of(hass, "sensor.sim_battery_charge") != "unavailable"
    assert state_of(hass, ON_BATTERY) == "on"

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not coordinator.push_active


async def test_only_changed_entities_are_written(
    hass: HomeAssistant, bridge: Bridge, slow_polling: None
) -> None:
    """A pushed batch writes the entities whose values changed, not the rest of their UPS nor
    the other UPS; a poll that finds nothing new writes nothing. (State writes are what HA
    spends its time on: with 1,000 UPSes, one write per entity per batch or poll saturated it.)"""
    entry = await setup_entry(hass, bridge)
    coordinator = entry.runtime_data.coordinator
    await _wait_push(entry)
    charge, load = "sensor.dummy_battery_charge", "sensor.dummy_load"
    def number(entity_id: str) -> float | None:
        try:
            return float(state_of(hass, entity_id))
        except (TypeError, ValueError):
            return None

    await wait_for("dummy values", lambda: number(charge) == 87 and number(load) == 12)

    def reported(entity_id: str) -> object:
        state = hass.states.get(entity_id)
        assert state is not None, entity_id
        return state.last_reported

    before = {e: reported(e) for e in (charge, load, "binary_sensor.dummy_online")}
    text = bridge.dummy_file.read_text()
    bridge.dummy_file.write_text(text.replace("battery.charge: 87", "battery.charge: 55"))
    await wait_for("charge pushed", lambda: number(charge) == 55, 10)
    assert reported(charge) != before[charge]
    assert reported(load) == before[load]  # the same UPS, its value unchanged: not written
    assert reported("binary_sensor.dummy_online") == before["binary_sensor.dummy_online"]

    # a poll (push active: LIST UPS) finds the same UPS: no entity is written
    settled = {e: reported(e) for e in before}
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert {e: reported(e) for e in before} == settled
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_server_without_push_is_polled(hass: HomeAssistant, bridge_without_push: Bridge) -> None:
    entry = await setup_entry(hass, bridge_without_push)
    coordinator = entry.runtime_data.coordinator
    await asyncio.sleep(0.3)  # time for the subscription attempt to be refused
    assert not coordinator.push_active
    assert state_of(hass, ON_BATTERY) == "off"

    await instcmd(bridge_without_push, "test.failure.start")
    await refresh_until(hass, entry, lambda: state_of(hass, ON_BATTERY) == "on", "on battery, polled")
    assert not coordinator.push_active
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_push_latency_command_to_state(
    hass: HomeAssistant, bridge: Bridge, slow_polling: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mains loss/restore commanded on the simulated UPS: time until HA's state changes."""
    entry = await setup_entry(hass, bridge)
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
            while state_of(hass, ON_BATTERY) != want:
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
    entry = await setup_entry(hass, bridge)
    coordinator = entry.runtime_data.coordinator
    await _wait_push(entry)

    bridge.proc.stop()
    # The push connection drops, and the catch-up poll finds the server down.
    await wait_for(
        "push dropped, server down",
        lambda: not coordinator.push_active and not coordinator.last_update_success,
        timeout=5,
    )
    assert state_of(hass, ON_BATTERY) == "unavailable"

    bridge.proc = BridgeProcess.start(bridge.cfg)
    # Retried with backoff: 1 s, 2 s, 4 s ...
    await wait_for("push resubscribed", lambda: coordinator.push_active, timeout=15)
    await hass.async_block_till_done()
    assert coordinator.last_update_success
    assert state_of(hass, ON_BATTERY) == "off"
    assert await hass.config_entries.async_unload(entry.entry_id)
