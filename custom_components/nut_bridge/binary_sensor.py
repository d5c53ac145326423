"""One binary sensor per ups.status flag."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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


def _flag(
    flag: str, translation_key: str, *, aliases: tuple[str, ...] = (), **kwargs: Any
) -> NutBridgeBinarySensorDescription:
    return NutBridgeBinarySensorDescription(
        key=f"status_{flag.lower()}", flag=flag, aliases=aliases, translation_key=translation_key, **kwargs
    )


_PROBLEM = BinarySensorDeviceClass.PROBLEM
# Flags that refine OL/OB/CHRG: useful in automations, clutter on a dashboard.
_REFINING: dict[str, Any] = {"entity_registry_enabled_default": False}

BINARY_SENSORS: tuple[NutBridgeBinarySensorDescription, ...] = (
    _flag("OL", "online", device_class=BinarySensorDeviceClass.POWER),
    _flag("OB", "on_battery"),
    _flag("LB", "low_battery", device_class=BinarySensorDeviceClass.BATTERY),
    _flag("CHRG", "charging", device_class=BinarySensorDeviceClass.BATTERY_CHARGING),
    _flag("RB", "replace_battery", device_class=_PROBLEM),
    _flag("OVER", "overload", device_class=_PROBLEM),
    _flag("BYPASS", "bypass"),
    _flag("FSD", "forced_shutdown"),
    _flag("CAL", "calibrating"),
    _flag("ALARM", "alarm", device_class=_PROBLEM),
    # "OL OFF": mains present but the output is switched off; the load has no power.
    _flag("OFF", "output_off", device_class=_PROBLEM),
    _flag("DISCHRG", "discharging", **_REFINING),
    _flag("HB", "high_battery", **_REFINING),
    _flag("TRIM", "trimming", entity_category=EntityCategory.DIAGNOSTIC, **_REFINING),
    _flag("BOOST", "boosting", entity_category=EntityCategory.DIAGNOSTIC, **_REFINING),
    _flag("TEST", "testing", **_REFINING),
    # Newer NUT reports ECO; some drivers (and HA core's list) use HE ("high efficiency").
    _flag("ECO", "eco_mode", aliases=("HE",), **_REFINING),
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

    def _inputs(self) -> object:
        state = self.ups_state
        return (state.status_tokens if state is not None else None,)
