"""Numeric UPS sensors and a status enum sensor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfApparentPower,
    UnitOfElectricPotential,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import KEY_STATUS
from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, add_entities_as_ups_appear
from .power import build_power_sensors

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class NutBridgeSensorDescription(SensorEntityDescription):
    """A sensor reading the NUT variable ``key`` as a number."""


SENSORS: tuple[NutBridgeSensorDescription, ...] = (
    NutBridgeSensorDescription(
        key="battery.charge",
        translation_key="battery_charge",
        native_unit_of_measurement=PERCENTAGE,
        device_class=SensorDeviceClass.BATTERY,
        state_class=SensorStateClass.MEASUREMENT,
    ),
    NutBridgeSensorDescription(
        key="battery.runtime",
        translation_key="battery_runtime",
        native_unit_of_measurement=UnitOfTime.SECONDS,
        suggested_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
    ),
    NutBridgeSensorDescription(
        key="battery.voltage",
        translation_key="battery_voltage",
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
    NutBridgeSensorDescription(
        key="ups.load",
        translation_key="ups_load",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
    ),
    NutBridgeSensorDescription(
        key="input.voltage",
        translation_key="input_voltage",
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
    ),
    NutBridgeSensorDescription(
        key="input.frequency",
        translation_key="input_frequency",
        native_unit_of_measurement=UnitOfFrequency.HERTZ,
        device_class=SensorDeviceClass.FREQUENCY,
        state_class=SensorStateClass.MEASUREMENT,
    ),
    NutBridgeSensorDescription(
        key="output.voltage",
        translation_key="output_voltage",
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
    ),
    NutBridgeSensorDescription(
        key="output.frequency",
        translation_key="output_frequency",
        native_unit_of_measurement=UnitOfFrequency.HERTZ,
        device_class=SensorDeviceClass.FREQUENCY,
        state_class=SensorStateClass.MEASUREMENT,
    ),
    NutBridgeSensorDescription(
        key="ups.realpower",
        translation_key="ups_realpower",
        native_unit_of_measurement=UnitOfPower.WATT,
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
    ),
    NutBridgeSensorDescription(
        key="ups.power",
        translation_key="ups_power",
        native_unit_of_measurement=UnitOfApparentPower.VOLT_AMPERE,
        device_class=SensorDeviceClass.APPARENT_POWER,
        state_class=SensorStateClass.MEASUREMENT,
    ),
    NutBridgeSensorDescription(
        key="ups.temperature",
        translation_key="ups_temperature",
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        device_class=SensorDeviceClass.TEMPERATURE,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
    ),
)

# Status enum: the first matching flag wins; unknown tokens are ignored.
STATUS_PRIORITY: tuple[tuple[str, str], ...] = (
    ("FSD", "forced_shutdown"),
    ("LB", "low_battery"),
    ("OB", "on_battery"),
    ("BYPASS", "bypass"),
    ("CAL", "calibrating"),
    ("OL", "online"),
    ("OFF", "off"),
)
STATUS_DESCRIPTION = SensorEntityDescription(
    key=KEY_STATUS,
    translation_key="ups_status",
    device_class=SensorDeviceClass.ENUM,
    options=[option for _, option in STATUS_PRIORITY],
)


def status_option(tokens: frozenset[str]) -> str | None:
    """The enum option for a set of ups.status tokens; None when no known flag is set."""
    for flag, option in STATUS_PRIORITY:
        if flag in tokens:
            return option
    return None


def parse_number(raw: str | None) -> float | None:
    """NUT values are strings; anything not numeric reads as unknown."""
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NutBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add, per UPS, the sensors whose variables the UPS reports."""

    def build(coordinator: NutBridgeCoordinator, state: UpsState) -> Iterable[NutBridgeEntity]:
        entities: list[NutBridgeEntity] = [
            NutBridgeSensor(coordinator, state.name, d) for d in SENSORS if d.key in state.variables
        ]
        if KEY_STATUS in state.variables:
            entities.append(NutBridgeStatusSensor(coordinator, state.name, STATUS_DESCRIPTION))
        entities.extend(build_power_sensors(coordinator, state))
        return entities

    add_entities_as_ups_appear(entry, async_add_entities, build)


class NutBridgeSensor(NutBridgeEntity, SensorEntity):
    """A numeric NUT variable."""

    @property
    def native_value(self) -> float | None:
        state = self.ups_state
        return parse_number(state.variables.get(self.entity_description.key)) if state else None


class NutBridgeStatusSensor(NutBridgeEntity, SensorEntity):
    """The main UPS state derived from ups.status."""

    @property
    def native_value(self) -> str | None:
        state = self.ups_state
        return status_option(state.status_tokens) if state else None

    @property
    def extra_state_attributes(self) -> dict[str, str]:
        state = self.ups_state
        return {"raw": state.variables.get(KEY_STATUS, "")} if state else {}
