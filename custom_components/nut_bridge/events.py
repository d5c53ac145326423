"""Power events derived from successive coordinator updates (placeholder: filled in next)."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback

from .coordinator import NutBridgeConfigEntry


@callback
def async_setup_events(hass: HomeAssistant, entry: NutBridgeConfigEntry) -> None:
    """Start turning status transitions into events for this entry."""
