"""Diagnostics with addresses, credentials and identifying data redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from .coordinator import NutBridgeConfigEntry

TO_REDACT = {
    CONF_HOST,
    CONF_USERNAME,
    CONF_PASSWORD,
    "title",
    "unique_id",
    # Holds host:port for entries added by hand; discovery keys name the host.
    "id_prefix",
    "discovery_keys",
    "ups.serial",
    "device.serial",
    "battery.serial",
    "ups.id",
    "device.location",
    "ups.location",
    "device.contact",
    "ups.contact",
    "device.macaddr",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: NutBridgeConfigEntry
) -> dict[str, Any]:
    coordinator = entry.runtime_data.coordinator
    ups = {
        name: {
            "description": state.description,
            "error": state.error,
            "variables": async_redact_data(state.variables, TO_REDACT),
            "commands": sorted(state.controls.commands) if state.controls else None,
            "writable": sorted(state.controls.types) if state.controls else None,
        }
        for name, state in (coordinator.data or {}).items()
    }
    return {
        "entry": async_redact_data(entry.as_dict(), TO_REDACT),
        "update_interval": str(coordinator.update_interval),
        "push_active": coordinator.push_active,
        # The pinned fingerprint stays in entry.data: it is public (the server shows it
        # to every client, zeroconf publishes it) and tells which certificate is trusted.
        "tls_active": coordinator.tls_active,
        "ups": ups,
    }
