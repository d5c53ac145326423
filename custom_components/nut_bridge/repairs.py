"""Repair issues (placeholder: filled in next)."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback

from .coordinator import NutBridgeConfigEntry


@callback
def async_setup_repairs(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> None:
    """Start watching this entry's UPS for conditions that need the user."""
