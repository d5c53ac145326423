"""UPS added to or removed from the server: devices, entities and controls follow."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from custom_components.nut_bridge import async_remove_config_entry_device
from custom_components.nut_bridge.const import DOMAIN
from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry, id_prefix
from tests.support.realnut import BridgeProcess

from .conftest import Bridge, setup_entry


def _device(hass: HomeAssistant, entry: NutBridgeConfigEntry, ups: str) -> dr.DeviceEntry | None:
    registry = dr.async_get(hass)
    return registry.async_get_device_by_identifier((DOMAIN, f"{id_prefix(entry)}_{ups}"), entry.entry_id)


def _platforms(hass: HomeAssistant, device: dr.DeviceEntry) -> set[str]:
    return {e.domain for e in er.async_entries_for_device(er.async_get(hass), device.id)}


async def _restart(bridge: Bridge) -> None:
    """Restart the bridge on the same port with bridge.cfg as it is now."""
    bridge.proc.stop()
    bridge.proc = BridgeProcess.start(bridge.cfg)


async def test_ups_added_and_removed(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    coordinator = entry.runtime_data.coordinator
    dummy = _device(hass, entry, "dummy")
    assert dummy is not None
    assert _device(hass, entry, "sim2") is None
    sim = _device(hass, entry, "sim")
    assert sim is not None and "button" in _platforms(hass, sim)

    # The server drops `dummy` and gains `sim2`, whose commands HA has never read.
    del bridge.cfg.ups["dummy"]
    bridge.cfg.add_ups("sim2", driver="nutbridge-sim", port="auto", serial="SIM-43")
    await _restart(bridge)
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert coordinator.last_update_success, coordinator.last_exception

    assert _device(hass, entry, "dummy") is None
    assert hass.states.get("sensor.dummy_battery_charge") is None
    assert er.async_get(hass).async_get("sensor.dummy_battery_charge") is None
    sim2 = _device(hass, entry, "sim2")
    assert sim2 is not None
    assert {"sensor", "binary_sensor", "button", "switch"} <= _platforms(hass, sim2)
    assert coordinator.data["sim2"].controls is not None
    assert "test.battery.start.quick" in coordinator.data["sim2"].controls.commands
    assert float(hass.states.get("sensor.sim2_battery_charge").state) > 0  # type: ignore[union-attr]

    # Only a UPS the server no longer lists may be deleted by the user; never the server.
    server = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, id_prefix(entry)), entry.entry_id)
    assert server is not None
    assert not await async_remove_config_entry_device(hass, entry, server)
    assert not await async_remove_config_entry_device(hass, entry, sim2)
    assert await async_remove_config_entry_device(hass, entry, dummy)

    # And back: the removed UPS returns with its entities.
    bridge.cfg.add_ups("dummy", driver="dummy-ups", port=str(bridge.dummy_file), pollinterval="1")
    await _restart(bridge)
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert _device(hass, entry, "dummy") is not None
    assert hass.states.get("sensor.dummy_battery_charge").state == "87.0"  # type: ignore[union-attr]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unreachable_server_removes_nothing(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    coordinator = entry.runtime_data.coordinator
    bridge.proc.stop()
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert not coordinator.last_update_success
    assert _device(hass, entry, "dummy") is not None
    assert _device(hass, entry, "sim") is not None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_controls_reread_after_ups_returns(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    coordinator = entry.runtime_data.coordinator
    first = coordinator.data["sim"].controls
    assert first is not None and first.commands
    await coordinator.async_refresh()
    assert coordinator.data["sim"].controls is first  # kept while the UPS stays up
    await _restart(bridge)
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    await coordinator.async_refresh()  # the connection was re-made by the first poll
    assert coordinator.data["sim"].controls is not None
    assert coordinator.data["sim"].controls.commands == first.commands
    assert await hass.config_entries.async_unload(entry.entry_id)
