"""Event entities for power events (placeholder: filled in next)."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import NutBridgeConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """No event entities yet."""
