"""NUT Bridge: Home Assistant integration for NUT Bridge (and other NUT) servers."""

from __future__ import annotations

from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN, PLATFORMS
from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, NutBridgeData, server_identifier
from .entity import ups_identifier
from .power_events import async_setup_events
from .repairs import async_clear_tls_issues, async_setup_repairs
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the service actions (once, whether or not an entry is loaded)."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> bool:
    """Connect to the server, do the first poll, and set up the platforms."""
    coordinator = NutBridgeCoordinator(
        hass,
        entry,
        host=entry.data[CONF_HOST],
        port=entry.data[CONF_PORT],
        username=entry.data.get(CONF_USERNAME),
        password=entry.data.get(CONF_PASSWORD),
    )
    entry.async_on_unload(coordinator.async_close)
    await coordinator.async_config_entry_first_refresh()
    server = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={server_identifier(entry)},
        name=entry.title,
        manufacturer="Network UPS Tools",
        model="NUT server",
        entry_type=dr.DeviceEntryType.SERVICE,
    )
    entry.runtime_data = NutBridgeData(coordinator=coordinator, server_device_id=server.id)
    _async_remove_devices_of_removed_ups(hass, entry)
    async_setup_events(hass, entry)
    async_setup_repairs(hass, entry)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> bool:
    """Unload the platforms; the client is closed by the on-unload callback."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> None:
    """The entry is deleted: so are its TLS issues (the others go when it unloads)."""
    async_clear_tls_issues(hass, entry.entry_id)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete a UPS device only once the server no longer lists that UPS."""
    if server_identifier(entry) in device.identifiers:
        return False
    current = {ups_identifier(entry, ups) for ups in entry.runtime_data.coordinator.data or {}}
    return not device.identifiers & current


@callback
def _async_remove_devices_of_removed_ups(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> None:
    """A UPS that disappears from LIST UPS takes its device (and entities) with it."""
    coordinator = entry.runtime_data.coordinator
    registry = dr.async_get(hass)

    @callback
    def _prune() -> None:
        if not coordinator.last_update_success or coordinator.data is None:
            return  # an unreachable server lists nothing: that is not a removal
        keep = {server_identifier(entry)} | {ups_identifier(entry, ups) for ups in coordinator.data}
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
            if not device.identifiers & keep:
                registry.async_update_device(device.id, remove_config_entry_id=entry.entry_id)

    _prune()
    entry.async_on_unload(coordinator.async_add_listener(_prune))


__all__ = ["DOMAIN"]
