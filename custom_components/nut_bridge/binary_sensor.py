"""One binary sensor per ups.status flag."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import KEY_STATUS
from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, add_entities_as_ups_appear

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class NutBridgeBinarySensorDescription(BinarySensorEntityDescription):
    """A status flag: on while ``flag`` (or one of its ``aliases``) is among the ups.status tokens."""

    flag: str
    aliases: tuple[str, ...] = ()


BINARY_SENSORS: tuple[NutBridgeBinarySensorDescription, ...] = (
    NutBridgeBinarySensorDescription(
        key="status_ol", flag="OL", translation_key="online", device_class=BinarySensorDeviceClass.POWER
    ),
    NutBridgeBinarySensorDescription(key="status_ob", flag="OB", translation_key="on_battery"),
    NutBridgeBinarySensorDescription(
        key="status_lb",
        flag="LB",
        translation_key="low_battery",
        device_class=BinarySensorDeviceClass.BATTERY,
    ),
    NutBridgeBinarySensorDescription(
        key="status_chrg",
        flag="CHRG",
        translation_key="charging",
        device_class=BinarySensorDeviceClass.BATTERY_CHARGING,
    ),
    NutBridgeBinarySensorDescription(
        key="status_rb",
        flag="RB",
        translation_key="replace_battery",
        device_class=BinarySensorDeviceClass.PROBLEM,
    ),
    NutBridgeBinarySensorDescription(
        key="status_over",
        flag="OVER",
        translation_key="overload",
        device_class=BinarySensorDeviceClass.PROBLEM,
    ),
    NutBridgeBinarySensorDescription(key="status_bypass", flag="BYPASS", translation_key="bypass"),
    NutBridgeBinarySensorDescription(key="status_fsd", flag="FSD", translation_key="forced_shutdown"),
    NutBridgeBinarySensorDescription(key="status_cal", flag="CAL", translation_key="calibrating"),
    NutBridgeBinarySensorDescription(
        key="status_alarm",
        flag="ALARM",
        translation_key="alarm",
        device_class=BinarySensorDeviceClass.PROBLEM,
    ),
    # "OL OFF": mains present but the output is switched off; the load has no power.
    NutBridgeBinarySensorDescription(
        key="status_off",
        flag="OFF",
        translation_key="output_off",
        device_class=BinarySensorDeviceClass.PROBLEM,
    ),
    # Flags that refine OL/OB/CHRG: useful in automations, clutter on a dashboard.
    NutBridgeBinarySensorDescription(
        key="status_dischrg",
        flag="DISCHRG",
        translation_key="discharging",
        entity_registry_enabled_default=False,
    ),
    NutBridgeBinarySensorDescription(
        key="status_hb", flag="HB", translation_key="high_battery", entity_registry_enabled_default=False
    ),
    NutBridgeBinarySensorDescription(
        key="status_trim",
        flag="TRIM",
        translation_key="trimming",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
    ),
    NutBridgeBinarySensorDescription(
        key="status_boost",
        flag="BOOST",
        translation_key="boosting",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
    ),
    NutBridgeBinarySensorDescription(
        key="status_test", flag="TEST", translation_key="testing", entity_registry_enabled_default=False
    ),
    # Newer NUT reports ECO; some drivers (and HA core's list) use HE ("high efficiency").
    NutBridgeBinarySensorDescription(
        key="status_eco",
        flag="ECO",
        aliases=("HE",),
        translation_key="eco_mode",
        entity_registry_enabled_default=False,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: NutBridgeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the status-flag binary sensors of every UPS reporting ups.status."""

    def build(coordinator: NutBridgeCoordinator, state: UpsState) -> Iterable[NutBridgeEntity]:
        if KEY_STATUS not in state.variables:
            return []
        return [NutBridgeBinarySensor(coordinator, state.name, d) for d in BINARY_SENSORS]

    add_entities_as_ups_appear(entry, async_add_entities, build)


class NutBridgeBinarySensor(NutBridgeEntity, BinarySensorEntity):
    """On while the UPS reports the flag."""

    entity_description: NutBridgeBinarySensorDescription

    @property
    def is_on(self) -> bool | None:
        state = self.ups_state
        # No status, a blank one (some drivers, or before the first read) or upsd's WAIT:
        # nothing is known about any flag.
        tokens = state.status_tokens - {"WAIT"} if state is not None else frozenset()
        if not tokens:
            return None
        description = self.entity_description
        return description.flag in tokens or any(alias in tokens for alias in description.aliases)
