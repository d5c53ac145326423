"""Select entities for writable variables with an ENUM."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, add_entities_as_ups_appear
from .services import async_set_variable, get_controls

PARALLEL_UPDATES = 1

# Translated names of well-known enum variables.
KNOWN: dict[str, str] = {"ups.beeper.status": "beeper_status"}


@dataclass(frozen=True, kw_only=True)
class NutBridgeSelectDescription(SelectEntityDescription):
    """A select writing the NUT variable ``key``."""


async def async_setup_entry(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    def build(coordinator: NutBridgeCoordinator, state: UpsState) -> Iterable[NutBridgeEntity]:
        for var, options in get_controls(hass, entry, state.name).enums.items():
            if not options:
                continue
            translation_key = KNOWN.get(var)
            description = NutBridgeSelectDescription(
                key=var,
                translation_key=translation_key,
                name=None if translation_key else var,
                options=list(options),
                entity_category=EntityCategory.CONFIG,
                entity_registry_enabled_default=translation_key is not None,
            )
            yield NutBridgeSelect(coordinator, state.name, description)

    add_entities_as_ups_appear(entry, async_add_entities, build, needs_controls=True)


class NutBridgeSelect(NutBridgeEntity, SelectEntity):
    """SET VAR of an enumerated variable."""

    entity_description: NutBridgeSelectDescription

    @property
    def current_option(self) -> str | None:
        value = self.raw_value
        return value if value in self.options else None

    async def async_select_option(self, option: str) -> None:
        await async_set_variable(
            self.hass, self.coordinator.config_entry, self.ups, self.entity_description.key, option
        )
