"""Event entities: one per UPS, recording the power events of power_events.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import override

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, add_entities_as_ups_appear
from .power_events import EVENT_NUT_BRIDGE, EVENT_TYPES, NutBridgeEventData

PARALLEL_UPDATES = 0

POWER_EVENT = EventEntityDescription(
    key="power_event", translation_key="power_event", event_types=EVENT_TYPES
)


async def async_setup_entry(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """Add the power-event entity of every UPS."""

    def build(coordinator: NutBridgeCoordinator, state: UpsState) -> Iterable[NutBridgeEntity]:
        return [NutBridgePowerEvent(coordinator, state.name, POWER_EVENT)]

    add_entities_as_ups_appear(entry, async_add_entities, build)


class NutBridgePowerEvent(NutBridgeEntity, EventEntity):
    """The last power event of a UPS, with the status and battery values at that time."""

    entity_description: EventEntityDescription

    @property
    @override
    def available(self) -> bool:
        # Always available: "communication lost" happens exactly when the UPS
        # data (or the whole server) is unavailable, and must still be recorded.
        return True

    @callback
    @override
    def _handle_coordinator_update(self) -> None:
        """The state only changes with an event, not with each data update."""

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(
            self.hass.bus.async_listen(EVENT_NUT_BRIDGE, self._async_handle_event, self._async_is_mine)
        )

    @callback
    def _async_is_mine(self, data: NutBridgeEventData) -> bool:
        return data["config_entry_id"] == self.coordinator.config_entry.entry_id and data["ups"] == self.ups

    @callback
    def _async_handle_event(self, event: Event[NutBridgeEventData]) -> None:
        data = event.data
        self._trigger_event(
            data["type"],
            {
                "status": data["status"],
                "battery_charge": data["battery_charge"],
                "battery_runtime": data["battery_runtime"],
            },
        )
        self.async_write_ha_state()
