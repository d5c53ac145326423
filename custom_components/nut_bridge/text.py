"""Text entities for writable STRING:n variables."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from homeassistant.components.text import TextEntity, TextEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, add_entities_as_ups_appear
from .services import async_set_variable, get_controls

PARALLEL_UPDATES = 1

_OUTLET_DESC = re.compile(r"^outlet\.(\d+)\.desc$")


@dataclass(frozen=True, kw_only=True)
class NutBridgeTextDescription(TextEntityDescription):
    """A text writing the NUT variable ``key``."""


def _description(var: str, length: int) -> NutBridgeTextDescription:
    common = {"native_max": length, "entity_category": EntityCategory.CONFIG}
    if var == "ups.id":
        return NutBridgeTextDescription(key=var, translation_key="ups_id", **common)  # type: ignore[arg-type]
    if match := _OUTLET_DESC.match(var):
        return NutBridgeTextDescription(
            key=var,
            translation_key="outlet_desc",
            translation_placeholders={"outlet": match.group(1)},
            **common,  # type: ignore[arg-type]
        )
    return NutBridgeTextDescription(
        key=var, name=var, entity_registry_enabled_default=False, **common  # type: ignore[arg-type]
    )


async def async_setup_entry(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    def build(coordinator: NutBridgeCoordinator, state: UpsState) -> Iterable[NutBridgeEntity]:
        controls = get_controls(hass, entry, state.name)
        for var in controls.types:
            length = controls.string_length(var)
            if length is None or var in controls.enums:
                continue
            yield NutBridgeText(coordinator, state.name, _description(var, length))

    add_entities_as_ups_appear(entry, async_add_entities, build, needs_controls=True)


class NutBridgeText(NutBridgeEntity, TextEntity):
    """SET VAR of a string variable."""

    entity_description: NutBridgeTextDescription

    @property
    def native_value(self) -> str | None:
        value = self.raw_value
        # Some drivers report more than their own STRING:n; Home Assistant refuses such a state.
        return value if value is not None and len(value) <= self.native_max else None

    async def async_set_value(self, value: str) -> None:
        await async_set_variable(
            self.hass, self.coordinator.config_entry, self.ups, self.entity_description.key, value
        )
