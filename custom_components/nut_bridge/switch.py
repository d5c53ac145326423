"""Switches: outlets (outlet.N.load.on/off) and the beeper (beeper.enable/disable)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.components.switch.const import SwitchDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .button import outlet_numbers
from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, add_entities_as_ups_appear
from .services import async_run_command, get_controls

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class NutBridgeSwitchDescription(SwitchEntityDescription):
    """On when variable ``key`` is one of ``on_values``; switched by two commands."""

    on_values: frozenset[str]
    on_command: str
    off_command: str


BEEPER = NutBridgeSwitchDescription(
    key="ups.beeper.status",
    translation_key="beeper",
    entity_category=EntityCategory.CONFIG,
    on_values=frozenset({"enabled"}),
    on_command="beeper.enable",
    off_command="beeper.disable",
)


def _outlet(n: str) -> NutBridgeSwitchDescription:
    return NutBridgeSwitchDescription(
        key=f"outlet.{n}.status",
        translation_key="outlet",
        translation_placeholders={"outlet": n},
        device_class=SwitchDeviceClass.OUTLET,
        on_values=frozenset({"on"}),
        on_command=f"outlet.{n}.load.on",
        off_command=f"outlet.{n}.load.off",
    )


async def async_setup_entry(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    def build(coordinator: NutBridgeCoordinator, state: UpsState) -> Iterable[NutBridgeEntity]:
        commands = get_controls(hass, entry, state.name).commands
        on = set(outlet_numbers(state, commands, "on"))
        for n in outlet_numbers(state, commands, "off"):
            if n in on:
                yield NutBridgeSwitch(coordinator, state.name, _outlet(n))
        if BEEPER.key in state.variables and {BEEPER.on_command, BEEPER.off_command} <= commands:
            yield NutBridgeSwitch(coordinator, state.name, BEEPER)

    add_entities_as_ups_appear(entry, async_add_entities, build, needs_controls=True)


class NutBridgeSwitch(NutBridgeEntity, SwitchEntity):
    """A switch backed by a status variable and on/off commands."""

    entity_description: NutBridgeSwitchDescription

    @property
    def is_on(self) -> bool | None:
        value = self.raw_value
        if value is None:
            return None
        return value.lower() in self.entity_description.on_values

    async def async_turn_on(self, **kwargs: Any) -> None:
        await async_run_command(
            self.hass, self.coordinator.config_entry, self.ups, self.entity_description.on_command
        )

    async def async_turn_off(self, **kwargs: Any) -> None:
        await async_run_command(
            self.hass, self.coordinator.config_entry, self.ups, self.entity_description.off_command
        )
