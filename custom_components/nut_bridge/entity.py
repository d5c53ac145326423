"""Base entity: one device per UPS, linked to the NUT server device."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import override

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN, KEY_FIRMWARE, KEY_MFR, KEY_MODEL, KEY_SERIAL
from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState, id_prefix


def ups_identifier(entry: NutBridgeConfigEntry, ups: str) -> tuple[str, str]:
    return (DOMAIN, f"{id_prefix(entry)}_{ups}")


def ups_of_device(entry: NutBridgeConfigEntry, identifiers: Iterable[tuple[str, str]]) -> str | None:
    """The UPS name a device's identifiers name under this entry (None: not a UPS, e.g. the server)."""
    prefix = f"{id_prefix(entry)}_"
    for domain, ident in identifiers:
        if domain == DOMAIN and ident.startswith(prefix):
            return ident[len(prefix) :]
    return None


def parse_number(raw: str | None) -> float | None:
    """NUT values are strings; anything not a finite decimal number reads as unknown."""
    if raw is None or "_" in raw:  # float() would accept "1_000"
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class NutBridgeEntity(CoordinatorEntity[NutBridgeCoordinator]):
    """An entity bound to one UPS of the server."""

    _attr_has_entity_name = True

    def __init__(
        self, coordinator: NutBridgeCoordinator, ups: str, description: EntityDescription
    ) -> None:
        # context: the coordinator calls this entity only for batches of its own UPS
        super().__init__(coordinator, context=ups)
        self.entity_description = description
        self.ups = ups
        entry = coordinator.config_entry
        self._attr_unique_id = f"{id_prefix(entry)}_{ups}_{description.key}"
        state = coordinator.data.get(ups)
        variables = state.variables if state else {}
        self._attr_device_info = DeviceInfo(
            identifiers={ups_identifier(entry, ups)},
            name=ups,
            manufacturer=variables.get(KEY_MFR),
            model=variables.get(KEY_MODEL),
            serial_number=variables.get(KEY_SERIAL),
            sw_version=variables.get(KEY_FIRMWARE),
            via_device_id=entry.runtime_data.server_device_id,
        )

    # The UPS state object and server availability last written: a pushed batch
    # replaces one UPS's UpsState and keeps the others', whose entities need no write.
    _written: tuple[UpsState | None, bool] | None = None
    # (available, inputs) last written, for entities that declare their inputs.
    _written_inputs: tuple[bool, object] | None = None

    def _inputs(self) -> object:
        """What this entity's state is computed from (besides availability), or None when it
        does not say. An entity that says skips the write when a new state of its UPS left
        that unchanged: a batch usually changes a few of the UPS's variables, and a write
        (HA's state, attributes, units, registry options) costs far more than the compare."""
        return None

    @override
    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        # what HA writes right after this: the baseline of the first update's compare
        self._written = (self.ups_state, self.coordinator.last_update_success)
        inputs = self._inputs()
        self._written_inputs = None if inputs is None else (self.available, inputs)

    @callback
    def _handle_coordinator_update(self) -> None:
        seen = (self.ups_state, self.coordinator.last_update_success)
        if self._written is not None and seen[0] is self._written[0] and seen[1] == self._written[1]:
            return
        self._written = seen
        inputs = self._inputs()
        if inputs is not None:
            key = (self.available, inputs)
            if key == self._written_inputs:
                return
            self._written_inputs = key
        super()._handle_coordinator_update()

    @property
    def ups_state(self) -> UpsState | None:
        return self.coordinator.data.get(self.ups) if self.coordinator.data else None

    @property
    def raw_value(self) -> str | None:
        """The current value of the NUT variable this entity shows or sets (its description's
        key); None when the UPS does not report it. (Not for entities whose key names a
        status flag, a command or an event.)"""
        state = self.ups_state
        return state.variables.get(self.entity_description.key) if state else None

    @property
    def available(self) -> bool:
        state = self.ups_state
        return super().available and state is not None and state.available


def add_entities_as_ups_appear(
    entry: NutBridgeConfigEntry,
    add: Callable[[Iterable[Entity]], None],
    build: Callable[[NutBridgeCoordinator, UpsState], Iterable[NutBridgeEntity]],
    *,
    needs_controls: bool = False,
) -> None:
    """Add the entities of every UPS now, and of UPS that appear in later polls.

    A UPS counts once it has data (and, with ``needs_controls``, once its commands
    and writable variables are known). A UPS removed from the server is forgotten,
    so its entities come back if it does.
    """
    coordinator = entry.runtime_data.coordinator
    known: set[str] = set()

    @callback
    def _check() -> None:
        data = coordinator.data or {}
        known.intersection_update(data)
        new = [
            s
            for name, s in data.items()
            if name not in known and s.variables and (s.controls is not None or not needs_controls)
        ]
        if not new:
            return
        entities: list[NutBridgeEntity] = []
        for state in new:
            known.add(state.name)
            entities.extend(build(coordinator, state))
        add(entities)

    _check()
    entry.async_on_unload(coordinator.async_add_listener(_check))
