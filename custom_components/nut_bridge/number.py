"""Number entities for writable numeric variables with a RANGE."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.const import PERCENTAGE, EntityCategory, UnitOfElectricPotential, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, add_entities_as_ups_appear, parse_number
from .services import async_set_variable, get_controls

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class NutBridgeNumberDescription(NumberEntityDescription):
    """A number writing the NUT variable ``key``."""


def _known(
    key: str, translation_key: str, unit: str, device_class: NumberDeviceClass | None = None
) -> NutBridgeNumberDescription:
    return NutBridgeNumberDescription(
        key=key, translation_key=translation_key, native_unit_of_measurement=unit, device_class=device_class
    )


_SECONDS = (UnitOfTime.SECONDS, NumberDeviceClass.DURATION)
_VOLTS = (UnitOfElectricPotential.VOLT, NumberDeviceClass.VOLTAGE)

# Translated names, units and classes of well-known numeric variables.
KNOWN: dict[str, NutBridgeNumberDescription] = {
    d.key: d
    for d in (
        _known("ups.delay.shutdown", "delay_shutdown", *_SECONDS),
        _known("ups.delay.start", "delay_start", *_SECONDS),
        _known("battery.charge.low", "battery_charge_low", PERCENTAGE),
        _known("battery.runtime.low", "battery_runtime_low", *_SECONDS),
        _known("input.transfer.low", "input_transfer_low", *_VOLTS),
        _known("input.transfer.high", "input_transfer_high", *_VOLTS),
    )
}


async def async_setup_entry(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    def build(coordinator: NutBridgeCoordinator, state: UpsState) -> Iterable[NutBridgeEntity]:
        controls = get_controls(hass, entry, state.name)
        for var, (low, high) in controls.ranges.items():
            if not controls.is_number(var):
                continue
            known = KNOWN.get(var)
            description = NutBridgeNumberDescription(
                key=var,
                translation_key=known.translation_key if known else None,
                name=None if known else var,
                native_unit_of_measurement=known.native_unit_of_measurement if known else None,
                device_class=known.device_class if known else None,
                entity_category=EntityCategory.CONFIG,
                entity_registry_enabled_default=known is not None,
                native_min_value=low,
                native_max_value=high,
                native_step=1,
                mode=NumberMode.BOX,
            )
            yield NutBridgeNumber(coordinator, state.name, description)

    add_entities_as_ups_appear(entry, async_add_entities, build, needs_controls=True)


class NutBridgeNumber(NutBridgeEntity, NumberEntity):
    """SET VAR of a numeric variable."""

    entity_description: NutBridgeNumberDescription

    @property
    def native_value(self) -> float | None:
        return parse_number(self.raw_value)

    async def async_set_native_value(self, value: float) -> None:
        text = str(int(value)) if float(value).is_integer() else str(value)
        await async_set_variable(
            self.hass, self.coordinator.config_entry, self.ups, self.entity_description.key, text
        )
