"""End to end: entities from a real bridge, on-battery via INSTCMD, per-UPS staleness."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from custom_components.nut_bridge.const import DOMAIN, UPDATE_INTERVAL, UPDATE_INTERVAL_ON_BATTERY
from custom_components.nut_bridge.coordinator import NutBridgeConfigEntry
from custom_components.nut_bridge.diagnostics import async_get_config_entry_diagnostics

from .conftest import Bridge, instcmd, refresh_until_state


async def _setup(hass: HomeAssistant, bridge: Bridge) -> NutBridgeConfigEntry:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_HOST: "127.0.0.1", CONF_PORT: bridge.port, CONF_USERNAME: "admin", CONF_PASSWORD: "s3cr3t"},
    )
    await hass.async_block_till_done()
    entry: NutBridgeConfigEntry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    return entry


async def test_entities_and_on_battery(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await _setup(hass, bridge)
    coordinator = entry.runtime_data.coordinator

    assert hass.states.get("binary_sensor.sim_online").state == "on"
    assert hass.states.get("binary_sensor.sim_on_battery").state == "off"
    assert hass.states.get("sensor.sim_status").state == "online"
    assert float(hass.states.get("sensor.sim_battery_charge").state) > 0
    assert hass.states.get("sensor.sim_battery_charge").attributes["unit_of_measurement"] == "%"
    assert hass.states.get("sensor.dummy_battery_charge").state == "87.0"
    assert coordinator.update_interval == UPDATE_INTERVAL

    devices = dr.async_get(hass)
    dummy = devices.async_get_device_by_identifier((DOMAIN, f"{entry.unique_id}_dummy"), entry.entry_id)
    assert dummy is not None
    assert (dummy.manufacturer, dummy.model, dummy.serial_number) == ("Dummy Corp", "File UPS", "DUMMY-0001")
    server = devices.async_get_device_by_identifier((DOMAIN, str(entry.unique_id)), entry.entry_id)
    assert server is not None and dummy.via_device_id == server.id

    await instcmd(bridge, "test.failure.start")

    await refresh_until_state(hass, entry, "binary_sensor.sim_on_battery", "on")
    assert hass.states.get("binary_sensor.sim_online").state == "off"
    assert hass.states.get("sensor.sim_status").state == "on_battery"
    assert coordinator.update_interval == UPDATE_INTERVAL_ON_BATTERY

    diag = await async_get_config_entry_diagnostics(hass, entry)
    assert diag["entry"]["data"][CONF_PASSWORD] == "**REDACTED**"
    assert diag["entry"]["data"][CONF_HOST] == "**REDACTED**"
    assert diag["ups"]["dummy"]["variables"]["ups.serial"] == "**REDACTED**"
    assert diag["entry"]["data"]["id_prefix"] == "**REDACTED**"
    assert "127.0.0.1" not in repr(diag) and "s3cr3t" not in repr(diag)
    assert "test.failure.start" in diag["ups"]["sim"]["commands"]
    assert diag["push_active"] is coordinator.push_active

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_stale_ups_only_blanks_its_own_entities(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await _setup(hass, bridge)
    assert hass.states.get("sensor.dummy_battery_charge").state == "87.0"

    bridge.dummy_file.unlink()
    await refresh_until_state(hass, entry, "sensor.dummy_battery_charge", STATE_UNAVAILABLE)
    assert hass.states.get("binary_sensor.dummy_online").state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.sim_battery_charge").state != STATE_UNAVAILABLE
    assert hass.states.get("binary_sensor.sim_online").state == "on"
    assert entry.runtime_data.coordinator.data["dummy"].error in ("DATA-STALE", "DRIVER-NOT-CONNECTED")

    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_server_down_makes_setup_retry(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await _setup(hass, bridge)
    bridge.proc.stop()
    coordinator = entry.runtime_data.coordinator
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert not coordinator.last_update_success
    assert hass.states.get("sensor.sim_battery_charge").state == STATE_UNAVAILABLE
    assert await hass.config_entries.async_unload(entry.entry_id)
