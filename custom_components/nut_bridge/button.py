"""Buttons for the UPS's instant commands (battery test, beeper mute, outlet cycle...)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.components.button.const import ButtonDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import NutBridgeConfigEntry, NutBridgeCoordinator, UpsState
from .entity import NutBridgeEntity, add_entities_as_ups_appear
from .services import async_run_command, get_controls

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class NutBridgeButtonDescription(ButtonEntityDescription):
    """A button running the instant command ``command``."""

    command: str


def _button(command: str, translation_key: str, **kwargs: object) -> NutBridgeButtonDescription:
    return NutBridgeButtonDescription(
        key=command,
        command=command,
        translation_key=translation_key,
        entity_category=EntityCategory.CONFIG,
        **kwargs,  # type: ignore[arg-type]
    )


BUTTONS: tuple[NutBridgeButtonDescription, ...] = (
    _button("test.battery.start.quick", "test_battery_quick"),
    _button("test.battery.start.deep", "test_battery_deep"),
    _button("test.battery.stop", "test_battery_stop"),
    _button("beeper.mute", "beeper_mute"),
    _button("calibrate.start", "calibrate_start"),
    _button("calibrate.stop", "calibrate_stop"),
    _button("shutdown.stop", "shutdown_stop"),
    _button("shutdown.reboot", "shutdown_reboot", device_class=ButtonDeviceClass.RESTART,
            entity_registry_enabled_default=False),
)


def _outlet_cycle(n: str) -> NutBridgeButtonDescription:
    return NutBridgeButtonDescription(
        key=f"outlet.{n}.load.cycle",
        command=f"outlet.{n}.load.cycle",
        translation_key="outlet_cycle",
        translation_placeholders={"outlet": n},
        device_class=ButtonDeviceClass.RESTART,
    )


async def async_setup_entry(
    hass: HomeAssistant, entry: NutBridgeConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    def build(coordinator: NutBridgeCoordinator, state: UpsState) -> Iterable[NutBridgeEntity]:
        commands = get_controls(hass, entry, state.name).commands
        for description in BUTTONS:
            if description.command in commands:
                yield NutBridgeButton(coordinator, state.name, description)
        for n in outlet_numbers(state, commands, "cycle"):
            yield NutBridgeButton(coordinator, state.name, _outlet_cycle(n))

    add_entities_as_ups_appear(entry, async_add_entities, build, needs_controls=True)


def outlet_numbers(state: UpsState, commands: frozenset[str], action: str) -> list[str]:
    """Outlets N with an ``outlet.N.status`` variable and an ``outlet.N.load.<action>`` command."""
    found = []
    for var in state.variables:
        parts = var.split(".")
        if (
            len(parts) == 3
            and parts[0] == "outlet"
            and parts[2] == "status"
            and parts[1].isdigit()
            and f"outlet.{parts[1]}.load.{action}" in commands
        ):
            found.append(parts[1])
    return sorted(found, key=int)


class NutBridgeButton(NutBridgeEntity, ButtonEntity):
    """Runs an instant command."""

    entity_description: NutBridgeButtonDescription

    async def async_press(self) -> None:
        await async_run_command(
            self.hass, self.coordinator.config_entry, self.ups, self.entity_description.command
        )
