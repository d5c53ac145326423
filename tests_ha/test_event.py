"""Event platform against a real bridge: one power-event entity per UPS.

What fires it (mains loss, flags, communication lost and back) is end to end in
test_power_events.py.
"""

from __future__ import annotations

from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.nut_bridge.power_events import EVENT_TYPES

from .conftest import Bridge, assert_registered, attributes_of, setup_entry, state_of, ups_device


async def test_one_power_event_entity_per_ups(hass: HomeAssistant, bridge: Bridge) -> None:
    entry = await setup_entry(hass, bridge)
    registry = er.async_get(hass)
    for ups in ("sim", "dummy"):
        on_device = er.async_entries_for_device(registry, ups_device(hass, entry, ups).id)
        events = [e.entity_id for e in on_device if e.domain == "event"]
        assert events == [f"event.{ups}_power_event"]
        # Enabled, with every event type, no event yet.
        registry_entry = assert_registered(hass, bridge, events[0], ups=ups, key="power_event")
        assert registry_entry.translation_key == "power_event"
        assert state_of(hass, events[0]) == STATE_UNKNOWN
        assert attributes_of(hass, events[0])["event_types"] == EVENT_TYPES
